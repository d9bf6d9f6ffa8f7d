"""`nanodet-mcu` command line: one module per subcommand, imported only when that subcommand runs.

Each module in nanodet_mcu/commands/ defines `add_arguments(parser)` and `run(args) -> int`.  Importing only the
chosen one keeps `verify` or `generate --help` from paying TensorFlow's import time.

Whatever goes wrong, the user gets one line on stderr and a non-zero exit: 1 for a failure (NanodetError, or an
unexpected exception, reported as an internal error; NANODET_MCU_TRACEBACK=1 prints its traceback), 2 for a bad
command line, 130 for Ctrl-C before the command's outputs were committed (after that the command finishes).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from nanodet_mcu import __version__, outputs
from nanodet_mcu.errors import NanodetError, Terminated

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


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (the usage itself is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _parser(selected: str | None) -> argparse.ArgumentParser:
    parser = _Parser(prog="nanodet-mcu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nanodet-mcu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(f"nanodet_mcu.commands.{name}").add_arguments(p)
    return parser


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    program = argv is None  # the console script: own the process's signals to the end
    argv = sys.argv[1:] if argv is None else argv
    command = None
    outputs.HOLD_INTERRUPTS_AFTER_COMMIT = program
    if program:
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _terminate)
    try:
        selected = next((a for a in argv if not a.startswith("-")), None)
        selected = selected if selected in COMMANDS else None
        parser = _parser(selected)
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            parser.print_help()
            return 2
        return int(importlib.import_module(f"nanodet_mcu.commands.{command}").run(args) or 0)
    except NanodetError as exc:
        _error(command, str(exc))
        return 1
    except Terminated as exc:
        _error(command, f"terminated by {signal.Signals(exc.signum).name}", "")
        return 128 + exc.signum
    except KeyboardInterrupt:
        _error(command, "interrupted", "")
        return 130
    except BrokenPipeError:  # `nanodet-mcu inspect ... | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # a bug: still one line; the traceback on request
        if os.environ.get("NANODET_MCU_TRACEBACK"):
            traceback.print_exc()
        _error(command, f"internal error: {type(exc).__name__}: {exc} (a bug in nanodet-mcu: please report it; "
                        "NANODET_MCU_TRACEBACK=1 prints the traceback)")
        return 1
    finally:
        if program:  # an interrupt during the interpreter's teardown must not turn the exit into -2
            for s in outputs.INTERRUPTS:
                signal.signal(s, signal.SIG_IGN)


def _error(command: str | None, message: str, prefix: str = "error: ") -> None:
    print(f"nanodet-mcu{' ' + command if command else ''}: {prefix}{_one_line(message)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
