"""COCO bbox evaluation of a .tflite (int8) or .onnx (float) model on a folder of images."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from nanodet_mcu import spec
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.pipeline import Detector
from nanodet_mcu.progress import QUIET, Steps

METRIC_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl")


def load_annotations(path: str | Path):
    from pycocotools.coco import COCO

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise NanodetError(f"cannot read COCO annotations {path}: {exc}") from None
    problem = _coco_problem(data)
    if problem:
        raise NanodetError(f"{path} is not a COCO instances file: {problem}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = data
            coco.createIndex()
            return coco
    except Exception as exc:  # pycocotools asserts and indexes without checking
        raise NanodetError(f"{path} is not a COCO instances file: {type(exc).__name__}: {exc}") from None


def _coco_problem(data) -> str | None:
    """What keeps `data` from being COCO instances (images with id and file_name; annotations with image_id,
    category_id and a 4-number bbox), or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for key, fields in (("images", ("id", "file_name")), ("annotations", ("image_id", "category_id", "bbox")),
                        ("categories", ("id",))):
        items = data.get(key)
        if not isinstance(items, list):
            return f"'{key}' is missing or not a list"
        for i, item in enumerate(items):
            if not isinstance(item, dict) or any(f not in item for f in fields):
                return f"{key}[{i}] lacks {', '.join(fields)}"
            if key == "annotations" and (not isinstance(item["bbox"], list) or len(item["bbox"]) != 4):
                return f"annotations[{i}].bbox is not [x, y, w, h]"
    return None


def evaluate_model(model_path: str | Path, images_dir: str | Path, annotations: str | Path,
                   limit: int | None = None, interpreter: str = "tflm", decoder: str = "float",
                   steps: Steps = QUIET) -> dict:
    """COCO metrics over the annotated images found in images_dir (sorted by file name, first `limit`); `steps`
    shows progress."""
    coco = load_annotations(annotations)
    images_dir = Path(images_dir)
    entries = sorted((img for img in coco.dataset["images"] if (images_dir / img["file_name"]).is_file()),
                     key=lambda img: img["file_name"])
    if not entries:
        raise NanodetError(f"none of the {len(coco.dataset['images'])} images of {annotations} is in {images_dir} "
                           "(COCO val2017 images from val2017.zip, as README.md 'Inputs' lays them out)")
    entries = entries[:limit] if limit else entries
    detector = Detector(model_path, interpreter=interpreter, decoder=decoder)
    results = []
    with steps.step(f"detecting with {Path(model_path).name}", total=len(entries)) as step:
        for img in entries:
            res = detector.detect_file(images_dir / img["file_name"])
            for box, score, cls in zip(res.image_boxes(), res.detections.scores, res.detections.classes):
                x1, y1, x2, y2 = (float(v) for v in box)
                results.append({"image_id": img["id"], "category_id": spec.COCO_CATEGORY_IDS[int(cls)],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
            step.advance()
    with steps.step("scoring with pycocotools"):
        metrics = _coco_metrics(coco, results, [img["id"] for img in entries])
    metrics.update(images=len(entries), detections=len(results), model=str(model_path))
    return metrics


def _coco_metrics(coco, results: list[dict], image_ids: list[int]) -> dict:
    from pycocotools.cocoeval import COCOeval

    if not results:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dets = coco.loadRes(results)
        ev = COCOeval(coco, dets, "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(max(v, 0.0)) * 100 for name, v in zip(METRIC_NAMES, ev.stats[:6])}


def format_metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {metrics[k]:.2f}" for k in METRIC_NAMES)


def to_json(metrics: dict) -> str:
    return json.dumps(metrics, indent=2)
