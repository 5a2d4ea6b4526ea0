/* File helpers every codec uses: read-only memory maps of inputs and atomic writes of outputs
 * (a temporary file beside the target, renamed over it only once complete). */
#ifndef NPE_FORMATS_FILEIO_H
#define NPE_FORMATS_FILEIO_H

#include <stdio.h>
#include <stddef.h>

#include "error.h"

typedef struct npe_map {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} npe_map;

/* Map path read-only. An empty file gives data == NULL, size == 0. */
int npe_map_file(const char *path, npe_map *m, npe_error *err);
void npe_unmap_file(npe_map *m);

typedef struct npe_afile {
    FILE *f;
    char *path; /* final name */
    char *tmp;  /* temporary name in the same directory */
    unsigned long long written;
} npe_afile;

/* Create a temporary file next to path; nothing at path changes until npe_afile_commit. */
int npe_afile_open(npe_afile *af, const char *path, npe_error *err);
int npe_afile_write(npe_afile *af, const void *data, size_t size, npe_error *err);
/* Flush, fsync, close and rename over path. On failure the temporary file is removed. */
int npe_afile_commit(npe_afile *af, npe_error *err);
/* Close and remove the temporary file (safe after a failed commit, and on a zeroed struct). */
void npe_afile_abort(npe_afile *af);

/* Read a whole (small) file into a NUL-terminated malloc'd buffer; refuses files over max_size. */
int npe_read_file(const char *path, size_t max_size, char **out, size_t *size, npe_error *err);

#endif
