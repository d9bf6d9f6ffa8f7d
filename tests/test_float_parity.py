"""The TensorFlow float graph reproduces the official ONNX export's stride-32 outputs (onnxruntime) within 1e-4."""
from __future__ import annotations

import os

import numpy as np
import pytest

from nanodet_mcu import decode, preprocess, spec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def float_pair(onnx_path):
    pytest.importorskip("onnxruntime")
    from nanodet_mcu.model.nanodet_tf import NanodetStride32
    from nanodet_mcu.model.weights import load_weights
    from nanodet_mcu.pipeline import OnnxFloatModel

    tf_fn = NanodetStride32(load_weights(onnx_path).weights).module().serve.get_concrete_function()
    return OnnxFloatModel(onnx_path), tf_fn


def test_onnx_layout(float_pair):
    onnx, _ = float_pair
    session = onnx.session
    (inp,) = session.get_inputs()
    assert inp.shape == [1, 3, spec.INPUT_SIZE, spec.INPUT_SIZE]  # NCHW
    shapes = {o.name: o.shape for o in session.get_outputs()}
    assert shapes["cls_pred_stride_32"] == [1, 100, spec.NUM_CLASSES]
    assert shapes["dis_pred_stride_32"] == [1, 100, 4]


def test_float_parity(float_pair, example_image, val_images):
    onnx, tf_fn = float_pair
    worst_scores = worst_dist = 0.0
    for path in [example_image, *val_images[:10]]:
        rgb = preprocess.resize_rgb(preprocess.load_rgb(path))
        cls, dist = onnx.run(rgb)  # (100, 80) scores, (100, 4) distances in bins
        scores, boxes = (t.numpy() for t in tf_fn(preprocess.normalize(rgb)))
        assert scores.shape == spec.SCORES_SHAPE and boxes.shape == spec.BOXES_SHAPE
        worst_scores = max(worst_scores, float(np.abs(scores.reshape(-1, spec.NUM_CLASSES) - cls).max()))
        projected = decode.project_bins(boxes.reshape(-1, spec.BOX_CHANNELS))
        worst_dist = max(worst_dist, float(np.abs(projected - dist).max()))
    assert worst_scores < TOLERANCE, f"scores differ by {worst_scores:.2e}"
    assert worst_dist < TOLERANCE, f"distances differ by {worst_dist:.2e}"
