"""`nanodet-mcu emulate ELF`: run firmware on QEMU's Cortex-M7 with its UART on a pty, until Ctrl-C."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("elf", help="firmware ELF built for mps2-an500 (nanodet-mcu build)")


def run(args) -> int:
    from nanodet_mcu.device.emulator import Emulator

    with Emulator(args.elf) as emu:
        print(f"serial port: {emu.port}", flush=True)
        print(f"connect with: nanodet-mcu verify --port {emu.port} --model MODEL  (Ctrl-C stops QEMU)",
              file=sys.stderr, flush=True)
        try:
            code = None
            while code is None:
                code = emu.wait(1.0)
        except KeyboardInterrupt:
            print("stopping QEMU", file=sys.stderr)
            return 0
    print(f"firmware exited (QEMU status {code})", file=sys.stderr)
    return 0 if code == 0 else 1
