"""Integer decode + NMS, bit-exact with firmware/common/nd_postprocess.c, and the C rendering of its parameters.

The algorithm (mirrored step by step in the C file):
1. Each cell's best class is the argmax of its int8 scores (first on ties); the cell is a candidate when that int8
   score is > `score_threshold_q`, the int8 value equivalent to the float reference's `dequantised score > 0.20`.
2. Candidates are ordered by score descending, then lower cell index first.
3. Each box side's 8 bins get softmax weights w = exp_table[qmax - q] (exp(scale * (q - qmax)) in Q24); the distance
   in 1/2^F px is round_quarter_up(stride * 2^F * sum(b * w) / sum(w)), taken from the cell centre and clamped.
4. Greedy NMS: a candidate is kept when no kept box has IoU > num/den, tested as inter * den > union * num (int64).
This module predicts the board's detections exactly; `to_detections` turns them into float boxes for comparison.

Against the float reference (nanodet_mcu.decode): candidates, classes, scores and their order are identical by
construction (the int8 threshold is derived from the float comparison itself); corners differ by < 0.002 px. The
kept set can differ only where a pair's suppression test flips (`nms_decision_differences`): a float IoU within
~1e-5 of the threshold, or a box thinner than 1/256 px, which is zero-area here and never suppresses.  Over the 600
val images (NXP's model and ours) no kept set differs (benchmarks/bench_postprocess.py).
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass, field, fields
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from nanodet_mcu import decode, model_info, spec
from nanodet_mcu.errors import NanodetError

EXP_TABLE_SIZE = 256
EXP_FRAC_BITS = 24  # Q24 (finer than the Q16 floor): weights below 6e-8 of the max bin round to 0, entries fit uint32
COORD_FRAC_BITS = 8  # output coordinates in 1/256 px
SIDES = 4

# Mirrors of the C limits (nd_postprocess.c, params_ok) so the model rejects exactly what the C code rejects.
MAX_CELLS = 100  # ND_POST_MAX_CELLS
MAX_BINS = 16
MAX_FRAC_BITS = 10
MAX_STRIDE_FX = 1 << 20
MAX_EXTENT_FX = 1 << 19
MAX_IOU_TERM = 65535


@dataclass(frozen=True)
class FixedParams:
    """The fields of nd_post_params_t, in declaration order, then host-only quantisation facts for `to_detections`."""
    exp_table: tuple[int, ...]
    score_threshold_q: int
    max_out: int
    iou_num: int
    iou_den: int
    grid_h: int
    grid_w: int
    stride: int
    input_h: int
    input_w: int
    num_classes: int
    num_bins: int
    coord_frac_bits: int
    scores_row_stride: int
    scores_col_stride: int
    scores_class_stride: int
    boxes_row_stride: int
    boxes_col_stride: int
    boxes_side_stride: int
    boxes_bin_stride: int
    # host only (not in the C struct)
    scores_scale: float = field(default=1.0, metadata={"host_only": True})
    scores_zero_point: int = field(default=0, metadata={"host_only": True})

    def c_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("host_only")}

    def c_initializer(self) -> str:
        """A C99 designated initializer `{...}` for nd_post_params_t."""
        rows = [", ".join(f"{v}u" for v in self.exp_table[i:i + 8]) for i in range(0, len(self.exp_table), 8)]
        lines = ["{", "    .exp_table = {", *(f"        {r}," for r in rows), "    },"]
        for name, value in list(self.c_fields().items())[1:]:
            lines.append(f"    .{name} = {value},")
        lines.append("}")
        return "\n".join(lines)


@dataclass(frozen=True)
class FixedDetection:
    """One nd_detection_t: corners in 1/2^coord_frac_bits px of the input frame, int8 score."""
    x1: int
    y1: int
    x2: int
    y2: int
    cell: int
    class_id: int
    score: int


def exp_table(scale: float) -> tuple[int, ...]:
    """table[k] = round(2^24 * exp(-scale * k)): the softmax weight of a bin k quantisation steps below the max."""
    return tuple(int(math.floor(math.ldexp(math.exp(-scale * k), EXP_FRAC_BITS) + 0.5)) for k in range(EXP_TABLE_SIZE))


def score_threshold_q(scale: float, zero_point: int, threshold: float) -> int:
    """The int8 value t such that q > t exactly when the float reference's dequantised score is > threshold."""
    q = np.arange(-128, 128)
    passes = decode.dequantize(q.astype(np.int8), scale, zero_point) > threshold
    first = int(np.argmax(passes)) if passes.any() else len(q)
    if not passes[first:].all():
        raise NanodetError(f"score dequantisation (scale {scale}) is not increasing")
    return first - 128 - 1


def iou_ratio(iou_threshold: float) -> tuple[int, int]:
    if not 0.0 <= iou_threshold <= 1.0:
        raise NanodetError(f"IoU threshold {iou_threshold} is not in [0, 1]")
    f = Fraction(iou_threshold).limit_denominator(MAX_IOU_TERM)
    return f.numerator, f.denominator


def _nhwc(t: model_info.TensorInfo) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise NanodetError(f"tensor '{t.name}' has shape {list(t.shape)}, expected 1xHxWxC")
    return t.shape[1], t.shape[2], t.shape[3]


def params_for(layout: model_info.NanodetLayout, score_threshold: float = spec.SCORE_THRESHOLD,
               iou_threshold: float = spec.IOU_THRESHOLD, max_out: int = spec.MAX_DETECTIONS) -> FixedParams:
    """Everything model-dependent the integer decoder needs, from the model's output tensors."""
    gh, gw, nc = _nhwc(layout.scores)
    bh, bw, bc = _nhwc(layout.boxes)
    _, in_h, in_w, _ = layout.input.shape
    if (bh, bw) != (gh, gw) or bc % SIDES:
        raise NanodetError(f"box tensor {list(layout.boxes.shape)} does not match score grid {gh}x{gw} with 4 sides")
    if in_h % gh or in_w % gw or in_h // gh != in_w // gw:
        raise NanodetError(f"input {in_h}x{in_w} is not a square-stride multiple of the {gh}x{gw} grid")
    if not 0 <= max_out <= 0xFFFF:
        raise NanodetError(f"max detections {max_out} is not in 0..65535")
    num, den = iou_ratio(iou_threshold)
    bins = bc // SIDES
    params = FixedParams(
        exp_table=exp_table(layout.boxes.scale),
        score_threshold_q=score_threshold_q(layout.scores.scale, layout.scores.zero_point, score_threshold),
        max_out=max_out, iou_num=num, iou_den=den, grid_h=gh, grid_w=gw, stride=in_h // gh,
        input_h=in_h, input_w=in_w, num_classes=nc, num_bins=bins, coord_frac_bits=COORD_FRAC_BITS,
        # NHWC, contiguous: what TFLite and TFLM hand out
        scores_row_stride=gw * nc, scores_col_stride=nc, scores_class_stride=1,
        boxes_row_stride=gw * bc, boxes_col_stride=bc, boxes_side_stride=bins, boxes_bin_stride=1,
        scores_scale=layout.scores.scale, scores_zero_point=layout.scores.zero_point)
    problem = params_problem(params)
    if problem:
        raise NanodetError(f"model outside the integer decoder's range: {problem}")
    return params


def params_problem(p: FixedParams) -> str | None:
    """Why the C code would reject these params (ND_POST_ERR_PARAMS), or None."""
    f = p.coord_frac_bits
    checks = [
        (0 < p.grid_h * p.grid_w <= MAX_CELLS, f"{p.grid_h}x{p.grid_w} cells exceed ND_POST_MAX_CELLS={MAX_CELLS}"),
        (0 < p.num_classes <= 256, f"{p.num_classes} classes (1..256)"),
        (0 < p.num_bins <= MAX_BINS, f"{p.num_bins} bins (1..{MAX_BINS})"),
        (0 < f <= MAX_FRAC_BITS, f"{f} coordinate fraction bits (1..{MAX_FRAC_BITS})"),
        (p.stride > 0 and p.stride << (f + 1) <= MAX_STRIDE_FX, f"stride {p.stride} too large"),
        (p.input_w << f <= MAX_EXTENT_FX and p.input_h << f <= MAX_EXTENT_FX, "input too large"),
        (0 < p.iou_den <= MAX_IOU_TERM and 0 <= p.iou_num <= MAX_IOU_TERM, "IoU ratio terms out of range"),
        (len(p.exp_table) == EXP_TABLE_SIZE and p.exp_table[0] > 0, "bad exp table"),
        (-129 <= p.score_threshold_q <= 127, "score threshold out of range"),
        (min(p.scores_row_stride, p.scores_col_stride, p.scores_class_stride, p.boxes_row_stride,
             p.boxes_col_stride, p.boxes_side_stride, p.boxes_bin_stride) >= 0, "negative tensor stride"),
    ]
    return next((msg for ok, msg in checks if not ok), None)


def _extent(*stride_counts: tuple[int, int]) -> int:
    """Elements a tensor must hold for the last (stride, count) addressed element to exist."""
    return 1 + sum(max(0, (n - 1) * s) for s, n in stride_counts)


def _flat_int8(a: np.ndarray, need: int, what: str) -> np.ndarray:
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.dtype != np.int8:
        raise NanodetError(f"{what} tensor is {flat.dtype}, expected int8")
    if flat.size < need:
        raise NanodetError(f"{what} tensor has {flat.size} elements, the params address {need}")
    return flat


def _cell_offsets(p: FixedParams, row: int, col: int) -> np.ndarray:
    cells = np.arange(p.grid_h * p.grid_w, dtype=np.int64)
    return (cells // p.grid_w) * row + (cells % p.grid_w) * col


def _decode_boxes(boxes: np.ndarray, cells: np.ndarray, p: FixedParams) -> np.ndarray:
    """(K,) cell indices -> (K, 4) int64 corners, as decode_box/side_distance in C."""
    base = _cell_offsets(p, p.boxes_row_stride, p.boxes_col_stride)[cells]
    idx = (base[:, None, None] + np.arange(SIDES)[None, :, None] * p.boxes_side_stride
           + np.arange(p.num_bins)[None, None, :] * p.boxes_bin_stride)
    q = boxes[idx].astype(np.int64)
    w = np.asarray(p.exp_table, np.uint64)[q.max(axis=-1, keepdims=True) - q]
    den = w.sum(axis=-1)
    num = (w * np.arange(p.num_bins, dtype=np.uint64)).sum(axis=-1)
    unit2 = np.uint64(p.stride << (p.coord_frac_bits + 1))
    dist = ((num * unit2 + den) // (np.uint64(2) * den)).astype(np.int64)
    x, y = cells % p.grid_w, cells // p.grid_w
    cx = ((2 * x + 1) * p.stride) << (p.coord_frac_bits - 1)
    cy = ((2 * y + 1) * p.stride) << (p.coord_frac_bits - 1)
    w_fx, h_fx = p.input_w << p.coord_frac_bits, p.input_h << p.coord_frac_bits
    return np.stack([np.clip(cx - dist[:, 0], 0, w_fx), np.clip(cy - dist[:, 1], 0, h_fx),
                     np.clip(cx + dist[:, 2], 0, w_fx), np.clip(cy + dist[:, 3], 0, h_fx)], axis=1)


def _overlap_matrix(b: np.ndarray, p: FixedParams) -> np.ndarray:
    """(K, 4) int64 boxes -> (K, K) bool: IoU > num/den, as overlaps() in C (symmetric)."""
    iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area[:, None] + area[None, :] - inter
    return inter * p.iou_den > union * p.iou_num


def _candidates(scores_q: np.ndarray, boxes_q: np.ndarray, p: FixedParams
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidates in NMS order: (cells, classes, int8 scores, (K, 4) fixed corners), as collect_candidates in C."""
    problem = params_problem(p)
    if problem:
        raise NanodetError(f"invalid post-processing params: {problem}")
    scores = _flat_int8(scores_q, _extent((p.scores_row_stride, p.grid_h), (p.scores_col_stride, p.grid_w),
                                          (p.scores_class_stride, p.num_classes)), "scores")
    boxes = _flat_int8(boxes_q, _extent((p.boxes_row_stride, p.grid_h), (p.boxes_col_stride, p.grid_w),
                                        (p.boxes_side_stride, SIDES), (p.boxes_bin_stride, p.num_bins)), "boxes")
    idx = (_cell_offsets(p, p.scores_row_stride, p.scores_col_stride)[:, None]
           + np.arange(p.num_classes)[None, :] * p.scores_class_stride)
    sc = scores[idx].astype(np.int64)
    classes = sc.argmax(axis=1)
    best = sc[np.arange(len(sc)), classes]
    cand = np.flatnonzero(best > p.score_threshold_q)
    order = cand[np.lexsort((cand, -best[cand]))]
    return order, classes[order], best[order], _decode_boxes(boxes, order, p)


def run(scores_q: np.ndarray, boxes_q: np.ndarray, params: FixedParams, capacity: int | None = None
        ) -> list[FixedDetection]:
    """The board's detections for these int8 output tensors, best first (at most min(max_out, capacity))."""
    cells, classes, best, corners = _candidates(scores_q, boxes_q, params)
    limit = params.max_out if capacity is None else min(params.max_out, capacity)
    if limit <= 0:
        return []
    over = _overlap_matrix(corners, params)
    kept: list[int] = []
    suppressed = np.zeros(len(cells), bool)
    for i in range(len(cells)):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) == limit:
            break
        suppressed |= over[i]
    return [FixedDetection(*(int(v) for v in corners[i]), int(cells[i]), int(classes[i]), int(best[i]))
            for i in kept]


def to_detections(fixed_list: list[FixedDetection], params: FixedParams) -> decode.Detections:
    """Fixed detections -> float Detections in the input frame (scores dequantised like the float reference)."""
    rows = [astuple(d) for d in fixed_list]
    a = np.asarray(rows, np.int64).reshape(-1, 7)
    boxes = a[:, :4].astype(np.float64) / float(1 << params.coord_frac_bits)
    scores = decode.dequantize(a[:, 6].astype(np.int8), params.scores_scale, params.scores_zero_point)
    return decode.Detections(boxes, scores, a[:, 5].astype(np.int64), a[:, 4].astype(np.int64))


@dataclass(frozen=True)
class Agreement:
    """How a fixed-point result compares with the float reference on the same tensors."""
    same_kept: bool  # same cells, in the same order, with the same classes and scores
    max_corner_dev: float  # px in the input frame, over the cells both kept
    only_fixed: tuple[int, ...]  # cells kept by one decoder only
    only_float: tuple[int, ...]


def agreement(fixed: decode.Detections, ref: decode.Detections) -> Agreement:
    same = (np.array_equal(fixed.cells, ref.cells) and np.array_equal(fixed.classes, ref.classes)
            and np.array_equal(fixed.scores, ref.scores))
    common, fi, ri = np.intersect1d(fixed.cells, ref.cells, return_indices=True)
    dev = float(np.abs(fixed.boxes[fi] - ref.boxes[ri]).max()) if len(common) else 0.0
    return Agreement(bool(same), dev, tuple(int(c) for c in np.setdiff1d(fixed.cells, ref.cells)),
                     tuple(int(c) for c in np.setdiff1d(ref.cells, fixed.cells)))


class DecisionDifference(NamedTuple):
    cell_a: int
    cell_b: int
    float_iou: float
    sub_resolution: bool  # a box is zero-area in fixed point (thinner than 1/2^F px): a zero union never suppresses


def nms_decision_differences(scores_q: np.ndarray, boxes_q: np.ndarray, params: FixedParams,
                             boxes_qp: tuple[float, int], iou_threshold: float = spec.IOU_THRESHOLD
                             ) -> list[DecisionDifference]:
    """Candidate pairs whose suppression test differs between this decoder and the float reference.  Candidates,
    their order and scores are exact, so these pairs are the only way the kept sets can differ."""
    cells, _, _, corners = _candidates(scores_q, boxes_q, params)
    dist = decode.project_bins(decode.dequantize(boxes_q, *boxes_qp).reshape(-1, SIDES * params.num_bins))
    ref_boxes = decode.distances_to_boxes(dist, params.stride, params.input_w)[cells]
    ious = np.stack([decode.iou_one_to_many(b, ref_boxes) for b in ref_boxes]) if len(cells) else np.zeros((0, 0))
    differ = np.triu((ious > iou_threshold) != _overlap_matrix(corners, params), k=1)
    flat = (corners[:, 2] == corners[:, 0]) | (corners[:, 3] == corners[:, 1])
    return [DecisionDifference(int(cells[i]), int(cells[j]), float(ious[i, j]), bool(flat[i] or flat[j]))
            for i, j in zip(*np.nonzero(differ))]
