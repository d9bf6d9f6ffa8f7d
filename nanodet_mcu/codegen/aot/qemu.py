"""The emitted C on the emulated Cortex-M7: an ELF of nd_model.c, the kernels (with their Cortex-M7 assembly), the
mps2-an500 board layer and a caller's main(), run on QEMU with `-icount shift=0` (one emulated instruction per
tick of the instruction counter, so instruction counts are exact).

Shared by benchmarks/bench_aot_qemu.py and the kernel gates in tests/test_aot.py; the firmware projects that
`generate` renders build the same sources with their own Makefile.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from nanodet_mcu import FIRMWARE_DIR, boards
from nanodet_mcu.codegen.aot.host import KERNELS_DIR, REFERENCE_ONLY_FLAG, kernel_sources
from nanodet_mcu.errors import NanodetError

BOARD = "mps2-an500"
INSTRUCTIONS_PER_TICK = 40  # the board's SysTick runs at the 25 MHz clock model: 40 instructions a tick

BOARD_CONFIG = f"""#define ND_BOARD_NAME "{BOARD}"
#define ND_CORE_CLOCK_HZ 25000000u
#define ND_TIMER_KIND "systick-instructions"
#define ND_TIMER_UNITS_PER_TICK {INSTRUCTIONS_PER_TICK}u
#define ND_UART_BAUD 115200u
"""


def tools() -> tuple[str, str] | None:
    """(cross compiler, QEMU) when both are installed."""
    cc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    return (cc, qemu) if cc and qemu else None


def build_elf(src_dir: Path, sources: list[Path], out: Path, reference_only: bool = False,
              defines: tuple[str, ...] = (), objects_dir: Path | None = None, kernels: bool = True,
              cxx_sources: tuple[Path, ...] = (), cxx_includes: tuple[str, ...] = (),
              libs: tuple[str, ...] = ()) -> Path:
    """Link the C sources (e.g. src_dir/nd_model.c and a main), the kernels and the mps2-an500 board layer into `out`
    (C++ sources and static libraries too: the TFLM glue for a comparison run).  src_dir is on the include path and
    receives the board configuration header.

    objects_dir: where the kernels' and board's objects are kept between calls (compiled once per flag set; default:
    beside `out`, compiled every time)."""
    board = boards.load(BOARD)
    layer = FIRMWARE_DIR / BOARD
    (src_dir / "nd_board_config.h").write_text(BOARD_CONFIG)
    arch = [*board.arch_flags, *board.data["build"]["cflags"]]
    common = [*arch, "-ffunction-sections", "-fdata-sections", f"-I{src_dir}", f"-I{KERNELS_DIR}",
              *(f"-D{d}" for d in defines), *([REFERENCE_ONLY_FLAG] if reference_only else [])]
    cflags = [*common, "-std=c99", "-Wall", "-Wextra", "-Werror"]
    shared = [*(kernel_sources(arm=True) if kernels else []), layer / "startup_mps2_an500.c",
              layer / "nd_board_mps2_an500.c"]
    objs = []
    objects_dir = objects_dir or out.parent
    objects_dir.mkdir(parents=True, exist_ok=True)
    for src in shared:  # the board sources read nd_board_config.h: the same for every model
        obj = objects_dir / (src.name + ".o")
        if objects_dir == out.parent or not obj.exists():
            _run(["arm-none-eabi-gcc", *cflags, "-c", str(src), "-o", str(obj)])
        objs.append(obj)
    for src in cxx_sources:
        obj = out.parent / (src.name + ".o")
        _run(["arm-none-eabi-g++", *common, "-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
              *(f"-isystem{d}" for d in cxx_includes), "-c", str(src), "-o", str(obj)])
        objs.append(obj)
    for src in sources:
        obj = out.parent / (src.name + ".o")
        _run(["arm-none-eabi-gcc", *cflags, "-c", str(src), "-o", str(obj)])
        objs.insert(0, obj)
    link = "arm-none-eabi-g++" if cxx_sources else "arm-none-eabi-gcc"
    _run([link, *arch, *map(str, objs), *libs, "-lm", f"-T{layer / 'mps2_an500.ld'}", "-nostartfiles",
          "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", "-o", str(out)])
    return out


def run_elf(elf: Path, timeout: float = 900) -> str:
    """QEMU's UART output of one run of the ELF (main's return value ends the emulation)."""
    cmd = ["qemu-system-arm", "-M", BOARD, "-icount", "shift=0", "-nographic", "-semihosting", "-monitor", "none",
           "-serial", "stdio", "-kernel", str(elf)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired as exc:
        raise NanodetError(f"{elf.name} did not finish on QEMU within {timeout:.0f} s") from exc


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
        raise NanodetError(f"cross build failed: {first}")
