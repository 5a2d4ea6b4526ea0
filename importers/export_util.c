/* Helpers shared by the exporters: maps, pickle tree copies with replacements, tensor records,
 * dtype conversion and the record-by-record archive rewriter (see export_internal.h). */
#include "export_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torch_internal.h"

#define COPY_DEPTH_MAX 1000 /* the pickler refuses deeper trees anyway */

/* ---- Maps ------------------------------------------------------------------------------------ */
static size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

int npe_xmap_put(npe_xmap *m, const void *k, void *v)
{
    if (m->n + 1 > m->cap / 2) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(void *) / 2)
            return NPE_ENOMEM;
        const void **nk = calloc(ncap, sizeof *nk);
        void **nv = malloc(ncap * sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return NPE_ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t h = hash_ptr(m->keys[i]) & (ncap - 1);
            while (nk[h])
                h = (h + 1) & (ncap - 1);
            nk[h] = m->keys[i];
            nv[h] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t h = hash_ptr(k) & (m->cap - 1);
    while (m->keys[h] && m->keys[h] != k)
        h = (h + 1) & (m->cap - 1);
    if (!m->keys[h])
        m->n++;
    m->keys[h] = k;
    m->vals[h] = v;
    return 0;
}

void *npe_xmap_get(const npe_xmap *m, const void *k)
{
    if (!m || !m->cap || !k)
        return NULL;
    size_t h = hash_ptr(k) & (m->cap - 1);
    while (m->keys[h]) {
        if (m->keys[h] == k)
            return m->vals[h];
        h = (h + 1) & (m->cap - 1);
    }
    return NULL;
}

void npe_xmap_free(npe_xmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int npe_xsmap_put(npe_xsmap *m, const char *k, int v)
{
    if (m->n + 1 > m->cap / 2) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(char *) / 2)
            return NPE_ENOMEM;
        char **nk = calloc(ncap, sizeof *nk);
        int *nv = malloc(ncap * sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return NPE_ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t h = hash_str(m->keys[i]) & (ncap - 1);
            while (nk[h])
                h = (h + 1) & (ncap - 1);
            nk[h] = m->keys[i];
            nv[h] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t h = hash_str(k) & (m->cap - 1);
    while (m->keys[h] && strcmp(m->keys[h], k) != 0)
        h = (h + 1) & (m->cap - 1);
    if (!m->keys[h]) {
        size_t len = strlen(k);
        char *c = malloc(len + 1);
        if (!c)
            return NPE_ENOMEM;
        memcpy(c, k, len + 1);
        m->keys[h] = c;
        m->n++;
    }
    m->vals[h] = v;
    return 0;
}

int npe_xsmap_get(const npe_xsmap *m, const char *k)
{
    if (!m || !m->cap || !k)
        return -1;
    size_t h = hash_str(k) & (m->cap - 1);
    while (m->keys[h]) {
        if (strcmp(m->keys[h], k) == 0)
            return m->vals[h];
        h = (h + 1) & (m->cap - 1);
    }
    return -1;
}

void npe_xsmap_free(npe_xsmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- Tree copies ----------------------------------------------------------------------------- */
typedef struct copier {
    npe_pkl *doc;
    const npe_xmap *repl;
    npe_xmap *memo;
    npe_error *err;
} copier;

static int copy_node(copier *C, const npe_pv *v, npe_pv **out, int depth)
{
    *out = NULL;
    if (!v)
        return 0;
    void *r = npe_xmap_get(C->repl, v);
    if (r) {
        *out = r;
        return 0;
    }
    if ((r = npe_xmap_get(C->memo, v))) {
        *out = r;
        return 0;
    }
    if (depth > COPY_DEPTH_MAX)
        return npe_error_set(C->err, NPE_ELIMIT, "pickled values nest deeper than %d levels",
                             COPY_DEPTH_MAX);
    npe_pv *n = NULL;
    int rc = 0;
    switch (v->kind) {
    case NPE_PV_NONE:
    case NPE_PV_BOOL:
    case NPE_PV_INT:
    case NPE_PV_FLOAT:
    case NPE_PV_STR:
    case NPE_PV_BYTES:
    case NPE_PV_GLOBAL:
        /* never edited: the copy points at the original (it outlives the copy) */
        *out = (npe_pv *)(uintptr_t)v;
        return 0;
    case NPE_PV_TUPLE:
    case NPE_PV_LIST:
    case NPE_PV_SET:
        n = npe_pv_new_seq(C->doc, v->kind);
        break;
    case NPE_PV_DICT:
        n = npe_pv_new_dict(C->doc, NULL);
        break;
    case NPE_PV_CALL:
        n = npe_pv_new_call(C->doc, NULL, NULL);
        break;
    case NPE_PV_OBJECT:
        n = npe_pv_new_object(C->doc, NULL, NULL);
        break;
    case NPE_PV_PERSID:
        n = npe_pv_new_persid(C->doc, NULL);
        break;
    }
    if (!n || npe_xmap_put(C->memo, v, n))
        return npe_error_set(C->err, NPE_ENOMEM, "out of memory");
    /* registered before the children: a cycle back to v finds the copy */
    switch (v->kind) {
    case NPE_PV_TUPLE:
    case NPE_PV_LIST:
    case NPE_PV_SET:
        for (size_t i = 0; i < v->u.seq.n && !rc; i++) {
            npe_pv *c;
            if (!(rc = copy_node(C, v->u.seq.items[i], &c, depth + 1)) && c &&
                npe_pv_append(C->doc, n, c))
                rc = npe_error_set(C->err, NPE_ENOMEM, "out of memory");
        }
        break;
    case NPE_PV_DICT:
        rc = copy_node(C, v->u.dict.cls, &n->u.dict.cls, depth + 1);
        for (size_t i = 0; i < v->u.dict.n && !rc; i++) {
            npe_pv *k, *val;
            if ((rc = copy_node(C, v->u.dict.keys[i], &k, depth + 1)) ||
                (rc = copy_node(C, v->u.dict.vals[i], &val, depth + 1)))
                break;
            if (npe_pv_dict_set(C->doc, n, k, val))
                rc = npe_error_set(C->err, NPE_ENOMEM, "out of memory");
        }
        if (!rc)
            rc = copy_node(C, v->u.dict.state, &n->u.dict.state, depth + 1);
        break;
    case NPE_PV_CALL:
    case NPE_PV_OBJECT:
        n->u.call.items_pairs = v->u.call.items_pairs;
        if (!(rc = copy_node(C, v->u.call.fn, &n->u.call.fn, depth + 1)) &&
            !(rc = copy_node(C, v->u.call.args, &n->u.call.args, depth + 1)) &&
            !(rc = copy_node(C, v->u.call.kwargs, &n->u.call.kwargs, depth + 1)) &&
            !(rc = copy_node(C, v->u.call.state, &n->u.call.state, depth + 1)))
            rc = copy_node(C, v->u.call.items, &n->u.call.items, depth + 1);
        break;
    case NPE_PV_PERSID:
        rc = copy_node(C, v->u.pid, &n->u.pid, depth + 1);
        break;
    default:
        break;
    }
    *out = n;
    return rc;
}

int npe_x_copy_tree(npe_pkl *doc, const npe_pv *root, const npe_xmap *repl, npe_xmap *memo,
                    npe_pv **out, npe_error *err)
{
    copier C = {doc, repl, memo, err};
    return copy_node(&C, root, out, 0);
}

/* ---- Tensor records -------------------------------------------------------------------------- */
static int is_fn(const npe_pv *call, const char *module, const char *name)
{
    const npe_pv *fn = call && (call->kind == NPE_PV_CALL) ? call->u.call.fn : NULL;
    return fn && fn->kind == NPE_PV_GLOBAL && strcmp(fn->u.global.module, module) == 0 &&
           strcmp(fn->u.global.name, name) == 0;
}

static const npe_pv *arg(const npe_pv *call, size_t i)
{
    const npe_pv *a = call->u.call.args;
    return a && a->kind == NPE_PV_TUPLE && i < a->u.seq.n ? a->u.seq.items[i] : NULL;
}

const npe_pv *npe_x_inner_rebuild(const npe_pv *t)
{
    for (int depth = 0; t && depth < 8; depth++) {
        if (is_fn(t, "torch._utils", "_rebuild_tensor_v2"))
            return t;
        if (is_fn(t, "torch._utils", "_rebuild_parameter") ||
            is_fn(t, "torch._utils", "_rebuild_parameter_with_state") ||
            is_fn(t, "torch.nn.parameter", "Parameter"))
            t = arg(t, 0);
        else if (is_fn(t, "torch._tensor", "_rebuild_from_type_v2")) {
            const npe_pv *a = arg(t, 2); /* (func, type, args, state): args[0] is the tensor */
            t = a && a->kind == NPE_PV_TUPLE && a->u.seq.n ? a->u.seq.items[0] : NULL;
        } else
            return NULL;
    }
    return NULL;
}

/* A tuple of ints, possibly wrapped in torch.Size(...) or a TorchScript list builder. */
static const npe_pv *int_seq(const npe_pv *v)
{
    for (int k = 0; k < 4 && v && v->kind == NPE_PV_CALL; k++)
        v = arg(v, 0);
    return v && (v->kind == NPE_PV_TUPLE || v->kind == NPE_PV_LIST) ? v : NULL;
}

int npe_x_parse_v2(const npe_pv *call, const char *what, npe_x_tinfo *t, npe_error *err)
{
    memset(t, 0, sizeof *t);
    if (!is_fn(call, "torch._utils", "_rebuild_tensor_v2"))
        return npe_error_set(err, NPE_EUNSUPPORTED, "tensor '%s' is not a _rebuild_tensor_v2 "
                             "record", what);
    t->call = call;
    const npe_pv *pid = arg(call, 0), *off = arg(call, 1);
    const npe_pv *size = int_seq(arg(call, 2)), *stride = int_seq(arg(call, 3));
    const npe_pv *tup = pid && pid->kind == NPE_PV_PERSID ? pid->u.pid : NULL;
    if (!tup || tup->kind != NPE_PV_TUPLE || tup->u.seq.n != 5 || !off ||
        off->kind != NPE_PV_INT || !size || !stride || size->u.seq.n != stride->u.seq.n ||
        size->u.seq.n > NPE_MAX_DIMS)
        return npe_error_set(err, NPE_EFORMAT, "tensor '%s': malformed _rebuild_tensor_v2 "
                             "arguments", what);
    const npe_pv *tag = tup->u.seq.items[0], *ty = tup->u.seq.items[1],
                 *key = tup->u.seq.items[2], *num = tup->u.seq.items[4];
    if (!tag || tag->kind != NPE_PV_STR || strcmp(tag->u.str.s, "storage") != 0 || !ty ||
        ty->kind != NPE_PV_GLOBAL || !key || key->kind != NPE_PV_STR || !num ||
        num->kind != NPE_PV_INT || num->u.i < 0)
        return npe_error_set(err, NPE_EFORMAT, "tensor '%s': malformed storage id", what);
    if (!npe_torch_storage_dtype(ty->u.global.module, ty->u.global.name, &t->dtype))
        return npe_error_set(err, NPE_EUNSUPPORTED, "tensor '%s': storage type %s.%s is not a "
                             "typed storage the exporter can rewrite", what, ty->u.global.module,
                             ty->u.global.name);
    t->pid = tup;
    t->key = key->u.str.s;
    t->numel = (uint64_t)num->u.i;
    t->offset = off->u.i;
    t->ndim = (int)size->u.seq.n;
    uint64_t extent = 0;
    int empty = 0;
    for (int d = 0; d < t->ndim; d++) {
        const npe_pv *s = size->u.seq.items[d], *st = stride->u.seq.items[d];
        if (s->kind != NPE_PV_INT || st->kind != NPE_PV_INT || s->u.i < 0 || st->u.i < 0 ||
            s->u.i > (INT64_C(1) << 40) || st->u.i > (INT64_C(1) << 40))
            return npe_error_set(err, NPE_EFORMAT, "tensor '%s': bad size or stride", what);
        t->shape[d] = s->u.i;
        t->stride[d] = st->u.i;
        uint64_t a = s->u.i ? (uint64_t)(s->u.i - 1) : 0, b = (uint64_t)st->u.i;
        if (!s->u.i)
            empty = 1;
        if ((b && a > (UINT64_C(1) << 62) / b) || extent + a * b > (UINT64_C(1) << 62))
            return npe_error_set(err, NPE_EFORMAT, "tensor '%s' is too large", what);
        extent += a * b;
    }
    if (t->offset < 0 || (!empty && ((uint64_t)t->offset >= t->numel ||
                                     extent >= t->numel - (uint64_t)t->offset)))
        return npe_error_set(err, NPE_EFORMAT, "tensor '%s' lies outside its storage of %" PRIu64
                             " elements", what, t->numel);
    return 0;
}

npe_pv *npe_x_new_tensor_call(npe_pkl *doc, const npe_x_tinfo *orig, const char *key,
                              uint64_t numel, int ndim, const int64_t *shape)
{
    const npe_pv *oargs = orig->call->u.call.args;
    npe_pv *pid = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    npe_pv *k = npe_pv_new_str(doc, key), *n = npe_pv_new_int(doc, (int64_t)numel);
    if (!pid || !k || !n)
        return NULL;
    for (size_t i = 0; i < 5; i++) {
        npe_pv *it = i == 2 ? k : i == 4 ? n : orig->pid->u.seq.items[i];
        if (npe_pv_append(doc, pid, it))
            return NULL;
    }
    npe_pv *persid = npe_pv_new_persid(doc, pid);
    npe_pv *args = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    npe_pv *off = npe_pv_new_int(doc, 0);
    npe_pv *size = npe_pv_new_seq(doc, NPE_PV_TUPLE), *stride = npe_pv_new_seq(doc, NPE_PV_TUPLE);
    if (!persid || !args || !off || !size || !stride)
        return NULL;
    int64_t st[NPE_MAX_DIMS], acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= shape[d] ? shape[d] : 1;
    }
    for (int d = 0; d < ndim; d++) {
        npe_pv *a = npe_pv_new_int(doc, shape[d]), *b = npe_pv_new_int(doc, st[d]);
        if (!a || !b || npe_pv_append(doc, size, a) || npe_pv_append(doc, stride, b))
            return NULL;
    }
    if (npe_pv_append(doc, args, persid) || npe_pv_append(doc, args, off) ||
        npe_pv_append(doc, args, size) || npe_pv_append(doc, args, stride))
        return NULL;
    for (size_t i = 4; i < oargs->u.seq.n; i++) /* requires_grad, hooks[, metadata] */
        if (npe_pv_append(doc, args, oargs->u.seq.items[i]))
            return NULL;
    return npe_pv_new_call(doc, orig->call->u.call.fn, args);
}

/* ---- Data ------------------------------------------------------------------------------------ */
static float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 0) {
        if (!m) {
            bits = sign;
        } else {
            e = 113;
            while (!(m & 1024)) {
                m <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((m & 1023) << 13);
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (m << 13);
    } else {
        bits = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f32_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, nan (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) /* rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* subnormal half (or zero): round m * 2^(e) to a multiple of 2^-24 */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 112, m = ax & 0x7fffffu;
    uint32_t q = (e << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1)))
        q++; /* may carry into the exponent: still correct */
    return (uint16_t)(sign | q);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

static int64_t round_sat(float f, int64_t lo, int64_t hi)
{
    if (f != f)
        return 0;
    double r = nearbyint((double)f);
    if (r <= (double)lo)
        return lo;
    if (r >= (double)hi)
        return hi;
    return (int64_t)r;
}

int npe_x_to_f32(float *dst, const void *src, npe_dtype dt, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case NPE_DTYPE_F32: memcpy(&dst[i], p + 4 * i, 4); break;
        case NPE_DTYPE_F64: { double x; memcpy(&x, p + 8 * i, 8); dst[i] = (float)x; break; }
        case NPE_DTYPE_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); dst[i] = (float)x; break; }
        case NPE_DTYPE_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); dst[i] = (float)x; break; }
        case NPE_DTYPE_I16: { int16_t x; memcpy(&x, p + 2 * i, 2); dst[i] = (float)x; break; }
        case NPE_DTYPE_I8: dst[i] = (float)(int8_t)p[i]; break;
        case NPE_DTYPE_U8: dst[i] = (float)p[i]; break;
        case NPE_DTYPE_BOOL: dst[i] = p[i] ? 1.0f : 0.0f; break;
        case NPE_DTYPE_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = half_to_f32(h); break; }
        case NPE_DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
            break;
        }
        default:
            return NPE_EUNSUPPORTED;
        }
    }
    return 0;
}

int npe_x_from_f32(void *dst, const float *src, npe_dtype dt, int64_t n)
{
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++) {
        float f = src[i];
        switch (dt) {
        case NPE_DTYPE_F32: memcpy(p + 4 * i, &f, 4); break;
        case NPE_DTYPE_F64: { double x = f; memcpy(p + 8 * i, &x, 8); break; }
        case NPE_DTYPE_I64: {
            int64_t x = round_sat(f, INT64_MIN, INT64_MAX);
            memcpy(p + 8 * i, &x, 8);
            break;
        }
        case NPE_DTYPE_I32: {
            int32_t x = (int32_t)round_sat(f, INT32_MIN, INT32_MAX);
            memcpy(p + 4 * i, &x, 4);
            break;
        }
        case NPE_DTYPE_I16: {
            int16_t x = (int16_t)round_sat(f, INT16_MIN, INT16_MAX);
            memcpy(p + 2 * i, &x, 2);
            break;
        }
        case NPE_DTYPE_I8: p[i] = (unsigned char)(int8_t)round_sat(f, INT8_MIN, INT8_MAX); break;
        case NPE_DTYPE_U8: p[i] = (unsigned char)round_sat(f, 0, 255); break;
        case NPE_DTYPE_BOOL: p[i] = f != 0.0f; break;
        case NPE_DTYPE_F16: { uint16_t h = f32_to_half(f); memcpy(p + 2 * i, &h, 2); break; }
        case NPE_DTYPE_BF16: { uint16_t h = f32_to_bf16(f); memcpy(p + 2 * i, &h, 2); break; }
        default:
            return NPE_EUNSUPPORTED;
        }
    }
    return 0;
}

int npe_x_gather(const unsigned char *storage, size_t nbytes, const npe_x_tinfo *t, void *dst,
                 npe_error *err)
{
    size_t isz = npe_dtype_size(t->dtype);
    if (!isz || t->numel > nbytes / isz)
        return npe_error_set(err, NPE_EFORMAT, "storage '%s' holds %zu bytes, fewer than %" PRIu64
                             " elements of %s", t->key, nbytes, t->numel,
                             npe_dtype_name(t->dtype));
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= t->shape[d]; /* bounded by npe_x_parse_v2's extent check against the storage */
    unsigned char *o = dst;
    for (int64_t i = 0; i < numel; i++) {
        int64_t rem = i, src = t->offset;
        for (int d = t->ndim - 1; d >= 0; d--) {
            src += (rem % t->shape[d]) * t->stride[d];
            rem /= t->shape[d];
        }
        memcpy(o + (size_t)i * isz, storage + (size_t)src * isz, isz);
    }
    return 0;
}

int npe_x_value_bytes(const npe_value *v, npe_dtype dt, void **out, size_t *nbytes,
                      npe_error *err)
{
    *out = NULL;
    *nbytes = 0;
    int64_t n = npe_value_numel(v);
    size_t isz = npe_dtype_size(dt);
    if (n < 0 || !isz || (uint64_t)n > SIZE_MAX / 8 || n != v->numel_data || (n && !v->data))
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': its data does not match its shape",
                             v->name);
    void *b = malloc((size_t)n * isz + 1);
    if (!b)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    if (npe_x_from_f32(b, v->data, dt, n)) {
        free(b);
        return npe_error_set(err, NPE_EUNSUPPORTED, "tensor '%s': cannot write %s data",
                             v->name, npe_dtype_name(dt));
    }
    *out = b;
    *nbytes = (size_t)n * isz;
    return 0;
}

int npe_x_value_differs(const npe_value *v, const void *bytes, npe_dtype dt, int ndim,
                        const int64_t *shape, npe_error *err)
{
    if (v->ndim != ndim)
        return 1;
    for (int d = 0; d < ndim; d++)
        if (v->shape[d] != shape[d])
            return 1;
    int64_t n = npe_value_numel(v);
    if (n < 0 || n != v->numel_data || (n && !v->data))
        return npe_error_set(err, NPE_EINVAL, "tensor '%s': its data does not match its shape",
                             v->name);
    float buf[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t k = n - i < 256 ? n - i : 256;
        if (npe_x_to_f32(buf, (const unsigned char *)bytes + (size_t)i * npe_dtype_size(dt), dt, k))
            return npe_error_set(err, NPE_EUNSUPPORTED, "tensor '%s': %s data is not supported",
                                 v->name, npe_dtype_name(dt));
        /* bitwise: the graph holds exactly what the importer converted when nothing changed */
        if (memcmp(buf, v->data + i, (size_t)k * sizeof(float)) != 0)
            return 1;
    }
    return 0;
}

void npe_x_fresh_key(char *out, size_t cap, const char *const *used, size_t n, uint64_t *next)
{
    for (;;) {
        snprintf(out, cap, "%" PRIu64, (*next)++);
        size_t i = 0;
        while (i < n && strcmp(used[i], out) != 0)
            i++;
        if (i == n)
            return;
    }
}

/* ---- Archives -------------------------------------------------------------------------------- */
static char *dupstr(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c)
        memcpy(c, s, n + 1);
    return c;
}

int npe_x_recs_add(npe_x_recs *l, const char *name, const void *data, size_t size, int deflate,
                   int own, const char *anchor, int after)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        npe_x_rec *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            if (own)
                free((void *)(uintptr_t)data);
            return NPE_ENOMEM;
        }
        l->v = nv;
        l->cap = ncap;
    }
    npe_x_rec *r = &l->v[l->n];
    memset(r, 0, sizeof *r);
    r->name = dupstr(name);
    r->anchor = anchor ? dupstr(anchor) : NULL;
    if (own) {
        r->data = (void *)(uintptr_t)data;
    } else if (data || size) {
        r->data = malloc(size ? size : 1);
        if (r->data && size)
            memcpy(r->data, data, size);
    }
    r->size = size;
    r->deflate = deflate;
    r->after = after;
    l->n++;
    if (!r->name || (anchor && !r->anchor) || ((data || size) && !r->data))
        return NPE_ENOMEM;
    return 0;
}

void npe_x_recs_free(npe_x_recs *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].anchor);
        free(l->v[i].data);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

int npe_x_record_data(npe_zip_reader *z, const npe_zip_entry *e, const void **data, void **owned,
                      npe_error *err)
{
    *owned = NULL;
    if (e->method == 0)
        return npe_zip_view(z, e, data, err);
    size_t size = 0;
    int r = npe_zip_read(z, e, (size_t)e->size, owned, &size, err);
    *data = *owned;
    return r;
}

/* Additions next to the record `anchor` (NULL: those at the end, including any whose anchor the
 * archive does not have). */
static int write_added(npe_zip_reader *z, npe_zip_writer *w, const npe_x_recs *added,
                       const char *anchor, int after, npe_error *err)
{
    for (size_t i = 0; added && i < added->n; i++) {
        const npe_x_rec *a = &added->v[i];
        int match = anchor ? a->anchor && strcmp(a->anchor, anchor) == 0 && a->after == after
                           : !a->anchor || !npe_zip_find(z, a->anchor);
        if (!match)
            continue;
        int r = npe_zip_writer_add(w, a->name, a->data, a->size, a->deflate, err);
        if (r)
            return r;
    }
    return 0;
}

int npe_x_write_archive(npe_zip_reader *z, const char *out_path, const npe_x_recs *repl,
                        const npe_x_recs *added, npe_error *err)
{
    npe_zip_writer *w = NULL;
    int r = npe_zip_writer_open(out_path, 0, &w, err);
    if (r)
        return r;
    size_t n = npe_zip_count(z);
    for (size_t i = 0; i < n && !r; i++) {
        const npe_zip_entry *e = npe_zip_entry_at(z, i);
        if ((r = write_added(z, w, added, e->name, 0, err)))
            break;
        const npe_x_rec *rp = NULL;
        for (size_t k = 0; repl && k < repl->n && !rp; k++)
            if (strcmp(repl->v[k].name, e->name) == 0)
                rp = &repl->v[k];
        if (rp) {
            if (!rp->drop)
                r = npe_zip_writer_add(w, e->name, rp->data, rp->size, rp->deflate, err);
        } else {
            const void *data = NULL;
            void *owned = NULL;
            if (!(r = npe_x_record_data(z, e, &data, &owned, err)))
                r = npe_zip_writer_add(w, e->name, data, (size_t)e->size, e->method != 0, err);
            free(owned);
        }
        if (!r)
            r = write_added(z, w, added, e->name, 1, err);
    }
    if (!r)
        r = write_added(z, w, added, NULL, 0, err);
    if (r) {
        npe_zip_writer_abort(w);
        return r;
    }
    return npe_zip_writer_finish(w, err);
}

/* ---- Changed tensors ------------------------------------------------------------------------- */
int npe_x_changes_add(npe_x_changes *l, const npe_x_change *c)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        npe_x_change *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            free(c->bytes);
            return NPE_ENOMEM;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *c;
    return 0;
}

void npe_x_changes_free(npe_x_changes *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].bytes);
    free(l->v);
    memset(l, 0, sizeof *l);
}

int npe_x_changes_keys(npe_x_changes *l, const char *const *used, size_t n, uint64_t first)
{
    const char **all = malloc((n + l->n + 1) * sizeof *all);
    if (!all)
        return NPE_ENOMEM;
    if (n)
        memcpy(all, used, n * sizeof *all);
    size_t na = n;
    uint64_t next = first;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].reuse)
            continue;
        npe_x_fresh_key(l->v[i].key, sizeof l->v[i].key, all, na, &next);
        all[na++] = l->v[i].key;
    }
    free(all);
    return 0;
}

int npe_x_changes_repl(npe_x_changes *l, npe_pkl *doc, npe_xmap *repl)
{
    for (size_t i = 0; i < l->n; i++) {
        const npe_x_change *c = &l->v[i];
        size_t isz = npe_dtype_size(c->info.dtype);
        npe_pv *t = npe_x_new_tensor_call(doc, &c->info, c->key, isz ? c->nbytes / isz : 0,
                                          c->ndim, c->shape);
        if (!t || npe_xmap_put(repl, c->node, t))
            return NPE_ENOMEM;
    }
    return 0;
}

int npe_x_changes_records(npe_x_changes *l, const char *prefix, const char *dir,
                          const char *anchor, npe_x_recs *repl, npe_x_recs *added)
{
    for (size_t i = 0; i < l->n; i++) {
        npe_x_change *c = &l->v[i];
        size_t need = strlen(prefix) + strlen(dir) + strlen(c->key) + 2;
        char *rn = malloc(need);
        if (!rn)
            return NPE_ENOMEM;
        snprintf(rn, need, "%s%s/%s", prefix, dir, c->key);
        int r = c->reuse ? npe_x_recs_add(repl, rn, c->bytes, c->nbytes, 0, 1, NULL, 0)
                         : npe_x_recs_add(added, rn, c->bytes, c->nbytes, 0, 1, anchor, 0);
        c->bytes = NULL; /* the list owns it now */
        free(rn);
        if (r)
            return r;
    }
    return 0;
}
