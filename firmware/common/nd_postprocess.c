/* Integer NanoDet decode + NMS; the algorithm is mirrored operation for operation by
 * nanodet_mcu/postprocess_fixed.py, which is how the host predicts the board's detections exactly. */
#include "nd_postprocess.h"

/* Limits that keep every intermediate inside its integer type (checked in params_ok):
 *   distance numerator  <= 15 * 16 * 2^32 * 2^20 < 2^64 (uint64)
 *   box area            <  (2^19)^2 = 2^38, union * iou ratio term < 2^39 * 2^16 (int64) */
#define MAX_BINS 16u
#define MAX_FRAC_BITS 10u
#define MAX_STRIDE_FX (1ul << 20)
#define MAX_EXTENT_FX (1ul << 19)
#define MAX_IOU_TERM 65535u

static int params_ok(const nd_post_params_t *p)
{
    uint32_t cells = (uint32_t)p->grid_h * p->grid_w;
    if (cells == 0u || cells > ND_POST_MAX_CELLS || cells > 65536u) {
        return 0;
    }
    if (p->num_classes == 0u || p->num_classes > 256u) {
        return 0;
    }
    if (p->num_bins == 0u || p->num_bins > MAX_BINS) {
        return 0;
    }
    if (p->coord_frac_bits == 0u || p->coord_frac_bits > MAX_FRAC_BITS) {
        return 0;
    }
    if (p->stride == 0u || ((uint32_t)p->stride << (p->coord_frac_bits + 1u)) > MAX_STRIDE_FX) {
        return 0;
    }
    if (((uint32_t)p->input_w << p->coord_frac_bits) > MAX_EXTENT_FX) {
        return 0;
    }
    if (((uint32_t)p->input_h << p->coord_frac_bits) > MAX_EXTENT_FX) {
        return 0;
    }
    if (p->iou_den == 0u || p->iou_den > MAX_IOU_TERM || p->iou_num > MAX_IOU_TERM) {
        return 0;
    }
    if (p->exp_table[0] == 0u) {
        return 0; /* the max bin's weight: keeps every denominator positive */
    }
    if (p->score_threshold_q < -129 || p->score_threshold_q > 127) {
        return 0;
    }
    if (p->scores_row_stride < 0 || p->scores_col_stride < 0 || p->scores_class_stride < 0) {
        return 0;
    }
    if (p->boxes_row_stride < 0 || p->boxes_col_stride < 0 || p->boxes_side_stride < 0) {
        return 0;
    }
    if (p->boxes_bin_stride < 0) {
        return 0;
    }
    return 1;
}

/* Candidate sort key: best score in bits 31..24 (offset to unsigned), 0xFFFF - cell in bits 23..8, class in
 * bits 7..0.  Descending key order is then score descending, lower cell first, as in the float reference. */
static uint32_t make_key(int score, uint32_t cell, uint32_t class_id)
{
    return ((uint32_t)(score + 128) << 24) | ((0xFFFFu - cell) << 8) | class_id;
}

/* Softmax expectation of one side's bins, times stride, in 1/2^frac px, rounded half up.
 * Softmax weights are exp(scale * (q - qmax)) from the table; the 2^Q of the table cancels in num/den. */
static int32_t side_distance(const int8_t *bins, const nd_post_params_t *p)
{
    int qmax = -128;
    uint64_t num = 0u, den = 0u;
    uint32_t b;
    for (b = 0u; b < p->num_bins; ++b) {
        int q = bins[(ptrdiff_t)b * p->boxes_bin_stride];
        if (q > qmax) {
            qmax = q;
        }
    }
    for (b = 0u; b < p->num_bins; ++b) {
        uint64_t w = p->exp_table[qmax - bins[(ptrdiff_t)b * p->boxes_bin_stride]];
        den += w;
        num += (uint64_t)b * w;
    }
    {
        uint64_t unit2 = (uint64_t)p->stride << (p->coord_frac_bits + 1u); /* 2 * stride in fixed point */
        return (int32_t)((num * unit2 + den) / (2u * den));
    }
}

static int32_t clamp(int32_t v, int32_t hi)
{
    return v < 0 ? 0 : (v > hi ? hi : v);
}

static void decode_box(const int8_t *boxes, uint32_t cell, const nd_post_params_t *p, nd_detection_t *d)
{
    uint32_t x = cell % p->grid_w, y = cell / p->grid_w;
    const int8_t *base = boxes + (ptrdiff_t)y * p->boxes_row_stride + (ptrdiff_t)x * p->boxes_col_stride;
    /* cell centre ((x + 0.5) * stride) in fixed point, exact because frac bits >= 1 */
    int32_t cx = (int32_t)(((2u * x + 1u) * p->stride) << (p->coord_frac_bits - 1u));
    int32_t cy = (int32_t)(((2u * y + 1u) * p->stride) << (p->coord_frac_bits - 1u));
    int32_t w = (int32_t)((uint32_t)p->input_w << p->coord_frac_bits);
    int32_t h = (int32_t)((uint32_t)p->input_h << p->coord_frac_bits);
    d->x1 = clamp(cx - side_distance(base, p), w);
    d->y1 = clamp(cy - side_distance(base + p->boxes_side_stride, p), h);
    d->x2 = clamp(cx + side_distance(base + 2 * (ptrdiff_t)p->boxes_side_stride, p), w);
    d->y2 = clamp(cy + side_distance(base + 3 * (ptrdiff_t)p->boxes_side_stride, p), h);
}

/* IoU(a, b) > num/den, cross-multiplied so no division is needed; a zero union never suppresses. */
static int overlaps(const nd_detection_t *a, const nd_detection_t *b, const nd_post_params_t *p)
{
    int64_t iw = (int64_t)(a->x2 < b->x2 ? a->x2 : b->x2) - (a->x1 > b->x1 ? a->x1 : b->x1);
    int64_t ih = (int64_t)(a->y2 < b->y2 ? a->y2 : b->y2) - (a->y1 > b->y1 ? a->y1 : b->y1);
    int64_t inter = (iw > 0 && ih > 0) ? iw * ih : 0;
    int64_t area_a = (int64_t)(a->x2 - a->x1) * (a->y2 - a->y1);
    int64_t area_b = (int64_t)(b->x2 - b->x1) * (b->y2 - b->y1);
    int64_t uni = area_a + area_b - inter;
    return inter * (int64_t)p->iou_den > uni * (int64_t)p->iou_num;
}

/* Candidates (one per cell whose best score passes the threshold), sorted by key descending. */
static uint32_t collect_candidates(const int8_t *scores, const nd_post_params_t *p, uint32_t *keys)
{
    uint32_t n = 0u, y, x, c;
    for (y = 0u; y < p->grid_h; ++y) {
        for (x = 0u; x < p->grid_w; ++x) {
            const int8_t *s = scores + (ptrdiff_t)y * p->scores_row_stride + (ptrdiff_t)x * p->scores_col_stride;
            int best = s[0];
            uint32_t best_c = 0u, key, i;
            for (c = 1u; c < p->num_classes; ++c) {
                int q = s[(ptrdiff_t)c * p->scores_class_stride];
                if (q > best) {
                    best = q;
                    best_c = c;
                }
            }
            if (best <= p->score_threshold_q) {
                continue;
            }
            key = make_key(best, y * p->grid_w + x, best_c);
            for (i = n; i > 0u && keys[i - 1u] < key; --i) {
                keys[i] = keys[i - 1u];
            }
            keys[i] = key;
            ++n;
        }
    }
    return n;
}

int nd_postprocess(const int8_t *scores, const int8_t *boxes, const nd_post_params_t *params, nd_detection_t *out,
                   size_t capacity)
{
    uint32_t keys[ND_POST_MAX_CELLS];
    uint32_t n_cand, i, limit;
    int kept = 0;
    if (scores == NULL || boxes == NULL || params == NULL || (out == NULL && capacity > 0u)) {
        return ND_POST_ERR_ARG;
    }
    if (!params_ok(params)) {
        return ND_POST_ERR_PARAMS;
    }
    limit = params->max_out < capacity ? params->max_out : (uint32_t)capacity;
    if (limit == 0u) {
        return 0;
    }
    n_cand = collect_candidates(scores, params, keys);
    for (i = 0u; i < n_cand; ++i) {
        nd_detection_t d;
        int k, suppressed = 0;
        d.cell = (uint16_t)(0xFFFFu - ((keys[i] >> 8) & 0xFFFFu));
        d.class_id = (uint8_t)(keys[i] & 0xFFu);
        d.score = (int8_t)((int)(keys[i] >> 24) - 128);
        decode_box(boxes, d.cell, params, &d);
        /* greedy NMS: a candidate survives when no better, already kept box overlaps it too much */
        for (k = 0; k < kept && !suppressed; ++k) {
            suppressed = overlaps(&out[k], &d, params);
        }
        if (suppressed) {
            continue;
        }
        out[kept++] = d;
        if ((uint32_t)kept == limit) {
            break;
        }
    }
    return kept;
}
