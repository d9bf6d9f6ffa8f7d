"""Renderings of a verify Report: a rich summary for people, JSON and JUnit XML for CI (written atomically; the verify
command commits both files together through outputs.Staged)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from nanodet_mcu import outputs
from nanodet_mcu.verify.verifier import Report


def check_writable(path: str | Path, option: str = "") -> None:
    """Fail in a second, not after a long run: `path` must be a file this user can create or replace (its missing
    parent directories are created on write)."""
    outputs.check_file(path, option)


def to_json(value, level: int = 0) -> str:
    """json.dumps(indent=2), except that a list of plain values stays on one line: latency ticks, boxes and each
    channel of a delta map read as rows instead of one number a line (a map would otherwise be ~100 KB)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {to_json(v, level + 1)}" for k, v in value.items()) \
            + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, level + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value)


def write_json(report: Report, path: str | Path) -> None:
    outputs.write_file(path, json_text(report))


def json_text(report: Report) -> str:
    return to_json(report.as_dict()) + "\n"


def junit_xml(report: Report) -> str:
    failures = sum(not c.passed for c in report.checks)
    suite = ET.Element("testsuite", name="nanodet-mcu verify", tests=str(len(report.checks)),
                       failures=str(failures), errors="0", time=str(report.link.get("seconds", 0)))
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"verify.{c.image or 'device'}", name=c.name)
        if not c.passed:
            ET.SubElement(case, "failure", message=c.detail).text = c.detail
        else:
            ET.SubElement(case, "system-out").text = c.detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: str | Path) -> None:
    outputs.write_file(path, junit_xml(report))


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


def print_summary(report: Report, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
        console = Console(width=120, file=console.file)
    d = report.device
    if d:
        console.print(f"device: [bold]{d['board']}[/] engine [bold]{d['engine']}[/], firmware {d['firmware_version']}, "
                      f"model {d['model_sha256'][:16]}..., clock {d['core_clock_hz'] / 1e6:g} MHz, "
                      f"arena {d['arena_bytes']} B, timer {d['timer_kind']}")
    checks = Table(title="checks")
    for col in ("image", "check", "result", "detail"):
        checks.add_column(col, overflow="fold")
    for c in report.checks:
        checks.add_row(c.image or "-", c.name, "[green]PASS[/]" if c.passed else "[red]FAIL[/]", c.detail)
    console.print(checks)
    if report.profile:
        from nanodet_mcu.verify import profile

        profile.render(report.profile, console)
    if report.bisect:
        b = report.bisect
        console.print(f"bisect: [bold]{b['status']}[/]: {b['detail']}")
        if b["status"] == "diverged":
            console.print(f"  channels {_ranges(b['channels'])}; rows {_ranges(b['rows'])}")
            console.print(f"  saved {b['device_npy']} and {b['host_npy']}")
    if report.latency:
        units = sorted({s["unit"] for s in report.latency.values()})
        lat = Table(title=f"latency per stage ({', '.join(units)})")
        for col in ("stage", "runs", "mean", "p50", "p90", "max"):
            lat.add_column(col, justify="left" if col == "stage" else "right")
        for stage, s in report.latency.items():
            lat.add_row(stage, str(s["n"]), *(f"{s[k]:.3f}" for k in ("mean", "p50", "p90", "max")))
        console.print(lat)
    link = report.link
    if link:
        rate = 100 * link["retries"] / max(1, link["requests"] + link["retries"])
        reasks = f", {link['reasks']} re-asks after BUSY" if link.get("reasks") else ""
        console.print(f"link: {link['requests']} requests, {link['retries']} retries ({rate:.1f}% of frames){reasks}, "
                      f"{link['bad_frames']} bad frames, {link['bytes_sent']} B sent, {link['bytes_received']} B "
                      f"received in {link['seconds']:.1f} s")
    console.print("[bold green]verify: PASS[/]" if report.passed else "[bold red]verify: FAIL[/]")
