/* libFuzzer target: the label PNG decoder (segmentation masks). */
#include <stdint.h>
#include <stdlib.h>

#include "label_png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_error err = {0};
    int32_t *v = NULL;
    int w, h;
    if (npe_label_png_decode(data, size, "fuzz.png", &v, &w, &h, &err) == 0)
        free(v);
    return 0;
}
