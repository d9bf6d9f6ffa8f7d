/* Portable C99 int8 kernels for the AOT engine (nanodet_mcu/aot emits calls to these).
 *
 * Integer semantics follow tflite-micro's reference kernels bit for bit (per-channel requantisation with
 * SaturatingRoundingDoublingHighMul + RoundingDivideByPOT, TFLM's resize and add arithmetic); every constant that
 * TFLM derives from float scales at Prepare time is computed by the generator on the host and passed in, so no
 * kernel here touches floating point.  Element-wise int8 -> int8 ops (LEAKY_RELU, LOGISTIC, QUANTIZE) are 256-entry
 * tables built by the generator and can be fused into a conv's store.
 *
 * Layout: NHWC, batch 1.  Feature maps are addressed through a pixel stride (elements between horizontally adjacent
 * pixels) so that channel slices of a wider buffer (SPLIT, CONCATENATION, SLICE on channels) are views, not copies.
 */
#ifndef ND_KERNELS_H
#define ND_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An optional per-step hook: define ND_PROFILE and provide nd_profile_op(index), called before each step and with
 * -1 after the last one.  A nonzero return stops the run there: nd_model_run returns 1 with the last completed step's
 * outputs intact (verify --bisect reads them).  Without ND_PROFILE the hook is not there at all. */
#ifdef ND_PROFILE
int nd_profile_op(int op_index);
#define ND_PROFILE_OP(i)                                                                                               \
    do {                                                                                                               \
        if (nd_profile_op(i) != 0) {                                                                                   \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)
#else
#define ND_PROFILE_OP(i) ((void)0)
#endif

/* Fixed-point primitives, exposed for tests. */
int32_t nd_srdhm(int32_t a, int32_t b);                    /* SaturatingRoundingDoublingHighMul */
int32_t nd_rdbpot(int32_t x, int exponent);                /* RoundingDivideByPOT, exponent >= 0 */
int32_t nd_mbqm(int32_t x, int32_t multiplier, int shift); /* MultiplyByQuantizedMultiplier (double rounding) */

/* A feature map view's geometry: c elements per pixel are used, pixels pstride apart, rows w*pstride
 * apart. */
typedef struct {
    int32_t h, w, c;
    int32_t pstride;
} nd_fmap_t;

/* Per-channel requantisation in the form the fast paths use when the generator has proven it exact for the
 * layer (right shift >= 1, no left shift, |accumulator| small enough that h + round cannot overflow):
 * RoundingDivideByPOT(h, rsh) == (h + round - (h < 0)) >> rsh with round = 2^(rsh-1). */
typedef struct {
    int32_t mult, round, rsh;
} nd_rq_t;

/* CONV_2D and DEPTHWISE_CONV_2D with explicit padding (PAD ops folded in by the generator). */
typedef struct {
    nd_fmap_t in, out;
    int16_t kh, kw, sh, sw, dh, dw, pad_t, pad_l;
    int16_t depth_multiplier; /* depthwise only */
    int32_t in_offset;        /* -input zero point */
    int32_t out_offset;       /* output zero point */
    int32_t act_min, act_max;
    const int8_t *weights; /* conv: OHWI; depthwise: HWC (1HWC) */
    const int32_t *bias;   /* may be NULL */
    const int32_t *mult;   /* per output channel */
    const int8_t *shift;   /* per output channel */
    const int8_t *lut;     /* fused element-wise activation (index value+128), or NULL */
    /* Fast path (NULL/0: reference loops).  The input offset is folded into bias_eff = bias + in_offset * sum(w);
     * padded taps then read the zero point, which contributes (zp + in_offset) * w = 0 exactly as in TFLM. */
    const int32_t *bias_eff;
    const int16_t *wx; /* conv: OHWI weights, K = kh*kw*in_c zero-padded to k4, as int16 pairs
                               * (w0,w2),(w1,w3) per 4 taps, interleaved over blocks of 4 output channels */
    int16_t k4;
    const nd_rq_t *rq; /* NULL: the general requantisation */
    const int8_t *wdw; /* depthwise 3x3: weights channel-major [c][9] */
    /* Doubled-accumulator requantisation (NULL: the forms above), proven exact by the generator for the layer:
     * weights and bias are doubled (bias2 = 2 * bias_eff; conv: wx holds 2w) so that the high multiply is one
     * rounding SMMULR, and rqo = {mult, round + (out_offset << rsh), rsh} folds the output offset in. */
    const int32_t *bias2;
    const nd_rq_t *rqo;
    /* SIMD depthwise 3x3 (channels a multiple of 4, with bias2/rqo; NULL: the paths above): per block of 4
     * channels and per tap, int16 (2w0,2w2,2w1,2w3). */
    const int16_t *wdw4;
} nd_conv_params_t;

void nd_conv2d_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out);
void nd_dwconv_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out);

/* MAX_POOL_2D.  pad_mode 0: padding is excluded (TFLM SAME semantics); 1: padding takes pad_value (a folded PAD). */
typedef struct {
    nd_fmap_t in, out;
    int16_t kh, kw, sh, sw, pad_t, pad_l;
    int16_t pad_mode;
    int16_t pad_value;
    int32_t act_min, act_max;
} nd_pool_params_t;

void nd_maxpool_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out);

/* One output row of a conv (fast path when available): the building block of row streaming. */
void nd_conv2d_row_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out_row, int oy);

/* CONV_2D (+ fused table) followed by MAX_POOL_2D, streamed by rows: the conv output never exists whole, only
 * pool.kh rows of it in `ring` (pool.kh * conv.out.w * conv.out.c bytes).  The generator may place `out` over
 * `in` when every pooled row lands on input rows no longer needed. */
typedef struct {
    nd_conv_params_t conv;
    nd_pool_params_t pool;
} nd_conv_pool_params_t;

void nd_conv_pool_s8(const nd_conv_pool_params_t *p, const int8_t *in, int8_t *out, int8_t *ring);

/* ADD (same shapes): t1/t2 map an input value (index value+128) to its scaled int32 term (TFLM's
 * (x - zp) << left_shift, times the input multiplier); the sum is requantised with mult/shift. */
typedef struct {
    nd_fmap_t a, b, out;
    const int32_t *t1, *t2;
    int32_t mult;
    int32_t shift; /* <= 0 */
    int32_t out_offset, act_min, act_max;
} nd_add_params_t;

void nd_add_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out);

/* RESIZE_BILINEAR, TFLM's integer path (10 fractional bits). */
typedef struct {
    nd_fmap_t in, out;
    int16_t align_corners, half_pixel_centers;
} nd_resize_params_t;

void nd_resize_bilinear_s8(const nd_resize_params_t *p, const int8_t *in, int8_t *out);

/* Element-wise table over a feature map (in and out may be the same buffer). */
void nd_lut_s8(const nd_fmap_t *in, const nd_fmap_t *out, const int8_t *lut, const int8_t *src, int8_t *dst);

/* N-D strided copy (up to 6 dims): dst[sum i_k*dst_strides[k]] = src[sum i_k*src_strides[k]].  Covers TRANSPOSE,
 * SLICE, STRIDED_SLICE, CONCATENATION, SPLIT and PAD interiors.  Strides in elements and may be negative. */
void nd_copy_nd_s8(int ndim, const int32_t *dims, const int8_t *src, const int32_t *src_strides, int8_t *dst,
                   const int32_t *dst_strides);

void nd_fill_s8(int8_t *dst, int8_t value, int32_t n);

/* Fast paths (nd_kernels_fast.c), chosen by the public kernels above when their preconditions hold. */
int nd_conv2d_fast_ok(const nd_conv_params_t *p);
void nd_conv2d_fast_row_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out_row, int oy);
int nd_dwconv_fast_ok(const nd_conv_params_t *p);
void nd_dwconv3x3_fast_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out);
void nd_dwconv3x3_simd_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out);
int nd_add_fast_ok(const nd_add_params_t *p);
void nd_add_fast_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void nd_maxpool_fast_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out);
void nd_maxpool_row_fast_s8(const nd_pool_params_t *q, const int8_t *const *rows, int8_t *out_row);

#ifdef __cplusplus
}
#endif

#endif /* ND_KERNELS_H */
