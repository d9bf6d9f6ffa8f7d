/* Fast 3x3 DEPTHWISE_CONV_2D: ND_KERNEL_DWCONV3X3_SMLA (any stride; four channels per step, straight from the map)
 * and ND_KERNEL_DWCONV3X3_PAIRS (stride 1; tap pairs from channel-planar rows).  The generator guarantees channels a
 * multiple of 4, depth multiplier 1, no dilation.  Same bytes as nd_dwconv_ref_s8. */
#include "nd_kernels_fast.h"

#if !ND_KERNELS_REFERENCE_ONLY

/* scratch: one 3x3 window of c-byte pixels, for the border windows */
ND_FAST_CODE int32_t nd_dwconv3x3_smla_buffer_size(const nd_conv_params_t *p)
{
    return 9 * p->out.c;
}

/* A border window as a 3x3 patch of c-byte pixels, the input zero point standing in for the taps outside the map:
 * those then contribute exactly 0 (the bias has the input offset folded in), like the taps TFLM skips.  Word loops
 * (c a multiple of 4): the C library's memcpy and memset go byte by byte. */
ND_FAST_CODE ND_NO_LIBCALLS static void nd_dw_border_patch(const nd_conv_params_t *p, const int8_t *in, int iy, int ix,
                                                           int8_t *patch)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    const uint32_t zp4 = (uint8_t)(-p->in_offset) * 0x01010101u;
    for (int t = 0; t < 9; ++t) {
        const int y = iy + t / 3, x = ix + t % 3;
        int8_t *d = patch + t * c_n;
        if (y < 0 || y >= p->in.h || x < 0 || x >= p->in.w) {
            for (int c = 0; c < c_n; c += 4) {
                memcpy(d + c, &zp4, 4);
            }
        } else {
            const int8_t *s = in + (int32_t)y * row + x * ps;
            for (int c = 0; c < c_n; c += 4) {
                const uint32_t v = nd_ld32(s + c);
                memcpy(d + c, &v, 4);
            }
        }
    }
}

/* One tap of four channels: the four input bytes split into halfword pairs (c0,c2) and (c1,c3) by SXTB16, multiplied
 * lane by lane (SMLABB/SMLATT) with the stream's weight pairs. */
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

/* The microkernel in C (the Cortex-M7 assembly in nd_kernels_dwconv_m7.S serves ops without a table there). */
ND_FAST_CODE static void nd_dw4_run_c(const nd_dw4_args_t *a)
{
    const int32_t ps = a->ps;
    const int8_t *win = a->win;
    int8_t *o = a->o;
    for (int32_t n = 0; n < a->n; ++n, win += a->step, o += a->o_step) {
        const int8_t *r0 = win, *r1 = win + a->row, *r2 = win + 2 * a->row;
        const uint32_t *w = (const uint32_t *)(const void *)a->w;
        for (int32_t c = 0; c < a->channels; c += 4, r0 += 4, r1 += 4, r2 += 4) {
            int32_t a0 = (int32_t)w[0], a1 = (int32_t)w[1], a2 = (int32_t)w[2], a3 = (int32_t)w[3];
            w += 4;
            ND_DW4_TAP(nd_ld32(r0 + ps), w, a0, a1, a2, a3); /* per row: the taps 1, 2, then 0 (see the stream) */
            ND_DW4_TAP(nd_ld32(r0 + 2 * ps), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r0), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r1 + ps), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r1 + 2 * ps), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r1), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r2 + ps), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r2 + 2 * ps), w, a0, a1, a2, a3);
            ND_DW4_TAP(nd_ld32(r2), w, a0, a1, a2, a3);
            const int32_t *q = (const int32_t *)(const void *)w;
            o[c] = nd_requant_q(a0, q, a->lut);
            o[c + 1] = nd_requant_q(a1, q + 3, a->lut);
            o[c + 2] = nd_requant_q(a2, q + 6, a->lut);
            o[c + 3] = nd_requant_q(a3, q + 9, a->lut);
            w += 12;
        }
    }
}

#if !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__))
ND_FAST_CODE void nd_dw4_run(const nd_dw4_args_t *a)
{
    nd_dw4_run_c(a);
}
#endif

ND_FAST_CODE void nd_dwconv3x3_smla_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    int8_t *patch = (int8_t *)scratch;
    nd_dw4_args_t a = {NULL,           row, ps,  (int32_t)p->sw * ps,    p->wq, NULL,
                       p->out.pstride, 0,   c_n, (const uint8_t *)p->lut};
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
                a.win = in + (int32_t)iy * row + ix * ps, a.row = row, a.ps = ps, a.step = (int32_t)p->sw * ps;
                a.o = o, a.o_step = p->out.pstride, a.n = n;
                (a.lut != NULL ? nd_dw4_run_c : nd_dw4_run)(&a);
                ox += n - 1;
                o += (int32_t)(n - 1) * p->out.pstride;
                continue;
            }
            nd_dw_border_patch(p, in, iy, ix, patch);
            a.win = patch, a.row = 3 * c_n, a.ps = c_n, a.step = 0, a.o = o, a.o_step = 0, a.n = 1;
            (a.lut != NULL ? nd_dw4_run_c : nd_dw4_run)(&a);
        }
    }
}

/* ND_KERNEL_DWCONV3X3_PAIRS (generator: 3x3, depth multiplier 1, no dilation, channels a multiple of 4, stride 1).  Input rows are sign-extended once into a ring of three rows in scratch, channel-planar: per
 * channel, the row's values as halfwords with the zero point in the padding columns, so two horizontally adjacent
 * taps are one word and one SMLAD.  A fourth row of zero points stands for rows outside the map (the input offset is
 * folded into the bias: zero points contribute exactly 0, as the taps TFLM skips).  Two outputs at a time from two
 * words per row: x0 w0 + x1 w1 (SMLAD) + x2 w2, and x1 w0 + x2 w1 + x3 w2 (SMLAD). */

/* halfwords per ring row and channel: every tap the output loop reads, rounded up to whole words */
ND_FAST_CODE static int32_t nd_dw_pairs_row(const nd_conv_params_t *p)
{
    const int32_t last = ((p->out.w + 1) & ~1) + 3; /* outputs in pairs: one past the last pair's taps, and one */
    const int32_t n = last > p->pad_l + p->in.w ? last : p->pad_l + p->in.w;
    return (n + 1) & ~1;
}

ND_FAST_CODE int32_t nd_dwconv3x3_pairs_buffer_size(const nd_conv_params_t *p)
{
    return 4 * p->out.c * nd_dw_pairs_row(p) * 2;
}

/* Input row y into a ring row: channel c's value of pixel x at halfword c * n + pad_l + x.  Two pixels of four
 * channels at a time where the halfwords pair up into words (SXTB16, then PKHBT/PKHTB); single halfwords at the ends. */
ND_FAST_CODE ND_HOT static void nd_dw_pairs_extend(const nd_conv_params_t *p, const int8_t *in, int32_t y, int16_t *row,
                                                   int32_t n)
{
    const int32_t c_n = p->out.c, w = p->in.w, ps = p->in.pstride, pad_l = p->pad_l;
    const int8_t *s = in + y * w * ps;
    const int32_t x0 = pad_l & 1, x1 = x0 + (w - x0) / 2 * 2; /* pixels [x0, x1) pair up into words */
    for (int32_t x = 0; x < w; x += x >= x0 && x < x1 ? 2 : 1) {
        if (x < x0 || x >= x1) {
            int16_t *d = row + pad_l + x;
            for (int32_t c = 0; c < c_n; ++c, d += n) {
                *d = s[x * ps + c];
            }
            continue;
        }
        uint32_t *d = (uint32_t *)(void *)(row + pad_l + x); /* word aligned: pad_l + x is even */
        const int8_t *a = s + x * ps;
        const int32_t wn = n / 2; /* words per plane */
        for (int32_t c = 0; c < c_n; c += 4, d += 4 * wn) {
            const uint32_t va = nd_ld32(a + c), vb = nd_ld32(a + ps + c);
            const uint32_t ea = nd_sxtb16(va), eb = nd_sxtb16(vb), oa = nd_sxtb16_ror8(va), ob = nd_sxtb16_ror8(vb);
            d[0] = nd_pkhbt_lsl16(ea, eb);      /* channel c: pixels x, x + 1 */
            d[wn] = nd_pkhbt_lsl16(oa, ob);     /* c + 1 */
            d[2 * wn] = nd_pkhtb_asr16(eb, ea); /* c + 2 */
            d[3 * wn] = nd_pkhtb_asr16(ob, oa); /* c + 3 */
        }
    }
}

/* One output row of one channel: rows r0..r2 are the channel's three ring rows (words of tap pairs from the window's
 * first column), q its ND_DW_PAIRS_WORDS constants.  The weight pairs are reloaded per output (ND_LD2) rather than
 * held: that keeps the loop within the registers. */
ND_FAST_CODE ND_HOT static void nd_dw_pairs_channel(const int32_t *q, const uint32_t *r0, const uint32_t *r1,
                                                    const uint32_t *r2, int8_t *o, int32_t ops, int32_t ow,
                                                    const uint8_t *lut)
{
    const int32_t b = q[6];
    int32_t ox = 0;
    for (; ox + 1 < ow; ox += 2, o += 2 * ops) {
        uint32_t p0, p1, w01, w12;
        ND_LD2_POST(p0, p1, r0);
        ND_LD2(w01, w12, q, 0);
        int32_t a0 = nd_smlatb(w12, p1, nd_smlad(p0, w01, b)), a1 = nd_smlad(p1, w12, nd_smlabt(w01, p0, b));
        ND_LD2_POST(p0, p1, r1);
        ND_LD2(w01, w12, q, 8);
        a0 = nd_smlatb(w12, p1, nd_smlad(p0, w01, a0));
        a1 = nd_smlad(p1, w12, nd_smlabt(w01, p0, a1));
        ND_LD2_POST(p0, p1, r2);
        ND_LD2(w01, w12, q, 16);
        a0 = nd_smlatb(w12, p1, nd_smlad(p0, w01, a0));
        a1 = nd_smlad(p1, w12, nd_smlabt(w01, p0, a1));
        r0 -= 1, r1 -= 1, r2 -= 1; /* the next pair of outputs starts one word on */
        o[0] = nd_requant_q(a0, q + 7, lut);
        o[ops] = nd_requant_q(a1, q + 7, lut);
    }
    if (ox < ow) { /* an odd width's last output */
        int32_t a = nd_smlatb((uint32_t)q[1], r0[1], nd_smlad(r0[0], (uint32_t)q[0], b));
        a = nd_smlatb((uint32_t)q[3], r1[1], nd_smlad(r1[0], (uint32_t)q[2], a));
        a = nd_smlatb((uint32_t)q[5], r2[1], nd_smlad(r2[0], (uint32_t)q[4], a));
        o[0] = nd_requant_q(a, q + 7, lut);
    }
}

#if !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__))
/* The microkernel in C (nd_kernels_dwconv_m7.S is the Cortex-M7 one). */
ND_FAST_CODE void nd_dw_pairs_s1_run(const nd_dw_pairs_args_t *a)
{
    for (int32_t c = 0; c < a->channels; ++c) {
        const int32_t at = c * a->plane / 4; /* words */
        nd_dw_pairs_channel(a->q + c * ND_DW_PAIRS_WORDS, a->r0 + at, a->r1 + at, a->r2 + at, a->o + c, a->o_step, a->n,
                            a->lut);
    }
}
#endif

ND_FAST_CODE void nd_dwconv3x3_pairs_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
    const int32_t c_n = p->out.c, n = nd_dw_pairs_row(p), row = c_n * n, ops = p->out.pstride;
    int16_t *ring = (int16_t *)scratch, *const zp_row = ring + 3 * row;
    const int16_t zp = (int16_t)(-p->in_offset);
    /* the zero-point row (whole words: row is even), and the padding columns of the three ring rows (extension writes
     * only the map's columns) */
    const uint32_t zp2 = (uint16_t)zp * 0x00010001u;
    for (uint32_t *d = (uint32_t *)(void *)zp_row; d < (uint32_t *)(void *)(zp_row + row); ++d) {
        *d = zp2;
    }
    for (int16_t *plane = ring; plane < zp_row; plane += n) {
        for (int32_t x = 0; x < p->pad_l; ++x) {
            plane[x] = zp;
        }
        for (int32_t x = p->pad_l + p->in.w; x < n; ++x) {
            plane[x] = zp;
        }
    }
    int32_t next = 0; /* next input row to extend */
    for (int32_t oy = 0; oy < p->out.h; ++oy) {
        const int16_t *rows[3];
        for (int k = 0; k < 3; ++k) {
            const int32_t y = oy * p->sh - p->pad_t + k;
            if (y < 0 || y >= p->in.h) {
                rows[k] = zp_row;
                continue;
            }
            for (; next <= y; ++next) {
                nd_dw_pairs_extend(p, in, next, ring + (next % 3) * row, n);
            }
            rows[k] = ring + (y % 3) * row;
        }
        int8_t *o = out + oy * p->out.w * ops;
        const int32_t even = p->out.w & ~1; /* the outputs the microkernel takes */
        if (even > 0) {
            const nd_dw_pairs_args_t a = {(const uint32_t *)(const void *)rows[0],
                                          (const uint32_t *)(const void *)rows[1],
                                          (const uint32_t *)(const void *)rows[2],
                                          2 * n,
                                          p->wq,
                                          o,
                                          ops,
                                          even,
                                          c_n,
                                          (const uint8_t *)p->lut};
            nd_dw_pairs_s1_run(&a);
        }
        for (int32_t c = 0; c < c_n && even < p->out.w; ++c) { /* an odd width's last column */
            const int32_t at = c * n / 2 + even / 2;           /* words */
            nd_dw_pairs_channel(p->wq + c * ND_DW_PAIRS_WORDS, (const uint32_t *)(const void *)rows[0] + at,
                                (const uint32_t *)(const void *)rows[1] + at,
                                (const uint32_t *)(const void *)rows[2] + at, o + c + even * ops, ops, p->out.w - even,
                                (const uint8_t *)p->lut);
        }
    }
}

#else
typedef int nd_kernels_dwconv_reference_only; /* ISO C wants a declaration in every translation unit */
#endif
