"""`nanodet-mcu generate`: rendered projects for every board, both engines and both models, checked file by file."""
from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import FIRMWARE_DIR, __version__, boards, cli, model_info, preprocess
from nanodet_mcu.codegen import c_array, generate
from nanodet_mcu.codegen.tflm_ops import resolver_methods
from nanodet_mcu.errors import NanodetError

# (board, engine, sdk): the RT boards in both MCUXpresso SDK layouts (None = the board's default, the current SDK).
CASES = [("mps2-an500", "aot", None), ("mps2-an500", "tflm", None), ("rt1170", "tflm", None), ("rt1170", "aot", None),
         ("rt1050", "tflm", None), ("rt1050", "aot", None), ("rt1170", "tflm", "classic"), ("rt1050", "aot", "classic")]
_PROJECTS: dict = {}


# Our model is converted once per session (about a minute on a cold cache): its cases are slow.
@pytest.fixture(params=["nxp_model_path", pytest.param("our_model_path", marks=pytest.mark.slow)], ids=["nxp", "ours"],
                scope="module")
def model_path(request) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Generate (board, engine, model, sdk) once per module; returns a function (board, engine, model) -> Project."""
    def make(board: str, engine: str, model: Path, images=(), sdk=None):
        key = (board, engine, str(model), tuple(map(str, images)), sdk)
        if key not in _PROJECTS:
            out = tmp_path_factory.mktemp(f"{board}-{engine}-{sdk}") / "proj"
            warnings: list[str] = []
            p = generate.generate(board, model, engine=engine, out_dir=out, embed_images=images, log=warnings.append,
                                  sdk=sdk)
            _PROJECTS[key] = (p, warnings)
        return _PROJECTS[key]
    return make


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mode & 0o777) for p in sorted(root.iterdir())}


@pytest.mark.parametrize("board,engine,sdk", CASES)
def test_project_contents(project, model_path, board, engine, sdk):
    p, warnings = project(board, engine, model_path, sdk=sdk)
    info = model_info.load(model_path)
    layout = model_info.nanodet_layout(info)
    out = p.out_dir
    manifest = json.loads((out / "project.json").read_text())
    assert manifest["board"] == board and manifest["engine"] == engine
    assert manifest["model_sha256"] == info.sha256
    assert manifest["generated_by"] == f"nanodet-mcu {__version__}"
    assert manifest["arena_bytes"] == p.arena_bytes and manifest["arena_region"] == p.placement.region.name
    b = boards.load(board)
    family = b.family_for(sdk)
    assert manifest["family"] == p.family == family.name and manifest["sdk"] == family.sdk
    default = {"mps2-an500": "gcc-make", "rt1170": "mcuxsdk", "rt1050": "mcuxsdk"}[board]  # the current SDK for RT
    assert family.name == default if sdk is None else family.sdk == sdk
    # The current SDK names the RT1170's target after its core (nanodet_cm7); every other build writes nanodet.elf.
    cm7 = board == "rt1170" and family.name == "mcuxsdk"
    assert manifest["elf"] == ("build/nanodet_cm7.elf" if cm7 else "build/nanodet.elf")
    assert sorted(f.name for f in out.iterdir()) == manifest["files"]

    cfg = (out / "nd_model_config.h").read_text()
    assert f'#define ND_MODEL_SHA256_HEX "{info.sha256}"' in cfg
    assert f'#define ND_ENGINE_NAME "{engine}"' in cfg
    assert f"#define ND_INPUT_ZERO_POINT {generate.c_int(layout.input.zero_point)}\n" in cfg
    assert f"#define ND_INPUT_SCALE_BITS {generate.float_bits(layout.input.scale)}" in cfg
    assert f"#define ND_SCORES_SCALE_BITS {generate.float_bits(layout.scores.scale)}" in cfg
    assert f"#define ND_BOXES_ZERO_POINT {generate.c_int(layout.boxes.zero_point)}\n" in cfg
    assert f"#define ND_ARENA_BYTES {p.arena_bytes}u" in cfg
    bcfg = (out / "nd_board_config.h").read_text()
    assert f'#define ND_BOARD_NAME "{board}"' in bcfg
    assert f"#define ND_CORE_CLOCK_HZ {b.clock_hz}u" in bcfg
    assert f"#define ND_TIMER_UNITS_PER_TICK {b.data['timer']['units_per_tick']}u" in bcfg

    for src in [*(FIRMWARE_DIR / "common").iterdir(), *b.layer_dir.iterdir()]:
        assert (out / src.name).read_bytes() == src.read_bytes(), f"{src.name} not copied verbatim"
    expected = {"aot": {"engine_aot.c", "nd_model.c", "nd_model.h"},
                "tflm": {"engine_tflm.cc", "model_data.c", "model_data.h"}}[engine]
    assert expected <= set(manifest["files"])
    build_files = {"gcc-make": {"Makefile"}, "mcux-armgcc": {"CMakeLists.txt", "nd_linker.cmake"},
                   "mcuxsdk": {"CMakeLists.txt", "nd_linker.cmake", "prj.conf"}}[family.name]
    assert build_files | {"build.sh", "README.md"} <= set(manifest["files"])
    # The TFLM-from-sources Kconfig overlay exists where there is a TFLM to build.
    assert ("tflm_source.conf" in manifest["files"]) == (family.name == "mcuxsdk" and engine == "tflm")
    # The model travels with the project: the README's `verify --model <name>` works from inside it.
    assert (out / model_path.name).read_bytes() == model_path.read_bytes()
    readme = (out / "README.md").read_text()
    assert f"--model {model_path.name}" in readme
    if p.placement.region.external:
        assert p.warning and warnings == [f"nanodet-mcu generate: {p.warning}"]
        assert p.warning in readme
    else:
        assert warnings == [] and "WARNING" not in readme


@pytest.mark.parametrize("sdk", ["mcuxsdk", "classic"])
@pytest.mark.parametrize("board", ["rt1050", "rt1170"])
def test_rt_aot_arena_lands_in_the_enlarged_dtcm(project, model_path, board, sdk):
    p, warnings = project(board, "aot", model_path, sdk=sdk)
    b = boards.load(board)
    assert p.arena_bytes <= 340 * 1024 and p.placement.region.name == "DTCM" and p.warning is None and warnings == []
    assert '#define ND_ARENA_REGION "DTCM"' in (p.out_dir / "nd_model_config.h").read_text()
    linker = (p.out_dir / "nd_linker.cmake").read_text()
    assert "KEEP(*(.nd_arena))\\n    . = ALIGN(16);\\n    __nd_arena_end__ = .;\\n  } > m_data2" in linker
    # nd_ocram is defined only for the model's constants (RT1170: OCRAM1+2; RT1050's FlexRAM OCRAM is too small).
    const_region = json.loads((p.out_dir / "project.json").read_text())["aot"]["const_region"]
    assert ("nd_ocram (RW)" in linker) == (const_region == "OCRAM1+2")
    # The SDK file's FlexRAM regions are resized to the split, each matched by name and ORIGIN (test_generate_build
    # links the result).
    for region, origin, length in b.resized_linker_regions:
        assert f"[ \\t]*{region}[ \\t]+" in linker and f"ORIGIN[ \\t]*=[ \\t]*0x{origin:08X}" in linker
        assert f'"\\\\1{f"0x{length:08X}"}" patched' in linker
    assert "nd_write_linker_file(" in (p.out_dir / "CMakeLists.txt").read_text()
    assert "nd_flexram.c" in json.loads((p.out_dir / "project.json").read_text())["files"]


def test_rt1170_defines_the_ocram_region_when_dtcm_is_too_small(nxp_model_path, tmp_path, monkeypatch):
    data = copy.deepcopy(boards.load("rt1170").data)
    data["flexram"].update(itcm_banks=8, dtcm_banks=8)  # back to the fuse default: 256 KB DTCM
    monkeypatch.setattr(generate.boards, "load", lambda name: boards.Board("rt1170", data))
    p = generate.generate("rt1170", nxp_model_path, engine="aot", out_dir=tmp_path / "o", log=lambda m: None)
    assert p.placement.region.name == "OCRAM1+2" and p.warning is None
    linker = (p.out_dir / "nd_linker.cmake").read_text()
    assert linker.count("nd_ocram (RW) : ORIGIN = 0x20240000, LENGTH = 0x00100000") == 1  # arena's and constants'
    assert "KEEP(*(.nd_arena))\\n    . = ALIGN(16);\\n    __nd_arena_end__ = .;\\n  } > nd_ocram" in linker
    assert "__nd_const_end__ = .;\\n  } > nd_ocram" in linker


@pytest.mark.parametrize("sdk", ["mcuxsdk", "classic"])
@pytest.mark.parametrize("board,code,const_region", [("rt1170", ".nd_itcm_text", "OCRAM1+2"),
                                                     ("rt1050", ".nd_itcm_text", "flash"),
                                                     ("mps2-an500", None, None)])
def test_aot_code_and_constants_placement_follows_the_board(project, model_path, board, code, const_region, sdk):
    """The board's [aot] table, through its [[linker_sections]] in both SDK layouts: the fast kernels' code section,
    the constants in the first candidate section with room (else flash, and the section is left out)."""
    p, _ = project(board, "aot", model_path, sdk=sdk if code else None)
    aot = json.loads((p.out_dir / "project.json").read_text())["aot"]
    assert aot.get("code_section") == code and aot.get("const_region") == const_region
    assert len(p.aot_placement) == (2 if code else 0)
    assert "ND_MODEL_CONST" in (p.out_dir / "nd_model.c").read_text()
    if code is None:
        assert "ND_KERNELS_CODE_SECTION" not in (p.out_dir / "Makefile").read_text()
        return
    linker = (p.out_dir / "nd_linker.cmake").read_text()
    in_ram = const_region != "flash"
    want = " ND_KERNELS_CODE_SECTION=.nd_itcm_text" + (" ND_MODEL_CONST_SECTION=.nd_const" if in_ram else "")
    assert f"set(ND_SECTION_DEFINES{want})\n" in linker
    assert "target_compile_definitions(${MCUX_SDK_PROJECT_NAME} PRIVATE ${ND_SECTION_DEFINES})" in \
        (p.out_dir / "CMakeLists.txt").read_text()
    assert "__nd_itcm_text_end__ = .;\\n  } > m_qacode" in linker
    assert ("__nd_const_end__" in linker) == in_ram and aot["const_section"] == (".nd_const" if in_ram else "")
    copies = "X(nd_itcm_text) X(nd_const)" if in_ram else "X(nd_itcm_text)"
    assert f"#define ND_COPY_SECTIONS(X) {copies}\n" in (p.out_dir / "nd_board_config.h").read_text()


def test_constants_stay_in_flash_when_no_ram_region_has_room():
    from nanodet_mcu.codegen.placement import place_arena, place_constants

    b = boards.load("rt1170")
    mem, section = b.memory, b.linker_section(".nd_const")
    arena = place_arena(900 * 1024, mem, "rt1170")  # too big for DTCM: OCRAM1+2, leaving 124 KiB there
    assert arena.region.name == "OCRAM1+2"
    assert place_constants(100 * 1024, [section], mem, arena).region.name == "OCRAM1+2"
    flash = place_constants(200 * 1024, [section], mem, arena)
    assert flash.region is None and flash.section is None and "in flash (OCRAM1+2 123 KiB free)" in flash.describe()


def test_rt_tflm_arena_falls_back_to_sdram_loudly(project, nxp_model_path):
    for board in ("rt1050", "rt1170"):
        p, warnings = project(board, "tflm", nxp_model_path)
        assert p.placement.region.name == "SDRAM" and p.arena_bytes > 1_000_000
        assert warnings == [f"nanodet-mcu generate: {p.warning}"] and "does not fit in on-chip RAM" in p.warning
        aot = generate.aot_arena_bytes(model_info.load(nxp_model_path))
        assert aot <= 340 * 1024
        assert f"--engine aot would need {aot:,} bytes ({aot / 1024:.1f} KiB) of arena, placed in DTCM (on chip)" \
            in p.warning
        assert "nd_ocram (RW)" not in (p.out_dir / "nd_linker.cmake").read_text()


def _header_defines(text: str) -> dict[str, int]:
    return {name: int(value.rstrip("u"), 0)
            for name, value in re.findall(r"#define (ND_FLEXRAM_\w+) (0x[0-9A-Fa-f]+u|\d+u)", text)}


@pytest.mark.parametrize("board", ["rt1050", "rt1170", "mps2-an500"])
def test_board_config_carries_the_flexram_split(project, nxp_model_path, board):
    p, _ = project(board, "aot", nxp_model_path)
    d = _header_defines((p.out_dir / "nd_board_config.h").read_text())
    f = boards.load(board).flexram
    if f is None:
        assert d == {}
        return
    # Rebuild the 16 two-bit bank fields from the register words as the hardware reads them and count the kinds.
    if "ND_FLEXRAM_GPR18" in d:  # RT1170: banks 0-7 in GPR17[15:0], 8-15 in GPR18[15:0]
        assert d["ND_FLEXRAM_GPR17"] <= 0xFFFF and d["ND_FLEXRAM_GPR18"] <= 0xFFFF
        word = d["ND_FLEXRAM_GPR17"] | d["ND_FLEXRAM_GPR18"] << 16
    else:  # RT1050: all 16 banks in GPR17
        word = d["ND_FLEXRAM_GPR17"]
    assert word == d["ND_FLEXRAM_BANK_CFG"]
    fields = [(word >> (2 * bank)) & 3 for bank in range(16)]
    counts = {kind: fields.count(code) for kind, code in (("ocram", 1), ("dtcm", 2), ("itcm", 3))}
    assert counts == {"itcm": f.itcm_banks, "dtcm": f.dtcm_banks, "ocram": f.ocram_banks}
    assert sum(counts.values()) == 16 and 0 not in fields  # no bank left unused
    dtcm = next(r for r in p.placement.skipped + (p.placement.region,) if r.name == "DTCM")
    assert d["ND_FLEXRAM_DTCM_BYTES"] == dtcm.size == counts["dtcm"] * 32 * 1024
    assert d["ND_FLEXRAM_ITCM_BYTES"] == counts["itcm"] * 32 * 1024
    assert d["ND_FLEXRAM_DTCM_ADDRESS"] == 0x20000000
    if board == "rt1050":
        assert (d["ND_FLEXRAM_BANK_CFG"], counts) == (0xFAAAAAA5, {"itcm": 2, "dtcm": 12, "ocram": 2})
        # GPR14 windows: 2^(code-1) KB, the smallest power of two holding the banks (384 KB DTCM -> 512 KB).
        assert (d["ND_FLEXRAM_GPR14_ITCM_SZ"], d["ND_FLEXRAM_GPR14_DTCM_SZ"]) == (7, 10)
    else:
        assert (d["ND_FLEXRAM_GPR17"], d["ND_FLEXRAM_GPR18"]) == (0xAAAA, 0xFAAA)
        assert "ND_FLEXRAM_GPR14_DTCM_SZ" not in d  # the RT1170 has no GPR14 TCM size fields


@pytest.mark.parametrize("sdk", ["mcuxsdk", "classic"])
def test_rt_uart_carries_only_the_protocol(project, nxp_model_path, sdk):
    p, _ = project("rt1170", "tflm", nxp_model_path, sdk=sdk)
    cmake = (p.out_dir / "CMakeLists.txt").read_text()
    assert "SDK_DEBUGCONSOLE_UART" not in cmake  # it would send stdio (printf, TFLM logs) over the link
    assert "ND_TFLM_DEBUG_LOG_SINK" in cmake and "option(ND_TFLM_PREBUILT" in cmake
    assert "#if defined(ND_TFLM_DEBUG_LOG_SINK)" in (p.out_dir / "engine_tflm.cc").read_text()
    if sdk == "mcuxsdk":  # the SDK's DebugLog prints on the debug console (LPUART1): turned off, both ways of TFLM
        for conf in ("prj.conf", "tflm_source.conf"):
            assert "CONFIG_MCUX_COMPONENT_middleware.eiq.tensorflow_lite_micro.debug_log=n\n" in (
                p.out_dir / conf).read_text()


def test_mcuxsdk_project_selects_through_kconfig(project, nxp_model_path):
    """What the current SDK builds comes from prj.conf: the board file's lines, no app.h/hardware_init.c, the LPUART
    driver, TFLM only for the tflm engine (prebuilt; sources through the overlay, which the CMake option adds)."""
    tflm, _ = project("rt1050", "tflm", nxp_model_path)
    aot, _ = project("rt1050", "aot", nxp_model_path)
    kconfig = boards.load("rt1050").data["mcuxsdk"]["kconfig"]
    for p in (tflm, aot):
        conf = (p.out_dir / "prj.conf").read_text().splitlines()
        assert set(kconfig) <= set(conf)
        assert {"CONFIG_MCUX_HAS_PRJSEG_project.use_hw_app=n", "CONFIG_MCUX_COMPONENT_driver.lpuart=y"} <= set(conf)
    prebuilt = "CONFIG_MCUX_COMPONENT_middleware.eiq.tensorflow_lite_micro.binary=y"
    assert prebuilt in (tflm.out_dir / "prj.conf").read_text()
    assert "tensorflow_lite_micro" not in (aot.out_dir / "prj.conf").read_text()
    source = (tflm.out_dir / "tflm_source.conf").read_text()
    assert ".tensorflow_lite_micro.source=y" in source and ".tensorflow_lite_micro.cmsis_nn=y" in source
    assert '"${CONF_FILE} ${CMAKE_CURRENT_LIST_DIR}/tflm_source.conf"' in (tflm.out_dir / "CMakeLists.txt").read_text()


def test_sdk_choice_is_checked(nxp_model_path, tmp_path):
    with pytest.raises(NanodetError, match="mps2-an500 builds without an MCUXpresso SDK"):
        generate.generate("mps2-an500", nxp_model_path, out_dir=tmp_path / "a", sdk="classic")
    with pytest.raises(NanodetError, match="--sdk must be one of mcuxsdk, classic"):
        generate.generate("rt1050", nxp_model_path, out_dir=tmp_path / "b", sdk="zephyr")
    assert not list(tmp_path.iterdir())


def test_float_bits_and_ints():
    assert generate.c_int(-14) == "(-14)" and generate.c_int(18) == "18"
    assert generate.float_bits(1.0) == "0x3f800000u"
    assert generate.float_bits(1 / 256) == "0x3b800000u"


def test_input_lut_is_the_preprocess_table(project, nxp_model_path):
    p, _ = project("mps2-an500", "aot", nxp_model_path)
    layout = model_info.nanodet_layout(model_info.load(nxp_model_path))
    text = (p.out_dir / "nd_model_config.c").read_text()
    body = text[text.index("nd_input_lut[3][256] = {"):text.index("};")]
    values = [int(v) for v in re.findall(r"-?\d+", re.sub(r"/\*.*?\*/", "", body.split("=", 1)[1]))]
    expected = preprocess.input_lut(layout.input.scale, layout.input.zero_point)
    assert np.array_equal(np.array(values, np.int8).reshape(3, 256), expected)
    assert "const nd_post_params_t nd_post_params = {" in text


@pytest.mark.parametrize("board", ["rt1170", "mps2-an500"])
def test_model_data_round_trips(project, model_path, board):
    p, _ = project(board, "tflm", model_path)
    data = Path(model_path).read_bytes()
    text = (p.out_dir / "model_data.c").read_text()
    assert c_array.parse_hex_bytes(text) == data
    assert f"nd_model_data[{len(data)}]" in text and f"nd_model_data_len = {len(data)}u" in text
    assert "ND_ALIGN16 const uint8_t nd_model_data" in text


def test_op_resolver_has_exactly_the_models_ops(project, model_path):
    p, _ = project("rt1170", "tflm", model_path)
    info = model_info.load(model_path)
    text = (p.out_dir / "engine_tflm.cc").read_text()
    expected = resolver_methods(info.ops)
    # One registration per op, in order, each commented with its op; TRANSPOSE goes through add_transpose (the
    # reference kernel where the resolver takes a registration), every other op through its AddXxx() method.
    ops = re.findall(r"!= kTfLiteOk\) \{  // ([A-Z0-9_]+)", text)
    assert ops == [op for op, _ in expected]
    methods = re.findall(r"if \(resolver->(Add\w+)\(\) != kTfLiteOk\)", text)
    assert methods == [m for op, m in expected if op != "TRANSPOSE"]
    assert text.count("if (add_transpose(resolver, 0) != kTfLiteOk)") == ("TRANSPOSE" in ops)
    assert len(set(ops)) == len(set(info.ops)) == len(ops)
    assert f"constexpr int kNumOps = {len(set(info.ops))};" in text


def test_unknown_op_is_refused_by_name():
    with pytest.raises(NanodetError, match="FANCY_OP"):
        resolver_methods(["CONV_2D", "FANCY_OP", "ADD"])
    assert resolver_methods(["PAD", "ADD", "PAD"]) == [("ADD", "AddAdd"), ("PAD", "AddPad")]


def test_nxp_model_ops_all_have_resolver_methods(nxp_model_path):
    ops = {op for op, _ in resolver_methods(model_info.load(nxp_model_path).ops)}
    assert ops == {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D",
                   "PAD", "RESHAPE", "RESIZE_BILINEAR", "SLICE", "SPLIT", "TRANSPOSE"}


def test_rendering_is_deterministic(nxp_model_path, example_image, tmp_path):
    trees = []
    for i in range(2):
        out = tmp_path / f"p{i}"
        generate.generate("mps2-an500", nxp_model_path, out_dir=out, embed_images=[example_image], log=lambda m: None)
        trees.append(_tree(out))
    assert trees[0] == trees[1]
    # Regenerating over our own project needs no --force and gives the same bytes again.
    generate.generate("mps2-an500", nxp_model_path, out_dir=tmp_path / "p0", embed_images=[example_image],
                      log=lambda m: None)
    assert _tree(tmp_path / "p0") == trees[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary directories left behind"


def test_embedded_images(project, nxp_model_path, example_image):
    p, _ = project("mps2-an500", "aot", nxp_model_path, images=(example_image,))
    text = (p.out_dir / "nd_images.c").read_text()
    assert "#define ND_NUM_IMAGES 1" in (p.out_dir / "nd_images.h").read_text()
    rgb = preprocess.resize_rgb(preprocess.load_rgb(example_image))
    body = text[text.index("nd_image_0["):]
    assert c_array.parse_hex_bytes(body[:body.index("};") + 2]) == rgb.tobytes()
    assert f'"{example_image.name}"' in text
    assert p.flash_bytes["images"] == 320 * 320 * 3


def test_no_images_renders_null_tables(project, nxp_model_path):
    p, _ = project("mps2-an500", "aot", nxp_model_path)
    assert "#define ND_NUM_IMAGES 0" in (p.out_dir / "nd_images.h").read_text()
    assert "nd_images[] = {NULL}" in (p.out_dir / "nd_images.c").read_text()


def test_foreign_directory_is_refused_without_force(nxp_model_path, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(NanodetError, match="not made by nanodet-mcu generate.*--force"):
        generate.generate("mps2-an500", nxp_model_path, out_dir=out, log=lambda m: None)
    assert (out / "notes.txt").read_text() == "keep me"
    generate.generate("mps2-an500", nxp_model_path, out_dir=out, force=True, log=lambda m: None)
    assert not (out / "notes.txt").exists() and (out / "project.json").exists()


def test_failure_leaves_nothing_behind(nxp_model_path, tmp_path, monkeypatch):
    def broken(info, tmp, *options):
        (tmp / "nd_model.c").write_text("half")
        raise NanodetError("emitter broke")
    monkeypatch.setitem(generate.ENGINES, "aot", broken)
    with pytest.raises(NanodetError, match="emitter broke"):
        generate.generate("mps2-an500", nxp_model_path, out_dir=tmp_path / "out", log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_non_nanodet_model_is_refused_with_the_reason(nxp_model_path, tmp_path, monkeypatch):
    info = model_info.load(nxp_model_path)
    wrong = dataclasses.replace(info.outputs[0], shape=(1, 10, 10, 81))
    monkeypatch.setattr(generate.model_info, "load", lambda path: dataclasses.replace(info, outputs=[wrong,
                                                                                                     info.outputs[1]]))
    with pytest.raises(NanodetError, match="not an int8 NanoDet stride-32 model: output shapes"):
        generate.generate("rt1170", nxp_model_path, out_dir=tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_flash_overflow_is_refused(nxp_model_path, example_image, tmp_path, monkeypatch):
    data = dict(boards.load("mps2-an500").data, flash={"name": "tiny flash", "size": 1_000_000})
    monkeypatch.setattr(generate.boards, "load", lambda name: boards.Board("mps2-an500", data))
    second = tmp_path / "second.jpg"
    second.write_bytes(example_image.read_bytes())
    with pytest.raises(NanodetError, match="more than the 1000000 bytes of tiny flash"):
        generate.generate("mps2-an500", nxp_model_path, out_dir=tmp_path / "o", embed_images=[example_image, second],
                          log=lambda m: None)
    assert [p.name for p in tmp_path.iterdir()] == ["second.jpg"]


def test_engine_must_be_supported_by_the_board(nxp_model_path, tmp_path, monkeypatch):
    data = dict(boards.load("rt1050").data, engines=["tflm"])
    monkeypatch.setattr(generate.boards, "load", lambda name: boards.Board("rt1050", data))
    with pytest.raises(NanodetError, match="supports engines tflm, not 'aot'"):
        generate.generate("rt1050", nxp_model_path, engine="aot", out_dir=tmp_path / "o", log=lambda m: None)


def test_cli(nxp_model_path, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["generate", "--board", "rt1050", "--model", str(nxp_model_path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "rt1050 project, tflm engine" in captured.out and "SDRAM" in captured.out
    assert "WARNING" in captured.err and "SDRAM" in captured.err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("x")
    assert cli.main(["generate", "--board", "rt1050", "--model", str(nxp_model_path),
                     "--out", str(tmp_path / "foreign")]) == 1
    assert "--force" in capsys.readouterr().err


def test_default_out_dir():
    assert generate.default_out_dir("rt1170", "tflm") == Path("build/rt1170-tflm")


def test_current_directory_is_never_replaced(nxp_model_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").write_text("x")
    with pytest.raises(NanodetError, match="current directory"):
        generate.generate("mps2-an500", nxp_model_path, out_dir=".", force=True, log=lambda m: None)
    assert (tmp_path / "keep").exists()


def test_user_supplied_tflm_becomes_the_makefile_default(nxp_model_path, tmp_path):
    inc, lib = tmp_path / "tflm", tmp_path / "libtflm.a"
    inc.mkdir()
    lib.write_bytes(b"!<arch>\n")
    out = tmp_path / "p"
    generate.generate("mps2-an500", nxp_model_path, engine="tflm", out_dir=out, tflm_include=[inc], tflm_lib=lib)
    makefile = (out / "Makefile").read_text()
    assert f"TFLM_INCLUDE ?= {inc.resolve()}\n" in makefile and f"TFLM_LIB ?= {lib.resolve()}\n" in makefile


def test_tflm_include_accepts_both_spellings():
    argv = ["generate", "--board", "mps2-an500", "--model", "m.tflite", "--tflm-include", "A", "B",
            "--tflm-include", "C", "--tflm-include", "D"]
    assert cli._parser("generate").parse_args(argv).tflm_include == ["A", "B", "C", "D"]


@pytest.mark.parametrize("board, engine, include, lib, message", [
    ("mps2-an500", "aot", ["."], None, "tflm engine only"),
    ("rt1170", "tflm", ["."], None, "from the MCUXpresso SDK"),
    ("mps2-an500", "tflm", ["/nonexistent/tflm"], None, "not a directory"),
    ("mps2-an500", "tflm", [], "/nonexistent/libtflm.a", "no such file"),
])
def test_user_supplied_tflm_is_checked(nxp_model_path, tmp_path, board, engine, include, lib, message):
    with pytest.raises(NanodetError, match=message):
        generate.generate(board, nxp_model_path, engine=engine, out_dir=tmp_path / "p", tflm_include=include,
                          tflm_lib=lib)
    assert not (tmp_path / "p").exists()
