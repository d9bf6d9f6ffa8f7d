"""The HTML verify report on constructed reports: what it shows and in which order, escaping, bad input to `report`,
unwritable outputs.  The real thing (emulated runs, pass and fail, in headless Chromium) is test_html_browser.py."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from nanodet_mcu import cli, decode
from nanodet_mcu.verify import html
from nanodet_mcu.verify import report as verify_report
from nanodet_mcu.verify import verifier as verify
from tests import report_samples
from tests.golden import make_golden

FRAME = re.compile(r'<svg class="frame" data-image="([^"]*)" data-passed="(true|false)"')


def dets(*rows) -> decode.Detections:
    """rows of (x1, y1, x2, y2, score, class)"""
    a = np.asarray(rows, np.float64).reshape(-1, 6)
    return decode.Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64), np.arange(len(a)))


def constructed() -> verify.Report:
    """Two images, the second failing on one score byte (its device box also moved), the model check, latency."""
    rgb = np.zeros((320, 320, 3), np.uint8)
    rgb[..., 0] = np.arange(320)[None, :] * 255 // 319
    rgb[..., 2] = np.arange(320)[:, None] * 255 // 319
    host = (np.full((1, 10, 10, 80), -128, np.int8), np.zeros((1, 10, 10, 32), np.int8))
    device = (host[0].copy(), host[1].copy())
    device[0][0, 3, 4, 5] = -120  # class 5 (bus) at cell 34
    bad = "bad <b>&.jpg"
    checks = [verify.Check("model", None, True, "sha256 matches"),
              verify.compare_outputs(host, host, 0, "good.jpg"),
              verify.compare_outputs(device, host, 0, bad),
              verify.Check("detections-float", bad, False, "device 1 vs float reference 1 detections")]
    ref = dets((40, 60, 200, 250, 0.83, 5))
    images = [verify.image_record("good.jpg", checks, rgb, ref, ref),
              verify.image_record(bad, checks, rgb, dets((50, 60, 210, 250, 0.61, 5), (0, 0, 30, 30, 0.3, 0)), ref)]
    return verify.Report(device=make_golden.INFO.as_dict(), model={"path": "m.tflite", "sha256": "ab" * 32},
                         checks=checks, images=images, date="2025-01-02T03:04:05+00:00",
                         latency=verify.latency_summary(make_golden.INFO, {"preprocess": [38401, 38401],
                                                                           "inference": [3519275, 3519276],
                                                                           "postprocess": [2350, 2077]}),
                         link={"port": "/dev/pts/3", "seconds": 12.5, "requests": 80, "retries": 0, "bad_frames": 0,
                               "bytes_sent": 700, "bytes_received": 650_000})


def constructed_report(profile: bool = True) -> dict:
    """`constructed()` as JSON, with (by default) the profile and bisect sections other options add."""
    r = constructed().as_dict()
    if profile:
        r["profile"], r["bisect"] = report_samples.profile(), report_samples.bisect()
    return r


def test_outputs_check_carries_a_delta_map_only_when_bytes_differ():
    host = (np.zeros((1, 10, 10, 80), np.int8), np.zeros((1, 10, 10, 32), np.int8))
    device = (host[0].copy(), host[1].copy())
    device[0][0, 3, 4, 5] = 3
    device[0][0, 9, 9, 79] = -2
    data = verify.compare_outputs(device, host, 0, "img").data
    assert list(data["delta_maps"]) == ["scores"]  # boxes are identical: no map
    m = data["delta_maps"]["scores"]
    grid = np.asarray(m["values"])
    assert m["shape"] == [80, 100] and grid.shape == (80, 100) and m["max"] == 3
    assert grid[5, 34] == 3 and grid[79, 99] == 2 and np.count_nonzero(grid) == 2
    assert "delta_maps" not in verify.compare_outputs(host, host, 0, "img").data


def test_report_json_carries_images_with_both_detection_sets():
    r = constructed_report(profile=False)
    assert [i["name"] for i in r["images"]] == ["good.jpg", "bad <b>&.jpg"]
    assert [i["passed"] for i in r["images"]] == [True, False]
    img = r["images"][1]
    assert img["device_detections"][0] == {"box": [50.0, 60.0, 210.0, 250.0], "class_id": 5, "label": "bus",
                                           "score": 0.61}
    assert img["reference_detections"][0]["label"] == "bus"
    assert 2_000 < len(img["jpeg_base64"]) < 80_000
    assert r["date"] and "firmware" not in r  # keys without data stay out of the JSON


def test_report_json_keeps_rows_of_numbers_on_one_line(tmp_path):
    verify_report.write_json(constructed(), tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text) == constructed_report(profile=False)
    assert '"box": [50.0, 60.0, 210.0, 250.0]' in text and '"ticks": [38401, 38401]' in text
    assert text.count("\n") < 400  # the 80 x 100 delta map is 80 lines, not 8000


def test_page_shows_failing_images_first_with_escaped_names_and_no_script(tmp_path):
    r = constructed_report()
    page = html.render(r)
    frames = FRAME.findall(page)
    assert frames == [("bad &lt;b&gt;&amp;.jpg", "false"), ("good.jpg", "true")]
    assert "<b>&" not in page and "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page) and "url(http" not in page  # nothing fetched
    assert page.count('data:image/jpeg;base64,') == 2
    for section in ("device-checks", "bisect", "images", "latency", "profile", "details"):
        assert f'id="{section}"' in page, section
    assert 'data-chart="img-1-scores"' in page and 'data-chart="img-1-boxes"' not in page  # heatmap of the bad bytes
    assert "5 bus" in page  # the differing class is named on the heatmap
    assert "M emulated instructions" in page and "CONV_2D+LEAKY_RELU" in page
    assert "model/leaky_re_lu_6/LeakyRelu" in page and "diverged" in page  # the bisect result
    assert "only device" in page  # the extra device detection is listed against the reference


def test_saved_report_renders_like_the_live_one(tmp_path):
    r = constructed_report()
    (tmp_path / "r.json").write_text(json.dumps(r))
    assert cli.main(["report", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "r.html").read_text() == html.render(r, source="r.json")


def test_board_profile_is_charted_in_ms():
    r = constructed_report(profile=False)
    r["profile"] = report_samples.profile(board=True)
    page = html.profile_section(r["profile"])
    assert "Per-op profile <span class=\"muted\">ms</span>" in page and "cycles/MAC" in page


@pytest.mark.parametrize("status", ["identical", "no-host-twin", "error"])
def test_bisect_without_divergence_shows_its_detail(status):
    b = report_samples.bisect(status)
    assert html.e(b["detail"]) in html.bisect_section(b)


def test_report_without_images_still_renders_its_checks():
    r = constructed_report(profile=False)
    del r["images"]
    page = html.render(r)
    assert not FRAME.findall(page) and "carries no images" in page and "bad &lt;b&gt;&amp;.jpg" in page


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n", "is not JSON"),
    (b"{\"passed\": true,", "is not JSON"),
    (b"[1, 2]", "is not a verify report"),
    (b"{\"images\": []}", "is not a verify report"),
    (b"{\"passed\": \"yes\", \"checks\": []}", "passed should be true/false"),
    (b"{\"passed\": true, \"checks\": [{\"name\": \"model\", \"passed\": true}]}", "checks[0].detail is missing"),
    (b"{\"passed\": true, \"checks\": [], \"images\": [{\"name\": \"a\", \"passed\": true, \"jpeg_base64\": \"eHh4\","
     b" \"device_detections\": [], \"reference_detections\": []}]}", "images[0].jpeg_base64 is not a base64 JPEG"),
    (b"{\"passed\": true, \"checks\": [], \"bisect\": {\"status\": \"maybe\"}}", "bisect.status should be one of"),
    (b"{\"passed\": true, \"checks\": []}", "checks is empty"),
    (b"{\"passed\": true, \"checks\": [{\"name\": \"model\", \"passed\": false, \"detail\": \"x\"}]}",
     "passed disagrees with its checks"),
])
def test_report_command_refuses_what_is_not_a_verify_report(tmp_path, capsys, content, message):
    src = tmp_path / "r.json"
    src.write_bytes(content)
    assert cli.main(["report", str(src), "-o", str(tmp_path / "out.html")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.html").exists() and not list(tmp_path.glob(".out.html*"))


def test_bad_detection_in_a_saved_report_is_named(tmp_path, capsys):
    r = constructed_report(profile=False)
    r["images"][1]["reference_detections"][0]["box"] = [1, 2, 3]
    (tmp_path / "r.json").write_text(json.dumps(r))
    assert cli.main(["report", str(tmp_path / "r.json")]) == 1
    assert "images[1].reference_detections[0].box should be 4 numbers" in capsys.readouterr().err


def test_unwritable_outputs_fail_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # the emulator is never started (its ELF does not even exist): the --html check comes first
    assert cli.main(["verify", "--emulate", str(tmp_path / "missing.elf"), "--model", "m.tflite",
                     "--html", str(blocker / "r.html")]) == 1
    err = capsys.readouterr().err
    assert f"cannot write --html {blocker / 'r.html'}: {blocker} is not a directory" in err
    assert cli.main(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path)]) == 1
    assert "it is a directory" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(Exception, match="is not a directory"):
        verify_report.check_writable(blocker / "sub" / "r.html")


def test_a_wrong_firmware_page_says_so_without_images():
    r = verify.Report(device=make_golden.INFO.as_dict(), model={"path": "m.tflite", "sha256": "cd" * 32},
                      checks=[verify.check_model(make_golden.INFO, SimpleNamespace(sha256="cd" * 32, path="m.tflite"),
                                                 None)])
    page = html.render(r.as_dict())
    assert '<div class="big">FAIL</div>' in page and "wrong firmware" in page and not FRAME.findall(page)


def test_board_latency_is_in_ms_with_cycles():
    board = make_golden.INFO.__class__(**{**make_golden.INFO.__dict__, "board": "rt1170", "timer_kind": "dwt-cycles",
                                          "timer_units_per_tick": 1, "core_clock_hz": 996_000_000})
    r = constructed_report(profile=False)
    r["device"] = board.as_dict()
    r["latency"] = verify.latency_summary(board, {"inference": [140_000_000, 141_000_000, 140_500_000]})
    page = html.latency_section(r)
    assert "mean (ms)" in page and "mean cycles" in page and "140,500,000" in page and "996 MHz" in page
    assert "<td>141.064</td>" in page  # the mean, 140.5 M cycles at 996 MHz
