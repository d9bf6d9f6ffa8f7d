"""The AOT front end (codegen/aot/validate.py) refuses, with the operator's index and the reason, every model TFLM's
Prepare would refuse or the AOT kernels cannot run; what it accepts builds under -Werror and matches tflite-micro."""
from __future__ import annotations

import os
import random
import subprocess

import numpy as np
import pytest

from nanodet_mcu import model_info
from nanodet_mcu.codegen.aot import emit_any, emit_c
from nanodet_mcu.codegen.aot.host import KERNELS_DIR, HostModel, kernel_sources
from nanodet_mcu.errors import NanodetError
from tests import aot_models, model_surgery
from tests.conftest import cortex_m7_flags, require_tool

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _tensor(model, op_index: int, k: int, output: bool = False):
    sub = model.subgraphs[0]
    op = sub.operators[op_index]
    return sub.tensors[(op.outputs if output else op.inputs)[k]]


def _set(obj, **fields):
    for k, v in fields.items():
        setattr(obj, k, v)


def _scale(t, *values):
    t.quantization.scale = np.array(values, np.float32)
    t.quantization.zeroPoint = np.zeros(len(values), np.int64)


def _bias(model, n: int, dtype: int) -> None:
    """Operator 0's bias with n values of TFLite type dtype (its data cut to fit)."""
    t = _tensor(model, 0, 2)
    buf = model.buffers[t.buffer]
    _set(t, shape=np.array([n], np.int32), type=dtype)
    buf.data = buf.data[:n * {2: 4, 9: 1}[dtype]]


# (case, what is broken, edit of the ModelT, words the refusal must contain)
BROKEN = [
    ("conv_leaky", "CONV_2D read as RESHAPE", lambda m: model_surgery.retype_op(m, 0, "RESHAPE"),
     "operator 0 (RESHAPE): 3 inputs"),
    ("transpose5d_shuffle", "RESHAPE element count",
     lambda m: _tensor(m, 0, 0, output=True).shape.__setitem__(4, 7), "elements"),
    ("conv3x3_s1_same", "conv filter shape", lambda m: _set(_tensor(m, 0, 1), shape=np.array([5, 3, 9, 1], np.int32)),
     "is not [5, kh, kw, 3]"),
    ("conv3x3_s1_same", "conv output size", lambda m: _tensor(m, 0, 0, output=True).shape.__setitem__(1, 6),
     "output height 6 is not the 7"),
    ("conv3x3_s1_same", "bias length", lambda m: _bias(m, 4, 2), "has 4 values for 5 output channels"),
    ("conv3x3_s1_same", "bias type", lambda m: _bias(m, 20, 9), "must be a constant int32 tensor (is int8)"),
    ("conv3x3_s1_same", "per-channel scale count", lambda m: _scale(_tensor(m, 0, 1), 0.1, 0.2), "2 scales"),
    ("conv3x3_s1_same", "filter zero point", lambda m: _tensor(m, 0, 1).quantization.zeroPoint.__setitem__(0, 3),
     "zero point"),
    ("conv3x3_s1_same", "stride 0", lambda m: _set(m.subgraphs[0].operators[0].builtinOptions, strideH=0),
     "StrideH 0"),
    ("dw3x3_mult2", "depth multiplier", lambda m: _set(m.subgraphs[0].operators[0].builtinOptions,
                                                        depthMultiplier=3), "depth multiplier"),
    ("add", "ADD broadcast", lambda m: _tensor(m, 0, 1).shape.__setitem__(1, 1), "no broadcasting"),
    ("concat_c", "CONCATENATION axis sizes", lambda m: _tensor(m, 0, 0, output=True).shape.__setitem__(3, 8),
     "add up to"),
    ("concat_c", "CONCATENATION axis out of range", lambda m: _set(m.subgraphs[0].operators[0].builtinOptions,
                                                                    axis=5), "axis 5"),
    ("concat_c", "CONCATENATION rescaling", lambda m: _scale(_tensor(m, 0, 0), 0.5), "quantised differently"),
    ("conv_leaky", "int32 activation", lambda m: _set(_tensor(m, 0, 0, output=True), type=2), "int8 activations"),
    ("leaky_relu", "zero point outside int8", lambda m: _tensor(m, 0, 0).quantization.zeroPoint.__setitem__(0, 300),
     "outside int8"),
    ("leaky_relu", "zero scale", lambda m: _tensor(m, 0, 0).quantization.scale.__setitem__(0, 0.0),
     "positive and finite"),
    ("logistic", "LOGISTIC output quantisation", lambda m: _scale(_tensor(m, 0, 0, output=True), 0.01),
     "1/256"),
    ("pad_alone", "PAD output size", lambda m: _tensor(m, 0, 0, output=True).shape.__setitem__(2, 5), "paddings"),
    ("maxpool_valid", "MAX_POOL_2D rescaling", lambda m: _scale(_tensor(m, 0, 0, output=True), 0.5),
     "quantised differently"),
    ("slice", "SLICE out of bounds", lambda m: _tensor(m, 0, 0, output=True).shape.__setitem__(1, 9), "slice"),
    ("split", "SPLIT parts", lambda m: _set(m.subgraphs[0].operators[0].builtinOptions, numSplits=3), "splits"),
    ("resize_up_align", "RESIZE_BILINEAR flags", lambda m: _set(m.subgraphs[0].operators[0].builtinOptions,
                                                                 halfPixelCenters=True), "half_pixel_centers"),
    ("transpose4d", "TRANSPOSE permutation", lambda m: _set(_tensor(m, 0, 0, output=True), shape=np.array(
        [1, 3, 5, 7], np.int32)), "permuted"),
    ("transpose5d_shuffle", "RESHAPE of the input straight to an output",
     lambda m: _set(m.subgraphs[0], outputs=m.subgraphs[0].operators[0].outputs), "straight into an output"),
    ("transpose5d_shuffle", "rank above the copies' 6 axes",
     lambda m: _set(_tensor(m, 0, 0, output=True), shape=np.array([1, 4, 5, 2, 6, 1, 1], np.int32)), "rank 7"),
    ("conv_leaky", "options of another op", lambda m: model_surgery.retype_op(m, 0, "ADD"), "options"),
    ("conv_leaky", "short constant data",
     lambda m: _set(m.buffers[_tensor(m, 0, 1).buffer], data=m.buffers[_tensor(m, 0, 1).buffer].data[:-1]),
     "bytes of data"),
]


@pytest.mark.parametrize("case,what,change,words", BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_model_is_refused_with_operator_and_reason(case, what, change, words, tmp_path):
    data = model_surgery.edit(aot_models.build(case).read_bytes(), change)
    info = model_info.load(data)
    with pytest.raises(NanodetError) as err:
        emit_any(info, tmp_path / "out")
    assert words in str(err.value), f"{what}: {err.value}"
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists(), "a refused model must leave nothing behind"


def test_one_supported_op_set():
    """validate.py checks exactly the ops the lowering table lowers (lower.LOWERINGS is the supported op set), and
    refuses any other op with the lowering's own message, before any lowering runs."""
    from nanodet_mcu.codegen.aot import graph, lower, validate

    assert set(validate.CHECKS) == set(lower.LOWERINGS) == set(lower.SUPPORTED_OPS)
    g = graph.read(model_info.load(aot_models.build("unsupported_avgpool")))
    with pytest.raises(NanodetError, match=r"does not support op AVERAGE_POOL_2D \(operator 0\); supported: CONV_2D"):
        validate.validate(g)


def test_nxp_model_with_a_conv_read_as_reshape_is_refused(nxp_model_path, tmp_path):
    """The issue's case: generate --engine aot used to exit 0 with C that computed garbage or did not compile."""
    data = model_surgery.edit(nxp_model_path.read_bytes(), lambda m: model_surgery.retype_op(m, 1, "RESHAPE"))
    with pytest.raises(NanodetError, match=r"operator 1 \(RESHAPE\): 3 inputs, expected 1 or 2"):
        emit_c(model_info.load(data), tmp_path)


def test_nanodet_shaped_model_builds_under_werror_and_matches_tflm(tmp_path):
    """Conv + Logistic with NanoDet's I/O shapes: its AOT C used to define an unused nd_rq table (-Werror)."""
    from nanodet_mcu.runners import TflmRunner

    info = model_info.load(aot_models.build("nanodet_shaped_conv_logistic"))
    emit_c(info, tmp_path)
    cc = require_tool("arm-none-eabi-gcc")
    flags = [*cortex_m7_flags(), "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", f"-I{KERNELS_DIR}"]
    for src in [tmp_path / "nd_model.c", *kernel_sources()]:
        proc = subprocess.run([cc, *flags, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
    x = np.random.default_rng(5).integers(-128, 128, (1, 320, 320, 3)).astype(np.int8)
    got = HostModel(info, nanodet=True).run([x])  # host build: -Wall -Wextra -Werror
    layout = model_info.nanodet_layout(info)
    want = TflmRunner(info).run(x)
    assert np.array_equal(got[layout.scores_index], want[0]) and np.array_equal(got[layout.boxes_index], want[1])


KINDS = ["CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "MAX_POOL_2D", "CONCATENATION", "SPLIT", "SLICE", "STRIDED_SLICE",
         "RESHAPE", "TRANSPOSE", "ADD", "RESIZE_BILINEAR", "LEAKY_RELU", "LOGISTIC", "QUANTIZE"]


def _mutate(model, rng: random.Random) -> None:
    """One random corruption: an opcode, a dimension, a type, a quantisation, an operand, an option."""
    sub = model.subgraphs[0]
    op, t = rng.choice(sub.operators), rng.choice(sub.tensors)
    kind = rng.randrange(6)
    if kind == 0:
        op.opcodeIndex = model_surgery.opcode_index(model, rng.choice(KINDS))
    elif kind == 1 and t.shape is not None and len(t.shape):
        i = rng.randrange(len(t.shape))
        t.shape[i] = rng.choice([0, 1, t.shape[i] + 1, max(t.shape[i] - 1, 0), 2 * t.shape[i]])
    elif kind == 2:
        t.type = rng.choice([0, 2, 3, 7, 9])
    elif kind == 3 and t.quantization is not None and t.quantization.scale is not None:
        t.quantization.scale[0] = rng.choice([0.0, -1.0, float("nan"), 1e-30, 1e30])
    elif kind == 4 and op.inputs is not None and len(op.inputs):
        op.inputs[rng.randrange(len(op.inputs))] = rng.randrange(-1, len(sub.tensors))
    elif kind == 5 and op.builtinOptions is not None:
        fields = [f for f, v in vars(op.builtinOptions).items() if isinstance(v, int) and not isinstance(v, bool)]
        if fields:
            setattr(op.builtinOptions, rng.choice(fields), rng.choice([0, 1, 2, 3, 4, 7]))


@pytest.mark.slow
def test_corrupted_models_are_refused_or_build_and_match_tflm():
    """Random corruptions of the kernel test models: the front end refuses (NanodetError) or the C it emits builds
    with -Werror and computes what tflite-micro computes; a model tflite-micro refuses is never accepted."""
    rng = random.Random(16)
    cases = [n for n in aot_models.case_names() if not n.startswith("unsupported_") and "nanodet" not in n]
    accepted = 0
    for trial in range(80):
        case = rng.choice(cases)
        data = model_surgery.edit(aot_models.build(case).read_bytes(), lambda m: _mutate(m, rng))
        try:
            info = model_info.load(data)
            model = HostModel(info)
        except NanodetError:
            continue
        accepted += 1
        try:
            interp = model_info.tflm_interpreter(data, "the model")  # a crash of TFLM is a refusal too
        except NanodetError as exc:
            raise AssertionError(f"trial {trial} ({case}): the AOT engine accepts a model TFLM refuses: {exc}") from exc
        xs = [np.random.default_rng(trial).integers(-128, 128, t.shape).astype(np.int8) for t in info.inputs]
        for k, x in enumerate(xs):
            interp.set_input(x, k)
        interp.invoke()
        for k, got in enumerate(model.run(xs)):
            assert np.array_equal(got, interp.get_output(k)), f"trial {trial} ({case}): output {k} differs"
    assert accepted > 5  # the harmless corruptions (same values, or unused fields) still pass
