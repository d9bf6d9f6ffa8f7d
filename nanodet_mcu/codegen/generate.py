"""Render a self-contained firmware project for a board from a .tflite (see docs/architecture.md).

The destination is checked first; the project is rendered into a temporary directory next to it and moved into
place only when complete, so a failure never leaves half a project (nor the directories made for it).  Rendering
is deterministic: the same inputs give a byte-identical tree.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nanodet_mcu import (
    FIRMWARE_DIR,
    TEMPLATES_DIR,
    __version__,
    boards,
    model_info,
    outputs,
    postprocess_fixed,
    preprocess,
    spec,
)
from nanodet_mcu.codegen import aot
from nanodet_mcu.codegen.aot import kernels
from nanodet_mcu.codegen.c_array import hex_bytes, int_values
from nanodet_mcu.codegen.placement import Placement, aot_placement, place_arena
from nanodet_mcu.codegen.tflm_ops import resolver_methods
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.floatbits import f32_bits

MANIFEST = "project.json"
# TFLM's arena figure is measured on the host (64-bit pointers make its bookkeeping structs larger than on the
# Cortex-M7), so it already over-covers the device; the margin absorbs allocator alignment and version differences.
TFLM_ARENA_MARGIN = 16 * 1024
ELF = "build/nanodet.elf"  # what a family's build produces, relative to the project (but see elf_path)


@dataclass
class Project:
    out_dir: Path
    board: str
    engine: str
    arena_bytes: int
    placement: Placement
    files: list[str] = field(default_factory=list)
    flash_bytes: dict[str, int] = field(default_factory=dict)  # estimate of the big read-only items
    ram: dict[str, int] = field(default_factory=dict)  # AOT engine: kernel scratch (inside the arena), stack bound
    aot_placement: list[str] = field(default_factory=list)  # AOT engine on a board with [aot]: code and constants
    family: str = ""  # the project family (boards.FAMILIES): which build files, which SDK

    @property
    def warning(self) -> str | None:
        return self.placement.warning


def default_out_dir(board: str, engine: str) -> Path:
    return Path("build") / f"{board}-{engine}"


def float_bits(value: float) -> str:
    """IEEE-754 float32 bits of value as a C hex literal: what the device reports in INFO, without using float."""
    return f"0x{f32_bits(float(value)):08x}u"


def _jinja_env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                              autoescape=False)


def board_config_header(board: boards.Board) -> str:
    """nd_board_config.h for `board` without linker sections to copy: the QEMU harness of the AOT gates and the
    benchmark, which link no [[linker_sections]]."""
    ctx = {"version": __version__, "board": board.data, "flexram": board.flexram, "copy_sections": []}
    return _jinja_env().get_template("common/nd_board_config.h.j2").render(ctx)


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty directory that generate did not create, unless forced."""
    if not out_dir.exists():
        return
    if out_dir.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise NanodetError(f"{out_dir} is the current directory or contains it; choose a project directory below it")
    if not out_dir.is_dir():
        raise NanodetError(f"{out_dir} exists and is not a directory")
    if force or not any(out_dir.iterdir()):
        return
    manifest = out_dir / MANIFEST
    try:
        ours = str(json.loads(manifest.read_text()).get("generated_by", "")).startswith("nanodet-mcu ")
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise NanodetError(f"{out_dir} is not empty and was not made by nanodet-mcu generate (no {MANIFEST} of "
                           "ours); choose another --out or pass --force to replace it")


def c_int(value: int) -> str:
    """An int as a macro body: negatives in parentheses so `x-ND_FOO` never pastes into `x--14`."""
    return f"({value})" if value < 0 else str(value)


def _quant_defines(layout: model_info.NanodetLayout) -> dict:
    return {
        "input_zp": c_int(layout.input.zero_point), "input_scale_bits": float_bits(layout.input.scale),
        "scores_zp": c_int(layout.scores.zero_point), "scores_scale_bits": float_bits(layout.scores.scale),
        "boxes_zp": c_int(layout.boxes.zero_point), "boxes_scale_bits": float_bits(layout.boxes.scale),
        "scores_index": layout.scores_index, "boxes_index": layout.boxes_index,
        "input_scale": repr(layout.input.scale), "scores_scale": repr(layout.scores.scale),
        "boxes_scale": repr(layout.boxes.scale),
    }


def _post_params_initializer(layout: model_info.NanodetLayout) -> str:
    return postprocess_fixed.params_for(layout, spec.SCORE_THRESHOLD, spec.IOU_THRESHOLD,
                                        spec.MAX_DETECTIONS).c_initializer()


def _images(paths: list[Path]) -> list[dict]:
    out, seen = [], set()
    for path in paths:
        rgb = preprocess.resize_rgb(preprocess.load_rgb(path))
        name = Path(path).name
        if name in seen:
            raise NanodetError(f"two embedded images are named {name}; names must be unique")
        seen.add(name)
        out.append({"name": name, "hex": hex_bytes(rgb.tobytes())})
    return out


def _tflm_engine(info: model_info.ModelInfo, tmp: Path, weights_format: str | None) -> tuple[int, dict, dict]:
    if weights_format is not None:
        raise NanodetError("--weights-format applies to the aot engine only (TFLM reads the model's own weights)")
    ops = resolver_methods(info.ops)
    host = model_info.tflm_arena_bytes(info.data)
    arena = tflm_arena_reserved(host)
    ctx = {"ops": ops, "num_steps": len(info.ops), "model_hex": hex_bytes(info.data), "model_len": info.size,
           "arena_note": f"reserved = tflite-micro's allocator on the 64-bit host, {host} bytes (an upper bound for "
                         f"the Cortex-M7, whose use the firmware reports to verify), + {TFLM_ARENA_MARGIN} bytes "
                         "margin"}
    return arena, ctx, {"model_data": info.size}


def _aot_engine(info: model_info.ModelInfo, tmp: Path, weights_format: str | None) -> tuple[int, dict, dict]:
    result = aot.emit_c(info, tmp, weights_format=weights_format or "int16")
    ctx = {"arena_note": f"exact static size from the AOT planner, {result.scratch_bytes} bytes of it the largest "
                         f"kernel scratch; the engine's stack stays within ND_KERNELS_STACK_BYTES",
           "aot_ram": {"scratch_bytes": result.scratch_bytes, "stack_bytes_bound": kernels.stack_bytes()},
           "weights_format": weights_format or "int16", "aot_const_section_bytes": result.const_section_bytes}
    return result.arena_bytes, ctx, {"aot_constants": result.flash_bytes}


ENGINES = {"tflm": _tflm_engine, "aot": _aot_engine}


def tflm_arena_reserved(host_bytes: int) -> int:
    """The arena a TFLM project reserves: the host allocator's figure plus TFLM_ARENA_MARGIN, 16-byte aligned."""
    return -(-(host_bytes + TFLM_ARENA_MARGIN) // 16) * 16


def aot_arena_bytes(info: model_info.ModelInfo) -> int:
    """The AOT engine's exact static arena for this model (its planner, without writing any C)."""
    from nanodet_mcu.codegen.aot import planner

    return planner.plan(aot.program(info))[1]


def _with_aot_hint(placement: Placement, info: model_info.ModelInfo, board: boards.Board) -> Placement:
    """A TFLM arena pushed off chip: say what --engine aot would need and where it would go."""
    try:
        aot_bytes = aot_arena_bytes(info)
        aot = place_arena(aot_bytes, board.memory, board.name)
    except NanodetError:
        return placement  # a model the AOT engine cannot take: nothing to suggest
    where = "also off chip" if aot.region.external else "on chip"
    hint = (f"; --engine aot would need {aot_bytes:,} bytes ({aot_bytes / 1024:.1f} KiB) of arena, placed in "
            f"{aot.region.name} ({where})")
    return dataclasses.replace(placement, warning=placement.warning + hint)


def _render_dir(env, sub: str, dest: Path, ctx: dict, written: list[str]) -> None:
    """Every templates/<sub>/*.j2 into dest; a template that renders to whitespace only is not written (a file that
    exists for some engines only, e.g. the TFLM-from-sources overlay)."""
    for tpl in sorted((TEMPLATES_DIR / sub).glob("*.j2")):
        name = tpl.name[:-3]
        if (dest / name).exists():
            raise NanodetError(f"templates/{sub}/{tpl.name} would overwrite {name} (also written by another part)")
        text = env.get_template(f"{sub}/{tpl.name}").render(**ctx)
        if not text.strip():
            continue
        (dest / name).write_text(text)
        if name.endswith(".sh"):
            (dest / name).chmod(0o755)
        written.append(name)


def _copy_layer(src: Path, dest: Path, written: list[str]) -> None:
    if not src.is_dir():
        raise NanodetError(f"firmware directory {src} is missing")
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            if (dest / f.name).exists():
                raise NanodetError(f"{f} would overwrite the generated {f.name}")
            shutil.copyfile(f, dest / f.name)
            written.append(f.name)


def _copy_model(info: model_info.ModelInfo, dest: Path, written: list[str]) -> None:
    """The .tflite itself, so that the README's `verify --model <name>` works from inside the project."""
    name = Path(info.path).name
    if (dest / name).exists():
        raise NanodetError(f"the model's file name {name} clashes with a generated file; rename the model")
    (dest / name).write_bytes(info.data)
    written.append(name)


def _sources(files: list[str]) -> dict[str, list[str]]:
    by_kind = {"c": [], "cxx": [], "asm": []}
    for f in sorted(files):
        suffix = Path(f).suffix
        if suffix == ".c":
            by_kind["c"].append(f)
        elif suffix in (".cc", ".cpp"):
            by_kind["cxx"].append(f)
        elif suffix in (".S", ".s"):
            by_kind["asm"].append(f)
    return by_kind


def elf_path(board: boards.Board, family: boards.Family) -> str:
    """Where the family's build writes the ELF: build/nanodet.elf, or build/nanodet_<core_id>.elf where the build
    names the target after the core (the current MCUXpresso SDK on a multicore device)."""
    core_id = board.sdk_table(family.name).get("core_id", "") if family.core_suffixed_elf else ""
    return f"build/nanodet_{core_id}.elf" if core_id else ELF


def linker_sections(board: boards.Board, engine: str, arena: boards.MemoryRegion,
                    dropped: set[str] = frozenset()) -> list[dict]:
    """Output sections an mcux project adds to the SDK's linker file: the arena's, then the board file's
    [[linker_sections]] for this engine except `dropped` (AOT constants' candidates not taken); each with its symbol
    stem (the name without the dot)."""
    arena_section = {"name": ".nd_arena", "inputs": [arena.section], "region": arena.linker_region, "load": "noload"}
    board_sections = [s for s in board.linker_sections(engine) if s["name"] not in dropped]
    return [{**s, "stem": s["name"][1:]} for s in [arena_section, *board_sections]]


def defined_regions(board: boards.Board, sections: list[dict]) -> list[tuple[str, int, int]]:
    """(MEMORY region, ORIGIN, LENGTH) of the [[memory]] regions with define_region that a section is placed in."""
    used = {s["region"] for s in sections}
    out = []
    for r in board.memory:
        if r.define_region and r.linker_region in used and r.linker_region not in [name for name, _, _ in out]:
            out.append((r.linker_region, r.address, r.size))
    return out


def generate(board_name: str, model: str | Path, engine: str | None = None, out_dir: str | Path | None = None,
             embed_images: list[str | Path] = (), force: bool = False, log=None,
             tflm_include: list[str | Path] = (), tflm_lib: str | Path | None = None, profile: bool = False,
             tflm_stock_transpose: bool = False, sdk: str | None = None,
             weights_format: str | None = None) -> Project:
    """Render the project; returns what was written.  Warnings (arena in SDRAM) also go to `log` (stderr).

    profile: the build's default turns the per-step instrumentation on (verify --profile / --bisect).
    tflm_stock_transpose: register the TFLM's own TRANSPOSE kernel instead of the reference one (diagnosing a TFLM).
    sdk: the SDK layout of an RT project ("mcuxsdk": the current west SDK, "classic": mcux-sdk 2.x); None takes the
    board's default family.
    weights_format: the AOT engine's conv weights, "int16" (default: fastest) or "int8" (half the flash)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    board = boards.load(board_name)
    family = board.family_for(sdk)
    engine = engine or board.default_engine
    if engine not in board.engines:
        raise NanodetError(f"board {board.name} supports engines {', '.join(board.engines)}, not '{engine}'")
    user_tflm = _user_tflm(family, board, engine, tflm_include, tflm_lib)
    if tflm_stock_transpose and engine != "tflm":
        raise NanodetError("--tflm-stock-transpose applies to the tflm engine only")
    out = Path(out_dir) if out_dir is not None else default_out_dir(board.name, engine)
    check_destination(out, force)
    outputs.check_dir(out, "project directory")
    info = model_info.load(model)
    layout = model_info.nanodet_layout(info)
    post_params = _post_params_initializer(layout)
    images = _images([Path(p) for p in embed_images])

    try:
        created = outputs.make_dirs(out.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise NanodetError(f"cannot create the project directory {out}: {exc.strerror or exc}") from None
    try:
        arena, engine_ctx, flash = ENGINES[engine](info, tmp, weights_format)
        placement = place_arena(arena, board.memory, board.name)
        if placement.warning and engine == "tflm" and "aot" in board.engines:
            placement = _with_aot_hint(placement, info, board)
        aot_place = aot_placement(board, engine, placement, engine_ctx.get("aot_const_section_bytes", 0))
        written = [f.name for f in sorted(tmp.iterdir())]  # the engine's own output (nd_model.c/h)
        lut = preprocess.input_lut(layout.input.scale, layout.input.zero_point)
        flash["images"] = len(images) * spec.INPUT_SIZE * spec.INPUT_SIZE * 3
        flash["input_lut"] = lut.size
        flash_size = board.data["flash"]["size"]
        if sum(flash.values()) > flash_size:
            raise NanodetError(f"model constants and {len(images)} embedded image(s) need {sum(flash.values())} bytes, "
                               f"more than the {flash_size} bytes of {board.data['flash']['name']}; embed fewer images")
        sections = linker_sections(board, engine, placement.region, aot_place.dropped)
        ctx = {
            "version": __version__, "board": board.data, "engine": engine, "model_sha256": info.sha256,
            "family": family.name, "sdk": board.sdk_table(family.name), "linker_sections": sections,
            "defined_regions": defined_regions(board, sections),
            "copy_sections": [s["stem"] for s in sections if s["load"] == "copy"],
            "model_name": Path(info.path).name, "model_bytes": info.size, "quant": _quant_defines(layout),
            "lut_rows": [int_values(row) for row in lut], "post_params": post_params, "max_detections":
            spec.MAX_DETECTIONS, "input_size": spec.INPUT_SIZE, "images": images, "arena_bytes": arena,
            "arena_region": placement.region, "arena_warning": placement.warning, "arena_text": placement.describe(),
            "elf": elf_path(board, family), "flexram": board.flexram, "resized_regions": board.resized_linker_regions,
            "arch_flags": board.arch_flags, "profile": profile, "tflm_stock_transpose": tflm_stock_transpose,
            "aot_placement": aot_place, "section_defines": aot_place.defines, **user_tflm, **engine_ctx,
        }
        env = _jinja_env()
        _render_dir(env, "common", tmp, ctx, written)
        _render_dir(env, f"engine-{engine}", tmp, ctx, written)
        _copy_layer(FIRMWARE_DIR / "common", tmp, written)
        _copy_layer(board.layer_dir, tmp, written)
        _copy_model(info, tmp, written)
        ctx["sources"] = _sources(written)
        for sub in family.template_dirs:
            _render_dir(env, sub, tmp, ctx, written)
        manifest = {"board": board.name, "engine": engine, "family": family.name, "sdk": family.sdk,
                    "model_sha256": info.sha256, "arena_bytes": arena,
                    "arena_region": placement.region.name, "elf": ctx["elf"],
                    "generated_by": f"nanodet-mcu {__version__}", "flash_bytes_estimate": flash,
                    "profile": profile, "tflm_stock_transpose": tflm_stock_transpose,
                    "files": sorted(written + [MANIFEST])}
        if "aot_ram" in engine_ctx:
            manifest["aot"] = {"weights_format": engine_ctx["weights_format"], **engine_ctx["aot_ram"],
                               **aot_place.manifest()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _normalise_modes(tmp)
        with outputs.committing():
            _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        outputs.remove_dirs(created)
        raise
    if placement.warning:
        log(f"nanodet-mcu generate: {placement.warning}")
    return Project(out, board.name, engine, arena, placement, sorted(manifest["files"]), flash,
                   engine_ctx.get("aot_ram", {}), aot_place.lines(), family.name)


def _user_tflm(family: boards.Family, board: boards.Board, engine: str, include: list[str | Path],
               lib: str | Path | None) -> dict:
    """A TFLM the user supplies (include dirs + static library), recorded as the project's build defaults.

    Only a project that builds TFLM-free of any SDK takes one: the MCUXpresso projects use the SDK's eIQ TFLM."""
    if not include and lib is None:
        return {"tflm_include": [], "tflm_lib": ""}
    if engine != "tflm":
        raise NanodetError("--tflm-include/--tflm-lib apply to the tflm engine only")
    if family.sdk:
        raise NanodetError(f"{board.name} projects take TFLM from the MCUXpresso SDK (MCUX_SDK_ROOT), "
                           "not --tflm-include/--tflm-lib")
    dirs = [Path(d).resolve() for d in include]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise NanodetError(f"--tflm-include: not a directory: {missing[0]}")
    if lib is not None and not Path(lib).is_file():
        raise NanodetError(f"--tflm-lib: no such file: {lib}")
    return {"tflm_include": [str(d) for d in dirs], "tflm_lib": str(Path(lib).resolve()) if lib else ""}


def _normalise_modes(tree: Path) -> None:
    """Same permissions whatever wrote the file (mkdtemp and atomic writers make 0600/0700)."""
    os.chmod(tree, 0o755)
    for f in tree.iterdir():
        os.chmod(f, 0o755 if f.suffix == ".sh" else 0o644)


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
