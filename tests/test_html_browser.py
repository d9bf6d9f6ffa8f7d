"""The HTML verify report of real emulated runs, opened in headless Chromium: a run that passes, and one that fails
because the firmware's weights differ by one byte from the model it reports (as a corrupted flash or a hand-edited
weight array would): the page must not be blank, show one picture per verified image, and the failing ones first."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import cli, model_info
from tests import firmware_builds
from tests.conftest import require_tool

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = (1280, 2400)
# One bit of one weight: the head's last 1x1 convolution, output channel 60 (class "dining table"), input channel 39.
# On the CI images it changes the outputs of three of the four (and a detection score on one), not of the fourth.
HEAD_WEIGHTS, OUT_CHANNEL, IN_CHANNEL, BIT = "model/conv2d_41/Conv2D", 60, 39, 0x10


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium not installed (.ci/run installs Debian's chromium): the report's browser test needs it")


def open_in_chromium(page: Path, png: Path) -> str:
    """Load the page from disk in a fresh headless profile, screenshot the window, return the DOM as loaded."""
    profile = png.with_suffix(".profile")
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", "--dump-dom",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-3000:]
    return proc.stdout


class Frames(HTMLParser):
    """The image frames of a page, in document order: (data-image, data-passed)."""

    def __init__(self, dom: str):
        super().__init__()
        self.found: list[tuple[str, bool]] = []
        self.charts: list[str] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "data-image" in a:
            self.found.append((a["data-image"], a.get("data-passed") == "true"))
        if tag == "svg" and "data-chart" in a:
            self.charts.append(a["data-chart"])


def assert_not_blank(png: Path) -> None:
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert pixels.std() > 25, "the page is (nearly) one colour"
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 5000, f"only {colours} colours: the photos did not render"  # text and charts alone use ~1000


def one_byte_off(model: Path, out: Path) -> Path:
    """A copy of `model` with BIT flipped in one int8 weight of HEAD_WEIGHTS (located through the flatbuffer)."""
    info = model_info.load(model)
    fb = model_info.schema().Model.GetRootAsModel(info.data, 0)
    sub = fb.Subgraphs(0)
    tensor = next(sub.Tensors(i) for i in range(sub.TensorsLength()) if sub.Tensors(i).Name() == HEAD_WEIGHTS.encode())
    buf = fb.Buffers(tensor.Buffer())
    start = buf._tab.Vector(buf._tab.Offset(4))  # the weight bytes' offset in the file
    data = bytearray(info.data)
    data[start + OUT_CHANNEL * int(tensor.Shape(3)) + IN_CHANNEL] ^= BIT
    out.write_bytes(bytes(data))
    return out


def firmware_one_byte_off(model: Path, images: list[Path], work: Path) -> Path:
    """Firmware that runs `one_byte_off(model)` but reports `model`'s sha256, so verify gets past the model check
    and finds the difference where a user would: in the outputs of some images."""
    from nanodet_mcu.codegen import generate
    from nanodet_mcu.device import build

    other = one_byte_off(model, work / "one_byte_off.tflite")
    claimed, actual = model_info.load(model).sha256.encode(), model_info.load(other).sha256.encode()
    out = work / "project"
    generate.generate("mps2-an500", other, engine="aot", out_dir=out, embed_images=images, log=lambda m: None)
    patched = 0
    for f in out.iterdir():
        if f.is_file() and actual in f.read_bytes():
            f.write_bytes(f.read_bytes().replace(actual, claimed))
            patched += 1
    assert patched, "the generated project does not carry the model's sha256"
    return build.build(out)


def test_pages_of_a_passing_and_a_failing_emulated_run(nxp_model_path, example_image, val_images, tmp_path,
                                                       capsys):
    require_tool("qemu-system-arm")
    chromium()
    images = firmware_builds.ci_images(example_image, val_images)
    elf = firmware_builds.aot_firmware(nxp_model_path, images)[1]
    bad_elf = firmware_one_byte_off(nxp_model_path, images, tmp_path)

    model = ["--model", str(nxp_model_path)]
    assert cli.main(["verify", "--emulate", str(elf), *model, "--runs", "2", "--report", str(tmp_path / "pass.json"),
                     "--html", str(tmp_path / "pass.html")]) == 0
    assert cli.main(["verify", "--emulate", str(bad_elf), *model, "--report", str(tmp_path / "fail.json")]) == 1
    assert cli.main(["report", str(tmp_path / "fail.json"), "-o", str(tmp_path / "fail.html")]) == 0
    capsys.readouterr()

    fail = json.loads((tmp_path / "fail.json").read_text())
    assert [c["passed"] for c in fail["checks"] if c["name"] == "model"] == [True]
    failing = {i["name"] for i in fail["images"] if not i["passed"]}
    assert failing and len(failing) < len(images), "the one-byte change should fail some images, not all"
    assert all(c.get("delta_maps") for c in fail["checks"] if c["name"] == "outputs" and c["image"] in failing)

    for name in ("pass", "fail"):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        dom = open_in_chromium(tmp_path / f"{name}.html", tmp_path / f"{name}.png")
        assert_not_blank(tmp_path / f"{name}.png")
        page = Frames(dom)
        assert sorted(n for n, _ in page.found) == sorted(i["name"] for i in data["images"])
        assert len(page.found) == len(images)  # one picture per verified image
        shown = [passed for _, passed in page.found]
        assert shown == sorted(shown), f"{name}: a passing image is shown before a failing one: {page.found}"
        assert "latency" in page.charts
        if name == "fail":
            assert not page.found[0][1] and {n for n, p in page.found if not p} == failing
            assert any(c.endswith("-scores") for c in page.charts)  # the heatmap of the differing tensor
        else:
            assert all(shown)
