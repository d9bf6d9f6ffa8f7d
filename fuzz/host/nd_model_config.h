/* Model facts for the host fuzzing build of nd_app.c: the shape of what generate renders, values made up. */
#ifndef ND_MODEL_CONFIG_H
#define ND_MODEL_CONFIG_H
#include <stdint.h>
#include "nd_postprocess.h"
#define ND_MODEL_SHA256_HEX "0000000000000000000000000000000000000000000000000000000000000000"
#define ND_FIRMWARE_VERSION "fuzz"
#define ND_ENGINE_NAME "fuzz"
#define ND_INPUT_ZERO_POINT -14
#define ND_INPUT_SCALE_BITS 0x3c98d9c4u
#define ND_SCORES_ZERO_POINT -128
#define ND_SCORES_SCALE_BITS 0x3b800000u
#define ND_BOXES_ZERO_POINT 18
#define ND_BOXES_SCALE_BITS 0x3d9503f0u
#define ND_MAX_DETECTIONS 100
extern const int8_t nd_input_lut[3][256];
extern const nd_post_params_t nd_post_params;
#endif
