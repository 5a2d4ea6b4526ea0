/* libFuzzer target: open the bytes as a PyTorch file (zip or legacy layout), copy every tensor
 * out of it, close. */
#include "../../importers/torch_file.h"

#include <stdint.h>
#include <stdlib.h>

/* Tensors may legally be larger than their storage (stride 0); do not ask for gigabytes. */
#define MAX_COPY ((size_t)64 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_torch_file *f = NULL;
    npe_error err;
    if (npe_torch_open_mem(data, size, "fuzz", &f, &err) != 0)
        return 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        uint64_t bytes = (uint64_t)npe_torch_tensor_numel(t) * npe_dtype_size(t->dtype);
        if (bytes > MAX_COPY)
            continue;
        void *buf = malloc(bytes ? (size_t)bytes : 1);
        if (buf) {
            npe_torch_tensor_copy(f, i, buf, (size_t)bytes, &err);
            free(buf);
        }
    }
    npe_torch_close(f);
    return 0;
}
