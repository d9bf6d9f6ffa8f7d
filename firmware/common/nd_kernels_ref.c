/* The reference kernels of the AOT engine: tflite-micro's integer semantics written as plain loops, for any params.
 * Nothing here is tuned; every fast kernel must reproduce these bytes (tests/test_aot.py runs both builds against
 * the tflite-micro interpreter). */
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

static int32_t nd_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* A conv accumulator to its int8 output: requantise, add the zero point, clamp, then the fused table. */
static int8_t nd_conv_store(int32_t acc, const nd_conv_params_t *p, int oc)
{
    const int32_t v = nd_clamp(nd_mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset, p->act_min, p->act_max);
    return p->lut ? p->lut[v + 128] : (int8_t)v;
}

void nd_conv2d_rows_ref_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1, int ring_rows)
{
    const int in_c = p->in.c, out_c = p->out.c;
    for (int oy = oy0; oy < oy1; ++oy) {
        int8_t *out_row = out + (int32_t)(oy % ring_rows) * p->out.w * p->out.pstride;
        for (int ox = 0; ox < p->out.w; ++ox) {
            const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
            for (int oc = 0; oc < out_c; ++oc) {
                int32_t acc = p->bias ? p->bias[oc] : 0;
                const int8_t *w = p->weights + (int32_t)oc * p->kh * p->kw * in_c;
                for (int ky = 0; ky < p->kh; ++ky) {
                    const int iy = iy0 + ky * p->dh;
                    if (iy < 0 || iy >= p->in.h) {
                        continue; /* TFLM skips taps outside the input */
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
                out_row[(int32_t)ox * p->out.pstride + oc * p->out.cstride] = nd_conv_store(acc, p, oc);
            }
        }
    }
}

void nd_dwconv_ref_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out)
{
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
                    o[oc * p->out.cstride] = nd_conv_store(acc, p, oc);
                }
            }
        }
    }
}

void nd_maxpool_rows_ref_s8(const nd_pool_params_t *p, const int8_t *in, int ring_rows, int py0, int py1, int8_t *out)
{
    const int32_t row_bytes = (int32_t)p->in.w * p->in.pstride;
    for (int py = py0; py < py1; ++py) {
        for (int px = 0; px < p->out.w; ++px) {
            const int iy0 = py * p->sh - p->pad_t, ix0 = px * p->sw - p->pad_l;
            int8_t *o = out + ((int32_t)py * p->out.w + px) * p->out.pstride;
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
                        const int32_t v = in[(int32_t)(iy % ring_rows) * row_bytes + (int32_t)ix * p->in.pstride + c];
                        m = v > m ? v : m;
                    }
                }
                if (any_pad && p->pad_mode == 1 && p->pad_value > m) {
                    m = p->pad_value;
                }
                o[c] = (int8_t)nd_clamp(m, p->act_min, p->act_max);
            }
        }
    }
}

void nd_add_ref_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    const int32_t n = (int32_t)p->out.h * p->out.w;
    for (int32_t pix = 0; pix < n; ++pix) {
        const int8_t *pa = a + pix * p->a.pstride, *pb = b + pix * p->b.pstride;
        int8_t *po = out + pix * p->out.pstride;
        for (int32_t c = 0; c < p->out.c; ++c) {
            const int32_t sum = p->t1[pa[c] + 128] + p->t2[pb[c] + 128];
            const int32_t v = nd_mbqm(sum, p->mult, (int)p->shift) + p->out_offset;
            po[c] = (int8_t)nd_clamp(v, p->act_min, p->act_max);
        }
    }
}

void nd_resize_source(const nd_resize_params_t *p, int axis, int32_t o, int32_t *lo, int32_t *hi, int32_t *frac)
{
    /* TFLM's ComputeInterpolationValuesInteger: 10 fractional bits, C division truncating toward zero */
    const int32_t in_size = axis == 0 ? p->in.h : p->in.w, out_size = axis == 0 ? p->out.h : p->out.w;
    int32_t scale = ((1 << 10) * in_size + out_size / 2) / out_size;
    if (p->align_corners && out_size > 1) {
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) / 2) / (out_size - 1);
    }
    const int32_t scaled = p->half_pixel_centers ? o * scale + scale / 2 - (1 << 9) : o * scale;
    *lo = scaled / (1 << 10);
    if (*lo < 0) {
        *lo = 0;
    }
    *hi = (scaled + (1 << 10) - 1) / (1 << 10);
    if (*hi > in_size - 1) {
        *hi = in_size - 1;
    }
    *frac = scaled - (1 << 10) * *lo;
}

void nd_resize_bilinear_s8(const nd_resize_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t iw = p->in.w, ow = p->out.w, ips = p->in.pstride, ops = p->out.pstride;
    const int c_n = p->out.c; /* locals: the byte stores could alias the parameter block */
    for (int32_t y = 0; y < p->out.h; ++y) {
        int32_t y0, y1, fy;
        nd_resize_source(p, 0, y, &y0, &y1, &fy);
        for (int32_t x = 0; x < ow; ++x) {
            int32_t x0, x1, fx;
            nd_resize_source(p, 1, x, &x0, &x1, &fx);
            const int8_t *p00 = in + (y0 * iw + x0) * ips, *p01 = in + (y0 * iw + x1) * ips;
            const int8_t *p10 = in + (y1 * iw + x0) * ips, *p11 = in + (y1 * iw + x1) * ips;
            int8_t *o = out + (y * ow + x) * ops;
            for (int c = 0; c < c_n; ++c) {
                o[c] = (int8_t)nd_bilinear(p00[c], p01[c], p10[c], p11[c], fy, fx);
            }
        }
    }
}

void nd_resize_add_ref_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x, int8_t *out)
{
    const nd_resize_params_t *r = &p->resize;
    const nd_add_params_t *q = &p->add;
    const int32_t iw = r->in.w, ips = r->in.pstride;
    for (int32_t y = 0; y < q->out.h; ++y) {
        int32_t y0, y1, fy;
        nd_resize_source(r, 0, y, &y0, &y1, &fy);
        for (int32_t xo = 0; xo < q->out.w; ++xo) {
            int32_t x0, x1, fx;
            nd_resize_source(r, 1, xo, &x0, &x1, &fx);
            const int8_t *p00 = x + (y0 * iw + x0) * ips, *p01 = x + (y0 * iw + x1) * ips;
            const int8_t *p10 = x + (y1 * iw + x0) * ips, *p11 = x + (y1 * iw + x1) * ips;
            const int32_t pix = y * q->out.w + xo;
            const int8_t *pa = a + pix * q->a.pstride;
            int8_t *po = out + pix * q->out.pstride;
            for (int32_t c = 0; c < q->out.c; ++c) {
                const int32_t b = nd_bilinear(p00[c], p01[c], p10[c], p11[c], fy, fx);
                const int32_t sum = q->t1[pa[c] + 128] + q->t2[b + 128];
                po[c] = (int8_t)nd_clamp(nd_mbqm(sum, q->mult, (int)q->shift) + q->out_offset, q->act_min, q->act_max);
            }
        }
    }
}

void nd_lut_s8(const nd_lut_params_t *p, const int8_t *in, int8_t *out)
{
    /* locals: the byte stores could alias the parameter block */
    const int32_t n = (int32_t)p->in.h * p->in.w, c_n = p->in.c, si = p->in.pstride, so = p->out.pstride;
    const int8_t *lut = p->lut + 128;
    for (int32_t i = 0; i < n; ++i) {
        const int8_t *s = in + i * si;
        int8_t *d = out + i * so;
        for (int32_t c = 0; c < c_n; ++c) {
            d[c] = lut[s[c]];
        }
    }
}

void nd_copy_ref_s8(int ndim, const int32_t *dims, const int8_t *src, const int32_t *src_strides, int8_t *dst,
                    const int32_t *dst_strides)
{
    if (ndim > 2) {
        for (int32_t i = 0; i < dims[0]; ++i) {
            nd_copy_ref_s8(ndim - 1, dims + 1, src + i * src_strides[0], src_strides + 1, dst + i * dst_strides[0],
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
