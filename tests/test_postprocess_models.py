"""Integer post-processing on the real outputs of NXP's model and ours (TFLM, first 100 val images): C equals the
Python integer model bit for bit, and both equal the float reference (kept set, classes, scores; corners within
0.25 px, in practice < 0.002 px) except ties the decision check explains."""
from __future__ import annotations

import numpy as np
import pytest

from nanodet_mcu import decode, model_info, postprocess_c, preprocess, runners
from nanodet_mcu import postprocess_fixed as pf
from tests.test_postprocess import IOU_TIE_EPS

IMAGES = 100
pytestmark = pytest.mark.slow  # TFLM on 100 images per model (and our model's conversion)


def model_outputs(path, images) -> tuple[model_info.NanodetLayout, list[tuple[np.ndarray, np.ndarray]]]:
    info = model_info.load(path)
    layout = model_info.nanodet_layout(info)
    runner = runners.make_runner("tflm", info)
    outs = []
    for image in images:
        rgb = preprocess.resize_rgb(preprocess.load_rgb(image))
        outs.append(runner.run(preprocess.quantize(rgb, layout.input.scale, layout.input.zero_point)))
    return layout, outs


@pytest.fixture(scope="module", params=["nxp", "ours"])
def outputs(request, val_images):
    path = request.getfixturevalue("nxp_model_path" if request.param == "nxp" else "our_model_path")
    return model_outputs(path, val_images[:IMAGES])


def test_c_matches_python_on_model_outputs(outputs):
    layout, outs = outputs
    params = pf.params_for(layout)
    total = 0
    for scores, boxes in outs:
        expected = pf.run(scores, boxes, params)
        assert postprocess_c.run_c(scores, boxes, params) == expected
        total += len(expected)
    assert total > 0


def test_fixed_matches_float_on_model_outputs(outputs):
    layout, outs = outputs
    params = pf.params_for(layout)
    qp = lambda t: (t.scale, t.zero_point)  # noqa: E731
    worst = 0.0
    for scores, boxes in outs:
        fixed = pf.to_detections(pf.run(scores, boxes, params), params)
        ref = decode.decode_quantized(scores, boxes, qp(layout.scores), qp(layout.boxes))
        got = pf.agreement(fixed, ref)
        ties = pf.nms_decision_differences(scores, boxes, params, qp(layout.boxes))
        assert all(abs(t.float_iou - 0.5) < IOU_TIE_EPS or t.sub_resolution for t in ties), ties
        assert got.same_kept or ties, got
        worst = max(worst, got.max_corner_dev)
    assert worst < 0.25
