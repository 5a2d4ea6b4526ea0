/* Public read-only view of PyTorch files (npe_archive_*): a thin layer over the importer's
 * npe_torch_file that adds error text on the context, a name index, reports and re-saving. */
#include <npengine/npengine.h>

#include "../importers/torch_file.h"
#include "context.h"
#include "json_writer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct npe_archive {
    npe_ctx *ctx;
    npe_torch_file *f;
    size_t *by_name; /* tensor indices sorted by name (first of equal names first) */
};

static const npe_torch_file *F(const npe_archive *a)
{
    return a->f;
}

static int cmp_name(const void *x, const void *y, const npe_torch_file *f)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = strcmp(f->tensors[i].name, f->tensors[j].name);
    return c ? c : (i > j) - (i < j);
}

/* qsort has no user pointer in C11: sort by a small merge sort instead. */
static void sort_names(size_t *v, size_t *tmp, size_t n, const npe_torch_file *f)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_names(v, tmp, h, f);
    sort_names(v + h, tmp, n - h, f);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_name(&v[i], &v[j], f) <= 0 ? v[i++] : v[j++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

NPE_API int npe_archive_open(npe_ctx *ctx, const char *path, npe_archive **out)
{
    npe_ctx_clear_error(ctx);
    if (!out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_archive_open: out is NULL");
    *out = NULL;
    if (!path)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_archive_open: path is NULL");
    npe_error err = {0};
    npe_archive *a = calloc(1, sizeof(*a));
    if (!a)
        return npe_ctx_error(ctx, NPE_ENOMEM, "%s: out of memory", path);
    a->ctx = ctx;
    int r = npe_torch_open(path, &a->f, &err);
    if (r) {
        free(a);
        return npe_ctx_fail(ctx, &err);
    }
    size_t n = a->f->n_tensors;
    a->by_name = malloc((n ? n : 1) * sizeof(size_t));
    size_t *tmp = malloc((n ? n : 1) * sizeof(size_t));
    if (!a->by_name || !tmp) {
        free(tmp);
        npe_archive_destroy(a);
        return npe_ctx_error(ctx, NPE_ENOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++)
        a->by_name[i] = i;
    sort_names(a->by_name, tmp, n, a->f);
    free(tmp);
    *out = a;
    return 0;
}

NPE_API void npe_archive_destroy(npe_archive *a)
{
    if (!a)
        return;
    npe_torch_close(a->f);
    free(a->by_name);
    free(a);
}

NPE_API npe_archive_kind npe_archive_get_kind(const npe_archive *a)
{
    return a ? F(a)->kind : NPE_ARCHIVE_OBJECT;
}

NPE_API npe_archive_layout npe_archive_get_layout(const npe_archive *a)
{
    return a ? F(a)->layout : NPE_LAYOUT_ZIP;
}

NPE_API const char *npe_archive_kind_name(npe_archive_kind k)
{
    switch (k) {
    case NPE_ARCHIVE_STATE_DICT: return "state_dict";
    case NPE_ARCHIVE_FULL_MODEL: return "full_model";
    case NPE_ARCHIVE_TORCHSCRIPT: return "torchscript";
    case NPE_ARCHIVE_OBJECT: return "object";
    }
    return "?";
}

static const char *layout_name(npe_archive_layout l)
{
    return l == NPE_LAYOUT_LEGACY ? "legacy" : "zip";
}

NPE_API size_t npe_archive_record_count(const npe_archive *a)
{
    return a && F(a)->zip ? npe_zip_count(F(a)->zip) : 0;
}

NPE_API int npe_archive_record(const npe_archive *a, size_t i, npe_record_info *out)
{
    if (!a || !out)
        return NPE_EINVAL;
    size_t n = npe_archive_record_count(a);
    if (i >= n)
        return npe_ctx_error(a->ctx, NPE_EINVAL, "%s: record index %zu out of range (%zu records)",
                             F(a)->path, i, n);
    const npe_zip_entry *e = npe_zip_entry_at(F(a)->zip, i);
    *out = (npe_record_info){.name = e->name, .size = e->size, .compressed_size = e->comp_size,
                             .data_offset = e->data_offset, .crc32 = e->crc32,
                             .deflated = e->method == 8};
    return 0;
}

NPE_API size_t npe_archive_tensor_count(const npe_archive *a)
{
    return a ? F(a)->n_tensors : 0;
}

static int64_t numel_of(const npe_ttensor *t)
{
    return npe_torch_tensor_numel(t);
}

/* Elements of the tensor's storage counted in the tensor's own dtype (untyped storages hold
 * bytes). */
static uint64_t storage_elems(const npe_torch_file *f, const npe_ttensor *t)
{
    const npe_tstorage *s = &f->storages[t->storage];
    return s->numel * npe_dtype_size(s->dtype) / npe_dtype_size(t->dtype);
}

NPE_API int npe_archive_tensor(const npe_archive *a, size_t i, npe_tensor_info *out)
{
    if (!a || !out)
        return NPE_EINVAL;
    const npe_torch_file *f = F(a);
    if (i >= f->n_tensors)
        return npe_ctx_error(a->ctx, NPE_EINVAL, "%s: tensor index %zu out of range (%zu tensors)",
                             f->path, i, f->n_tensors);
    const npe_ttensor *t = &f->tensors[i];
    memset(out, 0, sizeof(*out));
    out->name = t->name;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof(out->shape));
    memcpy(out->stride, t->stride, sizeof(out->stride));
    out->storage_offset = t->offset;
    out->storage_key = f->storages[t->storage].key;
    out->storage_numel = storage_elems(f, t);
    out->requires_grad = t->requires_grad;
    out->is_parameter = t->is_parameter;
    return 0;
}

NPE_API int npe_archive_find_tensor(const npe_archive *a, const char *name)
{
    if (!a || !name)
        return NPE_EINVAL;
    const npe_torch_file *f = F(a);
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f->tensors[a->by_name[mid]].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < f->n_tensors && strcmp(f->tensors[a->by_name[lo]].name, name) == 0 &&
        a->by_name[lo] <= (size_t)INT32_MAX)
        return (int)a->by_name[lo];
    return NPE_ENOTFOUND;
}

NPE_API int npe_archive_tensor_data(npe_archive *a, size_t i, void *dst, size_t dst_bytes)
{
    if (!a)
        return NPE_EINVAL;
    npe_ctx_clear_error(a->ctx);
    npe_error err = {0};
    int r = npe_torch_tensor_copy(a->f, i, dst, dst_bytes, &err);
    return r ? npe_ctx_fail(a->ctx, &err) : 0;
}

NPE_API size_t npe_archive_module_count(const npe_archive *a)
{
    return a ? F(a)->n_modules : 0;
}

NPE_API int npe_archive_module(const npe_archive *a, size_t i, npe_module_info *out)
{
    if (!a || !out)
        return NPE_EINVAL;
    const npe_torch_file *f = F(a);
    if (i >= f->n_modules)
        return npe_ctx_error(a->ctx, NPE_EINVAL, "%s: module index %zu out of range (%zu modules)",
                             f->path, i, f->n_modules);
    const npe_tmodule *m = &f->modules[i];
    *out = (npe_module_info){.path = m->path, .class_path = m->class_path, .n_attrs = m->n_attrs,
                             .attr_names = (const char *const *)m->attr_names,
                             .attr_values = (const char *const *)m->attr_values};
    return 0;
}

/* ---- parameter count ---- */

static int is_floating(npe_dtype t)
{
    return t == NPE_DTYPE_F32 || t == NPE_DTYPE_F64 || t == NPE_DTYPE_F16 || t == NPE_DTYPE_BF16 ||
           t == NPE_DTYPE_C64 || t == NPE_DTYPE_C128;
}

static int is_bn_stat(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *last = dot ? dot + 1 : name;
    return strcmp(last, "running_mean") == 0 || strcmp(last, "running_var") == 0 ||
           strcmp(last, "num_batches_tracked") == 0;
}

typedef struct view_ref {
    const npe_ttensor *t;
    size_t idx;
} view_ref;

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* Orders tensors by the elements they view: storage, offset, element size, shape, stride. */
static int cmp_view(const void *x, const void *y)
{
    const view_ref *a = x, *b = y;
    const npe_ttensor *s = a->t, *t = b->t;
    int c = (s->storage > t->storage) - (s->storage < t->storage);
    if (!c)
        c = cmp_i64(s->offset, t->offset);
    if (!c)
        c = cmp_i64((int64_t)npe_dtype_size(s->dtype), (int64_t)npe_dtype_size(t->dtype));
    if (!c)
        c = cmp_i64(s->ndim, t->ndim);
    for (int d = 0; !c && d < s->ndim; d++)
        c = cmp_i64(s->shape[d], t->shape[d]);
    for (int d = 0; !c && d < s->ndim; d++)
        c = cmp_i64(s->stride[d], t->stride[d]);
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static int same_view(const npe_ttensor *s, const npe_ttensor *t)
{
    view_ref a = {s, 0}, b = {t, 0};
    return cmp_view(&a, &b) == 0;
}

/* Sum over distinct views of numel (bytes = 0) or numel x itemsize (bytes = 1), of the tensors
 * that pass the filter. Tensors with the same storage, offset, element size, shape and stride
 * count once: one tensor object reached under two names (a tied parameter of a pickled model),
 * and the two entries state_dict() makes of a tied weight (separate tensor objects over the
 * same elements of one storage). */
static uint64_t sum_distinct(const npe_torch_file *f, int bytes)
{
    /* a pickled model says which tensors are parameters, even when it has none */
    int says = f->kind == NPE_ARCHIVE_FULL_MODEL;
    for (size_t i = 0; i < f->n_tensors; i++)
        says |= f->tensors[i].is_parameter;
    view_ref *refs = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof(*refs));
    if (!refs)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        int counts = bytes || (says ? t->is_parameter : is_floating(t->dtype) && !is_bn_stat(t->name));
        if (counts)
            refs[n++] = (view_ref){t, i};
    }
    qsort(refs, n, sizeof(*refs), cmp_view);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && same_view(refs[i].t, refs[i - 1].t))
            continue;
        const npe_ttensor *t = refs[i].t;
        total += (uint64_t)numel_of(t) * (bytes ? npe_dtype_size(t->dtype) : 1);
    }
    free(refs);
    return total;
}

/* Parameters when the file says which tensors are (is_parameter), else the state-dict rule:
 * floating tensors except BatchNorm running statistics. */
static uint64_t param_count(const npe_torch_file *f)
{
    return sum_distinct(f, 0);
}

NPE_API uint64_t npe_archive_param_count(const npe_archive *a)
{
    return a ? param_count(F(a)) : 0;
}

/* Bytes of the distinct tensor objects (numel x itemsize each). */
static uint64_t tensor_bytes(const npe_torch_file *f)
{
    return sum_distinct(f, 1);
}

/* ---- describe ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) NPE_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap - b->len <= (size_t)n)
            ncap *= 2;
        char *q = realloc(b->p, ncap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = ncap;
    }
}

static void shape_text(sbuf *b, const int64_t *v, int n)
{
    sb_printf(b, "[");
    for (int i = 0; i < n; i++)
        sb_printf(b, "%s%" PRId64, i ? ", " : "", v[i]);
    sb_printf(b, "]");
}

static void describe_text(const npe_torch_file *f, sbuf *b)
{
    sb_printf(b, "file: %s\n", f->path);
    sb_printf(b, "kind: %s\nlayout: %s\n", npe_archive_kind_name(f->kind), layout_name(f->layout));
    if (f->version)
        sb_printf(b, "version: %d\n", f->version);
    size_t nrec = f->zip ? npe_zip_count(f->zip) : 0;
    if (nrec) {
        sb_printf(b, "\nrecords (%zu):\n", nrec);
        for (size_t i = 0; i < nrec; i++) {
            const npe_zip_entry *e = npe_zip_entry_at(f->zip, i);
            sb_printf(b, "  %12" PRIu64 "  %s%s\n", e->size, e->name,
                      e->method == 8 ? "  (deflated)" : "");
        }
    }
    size_t w = 4;
    for (size_t i = 0; i < f->n_tensors; i++) {
        size_t l = strlen(f->tensors[i].name);
        if (l > w)
            w = l;
    }
    if (w > 60)
        w = 60;
    sb_printf(b, "\ntensors (%zu):\n", f->n_tensors);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        sb_printf(b, "  %-*s  %-8s  ", (int)w, t->name[0] ? t->name : "(root)",
                  npe_dtype_name(t->dtype));
        shape_text(b, t->shape, t->ndim);
        sb_printf(b, "%s\n", t->is_parameter ? "  param" : "");
    }
    if (f->n_modules) {
        sb_printf(b, "\nmodules (%zu):\n", f->n_modules);
        for (size_t i = 0; i < f->n_modules; i++) {
            const npe_tmodule *m = &f->modules[i];
            int depth = 0;
            const char *last = m->path;
            if (m->path[0]) {
                depth = 1;
                for (const char *p = m->path; *p; p++)
                    if (*p == '.') {
                        depth++;
                        last = p + 1;
                    }
            }
            if (depth > 32)
                depth = 32;
            sb_printf(b, "  %*s%s: %s", depth * 2, "", m->path[0] ? last : "(root)", m->class_path);
            if (m->n_attrs) {
                sb_printf(b, " (");
                for (size_t k = 0; k < m->n_attrs; k++)
                    sb_printf(b, "%s%s=%s", k ? ", " : "", m->attr_names[k], m->attr_values[k]);
                sb_printf(b, ")");
            }
            sb_printf(b, "\n");
        }
    }
    sb_printf(b, "\nparameters: %" PRIu64 "\ntensor bytes: %" PRIu64 "\n", param_count(f),
              tensor_bytes(f));
}

static char *describe_json(const npe_torch_file *f)
{
    npe_json j;
    npe_json_init(&j, 1);
    npe_json_begin_object(&j, 0);
    npe_json_key(&j, "file");
    npe_json_str(&j, f->path);
    npe_json_key(&j, "kind");
    npe_json_str(&j, npe_archive_kind_name(f->kind));
    npe_json_key(&j, "layout");
    npe_json_str(&j, layout_name(f->layout));
    npe_json_key(&j, "version");
    npe_json_int(&j, f->version);
    npe_json_key(&j, "records");
    npe_json_begin_array(&j, 0);
    size_t nrec = f->zip ? npe_zip_count(f->zip) : 0;
    for (size_t i = 0; i < nrec; i++) {
        const npe_zip_entry *e = npe_zip_entry_at(f->zip, i);
        npe_json_begin_object(&j, 1);
        npe_json_key(&j, "name");
        npe_json_str(&j, e->name);
        npe_json_key(&j, "size");
        npe_json_uint(&j, e->size);
        npe_json_key(&j, "compressed_size");
        npe_json_uint(&j, e->comp_size);
        npe_json_key(&j, "offset");
        npe_json_uint(&j, e->data_offset);
        npe_json_key(&j, "deflated");
        npe_json_bool(&j, e->method == 8);
        npe_json_key(&j, "crc32");
        npe_json_uint(&j, e->crc32);
        npe_json_end_object(&j);
    }
    npe_json_end_array(&j);
    npe_json_key(&j, "tensors");
    npe_json_begin_array(&j, 0);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        npe_json_begin_object(&j, 1);
        npe_json_key(&j, "name");
        npe_json_str(&j, t->name);
        npe_json_key(&j, "dtype");
        npe_json_str(&j, npe_dtype_name(t->dtype));
        npe_json_key(&j, "shape");
        npe_json_begin_array(&j, 1);
        for (int d = 0; d < t->ndim; d++)
            npe_json_int(&j, t->shape[d]);
        npe_json_end_array(&j);
        npe_json_key(&j, "stride");
        npe_json_begin_array(&j, 1);
        for (int d = 0; d < t->ndim; d++)
            npe_json_int(&j, t->stride[d]);
        npe_json_end_array(&j);
        npe_json_key(&j, "storage_offset");
        npe_json_int(&j, t->offset);
        npe_json_key(&j, "storage");
        npe_json_str(&j, f->storages[t->storage].key);
        npe_json_key(&j, "requires_grad");
        npe_json_bool(&j, t->requires_grad);
        npe_json_key(&j, "is_parameter");
        npe_json_bool(&j, t->is_parameter);
        npe_json_end_object(&j);
    }
    npe_json_end_array(&j);
    npe_json_key(&j, "modules");
    npe_json_begin_array(&j, 0);
    for (size_t i = 0; i < f->n_modules; i++) {
        const npe_tmodule *m = &f->modules[i];
        npe_json_begin_object(&j, 1);
        npe_json_key(&j, "path");
        npe_json_str(&j, m->path);
        npe_json_key(&j, "class");
        npe_json_str(&j, m->class_path);
        npe_json_key(&j, "attrs");
        npe_json_begin_object(&j, 1);
        for (size_t k = 0; k < m->n_attrs; k++) {
            npe_json_key(&j, m->attr_names[k]);
            npe_json_str(&j, m->attr_values[k]);
        }
        npe_json_end_object(&j);
        npe_json_end_object(&j);
    }
    npe_json_end_array(&j);
    npe_json_key(&j, "params");
    npe_json_uint(&j, param_count(f));
    npe_json_key(&j, "tensor_bytes");
    npe_json_uint(&j, tensor_bytes(f));
    npe_json_end_object(&j);
    return npe_json_finish(&j, NULL);
}

NPE_API int npe_archive_describe(npe_archive *a, int format, char **text)
{
    if (!a || !text)
        return NPE_EINVAL;
    *text = NULL;
    npe_ctx_clear_error(a->ctx);
    if (format != NPE_DESCRIBE_TEXT && format != NPE_DESCRIBE_JSON)
        return npe_ctx_error(a->ctx, NPE_EINVAL, "npe_archive_describe: unknown format %d", format);
    if (format == NPE_DESCRIBE_JSON) {
        *text = describe_json(F(a));
    } else {
        sbuf b = {0};
        describe_text(F(a), &b);
        if (b.failed)
            free(b.p);
        else
            *text = b.p;
    }
    if (!*text)
        return npe_ctx_error(a->ctx, NPE_ENOMEM, "%s: out of memory describing the archive",
                             F(a)->path);
    return 0;
}

/* ---- re-saving ---- */

NPE_API int npe_archive_save_state_dict(npe_archive *a, const char *path)
{
    if (!a || !path)
        return NPE_EINVAL;
    npe_ctx_clear_error(a->ctx);
    const npe_torch_file *f = F(a);
    npe_tw_tensor *tw = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*tw));
    if (!tw)
        return npe_ctx_error(a->ctx, NPE_ENOMEM, "%s: out of memory", path);
    size_t n = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        /* a buffer registered with persistent=False is no key of the module's state_dict() */
        if (t->non_persistent)
            continue;
        const npe_tstorage *s = &f->storages[t->storage];
        uint64_t nbytes = s->numel * npe_dtype_size(s->dtype);
        npe_error cerr = {0};
        if (npe_torch_storage_check(f, t->storage, &cerr)) {
            free(tw);
            return npe_ctx_fail(a->ctx, &cerr);
        }
        if (nbytes % npe_dtype_size(t->dtype)) {
            free(tw);
            return npe_ctx_error(a->ctx, NPE_EUNSUPPORTED,
                                 "%s: tensor '%s' of %s views storage '%s' of %" PRIu64
                                 " bytes, not a whole number of elements",
                                 f->path, t->name, npe_dtype_name(t->dtype), s->key, nbytes);
        }
        /* The storage's identity must be unique even for empty storages with no data. */
        const void *data = s->data && s->numel ? (const void *)s->data : (const void *)s;
        tw[n++] = (npe_tw_tensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim,
                                  .shape = t->shape, .stride = t->stride, .offset = t->offset,
                                  .storage_data = data, .storage_numel = storage_elems(f, t),
                                  .requires_grad = 0};
    }
    const npe_pv *meta = NULL;
    if (f->kind == NPE_ARCHIVE_STATE_DICT && f->root && f->root->kind == NPE_PV_DICT &&
        f->root->u.dict.state && f->root->u.dict.state->kind == NPE_PV_DICT)
        meta = npe_pv_dict_get(f->root->u.dict.state, "_metadata");
    npe_error err = {0};
    int r = npe_torch_save_state_dict(path, tw, n, meta, &err);
    free(tw);
    return r ? npe_ctx_fail(a->ctx, &err) : 0;
}
