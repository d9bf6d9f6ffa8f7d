"""Generated projects compile: every file that needs neither the SDK nor TFLM is cross-compiled for Cortex-M7 (and
for the host); the mps2-an500 AOT project links with its own Makefile; the linker file the mcux projects write from
the SDK's is checked on a stand-in with the real linker.  Full RT builds run when MCUX_SDK_ROOT names an MCUXpresso
SDK (the project is generated for the layout the tree holds: the current west mcuxsdk one or the classic one), full
TFLM builds for mps2-an500 when TFLM_INCLUDE and TFLM_LIB name a TFLM; otherwise they skip.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nanodet_mcu import FIRMWARE_DIR, boards
from nanodet_mcu.codegen import generate
from tests.conftest import cortex_m7_flags, require_sdk, require_tool
from tests.rt_builds import build_with_the_sdk, check_rt_image, link_map

CM7 = cortex_m7_flags()
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic-errors"]
NEEDS_SDK = {"nd_board_imxrt.c", "nd_flexram.c"}  # the RT board layer is SDK code; it builds in the full RT builds


@pytest.fixture(scope="module")
def projects(tmp_path_factory, nxp_model_path):
    made = {}

    def get(board, engine, sdk=None):
        if (board, engine, sdk) not in made:
            out = tmp_path_factory.mktemp(f"b-{board}-{engine}-{sdk}") / "proj"
            made[board, engine, sdk] = generate.generate(board, nxp_model_path, engine=engine, out_dir=out,
                                                         log=lambda m: None, sdk=sdk)
        return made[board, engine, sdk]
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
    tree = require_sdk()
    p = projects(board, engine, tree.sdk)
    # The SDK's prebuilt libtflm.a keeps this test in minutes; test_external_builds.py compiles TFLM from the SDK's
    # sources.
    elf, _ = build_with_the_sdk(p, tree, prebuilt="ON")
    found = check_rt_image(p, elf)
    if engine == "tflm" and tree.sdk == "mcuxsdk":
        # The glue's silent DebugLog, not the SDK's, which would print on the UART that carries the protocol.
        assert "DebugLog" in found
        assert re.search(r"\.text\.DebugLog\s+0x[0-9a-f]+\s+0x[0-9a-f]+ \S*engine_tflm\.cc\.obj", link_map(p))


@pytest.mark.parametrize("board", ["rt1050", "rt1170"])
def test_flexram_file_compiles_against_the_sdk_device_headers(projects, board, tmp_path):
    """nd_flexram.c with only the SDK's device and CMSIS headers (seconds; the RT1170 full build is not needed)."""
    tree = require_sdk(tools=False)
    p = projects(board, "aot", tree.sdk)
    data = boards.load(board).sdk_table(p.family)
    if tree.sdk == "mcuxsdk":
        device = tree.root / data["device_dir"]
        system = [device, device.parent / "periph", tree.root / "arch/arm/CMSIS/Core/Include"]
    else:
        core = tree.root / "core" if (tree.root / "core" / "devices").is_dir() else tree.root
        system = [core / "devices" / data["device"], core / "CMSIS" / "Core" / "Include"]
    obj = tmp_path / "nd_flexram.o"
    _run(["arm-none-eabi-gcc", *CM7, *WARN, f"-D{data['cpu_define']}", "-I", str(p.out_dir),
          *[arg for d in system for arg in ("-isystem", str(d))], "-c", str(p.out_dir / "nd_flexram.c"), "-o",
          str(obj)])
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


@pytest.mark.parametrize("sdk", ["mcuxsdk", "classic"])
def test_build_script_names_what_it_needs(projects, sdk):
    rt = (projects("rt1170", "tflm", sdk).out_dir / "build.sh").read_text()
    assert "MCUX_SDK_ROOT" in rt and "flexspi_nor_sdram_release" in rt
    if sdk == "classic":
        assert "armgcc.cmake" in rt
    else:
        assert "cmake/extension/mcux.cmake" in rt and "-Dboard=evkbmimxrt1170 -Dcore_id=cm7" in rt
        assert "-G Ninja" in rt and 'ND_TFLM_PREBUILT:-ON' in rt
    qemu = projects("mps2-an500", "tflm").out_dir
    assert "TFLM_INCLUDE" in (qemu / "Makefile").read_text() and "TFLM_LIB" in (qemu / "README.md").read_text()
    assert shutil.which("sh") and os.access(qemu / "build.sh", os.X_OK)


# A stand-in for an MCUXpresso device linker file (flexspi_nor_sdram kind): the names and structure nd_linker.cmake
# relies on (MEMORY regions, the load images chained from __DATA_ROM to __DATA_END, text_end, .bss), nothing more.
SDK_LIKE_LD = """ENTRY(Reset_Handler)
STACK_SIZE = DEFINED(__stack_size__) ? __stack_size__ : 0x0400;

MEMORY
{
  m_interrupts          (RX)  : ORIGIN = 0x30002000, LENGTH = 0x00000400
  m_text                (RX)  : ORIGIN = 0x30002400, LENGTH = 0x00FBDC00
  m_qacode              (RX)  : ORIGIN = 0x00000000, LENGTH = 0x00040000
  m_data                (RW)  : ORIGIN = 0x80000000, LENGTH = 0x03000000
  m_data2               (RW)  : ORIGIN = 0x20000000, LENGTH = 0x00040000
  m_data3               (RW)  : ORIGIN = 0x202C0000, LENGTH = 0x00080000
}

SECTIONS
{
  .interrupts :
  {
    KEEP(*(.isr_vector))
  } > m_interrupts

  .text :
  {
    *(.text*)
    *(.rodata*)
  } > m_text

  __etext = .;
  __DATA_ROM = .;

  .data : AT(__DATA_ROM)
  {
    __data_start__ = .;
    *(.data*)
    . = ALIGN(4);
    __data_end__ = .;
  } > m_data

  __ram_function_flash_start = __DATA_ROM + (__data_end__ - __data_start__);

  .ram_function : AT(__ram_function_flash_start)
  {
    __ram_function_start__ = .;
    *(CodeQuickAccess)
    . = ALIGN(4);
    __ram_function_end__ = .;
  } > m_qacode

  __DATA_END = __ram_function_flash_start + (__ram_function_end__ - __ram_function_start__);
  text_end = ORIGIN(m_text) + LENGTH(m_text);
  ASSERT(__DATA_END <= text_end, "region m_text overflowed with text and data")

  .qadata :
  {
    *(DataQuickAccess)
  } > m_data2

  .bss :
  {
    __bss_start__ = .;
    *(.bss*)
    *(COMMON)
    __bss_end__ = .;
  } > m_data

  .stack :
  {
    . = ALIGN(8);
    . += STACK_SIZE;
  } > m_data

  .ARM.attributes 0 : { *(.ARM.attributes) }
}
"""

LINKER_HOOK_PROGRAM = r"""
#include <stdint.h>
__attribute__((section(".nd_arena"), aligned(16))) uint8_t nd_arena[4096];
__attribute__((section(".nd_itcm_text"), noinline)) int nd_fast(int x) { return 3 * x; }
__attribute__((section(".nd_const"))) const int32_t nd_table[4] = {1, 2, 3, 4};
int data_word = 5;
__attribute__((section("DataQuickAccess"))) int quick_word;
int bss_word;
void Reset_Handler(void)
{
    bss_word = nd_fast(nd_table[1] + data_word + quick_word + nd_arena[7]);
    for (;;) {
    }
}
__attribute__((section(".isr_vector"), used)) void (*const vectors[2])(void) = {0, Reset_Handler};
"""


@pytest.mark.parametrize("sdk", ["mcuxsdk", "classic"])
def test_linker_hook_places_board_file_sections(nxp_model_path, tmp_path, monkeypatch, sdk):
    """nd_linker.cmake on a stand-in SDK linker file, linked for real: the FlexRAM regions resized, the arena and the
    board file's extra sections (i15's ITCM code / OCRAM data) where the data says, copied ones with a flash image
    after the SDK's (__DATA_END), chained, and the symbols the board layer copies them with."""
    cmake, gcc = require_tool("cmake"), require_tool("arm-none-eabi-gcc")
    data = copy.deepcopy(boards.load("rt1170").data)  # its own .nd_itcm_text (ITCM) and .nd_const (OCRAM1+2)
    assert [(x["name"], x["region"]) for x in data["linker_sections"]] == [(".nd_itcm_text", "m_qacode"),
                                                                           (".nd_const", "nd_ocram")]
    data["linker_sections"].append({"name": ".nd_scratch", "inputs": [".nd_scratch*"], "region": "m_data2",
                                    "load": "noload"})
    boards.validate(data, "test")
    monkeypatch.setattr(generate.boards, "load", lambda name: boards.Board("rt1170", data))
    out = tmp_path / "p"
    generate.generate("rt1170", nxp_model_path, engine="aot", out_dir=out, log=lambda m: None, sdk=sdk)
    assert ("#define ND_COPY_SECTIONS(X) X(nd_itcm_text) X(nd_const)\n"
            in (out / "nd_board_config.h").read_text())
    (tmp_path / "sdk.ld").write_text(SDK_LIKE_LD)
    _run([cmake, f"-DND_LD_IN={tmp_path / 'sdk.ld'}", f"-DND_LD_OUT={tmp_path / 'nd.ld'}", "-P",
          str(out / "nd_linker.cmake")])
    ld = (tmp_path / "nd.ld").read_text()
    assert "m_qacode              (RX)  : ORIGIN = 0x00000000, LENGTH = 0x00010000" in ld  # ITCM 2 banks
    assert "m_data2               (RW)  : ORIGIN = 0x20000000, LENGTH = 0x00070000" in ld  # DTCM 14 banks
    assert "nd_ocram (RW) : ORIGIN = 0x20240000, LENGTH = 0x00100000" in ld  # [[memory]] OCRAM1+2, define_region
    (tmp_path / "t.c").write_text(LINKER_HOOK_PROGRAM)
    elf = tmp_path / "t.elf"
    _run([gcc, *CM7, "-nostartfiles", "-nostdlib", "-Wl,--fatal-warnings", "-Wl,--no-warn-rwx-segments", "-T",
          str(tmp_path / "nd.ld"), str(tmp_path / "t.c"), "-o", str(elf)])
    sym = {name: value for value, _, name in (ln.split() for ln in _run(["arm-none-eabi-nm", str(elf)]).stdout
                                              .splitlines() if len(ln.split()) == 3)}
    addr = {k: int(v, 16) for k, v in sym.items()}
    heads = {}
    for line in _run(["arm-none-eabi-objdump", "-h", str(elf)]).stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0].isdigit():
            heads[f[1]] = {"size": int(f[2], 16), "vma": int(f[3], 16), "lma": int(f[4], 16)}
    assert 0x20000000 <= addr["nd_arena"] < 0x20070000 and addr["nd_arena"] == addr["__nd_arena_start__"]
    assert 0x20000000 <= addr["__nd_scratch_start__"] < 0x20070000
    itcm, ocram = heads[".nd_itcm_text"], heads[".nd_const"]
    assert itcm["vma"] == addr["__nd_itcm_text_start__"] and addr["nd_fast"] - itcm["vma"] < itcm["size"]
    assert addr["__nd_itcm_text_end__"] <= 0x10000
    assert ocram["vma"] == addr["__nd_const_start__"] == 0x20240000 and addr["nd_table"] == 0x20240000
    # Flash images: after the SDK's own load images, one after the other, inside m_text.
    assert itcm["lma"] == addr["__nd_itcm_text_load__"] >= addr["__DATA_END"]
    assert ocram["lma"] == addr["__nd_const_load__"] == itcm["lma"] + itcm["size"]
    assert itcm["lma"] >= 0x30002400 and ocram["lma"] + ocram["size"] <= 0x30002400 + 0x00FBDC00  # m_text
    _run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".nd_const", str(elf), str(tmp_path / "ocram.bin")])
    assert (tmp_path / "ocram.bin").read_bytes() == b"".join(v.to_bytes(4, "little") for v in (1, 2, 3, 4))
    # The engine filter: a tflm project has neither AOT section (and no section defines).
    out_tflm = tmp_path / "q"
    generate.generate("rt1170", nxp_model_path, engine="tflm", out_dir=out_tflm, log=lambda m: None, sdk=sdk)
    assert "ND_COPY_SECTIONS" not in (out_tflm / "nd_board_config.h").read_text()
    tflm_linker = (out_tflm / "nd_linker.cmake").read_text()
    assert ".nd_const" not in tflm_linker and ".nd_itcm_text" not in tflm_linker
    assert "set(ND_SECTION_DEFINES)\n" in tflm_linker
