"""Check a device (board or emulator) against the host reference over the link.

Checks, in order: (1) the device runs the given model (sha256, quantisation); then per image: (2) the device's
int8 input equals `preprocess.quantize` (CRC-32), (3) its raw output tensors equal tflite-micro's on the same input
(differing bytes, max |delta|; tolerance in LSB optional), (4) its detections equal the Python integer
post-processing on its own outputs exactly, and match the float reference (same cells and classes, IoU >= 0.99),
(5) repeated runs give the same result.  Latency per stage comes from the device's timer counts.
On request, with a firmware built with step instrumentation: a per-step profile of one inference (profile.py), and
the first step whose output differs from the host reference (bisect.py).
"""
from __future__ import annotations

import base64
import io
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nanodet_mcu import decode, model_info, postprocess_fixed, preprocess, runners, spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.floatbits import f32_bits
from nanodet_mcu.link import protocol as p
from nanodet_mcu.link.client import DeviceClient, DeviceRefused
from nanodet_mcu.verify import bisect, profile, steps

FLOAT_IOU_MIN = 0.99
STAGES = ("preprocess", "inference", "postprocess")
JPEG_QUALITY = 90  # the report's copy of each input: ~30-60 KB of JSON per 320x320 image


@dataclass
class Check:
    name: str
    image: str | None
    passed: bool
    detail: str
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "image": self.image, "passed": self.passed, "detail": self.detail, **self.data}


@dataclass
class ImageInput:
    """One verification input: an embedded image (by device index) or an image file uploaded as RGB888."""
    name: str
    embedded_index: int | None = None
    rgb320: np.ndarray | None = None


@dataclass
class Report:
    device: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    ticks: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency: dict = field(default_factory=dict)
    link: dict = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)  # image_record() of every verified image, in order
    date: str = ""  # when the run started, ISO 8601 UTC
    firmware: dict = field(default_factory=dict)  # path and sha256 of the ELF, when the host has it (--emulate)
    profile: dict | None = None  # verify --profile (profile.build)
    bisect: dict | None = None   # verify --bisect (bisect.Bisector.run)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict:
        out = {"passed": self.passed, "device": self.device, "model": self.model,
               "checks": [c.as_dict() for c in self.checks], "latency": self.latency, "link": self.link}
        # keys added after the first release are absent when empty, so older readers see what they saw
        optional = (("date", self.date), ("firmware", self.firmware), ("images", self.images),
                    ("profile", self.profile), ("bisect", self.bisect))
        out.update({k: v for k, v in optional if v})
        return out


def timer_unit(info: p.Info) -> tuple[str, float]:
    """(unit label, factor from timer ticks): emulated instructions on QEMU, milliseconds from cycles on boards."""
    if "instruction" in info.timer_kind:
        return "M emulated instructions", info.timer_units_per_tick / 1e6
    if info.core_clock_hz <= 0:  # a broken INFO (check_model fails the run): keep the raw counts
        return "ticks", 1.0
    return "ms", info.timer_units_per_tick / info.core_clock_hz * 1e3


def latency_summary(info: p.Info, ticks: dict[str, list[int]]) -> dict:
    unit, factor = timer_unit(info)
    out = {}
    for stage, values in ticks.items():
        if not values:
            continue
        v = np.asarray(values, np.float64) * factor
        out[stage] = {"unit": unit, "n": len(v), "mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
                      "p90": float(np.percentile(v, 90)), "max": float(v.max()), "ticks": [int(t) for t in values]}
    return out


def check_model(info: p.Info, model: model_info.ModelInfo, layout: model_info.NanodetLayout) -> Check:
    if info.model_sha256 != model.sha256:
        return Check("model", None, False,
                     f"wrong firmware: device model sha256 {info.model_sha256[:16]}..., --model "
                     f"{Path(model.path).name} is {model.sha256[:16]}...",
                     {"device_sha256": info.model_sha256, "model_sha256": model.sha256})
    problems = []
    for what, desc, tensor in (("input", info.input, layout.input), ("scores", info.scores, layout.scores),
                               ("boxes", info.boxes, layout.boxes)):
        if desc.shape != tuple(tensor.shape):
            problems.append(f"{what} shape {list(desc.shape)} != {list(tensor.shape)}")
        if desc.scale_bits != f32_bits(tensor.scale) or desc.zero_point != tensor.zero_point:
            problems.append(f"{what} quantisation {desc.scale:g}/{desc.zero_point} != "
                            f"{tensor.scale:g}/{tensor.zero_point}")
    if info.engine_status != 0:
        problems.append(f"engine failed to initialise (status {info.engine_status})")
    if info.timer_units_per_tick <= 0 or ("instruction" not in info.timer_kind and info.core_clock_hz <= 0):
        problems.append(f"device reports a {info.core_clock_hz} Hz core clock and {info.timer_units_per_tick} timer "
                        f"units per tick: its timings cannot be converted (board clock configuration?)")
    if problems:
        return Check("model", None, False, "; ".join(problems))
    return Check("model", None, True, f"sha256 {model.sha256[:16]}... and quantisation match",
                 {"model_sha256": model.sha256})


def compare_outputs(device: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray],
                    tolerance: int, image: str) -> Check:
    per_tensor, maps, ok = {}, {}, True
    for name, d, r in (("scores", device[0], reference[0]), ("boxes", device[1], reference[1])):
        delta = np.abs(d.astype(np.int16) - r.astype(np.int16))
        differing, worst = int(np.count_nonzero(delta)), int(delta.max(initial=0))
        per_tensor[name] = {"differing_bytes": differing, "max_abs_delta": worst, "bytes": int(d.size)}
        ok &= differing == 0 if tolerance == 0 else worst <= tolerance
        if differing:
            maps[name] = delta_map(delta)
    detail = ", ".join(f"{k}: {v['differing_bytes']}/{v['bytes']} bytes differ, max |delta| {v['max_abs_delta']}"
                       for k, v in per_tensor.items())
    data = {"tensors": per_tensor, "tolerance": tolerance}
    if maps:
        data["delta_maps"] = maps
    return Check("outputs", image, ok, detail, data)


def delta_map(delta: np.ndarray) -> dict:
    """|device - host| of an NHWC output as channels x cells (cell = row * width + column), for the HTML heatmap."""
    grid = delta.reshape(-1, delta.shape[-1]).T
    return {"shape": list(grid.shape), "max": int(grid.max(initial=0)), "values": grid.astype(int).tolist()}


def device_detections(result: p.Result) -> list[postprocess_fixed.FixedDetection]:
    # wire order is nd_detection_t's: x1 y1 x2 y2 cell class_id score, as FixedDetection's fields
    return [postprocess_fixed.FixedDetection(*d) for d in result.detections]


def compare_fixed(result: p.Result, expected: list, params: postprocess_fixed.FixedParams, image: str) -> Check:
    got = device_detections(result)
    if result.coord_frac_bits != params.coord_frac_bits:
        return Check("detections-fixed", image, False,
                     f"device coordinates have {result.coord_frac_bits} fraction bits, host {params.coord_frac_bits}")
    if got == expected:
        return Check("detections-fixed", image, True, f"{len(got)} detections identical", {"count": len(got)})
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    return Check("detections-fixed", image, False,
                 f"device {len(got)} vs host {len(expected)} detections, first difference at #{first}",
                 {"count": len(got), "expected_count": len(expected), "first_difference": first})


def compare_float(result: p.Result, reference: decode.Detections, params, image: str) -> Check:
    got = postprocess_fixed.to_detections(device_detections(result), params)
    data = {"count": len(got), "reference_count": len(reference)}
    if len(got) != len(reference) or not np.array_equal(got.classes, reference.classes) or \
            not np.array_equal(got.cells, reference.cells):
        return Check("detections-float", image, False,
                     f"device {len(got)} vs float reference {len(reference)} detections (cells or classes differ)",
                     data)
    ious = [float(decode.iou_one_to_many(reference.boxes[i], got.boxes[i:i + 1])[0]) for i in range(len(got))]
    worst = min(ious, default=1.0)
    data["min_iou"] = worst
    return Check("detections-float", image, worst >= FLOAT_IOU_MIN,
                 f"{len(got)} detections, same cells and classes, min IoU {worst:.4f} (need >= {FLOAT_IOU_MIN})", data)


def detection_dicts(dets: decode.Detections) -> list[dict]:
    return [{"box": [round(float(v), 4) for v in box], "class_id": int(c), "label": spec.COCO_LABELS[int(c)],
             "score": round(float(s), 6)} for box, s, c in zip(dets.boxes, dets.scores, dets.classes)]


def image_record(name: str, checks: list[Check], rgb320: np.ndarray, device: decode.Detections,
                 reference: decode.Detections) -> dict:
    """What a report needs to show one image without the device: the input it ran (JPEG), both sets of boxes."""
    from PIL import Image

    jpeg = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb320, np.uint8)).save(jpeg, "JPEG", quality=JPEG_QUALITY)
    return {"name": name, "passed": all(c.passed for c in checks if c.image == name),
            "jpeg_base64": base64.b64encode(jpeg.getvalue()).decode("ascii"),
            "device_detections": detection_dicts(device), "reference_detections": detection_dicts(reference)}


def check_repeatability(results: list[p.Result], image: str) -> Check:
    first = results[0]
    same = all(r.detections == first.detections and r.input_crc32 == first.input_crc32 for r in results[1:])
    return Check("repeatable", image, same, f"{len(results)} runs {'identical' if same else 'DIFFER'}",
                 {"runs": len(results)})


@dataclass
class Verified:
    """An input already checked: what a profile or a bisection runs again."""
    item: ImageInput
    x: np.ndarray  # the host's int8 input tensor
    outputs_passed: bool


class Verifier:
    """profile: one timed run per step after the checks; bisect: look for the first divergent step on the first
    input whose outputs differ (or the first input); bisect_on_fail: the same, only when some outputs differ."""

    def __init__(self, client: DeviceClient, model_path: str | Path | model_info.ModelInfo, tolerance: int = 0,
                 progress: Callable[[str], None] = lambda msg: None, profile: bool = False, bisect: bool = False,
                 bisect_on_fail: bool = False, bisect_dir: str | Path = "."):
        self.client = client
        self.model = model_path if isinstance(model_path, model_info.ModelInfo) else model_info.load(model_path)
        model_path = self.model.path
        self.layout = model_info.nanodet_layout(self.model)
        self.params = postprocess_fixed.params_for(self.layout)
        self.tolerance = tolerance
        self.progress = progress
        self.report = Report(model={"path": str(model_path), "sha256": self.model.sha256})
        self._runner = None
        self.want_profile, self.want_bisect, self.bisect_on_fail = profile, bisect, bisect_on_fail
        self.bisect_dir = Path(bisect_dir)
        self.verified: list[Verified] = []
        self._steps: list[steps.Step] | None = None

    def connect(self) -> p.Info:
        self.info = self.client.hello()
        self.report.device = self.info.as_dict()
        check = check_model(self.info, self.model, self.layout)
        self.report.checks.append(check)
        return self.info

    def embedded_inputs(self) -> list[ImageInput]:
        if self.info.num_images == 0:
            raise NanodetError("the firmware has no embedded images: use --images DIR to upload some")
        return [ImageInput(f"#{i} {self.client.image_info(i).name}", embedded_index=i)
                for i in range(self.info.num_images)]

    def reference_runner(self) -> runners.Runner:
        # The reference is tflite-micro for both engines: the AOT engine must reproduce it bit for bit.
        if self._runner is None:
            self._runner = runners.make_runner("tflm", self.model)
        return self._runner

    def verify_image(self, item: ImageInput, runs: int) -> None:
        self.client.doing = f"verifying {item.name}"
        results = []
        for _ in range(runs):
            if item.rgb320 is not None:
                self.progress(f"{item.name}: uploading 320x320 RGB888")
                self.client.upload_rgb(item.rgb320)
                results.append(self.client.run(p.SOURCE_UPLOAD))
            else:
                self.progress(f"{item.name}: running")
                results.append(self.client.run(p.SOURCE_EMBEDDED, item.embedded_index))
            for stage, ticks in zip(STAGES, (results[-1].preprocess_ticks, results[-1].inference_ticks,
                                             results[-1].postprocess_ticks)):
                self.report.ticks[stage].append(ticks)
        self.progress(f"{item.name}: reading outputs")
        device_out = self.client.read_outputs()
        rgb = item.rgb320 if item.rgb320 is not None else self.client.read_image(item.embedded_index)
        x = preprocess.quantize(rgb, self.layout.input.scale, self.layout.input.zero_point)
        crc = zlib.crc32(x.tobytes())
        checks = self.report.checks
        checks.append(Check("preprocess", item.name, results[0].input_crc32 == crc,
                            f"device input CRC-32 {results[0].input_crc32:08x}, host {crc:08x}"))
        self.progress(f"{item.name}: host reference")
        host_out = self.reference_runner().run(x)
        checks.append(compare_outputs(device_out, host_out, self.tolerance, item.name))
        self.verified.append(Verified(item, x, checks[-1].passed))
        expected = postprocess_fixed.run(*device_out, self.params)
        checks.append(compare_fixed(results[-1], expected, self.params, item.name))
        qparams = ((self.layout.scores.scale, self.layout.scores.zero_point),
                   (self.layout.boxes.scale, self.layout.boxes.zero_point))
        checks.append(compare_float(results[-1], decode.decode_quantized(*device_out, *qparams), self.params,
                                    item.name))
        if runs > 1:
            checks.append(check_repeatability(results, item.name))
        # the pictures compare what matters to a user: the device's detections and the host reference's, each
        # decoded from its own outputs (the checks above isolate which stage differs)
        self.report.images.append(image_record(
            item.name, checks, rgb, postprocess_fixed.to_detections(device_detections(results[-1]), self.params),
            decode.decode_quantized(*host_out, *qparams)))

    def run(self, inputs: list[ImageInput] | None, runs: int) -> Report:
        """inputs None: every embedded image.  Stops after the model check when it fails."""
        started = time.monotonic()
        self.report.date = datetime.now(UTC).isoformat(timespec="seconds")
        self.connect()
        if self.report.checks[-1].passed:
            if self.want_profile or self.want_bisect:
                self.require_instrumentation()  # before the checks: do not make the user wait for a refusal
            for item in (inputs if inputs is not None else self.embedded_inputs()):
                self.verify_image(item, runs)
            self.instrumented_runs()
        self.report.latency = latency_summary(self.info, self.report.ticks)
        t = self.client.transport
        self.report.link = {"port": t.port, "seconds": round(time.monotonic() - started, 3),
                            "bytes_sent": t.bytes_sent, "bytes_received": t.bytes_received,
                            "bad_frames": t.decoder.bad_frames, "garbage_bytes": t.decoder.dropped_bytes,
                            **self.client.stats.as_dict()}
        return self.report


    # ---- step instrumentation: --profile, --bisect, --bisect-on-fail ---------------------------------------------

    def require_instrumentation(self) -> None:
        """NanodetError unless the firmware answers STEPS (built with ND_PROFILE)."""
        try:
            self.client.request(p.STEPS, p.steps_request(0, 1))
        except DeviceRefused as exc:
            if exc.error.code == p.ERR_NO_STEPS:
                raise NanodetError("the firmware was built without step instrumentation: generate the project with "
                                   "--profile (or build it with ND_PROFILE=1) for --profile/--bisect") from None
            if exc.error.code == p.ERR_UNKNOWN_TYPE:
                raise NanodetError("the firmware predates step instrumentation (it does not know STEPS): generate "
                                   "it again with this nanodet-mcu and --profile") from None
            raise

    def engine_steps(self) -> list[steps.Step]:
        if self._steps is None:
            self._steps = steps.engine_steps(self.model, self.info.engine)
        return self._steps

    def start_run(self, item: ImageInput) -> Callable[[int, int], p.Result]:
        """(step flags, stop step) -> RESULT of an instrumented run on `item` (uploaded again: an upload is good
        for one run)."""
        def start(flags: int, stop: int) -> p.Result:
            if item.rgb320 is not None:
                self.client.upload_rgb(item.rgb320)
                return self.client.run_steps(p.SOURCE_UPLOAD, 0, flags, stop)
            return self.client.run_steps(p.SOURCE_EMBEDDED, item.embedded_index, flags, stop)
        return start

    def instrumented_runs(self) -> None:
        if not self.verified:
            return
        if self.want_profile:
            first = self.verified[0]
            self.progress(f"{first.item.name}: profiling every step")
            result = self.start_run(first.item)(p.STEP_TIME, 0)
            try:
                self.report.profile = profile.build(self.info.engine, self.info, self.engine_steps(), result,
                                                    self.client.step_records())
            except NanodetError as exc:  # keep the checks' report: this firmware is not the host's
                self.report.checks.append(Check("profile", first.item.name, False, str(exc)))
        failing = [v for v in self.verified if not v.outputs_passed]
        if self.want_bisect or (self.bisect_on_fail and failing):
            target = (failing or self.verified)[0]
            self.report.bisect = self.bisect(target)

    def bisect(self, target: Verified) -> dict:
        try:
            if not self.want_bisect:  # --bisect-on-fail alone: instrumentation was not checked up front
                self.require_instrumentation()
            table = self.engine_steps()
        except NanodetError as exc:
            return {"status": "error", "detail": str(exc)}
        self.progress(f"{target.item.name}: bisecting")
        result = bisect.Bisector(self.client, self.model, self.info.engine, table, self.bisect_dir,
                                 self.progress).run(target.x, self.start_run(target.item), not target.outputs_passed)
        result["detail"] = f"{target.item.name}: {result['detail']}"
        return result


def upload_inputs(images_dir: str | Path) -> list[ImageInput]:
    return [ImageInput(f.name, rgb320=preprocess.resize_rgb(preprocess.load_rgb(f)))
            for f in preprocess.list_images(images_dir)]
