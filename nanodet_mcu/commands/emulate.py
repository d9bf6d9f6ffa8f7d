"""`nanodet-mcu emulate ELF`: run firmware on QEMU's Cortex-M7 with its UART on a pty, until Ctrl-C."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("elf", help="firmware ELF built for mps2-an500 (nanodet-mcu build)")


def run(args) -> int:
    from nanodet_mcu.device.emulator import Emulator
    from nanodet_mcu.errors import Terminated

    with Emulator(args.elf) as emu:
        print(f"serial port: {emu.port}", flush=True)
        print(f"connect with: nanodet-mcu verify --port {emu.port} --model MODEL  (Ctrl-C stops QEMU)",
              file=sys.stderr, flush=True)
        try:
            code = None
            while code is None:
                code = emu.wait(1.0)
        except KeyboardInterrupt as exc:  # Ctrl-C is how a user ends it; a kill is still reported as one
            print("stopping QEMU", file=sys.stderr)
            if isinstance(exc, Terminated):
                raise
            return 0
        fatal = emu.fatal_line() if code != 0 else None
    print(f"firmware exited (QEMU status {code}){': ' + fatal if fatal else ''}", file=sys.stderr)
    return 0 if code == 0 else 1
