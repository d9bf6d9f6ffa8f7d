"""The HTML report's charts, drawn by matplotlib (Agg, no pyplot state) and returned as inline SVG text.

Each function takes plain report data and returns one `<svg>` element; `html` places them.  Text stays text
(`svg.fonttype: none`) so the browser can search and scale it, and ids are prefixed so several charts can share a page.
"""
from __future__ import annotations

import functools
import io
import re

import numpy as np

from nanodet_mcu import spec

WIDTH_IN = 9.6  # 920 px at the SVG's 96 dpi: the page's content width
SIDE_WIDTH_IN = 7.2  # beside an image: the right-hand column of an image's card
SPARSE = 40  # at most this many differing bytes are ringed on a heatmap, where single cells would be hard to see
_RC = {"svg.fonttype": "none", "svg.hashsalt": "nanodet-mcu", "font.size": 9, "axes.titlesize": 9,
       "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False}
_OP_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
               "#64b5cd")


def _figure(height_in: float, width_in: float = WIDTH_IN):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def to_svg(fig, prefix: str) -> str:
    """The figure as an `<svg>` element for inline use: no XML prolog, ids unique to `prefix`, scalable width."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = text.replace("*{stroke-linejoin", "svg.chart *{stroke-linejoin")  # an inline <style> is page-wide
    for ident in sorted(set(re.findall(r'\bid="([^"]+)"', text)), key=len, reverse=True):
        text = re.sub(rf'(id="|#){re.escape(ident)}(?=["\)])', rf"\g<1>{prefix}-{ident}", text)
    # the page sets the size; the viewBox keeps the proportions
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', rf'<svg\1 class="chart" data-chart="{prefix}"',
                  text, count=1)


def _styled(draw):
    """Run a chart function with the report's matplotlib style (fonts, spines) in force while it draws."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)
    return wrapper


@_styled
def latency(stages: dict[str, np.ndarray], unit: str, prefix: str = "latency") -> str:
    """One row per stage: every run as a dot over a box plot (quartiles, whiskers at min and max), each row on its
    own axis because the stages differ by orders of magnitude."""
    fig = _figure(0.55 + 1.05 * len(stages))
    axes = fig.subplots(len(stages), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)  # jitter only spreads dots vertically; the same report draws the same chart
    total = sum(float(v.mean()) for v in stages.values()) or 1.0
    for ax, (stage, values) in zip(axes, stages.items()):
        ax.boxplot(values, orientation="horizontal", whis=(0, 100), widths=0.6, showfliers=False,
                   medianprops={"color": "#c44e52"}, boxprops={"color": "#555"}, whiskerprops={"color": "#555"},
                   capprops={"color": "#555"})
        ax.scatter(values, 1 + rng.uniform(-0.18, 0.18, len(values)), s=14, color="#4c72b0", alpha=0.7, zorder=3,
                   linewidths=0)
        spread = float(values.max() - values.min())
        mean = float(values.mean())
        ax.set_title(f"{stage}: mean {mean:.6g} {unit}, {mean / total:.1%} of the total; {len(values)} runs over "
                     f"all images, spread {spread:.3g} ({spread / mean if mean else 0:.2%})", loc="left")
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        # at least +-2.5 % of the mean on the axis: a one-tick jitter must not look like a wide spread
        half = max(spread * 0.55, abs(mean) * 0.025, 1e-12)
        centre = (float(values.max()) + float(values.min())) / 2
        ax.set_xlim(centre - half, centre + half)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.set_xlabel(unit, loc="right")
    return to_svg(fig, prefix)


@_styled
def profile(steps: list[dict], unit: str, prefix: str = "profile") -> str:
    """Per-op time in model order, top to bottom, one bar per (fused) step, coloured by op, share at the bar's end."""
    kinds = list(dict.fromkeys(s["op"] for s in steps))
    colour = {k: _OP_COLOURS[i % len(_OP_COLOURS)] for i, k in enumerate(kinds)}
    values = np.asarray([s["plot_value"] for s in steps], np.float64)
    fig = _figure(0.9 + 0.17 * len(steps))
    ax = fig.subplots()
    y = np.arange(len(steps))
    ax.barh(y, values, height=0.75, color=[colour[s["op"]] for s in steps])
    ax.set_yticks(y, [f"#{s['index']} {s['op']}" for s in steps], fontsize=7)
    ax.set_ylim(len(steps) - 0.5, -0.5)
    top = float(values.max(initial=0)) or 1.0
    for yi, (v, s) in enumerate(zip(values, steps)):
        if s.get("share") is not None:
            ax.text(v + top * 0.005, yi, f"{s['share']:.1%}", va="center", fontsize=6.5, color="#444")
    ax.set_xlim(0, top * 1.1)
    ax.set_xlabel(f"{unit} per step", loc="right")
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=colour[k], label=k) for k in kinds], loc="outside upper center", fontsize=7,
               frameon=False, ncols=min(len(kinds), 4))
    return to_svg(fig, prefix)


@_styled
def delta_heatmap(tensor: str, grid: np.ndarray, prefix: str) -> str:
    """|device - host| of one output tensor, channels (rows) x cells (columns); identical bytes stay blank."""
    from matplotlib import colormaps

    channels, cells = grid.shape
    fig = _figure(1.3 + 0.03 * channels, SIDE_WIDTH_IN)
    ax = fig.subplots()
    top = max(int(grid.max(initial=0)), 1)
    if top <= 12:  # a few LSB: one colour per integer, so the colour bar reads as counts, not a continuum
        from matplotlib.colors import BoundaryNorm

        norm, ticks = BoundaryNorm(np.arange(0.5, top + 1.5), 256), list(range(1, top + 1))
    else:
        from matplotlib.colors import Normalize

        norm, ticks = Normalize(0, top), None
    from matplotlib.colors import ListedColormap

    # magma from orange to black: even a 1-LSB cell stands out from the blank (identical) background
    cmap = ListedColormap(colormaps["magma_r"](np.linspace(0.3, 1.0, 256))).with_extremes(bad="#f4f4f4")
    image = ax.imshow(np.ma.masked_equal(grid, 0), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    rows, cols = np.nonzero(grid)
    if len(rows) <= SPARSE:
        ax.scatter(cols, rows, s=70, facecolors="none", edgecolors="#1e90ff", linewidths=1.0)
    ax.set_xlabel(f"cell (row x {spec.GRID} + column), {cells} cells", loc="right")
    if tensor == "boxes" and channels == spec.BOX_CHANNELS:
        sides = ("left", "top", "right", "bottom")
        ax.set_yticks([i * spec.NUM_BINS + spec.NUM_BINS / 2 - 0.5 for i in range(4)],
                      [f"{s} bins" for s in sides])
        for i in range(1, 4):
            ax.axhline(i * spec.NUM_BINS - 0.5, color="#bbb", linewidth=0.5)
        ax.set_ylabel("channel (side x 8 + bin)")
    else:
        hot = np.flatnonzero(grid.any(axis=1))
        if tensor == "scores" and channels == spec.NUM_CLASSES and 0 < len(hot) <= 12:
            ax.set_yticks(hot, [f"{c} {spec.COCO_LABELS[c]}" for c in hot], fontsize=7)
        ax.set_ylabel("channel (class)" if tensor == "scores" else "channel")
    for i in range(1, cells // spec.GRID):  # grid rows of the feature map
        ax.axvline(i * spec.GRID - 0.5, color="#e2e2e2", linewidth=0.4)
    differing = int(np.count_nonzero(grid))
    ax.set_title(f"{tensor}: {differing} of {grid.size} bytes differ, max |delta| {top} LSB"
                 + (" (ringed)" if len(rows) <= SPARSE else ""), loc="left")
    fig.colorbar(image, ax=ax, label="|device - host| (LSB)", shrink=0.9, pad=0.01, ticks=ticks)
    return to_svg(fig, prefix)
