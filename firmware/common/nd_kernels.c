/* The one dispatch of the AOT kernels: params.kernel (the generator's choice) -> implementation, the scratch size each
 * kernel needs (the twins of nanodet_mcu/codegen/aot/kernels.py), and the conv + max pool row streaming.  With
 * ND_KERNELS_REFERENCE_ONLY every op runs its reference kernel. */
#include "nd_kernels.h"
#include "nd_kernels_fast.h"

/* A kernel this build does not have reports a negative scratch size, so nd_model_check() refuses the model. */
#define ND_NOT_IN_THIS_BUILD (-1)

/* Conv rows [oy0, oy1) into an output ring of ring_rows rows (ring_rows = out.h: the whole map). */
static void nd_conv2d_rows(const nd_conv_params_t *p, const int8_t *in, int8_t *out, int oy0, int oy1, int ring_rows,
                           void *scratch)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->kernel == ND_KERNEL_CONV_3X2) {
        nd_conv2d_rows_3x2_s8(p, in, out, oy0, oy1, ring_rows, scratch);
        return;
    }
#endif
    (void)scratch;
    nd_conv2d_rows_ref_s8(p, in, out, oy0, oy1, ring_rows);
}

void nd_conv2d_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
    nd_conv2d_rows(p, in, out, 0, p->out.h, p->out.h, scratch);
}

int32_t nd_conv2d_s8_get_buffer_size(const nd_conv_params_t *p)
{
    switch (p->kernel) {
        case ND_KERNEL_REF:
            return 0;
#if !ND_KERNELS_REFERENCE_ONLY
        case ND_KERNEL_CONV_3X2:
            return nd_conv2d_3x2_buffer_size(p);
#endif
        default:
            return ND_NOT_IN_THIS_BUILD;
    }
}

void nd_dwconv_s8(const nd_conv_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->kernel == ND_KERNEL_DWCONV3X3_SMLA) {
        nd_dwconv3x3_smla_s8(p, in, out, scratch);
        return;
    }
    if (p->kernel == ND_KERNEL_DWCONV3X3_PAIRS) {
        nd_dwconv3x3_pairs_s8(p, in, out, scratch);
        return;
    }
#endif
    (void)scratch;
    nd_dwconv_ref_s8(p, in, out);
}

int32_t nd_dwconv_s8_get_buffer_size(const nd_conv_params_t *p)
{
    switch (p->kernel) {
        case ND_KERNEL_REF:
            return 0;
#if !ND_KERNELS_REFERENCE_ONLY
        case ND_KERNEL_DWCONV3X3_SMLA:
            return nd_dwconv3x3_smla_buffer_size(p);
        case ND_KERNEL_DWCONV3X3_PAIRS:
            return nd_dwconv3x3_pairs_buffer_size(p);
#endif
        default:
            return ND_NOT_IN_THIS_BUILD;
    }
}

/* Pooled rows [py0, py1) from an input ring of ring_rows rows (ring_rows = in.h: the whole map). */
static void nd_maxpool_rows(const nd_pool_params_t *p, const int8_t *in, int ring_rows, int py0, int py1, int8_t *out)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->kernel == ND_KERNEL_MAXPOOL_S8X4) {
        nd_maxpool_rows_s8x4(p, in, ring_rows, py0, py1, out);
        return;
    }
#endif
    nd_maxpool_rows_ref_s8(p, in, ring_rows, py0, py1, out);
}

void nd_maxpool_s8(const nd_pool_params_t *p, const int8_t *in, int8_t *out)
{
    nd_maxpool_rows(p, in, p->in.h, 0, p->out.h, out);
}

/* The ring of conv rows at the start of the conv + pool scratch, rounded up so that the conv's own scratch after it
 * stays word aligned. */
static int32_t nd_ring_bytes(const nd_conv_pool_params_t *p)
{
    return ((int32_t)p->pool.kh * p->conv.out.w * p->conv.out.pstride + 3) & ~(int32_t)3;
}

int32_t nd_conv_pool_s8_get_buffer_size(const nd_conv_pool_params_t *p)
{
    const int32_t conv = nd_conv2d_s8_get_buffer_size(&p->conv);
    return conv < 0 ? ND_NOT_IN_THIS_BUILD : nd_ring_bytes(p) + conv;
}

void nd_conv_pool_s8(const nd_conv_pool_params_t *p, const int8_t *in, int8_t *out, void *scratch)
{
    const nd_pool_params_t *q = &p->pool;
    int8_t *ring = (int8_t *)scratch;
    void *conv_scratch = ring + nd_ring_bytes(p);
    int next = 0; /* next conv row to compute */
    for (int py = 0; py < q->out.h; ++py) {
        const int y0 = py * q->sh - q->pad_t;
        const int y_end = y0 + q->kh < p->conv.out.h ? y0 + q->kh : p->conv.out.h;
        if (next < y_end) {
            nd_conv2d_rows(&p->conv, in, ring, next, y_end, q->kh, conv_scratch);
            next = y_end;
        }
        nd_maxpool_rows(q, ring, q->kh, py, py + 1, out);
    }
}

void nd_add_s8(const nd_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->kernel == ND_KERNEL_ADD_SMMULR) {
        nd_add_smmulr_s8(p, a, b, out);
        return;
    }
#endif
    nd_add_ref_s8(p, a, b, out);
}

void nd_resize_add_s8(const nd_resize_add_params_t *p, const int8_t *a, const int8_t *x, int8_t *out, void *scratch)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->add.kernel == ND_KERNEL_ADD_SMMULR) {
        nd_resize_add_smmulr_s8(p, a, x, out, scratch);
        return;
    }
#endif
    (void)scratch;
    nd_resize_add_ref_s8(p, a, x, out);
}

int32_t nd_resize_add_s8_get_buffer_size(const nd_resize_add_params_t *p)
{
    switch (p->add.kernel) {
        case ND_KERNEL_REF:
            return 0;
#if !ND_KERNELS_REFERENCE_ONLY
        case ND_KERNEL_ADD_SMMULR: /* one row of the resized map, and with RESIZE_QUARTER a row of vertical sums */
            if (p->resize.kernel == ND_KERNEL_RESIZE_HALF) {
                return 0; /* straight from the map */
            }
            return p->add.out.w * p->add.out.c +
                   (p->resize.kernel == ND_KERNEL_RESIZE_QUARTER ? 2 * p->resize.in.w * p->resize.in.c : 0);
#endif
        default:
            return ND_NOT_IN_THIS_BUILD;
    }
}

void nd_copy_s8(const nd_copy_params_t *p, const int8_t *src, int8_t *dst)
{
#if !ND_KERNELS_REFERENCE_ONLY
    if (p->kernel == ND_KERNEL_COPY_INTERLEAVE2) {
        nd_copy_interleave2_s8(p, src, dst);
        return;
    }
    if (p->kernel == ND_KERNEL_COPY_SPREAD2) {
        nd_copy_spread2_s8(p, src, dst);
        return;
    }
#endif
    nd_copy_ref_s8(p->ndim, p->dims, src, p->src_strides, dst, p->dst_strides);
}
