/* Fast CONV_2D (ND_KERNEL_CONV_3X2): output pixels go three at a time through the microkernel nd_conv3x2_run (see
 * nd_kernels_fast.h): an unpadded 1x1 conv reads its pixels in place, any other conv builds their K input bytes (kh
 * rows of kw * in_c, the zero point standing in for padding, zeros up to k4) in scratch first.  Same bytes as
 * nd_conv2d_rows_ref_s8. */
#include "nd_kernels_fast.h"

#if !ND_KERNELS_REFERENCE_ONLY

/* im2col patches built per microkernel call (triples) */
#define ND_CONV3X2_PATCH_TRIPLES 8

/* An unpadded 1x1 conv over channels that fill whole words reads its K inputs in place. */
ND_FAST_CODE static int nd_conv_direct(const nd_conv_params_t *p)
{
    return p->kh == 1 && p->kw == 1 && p->pad_t == 0 && p->pad_l == 0 && p->k4 == p->in.c;
}

/* scratch: the extended triple (3 * k4 halfwords), then, unless the conv reads its input in place, the patches of
 * border pixels and a tail word per pixel (see nd_conv_rows_direct) */
ND_FAST_CODE int32_t nd_conv2d_3x2_buffer_size(const nd_conv_params_t *p)
{
    return 6 * p->k4 + (nd_conv_direct(p) ? 0 : 3 * ND_CONV3X2_PATCH_TRIPLES * (p->k4 + 4));
}

/* The k4 input bytes of n output pixels (oy, ox0 + j) into d + j * k4, the zero point standing in for taps outside
 * the map.  Layout (the generator orders the weights the same way): each of the kh kernel rows holds n = kw * in_c
 * bytes; first the whole words of every row (4 * (n / 4) bytes each), then the rows' remaining n % 4 bytes, then
 * zeros up to k4.  An interior pixel of a dense map is then word copies and a few bytes. */
ND_FAST_CODE ND_NO_LIBCALLS static void nd_patches(const nd_conv_params_t *p, const int8_t *in, int oy, int ox0,
                                                   int count, int8_t *d)
{
    const int in_c = p->in.c, n = p->kw * in_c, nw = n / 4, nt = n % 4, kh = p->kh, k4 = p->k4;
    const int in_h = p->in.h, in_w = p->in.w, ips = p->in.pstride, dh = p->dh, dw = p->dw, kw = p->kw;
    const int8_t zp = (int8_t)(-p->in_offset);
    const int iy0 = oy * p->sh - p->pad_t;
    const int rows_inside = iy0 >= 0 && iy0 + (kh - 1) * dh < in_h;
    const int32_t row_step = (int32_t)dh * in_w * in_c;
    for (int j = 0; j < count; ++j, d += k4) {
        const int ix0 = (ox0 + j) * p->sw - p->pad_l;
        int8_t *w = d, *tail = d + 4 * kh * nw;
        if (rows_inside && ips == in_c && dw == 1 && ix0 >= 0 && ix0 + kw <= in_w) {
            const int8_t *s = in + ((int32_t)iy0 * in_w + ix0) * in_c;
            for (int ky = 0; ky < kh; ++ky, s += row_step) {
                for (int i = 0; i < nw; ++i, w += 4) {
                    const uint32_t v = nd_ld32(s + 4 * i);
                    memcpy(w, &v, 4);
                }
                for (int t = 0; t < nt; ++t) {
                    *tail++ = s[4 * nw + t];
                }
            }
        } else {
            for (int ky = 0; ky < kh; ++ky) {
                const int iy = iy0 + ky * dh;
                for (int e = 0; e < n; ++e) {
                    const int ix = ix0 + (e / in_c) * dw;
                    int8_t v = zp;
                    if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                        v = in[((int32_t)iy * in_w + ix) * ips + e % in_c];
                    }
                    if (e < 4 * nw) {
                        *w++ = v;
                    } else {
                        *tail++ = v;
                    }
                }
            }
        }
        while (tail < d + k4) {
            *tail++ = 0;
        }
    }
}

/* n pixels whose inputs are `count` segments (pixel j's words of segment s at s.x + j * s.step), outputs o_step bytes
 * apart: the whole triples in one run, then each pixel left over as a triple of itself (steps 0: it is computed three
 * times and written three times to the same place). */
ND_FAST_CODE ND_NO_LIBCALLS static void nd_conv3x2_pixels(nd_conv3x2_args_t *a, const nd_conv3x2_seg_t *seg, int count,
                                                          int8_t *o, int32_t o_step, int32_t n)
{
    nd_conv3x2_seg_t run[ND_CONV3X2_MAX_SEGMENTS];
    a->segs = run, a->segs_end = run + count;
    a->o = o, a->o_step = o_step, a->n = n / 3;
    if (a->n > 0) {
        for (int s = 0; s < count; ++s) { /* a loop, not memcpy: at most four segments */
            run[s] = seg[s];
        }
        nd_conv3x2_run(a);
    }
    for (int32_t j = n - n % 3; j < n; ++j) {
        for (int s = 0; s < count; ++s) {
            run[s].x = seg[s].x + j * seg[s].step, run[s].step = 0, run[s].words = seg[s].words;
        }
        a->o = o + j * o_step, a->o_step = 0, a->n = 1;
        nd_conv3x2_run(a);
    }
}

/* An unpadded window in a dense map reads straight from it: the kh kernel rows' whole words as kh segments, and
 * their remaining bytes (at most one word of them) as a word per pixel in `tails`, the last segment. */
ND_FAST_CODE static int nd_conv_rows_direct(const nd_conv_params_t *p)
{
    const int n = p->kw * p->in.c;
    return p->in.pstride == p->in.c && p->dw == 1 && p->kh * (n % 4) <= 4 && p->kh < ND_CONV3X2_MAX_SEGMENTS;
}

/* tails[j]: the m (1..4) bytes at x + j * step + at[i], byte i of the word; the rest zero (read from at[0] and masked,
 * so that one loop serves every m; NanoDet's stem: 3 bytes a pixel, one per kernel row). */
ND_FAST_CODE ND_HOT static void nd_gather_tails(const int8_t *x, int32_t step, const int32_t *at, int m, int n,
                                                uint32_t *tails)
{
    const uint8_t *s = (const uint8_t *)x;
    const int32_t a0 = at[0], a1 = m > 1 ? at[1] : a0, a2 = m > 2 ? at[2] : a0, a3 = m > 3 ? at[3] : a0;
    const uint32_t mask = m > 3 ? 0xFFFFFFFFu : (1u << (8 * m)) - 1u;
    for (int j = 0; j < n; ++j, s += step) {
        tails[j] = (s[a0] | (uint32_t)s[a1] << 8 | (uint32_t)s[a2] << 16 | (uint32_t)s[a3] << 24) & mask;
    }
}

/* Pixels [ox0, ox0 + n) of output row oy whose windows lie inside the map, through nd_conv_rows_direct's segments. */
ND_FAST_CODE static void nd_conv3x2_window_run(nd_conv3x2_args_t *a, const nd_conv_params_t *p, const int8_t *in,
                                               int oy, int ox0, int n, int8_t *o, uint32_t *tails)
{
    nd_conv3x2_seg_t seg[ND_CONV3X2_MAX_SEGMENTS];
    const int in_c = p->in.c, row_n = p->kw * in_c, nw = row_n / 4, nt = row_n % 4;
    const int32_t step = p->sw * in_c, row_step = (int32_t)p->dh * p->in.w * in_c;
    const int8_t *x = in + ((int32_t)(oy * p->sh - p->pad_t) * p->in.w + ox0 * p->sw - p->pad_l) * in_c;
    int count = 0;
    for (int ky = 0; ky < p->kh && nw > 0; ++ky) {
        seg[count].x = x + ky * row_step, seg[count].step = step, seg[count].words = nw;
        ++count;
    }
    if (nt > 0) {
        int32_t at[4]; /* the tail bytes' offsets in a window, kernel row by kernel row */
        int m = 0;
        for (int ky = 0; ky < p->kh; ++ky) {
            for (int t = 0; t < nt; ++t) {
                at[m++] = ky * row_step + 4 * nw + t;
            }
        }
        nd_gather_tails(x, step, at, m, n, tails);
        seg[count].x = (const int8_t *)tails, seg[count].step = 4, seg[count].words = 1;
        ++count;
    }
    nd_conv3x2_pixels(a, seg, count, o, p->out.pstride, n);
}

ND_FAST_CODE void nd_conv2d_rows_3x2_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1,
                                        int ring_rows, void *scratch)
{
    nd_conv3x2_args_t a;
    a.xe = (uint32_t *)scratch;
    a.w = p->wq;
    a.w_end = p->wq + (p->out.c / 2) * ND_CONV3X2_BLOCK_WORDS(p->k4, p->w8);
    a.k4 = p->k4;
    a.lut = (const uint8_t *)p->lut;
    a.cstride = p->out.cstride;
    a.w8 = p->w8;
    const int32_t ips = p->in.pstride, ops = p->out.pstride, out_row = p->out.w * ops;
    if (nd_conv_direct(p)) {
        nd_conv3x2_seg_t seg = {in + (int32_t)oy0 * p->in.w * ips, ips, p->k4 / 4};
        if (p->sh == 1 && p->sw == 1 && ring_rows == p->out.h) {
            /* rows follow each other in both maps: one run over every pixel */
            nd_conv3x2_pixels(&a, &seg, 1, out + (int32_t)oy0 * out_row, ops, (int32_t)(oy1 - oy0) * p->out.w);
            return;
        }
        for (int oy = oy0; oy < oy1; ++oy) {
            seg.x = in + (int32_t)oy * p->sh * p->in.w * ips, seg.step = p->sw * ips;
            nd_conv3x2_pixels(&a, &seg, 1, out + (int32_t)(oy % ring_rows) * out_row, ops, p->out.w);
        }
        return;
    }
    int8_t *patches = (int8_t *)scratch + 6 * p->k4;
    uint32_t *tails = (uint32_t *)(void *)(patches + 3 * ND_CONV3X2_PATCH_TRIPLES * p->k4);
    const int chunk = 3 * ND_CONV3X2_PATCH_TRIPLES, direct = nd_conv_rows_direct(p);
    /* output columns whose windows lie inside the map horizontally: [x_lo, x_hi) */
    const int span = p->in.w - p->kw + p->pad_l, x_lo = (p->pad_l + p->sw - 1) / p->sw;
    const int x_hi = span < 0 ? 0 : span / p->sw + 1 < p->out.w ? span / p->sw + 1 : p->out.w;
    for (int oy = oy0; oy < oy1; ++oy) {
        int8_t *o = out + (int32_t)(oy % ring_rows) * out_row;
        const int iy0 = oy * p->sh - p->pad_t;
        const int rows_in = direct && iy0 >= 0 && iy0 + (p->kh - 1) * p->dh < p->in.h && x_lo < x_hi;
        for (int ox0 = 0; ox0 < p->out.w;) {
            if (rows_in && ox0 >= x_lo && ox0 < x_hi) {
                const int n = x_hi - ox0 < chunk ? x_hi - ox0 : chunk;
                nd_conv3x2_window_run(&a, p, in, oy, ox0, n, o + (int32_t)ox0 * ops, tails);
                ox0 += n;
                continue;
            }
            const int end = rows_in && ox0 < x_lo ? x_lo : p->out.w;
            const int n = end - ox0 < chunk ? end - ox0 : chunk;
            nd_patches(p, in, oy, ox0, n, patches);
            const nd_conv3x2_seg_t seg = {patches, p->k4, p->k4 / 4};
            nd_conv3x2_pixels(&a, &seg, 1, o + (int32_t)ox0 * ops, ops, n);
            ox0 += n;
        }
    }
}

#if !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__))
/* The microkernel in C (nd_kernels_conv_m7.S is the Cortex-M7 one): the same arithmetic, step for step. */

ND_FAST_CODE void nd_conv3x2_run(const nd_conv3x2_args_t *a)
{
    const int32_t k4 = a->k4, cs = a->cstride, os = a->o_step;
    for (int32_t t = 0; t < a->n; ++t) {
        uint32_t *xe = a->xe;
        for (const nd_conv3x2_seg_t *s = a->segs; s < a->segs_end; ++s) {
            const int8_t *x = s->x + 3 * t * s->step;
            for (int32_t k = 0; k < 4 * s->words; k += 4, xe += 6) {
                for (int j = 0; j < 3; ++j) {
                    const uint32_t v = nd_ld32(x + j * s->step + k), e = nd_sxtb16(v), o = nd_sxtb16_ror8(v);
                    /* int8 weights: the doubling on the inputs, halfword by halfword (SADD16) */
                    xe[j] = a->w8 ? ((e << 1) & 0xFFFEu) | ((e & 0x7FFF0000u) << 1) : e;
                    xe[3 + j] = a->w8 ? ((o << 1) & 0xFFFEu) | ((o & 0x7FFF0000u) << 1) : o;
                }
            }
        }
        int8_t *o = a->o + 3 * t * os;
        for (const int32_t *w = a->w; w < a->w_end; o += 2 * cs) {
            int32_t acc[6];
            memcpy(acc, w, sizeof acc);
            w += 6;
            const uint32_t *xp = a->xe;
            for (int32_t h = 0; h < k4 / 2; ++h, xp += 3) {
                uint32_t wc = (uint32_t)w[0], wc1 = (uint32_t)w[1];
                if (a->w8) { /* the group's two words, taps (t, t+2) then (t+1, t+3) */
                    wc = h % 2 ? nd_sxtb16_ror8(wc) : nd_sxtb16(wc);
                    wc1 = h % 2 ? nd_sxtb16_ror8(wc1) : nd_sxtb16(wc1);
                }
                w += a->w8 ? 2 * (h % 2) : 2;
                for (int j = 0; j < 3; ++j) {
                    acc[2 * j] = nd_smlad(xp[j], wc, acc[2 * j]);
                    acc[2 * j + 1] = nd_smlad(xp[j], wc1, acc[2 * j + 1]);
                }
            }
            for (int c = 0; c < 2; ++c, w += 3) {
                for (int j = 0; j < 3; ++j) {
                    o[j * os + c * cs] = nd_requant_q(acc[2 * j + c], w, a->lut);
                }
            }
        }
    }
}
#endif

#else
typedef int nd_kernels_conv_reference_only; /* ISO C wants a declaration in every translation unit */
#endif
