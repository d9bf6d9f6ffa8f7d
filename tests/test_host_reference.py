"""Host reference path: preprocessing, float decode + NMS, model facts, detect/evaluate/inspect CLI."""
import json

import numpy as np
import pytest

from nanodet_mcu import decode, model_info, preprocess, spec
from nanodet_mcu.cli import main
from nanodet_mcu.codegen.generate import aot_arena_bytes
from nanodet_mcu.errors import NanodetError


def random_boxes(rng, n):
    xy = rng.uniform(0, 300, size=(n, 2))
    wh = rng.uniform(1, 120, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("seed", range(20))
def test_nms_matches_tensorflow(seed):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = random_boxes(rng, n)
    scores = rng.uniform(0, 1, size=n)  # continuous: no exact ties, so both orders are defined
    ours = decode.nms(boxes, scores, 0.5, 0.2, 100)
    theirs = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]].astype(np.float32), scores.astype(np.float32),
                                          max_output_size=100, iou_threshold=0.5, score_threshold=0.2).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_nms_ties_prefer_lower_index_and_cap():
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[50, 50, 60, 60]] * 2, float)
    scores = np.array([0.5, 0.5, 0.5, 0.9, 0.9])
    assert decode.nms(boxes, scores).tolist() == [3, 0]
    assert decode.nms(boxes, scores, max_out=1).tolist() == [3]
    assert decode.nms(boxes, np.full(5, 0.2)).tolist() == []  # strictly above the score threshold


def test_distances_decode_from_cell_centres_and_clamp():
    dist = np.zeros((100, 4))
    dist[0] = [1, 1, 1, 1]  # cell (0,0): centre (16,16), 32 px each side -> clamped at 0
    dist[99] = [0.5, 0.25, 0, 0]  # cell (9,9): centre (304,304)
    boxes = decode.distances_to_boxes(dist)
    np.testing.assert_allclose(boxes[0], [0, 0, 48, 48])
    np.testing.assert_allclose(boxes[99], [288, 296, 304, 304])


def test_project_bins_is_softmax_expectation():
    logits = np.zeros(32)
    logits[7] = 50.0  # side 0 all in bin 7
    d = decode.project_bins(logits)
    assert d[0] == pytest.approx(7.0) and d[1] == pytest.approx(3.5)


def test_quantize_rounds_and_clips_never_wraps():
    rgb = np.zeros((320, 320, 3), np.uint8)
    rgb[0, 0] = [255, 0, 128]
    q = preprocess.quantize(rgb, scale=0.001, zero_point=0)  # huge range: must saturate
    assert q.shape == spec.INPUT_SHAPE and q.dtype == np.int8
    assert q[0, 0, 0].tolist() == [127, -128, 127]  # BGR: blue 128 -> +, green 0 -> -, red 255 -> +
    lut = preprocess.input_lut(0.018658448, -14)
    expected = np.clip(np.round((np.arange(256) - spec.MEAN_BGR[0]) / spec.STD_BGR[0] / 0.018658448) - 14, -128, 127)
    np.testing.assert_array_equal(lut[0], expected)


def test_model_facts_of_nxp_model(nxp_model_path):
    info = model_info.load(nxp_model_path)
    layout = model_info.nanodet_layout(info)
    assert layout.scores.shape == spec.SCORES_SHAPE and layout.boxes.shape == spec.BOXES_SHAPE
    assert abs(info.parameters - 204_179) <= 100
    assert 70e6 < info.macs < 85e6
    assert info.op_counts["CONV_2D"] == 42


def test_foreign_and_corrupt_models_are_refused(tmp_path, nxp_model_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(NanodetError, match="not a TFLite"):
        model_info.load(bad)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(nxp_model_path.read_bytes()[:5000])
    with pytest.raises(NanodetError):
        model_info.nanodet_layout(model_info.load(truncated))


def test_non_nanodet_model_is_reported(tmp_path):
    tf = pytest.importorskip("tensorflow")

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):
            return tf.nn.relu(x)

    m = Tiny()
    data = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m).convert()
    info = model_info.load(data)
    assert "expected 2 outputs" in model_info.nanodet_problem(info)


def test_cli_inspect_json(nxp_model_path, capsys):
    assert main(["inspect", str(nxp_model_path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["nanodet"] and facts["tflm_arena_bytes"] > 1_000_000
    assert facts["tflm_arena_reserved_bytes"] == -(-(facts["tflm_arena_bytes"] + 16384) // 16) * 16
    assert facts["aot_arena_bytes"] == aot_arena_bytes(model_info.load(nxp_model_path)) <= 340 * 1024  # issue 15
    assert facts["outputs"][0]["shape"] == [1, 10, 10, 80]


def test_cli_detect_json_and_raw(nxp_model_path, example_image, tmp_path, capsys):
    rc = main(["detect", "--model", str(nxp_model_path), str(example_image), "--json",
               "--save-raw", str(tmp_path / "raw"), "--out-dir", str(tmp_path / "img")])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    top = report[0]["detections"][0]
    assert top["label"] == "bus" and set(top) == {"class_id", "label", "score", "box"}
    scores = np.load(tmp_path / "raw" / "example_input.scores.npy")
    assert scores.shape == spec.SCORES_SHAPE and scores.dtype == np.int8
    annotated = tmp_path / "img" / "example_input.jpg"  # a JPEG input stays JPEG
    assert annotated.read_bytes()[:3] == b"\xff\xd8\xff" and annotated.stat().st_size < 150_000
    assert main(["detect", "--model", str(nxp_model_path), str(example_image), "--out-dir", str(tmp_path / "png"),
                 "--format", "png"]) == 0
    assert (tmp_path / "png" / "example_input.png").read_bytes()[:4] == b"\x89PNG"


def test_float_onnx_top_detection_is_the_bus(onnx_path, example_image):
    from nanodet_mcu.pipeline import Detector

    res = Detector(onnx_path).detect_file(example_image)
    assert spec.COCO_LABELS[res.detections.classes[0]] == "bus"


@pytest.mark.parametrize("argv, message", [
    (["inspect", "/nonexistent.tflite"], "cannot read model"),
    (["detect", "--model", "/nonexistent.tflite", "x.jpg"], "cannot read model"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.slow
def test_evaluate_tflite_and_onnx_on_a_few_images(nxp_model_path, onnx_path, val_dir):
    from nanodet_mcu.model.evaluate import evaluate_model
    from tests.conftest import shared_path

    ann = shared_path("coco/instances_val_derived600.json")
    for model in (nxp_model_path, onnx_path):
        m = evaluate_model(model, val_dir, ann, limit=20)
        assert m["images"] == 20 and 0.0 <= m["mAP"] <= 100.0
