"""`nanodet-mcu build DIR`: build a generated firmware project (its build.sh) and report the ELF."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("project", metavar="DIR", help="project directory written by nanodet-mcu generate")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the whole compiler output (default: only the first error line on failure)")


def run(args) -> int:
    from nanodet_mcu.device import build

    log = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    elf = build.build(args.project, log=log)
    sizes = build.elf_size(elf)
    print(elf)
    if sizes:
        print(f"  flash {sizes['text'] + sizes['data']} B (text {sizes['text']}, data {sizes['data']}), "
              f"RAM {sizes['data'] + sizes['bss']} B (bss {sizes['bss']})", file=sys.stderr)
    return 0
