"""`nanodet-mcu report`: a saved `verify --report` JSON rendered as the same HTML page `verify --html` writes."""
from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("report", metavar="REPORT.json", help="a report written by `verify --report`")
    parser.add_argument("-o", "--output", metavar="HTML",
                        help="the page to write (default: REPORT.html beside the JSON)")


def run(args) -> int:
    from nanodet_mcu.verify import html, report

    out = Path(args.output) if args.output else Path(args.report).with_suffix(".html")
    if out.resolve() == Path(args.report).resolve():
        from nanodet_mcu.errors import NanodetError

        raise NanodetError(f"the page would overwrite its report {args.report}: give -o another path")
    report.check_writable(out, "-o")
    data = html.load_report(args.report)
    html.write_html(data, out, source=Path(args.report).name)
    print(out)
    print(f"{'PASS' if data['passed'] else 'FAIL'}: {len(data['checks'])} checks, "
          f"{len(data.get('images') or [])} images", file=sys.stderr)
    return 0
