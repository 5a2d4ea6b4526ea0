/* NumPy .npy reader and writer: the header is a Python dict literal, parsed here by hand with
 * every length and dimension checked against the bytes actually present. */
#include "npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ALIGN 64
/* numpy leaves room after the header so the first dimension can grow in place; copying the
 * rule makes our files byte-identical to np.save's. */
#define GROWTH_AXIS_MAX_DIGITS 21
/* Depth of nested tuples/lists/dicts tolerated when skipping a value we do not understand
 * (a structured descr); real headers nest two or three levels. */
#define SKIP_DEPTH_MAX 32

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(unsigned char *p, size_t n, size_t isz)
{
    if (isz < 2)
        return;
    for (size_t i = 0; i < n; i++, p += isz)
        for (size_t a = 0, b = isz - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* "(2, 3)", "(5,)" or "()" like Python's repr of the shape tuple. */
static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t len = 0;
    len += (size_t)snprintf(buf + len, cap - len, "(");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, ndim == 1 ? ",)" : ")");
}

/* ---- Header parsing ------------------------------------------------------------------------ */

typedef struct hdr {
    const char *s;
    size_t n, pos;
    size_t base; /* file offset of s[0], for messages */
    const char *name;
    npe_error *err;
} hdr;

static void skip_ws(hdr *h)
{
    while (h->pos < h->n && (h->s[h->pos] == ' ' || h->s[h->pos] == '\t' || h->s[h->pos] == '\n' ||
                             h->s[h->pos] == '\r'))
        h->pos++;
}

/* What the parser is looking at, for "found ..." in messages. */
static const char *found(const hdr *h, char *buf, size_t cap)
{
    if (h->pos >= h->n)
        return "the end of the header";
    unsigned char c = (unsigned char)h->s[h->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

static int hdr_fail(hdr *h, const char *expected)
{
    char buf[32];
    return npe_error_set(h->err, NPE_EFORMAT, "%s: header at offset %zu: expected %s, found %s",
                         h->name, h->base + h->pos, expected, found(h, buf, sizeof(buf)));
}

static int expect_char(hdr *h, char c, const char *what)
{
    skip_ws(h);
    if (h->pos >= h->n || h->s[h->pos] != c)
        return hdr_fail(h, what);
    h->pos++;
    return 0;
}

/* A quoted Python string; [*start, *start + *len) is its raw text between the quotes. Escapes
 * are skipped over, not decoded: the strings we compare ('descr', '<f4') never contain any. */
static int parse_str(hdr *h, size_t *start, size_t *len)
{
    skip_ws(h);
    if (h->pos < h->n && (h->s[h->pos] == 'u' || h->s[h->pos] == 'b') && h->pos + 1 < h->n &&
        (h->s[h->pos + 1] == '\'' || h->s[h->pos + 1] == '"'))
        h->pos++;
    if (h->pos >= h->n || (h->s[h->pos] != '\'' && h->s[h->pos] != '"'))
        return hdr_fail(h, "a quoted string");
    char q = h->s[h->pos];
    size_t open = h->pos++;
    while (h->pos < h->n && h->s[h->pos] != q && h->s[h->pos] != '\n') {
        if (h->s[h->pos] == '\\' && h->pos + 1 < h->n)
            h->pos++;
        h->pos++;
    }
    if (h->pos >= h->n || h->s[h->pos] != q) {
        h->pos = open;
        return hdr_fail(h, "a string closed on the same line");
    }
    *start = open + 1;
    *len = h->pos - open - 1;
    h->pos++;
    return 0;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '+' || c == '-';
}

/* Skip any Python literal (used to tell a structured descr's extent so it can be named). */
static int skip_value(hdr *h, int depth)
{
    if (depth > SKIP_DEPTH_MAX)
        return npe_error_set(h->err, NPE_ELIMIT, "%s: header at offset %zu: nested deeper than %d",
                             h->name, h->base + h->pos, SKIP_DEPTH_MAX);
    skip_ws(h);
    if (h->pos >= h->n)
        return hdr_fail(h, "a value");
    char c = h->s[h->pos];
    if (c == '\'' || c == '"') {
        size_t a, b;
        return parse_str(h, &a, &b);
    }
    if (c == '(' || c == '[' || c == '{') {
        char close = c == '(' ? ')' : c == '[' ? ']' : '}';
        h->pos++;
        for (;;) {
            skip_ws(h);
            if (h->pos < h->n && h->s[h->pos] == close) {
                h->pos++;
                return 0;
            }
            int rc = skip_value(h, depth + 1);
            if (rc)
                return rc;
            skip_ws(h);
            if (h->pos < h->n && (h->s[h->pos] == ',' || h->s[h->pos] == ':'))
                h->pos++;
            else if (h->pos >= h->n || h->s[h->pos] != close)
                return hdr_fail(h, "',' or a closing bracket");
        }
    }
    if (!is_word(c))
        return hdr_fail(h, "a value");
    while (h->pos < h->n && is_word(h->s[h->pos]))
        h->pos++;
    return 0;
}

static int parse_bool(hdr *h, int *out)
{
    skip_ws(h);
    size_t rest = h->n - h->pos;
    const char *p = h->s + h->pos;
    if (rest >= 4 && memcmp(p, "True", 4) == 0 && (rest == 4 || !is_word(p[4]))) {
        *out = 1;
        h->pos += 4;
        return 0;
    }
    if (rest >= 5 && memcmp(p, "False", 5) == 0 && (rest == 5 || !is_word(p[5]))) {
        *out = 0;
        h->pos += 5;
        return 0;
    }
    return hdr_fail(h, "True or False for 'fortran_order'");
}

static int parse_shape(hdr *h, int64_t *shape, int *ndim)
{
    int rc = expect_char(h, '(', "'(' opening the 'shape' tuple");
    if (rc)
        return rc;
    int n = 0, trailing_comma = 0;
    for (;;) {
        skip_ws(h);
        if (h->pos < h->n && h->s[h->pos] == ')') {
            h->pos++;
            break;
        }
        size_t at = h->pos;
        int neg = 0;
        if (h->pos < h->n && h->s[h->pos] == '-') {
            neg = 1;
            h->pos++;
        }
        if (h->pos >= h->n || h->s[h->pos] < '0' || h->s[h->pos] > '9')
            return hdr_fail(h, "a dimension (non-negative integer) in 'shape'");
        uint64_t v = 0;
        int big = 0;
        while (h->pos < h->n && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
            unsigned d = (unsigned)(h->s[h->pos++] - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10)
                big = 1;
            else
                v = v * 10 + d;
        }
        /* Python 2 wrote longs as "5L"; numpy still reads those files. */
        if (h->pos < h->n && h->s[h->pos] == 'L')
            h->pos++;
        int len = (int)(h->pos - at);
        if (neg && (v != 0 || big))
            return npe_error_set(h->err, NPE_EFORMAT,
                                 "%s: header at offset %zu: expected a non-negative dimension in "
                                 "'shape', found %.*s",
                                 h->name, h->base + at, len, h->s + at);
        if (big)
            return npe_error_set(h->err, NPE_EFORMAT,
                                 "%s: header at offset %zu: expected a dimension below 2^63 in "
                                 "'shape', found %.*s",
                                 h->name, h->base + at, len, h->s + at);
        if (n == NPE_MAX_DIMS)
            return npe_error_set(h->err, NPE_EUNSUPPORTED,
                                 "%s: 'shape' has more than %d dimensions, the most supported",
                                 h->name, NPE_MAX_DIMS);
        shape[n++] = (int64_t)v;
        skip_ws(h);
        trailing_comma = 0;
        if (h->pos < h->n && h->s[h->pos] == ',') {
            h->pos++;
            trailing_comma = 1;
        } else if (h->pos >= h->n || h->s[h->pos] != ')') {
            return hdr_fail(h, "',' or ')' in 'shape'");
        }
    }
    /* "(5)" is the integer 5 in Python, not a tuple: numpy refuses it, and so do we. */
    if (n == 1 && !trailing_comma) {
        h->pos--;
        return hdr_fail(h, "',' making 'shape' a tuple");
    }
    *ndim = n;
    return 0;
}

typedef struct npy_header {
    int have_descr, have_fortran, have_shape;
    size_t descr_at, descr_len; /* raw descr text in the header */
    int descr_is_str;
    int fortran;
    int64_t shape[NPE_MAX_DIMS];
    int ndim;
} npy_header;

static int key_is(const hdr *h, size_t start, size_t len, const char *key)
{
    return len == strlen(key) && memcmp(h->s + start, key, len) == 0;
}

static int parse_dict(hdr *h, npy_header *out)
{
    memset(out, 0, sizeof(*out));
    int rc = expect_char(h, '{', "'{' opening the header dict");
    if (rc)
        return rc;
    for (;;) {
        skip_ws(h);
        if (h->pos < h->n && h->s[h->pos] == '}') {
            h->pos++;
            break;
        }
        size_t kat = h->pos, ks, kl;
        if ((rc = parse_str(h, &ks, &kl)))
            return rc;
        int *seen;
        if (key_is(h, ks, kl, "descr"))
            seen = &out->have_descr;
        else if (key_is(h, ks, kl, "fortran_order"))
            seen = &out->have_fortran;
        else if (key_is(h, ks, kl, "shape"))
            seen = &out->have_shape;
        else
            return npe_error_set(h->err, NPE_EFORMAT,
                                 "%s: header at offset %zu: expected key 'descr', 'fortran_order' "
                                 "or 'shape', found '%.*s'",
                                 h->name, h->base + kat, (int)(kl > 40 ? 40 : kl), h->s + ks);
        if (*seen)
            return npe_error_set(h->err, NPE_EFORMAT,
                                 "%s: header at offset %zu: expected each key once, found '%.*s' "
                                 "twice",
                                 h->name, h->base + kat, (int)kl, h->s + ks);
        *seen = 1;
        if ((rc = expect_char(h, ':', "':' after a key")))
            return rc;
        skip_ws(h);
        if (seen == &out->have_descr) {
            size_t vat = h->pos;
            if (h->pos < h->n && (h->s[h->pos] == '\'' || h->s[h->pos] == '"')) {
                rc = parse_str(h, &out->descr_at, &out->descr_len);
                out->descr_is_str = 1;
            } else {
                rc = skip_value(h, 0);
                out->descr_at = vat;
                out->descr_len = h->pos - vat;
            }
        } else if (seen == &out->have_fortran) {
            rc = parse_bool(h, &out->fortran);
        } else {
            rc = parse_shape(h, out->shape, &out->ndim);
        }
        if (rc)
            return rc;
        skip_ws(h);
        if (h->pos < h->n && h->s[h->pos] == ',')
            h->pos++;
        else if (h->pos >= h->n || h->s[h->pos] != '}')
            return hdr_fail(h, "',' or '}' after a header entry");
    }
    skip_ws(h);
    if (h->pos != h->n)
        return hdr_fail(h, "only padding after the header dict");
    if (!out->have_descr || !out->have_fortran || !out->have_shape)
        return npe_error_set(h->err, NPE_EFORMAT,
                             "%s: header: expected keys 'descr', 'fortran_order' and 'shape', "
                             "found no '%s'",
                             h->name,
                             !out->have_descr     ? "descr"
                             : !out->have_fortran ? "fortran_order"
                                                  : "shape");
    return 0;
}

/* ---- dtypes -------------------------------------------------------------------------------- */

static const struct {
    char kind;
    int size;
    npe_dtype dtype;
} kinds[] = {
    {'f', 2, NPE_DTYPE_F16}, {'f', 4, NPE_DTYPE_F32}, {'f', 8, NPE_DTYPE_F64},
    {'i', 1, NPE_DTYPE_I8},  {'i', 2, NPE_DTYPE_I16}, {'i', 4, NPE_DTYPE_I32},
    {'i', 8, NPE_DTYPE_I64}, {'u', 1, NPE_DTYPE_U8},  {'b', 1, NPE_DTYPE_BOOL},
};

/* Map a descr such as '<f4' to a dtype; *swap says whether the data is in the other byte order. */
static int descr_to_dtype(const char *d, size_t len, npe_dtype *dt, int *swap)
{
    char order = '=';
    if (len && (d[0] == '<' || d[0] == '>' || d[0] == '=' || d[0] == '|')) {
        order = d[0];
        d++;
        len--;
    }
    if (len != 2 || d[1] < '1' || d[1] > '8')
        return -1;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == d[0] && kinds[i].size == d[1] - '0') {
            *dt = kinds[i].dtype;
            *swap = kinds[i].size > 1 && ((order == '<' && !host_is_little()) ||
                                          (order == '>' && host_is_little()));
            return 0;
        }
    return -1;
}

static const char *dtype_descr(npe_dtype t)
{
    int le = host_is_little();
    switch (t) {
    case NPE_DTYPE_F16: return le ? "<f2" : ">f2";
    case NPE_DTYPE_F32: return le ? "<f4" : ">f4";
    case NPE_DTYPE_F64: return le ? "<f8" : ">f8";
    case NPE_DTYPE_I16: return le ? "<i2" : ">i2";
    case NPE_DTYPE_I32: return le ? "<i4" : ">i4";
    case NPE_DTYPE_I64: return le ? "<i8" : ">i8";
    case NPE_DTYPE_I8: return "|i1";
    case NPE_DTYPE_U8: return "|u1";
    case NPE_DTYPE_BOOL: return "|b1";
    default: return NULL;
    }
}

/* ---- Reading ------------------------------------------------------------------------------- */

/* dst (C order) <- src (Fortran order), elements of isz bytes. */
static void fortran_to_c(unsigned char *dst, const unsigned char *src, const int64_t *shape,
                         int ndim, size_t numel, size_t isz)
{
    size_t fstride[NPE_MAX_DIMS], idx[NPE_MAX_DIMS] = {0};
    size_t s = 1;
    for (int k = 0; k < ndim; k++) {
        fstride[k] = s;
        s *= (size_t)shape[k];
    }
    size_t off = 0;
    for (size_t out = 0; out < numel; out++) {
        memcpy(dst + out * isz, src + off * isz, isz);
        for (int k = ndim - 1; k >= 0; k--) {
            off += fstride[k];
            if (++idx[k] < (size_t)shape[k])
                break;
            off -= fstride[k] * (size_t)shape[k];
            idx[k] = 0;
        }
    }
}

int npe_npy_parse(const void *buf, size_t size, const char *name, npe_array *out, npe_error *err)
{
    const unsigned char *b = buf;
    memset(out, 0, sizeof(*out));
    if (!name)
        name = "<npy>";
    if (size < MAGIC_LEN || memcmp(b, MAGIC, MAGIC_LEN) != 0) {
        char found[3 * MAGIC_LEN + 1] = "";
        for (size_t i = 0; i < size && i < MAGIC_LEN; i++)
            snprintf(found + 3 * i, sizeof(found) - 3 * i, "%02x ", b[i]);
        if (found[0])
            found[strlen(found) - 1] = '\0';
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: expected the .npy magic 93 4e 55 4d 50 59 (\\x93NUMPY) at offset "
                             "0, found %s%s",
                             name, size ? found : "an empty file",
                             size && size < MAGIC_LEN ? " and the end of the file" : "");
    }
    if (size < 10)
        return npe_error_set(err, NPE_EFORMAT, "%s: truncated: %zu bytes, a .npy header needs at "
                             "least 10", name, size);
    int major = b[6], minor = b[7];
    if (!((major == 1 || major == 2 || major == 3) && minor == 0))
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "%s: .npy format version %d.%d is not supported (1.0, 2.0 and 3.0 "
                             "are)",
                             name, major, minor);
    size_t start, hlen;
    if (major == 1) {
        start = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else {
        if (size < 12)
            return npe_error_set(err, NPE_EFORMAT, "%s: truncated: %zu bytes, a version %d.0 .npy "
                                 "header needs at least 12", name, size, major);
        start = 12;
        uint32_t l = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 |
                     (uint32_t)b[11] << 24;
        if ((uint64_t)l > (uint64_t)(size - start))
            return npe_error_set(err, NPE_EFORMAT,
                                 "%s: header length %" PRIu32 " runs past the end of the file "
                                 "(%zu bytes)", name, l, size);
        hlen = l;
    }
    if (hlen > size - start)
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: header length %zu runs past the end of the file (%zu bytes)",
                             name, hlen, size);

    hdr h = {(const char *)b + start, hlen, 0, start, name, err};
    npy_header H;
    int rc = parse_dict(&h, &H);
    if (rc)
        return rc;

    const char *dtext = h.s + H.descr_at;
    int dlen = (int)(H.descr_len > 60 ? 60 : H.descr_len);
    const char *more = H.descr_len > 60 ? "..." : "";
    npe_dtype dt;
    int swap = 0;
    if (!H.descr_is_str || descr_to_dtype(dtext, H.descr_len, &dt, &swap) != 0)
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "%s: dtype %s%.*s%s%s is not supported (expected float16/32/64, "
                             "int8/16/32/64, uint8 or bool)",
                             name, H.descr_is_str ? "'" : "", dlen, dtext, more,
                             H.descr_is_str ? "'" : "");
    size_t isz = npe_dtype_size(dt);

    /* numel * itemsize without overflow; a zero dimension makes any other dimension harmless. */
    uint64_t need = 1;
    int zero = 0, overflow = 0;
    for (int i = 0; i < H.ndim; i++)
        if (H.shape[i] == 0)
            zero = 1;
    if (zero) {
        need = 0;
    } else {
        for (int i = 0; i < H.ndim && !overflow; i++) {
            if (need > UINT64_MAX / (uint64_t)H.shape[i])
                overflow = 1;
            else
                need *= (uint64_t)H.shape[i];
        }
        if (!overflow && need > UINT64_MAX / isz)
            overflow = 1;
        if (!overflow)
            need *= isz;
    }
    size_t data_at = start + hlen, have = size - data_at;
    if (overflow || need != (uint64_t)have) {
        char shp[NPE_MAX_DIMS * 22 + 4], needs[32];
        format_shape(shp, sizeof(shp), H.shape, H.ndim);
        if (overflow)
            snprintf(needs, sizeof(needs), "more than 2^64");
        else
            snprintf(needs, sizeof(needs), "%" PRIu64, need);
        return npe_error_set(err, NPE_EFORMAT,
                             "%s: data holds %zu bytes, header shape %s %s needs %s", name, have,
                             shp, npe_dtype_name(dt), needs);
    }

    size_t nbytes = (size_t)need, numel = isz ? nbytes / isz : 0;
    unsigned char *data = malloc(nbytes ? nbytes : 1);
    if (!data)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory for %zu bytes of data", name,
                             nbytes);
    if (H.fortran && H.ndim > 1)
        fortran_to_c(data, b + data_at, H.shape, H.ndim, numel, isz);
    else if (nbytes)
        memcpy(data, b + data_at, nbytes);
    if (swap)
        swap_bytes(data, numel, isz);
    if (dt == NPE_DTYPE_BOOL) /* numpy treats any non-zero byte as True; consumers expect 0/1 */
        for (size_t i = 0; i < nbytes; i++)
            data[i] = data[i] != 0;

    out->dtype = dt;
    out->ndim = H.ndim;
    memcpy(out->shape, H.shape, sizeof(H.shape[0]) * (size_t)H.ndim);
    out->data = data;
    out->nbytes = nbytes;
    return 0;
}

int npe_npy_load(const char *path, npe_array *out, npe_error *err)
{
    memset(out, 0, sizeof(*out));
    npe_map m;
    int rc = npe_map_file(path, &m, err);
    if (rc)
        return rc;
    rc = npe_npy_parse(m.data ? (const void *)m.data : (const void *)"", m.size, path, out, err);
    npe_unmap_file(&m);
    return rc;
}

/* ---- Writing ------------------------------------------------------------------------------- */

int npe_npy_save(const char *path, const npe_array *a, npe_error *err)
{
    const char *descr = dtype_descr(a->dtype);
    if (!descr)
        return npe_error_set(err, NPE_EUNSUPPORTED, "%s: cannot save dtype %s as .npy", path,
                             npe_dtype_name(a->dtype));
    if (a->ndim < 0 || a->ndim > NPE_MAX_DIMS)
        return npe_error_set(err, NPE_EINVAL, "%s: array has %d dimensions (0..%d allowed)", path,
                             a->ndim, NPE_MAX_DIMS);
    int64_t numel = npe_array_numel(a);
    size_t isz = npe_dtype_size(a->dtype);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / isz || (size_t)numel * isz != a->nbytes ||
        (a->nbytes && !a->data)) {
        char shp[NPE_MAX_DIMS * 22 + 4];
        format_shape(shp, sizeof(shp), a->shape, a->ndim);
        return npe_error_set(err, NPE_EINVAL, "%s: array of shape %s %s holds %zu bytes%s", path,
                             shp, npe_dtype_name(a->dtype), a->nbytes,
                             a->nbytes && !a->data ? " but no data" : ", which does not match");
    }

    char shp[NPE_MAX_DIMS * 22 + 4];
    format_shape(shp, sizeof(shp), a->shape, a->ndim);
    char head[512];
    int len = snprintf(head, sizeof(head), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shp);
    if (a->ndim > 0) {
        char first[24];
        int fl = snprintf(first, sizeof(first), "%" PRId64, a->shape[0]);
        for (int i = fl; i < GROWTH_AXIS_MAX_DIGITS; i++)
            head[len++] = ' ';
    }
    /* The dict, its padding and the final '\n' end at a multiple of ALIGN, so the data can be
     * mapped aligned; version 2.0 only when the length no longer fits 16 bits (never, for us,
     * with at most NPE_MAX_DIMS dimensions, but the rule is numpy's). */
    size_t hlen = (size_t)len + 1;
    size_t prefix = MAGIC_LEN + 2 + 2;
    size_t pad = ALIGN - (prefix + hlen) % ALIGN;
    int major = 1;
    if (hlen + pad > 65535) {
        major = 2;
        prefix = MAGIC_LEN + 2 + 4;
        pad = ALIGN - (prefix + hlen) % ALIGN;
    }
    size_t total = prefix + hlen + pad;
    unsigned char *hb = malloc(total);
    if (!hb)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    memcpy(hb, MAGIC, MAGIC_LEN);
    hb[6] = (unsigned char)major;
    hb[7] = 0;
    size_t field = hlen + pad;
    hb[8] = (unsigned char)field;
    hb[9] = (unsigned char)(field >> 8);
    if (major == 2) {
        hb[10] = (unsigned char)(field >> 16);
        hb[11] = (unsigned char)(field >> 24);
    }
    memcpy(hb + prefix, head, (size_t)len);
    memset(hb + prefix + len, ' ', pad);
    hb[total - 1] = '\n';

    npe_afile af;
    int rc = npe_afile_open(&af, path, err);
    if (rc)
        goto out_free_header;
    if ((rc = npe_afile_write(&af, hb, total, err)) ||
        (rc = npe_afile_write(&af, a->data, a->nbytes, err))) {
        npe_afile_abort(&af);
        goto out_free_header;
    }
    rc = npe_afile_commit(&af, err);
out_free_header:
    free(hb);
    return rc;
}
