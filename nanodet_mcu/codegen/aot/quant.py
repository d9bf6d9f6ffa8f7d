"""TFLM's quantisation arithmetic on the host: what its kernels compute at Prepare time (multipliers, shifts, ranges)
and, for element-wise int8 ops, the whole 256-entry function (so the device only does a table look-up).

Every function mirrors tflite-micro's reference kernels (QuantizeMultiplier, MultiplyByQuantizedMultiplier with
double rounding, gemmlowp's fixed-point logistic); tests compare the results with the tflite-micro interpreter.
"""
from __future__ import annotations

import math

import numpy as np

from nanodet_mcu.errors import NanodetError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def tflite_round(x: float) -> float:
    """std::round: halves away from zero (Python's round() would round half to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier(double) -> (int32 multiplier, shift); shift > 0 means a left shift."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a: int, b: int) -> int:
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(math.copysign(abs(v) // (1 << 31), v)) if v else 0  # truncating division


def rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    left, right = (shift, 0) if shift > 0 else (0, -shift)
    return rdbpot(srdhm(_wrap32(x << left), multiplier), right)


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6)."""
    lo, hi = -128, 127

    def q(v: float) -> int:
        return zero_point + int(tflite_round(float(np.float32(v) / np.float32(scale))))

    if activation == 1:
        return max(lo, q(0.0)), hi
    if activation == 3:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if activation == 2:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    if activation != 0:
        raise NanodetError(f"fused activation {activation} is not supported (only NONE, RELU, RELU_N1_TO_1, RELU6)")
    return lo, hi


def _clamp8(v: int) -> int:
    return -128 if v < -128 else 127 if v > 127 else v


def leaky_relu_lut(alpha: float, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    # TFLM computes both ratios in float32 before widening to double.
    f32 = np.float32
    m_alpha, s_alpha = quantize_multiplier(float(f32(f32(in_scale) * f32(alpha)) / f32(out_scale)))
    m_id, s_id = quantize_multiplier(float(f32(in_scale) / f32(out_scale)))
    neg = m_alpha < 0
    m_alpha = abs(m_alpha)
    out = np.empty(256, np.int8)
    for i, x in enumerate(range(-128, 128)):
        v = x - in_zp
        if v >= 0:
            r = out_zp + mbqm(v, m_id, s_id)
        else:
            s = mbqm(v, m_alpha, s_alpha)
            r = out_zp + (-s if neg else s)
        out[i] = _clamp8(r)
    return out


def requantize_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """QUANTIZE int8 -> int8 (TFLM's Requantize with effective scale in/out in double)."""
    m, s = quantize_multiplier(float(in_scale) / float(out_scale))
    return np.array([_clamp8(mbqm(x - in_zp, m, s) + out_zp) for x in range(-128, 128)], np.int8)


# --- gemmlowp fixed point, int32 raw values --------------------------------------------------------------------

def _sat_mul_pot(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT."""
    if exponent > 0:
        v = x * (1 << exponent)
        return INT32_MAX if v > INT32_MAX else INT32_MIN if v < INT32_MIN else v
    if exponent < 0:
        return rdbpot(x, -exponent)
    return x


def _rescale(x: int, src_int_bits: int, dst_int_bits: int) -> int:
    return _sat_mul_pot(x, src_int_bits - dst_int_bits)


def _rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    sign = 1 if s >= 0 else -1
    v = s + sign
    return int(math.copysign(abs(v) // 2, v))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = _wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = _sat_mul_pot(x4, -2)
    inner = _wrap32(srdhm(_wrap32(x4_over_4 + x3), constant_1_over_3) + x2)
    poly = _sat_mul_pot(inner, -1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + poly)))


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = _wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = _wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            shift = frac_bits + exponent
            if remainder & (1 << shift):
                result = srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


def _one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    one_f2 = 1 << 29
    for _ in range(3):
        hdx = srdhm(half_denominator, x)
        one_minus = _wrap32(one_f2 - hdx)
        x = _wrap32(x + _rescale(srdhm(x, one_minus), 2 + 2, 2))
    return _rescale(x >> 1, 2, 0)


def _logistic_fixed(a: int, integer_bits: int) -> int:
    """gemmlowp::logistic(FixedPoint<int32, integer_bits>) -> raw FixedPoint<int32, 0>."""
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else _wrap32(-a)
    pos = _one_over_one_plus_x_for_x_in_0_1(_exp_on_negative_values(_wrap32(-abs_a), integer_bits))
    return pos if a > 0 else _wrap32(INT32_MAX - pos)


def logistic_lut(in_scale: float, in_zp: int) -> np.ndarray:
    """LOGISTIC int8 (output scale 1/256, zero point -128, which TFLM requires)."""
    input_integer_bits = 4
    real = float(in_scale) * float(1 << (31 - input_integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = _wrap32(int(tflite_round(q * (1 << 31))))
    radius = math.floor(1.0 * ((1 << input_integer_bits) - 1) * (1 << (31 - input_integer_bits)) / (1 << left_shift))
    out = np.empty(256, np.int8)
    for i, x in enumerate(range(-128, 128)):
        v = x - in_zp
        if v <= -radius:
            out[i] = -128
        elif v >= radius:
            out[i] = 127
        else:
            q4 = mbqm(v, multiplier, left_shift)
            q0 = _logistic_fixed(q4, input_integer_bits)
            out[i] = _clamp8(rdbpot(q0, 31 - 8) - 128)
    return out


def add_tables(s1: float, zp1: int, s2: float, zp2: int, out_scale: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """TFLM int8 ADD: per-input int32 terms for every int8 value, and the output multiplier/shift."""
    left_shift = 20
    twice_max = 2 * float(max(np.float32(s1), np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(out_scale)))

    def table(zp, m, sh):
        return np.array([rdbpot(srdhm(_wrap32((x - zp) * (1 << left_shift)), m), -sh) for x in range(-128, 128)],
                        np.int32)

    return table(zp1, m1, sh1), table(zp2, m2, sh2), mo, sho
