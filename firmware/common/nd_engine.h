/* The inference engine as the application sees it.  TFLM (engine_tflm.cc) and the AOT engine
 * (engine_aot.c around the generated nd_model_run) both implement exactly this, so nd_app.c is one
 * file for every engine and board. */
#ifndef ND_ENGINE_H
#define ND_ENGINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepare the engine (allocate tensors, check the model).  0 on success, negative on failure. */
int nd_engine_init(void);

/* Input tensor 1x320x320x3 int8 NHWC (BGR), valid after nd_engine_init. */
int8_t *nd_engine_input(void);

/* Output tensors after a successful nd_engine_invoke: scores 1x10x10x80, boxes 1x10x10x32 (int8 NHWC). */
const int8_t *nd_engine_scores(void);
const int8_t *nd_engine_boxes(void);

/* Run one inference.  0 on success, negative on failure. */
int nd_engine_invoke(void);

/* "tflm" or "aot"; the arena bytes the engine actually uses (reported in INFO). */
const char *nd_engine_name(void);
uint32_t nd_engine_arena_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* ND_ENGINE_H */
