"""The board's post-processing C code (firmware/common/nd_postprocess.c) built for the host and called via ctypes."""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from nanodet_mcu import FIRMWARE_DIR, hostcc
from nanodet_mcu.errors import NanodetError
from nanodet_mcu.postprocess_fixed import EXP_TABLE_SIZE, FixedDetection, FixedParams

COMMON_DIR = FIRMWARE_DIR / "common"
SOURCE = COMMON_DIR / "nd_postprocess.c"

_u16, _i16, _u32, _i32 = ctypes.c_uint16, ctypes.c_int16, ctypes.c_uint32, ctypes.c_int32


class CParams(ctypes.Structure):
    """nd_post_params_t (field order and types as in nd_postprocess.h)."""
    _fields_ = [("exp_table", _u32 * EXP_TABLE_SIZE), ("score_threshold_q", _i16), ("max_out", _u16),
                ("iou_num", _u32), ("iou_den", _u32), ("grid_h", _u16), ("grid_w", _u16), ("stride", _u16),
                ("input_h", _u16), ("input_w", _u16), ("num_classes", _u16), ("num_bins", _u16),
                ("coord_frac_bits", _u16), ("scores_row_stride", _i32), ("scores_col_stride", _i32),
                ("scores_class_stride", _i32), ("boxes_row_stride", _i32), ("boxes_col_stride", _i32),
                ("boxes_side_stride", _i32), ("boxes_bin_stride", _i32)]


class CDetection(ctypes.Structure):
    """nd_detection_t."""
    _fields_ = [("x1", _i32), ("y1", _i32), ("x2", _i32), ("y2", _i32), ("cell", _u16),
                ("class_id", ctypes.c_uint8), ("score", ctypes.c_int8)]


ERRORS = {-1: "NULL argument", -2: "params out of the supported range"}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(hostcc.build_shared_library("nd_postprocess", [SOURCE], [COMMON_DIR])))
    lib.nd_postprocess.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(CParams),
                                   ctypes.POINTER(CDetection), ctypes.c_size_t]
    lib.nd_postprocess.restype = ctypes.c_int
    return lib


@functools.lru_cache(maxsize=16)  # FixedParams is frozen and hashable; loops reuse one conversion
def c_params(params: FixedParams) -> CParams:
    fields = params.c_fields()
    table = (_u32 * EXP_TABLE_SIZE)(*fields.pop("exp_table"))
    return CParams(table, **fields)


def _int8_buffer(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype != np.int8:
        raise NanodetError(f"post-processing input is {a.dtype}, expected int8")
    return a


def run_c(scores_q: np.ndarray, boxes_q: np.ndarray, params: FixedParams | CParams,
          capacity: int | None = None) -> list[FixedDetection]:
    """Run nd_postprocess on the host.  `params` may be a prepared CParams to skip the conversion in loops.
    Buffer sizes are the caller's responsibility, as on the board (postprocess_fixed.run checks them)."""
    cp = params if isinstance(params, CParams) else c_params(params)
    cap = cp.max_out if capacity is None else capacity
    out = (CDetection * max(cap, 1))()
    s, b = _int8_buffer(scores_q), _int8_buffer(boxes_q)
    n = library().nd_postprocess(s.ctypes.data, b.ctypes.data, ctypes.byref(cp), out, cap)
    if n < 0:
        raise NanodetError(f"nd_postprocess failed: {ERRORS.get(n, n)}")
    return [FixedDetection(d.x1, d.y1, d.x2, d.y2, d.cell, d.class_id, d.score) for d in out[:n]]
