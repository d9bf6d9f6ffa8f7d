"""Bad input of every kind, as a careful user would try it: every subcommand gives exactly one line on stderr, no
traceback and exit 1 (a failure) or 2 (a bad command line); outputs are checked before the work and written all
together or not at all.  Each case runs the real command line in a subprocess (`python -m nanodet_mcu`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nanodet_mcu import outputs
from nanodet_mcu.errors import NanodetError
from tests import aot_models, model_surgery

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env=None, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "nanodet_mcu", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def unwritable_dir(base: Path) -> Path:
    """A directory this process cannot create files in: a mode 0555 one, or for root (who ignores modes) sysfs."""
    if os.geteuid() != 0:
        d = base / "read-only"
        d.mkdir()
        d.chmod(0o555)
        return d
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("running as root without sysfs: no directory root cannot write to")
    return Path("/sys/kernel")


def _onnx_conv(path: Path, bias_computed: bool = False, short_weights: bool = False) -> Path:
    """A one-conv ONNX graph shaped like NanoDet's first layer, broken the way the issue found."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from nanodet_mcu.model.weights import layout

    layer = layout.all_layers()[0]
    w = numpy_helper.from_array(np.ones(layer.weight_shape, np.float32), "w")
    if short_weights:
        w.raw_data = w.raw_data[: len(w.raw_data) // 2]
    b = numpy_helper.from_array(np.zeros(layer.out_ch, np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b_used" if bias_computed else "b"], ["y"], name="Conv_0",
                              strides=[layer.stride] * 2, pads=[1, 1, 1, 1], kernel_shape=[3, 3])]
    if bias_computed:
        nodes.insert(0, helper.make_node("Identity", ["b"], ["b_used"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 320, 320])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict:
    from PIL import Image

    d = tmp_path_factory.mktemp("hostile")
    good = aot_models.build("nanodet_shaped_conv_logistic")  # NanoDet's int8 I/O: generate and verify take it
    data = good.read_bytes()
    files = {"dir": d, "good": good, "ro": unwritable_dir(d), "notnano": aot_models.build("conv1x1_relu")}
    for name, content in {"text.jpg": b"hello", "empty.tflite": b"", "afile": b"x",
                          "truncated.tflite": data[: len(data) // 3],
                          "badroot.tflite": (1_380_755_529).to_bytes(4, "little") + data[4:],
                          "reshape.tflite": model_surgery.edit(data, lambda m: model_surgery.retype_op(m, 0,
                                                                                                      "RESHAPE")),
                          "crash_tflm.tflite": model_surgery.edit(  # an ADD of an int32 vector: TFLM aborts
                              aot_models.build("transpose5d_shuffle_words").read_bytes(),
                              lambda m: model_surgery.retype_op(m, 0, "ADD")),
                          "crash_tflite.tflite": model_surgery.edit(data, lambda m: model_surgery.retype_op(
                              m, 0, "SPLIT")),  # a conv read as SPLIT: TensorFlow Lite segfaults
                          "annotations.json": b"{not json", "coco_list.json": b"[]",
                          "weights.ckpt": b"PK\x03\x04garbage"}.items():
        (d / name).write_bytes(content)
        files[name.split(".")[0]] = d / name
    Image.new("RGB", (64, 48), (90, 120, 200)).save(d / "ok.png")
    Image.new("1", (10000, 10000)).save(d / "bomb.png")  # 1e8 pixels in 12 KB: over Pillow's limit
    (d / "images").mkdir()
    Image.new("RGB", (64, 48)).save(d / "images" / "a.png")
    (d / "coco.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
                                             "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    for name, manifest in (("proj_list", "[1, 2]"), ("proj_garbage", "{"), ("proj_nosh", json.dumps(
            {"board": "mps2-an500", "engine": "aot", "elf": "build/x.elf"}))):
        (d / name).mkdir()
        (d / name / "project.json").write_text(manifest)
        if name != "proj_nosh":
            (d / name / "build.sh").write_text("exit 0\n")
    files.update(coco=d / "coco.json", ok=d / "ok.png", bomb=d / "bomb.png", images=d / "images",
                 proj_list=d / "proj_list", proj_garbage=d / "proj_garbage", proj_nosh=d / "proj_nosh",
                 onnx_bias=_onnx_conv(d / "bias.onnx", bias_computed=True),
                 onnx_short=_onnx_conv(d / "short.onnx", short_weights=True))
    return files


SLOW = pytest.mark.slow
# (case id, argv with {placeholders} from the `bad` fixture, words the one line must contain)
CASES = [
    ("no such command", ["frobnicate"], "invalid choice"),
    ("inspect: missing file", ["inspect", "{dir}/nope.tflite"], "No such file"),
    ("inspect: a directory", ["inspect", "{dir}"], "directory"),
    ("inspect: empty file", ["inspect", "{empty}"], "not a TFLite flatbuffer"),
    ("inspect: an image", ["inspect", "{ok}"], "not a TFLite flatbuffer"),
    ("inspect: truncated model", ["inspect", "{truncated}"], "not a valid .tflite flatbuffer"),
    ("inspect: corrupt root offset", ["inspect", "{badroot}"], "not a valid .tflite flatbuffer"),
    ("inspect: model TFLM refuses", ["inspect", "{reshape}"], "tflite-micro refuses"),
    ("inspect: model that crashes TFLM", ["inspect", "{crash_tflm}"], "crashes tflite-micro (SIGABRT)"),
    pytest.param("detect: model that crashes TFLite", ["detect", "--model", "{crash_tflite}", "--interpreter",
                                                       "tflite", "{ok}"], "crashes TensorFlow Lite (SIGSEGV)",
                 marks=SLOW, id="detect: model that crashes TFLite"),
    ("inspect: ONNX given as model", ["inspect", "{onnx_bias}"], "not a TFLite flatbuffer"),
    ("detect: not an image", ["detect", "--model", "{good}", "{text}"], "cannot read image"),
    ("detect: missing image", ["detect", "--model", "{good}", "{dir}/nope.jpg"], "cannot read image"),
    ("detect: decompression bomb", ["detect", "--model", "{good}", "{bomb}"], "decompression bomb"),
    ("detect: model TFLM refuses", ["detect", "--model", "{reshape}", "{ok}"], "tflite-micro refuses"),
    ("detect: model the AOT engine refuses", ["detect", "--model", "{reshape}", "--interpreter", "aot", "{ok}"],
     "operator 0 (RESHAPE)"),
    pytest.param("detect: model TFLite refuses", ["detect", "--model", "{reshape}", "--interpreter", "tflite",
                                                  "{ok}"], "TensorFlow Lite refuses", marks=SLOW,
                 id="detect: model TFLite refuses"),
    ("detect: not NanoDet-shaped", ["detect", "--model", "{notnano}", "{ok}"], "not an int8 NanoDet"),
    ("detect: --out-dir under a file", ["detect", "--model", "{good}", "{ok}", "--out-dir", "{afile}/out"],
     "is not a directory"),
    ("detect: --save-raw unwritable", ["detect", "--model", "{good}", "{ok}", "--save-raw", "{ro}/raw"],
     "not writable"),
    ("detect: threshold out of range", ["detect", "--model", "{good}", "{ok}", "--score-threshold", "2"], "0..1"),
    ("evaluate: --limit 0", ["evaluate", "--model", "{good}", "--images", "{images}", "--annotations", "{dir}/a.json",
                             "--limit", "0"], "at least 1"),
    ("evaluate: annotations not JSON", ["evaluate", "--model", "{good}", "--images", "{images}", "--annotations",
                                        "{annotations}"], "cannot read COCO annotations"),
    ("evaluate: model TFLM refuses", ["evaluate", "--model", "{reshape}", "--images", "{images}", "--annotations",
                                      "{coco}"], "tflite-micro refuses"),
    pytest.param("evaluate: model TFLite refuses", ["evaluate", "--model", "{reshape}", "--images", "{images}",
                                                    "--annotations", "{coco}", "--interpreter", "tflite"],
                 "TensorFlow Lite refuses", marks=SLOW, id="evaluate: model TFLite refuses"),
    ("evaluate: annotations not COCO", ["evaluate", "--model", "{good}", "--images", "{images}", "--annotations",
                                        "{coco_list}"], "not a COCO instances file"),
    ("convert: -o unwritable", ["convert", "--weights", "{onnx_bias}", "-o", "{ro}/m.tflite"], "not writable"),
    ("convert: -o under a file", ["convert", "--weights", "{onnx_bias}", "-o", "{afile}/m.tflite"],
     "is not a directory"),
    ("convert: -o onto a directory", ["convert", "--weights", "{onnx_bias}", "-o", "{dir}"], "is a directory"),
    ("convert: missing weights", ["convert", "--weights", "{dir}/nope.onnx", "-o", "{dir}/m.tflite"], "not found"),
    ("convert: corrupt checkpoint", ["convert", "--weights", "{weights}", "-o", "{dir}/m.tflite"], "weights"),
    ("convert: ONNX bias computed in the graph", ["convert", "--weights", "{onnx_bias}", "-o", "{dir}/m.tflite"],
     "no constant bias tensor"),
    ("convert: ONNX weights data short", ["convert", "--weights", "{onnx_short}", "-o", "{dir}/m.tflite"],
     "is unreadable"),
    ("convert: --num-calib 0", ["convert", "--weights", "{onnx_bias}", "--num-calib", "0"], "at least 1"),
    ("generate: --out under a file", ["generate", "--board", "mps2-an500", "--model", "{good}", "--out",
                                      "{afile}/p"], "is not a directory"),
    ("generate: --out unwritable", ["generate", "--board", "mps2-an500", "--model", "{good}", "--out", "{ro}/p"],
     "not writable"),
    ("generate: --out is a file", ["generate", "--board", "mps2-an500", "--model", "{good}", "--out", "{afile}"],
     "not a directory"),
    ("generate: AOT refuses the model", ["generate", "--board", "mps2-an500", "--engine", "aot", "--model",
                                         "{reshape}", "--out", "{dir}/p1"], "operator 0 (RESHAPE): 3 inputs"),
    ("generate: TFLM refuses the model", ["generate", "--board", "mps2-an500", "--engine", "tflm", "--model",
                                          "{reshape}", "--out", "{dir}/p2"], "tflite-micro refuses"),
    ("generate: bad embedded image", ["generate", "--board", "mps2-an500", "--model", "{good}", "--out", "{dir}/p3",
                                      "--embed-images", "{text}"], "cannot read image"),
    ("generate: not NanoDet-shaped", ["generate", "--board", "mps2-an500", "--model", "{notnano}", "--out",
                                      "{dir}/p4"], "not an int8 NanoDet"),
    ("generate: unknown board", ["generate", "--board", "rt9999", "--model", "{good}"], "invalid choice"),
    ("build: no project", ["build", "{dir}/nope"], "does not exist"),
    ("build: project.json not an object", ["build", "{proj_list}"], "not an object"),
    ("build: project.json not JSON", ["build", "{proj_garbage}"], "cannot read"),
    ("build: build.sh missing", ["build", "{proj_nosh}"], "build.sh is missing"),
    ("emulate: not an ELF", ["emulate", "{afile}"], "not a 32-bit Arm ELF"),
    ("emulate: missing ELF", ["emulate", "{dir}/nope.elf"], "cannot read firmware"),
    ("verify: --retries -1", ["verify", "--port", "/dev/null", "--model", "{good}", "--retries", "-1"],
     "at least 0"),
    ("verify: --timeout -1", ["verify", "--port", "/dev/null", "--model", "{good}", "--timeout", "-1"],
     "more than 0"),
    ("verify: --timeout nan", ["verify", "--port", "/dev/null", "--model", "{good}", "--timeout", "nan"],
     "finite"),
    ("verify: --runs 0", ["verify", "--port", "/dev/null", "--model", "{good}", "--runs", "0"], "at least 1"),
    ("verify: --deadline 0", ["verify", "--port", "/dev/null", "--model", "{good}", "--deadline", "0"],
     "more than 0"),
    ("verify: no such port", ["verify", "--port", "{dir}/ttyNOPE", "--model", "{good}"], "cannot open serial port"),
    ("verify: port is not a serial port", ["verify", "--port", "/dev/null", "--model", "{good}"],
     "cannot open serial port"),
    ("verify: corrupt model", ["verify", "--port", "/dev/null", "--model", "{truncated}"], "not a valid .tflite"),
    ("verify: --report under a file", ["verify", "--port", "/dev/null", "--model", "{good}", "--report",
                                       "{afile}/r.json"], "is not a directory"),
    ("verify: --junit unwritable", ["verify", "--port", "/dev/null", "--model", "{good}", "--junit", "{ro}/j.xml"],
     "not writable"),
    ("verify: --report and --junit the same", ["verify", "--port", "/dev/null", "--model", "{good}", "--report",
                                               "{dir}/r", "--junit", "{dir}/r"], "same file"),
    ("verify: --emulate not an ELF", ["verify", "--emulate", "{afile}", "--model", "{good}"], "not a 32-bit Arm ELF"),
    ("verify: --images not a directory", ["verify", "--port", "/dev/null", "--model", "{good}", "--images",
                                          "{afile}"], "not a directory"),
]


@pytest.mark.parametrize("case,argv,words", [c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in CASES])
def test_every_subcommand_fails_on_one_line(bad, case, argv, words):
    code, _, err = cli(*(a.format(**bad) for a in argv))
    lines = err.splitlines()
    assert code in (1, 2), f"{case}: exit {code}\n{err}"
    assert "Traceback" not in err and len(lines) == 1, f"{case}: {len(lines)} lines on stderr:\n{err}"
    assert "internal error" not in err, f"{case}: reached the safety net instead of a real check: {err}"
    assert words in lines[0], f"{case}: {lines[0]}"


def test_outputs_are_checked_before_the_work(bad, tmp_path):
    """An unwritable output fails at once (no conversion, no device contact), and creates nothing."""
    started = time.monotonic()
    code, _, err = cli("convert", "--weights", bad["onnx_bias"], "-o", f"{bad['afile']}/sub/m.tflite")
    assert code == 1 and "is not a directory" in err
    code, _, err = cli("verify", "--emulate", bad["afile"], "--model", bad["good"], "--report", f"{bad['ro']}/r.json")
    assert code == 1 and "--report" in err and "emulating" not in err
    assert time.monotonic() - started < 30
    code, _, err = cli("generate", "--board", "mps2-an500", "--model", bad["reshape"], "--engine", "aot", "--out",
                       tmp_path / "new" / "deeper" / "project")
    assert code == 1 and not (tmp_path / "new").exists(), "a failed generate left the directories it made"


def test_detect_writes_all_outputs_or_none(bad, tmp_path):
    out, raw = tmp_path / "annotated", tmp_path / "raw"
    code, stdout, err = cli("detect", "--model", bad["good"], bad["ok"], bad["text"], "--out-dir", out,
                            "--save-raw", raw)
    assert code == 1 and "cannot read image" in err and stdout == ""
    assert not out.exists() and not raw.exists(), "the good image's outputs stayed behind"
    code, stdout, _ = cli("detect", "--model", bad["good"], bad["ok"], "--out-dir", out, "--save-raw", raw)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["ok.png"]
    assert sorted(p.name for p in raw.iterdir()) == ["ok.boxes.npy", "ok.scores.npy"]


def test_staged_outputs_are_all_or_nothing(tmp_path):
    """The second of two outputs cannot be written: the first is not left behind (verify's --report/--junit)."""
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(NanodetError, match="cannot write"), outputs.Staged() as staged:
        staged.add(tmp_path / "reports" / "report.json", "{}")
        staged.add(tmp_path / "blocker" / "junit.xml", "<x/>")
        staged.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"], "an output or its directory stayed"


def test_written_outputs_are_readable_like_any_file(tmp_path):
    """Staged writes go through mkstemp (0600): what they leave must have the usual 0644 under umask 022, or a
    report or model written for a colleague is private."""
    old = os.umask(0o022)
    try:
        outputs.write_file(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644


def test_failed_host_build_leaves_nothing_in_the_cache(bad, tmp_path):
    """A compiler that fails (here: `false`) must not leave emitted sources or empty directories in the cache."""
    cache = tmp_path / "cache"
    code, _, err = cli("detect", "--model", bad["good"], "--interpreter", "aot", bad["ok"],
                       env={"NANODET_MCU_CACHE": str(cache), "CC": "false"})
    assert code == 1 and "host build" in err and len(err.splitlines()) == 1
    assert not cache.exists() or not any(cache.rglob("*")), sorted(map(str, cache.rglob("*")))
    code, _, err = cli("detect", "--model", bad["good"], "--interpreter", "aot", bad["ok"],
                       env={"NANODET_MCU_CACHE": str(bad["afile"])})
    assert code == 1 and "cannot use the cache directory" in err and len(err.splitlines()) == 1


def test_sigint_after_the_project_is_complete_exits_0(bad, tmp_path):
    """Ctrl-C a moment after generate moved the project into place: the outputs are complete, so the command
    finishes (exit 0) instead of dying by the signal (-2) or saying "interrupted" with a complete project."""
    for delay in (0.0, 0.003, 0.01, 0.02, 0.04):
        out = tmp_path / f"p{delay}"
        proc = subprocess.Popen([sys.executable, "-m", "nanodet_mcu", "generate", "--board", "mps2-an500", "--model",
                                 str(bad["good"]), "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not (out / "project.json").exists():
            time.sleep(0.0002)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and (out / "project.json").exists(), (delay, proc.returncode, err)


def test_a_device_reporting_a_0_hz_clock_fails_the_model_check(bad, tmp_path):
    """A device whose INFO says 0 Hz (a board file or firmware bug) used to end in ZeroDivisionError."""
    from nanodet_mcu import model_info
    from nanodet_mcu.floatbits import f32_bits
    from nanodet_mcu.link import protocol as p
    from tests.golden import make_golden

    info = model_info.load(bad["good"])
    layout = model_info.nanodet_layout(info)
    tensors = {k: p.TensorDesc(t.shape, f32_bits(t.scale), t.zero_point)
               for k, t in (("input", layout.input), ("scores", layout.scores), ("boxes", layout.boxes))}
    device_info = p.Info(**{**make_golden.INFO.__dict__, "timer_kind": "dwt-cycles", "core_clock_hz": 0,
                            "model_sha256": info.sha256, **tensors})
    with _fake_device(device_info) as port:
        code, stdout, err = cli("verify", "--port", port, "--model", bad["good"], "--timeout", "2")
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "FAIL" in err and "0 Hz core clock" in err and "verify: FAIL" in stdout


class _fake_device:
    """A pty that answers HELLO with a given INFO and everything else with an ERROR: a device whose INFO is broken
    in a way no firmware of ours produces (the real codec on both sides)."""

    def __init__(self, info):
        self.info = info

    def __enter__(self) -> str:
        import tty

        from nanodet_mcu.link import protocol as p

        self.master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self.master)
        self.slave = slave
        self.stop = threading.Event()

        def serve():
            decoder = p.FrameDecoder()
            while not self.stop.is_set():
                import select

                if not select.select([self.master], [], [], 0.05)[0]:
                    continue
                for f in decoder.feed(os.read(self.master, 4096)):
                    if f.type == p.HELLO:
                        reply = p.encode(p.INFO, f.seq, self.info.pack())
                    else:
                        reply = p.encode(p.ERROR, f.seq, p.DeviceError(2, f.type, "fake device").pack())
                    os.write(self.master, reply)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        return os.ttyname(slave)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(2)
        os.close(self.master)
        os.close(self.slave)
