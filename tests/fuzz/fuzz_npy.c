/* libFuzzer target for the .npy reader: parse arbitrary bytes, check what a success promises,
 * free everything. */
#include <stdint.h>
#include <stdlib.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_array a;
    npe_error err = {0};
    if (npe_npy_parse(data, size, "fuzz.npy", &a, &err) == 0) {
        /* a parsed array never claims more bytes than its shape holds, nor more than the input */
        int64_t numel = npe_array_numel(&a);
        if (numel < 0 || (uint64_t)numel * npe_dtype_size(a.dtype) != a.nbytes || a.nbytes > size)
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
