/* Label PNG decoder: grayscale (1/2/4/8/16-bit) and palette (1/2/4/8-bit) PNGs whose pixel values
 * are class indices (segmentation masks), not interlaced; chunk CRCs checked; the header's size is
 * checked against a limit before allocating. */
#ifndef NPE_FORMATS_LABEL_PNG_H
#define NPE_FORMATS_LABEL_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Decode buf[0..size) (buf may be NULL when size is 0). *values receives w*h class indices,
 * row-major, malloc'd (free it). name is used in messages. */
int npe_label_png_decode(const void *buf, size_t size, const char *name, int32_t **values,
                         int *w, int *h, npe_error *err);

#endif
