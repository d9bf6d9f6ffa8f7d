"""IEEE-754 binary32 bit patterns: how quantisation scales cross into C source (codegen) and over the link (the
device reports scales as bits, so neither side needs float formatting or parsing to compare them exactly)."""
from __future__ import annotations

import struct


def f32_bits(value: float) -> int:
    """The binary32 bits of value (rounded to float32 first)."""
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f32_from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]
