/* IDX codec (MNIST, Fashion-MNIST): big-endian u8/i8/i16/i32/f32/f64 arrays, read plain or
 * gzip-compressed (detected by content, not by name), converted to native byte order. */
#ifndef NPE_FORMATS_IDX_H
#define NPE_FORMATS_IDX_H

#include "array.h"
#include "error.h"

int npe_idx_load(const char *path, npe_array *out, npe_error *err);
/* Parse an in-memory IDX image, gzip-compressed or plain. */
int npe_idx_parse(const void *buf, size_t size, const char *name, npe_array *out, npe_error *err);

#endif
