/* Writing torch.save(state_dict)-style archives: an OrderedDict of _rebuild_tensor_v2 records in
 * data.pkl plus one stored, 64-byte aligned record per storage, as torch 1.13 and 2.x write them. */
#include "torch_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records go under this top folder; torch.load accepts any name. */
#define TOP "archive/"

typedef struct wstorage {
    const void *data;
    uint64_t numel;
    npe_dtype dtype;
    const char *first; /* name of the first tensor using it, for messages */
    npe_pv *persid;
    char key[24];
} wstorage;

static int check_tensor(const npe_tw_tensor *t, size_t i, npe_error *err)
{
    if (!t->name)
        return npe_error_set(err, NPE_EINVAL, "tensor %zu has no name", i);
    if ((unsigned)t->dtype >= NPE_DTYPE_COUNT)
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': dtype %d out of range", t->name,
                             (int)t->dtype);
    if (t->dtype == NPE_DTYPE_QINT8 || t->dtype == NPE_DTYPE_QUINT8 || t->dtype == NPE_DTYPE_QINT32)
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "tensor '%s': quantized tensors (%s) cannot be written as a state dict",
                             t->name, npe_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > NPE_MAX_DIMS || (t->ndim && !t->shape))
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': bad ndim %d", t->name, t->ndim);
    if (t->offset < 0)
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': negative storage offset", t->name);
    size_t isz = npe_dtype_size(t->dtype);
    if (t->storage_numel > (uint64_t)INT64_MAX / isz || t->storage_numel > SIZE_MAX / isz)
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': storage of %" PRIu64 " elements is too large",
                             t->name, t->storage_numel);
    if (t->storage_numel && !t->storage_data)
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': storage data is NULL", t->name);
    /* extent: offset + sum((size - 1) * stride) < storage_numel, without overflow */
    int64_t st[NPE_MAX_DIMS];
    uint64_t numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] < 0)
            return npe_error_set(err, NPE_EINVAL, "tensor '%s': negative size", t->name);
        st[d] = t->stride ? t->stride[d] : (int64_t)(numel > INT64_MAX ? 0 : numel);
        if (st[d] < 0)
            return npe_error_set(err, NPE_EINVAL, "tensor '%s': negative stride", t->name);
        if (t->shape[d] && numel > UINT64_MAX / (uint64_t)t->shape[d])
            return npe_error_set(err, NPE_EINVAL, "tensor '%s': too many elements", t->name);
        numel *= (uint64_t)t->shape[d];
    }
    if (!numel)
        return 0;
    uint64_t last = (uint64_t)t->offset;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t a = (uint64_t)t->shape[d] - 1, b = (uint64_t)st[d];
        if ((a && b > UINT64_MAX / a) || last > UINT64_MAX - a * b)
            return npe_error_set(err, NPE_EINVAL, "tensor '%s' reaches past 64-bit offsets", t->name);
        last += a * b;
    }
    if (last >= t->storage_numel)
        return npe_error_set(err, NPE_EINVAL,
                             "tensor '%s' claims %" PRIu64 " elements but its storage holds %" PRIu64,
                             t->name, last + 1, t->storage_numel);
    return 0;
}

static npe_pv *int_tuple(npe_pkl *doc, const int64_t *v, const int64_t *contiguous_of, int n)
{
    npe_pv *t = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    int64_t st[NPE_MAX_DIMS];
    if (!v) {
        int64_t acc = 1;
        for (int d = n - 1; d >= 0; d--) {
            st[d] = acc;
            acc *= contiguous_of[d] ? contiguous_of[d] : 1;
        }
        v = st;
    }
    for (int d = 0; t && d < n; d++) {
        npe_pv *x = npe_pv_new_int(doc, v[d]);
        if (!x || npe_pv_append(doc, t, x))
            return NULL;
    }
    return t;
}

/* The record of one tensor: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * OrderedDict()). Six arguments: torch 1.13's weights_only loader refuses the seventh. */
static npe_pv *tensor_record(npe_pkl *doc, npe_pv *rebuild, npe_pv *od, npe_pv *persid,
                             const npe_tw_tensor *t)
{
    npe_pv *args = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    npe_pv *off = npe_pv_new_int(doc, t->offset);
    npe_pv *size = int_tuple(doc, t->shape, NULL, t->ndim);
    npe_pv *stride = int_tuple(doc, t->stride, t->shape, t->ndim);
    npe_pv *rg = npe_pv_new_bool(doc, t->requires_grad != 0);
    npe_pv *hooks = npe_pv_new_dict(doc, od);
    if (!args || !off || !size || !stride || !rg || !hooks || npe_pv_append(doc, args, persid) ||
        npe_pv_append(doc, args, off) || npe_pv_append(doc, args, size) ||
        npe_pv_append(doc, args, stride) || npe_pv_append(doc, args, rg) ||
        npe_pv_append(doc, args, hooks))
        return NULL;
    return npe_pv_new_call(doc, rebuild, args);
}

static npe_pv *storage_pid(npe_pkl *doc, const wstorage *s)
{
    npe_pv *pid = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    npe_pv *tag = npe_pv_new_str(doc, "storage");
    npe_pv *type = npe_pv_new_global(doc, "torch", npe_torch_storage_name(s->dtype));
    npe_pv *key = npe_pv_new_str(doc, s->key);
    npe_pv *loc = npe_pv_new_str(doc, "cpu");
    npe_pv *n = npe_pv_new_int(doc, (int64_t)s->numel);
    if (!pid || !tag || !type || !key || !loc || !n || npe_pv_append(doc, pid, tag) ||
        npe_pv_append(doc, pid, type) || npe_pv_append(doc, pid, key) ||
        npe_pv_append(doc, pid, loc) || npe_pv_append(doc, pid, n))
        return NULL;
    return npe_pv_new_persid(doc, pid);
}

int npe_torch_save_state_dict(const char *path, const npe_tw_tensor *tensors, size_t n,
                              const npe_pv *metadata, npe_error *err)
{
    if (!path || (n && !tensors))
        return npe_error_set(err, NPE_EINVAL, "npe_torch_save_state_dict: NULL argument");
    int r = 0;
    for (size_t i = 0; i < n && !r; i++)
        r = check_tensor(&tensors[i], i, err);
    if (r) {
        npe_error_prefix(err, "%s", path);
        return r;
    }

    npe_pkl *doc = npe_pkl_new();
    wstorage *st = calloc(n ? n : 1, sizeof(*st));
    void *pkl = NULL;
    size_t pkl_size = 0;
    npe_zip_writer *w = NULL;
    size_t ns = 0;
    if (!doc || !st) {
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
        goto out_free;
    }
    npe_pv *od = npe_pv_new_global(doc, "collections", "OrderedDict");
    npe_pv *rebuild = npe_pv_new_global(doc, "torch._utils", "_rebuild_tensor_v2");
    npe_pv *root = od ? npe_pv_new_dict(doc, od) : NULL;
    if (!rebuild || !root)
        goto out_nomem;

    /* storages: one per distinct data pointer, keyed "0", "1", ... in first-use order */
    for (size_t i = 0; i < n; i++) {
        const npe_tw_tensor *t = &tensors[i];
        size_t k = ns;
        if (t->storage_data)
            for (k = 0; k < ns && st[k].data != t->storage_data; k++)
                ;
        if (k < ns) {
            if (st[k].dtype != t->dtype || st[k].numel != t->storage_numel) {
                r = npe_error_set(err, NPE_EINVAL,
                                  "%s: tensors '%s' and '%s' share a storage but differ in dtype or "
                                  "storage size (%s x %" PRIu64 " vs %s x %" PRIu64 ")",
                                  path, st[k].first, t->name, npe_dtype_name(st[k].dtype), st[k].numel,
                                  npe_dtype_name(t->dtype), t->storage_numel);
                goto out_free;
            }
        } else {
            st[ns] = (wstorage){.data = t->storage_data, .numel = t->storage_numel,
                                .dtype = t->dtype, .first = t->name};
            snprintf(st[ns].key, sizeof(st[ns].key), "%zu", ns);
            if (!(st[ns].persid = storage_pid(doc, &st[ns])))
                goto out_nomem;
            ns++;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0) {
                r = npe_error_set(err, NPE_EINVAL, "%s: two tensors are named '%s'", path, t->name);
                goto out_free;
            }
        npe_pv *rec = tensor_record(doc, rebuild, od, st[k].persid, t);
        npe_pv *key = npe_pv_new_str(doc, t->name);
        if (!rec || !key || npe_pv_dict_set(doc, root, key, rec))
            goto out_nomem;
    }
    if (metadata) {
        /* OrderedDict.__reduce__ passes {'_metadata': ...} as BUILD state */
        npe_pv *state = npe_pv_new_dict(doc, NULL);
        npe_pv *mk = npe_pv_new_str(doc, "_metadata");
        if (!state || !mk || npe_pv_dict_set(doc, state, mk, (npe_pv *)metadata))
            goto out_nomem;
        root->u.dict.state = state;
    }
    if ((r = npe_pkl_dump(root, NPE_PKL_DUMP_NO_FLOAT, &pkl, &pkl_size, err)))
        goto out_free;

    if ((r = npe_zip_writer_open(path, 0, &w, err)))
        goto out_free;
    if ((r = npe_zip_writer_add(w, TOP "data.pkl", pkl, pkl_size, 0, err)))
        goto out_abort;
    for (size_t k = 0; k < ns; k++) {
        char name[64];
        snprintf(name, sizeof(name), TOP "data/%s", st[k].key);
        if ((r = npe_zip_writer_add(w, name, st[k].data, (size_t)(st[k].numel * npe_dtype_size(st[k].dtype)),
                                    0, err)))
            goto out_abort;
    }
    /* version 3 as torch 1.13 and 2.x write it; byteorder as 2.x writes it (1.13 ignores it) */
    if ((r = npe_zip_writer_add(w, TOP "version", "3\n", 2, 0, err)) ||
        (r = npe_zip_writer_add(w, TOP "byteorder", "little", 6, 0, err)))
        goto out_abort;
    r = npe_zip_writer_finish(w, err);
    w = NULL;
    goto out_free;

out_nomem:
    r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    goto out_free;
out_abort:
    npe_zip_writer_abort(w);
out_free:
    free(pkl);
    free(st);
    npe_pkl_free(doc);
    return r;
}
