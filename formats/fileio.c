/* File helpers: read-only maps of inputs, atomic temp+rename writes of outputs. */
#define _GNU_SOURCE
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int npe_map_file(const char *path, npe_map *m, npe_error *err)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return npe_error_set(err, NPE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return npe_error_set(err, NPE_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return npe_error_set(err, NPE_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return npe_error_set(err, NPE_EIO, "%s: cannot map: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void npe_unmap_file(npe_map *m)
{
    if (m && m->data)
        munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

int npe_afile_open(npe_afile *af, const char *path, npe_error *err)
{
    memset(af, 0, sizeof(*af));
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp = malloc(n + 16);
    if (!af->path || !af->tmp) {
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof(*af));
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(af->tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof(*af));
        return npe_error_set(err, NPE_EIO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof(*af));
        return npe_error_set(err, NPE_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

int npe_afile_write(npe_afile *af, const void *data, size_t size, npe_error *err)
{
    if (size && fwrite(data, 1, size, af->f) != size)
        return npe_error_set(err, NPE_EIO, "%s: write failed: %s", af->path, strerror(errno));
    af->written += size;
    return 0;
}

int npe_afile_commit(npe_afile *af, npe_error *err)
{
    int rc = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        rc = npe_error_set(err, NPE_EIO, "%s: write failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && !rc)
        rc = npe_error_set(err, NPE_EIO, "%s: close failed: %s", af->path, strerror(errno));
    af->f = NULL;
    if (!rc && rename(af->tmp, af->path) != 0)
        rc = npe_error_set(err, NPE_EIO, "%s: cannot rename temporary file into place: %s", af->path,
                           strerror(errno));
    if (rc)
        unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof(*af));
    return rc;
}

void npe_afile_abort(npe_afile *af)
{
    if (!af)
        return;
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof(*af));
}

int npe_read_file(const char *path, size_t max_size, char **out, size_t *size, npe_error *err)
{
    *out = NULL;
    if (size)
        *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return npe_error_set(err, NPE_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_size) {
                free(buf);
                fclose(f);
                return npe_error_set(err, NPE_ELIMIT, "%s: larger than %zu bytes", path, max_size);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return npe_error_set(err, NPE_EIO, "%s: read failed", path);
    }
    if (len > max_size) {
        free(buf);
        return npe_error_set(err, NPE_ELIMIT, "%s: larger than %zu bytes", path, max_size);
    }
    buf[len] = '\0';
    *out = buf;
    if (size)
        *size = len;
    return 0;
}
