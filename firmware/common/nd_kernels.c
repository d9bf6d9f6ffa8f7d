/* Portable reference int8 kernels of the AOT engine: the semantics every faster path must reproduce. */
#include "nd_kernels.h"

#include <string.h>

int32_t nd_srdhm(int32_t a, int32_t b)
{
    /* The one product that does not fit: INT32_MIN * INT32_MIN saturates, as in gemmlowp. */
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C99 division truncates toward zero, like C++ */
}

int32_t nd_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t nd_mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    /* TFLM multiplies by (1 << left); wrap like the hardware instead of invoking signed overflow. */
    return nd_rdbpot(nd_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int8_t nd_store(int32_t acc, const nd_conv_params_t *p, int oc)
{
    acc = nd_mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
    if (acc < p->act_min) {
        acc = p->act_min;
    }
    if (acc > p->act_max) {
        acc = p->act_max;
    }
    return p->lut ? p->lut[acc + 128] : (int8_t)acc;
}

static void nd_conv2d_ref_row(const nd_conv_params_t *p, const int8_t *in, int8_t *out_row, int oy)
{
    const int in_c = p->in.c, out_c = p->out.c;
    for (int ox = 0; ox < p->out.w; ++ox) {
        const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
        int8_t *o = out_row + (int32_t)ox * p->out.pstride;
        for (int oc = 0; oc < out_c; ++oc) {
            int32_t acc = p->bias ? p->bias[oc] : 0;
            const int8_t *w = p->weights + (int32_t)oc * p->kh * p->kw * in_c;
            for (int ky = 0; ky < p->kh; ++ky) {
                const int iy = iy0 + ky * p->dh;
                if (iy < 0 || iy >= p->in.h) {
                    continue; /* outside: contributes (zero point + in_offset) * w = 0 */
                }
                for (int kx = 0; kx < p->kw; ++kx) {
                    const int ix = ix0 + kx * p->dw;
                    if (ix < 0 || ix >= p->in.w) {
                        continue;
                    }
                    const int8_t *x = in + ((int32_t)iy * p->in.w + ix) * p->in.pstride;
                    const int8_t *wk = w + (ky * p->kw + kx) * in_c;
                    for (int ic = 0; ic < in_c; ++ic) {
                        acc += (int32_t)wk[ic] * ((int32_t)x[ic] + p->in_offset);
                    }
                }
            }
            o[oc] = nd_store(acc, p, oc);
        }
    }
}

void nd_conv2d_row_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out_row, int oy)
{
    if (nd_conv2d_fast_ok(p)) {
        nd_conv2d_fast_row_s8(p, in, out_row, oy);
    } else {
        nd_conv2d_ref_row(p, in, out_row, oy);
    }
}

void nd_conv2d_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out)
{
    for (int oy = 0; oy < p->out.h; ++oy) {
        nd_conv2d_row_s8(p, in, out + (int32_t)oy * p->out.w * p->out.pstride, oy);
    }
}

void nd_conv_pool_s8(const nd_conv_pool_params_t *p, const int8_t *in, int8_t *out, int8_t *ring)
{
    const nd_pool_params_t *q = &p->pool;
    const int32_t row_bytes = (int32_t)p->conv.out.w * p->conv.out.pstride;
    int next = 0; /* next conv row to compute */
    for (int py = 0; py < q->out.h; ++py) {
        const int y0 = py * q->sh - q->pad_t;
        const int y_end = y0 + q->kh < p->conv.out.h ? y0 + q->kh : p->conv.out.h;
        for (; next < y_end; ++next) {
            nd_conv2d_row_s8(&p->conv, in, ring + (next % q->kh) * row_bytes, next);
        }
        if ((q->out.c & 3) == 0 && q->kh <= 8) {
            const int8_t *rows[8];
            for (int ky = 0; ky < q->kh; ++ky) {
                const int y = y0 + ky;
                rows[ky] = (y < 0 || y >= q->in.h) ? NULL : ring + (y % q->kh) * row_bytes;
            }
            nd_maxpool_row_fast_s8(q, rows, out + (int32_t)py * q->out.w * q->out.pstride);
            continue;
        }
        for (int px = 0; px < q->out.w; ++px) {
            const int x0 = px * q->sw - q->pad_l;
            int8_t *o = out + ((int32_t)py * q->out.w + px) * q->out.pstride;
            for (int c = 0; c < q->out.c; ++c) {
                int32_t m = -128;
                int any_pad = 0;
                for (int ky = 0; ky < q->kh; ++ky) {
                    const int y = y0 + ky;
                    for (int kx = 0; kx < q->kw; ++kx) {
                        const int x = x0 + kx;
                        if (y < 0 || y >= q->in.h || x < 0 || x >= q->in.w) {
                            any_pad = 1;
                            continue;
                        }
                        const int32_t v = ring[(y % q->kh) * row_bytes + (int32_t)x * p->conv.out.pstride + c];
                        m = v > m ? v : m;
                    }
                }
                if (any_pad && q->pad_mode == 1 && q->pad_value > m) {
                    m = q->pad_value;
                }
                m = m < q->act_min ? q->act_min : m;
                m = m > q->act_max ? q->act_max : m;
                o[c] = (int8_t)m;
            }
        }
    }
}

void nd_dwconv_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out)
{
    if (p->wdw4 != NULL) {
        nd_dwconv3x3_simd_s8(p, in, out);
        return;
    }
    if (nd_dwconv_fast_ok(p)) {
        nd_dwconv3x3_fast_s8(p, in, out);
        return;
    }
    const int in_c = p->in.c, out_c = p->out.c, dm = p->depth_multiplier;
    for (int oy = 0; oy < p->out.h; ++oy) {
        for (int ox = 0; ox < p->out.w; ++ox) {
            const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
            int8_t *o = out + ((int32_t)oy * p->out.w + ox) * p->out.pstride;
            for (int ic = 0; ic < in_c; ++ic) {
                for (int m = 0; m < dm; ++m) {
                    const int oc = ic * dm + m;
                    int32_t acc = p->bias ? p->bias[oc] : 0;
                    for (int ky = 0; ky < p->kh; ++ky) {
                        const int iy = iy0 + ky * p->dh;
                        if (iy < 0 || iy >= p->in.h) {
                            continue;
                        }
                        for (int kx = 0; kx < p->kw; ++kx) {
                            const int ix = ix0 + kx * p->dw;
                            if (ix < 0 || ix >= p->in.w) {
                                continue;
                            }
                            const int32_t x = in[((int32_t)iy * p->in.w + ix) * p->in.pstride + ic];
                            acc += (int32_t)p->weights[(ky * p->kw + kx) * out_c + oc] * (x + p->in_offset);
                        }
                    }
                    o[oc] = nd_store(acc, p, oc);
                }
            }
        }
    }
}

void nd_maxpool_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out)
{
    if ((p->out.c & 3) == 0) {
        nd_maxpool_fast_s8(p, in, out);
        return;
    }
    for (int oy = 0; oy < p->out.h; ++oy) {
        for (int ox = 0; ox < p->out.w; ++ox) {
            const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
            int8_t *o = out + ((int32_t)oy * p->out.w + ox) * p->out.pstride;
            for (int c = 0; c < p->out.c; ++c) {
                int32_t m = -128;
                int any_pad = 0;
                for (int ky = 0; ky < p->kh; ++ky) {
                    const int iy = iy0 + ky;
                    for (int kx = 0; kx < p->kw; ++kx) {
                        const int ix = ix0 + kx;
                        if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
                            any_pad = 1;
                            continue;
                        }
                        const int32_t v = in[((int32_t)iy * p->in.w + ix) * p->in.pstride + c];
                        m = v > m ? v : m;
                    }
                }
                if (any_pad && p->pad_mode == 1 && p->pad_value > m) {
                    m = p->pad_value;
                }
                m = m < p->act_min ? p->act_min : m;
                m = m > p->act_max ? p->act_max : m;
                o[c] = (int8_t)m;
            }
        }
    }
}

void nd_add_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    /* The output multiplier is positive, so SaturatingRoundingDoublingHighMul is (x*m + 2^30) >> 31 (see
     * nd_kernels_fast.c); RoundingDivideByPOT keeps its exact form. */
    if (nd_add_fast_ok(p)) {
        nd_add_fast_s8(p, a, b, out);
        return;
    }
    const int e = -p->shift;
    const int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u);
    const int32_t n = (int32_t)p->out.h * p->out.w, c_n = p->out.c;
    const int32_t *t1 = p->t1 + 128, *t2 = p->t2 + 128;
    const int32_t mult = p->mult, off = p->out_offset, lo = p->act_min, hi = p->act_max;
    const int32_t sa = p->a.pstride, sb = p->b.pstride, so = p->out.pstride;
    if (e >= 1 && sa == c_n && sb == c_n && so == c_n) {
        /* |sum| < 2^30 (each table term is at most 255 * 2^20 scaled by a multiplier < 1), so the short
         * rounding form (h + 2^(e-1) - (h < 0)) >> e equals RoundingDivideByPOT here */
        const int32_t round = (int32_t)1 << (e - 1);
        for (int32_t i = 0; i < n * c_n; ++i) {
            const int32_t sum = t1[a[i]] + t2[b[i]];
            const int32_t h = (int32_t)(((int64_t)sum * mult + ((int64_t)1 << 30)) >> 31);
            int32_t v = ((h + round - (int32_t)((uint32_t)h >> 31)) >> e) + off;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            out[i] = (int8_t)v;
        }
        return;
    }
    for (int32_t pix = 0; pix < n; ++pix) {
        const int8_t *pa = a + pix * sa, *pb = b + pix * sb;
        int8_t *po = out + pix * so;
        for (int32_t c = 0; c < c_n; ++c) {
            const int32_t sum = t1[pa[c]] + t2[pb[c]];
            const int32_t h = (int32_t)(((int64_t)sum * mult + ((int64_t)1 << 30)) >> 31);
            int32_t v = (h >> e) + ((h & mask) > (mask >> 1) - (h >> 31)) + off;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            po[c] = (int8_t)v;
        }
    }
}

/* TFLM's ComputeInterpolationValuesInteger: 10 fractional bits, C division truncating toward zero. */
static void nd_interp(int32_t value, int32_t scale_10, int half_pixel, int32_t size, int32_t *scaled, int32_t *lo,
                      int32_t *hi)
{
    *scaled = half_pixel ? value * scale_10 + scale_10 / 2 - (1 << 9) : value * scale_10;
    *lo = *scaled / (1 << 10);
    if (*lo < 0) {
        *lo = 0;
    }
    *hi = (*scaled + (1 << 10) - 1) / (1 << 10);
    if (*hi > size - 1) {
        *hi = size - 1;
    }
}

void nd_resize_bilinear_s8(const nd_resize_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t ih = p->in.h, iw = p->in.w, oh = p->out.h, ow = p->out.w;
    const int c_n = p->out.c; /* a local: the byte stores could alias the parameter block */
    int32_t hs = ((1 << 10) * ih + oh / 2) / oh, ws = ((1 << 10) * iw + ow / 2) / ow;
    if (p->align_corners && oh > 1) {
        hs = ((1 << 10) * (ih - 1) + (oh - 1) / 2) / (oh - 1);
    }
    if (p->align_corners && ow > 1) {
        ws = ((1 << 10) * (iw - 1) + (ow - 1) / 2) / (ow - 1);
    }
    for (int32_t y = 0; y < oh; ++y) {
        int32_t sy, y0, y1;
        nd_interp(y, hs, p->half_pixel_centers, ih, &sy, &y0, &y1);
        const int32_t fy = sy - (1 << 10) * y0;
        for (int32_t x = 0; x < ow; ++x) {
            int32_t sx, x0, x1;
            nd_interp(x, ws, p->half_pixel_centers, iw, &sx, &x0, &x1);
            const int32_t fx = sx - (1 << 10) * x0;
            /* TFLM sums in int64; the four weights' magnitudes add up to at most 2048^2, so |v| < 2^29 here */
            const int32_t w00 = ((1 << 10) - fy) * ((1 << 10) - fx), w10 = fy * ((1 << 10) - fx);
            const int32_t w01 = ((1 << 10) - fy) * fx, w11 = fy * fx;
            const int8_t *p00 = in + (y0 * iw + x0) * p->in.pstride, *p10 = in + (y1 * iw + x0) * p->in.pstride;
            const int8_t *p01 = in + (y0 * iw + x1) * p->in.pstride, *p11 = in + (y1 * iw + x1) * p->in.pstride;
            int8_t *o = out + (y * ow + x) * p->out.pstride;
            for (int c = 0; c < c_n; ++c) {
                const int32_t v = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
                /* (v +- 2^19) / 2^20 truncating toward zero, as TFLM's int64 division: floor((v + 2^19) / 2^20)
                 * for v > 0, and for v <= 0 the ceiling of (v - 2^19) / 2^20, i.e. floor((v + 2^19 - 1) / 2^20) */
                o[c] = (int8_t)((v + (1 << 19) - (v <= 0)) >> 20);
            }
        }
    }
}

void nd_lut_s8(const nd_fmap_t *in, const nd_fmap_t *out, const int8_t *lut, const int8_t *src, int8_t *dst)
{
    const int32_t n = (int32_t)in->h * in->w;
    for (int32_t i = 0; i < n; ++i) {
        const int8_t *s = src + i * in->pstride;
        int8_t *d = dst + i * out->pstride;
        for (int c = 0; c < in->c; ++c) {
            d[c] = lut[s[c] + 128];
        }
    }
}

/* d[2i] = a[i], d[2i+1] = b[i] for i < n (n a multiple of 4), a word of each source at a time: the byte
 * interleave is masks and shifts (four bytes of a and b give the two output words a0 b0 a1 b1, a2 b2 a3 b3). */
static void nd_interleave2_s8(const int8_t *a, const int8_t *b, int8_t *d, int32_t n)
{
    for (int32_t i = 0; i < n; i += 4, d += 8) {
        uint32_t x, y;
        memcpy(&x, a + i, 4);
        memcpy(&y, b + i, 4);
        const uint32_t even = (x & 0x00FF00FFu) | ((y << 8) & 0xFF00FF00u); /* a0 b0 a2 b2 */
        const uint32_t odd = ((x >> 8) & 0x00FF00FFu) | (y & 0xFF00FF00u);  /* a1 b1 a3 b3 */
        const uint32_t lo = (even & 0xFFFFu) | (odd << 16), hi = (even >> 16) | (odd & 0xFFFF0000u);
        memcpy(d, &lo, 4);
        memcpy(d + 4, &hi, 4);
    }
}

void nd_copy_nd_s8(int ndim, const int32_t *dims, const int8_t *src, const int32_t *src_strides, int8_t *dst,
                   const int32_t *dst_strides)
{
    if (ndim == 2 && dims[1] == 2 && dst_strides[1] == 1 && dst_strides[0] == 2 && src_strides[0] == 1 &&
        (dims[0] & 3) == 0) {
        /* the channel shuffle's transpose: two channel runs interleaved pixel by pixel */
        nd_interleave2_s8(src, src + src_strides[1], dst, dims[0]);
        return;
    }
    if (ndim > 2) {
        for (int32_t i = 0; i < dims[0]; ++i) {
            nd_copy_nd_s8(ndim - 1, dims + 1, src + i * src_strides[0], src_strides + 1, dst + i * dst_strides[0],
                          dst_strides + 1);
        }
        return;
    }
    /* the last two axes as one tight double loop (a channel shuffle's inner axis is only 2 long) */
    const int32_t n0 = ndim == 2 ? dims[0] : 1, n1 = dims[ndim - 1];
    const int32_t s0 = ndim == 2 ? src_strides[0] : 0, d0 = ndim == 2 ? dst_strides[0] : 0;
    const int32_t s1 = src_strides[ndim - 1], d1 = dst_strides[ndim - 1];
    for (int32_t i = 0; i < n0; ++i) {
        const int8_t *s = src + i * s0;
        int8_t *d = dst + i * d0;
        if (s1 == 1 && d1 == 1) {
            memmove(d, s, (size_t)n1);
        } else if (n1 == 2) {
            d[0] = s[0];
            d[d1] = s[s1];
        } else {
            for (int32_t j = 0; j < n1; ++j) {
                d[j * d1] = s[j * s1];
            }
        }
    }
}

void nd_fill_s8(int8_t *dst, int8_t value, int32_t n)
{
    memset(dst, (unsigned char)value, (size_t)n);
}
