"""`nanodet-mcu verify`: check a board or the emulator against the host reference over the serial link."""
from __future__ import annotations

import signal
import sys
import time
from contextlib import ExitStack

from nanodet_mcu import cliargs
from nanodet_mcu.progress import TransferProgress


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the flashed board, e.g. /dev/ttyACM0 (one of --port and "
                                      "--emulate is required)")
    where.add_argument("--emulate", metavar="ELF", help="start QEMU mps2-an500 on this firmware, verify, stop it "
                                                        "(one of --port and --emulate is required)")
    parser.add_argument("--baud", type=cliargs.positive_int, default=115200,
                        help="link baud rate (default %(default)s)")
    parser.add_argument("--model", required=True, help="the .tflite the firmware was generated from (a generated "
                                                       "project holds a copy)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="upload every image of DIR as RGB888 and run on it "
                                                        "(default: the embedded images)")
    source.add_argument("--embedded", action="store_true", help="run the firmware's embedded images (the default)")
    parser.add_argument("--runs", type=cliargs.positive_int, default=1,
                        help="runs per image for latency statistics (default %(default)s)")
    parser.add_argument("--tolerance", type=cliargs.int_within(0, 254, " (int8 values differ by at most 255: 255 would "
                                                                   "accept any output)"), default=0, metavar="LSB",
                        help="accept raw output differences up to this many LSB (default 0: bit-exact)")
    parser.add_argument("--report", metavar="JSON", help="write the full report as JSON (default: none written)")
    parser.add_argument("--junit", metavar="XML", help="write the checks as JUnit XML (default: none written)")
    parser.add_argument("--html", metavar="HTML",
                        help="write one self-contained HTML page: each image with the device's and the reference's "
                             "boxes, the checks (failing images first), latency charts; opens from disk "
                             "(default: none written)")
    parser.add_argument("--timeout", type=cliargs.seconds, default=None,
                        help="seconds to wait for each reply (default: from the baud rate, at least 2; "
                             "5 with --emulate)")
    parser.add_argument("--run-timeout", type=cliargs.seconds, default=120.0,
                        help="seconds to wait for one inference (default %(default)s)")
    parser.add_argument("--retries", type=cliargs.non_negative_int, default=4,
                        help="resends of a request without a valid reply (default %(default)s)")
    parser.add_argument("--deadline", type=cliargs.seconds, metavar="SECONDS",
                        help="stop with an error when the whole verification takes longer than this (default: none)")
    parser.add_argument("--max-retry-rate", type=cliargs.fraction, default=0.5, metavar="FRACTION",
                        help="stop with 'link too noisy' when more than this fraction of the last 64 frames had to "
                             "be sent again (default %(default)s)")
    steps = parser.add_argument_group("per-step diagnosis (firmware generated with --profile)")
    steps.add_argument("--profile", action="store_true",
                       help="time every step of one inference on the device's timer: table in model order and the "
                            "top 10 (and 'profile' in --report; default: off)")
    steps.add_argument("--bisect", action="store_true",
                       help="find the first step whose output differs from the host reference (per-step CRC-32), "
                            "read it back and compare it (and 'bisect' in --report; default: off)")
    steps.add_argument("--bisect-on-fail", action="store_true",
                       help="--bisect, only when an outputs check fails (default: off)")
    steps.add_argument("--bisect-dir", metavar="DIR", default=".",
                       help="where --bisect saves the divergent tensor as <step>_device.npy and _host.npy "
                            "(default: the current directory)")


def request_timeout(baud: int) -> float:
    """Three times the air time of the largest frame (10 bits a byte), and never under 2 s."""
    from nanodet_mcu.link import protocol

    return max(2.0, 3 * protocol.MAX_FRAME * 10 / baud)


def file_sha256(path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _emulator_died(emu, client, exc):
    """The NanodetError to raise when the emulator is gone, or None while it still runs."""
    from nanodet_mcu.errors import NanodetError
    from nanodet_mcu.link.transport import LinkClosed

    code = emu.wait(2.0 if isinstance(exc, LinkClosed) else 0.0)  # the pty can close a moment before QEMU exits
    if code is None:
        return None
    doing = f" while {client.doing}" if client is not None and client.doing else ""
    if code == 1:
        return NanodetError(f"the firmware stopped the emulator (QEMU exit status 1: a fault or an assertion){doing}: "
                            f"{exc}")
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    fatal = emu.fatal_line()
    return NanodetError(f"the emulator died ({how}){doing}{': ' + fatal if fatal else ''}; the link reported: {exc}")


def run(args) -> int:
    from nanodet_mcu import model_info, outputs
    from nanodet_mcu.device.emulator import Emulator, check_elf
    from nanodet_mcu.errors import NanodetError
    from nanodet_mcu.link.client import DeviceClient
    from nanodet_mcu.link.transport import SerialTransport
    from nanodet_mcu.verify import report, verifier

    # Everything that can be checked without the device is checked before it is touched: outputs, model, ELF.
    named = [(option, path) for option, path in (("--report", args.report), ("--junit", args.junit),
                                                 ("--html", args.html)) if path]
    for option, path in named:
        outputs.check_file(path, option)
    if args.bisect or args.bisect_on_fail:
        outputs.check_dir(args.bisect_dir, "--bisect-dir")
    for i, (option, path) in enumerate(named):
        for other, path2 in named[i + 1:]:
            if outputs.same_file(path, path2):
                raise NanodetError(f"{option} and {other} name the same file")
    model = model_info.load(args.model)
    model_info.nanodet_layout(model)
    if args.emulate:
        check_elf(args.emulate)
    inputs = verifier.upload_inputs(args.images) if args.images else None
    started = time.monotonic()
    progress = TransferProgress()
    try:
        with ExitStack() as stack:
            port = args.port
            emu = None
            if args.emulate:
                emu = stack.enter_context(Emulator(args.emulate))
                port = emu.port
                print(f"emulating {args.emulate} on {port}", file=sys.stderr)
            try:
                transport = stack.enter_context(SerialTransport(port, args.baud))
            except NanodetError as exc:  # QEMU gone at start (an ELF it cannot run): say so, not "no such port"
                died = _emulator_died(emu, None, exc) if emu is not None else None
                raise (died or exc) from exc
            # QEMU shares the host's cores: on a loaded CI machine its replies can lag well behind a real UART's.
            default_timeout = max(5.0, request_timeout(args.baud)) if emu is not None else request_timeout(args.baud)
            client = DeviceClient(transport, timeout=args.timeout or default_timeout, run_timeout=args.run_timeout,
                                  retries=args.retries, max_retry_rate=args.max_retry_rate, progress=progress.transfer)
            if args.deadline is not None:
                client.set_deadline(args.deadline, started)
            device_check = verifier.Verifier(client, model, args.tolerance, progress.message, profile=args.profile,
                                             bisect=args.bisect, bisect_on_fail=args.bisect_on_fail,
                                             bisect_dir=args.bisect_dir)
            if args.emulate:
                device_check.report.firmware = {"path": str(args.emulate), "sha256": file_sha256(args.emulate)}
            try:
                outcome = device_check.run(inputs, args.runs)
            except NanodetError as exc:
                progress.close()
                died = _emulator_died(emu, client, exc) if emu is not None else None
                if died is not None:
                    raise died from exc
                raise
            if emu is not None:
                try:
                    client.shutdown(0)
                    emu.wait(5)
                except NanodetError:
                    pass  # the emulator is stopped either way
    finally:
        progress.close()
    report.print_summary(outcome)
    with outputs.Staged() as files:  # every report or none
        if args.report:
            files.add(args.report, report.json_text(outcome))
        if args.junit:
            files.add(args.junit, report.junit_xml(outcome))
        if args.html:
            from nanodet_mcu.verify import html

            files.add(args.html, html.render(outcome.as_dict()))
        files.commit()
    if args.html:
        print(f"HTML report: {args.html}", file=sys.stderr)
    if not outcome.passed:
        failed = [c for c in outcome.checks if not c.passed]
        first = failed[0] if failed else None
        why = f"{first.name}{' (' + first.image + ')' if first.image else ''}: {first.detail}" if first else "no checks"
        print(f"nanodet-mcu verify: FAIL: {len(failed)} of {len(outcome.checks)} checks failed; first: {why}",
              file=sys.stderr)
    return 0 if outcome.passed else 1
