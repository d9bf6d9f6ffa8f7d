"""`nanodet-mcu verify`: check a board or the emulator against the host reference over the serial link."""
from __future__ import annotations

import sys
from contextlib import ExitStack

from nanodet_mcu import cliargs


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board (e.g. /dev/ttyACM0)")
    where.add_argument("--emulate", metavar="ELF", help="start QEMU mps2-an500 on this firmware, verify, stop it")
    parser.add_argument("--baud", type=cliargs.positive_int, default=115200, help="link baud rate (default 115200)")
    parser.add_argument("--model", required=True, help="the .tflite the firmware was generated from")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="upload every image of DIR as RGB888 and run on it")
    source.add_argument("--embedded", action="store_true", help="run the firmware's embedded images (default)")
    parser.add_argument("--runs", type=cliargs.positive_int, default=1, help="runs per image for latency statistics (default 1)")
    parser.add_argument("--tolerance", type=cliargs.non_negative_int, default=0, metavar="LSB",
                        help="accept raw output differences up to this many LSB (default 0: bit-exact)")
    parser.add_argument("--report", metavar="JSON", help="write the full report as JSON")
    parser.add_argument("--junit", metavar="XML", help="write the checks as JUnit XML")
    parser.add_argument("--timeout", type=cliargs.positive_float, default=None,
                        help="seconds to wait for each reply (default: from the baud rate, at least 2; "
                             "5 with --emulate)")
    parser.add_argument("--run-timeout", type=cliargs.positive_float, default=120.0, help="seconds to wait for one inference")
    parser.add_argument("--retries", type=cliargs.non_negative_int, default=4, help="resends of a request without a valid reply")


def request_timeout(baud: int) -> float:
    """Three times the air time of the largest frame (10 bits a byte), and never under 2 s."""
    from nanodet_mcu.link import protocol

    return max(2.0, 3 * protocol.MAX_FRAME * 10 / baud)


def run(args) -> int:
    from nanodet_mcu.device.emulator import Emulator
    from nanodet_mcu.errors import NanodetError
    from nanodet_mcu.link.client import DeviceClient
    from nanodet_mcu.link.transport import LinkClosed, SerialTransport
    from nanodet_mcu.verify import report, verifier

    if args.runs < 1:
        raise NanodetError("--runs must be at least 1")
    if args.tolerance < 0:
        raise NanodetError("--tolerance must be >= 0")
    inputs = verifier.upload_inputs(args.images) if args.images else None
    progress = (lambda msg: print(f"  {msg}", file=sys.stderr)) if sys.stderr.isatty() else (lambda msg: None)
    with ExitStack() as stack:
        port = args.port
        emu = None
        if args.emulate:
            emu = stack.enter_context(Emulator(args.emulate))
            port = emu.port
            print(f"emulating {args.emulate} on {port}", file=sys.stderr)
        transport = stack.enter_context(SerialTransport(port, args.baud))
        # QEMU shares the host's cores: on a loaded CI machine its replies can lag well behind a real UART's.
        default_timeout = max(5.0, request_timeout(args.baud)) if emu is not None else request_timeout(args.baud)
        client = DeviceClient(transport, timeout=args.timeout or default_timeout,
                              run_timeout=args.run_timeout, retries=args.retries)
        device_check = verifier.Verifier(client, args.model, args.tolerance, progress)
        try:
            outcome = device_check.run(inputs, args.runs)
        except LinkClosed as exc:
            if emu is not None and not emu.running():
                raise NanodetError(f"the firmware stopped the emulator (QEMU exit status {emu.wait(0)}; a fault "
                                   f"exits with 1): {exc}") from exc
            raise
        if emu is not None:
            try:
                client.shutdown(0)
                emu.wait(5)
            except NanodetError:
                pass  # the emulator is stopped either way
    report.print_summary(outcome)
    if args.report:
        report.write_json(outcome, args.report)
    if args.junit:
        report.write_junit(outcome, args.junit)
    return 0 if outcome.passed else 1
