"""The AOT engine generator: a .tflite int8 model -> plain C (nd_model.c/.h) over firmware/common/nd_kernels.

`emit_c(info, out_dir)` reads the flatbuffer into a graph (graph.py), checks every op as TFLM's Prepare would
(validate.py), lowers it to kernel calls with every constant precomputed (lower.py, quant.py), plans the arena
statically (planner.py) and renders the C (emit.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nanodet_mcu import model_info, outputs
from nanodet_mcu.codegen.aot import emit, graph, lower, planner, validate

FILES = ("nd_model.c", "nd_model.h")


@dataclass
class AotResult:
    arena_bytes: int
    files: list[str]
    flash_bytes: int = 0  # bytes of constant arrays (weights, tables) the normal kernel build compiles
    scratch_bytes: int = 0  # the largest kernel scratch of any step (inside the arena)
    const_section_bytes: int = 0  # the constant arrays word-aligned, larger of the two kernel builds (RAM placement)


def read(info: model_info.ModelInfo) -> graph.Graph:
    """The model's graph after the front-end checks (validate.py, as TFLM's Prepare would): what passes lowers to C
    that builds and computes what TFLM computes.  Every user of a lowering (emit, the arena figure, the step tables)
    starts here."""
    g = graph.read(info)
    validate.validate(g)
    return g


def program(info: model_info.ModelInfo, weights_format: str = "int16") -> lower.Program:
    """The model's lowered program (read, then lower.lower)."""
    return lower.lower(read(info), weights_format)


def emit_c(info: model_info.ModelInfo, out_dir: str | Path, weights_format: str = "int16") -> AotResult:
    """Write nd_model.c and nd_model.h for NanoDet model `info` into out_dir (both or neither).

    weights_format: "int16" (the conv weights pre-extended: fastest) or "int8" (half their flash, a few more
    instructions per MAC)."""
    return emit_any(info, out_dir, nanodet=True, weights_format=weights_format)


def emit_any(info: model_info.ModelInfo, out_dir: str | Path, nanodet: bool = False,
             weights_format: str = "int16") -> AotResult:
    """emit_c for any int8 model of supported ops (nanodet=False: no scores/boxes accessors; tests use this)."""
    scores = boxes = None
    if nanodet:
        layout = model_info.nanodet_layout(info)
        scores, boxes = layout.scores.index, layout.boxes.index
    prog = program(info, weights_format)
    offsets, arena = planner.plan(prog)
    texts = {"nd_model.h": emit.header(info, arena, prog),
             "nd_model.c": emit.source(info, prog, offsets, scores, boxes)}
    out = Path(out_dir)
    with outputs.Staged() as staged:  # both files or neither
        for name, text in texts.items():
            staged.add(out / name, text)
        staged.commit()
    scratch = max((st.scratch and max(st.scratch.ref_bytes, st.scratch.fast_bytes) or 0 for st in prog.steps),
                  default=0)
    return AotResult(arena, [str(out / n) for n in FILES], emit.flash_bytes(prog)["fast"], scratch,
                     emit.const_section_bytes(prog))
