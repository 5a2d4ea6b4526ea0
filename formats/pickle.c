/* Restricted pickle codec: an iterative unpickler that builds an inert value tree in an arena
 * (globals checked by the caller's resolver, nothing run), a repr, and a protocol-2 pickler. */
#include "pickle.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python's pickle limits nothing; these keep a hostile file from exhausting memory or time. */
#define MAX_STACK 1000000u     /* stack entries + open MARKs */
#define NODES_PER_BYTE 16u     /* node + copied-item budget: 16 * input size + NODES_BASE */
#define NODES_BASE 1024u
#define DUMP_DEPTH_MAX 1000    /* CPython's default recursion limit bounds its pickler alike */
#define REPR_DEPTH_MAX 64
#define REPR_COUNT_MIN ((size_t)1 << 20)
#define BATCHSIZE 1000         /* pickle.Pickler._BATCHSIZE: APPENDS/SETITEMS per MARK */
#define FLOAT_TEXT_MAX 512
/* Text arguments are not NUL-terminated: messages quote at most this much of one. */
#define SHOWN(n) ((int)((n) > 40 ? 40 : (n)))

/* ---- Arena ----------------------------------------------------------------------------------- */

/* Nodes, strings and item arrays live in chunks owned by the document, so freeing a tree (even a
 * cyclic one) is a walk over the chunk list, never over the tree. */
typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    max_align_t data[];
} chunk;

#define CHUNK_BYTES ((size_t)64 << 10)
#define ALIGN_UP(n) (((n) + (sizeof(max_align_t) - 1)) & ~(sizeof(max_align_t) - 1))

struct npe_pkl {
    chunk *chunks; /* head is the chunk small allocations are carved from */
    npe_pv *root;
};

static void *arena_alloc(npe_pkl *doc, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - sizeof(max_align_t) - sizeof(chunk))
        return NULL;
    n = ALIGN_UP(n);
    chunk *c = doc->chunks;
    if (c && c->cap - c->used >= n) {
        void *p = (char *)c->data + c->used;
        c->used += n;
        return p;
    }
    /* Big blocks get a chunk of their own, linked behind the head so the head keeps serving
     * small requests. */
    size_t cap = n > CHUNK_BYTES / 4 ? n : CHUNK_BYTES;
    chunk *nc = malloc(sizeof(chunk) + cap);
    if (!nc)
        return NULL;
    nc->cap = cap;
    nc->used = n;
    if (cap == n && c) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        doc->chunks = nc;
    }
    return nc->data;
}

static void *arena_zalloc(npe_pkl *doc, size_t n)
{
    void *p = arena_alloc(doc, n);
    if (p)
        memset(p, 0, n);
    return p;
}

npe_pkl *npe_pkl_new(void)
{
    return calloc(1, sizeof(npe_pkl));
}

void npe_pkl_free(npe_pkl *doc)
{
    if (!doc)
        return;
    chunk *c = doc->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

const npe_pv *npe_pkl_root(const npe_pkl *doc)
{
    return doc ? doc->root : NULL;
}

/* ---- Hashing --------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ n);
}

static uint64_t hash_ptr(const void *p)
{
    return mix64((uint64_t)(uintptr_t)p);
}

/* Open-addressing table used for the memo (index -> node), dict/set membership while loading,
 * and the pickler's memo (node -> index, global name -> index). */
typedef struct hent {
    uint64_t h, k, v;
    const void *a, *b;
    int used;
} hent;

typedef struct htab {
    hent *e;
    size_t cap, n;
} htab;

typedef int (*heq_fn)(const hent *e, uint64_t k, const void *a, const void *b);

static hent *hfind(const htab *t, uint64_t h, heq_fn eq, uint64_t k, const void *a, const void *b)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        hent *e = &t->e[i];
        if (!e->used)
            return NULL;
        if (e->h == h && eq(e, k, a, b))
            return e;
    }
}

static int hgrow(htab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 16;
    if (ncap < t->cap || ncap > SIZE_MAX / sizeof(hent))
        return NPE_ENOMEM;
    hent *ne = calloc(ncap, sizeof(hent));
    if (!ne)
        return NPE_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->e[i].used)
            continue;
        size_t j = (size_t)t->e[i].h & (ncap - 1);
        while (ne[j].used)
            j = (j + 1) & (ncap - 1);
        ne[j] = t->e[i];
    }
    free(t->e);
    t->e = ne;
    t->cap = ncap;
    return 0;
}

/* Insert a key known to be absent. */
static int hput(htab *t, uint64_t h, uint64_t k, const void *a, const void *b, uint64_t v)
{
    if ((t->n + 1) * 2 > t->cap && hgrow(t))
        return NPE_ENOMEM;
    size_t mask = t->cap - 1, i = (size_t)h & mask;
    while (t->e[i].used)
        i = (i + 1) & mask;
    t->e[i] = (hent){.h = h, .k = k, .v = v, .a = a, .b = b, .used = 1};
    t->n++;
    return 0;
}

static void hfree(htab *t)
{
    free(t->e);
    t->e = NULL;
    t->cap = t->n = 0;
}

/* ---- Nodes ----------------------------------------------------------------------------------- */

/* STR and BYTES text is stored after an 8-byte hash of its bytes, so membership tests during a
 * load never rehash a big string that is used as a key over and over. */
static char *alloc_text(npe_pkl *doc, size_t cap)
{
    if (cap > SIZE_MAX - 16)
        return NULL;
    char *p = arena_alloc(doc, 8 + cap + 1);
    return p ? p + 8 : NULL;
}

static void seal_text(char *s, size_t len)
{
    uint64_t h = hash_bytes(s, len);
    s[len] = '\0';
    memcpy(s - 8, &h, 8);
}

static uint64_t text_hash(const npe_pv *v)
{
    uint64_t h;
    memcpy(&h, v->u.str.s - 8, 8);
    return h;
}

static npe_pv *new_node(npe_pkl *doc, npe_pv_kind kind)
{
    if (!doc)
        return NULL;
    npe_pv *v = arena_zalloc(doc, sizeof(npe_pv));
    if (v)
        v->kind = kind;
    return v;
}

npe_pv *npe_pv_new_none(npe_pkl *doc)
{
    return new_node(doc, NPE_PV_NONE);
}

npe_pv *npe_pv_new_bool(npe_pkl *doc, int b)
{
    npe_pv *v = new_node(doc, NPE_PV_BOOL);
    if (v)
        v->u.b = b != 0;
    return v;
}

npe_pv *npe_pv_new_int(npe_pkl *doc, int64_t i)
{
    npe_pv *v = new_node(doc, NPE_PV_INT);
    if (v)
        v->u.i = i;
    return v;
}

npe_pv *npe_pv_new_float(npe_pkl *doc, double f)
{
    npe_pv *v = new_node(doc, NPE_PV_FLOAT);
    if (v)
        v->u.f = f;
    return v;
}

static npe_pv *new_text(npe_pkl *doc, npe_pv_kind kind, const void *p, size_t len)
{
    if (!p && len)
        return NULL;
    npe_pv *v = new_node(doc, kind);
    if (!v)
        return NULL;
    char *s = alloc_text(doc, len);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, p, len);
    seal_text(s, len);
    v->u.str.s = s;
    v->u.str.len = len;
    return v;
}

npe_pv *npe_pv_new_str(npe_pkl *doc, const char *s)
{
    return s ? new_text(doc, NPE_PV_STR, s, strlen(s)) : NULL;
}

npe_pv *npe_pv_new_strn(npe_pkl *doc, const char *s, size_t len)
{
    return new_text(doc, NPE_PV_STR, s, len);
}

npe_pv *npe_pv_new_bytes(npe_pkl *doc, const void *p, size_t len)
{
    return new_text(doc, NPE_PV_BYTES, p, len);
}

npe_pv *npe_pv_new_seq(npe_pkl *doc, npe_pv_kind kind)
{
    if (kind != NPE_PV_TUPLE && kind != NPE_PV_LIST && kind != NPE_PV_SET)
        return NULL;
    return new_node(doc, kind);
}

npe_pv *npe_pv_new_dict(npe_pkl *doc, npe_pv *cls)
{
    npe_pv *v = new_node(doc, NPE_PV_DICT);
    if (v)
        v->u.dict.cls = cls;
    return v;
}

static char *arena_strdup(npe_pkl *doc, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(doc, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

npe_pv *npe_pv_new_global(npe_pkl *doc, const char *module, const char *name)
{
    if (!module || !name)
        return NULL;
    npe_pv *v = new_node(doc, NPE_PV_GLOBAL);
    if (!v)
        return NULL;
    v->u.global.module = arena_strdup(doc, module, strlen(module));
    v->u.global.name = arena_strdup(doc, name, strlen(name));
    return v->u.global.module && v->u.global.name ? v : NULL;
}

static npe_pv *new_record(npe_pkl *doc, npe_pv_kind kind, npe_pv *fn, npe_pv *args)
{
    npe_pv *v = new_node(doc, kind);
    if (v) {
        v->u.call.fn = fn;
        v->u.call.args = args;
    }
    return v;
}

npe_pv *npe_pv_new_call(npe_pkl *doc, npe_pv *fn, npe_pv *args)
{
    return new_record(doc, NPE_PV_CALL, fn, args);
}

npe_pv *npe_pv_new_object(npe_pkl *doc, npe_pv *cls, npe_pv *args)
{
    return new_record(doc, NPE_PV_OBJECT, cls, args);
}

npe_pv *npe_pv_new_persid(npe_pkl *doc, npe_pv *pid)
{
    npe_pv *v = new_node(doc, NPE_PV_PERSID);
    if (v)
        v->u.pid = pid;
    return v;
}

/* Make room for `need` more items; arrays move inside the arena (old copies are dropped with
 * it), doubling so the waste stays below the live size. */
static int grow_items(npe_pkl *doc, npe_pv ***a, npe_pv ***b, size_t n, size_t *cap, size_t need)
{
    if (need <= *cap - n)
        return 0;
    if (need > SIZE_MAX / sizeof(npe_pv *) - n)
        return NPE_ENOMEM;
    size_t ncap = *cap ? *cap : (need < 4 ? need : 4);
    while (ncap < n + need) {
        if (ncap > SIZE_MAX / sizeof(npe_pv *) / 2)
            ncap = n + need;
        else
            ncap *= 2;
    }
    npe_pv **na = arena_alloc(doc, ncap * sizeof(npe_pv *));
    if (!na)
        return NPE_ENOMEM;
    if (n)
        memcpy(na, *a, n * sizeof(npe_pv *));
    npe_pv **nb = NULL;
    if (b) {
        nb = arena_alloc(doc, ncap * sizeof(npe_pv *));
        if (!nb)
            return NPE_ENOMEM;
        if (n)
            memcpy(nb, *b, n * sizeof(npe_pv *));
        *b = nb;
    }
    *a = na;
    *cap = ncap;
    return 0;
}

static int seq_push(npe_pkl *doc, npe_pv *seq, npe_pv *item)
{
    if (grow_items(doc, &seq->u.seq.items, NULL, seq->u.seq.n, &seq->u.seq.cap, 1))
        return NPE_ENOMEM;
    seq->u.seq.items[seq->u.seq.n++] = item;
    return 0;
}

static int dict_push(npe_pkl *doc, npe_pv *d, npe_pv *k, npe_pv *v)
{
    if (grow_items(doc, &d->u.dict.keys, &d->u.dict.vals, d->u.dict.n, &d->u.dict.cap, 1))
        return NPE_ENOMEM;
    d->u.dict.keys[d->u.dict.n] = k;
    d->u.dict.vals[d->u.dict.n++] = v;
    return 0;
}

/* Python equality for the hashable scalars keys are made of (True == 1); other kinds compare
 * by identity, which is all the membership logic needs. */
static int keys_equal(const npe_pv *a, const npe_pv *b)
{
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    int ai = a->kind == NPE_PV_INT || a->kind == NPE_PV_BOOL;
    int bi = b->kind == NPE_PV_INT || b->kind == NPE_PV_BOOL;
    if (ai && bi) {
        int64_t x = a->kind == NPE_PV_INT ? a->u.i : a->u.b;
        int64_t y = b->kind == NPE_PV_INT ? b->u.i : b->u.b;
        return x == y;
    }
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case NPE_PV_NONE:
        return 1;
    case NPE_PV_STR:
    case NPE_PV_BYTES:
        return a->u.str.len == b->u.str.len &&
               (a->u.str.len == 0 || memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0);
    default:
        return 0;
    }
}

int npe_pv_append(npe_pkl *doc, npe_pv *seq, npe_pv *item)
{
    if (!doc || !seq || !item ||
        (seq->kind != NPE_PV_TUPLE && seq->kind != NPE_PV_LIST && seq->kind != NPE_PV_SET))
        return NPE_EINVAL;
    if (seq->kind == NPE_PV_SET)
        for (size_t i = 0; i < seq->u.seq.n; i++)
            if (keys_equal(seq->u.seq.items[i], item))
                return 0;
    return seq_push(doc, seq, item);
}

int npe_pv_dict_set(npe_pkl *doc, npe_pv *dict, npe_pv *key, npe_pv *val)
{
    if (!doc || !dict || !key || !val || dict->kind != NPE_PV_DICT)
        return NPE_EINVAL;
    for (size_t i = 0; i < dict->u.dict.n; i++)
        if (keys_equal(dict->u.dict.keys[i], key)) {
            dict->u.dict.vals[i] = val;
            return 0;
        }
    return dict_push(doc, dict, key, val);
}

const npe_pv *npe_pv_dict_get(const npe_pv *dict, const char *key)
{
    if (!dict || !key || dict->kind != NPE_PV_DICT)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < dict->u.dict.n; i++) {
        const npe_pv *k = dict->u.dict.keys[i];
        if (k && k->kind == NPE_PV_STR && k->u.str.len == len && memcmp(k->u.str.s, key, len) == 0)
            return dict->u.dict.vals[i];
    }
    return NULL;
}

int npe_pv_is_global(const npe_pv *v, const char *module, const char *name)
{
    if (!v || !module || !name)
        return 0;
    if ((v->kind == NPE_PV_CALL || v->kind == NPE_PV_OBJECT))
        v = v->u.call.fn;
    return v && v->kind == NPE_PV_GLOBAL && strcmp(v->u.global.module, module) == 0 &&
           strcmp(v->u.global.name, name) == 0;
}

/* ---- Unpickler ------------------------------------------------------------------------------- */

/* What the tree keeps of Python's types: frozenset is a SET, bytearray is BYTES, STRING and
 * BINSTRING (Python 2 str) are STR, and protocol 2's spelling of bytes (a call of
 * _codecs.encode or bytes, when the resolver allows it) becomes BYTES again. Integers must fit
 * int64. Out-of-band buffers (protocol 5) are refused. */

enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2', OP_FLOAT = 'F',
    OP_INT = 'I', OP_BININT = 'J', OP_BININT1 = 'K', OP_LONG = 'L', OP_BININT2 = 'M',
    OP_NONE = 'N', OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_STRING = 'S',
    OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V', OP_BINUNICODE = 'X',
    OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_DICT = 'd', OP_EMPTY_DICT = '}',
    OP_APPENDS = 'e', OP_GET = 'g', OP_BINGET = 'h', OP_INST = 'i', OP_LONG_BINGET = 'j',
    OP_LIST = 'l', OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p', OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84,
    OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a, OP_LONG4 = 0x8b,
    OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
    OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98,
};

static const char *op_name(unsigned op)
{
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_POP: return "POP";
    case OP_POP_MARK: return "POP_MARK";
    case OP_DUP: return "DUP";
    case OP_FLOAT: return "FLOAT";
    case OP_INT: return "INT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_LONG: return "LONG";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_PERSID: return "PERSID";
    case OP_BINPERSID: return "BINPERSID";
    case OP_REDUCE: return "REDUCE";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_UNICODE: return "UNICODE";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_BUILD: return "BUILD";
    case OP_GLOBAL: return "GLOBAL";
    case OP_DICT: return "DICT";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_APPENDS: return "APPENDS";
    case OP_GET: return "GET";
    case OP_BINGET: return "BINGET";
    case OP_INST: return "INST";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_LIST: return "LIST";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_OBJ: return "OBJ";
    case OP_PUT: return "PUT";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_PROTO: return "PROTO";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_ADDITEMS: return "ADDITEMS";
    case OP_FROZENSET: return "FROZENSET";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    case OP_READONLY_BUFFER: return "READONLY_BUFFER";
    default: return NULL;
    }
}

static const char *kind_name(npe_pv_kind k)
{
    switch (k) {
    case NPE_PV_NONE: return "None";
    case NPE_PV_BOOL: return "bool";
    case NPE_PV_INT: return "int";
    case NPE_PV_FLOAT: return "float";
    case NPE_PV_STR: return "str";
    case NPE_PV_BYTES: return "bytes";
    case NPE_PV_TUPLE: return "tuple";
    case NPE_PV_LIST: return "list";
    case NPE_PV_SET: return "set";
    case NPE_PV_DICT: return "dict";
    case NPE_PV_GLOBAL: return "global";
    case NPE_PV_CALL: return "call record";
    case NPE_PV_OBJECT: return "object record";
    case NPE_PV_PERSID: return "persistent id";
    }
    return "unknown node";
}

typedef struct loader {
    const unsigned char *p;
    size_t size, pos;
    const char *name;
    npe_pkl *doc;
    npe_error *err;
    npe_pkl_resolver resolve;
    void *ruser;
    unsigned op;
    size_t op_off;
    npe_pv **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nmarks, mcap;
    htab memo;    /* memo index -> node */
    htab members; /* (dict or set, key) -> item index, for Python's replace-on-equal-key */
    size_t budget; /* nodes and copied items still allowed */
    uint64_t seed; /* keys table slots, so crafted keys cannot all land in one bucket */
} loader;

static int lfail(loader *L, int code, const char *fmt, ...) NPE_PRINTF(3, 4);
static int lfail(loader *L, int code, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const char *on = op_name(L->op);
    char unk[32];
    if (!on) {
        snprintf(unk, sizeof(unk), "opcode 0x%02x", L->op);
        on = unk;
    }
    return npe_error_set(L->err, code, "%s: offset %zu: %s: %s", L->name, L->op_off, on, what);
}

static int oom(loader *L)
{
    return lfail(L, NPE_ENOMEM, "out of memory");
}

static int charge(loader *L, size_t n)
{
    if (n > L->budget)
        return lfail(L, NPE_ELIMIT,
                     "more values than a %zu-byte pickle can describe (limit %u per input byte)",
                     L->size, NODES_PER_BYTE);
    L->budget -= n;
    return 0;
}

static npe_pv *lnode(loader *L, npe_pv_kind kind, int *rc)
{
    if ((*rc = charge(L, 1)))
        return NULL;
    npe_pv *v = new_node(L->doc, kind);
    if (!v)
        *rc = oom(L);
    return v;
}

/* Check that n more argument bytes are present, before anything is sized from them. */
static int need(loader *L, uint64_t n, int is_length)
{
    size_t left = L->size - L->pos;
    if (n <= (uint64_t)left)
        return 0;
    if (is_length)
        return lfail(L, NPE_EFORMAT, "truncated: length %" PRIu64 " but %zu bytes left", n, left);
    return lfail(L, NPE_EFORMAT, "truncated: the argument needs %" PRIu64 " bytes but %zu %s left",
                 n, left, left == 1 ? "is" : "are");
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int read_uint(loader *L, int n, uint64_t *v)
{
    int rc = need(L, (uint64_t)n, 0);
    if (rc)
        return rc;
    *v = rd_le(L->p + L->pos, n);
    L->pos += (size_t)n;
    return 0;
}

static int read_line(loader *L, const char **s, size_t *len)
{
    const unsigned char *start = L->p + L->pos;
    const unsigned char *nl = memchr(start, '\n', L->size - L->pos);
    if (!nl)
        return lfail(L, NPE_EFORMAT, "truncated: text argument has no terminating newline");
    *s = (const char *)start;
    *len = (size_t)(nl - start);
    L->pos += *len + 1;
    return 0;
}

static size_t frame_base(const loader *L)
{
    return L->nmarks ? L->marks[L->nmarks - 1] : 0;
}

static int push(loader *L, npe_pv *v)
{
    if (L->sp + L->nmarks >= MAX_STACK)
        return lfail(L, NPE_ELIMIT, "stack holds more than %u entries", MAX_STACK);
    if (L->sp == L->scap) {
        size_t ncap = L->scap ? L->scap * 2 : 64;
        npe_pv **ns = realloc(L->stack, ncap * sizeof(*ns));
        if (!ns)
            return oom(L);
        L->stack = ns;
        L->scap = ncap;
    }
    L->stack[L->sp++] = v;
    return 0;
}

static int underflow(loader *L, size_t want)
{
    size_t have = L->sp - frame_base(L);
    return lfail(L, NPE_EFORMAT, "needs %zu value%s on the stack%s but %zu %s there", want,
                 want == 1 ? "" : "s", L->nmarks ? " above the last MARK" : "", have,
                 have == 1 ? "is" : "are");
}

/* Pointer to the top n entries of the current frame (above the last MARK). */
static npe_pv **peek(loader *L, size_t n, int *rc)
{
    if (L->sp - frame_base(L) < n) {
        *rc = underflow(L, n);
        return NULL;
    }
    *rc = 0;
    return &L->stack[L->sp - n];
}

static int pop(loader *L, npe_pv **v)
{
    int rc;
    npe_pv **t = peek(L, 1, &rc);
    if (!t)
        return rc;
    *v = *t;
    L->sp--;
    return 0;
}

/* Items between the last MARK and the top; valid until the next push. */
static int pop_mark(loader *L, npe_pv ***items, size_t *n)
{
    if (!L->nmarks)
        return lfail(L, NPE_EFORMAT, "no MARK on the stack");
    size_t base = L->marks[--L->nmarks];
    *items = L->stack ? L->stack + base : NULL;
    *n = L->sp - base;
    L->sp = base;
    return 0;
}

static npe_pv *make_seq(loader *L, npe_pv_kind kind, npe_pv **items, size_t n, int *rc)
{
    npe_pv *v = lnode(L, kind, rc);
    if (!v || (*rc = charge(L, n)))
        return NULL;
    if (n) {
        if (grow_items(L->doc, &v->u.seq.items, NULL, 0, &v->u.seq.cap, n)) {
            *rc = oom(L);
            return NULL;
        }
        memcpy(v->u.seq.items, items, n * sizeof(*items));
        v->u.seq.n = n;
    }
    return v;
}

static uint64_t key_hash(const npe_pv *k)
{
    switch (k->kind) {
    case NPE_PV_STR: return mix64(text_hash(k) ^ 1);
    case NPE_PV_BYTES: return mix64(text_hash(k) ^ 2);
    case NPE_PV_INT: return mix64((uint64_t)k->u.i ^ 3);
    case NPE_PV_BOOL: return mix64((uint64_t)k->u.b ^ 3);
    case NPE_PV_NONE: return 4;
    default: return hash_ptr(k);
    }
}

static int member_eq(const hent *e, uint64_t k, const void *a, const void *b)
{
    (void)k;
    return e->a == a && keys_equal(e->b, b);
}

/* Find key in container (a DICT or SET being built by this load): its index or SIZE_MAX. */
static size_t member_find(loader *L, const npe_pv *c, const npe_pv *key, uint64_t *h)
{
    *h = mix64(hash_ptr(c) ^ key_hash(key) ^ L->seed);
    hent *e = hfind(&L->members, *h, member_eq, 0, c, key);
    return e ? (size_t)e->v : SIZE_MAX;
}

static int dict_put(loader *L, npe_pv *d, npe_pv *k, npe_pv *v)
{
    uint64_t h;
    size_t i = member_find(L, d, k, &h);
    if (i != SIZE_MAX) {
        d->u.dict.vals[i] = v; /* Python keeps the first key object and the last value */
        return 0;
    }
    int rc = charge(L, 1);
    if (rc)
        return rc;
    if (dict_push(L->doc, d, k, v) || hput(&L->members, h, 0, d, k, d->u.dict.n - 1))
        return oom(L);
    return 0;
}

static int set_add(loader *L, npe_pv *s, npe_pv *item)
{
    uint64_t h;
    if (member_find(L, s, item, &h) != SIZE_MAX)
        return 0;
    int rc = charge(L, 1);
    if (rc)
        return rc;
    if (seq_push(L->doc, s, item) || hput(&L->members, h, 0, s, item, s->u.seq.n - 1))
        return oom(L);
    return 0;
}

/* Keys and values alternate in items[0..n). */
static int dict_put_pairs(loader *L, npe_pv *d, npe_pv **items, size_t n)
{
    if (n % 2)
        return lfail(L, NPE_EFORMAT, "%zu values after the MARK: keys and values must pair up", n);
    for (size_t i = 0; i < n; i += 2) {
        int rc = dict_put(L, d, items[i], items[i + 1]);
        if (rc)
            return rc;
    }
    return 0;
}

/* APPEND/SETITEM on a CALL or OBJECT record: Python would call the object's own append or
 * __setitem__; we keep the items in order for whoever interprets the record. */
static int record_add(loader *L, npe_pv *rec, npe_pv *key, npe_pv *val)
{
    int pairs = key != NULL, rc = 0;
    if (!rec->u.call.items) {
        if (!(rec->u.call.items = lnode(L, NPE_PV_LIST, &rc)))
            return rc;
        rec->u.call.items_pairs = pairs;
    } else if (rec->u.call.items_pairs != pairs) {
        return lfail(L, NPE_EUNSUPPORTED, "a %s receives both list items and dict items",
                     kind_name(rec->kind));
    }
    npe_pv *item = val;
    if (pairs) {
        npe_pv *kv[2] = {key, val};
        if (!(item = make_seq(L, NPE_PV_TUPLE, kv, 2, &rc)))
            return rc;
    }
    if ((rc = charge(L, 1)))
        return rc;
    return seq_push(L->doc, rec->u.call.items, item) ? oom(L) : 0;
}

static int is_record(const npe_pv *v)
{
    return v->kind == NPE_PV_CALL || v->kind == NPE_PV_OBJECT;
}

static int add_items(loader *L, npe_pv *target, npe_pv **items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (target->kind == NPE_PV_LIST) {
            if ((rc = charge(L, 1)))
                return rc;
            if (seq_push(L->doc, target, items[i]))
                return oom(L);
        } else if (is_record(target)) {
            if ((rc = record_add(L, target, NULL, items[i])))
                return rc;
        } else {
            return lfail(L, NPE_EUNSUPPORTED, "cannot append to a %s", kind_name(target->kind));
        }
    }
    return 0;
}

static int set_items(loader *L, npe_pv *target, npe_pv **items, size_t n)
{
    if (n % 2)
        return lfail(L, NPE_EFORMAT, "%zu values after the MARK: keys and values must pair up", n);
    for (size_t i = 0; i < n; i += 2) {
        int rc;
        if (target->kind == NPE_PV_DICT)
            rc = dict_put(L, target, items[i], items[i + 1]);
        else if (is_record(target))
            rc = record_add(L, target, items[i], items[i + 1]);
        else
            return lfail(L, NPE_EUNSUPPORTED, "cannot set items on a %s", kind_name(target->kind));
        if (rc)
            return rc;
    }
    return 0;
}

static npe_pv *text_node(loader *L, npe_pv_kind kind, const void *p, size_t len, int *rc)
{
    if ((*rc = charge(L, 1)))
        return NULL;
    npe_pv *v = new_text(L->doc, kind, p, len);
    if (!v)
        *rc = oom(L);
    return v;
}

/* Length-prefixed STR/BYTES: the length is checked against the input before any allocation. */
static int op_counted(loader *L, int nlen, npe_pv_kind kind, int is_signed)
{
    uint64_t n;
    int rc = read_uint(L, nlen, &n);
    if (rc)
        return rc;
    if (is_signed && (n & 0x80000000u))
        return lfail(L, NPE_EFORMAT, "negative length %" PRId32, (int32_t)(uint32_t)n);
    if ((rc = need(L, n, 1)))
        return rc;
    npe_pv *v = text_node(L, kind, L->p + L->pos, (size_t)n, &rc);
    if (!v)
        return rc;
    L->pos += (size_t)n;
    return push(L, v);
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* UNICODE argument: raw-unicode-escape, i.e. latin-1 bytes where \uXXXX and \UXXXXXXXX are
 * escapes only after an odd run of backslashes. Output is UTF-8 (at most 2 bytes per input
 * byte); surrogate pairs are joined so the text stays valid UTF-8. */
static int op_unicode(loader *L)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(L, &s, &n);
    if (rc || (rc = charge(L, 1)))
        return rc;
    if (n > (SIZE_MAX - 16) / 2)
        return oom(L);
    npe_pv *v = new_node(L->doc, NPE_PV_STR);
    char *o = alloc_text(L->doc, 2 * n);
    if (!v || !o)
        return oom(L);
    size_t len = 0, i = 0;
    uint32_t pending_hi = 0; /* a high surrogate waiting for its low half */
    while (i < n) {
        uint32_t cp;
        if (s[i] != '\\') {
            cp = (unsigned char)s[i++];
        } else {
            size_t run = 0;
            while (i + run < n && s[i + run] == '\\')
                run++;
            int escape = run % 2 == 1 && i + run < n && (s[i + run] == 'u' || s[i + run] == 'U');
            size_t lits = escape ? run - 1 : run;
            if (lits) {
                if (pending_hi) {
                    len += put_utf8(o + len, pending_hi);
                    pending_hi = 0;
                }
                memset(o + len, '\\', lits);
                len += lits;
            }
            i += run;
            if (!escape)
                continue;
            int digits = s[i] == 'u' ? 4 : 8;
            i++;
            cp = 0;
            for (int d = 0; d < digits; d++, i++) {
                int h = i < n ? hexval((unsigned char)s[i]) : -1;
                if (h < 0)
                    return lfail(L, NPE_EFORMAT, "truncated \\%c escape at argument byte %zu",
                                 digits == 4 ? 'u' : 'U', i);
                cp = cp << 4 | (uint32_t)h;
            }
            if (cp > 0x10ffff)
                return lfail(L, NPE_EFORMAT, "\\U escape 0x%08" PRIx32 " is out of range", cp);
        }
        if (pending_hi) {
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                len += put_utf8(o + len, 0x10000 + ((pending_hi - 0xd800) << 10) + (cp - 0xdc00));
                pending_hi = 0;
                continue;
            }
            len += put_utf8(o + len, pending_hi);
            pending_hi = 0;
        }
        if (cp >= 0xd800 && cp <= 0xdbff)
            pending_hi = cp;
        else
            len += put_utf8(o + len, cp);
    }
    if (pending_hi)
        len += put_utf8(o + len, pending_hi);
    seal_text(o, len);
    v->u.str.s = o;
    v->u.str.len = len;
    return push(L, v);
}

/* STRING argument: a quoted Python 2 str literal with escape sequences (codecs.escape_decode). */
static int op_string(loader *L)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(L, &s, &n);
    if (rc || (rc = charge(L, 1)))
        return rc;
    if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
        return lfail(L, NPE_EFORMAT, "the argument must be a quoted string");
    s++;
    n -= 2;
    npe_pv *v = new_node(L->doc, NPE_PV_STR);
    char *o = alloc_text(L->doc, n);
    if (!v || !o)
        return oom(L);
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i++];
        if (c != '\\') {
            o[len++] = c;
            continue;
        }
        if (i >= n)
            return lfail(L, NPE_EFORMAT, "the argument ends with a lone backslash");
        c = s[i++];
        switch (c) {
        case '\n': break;
        case '\\': o[len++] = '\\'; break;
        case '\'': o[len++] = '\''; break;
        case '"': o[len++] = '"'; break;
        case 'a': o[len++] = '\a'; break;
        case 'b': o[len++] = '\b'; break;
        case 'f': o[len++] = '\f'; break;
        case 'n': o[len++] = '\n'; break;
        case 'r': o[len++] = '\r'; break;
        case 't': o[len++] = '\t'; break;
        case 'v': o[len++] = '\v'; break;
        case 'x': {
            int h1 = i < n ? hexval((unsigned char)s[i]) : -1;
            int h2 = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            if (h1 < 0 || h2 < 0)
                return lfail(L, NPE_EFORMAT, "invalid \\x escape at argument byte %zu", i);
            o[len++] = (char)(h1 << 4 | h2);
            i += 2;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned val = (unsigned)(c - '0');
                for (int d = 0; d < 2 && i < n && s[i] >= '0' && s[i] <= '7'; d++)
                    val = val << 3 | (unsigned)(s[i++] - '0');
                o[len++] = (char)(val & 0xff);
            } else {
                o[len++] = '\\';
                o[len++] = c;
            }
        }
    }
    seal_text(o, len);
    v->u.str.s = o;
    v->u.str.len = len;
    return push(L, v);
}

/* Text integer as Python's int(s, 0) reads it: whitespace, sign, 0x/0o/0b prefix, digits with
 * single underscores. Returns 0, -1 (malformed) or -2 (does not fit int64). */
static int parse_int_text(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    unsigned base = 10;
    if (i + 1 < n && s[i] == '0') {
        char p = s[i + 1];
        base = (p == 'x' || p == 'X')   ? 16
               : (p == 'o' || p == 'O') ? 8
               : (p == 'b' || p == 'B') ? 2
                                        : 10;
        if (base != 10) {
            i += 2;
            if (i < n && s[i] == '_')
                i++;
        }
    }
    if (i >= n)
        return -1;
    uint64_t mag = 0;
    int ovf = 0, prev_us = 1;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (prev_us)
                return -1;
            prev_us = 1;
            continue;
        }
        int d = hexval((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base)
            return -1;
        prev_us = 0;
        if (mag > (UINT64_MAX - (unsigned)d) / base)
            ovf = 1;
        else
            mag = mag * base + (unsigned)d;
    }
    if (prev_us)
        return -1;
    if (ovf || mag > (neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX))
        return -2;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static int push_int(loader *L, int64_t i)
{
    int rc;
    npe_pv *v = lnode(L, NPE_PV_INT, &rc);
    if (!v)
        return rc;
    v->u.i = i;
    return push(L, v);
}

static int op_int_text(loader *L, int is_long)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(L, &s, &n);
    if (rc)
        return rc;
    if (!is_long && n == 2 && (s[0] == '0') && (s[1] == '0' || s[1] == '1')) {
        npe_pv *v = lnode(L, NPE_PV_BOOL, &rc); /* protocol 0 writes True/False as I01/I00 */
        if (!v)
            return rc;
        v->u.b = s[1] == '1';
        return push(L, v);
    }
    if (is_long && n && s[n - 1] == 'L')
        n--;
    int64_t val;
    int pr = parse_int_text(s, n, &val);
    if (pr == -2)
        return lfail(L, NPE_EUNSUPPORTED, "integer '%.*s%s' does not fit in 64 bits", SHOWN(n), s,
                     n > 40 ? "..." : "");
    if (pr)
        return lfail(L, NPE_EFORMAT, "'%.*s%s' is not an integer", SHOWN(n), s,
                     n > 40 ? "..." : "");
    return push_int(L, val);
}

/* LONG1/LONG4: little-endian two's complement. Longer encodings are accepted while the extra
 * bytes only repeat the sign. */
static int op_long_bin(loader *L, int nlen)
{
    uint64_t n;
    int rc = read_uint(L, nlen, &n);
    if (rc)
        return rc;
    if (nlen == 4 && (n & 0x80000000u))
        return lfail(L, NPE_EFORMAT, "negative byte count %" PRId32, (int32_t)(uint32_t)n);
    if ((rc = need(L, n, 1)))
        return rc;
    const unsigned char *b = L->p + L->pos;
    L->pos += (size_t)n;
    if (n == 0)
        return push_int(L, 0);
    size_t low = n < 8 ? (size_t)n : 8;
    int neg = (b[low - 1] & 0x80) != 0;
    for (size_t i = 8; i < n; i++)
        if (b[i] != (neg ? 0xff : 0x00))
            return lfail(L, NPE_EUNSUPPORTED,
                         "%" PRIu64 "-byte integer does not fit in 64 bits", n);
    if (n > 8 && ((b[7] & 0x80) != 0) != ((b[n - 1] & 0x80) != 0))
        return lfail(L, NPE_EUNSUPPORTED, "%" PRIu64 "-byte integer does not fit in 64 bits", n);
    uint64_t u = rd_le(b, (int)low);
    if (low < 8 && neg)
        u |= UINT64_MAX << (8 * low);
    int64_t val;
    memcpy(&val, &u, sizeof(val));
    return push_int(L, val);
}

static int push_float(loader *L, double f)
{
    int rc;
    npe_pv *v = lnode(L, NPE_PV_FLOAT, &rc);
    if (!v)
        return rc;
    v->u.f = f;
    return push(L, v);
}

static char radix_char(void)
{
    const struct lconv *lc = localeconv();
    return lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0] : '.';
}

/* FLOAT argument: repr() text. strtod follows the C locale's radix, so '.' is swapped for it;
 * hex floats, which Python's float() refuses, are refused too. */
static int op_float_text(loader *L)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(L, &s, &n);
    if (rc)
        return rc;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n == 0 || n >= FLOAT_TEXT_MAX)
        return lfail(L, NPE_EFORMAT, "'%.*s' is not a float", SHOWN(n), s);
    char buf[FLOAT_TEXT_MAX];
    char radix = radix_char();
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == 'x' || c == 'X' || c == '\0')
            return lfail(L, NPE_EFORMAT, "'%.*s' is not a float", SHOWN(n), s);
        buf[i] = c == '.' ? radix : c;
    }
    buf[n] = '\0';
    char *end;
    double f = strtod(buf, &end);
    if (end != buf + n)
        return lfail(L, NPE_EFORMAT, "'%.*s' is not a float", SHOWN(n), s);
    return push_float(L, f);
}

/* Python 3 reads Python 2 names under their new ones (pickle's fix_imports, _compat_pickle);
 * the resolver is asked about the name Python would import, so a Python 2 spelling cannot
 * slip past it. Only modules with code worth refusing, and the names that move into them. */
static const char *const module_map[][2] = {
    {"__builtin__", "builtins"}, {"exceptions", "builtins"}, {"copy_reg", "copyreg"},
    {"commands", "subprocess"}, {"cPickle", "pickle"}, {"thread", "_thread"},
    {"UserDict", "collections"}, {"UserList", "collections"}, {"UserString", "collections"},
    {"StringIO", "io"}, {"cStringIO", "io"}, {"urllib2", "urllib.request"},
    {"httplib", "http.client"}, {"SocketServer", "socketserver"}, {"Queue", "queue"},
};
static const char *const name_map[][4] = {
    {"__builtin__", "xrange", "builtins", "range"},
    {"__builtin__", "reduce", "functools", "reduce"},
    {"__builtin__", "intern", "sys", "intern"}, {"__builtin__", "unichr", "builtins", "chr"},
    {"__builtin__", "unicode", "builtins", "str"}, {"__builtin__", "long", "builtins", "int"},
    {"__builtin__", "basestring", "builtins", "str"}, {"itertools", "izip", "builtins", "zip"},
    {"itertools", "imap", "builtins", "map"}, {"itertools", "ifilter", "builtins", "filter"},
    {"exceptions", "StandardError", "builtins", "Exception"},
    {"UserDict", "IterableUserDict", "collections", "UserDict"},
};

static void map_global(const char **mod, const char **name)
{
    for (size_t i = 0; i < sizeof(name_map) / sizeof(name_map[0]); i++)
        if (strcmp(*mod, name_map[i][0]) == 0 && strcmp(*name, name_map[i][1]) == 0) {
            *mod = name_map[i][2];
            *name = name_map[i][3];
            return;
        }
    for (size_t i = 0; i < sizeof(module_map) / sizeof(module_map[0]); i++)
        if (strcmp(*mod, module_map[i][0]) == 0) {
            *mod = module_map[i][1];
            return;
        }
}

static npe_pkl_global_kind resolve(loader *L, const npe_pv *g)
{
    return L->resolve ? L->resolve(L->ruser, g->u.global.module, g->u.global.name) : NPE_PKL_DENY;
}

static int check_ident(loader *L, const char *s, size_t n, const char *what)
{
    if (n == 0)
        return lfail(L, NPE_EFORMAT, "empty %s name", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return lfail(L, NPE_EFORMAT, "%s name '%.*s' contains control byte 0x%02x", what,
                         (int)(n > 60 ? 60 : n), s, c);
    }
    return 0;
}

/* GLOBAL and STACK_GLOBAL: ask the resolver at once, so a denied name never reaches the tree. */
static int push_global(loader *L, const char *mod, size_t mlen, const char *name, size_t nlen)
{
    int rc;
    if ((rc = check_ident(L, mod, mlen, "module")) || (rc = check_ident(L, name, nlen, "global")))
        return rc;
    npe_pv *g = lnode(L, NPE_PV_GLOBAL, &rc);
    if (!g)
        return rc;
    char *m = arena_strdup(L->doc, mod, mlen);
    char *nm = arena_strdup(L->doc, name, nlen);
    if (!m || !nm)
        return oom(L);
    const char *pm = m, *pn = nm;
    map_global(&pm, &pn);
    g->u.global.module = pm == m ? m : arena_strdup(L->doc, pm, strlen(pm));
    g->u.global.name = pn == nm ? nm : arena_strdup(L->doc, pn, strlen(pn));
    if (!g->u.global.module || !g->u.global.name)
        return oom(L);
    if (resolve(L, g) == NPE_PKL_DENY) {
        if (pm != m || pn != nm)
            return lfail(L, NPE_EUNSAFE, "global '%s.%s' is not allowed (read as '%s.%s')", m, nm,
                         pm, pn);
        return lfail(L, NPE_EUNSAFE, "global '%s.%s' is not allowed", m, nm);
    }
    return push(L, g);
}

static int bad_global_use(loader *L, const npe_pv *g, const char *why)
{
    return lfail(L, NPE_EUNSAFE, "global '%s.%s' %s", g->u.global.module, g->u.global.name, why);
}

/* `_codecs.encode(text, 'latin1')` and `bytes()` are how protocol 2 spells bytes; once the
 * resolver allows the call we keep the value, not the call. */
static npe_pv *fold_bytes(loader *L, const npe_pv *fn, const npe_pv *args, int *rc)
{
    *rc = 0;
    const char *m = fn->u.global.module, *nm = fn->u.global.name;
    if (strcmp(m, "builtins") == 0 && strcmp(nm, "bytes") == 0 && args->u.seq.n == 0)
        return text_node(L, NPE_PV_BYTES, "", 0, rc);
    if (strcmp(m, "_codecs") != 0 || strcmp(nm, "encode") != 0 || args->u.seq.n != 2)
        return NULL;
    const npe_pv *t = args->u.seq.items[0], *e = args->u.seq.items[1];
    if (t->kind != NPE_PV_STR || e->kind != NPE_PV_STR || e->u.str.len != strlen(e->u.str.s) ||
        (strcmp(e->u.str.s, "latin1") != 0 && strcmp(e->u.str.s, "latin-1") != 0))
        return NULL;
    const unsigned char *s = (const unsigned char *)t->u.str.s;
    size_t n = t->u.str.len, len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80 && ((s[i] & 0xfe) != 0xc2 || i + 1 >= n || (s[i + 1] & 0xc0) != 0x80))
            return NULL; /* not latin-1 text: leave it a CALL */
        i += s[i] >= 0x80;
    }
    npe_pv *v = lnode(L, NPE_PV_BYTES, rc);
    char *o = v ? alloc_text(L->doc, n) : NULL;
    if (!o) {
        if (v)
            *rc = oom(L);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            o[len++] = (char)s[i];
        } else {
            o[len++] = (char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        }
    }
    seal_text(o, len);
    v->u.str.s = o;
    v->u.str.len = len;
    return v;
}

static int op_reduce(loader *L)
{
    npe_pv *args = NULL, **fnp = NULL;
    int rc = pop(L, &args);
    if (rc || !(fnp = peek(L, 1, &rc)))
        return rc;
    npe_pv *fn = *fnp;
    if (fn->kind != NPE_PV_GLOBAL)
        return lfail(L, NPE_EUNSAFE, "calls a %s, not an allowed global", kind_name(fn->kind));
    if (args->kind != NPE_PV_TUPLE)
        return lfail(L, NPE_EFORMAT, "arguments of '%s.%s' are a %s, expected a tuple",
                     fn->u.global.module, fn->u.global.name, kind_name(args->kind));
    npe_pv *v = NULL;
    switch (resolve(L, fn)) {
    case NPE_PKL_CALLABLE:
        if (!(v = fold_bytes(L, fn, args, &rc)) && rc)
            return rc;
        if (!v && !(v = lnode(L, NPE_PV_CALL, &rc)))
            return rc;
        if (v->kind == NPE_PV_CALL) {
            v->u.call.fn = fn;
            v->u.call.args = args;
        }
        break;
    case NPE_PKL_MAKE_DICT: {
        if (!(v = lnode(L, NPE_PV_DICT, &rc)))
            return rc;
        v->u.dict.cls = fn;
        if (args->u.seq.n == 0)
            break;
        npe_pv *src = args->u.seq.items[0];
        if (args->u.seq.n > 1)
            return lfail(L, NPE_EUNSUPPORTED, "'%s.%s' called with %zu arguments, expected 0 or 1",
                         fn->u.global.module, fn->u.global.name, args->u.seq.n);
        if (src->kind == NPE_PV_DICT) {
            for (size_t i = 0; i < src->u.dict.n; i++)
                if ((rc = dict_put(L, v, src->u.dict.keys[i], src->u.dict.vals[i])))
                    return rc;
            break;
        }
        if (src->kind != NPE_PV_LIST && src->kind != NPE_PV_TUPLE)
            return lfail(L, NPE_EUNSUPPORTED, "'%s.%s' called with a %s, expected pairs",
                         fn->u.global.module, fn->u.global.name, kind_name(src->kind));
        for (size_t i = 0; i < src->u.seq.n; i++) {
            npe_pv *p = src->u.seq.items[i];
            if ((p->kind != NPE_PV_TUPLE && p->kind != NPE_PV_LIST) || p->u.seq.n != 2)
                return lfail(L, NPE_EUNSUPPORTED, "item %zu given to '%s.%s' is not a pair", i,
                             fn->u.global.module, fn->u.global.name);
            if ((rc = dict_put(L, v, p->u.seq.items[0], p->u.seq.items[1])))
                return rc;
        }
        break;
    }
    case NPE_PKL_MAKE_SET: {
        if (!(v = lnode(L, NPE_PV_SET, &rc)))
            return rc;
        if (args->u.seq.n == 0)
            break;
        npe_pv *src = args->u.seq.items[0];
        if (args->u.seq.n > 1 ||
            (src->kind != NPE_PV_LIST && src->kind != NPE_PV_TUPLE && src->kind != NPE_PV_SET))
            return lfail(L, NPE_EUNSUPPORTED, "'%s.%s' expects one list, tuple or set",
                         fn->u.global.module, fn->u.global.name);
        for (size_t i = 0; i < src->u.seq.n; i++)
            if ((rc = set_add(L, v, src->u.seq.items[i])))
                return rc;
        break;
    }
    case NPE_PKL_CLASS:
        return bad_global_use(L, fn, "is allowed as a class (NEWOBJ), not as a function to call");
    case NPE_PKL_VALUE:
        return bad_global_use(L, fn, "is allowed only as a value, not as a function to call");
    case NPE_PKL_DENY:
    default:
        return bad_global_use(L, fn, "is not allowed");
    }
    *fnp = v;
    return 0;
}

static int op_newobj(loader *L, int ex)
{
    npe_pv *args = NULL, *kwargs = NULL, **clsp = NULL;
    int rc = 0;
    if (ex && (rc = pop(L, &kwargs)))
        return rc;
    if ((rc = pop(L, &args)) || !(clsp = peek(L, 1, &rc)))
        return rc;
    npe_pv *cls = *clsp;
    if (cls->kind != NPE_PV_GLOBAL)
        return lfail(L, NPE_EUNSAFE, "instantiates a %s, not an allowed class",
                     kind_name(cls->kind));
    if (resolve(L, cls) != NPE_PKL_CLASS)
        return bad_global_use(L, cls, "is not allowed as a class to instantiate");
    if (args->kind != NPE_PV_TUPLE)
        return lfail(L, NPE_EFORMAT, "arguments are a %s, expected a tuple", kind_name(args->kind));
    if (kwargs && kwargs->kind != NPE_PV_DICT)
        return lfail(L, NPE_EFORMAT, "keyword arguments are a %s, expected a dict",
                     kind_name(kwargs->kind));
    npe_pv *v = lnode(L, NPE_PV_OBJECT, &rc);
    if (!v)
        return rc;
    v->u.call.fn = cls;
    v->u.call.args = args;
    v->u.call.kwargs = kwargs;
    *clsp = v;
    return 0;
}

static int op_build(loader *L)
{
    npe_pv *state = NULL, **instp = NULL;
    int rc = pop(L, &state);
    if (rc || !(instp = peek(L, 1, &rc)))
        return rc;
    npe_pv *inst = *instp, **slot;
    if (is_record(inst))
        slot = &inst->u.call.state;
    else if (inst->kind == NPE_PV_DICT)
        slot = &inst->u.dict.state;
    else
        return lfail(L, NPE_EUNSUPPORTED, "cannot set the state of a %s", kind_name(inst->kind));
    if (*slot)
        return lfail(L, NPE_EUNSUPPORTED, "the %s already received a state", kind_name(inst->kind));
    *slot = state;
    return 0;
}

static int memo_eq(const hent *e, uint64_t k, const void *a, const void *b)
{
    (void)a;
    (void)b;
    return e->k == k;
}

static int memo_put(loader *L, uint64_t idx)
{
    int rc;
    npe_pv **t = peek(L, 1, &rc);
    if (!t)
        return rc;
    uint64_t h = mix64(idx ^ L->seed);
    hent *e = hfind(&L->memo, h, memo_eq, idx, NULL, NULL);
    if (e) {
        e->a = *t;
        return 0;
    }
    return hput(&L->memo, h, idx, *t, NULL, 0) ? oom(L) : 0;
}

static int memo_get(loader *L, uint64_t idx)
{
    hent *e = hfind(&L->memo, mix64(idx ^ L->seed), memo_eq, idx, NULL, NULL);
    if (!e)
        return lfail(L, NPE_EFORMAT, "memo index %" PRIu64 " was never set", idx);
    return push(L, (npe_pv *)e->a);
}

static int memo_index_text(loader *L, uint64_t *idx)
{
    const char *s = NULL;
    size_t n = 0;
    int64_t v = 0;
    int rc = read_line(L, &s, &n);
    if (rc)
        return rc;
    if (parse_int_text(s, n, &v) || v < 0)
        return lfail(L, NPE_EFORMAT, "'%.*s' is not a memo index", SHOWN(n), s);
    *idx = (uint64_t)v;
    return 0;
}

static int op_persid(loader *L, int binary)
{
    npe_pv *pid = NULL;
    int rc;
    if (binary) {
        if ((rc = pop(L, &pid)))
            return rc;
    } else {
        const char *s = NULL;
        size_t n = 0;
        if ((rc = read_line(L, &s, &n)) || !(pid = text_node(L, NPE_PV_STR, s, n, &rc)))
            return rc;
    }
    npe_pv *v = lnode(L, NPE_PV_PERSID, &rc);
    if (!v)
        return rc;
    v->u.pid = pid;
    return push(L, v);
}

/* One opcode; returns 0, 1 after STOP, or an error code. */
static int step(loader *L)
{
    npe_pv *v = NULL, **t = NULL, **items = NULL;
    size_t n = 0;
    uint64_t u = 0;
    int rc = 0;
    switch (L->op) {
    case OP_PROTO:
        if ((rc = read_uint(L, 1, &u)))
            return rc;
        if (u > 5)
            return lfail(L, NPE_EUNSUPPORTED, "protocol %" PRIu64 " (this reader knows 0 to 5)", u);
        return 0;
    case OP_FRAME: /* framing only groups bytes; the opcodes inside are read as usual */
        return read_uint(L, 8, &u);
    case OP_STOP:
        if ((rc = pop(L, &v)))
            return rc;
        L->doc->root = v;
        return 1;
    case OP_MARK:
        if (L->sp + L->nmarks >= MAX_STACK)
            return lfail(L, NPE_ELIMIT, "stack holds more than %u entries", MAX_STACK);
        if (L->nmarks == L->mcap) {
            size_t ncap = L->mcap ? L->mcap * 2 : 16;
            size_t *nm = realloc(L->marks, ncap * sizeof(*nm));
            if (!nm)
                return oom(L);
            L->marks = nm;
            L->mcap = ncap;
        }
        L->marks[L->nmarks++] = L->sp;
        return 0;
    case OP_POP:
        if (L->sp > frame_base(L))
            L->sp--;
        else if (L->nmarks)
            L->nmarks--; /* like Python: POP on an empty frame discards the MARK */
        else
            return underflow(L, 1);
        return 0;
    case OP_POP_MARK:
        return pop_mark(L, &items, &n);
    case OP_DUP:
        if (!(t = peek(L, 1, &rc)))
            return rc;
        return push(L, *t);
    case OP_NONE:
        return (v = lnode(L, NPE_PV_NONE, &rc)) ? push(L, v) : rc;
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        if (!(v = lnode(L, NPE_PV_BOOL, &rc)))
            return rc;
        v->u.b = L->op == OP_NEWTRUE;
        return push(L, v);
    case OP_INT:
        return op_int_text(L, 0);
    case OP_LONG:
        return op_int_text(L, 1);
    case OP_BININT:
        if ((rc = read_uint(L, 4, &u)))
            return rc;
        return push_int(L, (int32_t)(uint32_t)u);
    case OP_BININT1:
        return (rc = read_uint(L, 1, &u)) ? rc : push_int(L, (int64_t)u);
    case OP_BININT2:
        return (rc = read_uint(L, 2, &u)) ? rc : push_int(L, (int64_t)u);
    case OP_LONG1:
        return op_long_bin(L, 1);
    case OP_LONG4:
        return op_long_bin(L, 4);
    case OP_FLOAT:
        return op_float_text(L);
    case OP_BINFLOAT: {
        if ((rc = need(L, 8, 0)))
            return rc;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | L->p[L->pos + (size_t)i];
        L->pos += 8;
        double f;
        memcpy(&f, &bits, sizeof(f));
        return push_float(L, f);
    }
    case OP_STRING:
        return op_string(L);
    case OP_BINSTRING:
        return op_counted(L, 4, NPE_PV_STR, 1);
    case OP_SHORT_BINSTRING:
        return op_counted(L, 1, NPE_PV_STR, 0);
    case OP_UNICODE:
        return op_unicode(L);
    case OP_BINUNICODE:
        return op_counted(L, 4, NPE_PV_STR, 0);
    case OP_SHORT_BINUNICODE:
        return op_counted(L, 1, NPE_PV_STR, 0);
    case OP_BINUNICODE8:
        return op_counted(L, 8, NPE_PV_STR, 0);
    case OP_BINBYTES:
        return op_counted(L, 4, NPE_PV_BYTES, 0);
    case OP_SHORT_BINBYTES:
        return op_counted(L, 1, NPE_PV_BYTES, 0);
    case OP_BINBYTES8:
    case OP_BYTEARRAY8:
        return op_counted(L, 8, NPE_PV_BYTES, 0);
    case OP_EMPTY_TUPLE:
        return (v = lnode(L, NPE_PV_TUPLE, &rc)) ? push(L, v) : rc;
    case OP_TUPLE:
    case OP_LIST:
    case OP_FROZENSET:
        if ((rc = pop_mark(L, &items, &n)))
            return rc;
        if (L->op == OP_FROZENSET) {
            if (!(v = lnode(L, NPE_PV_SET, &rc)))
                return rc;
            for (size_t i = 0; i < n; i++)
                if ((rc = set_add(L, v, items[i])))
                    return rc;
        } else {
            npe_pv_kind k = L->op == OP_TUPLE ? NPE_PV_TUPLE : NPE_PV_LIST;
            if (!(v = make_seq(L, k, items, n, &rc)))
                return rc;
        }
        return push(L, v);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3:
        n = (size_t)(L->op - OP_TUPLE1 + 1);
        if (!(t = peek(L, n, &rc)) || !(v = make_seq(L, NPE_PV_TUPLE, t, n, &rc)))
            return rc;
        L->sp -= n;
        return push(L, v);
    case OP_EMPTY_LIST:
        return (v = lnode(L, NPE_PV_LIST, &rc)) ? push(L, v) : rc;
    case OP_APPEND:
        if ((rc = pop(L, &v)) || !(t = peek(L, 1, &rc)))
            return rc;
        return add_items(L, *t, &v, 1);
    case OP_APPENDS:
        if ((rc = pop_mark(L, &items, &n)) || !(t = peek(L, 1, &rc)))
            return rc;
        return add_items(L, *t, items, n);
    case OP_EMPTY_DICT:
        return (v = lnode(L, NPE_PV_DICT, &rc)) ? push(L, v) : rc;
    case OP_DICT:
        if ((rc = pop_mark(L, &items, &n)) || !(v = lnode(L, NPE_PV_DICT, &rc)) ||
            (rc = dict_put_pairs(L, v, items, n)))
            return rc;
        return push(L, v);
    case OP_SETITEM:
        if (!(t = peek(L, 3, &rc)))
            return rc;
        L->sp -= 2;
        return set_items(L, t[0], t + 1, 2);
    case OP_SETITEMS:
        if ((rc = pop_mark(L, &items, &n)) || !(t = peek(L, 1, &rc)))
            return rc;
        return set_items(L, *t, items, n);
    case OP_EMPTY_SET:
        return (v = lnode(L, NPE_PV_SET, &rc)) ? push(L, v) : rc;
    case OP_ADDITEMS:
        if ((rc = pop_mark(L, &items, &n)) || !(t = peek(L, 1, &rc)))
            return rc;
        if ((*t)->kind != NPE_PV_SET)
            return lfail(L, NPE_EUNSUPPORTED, "cannot add items to a %s", kind_name((*t)->kind));
        for (size_t i = 0; i < n; i++)
            if ((rc = set_add(L, *t, items[i])))
                return rc;
        return 0;
    case OP_GLOBAL: {
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        if ((rc = read_line(L, &m, &ml)) || (rc = read_line(L, &nm, &nl)))
            return rc;
        return push_global(L, m, ml, nm, nl);
    }
    case OP_STACK_GLOBAL:
        if (!(t = peek(L, 2, &rc)))
            return rc;
        if (t[0]->kind != NPE_PV_STR || t[1]->kind != NPE_PV_STR)
            return lfail(L, NPE_EFORMAT, "module and name must be str, found %s and %s",
                         kind_name(t[0]->kind), kind_name(t[1]->kind));
        L->sp -= 2;
        return push_global(L, t[0]->u.str.s, t[0]->u.str.len, t[1]->u.str.s, t[1]->u.str.len);
    case OP_REDUCE:
        return op_reduce(L);
    case OP_NEWOBJ:
        return op_newobj(L, 0);
    case OP_NEWOBJ_EX:
        return op_newobj(L, 1);
    case OP_BUILD:
        return op_build(L);
    case OP_PERSID:
        return op_persid(L, 0);
    case OP_BINPERSID:
        return op_persid(L, 1);
    case OP_PUT:
        return (rc = memo_index_text(L, &u)) ? rc : memo_put(L, u);
    case OP_BINPUT:
        return (rc = read_uint(L, 1, &u)) ? rc : memo_put(L, u);
    case OP_LONG_BINPUT:
        return (rc = read_uint(L, 4, &u)) ? rc : memo_put(L, u);
    case OP_MEMOIZE:
        return memo_put(L, L->memo.n);
    case OP_GET:
        return (rc = memo_index_text(L, &u)) ? rc : memo_get(L, u);
    case OP_BINGET:
        return (rc = read_uint(L, 1, &u)) ? rc : memo_get(L, u);
    case OP_LONG_BINGET:
        return (rc = read_uint(L, 4, &u)) ? rc : memo_get(L, u);
    case OP_INST: {
        const char *m = "", *nm = "";
        size_t ml = 0, nl = 0;
        if (read_line(L, &m, &ml) == 0)
            read_line(L, &nm, &nl);
        return lfail(L, NPE_EUNSAFE, "refused: INST calls the class '%.*s.%.*s' by name",
                     (int)(ml > 100 ? 100 : ml), m, (int)(nl > 100 ? 100 : nl), nm);
    }
    case OP_OBJ:
        if (L->nmarks && L->sp > frame_base(L) && L->stack[frame_base(L)]->kind == NPE_PV_GLOBAL) {
            const npe_pv *g = L->stack[frame_base(L)];
            return lfail(L, NPE_EUNSAFE, "refused: OBJ calls the class '%s.%s'",
                         g->u.global.module, g->u.global.name);
        }
        return lfail(L, NPE_EUNSAFE, "refused: OBJ calls a class from the stack");
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
        return lfail(L, NPE_EUNSAFE,
                     "refused: extension codes name globals through copyreg's registry");
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER:
        return lfail(L, NPE_EUNSUPPORTED, "out-of-band buffers are not supported");
    default:
        return lfail(L, NPE_EFORMAT, "unknown opcode (not a pickle, or a newer protocol)");
    }
}

int npe_pkl_load(const void *data, size_t size, const char *name, npe_pkl_resolver resolve_fn,
                 void *resolve_user, npe_pkl **out, size_t *used, npe_error *err)
{
    if (out)
        *out = NULL;
    if (used)
        *used = 0;
    if (!name)
        name = "pickle";
    if (!out || (!data && size))
        return npe_error_set(err, NPE_EINVAL, "%s: npe_pkl_load: no input or no output", name);
    loader L = {
        .p = data, .size = size, .name = name, .err = err, .resolve = resolve_fn,
        .ruser = resolve_user,
    };
    L.budget = SIZE_MAX;
    if (size <= (SIZE_MAX - NODES_BASE) / NODES_PER_BYTE)
        L.budget = size * NODES_PER_BYTE + NODES_BASE;
    if (!(L.doc = npe_pkl_new()))
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", name);
    /* address-space randomisation is the only entropy C11 offers without a system call */
    L.seed = mix64(hash_ptr(L.doc) ^ (uint64_t)(uintptr_t)&L);
    int rc = 0;
    for (;;) {
        if (L.pos >= L.size) {
            rc = npe_error_set(err, NPE_EFORMAT,
                               "%s: offset %zu: input ends before the STOP opcode (truncated?)",
                               name, L.pos);
            break;
        }
        L.op_off = L.pos;
        L.op = L.p[L.pos++];
        rc = step(&L);
        if (rc) {
            if (rc == 1)
                rc = 0;
            break;
        }
    }
    free(L.stack);
    free(L.marks);
    hfree(&L.memo);
    hfree(&L.members);
    if (rc) {
        npe_pkl_free(L.doc);
        return rc;
    }
    *out = L.doc;
    if (used)
        *used = L.pos;
    return 0;
}

/* ---- repr ------------------------------------------------------------------------------------ */

typedef struct rbuf {
    char *buf;
    size_t cap, len, limit;
} rbuf;

static int rfull(const rbuf *r)
{
    return r->len > r->limit;
}

static void rput(rbuf *r, const char *s, size_t n)
{
    if (rfull(r))
        return;
    if (r->len < r->cap) {
        size_t room = r->cap - r->len;
        memcpy(r->buf + r->len, s, n < room ? n : room);
    }
    r->len += n;
}

static void rputs(rbuf *r, const char *s)
{
    rput(r, s, strlen(s));
}

/* Shortest text that reads back as the same double, laid out as Python's repr() does: fixed
 * notation for exponents -4..15, otherwise d.ddde+XX. */
static void repr_float(rbuf *r, double f)
{
    if (isnan(f)) {
        rputs(r, "nan");
        return;
    }
    if (isinf(f)) {
        rputs(r, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp is [-]d[<radix>ddd]e<sign>dd in whatever radix the locale uses */
    char digits[32];
    int nd = 0, neg = 0, i = 0;
    if (tmp[i] == '-') {
        neg = 1;
        i++;
    }
    for (; tmp[i] && tmp[i] != 'e'; i++)
        if (tmp[i] >= '0' && tmp[i] <= '9' && nd < (int)sizeof(digits) - 1)
            digits[nd++] = tmp[i];
    int exp = tmp[i] == 'e' ? atoi(tmp + i + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)nd - 1);
            o += (size_t)nd - 1;
        }
        o += (size_t)snprintf(out + o, sizeof(out) - o, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int z = 0; z < -exp - 1; z++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)nd);
        o += (size_t)nd;
    } else {
        for (int k = 0; k <= exp; k++)
            out[o++] = k < nd ? digits[k] : '0';
        out[o++] = '.';
        if (nd > exp + 1) {
            memcpy(out + o, digits + exp + 1, (size_t)(nd - exp - 1));
            o += (size_t)(nd - exp - 1);
        } else {
            out[o++] = '0';
        }
    }
    rput(r, out, o);
}

/* Length of the UTF-8 sequence at s (1..4) and its code point, or 0 if malformed. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff)
        return 0;
    *cp = v;
    return len;
}

static void repr_text(rbuf *r, const npe_pv *v)
{
    int bytes = v->kind == NPE_PV_BYTES;
    const unsigned char *s = (const unsigned char *)v->u.str.s;
    size_t n = v->u.str.len;
    /* Python picks ' unless the text has ' and no " */
    int has_sq = 0, has_dq = 0;
    for (size_t i = 0; i < n; i++) {
        has_sq |= s[i] == '\'';
        has_dq |= s[i] == '"';
    }
    char q = has_sq && !has_dq ? '"' : '\'';
    if (bytes)
        rput(r, "b", 1);
    rput(r, &q, 1);
    char esc[16];
    for (size_t i = 0; i < n && !rfull(r);) {
        unsigned char c = s[i];
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            rput(r, esc, 2);
            i++;
        } else if (c == '\n') {
            rput(r, "\\n", 2), i++;
        } else if (c == '\r') {
            rput(r, "\\r", 2), i++;
        } else if (c == '\t') {
            rput(r, "\\t", 2), i++;
        } else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            rput(r, esc, 4);
            i++;
        } else if (c < 0x80) {
            rput(r, (const char *)&s[i], 1);
            i++;
        } else {
            uint32_t cp;
            size_t len = utf8_next(s + i, n - i, &cp);
            if (!len) {
                snprintf(esc, sizeof(esc), "\\x%02x", c);
                rput(r, esc, 4);
                i++;
            } else if (cp < 0xa1 || cp == 0xad || (cp >= 0xd800 && cp <= 0xdfff)) {
                /* C1 controls, NBSP, soft hyphen and surrogates are not printable in Python */
                if (cp < 0x100)
                    snprintf(esc, sizeof(esc), "\\x%02" PRIx32, cp);
                else
                    snprintf(esc, sizeof(esc), "\\u%04" PRIx32, cp);
                rputs(r, esc);
                i += len;
            } else {
                rput(r, (const char *)&s[i], len);
                i += len;
            }
        }
    }
    rput(r, &q, 1);
}

static void repr_node(rbuf *r, const npe_pv *v, int depth)
{
    char tmp[64];
    if (rfull(r))
        return;
    if (!v) {
        rputs(r, "<null>");
        return;
    }
    if (depth > REPR_DEPTH_MAX) {
        rputs(r, "...");
        return;
    }
    switch (v->kind) {
    case NPE_PV_NONE:
        rputs(r, "None");
        return;
    case NPE_PV_BOOL:
        rputs(r, v->u.b ? "True" : "False");
        return;
    case NPE_PV_INT:
        snprintf(tmp, sizeof(tmp), "%" PRId64, v->u.i);
        rputs(r, tmp);
        return;
    case NPE_PV_FLOAT:
        repr_float(r, v->u.f);
        return;
    case NPE_PV_STR:
    case NPE_PV_BYTES:
        repr_text(r, v);
        return;
    case NPE_PV_TUPLE:
    case NPE_PV_LIST:
    case NPE_PV_SET: {
        size_t n = v->u.seq.n;
        if (v->kind == NPE_PV_SET && n == 0) {
            rputs(r, "set()");
            return;
        }
        rputs(r, v->kind == NPE_PV_TUPLE ? "(" : v->kind == NPE_PV_LIST ? "[" : "{");
        for (size_t i = 0; i < n && !rfull(r); i++) {
            if (i)
                rputs(r, ", ");
            repr_node(r, v->u.seq.items[i], depth + 1);
        }
        if (v->kind == NPE_PV_TUPLE && n == 1)
            rputs(r, ",");
        rputs(r, v->kind == NPE_PV_TUPLE ? ")" : v->kind == NPE_PV_LIST ? "]" : "}");
        return;
    }
    case NPE_PV_DICT:
        rputs(r, "{");
        for (size_t i = 0; i < v->u.dict.n && !rfull(r); i++) {
            if (i)
                rputs(r, ", ");
            repr_node(r, v->u.dict.keys[i], depth + 1);
            rputs(r, ": ");
            repr_node(r, v->u.dict.vals[i], depth + 1);
        }
        rputs(r, "}");
        return;
    case NPE_PV_GLOBAL:
        rputs(r, "<");
        rputs(r, v->u.global.module);
        rputs(r, ".");
        rputs(r, v->u.global.name);
        rputs(r, ">");
        return;
    case NPE_PV_CALL:
    case NPE_PV_OBJECT:
        if (v->u.call.fn && v->u.call.fn->kind == NPE_PV_GLOBAL)
            repr_node(r, v->u.call.fn, depth + 1);
        else
            rputs(r, v->kind == NPE_PV_CALL ? "<call>" : "<object>");
        return;
    case NPE_PV_PERSID:
        rputs(r, "<persid ");
        repr_node(r, v->u.pid, depth + 1);
        rputs(r, ">");
        return;
    }
    rputs(r, "<?>");
}

size_t npe_pv_repr(const npe_pv *v, char *buf, size_t cap)
{
    if (!buf)
        cap = 0;
    rbuf r = {.buf = buf, .cap = cap, .limit = cap > REPR_COUNT_MIN ? cap : REPR_COUNT_MIN};
    repr_node(&r, v, 0);
    if (cap)
        buf[r.len < cap ? r.len : cap - 1] = '\0';
    return r.len;
}

/* ---- Pickler --------------------------------------------------------------------------------- */

/* Protocol 2, written the way CPython's C pickler does, so that data.pkl records we rewrite
 * keep PyTorch's byte layout: the same memo numbering (BINPUT for every str, container, record
 * and global, a global memoized once by name), the same batching, and Python 3's protocol-2
 * forms for what that protocol lacks: a SET is __builtin__.set([items]), BYTES are
 * _codecs.encode(latin-1 text, 'latin1') (bytes() when empty). PyTorch 1.13's weights_only
 * loader accepts neither of those globals, nor BINFLOAT (see NPE_PKL_DUMP_NO_FLOAT), nor the
 * POP/POP_MARK a tuple reached through its own items needs; trees meant for it avoid them. */

typedef struct dumper {
    unsigned char *p;
    size_t len, cap;
    unsigned flags;
    npe_error *err;
    htab memo;      /* node -> memo index */
    htab gmemo;     /* "module\nname" -> memo index, as Python memoizes each class once */
    uint64_t next;  /* next memo index */
    int64_t latin1; /* memo index of the 'latin1' string Python shares between bytes, or -1 */
    uint64_t seed;
} dumper;

static int dfail(dumper *d, int code, const char *fmt, ...) NPE_PRINTF(3, 4);
static int dfail(dumper *d, int code, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return npe_error_set(d->err, code, "pickling: %s", what);
}

static int wr(dumper *d, const void *s, size_t n)
{
    if (n > d->cap - d->len) {
        if (n > SIZE_MAX / 2 - d->len)
            return dfail(d, NPE_ENOMEM, "output too large");
        size_t ncap = d->cap ? d->cap : 256;
        while (ncap - d->len < n)
            ncap *= 2;
        unsigned char *np = realloc(d->p, ncap);
        if (!np)
            return dfail(d, NPE_ENOMEM, "out of memory for %zu bytes of output", ncap);
        d->p = np;
        d->cap = ncap;
    }
    if (n)
        memcpy(d->p + d->len, s, n);
    d->len += n;
    return 0;
}

static int wr1(dumper *d, unsigned char c)
{
    return wr(d, &c, 1);
}

static int wr_op_u32(dumper *d, unsigned char op, uint32_t v)
{
    unsigned char b[5] = {op, (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    return wr(d, b, 5);
}

static int wr_get(dumper *d, uint64_t idx)
{
    if (idx < 256) {
        unsigned char b[2] = {OP_BINGET, (unsigned char)idx};
        return wr(d, b, 2);
    }
    return wr_op_u32(d, OP_LONG_BINGET, (uint32_t)idx);
}

static int ptr_eq(const hent *e, uint64_t k, const void *a, const void *b)
{
    (void)k;
    (void)b;
    return e->a == a;
}

/* Assign the next memo index to the value on top of the stack (v may be NULL for the
 * temporaries Python memoizes too, such as the list inside a set's reduce arguments). */
static int memoize(dumper *d, const npe_pv *v)
{
    uint64_t idx = d->next;
    if (idx > UINT32_MAX)
        return dfail(d, NPE_ELIMIT, "more than 2^32 memo entries");
    d->next++;
    int rc;
    if (idx < 256) {
        unsigned char b[2] = {OP_BINPUT, (unsigned char)idx};
        rc = wr(d, b, 2);
    } else {
        rc = wr_op_u32(d, OP_LONG_BINPUT, (uint32_t)idx);
    }
    if (rc)
        return rc;
    if (v && hput(&d->memo, hash_ptr(v), 0, v, NULL, idx))
        return dfail(d, NPE_ENOMEM, "out of memory");
    return 0;
}

static hent *memo_of(dumper *d, const npe_pv *v)
{
    return hfind(&d->memo, hash_ptr(v), ptr_eq, 0, v, NULL);
}

static int name_eq(const hent *e, uint64_t k, const void *a, const void *b)
{
    (void)k;
    return strcmp(e->a, a) == 0 && strcmp(e->b, b) == 0;
}

static int check_name(dumper *d, const char *s, const char *what)
{
    if (!s || !*s)
        return dfail(d, NPE_EINVAL, "global with an empty %s name", what);
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return dfail(d, NPE_EINVAL, "global %s name '%s' contains a control character", what,
                         s);
    return 0;
}

/* GLOBAL 'module\nname\n', then BINPUT; later uses of the same name are a BINGET, as Python's
 * memo (keyed by the class object) gives. node, if any, is memoized too. */
static int save_global(dumper *d, const char *mod, const char *name, const npe_pv *node)
{
    int rc;
    if ((rc = check_name(d, mod, "module")) || (rc = check_name(d, name, "global")))
        return rc;
    uint64_t h =
        mix64(hash_bytes(mod, strlen(mod)) ^ mix64(hash_bytes(name, strlen(name))) ^ d->seed);
    hent *e = hfind(&d->gmemo, h, name_eq, 0, mod, name);
    if (e)
        return wr_get(d, e->v);
    if ((rc = wr1(d, OP_GLOBAL)) || (rc = wr(d, mod, strlen(mod))) || (rc = wr1(d, '\n')) ||
        (rc = wr(d, name, strlen(name))) || (rc = wr1(d, '\n')))
        return rc;
    if (hput(&d->gmemo, h, 0, mod, name, d->next))
        return dfail(d, NPE_ENOMEM, "out of memory");
    return memoize(d, node);
}

static int save_int(dumper *d, int64_t i)
{
    unsigned char b[10];
    if (i >= 0 && i <= 0xff) {
        b[0] = OP_BININT1;
        b[1] = (unsigned char)i;
        return wr(d, b, 2);
    }
    if (i >= 0 && i <= 0xffff) {
        b[0] = OP_BININT2;
        b[1] = (unsigned char)i;
        b[2] = (unsigned char)(i >> 8);
        return wr(d, b, 3);
    }
    if (i >= INT32_MIN && i <= INT32_MAX)
        return wr_op_u32(d, OP_BININT, (uint32_t)(int32_t)i);
    /* LONG1: shortest little-endian two's complement, as pickle.encode_long writes it */
    uint64_t u;
    memcpy(&u, &i, sizeof(u));
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
        le[k] = (unsigned char)(u >> (8 * k));
    int n = 8;
    while (n > 1 && ((le[n - 1] == 0x00 && !(le[n - 2] & 0x80)) ||
                     (le[n - 1] == 0xff && (le[n - 2] & 0x80))))
        n--;
    b[0] = OP_LONG1;
    b[1] = (unsigned char)n;
    memcpy(b + 2, le, (size_t)n);
    return wr(d, b, (size_t)n + 2);
}

static int save_binunicode(dumper *d, const char *s, size_t n)
{
    if (n > UINT32_MAX)
        return dfail(d, NPE_EUNSUPPORTED, "a %zu-byte string does not fit protocol 2", n);
    int rc = wr_op_u32(d, OP_BINUNICODE, (uint32_t)n);
    return rc ? rc : wr(d, s, n);
}

static int save(dumper *d, const npe_pv *v, int depth);

static int save_item(dumper *d, npe_pv *const *a, npe_pv *const *b, size_t i, int depth,
                     int pairs_in_tuples)
{
    int rc;
    if (pairs_in_tuples) {
        const npe_pv *p = a[i];
        if (!p || p->kind != NPE_PV_TUPLE || p->u.seq.n != 2)
            return dfail(d, NPE_EINVAL, "record item %zu is not a (key, value) tuple", i);
        if ((rc = save(d, p->u.seq.items[0], depth)))
            return rc;
        return save(d, p->u.seq.items[1], depth);
    }
    if ((rc = save(d, a[i], depth)))
        return rc;
    return b ? save(d, b[i], depth) : 0;
}

/* List items (b == NULL) or dict items, in batches of 1000 after a MARK, the way CPython's C
 * pickler (what pickle.dumps and torch.save run) writes them:
 * - exact list/dict (exact != 0): one item alone is APPEND/SETITEM; otherwise every batch,
 *   even a last one of a single item, is MARK..APPENDS/SETITEMS, and a dict whose size is a
 *   multiple of 1000 ends with an empty MARK SETITEMS;
 * - items of a reduced object (OrderedDict, records): a last single item is APPEND/SETITEM
 *   and there are no empty batches. */
static int save_batches(dumper *d, npe_pv *const *a, npe_pv *const *b, size_t n, int depth,
                        int pairs_in_tuples, int exact)
{
    int rc, dict = b != NULL || pairs_in_tuples;
    unsigned char one = dict ? OP_SETITEM : OP_APPEND, many = dict ? OP_SETITEMS : OP_APPENDS;
    if (n == 0)
        return 0;
    if (exact && n == 1) {
        if ((rc = save_item(d, a, b, 0, depth, pairs_in_tuples)))
            return rc;
        return wr1(d, one);
    }
    size_t start = 0;
    for (;;) {
        size_t cnt = n - start < BATCHSIZE ? n - start : BATCHSIZE;
        if (cnt == 0 && !(exact && dict))
            return 0;
        int single = cnt == 1 && !exact;
        if (!single && (rc = wr1(d, OP_MARK)))
            return rc;
        for (size_t i = start; i < start + cnt; i++)
            if ((rc = save_item(d, a, b, i, depth, pairs_in_tuples)))
                return rc;
        if ((rc = wr1(d, single ? one : many)))
            return rc;
        start += cnt;
        if (cnt < BATCHSIZE || (start == n && !(exact && dict)))
            return 0;
    }
}

/* After REDUCE/NEWOBJ: if saving the arguments already memoized v (a cycle), drop the new copy
 * and fetch the memoized one, like Python's save_reduce. */
static int memoize_after_reduce(dumper *d, const npe_pv *v)
{
    hent *e = memo_of(d, v);
    if (e) {
        int rc = wr1(d, OP_POP);
        return rc ? rc : wr_get(d, e->v);
    }
    return memoize(d, v);
}

static int save_tuple(dumper *d, const npe_pv *v, int depth)
{
    size_t n = v->u.seq.n;
    int rc;
    if (n == 0)
        return wr1(d, OP_EMPTY_TUPLE);
    if (n > 3 && (rc = wr1(d, OP_MARK)))
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = save(d, v->u.seq.items[i], depth + 1)))
            return rc;
    hent *e = memo_of(d, v);
    if (e) {
        /* the tuple was reached again through a mutable item and is already in the memo:
         * throw away the copy being built and use that one */
        if (n <= 3) {
            for (size_t i = 0; i < n; i++)
                if ((rc = wr1(d, OP_POP)))
                    return rc;
        } else if ((rc = wr1(d, OP_POP_MARK))) {
            return rc;
        }
        return wr_get(d, e->v);
    }
    static const unsigned char small[4] = {0, OP_TUPLE1, OP_TUPLE2, OP_TUPLE3};
    if ((rc = wr1(d, n <= 3 ? small[n] : OP_TUPLE)))
        return rc;
    return memoize(d, v);
}

static int save_bytes(dumper *d, const npe_pv *v)
{
    int rc;
    size_t n = v->u.str.len;
    if (n == 0) {
        if ((rc = save_global(d, "__builtin__", "bytes", NULL)) || (rc = wr1(d, OP_EMPTY_TUPLE)) ||
            (rc = wr1(d, OP_REDUCE)))
            return rc;
        return memoize(d, v);
    }
    if (n > SIZE_MAX / 2)
        return dfail(d, NPE_ENOMEM, "bytes value too large");
    if ((rc = save_global(d, "_codecs", "encode", NULL)))
        return rc;
    char *text = malloc(2 * n);
    if (!text)
        return dfail(d, NPE_ENOMEM, "out of memory");
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += put_utf8(text + len, (unsigned char)v->u.str.s[i]);
    rc = save_binunicode(d, text, len);
    free(text);
    if (rc || (rc = memoize(d, NULL)))
        return rc;
    if (d->latin1 >= 0)
        rc = wr_get(d, (uint64_t)d->latin1);
    else if (!(rc = save_binunicode(d, "latin1", 6))) {
        d->latin1 = (int64_t)d->next;
        rc = memoize(d, NULL);
    }
    if (rc || (rc = wr1(d, OP_TUPLE2)) || (rc = memoize(d, NULL)) || (rc = wr1(d, OP_REDUCE)))
        return rc;
    return memoize(d, v);
}

/* Protocol 2 has no set opcodes: Python writes set(list_of_items). */
static int save_set(dumper *d, const npe_pv *v, int depth)
{
    int rc;
    if ((rc = save_global(d, "__builtin__", "set", NULL)) || (rc = wr1(d, OP_EMPTY_LIST)) ||
        (rc = memoize(d, NULL)) ||
        (rc = save_batches(d, v->u.seq.items, NULL, v->u.seq.n, depth + 1, 0, 1)) ||
        (rc = wr1(d, OP_TUPLE1)) || (rc = memoize(d, NULL)) || (rc = wr1(d, OP_REDUCE)))
        return rc;
    return memoize_after_reduce(d, v);
}

static int save_record_tail(dumper *d, const npe_pv *items, int pairs, const npe_pv *state,
                            int depth)
{
    int rc;
    if (items) {
        if (items->kind != NPE_PV_LIST)
            return dfail(d, NPE_EINVAL, "record items are a %s, expected a list",
                         kind_name(items->kind));
        if ((rc = save_batches(d, items->u.seq.items, NULL, items->u.seq.n, depth + 1, pairs, 0)))
            return rc;
    }
    if (state && ((rc = save(d, state, depth + 1)) || (rc = wr1(d, OP_BUILD))))
        return rc;
    return 0;
}

static int save_args(dumper *d, const npe_pv *args, int depth)
{
    if (!args)
        return wr1(d, OP_EMPTY_TUPLE);
    if (args->kind != NPE_PV_TUPLE)
        return dfail(d, NPE_EINVAL, "arguments of a record are a %s, expected a tuple",
                     kind_name(args->kind));
    return save(d, args, depth + 1);
}

static int save(dumper *d, const npe_pv *v, int depth)
{
    int rc;
    if (!v)
        return dfail(d, NPE_EINVAL, "the tree contains a NULL value");
    if (depth > DUMP_DEPTH_MAX)
        return dfail(d, NPE_ELIMIT,
                     "values nest deeper than %d levels (or a tuple or record argument contains "
                     "itself)", DUMP_DEPTH_MAX);
    hent *e = memo_of(d, v);
    if (e)
        return wr_get(d, e->v);
    switch (v->kind) {
    case NPE_PV_NONE:
        return wr1(d, OP_NONE);
    case NPE_PV_BOOL:
        return wr1(d, v->u.b ? OP_NEWTRUE : OP_NEWFALSE);
    case NPE_PV_INT:
        return save_int(d, v->u.i);
    case NPE_PV_FLOAT: {
        if (d->flags & NPE_PKL_DUMP_NO_FLOAT) {
            char txt[64];
            npe_pv_repr(v, txt, sizeof(txt));
            return dfail(d, NPE_EUNSUPPORTED,
                         "float %s refused: PyTorch 1.13's weights_only loader has no BINFLOAT",
                         txt);
        }
        uint64_t bits;
        memcpy(&bits, &v->u.f, sizeof(bits));
        unsigned char b[9] = {OP_BINFLOAT};
        for (int k = 0; k < 8; k++)
            b[1 + k] = (unsigned char)(bits >> (56 - 8 * k));
        return wr(d, b, 9);
    }
    case NPE_PV_STR:
        if ((rc = save_binunicode(d, v->u.str.s, v->u.str.len)))
            return rc;
        return memoize(d, v);
    case NPE_PV_BYTES:
        return save_bytes(d, v);
    case NPE_PV_TUPLE:
        return save_tuple(d, v, depth);
    case NPE_PV_LIST:
        if ((rc = wr1(d, OP_EMPTY_LIST)) || (rc = memoize(d, v)))
            return rc;
        return save_batches(d, v->u.seq.items, NULL, v->u.seq.n, depth + 1, 0, 1);
    case NPE_PV_SET:
        return save_set(d, v, depth);
    case NPE_PV_DICT:
        if (v->u.dict.cls) {
            /* OrderedDict.__reduce__: cls, (), state, None, items */
            if ((rc = save(d, v->u.dict.cls, depth + 1)) || (rc = wr1(d, OP_EMPTY_TUPLE)) ||
                (rc = wr1(d, OP_REDUCE)) || (rc = memoize_after_reduce(d, v)))
                return rc;
        } else if ((rc = wr1(d, OP_EMPTY_DICT)) || (rc = memoize(d, v))) {
            return rc;
        }
        if ((rc = save_batches(d, v->u.dict.keys, v->u.dict.vals, v->u.dict.n, depth + 1, 0,
                                v->u.dict.cls == NULL)))
            return rc;
        return save_record_tail(d, NULL, 0, v->u.dict.state, depth);
    case NPE_PV_GLOBAL:
        return save_global(d, v->u.global.module, v->u.global.name, v);
    case NPE_PV_CALL:
    case NPE_PV_OBJECT: {
        const npe_pv *kw = v->u.call.kwargs;
        if (kw && (kw->kind != NPE_PV_DICT || kw->u.dict.n))
            return dfail(d, NPE_EUNSUPPORTED,
                         "an object with keyword arguments (NEWOBJ_EX) needs protocol 4");
        if ((rc = save(d, v->u.call.fn, depth + 1)) || (rc = save_args(d, v->u.call.args, depth)) ||
            (rc = wr1(d, v->kind == NPE_PV_CALL ? OP_REDUCE : OP_NEWOBJ)) ||
            (rc = memoize_after_reduce(d, v)))
            return rc;
        return save_record_tail(d, v->u.call.items, v->u.call.items_pairs, v->u.call.state, depth);
    }
    case NPE_PV_PERSID:
        /* like Python, the persistent id itself is not memoized (its pid tuple is) */
        if ((rc = save(d, v->u.pid, depth + 1)))
            return rc;
        return wr1(d, OP_BINPERSID);
    }
    return dfail(d, NPE_EINVAL, "node of unknown kind %d", (int)v->kind);
}

int npe_pkl_dump(const npe_pv *root, unsigned flags, void **out, size_t *size, npe_error *err)
{
    if (out)
        *out = NULL;
    if (size)
        *size = 0;
    if (!root || !out || !size)
        return npe_error_set(err, NPE_EINVAL, "pickling: no value or no output");
    dumper d = {.flags = flags, .err = err, .latin1 = -1};
    d.seed = mix64(hash_ptr(root) ^ (uint64_t)(uintptr_t)&d);
    static const unsigned char head[2] = {OP_PROTO, 2};
    int rc = wr(&d, head, 2);
    if (!rc)
        rc = save(&d, root, 0);
    if (!rc)
        rc = wr1(&d, OP_STOP);
    hfree(&d.memo);
    hfree(&d.gmemo);
    if (rc) {
        free(d.p);
        return rc;
    }
    *out = d.p;
    *size = d.len;
    return 0;
}
