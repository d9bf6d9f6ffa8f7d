/* What the fast kernels share (nd_kernels_conv.c, nd_kernels_dwconv.c, nd_kernels_eltwise.c), and their entry points
 * for the dispatch in nd_kernels.c.  Not part of the kernel API: the generated code calls nd_kernels.h only.
 *
 * On a core with the DSP extension (Cortex-M7: __ARM_FEATURE_DSP) the SIMD steps are ACLE intrinsics or single
 * instructions (SXTB16, SMLAD, SMLABB/SMLATT, SMMULR, SSUB8/SEL); elsewhere the same steps are portable C, so host
 * tests exercise the exact blocking and arithmetic that runs on the device. */
#ifndef ND_KERNELS_FAST_H
#define ND_KERNELS_FAST_H

#include "nd_kernels.h"

#include <string.h>

#if !ND_KERNELS_REFERENCE_ONLY

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define nd_sxtb16(x) __sxtb16(x)
static inline uint32_t nd_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x)); /* GCC 12 does not fold the rotate into SXTB16 */
    return r;
}
#define nd_sadd16(a, b) ((uint32_t)__sadd16((a), (b)))
#define nd_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define nd_smlabb(a, b, acc) ((int32_t)__smlabb((a), (b), (acc)))
#define nd_smlatt(a, b, acc) ((int32_t)__smlatt((a), (b), (acc)))
#define nd_smlabt(a, b, acc) ((int32_t)__smlabt((a), (b), (acc)))
#define nd_smlatb(a, b, acc) ((int32_t)__smlatb((a), (b), (acc)))
static inline int32_t nd_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); /* ACLE has no intrinsic for it */
    return r;
}
static inline uint32_t nd_max_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8(a, b); /* sets the GE flag of every lane where a >= b */
    return __sel(a, b);
}
/* (a & 0xFFFF) | ((b << 8) & 0xFFFF0000) and (a & 0xFFFF0000) | ((b >> 16) & 0xFFFF): PKHBT, PKHTB */
static inline uint32_t nd_pkhbt_lsl8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t nd_pkhtb_asr16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t nd_pkhbt_lsl16(uint32_t a, uint32_t b) /* (a & 0xFFFF) | (b << 16) */
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
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
static inline uint32_t nd_sadd16(uint32_t a, uint32_t b)
{
    return ((a + b) & 0xFFFFu) | (((a >> 16) + (b >> 16)) << 16);
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
static inline int32_t nd_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b >> 16)));
}
static inline int32_t nd_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a >> 16) * (int16_t)(b & 0xFFFFu)));
}
static inline int32_t nd_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
static inline int32_t nd_smmlar(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)nd_smmulr(a, b)); /* wraps like the instruction */
}
static inline uint32_t nd_pkhbt_lsl8(uint32_t a, uint32_t b)
{
    return (a & 0xFFFFu) | ((b << 8) & 0xFFFF0000u);
}
static inline uint32_t nd_pkhtb_asr16(uint32_t a, uint32_t b)
{
    return (a & 0xFFFF0000u) | ((b >> 16) & 0xFFFFu);
}
static inline uint32_t nd_pkhbt_lsl16(uint32_t a, uint32_t b)
{
    return (a & 0xFFFFu) | (b << 16);
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

#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define nd_sat8(v) __ssat((v), 8)
#else
static inline int32_t nd_sat8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}
#endif

/* Where the fast kernels' code goes: a board's fast code memory when the project defines ND_KERNELS_CODE_SECTION (the
 * board file's [aot] code_section, e.g. .nd_itcm_text: a [[linker_sections]] output section in ITCM whose image the
 * board layer copies from flash at start-up), else .text.  The assembly files use the same macro. */
#ifdef ND_KERNELS_CODE_SECTION
#define ND_FAST_CODE __attribute__((section(ND_STR(ND_KERNELS_CODE_SECTION))))
#else
#define ND_FAST_CODE
#endif

/* The hot loops are short and their trip counts small multiples of 4: let GCC unroll them whatever -O level the
 * project builds with. */
#if defined(__GNUC__) && !defined(__clang__)
#define ND_HOT __attribute__((optimize("O3", "unroll-loops")))
#else
#define ND_HOT
#endif

/* Short copies written as loops stay loops: GCC's memcpy/memset idiom calls would cost more than the copies (and
 * newlib-nano's memcpy copies bytes). */
#if defined(__GNUC__) && !defined(__clang__)
#define ND_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define ND_NO_LIBCALLS
#endif

static inline uint32_t nd_ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR on Cortex-M7, which allows unaligned word loads */
    return v;
}

/* Two words from p, then p += 2 words: one post-indexed LDRD on Cortex-M7 (GCC does not pair these loads itself). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define ND_LD2_POST(a, b, p) __asm__("ldrd %0, %1, [%2], #8" : "=&r"(a), "=&r"(b), "+r"(p) : : "memory")
/* Two words at p[off / 4] without moving p: an LDRD the compiler neither hoists nor spills (its operands stay
 * per-iteration values, which keeps hot loops with many constants in registers). */
#define ND_LD2(a, b, p, off) __asm__("ldrd %0, %1, [%2, #" #off "]" : "=&r"(a), "=&r"(b) : "r"(p) : "memory")
/* Two words to p, then p += 2 words: one post-indexed STRD (p word aligned; volatile, as p may be dead after it). */
#define ND_ST2_POST(a, b, p) __asm__ volatile("strd %1, %2, [%0], #8" : "+r"(p) : "r"(a), "r"(b) : "memory")
#else
#define ND_LD2_POST(a, b, p) (memcpy(&(a), (p), 4), memcpy(&(b), (p) + 1, 4), (p) += 2)
#define ND_LD2(a, b, p, off)                                                                                           \
    (memcpy(&(a), (const char *)(p) + (off), 4), memcpy(&(b), (const char *)(p) + (off) + 4, 4))
#define ND_ST2_POST(a, b, p) (memcpy((p), &(a), 4), memcpy((p) + 1, &(b), 4), (p) += 2)
#endif

/* The requantisation of nd_conv3x2_run (see there): {mult, round, rsh} at q, through the table lut (NULL: none). */
static inline int8_t nd_requant_q(int32_t acc2, const int32_t *q, const uint8_t *lut)
{
    const int32_t t = (nd_smmlar(acc2, q[0], q[1]) + (acc2 >> 31)) >> (q[2] & 31); /* & 31: the conv's flag bit */
    if (lut != NULL) {
        return (int8_t)lut[t < 0 ? 0 : t > 255 ? 255 : t];
    }
    return (int8_t)nd_sat8(t);
}

/* nd_kernels_conv.c */
void nd_conv2d_rows_3x2_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1, int ring_rows,
                           void *scratch);
int32_t nd_conv2d_3x2_buffer_size(const nd_conv_params_t *p);

/* The conv microkernel: a run of n output pixel triples.  Pixel j (0 <= j < 3n) reads its k4 input bytes from the
 * segments in order, segment s giving s.words words at s.x + j * s.step (the microkernel advances each s.x by three
 * steps per triple: a table is good for one call), and writes its out_c channels at o + j * o_step + c * cstride.  Per triple the inputs are
 * sign-extended once into xe (per pair of taps, the three pixels' halfword pairs side by side); then, for every
 * block of two output channels, six accumulators start from the bias and take one SMLAD per pixel, channel and pair
 * of taps, and are requantised.  nd_kernels_conv_m7.S on Cortex-M7, C in nd_kernels_conv.c elsewhere.
 *
 * The packed stream w, per block of two output channels c, c+1 (ND_CONV3X2_BLOCK_WORDS(k4) words):
 *   6 bias words, in accumulator order: bias2[c], bias2[c+1], three times (one per pixel);
 *   k4 weight words: per 4 taps t..t+3, the halfword pairs (2w[c][t], 2w[c][t+2]), (2w[c+1][t], 2w[c+1][t+2]), then
 *     (2w[c][t+1], 2w[c][t+3]), (2w[c+1][t+1], 2w[c+1][t+3]), the order SXTB16 extends input words in;
 *   6 requantisation words: {mult, round, rsh} of c, then of c+1, where round = 2^(rsh-1) + (zp << rsh), zp the
 *     output zero point plus 128 when the op has a table (the requantised value then indexes it directly); c+1's
 *     rsh word has bit 31 set when another block follows (the loop's test; a register shift reads the low byte).
 * Requantisation: t = ((2 acc * mult + 2^31) >> 32) + round, minus 1 for a negative accumulator, then >> rsh: the
 * high multiply as SMMLAR, and RoundingDivideByPOT's tie-break by the accumulator's sign, which is the sign of the
 * high product for mult >= 0.  Then USAT to [0, 255] and the table, or SSAT to int8. */
typedef struct {
    const int8_t *x;
    int32_t step, words;
} nd_conv3x2_seg_t;

typedef struct {
    nd_conv3x2_seg_t *segs, *segs_end;
    int8_t *o;
    int32_t o_step;
    int32_t n;
    uint32_t *xe; /* scratch: 3 * k4 halfwords, word aligned */
    const int32_t *w, *w_end;
    int32_t k4;
    const uint8_t *lut; /* NULL: no table */
    int32_t cstride;    /* 1 or 2 */
    int32_t w8;         /* 1: int8 weights (see below) */
} nd_conv3x2_args_t;

/* With int8 weights (generate --weights-format int8, half the flash) a block's k4 weight words become k4 / 2: per 4
 * taps t..t+3, channel c's four taps in one word, then channel c+1's (SXTB16 extends them in the loop), and the
 * accumulator's doubling moves from the weights to the extended inputs. */
#define ND_CONV3X2_BLOCK_WORDS(k4, w8) (12 + ((w8) ? (k4) / 2 : (k4)))
#define ND_CONV3X2_MAX_SEGMENTS 4 /* kernel rows read straight from the map (up to 3), plus one of their tails */

void nd_conv3x2_run(const nd_conv3x2_args_t *a);
/* nd_kernels_dwconv.c; ND_KERNEL_DWCONV3X3_PAIRS (stride 1): per channel c, ND_DW_PAIRS_WORDS words of its stream wq:
 * for each
 * kernel row the tap pairs (2w0, 2w1) and (2w1, 2w2) as halfword pairs, then bias2, mult, round, rsh (requantisation
 * as nd_conv3x2_run's, round including 128 when the op has a table). */
#define ND_DW_PAIRS_WORDS 10

/* The stride-1 depthwise pairs microkernel: one output row of every channel (nd_kernels_dwconv_m7.S on Cortex-M7, C
 * in nd_kernels_dwconv.c elsewhere).  Channel c reads its ring rows at r0/r1/r2 + c * plane bytes (words of tap pairs
 * from the first window's first column), its constants at q + c * ND_DW_PAIRS_WORDS, and writes n (even) outputs at
 * o + c + x * o_step, two per step, through the table lut when there is one. */
typedef struct {
    const uint32_t *r0, *r1, *r2;
    int32_t plane;
    const int32_t *q;
    int8_t *o;
    int32_t o_step;
    int32_t n;
    int32_t channels;
    const uint8_t *lut; /* NULL: no table */
} nd_dw_pairs_args_t;

void nd_dw_pairs_s1_run(const nd_dw_pairs_args_t *a);
void nd_dwconv3x3_pairs_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch);
int32_t nd_dwconv3x3_pairs_buffer_size(const nd_conv_params_t *p);

/* ND_KERNEL_DWCONV3X3_SMLA: per block of 4 channels, ND_DW4_GROUP_WORDS words of the stream wq: the 4 channels' bias2,
 * then per kernel row the taps 1, 2, 0 (that order), each as (2w c0, 2w c2), (2w c1, 2w c3), then {mult, round, rsh}
 * of each channel (requantisation as nd_conv3x2_run's). */
#define ND_DW4_GROUP_WORDS 34
void nd_dwconv3x3_smla_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch);
int32_t nd_dwconv3x3_smla_buffer_size(const nd_conv_params_t *p);

/* Its microkernel: n windows, the first's top-left tap at win (channel 0), rows `row` bytes apart, taps ps apart,
 * windows step apart; every channel of window j to o + j * o_step (nd_kernels_dwconv_m7.S on Cortex-M7, without a
 * table; C in nd_kernels_dwconv.c elsewhere). */
typedef struct {
    const int8_t *win;
    int32_t row, ps, step;
    const int32_t *w;
    int8_t *o;
    int32_t o_step;
    int32_t n;
    int32_t channels;
    const uint8_t *lut;
} nd_dw4_args_t;

void nd_dw4_run(const nd_dw4_args_t *a);

/* nd_kernels_eltwise.c */
void nd_maxpool_rows_s8x4(const nd_pool_params_t *p, const int8_t *in, int ring_rows, int py0, int py1, int8_t *out);
void nd_add_smmulr_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void nd_resize_add_smmulr_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x, int8_t *out,
                             void *scratch);
void nd_copy_interleave2_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst);
void nd_copy_spread2_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst);

#endif /* !ND_KERNELS_REFERENCE_ONLY */

#endif /* ND_KERNELS_FAST_H */
