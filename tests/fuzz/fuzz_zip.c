/* Fuzz target for the zip reader: open the bytes as an archive, list every entry, view and
 * read each one (1 MiB limit), close. */
#include <stdint.h>
#include <stdlib.h>

#include "zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_zip_reader *z;
    npe_error err = {0};
    if (npe_zip_open_mem(data, size, "fuzz.zip", &z, &err) != 0)
        return 0;
    size_t n = npe_zip_count(z);
    for (size_t i = 0; i < n; i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        if (npe_zip_find(z, e->name) != e)
            abort(); /* names are unique, so lookup must find this very entry */
        const void *v;
        if (npe_zip_view(z, e, &v, &err) == 0 && e->size) {
            /* Touch both ends of the view: the reader promised they are inside the input. */
            volatile uint8_t sink = ((const uint8_t *)v)[0];
            sink = ((const uint8_t *)v)[e->size - 1];
            (void)sink;
        }
        void *buf;
        size_t len;
        if (npe_zip_read(z, e, 1u << 20, &buf, &len, &err) == 0) {
            if (len != e->size || ((const char *)buf)[len] != '\0')
                abort();
            free(buf);
        }
    }
    npe_zip_close(z);
    return 0;
}
