/* Integer NanoDet post-processing: distribution decode (softmax expectation over the bins) and greedy
 * class-agnostic NMS, bit-exact with nanodet_mcu/postprocess_fixed.py.
 *
 * Everything that depends on the model (exp table for the box tensor's scale, int8 score threshold, tensor
 * strides) is computed on the host and arrives in nd_post_params_t, so this file knows no model.
 * No float, no libm, no malloc, no static state (reentrant); the stack holds 4 bytes per grid cell. */
#ifndef ND_POSTPROCESS_H
#define ND_POSTPROCESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on grid_h * grid_w (one candidate per cell lives on the stack); override with -D if needed. */
#ifndef ND_POST_MAX_CELLS
#define ND_POST_MAX_CELLS 100
#endif

#define ND_POST_EXP_TABLE_SIZE 256

/* Error codes (negative returns of nd_postprocess). */
#define ND_POST_ERR_ARG (-1)    /* NULL pointer */
#define ND_POST_ERR_PARAMS (-2) /* params out of the supported range */

typedef struct {
    /* exp_table[k] = round(2^EXP_FRAC_BITS * exp(-boxes_scale * k)), k = (max logit in the side) - logit, so the
     * softmax weight of a bin needs no float; only ratios of entries are used, the Q format cancels out. */
    uint32_t exp_table[ND_POST_EXP_TABLE_SIZE];
    int16_t score_threshold_q; /* a cell is a candidate when its best int8 score is > this (-129..127) */
    uint16_t max_out;          /* keep at most this many detections */
    uint32_t iou_num;          /* suppress when IoU > iou_num / iou_den */
    uint32_t iou_den;
    uint16_t grid_h, grid_w;   /* cells; cell index = y * grid_w + x */
    uint16_t stride;           /* input pixels per cell (and per bin of distance) */
    uint16_t input_h, input_w; /* boxes are clamped to [0, input_w] x [0, input_h] */
    uint16_t num_classes;      /* 1..256 */
    uint16_t num_bins;         /* bins per box side (4 sides: left, top, right, bottom) */
    uint16_t coord_frac_bits;  /* output coordinates are in 1/2^coord_frac_bits px (1..12) */
    /* element strides of the int8 tensors, read from the model on the host */
    int32_t scores_row_stride, scores_col_stride, scores_class_stride;
    int32_t boxes_row_stride, boxes_col_stride, boxes_side_stride, boxes_bin_stride;
} nd_post_params_t;

typedef struct {
    int32_t x1, y1, x2, y2; /* in the input frame, fixed point with params->coord_frac_bits fraction bits */
    uint16_t cell;          /* grid cell index (row-major), the candidate's identity */
    uint8_t class_id;       /* argmax class (first on ties) */
    int8_t score;           /* int8 quantised score of that class */
} nd_detection_t;

/* Decode and suppress.  scores/boxes: the model's int8 output tensors, addressed through the params' strides.
 * Writes at most min(params->max_out, capacity) detections to out, best score first (ties: lower cell first),
 * and returns how many, or a negative ND_POST_ERR_* code. */
int nd_postprocess(const int8_t *scores, const int8_t *boxes, const nd_post_params_t *params, nd_detection_t *out,
                   size_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* ND_POSTPROCESS_H */
