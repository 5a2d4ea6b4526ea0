/* Reading PyTorch files: zip archives (torch.save >= 1.6, torch.jit.save) and legacy pickle
 * streams (< 1.6) into validated, named tensors over the mapped bytes, plus the module tree. */
#define _DEFAULT_SOURCE /* madvise */
#include "torch_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_DEPTH 256          /* nesting of containers/objects the walker follows */
#define MAX_REBUILD_DEPTH 8    /* Parameter(_rebuild_from_type_v2(_rebuild_tensor_v2(...))) */
#define MAX_NAME 4096          /* bytes of a dotted tensor or module name */
#define MAX_KEY 256            /* bytes of a storage key */
#define MAX_PICKLE ((size_t)1 << 30)
#define MAX_ATTR_REPR 512

/* What the public struct does not say: whether the bytes are ours to unmap. */
typedef struct tfile {
    npe_torch_file pub;
    int owns_map;
    size_t cap_tensors, cap_modules, cap_storages;
} tfile;

/* ---- small hash maps (node pointer -> index, storage key -> index) ---- */

typedef struct {
    const void *key; /* const npe_pv * or const char * */
    size_t val;
} slot;

typedef struct {
    slot *slots;
    size_t cap, n; /* cap is 0 or a power of two */
} hmap;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return mix(h);
}

static uint64_t hash_key(const void *k, int str)
{
    return str ? hash_str(k) : mix((uint64_t)(uintptr_t)k);
}

static slot *hm_find(const hmap *m, const void *k, int str)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_key(k, str) & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (str ? strcmp(s->key, k) == 0 : s->key == k)
            return s;
    }
}

static void hm_insert(hmap *m, const void *k, size_t v, int str)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_key(k, str) & mask;
    while (m->slots[i].key)
        i = (i + 1) & mask;
    m->slots[i].key = k;
    m->slots[i].val = v;
    m->n++;
}

/* Insert k (not present) -> v. Returns 0 or NPE_ENOMEM. */
static int hm_put(hmap *m, const void *k, size_t v, int str)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        slot *old = m->slots;
        size_t ocap = m->cap;
        m->slots = calloc(ncap, sizeof(*m->slots));
        if (!m->slots) {
            m->slots = old;
            return NPE_ENOMEM;
        }
        m->cap = ncap;
        m->n = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].key)
                hm_insert(m, old[i].key, old[i].val, str);
        free(old);
    }
    hm_insert(m, k, v, str);
    return 0;
}

static void hm_free(hmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* ---- loader state ---- */

typedef struct loader {
    tfile *tf;
    npe_torch_file *f;
    npe_error *err;
    hmap seen;     /* containers and objects already walked */
    hmap tnodes;   /* tensor node -> index of its first tensor entry */
    hmap skeys;    /* storage key -> storage index */
    hmap npsets;   /* _non_persistent_buffers_set node -> index into npnames */
    hmap *npnames; /* the names in each such set (hashed once, however many modules share it) */
    size_t n_np, cap_np;
    char *path;    /* dotted name of the node being walked */
    size_t plen, pcap;
} loader;

typedef struct sref {
    size_t idx;
    uint64_t base_bytes; /* start of a legacy storage view */
    uint64_t cap_bytes;  /* bytes from base the tensor may use */
} sref;

static int terr(loader *L, int code, const char *fmt, ...) NPE_PRINTF(3, 4);
static int terr(loader *L, int code, const char *fmt, ...)
{
    char msg[NPE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return npe_error_set(L->err, code, "%s: %s", L->f->path, msg);
}

static int oom(loader *L)
{
    return terr(L, NPE_ENOMEM, "out of memory");
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *cat2(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *d = malloc(na + nb + 1);
    if (d) {
        memcpy(d, a, na);
        memcpy(d + na, b, nb + 1);
    }
    return d;
}

/* Grow *arr (of elem bytes) so that it holds at least n + 1 elements. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / elem)
        return NPE_ENOMEM;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return NPE_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static const char *shown_path(const loader *L)
{
    return L->plen ? L->path : "(root)";
}

/* ---- dotted names ---- */

static int path_push(loader *L, const char *s, size_t n, size_t *saved)
{
    *saved = L->plen;
    size_t need = L->plen + (L->plen ? 1 : 0) + n;
    if (need > MAX_NAME)
        return terr(L, NPE_ELIMIT, "name under '%.200s' is longer than %d bytes", shown_path(L),
                    MAX_NAME);
    if (need + 1 > L->pcap) {
        size_t ncap = L->pcap ? L->pcap : 128;
        while (ncap < need + 1)
            ncap *= 2;
        char *p = realloc(L->path, ncap);
        if (!p)
            return oom(L);
        L->path = p;
        L->pcap = ncap;
    }
    if (L->plen)
        L->path[L->plen++] = '.';
    memcpy(L->path + L->plen, s, n);
    L->plen += n;
    L->path[L->plen] = '\0';
    return 0;
}

static void path_pop(loader *L, size_t saved)
{
    L->plen = saved;
    L->path[saved] = '\0';
}

/* Bytes of a STR up to its first NUL (names stop there, as C strings do). */
static size_t key_len(const npe_pv *k)
{
    const char *z = memchr(k->u.str.s, '\0', k->u.str.len);
    return z ? (size_t)(z - k->u.str.s) : k->u.str.len;
}

static int path_push_key(loader *L, const npe_pv *key, size_t *saved)
{
    char buf[64];
    if (key && key->kind == NPE_PV_STR)
        return path_push(L, key->u.str.s, key_len(key), saved);
    if (key && key->kind == NPE_PV_INT) {
        int n = snprintf(buf, sizeof(buf), "%" PRId64, key->u.i);
        return path_push(L, buf, (size_t)n, saved);
    }
    npe_pv_repr(key, buf, sizeof(buf));
    return path_push(L, buf, strlen(buf), saved);
}

static int path_push_index(loader *L, size_t i, size_t *saved)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%zu", i);
    return path_push(L, buf, (size_t)n, saved);
}

/* ---- reading values ---- */

static int gl_is(const npe_pv *g, const char *module, const char *name)
{
    return g && g->kind == NPE_PV_GLOBAL && strcmp(g->u.global.module, module) == 0 &&
           strcmp(g->u.global.name, name) == 0;
}

static int is_rebuild_global(const npe_pv *g)
{
    return gl_is(g, "torch._utils", "_rebuild_tensor_v2") ||
           gl_is(g, "torch._utils", "_rebuild_tensor") ||
           gl_is(g, "torch._utils", "_rebuild_tensor_v3") ||
           gl_is(g, "torch._utils", "_rebuild_parameter") ||
           gl_is(g, "torch._utils", "_rebuild_parameter_with_state") ||
           gl_is(g, "torch.nn.parameter", "Parameter") ||
           gl_is(g, "torch._tensor", "_rebuild_from_type_v2");
}

static int is_tensor_call(const npe_pv *v)
{
    return v && v->kind == NPE_PV_CALL && is_rebuild_global(v->u.call.fn);
}

static size_t nargs(const npe_pv *call)
{
    const npe_pv *a = call->u.call.args;
    return a && a->kind == NPE_PV_TUPLE ? a->u.seq.n : 0;
}

static const npe_pv *arg(const npe_pv *call, size_t i)
{
    return i < nargs(call) ? call->u.call.args->u.seq.items[i] : NULL;
}

/* TorchScript wraps typed containers in identity helpers; torch.Size wraps a tuple. */
static const npe_pv *unwrap(const npe_pv *v)
{
    for (int i = 0; i < 8 && v && v->kind == NPE_PV_CALL && nargs(v) >= 1; i++) {
        const npe_pv *fn = v->u.call.fn;
        if (fn && fn->kind == NPE_PV_GLOBAL &&
            (strcmp(fn->u.global.module, "torch.jit._pickle") == 0 || gl_is(fn, "torch", "Size")))
            v = arg(v, 0);
        else
            break;
    }
    return v;
}

static const char *kind_word(const npe_pv *v)
{
    static const char *const names[] = {"None", "bool", "int", "float", "str", "bytes",
                                        "tuple", "list", "set", "dict", "global", "call",
                                        "object", "persistent id"};
    if (!v)
        return "nothing";
    return (unsigned)v->kind < sizeof(names) / sizeof(names[0]) ? names[v->kind] : "?";
}

static int get_bool(const npe_pv *v, int *out)
{
    if (v && v->kind == NPE_PV_BOOL) {
        *out = v->u.b != 0;
        return 1;
    }
    if (v && v->kind == NPE_PV_INT && (v->u.i == 0 || v->u.i == 1)) {
        *out = (int)v->u.i;
        return 1;
    }
    return 0;
}

/* ---- storages ---- */

static int attach_record(loader *L, npe_tstorage *s, uint64_t nbytes)
{
    npe_torch_file *f = L->f;
    char *rest = cat2("data/", s->key);
    char *name = rest ? cat2(f->prefix, rest) : NULL;
    free(rest);
    if (!name)
        return oom(L);
    int r = 0;
    const npe_zip_entry *e = npe_zip_find(f->zip, name);
    if (!e) {
        r = terr(L, NPE_EFORMAT, "storage '%s' has no record '%s'", s->key, name);
    } else if (e->method != 0) {
        r = terr(L, NPE_EUNSUPPORTED,
                 "record '%s' is compressed (method %u); tensor data must be stored", name,
                 (unsigned)e->method);
    } else if (e->size != nbytes) {
        r = terr(L, NPE_EFORMAT,
                 "record '%s' holds %" PRIu64 " bytes but storage '%s' needs %" PRIu64
                 " (%" PRIu64 " x %s)",
                 name, e->size, s->key, nbytes, s->numel, npe_dtype_name(s->dtype));
    } else {
        /* The zip reader checked that the record lies inside the file; its CRC is checked when
         * the data is first used (npe_torch_storage_check), not to list the archive. */
        s->data = npe_zip_base(f->zip) + e->data_offset;
        s->entry = e;
    }
    free(name);
    return r;
}

/* Resolve a persistent id ('storage', type, key, location, numel[, view_metadata]). */
static int resolve_storage(loader *L, const npe_pv *persid, sref *out)
{
    npe_torch_file *f = L->f;
    const npe_pv *pid = persid->u.pid;
    if (!pid || pid->kind != NPE_PV_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6 ||
        pid->u.seq.items[0]->kind != NPE_PV_STR || strcmp(pid->u.seq.items[0]->u.str.s, "storage"))
        return terr(L, NPE_EFORMAT,
                    "'%.200s': persistent id is not ('storage', type, key, location, numel)",
                    shown_path(L));
    npe_pv *const *it = pid->u.seq.items;
    const npe_pv *type = it[1], *key = it[2], *loc = it[3], *numel = it[4];
    const npe_pv *view = pid->u.seq.n > 5 ? it[5] : NULL;
    npe_dtype dt;
    if (!type || type->kind != NPE_PV_GLOBAL)
        return terr(L, NPE_EFORMAT, "'%.200s': storage type is a %s, not a class",
                    shown_path(L), kind_word(type));
    if (npe_torch_is_untyped_storage(type->u.global.module, type->u.global.name))
        dt = NPE_DTYPE_U8;
    else if (!npe_torch_storage_dtype(type->u.global.module, type->u.global.name, &dt))
        return terr(L, NPE_EUNSUPPORTED, "'%.200s': storage type %s.%s is not supported",
                    shown_path(L), type->u.global.module, type->u.global.name);
    if (key->kind != NPE_PV_STR || key->u.str.len == 0 || key->u.str.len > MAX_KEY ||
        memchr(key->u.str.s, '\0', key->u.str.len) || strchr(key->u.str.s, '/'))
        return terr(L, NPE_EFORMAT, "'%.200s': storage key is not a short name", shown_path(L));
    if (loc->kind != NPE_PV_STR || memchr(loc->u.str.s, '\0', loc->u.str.len))
        return terr(L, NPE_EFORMAT, "'%.200s': storage location is not a string", shown_path(L));
    if (numel->kind != NPE_PV_INT || numel->u.i < 0)
        return terr(L, NPE_EFORMAT, "'%.200s': storage '%s' has a bad element count",
                    shown_path(L), key->u.str.s);
    uint64_t n = (uint64_t)numel->u.i;
    size_t isz = npe_dtype_size(dt);
    if (n > (uint64_t)INT64_MAX / isz)
        return terr(L, NPE_ELIMIT, "storage '%s' declares %" PRIu64 " elements", key->u.str.s, n);
    uint64_t nbytes = n * isz;

    slot *sl = hm_find(&L->skeys, key->u.str.s, 1);
    size_t idx;
    if (sl) {
        idx = sl->val;
        const npe_tstorage *s = &f->storages[idx];
        if (s->dtype != dt || s->numel != n)
            return terr(L, NPE_EFORMAT,
                        "storage '%s' is declared as %" PRIu64 " x %s and as %" PRIu64 " x %s",
                        s->key, s->numel, npe_dtype_name(s->dtype), n, npe_dtype_name(dt));
    } else {
        if (grow((void **)&f->storages, &L->tf->cap_storages, f->n_storages, sizeof(npe_tstorage)))
            return oom(L);
        npe_tstorage *s = &f->storages[f->n_storages];
        memset(s, 0, sizeof(*s));
        s->key = dupn(key->u.str.s, key->u.str.len);
        s->location = dupn(loc->u.str.s, loc->u.str.len);
        s->dtype = dt;
        s->numel = n;
        idx = f->n_storages++;
        if (!s->key || !s->location || hm_put(&L->skeys, s->key, idx, 1))
            return oom(L);
        if (f->layout == NPE_LAYOUT_ZIP) {
            int r = attach_record(L, s, nbytes);
            if (r)
                return r;
        }
    }
    out->idx = idx;
    out->base_bytes = 0;
    out->cap_bytes = nbytes;
    if (view && view->kind != NPE_PV_NONE) {
        /* PyTorch < 0.4 pickled slices of storages as (view_key, offset, size) */
        if (view->kind != NPE_PV_TUPLE || view->u.seq.n != 3 ||
            view->u.seq.items[1]->kind != NPE_PV_INT || view->u.seq.items[2]->kind != NPE_PV_INT ||
            view->u.seq.items[1]->u.i < 0 || view->u.seq.items[2]->u.i < 0 ||
            (uint64_t)view->u.seq.items[1]->u.i > n ||
            (uint64_t)view->u.seq.items[2]->u.i > n - (uint64_t)view->u.seq.items[1]->u.i)
            return terr(L, NPE_EFORMAT, "'%.200s': storage view of '%s' is malformed or exceeds its %"
                        PRIu64 " elements", shown_path(L), key->u.str.s, n);
        out->base_bytes = (uint64_t)view->u.seq.items[1]->u.i * isz;
        out->cap_bytes = (uint64_t)view->u.seq.items[2]->u.i * isz;
    }
    return 0;
}

/* ---- tensors ---- */

static int int_tuple(loader *L, const npe_pv *v, int64_t *out, int *n, const char *what)
{
    v = unwrap(v);
    if (!v || (v->kind != NPE_PV_TUPLE && v->kind != NPE_PV_LIST))
        return terr(L, NPE_EFORMAT, "tensor '%.200s': %s is a %s, not a tuple", shown_path(L),
                    what, kind_word(v));
    if (v->u.seq.n > NPE_MAX_DIMS)
        return terr(L, NPE_EUNSUPPORTED, "tensor '%.200s' has %zu dimensions (at most %d supported)",
                    shown_path(L), v->u.seq.n, NPE_MAX_DIMS);
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const npe_pv *x = v->u.seq.items[i];
        if (x->kind != NPE_PV_INT)
            return terr(L, NPE_EFORMAT, "tensor '%.200s': %s holds a %s", shown_path(L), what,
                        kind_word(x));
        if (x->u.i < 0)
            return terr(L, NPE_EFORMAT, "tensor '%.200s': negative %s %" PRId64, shown_path(L),
                        what, x->u.i);
        out[i] = x->u.i;
    }
    *n = (int)v->u.seq.n;
    return 0;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

/* offset + sum((size - 1) * stride) must lie inside the storage. */
static int check_extent(loader *L, const npe_ttensor *t, int64_t offset, uint64_t cap_bytes,
                        const char *key)
{
    size_t isz = npe_dtype_size(t->dtype);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        if (mul_u64(numel, (uint64_t)t->shape[i], &numel) || numel > (uint64_t)INT64_MAX / isz)
            return terr(L, NPE_ELIMIT, "tensor '%.200s' has too many elements", shown_path(L));
    if (numel == 0)
        return 0;
    uint64_t last = (uint64_t)offset, term;
    int over = 0;
    for (int i = 0; i < t->ndim && !over; i++) {
        over = mul_u64((uint64_t)t->shape[i] - 1, (uint64_t)t->stride[i], &term) ||
               term >= UINT64_MAX - last; /* keeps last + 1 representable */
        if (!over)
            last += term;
    }
    uint64_t holds = cap_bytes / isz;
    if (over)
        return terr(L, NPE_EFORMAT, "tensor '%.200s' claims more elements than fit in 64 bits "
                    "but storage '%s' holds %" PRIu64, shown_path(L), key, holds);
    if (last + 1 > holds)
        return terr(L, NPE_EFORMAT, "tensor '%.200s' claims %" PRIu64 " elements but storage '%s' holds %" PRIu64,
                    shown_path(L), last + 1, key, holds);
    return 0;
}

static int parse_rebuild(loader *L, const npe_pv *fn, const npe_pv *call, npe_ttensor *t, int depth);

/* _rebuild_tensor(storage, offset, size, stride), _v2(..., requires_grad, hooks[, metadata]),
 * _v3(..., requires_grad, hooks, dtype[, metadata]). */
static int parse_plain(loader *L, const npe_pv *fn, const npe_pv *call, npe_ttensor *t)
{
    const char *fname = fn->u.global.name;
    int v1 = strcmp(fname, "_rebuild_tensor") == 0, v3 = strcmp(fname, "_rebuild_tensor_v3") == 0;
    size_t n = nargs(call), lo = v1 ? 4 : v3 ? 7 : 6, hi = v1 ? 4 : lo + 1;
    if (n < lo || n > hi)
        return terr(L, NPE_EFORMAT, "tensor '%.200s': %s takes %zu to %zu arguments, got %zu",
                    shown_path(L), fname, lo, hi, n);
    const npe_pv *st = arg(call, 0);
    if (st->kind != NPE_PV_PERSID)
        return terr(L, NPE_EFORMAT, "tensor '%.200s': storage argument is a %s", shown_path(L),
                    kind_word(st));
    sref sr;
    int r = resolve_storage(L, st, &sr);
    if (r)
        return r;
    const npe_tstorage *s = &L->f->storages[sr.idx];
    const npe_pv *off = arg(call, 1);
    if (off->kind != NPE_PV_INT || off->u.i < 0)
        return terr(L, NPE_EFORMAT, "tensor '%.200s': storage offset is not a non-negative int",
                    shown_path(L));
    int ns, nst;
    if ((r = int_tuple(L, arg(call, 2), t->shape, &ns, "size")) ||
        (r = int_tuple(L, arg(call, 3), t->stride, &nst, "stride")))
        return r;
    if (ns != nst)
        return terr(L, NPE_EFORMAT, "tensor '%.200s' has %d sizes but %d strides", shown_path(L),
                    ns, nst);
    t->ndim = ns;
    t->requires_grad = 0;
    if (!v1 && !get_bool(arg(call, 4), &t->requires_grad))
        return terr(L, NPE_EFORMAT, "tensor '%.200s': requires_grad is a %s", shown_path(L),
                    kind_word(arg(call, 4)));
    if (v3) {
        const npe_pv *d = arg(call, 6);
        if (!d || d->kind != NPE_PV_GLOBAL)
            return terr(L, NPE_EFORMAT, "tensor '%.200s': dtype argument is a %s", shown_path(L),
                        kind_word(d));
        if (!npe_torch_dtype_global(d->u.global.module, d->u.global.name, &t->dtype))
            return terr(L, NPE_EUNSUPPORTED, "tensor '%.200s' has dtype %s.%s, which is not supported",
                        shown_path(L), d->u.global.module, d->u.global.name);
    } else {
        t->dtype = s->dtype;
    }
    size_t isz = npe_dtype_size(t->dtype);
    if (sr.base_bytes % isz || (v3 && s->dtype != t->dtype && s->dtype != NPE_DTYPE_U8))
        return terr(L, NPE_EFORMAT, "tensor '%.200s' of %s views storage '%s' of %s",
                    shown_path(L), npe_dtype_name(t->dtype), s->key, npe_dtype_name(s->dtype));
    if ((r = check_extent(L, t, off->u.i, sr.cap_bytes, s->key)))
        return r;
    t->offset = off->u.i + (int64_t)(sr.base_bytes / isz);
    t->storage = sr.idx;
    return 0;
}

static int parse_rebuild(loader *L, const npe_pv *fn, const npe_pv *call, npe_ttensor *t, int depth)
{
    if (depth > MAX_REBUILD_DEPTH)
        return terr(L, NPE_ELIMIT, "tensor '%.200s': rebuild calls nested deeper than %d",
                    shown_path(L), MAX_REBUILD_DEPTH);
    if (!fn || fn->kind != NPE_PV_GLOBAL || !is_rebuild_global(fn))
        return terr(L, NPE_EFORMAT, "'%.200s': %s is not a tensor rebuild function", shown_path(L),
                    kind_word(fn));
    if (!call->u.call.args || call->u.call.args->kind != NPE_PV_TUPLE)
        return terr(L, NPE_EFORMAT, "tensor '%.200s': arguments are not a tuple", shown_path(L));
    const char *name = fn->u.global.name;
    if (strcmp(fn->u.global.module, "torch._utils") == 0 && strncmp(name, "_rebuild_tensor", 15) == 0)
        return parse_plain(L, fn, call, t);
    if (strcmp(name, "_rebuild_from_type_v2") == 0) {
        /* (func, new_type, args, state): a tensor subclass rebuilt by func(*args) */
        if (nargs(call) != 4 || arg(call, 2)->kind != NPE_PV_TUPLE)
            return terr(L, NPE_EFORMAT, "tensor '%.200s': _rebuild_from_type_v2 needs (func, type, args, state)",
                        shown_path(L));
        npe_pv inner = *call; /* the same record with func and args swapped in */
        inner.u.call.fn = call->u.call.args->u.seq.items[0];
        inner.u.call.args = call->u.call.args->u.seq.items[2];
        int r = parse_rebuild(L, inner.u.call.fn, &inner, t, depth + 1);
        if (!r && gl_is(arg(call, 1), "torch.nn.parameter", "Parameter"))
            t->is_parameter = 1;
        return r;
    }
    /* Parameter(data[, requires_grad]), _rebuild_parameter(data, requires_grad, hooks[, state]) */
    const npe_pv *data = arg(call, 0);
    if (!is_tensor_call(data))
        return terr(L, NPE_EFORMAT, "parameter '%.200s' wraps a %s, not a tensor", shown_path(L),
                    kind_word(data));
    int r = parse_rebuild(L, data->u.call.fn, data, t, depth + 1);
    if (r)
        return r;
    t->requires_grad = 1;
    if (nargs(call) >= 2 && !get_bool(arg(call, 1), &t->requires_grad))
        return terr(L, NPE_EFORMAT, "parameter '%.200s': requires_grad is a %s", shown_path(L),
                    kind_word(arg(call, 1)));
    t->is_parameter = 1;
    return 0;
}

static int add_tensor(loader *L, const npe_ttensor *t)
{
    npe_torch_file *f = L->f;
    if (grow((void **)&f->tensors, &L->tf->cap_tensors, f->n_tensors, sizeof(npe_ttensor)))
        return oom(L);
    npe_ttensor *d = &f->tensors[f->n_tensors];
    *d = *t;
    d->name = dupn(L->path, L->plen);
    if (!d->name)
        return oom(L);
    f->n_tensors++;
    return 0;
}

/* A tensor node at the current path. A node reached again (a tied parameter under two
 * modules, one tensor under two keys) gets a second name but is parsed once; non_persistent
 * belongs to the name (a buffer left out of state_dict()), not to the node. */
static int emit_tensor(loader *L, const npe_pv *v, int in_parameters, int non_persistent)
{
    slot *s = hm_find(&L->tnodes, v, 0);
    npe_ttensor t;
    if (s) {
        t = L->f->tensors[s->val];
    } else {
        memset(&t, 0, sizeof(t));
        int r = parse_rebuild(L, v->u.call.fn, v, &t, 0);
        if (r)
            return r;
        t.node = v;
        if (hm_put(&L->tnodes, v, L->f->n_tensors, 0))
            return oom(L);
    }
    if (in_parameters)
        t.is_parameter = 1;
    t.non_persistent = non_persistent;
    return add_tensor(L, &t);
}

/* ---- modules ---- */

static int is_nn_module(const npe_pv *v)
{
    if (!v || v->kind != NPE_PV_OBJECT || !v->u.call.state || v->u.call.state->kind != NPE_PV_DICT)
        return 0;
    const npe_pv *st = v->u.call.state;
    return npe_pv_dict_get(st, "_modules") || npe_pv_dict_get(st, "_parameters") ||
           npe_pv_dict_get(st, "_buffers");
}

static int is_script_object(const npe_pv *v)
{
    const npe_pv *fn = v && v->kind == NPE_PV_OBJECT ? v->u.call.fn : NULL;
    return fn && fn->kind == NPE_PV_GLOBAL && v->u.call.state &&
           v->u.call.state->kind == NPE_PV_DICT &&
           (strcmp(fn->u.global.module, "__torch__") == 0 ||
            strncmp(fn->u.global.module, "__torch__.", 10) == 0);
}

static char *render(const npe_pv *v)
{
    char buf[MAX_ATTR_REPR];
    size_t want = npe_pv_repr(unwrap(v), buf, sizeof(buf));
    if (want >= sizeof(buf))
        memcpy(buf + sizeof(buf) - 4, "...", 4);
    return dupn(buf, strlen(buf));
}

static int add_module(loader *L, const npe_pv *obj)
{
    npe_torch_file *f = L->f;
    if (grow((void **)&f->modules, &L->tf->cap_modules, f->n_modules, sizeof(npe_tmodule)))
        return oom(L);
    npe_tmodule *m = &f->modules[f->n_modules];
    memset(m, 0, sizeof(*m));
    f->n_modules++;
    const npe_pv *fn = obj->u.call.fn;
    m->obj = obj;
    m->path = dupn(L->path, L->plen);
    m->class_path = malloc(strlen(fn->u.global.module) + strlen(fn->u.global.name) + 2);
    if (!m->path || !m->class_path)
        return oom(L);
    sprintf(m->class_path, "%s.%s", fn->u.global.module, fn->u.global.name);
    const npe_pv *st = obj->u.call.state;
    size_t n = 0;
    for (size_t i = 0; i < st->u.dict.n; i++)
        n += st->u.dict.keys[i]->kind == NPE_PV_STR;
    if (!n)
        return 0;
    m->attr_names = calloc(n, sizeof(char *));
    m->attr_values = calloc(n, sizeof(char *));
    if (!m->attr_names || !m->attr_values)
        return oom(L);
    for (size_t i = 0; i < st->u.dict.n; i++) {
        const npe_pv *k = st->u.dict.keys[i], *v = unwrap(st->u.dict.vals[i]);
        if (k->kind != NPE_PV_STR || k->u.str.s[0] == '_' || strcmp(k->u.str.s, "training") == 0 ||
            is_tensor_call(v) || (v && v->kind == NPE_PV_OBJECT))
            continue;
        char *name = dupn(k->u.str.s, k->u.str.len), *val = render(v);
        m->attr_names[m->n_attrs] = name;
        m->attr_values[m->n_attrs] = val;
        m->n_attrs++;
        if (!name || !val)
            return oom(L);
    }
    return 0;
}

static int walk(loader *L, const npe_pv *v, int depth);

/* params: v is an entry of a module's _parameters; non_persistent: of its _buffers, named in
 * its _non_persistent_buffers_set. */
static int walk_named(loader *L, const npe_pv *key, const npe_pv *v, int depth, int params,
                      int non_persistent)
{
    size_t saved;
    int r = path_push_key(L, key, &saved);
    if (r)
        return r;
    if ((params || non_persistent) && is_tensor_call(v))
        r = emit_tensor(L, v, params, non_persistent);
    else
        r = walk(L, v, depth + 1);
    path_pop(L, saved);
    return r;
}

static int walk_items(loader *L, const npe_pv *seq, int depth)
{
    for (size_t i = 0; i < seq->u.seq.n; i++) {
        size_t saved;
        int r = path_push_index(L, i, &saved);
        if (r)
            return r;
        r = walk(L, seq->u.seq.items[i], depth + 1);
        path_pop(L, saved);
        if (r)
            return r;
    }
    return 0;
}

#define NO_NAMES SIZE_MAX

/* The names in a module's _non_persistent_buffers_set (a set of str; anything else in it names
 * no buffer) as an index into L->npnames, NO_NAMES when it has none. Each set node is hashed
 * once: a set shared by many modules costs its size once, and each lookup is then constant
 * time. An index, not a pointer: walking children may grow L->npnames. */
static int nonpersistent_names(loader *L, const npe_pv *st, size_t *out)
{
    *out = NO_NAMES;
    const npe_pv *set = npe_pv_dict_get(st, "_non_persistent_buffers_set");
    if (!set || set->kind == NPE_PV_NONE)
        return 0;
    if (set->kind != NPE_PV_SET && set->kind != NPE_PV_LIST && set->kind != NPE_PV_TUPLE)
        return terr(L, NPE_EFORMAT,
                    "module '%.200s': _non_persistent_buffers_set is a %s, not a set",
                    shown_path(L), kind_word(set));
    if (!set->u.seq.n)
        return 0;
    slot *s = hm_find(&L->npsets, set, 0);
    if (s) {
        *out = s->val;
        return 0;
    }
    if (grow((void **)&L->npnames, &L->cap_np, L->n_np, sizeof(hmap)))
        return oom(L);
    hmap *names = &L->npnames[L->n_np];
    memset(names, 0, sizeof(*names));
    L->n_np++;
    for (size_t i = 0; i < set->u.seq.n; i++) {
        const npe_pv *k = set->u.seq.items[i];
        /* a name with a NUL byte cannot be told apart by the string hash: it marks nothing */
        if (!k || k->kind != NPE_PV_STR || strlen(k->u.str.s) != k->u.str.len ||
            hm_find(names, k->u.str.s, 1))
            continue;
        if (hm_put(names, k->u.str.s, 0, 1))
            return oom(L);
    }
    if (hm_put(&L->npsets, set, L->n_np - 1, 0))
        return oom(L);
    *out = L->n_np - 1;
    return 0;
}

static int is_nonpersistent(const loader *L, size_t names, const npe_pv *key)
{
    return names != NO_NAMES && key->kind == NPE_PV_STR &&
           strlen(key->u.str.s) == key->u.str.len &&
           hm_find(&L->npnames[names], key->u.str.s, 1) != NULL;
}

/* mode: 0 any dict; 1 a module's _parameters; 2 its _buffers (None entries are absent ones),
 * np: for mode 2, the names of the buffers state_dict() leaves out (or NO_NAMES) */
static int walk_dict(loader *L, const npe_pv *d, int depth, int mode, size_t np)
{
    for (size_t i = 0; i < d->u.dict.n; i++) {
        if (mode && d->u.dict.vals[i]->kind == NPE_PV_NONE)
            continue;
        const npe_pv *k = d->u.dict.keys[i];
        int r = walk_named(L, k, d->u.dict.vals[i], depth, mode == 1,
                           mode == 2 && is_nonpersistent(L, np, k));
        if (r)
            return r;
    }
    return 0;
}

/* nn.Module pickled by torch.save(model): parameters, buffers, then children (the order of
 * model.state_dict()), then any other attribute that holds tensors. */
static int walk_nn_module(loader *L, const npe_pv *obj, int depth)
{
    int r = add_module(L, obj);
    if (r)
        return r;
    const npe_pv *st = obj->u.call.state;
    size_t np;
    if ((r = nonpersistent_names(L, st, &np)))
        return r;
    static const char *const special[] = {"_parameters", "_buffers", "_modules"};
    static const int modes[] = {1, 2, 0};
    for (int k = 0; k < 3; k++) {
        const npe_pv *d = npe_pv_dict_get(st, special[k]);
        if (!d || d->kind == NPE_PV_NONE)
            continue;
        if (d->kind != NPE_PV_DICT)
            return terr(L, NPE_EFORMAT, "module '%.200s': %s is a %s, not a dict", shown_path(L),
                        special[k], kind_word(d));
        if (hm_find(&L->seen, d, 0))
            continue;
        if (hm_put(&L->seen, d, 0, 0))
            return oom(L);
        if ((r = walk_dict(L, d, depth, modes[k], np)))
            return r;
    }
    for (size_t i = 0; i < st->u.dict.n; i++) {
        const npe_pv *k = st->u.dict.keys[i];
        if (k->kind == NPE_PV_STR && (strcmp(k->u.str.s, "_parameters") == 0 ||
                                      strcmp(k->u.str.s, "_buffers") == 0 ||
                                      strcmp(k->u.str.s, "_modules") == 0))
            continue;
        if ((r = walk_named(L, k, st->u.dict.vals[i], depth, 0, 0)))
            return r;
    }
    return 0;
}

static int walk(loader *L, const npe_pv *v, int depth)
{
    if (!v)
        return 0;
    if (depth > MAX_DEPTH)
        return terr(L, NPE_ELIMIT, "'%.200s': objects nested deeper than %d levels",
                    shown_path(L), MAX_DEPTH);
    switch (v->kind) {
    case NPE_PV_CALL:
    case NPE_PV_OBJECT:
    case NPE_PV_DICT:
    case NPE_PV_TUPLE:
    case NPE_PV_LIST:
    case NPE_PV_SET:
        break;
    case NPE_PV_PERSID: {
        sref sr; /* a bare storage: validated, not a tensor */
        return resolve_storage(L, v, &sr);
    }
    default:
        return 0;
    }
    if (is_tensor_call(v))
        return emit_tensor(L, v, 0, 0);
    /* each container is walked once: shared subtrees cost nothing twice, cycles end here */
    if (hm_find(&L->seen, v, 0))
        return 0;
    if (hm_put(&L->seen, v, 0, 0))
        return oom(L);
    int r = 0;
    switch (v->kind) {
    case NPE_PV_CALL: {
        const npe_pv *u = unwrap(v);
        if (u != v)
            return walk(L, u, depth + 1);
        if (v->u.call.args && (r = walk_items(L, v->u.call.args, depth)))
            return r;
        if ((r = walk(L, v->u.call.state, depth + 1)))
            return r;
        return walk(L, v->u.call.items, depth + 1);
    }
    case NPE_PV_OBJECT:
        if (v->u.call.fn && v->u.call.fn->kind == NPE_PV_GLOBAL) {
            if (is_nn_module(v))
                return walk_nn_module(L, v, depth);
            if (is_script_object(v)) {
                if ((r = add_module(L, v)))
                    return r;
                return walk_dict(L, v->u.call.state, depth, 0, NO_NAMES);
            }
        }
        if ((r = walk(L, v->u.call.state, depth + 1)))
            return r;
        if (v->u.call.args && (r = walk_items(L, v->u.call.args, depth)))
            return r;
        if ((r = walk(L, v->u.call.kwargs, depth + 1)))
            return r;
        return walk(L, v->u.call.items, depth + 1);
    case NPE_PV_DICT:
        if ((r = walk_dict(L, v, depth, 0, NO_NAMES)))
            return r;
        return walk(L, v->u.dict.state, depth + 1);
    default:
        return walk_items(L, v, depth);
    }
}

/* A state dict: a dict whose values are tensors or dicts of the same kind. */
static int is_tensor_dict(const npe_pv *d, hmap *seen, int depth)
{
    if (depth > MAX_DEPTH)
        return 0;
    if (hm_find(seen, d, 0))
        return 1;
    if (hm_put(seen, d, 0, 0))
        return -1;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const npe_pv *v = d->u.dict.vals[i];
        if (is_tensor_call(v))
            continue;
        if (v->kind != NPE_PV_DICT)
            return 0;
        int r = is_tensor_dict(v, seen, depth + 1);
        if (r <= 0)
            return r;
    }
    return 1;
}

static int build(loader *L, int torchscript)
{
    npe_torch_file *f = L->f;
    f->root = npe_pkl_root(f->pkl);
    L->pcap = 128;
    L->path = malloc(L->pcap);
    if (!L->path)
        return oom(L);
    L->path[0] = '\0';
    int r = walk(L, f->root, 0);
    if (r)
        return r;
    if (torchscript) {
        f->kind = NPE_ARCHIVE_TORCHSCRIPT;
    } else if (is_nn_module(f->root)) {
        f->kind = NPE_ARCHIVE_FULL_MODEL;
    } else if (f->root && f->root->kind == NPE_PV_DICT) {
        hmap seen = {0};
        int sd = is_tensor_dict(f->root, &seen, 0);
        hm_free(&seen);
        if (sd < 0)
            return oom(L);
        f->kind = sd ? NPE_ARCHIVE_STATE_DICT : NPE_ARCHIVE_OBJECT;
    } else {
        f->kind = NPE_ARCHIVE_OBJECT;
    }
    return 0;
}

/* ---- zip layout ---- */

static const npe_zip_entry *find_rec(loader *L, const char *suffix)
{
    char *name = cat2(L->f->prefix, suffix);
    const npe_zip_entry *e = name ? npe_zip_find(L->f->zip, name) : NULL;
    free(name);
    return e;
}

static int read_version(loader *L, const npe_zip_entry *e)
{
    void *data = NULL;
    size_t size = 0;
    int r = npe_zip_read(L->f->zip, e, 64, &data, &size, L->err);
    if (r)
        return r;
    const char *p = data;
    size_t i = 0;
    long v = 0;
    int digits = 0;
    while (i < size && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    while (i < size && p[i] >= '0' && p[i] <= '9' && digits < 9) {
        v = v * 10 + (p[i++] - '0');
        digits++;
    }
    while (i < size && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    free(data);
    if (!digits || i != size)
        return terr(L, NPE_EFORMAT, "record '%s' does not hold a version number", e->name);
    if (v < 1 || v > 10)
        return terr(L, NPE_EUNSUPPORTED, "record '%s' holds version %ld (1 to 10 supported)",
                    e->name, v);
    L->f->version = (int)v;
    return 0;
}

static int open_zip(loader *L)
{
    npe_torch_file *f = L->f;
    f->layout = NPE_LAYOUT_ZIP;
    int r = npe_zip_open_mem(f->map.data, f->map.size, f->path, &f->zip, L->err);
    if (r)
        return r;
    size_t n = npe_zip_count(f->zip);
    if (!n)
        return terr(L, NPE_EFORMAT, "zip archive has no records");
    const char *first = npe_zip_entry_at(f->zip, 0)->name;
    const char *slash = strchr(first, '/');
    if (!slash || slash == first)
        return terr(L, NPE_EFORMAT, "record '%.200s' is not inside a top folder (torch.load needs one)",
                    first);
    f->prefix = dupn(first, (size_t)(slash - first) + 1);
    if (!f->prefix)
        return oom(L);
    size_t plen = strlen(f->prefix);
    int torchscript = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = npe_zip_entry_at(f->zip, i)->name;
        if (strncmp(name, f->prefix, plen) != 0)
            return terr(L, NPE_EFORMAT,
                        "record '%.200s' is outside the top folder '%.200s' (torch.load refuses it)",
                        name, f->prefix);
        if (strncmp(name + plen, "code/", 5) == 0 || strcmp(name + plen, "constants.pkl") == 0)
            torchscript = 1;
    }
    /* torch's reader takes .data/version first (jit.save writes it there for versions 6 and
     * up, e.g. 8 for code calling linspace) and refuses an archive that has neither record */
    const npe_zip_entry *e = find_rec(L, ".data/version");
    if (!e)
        e = find_rec(L, "version");
    if (!e)
        return terr(L, NPE_EFORMAT,
                    "no record '%.200sversion' or '%.200s.data/version' (torch.load refuses an "
                    "archive without a version record)", f->prefix, f->prefix);
    if ((r = read_version(L, e)))
        return r;
    if ((e = find_rec(L, "byteorder"))) {
        void *data = NULL;
        size_t size = 0;
        if ((r = npe_zip_read(f->zip, e, 64, &data, &size, L->err)))
            return r;
        int little = size == 6 && memcmp(data, "little", 6) == 0;
        int big = size == 3 && memcmp(data, "big", 3) == 0;
        free(data);
        if (big)
            return terr(L, NPE_EUNSUPPORTED, "archive was written big-endian; only little-endian is supported");
        if (!little)
            return terr(L, NPE_EFORMAT, "record '%s' holds neither 'little' nor 'big'", e->name);
    }
    e = find_rec(L, "data.pkl");
    if (!e) {
        if (find_rec(L, "model.json"))
            return terr(L, NPE_EUNSUPPORTED,
                        "TorchScript archive of the pre-1.4 format (model.json) is not supported");
        return terr(L, NPE_EFORMAT, "no record '%sdata.pkl': not a PyTorch archive", f->prefix);
    }
    void *pk = NULL;
    size_t pksize = 0;
    if ((r = npe_zip_read(f->zip, e, MAX_PICKLE, &pk, &pksize, L->err)))
        return r;
    char *pname = malloc(strlen(f->path) + strlen(e->name) + 2);
    if (!pname) {
        free(pk);
        return oom(L);
    }
    sprintf(pname, "%s:%s", f->path, e->name);
    r = npe_pkl_load(pk, pksize, pname, npe_torch_resolve_global, NULL, &f->pkl, NULL, L->err);
    free(pname);
    free(pk);
    if (r)
        return r;
    return build(L, torchscript);
}

/* ---- legacy layout (PyTorch < 1.6, or _use_new_zipfile_serialization=False) ---- */

/* 0x1950a86a20f9469cfc6c, little-endian, as pickle's LONG1 writes it */
static const unsigned char legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                               0x20, 0x6a, 0xa8, 0x50, 0x19};

/* Length of the magic-number pickle at the start of d, or 0 if it is not there. */
static size_t legacy_header(const unsigned char *d, size_t n)
{
    size_t p = 2;
    if (n < 2 || d[0] != 0x80 || d[1] < 2 || d[1] > 5)
        return 0;
    if (n > p && d[p] == 0x95) /* FRAME (protocol 4+) */
        p += 9;
    if (n < p + 13 || d[p] != 0x8a || d[p + 1] != 10 || memcmp(d + p + 2, legacy_magic, 10) != 0 ||
        d[p + 12] != '.')
        return 0;
    return p + 13;
}

static int load_part(loader *L, size_t *pos, const char *what, npe_pkl **doc)
{
    npe_torch_file *f = L->f;
    char pname[64];
    snprintf(pname, sizeof(pname), "%s pickle at %zu", what, *pos);
    size_t used = 0;
    int r = npe_pkl_load(f->map.data + *pos, f->map.size - *pos, pname, npe_torch_resolve_global,
                         NULL, doc, &used, L->err);
    if (r) {
        npe_error_prefix(L->err, "%s", f->path);
        return r;
    }
    *pos += used;
    return 0;
}

static int open_legacy(loader *L, size_t pos)
{
    npe_torch_file *f = L->f;
    const unsigned char *d = f->map.data;
    size_t size = f->map.size;
    f->layout = NPE_LAYOUT_LEGACY;
    npe_pkl *doc = NULL;
    int r = load_part(L, &pos, "protocol version", &doc);
    if (r)
        return r;
    const npe_pv *pv = npe_pkl_root(doc);
    int64_t proto = pv && pv->kind == NPE_PV_INT ? pv->u.i : -1;
    npe_pkl_free(doc);
    if (proto != 1001)
        return terr(L, NPE_EUNSUPPORTED, "legacy protocol version %" PRId64 " (expected 1001)", proto);
    if ((r = load_part(L, &pos, "sys_info", &doc)))
        return r;
    const npe_pv *si = npe_pkl_root(doc);
    const npe_pv *le = si && si->kind == NPE_PV_DICT ? npe_pv_dict_get(si, "little_endian") : NULL;
    int big = le && le->kind == NPE_PV_BOOL && !le->u.b;
    npe_pkl_free(doc);
    if (big)
        return terr(L, NPE_EUNSUPPORTED, "file was written big-endian; only little-endian is supported");
    if ((r = load_part(L, &pos, "data", &f->pkl)))
        return r;
    if ((r = load_part(L, &pos, "storage keys", &doc)))
        return r;
    if ((r = build(L, 0)))
        goto out_free_keys;
    const npe_pv *keys = npe_pkl_root(doc);
    if (!keys || (keys->kind != NPE_PV_LIST && keys->kind != NPE_PV_TUPLE)) {
        r = terr(L, NPE_EFORMAT, "storage key list is a %s", kind_word(keys));
        goto out_free_keys;
    }
    unsigned char *done = calloc(f->n_storages + 1, 1);
    if (!done) {
        r = oom(L);
        goto out_free_keys;
    }
    for (size_t i = 0; i < keys->u.seq.n && !r; i++) {
        const npe_pv *k = keys->u.seq.items[i];
        slot *sl = k->kind == NPE_PV_STR ? hm_find(&L->skeys, k->u.str.s, 1) : NULL;
        if (!sl) {
            r = terr(L, NPE_EFORMAT, "storage key %zu of the list is not used by any tensor", i);
            break;
        }
        npe_tstorage *s = &f->storages[sl->val];
        if (done[sl->val]) {
            r = terr(L, NPE_EFORMAT, "storage '%s' is listed twice", s->key);
            break;
        }
        done[sl->val] = 1;
        if (size - pos < 8) {
            r = terr(L, NPE_EFORMAT, "truncated: storage '%s' should start at offset %zu", s->key, pos);
            break;
        }
        uint64_t cnt = 0;
        for (int b = 7; b >= 0; b--)
            cnt = cnt << 8 | d[pos + (size_t)b];
        if (cnt != s->numel) {
            r = terr(L, NPE_EFORMAT,
                     "storage '%s' at offset %zu holds %" PRIu64 " elements but the pickle declares %" PRIu64,
                     s->key, pos, cnt, s->numel);
            break;
        }
        pos += 8;
        uint64_t nbytes = s->numel * npe_dtype_size(s->dtype); /* bounded in resolve_storage */
        if (nbytes > size - pos) {
            r = terr(L, NPE_EFORMAT, "truncated: storage '%s' needs %" PRIu64 " bytes at offset %zu, file has %zu",
                     s->key, nbytes, pos, size - pos);
            break;
        }
        s->data = d + pos;
        pos += (size_t)nbytes;
    }
    for (size_t i = 0; i < f->n_storages && !r; i++)
        if (!done[i])
            r = terr(L, NPE_EFORMAT, "storage '%s' is used but not in the storage key list",
                     f->storages[i].key);
    free(done);
out_free_keys:
    npe_pkl_free(doc);
    return r;
}

/* ---- public ---- */

static int open_common(tfile *tf, npe_error *err)
{
    npe_torch_file *f = &tf->pub;
    loader L = {.tf = tf, .f = f, .err = err};
    const unsigned char *d = f->map.data;
    size_t n = f->map.size;
    size_t hdr;
    int r;
    if (n >= 4 && memcmp(d, "PK\x03\x04", 4) == 0)
        r = open_zip(&L);
    else if ((hdr = legacy_header(d, n)))
        r = open_legacy(&L, hdr);
    else if (n >= 262 && memcmp(d + 257, "ustar", 5) == 0)
        r = terr(&L, NPE_EUNSUPPORTED, "tar-based PyTorch files (before 0.1.10) are not supported");
    else
        r = terr(&L, NPE_EFORMAT, "not a PyTorch file: neither a zip archive nor a legacy pickle stream");
    hm_free(&L.seen);
    hm_free(&L.tnodes);
    hm_free(&L.skeys);
    hm_free(&L.npsets);
    for (size_t i = 0; i < L.n_np; i++)
        hm_free(&L.npnames[i]);
    free(L.npnames);
    free(L.path);
    return r;
}

int npe_torch_open(const char *path, npe_torch_file **out, npe_error *err)
{
    if (!out || !path)
        return npe_error_set(err, NPE_EINVAL, "npe_torch_open: NULL argument");
    *out = NULL;
    tfile *tf = calloc(1, sizeof(*tf));
    if (!tf || !(tf->pub.path = dupn(path, strlen(path)))) {
        free(tf);
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    }
    int r = npe_map_file(path, &tf->pub.map, err);
    tf->owns_map = r == 0;
    if (!r)
        r = open_common(tf, err);
    if (r) {
        npe_torch_close(&tf->pub);
        return r;
    }
    *out = &tf->pub;
    return 0;
}

int npe_torch_open_mem(const void *data, size_t size, const char *name, npe_torch_file **out,
                       npe_error *err)
{
    if (!out || (!data && size))
        return npe_error_set(err, NPE_EINVAL, "npe_torch_open_mem: NULL argument");
    *out = NULL;
    if (!name)
        name = "<memory>";
    tfile *tf = calloc(1, sizeof(*tf));
    if (!tf || !(tf->pub.path = dupn(name, strlen(name)))) {
        free(tf);
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", name);
    }
    tf->pub.map.data = data;
    tf->pub.map.size = size;
    int r = open_common(tf, err);
    if (r) {
        npe_torch_close(&tf->pub);
        return r;
    }
    *out = &tf->pub;
    return 0;
}

void npe_torch_close(npe_torch_file *f)
{
    if (!f)
        return;
    tfile *tf = (tfile *)f;
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_modules; i++) {
        npe_tmodule *m = &f->modules[i];
        for (size_t j = 0; j < m->n_attrs; j++) {
            free(m->attr_names[j]);
            free(m->attr_values[j]);
        }
        free(m->attr_names);
        free(m->attr_values);
        free(m->path);
        free(m->class_path);
    }
    free(f->modules);
    for (size_t i = 0; i < f->n_storages; i++) {
        free(f->storages[i].key);
        free(f->storages[i].location);
    }
    free(f->storages);
    npe_pkl_free(f->pkl);
    npe_zip_close(f->zip);
    if (tf->owns_map)
        npe_unmap_file(&f->map);
    free(f->prefix);
    free(f->path);
    free(tf);
}

int64_t npe_torch_tensor_numel(const npe_ttensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i]; /* fits: checked when the file was opened */
    return n;
}

int npe_torch_storage_check(const npe_torch_file *f, size_t i, npe_error *err)
{
    if (!f || i >= f->n_storages)
        return npe_error_set(err, NPE_EINVAL, "storage index %zu out of range", i);
    const npe_tstorage *s = &f->storages[i];
    if (!s->entry)
        return 0;
    const void *data = NULL;
    int r = npe_zip_view(f->zip, s->entry, &data, err);
    if (r)
        npe_error_prefix(err, "%s", f->path);
    return r;
}

/* Give back the pages of [p, p + n) that lie in the file mapping of f once their bytes are
 * copied: they are the file's (read only, never written), so a later read faults them in again,
 * and a model's load no longer holds the whole archive next to the copies of its tensors
 * (vgg11_bn: peak RSS 1.30 GB with the 532 MB archive). Nothing happens for buffers the caller
 * gave (npe_torch_open_mem) or records inflated into memory of their own. */
static void drop_mapped(const npe_torch_file *f, const unsigned char *p, size_t n)
{
    const tfile *tf = (const tfile *)f;
    const long pg = sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (uintptr_t)f->map.data, hi = lo + f->map.size;
    if (!tf->owns_map || pg <= 0 || (uintptr_t)p < lo || (uintptr_t)p + n > hi)
        return;
    /* whole pages inside the range only: the neighbours' bytes may not be copied yet */
    const uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    const uintptr_t b = ((uintptr_t)p + n) / (uintptr_t)pg * (uintptr_t)pg;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

int npe_torch_tensor_copy(const npe_torch_file *f, size_t i, void *dst, size_t dst_bytes,
                          npe_error *err)
{
    if (!f || i >= f->n_tensors)
        return npe_error_set(err, NPE_EINVAL, "tensor index %zu out of range (%zu tensors)", i,
                             f ? f->n_tensors : 0);
    const npe_ttensor *t = &f->tensors[i];
    const npe_tstorage *s = &f->storages[t->storage];
    int rc = npe_torch_storage_check(f, t->storage, err);
    if (rc)
        return rc;
    size_t isz = npe_dtype_size(t->dtype);
    uint64_t numel = (uint64_t)npe_torch_tensor_numel(t);
    if (numel > SIZE_MAX / isz || dst_bytes < numel * isz)
        return npe_error_set(err, NPE_EINVAL,
                             "%s: tensor '%s' needs %" PRIu64 " bytes, buffer holds %zu", f->path,
                             t->name, numel * isz, dst_bytes);
    if (!numel)
        return 0;
    if (!dst)
        return npe_error_set(err, NPE_EINVAL, "npe_torch_tensor_copy: NULL buffer");
    const unsigned char *src = s->data + (size_t)t->offset * isz;
    unsigned char *out = dst;
    /* contiguous (row-major; dims of size 1 may carry any stride): one copy */
    int64_t expect = 1;
    int contiguous = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect)
            contiguous = 0;
        expect *= t->shape[d];
    }
    if (contiguous) {
        memcpy(out, src, (size_t)numel * isz);
        drop_mapped(f, src, (size_t)numel * isz);
        return 0;
    }
    int nd = t->ndim;
    int64_t idx[NPE_MAX_DIMS] = {0};
    int64_t inner = t->shape[nd - 1], istride = t->stride[nd - 1];
    size_t o = 0;
    for (;;) {
        size_t base = 0;
        for (int d = 0; d < nd - 1; d++)
            base += (size_t)(idx[d] * t->stride[d]);
        if (istride == 1) {
            memcpy(out + o, src + base * isz, (size_t)inner * isz);
            o += (size_t)inner * isz;
        } else {
            for (int64_t k = 0; k < inner; k++, o += isz)
                memcpy(out + o, src + (base + (size_t)(k * istride)) * isz, isz);
        }
        int d = nd - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
        if (d < 0)
            break;
    }
    return 0;
}
