"""firmware/common/nd_kernels.h seen from Python: the params structs as typed dataclasses, the kernel ids, and the
scratch each kernel needs (twins of the C `*_get_buffer_size` functions, which the generated nd_model_check()
compares with this plan).

Lowering fills these dataclasses with numbers and `Const` arrays; `initializer()` renders any of them as a C
designated initializer, once, in one place (a field left None is omitted, i.e. zero / NULL in C).  A Python field
named `in_` is the C field `in`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


class CName(str):
    """A C identifier rendered as is (enum constants)."""


# nd_kernel_t: which implementation runs an op (nd_kernels.h)
REF = CName("ND_KERNEL_REF")
CONV_3X2 = CName("ND_KERNEL_CONV_3X2")
DWCONV3X3_SMLA = CName("ND_KERNEL_DWCONV3X3_SMLA")
DWCONV3X3_PAIRS = CName("ND_KERNEL_DWCONV3X3_PAIRS")
DW_PAIRS_STRIDES = (1,)
MAXPOOL_S8X4 = CName("ND_KERNEL_MAXPOOL_S8X4")
ADD_SMMULR = CName("ND_KERNEL_ADD_SMMULR")
COPY_INTERLEAVE2 = CName("ND_KERNEL_COPY_INTERLEAVE2")
COPY_SPREAD2 = CName("ND_KERNEL_COPY_SPREAD2")
RESIZE_QUARTER = CName("ND_KERNEL_RESIZE_QUARTER")
RESIZE_HALF = CName("ND_KERNEL_RESIZE_HALF")

COPY_MAX_DIMS = 6  # ND_COPY_MAX_DIMS


def stack_bytes() -> int:
    """ND_KERNELS_STACK_BYTES: the stack nd_model_run and the kernels use at most below their caller's frame."""
    import re

    from nanodet_mcu import FIRMWARE_DIR

    m = re.search(r"#define ND_KERNELS_STACK_BYTES (\d+)", (FIRMWARE_DIR / "common" / "nd_kernels.h").read_text())
    return int(m.group(1))


@dataclass(frozen=True, eq=False)
class Const:
    """A constant array in flash: `static const <ctype> <name>[]`; 2-D data of a struct type renders row by row."""
    ctype: str
    name: str
    data: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


class CStruct:
    """Base of the dataclasses that mirror a C struct (c_type names it)."""
    c_type: ClassVar[str]


@dataclass(frozen=True)
class FMap(CStruct):
    c_type = "nd_fmap_t"
    h: int
    w: int
    c: int
    pstride: int
    cstride: int = 1

    @classmethod
    def of(cls, shape: tuple[int, ...], pstride: int | None = None, cstride: int = 1) -> FMap:
        """An NHWC map of `shape` (dense unless strides say otherwise); any other rank is one row of pixels over the
        last axis."""
        if len(shape) == 4:
            h, w, c = shape[1], shape[2], shape[3]
        else:
            c = shape[-1] if shape else 1
            h, w = 1, int(np.prod(shape)) // max(c, 1)
        return cls(int(h), int(w), int(c), int(pstride or c), int(cstride))


@dataclass(frozen=True)
class Conv(CStruct):
    c_type = "nd_conv_params_t"
    in_: FMap
    out: FMap
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad_t: int
    pad_l: int
    depth_multiplier: int
    in_offset: int
    out_offset: int
    act_min: int
    act_max: int
    lut: Const | None
    kernel: CName = REF
    weights: Const | None = None
    bias: Const | None = None
    mult: Const | None = None
    shift: Const | None = None
    wq: Const | None = None
    k4: int | None = None
    w8: int | None = None


@dataclass(frozen=True)
class Pool(CStruct):
    c_type = "nd_pool_params_t"
    in_: FMap
    out: FMap
    kh: int
    kw: int
    sh: int
    sw: int
    pad_t: int
    pad_l: int
    pad_mode: int
    pad_value: int
    act_min: int
    act_max: int
    kernel: CName = REF


@dataclass(frozen=True)
class ConvPool(CStruct):
    c_type = "nd_conv_pool_params_t"
    conv: Conv
    pool: Pool


@dataclass(frozen=True)
class Add(CStruct):
    c_type = "nd_add_params_t"
    a: FMap
    b: FMap
    out: FMap
    t1: Const
    t2: Const
    mult: int
    shift: int
    out_offset: int
    act_min: int
    act_max: int
    kernel: CName = REF


@dataclass(frozen=True)
class Resize(CStruct):
    c_type = "nd_resize_params_t"
    in_: FMap
    out: FMap
    align_corners: int
    half_pixel_centers: int
    kernel: CName = REF


@dataclass(frozen=True)
class ResizeAdd(CStruct):
    c_type = "nd_resize_add_params_t"
    add: Add
    resize: Resize
    half_t2: Const | None = None  # RESIZE_HALF: ADD's term by the 2x2 block's sum + 512


@dataclass(frozen=True)
class Lut(CStruct):
    c_type = "nd_lut_params_t"
    in_: FMap
    out: FMap
    lut: Const


@dataclass(frozen=True)
class Copy(CStruct):
    c_type = "nd_copy_params_t"
    ndim: int
    dims: tuple[int, ...]
    src_strides: tuple[int, ...]
    dst_strides: tuple[int, ...]
    kernel: CName = REF


# --- scratch: the twins of nd_<op>_get_buffer_size -----------------------------------------------------------------

CONV3X2_PATCH_TRIPLES = 8  # ND_CONV3X2_PATCH_TRIPLES (nd_kernels_conv.c)


def conv_direct(p: Conv, k4: int) -> bool:
    """nd_conv_direct: an unpadded 1x1 conv over channels that fill whole words reads its input in place."""
    return p.kh == 1 and p.kw == 1 and p.pad_t == 0 and p.pad_l == 0 and k4 == p.in_.c


def patch_order(kh: int, n: int) -> np.ndarray:
    """The taps (OHWI order, kh rows of n = kw * in_c) in the order nd_patch lays them out: every row's whole words,
    then every row's remaining n % 4 taps."""
    nw = n // 4 * 4
    rows = np.arange(kh * n).reshape(kh, n)
    return np.concatenate([rows[:, :nw].reshape(-1), rows[:, nw:].reshape(-1)])


def conv_scratch(p: Conv) -> int:
    """nd_conv2d_s8_get_buffer_size (and nd_dwconv_s8_get_buffer_size)."""
    if p.kernel == CONV_3X2:
        return 6 * p.k4 + (0 if conv_direct(p, p.k4) else 3 * CONV3X2_PATCH_TRIPLES * (p.k4 + 4))
    if p.kernel == DWCONV3X3_SMLA:
        return 9 * p.out.c
    if p.kernel == DWCONV3X3_PAIRS:  # four channel-planar rows of halfwords (nd_dw_pairs_row)
        n = max((p.out.w + 1) // 2 * 2 + 3, p.pad_l + p.in_.w)
        return 4 * p.out.c * ((n + 1) // 2 * 2) * 2
    return 0


def resize_add_scratch(p: ResizeAdd) -> int:
    """nd_resize_add_s8_get_buffer_size: one row of the resized map for the fast kernel (RESIZE_QUARTER: then a row of
    vertical sums, two bytes per input element; RESIZE_HALF: none, it reads the map)."""
    if p.add.kernel != ADD_SMMULR or p.resize.kernel == RESIZE_HALF:
        return 0
    return p.add.out.w * p.add.out.c + (2 * p.resize.in_.w * p.resize.in_.c if p.resize.kernel == RESIZE_QUARTER else 0)


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncating toward zero), b > 0."""
    return a // b if a >= 0 else -(-a // b)


def resize_sources(p: Resize, axis: int) -> list[tuple[int, int, int]]:
    """nd_resize_source for every output row (axis 0) or column (axis 1): (lo, hi, frac in 1/1024)."""
    in_size, out_size = (p.in_.h, p.out.h) if axis == 0 else (p.in_.w, p.out.w)
    scale = ((1 << 10) * in_size + out_size // 2) // out_size
    if p.align_corners and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    out = []
    for o in range(out_size):
        scaled = o * scale + scale // 2 - (1 << 9) if p.half_pixel_centers else o * scale
        lo = max(_cdiv(scaled, 1 << 10), 0)
        hi = min(_cdiv(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        out.append((lo, hi, scaled - (1 << 10) * lo))
    return out


def resize_quarter(p: Resize) -> bool:
    """ND_KERNEL_RESIZE_QUARTER applies: every row and column weight a multiple of 1/4 (a clamped edge, both sources
    the same pixel, counts as one pixel), channels a multiple of 4, dense maps."""
    return (p.in_.c % 4 == 0 and p.in_.pstride == p.in_.c and p.out.pstride == p.out.c
            and all(lo == hi or (f % 256 == 0 and 0 <= f < 1024)
                    for axis in (0, 1) for lo, hi, f in resize_sources(p, axis)))


def resize_half(p: Resize) -> bool:
    """ND_KERNEL_RESIZE_HALF applies: sample (y, x) is the 2x2 block at (2y, 2x) weighted 1/2 x 1/2 (half-pixel
    centres, out = in / 2), channels a multiple of 4, dense maps."""
    return (p.in_.c % 4 == 0 and p.in_.pstride == p.in_.c and p.out.pstride == p.out.c
            and all(src == (2 * o, 2 * o + 1, 512)
                    for axis in (0, 1) for o, src in enumerate(resize_sources(p, axis))))


def resize_half_sample(s: int) -> int:
    """TFLM's RESIZE_BILINEAR sample of a 2x2 block whose values sum to s, each weighted (512 / 1024)^2, as
    nd_bilinear_round rounds it."""
    v = s << 18
    return (v + (1 << 19) - (v <= 0)) >> 20


def conv_pool_scratch(p: ConvPool) -> int:
    """nd_conv_pool_s8_get_buffer_size: the ring of pool.kh conv rows (word aligned), then the conv's scratch."""
    ring = (p.pool.kh * p.conv.out.w * p.conv.out.pstride + 3) // 4 * 4
    return ring + conv_scratch(p.conv)


# --- rendering -----------------------------------------------------------------------------------------------------

def c_field(name: str) -> str:
    return name.rstrip("_")


def initializer(value) -> str:
    """A C initializer for a CStruct, a tuple (inline array), a Const (its name), a CName or a number."""
    if isinstance(value, CStruct):
        parts = []
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None:
                parts.append(f".{c_field(f.name)} = {initializer(v)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, tuple):
        return "{" + ", ".join(initializer(v) for v in value) + "}"
    if isinstance(value, Const):
        return value.name
    if isinstance(value, CName):
        return str(value)
    if isinstance(value, bool | int | np.integer):
        return str(int(value))
    raise TypeError(f"no C initializer for {type(value).__name__}")


def consts_of(value) -> list[Const]:
    """Every Const a params value refers to (depth first, in field order)."""
    if isinstance(value, Const):
        return [value]
    if isinstance(value, CStruct):
        return [c for f in dataclasses.fields(value) for c in consts_of(getattr(value, f.name))]
    if isinstance(value, tuple):
        return [c for v in value for c in consts_of(v)]
    return []
