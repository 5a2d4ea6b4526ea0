/* Private helpers of the exporters (ts_export.c, model_export.c): pickle trees copied with some
 * nodes replaced, tensor records for new storages, float <-> storage dtype conversion, and an
 * archive rewriter that copies a zip record by record with replacements and additions. */
#ifndef NPE_IMPORTERS_EXPORT_INTERNAL_H
#define NPE_IMPORTERS_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/ir.h"
#include "torch_file.h"

/* ---- Maps ------------------------------------------------------------------------------------ */
/* Pointer -> pointer (pickle nodes to their copies or replacements). */
typedef struct npe_xmap {
    const void **keys;
    void **vals;
    size_t cap, n;
} npe_xmap;

int npe_xmap_put(npe_xmap *m, const void *k, void *v); /* replaces; NPE_ENOMEM */
void *npe_xmap_get(const npe_xmap *m, const void *k);  /* NULL when absent */
void npe_xmap_free(npe_xmap *m);

/* String -> int (module paths, tensor names). Keys are copied. */
typedef struct npe_xsmap {
    char **keys;
    int *vals;
    size_t cap, n;
} npe_xsmap;

int npe_xsmap_put(npe_xsmap *m, const char *k, int v); /* replaces; NPE_ENOMEM */
int npe_xsmap_get(const npe_xsmap *m, const char *k);  /* -1 when absent */
void npe_xsmap_free(npe_xsmap *m);

/* ---- Pickle trees ---------------------------------------------------------------------------- */
/* Copy the containers and records of root into doc, keeping shared nodes shared and cycles
 * closed (scalars, strings and globals are not copied: the copy points at them). A node that is a
 * key of repl is not copied but replaced by its value. memo (caller-owned, may start empty)
 * receives old -> new for every copied node, so the caller can edit the copies afterwards. */
int npe_x_copy_tree(npe_pkl *doc, const npe_pv *root, const npe_xmap *repl, npe_xmap *memo,
                    npe_pv **out, npe_error *err);

/* A plain tensor record _rebuild_tensor_v2(persid, offset, size, stride, ...) read back. */
typedef struct npe_x_tinfo {
    const npe_pv *call;    /* the _rebuild_tensor_v2 CALL node */
    const npe_pv *pid;     /* its persistent id tuple ('storage', type, key, location, numel) */
    const char *key;
    npe_dtype dtype;
    uint64_t numel;        /* of the storage, in elements */
    int64_t offset;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    int64_t stride[NPE_MAX_DIMS];
} npe_x_tinfo;

/* The _rebuild_tensor_v2 call that holds the storage of tensor node t: t itself, or the one
 * inside _rebuild_parameter(...) / _rebuild_parameter_with_state(...) /
 * _rebuild_from_type_v2(...). NULL if t is anything else. */
const npe_pv *npe_x_inner_rebuild(const npe_pv *t);
/* Parse a _rebuild_tensor_v2 call (typed storage, sizes and strides checked: no negative values,
 * extent inside the storage). what names the tensor in messages. */
int npe_x_parse_v2(const npe_pv *call, const char *what, npe_x_tinfo *out, npe_error *err);
/* A new _rebuild_tensor_v2 call like orig (same rebuild global, storage type, location and
 * arguments after the stride: requires_grad, hooks, metadata) over a new contiguous storage
 * `key` of numel elements, offset 0. */
npe_pv *npe_x_new_tensor_call(npe_pkl *doc, const npe_x_tinfo *orig, const char *key,
                              uint64_t numel, int ndim, const int64_t *shape);

/* ---- Data ------------------------------------------------------------------------------------ */
/* Convert n elements between float and a storage dtype (float, integer and bool dtypes; others
 * NPE_EUNSUPPORTED). Narrowing float conversions round to nearest even, integers round to nearest
 * and saturate. */
int npe_x_to_f32(float *dst, const void *src, npe_dtype dt, int64_t n);
int npe_x_from_f32(void *dst, const float *src, npe_dtype dt, int64_t n);
/* Gather a strided tensor of storage bytes (nbytes long) into a contiguous array; the extent is
 * checked against nbytes. */
int npe_x_gather(const unsigned char *storage, size_t nbytes, const npe_x_tinfo *t, void *dst,
                 npe_error *err);

/* Storage bytes of tensor value v converted to dtype dt: malloc'd (*out), *nbytes set. */
int npe_x_value_bytes(const npe_value *v, npe_dtype dt, void **out, size_t *nbytes,
                      npe_error *err);
/* 1 if graph value v (shape, float data) differs from the tensor whose contiguous bytes of
 * dtype dt, ndim and shape are given; 0 if equal; negative code on error. */
int npe_x_value_differs(const npe_value *v, const void *bytes, npe_dtype dt, int ndim,
                        const int64_t *shape, npe_error *err);

/* A decimal storage key not in used[0..n) and not below *next; *next moves past it. */
void npe_x_fresh_key(char *out, size_t cap, const char *const *used, size_t n, uint64_t *next);

/* ---- Archives -------------------------------------------------------------------------------- */
typedef struct npe_x_rec {
    char *name;         /* full record name (top folder included); owned by the list */
    void *data;         /* owned by the list */
    size_t size;
    int deflate;        /* 1: compressed (code), 0: stored and 64-byte aligned (tensors) */
    int drop;           /* replacement that leaves the original record out */
    char *anchor;       /* additions: the original record they go next to (NULL: at the end) */
    int after;          /* additions: 1 after the anchor, 0 before it */
} npe_x_rec;

typedef struct npe_x_recs {
    npe_x_rec *v;
    size_t n, cap;
} npe_x_recs;

/* Append a record; name, anchor are copied; data is taken (freed with the list) when own != 0,
 * else copied. */
int npe_x_recs_add(npe_x_recs *l, const char *name, const void *data, size_t size, int deflate,
                   int own, const char *anchor, int after);
void npe_x_recs_free(npe_x_recs *l);

/* Write out_path (atomically): every record of z in order, a record named in repl written
 * from there instead (or left out if drop), each record of added next to its anchor. Unchanged
 * records keep their bytes and compression. */
int npe_x_write_archive(npe_zip_reader *z, const char *out_path, const npe_x_recs *repl,
                        const npe_x_recs *added, npe_error *err);

/* Record data of e: a view for stored records, else inflated into *owned (free it). */
int npe_x_record_data(npe_zip_reader *z, const npe_zip_entry *e, const void **data, void **owned,
                      npe_error *err);

/* A tensor of a pickle written anew. */
typedef struct npe_x_change {
    const npe_pv *node;       /* the _rebuild_tensor_v2 call it replaces */
    npe_x_tinfo info;         /* that call read back */
    void *bytes;              /* new contiguous data in info.dtype, malloc'd */
    size_t nbytes;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    char key[32];             /* its storage key */
    int reuse;                /* 1: the key is its old storage's (no other tensor uses it) */
} npe_x_change;

typedef struct npe_x_changes {
    npe_x_change *v;
    size_t n, cap;
} npe_x_changes;

int npe_x_changes_add(npe_x_changes *l, const npe_x_change *c); /* takes c->bytes */
void npe_x_changes_free(npe_x_changes *l);
/* Give every change without reuse a fresh decimal key, avoiding used[0..n) and each other. */
int npe_x_changes_keys(npe_x_changes *l, const char *const *used, size_t n, uint64_t first);
/* repl (node -> new record in doc) for every change. */
int npe_x_changes_repl(npe_x_changes *l, npe_pkl *doc, npe_xmap *repl);
/* Storage records "<prefix><dir>/<key>": replacements for reused keys, additions (before
 * anchor) for fresh ones. The lists take the bytes. */
int npe_x_changes_records(npe_x_changes *l, const char *prefix, const char *dir,
                          const char *anchor, npe_x_recs *repl, npe_x_recs *added);

#endif
