"""The steps an engine runs, numbered as the device's step instrumentation numbers them (firmware/common/nd_steps.h).

TFLM runs the model's operators one by one: step i is operator i, its outputs are the operator's outputs.  The AOT
engine runs the lowered program: a step may be several operators fused (named "CONV_2D+LEAKY_RELU"), and is compared
at its last output; RESHAPEs and folded PADs are no step at all.  Its table is derived here from the same lowering the
emitter used (nanodet_mcu.codegen.aot), so the device needs to send nothing but indices.  Each output names the model
tensor whose tflite-micro value is its host twin (the reference for verify --bisect), or -1 when it has none.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanodet_mcu import model_info
from nanodet_mcu.errors import NanodetError

# bytes per element of the tensor types the device checksums (engine_tflm.cc's eval_tensor_bytes); others: no CRC
DTYPE_BYTES = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "int32": 4, "float32": 4, "int64": 8}


@dataclass(frozen=True)
class StepOutput:
    tensor: int  # model tensor index, the host twin; -1: no host twin
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPE_BYTES.get(self.dtype, 0)

    @property
    def has_twin(self) -> bool:
        return self.tensor >= 0 and self.dtype in DTYPE_BYTES


@dataclass(frozen=True)
class Step:
    index: int
    op: str  # op kind, fused kinds joined with "+"
    macs: int
    outputs: tuple[StepOutput, ...]
    shape: tuple[int, ...] = ()  # what the step computes, also when its output is completed by a later step

    @property
    def tensor(self) -> StepOutput | None:
        """The output tables name (the first; a fused step has one, its last op's)."""
        return self.outputs[0] if self.outputs else None

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.outputs)

    @property
    def has_twin(self) -> bool:
        return bool(self.outputs) and all(o.has_twin for o in self.outputs)


def tflm_steps(info: model_info.ModelInfo) -> list[Step]:
    return [Step(op.index, op.name, op.macs, tuple(StepOutput(t.index, t.name, t.shape, t.dtype) for t in op.outputs),
                 tuple(op.outputs[0].shape) if op.outputs else ())
            for op in model_info.operators(info)]


def aot_steps(info: model_info.ModelInfo) -> list[Step]:
    from nanodet_mcu.codegen.aot import emit, lower, read

    g = read(info)
    prog = lower.lower(g)
    steps = []
    for i, (s, outs) in enumerate(zip(prog.steps, emit.step_outputs(prog))):
        tensors = [g.tensors[t] for t in outs]
        steps.append(Step(i, s.label, s.macs, tuple(StepOutput(t.index, t.name, t.shape, t.dtype) for t in tensors),
                          tuple(s.shape)))
    return steps


def engine_steps(info: model_info.ModelInfo, engine: str) -> list[Step]:
    """The step table of `engine` ("aot" or "tflm", as the device's INFO names it) for this model."""
    if engine == "aot":
        return aot_steps(info)
    if engine == "tflm":
        return tflm_steps(info)
    raise NanodetError(f"no step table for engine '{engine}' (step instrumentation knows aot and tflm)")
