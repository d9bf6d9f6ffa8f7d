"""Instructions per inference of the AOT engine on QEMU's Cortex-M7 (mps2-an500, -icount shift=0), per step, for each
model given; RAM (arena, kernel scratch, measured peak stack) and flash; optionally TFLM + CMSIS-NN in the same run.

For each model: emits the C, builds it with the mps2-an500 board layer and a small main (ND_PROFILE step hook reading
SysTick: one tick = 40 emulated instructions; the stack below main painted before the run and scanned after), runs
it on the example image, checks the outputs against tflite-micro on the host, and prints the per-step table
(op, shape, MACs, instructions, instructions/MAC), the totals by op kind, and the memory figures.  With
--tflm-include/--tflm-lib (the TFLM of `generate --engine tflm`), the same model also runs through the TFLM glue of
the generated projects, and the ratio of the two instruction counts is printed.  Each model also runs with int8 conv
weights (generate --weights-format int8: less flash, more instructions) unless --weights-format says otherwise.

    .venv/bin/python benchmarks/bench_aot_qemu.py [--model PATH ...] [--image PATH] [--keep DIR]
        [--weights-format int16|int8 ...] [--tflm-include DIR ... --tflm-lib LIB]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nanodet_mcu import model_info, preprocess  # noqa: E402
from nanodet_mcu.codegen import generate  # noqa: E402
from nanodet_mcu.codegen.aot import qemu  # noqa: E402
from nanodet_mcu.runners import TflmRunner  # noqa: E402


def _input(info: model_info.ModelInfo, image: Path) -> np.ndarray:
    lay = model_info.nanodet_layout(info)
    return preprocess.quantize(preprocess.resize_rgb(preprocess.load_rgb(image)), lay.input.scale,
                               lay.input.zero_point)


def _flash(elf: Path) -> int:
    size = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True).stdout
    return sum(int(m.group(1)) for m in re.finditer(r"^\.(?:text|ARM\.exidx)\s+(\d+)", size, re.M))


def _run(elf: Path, want: int, name: str) -> dict:
    stdout = qemu.run_elf(elf)
    total = re.search(r"TOTAL (\d+) HASH ([0-9a-f]+) RC (-?\d+)", stdout)
    stack = re.search(r"STACK (\d+) (\d+)", stdout)
    arena = re.search(r"ARENA (\d+)", stdout)
    if not total or not stack or not arena:
        raise SystemExit(f"{name}: no result from the emulator:\n{stdout[-2000:]}")
    steps = [(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)) * qemu.INSTRUCTIONS_PER_TICK)
             for m in re.finditer(r"STEP (\d+) (\S+) (\d+) (\d+)", stdout)]
    return {"name": name, "steps": steps, "instructions": int(total.group(1)) * qemu.INSTRUCTIONS_PER_TICK,
            "identical": int(total.group(2), 16) == want and total.group(3) == "0", "rc": int(total.group(3)),
            "arena": int(arena.group(1)), "stack_engine": int(stack.group(1)), "stack_total": int(stack.group(2)),
            "flash_elf": _flash(elf)}


def _host_hash(info: model_info.ModelInfo, x: np.ndarray) -> int:
    """The FNV-1a of tflite-micro's outputs (on the host) for input x, as the ELF prints it of its own."""
    scores, boxes = TflmRunner(info).run(x)
    return qemu.fnv1a(scores.astype(np.int8).tobytes() + boxes.astype(np.int8).tobytes())


INSTRUCTIONS_PER_TICK = qemu.INSTRUCTIONS_PER_TICK


def build(model: Path, image: Path, out: Path, profile: bool, weights_format: str = "int16"):
    """The AOT benchmark ELF for `model` on `image` (also used by tests/test_steps.py): (ELF, FNV-1a of tflite-micro's
    outputs on the host, AotResult)."""
    info = model_info.load(model)
    x = _input(info, image)
    elf, result = qemu.build_aot_elf(info, x, out, weights_format, defines=("ND_PROFILE",) if profile else ())
    want = _host_hash(info, x)
    return elf, want, result


def run(elf: Path, timeout: float = 900) -> str:
    """The emulator's UART output for one run of a benchmark ELF."""
    return qemu.run_elf(elf, timeout)


def bench_aot(model: Path, image: Path, out: Path, weights_format: str = "int16") -> dict:
    elf, want, result = build(model, image, out, True, weights_format)
    r = _run(elf, want, model.name)
    r.update(scratch=result.scratch_bytes, flash_constants=result.flash_bytes, weights=weights_format)
    return r


def bench_tflm(model: Path, image: Path, out: Path, include: list[str], lib: str) -> dict:
    """The same model through the TFLM glue of `generate --engine tflm` (its engine_tflm.cc and model_data.c)."""
    info = model_info.load(model)
    project = out / "project"
    generate.generate("mps2-an500", model, engine="tflm", out_dir=project, force=True, tflm_include=include,
                      tflm_lib=lib, log=lambda msg: None)
    x = _input(info, image)
    qemu.write_input(out, x)
    want = _host_hash(info, x)
    (out / "bench_main.c").write_text(qemu.main_c(qemu.TFLM_API))
    defines = ["TF_LITE_STATIC_MEMORY"]
    nm = subprocess.run(["arm-none-eabi-nm", "--defined-only", lib], capture_output=True, text=True).stdout
    if not re.search(r" T MicroPrintf\b", nm):  # a release build: the glue must not reference it either
        defines.append("TF_LITE_STRIP_ERROR_STRINGS")
    for f in ("nd_model_config.h", "model_data.h", "nd_engine.h"):
        shutil.copyfile(project / f, out / f)
    elf = qemu.build_elf(out, [out / "bench_main.c", out / "bench_input.c", project / "model_data.c"],
                         out / "bench_tflm.elf", defines=tuple(defines), kernels=False,
                         cxx_sources=(project / "engine_tflm.cc",), cxx_includes=tuple(include), libs=(lib,))
    return _run(elf, want, model.name)


def print_aot(r: dict) -> None:
    print(f"\n== {r['name']}: AOT engine ({r['weights']} conv weights), per step ==")
    print(f"{'step':>4} {'op':34} {'MACs':>10} {'instructions':>13} {'instr/MAC':>9}")
    for i, label, macs, instr in r["steps"]:
        print(f"{i:4d} {label:34} {macs:10d} {instr:13d} {instr / macs if macs else 0:9.2f}")
    by_kind: dict[str, list[int]] = {}
    for _, label, macs, instr in r["steps"]:
        k = by_kind.setdefault(label.split("+")[0], [0, 0, 0])
        k[0] += 1
        k[1] += macs
        k[2] += instr
    print("\nby op kind:")
    for kind, (n, macs, instr) in sorted(by_kind.items(), key=lambda kv: -kv[1][2]):
        print(f"  {kind:20} x{n:3d} {macs:11d} MACs {instr:12d} instructions"
              + (f" ({instr / macs:.2f}/MAC)" if macs else ""))
    print(f"\ntotal instructions per inference: {r['instructions']:,} (profiled)")
    print(f"RAM: arena {r['arena']:,} B (kernel scratch {r['scratch']:,} B of it, planned); peak stack "
          f"{r['stack_engine']:,} B below main's frame ({r['stack_total']:,} B with startup and main), "
          "painted on QEMU")
    print(f"flash: {r['flash_constants']:,} B of model constants; .text+.rodata of the whole ELF "
          f"{r['flash_elf']:,} B")
    print(f"outputs vs tflite-micro on the host: {'identical' if r['identical'] else 'DIFFERENT'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="int8 NanoDet .tflite (repeatable; default: NXP's model)")
    ap.add_argument("--image", default=str(ROOT.parent / "shared/images/example_input.jpg"))
    ap.add_argument("--keep", help="build in this directory and keep it")
    ap.add_argument("--weights-format", nargs="+", default=["int16", "int8"], choices=["int16", "int8"],
                    help="conv weights of the AOT engine to measure (the per-step table is the first's)")
    ap.add_argument("--tflm-include", nargs="+", default=[], metavar="DIR",
                    help="also run TFLM (as `generate --engine tflm`): its include directories")
    ap.add_argument("--tflm-lib", metavar="LIB", help="the TFLM static library for Cortex-M7 (with CMSIS-NN)")
    args = ap.parse_args()
    if bool(args.tflm_include) != bool(args.tflm_lib):
        print("--tflm-include and --tflm-lib go together", file=sys.stderr)
        return 2
    if qemu.tools() is None:
        print("needs arm-none-eabi-gcc and qemu-system-arm", file=sys.stderr)
        return 2
    models = [Path(m) for m in args.model or [ROOT.parent / "shared/models/nxp_nanodet_m_0.5x.tflite"]]
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_aot_"))
    ok = True
    try:
        for k, model in enumerate(models):
            out = base / f"m{k}-aot"
            out.mkdir(parents=True, exist_ok=True)
            r = bench_aot(model, Path(args.image), out, args.weights_format[0])
            print_aot(r)
            ok &= r["identical"]
            for fmt in args.weights_format[1:]:
                w = bench_aot(model, Path(args.image), base / f"m{k}-aot-{fmt}", fmt)
                print(f"with {fmt} conv weights: {w['instructions']:,} instructions per inference, "
                      f"{w['flash_constants']:,} B of model constants, .text+.rodata {w['flash_elf']:,} B; outputs "
                      f"{'identical' if w['identical'] else 'DIFFERENT'}")
                ok &= w["identical"]
            if args.tflm_lib:
                t = bench_tflm(model, Path(args.image), base / f"m{k}-tflm", args.tflm_include, args.tflm_lib)
                print(f"TFLM ({Path(args.tflm_lib).parent.name}/{Path(args.tflm_lib).name}): "
                      f"{t['instructions']:,} instructions per inference, arena {t['arena']:,} B, peak stack "
                      f"{t['stack_engine']:,} B; outputs {'identical' if t['identical'] else 'DIFFERENT'} "
                      f"(rc {t['rc']})")
                print(f"AOT / TFLM: {r['instructions'] / t['instructions']:.3f} of the instructions, "
                      f"{r['arena'] / t['arena']:.3f} of the arena")
                ok &= t["identical"]
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
