"""The AOT engine generator: a .tflite int8 model -> plain C (nd_model.c/.h) over firmware/common/nd_kernels.

`emit_c(info, out_dir)` reads the flatbuffer into a graph (graph.py), checks every op as TFLM's Prepare would
(validate.py), lowers it to kernel calls with every constant precomputed (lower.py, quant.py), plans the arena
statically (planner.py) and renders the C (emit.py).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nanodet_mcu import model_info
from nanodet_mcu.codegen.aot import emit, graph, lower, planner, validate

FILES = ("nd_model.c", "nd_model.h")


@dataclass
class AotResult:
    arena_bytes: int
    files: list[str]
    flash_bytes: int = 0  # bytes of constant data (weights, tables, parameters) in the emitted C


def emit_c(info: model_info.ModelInfo, out_dir: str | Path) -> AotResult:
    """Write nd_model.c and nd_model.h for NanoDet model `info` into out_dir (each file atomically)."""
    return emit_any(info, out_dir, nanodet=True)


def emit_any(info: model_info.ModelInfo, out_dir: str | Path, nanodet: bool = False) -> AotResult:
    """emit_c for any int8 model of supported ops (nanodet=False: no scores/boxes accessors; tests use this)."""
    scores = boxes = None
    if nanodet:
        layout = model_info.nanodet_layout(info)
        scores, boxes = layout.scores.index, layout.boxes.index
    g = graph.read(info)
    validate.validate(g)  # as TFLM's Prepare would: what passes lowers to C that builds
    prog = lower.lower(g)
    offsets, arena = planner.plan(prog)
    texts = {"nd_model.h": emit.header(info, arena, prog),
             "nd_model.c": emit.source(info, prog, offsets, scores, boxes)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out / name)
    flash = sum(data.nbytes for _, _, data in emit.referenced_consts(prog))
    return AotResult(arena, [str(out / n) for n in FILES], flash)
