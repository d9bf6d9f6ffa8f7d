/* Fast paths of the AOT kernels: the same integer results as the reference loops in nd_kernels.c, with fewer
 * instructions.  On a core with the DSP extension (Cortex-M7: __ARM_FEATURE_DSP) the SIMD steps are ACLE
 * intrinsics or single instructions (SXTB16, SMLAD, SMLABB/SMLATT, SMMULR, SSUB8/SEL); elsewhere the same steps
 * are portable C, so host tests exercise the exact blocking and arithmetic that runs on the device. */
#include "nd_kernels.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define nd_sxtb16(x) __sxtb16(x)
static inline uint32_t nd_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x)); /* GCC 12 does not fold the rotate into SXTB16 */
    return r;
}
#define nd_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define nd_smlabb(a, b, acc) ((int32_t)__smlabb((a), (b), (acc)))
#define nd_smlatt(a, b, acc) ((int32_t)__smlatt((a), (b), (acc)))
static inline int32_t nd_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b)); /* ACLE has no intrinsic for it */
    return r;
}
static inline uint32_t nd_max_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8(a, b); /* sets the GE flag of every lane where a >= b */
    return __sel(a, b);
}
#else
static inline uint32_t nd_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint16_t)(int16_t)(int8_t)(x & 0xFFu);
    const uint32_t hi = (uint16_t)(int16_t)(int8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
}
static inline uint32_t nd_sxtb16_ror8(uint32_t x)
{
    return nd_sxtb16((x >> 8) | (x << 24));
}
static inline int32_t nd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    /* wraps like the instruction; the products themselves cannot overflow */
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu)) +
                     (uint32_t)((int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16)));
}
static inline int32_t nd_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu)));
}
static inline int32_t nd_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16)));
}
static inline int32_t nd_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
static inline uint32_t nd_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)((a >> i) & 0xFFu), y = (int8_t)((b >> i) & 0xFFu);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
    }
    return r;
}
#endif

/* The hot loops are short and their trip counts small multiples of 4: let GCC unroll them whatever -O level the
 * project builds with. */
#if defined(__GNUC__) && !defined(__clang__)
#define ND_HOT __attribute__((optimize("O3", "unroll-loops")))
#else
#define ND_HOT
#endif

static inline uint32_t nd_ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR on Cortex-M7, which allows unaligned word loads */
    return v;
}

/* MultiplyByQuantizedMultiplier for multiplier >= 0 (always true for QuantizeMultiplier of a positive scale):
 * gemmlowp's SaturatingRoundingDoublingHighMul then only saturates for INT32_MIN * INT32_MIN, which cannot occur,
 * and its nudge-and-truncate equals (a*b + 2^30) >> 31 (floor) for both signs.  RoundingDivideByPOT is written
 * without branches: a right shift of 0 gives mask 0 and adds nothing. */
static inline int32_t nd_requant(int32_t acc, int32_t mult, int shift)
{
    const int lsh = shift > 0 ? shift : 0;
    const int rsh = lsh - shift;
    acc = (int32_t)((uint32_t)acc << lsh);
    const int32_t h = (int32_t)(((int64_t)acc * mult + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << rsh) - 1u);
    const int32_t threshold = (mask >> 1) - (h >> 31); /* h >> 31 is -1 for negative h */
    return (h >> rsh) + ((h & mask) > threshold);
}

#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define nd_sat8(v) __ssat((v), 8)
#else
static inline int32_t nd_sat8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}
#endif

static inline int32_t nd_requant_rq(int32_t acc, const nd_rq_t *q)
{
    const int32_t h = (int32_t)(((int64_t)acc * q->mult + ((int64_t)1 << 30)) >> 31);
    return (h + q->round - (int32_t)((uint32_t)h >> 31)) >> q->rsh;
}

/* Requantisation of a doubled accumulator (see nd_conv_params_t.rqo): SMMULR(2 acc, m) = (2 acc m + 2^31) >> 32
 * equals (acc m + 2^30) >> 31, the high multiply; adding (h >> 31) = -(h < 0) and round + (out_offset << rsh)
 * before the shift is the exact short rounding of nd_rq_t plus the output offset (the generator has bounded
 * every term so that nothing overflows). */
static inline int32_t nd_requant_o(int32_t acc2, const nd_rq_t *q)
{
    const int32_t h = nd_smmulr(acc2, q->mult);
    return nd_sat8((h + (h >> 31) + q->round) >> q->rsh);
}

/* The generator folds a narrower activation range into the table, so the fast paths only saturate to int8. */
static inline int8_t nd_out(int32_t acc, const nd_conv_params_t *p, int oc)
{
    const int32_t r = p->rq ? nd_requant_rq(acc, &p->rq[oc]) : nd_requant(acc, p->mult[oc], p->shift[oc]);
    const int32_t v = nd_sat8(r + p->out_offset);
    return p->lut ? p->lut[v + 128] : (int8_t)v;
}

/* The K input values of output pixel (oy, ox), contiguous: the pixel itself for a 1x1 conv without padding,
 * else a patch gathered into buf with the zero point standing in for padding. */
#if defined(__GNUC__) && !defined(__clang__)
/* the copies here are a few bytes: GCC's memcpy/memset idiom calls would cost more than the copies */
#define ND_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define ND_NO_LIBCALLS
#endif

ND_NO_LIBCALLS static const int8_t *nd_patch(const nd_conv_params_t *p, const int8_t *in, int oy, int ox, int8_t *buf)
{
    const int in_c = p->in.c;
    if (p->kh == 1 && p->kw == 1 && p->pad_t == 0 && p->pad_l == 0 && p->k4 == in_c) {
        return in + ((int32_t)(oy * p->sh) * p->in.w + ox * p->sw) * p->in.pstride;
    }
    const int8_t zp = (int8_t)(-p->in_offset);
    int8_t *d = buf;
    const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
    if (p->in.pstride == in_c && p->dw == 1 && ix0 >= 0 && ix0 + p->kw <= p->in.w && iy0 >= 0 &&
        iy0 + (p->kh - 1) * p->dh < p->in.h) {
        /* interior pixel of a dense map: each kernel row is kw*in_c contiguous bytes, copied a word at a time */
        const int n = p->kw * in_c;
        for (int ky = 0; ky < p->kh; ++ky) {
            const int8_t *s = in + ((int32_t)(iy0 + ky * p->dh) * p->in.w + ix0) * in_c;
            int i = 0;
            for (; i + 4 <= n; i += 4) {
                const uint32_t v = nd_ld32(s + i);
                memcpy(d + i, &v, 4);
            }
            for (; i < n; ++i) {
                d[i] = s[i];
            }
            d += n;
        }
        while (d < buf + p->k4) {
            *d++ = 0;
        }
        return buf;
    }
    for (int ky = 0; ky < p->kh; ++ky) {
        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
        for (int kx = 0; kx < p->kw; ++kx) {
            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
            if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
                for (int c = 0; c < in_c; ++c) {
                    *d++ = zp;
                }
            } else {
                const int8_t *s = in + ((int32_t)iy * p->in.w + ix) * p->in.pstride;
                for (int c = 0; c < in_c; ++c) { /* a few bytes: a loop beats a memcpy call */
                    *d++ = s[c];
                }
            }
        }
    }
    while (d < buf + p->k4) {
        *d++ = 0;
    }
    return buf;
}

#define ND_PATCH_MAX 1152

int nd_conv2d_fast_ok(const nd_conv_params_t *p)
{
    return p->wx != NULL && (p->bias_eff != NULL || p->rqo != NULL) && p->k4 <= ND_PATCH_MAX && (p->out.c & 3) == 0 &&
           (p->k4 & 3) == 0;
}

static inline void nd_ld_w2(const uint32_t *w, uint32_t *a, uint32_t *b)
{
    uint64_t v;
    memcpy(&v, w, 8); /* one LDRD */
    *a = (uint32_t)v;
    *b = (uint32_t)(v >> 32);
}

/* Requantise four accumulators and store them: constants in locals, since the byte stores could otherwise alias
 * the parameter block and force reloads. */
static inline void nd_out4(const int32_t *acc, const nd_conv_params_t *p, int oc, int8_t *o)
{
    const nd_rq_t *rq = p->rq;
    const int8_t *lut = p->lut;
    const int32_t off = p->out_offset;
    if (p->rqo != NULL) {
        const nd_rq_t *q = p->rqo + oc;
        if (lut != NULL) {
            for (int i = 0; i < 4; ++i) {
                o[oc + i] = lut[nd_requant_o(acc[i], &q[i]) + 128];
            }
        } else {
            for (int i = 0; i < 4; ++i) {
                o[oc + i] = (int8_t)nd_requant_o(acc[i], &q[i]);
            }
        }
    } else if (rq != NULL && lut != NULL) {
        for (int i = 0; i < 4; ++i) {
            o[oc + i] = lut[nd_sat8(nd_requant_rq(acc[i], &rq[oc + i]) + off) + 128];
        }
    } else if (rq != NULL) {
        for (int i = 0; i < 4; ++i) {
            o[oc + i] = (int8_t)nd_sat8(nd_requant_rq(acc[i], &rq[oc + i]) + off);
        }
    } else {
        for (int i = 0; i < 4; ++i) {
            o[oc + i] = nd_out(acc[i], p, oc + i);
        }
    }
}

/* Two words from p, then p += 2 words: one post-indexed LDRD on Cortex-M7 (GCC does not pair these loads itself). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define ND_LD2_POST(a, b, p) __asm__("ldrd %0, %1, [%2], #8" : "=&r"(a), "=&r"(b), "+r"(p) : : "memory")
#else
#define ND_LD2_POST(a, b, p) (nd_ld_w2((p), &(a), &(b)), (p) += 2)
#endif

/* One output pixel x four output channels per inner loop (few enough live values to stay in registers).  The
 * pixel's K inputs are sign-extended once into halfword pairs (SXTB16, even and odd bytes), so the inner loop is
 * doubleword loads and SMLADs only; the weights come pre-extended and interleaved from the generator. */
/* Four output channels' dot products with the extended pixel xe[0, xend): accumulators a[0..3] start at bias. */
#define ND_CONV_BLOCK(xe, xend, w, b, a0, a1, a2, a3)                                                                  \
    do {                                                                                                               \
        a0 = (b)[0], a1 = (b)[1], a2 = (b)[2], a3 = (b)[3];                                                            \
        for (const uint32_t *xp = (xe); xp < (xend);) {                                                                \
            uint32_t v02, v13, wa, wb;                                                                                 \
            ND_LD2_POST(v02, v13, xp);                                                                                 \
            ND_LD2_POST(wa, wb, w);                                                                                    \
            a0 = nd_smlad(v02, wa, a0);                                                                                \
            a0 = nd_smlad(v13, wb, a0);                                                                                \
            ND_LD2_POST(wa, wb, w);                                                                                    \
            a1 = nd_smlad(v02, wa, a1);                                                                                \
            a1 = nd_smlad(v13, wb, a1);                                                                                \
            ND_LD2_POST(wa, wb, w);                                                                                    \
            a2 = nd_smlad(v02, wa, a2);                                                                                \
            a2 = nd_smlad(v13, wb, a2);                                                                                \
            ND_LD2_POST(wa, wb, w);                                                                                    \
            a3 = nd_smlad(v02, wa, a3);                                                                                \
            a3 = nd_smlad(v13, wb, a3);                                                                                \
        }                                                                                                              \
    } while (0)

/* Four requantised outputs to int8: through the fused activation table when the op has one. */
static inline void nd_store4(int8_t *o, const int8_t *lut, int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
    if (lut != NULL) {
        o[0] = lut[v0 + 128];
        o[1] = lut[v1 + 128];
        o[2] = lut[v2 + 128];
        o[3] = lut[v3 + 128];
    } else {
        o[0] = (int8_t)v0;
        o[1] = (int8_t)v1;
        o[2] = (int8_t)v2;
        o[3] = (int8_t)v3;
    }
}

/* The doubled-accumulator form (rqo): every constant passed in, so the loop reloads nothing through p. */
ND_HOT static void nd_conv_pixel_o(const uint32_t *xe, const uint32_t *xend, const uint32_t *w, const int32_t *b2,
                                   const nd_rq_t *q, const int8_t *lut, int8_t *o, const int8_t *o_end)
{
    for (; o < o_end; o += 4, b2 += 4, q += 4) {
        int32_t a0, a1, a2, a3;
        ND_CONV_BLOCK(xe, xend, w, b2, a0, a1, a2, a3);
        const int32_t v0 = nd_requant_o(a0, &q[0]), v1 = nd_requant_o(a1, &q[1]);
        const int32_t v2 = nd_requant_o(a2, &q[2]), v3 = nd_requant_o(a3, &q[3]);
        nd_store4(o, lut, v0, v1, v2, v3);
    }
}

ND_HOT static void nd_conv_pixel(const nd_conv_params_t *p, const int8_t *x, int8_t *o)
{
    uint32_t xe[ND_PATCH_MAX / 2];
    const int k4 = p->k4, out_c = p->out.c;
    for (int k = 0; k < k4; k += 4) {
        const uint32_t v = nd_ld32(x + k);
        xe[k / 2] = nd_sxtb16(v);
        xe[k / 2 + 1] = nd_sxtb16_ror8(v);
    }
    const uint32_t *w = (const uint32_t *)(const void *)p->wx;
    const uint32_t *xend = xe + k4 / 2;
    if (p->rqo != NULL) {
        nd_conv_pixel_o(xe, xend, w, p->bias2, p->rqo, p->lut, o, o + out_c);
        return;
    }
    const int32_t *bias = p->bias_eff;
    for (int oc = 0; oc < out_c; oc += 4) {
        int32_t acc[4];
        ND_CONV_BLOCK(xe, xend, w, bias + oc, acc[0], acc[1], acc[2], acc[3]);
        nd_out4(acc, p, oc, o);
    }
}

void nd_conv2d_fast_row_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out_row, int oy)
{
    int8_t buf[ND_PATCH_MAX];
    int8_t *o = out_row;
    for (int ox = 0; ox < p->out.w; ++ox, o += p->out.pstride) {
        nd_conv_pixel(p, nd_patch(p, in, oy, ox, buf), o);
    }
}

int nd_dwconv_fast_ok(const nd_conv_params_t *p)
{
    return p->bias_eff != NULL && p->wdw != NULL && p->kh == 3 && p->kw == 3 && p->dh == 1 && p->dw == 1 &&
           p->depth_multiplier == 1;
}

#define ND_DW_PATCH_C 256

/* Everything in locals: a byte store may alias anything, so values read through p would be reloaded. */
ND_HOT static void nd_dw3x3_interior(const nd_conv_params_t *p, const int8_t *r0, int32_t row, int ps, int8_t *o)
{
    const int c_n = p->out.c, ps2 = 2 * ps;
    const int8_t *r1 = r0 + row, *r2 = r1 + row;
    const int8_t *w = p->wdw;
    const int32_t *be = p->bias_eff;
    const nd_rq_t *rq = p->rq;
    const int8_t *lut = p->lut;
    const int32_t off = p->out_offset;
    if (rq == NULL) {
        for (int c = 0; c < c_n; ++c, w += 9) {
            int32_t acc = be[c];
            acc += r0[c] * w[0] + r0[c + ps] * w[1] + r0[c + ps2] * w[2];
            acc += r1[c] * w[3] + r1[c + ps] * w[4] + r1[c + ps2] * w[5];
            acc += r2[c] * w[6] + r2[c + ps] * w[7] + r2[c + ps2] * w[8];
            o[c] = nd_out(acc, p, c);
        }
        return;
    }
    for (int c = 0; c < c_n; ++c, w += 9) {
        int32_t acc = be[c];
        acc += r0[c] * w[0] + r0[c + ps] * w[1] + r0[c + ps2] * w[2];
        acc += r1[c] * w[3] + r1[c + ps] * w[4] + r1[c + ps2] * w[5];
        acc += r2[c] * w[6] + r2[c + ps] * w[7] + r2[c + ps2] * w[8];
        const int32_t v = nd_sat8(nd_requant_rq(acc, &rq[c]) + off);
        o[c] = lut ? lut[v + 128] : (int8_t)v;
    }
}

/* A border window of a 3x3 depthwise as a 3x3 patch of c-byte pixels, the input zero point standing in for the
 * taps outside the map: those then contribute exactly 0, like the taps TFLM skips. */
static void nd_dw_border_patch(const nd_conv_params_t *p, const int8_t *in, int iy, int ix, int8_t *patch)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    const int8_t zp = (int8_t)(-p->in_offset);
    for (int t = 0; t < 9; ++t) {
        const int y = iy + t / 3, x = ix + t % 3;
        int8_t *d = patch + t * c_n;
        if (y < 0 || y >= p->in.h || x < 0 || x >= p->in.w) {
            memset(d, (unsigned char)zp, (size_t)c_n);
        } else {
            memcpy(d, in + (int32_t)y * row + x * ps, (size_t)c_n);
        }
    }
}

/* 3x3 depthwise, direct: interior pixels use the folded bias, three row pointers and channel-major weights (nine
 * consecutive bytes per channel); border pixels substitute the zero point for taps outside the map, which
 * contributes exactly 0 like TFLM's skipped taps. */
void nd_dwconv3x3_fast_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    const int8_t zp = (int8_t)(-p->in_offset);
    for (int oy = 0; oy < p->out.h; ++oy) {
        const int iy = oy * p->sh - p->pad_t;
        for (int ox = 0; ox < p->out.w; ++ox) {
            const int ix = ox * p->sw - p->pad_l;
            int8_t *o = out + ((int32_t)oy * p->out.w + ox) * p->out.pstride;
            if (iy >= 0 && iy + 2 < p->in.h && ix >= 0 && ix + 2 < p->in.w) {
                nd_dw3x3_interior(p, in + (int32_t)iy * row + ix * ps, row, ps, o);
                continue;
            }
            if (c_n <= ND_DW_PATCH_C) {
                /* border: a 3x3 patch with the zero point in place of missing taps, then the interior loop */
                int8_t patch[9 * ND_DW_PATCH_C];
                nd_dw_border_patch(p, in, iy, ix, patch);
                nd_dw3x3_interior(p, patch, 3 * c_n, c_n, o);
                continue;
            }
            const int8_t *w = p->wdw;
            for (int c = 0; c < c_n; ++c, w += 9) {
                int32_t acc = p->bias_eff[c];
                for (int ky = 0; ky < 3; ++ky) {
                    const int y = iy + ky;
                    for (int kx = 0; kx < 3; ++kx) {
                        const int x = ix + kx;
                        const int32_t v =
                            (y < 0 || y >= p->in.h || x < 0 || x >= p->in.w) ? zp : in[(int32_t)y * row + x * ps + c];
                        acc += v * w[ky * 3 + kx];
                    }
                }
                o[c] = nd_out(acc, p, c);
            }
        }
    }
}

/* One output pixel of a 3x3 depthwise, four channels per step: the four input bytes of a tap are split into
 * halfword pairs (c0,c2) and (c1,c3) by SXTB16 and multiplied lane by lane (SMLABB/SMLATT) with the generator's
 * pre-extended weights, so a tap costs a load, two extends, a doubleword load and four MACs.  rows[ky] is where
 * the window's row ky starts; its three taps are ps apart (register-offset loads: no per-tap pointers). */
#define ND_DW4_TAP(x, w, a0, a1, a2, a3)                                                                               \
    do {                                                                                                               \
        const uint32_t v_ = (x), xe_ = nd_sxtb16(v_), xo_ = nd_sxtb16_ror8(v_);                                        \
        uint32_t we_, wo_;                                                                                             \
        ND_LD2_POST(we_, wo_, w);                                                                                      \
        a0 = nd_smlabb(xe_, we_, a0);                                                                                  \
        a2 = nd_smlatt(xe_, we_, a2);                                                                                  \
        a1 = nd_smlabb(xo_, wo_, a1);                                                                                  \
        a3 = nd_smlatt(xo_, wo_, a3);                                                                                  \
    } while (0)

#if defined(__GNUC__) && !defined(__clang__)
#define ND_HOT_DW __attribute__((optimize("O2", "no-ivopts")))
#else
#define ND_HOT_DW
#endif

static inline void nd_dw4_pixel(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t ps,
                                const nd_conv_params_t *p, int8_t *o, const int use_lut);

/* n output pixels whose windows start step bytes apart (a run of interior pixels of one row, or one patch):
 * one call per run keeps the per-pixel set-up out of the call overhead. */
ND_HOT_DW static void nd_dw4_span(const int8_t *win, int32_t row, int32_t ps, int32_t step, int n,
                                  const nd_conv_params_t *p, int8_t *out, int32_t out_step, const int use_lut)
{
    for (; n > 0; --n, win += step, out += out_step) {
        nd_dw4_pixel(win, win + row, win + 2 * row, ps, p, out, use_lut);
    }
}

static inline void nd_dw4_pixel(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t ps,
                                const nd_conv_params_t *p, int8_t *o, const int use_lut)
{
    const uint32_t *w = (const uint32_t *)(const void *)p->wdw4;
    const int32_t *b2 = p->bias2;
    const nd_rq_t *q = p->rqo;
    const int8_t *lut = p->lut;
    const int c_n = p->out.c;
    for (int c = 0; c < c_n; c += 4, r0 += 4, r1 += 4, r2 += 4, o += 4, b2 += 4, q += 4) {
        int32_t a0 = b2[0], a1 = b2[1], a2 = b2[2], a3 = b2[3];
        ND_DW4_TAP(nd_ld32(r0), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r0 + ps), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r0 + 2 * ps), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r1), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r1 + ps), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r1 + 2 * ps), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r2), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r2 + ps), w, a0, a1, a2, a3);
        ND_DW4_TAP(nd_ld32(r2 + 2 * ps), w, a0, a1, a2, a3);
        const int32_t v0 = nd_requant_o(a0, &q[0]), v1 = nd_requant_o(a1, &q[1]);
        const int32_t v2 = nd_requant_o(a2, &q[2]), v3 = nd_requant_o(a3, &q[3]);
        nd_store4(o, use_lut ? lut : NULL, v0, v1, v2, v3);
    }
}

/* SIMD 3x3 depthwise (generator guarantees: channels a multiple of 4 and at most ND_DW_PATCH_C, depth multiplier
 * 1, no dilation).  Border taps outside the map read a row of zero points, which contributes exactly 0 (bias2
 * has the input offset folded in). */
void nd_dwconv3x3_simd_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    const int use_lut = p->lut != NULL;
    /* a border window is copied into a 3x3 patch of c_n-byte pixels, the zero point standing in for taps outside
     * the map */
    int8_t patch[9 * ND_DW_PATCH_C];
    for (int oy = 0; oy < p->out.h; ++oy) {
        const int iy = oy * p->sh - p->pad_t;
        const int y_in = iy >= 0 && iy + 2 < p->in.h;
        int8_t *o = out + (int32_t)oy * p->out.w * p->out.pstride;
        for (int ox = 0; ox < p->out.w; ++ox, o += p->out.pstride) {
            const int ix = ox * p->sw - p->pad_l;
            if (y_in && ix >= 0 && ix + 2 < p->in.w) {
                /* the run of interior pixels from here: ix + 2 < in.w for every one of them */
                const int n =
                    (p->in.w - 3 - ix) / p->sw + 1 < p->out.w - ox ? (p->in.w - 3 - ix) / p->sw + 1 : p->out.w - ox;
                nd_dw4_span(in + (int32_t)iy * row + ix * ps, row, ps, (int32_t)p->sw * ps, n, p, o, p->out.pstride,
                            use_lut);
                ox += n - 1;
                o += (int32_t)(n - 1) * p->out.pstride;
                continue;
            }
            nd_dw_border_patch(p, in, iy, ix, patch);
            nd_dw4_span(patch, 3 * c_n, c_n, 0, 1, p, o, 0, use_lut);
        }
    }
}

/* ADD over dense maps (see nd_add_s8): the sum's high multiply as one SMMULR of the doubled sum (|sum| < 2^30),
 * the output offset folded into the rounding term as in nd_requant_o (e <= 22 keeps it far from overflow). */
int nd_add_fast_ok(const nd_add_params_t *p)
{
    const int32_t c = p->out.c;
    return p->shift <= -1 && p->shift >= -22 && p->a.pstride == c && p->b.pstride == c && p->out.pstride == c;
}

ND_HOT void nd_add_fast_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    const int e = -p->shift;
    const int32_t n = (int32_t)p->out.h * p->out.w * p->out.c;
    const int32_t *t1 = p->t1 + 128, *t2 = p->t2 + 128;
    const int32_t mult = p->mult, lo = p->act_min, hi = p->act_max;
    const int32_t rnd = ((int32_t)1 << (e - 1)) + (int32_t)((uint32_t)p->out_offset << e);
    if (lo == -128 && hi == 127) {
        for (int32_t i = 0; i < n; ++i) {
            const int32_t h = nd_smmulr((t1[a[i]] + t2[b[i]]) * 2, mult);
            out[i] = (int8_t)nd_sat8((h + (h >> 31) + rnd) >> e);
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        const int32_t h = nd_smmulr((t1[a[i]] + t2[b[i]]) * 2, mult);
        int32_t v = (h + (h >> 31) + rnd) >> e;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        out[i] = (int8_t)v;
    }
}

/* Max pool over channels four at a time (byte-lane max); padding handled as in the reference. */
void nd_maxpool_fast_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out)
{
    const int c_n = p->out.c;
    const uint32_t pad4 = (uint32_t)(uint8_t)p->pad_value * 0x01010101u;
    for (int oy = 0; oy < p->out.h; ++oy) {
        for (int ox = 0; ox < p->out.w; ++ox) {
            const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
            int8_t *o = out + ((int32_t)oy * p->out.w + ox) * p->out.pstride;
            int any_pad = 0;
            for (int c = 0; c < c_n; c += 4) {
                uint32_t m = 0x80808080u;
                for (int ky = 0; ky < p->kh; ++ky) {
                    const int iy = iy0 + ky;
                    for (int kx = 0; kx < p->kw; ++kx) {
                        const int ix = ix0 + kx;
                        if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
                            any_pad = 1;
                            continue;
                        }
                        m = nd_max_s8x4(m, nd_ld32(in + ((int32_t)iy * p->in.w + ix) * p->in.pstride + c));
                    }
                }
                if (any_pad && p->pad_mode == 1) {
                    m = nd_max_s8x4(m, pad4);
                }
                for (int i = 0; i < 4; ++i) {
                    int32_t v = (int8_t)((m >> (8 * i)) & 0xFFu);
                    v = v < p->act_min ? p->act_min : v;
                    v = v > p->act_max ? p->act_max : v;
                    o[c + i] = (int8_t)v;
                }
            }
        }
    }
}

/* One pooled row of nd_conv_pool_s8 from the conv rows held in its ring (rows[ky] is NULL for padding rows);
 * channels four at a time. */
void nd_maxpool_row_fast_s8(const nd_pool_params_t *q, const int8_t *const *rows, int8_t *out_row)
{
    const int c_n = q->out.c, ps = q->in.pstride;
    const uint32_t pad4 = (uint32_t)(uint8_t)q->pad_value * 0x01010101u;
    int pad_rows = 0;
    const int clamp = q->act_min > -128 || q->act_max < 127;
    for (int ky = 0; ky < q->kh; ++ky) {
        pad_rows |= rows[ky] == NULL;
    }
    for (int px = 0; px < q->out.w; ++px) {
        const int x0 = px * q->sw - q->pad_l;
        const int kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + q->kw > q->in.w ? q->in.w - x0 : q->kw;
        const int any_pad = pad_rows || kx0 > 0 || kx1 < q->kw;
        int8_t *o = out_row + (int32_t)px * q->out.pstride;
        if (!any_pad && !clamp && q->kh == 3 && q->kw == 3) {
            /* NanoDet's stem pool away from the borders: the nine taps of four channels, unrolled */
            const int8_t *r0 = rows[0] + (int32_t)x0 * ps, *r1 = rows[1] + (int32_t)x0 * ps;
            const int8_t *r2 = rows[2] + (int32_t)x0 * ps;
            const int ps2 = 2 * ps;
            for (int c = 0; c < c_n; c += 4) {
                uint32_t m = nd_max_s8x4(nd_ld32(r0 + c), nd_ld32(r0 + c + ps));
                m = nd_max_s8x4(m, nd_ld32(r0 + c + ps2));
                m = nd_max_s8x4(m, nd_ld32(r1 + c));
                m = nd_max_s8x4(m, nd_ld32(r1 + c + ps));
                m = nd_max_s8x4(m, nd_ld32(r1 + c + ps2));
                m = nd_max_s8x4(m, nd_ld32(r2 + c));
                m = nd_max_s8x4(m, nd_ld32(r2 + c + ps));
                m = nd_max_s8x4(m, nd_ld32(r2 + c + ps2));
                memcpy(o + c, &m, 4);
            }
            continue;
        }
        for (int c = 0; c < c_n; c += 4) {
            uint32_t m = any_pad && q->pad_mode == 1 ? pad4 : 0x80808080u;
            for (int ky = 0; ky < q->kh; ++ky) {
                if (rows[ky] == NULL) {
                    continue;
                }
                const int8_t *r = rows[ky] + c;
                for (int kx = kx0; kx < kx1; ++kx) {
                    m = nd_max_s8x4(m, nd_ld32(r + (int32_t)(x0 + kx) * ps));
                }
            }
            if (!clamp) { /* the usual case: no fused activation range */
                memcpy(o + c, &m, 4);
                continue;
            }
            for (int i = 0; i < 4; ++i) {
                int32_t v = (int8_t)((m >> (8 * i)) & 0xFFu);
                v = v < q->act_min ? q->act_min : v;
                v = v > q->act_max ? q->act_max : v;
                o[c + i] = (int8_t)v;
            }
        }
    }
}
