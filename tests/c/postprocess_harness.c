/* Host harness for nd_postprocess under ASan/UBSan (driven by tests/test_postprocess_c_harness.py).
 * Reads records from argv[1]: u8 params index, u16 LE capacity, the scores tensor, the boxes tensor
 * (HARNESS_SCORES_BYTES / HARNESS_BOXES_BYTES, from the generated params file); prints one line per record:
 * "<n> x1 y1 x2 y2 cell class score ..." so Python can compare it with its integer model.
 * Each tensor is copied into a buffer of exactly its size on the heap, so any read past it trips ASan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_postprocess.h"

extern const nd_post_params_t harness_params[];
extern const unsigned harness_param_count;
extern const size_t harness_scores_bytes;
extern const size_t harness_boxes_bytes;

/* Argument and range checks the Python side cannot reach through ctypes without risking the test process. */
static int self_check(void)
{
    int8_t zeros[4] = {0, 0, 0, 0};
    nd_detection_t det[1];
    nd_post_params_t bad = harness_params[0];
    if (nd_postprocess(NULL, zeros, &bad, det, 1) != ND_POST_ERR_ARG) {
        return 1;
    }
    if (nd_postprocess(zeros, NULL, &bad, det, 1) != ND_POST_ERR_ARG) {
        return 2;
    }
    if (nd_postprocess(zeros, zeros, NULL, det, 1) != ND_POST_ERR_ARG) {
        return 3;
    }
    if (nd_postprocess(zeros, zeros, &bad, NULL, 1) != ND_POST_ERR_ARG) {
        return 4;
    }
    bad.grid_w = 11; /* 110 cells > ND_POST_MAX_CELLS */
    if (nd_postprocess(zeros, zeros, &bad, det, 1) != ND_POST_ERR_PARAMS) {
        return 5;
    }
    bad = harness_params[0];
    bad.iou_den = 0;
    if (nd_postprocess(zeros, zeros, &bad, det, 1) != ND_POST_ERR_PARAMS) {
        return 6;
    }
    bad = harness_params[0];
    bad.coord_frac_bits = 11;
    if (nd_postprocess(zeros, zeros, &bad, det, 1) != ND_POST_ERR_PARAMS) {
        return 7;
    }
    bad = harness_params[0];
    bad.exp_table[0] = 0;
    if (nd_postprocess(zeros, zeros, &bad, det, 1) != ND_POST_ERR_PARAMS) {
        return 8;
    }
    bad = harness_params[0];
    bad.boxes_bin_stride = -1;
    if (nd_postprocess(zeros, zeros, &bad, det, 1) != ND_POST_ERR_PARAMS) {
        return 9;
    }
    /* capacity 0 needs no output buffer and touches no tensor */
    if (nd_postprocess(zeros, zeros, &harness_params[0], NULL, 0) != 0) {
        return 10;
    }
    return 0;
}

int main(int argc, char **argv)
{
    FILE *f;
    unsigned char head[3];
    int rc = self_check();
    if (rc != 0) {
        printf("self-check %d failed\n", rc);
        return 1;
    }
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
        printf("usage: harness VECTORS\n");
        return 2;
    }
    while (fread(head, 1, sizeof head, f) == sizeof head) {
        unsigned idx = head[0];
        size_t cap = (size_t)head[1] | ((size_t)head[2] << 8);
        int8_t *scores = malloc(harness_scores_bytes);
        int8_t *boxes = malloc(harness_boxes_bytes);
        nd_detection_t *out = cap ? malloc(cap * sizeof *out) : NULL;
        int n, i;
        if (scores == NULL || boxes == NULL || (cap && out == NULL) || idx >= harness_param_count ||
            fread(scores, 1, harness_scores_bytes, f) != harness_scores_bytes ||
            fread(boxes, 1, harness_boxes_bytes, f) != harness_boxes_bytes) {
            printf("bad record\n");
            return 3;
        }
        n = nd_postprocess(scores, boxes, &harness_params[idx], out, cap);
        printf("%d", n);
        for (i = 0; i < n; ++i) {
            printf(" %ld %ld %ld %ld %u %u %d", (long)out[i].x1, (long)out[i].y1, (long)out[i].x2, (long)out[i].y2,
                   (unsigned)out[i].cell, (unsigned)out[i].class_id, (int)out[i].score);
        }
        printf("\n");
        free(scores);
        free(boxes);
        free(out);
    }
    fclose(f);
    return 0;
}
