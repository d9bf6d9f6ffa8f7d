"""The AOT front end's checks: every op is checked, before anything is lowered, the way TFLM's Prepare checks it
(operand counts, types, quantisation, shapes and sizes), plus what the AOT kernels assume (batch 1, int8
activations, shapes exactly as the op computes them, fields that fit the kernels' parameter structs).

TFLM refuses a model whose ops fail Prepare at load time; the AOT engine runs no Prepare on the device, so a model
it accepts must already be one TFLM would run, with every shape consistent: otherwise the emitted C could compute
garbage, index out of its buffers or fail to compile.  Each refusal names the op's index, kind and reason.
"""
from __future__ import annotations

import math

import numpy as np

from nanodet_mcu.codegen.aot import kernels
from nanodet_mcu.codegen.aot.graph import Graph, Op, Tensor
from nanodet_mcu.codegen.aot.lower import Lowering, refuse_unsupported
from nanodet_mcu.errors import NanodetError

MAX_RANK = kernels.COPY_MAX_DIMS  # nd_copy_s8's dimensions: every tensor's rank
MAX_PARAM = 32767       # kernel sizes, strides, dilations and paddings are int16_t in the params structs
MAX_BYTES = 1 << 30     # any one tensor; the arena offsets are int32
MAX_CONCAT_INPUTS = 10  # TFLM's kMaxInputNum
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class Refused(NanodetError):
    """The model is not one the AOT engine (or TFLM's Prepare) accepts."""


def _fail(op: Op, reason: str) -> Refused:
    return Refused(f"the AOT engine refuses operator {op.index} ({op.kind}): {reason}")


def _desc(t: Tensor) -> str:
    return f"tensor {t.index} '{t.name}' {list(t.shape)}"


class _Check:
    def __init__(self, graph: Graph):
        self.g = graph
        self.t = graph.tensors
        self.strided_window = Lowering(graph)._strided_window  # STRIDED_SLICE's window, as the lowering reads it

    # --- operands ----------------------------------------------------------------------------------------------
    def arity(self, op: Op, inputs: tuple[int, ...], outputs: int | tuple[int, ...] = 1) -> None:
        outputs = (outputs,) if isinstance(outputs, int) else outputs
        if len(op.inputs) not in inputs:
            raise _fail(op, f"{len(op.inputs)} inputs, expected {' or '.join(map(str, inputs))}")
        if len(op.outputs) not in outputs:
            raise _fail(op, f"{len(op.outputs)} outputs, expected {' or '.join(map(str, outputs))}")

    def operand(self, op: Op, k: int) -> Tensor:
        ti = op.inputs[k]
        if ti < 0:
            raise _fail(op, f"input {k} is missing (tensor index {ti})")
        return self.t[ti]

    def const(self, op: Op, k: int, what: str, dtypes=("int32",), size: int | None = None) -> np.ndarray:
        t = self.operand(op, k)
        if t.data is None:
            raise _fail(op, f"{what} ({_desc(t)}) is not a constant; TFLM and the AOT engine need it constant")
        if t.dtype not in dtypes:
            raise _fail(op, f"{what} ({_desc(t)}) is {t.dtype}, expected {' or '.join(dtypes)}")
        data = t.data.reshape(-1).astype(np.int64)
        if size is not None and data.size != size:
            raise _fail(op, f"{what} ({_desc(t)}) has {data.size} values, expected {size}")
        return data

    def activation(self, op: Op, t: Tensor, what: str) -> None:
        """An int8 activation tensor with one scale and an int8 zero point."""
        if t.dtype != "int8":
            raise _fail(op, f"{what} {_desc(t)} is {t.dtype}; the AOT engine runs int8 activations only")
        if t.scales is None or t.zero_points is None:
            raise _fail(op, f"{what} {_desc(t)} is not quantised")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise _fail(op, f"{what} {_desc(t)} has {len(t.scales)} scales; activations need one (per tensor)")
        if not (math.isfinite(t.scale) and t.scale > 0):
            raise _fail(op, f"{what} {_desc(t)} has scale {t.scale}; it must be positive and finite")
        if not -128 <= t.zp <= 127:
            raise _fail(op, f"{what} {_desc(t)} has zero point {t.zp}, outside int8")

    def same_quant(self, op: Op, a: Tensor, b: Tensor) -> None:
        if a.zp != b.zp or a.scale != b.scale:
            raise _fail(op, f"{_desc(a)} ({a.scale:g}, {a.zp}) and {_desc(b)} ({b.scale:g}, {b.zp}) are quantised "
                            f"differently; this op needs identical input and output quantisation")

    def fused(self, op: Op) -> None:
        act = op.opts.get("FusedActivationFunction", 0)
        if act not in ACTIVATIONS:
            raise _fail(op, f"fused activation {act} is not supported (only {', '.join(ACTIVATIONS.values())})")

    def rank(self, op: Op, t: Tensor, want: int, what: str) -> None:
        if len(t.shape) != want:
            raise _fail(op, f"{what} {_desc(t)} has rank {len(t.shape)}, expected {want}")

    def batch1(self, op: Op, t: Tensor, what: str) -> None:
        self.rank(op, t, 4, what)
        if t.shape[0] != 1:
            raise _fail(op, f"{what} {_desc(t)} has batch {t.shape[0]}; the AOT engine runs batch 1")

    def expect_shape(self, op: Op, y: Tensor, want, how: str) -> None:
        if tuple(y.shape) != tuple(int(v) for v in want):
            raise _fail(op, f"output {_desc(y)} is not the {list(map(int, want))} {how}")

    @staticmethod
    def param(op: Op, name: str, value: int, low: int = 1) -> None:
        if not low <= value <= MAX_PARAM:
            raise _fail(op, f"{name} {value} is outside {low}..{MAX_PARAM}")

    # --- graph -------------------------------------------------------------------------------------------------
    def graph(self) -> None:
        g = self.g
        for t in self.t:
            if any(d < 0 for d in t.shape):
                raise Refused(f"the AOT engine refuses {_desc(t)}: negative (dynamic) dimension")
            if t.data is None and t.dtype == "int8" and t.size > MAX_BYTES:
                raise Refused(f"the AOT engine refuses {_desc(t)}: {t.size} bytes is too large")
            if len(t.shape) > MAX_RANK:
                raise Refused(f"the AOT engine refuses {_desc(t)}: rank {len(t.shape)}, at most {MAX_RANK} (its copies "
                              "move data over that many axes)")
        if not g.inputs or not g.outputs:
            raise Refused("the AOT engine refuses a model without inputs or outputs")
        written: dict[int, int] = {}
        ready = set(g.inputs) | {t.index for t in self.t if t.data is not None}
        for ti in g.inputs + g.outputs:
            t = self.t[ti]
            if t.dtype != "int8" or t.scales is None or len(t.scales) != 1:
                raise Refused(f"the AOT engine refuses model {'input' if ti in g.inputs else 'output'} {_desc(t)}: "
                              f"it must be int8 with per-tensor quantisation (is {t.dtype})")
            if t.size == 0:
                raise Refused(f"the AOT engine refuses model input/output {_desc(t)}: it is empty")
        for op in g.ops:
            for k, ti in enumerate(op.inputs):
                if ti >= 0 and ti not in ready:
                    raise _fail(op, f"input {k} ({_desc(self.t[ti])}) is neither a model input, a constant nor "
                                    f"written by an earlier operator")
            for ti in op.outputs:
                if ti < 0:
                    raise _fail(op, "an output is missing")
                t = self.t[ti]
                if ti in written or ti in g.inputs or t.data is not None:
                    why = (f"also written by operator {written[ti]}" if ti in written else
                           "a model input" if ti in g.inputs else "a constant")
                    raise _fail(op, f"output {_desc(t)} is {why}")
                if t.size == 0:
                    raise _fail(op, f"output {_desc(t)} is empty")
                written[ti] = op.index
                ready.add(ti)
        missing = [ti for ti in g.outputs if ti not in ready]
        if missing:
            raise Refused(f"the AOT engine refuses the model: output {_desc(self.t[missing[0]])} is never written")

    # --- ops ---------------------------------------------------------------------------------------------------
    def conv(self, op: Op, depthwise: bool) -> None:
        self.arity(op, (2, 3))
        x, w, y = self.operand(op, 0), self.operand(op, 1), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.batch1(op, x, "input")
        self.batch1(op, y, "output")
        self.rank(op, w, 4, "filter")
        if w.data is None:
            raise _fail(op, f"filter {_desc(w)} is not a constant")
        if w.dtype != "int8":
            raise _fail(op, f"filter {_desc(w)} is {w.dtype}; int8 inputs need int8 filters (hybrid models are not "
                            "supported, as in TFLM)")
        o = op.opts
        for name in ("StrideH", "StrideW", "DilationHFactor", "DilationWFactor"):
            self.param(op, name, o[name])
        self.param(op, "filter height", w.shape[1])
        self.param(op, "filter width", w.shape[2])
        self.fused(op)
        in_c, out_c = x.shape[3], y.shape[3]
        if depthwise:
            if w.shape[0] != 1 or w.shape[3] != out_c:
                raise _fail(op, f"filter {_desc(w)} is not [1, kh, kw, {out_c}] for {out_c} output channels")
            if out_c % in_c:
                raise _fail(op, f"{out_c} output channels are not a multiple of the {in_c} input channels")
            dm = o["DepthMultiplier"]
            if dm != out_c // in_c:
                raise _fail(op, f"depth multiplier {dm} does not match {in_c} -> {out_c} channels")
            qdim = 3
        else:
            if w.shape[0] != out_c or w.shape[3] != in_c:
                raise _fail(op, f"filter {_desc(w)} is not [{out_c}, kh, kw, {in_c}] for {in_c} -> {out_c} "
                                "channels (grouped convolutions are not supported)")
            qdim = 0
        if w.scales is None or w.zero_points is None:
            raise _fail(op, f"filter {_desc(w)} is not quantised")
        if len(w.scales) not in (1, out_c):
            raise _fail(op, f"filter {_desc(w)} has {len(w.scales)} scales; TFLM needs 1 or one per output channel "
                            f"({out_c})")
        if len(w.scales) > 1 and w.quant_dim != qdim:
            raise _fail(op, f"filter {_desc(w)} is quantised along dimension {w.quant_dim}, expected {qdim}")
        if len(w.zero_points) not in (1, len(w.scales)) or np.any(w.zero_points != 0):
            raise _fail(op, f"filter {_desc(w)} has non-zero or mismatched zero points (int8 filters are symmetric)")
        if not np.all(np.isfinite(w.scales)) or np.any(w.scales <= 0):
            raise _fail(op, f"filter {_desc(w)} has a scale that is not positive and finite")
        if len(op.inputs) == 3 and op.inputs[2] >= 0:
            b = self.t[op.inputs[2]]
            if b.data is None or b.dtype != "int32":
                raise _fail(op, f"bias {_desc(b)} must be a constant int32 tensor (is {b.dtype}"
                                f"{'' if b.data is not None else ', not constant'})")
            if b.size != out_c:
                raise _fail(op, f"bias {_desc(b)} has {b.size} values for {out_c} output channels")
            if b.zero_points is not None and np.any(b.zero_points != 0):
                raise _fail(op, f"bias {_desc(b)} has a non-zero zero point")
        for axis, name in ((1, "height"), (2, "width")):
            k, s, d = w.shape[axis], o["StrideH" if axis == 1 else "StrideW"], \
                o["DilationHFactor" if axis == 1 else "DilationWFactor"]
            self.window(op, x.shape[axis], k, s, d, o["Padding"], y.shape[axis], name)

    def window(self, op: Op, size: int, k: int, stride: int, dilation: int, padding: int, out: int,
               name: str) -> None:
        """The output size TFLM computes (ComputePaddingHeightWidth): SAME ceil(n/s), VALID ceil((n-eff+1)/s)."""
        eff = (k - 1) * dilation + 1
        if padding not in (0, 1):
            raise _fail(op, f"padding {padding} is neither SAME nor VALID")
        want = -(-size // stride) if padding == 0 else -(-(size - eff + 1) // stride)
        if want < 1:
            raise _fail(op, f"a {eff}-wide window does not fit the input {name} {size} (VALID padding)")
        if out != want:
            raise _fail(op, f"output {name} {out} is not the {want} that input {name} {size}, window {k}, stride "
                            f"{stride}, dilation {dilation} and {'SAME' if padding == 0 else 'VALID'} padding give")

    def max_pool_2d(self, op: Op) -> None:
        self.arity(op, (1,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.batch1(op, x, "input")
        self.batch1(op, y, "output")
        self.same_quant(op, x, y)
        self.fused(op)
        o = op.opts
        for name in ("StrideH", "StrideW", "FilterHeight", "FilterWidth"):
            self.param(op, name, o[name])
        if y.shape[3] != x.shape[3]:
            raise _fail(op, f"output {_desc(y)} has {y.shape[3]} channels, input {x.shape[3]}")
        self.window(op, x.shape[1], o["FilterHeight"], o["StrideH"], 1, o["Padding"], y.shape[1], "height")
        self.window(op, x.shape[2], o["FilterWidth"], o["StrideW"], 1, o["Padding"], y.shape[2], "width")

    def pad(self, op: Op) -> None:
        self.arity(op, (2, 3) if op.kind == "PADV2" else (2,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.same_quant(op, x, y)
        if len(x.shape) > 5 or len(y.shape) != len(x.shape):
            raise _fail(op, f"input {_desc(x)} -> output {_desc(y)}: ranks differ or exceed 5")
        pads = self.const(op, 1, "paddings", size=2 * len(x.shape)).reshape(-1, 2)
        if np.any(pads < 0) or np.any(pads > MAX_BYTES):
            raise _fail(op, f"paddings {pads.tolist()} are negative or too large")
        self.expect_shape(op, y, [d + int(a) + int(b) for d, (a, b) in zip(x.shape, pads)], "shape the paddings give")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            v = self.operand(op, 2)
            if v.data is None or v.dtype != "int8" or v.size != 1:
                raise _fail(op, f"pad value {_desc(v)} must be one constant int8 value")
            if v.scales is not None and (v.scale != y.scale or v.zp != y.zp):
                raise _fail(op, f"pad value {_desc(v)} is quantised differently from the output (TFLM requires "
                                "the same scale and zero point)")

    def concatenation(self, op: Op) -> None:
        if not 1 <= len(op.inputs) <= MAX_CONCAT_INPUTS or len(op.outputs) != 1:
            raise _fail(op, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs (TFLM takes 1 to "
                            f"{MAX_CONCAT_INPUTS} inputs, one output)")
        y = self.t[op.outputs[0]]
        self.activation(op, y, "output")
        if op.opts["FusedActivationFunction"] != 0:
            raise _fail(op, "a fused activation on CONCATENATION is not supported (TFLM requires NONE)")
        rank = len(y.shape)
        axis = op.opts["Axis"]
        if not -rank <= axis < rank:
            raise _fail(op, f"axis {axis} is outside the output's rank {rank}")
        axis %= rank
        total = 0
        for k in range(len(op.inputs)):
            x = self.operand(op, k)
            self.activation(op, x, f"input {k}")
            self.same_quant(op, x, y)
            if len(x.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, y.shape)) if i != axis):
                raise _fail(op, f"input {k} {_desc(x)} does not match output {_desc(y)} outside axis {axis}")
            total += x.shape[axis]
        if total != y.shape[axis]:
            raise _fail(op, f"inputs add up to {total} along axis {axis}, the output has {y.shape[axis]}")

    def split(self, op: Op) -> None:
        n = op.opts.get("NumSplits", 0)
        if len(op.inputs) != 2 or len(op.outputs) != n or n < 1:
            raise _fail(op, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs for {n} splits")
        x = self.operand(op, 1)
        self.activation(op, x, "input")
        axis = self.const(op, 0, "axis", size=1)[0]
        if not -len(x.shape) <= axis < len(x.shape):
            raise _fail(op, f"axis {axis} is outside the input's rank {len(x.shape)}")
        axis = int(axis) % len(x.shape)
        if x.shape[axis] % n:
            raise _fail(op, f"input {_desc(x)} does not split into {n} equal parts along axis {axis}")
        want = list(x.shape)
        want[axis] //= n
        for ti in op.outputs:
            self.activation(op, self.t[ti], "output")
            self.same_quant(op, x, self.t[ti])
            self.expect_shape(op, self.t[ti], want, f"shape of 1/{n} of the input along axis {axis}")

    def slice(self, op: Op) -> None:
        self.arity(op, (3,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.same_quant(op, x, y)
        rank = len(x.shape)
        begin = self.const(op, 1, "begin", ("int32", "int64"), rank)
        size = self.const(op, 2, "size", ("int32", "int64"), rank)
        dims = []
        for i, (b, s, n) in enumerate(zip(begin, size, x.shape)):
            s = n - b if s == -1 else s
            if b < 0 or s < 0 or b + s > n:
                raise _fail(op, f"begin {begin.tolist()} size {size.tolist()} fall outside {_desc(x)} on axis {i}")
            dims.append(s)
        self.expect_shape(op, y, dims, "shape of the slice")

    def strided_slice(self, op: Op) -> None:
        self.arity(op, (4,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.same_quant(op, x, y)
        rank = len(x.shape)
        for k, what in ((1, "begin"), (2, "end"), (3, "strides")):
            values = self.const(op, k, what, ("int32",), rank)
            if k == 3 and np.any(values == 0):
                raise _fail(op, "a stride is zero")
        if op.opts["EllipsisMask"] or op.opts["NewAxisMask"]:
            raise _fail(op, "ellipsis and new-axis masks are not supported")
        _, dims, _ = self.strided_window(op)
        kept = [d for i, d in enumerate(dims) if not op.opts["ShrinkAxisMask"] >> i & 1]
        if any(d < 1 for d in dims):
            raise _fail(op, f"the slice of {_desc(x)} is empty ({dims})")
        self.expect_shape(op, y, kept, "shape of the strided slice")

    def reshape(self, op: Op) -> None:
        self.arity(op, (1, 2))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        if x.size != y.size:
            raise _fail(op, f"input {_desc(x)} has {x.size} elements, output {_desc(y)} {y.size}")
        if op.inputs[0] in self.g.inputs and op.outputs[0] in self.g.outputs:
            raise _fail(op, "it reshapes the model input straight into an output (a RESHAPE is a view here: the "
                            "output would share the input's buffer)")
        if len(op.inputs) == 2 and op.inputs[1] >= 0 and self.t[op.inputs[1]].data is not None:
            shape = self.const(op, 1, "new shape", ("int32", "int64"))
            if -1 not in shape and shape.size and [int(v) for v in shape] != list(y.shape):
                raise _fail(op, f"new shape {shape.tolist()} is not the output's {list(y.shape)}")

    def transpose(self, op: Op) -> None:
        self.arity(op, (2,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.same_quant(op, x, y)
        perm = self.const(op, 1, "permutation", ("int32", "int64"), len(x.shape))
        if sorted(perm.tolist()) != list(range(len(x.shape))):
            raise _fail(op, f"{perm.tolist()} is not a permutation of the input's {len(x.shape)} axes")
        self.expect_shape(op, y, [x.shape[p] for p in perm], "permuted input shape")

    def add(self, op: Op) -> None:
        self.arity(op, (2,))
        a, b, y = self.operand(op, 0), self.operand(op, 1), self.t[op.outputs[0]]
        for t, what in ((a, "input 0"), (b, "input 1"), (y, "output")):
            self.activation(op, t, what)
        if a.shape != b.shape or a.shape != y.shape:
            raise _fail(op, f"{list(a.shape)} + {list(b.shape)} -> {list(y.shape)}: the AOT engine adds tensors of "
                            "one shape only (no broadcasting)")
        if a.data is not None or b.data is not None:
            raise _fail(op, "a constant operand is not supported")
        self.fused(op)

    def resize_bilinear(self, op: Op) -> None:
        self.arity(op, (2,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        self.batch1(op, x, "input")
        self.same_quant(op, x, y)
        size = self.const(op, 1, "size", ("int32",), 2)
        if op.opts["AlignCorners"] and op.opts["HalfPixelCenters"]:
            raise _fail(op, "half_pixel_centers and align_corners are both set (TFLM refuses that)")
        if np.any(size < 1):
            raise _fail(op, f"size {size.tolist()} is not positive")
        self.expect_shape(op, y, [1, size[0], size[1], x.shape[3]], "shape the size operand gives")

    def elementwise(self, op: Op) -> None:
        self.arity(op, (1,))
        x, y = self.operand(op, 0), self.t[op.outputs[0]]
        self.activation(op, x, "input")
        self.activation(op, y, "output")
        if x.shape != y.shape:
            raise _fail(op, f"input {_desc(x)} and output {_desc(y)} differ in shape")
        if op.kind == "LOGISTIC" and (y.zp != -128 or abs(y.scale - 1 / 256) > 1e-9):
            raise _fail(op, f"output {_desc(y)} has scale {y.scale:g} and zero point {y.zp}; TFLM's int8 LOGISTIC "
                            "needs 1/256 and -128")
        if op.kind == "LEAKY_RELU" and not math.isfinite(op.opts.get("Alpha", 0.0)):
            raise _fail(op, "alpha is not finite")


# op kind -> its checks; the keys are exactly lower.LOWERINGS' (the supported op set, tests/test_aot_validate.py)
CHECKS = {
    "CONV_2D": lambda c, op: c.conv(op, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda c, op: c.conv(op, depthwise=True),
    "MAX_POOL_2D": _Check.max_pool_2d,
    "PAD": _Check.pad,
    "PADV2": _Check.pad,
    "RESHAPE": _Check.reshape,
    "CONCATENATION": _Check.concatenation,
    "SPLIT": _Check.split,
    "SLICE": _Check.slice,
    "STRIDED_SLICE": _Check.strided_slice,
    "TRANSPOSE": _Check.transpose,
    "ADD": _Check.add,
    "RESIZE_BILINEAR": _Check.resize_bilinear,
    "LEAKY_RELU": _Check.elementwise,
    "LOGISTIC": _Check.elementwise,
    "QUANTIZE": _Check.elementwise,
}


def validate(graph: Graph) -> None:
    """Raise Refused (a NanodetError naming the operator and why) unless every op of `graph` is one the AOT engine
    lowers (lower.LOWERINGS) to C that builds and computes what TFLM computes."""
    refuse_unsupported(graph)
    check = _Check(graph)
    check.graph()
    for op in graph.ops:
        CHECKS[op.kind](check, op)
