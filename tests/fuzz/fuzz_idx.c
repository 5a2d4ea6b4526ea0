/* libFuzzer target for the IDX reader (plain and gzip): parse arbitrary bytes, check what a
 * success promises, free everything. */
#include <stdint.h>
#include <stdlib.h>

#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_array a;
    npe_error err = {0};
    if (npe_idx_parse(data, size, "fuzz.idx", &a, &err) == 0) {
        int64_t numel = npe_array_numel(&a);
        if (a.ndim < 1 || numel < 0 || (uint64_t)numel * npe_dtype_size(a.dtype) != a.nbytes)
            abort();
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < a.nbytes; i++)
            sink ^= ((unsigned char *)a.data)[i];
        (void)sink;
    } else if (a.data || !err.msg[0]) {
        abort();
    }
    npe_array_free(&a);
    return 0;
}
