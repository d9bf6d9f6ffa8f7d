/* Test-only: run nd_postprocess over many tensor pairs in one ctypes call (tests/test_postprocess.py), so the
 * 10,000-pair C-vs-Python comparison spends its time in the Python model, not in ctypes overhead. */
#include "nd_postprocess.h"

int nd_post_batch(const int8_t *scores, size_t scores_len, const int8_t *boxes, size_t boxes_len, size_t n,
                  const nd_post_params_t *const *params, const uint16_t *capacity, nd_detection_t *out,
                  size_t out_stride, int *counts);

int nd_post_batch(const int8_t *scores, size_t scores_len, const int8_t *boxes, size_t boxes_len, size_t n,
                  const nd_post_params_t *const *params, const uint16_t *capacity, nd_detection_t *out,
                  size_t out_stride, int *counts)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        size_t cap = capacity[i] < out_stride ? capacity[i] : out_stride;
        counts[i] =
            nd_postprocess(scores + i * scores_len, boxes + i * boxes_len, params[i], out + i * out_stride, cap);
        if (counts[i] < 0) {
            return counts[i];
        }
    }
    return 0;
}
