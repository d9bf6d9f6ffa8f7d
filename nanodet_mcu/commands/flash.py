"""`nanodet-mcu flash PROJECT`: write a built RT project's image to the board with LinkServer or pyOCD."""
from __future__ import annotations

import sys

from nanodet_mcu.device.flash import PROBES


def add_arguments(parser) -> None:
    parser.add_argument("project", metavar="PROJECT", help="project directory written by nanodet-mcu generate and "
                                                          "built by nanodet-mcu build")
    parser.add_argument("--probe", choices=PROBES, default="auto",
                        help="flashing tool: NXP LinkServer or pyOCD; auto takes LinkServer when it is on PATH, "
                             "else pyOCD (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact command and run nothing (the image need not be built yet)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the flashing tool's output")


def run(args) -> int:
    from nanodet_mcu.device import flash

    plan = flash.plan(args.project, args.probe, dry_run=args.dry_run)
    print(plan.shell)
    if args.dry_run:
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        return 0
    log = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    print(f"flashing {plan.image} with {plan.probe}...", file=sys.stderr, flush=True)
    flash.flash(plan, log=log)
    print(f"flashed {plan.image} with {plan.probe}; reset the board, then run nanodet-mcu verify --port PORT "
          "--model MODEL", file=sys.stderr)
    return 0
