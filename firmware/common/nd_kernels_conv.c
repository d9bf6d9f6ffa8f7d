/* Fast CONV_2D (ND_KERNEL_CONV_SMLAD): per output pixel, its K = kh*kw*in_c inputs (the pixel itself for an unpadded
 * 1x1 conv, else a patch gathered with the zero point standing in for padding) are sign-extended once into halfword
 * pairs; the inner loop is then doubleword loads and SMLADs against the generator's pre-extended, interleaved weights,
 * four output channels at a time.  Same bytes as nd_conv2d_rows_ref_s8. */
#include "nd_kernels_fast.h"

#if !ND_KERNELS_REFERENCE_ONLY

/* the copies here are a few bytes: GCC's memcpy/memset idiom calls would cost more than the copies */
#if defined(__GNUC__) && !defined(__clang__)
#define ND_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define ND_NO_LIBCALLS
#endif

/* An unpadded 1x1 conv over channels that fill whole words reads its K inputs in place. */
static int nd_conv_direct(const nd_conv_params_t *p)
{
    return p->kh == 1 && p->kw == 1 && p->pad_t == 0 && p->pad_l == 0 && p->k4 == p->in.c;
}

/* scratch: the extended pixel (k4 halfwords) and, unless the conv reads its input in place, the k4-byte patch */
int32_t nd_conv2d_smlad_buffer_size(const nd_conv_params_t *p)
{
    return 2 * p->k4 + (nd_conv_direct(p) ? 0 : p->k4);
}

/* The K input values of output pixel (oy, ox), contiguous: in place for a direct conv, else gathered into buf. */
ND_NO_LIBCALLS static const int8_t *nd_patch(const nd_conv_params_t *p, const int8_t *in, int oy, int ox, int8_t *buf)
{
    const int in_c = p->in.c;
    if (buf == NULL) {
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
        const int iy = iy0 + ky * p->dh;
        for (int kx = 0; kx < p->kw; ++kx) {
            const int ix = ix0 + kx * p->dw;
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

/* Four output channels' dot products with the extended pixel xe[0, xend): accumulators a0..a3 start at the bias. */
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

/* Every output channel of one pixel; every constant passed in, so the loop reloads nothing through p. */
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

/* The pixel's K inputs extended into halfword pairs (even and odd bytes of each word), then its outputs. */
ND_HOT static void nd_conv_pixel(const nd_conv_params_t *p, const int8_t *x, uint32_t *xe, int8_t *o)
{
    const int k4 = p->k4;
    for (int k = 0; k < k4; k += 4) {
        const uint32_t v = nd_ld32(x + k);
        xe[k / 2] = nd_sxtb16(v);
        xe[k / 2 + 1] = nd_sxtb16_ror8(v);
    }
    nd_conv_pixel_o(xe, xe + k4 / 2, (const uint32_t *)(const void *)p->wx, p->bias2, p->rqo, p->lut, o, o + p->out.c);
}

void nd_conv2d_rows_smlad_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1, int ring_rows,
                             void *scratch)
{
    uint32_t *xe = (uint32_t *)scratch;
    int8_t *patch = nd_conv_direct(p) ? NULL : (int8_t *)scratch + 2 * p->k4;
    for (int oy = oy0; oy < oy1; ++oy) {
        int8_t *o = out + (int32_t)(oy % ring_rows) * p->out.w * p->out.pstride;
        for (int ox = 0; ox < p->out.w; ++ox, o += p->out.pstride) {
            nd_conv_pixel(p, nd_patch(p, in, oy, ox, patch), xe, o);
        }
    }
}

#else
typedef int nd_kernels_conv_reference_only; /* ISO C wants a declaration in every translation unit */
#endif
