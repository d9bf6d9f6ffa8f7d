/* Fast 3x3 DEPTHWISE_CONV_2D (ND_KERNEL_DWCONV3X3_SMLA; the generator guarantees channels a multiple of 4, depth
 * multiplier 1, no dilation): four channels per step.  Same bytes as nd_dwconv_ref_s8. */
#include "nd_kernels_fast.h"

#if !ND_KERNELS_REFERENCE_ONLY

/* scratch: one 3x3 window of c-byte pixels, for the border windows */
int32_t nd_dwconv3x3_smla_buffer_size(const nd_conv_params_t *p)
{
    return 9 * p->out.c;
}

/* A border window as a 3x3 patch of c-byte pixels, the input zero point standing in for the taps outside the map:
 * those then contribute exactly 0 (bias2 has the input offset folded in), like the taps TFLM skips. */
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

/* One tap of four channels: the four input bytes are split into halfword pairs (c0,c2) and (c1,c3) by SXTB16 and
 * multiplied lane by lane (SMLABB/SMLATT) with the generator's pre-extended weights: a load, two extends, a
 * doubleword load and four MACs. */
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

/* One output pixel: rows r0..r2 are where the window's rows start, their three taps ps apart (register-offset loads:
 * no per-tap pointers). */
static inline void nd_dw4_pixel(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t ps,
                                const nd_conv_params_t *p, int8_t *o, const int use_lut)
{
    const uint32_t *w = (const uint32_t *)(const void *)p->wdw;
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

/* n output pixels whose windows start step bytes apart (a run of interior pixels of one row, or one patch): one call
 * per run keeps the per-pixel set-up out of the call overhead. */
ND_HOT_DW static void nd_dw4_span(const int8_t *win, int32_t row, int32_t ps, int32_t step, int n,
                                  const nd_conv_params_t *p, int8_t *out, int32_t out_step, const int use_lut)
{
    for (; n > 0; --n, win += step, out += out_step) {
        nd_dw4_pixel(win, win + row, win + 2 * row, ps, p, out, use_lut);
    }
}

void nd_dwconv3x3_smla_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
    const int c_n = p->out.c, ps = p->in.pstride;
    const int32_t row = (int32_t)p->in.w * ps;
    const int use_lut = p->lut != NULL;
    int8_t *patch = (int8_t *)scratch;
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

#else
typedef int nd_kernels_dwconv_reference_only; /* ISO C wants a declaration in every translation unit */
#endif
