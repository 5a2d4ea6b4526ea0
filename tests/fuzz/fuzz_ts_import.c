/* Fuzz target for the TorchScript importer, shape inference and executor together: the bytes are
 * the code record of a small archive built here (a root module M with a child C holding a 2x1x2x2
 * weight, and one constant), so mutations exercise the inliner rather than the zip and pickle
 * layers. Imports it, infers it for a 1x1x4x4 input and runs it when the activations are small. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "engine/exec.h"
#include "formats/pickle.h"
#include "importers/torchscript.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np)
            abort();
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put16(buf *b, unsigned v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(b, c, 2);
}

static void put32(buf *b, unsigned long v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, c, 4);
}

typedef struct rec {
    const char *name;
    const void *data;
    size_t size;
} rec;

/* A zip of stored records with a plain end record. */
static void make_zip(buf *z, const rec *r, int n)
{
    unsigned long offs[8];
    for (int i = 0; i < n; i++) {
        unsigned long crc = crc32(0, r[i].data, (uInt)r[i].size);
        offs[i] = (unsigned long)z->n;
        put32(z, 0x04034b50);
        put16(z, 20), put16(z, 0), put16(z, 0), put16(z, 0), put16(z, 0x21);
        put32(z, crc), put32(z, (unsigned long)r[i].size), put32(z, (unsigned long)r[i].size);
        put16(z, (unsigned)strlen(r[i].name)), put16(z, 0);
        put(z, r[i].name, strlen(r[i].name));
        put(z, r[i].data, r[i].size);
    }
    unsigned long cd = (unsigned long)z->n;
    for (int i = 0; i < n; i++) {
        unsigned long crc = crc32(0, r[i].data, (uInt)r[i].size);
        put32(z, 0x02014b50);
        put16(z, 20), put16(z, 20), put16(z, 0), put16(z, 0), put16(z, 0), put16(z, 0x21);
        put32(z, crc), put32(z, (unsigned long)r[i].size), put32(z, (unsigned long)r[i].size);
        put16(z, (unsigned)strlen(r[i].name)), put16(z, 0), put16(z, 0), put16(z, 0), put16(z, 0);
        put32(z, 0), put32(z, offs[i]);
        put(z, r[i].name, strlen(r[i].name));
    }
    unsigned long cdsize = (unsigned long)z->n - cd;
    put32(z, 0x06054b50);
    put16(z, 0), put16(z, 0), put16(z, (unsigned)n), put16(z, (unsigned)n);
    put32(z, cdsize), put32(z, cd), put16(z, 0);
}

/* torch._utils._rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, size, stride,
 * False, OrderedDict()) */
static npe_pv *tensor(npe_pkl *d, const char *key, int numel, int ndim, const int *size,
                      const int *stride)
{
    npe_pv *pid = npe_pv_new_seq(d, NPE_PV_TUPLE);
    npe_pv_append(d, pid, npe_pv_new_str(d, "storage"));
    npe_pv_append(d, pid, npe_pv_new_global(d, "torch", "FloatStorage"));
    npe_pv_append(d, pid, npe_pv_new_str(d, key));
    npe_pv_append(d, pid, npe_pv_new_str(d, "cpu"));
    npe_pv_append(d, pid, npe_pv_new_int(d, numel));
    npe_pv *sz = npe_pv_new_seq(d, NPE_PV_TUPLE), *st = npe_pv_new_seq(d, NPE_PV_TUPLE);
    for (int i = 0; i < ndim; i++) {
        npe_pv_append(d, sz, npe_pv_new_int(d, size[i]));
        npe_pv_append(d, st, npe_pv_new_int(d, stride[i]));
    }
    npe_pv *args = npe_pv_new_seq(d, NPE_PV_TUPLE);
    npe_pv_append(d, args, npe_pv_new_persid(d, pid));
    npe_pv_append(d, args, npe_pv_new_int(d, 0));
    npe_pv_append(d, args, sz);
    npe_pv_append(d, args, st);
    npe_pv_append(d, args, npe_pv_new_bool(d, 0));
    npe_pv_append(d, args, npe_pv_new_call(d, npe_pv_new_global(d, "collections", "OrderedDict"),
                                           npe_pv_new_seq(d, NPE_PV_TUPLE)));
    return npe_pv_new_call(d, npe_pv_new_global(d, "torch._utils", "_rebuild_tensor_v2"), args);
}

static npe_pv *module(npe_pkl *d, const char *cls, npe_pv **state)
{
    npe_pv *o = npe_pv_new_object(d, npe_pv_new_global(d, "__torch__", cls),
                                  npe_pv_new_seq(d, NPE_PV_TUPLE));
    *state = npe_pv_new_dict(d, NULL);
    o->u.call.state = *state;
    npe_pv_dict_set(d, *state, npe_pv_new_str(d, "training"), npe_pv_new_bool(d, 0));
    return o;
}

static void *data_pkl, *consts_pkl;
static size_t data_size, consts_size;

static void build_pickles(void)
{
    npe_error err = {0};
    npe_pkl *d = npe_pkl_new();
    npe_pv *ms, *cs;
    npe_pv *m = module(d, "M", &ms);
    npe_pv *c = module(d, "C", &cs);
    npe_pv_dict_set(d, ms, npe_pv_new_str(d, "conv"), c);
    npe_pv_dict_set(d, ms, npe_pv_new_str(d, "k"), npe_pv_new_int(d, 2));
    npe_pv_dict_set(d, cs, npe_pv_new_str(d, "weight"),
                    tensor(d, "0", 8, 4, (int[]){2, 1, 2, 2}, (int[]){4, 4, 2, 1}));
    npe_pv_dict_set(d, cs, npe_pv_new_str(d, "bias"), tensor(d, "1", 2, 1, (int[]){2}, (int[]){1}));
    if (npe_pkl_dump(m, 0, &data_pkl, &data_size, &err))
        abort();
    npe_pkl_free(d);
    d = npe_pkl_new();
    npe_pv *t = npe_pv_new_seq(d, NPE_PV_TUPLE);
    npe_pv_append(d, t, tensor(d, "0", 1, 0, NULL, NULL));
    if (npe_pkl_dump(t, 0, &consts_pkl, &consts_size, &err))
        abort();
    npe_pkl_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!data_pkl)
        build_pickles();
    static const float w[8] = {1, -2, 0.5f, 3, -1, 1, 2, -0.25f}, b[2] = {0.5f, -1}, c0 = 0.5f;
    rec r[] = {
        {"m/data.pkl", data_pkl, data_size},
        {"m/code/__torch__.py", data, size},
        {"m/data/0", w, sizeof w},
        {"m/data/1", b, sizeof b},
        {"m/constants.pkl", consts_pkl, consts_size},
        {"m/constants/0", &c0, sizeof c0},
        {"m/version", "3", 1},
    };
    buf z = {0};
    make_zip(&z, r, (int)(sizeof r / sizeof r[0]));
    npe_graph *g = NULL;
    npe_error err = {0};
    if (npe_ts_import_mem(z.p, z.n, "fuzz.pt", NULL, &g, &err) == 0) {
        npe_tshape s = {4, {1, 1, 4, 4}};
        if (npe_graph_validate(g, &err))
            abort(); /* the importer promises a valid graph */
        if (npe_graph_infer(g, &s, g->n_inputs < 1 ? 0 : 1, &err) == 0 && g->n_inputs == 1) {
            int64_t total = 0;
            for (int v = 0; v < g->n_values; v++)
                if (g->values[v].type == NPE_VT_TENSOR)
                    total += npe_value_numel(&g->values[v]) < 0 ? 1 << 30 : npe_value_numel(&g->values[v]);
            if (total < (1 << 16)) {
                npe_kernels k;
                npe_kernels_init_ref(&k);
                npe_exec *x = NULL;
                npe_array in = {0}, out[4] = {{0}};
                float xin[16];
                for (int i = 0; i < 16; i++)
                    xin[i] = (float)i / 8 - 1;
                in.dtype = NPE_DTYPE_F32;
                in.ndim = 4;
                in.shape[0] = in.shape[1] = 1;
                in.shape[2] = in.shape[3] = 4;
                in.data = xin;
                in.nbytes = sizeof xin;
                int nout = g->n_outputs < 4 ? g->n_outputs : 4;
                if (npe_exec_create(g, &k, 0, &x, &err) == 0 &&
                    npe_exec_run(x, NULL, &in, 1, out, nout, &err) == 0)
                    for (int i = 0; i < nout; i++)
                        npe_array_free(&out[i]);
                npe_exec_destroy(x);
            }
        }
        npe_graph_destroy(g);
    }
    if (getenv("FUZZ_TS_VERBOSE")) /* to check that seeds get past the importer */
        fprintf(stderr, "fuzz_ts_import: %s\n", err.msg[0] ? err.msg : "imported, inferred, ran");
    free(z.p);
    return 0;
}
