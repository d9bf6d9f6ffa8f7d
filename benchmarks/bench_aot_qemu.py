"""Instructions per inference of the AOT engine on QEMU's Cortex-M7 (mps2-an500, -icount shift=0), per step.

Builds the emitted model with the mps2-an500 board layer and a small profiling main (ND_PROFILE hook reading the
SysTick timer: one tick = 40 emulated instructions), runs it on the example image, checks the outputs against
tflite-micro on the host, and prints a per-step table (op, shape, MACs, instructions, instructions/MAC).

    /work/venv/bin/python benchmarks/bench_aot_qemu.py [--model PATH] [--image PATH] [--no-profile] [--keep DIR]
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

from nanodet_mcu import boards, model_info, preprocess  # noqa: E402
from nanodet_mcu.codegen import c_array  # noqa: E402
from nanodet_mcu.codegen.aot import emit_c  # noqa: E402
from nanodet_mcu.runners import TflmRunner  # noqa: E402

INSTRUCTIONS_PER_TICK = 40

MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "nd_board.h"
#include "nd_model.h"

extern const int8_t bench_input[320 * 320 * 3];
static uint8_t arena[ND_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
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

static void put(const char *s) { nd_board_uart_write((const uint8_t *)s, strlen(s)); }

int main(void)
{
    char line[160];
    nd_board_init();
    memcpy(nd_model_input(arena), bench_input, sizeof bench_input);
    uint32_t t0 = nd_board_timer_now();
    int rc = nd_model_run(arena);
    uint32_t t1 = nd_board_timer_now();
    uint32_t h = 2166136261u; /* FNV-1a of scores then boxes: the host checks it against tflite-micro */
    const int8_t *s = nd_model_scores(arena), *b = nd_model_boxes(arena);
    for (int i = 0; i < 8000; ++i) h = (h ^ (uint8_t)s[i]) * 16777619u;
    for (int i = 0; i < 3200; ++i) h = (h ^ (uint8_t)b[i]) * 16777619u;
#ifdef ND_PROFILE
    for (int i = 0; i < ND_MODEL_NUM_STEPS; ++i) {
        snprintf(line, sizeof line, "STEP %d %s %lu %lu\n", i, nd_model_step_labels[i],
                 (unsigned long)nd_model_step_macs[i], (unsigned long)step_ticks[i]);
        put(line);
    }
#endif
    snprintf(line, sizeof line, "TOTAL %lu HASH %08lx RC %d\n", (unsigned long)(t1 - t0), (unsigned long)h, rc);
    put(line);
    return 0;
}
"""

BOARD_CONFIG = """#define ND_BOARD_NAME "mps2-an500"
#define ND_CORE_CLOCK_HZ 25000000u
#define ND_TIMER_KIND "systick-instructions"
#define ND_TIMER_UNITS_PER_TICK 40u
#define ND_UART_BAUD 115200u
"""


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def build(model: Path, image: Path, out: Path, profile: bool) -> tuple[Path, int, int]:
    info = model_info.load(model)
    lay = model_info.nanodet_layout(info)
    result = emit_c(info, out)
    x = preprocess.quantize(preprocess.resize_rgb(preprocess.load_rgb(image)), lay.input.scale, lay.input.zero_point)
    scores, boxes = TflmRunner(info).run(x)
    want = fnv1a(scores.astype(np.int8).tobytes() + boxes.astype(np.int8).tobytes())
    (out / "bench_input.c").write_text("#include <stdint.h>\nconst int8_t bench_input[320 * 320 * 3] = {\n"
                                       + c_array.int_values(x.reshape(-1)) + "\n};\n")
    (out / "bench_main.c").write_text(MAIN)
    (out / "nd_board_config.h").write_text(BOARD_CONFIG)
    board = ROOT / "firmware" / "mps2-an500"
    common = ROOT / "firmware" / "common"
    emulated = boards.load("mps2-an500")  # the board this harness runs on: its firmware's flags
    flags = [*emulated.arch_flags, *emulated.data["build"]["cflags"], "-std=c99", "-Wall",
             "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections", f"-I{out}", f"-I{common}"]
    flags += ["-DND_PROFILE"] if profile else []
    srcs = [out / "bench_main.c", out / "bench_input.c", out / "nd_model.c", *sorted(common.glob("nd_kernels*.c")),
            board / "startup_mps2_an500.c", board / "nd_board_mps2_an500.c"]
    elf = out / "bench.elf"
    cmd = ["arm-none-eabi-gcc", *flags, *map(str, srcs), f"-T{board / 'mps2_an500.ld'}", "-nostartfiles",
           "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", "-o", str(elf)]
    subprocess.run(cmd, check=True)
    return elf, want, result.arena_bytes


def run(elf: Path, timeout: float = 900) -> str:
    cmd = ["qemu-system-arm", "-M", "mps2-an500", "-icount", "shift=0", "-nographic", "-semihosting",
           "-monitor", "none", "-serial", "stdio", "-kernel", str(elf)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT.parent / "shared/models/nxp_nanodet_m_0.5x.tflite"))
    ap.add_argument("--image", default=str(ROOT.parent / "shared/images/example_input.jpg"))
    ap.add_argument("--no-profile", action="store_true", help="total only (no per-step hook overhead)")
    ap.add_argument("--keep", help="build in this directory and keep it")
    args = ap.parse_args()
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_aot_"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        elf, want, arena = build(Path(args.model), Path(args.image), out, not args.no_profile)
        size = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True).stdout
        text = sum(int(m.group(1)) for m in re.finditer(r"^\.(?:text|ARM\.exidx)\s+(\d+)", size, re.M))
        stdout = run(elf)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    total = re.search(r"TOTAL (\d+) HASH ([0-9a-f]+) RC (-?\d+)", stdout)
    if not total:
        print(stdout)
        print("no result from the emulator", file=sys.stderr)
        return 1
    steps = [(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)) * INSTRUCTIONS_PER_TICK)
             for m in re.finditer(r"STEP (\d+) (\S+) (\d+) (\d+)", stdout)]
    if steps:
        print(f"{'step':>4} {'op':34} {'MACs':>10} {'instructions':>13} {'instr/MAC':>9}")
        for i, label, macs, instr in steps:
            print(f"{i:4d} {label:34} {macs:10d} {instr:13d} {instr / macs if macs else 0:9.2f}")
        by_kind: dict[str, list[int]] = {}
        for _, label, macs, instr in steps:
            k = by_kind.setdefault(label.split("+")[0], [0, 0, 0])
            k[0] += 1
            k[1] += macs
            k[2] += instr
        print("\nby op kind:")
        for kind, (n, macs, instr) in sorted(by_kind.items(), key=lambda kv: -kv[1][2]):
            print(f"  {kind:20} x{n:3d} {macs:11d} MACs {instr:12d} instructions"
                  + (f" ({instr / macs:.2f}/MAC)" if macs else ""))
    instr = int(total.group(1)) * INSTRUCTIONS_PER_TICK
    ok = int(total.group(2), 16) == want and total.group(3) == "0"
    print(f"\ntotal instructions per inference: {instr:,} ({'profiled' if steps else 'no profiling hook'})")
    print(f"arena: {arena} bytes; flash .text+.rodata of the whole ELF: {text} bytes")
    print(f"outputs vs tflite-micro on the host: {'identical' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
