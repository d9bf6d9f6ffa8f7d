/* Embedded images for the host fuzzing build of nd_app.c. */
#ifndef ND_IMAGES_H
#define ND_IMAGES_H
#include <stdint.h>
#define ND_NUM_IMAGES 2
extern const uint8_t *const nd_images[];
extern const char *const nd_image_names[];
#endif
