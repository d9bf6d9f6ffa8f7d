"""Generated projects compile: every file that needs neither the SDK nor TFLM is cross-compiled for Cortex-M7 (and
for the host); the mps2-an500 AOT project links with its own Makefile.  Full RT builds run when MCUX_SDK_ROOT names
an MCUXpresso SDK, full TFLM builds for mps2-an500 when TFLM_INCLUDE and TFLM_LIB name a TFLM; otherwise they skip.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nanodet_mcu import FIRMWARE_DIR, boards
from nanodet_mcu.codegen import generate
from tests.conftest import cortex_m7_flags, require_sdk_root, require_tool

CM7 = cortex_m7_flags()
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic-errors"]
NEEDS_SDK = {"nd_board_imxrt.c", "nd_flexram.c"}  # the RT board layer is SDK code; it builds in the full RT builds


@pytest.fixture(scope="module")
def projects(tmp_path_factory, nxp_model_path):
    made = {}

    def get(board, engine):
        if (board, engine) not in made:
            out = tmp_path_factory.mktemp(f"b-{board}-{engine}") / "proj"
            made[board, engine] = generate.generate(board, nxp_model_path, engine=engine, out_dir=out,
                                                    log=lambda m: None)
        return made[board, engine]
    return get


def _run(cmd, cwd=None, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


GENERATED_HEADERS = ("nd_model_config.h", "nd_board_config.h", "nd_images.h", "model_data.h", "nd_model.h")


def _standalone_c(out: Path) -> list[Path]:
    """C files that are generated or include a generated header (the rest are other modules' and tested there)."""
    generated = set(json.loads((out / "project.json").read_text())["files"]) - {
        p.name for p in (FIRMWARE_DIR / "common").iterdir()}
    return [p for p in sorted(out.glob("*.c")) if p.name not in NEEDS_SDK and (
        p.name in generated or any(f'"{h}"' in p.read_text() for h in GENERATED_HEADERS))]


@pytest.mark.parametrize("board,engine", [("rt1170", "tflm"), ("rt1170", "aot"), ("rt1050", "aot"),
                                          ("mps2-an500", "tflm")])
def test_generated_c_cross_compiles_for_cortex_m7(projects, board, engine, tmp_path):
    cc = require_tool("arm-none-eabi-gcc")
    out = projects(board, engine).out_dir
    for src in _standalone_c(out):
        if src.name == "nd_model.c":
            continue  # the AOT engineer's tests cross-compile it; it is the slowest file by far
        _run([cc, *CM7, *WARN, "-I", str(out), "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))])


def test_generated_c_compiles_on_the_host(projects, tmp_path):
    cc = require_tool(os.environ.get("CC", "cc"))
    out = projects("rt1170", "tflm").out_dir
    for name in ("nd_model_config.c", "nd_images.c", "model_data.c"):
        _run([cc, *WARN, "-I", str(out), "-c", str(out / name), "-o", str(tmp_path / "x.o")])
    aot = projects("rt1170", "aot").out_dir
    _run([cc, *WARN, "-I", str(aot), "-c", str(aot / "engine_aot.c"), "-o", str(tmp_path / "y.o")])


def test_mps2_aot_project_links(projects):
    require_tool("arm-none-eabi-gcc")
    require_tool("make")
    p = projects("mps2-an500", "aot")
    _run(["./build.sh"], cwd=p.out_dir)
    elf = p.out_dir / "build/nanodet.elf"
    assert elf.is_file()
    syms = _run(["arm-none-eabi-nm", str(elf)]).stdout
    arena = next(int(line.split()[0], 16) for line in syms.splitlines() if line.endswith(" nd_arena"))
    assert arena >= 0x20000000 and arena % 16 == 0 and arena + p.arena_bytes <= 0x20400000


@pytest.mark.slow
@pytest.mark.parametrize("board,engine", [("rt1050", "aot"), ("rt1170", "aot"), ("rt1050", "tflm"),
                                          ("rt1170", "tflm")])
def test_rt_project_builds_with_the_sdk(projects, board, engine):
    root = require_sdk_root()
    p = projects(board, engine)
    # The SDK's prebuilt libtflm.a keeps this test in minutes; ND_TFLM_PREBUILT=OFF in the environment compiles
    # TFLM from the SDK's sources instead.
    env = dict(os.environ, MCUX_SDK_ROOT=str(root))
    env.setdefault("ND_TFLM_PREBUILT", "ON")
    proc = subprocess.run(["./build.sh"], cwd=p.out_dir, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    elf = p.out_dir / "build/nanodet.elf"
    sections = _run(["arm-none-eabi-readelf", "-S", str(elf)]).stdout
    line = next(s for s in sections.splitlines() if ".nd_arena" in s)
    address = int(line.split("NOBITS")[1].split()[0], 16)
    region = p.placement.region
    assert region.address <= address < region.address + region.size
    symbols = _symbols(elf)
    if engine == "aot":  # the arena symbol itself, whole, inside the region (DTCM: 0x2000xxxx)
        arena = symbols["nd_arena"][0]
        assert region.address <= arena and arena + p.arena_bytes <= region.address + region.size
    # Our SystemInitHook (nd_flexram.c) replaced the SDK's weak empty one, so the split is applied; the map names the
    # object that supplied the linked copy (-z muldefs would hide a second strong definition).
    hook = symbols["SystemInitHook"]
    assert hook[1] == "T"
    linked = re.search(rf"\.text\.SystemInitHook\s+0x0*{hook[0]:x}\s+0x[0-9a-f]+ (\S+)",
                       (p.out_dir / "build/nanodet.map").read_text())
    assert linked and linked.group(1).endswith("nd_flexram.c.obj"), linked


def _symbols(elf: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for line in _run(["arm-none-eabi-nm", str(elf)]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = (int(parts[0], 16), parts[1])
    return out


@pytest.mark.parametrize("board", ["rt1050", "rt1170"])
def test_flexram_file_compiles_against_the_sdk_device_headers(projects, board, tmp_path):
    """nd_flexram.c with only the SDK's device and CMSIS headers (seconds; the RT1170 full build is not needed)."""
    root = require_sdk_root()
    core = root / "core" if (root / "core" / "devices").is_dir() else root
    sdk = projects(board, "aot").out_dir
    data = boards.load(board).data["sdk"]
    system = ["-isystem", str(core / "devices" / data["device"]), "-isystem", str(core / "CMSIS" / "Core" / "Include")]
    obj = tmp_path / "nd_flexram.o"
    _run(["arm-none-eabi-gcc", *CM7, *WARN, f"-D{data['cpu_define']}", "-I", str(sdk), *system, "-c",
          str(sdk / "nd_flexram.c"), "-o", str(obj)])
    symbols = _run(["arm-none-eabi-nm", str(obj)]).stdout
    assert " T SystemInitHook" in symbols and " T nd_flexram_fit_mpu" in symbols


def test_tflm_glue_compiles_against_tflm_headers(projects, tmp_path):
    include = os.environ.get("TFLM_INCLUDE", "").split()
    if not include:
        pytest.skip("TFLM_INCLUDE not set (tflite-micro root, its flatbuffers/include and gemmlowp): "
                    "engine_tflm.cc needs the TFLM headers")
    cxx = require_tool("arm-none-eabi-g++")
    out = projects("rt1170", "tflm").out_dir
    system = [arg for d in include for arg in ("-isystem", d)]
    _run([cxx, *CM7, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fno-rtti", "-fno-exceptions",
          "-DTF_LITE_STATIC_MEMORY", "-I", str(out), *system, "-c", str(out / "engine_tflm.cc"),
          "-o", str(tmp_path / "engine_tflm.o")])
    # A TFLM built with BUILD_TYPE=release defines no logging functions: the glue must not need any.
    undefined = _run(["arm-none-eabi-nm", "-C", "-u", str(tmp_path / "engine_tflm.o")]).stdout
    assert "MicroPrintf" not in undefined, undefined


def test_build_script_names_what_it_needs(projects):
    rt = (projects("rt1170", "tflm").out_dir / "build.sh").read_text()
    assert "MCUX_SDK_ROOT" in rt and "armgcc.cmake" in rt and "flexspi_nor_sdram_release" in rt
    qemu = projects("mps2-an500", "tflm").out_dir
    assert "TFLM_INCLUDE" in (qemu / "Makefile").read_text() and "TFLM_LIB" in (qemu / "README.md").read_text()
    assert shutil.which("sh") and os.access(qemu / "build.sh", os.X_OK)
