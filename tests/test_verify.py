"""verify's checks and reports: the comparisons on constructed data, and the wrong-firmware stop on real QEMU."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from nanodet_mcu import cli, model_info, postprocess_fixed
from nanodet_mcu.link import protocol as p
from nanodet_mcu.verify import report as verify_report
from nanodet_mcu.verify import verifier as verify
from tests import firmware_builds
from tests.conftest import require_tool
from tests.golden import make_golden


def test_output_comparison_counts_bytes_and_honours_tolerance():
    ref = (np.zeros((1, 10, 10, 80), np.int8), np.zeros((1, 10, 10, 32), np.int8))
    dev = (ref[0].copy(), ref[1].copy())
    dev[0][0, 0, 0, :3] = [1, -2, 1]
    check = verify.compare_outputs(dev, ref, 0, "img")
    assert not check.passed and check.data["tensors"]["scores"] == {"differing_bytes": 3, "max_abs_delta": 2,
                                                                      "bytes": 8000}
    assert verify.compare_outputs(dev, ref, 2, "img").passed
    assert not verify.compare_outputs(dev, ref, 1, "img").passed
    assert verify.compare_outputs(ref, ref, 0, "img").passed


@pytest.fixture(scope="module")
def nxp_layout(nxp_model_path):
    info = model_info.load(nxp_model_path)
    return info, model_info.nanodet_layout(info)


def test_detection_checks_catch_any_difference(nxp_layout):
    info, layout = nxp_layout
    params = postprocess_fixed.params_for(layout)
    rng = np.random.default_rng(0)
    scores = rng.integers(-128, 128, (1, 10, 10, 80), dtype=np.int8)
    boxes = rng.integers(-128, 128, (1, 10, 10, 32), dtype=np.int8)
    expected = postprocess_fixed.run(scores, boxes, params)
    assert expected
    dets = tuple((d.x1, d.y1, d.x2, d.y2, d.cell, d.class_id, d.score) for d in expected)
    result = p.Result(0, 0, 0, 1, 2, 3, params.coord_frac_bits, dets)
    assert verify.compare_fixed(result, expected, params, "img").passed
    from nanodet_mcu import decode

    ref = decode.decode_quantized(scores, boxes, (layout.scores.scale, layout.scores.zero_point),
                                  (layout.boxes.scale, layout.boxes.zero_point))
    assert verify.compare_float(result, ref, params, "img").passed
    moved = p.Result(0, 0, 0, 1, 2, 3, params.coord_frac_bits, ((dets[0][0] + 1,) + dets[0][1:],) + dets[1:])
    assert not verify.compare_fixed(moved, expected, params, "img").passed
    shifted = p.Result(0, 0, 0, 1, 2, 3, params.coord_frac_bits,
                       ((dets[0][0] + 64 * 256,) + dets[0][1:],) + dets[1:])  # 64 px: IoU far below 0.99
    assert not verify.compare_float(shifted, ref, params, "img").passed
    assert not verify.compare_fixed(p.Result(0, 0, 0, 1, 2, 3, 4, dets), expected, params, "img").passed


def test_model_check_and_latency_units(nxp_layout):
    info, layout = nxp_layout
    dev = make_golden.INFO
    wrong = verify.check_model(dev, info, layout)
    assert not wrong.passed and "wrong firmware" in wrong.detail
    lat = verify.latency_summary(dev, {"inference": [25_000_000, 27_000_000]})
    assert lat["inference"]["unit"] == "M emulated instructions"
    assert lat["inference"]["mean"] == pytest.approx(1040.0) and lat["inference"]["max"] == pytest.approx(1080.0)
    board = p.Info(**{**dev.__dict__, "timer_kind": "dwt-cycles", "timer_units_per_tick": 1,
                      "core_clock_hz": 996_000_000})
    assert verify.latency_summary(board, {"inference": [99_600_000]})["inference"]["p50"] == pytest.approx(100.0)


def test_reports_are_json_and_junit(tmp_path):
    report = verify.Report(checks=[verify.Check("model", None, True, "ok"),
                                   verify.Check("outputs", "a.jpg", False, "3 bytes differ")],
                           link={"seconds": 1.5})
    verify_report.write_json(report, tmp_path / "r.json")
    verify_report.write_junit(report, tmp_path / "r.xml")
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert suite.find("testcase[@name='outputs']/failure").get("message") == "3 bytes differ"


def test_wrong_model_stops_after_the_first_check(nxp_model_path, example_image, val_images, tmp_path, capsys):
    require_tool("qemu-system-arm")
    elf = firmware_builds.aot_firmware(nxp_model_path, firmware_builds.ci_images(example_image, val_images))[1]
    other = tmp_path / "other.tflite"
    other.write_bytes(nxp_model_path.read_bytes() + b"\0")  # same model, different file: different sha256
    code = cli.main(["verify", "--emulate", str(elf), "--model", str(other), "--report", str(tmp_path / "r.json")])
    data = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and [c["name"] for c in data["checks"]] == ["model"]
    assert "wrong firmware" in capsys.readouterr().out


def test_verify_needs_a_port_or_an_emulator(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--model", "m.tflite"])


def test_inputs_are_checked_before_qemu_starts(nxp_model_path, tmp_path, capsys, monkeypatch):
    from nanodet_mcu.device import emulator

    def no_qemu(*a, **k):
        raise AssertionError("QEMU started before the inputs were checked")

    monkeypatch.setattr(emulator.Emulator, "start", no_qemu)
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(11) + (40).to_bytes(2, "little"))  # a 32-bit Arm ELF header
    for argv, message in [
        (["--emulate", str(elf), "--model", str(tmp_path / "missing.tflite")], "cannot read model"),
        (["--emulate", str(elf), "--model", str(elf)], "not a TFLite flatbuffer"),
        (["--emulate", str(tmp_path / "missing.elf"), "--model", str(nxp_model_path)], "cannot read firmware"),
    ]:
        assert cli.main(["verify", *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
