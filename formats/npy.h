/* NumPy .npy codec: versions 1.0, 2.0 and 3.0 headers; float16/32/64, int8/16/32/64, uint8 and
 * bool, either byte order (converted to native); Fortran order is converted to C order. */
#ifndef NPE_FORMATS_NPY_H
#define NPE_FORMATS_NPY_H

#include "array.h"
#include "error.h"

int npe_npy_load(const char *path, npe_array *out, npe_error *err);
/* Parse an in-memory .npy image; name is used in messages. The data is copied into out. */
int npe_npy_parse(const void *buf, size_t size, const char *name, npe_array *out, npe_error *err);
/* Write a version 1.0 file (2.0 if the header needs it), atomically. */
int npe_npy_save(const char *path, const npe_array *a, npe_error *err);

#endif
