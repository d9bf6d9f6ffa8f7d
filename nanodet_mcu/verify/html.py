"""A verify report as one self-contained HTML page: `verify --html` and `nanodet-mcu report REPORT.json`.

The page is rendered from the Report's JSON form only (`Report.as_dict()` or a saved `--report` file), so a report
written on the bench renders the same later without the device.  Everything is inline: each input image as a JPEG
data URI under an SVG overlay of the device's and the host reference's boxes, charts as matplotlib SVG, one <style>;
no script, no network.  Images that failed come first.
"""
from __future__ import annotations

import base64
import binascii
import html
import json
from pathlib import Path

import numpy as np

from nanodet_mcu import __version__, decode, outputs, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.verify import charts
from nanodet_mcu.verify.report import check_writable
from nanodet_mcu.verify.verifier import FLOAT_IOU_MIN

DEVICE_COLOUR, REFERENCE_COLOUR = "#ff8c00", "#1e90ff"
FRAME = spec.INPUT_SIZE
BISECT_STATUSES = ("diverged", "identical", "no-host-twin", "error")


def e(value) -> str:
    return html.escape(str(value), quote=True)


# --- reading a saved report -------------------------------------------------------------------------------------

class _Shape:
    """Checks that a parsed report has the types the page reads, naming the first field that has not."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, what: str):
        raise NanodetError(f"{self.source}: {where} {what}; not a report written by `nanodet-mcu verify --report`")

    def need(self, obj: dict, key: str, kinds, where: str, optional: bool = False):
        if key not in obj:
            if optional:
                return None
            self.fail(f"{where}.{key}" if where else key, "is missing")
        value = obj[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        numeric_ok = float in kinds and isinstance(value, int)
        if isinstance(value, bool) and bool not in kinds or not (isinstance(value, kinds) or numeric_ok):
            names = " or ".join({str: "text", bool: "true/false", int: "an integer", float: "a number",
                                 list: "a list", dict: "an object", type(None): "null"}[k] for k in kinds)
            self.fail(f"{where}.{key}" if where else key, f"should be {names}")
        return value

    def items(self, obj: dict, key: str, where: str, optional: bool = True) -> list:
        value = self.need(obj, key, list, where, optional)
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                self.fail(f"{where}.{key}[{i}]" if where else f"{key}[{i}]", "should be an object")
        return value or []

    def detection(self, d: dict, where: str) -> None:
        box = self.need(d, "box", list, where)
        if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            self.fail(f"{where}.box", "should be 4 numbers")
        self.need(d, "class_id", int, where)
        self.need(d, "label", str, where)
        self.need(d, "score", float, where)

    def report(self, r) -> None:
        if not isinstance(r, dict) or "passed" not in r or "checks" not in r:
            raise NanodetError(f"{self.source} is not a verify report (no 'passed' and 'checks'): write one with "
                               f"`nanodet-mcu verify ... --report REPORT.json`")
        self.need(r, "passed", bool, "")
        checks = self.items(r, "checks", "", optional=False)
        for i, c in enumerate(checks):
            where = f"checks[{i}]"
            self.need(c, "name", str, where)
            self.need(c, "image", (str, type(None)), where, optional=True)
            self.need(c, "passed", bool, where)
            self.need(c, "detail", str, where)
            for tensor, m in (self.need(c, "delta_maps", dict, where, optional=True) or {}).items():
                self.delta_map(m, f"{where}.delta_maps.{tensor}")
        for key in ("device", "model", "latency", "link", "firmware", "profile", "bisect"):
            self.need(r, key, dict, "", optional=True)
        for stage, s in (r.get("latency") or {}).items():
            if not isinstance(s, dict):
                self.fail(f"latency.{stage}", "should be an object")
            self.need(s, "unit", str, f"latency.{stage}")
            self.need(s, "mean", float, f"latency.{stage}")
            ticks = self.need(s, "ticks", list, f"latency.{stage}")
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in ticks):
                self.fail(f"latency.{stage}.ticks", "should be integers")
        for i, img in enumerate(self.items(r, "images", "")):
            where = f"images[{i}]"
            self.need(img, "name", str, where)
            self.need(img, "passed", bool, where)
            try:
                jpeg = base64.b64decode(self.need(img, "jpeg_base64", str, where), validate=True)
            except (binascii.Error, ValueError):
                jpeg = b""
            if not jpeg.startswith(b"\xff\xd8"):
                self.fail(f"{where}.jpeg_base64", "is not a base64 JPEG")
            for key in ("device_detections", "reference_detections"):
                for j, d in enumerate(self.items(img, key, where, optional=False)):
                    self.detection(d, f"{where}.{key}[{j}]")
        if "profile" in r:
            self.profile(r["profile"])
        if "bisect" in r:
            status = self.need(r["bisect"], "status", str, "bisect")
            if status not in BISECT_STATUSES:
                self.fail("bisect.status", f"should be one of {', '.join(BISECT_STATUSES)}")
            self.need(r["bisect"], "detail", str, "bisect", optional=True)
        # verifier.Report.passed: at least one check, all passed; a page must not say PASS for anything less
        if not checks:
            self.fail("checks", "is empty (a verify run checks the model at least)")
        if r["passed"] != all(c["passed"] for c in checks):
            self.fail("passed", "disagrees with its checks")

    def delta_map(self, m, where: str) -> None:
        if not isinstance(m, dict):
            self.fail(where, "should be an object")
        values = self.need(m, "values", list, where)
        try:
            grid = np.asarray(values, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            grid = np.zeros(0)
        if grid.ndim != 2 or grid.size == 0:
            self.fail(f"{where}.values", "should be rows of integers (channels x cells)")

    def profile(self, p: dict) -> None:
        self.need(p, "unit", str, "profile")
        for i, s in enumerate(self.items(p, "steps", "profile", optional=False)):
            where = f"profile.steps[{i}]"
            self.need(s, "index", int, where)
            self.need(s, "op", str, where)
            self.need(s, "value", float, where)
            self.need(s, "ms", (float, type(None)), where, optional=True)
            self.need(s, "share", (float, type(None)), where, optional=True)


def load_report(path: str | Path) -> dict:
    """A saved `verify --report` JSON file, checked to have what the page reads; NanodetError otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise NanodetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        report = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise NanodetError(f"{path} is not JSON (not UTF-8 text at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise NanodetError(f"{path} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    _Shape(str(path)).report(report)
    return report


# --- small pieces -----------------------------------------------------------------------------------------------

def badge(passed: bool | None, text: str | None = None) -> str:
    kind = "na" if passed is None else "pass" if passed else "fail"
    return f'<span class="badge {kind}">{e(text or kind.upper())}</span>'


def table(headers: list[str], rows: list[list[str]], cls: str = "", row_classes: list[str] | None = None) -> str:
    """Cells are HTML already (escape text with `e`)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(f'<tr class="{(row_classes or [""] * len(rows))[i]}">' + "".join(f"<td>{c}</td>" for c in row)
                   + "</tr>" for i, row in enumerate(rows))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt(v, digits: int = 4) -> str:
    if isinstance(v, bool) or v is None:
        return e(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return e(v)


def short_hash(h) -> str:
    h = str(h or "")
    return f'<code title="{e(h)}">{e(h[:16])}&hellip;</code>' if len(h) > 16 else f"<code>{e(h) or '&mdash;'}</code>"


def check_rows(checks: list[dict], with_image: bool = False) -> str:
    rows = [([f"<code>{e(c.get('image') or 'device')}</code>"] if with_image else [])
            + [e(c["name"]), badge(c["passed"]), e(c["detail"])] for c in checks]
    return table((["image"] if with_image else []) + ["check", "result", "detail"], rows, "checks",
                 ["" if c["passed"] else "bad" for c in checks])


# --- summary ----------------------------------------------------------------------------------------------------

def summary(r: dict, source: str) -> str:
    d, m, link, fw = r.get("device") or {}, r.get("model") or {}, r.get("link") or {}, r.get("firmware") or {}
    checks, images = r["checks"], r.get("images") or []
    failed = [c for c in checks if not c["passed"]]
    verdict = (f"{len(checks) - len(failed)} of {len(checks)} checks passed"
               + (f", {sum(not i['passed'] for i in images)} of {len(images)} images failed" if images else ""))
    if not checks:
        verdict = "no checks ran"
    clock = d.get("core_clock_hz")
    facts = [
        ("board", f"<b>{e(d.get('board', '?'))}</b>"
                  + (f", core clock {clock / 1e6:g} MHz" if isinstance(clock, (int, float)) else "")),
        ("engine", f"<b>{e(d.get('engine', '?'))}</b>" + (f", arena {fmt(d['arena_bytes'])} B"
                                                           if isinstance(d.get("arena_bytes"), int) else "")),
        ("firmware", f"version <code>{e(d.get('firmware_version', '?'))}</code>"
                     + (f", {e(Path(str(fw.get('path', ''))).name)} sha256 {short_hash(fw.get('sha256'))}"
                        if fw else " (image hash not known: verified over a serial port)")),
        ("model", f"device {short_hash(d.get('model_sha256'))}, --model <code>{e(Path(str(m.get('path', '?'))).name)}"
                  f"</code> {short_hash(m.get('sha256'))}"),
        ("link", link_line(link)),
        ("date", e(r.get("date") or "not recorded in this report")),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    state = "pass" if r["passed"] else "fail"
    return (f'<header class="summary {state}"><div class="verdict"><div class="big">{"PASS" if r["passed"] else "FAIL"}'
            f'</div><div>{e(verdict)}</div></div><table class="facts">{rows}</table>'
            f'<p class="source">nanodet-mcu {e(__version__)} verify report{(" from " + e(source)) if source else ""}'
            f"</p></header>")


def link_line(link: dict) -> str:
    if not link:
        return "&mdash;"
    parts = [f"port <code>{e(link.get('port', '?'))}</code>"]
    for key, label in (("requests", "requests"), ("retries", "retries"), ("bad_frames", "bad frames"),
                       ("garbage_bytes", "garbage bytes")):
        if isinstance(link.get(key), int):
            parts.append(f"{link[key]:,} {label}")
    sent, received, seconds = link.get("bytes_sent"), link.get("bytes_received"), link.get("seconds")
    if isinstance(sent, int) and isinstance(received, int):
        parts.append(f"{sent:,} B sent, {received:,} B received")
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.1f} s")
    return ", ".join(parts)


# --- one image --------------------------------------------------------------------------------------------------

def _tag(box: list[float], text: str, above: bool) -> tuple[float, float, float, float]:
    """Where a label goes (x, y, w, h in frame pixels): device labels over the box's top edge, reference labels
    under its bottom edge, so both stay readable when the boxes coincide; moved inside the frame at its borders."""
    fs = 7.5
    w, h = len(text) * fs * 0.6 + 4, fs + 3
    x1, y1, _, y2 = box
    x = min(max(x1, 0.0), FRAME - w)
    over_top = y1 - h if y1 - h >= 0 else max(y1, 0.0)
    under_bottom = y2 if y2 + h <= FRAME else min(y2, FRAME) - h
    return x, over_top if above else under_bottom, w, h


def frame_svg(img: dict) -> str:
    """The input image with both sets of boxes: device solid, host reference dashed on top, so agreeing boxes show
    both colours along one outline."""
    parts = [f'<image href="data:image/jpeg;base64,{img["jpeg_base64"]}" width="{FRAME}" height="{FRAME}"/>']
    for who, colour, above, dets in (("device", DEVICE_COLOUR, True, img["device_detections"]),
                                     ("reference", REFERENCE_COLOUR, False, img["reference_detections"])):
        ink = "#000" if who == "device" else "#fff"
        for d in dets:
            x1, y1, x2, y2 = (float(v) for v in d["box"])
            text = f"{d['label']} {d['score']:.2f}"
            tx, ty, tw, th = _tag([x1, y1, x2, y2], text, above)
            geometry = f'x="{x1:.2f}" y="{y1:.2f}" width="{max(x2 - x1, 0):.2f}" height="{max(y2 - y1, 0):.2f}"'
            parts.append(
                f'<g class="det {who}"><title>{who}: {e(text)} [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]</title>'
                f'<rect class="halo" {geometry}/><rect class="box" stroke="{colour}" {geometry}/>'
                f'<rect class="tagbg" fill="{colour}" x="{tx:.2f}" y="{ty:.2f}" width="{tw:.2f}" height="{th:.2f}"/>'
                f'<text x="{tx + 2:.2f}" y="{ty + th - 2.6:.2f}" fill="{ink}">{e(text)}</text></g>')
    return (f'<svg class="frame" data-image="{e(img["name"])}" data-passed="{str(img["passed"]).lower()}" '
            f'viewBox="0 0 {FRAME} {FRAME}" role="img" aria-label="{e(img["name"])} with device and reference boxes">'
            + "".join(parts) + "</svg>")


def pair_detections(device: list[dict], reference: list[dict]) -> list[tuple[int | None, int | None, float | None]]:
    """Device and reference detections paired greedily by IoU within a class: (device i, reference j, IoU), then
    the unpaired of each side."""
    scored = []
    for i, d in enumerate(device):
        for j, r in enumerate(reference):
            if d["class_id"] == r["class_id"]:
                iou = float(decode.iou_one_to_many(np.asarray(d["box"], float), np.asarray([r["box"]], float))[0])
                if iou > 0:
                    scored.append((iou, i, j))
    pairs, used_d, used_r = [], set(), set()
    for iou, i, j in sorted(scored, key=lambda t: (-t[0], t[1], t[2])):
        if i not in used_d and j not in used_r:
            pairs.append((i, j, iou))
            used_d.add(i)
            used_r.add(j)
    pairs.sort(key=lambda t: t[0])
    pairs += [(i, None, None) for i in range(len(device)) if i not in used_d]
    pairs += [(None, j, None) for j in range(len(reference)) if j not in used_r]
    return pairs


def detections_table(img: dict) -> str:
    dev, ref = img["device_detections"], img["reference_detections"]
    if not dev and not ref:
        return '<p class="muted">no detections above the score threshold on either side</p>'

    def cell(d):
        if d is None:
            return "&mdash;", "&mdash;"
        return (f"{e(d['label'])} <b>{d['score']:.3f}</b>",
                "<code>" + ", ".join(f"{float(v):.1f}" for v in d["box"]) + "</code>")

    rows, classes = [], []
    for i, j, iou in pair_detections(dev, ref):
        d, r = (dev[i] if i is not None else None), (ref[j] if j is not None else None)
        same = d is not None and r is not None and iou >= FLOAT_IOU_MIN and abs(d["score"] - r["score"]) < 1e-6
        rows.append([*cell(d), *cell(r), "&mdash;" if iou is None else f"{iou:.4f}",
                     "same" if same else "only device" if r is None else "only reference" if d is None
                     else "differs"])
        classes.append("" if same else "bad")
    return (table(["device", "box (x1, y1, x2, y2)", "reference", "box", "IoU", ""], rows, "dets", classes)
            + '<p class="muted note">device: its detections (fixed-point decode of its own outputs); reference: the '
              "float decode of tflite-micro's outputs on the host for the same input. Boxes in pixels of the "
              f"{FRAME}x{FRAME} input.</p>")


def heatmaps(check: dict, key: str) -> str:
    out = []
    for tensor, m in (check.get("delta_maps") or {}).items():
        grid = np.asarray(m["values"], dtype=np.int64)
        out.append(f'<figure class="heatmap">{charts.delta_heatmap(tensor, grid, f"{key}-{tensor}")}'
                   f"<figcaption>{e(tensor)}: where the device's bytes differ from the host reference's "
                   f"(channels x cells{', the classes that differ named' if tensor == 'scores' else ''})"
                   f"</figcaption></figure>")
    return "".join(out)


def image_section(img: dict, key: str, checks: list[dict]) -> str:
    dev, ref = img["device_detections"], img["reference_detections"]
    outputs = next((c for c in checks if c["name"] == "outputs" and c.get("delta_maps")), None)
    return (f'<article class="image {"pass" if img["passed"] else "fail"}" id="{key}">'
            f'<h3>{badge(img["passed"])} <code>{e(img["name"])}</code> <span class="muted">device {len(dev)} '
            f'detection(s), reference {len(ref)}</span></h3>'
            f'<div class="pair"><figure>{frame_svg(img)}<figcaption>{legend()}</figcaption></figure>'
            f'<div>{check_rows(checks)}{detections_table(img)}{heatmaps(outputs, key) if outputs else ""}</div>'
            "</div></article>")


def legend() -> str:
    return (f'<span class="key"><svg width="28" height="10"><line x1="0" y1="5" x2="28" y2="5" '
            f'stroke="{DEVICE_COLOUR}" stroke-width="3"/></svg> device (label above the box)</span> '
            f'<span class="key"><svg width="28" height="10"><line x1="0" y1="5" x2="28" y2="5" '
            f'stroke="{REFERENCE_COLOUR}" stroke-width="3" stroke-dasharray="5 3"/></svg> host reference '
            f"(label below)</span>")


def images_section(r: dict) -> str:
    images = r.get("images") or []
    per_image = [c for c in r["checks"] if c.get("image") is not None]
    if not images:
        if not per_image:
            return ""
        return ('<section id="images"><h2>Images</h2><p class="muted">This report carries no images (written by an '
                "older nanodet-mcu): the checks per image follow.</p>" + check_rows(per_image, True) + "</section>")
    order = sorted(range(len(images)), key=lambda i: images[i]["passed"])  # failing first, else in run order
    nav = "".join(f'<a href="#img-{i}">{badge(images[i]["passed"])} {e(images[i]["name"])}</a>' for i in order)
    body = "".join(image_section(images[i], f"img-{i}", [c for c in per_image if c["image"] == images[i]["name"]])
                   for i in order)
    failed = sum(not i["passed"] for i in images)
    return (f'<section id="images"><h2>Images <span class="muted">{len(images)} verified'
            f'{f", {failed} failed (shown first)" if failed else ", all passed"}</span></h2>'
            f'<nav class="toc">{nav}</nav>{body}</section>')


# --- timings ----------------------------------------------------------------------------------------------------

def latency_section(r: dict) -> str:
    lat, d = r.get("latency") or {}, r.get("device") or {}
    stages = {s: v for s, v in lat.items() if v.get("ticks")}
    if not stages:
        return ""
    units = sorted({v["unit"] for v in stages.values()})
    unit = units[0] if len(units) == 1 else "mixed units"
    values = {}
    for stage, v in stages.items():
        ticks = np.asarray(v["ticks"], np.float64)
        # the summary's values are ticks x one factor (verifier.latency_summary); recover it rather than re-derive
        factor = v["mean"] / ticks.mean() if ticks.mean() else 0.0
        values[stage] = ticks * factor
    total = sum(float(x.mean()) for x in values.values()) or 1.0
    per_tick = d.get("timer_units_per_tick")
    cycles = "instruction" not in str(d.get("timer_kind", "")) and isinstance(per_tick, int)
    rows = []
    for stage, v in stages.items():
        x = values[stage]
        row = [e(stage), fmt(len(x)), *(f"{q:.6g}" for q in (x.mean(), np.percentile(x, 50), np.percentile(x, 90),
                                                            x.min(), x.max())), f"{x.mean() / total:.1%}"]
        if cycles:
            row.append(f"{float(np.mean(v['ticks'])) * per_tick:,.0f}")
        rows.append(row)
    headers = ["stage", "runs", f"mean ({e(unit)})", "p50", "p90", "min", "max", "share"] + (
        ["mean cycles"] if cycles else [])
    if "instruction" in unit:
        note = ("QEMU counts emulated instructions (-icount): exact and repeatable on any host, so where the work "
                "does not depend on the image the spread is at most one timer tick; it is not time. A board reports "
                "cycles and ms.")
    else:
        clock = d.get("core_clock_hz")
        note = (f"ms from the {e(d.get('timer_kind', 'timer'))} count at the core clock"
                + (f" ({clock / 1e6:g} MHz)" if isinstance(clock, (int, float)) else "") + ".")
    return (f'<section id="latency"><h2>Latency per stage <span class="muted">{e(unit)}</span></h2>'
            f'<p class="muted">{note}</p>{table(headers, rows, "num")}'
            f'<figure>{charts.latency(values, unit)}<figcaption>every run as a dot; box = quartiles, whiskers = '
            f"min and max, red line = median</figcaption></figure></section>")


def _scaled(values: list[float], unit: str) -> tuple[float, str]:
    top = max(values, default=0.0)
    return (1e-6, f"M {unit}") if top >= 1e6 else (1e-3, f"k {unit}") if top >= 1e4 else (1.0, unit)


def profile_section(p: dict | None) -> str:
    if not p or not p.get("steps"):
        return ""
    steps = p["steps"]
    if all(isinstance(s.get("ms"), (int, float)) for s in steps):
        scale, unit, key = 1.0, "ms", "ms"
    else:
        scale, unit = _scaled([float(s["value"]) for s in steps], p["unit"])
        key = "value"
    plotted = [{**s, "plot_value": float(s[key]) * scale} for s in steps]
    by_op: dict[str, list[float]] = {}
    for s in plotted:
        by_op.setdefault(s["op"], []).append(s["plot_value"])
    total = sum(sum(v) for v in by_op.values()) or 1.0
    op_rows = [[f"<code>{e(op)}</code>", fmt(len(v)), f"{sum(v):.4g}", f"{sum(v) / total:.1%}"]
               for op, v in sorted(by_op.items(), key=lambda kv: -sum(kv[1]))]
    heavy = sorted(plotted, key=lambda s: -s["plot_value"])[:8]
    heavy_rows = [[f"#{s['index']}", f"<code>{e(s['op'])}</code>", f"<code>{e(s.get('tensor', ''))}</code>",
                   e("x".join(str(v) for v in s.get("shape") or [])), fmt(s.get("macs")),
                   f"{s['plot_value']:.4g}", "&mdash;" if s.get("share") is None else f"{s['share']:.1%}",
                   "&mdash;" if s.get("per_mac") is None else f"{s['per_mac']:.3g}"] for s in heavy]
    facts = []
    inf, summed = p.get("inference_ticks"), p.get("sum_ticks")
    if isinstance(inf, int) and isinstance(summed, int) and inf:
        facts.append(f"the steps account for {summed / inf:.2%} of the inference ticks ({summed:,} of {inf:,})")
    facts.append(f"engine {e(p.get('engine', '?'))}, {len(steps)} steps in model order, fused ops joined with +")
    heavy_headers = ["step", "op", "tensor", "shape", "MACs", e(unit), "share", f"{e(p['unit'])}/MAC"]
    return (f'<section id="profile"><h2>Per-op profile <span class="muted">{e(unit)}</span></h2>'
            f'<p class="muted">{"; ".join(facts)}.</p>'
            f'<h4>by op</h4>{table(["op", "steps", e(unit), "share"], op_rows, "num")}'
            f'<h4>heaviest steps</h4>{table(heavy_headers, heavy_rows, "num")}'
            f"<figure>{charts.profile(plotted, unit)}</figure></section>")


def bisect_section(b: dict | None) -> str:
    if not b:
        return ""
    status = b["status"]
    good = {"identical": True, "diverged": False}.get(status)
    body = f'<p>{badge(good, status)} {e(b.get("detail", ""))}</p>'
    step = b.get("step") if isinstance(b.get("step"), dict) else None
    if status == "diverged" and step:
        shape = "x".join(str(v) for v in step.get("shape") or [])
        facts = [("first differing step", f"#{e(step.get('index', '?'))} <code>{e(step.get('op', '?'))}</code>"),
                 ("its output", f"<code>{e(step.get('tensor', '?'))}</code> {e(shape)}"),
                 ("bytes", f"{fmt(b.get('differing_bytes'))} of {fmt(b.get('bytes'))} differ, max |delta| "
                           f"{fmt(b.get('max_abs_delta'))}"),
                 ("channels", e(", ".join(map(str, b.get("channels") or [])) or "-")),
                 ("rows", e(", ".join(map(str, b.get("rows") or [])) or "-")),
                 ("dumps", f"device <code>{e(b.get('device_npy', '-'))}</code>, host "
                           f"<code>{e(b.get('host_npy', '-'))}</code>")]
        body += '<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"
    return f'<section id="bisect" class="{"fail" if good is False else ""}"><h2>Bisect</h2>{body}</section>'


def details_section(r: dict) -> str:
    d, link = r.get("device") or {}, r.get("link") or {}
    scalar = [[e(k), f"<code>{e(v)}</code>"] for k, v in d.items() if not isinstance(v, (dict, list))]
    tensors = [[e(k), e("x".join(map(str, v.get("shape", [])))), fmt(v.get("scale")), fmt(v.get("zero_point"))]
               for k, v in d.items() if isinstance(v, dict)]
    link_rows = [[e(k), fmt(v)] for k, v in link.items()]
    out = '<section id="details"><h2>Device and link</h2><div class="pair wide">'
    if scalar:
        out += f"<div>{table(['device', ''], scalar)}</div>"
    out += "<div>"
    if tensors:
        out += table(["tensor", "shape", "scale", "zero point"], tensors)
    if link_rows:
        out += table(["link", ""], link_rows)
    return out + "</div></div></section>"


# --- the page ---------------------------------------------------------------------------------------------------

STYLE = """
:root { --pass: #1a7f37; --fail: #cf222e; --muted: #59636e; --line: #d8dee4; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328;
       margin: 0 auto; padding: 20px 28px 40px; max-width: 1280px; background: #fff; }
h2 { font-size: 19px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 10px; } h4 { margin: 4px 0 6px; font-size: 13px; }
code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; }
.muted { color: var(--muted); font-weight: normal; font-size: 13px; }
.summary { display: grid; grid-template-columns: 220px 1fr; gap: 10px 24px; padding: 16px 20px;
           border-radius: 8px; border: 2px solid; }
.summary.pass { border-color: var(--pass); background: #f0fff4; }
.summary.fail { border-color: var(--fail); background: #fff5f5; }
.verdict .big { font-size: 44px; font-weight: 800; letter-spacing: 2px; }
.summary.pass .big { color: var(--pass); } .summary.fail .big { color: var(--fail); }
.summary .source { grid-column: 1 / -1; margin: 0; color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
table.checks td:first-child, table.dets code { white-space: nowrap; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; border-bottom: 1px solid #eef1f4; }
thead th { border-bottom: 1px solid var(--line); color: var(--muted); font-weight: 600; }
table.facts th { color: var(--muted); font-weight: 600; padding-right: 16px; white-space: nowrap; }
table.num td { font-variant-numeric: tabular-nums; }
tr.bad td { background: #fff0f0; }
.badge { display: inline-block; min-width: 44px; text-align: center; padding: 0 6px; border-radius: 10px;
         font-size: 11px; font-weight: 700; color: #fff; vertical-align: 1px; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); } .badge.na { background: #8c959f; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-bottom: 14px; }
nav.toc a { color: inherit; text-decoration: none; font-size: 13px; }
article.image { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 0 0 18px; }
article.image.fail { border: 2px solid var(--fail); }
.pair { display: grid; grid-template-columns: 520px 1fr; gap: 22px; align-items: start; }
.pair.wide { grid-template-columns: auto 1fr; }
figure { margin: 0; }
svg.frame { width: 520px; height: 520px; display: block; background: #222; }
svg.frame .box { fill: none; stroke-width: 1.6; }
svg.frame .reference .box { stroke-dasharray: 5 3; }
svg.frame .halo { fill: none; stroke: rgba(0, 0, 0, 0.55); stroke-width: 3.2; }
svg.frame .reference .halo { stroke: none; }
svg.frame text { font: 7.5px ui-monospace, "DejaVu Sans Mono", monospace; }
.key { margin-right: 14px; font-size: 12px; white-space: nowrap; } .key svg { vertical-align: middle; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
svg.chart { width: 100%; height: auto; max-width: 1100px; display: block; }
figure.heatmap { margin-top: 12px; }
p.note { font-size: 12px; margin-top: -6px; }
#bisect.fail { border-left: 4px solid var(--fail); padding-left: 12px; }
"""


def render(report: dict, source: str = "") -> str:
    """The page for a report in its JSON form (`Report.as_dict()` or `load_report`)."""
    d = report.get("device") or {}
    device_checks = [c for c in report["checks"] if c.get("image") is None]
    title = (f"nanodet-mcu verify {'PASS' if report['passed'] else 'FAIL'}: {d.get('board', '?')} "
             f"{d.get('engine', '')} {report.get('date', '')}").strip()
    body = [summary(report, source)]
    if device_checks:
        body.append(f'<section id="device-checks"><h2>Device</h2>{check_rows(device_checks)}</section>')
    body += [bisect_section(report.get("bisect")), images_section(report), latency_section(report),
             profile_section(report.get("profile")), details_section(report)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(p for p in body if p)
            + f'\n<footer class="muted">written by nanodet-mcu {e(__version__)}; self-contained: opens from disk '
              "without a network</footer></body></html>\n")


def write_html(report: dict, path: str | Path, source: str = "") -> None:
    check_writable(path)
    outputs.write_file(path, render(report, source))
