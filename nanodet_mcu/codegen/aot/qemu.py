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
from nanodet_mcu.codegen.generate import board_config_header
from nanodet_mcu.errors import NanodetError

BOARD = "mps2-an500"
# The board's SysTick counts emulated instructions under -icount shift=0 (board file [timer]): 40 a tick.
INSTRUCTIONS_PER_TICK = boards.load(BOARD).data["timer"]["units_per_tick"]


# A main() that runs one inference of bench_input (a C array the caller provides) and reports on the UART: per-step
# instruction ticks (with ND_PROFILE), the arena, the peak stack below main's frame (the stack painted before the run
# and scanned after) and with the whole program, the instruction ticks of the run and an FNV-1a of the outputs.
MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "nd_board.h"
#include ENGINE_HEADER

extern const int8_t bench_input[320 * 320 * 3];
extern uint32_t __heap_limit__[]; /* the lowest address the stack may reach (mps2_an500.ld) */
extern uint32_t __stack_top__[];
#ifdef ND_PROFILE
static uint32_t step_ticks[ND_MODEL_NUM_STEPS];
static int current = -1;
static uint32_t last;
int nd_profile_op(int i)
{
    uint32_t now = nd_board_timer_now();
    if (current >= 0) step_ticks[current] += now - last;
    current = i;
    last = nd_board_timer_now();
    return 0;
}
#endif

#define PAINT 0xA5A5A5A5u
static uintptr_t stack_pointer(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static void put(const char *s) { nd_board_uart_write((const uint8_t *)s, strlen(s)); }

int main(void)
{
    char line[160];
    nd_board_init();
    int rc = ENGINE_INIT;
    if (rc == 0) memcpy(ENGINE_INPUT, bench_input, sizeof bench_input);
    /* paint the stack below this frame (less a margin for the calls that paint), run, find the deepest write */
    for (uint32_t *p = __heap_limit__; (uintptr_t)p < stack_pointer() - 256u; ++p) *p = PAINT;
    const uintptr_t sp_at_call = stack_pointer();
    uint32_t t0 = nd_board_timer_now();
    if (rc == 0) rc = ENGINE_RUN;
    uint32_t t1 = nd_board_timer_now();
    const uint32_t *low = __heap_limit__;
    while (*low == PAINT) ++low;
    uint32_t h = 2166136261u; /* FNV-1a of scores then boxes: the host checks it against tflite-micro */
    if (rc == 0) {
        const int8_t *s = ENGINE_SCORES, *b = ENGINE_BOXES;
        for (int i = 0; i < 8000; ++i) h = (h ^ (uint8_t)s[i]) * 16777619u;
        for (int i = 0; i < 3200; ++i) h = (h ^ (uint8_t)b[i]) * 16777619u;
    }
#ifdef ND_PROFILE
    for (int i = 0; i < ND_MODEL_NUM_STEPS; ++i) {
        snprintf(line, sizeof line, "STEP %d %s %lu %lu\n", i, nd_model_step_labels[i],
                 (unsigned long)nd_model_step_macs[i], (unsigned long)step_ticks[i]);
        put(line);
    }
#endif
    snprintf(line, sizeof line, "ARENA %lu\n", (unsigned long)ENGINE_ARENA);
    put(line);
    snprintf(line, sizeof line, "STACK %lu %lu\n", (unsigned long)(sp_at_call - (uintptr_t)low),
             (unsigned long)((uintptr_t)__stack_top__ - (uintptr_t)low));
    put(line);
    snprintf(line, sizeof line, "TOTAL %lu HASH %08lx RC %d\n", (unsigned long)(t1 - t0), (unsigned long)h, rc);
    put(line);
    return 0;
}
"""

# The two engines behind MAIN: the AOT model's own API, and nd_engine.h (the TFLM glue of the generated projects).
AOT_API = {"ENGINE_HEADER": '"nd_model.h"', "ENGINE_INIT": "(nd_model_check() >= 0 ? -2 : 0)",
           "ENGINE_INPUT": "nd_model_input(arena)", "ENGINE_RUN": "nd_model_run(arena)",
           "ENGINE_SCORES": "nd_model_scores(arena)", "ENGINE_BOXES": "nd_model_boxes(arena)",
           "ENGINE_ARENA": "ND_MODEL_ARENA_BYTES"}
TFLM_API = {"ENGINE_HEADER": '"nd_engine.h"', "ENGINE_INIT": "nd_engine_init()", "ENGINE_INPUT": "nd_engine_input()",
            "ENGINE_RUN": "nd_engine_invoke()", "ENGINE_SCORES": "nd_engine_scores()",
            "ENGINE_BOXES": "nd_engine_boxes()", "ENGINE_ARENA": "nd_engine_arena_bytes()"}


def main_c(api: dict[str, str], arena_decl: str = "") -> str:
    defines = "".join(f"#define {k} {v}\n" for k, v in api.items())
    return defines + MAIN.replace("extern const int8_t bench_input", arena_decl + "extern const int8_t bench_input")



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
    (src_dir / "nd_board_config.h").write_text(board_config_header(board))
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


def write_input(out: Path, x) -> None:
    """out/bench_input.c: the int8 input `x` as MAIN's bench_input."""
    from nanodet_mcu.codegen import c_array

    (out / "bench_input.c").write_text("#include <stdint.h>\nconst int8_t bench_input[320 * 320 * 3] = {\n"
                                       + c_array.int_values(x.reshape(-1)) + "\n};\n")


def build_aot_elf(info, x, out: Path, weights_format: str = "int16", reference_only: bool = False,
                  defines: tuple[str, ...] = ()):
    """The AOT engine for model `info` with MAIN running it once on the int8 input `x` (a C array beside it), linked
    into out/bench.elf: (ELF, the AotResult of emit_c)."""
    from nanodet_mcu.codegen.aot import emit_c

    result = emit_c(info, out, weights_format=weights_format)
    write_input(out, x)
    arena = "static uint8_t arena[ND_MODEL_ARENA_BYTES] __attribute__((aligned(16)));\n"
    (out / "bench_main.c").write_text(main_c(AOT_API, arena))
    elf = build_elf(out, [out / "nd_model.c", out / "bench_main.c", out / "bench_input.c"], out / "bench.elf",
                    reference_only=reference_only, defines=defines)
    return elf, result


def fnv1a(data: bytes) -> int:
    """The hash MAIN prints of the outputs (FNV-1a, 32 bits)."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


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
