/* Dense host arrays shared by the npy and IDX codecs: element count and release. */
#include "array.h"

#include <stdlib.h>
#include <string.h>

int64_t npe_array_numel(const npe_array *a)
{
    /* The codecs only build arrays whose size they checked, but a caller may fill the struct by
     * hand: a negative dimension or a product past INT64_MAX gives -1 rather than overflowing. */
    int nd = a->ndim < NPE_MAX_DIMS ? a->ndim : NPE_MAX_DIMS;
    for (int i = 0; i < nd; i++) {
        if (a->shape[i] < 0)
            return -1;
        if (a->shape[i] == 0)
            return 0;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (n > INT64_MAX / a->shape[i])
            return -1;
        n *= a->shape[i];
    }
    return n;
}

void npe_array_free(npe_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof(*a));
}
