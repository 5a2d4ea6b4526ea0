/* A dense row-major array in host memory: what the npy and IDX codecs produce and consume. */
#ifndef NPE_FORMATS_ARRAY_H
#define NPE_FORMATS_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include <npengine/npengine.h>

typedef struct npe_array {
    npe_dtype dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    void *data;    /* malloc'd, native byte order, C order */
    size_t nbytes; /* numel * dtype size */
} npe_array;

/* Product of the shape (1 for ndim == 0). */
int64_t npe_array_numel(const npe_array *a);
void npe_array_free(npe_array *a); /* frees data, zeroes *a; NULL accepted */

#endif
