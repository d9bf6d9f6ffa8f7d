"""The host reference detector: image -> input -> interpreter -> decoder -> detections in image pixels.

One object serves `detect`, `evaluate` and `verify`, for int8 .tflite models (any host interpreter, any decoder)
and for the float .onnx export (onnxruntime, stride-32 head only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanodet_mcu import decode, model_info, preprocess, spec
from nanodet_mcu.errors import NanodetError

DECODERS = ("float", "fixed", "c")


@dataclass
class Result:
    detections: decode.Detections  # boxes in the 320x320 frame
    image_size: tuple[int, int]  # (width, height) of the original image
    raw: tuple[np.ndarray, np.ndarray] | None  # int8 (scores, boxes) for .tflite models

    def image_boxes(self) -> np.ndarray:
        """Boxes scaled back to original-image pixels."""
        w, h = self.image_size
        scale = np.array([w, h, w, h], np.float64) / spec.INPUT_SIZE
        return self.detections.boxes * scale


class OnnxFloatModel:
    """The official float export through onnxruntime; only its stride-32 outputs are used."""

    def __init__(self, path: Path):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise NanodetError("running an .onnx model (the float reference) needs onnxruntime: "
                               "pip install 'nanodet-mcu[onnx]'") from exc
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise NanodetError(f"onnxruntime cannot load {path}: {exc}") from exc
        names = {o.name for o in self.session.get_outputs()}
        if not {"cls_pred_stride_32", "dis_pred_stride_32"} <= names:
            raise NanodetError(f"{path} has no cls_pred_stride_32/dis_pred_stride_32 outputs (not a NanoDet export)")
        self.input_name = self.session.get_inputs()[0].name

    def run(self, rgb320: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = preprocess.normalize(rgb320).transpose(0, 3, 1, 2)  # NCHW
        scores, dist = self.session.run(["cls_pred_stride_32", "dis_pred_stride_32"], {self.input_name: x})
        return scores.reshape(-1, spec.NUM_CLASSES), dist.reshape(-1, 4)


class Detector:
    def __init__(self, model_path: str | Path, interpreter: str = "tflm", decoder: str = "float",
                 score_threshold: float = spec.SCORE_THRESHOLD, iou_threshold: float = spec.IOU_THRESHOLD,
                 max_detections: int = spec.MAX_DETECTIONS):
        self.model_path = Path(model_path)
        self.thresholds = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                           "max_out": max_detections}
        if decoder not in DECODERS:
            raise NanodetError(f"unknown decoder '{decoder}' (choose from {', '.join(DECODERS)})")
        self.decoder = decoder
        if self.model_path.suffix.lower() == ".onnx":
            if decoder != "float":
                raise NanodetError("a float .onnx model has no int8 outputs: use --decoder float")
            self.onnx = OnnxFloatModel(self.model_path)
            return
        self.onnx = None
        from nanodet_mcu import runners

        self.info = model_info.load(self.model_path)
        self.runner = runners.make_runner(interpreter, self.info)
        self.layout = self.runner.layout
        if decoder != "float":
            from nanodet_mcu import postprocess_fixed

            self.fixed_params = postprocess_fixed.params_for(self.layout, score_threshold, iou_threshold,
                                                             max_detections)

    def input_tensor(self, rgb320: np.ndarray) -> np.ndarray:
        x = self.layout.input
        return preprocess.quantize(rgb320, x.scale, x.zero_point)

    def decode_raw(self, scores_q: np.ndarray, boxes_q: np.ndarray) -> decode.Detections:
        if self.decoder == "float":
            s, b = self.layout.scores, self.layout.boxes
            return decode.decode_quantized(scores_q, boxes_q, (s.scale, s.zero_point), (b.scale, b.zero_point),
                                           **self.thresholds)
        from nanodet_mcu import postprocess_fixed

        if self.decoder == "fixed":
            fixed = postprocess_fixed.run(scores_q, boxes_q, self.fixed_params)
        else:
            from nanodet_mcu import postprocess_c

            fixed = postprocess_c.run_c(scores_q, boxes_q, self.fixed_params)
        return postprocess_fixed.to_detections(fixed, self.fixed_params)

    def detect_rgb(self, rgb: np.ndarray) -> Result:
        size = (rgb.shape[1], rgb.shape[0])
        rgb320 = preprocess.resize_rgb(rgb)
        if self.onnx is not None:
            scores, dist = self.onnx.run(rgb320)
            return Result(decode.decode(scores, dist, **self.thresholds), size, None)
        scores_q, boxes_q = self.runner.run(self.input_tensor(rgb320))
        return Result(self.decode_raw(scores_q, boxes_q), size, (scores_q, boxes_q))

    def detect_file(self, path: str | Path) -> Result:
        return self.detect_rgb(preprocess.load_rgb(path))
