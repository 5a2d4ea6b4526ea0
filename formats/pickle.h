/* Restricted pickle codec: an unpickler that builds an inert value tree and executes nothing,
 * and a protocol-2 pickler for the same values. Which globals may appear, and what REDUCE of
 * each means, is decided by a resolver the caller passes (importers/ has PyTorch's). */
#ifndef NPE_FORMATS_PICKLE_H
#define NPE_FORMATS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum npe_pv_kind {
    NPE_PV_NONE = 0,
    NPE_PV_BOOL,
    NPE_PV_INT,    /* fits int64; larger LONG1/LONG4 values are refused (NPE_EUNSUPPORTED) */
    NPE_PV_FLOAT,
    NPE_PV_STR,    /* UTF-8 text (BINUNICODE, SHORT_BINUNICODE, UNICODE, STRING as text) */
    NPE_PV_BYTES,  /* BINBYTES, SHORT_BINBYTES, BYTEARRAY8 */
    NPE_PV_TUPLE,
    NPE_PV_LIST,
    NPE_PV_SET,    /* EMPTY_SET/ADDITEMS/FROZENSET, or REDUCE of a MAKE_SET global */
    NPE_PV_DICT,   /* plain dict, or REDUCE of a MAKE_DICT global (cls remembers which) */
    NPE_PV_GLOBAL, /* reference to module.name that was not called (a class, a dtype) */
    NPE_PV_CALL,   /* REDUCE of an allowed CALLABLE: fn(args), kept as a record, never run */
    NPE_PV_OBJECT, /* NEWOBJ/NEWOBJ_EX of an allowed CLASS: an inert record with its state */
    NPE_PV_PERSID, /* persistent id (BINPERSID/PERSID): pid value, resolved by the caller */
} npe_pv_kind;

typedef struct npe_pv npe_pv;
struct npe_pv {
    npe_pv_kind kind;
    union {
        int b;     /* BOOL */
        int64_t i; /* INT */
        double f;  /* FLOAT */
        struct {
            char *s; /* NUL-terminated copy (may contain NULs for BYTES; use len) */
            size_t len;
        } str;     /* STR, BYTES */
        struct {
            npe_pv **items;
            size_t n, cap;
        } seq;     /* TUPLE, LIST, SET */
        struct {
            npe_pv **keys, **vals;
            size_t n, cap;
            npe_pv *cls;   /* GLOBAL node of the class that built it (OrderedDict) or NULL */
            npe_pv *state; /* BUILD state applied to it (OrderedDict._metadata lives here) */
        } dict;    /* DICT */
        struct {
            char *module, *name;
        } global;  /* GLOBAL */
        struct {
            npe_pv *fn;    /* GLOBAL node (callable for CALL, class for OBJECT) */
            npe_pv *args;  /* TUPLE node */
            npe_pv *kwargs;/* DICT node from NEWOBJ_EX, else NULL */
            npe_pv *state; /* BUILD state or NULL */
            npe_pv *items; /* LIST node of APPEND(S)/SETITEM(S) applied to the record, or NULL */
            int items_pairs; /* 1 if items came from SETITEM(S): each is a (key, value) TUPLE */
        } call;    /* CALL, OBJECT */
        npe_pv *pid;  /* PERSID */
    } u;
};

/* What a global may be used for. The resolver maps each (module, name) to one of these. */
typedef enum npe_pkl_global_kind {
    NPE_PKL_DENY = 0,  /* refused wherever it appears: the error names it */
    NPE_PKL_CALLABLE,  /* REDUCE allowed; result is a CALL record */
    NPE_PKL_MAKE_DICT, /* REDUCE with () builds an (ordered) DICT that SETITEMS/BUILD fill */
    NPE_PKL_MAKE_SET,  /* REDUCE with (iterable,) builds a SET */
    NPE_PKL_CLASS,     /* NEWOBJ allowed (OBJECT record) and usable as a value; REDUCE refused */
    NPE_PKL_VALUE,     /* usable only as a value (torch.float32); calling it is refused */
} npe_pkl_global_kind;

typedef npe_pkl_global_kind (*npe_pkl_resolver)(void *user, const char *module, const char *name);

/* A document: owns every node of a tree (arena), loaded or built. */
typedef struct npe_pkl npe_pkl;

/* Unpickle data[0..size). Stops at STOP; *used (may be NULL) receives the bytes consumed, so
 * several pickles in a row can be read. name is used in messages ("model.pt:archive/data.pkl").
 * Protocols 0-5 opcodes that describe values are understood; anything that would run code
 * (INST, OBJ with a denied class, EXT*, a REDUCE of a non-callable) is refused with the global's
 * name and the byte offset. Sizes are checked against the remaining input before allocation;
 * the memo, stack and node count are bounded. */
int npe_pkl_load(const void *data, size_t size, const char *name, npe_pkl_resolver resolve,
                 void *resolve_user, npe_pkl **out, size_t *used, npe_error *err);
const npe_pv *npe_pkl_root(const npe_pkl *doc);
void npe_pkl_free(npe_pkl *doc);

/* ---- Building trees (for the pickler) ----
 * Nodes belong to doc and are freed with it. Constructors return NULL only when out of memory.
 * Trees may share nodes (written once, then referenced through the memo) and may point at
 * nodes of other documents that are still alive. */
npe_pkl *npe_pkl_new(void);
npe_pv *npe_pv_new_none(npe_pkl *doc);
npe_pv *npe_pv_new_bool(npe_pkl *doc, int b);
npe_pv *npe_pv_new_int(npe_pkl *doc, int64_t i);
npe_pv *npe_pv_new_float(npe_pkl *doc, double f);
npe_pv *npe_pv_new_str(npe_pkl *doc, const char *s); /* NUL-terminated UTF-8 */
npe_pv *npe_pv_new_strn(npe_pkl *doc, const char *s, size_t len);
npe_pv *npe_pv_new_bytes(npe_pkl *doc, const void *p, size_t len);
npe_pv *npe_pv_new_seq(npe_pkl *doc, npe_pv_kind kind); /* TUPLE, LIST or SET, empty */
npe_pv *npe_pv_new_dict(npe_pkl *doc, npe_pv *cls);     /* cls: NULL or a GLOBAL node */
npe_pv *npe_pv_new_global(npe_pkl *doc, const char *module, const char *name);
npe_pv *npe_pv_new_call(npe_pkl *doc, npe_pv *fn, npe_pv *args);   /* CALL */
npe_pv *npe_pv_new_object(npe_pkl *doc, npe_pv *cls, npe_pv *args);/* OBJECT (NEWOBJ) */
npe_pv *npe_pv_new_persid(npe_pkl *doc, npe_pv *pid);
/* Append to a TUPLE, LIST or SET. */
int npe_pv_append(npe_pkl *doc, npe_pv *seq, npe_pv *item);
/* Set key -> val in a DICT (replaces an existing equal STR/INT key, like Python). */
int npe_pv_dict_set(npe_pkl *doc, npe_pv *dict, npe_pv *key, npe_pv *val);

/* ---- Reading trees ---- */
/* Value of the STR key in a DICT, or NULL. */
const npe_pv *npe_pv_dict_get(const npe_pv *dict, const char *key);
/* 1 if v is a GLOBAL node (or CALL/OBJECT whose fn is) naming module.name. */
int npe_pv_is_global(const npe_pv *v, const char *module, const char *name);
/* Render v as Python's repr would ("64", "(3, 3)", "True", "'zeros'", "1e-05", "None"), for
 * plain values and containers of them; records render as "<module.name>". Truncates at cap
 * (always NUL-terminates); returns the length it wanted. Nesting deeper than 64 renders "...".
 * Shared subtrees can make a small tree render huge, so counting stops past max(cap, 1 MiB):
 * a return value >= cap still means "truncated", but may be less than the full length. */
size_t npe_pv_repr(const npe_pv *v, char *buf, size_t cap);

/* ---- Writing ---- */
enum {
    NPE_PKL_DUMP_NO_FLOAT = 1, /* refuse FLOAT values (torch 1.13 weights_only rejects BINFLOAT) */
};
/* Pickle root with protocol 2 into a malloc'd buffer. Shared nodes are written once and
 * referenced with BINGET, so cycles and shared storages survive. Nesting depth is bounded. */
int npe_pkl_dump(const npe_pv *root, unsigned flags, void **out, size_t *size, npe_error *err);

#endif
