"""`nanodet-mcu` command line: one module per subcommand, imported only when that subcommand runs.

Each module in nanodet_mcu/commands/ defines `add_arguments(parser)` and `run(args) -> int`.  Importing only the
chosen one keeps `verify` or `generate --help` from paying TensorFlow's import time.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from nanodet_mcu import __version__
from nanodet_mcu.errors import NanodetError

COMMANDS = {
    "convert": "official NanoDet weights (.ckpt/.pth or .onnx) -> full-int8 TFLite (stride-32 head)",
    "inspect": "model facts: tensors, quantisation, ops, parameters, MACs, TFLM arena",
    "detect": "host reference detection on images (interpreter + decoder + NMS)",
    "evaluate": "COCO bbox mAP of a .tflite or float .onnx model",
    "generate": "firmware project for a board (rt1170, rt1050, mps2-an500) from a .tflite",
    "build": "build a generated firmware project with the arm-none-eabi toolchain",
    "flash": "write a built RT project's image to the board with NXP LinkServer or pyOCD",
    "emulate": "run firmware on QEMU's Cortex-M7 (mps2-an500) with its UART on a pty",
    "verify": "check a board (or the emulator) against the host reference over the serial link",
    "report": "render a saved `verify --report` JSON as one self-contained HTML page",
}


def _parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanodet-mcu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nanodet-mcu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(f"nanodet_mcu.commands.{name}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    selected = selected if selected in COMMANDS else None
    parser = _parser(selected)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(f"nanodet_mcu.commands.{args.command}").run(args) or 0)
    except NanodetError as exc:
        print(f"nanodet-mcu {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nanodet-mcu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
