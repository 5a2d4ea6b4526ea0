/* Conformance of the archive reader and state_dict writer against PyTorch: every archive X in
 * FIXTUREDIR comes with X.ref/X.ref.bin written by gen_fixtures.py from torch.load of X.
 * usage: test_torch_archives FIXTUREDIR OUTDIR
 * (OUTDIR receives X.resaved.pth, which check_saved.py then loads with torch) */
#define _POSIX_C_SOURCE 200809L /* opendir, mkdir, strdup */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include <zlib.h>

#include <npengine/npengine.h>

#include "testutil.h"

/* Failures are counted in full but only the first few of each archive are printed, so one
 * systematic bug does not bury the others. */
#define MAX_PRINTED 25
static const char *cur_archive = "";
static int cur_failures;

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        tu_checks++;                                                                           \
        if (!(cond)) {                                                                         \
            tu_failures++;                                                                     \
            if (cur_failures++ < MAX_PRINTED) {                                                \
                fprintf(stderr, "  FAIL %s: ", cur_archive);                                   \
                fprintf(stderr, __VA_ARGS__);                                                  \
                fputc('\n', stderr);                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* ---- the reference files ------------------------------------------------------------------ */

typedef struct ref_tensor {
    char *name, *dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS], stride[NPE_MAX_DIMS];
    int64_t offset;
    uint64_t storage_numel;
    size_t group; /* index of the first tensor sharing this one's storage */
    int is_param, requires_grad;
    long long blob_off; /* -1: bytes not kept, check crc */
    uint64_t nbytes;
    uint32_t crc;
    int in_state_dict; /* 0: pickled with the model but not part of its state_dict() */
} ref_tensor;

typedef struct ref_module {
    char *path, *cls;
    size_t n_attrs;
    char **attrs; /* "name=repr" */
} ref_module;

typedef struct ref_record {
    char *name;
    uint64_t size, csize, data_offset;
    uint32_t crc;
    int deflated;
} ref_record;

typedef struct ref {
    char kind[32], layout[16];
    long long params; /* -1: not checked */
    size_t n_tensors, n_modules, n_records;
    ref_tensor *tensors;
    ref_module *modules;
    ref_record *records;
    char *text;             /* the .ref file; the fields above point into it */
    unsigned char *blob;    /* the .ref.bin file */
    size_t blob_size;
} ref;

static int read_whole(const char *path, char **out, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return 0;
}

/* Split s in place at sep; empty fields are kept (a root module's path is ""). */
static size_t split(char *s, char sep, char **fields, size_t max)
{
    size_t n = 0;
    fields[n++] = s;
    for (char *p = s; *p && n < max; p++) {
        if (*p == sep) {
            *p = '\0';
            fields[n++] = p + 1;
        }
    }
    return n;
}

static int parse_csv(char *s, int64_t *v, int max)
{
    if (!*s)
        return 0;
    char *f[NPE_MAX_DIMS + 1];
    size_t n = split(s, ',', f, NPE_MAX_DIMS + 1);
    if ((int)n > max)
        return -1;
    for (size_t i = 0; i < n; i++)
        v[i] = strtoll(f[i], NULL, 10);
    return (int)n;
}

static char *next_line(char **cur)
{
    char *s = *cur;
    if (!s || !*s)
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *cur = nl + 1;
    } else {
        *cur = s + strlen(s);
    }
    return s;
}

static void ref_free(ref *r)
{
    for (size_t i = 0; i < r->n_modules; i++)
        free(r->modules[i].attrs);
    free(r->tensors);
    free(r->modules);
    free(r->records);
    free(r->text);
    free(r->blob);
    memset(r, 0, sizeof(*r));
}

#define REF_BAD(...)                                                                           \
    do {                                                                                       \
        fprintf(stderr, "  %s: bad reference: ", path);                                       \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fputc('\n', stderr);                                                                   \
        goto out_free;                                                                         \
    } while (0)

static int ref_load(const char *path, ref *r)
{
    memset(r, 0, sizeof(*r));
    size_t size;
    if (read_whole(path, &r->text, &size)) {
        fprintf(stderr, "  %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    char *cur = r->text, *line = next_line(&cur);
    char params[32];
    unsigned long long nt;
    if (!line ||
        sscanf(line, "npe-ref 1 %31s %15s %llu %31s", r->kind, r->layout, &nt, params) != 4)
        REF_BAD("header line '%s'", line ? line : "");
    r->n_tensors = nt;
    r->params = params[0] == '-' ? -1 : strtoll(params, NULL, 10);
    r->tensors = calloc(r->n_tensors ? r->n_tensors : 1, sizeof(*r->tensors));
    if (!r->tensors)
        REF_BAD("out of memory");
    for (size_t i = 0; i < r->n_tensors; i++) {
        char *f[16];
        line = next_line(&cur);
        if (!line || split(line, '\t', f, 16) != 14)
            REF_BAD("tensor line %zu", i);
        ref_tensor *t = &r->tensors[i];
        t->name = f[0];
        t->dtype = f[1];
        t->ndim = atoi(f[2]);
        if (parse_csv(f[3], t->shape, NPE_MAX_DIMS) != t->ndim ||
            parse_csv(f[4], t->stride, NPE_MAX_DIMS) != t->ndim)
            REF_BAD("shape/stride of %s", t->name);
        t->offset = strtoll(f[5], NULL, 10);
        t->storage_numel = strtoull(f[6], NULL, 10);
        t->group = strtoull(f[7], NULL, 10);
        t->is_param = atoi(f[8]);
        t->requires_grad = atoi(f[9]);
        t->blob_off = strtoll(f[10], NULL, 10);
        t->nbytes = strtoull(f[11], NULL, 10);
        t->crc = (uint32_t)strtoul(f[12], NULL, 16);
        t->in_state_dict = atoi(f[13]);
        if (t->group > i)
            REF_BAD("group of %s", t->name);
    }
    line = next_line(&cur);
    unsigned long long n;
    if (!line || sscanf(line, "modules %llu", &n) != 1)
        REF_BAD("modules line");
    r->n_modules = n;
    r->modules = calloc(n ? n : 1, sizeof(*r->modules));
    if (!r->modules)
        REF_BAD("out of memory");
    for (size_t i = 0; i < r->n_modules; i++) {
        line = next_line(&cur);
        if (!line)
            REF_BAD("module line %zu", i);
        size_t nf = 1;
        for (const char *p = line; *p; p++)
            nf += *p == '\t';
        char **f = malloc(nf * sizeof(*f));
        if (!f)
            REF_BAD("out of memory");
        if (split(line, '\t', f, nf) < 2) {
            free(f);
            REF_BAD("module line %zu", i);
        }
        r->modules[i].path = f[0];
        r->modules[i].cls = f[1];
        r->modules[i].n_attrs = nf - 2;
        r->modules[i].attrs = f; /* attrs[2..] are the attributes; kept as one allocation */
    }
    line = next_line(&cur);
    if (!line || sscanf(line, "records %llu", &n) != 1)
        REF_BAD("records line");
    r->n_records = n;
    r->records = calloc(n ? n : 1, sizeof(*r->records));
    if (!r->records)
        REF_BAD("out of memory");
    for (size_t i = 0; i < r->n_records; i++) {
        char *f[8];
        line = next_line(&cur);
        if (!line || split(line, '\t', f, 8) != 6)
            REF_BAD("record line %zu", i);
        ref_record *rc = &r->records[i];
        rc->name = f[0];
        rc->size = strtoull(f[1], NULL, 10);
        rc->csize = strtoull(f[2], NULL, 10);
        rc->data_offset = strtoull(f[3], NULL, 10);
        rc->crc = (uint32_t)strtoul(f[4], NULL, 16);
        rc->deflated = atoi(f[5]);
    }
    char bin[4096];
    char *blob;
    if (snprintf(bin, sizeof(bin), "%s.bin", path) >= (int)sizeof(bin) ||
        read_whole(bin, &blob, &r->blob_size))
        REF_BAD("cannot read %s", bin);
    r->blob = (unsigned char *)blob;
    for (size_t i = 0; i < r->n_tensors; i++) {
        const ref_tensor *t = &r->tensors[i];
        if (t->blob_off >= 0 && ((uint64_t)t->blob_off > r->blob_size ||
                                 t->nbytes > r->blob_size - (uint64_t)t->blob_off))
            REF_BAD("blob range of %s", t->name);
    }
    return 0;
out_free:
    ref_free(r);
    return -1;
}

/* ---- comparisons ---------------------------------------------------------------------------- */

static const char *attr_value(const npe_module_info *m, const char *name)
{
    for (size_t i = 0; i < m->n_attrs; i++)
        if (m->attr_names[i] && strcmp(m->attr_names[i], name) == 0)
            return m->attr_values[i];
    return NULL;
}

static void print_first_diff(const char *name, const char *dtype, const unsigned char *want,
                             const unsigned char *got, uint64_t n)
{
    uint64_t i = 0;
    while (i < n && want[i] == got[i])
        i++;
    EXPECT(0, "%s (%s): data differs from byte %llu of %llu (expected 0x%02x, found 0x%02x)",
           name, dtype, (unsigned long long)i, (unsigned long long)n, want[i], got[i]);
}

/* Compare tensor idx of a with reference t: bytes always; layout (stride, offset, storage) only
 * with full set (the fixture itself; a resaved file may lay storages out anew). */
static void check_tensor(npe_archive *a, int idx, const ref *r, const ref_tensor *t, int full,
                         const char **keys)
{
    npe_tensor_info ti;
    memset(&ti, 0, sizeof(ti));
    int rc = npe_archive_tensor(a, (size_t)idx, &ti);
    EXPECT(rc == 0, "npe_archive_tensor(%d) for %s returned %d", idx, t->name, rc);
    if (rc)
        return;
    keys[t - r->tensors] = ti.storage_key;
    EXPECT(ti.name && strcmp(ti.name, t->name) == 0, "tensor %d: name '%s', expected '%s'", idx,
           ti.name ? ti.name : "(null)", t->name);
    EXPECT(strcmp(npe_dtype_name(ti.dtype), t->dtype) == 0, "%s: dtype %s, expected %s", t->name,
           npe_dtype_name(ti.dtype), t->dtype);
    int same_shape = ti.ndim == t->ndim;
    for (int d = 0; same_shape && d < t->ndim; d++)
        same_shape = ti.shape[d] == t->shape[d];
    EXPECT(same_shape, "%s: shape differs (ndim %d, expected %d; dim0 %lld, expected %lld)",
           t->name, ti.ndim, t->ndim, (long long)(ti.ndim > 0 ? ti.shape[0] : -1),
           (long long)(t->ndim > 0 ? t->shape[0] : -1));
    int same_stride = ti.ndim == t->ndim;
    for (int d = 0; same_stride && d < t->ndim; d++)
        same_stride = ti.stride[d] == t->stride[d] || (!full && t->shape[d] <= 1);
    EXPECT(same_stride, "%s: stride differs (dim0 %lld, expected %lld)", t->name,
           (long long)(ti.ndim > 0 ? ti.stride[0] : -1),
           (long long)(t->ndim > 0 ? t->stride[0] : -1));
    EXPECT(ti.storage_key != NULL, "%s: no storage key", t->name);
    if (full) {
        EXPECT(ti.storage_offset == t->offset, "%s: storage offset %lld, expected %lld", t->name,
               (long long)ti.storage_offset, (long long)t->offset);
        EXPECT(ti.storage_numel == t->storage_numel, "%s: storage numel %llu, expected %llu",
               t->name, (unsigned long long)ti.storage_numel,
               (unsigned long long)t->storage_numel);
        EXPECT(ti.is_parameter == t->is_param, "%s: is_parameter %d, expected %d", t->name,
               ti.is_parameter, t->is_param);
        EXPECT(ti.requires_grad == t->requires_grad, "%s: requires_grad %d, expected %d", t->name,
               ti.requires_grad, t->requires_grad);
    } else {
        EXPECT(ti.is_parameter == 0, "%s: a state_dict holds plain tensors, not parameters",
               t->name);
    }
    if (strcmp(npe_dtype_name(ti.dtype), t->dtype) != 0 || !same_shape)
        return;

    size_t n = (size_t)t->nbytes;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        EXPECT(0, "%s: cannot allocate %zu bytes for the comparison", t->name, n);
        return;
    }
    rc = npe_archive_tensor_data(a, (size_t)idx, buf, n);
    EXPECT(rc == 0, "%s: npe_archive_tensor_data returned %d: %s", t->name, rc,
           npe_strerror(rc));
    if (rc == 0) {
        if (t->blob_off >= 0) {
            if (memcmp(buf, r->blob + t->blob_off, n) != 0)
                print_first_diff(t->name, t->dtype, r->blob + t->blob_off, buf, n);
            else
                tu_checks++;
        } else {
            uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
            for (size_t o = 0; o < n; o += 1u << 30) {
                size_t len = n - o < (1u << 30) ? n - o : (1u << 30);
                crc = (uint32_t)crc32(crc, buf + o, (uInt)len);
            }
            EXPECT(crc == t->crc, "%s: crc32 of the data %08x, expected %08x", t->name, crc,
                   t->crc);
        }
    }
    if (n > 0) /* a buffer one byte short must be refused, not overrun */
        EXPECT(npe_archive_tensor_data(a, (size_t)idx, buf, n - 1) < 0,
               "%s: tensor_data accepted a buffer of %zu bytes for %zu", t->name, n - 1, n);
    free(buf);
}

/* Tensors share a storage exactly when the reference says they do. */
static void check_sharing(const ref *r, const char **keys, const char *what)
{
    for (size_t i = 0; i < r->n_tensors; i++) {
        const ref_tensor *t = &r->tensors[i];
        if (!keys[i] || !keys[t->group])
            continue;
        if (t->group != i) {
            EXPECT(strcmp(keys[i], keys[t->group]) == 0,
                   "%s: %s and %s share a storage in PyTorch, but have keys '%s' and '%s'", what,
                   t->name, r->tensors[t->group].name, keys[t->group], keys[i]);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (r->tensors[j].group != j || !keys[j])
                continue;
            EXPECT(strcmp(keys[i], keys[j]) != 0,
                   "%s: %s and %s have separate storages in PyTorch, but share key '%s'", what,
                   t->name, r->tensors[j].name, keys[i]);
        }
    }
}

static void check_modules(npe_archive *a, const ref *r)
{
    size_t n = npe_archive_module_count(a);
    EXPECT(n == r->n_modules, "module count %zu, expected %zu", n, r->n_modules);
    npe_module_info *mods = calloc(n ? n : 1, sizeof(*mods));
    if (!mods)
        return;
    for (size_t i = 0; i < n; i++) {
        int rc = npe_archive_module(a, i, &mods[i]);
        EXPECT(rc == 0, "npe_archive_module(%zu) returned %d", i, rc);
    }
    for (size_t i = 0; i < r->n_modules; i++) {
        const ref_module *rm = &r->modules[i];
        const npe_module_info *m = NULL;
        for (size_t j = 0; j < n && !m; j++)
            if (mods[j].path && strcmp(mods[j].path, rm->path) == 0)
                m = &mods[j];
        EXPECT(m != NULL, "module '%s' (%s) missing", rm->path, rm->cls);
        if (!m)
            continue;
        EXPECT(m->class_path && strcmp(m->class_path, rm->cls) == 0,
               "module '%s': class '%s', expected '%s'", rm->path,
               m->class_path ? m->class_path : "(null)", rm->cls);
        for (size_t k = 0; k < rm->n_attrs; k++) {
            char *kv = rm->attrs[2 + k];
            char *eq = strchr(kv, '=');
            if (!eq)
                continue;
            *eq = '\0';
            const char *v = attr_value(m, kv);
            EXPECT(v && strcmp(v, eq + 1) == 0, "module '%s': %s = %s, expected %s", rm->path,
                   kv, v ? v : "(missing)", eq + 1);
            *eq = '=';
        }
    }
    free(mods);
}

static void check_records(npe_archive *a, const ref *r)
{
    size_t n = npe_archive_record_count(a);
    EXPECT(n == r->n_records, "record count %zu, expected %zu", n, r->n_records);
    for (size_t i = 0; i < r->n_records; i++) {
        const ref_record *want = &r->records[i];
        npe_record_info ri;
        int found = 0;
        for (size_t j = 0; j < n && !found; j++) {
            memset(&ri, 0, sizeof(ri));
            found = npe_archive_record(a, j, &ri) == 0 && ri.name &&
                    strcmp(ri.name, want->name) == 0;
        }
        EXPECT(found, "record %s missing", want->name);
        if (!found)
            continue;
        EXPECT(ri.size == want->size && ri.compressed_size == want->csize,
               "record %s: sizes %llu/%llu, expected %llu/%llu", want->name,
               (unsigned long long)ri.size, (unsigned long long)ri.compressed_size,
               (unsigned long long)want->size, (unsigned long long)want->csize);
        EXPECT(ri.data_offset == want->data_offset, "record %s: data offset %llu, expected %llu",
               want->name, (unsigned long long)ri.data_offset,
               (unsigned long long)want->data_offset);
        EXPECT(ri.crc32 == want->crc, "record %s: crc %08x, expected %08x", want->name,
               ri.crc32, want->crc);
        EXPECT(ri.deflated == want->deflated, "record %s: deflated %d, expected %d", want->name,
               ri.deflated, want->deflated);
    }
}

/* Write the archive as a state_dict, read that back and compare with the reference. */
static void check_resave(npe_ctx *ctx, npe_archive *a, const ref *r, const char *outdir,
                         const char *base)
{
    char out[4096];
    if (snprintf(out, sizeof(out), "%s/%s.resaved.pth", outdir, base) >= (int)sizeof(out)) {
        EXPECT(0, "path too long: %s/%s", outdir, base);
        return;
    }
    int rc = npe_archive_save_state_dict(a, out);
    EXPECT(rc == 0, "npe_archive_save_state_dict(%s) returned %d: %s", out, rc,
           npe_ctx_last_error(ctx));
    if (rc)
        return;
    npe_archive *b = NULL;
    rc = npe_archive_open(ctx, out, &b);
    EXPECT(rc == 0, "reopening %s returned %d: %s", out, rc, npe_ctx_last_error(ctx));
    if (rc)
        return;
    EXPECT(npe_archive_get_kind(b) == NPE_ARCHIVE_STATE_DICT, "%s: kind %s, expected state_dict",
           out, npe_archive_kind_name(npe_archive_get_kind(b)));
    EXPECT(npe_archive_get_layout(b) == NPE_LAYOUT_ZIP, "%s: not a zip archive", out);
    size_t n_saved = 0;
    for (size_t i = 0; i < r->n_tensors; i++)
        n_saved += r->tensors[i].in_state_dict != 0;
    EXPECT(npe_archive_tensor_count(b) == n_saved, "%s: %zu tensors, expected %zu", out,
           npe_archive_tensor_count(b), n_saved);
    const char **keys = calloc(r->n_tensors ? r->n_tensors : 1, sizeof(*keys));
    for (size_t i = 0; keys && i < r->n_tensors; i++) {
        int idx = npe_archive_find_tensor(b, r->tensors[i].name);
        if (!r->tensors[i].in_state_dict) {
            EXPECT(idx < 0, "%s: %s is not part of the model's state_dict() (a non-persistent "
                   "buffer), but was written; load_state_dict(strict=True) refuses it", out,
                   r->tensors[i].name);
            continue;
        }
        EXPECT(idx >= 0, "%s: tensor %s missing after the round trip", out, r->tensors[i].name);
        if (idx >= 0)
            check_tensor(b, idx, r, &r->tensors[i], 0, keys);
    }
    if (keys)
        check_sharing(r, keys, "resaved");
    free(keys);
    npe_archive_destroy(b);
}

static void check_archive(npe_ctx *ctx, const char *dir, const char *refname, const char *outdir)
{
    char refpath[4096], path[4096], base[1024];
    if (snprintf(refpath, sizeof(refpath), "%s/%s", dir, refname) >= (int)sizeof(refpath) ||
        snprintf(base, sizeof(base), "%.*s", (int)(strlen(refname) - 4), refname) >=
            (int)sizeof(base) ||
        snprintf(path, sizeof(path), "%s/%s", dir, base) >= (int)sizeof(path)) {
        CHECK_MSG(0, "path too long: %s/%s", dir, refname);
        return;
    }
    cur_archive = base;
    cur_failures = 0;
    int failures_before = tu_failures;

    ref r;
    if (ref_load(refpath, &r)) {
        EXPECT(0, "cannot load the reference %s", refpath);
        return;
    }
    npe_archive *a = NULL;
    int rc = npe_archive_open(ctx, path, &a);
    EXPECT(rc == 0 && a, "npe_archive_open returned %d (%s): %s", rc, npe_strerror(rc),
           npe_ctx_last_error(ctx));
    if (rc || !a)
        goto out_ref;

    EXPECT(strcmp(npe_archive_kind_name(npe_archive_get_kind(a)), r.kind) == 0,
           "kind %s, expected %s", npe_archive_kind_name(npe_archive_get_kind(a)), r.kind);
    npe_archive_layout want_layout = strcmp(r.layout, "zip") == 0 ? NPE_LAYOUT_ZIP
                                                                  : NPE_LAYOUT_LEGACY;
    EXPECT(npe_archive_get_layout(a) == want_layout, "layout %d, expected %s",
           (int)npe_archive_get_layout(a), r.layout);
    EXPECT(npe_archive_tensor_count(a) == r.n_tensors, "%zu tensors, expected %zu",
           npe_archive_tensor_count(a), r.n_tensors);

    const char **keys = calloc(r.n_tensors ? r.n_tensors : 1, sizeof(*keys));
    for (size_t i = 0; keys && i < r.n_tensors; i++) {
        int idx = npe_archive_find_tensor(a, r.tensors[i].name);
        EXPECT(idx >= 0, "tensor %s not found (%d)", r.tensors[i].name, idx);
        if (idx >= 0)
            check_tensor(a, idx, &r, &r.tensors[i], 1, keys);
    }
    if (keys)
        check_sharing(&r, keys, "fixture");
    free(keys);
    EXPECT(npe_archive_find_tensor(a, "no.such.tensor") == NPE_ENOTFOUND,
           "find_tensor of a missing name did not return NPE_ENOTFOUND");

    if (r.params >= 0)
        EXPECT(npe_archive_param_count(a) == (uint64_t)r.params, "param count %llu, expected %lld",
               (unsigned long long)npe_archive_param_count(a), r.params);
    check_modules(a, &r);
    if (want_layout == NPE_LAYOUT_ZIP)
        check_records(a, &r);

    for (int fmt = NPE_DESCRIBE_TEXT; fmt <= NPE_DESCRIBE_JSON; fmt++) {
        char *text = NULL;
        rc = npe_archive_describe(a, fmt, &text);
        EXPECT(rc == 0 && text && text[0], "npe_archive_describe(%d) returned %d", fmt, rc);
        if (fmt == NPE_DESCRIBE_JSON && text)
            EXPECT(text[0] == '{' || text[0] == '[', "describe JSON starts with '%c'", text[0]);
        npe_free(text);
    }

    check_resave(ctx, a, &r, outdir, base);
    npe_archive_destroy(a);
out_ref:
    printf("%-4s %s: %s/%s, %zu tensors, %zu modules%s\n",
           tu_failures == failures_before ? "ok" : "FAIL", base, r.kind, r.layout, r.n_tensors,
           r.n_modules, cur_failures > MAX_PRINTED ? " (more failures not printed)" : "");
    fflush(stdout);
    ref_free(&r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTUREDIR OUTDIR\n", argv[0]);
        return 2;
    }
    if (mkdir(argv[2], 0777) && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "cannot open %s: %s (run gen_fixtures.py first)\n", argv[1],
                strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".ref") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                return 1;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    CHECK_MSG(n > 0, "no *.ref files in %s", argv[1]);
    qsort(names, n, sizeof(*names), cmp_str);

    npe_ctx *ctx = NULL;
    CHECK(npe_ctx_create(&ctx) == 0 && ctx);
    for (size_t i = 0; ctx && i < n; i++)
        check_archive(ctx, argv[1], names[i], argv[2]);
    npe_ctx_destroy(ctx);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return tu_finish("test_torch_archives");
}
