"""Facts of a .tflite file read straight from its flatbuffer (no TensorFlow import).

Everything that must know a model's tensors, quantisation or ops (inspect, detect, generate, verify) reads them here.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanodet_mcu import spec
from nanodet_mcu.errors import NanodetError

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


def schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


def builtin_op_names() -> dict[int, str]:
    s = schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None  # per-tensor scale, None when not quantised
    zero_point: int | None

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}


@dataclass
class ModelInfo:
    path: str
    data: bytes
    sha256: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ops: list[str]  # builtin op name of every operator, in execution order
    parameters: int
    macs: int
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.data)


def _tensor_info(sub, index: int) -> TensorInfo:
    t = sub.Tensors(index)
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() == 1:
        scale, zp = float(q.Scale(0)), int(q.ZeroPoint(0))
    return TensorInfo(index, (t.Name() or b"").decode(errors="replace"), tuple(int(d) for d in t.ShapeAsNumpy()),
                      _TYPE_NAMES.get(t.Type(), f"type{t.Type()}"), scale, zp)


def load(source: str | Path | bytes) -> ModelInfo:
    """Parse a .tflite (path or bytes).  Raises NanodetError for a missing, corrupt or foreign file."""
    if isinstance(source, (bytes, bytearray)):
        data, path = bytes(source), "<bytes>"
    else:
        path = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise NanodetError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise NanodetError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
    s = schema()
    try:
        model = s.Model.GetRootAsModel(data, 0)
        _check_structure(s, model, len(data))
        if model.SubgraphsLength() != 1:
            raise NanodetError(f"expected one subgraph, found {model.SubgraphsLength()}")
        sub = model.Subgraphs(0)
        names = builtin_op_names()
        codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
                 for i in range(model.OperatorCodesLength())]
        ops, macs = [], 0
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            name = names.get(codes[op.OpcodeIndex()], f"OP{codes[op.OpcodeIndex()]}")
            ops.append(name)
            macs += _op_macs(sub, op, name)
        params = 0
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            buf = model.Buffers(t.Buffer())
            if t.Type() in (0, 9, 2) and buf is not None and buf.DataLength() > 0 and len(t.ShapeAsNumpy()) > 0:
                # weights (float/int8) and biases (int32); 1-D int32 shape operands are not parameters
                if t.Type() == 2 and not _is_bias(sub, i):
                    continue
                params += int(np.prod(t.ShapeAsNumpy()))
        inputs = [_tensor_info(sub, int(i)) for i in sub.InputsAsNumpy()]
        outputs = [_tensor_info(sub, int(i)) for i in sub.OutputsAsNumpy()]
    except NanodetError as exc:
        raise NanodetError(f"{path} is not a valid .tflite model: {exc}") from None
    except Exception as exc:  # flatbuffers raises assorted errors on garbage: struct.error, IndexError...
        raise NanodetError(f"{path} is not a valid .tflite flatbuffer (corrupt or truncated: an offset points "
                           f"outside the file)") from exc
    return ModelInfo(path, data, hashlib.sha256(data).hexdigest(), inputs, outputs, ops, params, macs,
                     dict(sorted(Counter(ops).items())))


def _check_structure(s, model, size: int) -> None:
    """Touch every table of the flatbuffer (the object API unpacks them all: a corrupt offset fails here, not in
    whatever reads that field later) and check the indices between them: operator codes, tensors, buffers."""
    m = s.ModelT.InitFromObj(model)
    codes = len(m.operatorCodes or [])
    buffers = len(m.buffers or [])
    for b, buf in enumerate(m.buffers or []):
        if buf.offset > 1 and buf.offset + buf.size > size:
            raise NanodetError(f"buffer {b} lies past the end of the file ({buf.offset} + {buf.size} > {size} bytes)")
    for g, sub in enumerate(m.subgraphs or []):
        tensors = sub.tensors or []
        for i, t in enumerate(tensors):
            if not 0 <= t.buffer < buffers:
                raise NanodetError(f"tensor {i} refers to buffer {t.buffer} of {buffers}")
            if t.shape is not None and any(d < 0 for d in t.shape):
                raise NanodetError(f"tensor {i} has a negative dimension {list(t.shape)}")
        for what, indices in (("input", sub.inputs), ("output", sub.outputs)):
            for ti in indices if indices is not None else []:
                if not 0 <= ti < len(tensors):
                    raise NanodetError(f"subgraph {g} {what} refers to tensor {ti} of {len(tensors)}")
        for k, op in enumerate(sub.operators or []):
            if not 0 <= op.opcodeIndex < codes:
                raise NanodetError(f"operator {k} has opcode index {op.opcodeIndex} of {codes}")
            for what, indices in (("input", op.inputs), ("output", op.outputs)):
                for ti in indices if indices is not None else []:
                    if not (-1 if what == "input" else 0) <= ti < len(tensors):
                        raise NanodetError(f"operator {k} {what} refers to tensor {ti} of {len(tensors)}")


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of the graph, in execution order (what TFLM runs as one step)."""
    index: int
    name: str                        # builtin op name, e.g. CONV_2D
    inputs: tuple[int, ...]          # tensor indices (-1: optional input absent)
    outputs: tuple[TensorInfo, ...]
    macs: int


def operators(info: ModelInfo) -> list[OperatorInfo]:
    """Every operator of the (already validated) model with its outputs and MACs."""
    s = schema()
    model = s.Model.GetRootAsModel(info.data, 0)
    sub = model.Subgraphs(0)
    names = builtin_op_names()
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        name = names.get(codes[op.OpcodeIndex()], f"OP{codes[op.OpcodeIndex()]}")
        ins = tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(_tensor_info(sub, int(t)) for t in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        out.append(OperatorInfo(i, name, ins, outs, _op_macs(sub, op, name)))
    return out


def _is_bias(sub, tensor_index: int) -> bool:
    for i in range(sub.OperatorsLength()):
        ins = list(sub.Operators(i).InputsAsNumpy())
        if len(ins) >= 3 and ins[2] == tensor_index:
            return True
    return False


def _op_macs(sub, op, name: str) -> int:
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    out_shape = sub.Tensors(int(op.Outputs(0))).ShapeAsNumpy()
    w_shape = sub.Tensors(int(op.Inputs(1))).ShapeAsNumpy()
    if name == "CONV_2D":  # OHWI: each output element costs kh*kw*in_c
        return int(np.prod(out_shape)) * int(np.prod(w_shape[1:]))
    if name == "DEPTHWISE_CONV_2D":  # 1HWC
        return int(np.prod(out_shape)) * int(w_shape[1] * w_shape[2])
    return int(np.prod(out_shape)) * int(w_shape[-1])


@dataclass(frozen=True)
class NanodetLayout:
    """Where a NanoDet-shaped model keeps its tensors, and how they are quantised."""
    input: TensorInfo
    scores: TensorInfo
    boxes: TensorInfo
    scores_index: int  # output index (0 or 1) of the scores tensor
    boxes_index: int


def nanodet_problem(info: ModelInfo) -> str | None:
    """Why this model is not an int8 NanoDet stride-32 model, or None when it is."""
    if len(info.inputs) != 1:
        return f"expected 1 input, found {len(info.inputs)}"
    if len(info.outputs) != 2:
        return f"expected 2 outputs (scores, boxes), found {len(info.outputs)}"
    x = info.inputs[0]
    if x.shape != spec.INPUT_SHAPE:
        return f"input shape {list(x.shape)} is not {list(spec.INPUT_SHAPE)}"
    for t in (x, *info.outputs):
        if t.dtype != "int8" or t.scale is None:
            quant = "" if t.scale is not None else " without per-tensor quantisation"
            return f"tensor '{t.name}' is {t.dtype}{quant}, not int8"
    shapes = sorted(t.shape for t in info.outputs)
    if shapes != sorted((spec.SCORES_SHAPE, spec.BOXES_SHAPE)):
        return (f"output shapes {[list(t.shape) for t in info.outputs]} are not {list(spec.SCORES_SHAPE)} and "
                f"{list(spec.BOXES_SHAPE)}")
    return None


def nanodet_layout(info: ModelInfo) -> NanodetLayout:
    """The model's NanoDet layout, or NanodetError naming why it has none."""
    problem = nanodet_problem(info)
    if problem:
        raise NanodetError(f"{info.path} is not an int8 NanoDet stride-32 model: {problem}")
    si = next(i for i, t in enumerate(info.outputs) if t.shape == spec.SCORES_SHAPE)
    return NanodetLayout(info.inputs[0], info.outputs[si], info.outputs[1 - si], si, 1 - si)


@contextlib.contextmanager
def _captured_output(fd: int = 2):
    """Capture what C++ code writes to a file descriptor (tflite-micro logs its allocation report to stderr)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(fd)
        try:
            os.dup2(tmp.fileno(), fd)
            buf: list[str] = []
            yield buf
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            buf.append(tmp.read().decode(errors="replace"))


def _log_reason(log: str, exc: BaseException) -> str:
    """A C++ runtime's error log (TFLM, TFLite) in one line: which node failed, then the check that failed."""
    text = re.sub(r"\.?(Node (number )?\w)", r"\n\1", f"{log}\n{exc}")  # TFLite glues "...not true.Node number 1"
    lines = [ln.strip().rstrip(".") for ln in text.splitlines()
             if ln.strip() and not re.match(r"\s*(INFO|WARNING|[IW]\d{4} )", ln)]  # informational log lines
    lines = [re.sub(r"^\S*/(\w+\.cc:\d+)", r"\1", ln) for ln in lines]  # tensorflow/lite/.../x.cc:88 -> x.cc:88
    node = [ln for ln in lines if re.search(r"\bNode\b.*failed to prepare", ln)]
    rest = list(dict.fromkeys(ln for ln in lines if ln not in node and "failed to allocate" not in ln.lower()))
    return "; ".join(node[:1] + rest[:2]) or type(exc).__name__


def crash_in_child(load) -> str | None:
    """Run `load()` in a forked child first: the C++ runtimes (tflite-micro, TensorFlow Lite) abort or segfault on
    some corrupt models (operands that make no sense for their op) instead of returning an error, which would kill
    the command with no message.  The name of the signal that killed the child, or None when it survived (refusals
    it raises are reported by the caller's own load)."""
    if not hasattr(os, "fork"):
        return None
    pid = os.fork()
    if pid == 0:  # the child: the load, then out without running any Python cleanup
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            load()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None


def crash_message(runtime: str, what: str, sig: str) -> str:
    return (f"{runtime} refuses {what}: loading it crashes {runtime} ({sig}); the model's operators and tensors do "
            "not fit together (corrupt or hand-edited model?)")


def tflm_interpreter(data: bytes, what: str):
    """tflite-micro's Python interpreter for a model, its load errors (logged by C++ on stderr) as one NanodetError."""
    from tflite_micro.python.tflite_micro import runtime

    crash = crash_in_child(lambda: runtime.Interpreter.from_bytes(data))
    if crash:
        raise NanodetError(crash_message("tflite-micro", what, crash))
    failure = None
    with _captured_output() as log:
        try:
            return runtime.Interpreter.from_bytes(data)
        except Exception as exc:  # the binding raises RuntimeError, ValueError...
            failure = exc
    raise NanodetError(f"tflite-micro refuses {what}: {_log_reason(''.join(log), failure)}") from failure


def tflm_arena_bytes(data: bytes) -> int:
    """Arena bytes tflite-micro's allocator uses for this model (host build: 64-bit pointers, so slightly more than on
    a Cortex-M, where TFLM's structs are smaller)."""
    interp = tflm_interpreter(data, "the model")
    with _captured_output() as out:
        interp.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", "".join(out))
    if not m:
        raise NanodetError("tflite-micro did not report its arena size")
    return int(m.group(1))
