"""`convert`: structure of our int8 model, determinism, calibration draw, and clear one-line errors."""
from __future__ import annotations

import os

import numpy as np
import pytest

from nanodet_mcu import cli, decode, model_info, preprocess, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.model import convert

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NXP_OPS = {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D", "PAD",
           "RESHAPE", "RESIZE_BILINEAR", "SLICE", "SPLIT", "TRANSPOSE"}


@pytest.fixture(scope="module")
def ours(our_model_path) -> model_info.ModelInfo:
    return model_info.load(our_model_path)


@pytest.mark.slow
def test_layout_scores_first_int8(ours):
    layout = model_info.nanodet_layout(ours)
    assert layout.scores_index == 0 and layout.boxes_index == 1
    assert layout.input.dtype == "int8" and layout.input.shape == spec.INPUT_SHAPE
    assert (layout.scores.scale, layout.scores.zero_point) == (1 / 256, -128)  # sigmoid output range
    assert layout.boxes.shape == spec.BOXES_SHAPE


@pytest.mark.slow
def test_structure_matches_nxp_op_set_and_parameter_count(ours):
    assert set(ours.ops) <= NXP_OPS, set(ours.ops) - NXP_OPS
    assert ours.op_counts["CONV_2D"] + ours.op_counts["DEPTHWISE_CONV_2D"] == 63
    assert ours.op_counts["RESIZE_BILINEAR"] == 4 and ours.op_counts["MAX_POOL_2D"] == 1
    assert abs(ours.parameters - 204_179) <= 100


@pytest.mark.slow
def test_int8_model_agrees_with_float_on_example(ours, onnx_path, example_image):
    """Our top detection on the zoo's example is the bus, with box IoU >= 0.9 against the float export's."""
    pytest.importorskip("onnxruntime")
    from nanodet_mcu.pipeline import Detector

    q = Detector(ours.path).detect_file(example_image).detections  # default reference path: tflite-micro
    f = Detector(onnx_path).detect_file(example_image).detections
    assert len(f) > 0 and len(q) > 0
    assert spec.COCO_LABELS[int(q.classes[0])] == "bus" and q.classes[0] == f.classes[0]
    assert decode.iou_one_to_many(f.boxes[0], q.boxes[:1])[0] >= 0.9
    assert abs(float(q.scores[0]) - float(f.scores[0])) < 0.05

@pytest.mark.slow
def test_two_runs_are_byte_identical_cli_and_api(tmp_path, onnx_path, calib_dir, capfd):
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    assert cli.main(["convert", "--weights", str(onnx_path), "--calib-dir", str(calib_dir), "--num-calib", "4",
                     "--seed", "7", "-o", str(a)]) == 0
    err = capfd.readouterr().err  # stderr is not a terminal here: progress comes as log lines, one per stage
    for stage in ("preprocessing the calibration images", "loading TensorFlow",
                  "converting the graph and calibrating its ranges", "refining the activation ranges",
                  "quantising to int8"):
        assert f"convert: {stage} done (" in err, err
    convert.convert(onnx_path, calib_dir, num_calib=4, seed=7, out_path=b)
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] and all(p.suffix == ".tflite" for p in tmp_path.iterdir())


def test_calibration_draw_is_seeded_subset(calib_dir):
    files = preprocess.list_images(calib_dir)
    a = convert.calibration_images(calib_dir, 10, seed=1337)
    assert a == convert.calibration_images(calib_dir, 10, seed=1337)
    assert a != convert.calibration_images(calib_dir, 10, seed=1)
    assert len(set(a)) == 10 and set(a) <= set(files)
    assert sorted(convert.calibration_images(calib_dir, 10_000)) == files  # never more than there are
    with pytest.raises(NanodetError, match="at least 1"):
        convert.calibration_images(calib_dir, 0)


def _fails_cleanly(tmp_path, match, **kwargs):
    out = tmp_path / "out" / "model.tflite"
    with pytest.raises(NanodetError, match=match) as exc:
        convert.convert(out_path=out, **kwargs)
    assert "\n" not in str(exc.value)
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_missing_weights(tmp_path, calib_dir):
    _fails_cleanly(tmp_path, "not found", weights=tmp_path / "nope.onnx", calib_dir=calib_dir)


def test_corrupt_onnx(tmp_path, calib_dir):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    _fails_cleanly(tmp_path, "bad.onnx", weights=bad, calib_dir=calib_dir)


def test_onnx_of_another_variant_names_the_tensor(tmp_path, onnx_path, calib_dir):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.input[1] == "974")  # stage2.0.branch1.2
    init = next(t for t in model.graph.initializer if t.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(np.zeros((58, 24, 1, 1), np.float32), init.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    _fails_cleanly(tmp_path, r"'974' \(backbone\.stage2\.0\.branch1\.2\.weight\) has shape \[58, 24, 1, 1\]",
                   weights=other, calib_dir=calib_dir)


def test_empty_calibration_dir(tmp_path, onnx_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_cleanly(tmp_path, "no images", weights=onnx_path, calib_dir=empty)
    _fails_cleanly(tmp_path, "not a directory", weights=onnx_path, calib_dir=tmp_path / "missing")


def test_unreadable_calibration_image(tmp_path, onnx_path):
    d = tmp_path / "calib"
    d.mkdir()
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    _fails_cleanly(tmp_path, "cannot read image", weights=onnx_path, calib_dir=d)


def test_missing_calibration_folder_says_what_to_pass(monkeypatch):
    monkeypatch.delenv(convert.CALIB_ENV, raising=False)
    with pytest.raises(NanodetError, match=r"pass --calib-dir DIR .*val2017\.zip"):
        convert.default_calib_dir()
    monkeypatch.setenv(convert.CALIB_ENV, "/some/dir")
    assert str(convert.default_calib_dir()) == "/some/dir"


def test_cli_reports_errors_on_one_line(tmp_path, capsys):
    assert cli.main(["convert", "--weights", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "m.tflite")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanodet-mcu convert: error:") and "\n" not in err
    assert not (tmp_path / "m.tflite").exists()


def test_range_refinement_clips_rare_outliers_only():
    bins = convert.HIST_BINS
    spread = np.zeros(bins)
    spread[: bins // 2] = 1000.0  # values fill [-1, 0]
    spread[bins // 2:] = 1000.0  # and [0, 1]: nothing to gain by clipping
    assert convert._best_range(spread, -1.0, 1.0) == (-1.0, 1.0)
    outlier = np.zeros(bins)
    outlier[bins // 4: bins // 2 + bins // 8] = 1000.0  # bulk in [-0.5, 0.25]
    outlier[-1] = 1.0  # one value near 1.0
    lo, hi = convert._best_range(outlier, -1.0, 1.0)
    assert lo == pytest.approx(-0.5) and 0.25 <= hi < 0.8  # the bulk is kept, the lone outlier clipped
