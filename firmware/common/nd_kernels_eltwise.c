/* Fast MAX_POOL_2D (ND_KERNEL_MAXPOOL_S8X4), ADD (ND_KERNEL_ADD_SMMULR), RESIZE_BILINEAR fused into its ADD (with
 * ND_KERNEL_RESIZE_QUARTER rows) and the channel-shuffle copies (ND_KERNEL_COPY_INTERLEAVE2, ND_KERNEL_COPY_SPREAD2).
 * Same bytes as their reference kernels. */
#include "nd_kernels_fast.h"

#if !ND_KERNELS_REFERENCE_ONLY

/* Row after r in a ring of rows [ring, ring_end) (a whole map is a ring that never wraps). */
static inline const int8_t *nd_next_row(const int8_t *r, int32_t row_bytes, const int8_t *ring, const int8_t *ring_end)
{
    r += row_bytes;
    return r == ring_end ? ring : r;
}

/* The column of a window at r0..r2: four channels' max over the three rows. */
static inline uint32_t nd_max_col3(const int8_t *r0, const int8_t *r1, const int8_t *r2)
{
    return nd_max_s8x4(nd_max_s8x4(nd_ld32(r0), nd_ld32(r1)), nd_ld32(r2));
}

/* Nine taps of four channels: a window's rows r0..r2 (already offset to the channel), taps ps apart. */
static inline uint32_t nd_max3x3(const int8_t *r0, const int8_t *r1, const int8_t *r2, int ps)
{
    const uint32_t m = nd_max_s8x4(nd_max_col3(r0, r1, r2), nd_max_col3(r0 + ps, r1 + ps, r2 + ps));
    return nd_max_s8x4(m, nd_max_col3(r0 + 2 * ps, r1 + 2 * ps, r2 + 2 * ps));
}

/* n pooled pixels of a 3x3 window, window j on rows r0..r2 from column byte j * step: the interior of NanoDet's stem
 * pool, in a function of its own so that the loop keeps its few pointers in registers. */
ND_FAST_CODE ND_HOT static void nd_max3x3_run(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t ps,
                                              int32_t step, int n, int c_n, int8_t *o, int32_t o_step)
{
    if (step == 2 * ps) {
        /* stride 2: window j's last column is window j + 1's first, so each column's max of three rows is taken once
         * (six loads a window instead of nine), four channels at a time */
        for (int c = 0; c < c_n; c += 4) {
            const int8_t *a = r0 + c, *b = r1 + c, *d = r2 + c;
            int8_t *oc = o + c;
            uint32_t left = nd_max_col3(a, b, d);
            for (int j = 0; j < n; ++j, a += step, b += step, d += step, oc += o_step) {
                const uint32_t mid = nd_max_col3(a + ps, b + ps, d + ps),
                               right = nd_max_col3(a + step, b + step, d + step);
                const uint32_t m = nd_max_s8x4(nd_max_s8x4(left, mid), right);
                memcpy(oc, &m, 4);
                left = right;
            }
        }
        return;
    }
    for (; n > 0; --n, r0 += step, r1 += step, r2 += step, o += o_step) {
        for (int c = 0; c < c_n; c += 4) {
            const uint32_t m = nd_max3x3(r0 + c, r1 + c, r2 + c, ps);
            memcpy(o + c, &m, 4);
        }
    }
}

/* One pooled pixel whose window is clipped by the map's edges (or any window, with a fused activation range). */
ND_FAST_CODE static void nd_maxpool_pixel(const nd_pool_params_t *q, const int8_t *first, int ky0, int ky1, int32_t x0,
                                          const int8_t *in, const int8_t *ring_end, int pad_rows, int8_t *o)
{
    const int ps = q->in.pstride, kw = q->kw;
    const int32_t row_bytes = (int32_t)q->in.w * ps;
    const int kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + kw > q->in.w ? q->in.w - x0 : kw;
    const int any_pad = pad_rows || kx0 > 0 || kx1 < kw;
    const uint32_t start = any_pad && q->pad_mode == 1 ? (uint32_t)(uint8_t)q->pad_value * 0x01010101u : 0x80808080u;
    for (int c = 0; c < q->out.c; c += 4) {
        uint32_t m = start;
        const int8_t *row = first;
        for (int ky = ky0; ky < ky1; ++ky, row = nd_next_row(row, row_bytes, in, ring_end)) {
            for (int kx = kx0; kx < kx1; ++kx) {
                m = nd_max_s8x4(m, nd_ld32(row + (x0 + kx) * ps + c));
            }
        }
        for (int i = 0; i < 4; ++i) {
            int32_t v = (int8_t)((m >> (8 * i)) & 0xFFu);
            v = v < q->act_min ? q->act_min : v;
            v = v > q->act_max ? q->act_max : v;
            o[c + i] = (int8_t)v;
        }
    }
}

/* Max pool, channels four at a time (generator: channels a multiple of 4); padding as in the reference. */
ND_FAST_CODE void nd_maxpool_rows_s8x4(const nd_pool_params_t *q, const int8_t *in, int ring_rows, int py0, int py1,
                                       int8_t *out)
{
    const int ps = q->in.pstride, kh = q->kh, kw = q->kw, sw = q->sw, pad_l = q->pad_l, out_w = q->out.w;
    const int32_t row_bytes = (int32_t)q->in.w * ps, ops = q->out.pstride;
    const int8_t *const ring_end = in + (int32_t)ring_rows * row_bytes;
    const int plain = q->act_min == -128 && q->act_max == 127 && kh == 3 && kw == 3;
    /* the pooled pixels whose windows lie inside the map horizontally: [px_lo, px_hi) */
    const int span = q->in.w - kw + pad_l, px_lo = (pad_l + sw - 1) / sw;
    const int px_hi = span < 0 ? 0 : span / sw + 1 < out_w ? span / sw + 1 : out_w;
    for (int py = py0; py < py1; ++py) {
        const int y0 = py * q->sh - q->pad_t;
        const int ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + kh > q->in.h ? q->in.h - y0 : kh;
        const int pad_rows = ky0 > 0 || ky1 < kh;
        const int8_t *first = in + (int32_t)((y0 + ky0) % ring_rows) * row_bytes;
        int8_t *o = out + (int32_t)py * out_w * ops;
        int px = 0;
        if (plain && !pad_rows && px_lo < px_hi) {
            for (; px < px_lo; ++px) {
                nd_maxpool_pixel(q, first, ky0, ky1, (int32_t)px * sw - pad_l, in, ring_end, 0, o + px * ops);
            }
            const int8_t *second = nd_next_row(first, row_bytes, in, ring_end);
            const int8_t *third = nd_next_row(second, row_bytes, in, ring_end);
            const int32_t at = ((int32_t)px_lo * sw - pad_l) * ps;
            nd_max3x3_run(first + at, second + at, third + at, ps, (int32_t)sw * ps, px_hi - px_lo, q->out.c,
                          o + px_lo * ops, ops);
            px = px_hi;
        }
        for (; px < out_w; ++px) {
            nd_maxpool_pixel(q, first, ky0, ky1, (int32_t)px * sw - pad_l, in, ring_end, pad_rows, o + px * ops);
        }
    }
}

/* ADD (ND_KERNEL_ADD_SMMULR; generator: shift in [-22, -1], tables holding twice TFLM's terms): the output multiplier
 * is positive, so the sum's high multiply and the rounding term (with the output offset folded in) are one SMMLAR, and
 * RoundingDivideByPOT's tie-break comes from the sum's sign, as in the conv kernel. */
typedef struct {
    int32_t mult, rnd, lo, hi;
    int e;
} nd_add_k_t;

static inline nd_add_k_t nd_add_k(const nd_add_params_t *p)
{
    const int e = -p->shift;
    const nd_add_k_t k = {p->mult, ((int32_t)1 << (e - 1)) + (int32_t)((uint32_t)p->out_offset << e), p->act_min,
                          p->act_max, e};
    return k;
}

/* The activation range is int8's: outputs saturate (one SSAT) instead of clamping to [lo, hi]. */
static inline int nd_add_full(const nd_add_k_t *k)
{
    return k->lo == -128 && k->hi == 127;
}

/* The output for the sum of the two table terms; `full` (a constant where inlined): nd_add_full. */
static inline __attribute__((always_inline)) int8_t nd_add_out(const nd_add_k_t *k, int32_t sum2, int full)
{
    int32_t v = (nd_smmlar(sum2, k->mult, k->rnd) + (sum2 >> 31)) >> k->e;
    if (full) {
        return (int8_t)nd_sat8(v);
    }
    v = v < k->lo ? k->lo : v;
    v = v > k->hi ? k->hi : v;
    return (int8_t)v;
}

/* n elements over dense runs */
ND_FAST_CODE ND_HOT static void nd_add_run(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out,
                                           int32_t n)
{
    const nd_add_k_t k = nd_add_k(p);
    const int32_t *t1 = p->t1 + 128, *t2 = p->t2 + 128;
    if (nd_add_full(&k)) {
        for (int32_t i = 0; i < n; ++i) {
            out[i] = nd_add_out(&k, t1[a[i]] + t2[b[i]], 1);
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        out[i] = nd_add_out(&k, t1[a[i]] + t2[b[i]], 0);
    }
}

ND_FAST_CODE void nd_add_smmulr_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    nd_add_run(p, a, b, out, (int32_t)p->out.h * p->out.w * p->out.c);
}

/* One output row of RESIZE_BILINEAR into a dense row: per pixel the four sources and weights once, then per channel
 * the sample (a function of its own: few live values). */
ND_FAST_CODE ND_HOT static void nd_bilinear_pixel(const int8_t *p00, const int8_t *p01, const int8_t *p10,
                                                  const int8_t *p11, int32_t w00, int32_t w01, int32_t w10, int32_t w11,
                                                  int8_t *o, int c_n)
{
    for (int c = 0; c < c_n; ++c) {
        const int32_t v = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
        o[c] = (int8_t)nd_bilinear_round(v);
    }
}

ND_FAST_CODE static void nd_resize_row(const nd_resize_params_t *r, const int8_t *x, int32_t y, int8_t *row)
{
    const int32_t iw = r->in.w, ips = r->in.pstride, c_n = r->out.c;
    int32_t y0, y1, fy;
    nd_resize_source(r, 0, y, &y0, &y1, &fy);
    for (int32_t xo = 0; xo < r->out.w; ++xo, row += c_n) {
        int32_t x0, x1, fx;
        nd_resize_source(r, 1, xo, &x0, &x1, &fx);
        nd_bilinear_pixel(x + (y0 * iw + x0) * ips, x + (y0 * iw + x1) * ips, x + (y1 * iw + x0) * ips,
                          x + (y1 * iw + x1) * ips, ((1 << 10) - fy) * ((1 << 10) - fx), ((1 << 10) - fy) * fx,
                          fy * ((1 << 10) - fx), fy * fx, row, c_n);
    }
}

/* ND_KERNEL_RESIZE_QUARTER (generator: every row and column weight a multiple of 1/4, channels a multiple of 4, dense
 * maps; NanoDet's 2x up (1/4, 3/4) and 1/2 down (1/2, 1/2) with half-pixel centres).  With the row weights (ay, by)
 * and the column weights (ax, bx) in quarters (ay + by = ax + bx = 4), TFLM's sample is floor((S + 7 + [S > 0]) / 16)
 * for S the four pixels' sum weighted by ay ax, ay bx, by ax, by bx.  It is computed on values biased by 128 (S + 2048
 * in [0, 4080]) in two 16-bit lanes per word, channels (c, c + 2) and (c + 1, c + 3), where plain multiplies and adds
 * stay within their lanes: first a row of vertical sums (per input pixel and four channels, the two lane words of
 * ay u(y0) + by u(y1), u = x + 128), then per output pixel ax v(x0) + bx v(x1) and the rounding. */
/* per lane s + 7 + [S > 0], i.e. + 8 where S + 2048 >= 2049, else + 7: the sample + 128 at bits 4..11 of each lane */
ND_FAST_CODE static inline uint32_t nd_quarter_round(uint32_t s)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
    uint32_t add; /* USUB16 sets each lane's GE flags where s >= 2049, SEL picks 8 there and 7 elsewhere */
    __asm__("usub16 %0, %1, %2\n\tsel %0, %3, %4"
            : "=&r"(add)
            : "r"(s), "r"(0x08010801u), "r"(0x00080008u), "r"(0x00070007u)
            : "cc");
    return s + add; /* lanes stay below 4096: no carry between them */
#else
    return s + 0x00070007u + (((s + 0x07FF07FFu) >> 12) & 0x00010001u); /* S + 2048 + 2047 >= 4096 */
#endif
}

/* weights in quarters (a, b) of a row or column from nd_resize_source's fraction (a clamped edge: one pixel) */
ND_FAST_CODE static inline int32_t nd_quarter_b(int32_t lo, int32_t hi, int32_t frac)
{
    return lo == hi ? 0 : frac / 256;
}

ND_FAST_CODE ND_HOT static void nd_quarter_sums(const int8_t *r0, const int8_t *r1, uint32_t a, uint32_t b, int32_t n,
                                                uint32_t *v)
{
    for (int32_t i = 0; i < n; i += 4, v += 2) {
        const uint32_t x = nd_ld32(r0 + i) ^ 0x80808080u, y = nd_ld32(r1 + i) ^ 0x80808080u;
        v[0] = (x & 0x00FF00FFu) * a + (y & 0x00FF00FFu) * b;
        v[1] = ((x >> 8) & 0x00FF00FFu) * a + ((y >> 8) & 0x00FF00FFu) * b;
    }
}

ND_FAST_CODE ND_HOT static void nd_quarter_pixel(const uint32_t *v0, const uint32_t *v1, uint32_t a, uint32_t b,
                                                 int c_n, int8_t *o)
{
    for (int c = 0; c < c_n; c += 4, v0 += 2, v1 += 2, o += 4) {
        const uint32_t s = nd_quarter_round(v0[0] * a + v1[0] * b), t = nd_quarter_round(v0[1] * a + v1[1] * b);
        const uint32_t w = (((s >> 4) & 0x00FF00FFu) | ((t << 4) & 0xFF00FF00u)) ^ 0x80808080u; /* t's lanes: 8 up */
        memcpy(o, &w, 4);
    }
}

ND_FAST_CODE ND_NO_LIBCALLS static void nd_resize_quarter_row(const nd_resize_params_t *r, const int8_t *x, int32_t y,
                                                              int8_t *row, uint32_t *v)
{
    const int32_t c_n = r->out.c, in_row = r->in.w * c_n, w4 = c_n / 2; /* lane words per pixel */
    int32_t y0, y1, fy;
    nd_resize_source(r, 0, y, &y0, &y1, &fy);
    const int32_t by = nd_quarter_b(y0, y1, fy);
    const int8_t *src = x + y0 * in_row;
    int sums = 0; /* the row's vertical sums, made when the first pixel needs them */
    for (int32_t xo = 0; xo < r->out.w; ++xo, row += c_n) {
        int32_t x0, x1, fx;
        nd_resize_source(r, 1, xo, &x0, &x1, &fx);
        const int32_t bx = nd_quarter_b(x0, x1, fx);
        if (by == 0 && bx == 0) { /* one pixel */
            for (int32_t c = 0; c < c_n; c += 4) {
                const uint32_t w = nd_ld32(src + x0 * c_n + c);
                memcpy(row + c, &w, 4);
            }
            continue;
        }
        if (!sums) {
            nd_quarter_sums(src, x + y1 * in_row, (uint32_t)(4 - by), (uint32_t)by, in_row, v);
            sums = 1;
        }
        nd_quarter_pixel(v + x0 * w4, v + x1 * w4, (uint32_t)(4 - bx), (uint32_t)bx, c_n, row);
    }
}

/* ND_KERNEL_RESIZE_HALF (generator: out = in / 2 in both axes with half-pixel centres, so that sample (y, x) is the
 * 2x2 block at (2y, 2x) weighted 1/2 x 1/2; channels a multiple of 4, dense maps).  TFLM's sample is then a function of
 * the block's sum s in [-512, 508] alone, and so is ADD's term for it: half_t2[s + 512], the generator's table, one
 * load where RESIZE_QUARTER rounds in lanes and indexes t2.  The sums of four channels in two words of halfword lanes
 * (SXTB16, SADD16): channels (c, c + 2), then (c + 1, c + 3). */
static inline __attribute__((always_inline)) void nd_resize_half_add_rows(const nd_resize_add_params_t *p,
                                                                          const nd_add_k_t *k, const int8_t *a,
                                                                          const int8_t *x, int8_t *out, int full)
{
    const int32_t *t1 = p->add.t1 + 128, *ts = p->half_t2 + 512;
    const int32_t c_n = p->resize.in.c, in_row = p->resize.in.w * c_n;
    for (int32_t y = 0; y < p->resize.out.h; ++y) {
        const int8_t *r = x + 2 * y * in_row;
        for (int32_t xo = 0; xo < p->resize.out.w; ++xo, r += c_n) { /* the block's second column, skipped */
            for (const int8_t *const end = r + c_n; r != end; r += 4, a += 4, out += 4) { /* its first column */
                const uint32_t u0 = nd_ld32(r), u1 = nd_ld32(r + c_n), u2 = nd_ld32(r + in_row),
                               u3 = nd_ld32(r + in_row + c_n);
                const uint32_t ev =
                    nd_sadd16(nd_sadd16(nd_sxtb16(u0), nd_sxtb16(u1)), nd_sadd16(nd_sxtb16(u2), nd_sxtb16(u3)));
                const uint32_t od = nd_sadd16(nd_sadd16(nd_sxtb16_ror8(u0), nd_sxtb16_ror8(u1)),
                                              nd_sadd16(nd_sxtb16_ror8(u2), nd_sxtb16_ror8(u3)));
                out[0] = nd_add_out(k, t1[a[0]] + ts[(int16_t)ev], full);
                out[1] = nd_add_out(k, t1[a[1]] + ts[(int16_t)od], full);
                out[2] = nd_add_out(k, t1[a[2]] + ts[(int32_t)ev >> 16], full);
                out[3] = nd_add_out(k, t1[a[3]] + ts[(int32_t)od >> 16], full);
            }
        }
    }
}

ND_FAST_CODE ND_HOT static void nd_resize_half_add(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x,
                                                   int8_t *out)
{
    const nd_add_k_t k = nd_add_k(&p->add);
    if (nd_add_full(&k)) {
        nd_resize_half_add_rows(p, &k, a, x, out, 1);
    } else {
        nd_resize_half_add_rows(p, &k, a, x, out, 0);
    }
}

/* RESIZE_BILINEAR fused into ADD (generator: dense maps, as nd_add_run): RESIZE_HALF straight from the map; otherwise
 * a row of the resized map in scratch (out.w * c bytes; RESIZE_QUARTER: then 2 * in.w * c bytes of vertical sums),
 * then that row of the ADD. */
ND_FAST_CODE void nd_resize_add_smmulr_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x,
                                          int8_t *out, void *scratch)
{
    if (p->resize.kernel == ND_KERNEL_RESIZE_HALF) {
        nd_resize_half_add(p, a, x, out);
        return;
    }
    int8_t *row = (int8_t *)scratch;
    const int32_t row_n = p->add.out.w * p->add.out.c;
    uint32_t *v = (uint32_t *)(void *)(row + row_n); /* word aligned: row_n is a multiple of 4 with RESIZE_QUARTER */
    for (int32_t y = 0; y < p->add.out.h; ++y, a += row_n, out += row_n) {
        if (p->resize.kernel == ND_KERNEL_RESIZE_QUARTER) {
            nd_resize_quarter_row(&p->resize, x, y, row, v);
        } else {
            nd_resize_row(&p->resize, x, y, row);
        }
        nd_add_run(&p->add, a, row, out, row_n);
    }
}

/* The channel shuffle's transpose: over the last two axes, d[2i] = s[i] and d[2i+1] = s[i + src_strides[-1]] for i <
 * dims[-2] (a multiple of 4), a word of each run at a time: the byte interleave is masks and shifts (four bytes of each
 * give the words a0 b0 a1 b1 and a2 b2 a3 b3); leading axes loop as in the reference. */
ND_FAST_CODE static void nd_interleave2(int ndim, const int32_t *dims, const int8_t *src, const int32_t *ss,
                                        int8_t *dst, const int32_t *ds)
{
    if (ndim > 2) {
        for (int32_t i = 0; i < dims[0]; ++i) {
            nd_interleave2(ndim - 1, dims + 1, src + i * ss[0], ss + 1, dst + i * ds[0], ds + 1);
        }
        return;
    }
    const int8_t *a = src, *b = src + ss[1];
    for (int32_t i = 0; i < dims[0]; i += 4, dst += 8) {
        uint32_t x, y;
        memcpy(&x, a + i, 4);
        memcpy(&y, b + i, 4);
        const uint32_t even = (x & 0x00FF00FFu) | ((y << 8) & 0xFF00FF00u); /* a0 b0 a2 b2 */
        const uint32_t odd = ((x >> 8) & 0x00FF00FFu) | (y & 0xFF00FF00u);  /* a1 b1 a3 b3 */
        const uint32_t lo = (even & 0xFFFFu) | (odd << 16), hi = (even >> 16) | (odd & 0xFFFF0000u);
        memcpy(dst, &lo, 4);
        memcpy(dst + 4, &hi, 4);
    }
}

ND_FAST_CODE void nd_copy_interleave2_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst)
{
    nd_interleave2(p->ndim, p->dims, src, p->src_strides, dst, p->dst_strides);
}

/* The pass-through half of a channel shuffle into the even channels of the shuffled map: from each word a0 a1 a2 a3 of
 * a pixel, the words a0 . a1 . and a2 . a3 . (PKHBT, then LSR + PKHTB on Cortex-M7); the odd bytes get junk, which the
 * conv writing the odd channels replaces (the generator orders the steps so).  A pixel's run is 6 to 24 words, word
 * aligned (generator: channels a multiple of 4 in planned buffers): two words a step with LDRD/STRD (GCC's own
 * unrolled loop spent as much on choosing its entry as on the copy). */
static inline void nd_spread_word(uint32_t v, uint32_t *lo, uint32_t *hi)
{
    *lo = nd_pkhbt_lsl8(v, v), *hi = nd_pkhtb_asr16(v >> 8, v);
}

ND_FAST_CODE void nd_copy_spread2_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst)
{
    const int32_t n = p->dims[0], c_n = p->dims[1], ss = p->src_strides[0], ds = p->dst_strides[0];
    for (int32_t i = 0; i < n; ++i, src += ss, dst += ds) {
        const uint32_t *s = (const uint32_t *)(const void *)src, *const end = s + c_n / 4;
        uint32_t *d = (uint32_t *)(void *)dst, v, u, w0, w1;
        if (c_n & 4) { /* an odd number of words: the first alone */
            nd_spread_word(*s++, &w0, &w1);
            ND_ST2_POST(w0, w1, d);
        }
        while (s != end) {
            ND_LD2_POST(v, u, s);
            nd_spread_word(v, &w0, &w1);
            ND_ST2_POST(w0, w1, d);
            nd_spread_word(u, &w0, &w1);
            ND_ST2_POST(w0, w1, d);
        }
    }
}

#else
typedef int nd_kernels_eltwise_reference_only; /* ISO C wants a declaration in every translation unit */
#endif
