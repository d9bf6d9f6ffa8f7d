"""The .tflite flatbuffer as a small graph IR: tensors (shape, type, quantisation, constant data) and ops (builtin
name, inputs, outputs, options), in execution order.  Constants whose data does not fit their shape and options of
the wrong type are refused here; which ops the engine supports is lower.LOWERINGS, and validate.py checks the rest."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nanodet_mcu import model_info
from nanodet_mcu.errors import NanodetError

_NP_TYPES = {0: np.float32, 2: np.int32, 9: np.int8, 4: np.int64}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray | None  # per-tensor (len 1) or per-channel
    zero_points: np.ndarray | None
    quant_dim: int = 0
    data: np.ndarray | None = None  # constant contents

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zp(self) -> int:
        return int(self.zero_points[0])

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact (np.prod could wrap on a corrupt shape); 1 for a scalar


@dataclass
class Op:
    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    opts: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


def _options(s, op, kind: str, index: int) -> dict:
    cls = {"CONV_2D": s.Conv2DOptions, "DEPTHWISE_CONV_2D": s.DepthwiseConv2DOptions, "MAX_POOL_2D": s.Pool2DOptions,
           "CONCATENATION": s.ConcatenationOptions, "SPLIT": s.SplitOptions,
           "RESIZE_BILINEAR": s.ResizeBilinearOptions, "LEAKY_RELU": s.LeakyReluOptions, "ADD": s.AddOptions,
           "STRIDED_SLICE": s.StridedSliceOptions}.get(kind)
    if cls is None:
        return {}
    table = op.BuiltinOptions()
    # An op whose options table is missing or of another op's type (a corrupted opcode) would be read as garbage.
    if table is None or op.BuiltinOptionsType() != getattr(s.BuiltinOptions, cls.__name__):
        raise NanodetError(f"the AOT engine refuses operator {index} ({kind}): its options are "
                           f"{'missing' if table is None else 'of another type'} (expected {cls.__name__})")
    o = cls()
    o.Init(table.Bytes, table.Pos)
    names = {"CONV_2D": ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor",
                         "FusedActivationFunction"),
             "DEPTHWISE_CONV_2D": ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor",
                                   "FusedActivationFunction", "DepthMultiplier"),
             "MAX_POOL_2D": ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth", "FusedActivationFunction"),
             "CONCATENATION": ("Axis", "FusedActivationFunction"), "SPLIT": ("NumSplits",),
             "RESIZE_BILINEAR": ("AlignCorners", "HalfPixelCenters"), "LEAKY_RELU": ("Alpha",),
             "ADD": ("FusedActivationFunction",),
             "STRIDED_SLICE": ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask", "ShrinkAxisMask", "Offset")}[kind]
    return {n: getattr(o, n)() for n in names}


def _buffer_data(model, data: bytes, t) -> np.ndarray | None:
    buf = model.Buffers(t.Buffer())
    if buf is None:
        return None
    dtype = _NP_TYPES.get(t.Type())
    if buf.DataLength() > 0:
        raw = buf.DataAsNumpy().tobytes()
    elif buf.Offset() > 1 and buf.Size() > 0:  # large models keep buffers after the flatbuffer
        raw = data[buf.Offset():buf.Offset() + buf.Size()]
    else:
        return None
    name = (t.Name() or b"").decode(errors="replace")
    if dtype is None:
        raise NanodetError(f"constant tensor '{name}' has unsupported type {t.Type()}")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    need = math.prod(shape) * np.dtype(dtype).itemsize
    if len(raw) != need:
        raise NanodetError(f"constant tensor '{name}' {list(shape)} has {len(raw)} bytes of data, its shape and "
                           f"type need {need} (corrupt model)")
    return np.frombuffer(raw, dtype).reshape(shape).copy()


def read(info: model_info.ModelInfo) -> Graph:
    s = model_info.schema()
    model = s.Model.GetRootAsModel(info.data, 0)
    sub = model.Subgraphs(0)
    names = model_info.builtin_op_names()
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        q = t.Quantization()
        scales = zps = None
        qdim = 0
        if q is not None and q.ScaleLength() > 0:
            scales = q.ScaleAsNumpy().astype(np.float32)
            zps = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(len(scales), np.int64)
            qdim = q.QuantizedDimension()
        tensors.append(Tensor(i, (t.Name() or b"").decode(errors="replace"),
                              tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                              model_info._TYPE_NAMES.get(t.Type(), f"type{t.Type()}"), scales, zps, qdim,
                              _buffer_data(model, info.data, t)))
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        kind = names.get(codes[op.OpcodeIndex()], f"OP{codes[op.OpcodeIndex()]}")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()]
        ops.append(Op(i, kind, ins, outs, _options(s, op, kind, i)))
    return Graph(tensors, ops, [int(x) for x in sub.InputsAsNumpy()], [int(x) for x in sub.OutputsAsNumpy()])
