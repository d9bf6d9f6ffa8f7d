/* int8 kernels of the AOT engine: the API the generated nd_model.c calls (nanodet_mcu/codegen/aot emits it).
 *
 * Organised like TFLM's kernels/ and kernels/cmsis_nn/, with CMSIS-NN's flat API:
 *   nd_kernels_ref.c      the reference: tflite-micro's integer semantics in plain loops, every op.  It defines what
 *                         "correct" means; every other kernel must give the same bytes.
 *   nd_kernels_conv.c     fast CONV_2D: three output pixels x two channels per step over generator-packed weights;
 *                         its inner loops in nd_kernels_conv_m7.S on Cortex-M7, in portable C elsewhere
 *   nd_kernels_dwconv.c   fast 3x3 DEPTHWISE_CONV_2D (four channels per step)
 *   nd_kernels_eltwise.c  fast MAX_POOL_2D, ADD, RESIZE_BILINEAR fused into its ADD, the channel-shuffle copies
 *   nd_kernels.c          the one dispatch (params.kernel -> implementation) and the scratch-size functions
 *   nd_kernels_fast.h     what the fast files share (SIMD primitives, exact short-form requantisation)
 *
 * Which kernel runs an op is decided once, by the generator (lower.py), which also proves the fast kernel's
 * preconditions (channel multiples, overflow bounds of the short requantisation) and precomputes its constants;
 * the params say which kernel (`kernel`) and carry exactly that kernel's constants.  Built with
 * -DND_KERNELS_REFERENCE_ONLY=1, the fast files compile to nothing, the dispatch only reaches the reference, and the
 * generated model compiles its reference constants instead (nd_model.c has both, selected by the same macro).
 *
 * Integer semantics follow tflite-micro bit for bit (per-channel requantisation with SaturatingRoundingDoublingHighMul
 * and RoundingDivideByPOT, TFLM's ADD and RESIZE_BILINEAR arithmetic); every constant TFLM derives from float scales
 * at Prepare time is computed on the host and passed in, so no kernel touches floating point.  Element-wise int8 ops
 * (LEAKY_RELU, LOGISTIC, QUANTIZE) are 256-entry tables, optionally fused into a conv's store.
 *
 * Memory: kernels use no heap and no stack buffers that grow with the model.  A kernel that needs working memory
 * takes a `scratch` pointer (4-byte aligned) into the arena; its size is nd_<op>_get_buffer_size(params), the twin of
 * the generator's planner (nanodet_mcu/codegen/aot/kernels.py), and the generated nd_model_check() compares the two.
 * Below its caller's frame, nd_model_run and the kernels use at most ND_KERNELS_STACK_BYTES of stack (fixed frames,
 * no recursion but nd_copy's, at most ND_COPY_MAX_DIMS deep): the bound `generate` reports, checked against the
 * painted stack on QEMU by tests/test_aot.py for every kernel build.
 *
 * Layout: NHWC, batch 1.  Feature maps are addressed through a pixel stride (elements between horizontally adjacent
 * pixels), so channel slices of a wider buffer are views, not copies.
 */
#ifndef ND_KERNELS_H
#define ND_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ND_KERNELS_REFERENCE_ONLY
#define ND_KERNELS_REFERENCE_ONLY 0
#endif

#define ND_KERNELS_STACK_BYTES 1024 /* see "Memory" above */

/* A macro's value as a string: section names given on the command line (ND_KERNELS_CODE_SECTION, the generated
 * nd_model.c's ND_MODEL_CONST_SECTION). */
#define ND_STR_(x) #x
#define ND_STR(x) ND_STR_(x)

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

/* Fixed-point primitives (TFLM's), exposed for tests. */
int32_t nd_srdhm(int32_t a, int32_t b);                    /* SaturatingRoundingDoublingHighMul */
int32_t nd_rdbpot(int32_t x, int exponent);                /* RoundingDivideByPOT, exponent >= 0 */
int32_t nd_mbqm(int32_t x, int32_t multiplier, int shift); /* MultiplyByQuantizedMultiplier (double rounding) */

/* Which implementation runs an op: chosen by the generator, which packs that kernel's constants. */
typedef enum {
    ND_KERNEL_REF = 0,          /* nd_kernels_ref.c: any params of the op */
    ND_KERNEL_CONV_3X2,         /* CONV_2D: three pixels x two channels per step, SMLAD over a packed stream */
    ND_KERNEL_DWCONV3X3_SMLA,   /* DEPTHWISE_CONV_2D 3x3: four channels per step, SMLABB/SMLATT */
    ND_KERNEL_DWCONV3X3_PAIRS,  /* DEPTHWISE_CONV_2D 3x3: channel-planar rows in scratch, two taps per SMLAD */
    ND_KERNEL_MAXPOOL_S8X4,     /* MAX_POOL_2D: four channels per word (byte-lane max) */
    ND_KERNEL_ADD_SMMULR,       /* ADD over dense maps: one rounding multiply per element */
    ND_KERNEL_COPY_INTERLEAVE2, /* copy that interleaves two channel runs (the channel shuffle's transpose) */
    ND_KERNEL_COPY_SPREAD2,     /* copy into every other channel of a shuffled map, whole words (see below) */
    ND_KERNEL_RESIZE_QUARTER,   /* RESIZE_BILINEAR (inside the fast ADD) whose weights are multiples of 1/4 */
    ND_KERNEL_RESIZE_HALF,      /* RESIZE_BILINEAR (inside the fast ADD): every sample the mean of a 2x2 block */
} nd_kernel_t;

/* A feature map view: c elements per pixel are used, pixels pstride elements apart, rows w * pstride apart, channels
 * cstride apart (1, except for a conv output written straight into a channel-shuffled buffer). */
typedef struct {
    int32_t h, w, c;
    int32_t pstride, cstride;
} nd_fmap_t;

/* CONV_2D and DEPTHWISE_CONV_2D, explicit padding (PAD ops folded in by the generator). */
typedef struct {
    nd_fmap_t in, out;
    int16_t kh, kw, sh, sw, dh, dw, pad_t, pad_l;
    int16_t depth_multiplier; /* depthwise */
    int32_t in_offset;        /* -input zero point */
    int32_t out_offset;       /* output zero point */
    int32_t act_min, act_max;
    const int8_t *lut; /* fused element-wise op (index value + 128), or NULL; folds in a narrower activation range */
    nd_kernel_t kernel;
    /* ND_KERNEL_REF: TFLM's constants */
    const int8_t *weights; /* conv: OHWI; depthwise: 1HWC */
    const int32_t *bias;   /* may be NULL */
    const int32_t *mult;   /* per output channel */
    const int8_t *shift;   /* per output channel */
    /* fast kernels: the input offset folded into bias2 = 2 * (bias + in_offset * sum(w)), so padded taps read the
     * zero point, which then contributes (zp + in_offset) * w = 0, exactly as TFLM skipping them */
    const int32_t *wq; /* the fast kernel's packed stream (see nd_kernels_fast.h); conv: K = kh*kw*in_c zero-padded
                        * to k4 */
    int32_t k4;
    int32_t w8; /* ND_KERNEL_CONV_3X2: 1 when the stream holds int8 weights (nd_kernels_fast.h) */
} nd_conv_params_t;

void nd_conv2d_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch);
int32_t nd_conv2d_s8_get_buffer_size(const nd_conv_params_t *p);
void nd_dwconv_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch);
int32_t nd_dwconv_s8_get_buffer_size(const nd_conv_params_t *p);

/* MAX_POOL_2D.  pad_mode 0: padding is excluded (TFLM SAME semantics); 1: padding takes pad_value (a folded PAD). */
typedef struct {
    nd_fmap_t in, out;
    int16_t kh, kw, sh, sw, pad_t, pad_l;
    int16_t pad_mode;
    int16_t pad_value;
    int32_t act_min, act_max;
    nd_kernel_t kernel;
} nd_pool_params_t;

void nd_maxpool_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out);

/* CONV_2D (+ fused table) followed by MAX_POOL_2D, streamed by rows: the conv output never exists whole, only
 * pool.kh rows of it, in a ring at the start of scratch.  The generator may place `out` over `in` when every pooled
 * row lands on input rows no longer needed. */
typedef struct {
    nd_conv_params_t conv;
    nd_pool_params_t pool;
} nd_conv_pool_params_t;

void nd_conv_pool_s8(const nd_conv_pool_params_t *p, const int8_t *in, int8_t *out, void *scratch);
int32_t nd_conv_pool_s8_get_buffer_size(const nd_conv_pool_params_t *p);

/* ADD (same shapes): t1/t2 map an input value (index value + 128) to its scaled int32 term (TFLM's
 * (x - zp) << left_shift times the input multiplier; ND_KERNEL_ADD_SMMULR's tables hold twice that); the sum is
 * requantised with mult/shift (shift <= 0). */
typedef struct {
    nd_fmap_t a, b, out;
    const int32_t *t1, *t2;
    int32_t mult;
    int32_t shift;
    int32_t out_offset, act_min, act_max;
    nd_kernel_t kernel;
} nd_add_params_t;

void nd_add_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out);

/* RESIZE_BILINEAR, TFLM's integer path (10 fractional bits). */
typedef struct {
    nd_fmap_t in, out;
    int16_t align_corners, half_pixel_centers;
    nd_kernel_t kernel; /* ND_KERNEL_REF, or ND_KERNEL_RESIZE_QUARTER inside nd_resize_add_s8's fast ADD */
} nd_resize_params_t;

void nd_resize_bilinear_s8(const nd_resize_params_t *p, const int8_t *in, int8_t *out);

/* Output row (axis 0) or column (axis 1) o of a RESIZE_BILINEAR: the two source rows/columns and the weight of the
 * second in 1/1024 (TFLM's ComputeInterpolationValuesInteger; the weight may be negative at a half-pixel border, where
 * both sources are the same). */
void nd_resize_source(const nd_resize_params_t *p, int axis, int32_t o, int32_t *lo, int32_t *hi, int32_t *frac);

/* (v +- 2^19) / 2^20 truncating toward zero, as TFLM's int64 division: floor((v + 2^19) / 2^20) for v > 0, and for
 * v <= 0 the ceiling of (v - 2^19) / 2^20, i.e. floor((v + 2^19 - 1) / 2^20). */
static inline int32_t nd_bilinear_round(int32_t v)
{
    return (v + (1 << 19) - (v <= 0)) >> 20;
}

/* TFLM's integer bilinear sample from four pixels' values and the fractions of the second row and column. */
static inline int32_t nd_bilinear(int32_t p00, int32_t p01, int32_t p10, int32_t p11, int32_t fy, int32_t fx)
{
    /* TFLM sums in int64; the four weights' magnitudes add up to at most 2048^2, so |v| < 2^29 here */
    const int32_t v = p00 * ((1 << 10) - fy) * ((1 << 10) - fx) + p10 * fy * ((1 << 10) - fx) +
                      p01 * ((1 << 10) - fy) * fx + p11 * fy * fx;
    return nd_bilinear_round(v);
}

/* RESIZE_BILINEAR fused into the ADD that alone reads it: out = ADD(a, resize(x)), the resized map never stored.  The
 * resized operand is ADD's second (the generator swaps operands and tables when it was the first: the sum is
 * symmetric); add.b describes the resized map. */
typedef struct {
    nd_add_params_t add;
    nd_resize_params_t resize;
    const int32_t *half_t2; /* RESIZE_HALF: ADD's term for the sample of a 2x2 block, by the block's sum + 512 */
} nd_resize_add_params_t;

void nd_resize_add_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x, int8_t *out, void *scratch);
int32_t nd_resize_add_s8_get_buffer_size(const nd_resize_add_params_t *p);

/* Element-wise table over a feature map (in and out may be the same buffer). */
typedef struct {
    nd_fmap_t in, out;
    const int8_t *lut;
} nd_lut_params_t;

void nd_lut_s8(const nd_lut_params_t *p, const int8_t *in, int8_t *out);

/* N-D strided copy: dst[sum i_k * dst_strides[k]] = src[sum i_k * src_strides[k]], strides in elements (may be
 * negative).  TRANSPOSE, SLICE, STRIDED_SLICE, CONCATENATION, SPLIT and PAD interiors are all copies.
 * ND_KERNEL_COPY_SPREAD2 (2-D: pixels x channels, destination channel stride 2, channels a multiple of 4) writes whole
 * words and so also the odd channels in between, with junk: the generator uses it only where a conv fills those next. */
#define ND_COPY_MAX_DIMS 6
typedef struct {
    int32_t ndim;
    int32_t dims[ND_COPY_MAX_DIMS];
    int32_t src_strides[ND_COPY_MAX_DIMS];
    int32_t dst_strides[ND_COPY_MAX_DIMS];
    nd_kernel_t kernel;
} nd_copy_params_t;

void nd_copy_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst);

void nd_fill_s8(int8_t *dst, int8_t value, int32_t n);

/* The reference kernels (nd_kernels_ref.c), any params.  Rows [oy0, oy1) of a conv go to `out`, whose row y is at
 * (y % ring_rows) * out.w * out.pstride (ring_rows = out.h for a whole map); a pool reads its input row y the same way
 * (ring_rows = in.h for a whole map). */
void nd_conv2d_rows_ref_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1, int ring_rows);
void nd_dwconv_ref_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out);
void nd_maxpool_rows_ref_s8(const nd_pool_params_t *p, const int8_t *in, int ring_rows, int py0, int py1, int8_t *out);
void nd_add_ref_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void nd_resize_add_ref_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x, int8_t *out);
void nd_copy_ref_s8(int ndim, const int32_t *dims, const int8_t *src, const int32_t *src_strides, int8_t *dst,
                    const int32_t *dst_strides);

#ifdef __cplusplus
}
#endif

#endif /* ND_KERNELS_H */
