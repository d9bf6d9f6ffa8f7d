"""Official weights -> TensorFlow graph -> full-integer (int8 in, int8 out) TFLite, stride-32 head only.

Calibration draws `num_calib` images with `seed` from the sorted listing of `calib_dir` and preprocesses them
exactly as at inference (`preprocess.resize_rgb` then `preprocess.normalize`).  The converter's min/max
calibration is then refined: each activation range is clipped where the int8 error over the calibration
histogram is least (`refine_ranges_mse`: outputs 20-25% closer to the float model's than plain min/max).
The same inputs give a byte-identical file.  The output path is checked before anything else; the result is checked
with `model_info.nanodet_layout` and written atomically.
"""
from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanodet_mcu import model_info, outputs, preprocess, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.progress import QUIET, Steps

DEFAULT_OUTPUT = "nanodet_m_0.5x.tflite"
DEFAULT_NUM_CALIB = 100
DEFAULT_SEED = 1337
CALIB_ENV = "NANODET_MCU_CALIB_DIR"


@dataclass
class ConvertReport:
    path: Path
    weights_source: str
    calib_images: list[Path]
    parameters: int
    size: int


def default_calib_dir() -> Path:
    """$NANODET_MCU_CALIB_DIR, else an error that says what to pass and where such images come from."""
    env = os.environ.get(CALIB_ENV)
    if env:
        return Path(env)
    raise NanodetError(f"no calibration images: pass --calib-dir DIR (or set {CALIB_ENV}), a folder of about "
                       f"{DEFAULT_NUM_CALIB} COCO images kept apart from the ones you evaluate on, e.g. from "
                       "val2017.zip of cocodataset.org (README.md, 'Inputs')")


def calibration_images(calib_dir: str | Path, num_calib: int = DEFAULT_NUM_CALIB,
                       seed: int = DEFAULT_SEED) -> list[Path]:
    """`num_calib` files drawn without replacement with `seed` from the sorted image listing (all when fewer)."""
    if num_calib < 1:
        raise NanodetError(f"--num-calib must be at least 1, got {num_calib}")
    files = preprocess.list_images(calib_dir)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(files), size=min(num_calib, len(files)), replace=False)
    return [files[int(i)] for i in picked]


def calibration_inputs(files: list[Path], steps: Steps = QUIET) -> list[np.ndarray]:
    """Float model inputs (1x320x320x3 normalised BGR), preprocessed exactly as at inference."""
    out = []
    with steps.step("preprocessing the calibration images", total=len(files)) as step:
        for f in files:
            out.append(preprocess.normalize(preprocess.resize_rgb(preprocess.load_rgb(f))))
            step.advance()
    return out


def _counted(inputs: list[np.ndarray], step):
    for x in inputs:
        yield [x]
        step.advance()


def _converter(graph, inputs: list[np.ndarray], step=None):
    import tensorflow as tf

    module = graph.module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = (lambda: _counted(inputs, step)) if step else (lambda: ([x] for x in inputs))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def quantize_graph(graph, inputs: list[np.ndarray], refine_ranges: bool = True, steps: Steps = QUIET) -> bytes:
    """TFLite full-int8 flatbuffer of a `nanodet_tf.NanodetStride32` calibrated on `inputs`.

    With `refine_ranges`, the converter's min/max calibration is followed by `ranges.refine` (MSE-optimal
    clipping of every activation range on the calibration histograms, `refine_ranges_mse`) before the int8 rewrite.
    `steps` reports each stage (its stream must not be fd 2, which is captured here).
    """
    import tensorflow as tf

    try:
        # The converter and interpreter log to stderr from C++ (and warn about deprecations): keep that out of
        # the user's terminal; failures still surface as exceptions.
        with warnings.catch_warnings(), model_info._captured_output(2):
            warnings.simplefilter("ignore")
            if not refine_ranges:
                with steps.step("converting and calibrating", total=len(inputs)) as step:
                    return _converter(graph, inputs, step).convert()
            from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

            with steps.step("converting the graph and calibrating its ranges", total=len(inputs)) as step:
                converter = _converter(graph, inputs, step)
                converter._experimental_calibrate_only = True  # float model annotated with min/max per tensor
                calibrated = converter.convert()
            calibrated = refine_ranges_mse(calibrated, inputs, steps)
            with steps.step("quantising to int8"):
                data = mlir_quantize(calibrated, False, input_data_type=tf.int8, output_data_type=tf.int8)
                return bytes(deduplicate_readonly_buffers(data))  # as converter.convert() finishes
    except NanodetError:
        raise
    except Exception as exc:  # the converter raises ConverterError and assorted others
        raise NanodetError(f"TFLite conversion failed: {_one_line(exc)}") from exc


HIST_BINS = 2048
# Candidate ends of a range, as fractions of the observed ends.  Floors of 0.3 and 0.5 were measured equal within
# noise (mean |score - float| on detected cells 0.0218 vs 0.0225; plain min/max 0.0284, NXP 0.0335).
CLIP_FRACTIONS = np.linspace(0.3, 1.0, 29)


def _range_slots(buf) -> dict[int, tuple[int, int, float, float]]:
    """tensor index -> (byte offset of its min, of its max, min, max) for every per-tensor calibrated range."""
    sub = model_info.schema().Model.GetRootAsModel(buf, 0).Subgraphs(0)
    slots = {}
    for i in range(sub.TensorsLength()):
        q = sub.Tensors(i).Quantization()
        if q is not None and q.MinLength() == 1 and q.MaxLength() == 1:
            slots[i] = (q._tab.Vector(q._tab.Offset(4)), q._tab.Vector(q._tab.Offset(6)), float(q.Min(0)),
                        float(q.Max(0)))
    return slots


def _best_range(hist: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(lo', hi') inside [lo, hi] minimising the histogram's int8 quantise-dequantise squared error."""
    centres = lo + (np.arange(len(hist)) + 0.5) * (hi - lo) / len(hist)
    los = lo * CLIP_FRACTIONS if lo < 0 else np.full(1, lo)
    cand = np.array([(a, b) for a in los for b in hi * CLIP_FRACTIONS if b > a and b > 0], np.float64)
    if len(cand) == 0:
        return lo, hi
    scale = (cand[:, 1] - cand[:, 0]) / 255.0
    q = np.clip(np.round((centres[None] - cand[:, :1]) / scale[:, None]), 0, 255) * scale[:, None] + cand[:, :1]
    err = ((centres[None] - q) ** 2 * hist[None]).sum(axis=1)
    a, b = cand[int(np.argmin(err))]
    return float(a), float(b)


def refine_ranges_mse(calibrated: bytes, inputs: list[np.ndarray], steps: Steps = QUIET) -> bytes:
    """Tighten each activation range of a calibrated float model to its MSE-optimal int8 clipping.

    Min/max calibration lets a few extreme values stretch a tensor's scale, costing every other value
    resolution; the histogram of all calibration activations shows what clipping gives the least total error.
    The model input keeps its full range (the device quantises raw pixels through a table).
    """
    import tensorflow as tf

    buf = bytearray(calibrated)
    slots = _range_slots(buf)
    sub = model_info.schema().Model.GetRootAsModel(buf, 0).Subgraphs(0)
    for i in sub.InputsAsNumpy():
        slots.pop(int(i), None)
    interp = tf.lite.Interpreter(model_content=bytes(buf), num_threads=1, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    x_index = interp.get_input_details()[0]["index"]
    hists = {i: np.zeros(HIST_BINS) for i in slots}
    with steps.step("refining the activation ranges", total=len(inputs)) as step:
        for x in inputs:
            interp.set_tensor(x_index, x)
            interp.invoke()
            for i, (_, _, lo, hi) in slots.items():
                if hi > lo:
                    hists[i] += np.histogram(interp.get_tensor(i), bins=HIST_BINS, range=(lo, hi))[0]
            step.advance()
    for i, (lo_at, hi_at, lo, hi) in slots.items():
        if hi > lo:
            new_lo, new_hi = _best_range(hists[i], lo, hi)
            struct.pack_into("<f", buf, lo_at, new_lo)
            struct.pack_into("<f", buf, hi_at, new_hi)
    return bytes(buf)


def put_scores_first(data: bytes) -> bytes:
    """Reorder the subgraph's two outputs to (scores, boxes) in place in the flatbuffer.

    The converter orders outputs by its own rules (boxes first, whatever order the function returns); the
    signature map (name -> tensor) is unaffected by the order of the outputs vector, so swapping the two int32
    entries is all it takes.
    """
    import flatbuffers

    s = model_info.schema()
    buf = bytearray(data)
    sub = s.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    outs = [int(i) for i in sub.OutputsAsNumpy()]
    shapes = [tuple(int(d) for d in sub.Tensors(i).ShapeAsNumpy()) for i in outs]
    if len(outs) != 2 or shapes[0] == spec.SCORES_SHAPE:
        return bytes(buf)
    vec = sub._tab.Vector(flatbuffers.number_types.UOffsetTFlags.py_type(sub._tab.Offset(8)))
    buf[vec:vec + 4], buf[vec + 4:vec + 8] = buf[vec + 4:vec + 8], buf[vec:vec + 4]
    return bytes(buf)


def check_model(data: bytes) -> model_info.ModelInfo:
    info = model_info.load(data)
    layout = model_info.nanodet_layout(info)
    if layout.scores_index != 0:
        raise NanodetError("converted model stores boxes before scores (internal error)")
    return info


def convert_report(weights: str | Path, calib_dir: str | Path | None = None, num_calib: int = DEFAULT_NUM_CALIB,
                   seed: int = DEFAULT_SEED, out_path: str | Path = DEFAULT_OUTPUT,
                   steps: Steps = QUIET) -> ConvertReport:
    """Convert and say what was used (weights kind, calibration files, parameter count); `steps` shows progress."""
    from nanodet_mcu.model.nanodet_tf import NanodetStride32
    from nanodet_mcu.model.weights import load_weights

    out = outputs.check_file(out_path, "output")  # first: an unwritable output fails before the slow parts
    loaded = load_weights(weights)  # then a bad weights file, before the slow parts (and any progress line)
    files = calibration_images(default_calib_dir() if calib_dir is None else calib_dir, num_calib, seed)
    inputs = calibration_inputs(files, steps)
    with steps.step("loading TensorFlow"), model_info._captured_output(2):  # its import logs (absl, oneDNN, CUDA)
        import tensorflow  # noqa: F401
    data = quantize_graph(NanodetStride32(loaded.weights), inputs, steps=steps)
    data = put_scores_first(data)
    info = check_model(data)
    outputs.write_file(out, data)
    return ConvertReport(out, loaded.source, files, info.parameters, len(data))


def convert(weights: str | Path, calib_dir: str | Path | None = None, num_calib: int = DEFAULT_NUM_CALIB,
            seed: int = DEFAULT_SEED, out_path: str | Path = DEFAULT_OUTPUT) -> Path:
    """Official weights (.onnx, .ckpt, .pth) -> full-int8 TFLite at `out_path`; returns the path."""
    return convert_report(weights, calib_dir, num_calib, seed, out_path).path
