"""Float reference post-processing: dequantise, distribution -> distances, boxes, greedy class-agnostic NMS.

This is the reference the fixed-point decoder (C and Python) is measured against.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanodet_mcu import spec


@dataclass
class Detections:
    """Kept detections, best first. Boxes are x1, y1, x2, y2 in the 320x320 input frame."""
    boxes: np.ndarray  # (K, 4) float
    scores: np.ndarray  # (K,) float
    classes: np.ndarray  # (K,) int
    cells: np.ndarray  # (K,) int: grid cell index (row-major), the candidate's identity

    def __len__(self) -> int:
        return len(self.scores)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def project_bins(box_logits: np.ndarray) -> np.ndarray:
    """(..., 32) bin logits -> (..., 4) distances in bins: softmax over 8 bins, expectation of 0..7."""
    logits = box_logits.reshape(*box_logits.shape[:-1], 4, spec.NUM_BINS).astype(np.float64)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return (p * np.arange(spec.NUM_BINS)).sum(axis=-1)


def cell_centres(grid: int = spec.GRID, stride: int = spec.STRIDE) -> np.ndarray:
    """(grid*grid, 2) centres (cx, cy) of the cells, row-major: ((x + 0.5) * stride, (y + 0.5) * stride)."""
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    return np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)


def distances_to_boxes(dist_bins: np.ndarray, stride: int = spec.STRIDE, size: int = spec.INPUT_SIZE) -> np.ndarray:
    """(N, 4) left/top/right/bottom distances in bins -> (N, 4) boxes clamped to [0, size]."""
    c = cell_centres(int(round(np.sqrt(len(dist_bins)))), stride)
    d = dist_bins * stride
    boxes = np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], axis=1)
    return np.clip(boxes, 0.0, float(size))


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = spec.IOU_THRESHOLD,
        score_threshold: float = spec.SCORE_THRESHOLD, max_out: int = spec.MAX_DETECTIONS) -> np.ndarray:
    """Greedy NMS: candidates with score > score_threshold, best score first (ties: lower index first);
    a candidate is dropped when its IoU with a kept box is > iou_threshold.  Returns kept indices."""
    cand = np.flatnonzero(scores > score_threshold)
    order = cand[np.lexsort((cand, -scores[cand]))]
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i, idx in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(idx))
        if len(keep) == max_out:
            break
        rest = order[i + 1:]
        suppressed[i + 1:] |= iou_one_to_many(boxes[idx], boxes[rest]) > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def decode(scores: np.ndarray, dist_bins: np.ndarray, score_threshold: float = spec.SCORE_THRESHOLD,
           iou_threshold: float = spec.IOU_THRESHOLD, max_out: int = spec.MAX_DETECTIONS) -> Detections:
    """scores (N, 80) probabilities and distances (N, 4) in bins -> kept detections in the 320 frame."""
    boxes = distances_to_boxes(dist_bins)
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = nms(boxes, best, iou_threshold, score_threshold, max_out)
    return Detections(boxes[keep], best[keep], classes[keep], keep)


def decode_quantized(scores_q: np.ndarray, boxes_q: np.ndarray, scores_qp: tuple[float, int],
                     boxes_qp: tuple[float, int], **thresholds) -> Detections:
    """int8 model outputs (1x10x10x80, 1x10x10x32) and their (scale, zero point) -> detections."""
    scores = dequantize(scores_q, *scores_qp).reshape(-1, spec.NUM_CLASSES)
    dist = project_bins(dequantize(boxes_q, *boxes_qp).reshape(-1, spec.BOX_CHANNELS))
    return decode(scores, dist, **thresholds)
