/* IDX reader (the MNIST family's format): a 4-byte magic, big-endian u32 dimensions, then
 * big-endian elements; gzip input is inflated here with the output size held to the header's. */
#include "idx.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fileio.h"

/* Largest array accepted from a gzip stream, whose size is unknown until inflated. Plain
 * input needs no such limit: its size is checked against the bytes present. */
#define GZ_MAX_BYTES ((uint64_t)4 << 30)
/* First output buffer for gzip data; it doubles as data actually arrives, so a header that
 * promises gigabytes over a few bytes of input never gets its allocation. */
#define GZ_FIRST_CHUNK ((size_t)1 << 20)

static const struct {
    unsigned char code;
    npe_dtype dtype;
} types[] = {
    {0x08, NPE_DTYPE_U8},  {0x09, NPE_DTYPE_I8},  {0x0B, NPE_DTYPE_I16},
    {0x0C, NPE_DTYPE_I32}, {0x0D, NPE_DTYPE_F32}, {0x0E, NPE_DTYPE_F64},
};

typedef struct idx_header {
    npe_dtype dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    uint64_t nbytes; /* valid only when !overflow */
    int overflow;
} idx_header;

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void big_endian_to_native(unsigned char *p, size_t nbytes, size_t isz)
{
    if (isz < 2 || !host_is_little())
        return;
    for (size_t i = 0; i + isz <= nbytes; i += isz)
        for (size_t a = i, b = i + isz - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static void format_dims(char *buf, size_t cap, const idx_header *h)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < h->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? "x" : "", h->shape[i]);
}

/* The first 4 bytes: 0, 0, type code, number of dimensions. */
static int check_magic(const unsigned char *m, const char *name, idx_header *h, npe_error *err)
{
    if (m[0] != 0 || m[1] != 0)
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: expected the IDX magic 00 00 at offset 0, found %02x %02x", name,
                             m[0], m[1]);
    size_t t = 0;
    while (t < sizeof(types) / sizeof(types[0]) && types[t].code != m[2])
        t++;
    if (t == sizeof(types) / sizeof(types[0]))
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: expected an IDX element type (08 u8, 09 i8, 0B i16, 0C i32, "
                             "0D f32, 0E f64) at offset 2, found %02X",
                             name, m[2]);
    h->dtype = types[t].dtype;
    h->ndim = m[3];
    if (h->ndim == 0)
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: expected 1 to %d dimensions at offset 3, found 0", name,
                             NPE_MAX_DIMS);
    if (h->ndim > NPE_MAX_DIMS)
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "%s: IDX array has %d dimensions, at most %d are supported", name,
                             h->ndim, NPE_MAX_DIMS);
    return 0;
}

/* The dimensions, and numel * itemsize computed without overflow. */
static void read_dims(const unsigned char *d, idx_header *h)
{
    int zero = 0;
    for (int i = 0; i < h->ndim; i++) {
        const unsigned char *p = d + 4 * i;
        h->shape[i] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
                                (uint32_t)p[3]);
        if (h->shape[i] == 0)
            zero = 1;
    }
    h->overflow = 0;
    h->nbytes = 0;
    if (zero)
        return;
    uint64_t n = npe_dtype_size(h->dtype);
    for (int i = 0; i < h->ndim; i++) {
        if (n > UINT64_MAX / (uint64_t)h->shape[i]) {
            h->overflow = 1;
            return;
        }
        n *= (uint64_t)h->shape[i];
    }
    h->nbytes = n;
}

static int size_error(const char *name, const idx_header *h, const char *holds, uint64_t have,
                      npe_error *err)
{
    char dims[NPE_MAX_DIMS * 12], need[32];
    format_dims(dims, sizeof(dims), h);
    if (h->overflow)
        snprintf(need, sizeof(need), "more than 2^64");
    else
        snprintf(need, sizeof(need), "%" PRIu64, h->nbytes);
    return npe_error_set(err, NPE_EFORMAT, "%s: %s %" PRIu64 " bytes, header dims %s %s need %s",
                         name, holds, have, dims, npe_dtype_name(h->dtype), need);
}

static void fill_out(npe_array *out, const idx_header *h, unsigned char *data)
{
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    memcpy(out->shape, h->shape, sizeof(h->shape[0]) * (size_t)h->ndim);
    out->data = data;
    out->nbytes = (size_t)h->nbytes;
    big_endian_to_native(data, out->nbytes, npe_dtype_size(h->dtype));
}

static int parse_plain(const unsigned char *b, size_t size, const char *name, npe_array *out,
                       npe_error *err)
{
    idx_header h;
    if (size < 4)
        return npe_error_set(err, NPE_EFORMAT, "%s: truncated: %zu bytes, an IDX header needs at "
                             "least 4", name, size);
    int rc = check_magic(b, name, &h, err);
    if (rc)
        return rc;
    size_t hdr = 4 + 4 * (size_t)h.ndim;
    if (size < hdr)
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: truncated: %zu bytes, a %d-dimensional IDX header needs %zu",
                             name, size, h.ndim, hdr);
    read_dims(b + 4, &h);
    uint64_t have = size - hdr;
    if (h.overflow || h.nbytes != have)
        return size_error(name, &h, "data holds", have, err);
    unsigned char *data = malloc(h.nbytes ? (size_t)h.nbytes : 1);
    if (!data)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory for %" PRIu64 " bytes", name,
                             h.nbytes);
    if (h.nbytes)
        memcpy(data, b + hdr, (size_t)h.nbytes);
    fill_out(out, &h, data);
    return 0;
}

/* ---- gzip ---------------------------------------------------------------------------------- */

typedef struct gz {
    z_stream z;
    const unsigned char *in; /* input not yet handed to zlib */
    size_t in_left;
    size_t size;             /* whole compressed size, for messages */
    int ended;               /* the last gzip member is complete */
    const char *name;
    npe_error *err;
} gz;

static void gz_feed(gz *g)
{
    if (g->z.avail_in == 0 && g->in_left) {
        uInt n = g->in_left > UINT_MAX ? UINT_MAX : (uInt)g->in_left;
        g->z.next_in = (Bytef *)g->in;
        g->z.avail_in = n;
        g->in += n;
        g->in_left -= n;
    }
}

static size_t gz_offset(const gz *g)
{
    return g->size - g->in_left - g->z.avail_in;
}

/* After a member ends: another member may follow (gzip allows concatenation, as does Python's
 * gzip module), and so may zero padding; anything else is an error. */
static int gz_member_end(gz *g)
{
    for (;;) {
        gz_feed(g);
        if (g->z.avail_in == 0) {
            g->ended = 1;
            return 0;
        }
        if (g->z.next_in[0] != 0)
            break;
        g->z.next_in++;
        g->z.avail_in--;
    }
    if (g->z.next_in[0] == 0x1f) {
        if (inflateReset(&g->z) != Z_OK)
            return npe_error_set(g->err, NPE_EFORMAT, "%s: cannot restart gzip at offset %zu",
                                 g->name, gz_offset(g));
        return 0;
    }
    return npe_error_set(g->err, NPE_EFORMAT,
                         "%s: expected another gzip member or the end of the file at offset %zu, "
                         "found byte %02x",
                         g->name, gz_offset(g), g->z.next_in[0]);
}

/* Inflate into dst[0..n); *got says how much arrived. Stops short only at the end of the data. */
static int gz_read(gz *g, unsigned char *dst, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n && !g->ended) {
        gz_feed(g);
        size_t want = n - *got;
        g->z.next_out = dst + *got;
        g->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before = g->z.avail_out;
        int zr = inflate(&g->z, Z_NO_FLUSH);
        *got += before - g->z.avail_out;
        if (zr == Z_STREAM_END) {
            int rc = gz_member_end(g);
            if (rc)
                return rc;
        } else if (zr == Z_BUF_ERROR) {
            /* No progress with room to write: the input ran out inside a member. */
            return npe_error_set(g->err, NPE_EFORMAT,
                                 "%s: gzip data truncated: the file ends at offset %zu inside a "
                                 "gzip member",
                                 g->name, g->size);
        } else if (zr != Z_OK) {
            return npe_error_set(g->err, NPE_EFORMAT, "%s: corrupt gzip data near offset %zu: %s",
                                 g->name, gz_offset(g), g->z.msg ? g->z.msg : zError(zr));
        }
    }
    return 0;
}

static int parse_gzip(const unsigned char *b, size_t size, const char *name, npe_array *out,
                      npe_error *err)
{
    gz g;
    memset(&g, 0, sizeof(g));
    g.in = b;
    g.in_left = size;
    g.size = size;
    g.name = name;
    g.err = err;
    if (inflateInit2(&g.z, 15 + 16) != Z_OK)
        return npe_error_set(err, NPE_ENOMEM, "%s: cannot initialise zlib", name);

    idx_header h;
    unsigned char head[4 + 4 * NPE_MAX_DIMS];
    unsigned char *data = NULL;
    size_t got, cap, have;
    int rc = gz_read(&g, head, 4, &got);
    if (rc)
        goto out_end_inflate;
    if (got < 4) {
        rc = npe_error_set(err, NPE_EFORMAT, "%s: gzip data holds %zu bytes, an IDX header needs "
                           "at least 4", name, got);
        goto out_end_inflate;
    }
    if ((rc = check_magic(head, name, &h, err)))
        goto out_end_inflate;
    size_t dlen = 4 * (size_t)h.ndim;
    if ((rc = gz_read(&g, head + 4, dlen, &got)))
        goto out_end_inflate;
    if (got < dlen) {
        rc = npe_error_set(err, NPE_EFORMAT,
                           "%s: gzip data holds %zu bytes, a %d-dimensional IDX header needs %zu",
                           name, 4 + got, h.ndim, 4 + dlen);
        goto out_end_inflate;
    }
    read_dims(head + 4, &h);
    if (h.overflow || h.nbytes > GZ_MAX_BYTES || h.nbytes > SIZE_MAX) {
        char dims[NPE_MAX_DIMS * 12];
        format_dims(dims, sizeof(dims), &h);
        rc = npe_error_set(err, NPE_ELIMIT,
                           "%s: header dims %s %s need %s%" PRIu64 " bytes, over the %" PRIu64
                           " accepted from gzip input",
                           name, dims, npe_dtype_name(h.dtype), h.overflow ? "more than " : "",
                           h.overflow ? UINT64_MAX : h.nbytes, GZ_MAX_BYTES);
        goto out_end_inflate;
    }

    size_t need = (size_t)h.nbytes;
    cap = need < GZ_FIRST_CHUNK ? need : GZ_FIRST_CHUNK;
    data = malloc(cap ? cap : 1);
    if (!data) {
        rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", name);
        goto out_end_inflate;
    }
    have = 0;
    for (;;) {
        if ((rc = gz_read(&g, data + have, cap - have, &got)))
            goto out_free_data;
        have += got;
        if (have < cap || cap == need)
            break;
        size_t ncap = cap > need / 2 ? need : cap * 2;
        unsigned char *nd = realloc(data, ncap);
        if (!nd) {
            rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory for %zu bytes", name, ncap);
            goto out_free_data;
        }
        data = nd;
        cap = ncap;
    }
    if (have < need) {
        rc = size_error(name, &h, "gzip data holds", have, err);
        goto out_free_data;
    }
    /* One more byte must not exist: this also stops a stream that inflates far past the
     * header's promise after reading just one byte of the excess. */
    unsigned char extra;
    if ((rc = gz_read(&g, &extra, 1, &got)))
        goto out_free_data;
    if (got) {
        rc = size_error(name, &h, "gzip data holds more than", need, err);
        goto out_free_data;
    }
    inflateEnd(&g.z);
    fill_out(out, &h, data);
    return 0;

out_free_data:
    free(data);
out_end_inflate:
    inflateEnd(&g.z);
    return rc;
}

int npe_idx_parse(const void *buf, size_t size, const char *name, npe_array *out, npe_error *err)
{
    const unsigned char *b = buf;
    memset(out, 0, sizeof(*out));
    if (!name)
        name = "<idx>";
    if (size >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return parse_gzip(b, size, name, out, err);
    return parse_plain(b, size, name, out, err);
}

int npe_idx_load(const char *path, npe_array *out, npe_error *err)
{
    memset(out, 0, sizeof(*out));
    npe_map m;
    int rc = npe_map_file(path, &m, err);
    if (rc)
        return rc;
    rc = npe_idx_parse(m.data ? (const void *)m.data : (const void *)"", m.size, path, out, err);
    npe_unmap_file(&m);
    return rc;
}
