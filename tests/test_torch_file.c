/* Unit tests of the PyTorch file importer/exporter, the archive API, the context and the JSON
 * writer, on archives built here with the zip writer and the pickler (or by hand, byte by byte),
 * so each expected name, shape and value is known without PyTorch. */
#define _GNU_SOURCE
#include "../importers/torch_file.h"
#include "../engine/json_writer.h"
#include "testutil.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tpath(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

/* ---- building pickle trees ---- */

static npe_pkl *D;

static npe_pv *S(const char *s) { return npe_pv_new_str(D, s); }
static npe_pv *I(int64_t i) { return npe_pv_new_int(D, i); }
static npe_pv *B(int b) { return npe_pv_new_bool(D, b); }
static npe_pv *NONE(void) { return npe_pv_new_none(D); }
static npe_pv *G(const char *m, const char *n) { return npe_pv_new_global(D, m, n); }

/* Tuple (or list) of the npe_pv * arguments up to a NULL. */
static npe_pv *seqv(npe_pv_kind kind, va_list ap)
{
    npe_pv *t = npe_pv_new_seq(D, kind), *x;
    while ((x = va_arg(ap, npe_pv *)))
        npe_pv_append(D, t, x);
    return t;
}

static npe_pv *T(npe_pv *first, ...)
{
    va_list ap;
    va_start(ap, first);
    npe_pv *t = npe_pv_new_seq(D, NPE_PV_TUPLE);
    if (first) {
        npe_pv_append(D, t, first);
        npe_pv *rest = seqv(NPE_PV_TUPLE, ap);
        for (size_t i = 0; i < rest->u.seq.n; i++)
            npe_pv_append(D, t, rest->u.seq.items[i]);
    }
    va_end(ap);
    return t;
}

static npe_pv *IT1(int64_t a) { return T(I(a), NULL); }
static npe_pv *IT2(int64_t a, int64_t b) { return T(I(a), I(b), NULL); }
static npe_pv *IT4(int64_t a, int64_t b, int64_t c, int64_t d) { return T(I(a), I(b), I(c), I(d), NULL); }

static npe_pv *OD(void) { return npe_pv_new_dict(D, G("collections", "OrderedDict")); }
static npe_pv *DICT(void) { return npe_pv_new_dict(D, NULL); }
static void set(npe_pv *d, const char *k, npe_pv *v) { npe_pv_dict_set(D, d, S(k), v); }

static npe_pv *storage(const char *type, const char *key, int64_t numel)
{
    return npe_pv_new_persid(D, T(S("storage"), G("torch", type), S(key), S("cpu"), I(numel), NULL));
}

static npe_pv *tensor(npe_pv *st, int64_t off, npe_pv *size, npe_pv *stride)
{
    return npe_pv_new_call(D, G("torch._utils", "_rebuild_tensor_v2"),
                           T(st, I(off), size, stride, B(0), OD(), NULL));
}

static npe_pv *param(npe_pv *t)
{
    return npe_pv_new_call(D, G("torch._utils", "_rebuild_parameter"), T(t, B(1), OD(), NULL));
}

static npe_pv *object(const char *m, const char *n, npe_pv *state)
{
    npe_pv *o = npe_pv_new_object(D, G(m, n), T(NULL));
    o->u.call.state = state;
    return o;
}

/* nn.Module state as torch.save(model) pickles it */
static npe_pv *module_state(npe_pv *params, npe_pv *buffers, npe_pv *modules)
{
    npe_pv *st = DICT();
    set(st, "training", B(0));
    set(st, "_parameters", params ? params : OD());
    set(st, "_buffers", buffers ? buffers : OD());
    set(st, "_modules", modules ? modules : OD());
    return st;
}

/* ---- writing archives ---- */

typedef struct rec {
    const char *name; /* relative to the top folder; a leading '!' means as written */
    const void *data;
    size_t size;
    int deflate;
} rec;

static int write_zip(const char *path, const char *prefix, const void *pkl, size_t pkl_size,
                     const rec *r, size_t n, int with_version)
{
    npe_error err = {0};
    npe_zip_writer *w;
    char name[512];
    int rc = npe_zip_writer_open(path, 0, &w, &err);
    if (rc)
        return rc;
    if (pkl) {
        snprintf(name, sizeof(name), "%sdata.pkl", prefix);
        rc = npe_zip_writer_add(w, name, pkl, pkl_size, 0, &err);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (r[i].name[0] == '!')
            snprintf(name, sizeof(name), "%s", r[i].name + 1);
        else
            snprintf(name, sizeof(name), "%s%s", prefix, r[i].name);
        rc = npe_zip_writer_add(w, name, r[i].data, r[i].size, r[i].deflate, &err);
    }
    if (!rc && with_version) {
        snprintf(name, sizeof(name), "%sversion", prefix);
        rc = npe_zip_writer_add(w, name, "3\n", 2, 0, &err);
    }
    if (rc) {
        fprintf(stderr, "write_zip: %s\n", err.msg);
        npe_zip_writer_abort(w);
        return rc;
    }
    rc = npe_zip_writer_finish(w, &err);
    if (rc)
        fprintf(stderr, "write_zip: %s\n", err.msg);
    return rc;
}

/* Pickle root (of D) into path as data.pkl under "m/" with the given extra records. */
static int write_tree(const char *path, npe_pv *root, const rec *r, size_t n)
{
    npe_error err = {0};
    void *pkl;
    size_t size;
    int rc = npe_pkl_dump(root, 0, &pkl, &size, &err);
    if (rc) {
        fprintf(stderr, "dump: %s\n", err.msg);
        return rc;
    }
    rc = write_zip(path, "m/", pkl, size, r, n, 1);
    free(pkl);
    return rc;
}

static int open_path(const char *path, npe_torch_file **f, npe_error *err)
{
    npe_error_clear(err);
    *f = NULL;
    return npe_torch_open(path, f, err);
}

/* Open and close: the result code (expected failures must not leak on success). */
static int open_code(const char *path, npe_error *err)
{
    npe_torch_file *f;
    int rc = open_path(path, &f, err);
    npe_torch_close(f);
    return rc;
}

static const npe_ttensor *find(const npe_torch_file *f, const char *name)
{
    for (size_t i = 0; f && i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static size_t tindex(const npe_torch_file *f, const npe_ttensor *t)
{
    return (size_t)(t - f->tensors);
}

static float F12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static int64_t L3[3] = {7, -8, 9};

/* ---- state dict with shared storage views ---- */

static void test_state_dict(void)
{
    D = npe_pkl_new();
    npe_pv *s0 = storage("FloatStorage", "0", 12);
    npe_pv *root = OD();
    set(root, "a", tensor(s0, 0, IT2(3, 4), IT2(4, 1)));
    set(root, "at", tensor(s0, 0, IT2(4, 3), IT2(1, 4)));
    set(root, "row", tensor(s0, 4, IT1(4), IT1(1)));
    set(root, "col", tensor(s0, 2, IT1(3), IT1(4)));
    npe_pv *sub = OD();
    set(sub, "i", tensor(storage("LongStorage", "1", 3), 0, IT1(3), IT1(1)));
    set(sub, "running_mean", tensor(storage("FloatStorage", "0", 12), 11, T(NULL), T(NULL)));
    set(root, "sub", sub);
    rec r[] = {{"data/0", F12, sizeof(F12), 0}, {"data/1", L3, sizeof(L3), 0}};
    const char *path = tpath("sd.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 2), 0);
    npe_pkl_free(D);

    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(f->kind, NPE_ARCHIVE_STATE_DICT);
    CHECK_EQ_INT(f->layout, NPE_LAYOUT_ZIP);
    CHECK_STR(f->prefix, "m/");
    CHECK_EQ_INT(f->version, 3);
    CHECK_EQ_INT(f->n_tensors, 6);
    CHECK_EQ_INT(f->n_storages, 2);
    CHECK_EQ_INT(f->n_modules, 0);
    static const char *names[] = {"a", "at", "row", "col", "sub.i", "sub.running_mean"};
    for (size_t i = 0; i < 6 && i < f->n_tensors; i++)
        CHECK_STR(f->tensors[i].name, names[i]);
    const npe_ttensor *at = find(f, "at"), *row = find(f, "row"), *col = find(f, "col");
    const npe_ttensor *li = find(f, "sub.i"), *sc = find(f, "sub.running_mean"), *a = find(f, "a");
    CHECK(at && row && col && li && sc && a);
    if (!(at && row && col && li && sc && a))
        goto out;
    CHECK_EQ_INT(at->ndim, 2);
    CHECK_EQ_INT(at->shape[0], 4);
    CHECK_EQ_INT(at->stride[0], 1);
    CHECK_EQ_INT(at->stride[1], 4);
    CHECK_EQ_INT(row->offset, 4);
    CHECK_EQ_INT(a->storage, at->storage);
    CHECK_EQ_INT(a->storage, sc->storage);
    CHECK(li->storage != a->storage);
    CHECK_EQ_INT(li->dtype, NPE_DTYPE_I64);
    CHECK_EQ_INT(sc->ndim, 0);
    CHECK_EQ_INT(npe_torch_tensor_numel(sc), 1);
    CHECK_STR(f->storages[a->storage].location, "cpu");
    CHECK_EQ_INT(f->storages[a->storage].numel, 12);

    /* values: at[i][j] = a[j][i] = 4j + i; row = 4..7; col = 2, 6, 10 */
    float buf[12];
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, at), buf, sizeof(buf), &err), 0);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            ok &= buf[i * 3 + j] == (float)(4 * j + i);
    CHECK(ok);
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, row), buf, 16, &err), 0);
    CHECK(buf[0] == 4 && buf[3] == 7);
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, col), buf, 12, &err), 0);
    CHECK(buf[0] == 2 && buf[1] == 6 && buf[2] == 10);
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, sc), buf, 4, &err), 0);
    CHECK(buf[0] == 11);
    int64_t lb[3];
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, li), lb, sizeof(lb), &err), 0);
    CHECK(lb[0] == 7 && lb[1] == -8 && lb[2] == 9);
    /* a buffer one element short is refused */
    CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, li), lb, sizeof(lb) - 1, &err), NPE_EINVAL);
    CHECK_EQ_INT(npe_torch_tensor_copy(f, 99, lb, sizeof(lb), &err), NPE_EINVAL);
out:
    npe_torch_close(f);
}

/* ---- save -> open round trip ---- */

static void test_round_trip(void)
{
    /* a 2x3 float matrix, its transpose (same storage), a half tensor, an empty tensor, a
     * bool scalar; metadata as nn.Module.state_dict() produces it */
    static const float m[6] = {1.5f, -2, 3, 4, 5.25f, 6};
    static const uint16_t h[2] = {0x3c00, 0xc000};
    static const unsigned char bl[1] = {1};
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, st32[2] = {1, 3}, s0[1] = {0};
    npe_tw_tensor tw[] = {
        {"layer.weight", NPE_DTYPE_F32, 2, s23, NULL, 0, m, 6, 0},
        {"layer.weight_t", NPE_DTYPE_F32, 2, s32, st32, 0, m, 6, 0},
        {"half", NPE_DTYPE_F16, 1, s23, NULL, 0, h, 2, 0},
        {"empty", NPE_DTYPE_F32, 1, s0, NULL, 0, NULL, 0, 0},
        {"flag", NPE_DTYPE_BOOL, 0, NULL, NULL, 0, bl, 1, 1},
    };
    int64_t s2[1] = {2};
    tw[2].shape = s2;
    D = npe_pkl_new();
    npe_pv *meta = OD();
    npe_pv *v = DICT();
    set(v, "version", I(1));
    set(meta, "", v);
    set(meta, "layer", v);
    npe_error err = {0};
    const char *path = tpath("saved.pt");
    int rc = npe_torch_save_state_dict(path, tw, 5, meta, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    npe_pkl_free(D);

    npe_torch_file *f;
    rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(f->kind, NPE_ARCHIVE_STATE_DICT);
    CHECK_STR(f->prefix, "archive/");
    CHECK_EQ_INT(f->n_tensors, 5);
    CHECK_EQ_INT(f->n_storages, 4);
    /* PyTorch's record order, stored, data 64-byte aligned */
    static const char *recs[] = {"archive/data.pkl", "archive/data/0", "archive/data/1",
                                 "archive/data/2", "archive/data/3", "archive/version",
                                 "archive/byteorder"};
    CHECK_EQ_INT(npe_zip_count(f->zip), 7);
    for (size_t i = 0; i < 7 && i < npe_zip_count(f->zip); i++) {
        const npe_zip_entry *e = npe_zip_entry_at(f->zip, i);
        CHECK_STR(e->name, recs[i]);
        CHECK_EQ_INT(e->method, 0);
        CHECK_EQ_INT(e->data_offset % 64, 0);
    }
    const npe_zip_entry *ver = npe_zip_find(f->zip, "archive/version");
    CHECK(ver && ver->size == 2 && memcmp(npe_zip_base(f->zip) + ver->data_offset, "3\n", 2) == 0);
    for (size_t i = 0; i < 5 && i < f->n_tensors; i++) {
        const npe_ttensor *t = &f->tensors[i];
        CHECK_STR(t->name, tw[i].name);
        CHECK_EQ_INT(t->dtype, tw[i].dtype);
        CHECK_EQ_INT(t->ndim, tw[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            CHECK_EQ_INT(t->shape[d], tw[i].shape[d]);
        CHECK_EQ_INT(t->requires_grad, tw[i].requires_grad);
    }
    CHECK_EQ_INT(f->tensors[0].storage, f->tensors[1].storage);
    CHECK_EQ_INT(f->tensors[1].stride[0], 1);
    CHECK_EQ_INT(f->tensors[1].stride[1], 3);
    CHECK_EQ_INT(f->tensors[0].stride[0], 3);
    /* storage bytes identical to the source */
    const npe_tstorage *s = &f->storages[f->tensors[0].storage];
    CHECK(s->numel == 6 && memcmp(s->data, m, sizeof(m)) == 0);
    CHECK(memcmp(f->storages[f->tensors[2].storage].data, h, sizeof(h)) == 0);
    float tr[6];
    CHECK_EQ_INT(npe_torch_tensor_copy(f, 1, tr, sizeof(tr), &err), 0);
    CHECK(tr[0] == 1.5f && tr[1] == 4 && tr[2] == -2 && tr[3] == 5.25f && tr[4] == 3 && tr[5] == 6);
    /* metadata survives as the OrderedDict's BUILD state */
    const npe_pv *st = f->root->u.dict.state;
    const npe_pv *md = st ? npe_pv_dict_get(st, "_metadata") : NULL;
    CHECK(md && md->kind == NPE_PV_DICT && md->u.dict.n == 2);
    const npe_pv *lv = md ? npe_pv_dict_get(md, "layer") : NULL;
    const npe_pv *vv = lv ? npe_pv_dict_get(lv, "version") : NULL;
    CHECK(vv && vv->kind == NPE_PV_INT && vv->u.i == 1);
    CHECK(f->root->u.dict.cls && npe_pv_is_global(f->root->u.dict.cls, "collections", "OrderedDict"));
    npe_torch_close(f);

    /* writer refusals */
    npe_tw_tensor bad = {"x", NPE_DTYPE_F32, 1, s23, NULL, 5, m, 6, 0}; /* 5 + 2 > 6 */
    CHECK_EQ_INT(npe_torch_save_state_dict(tpath("bad.pt"), &bad, 1, NULL, &err), NPE_EINVAL);
    CHECK(strstr(err.msg, "claims 7 elements") != NULL);
    npe_tw_tensor dup[2] = {tw[0], tw[0]};
    CHECK_EQ_INT(npe_torch_save_state_dict(tpath("bad.pt"), dup, 2, NULL, &err), NPE_EINVAL);
    npe_tw_tensor mix[2] = {tw[0], tw[2]};
    mix[1].storage_data = m;
    CHECK_EQ_INT(npe_torch_save_state_dict(tpath("bad.pt"), mix, 2, NULL, &err), NPE_EINVAL);
    npe_tw_tensor q = {"q", NPE_DTYPE_QINT8, 1, s2, NULL, 0, bl, 2, 0};
    CHECK_EQ_INT(npe_torch_save_state_dict(tpath("bad.pt"), &q, 1, NULL, &err), NPE_EUNSUPPORTED);
    CHECK(access(tpath("bad.pt"), F_OK) != 0);
}

/* ---- full model: module tree, parameters vs buffers, a tied parameter ---- */

static void test_full_model(void)
{
    D = npe_pkl_new();
    npe_pv *w = param(tensor(storage("FloatStorage", "0", 12), 0, IT4(3, 1, 2, 2), IT4(4, 4, 2, 1)));
    npe_pv *cp = OD();
    set(cp, "weight", w);
    set(cp, "bias", NONE());
    npe_pv *cst = module_state(cp, NULL, NULL);
    set(cst, "in_channels", I(1));
    set(cst, "out_channels", I(3));
    set(cst, "kernel_size", IT2(2, 2));
    set(cst, "padding_mode", S("zeros"));
    set(cst, "_reversed_padding_repeated_twice", T(I(0), I(0), NULL));
    npe_pv *conv = object("torch.nn.modules.conv", "Conv2d", cst);

    npe_pv *bp = OD(), *bb = OD();
    set(bp, "weight", param(tensor(storage("FloatStorage", "1", 3), 0, IT1(3), IT1(1))));
    set(bb, "running_mean", tensor(storage("FloatStorage", "2", 3), 0, IT1(3), IT1(1)));
    set(bb, "num_batches_tracked", tensor(storage("LongStorage", "3", 1), 0, T(NULL), T(NULL)));
    npe_pv *bst = module_state(bp, bb, NULL);
    set(bst, "num_features", I(3));
    set(bst, "eps", npe_pv_new_float(D, 1e-5));
    npe_pv *bn = object("torch.nn.modules.batchnorm", "BatchNorm2d", bst);

    npe_pv *tp = OD(); /* a head sharing conv's weight object (tied) */
    set(tp, "weight", w);
    npe_pv *head = object("mylib.heads", "Tied", module_state(tp, NULL, NULL));

    npe_pv *mods = OD();
    set(mods, "conv", conv);
    set(mods, "bn", bn);
    set(mods, "head", head);
    npe_pv *rst = module_state(NULL, NULL, mods);
    set(rst, "width", I(8));
    npe_pv *root = object("__main__", "TinyNet", rst);

    static float bw[3] = {1, 2, 3}, rm[3] = {0}; static int64_t nb = 5;
    rec r[] = {{"data/0", F12, 48, 0}, {"data/1", bw, 12, 0}, {"data/2", rm, 12, 0},
               {"data/3", &nb, 8, 0}};
    const char *path = tpath("full.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 4), 0);
    npe_pkl_free(D);

    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(f->kind, NPE_ARCHIVE_FULL_MODEL);
    CHECK_EQ_INT(f->n_modules, 4);
    static const char *paths[] = {"", "conv", "bn", "head"};
    static const char *classes[] = {"__main__.TinyNet", "torch.nn.modules.conv.Conv2d",
                                    "torch.nn.modules.batchnorm.BatchNorm2d", "mylib.heads.Tied"};
    for (size_t i = 0; i < 4 && i < f->n_modules; i++) {
        CHECK_STR(f->modules[i].path, paths[i]);
        CHECK_STR(f->modules[i].class_path, classes[i]);
    }
    if (f->n_modules >= 3) {
        const npe_tmodule *c = &f->modules[1];
        CHECK_EQ_INT(c->n_attrs, 4); /* not training, not _reversed_padding_repeated_twice */
        if (c->n_attrs == 4) {
            CHECK_STR(c->attr_names[0], "in_channels");
            CHECK_STR(c->attr_values[0], "1");
            CHECK_STR(c->attr_names[2], "kernel_size");
            CHECK_STR(c->attr_values[2], "(2, 2)");
            CHECK_STR(c->attr_values[3], "'zeros'");
        }
        CHECK_EQ_INT(f->modules[0].n_attrs, 1);
        CHECK_EQ_INT(f->modules[2].n_attrs, 2);
    }
    static const char *names[] = {"conv.weight", "bn.weight", "bn.running_mean",
                                  "bn.num_batches_tracked", "head.weight"};
    static const int is_param[] = {1, 1, 0, 0, 1};
    CHECK_EQ_INT(f->n_tensors, 5);
    for (size_t i = 0; i < 5 && i < f->n_tensors; i++) {
        CHECK_STR(f->tensors[i].name, names[i]);
        CHECK_EQ_INT(f->tensors[i].is_parameter, is_param[i]);
    }
    if (f->n_tensors == 5) {
        CHECK(f->tensors[0].node == f->tensors[4].node);
        CHECK_EQ_INT(f->tensors[0].requires_grad, 1);
        CHECK_EQ_INT(f->tensors[0].ndim, 4);
        CHECK_EQ_INT(f->tensors[0].stride[0], 4);
    }
    npe_torch_close(f);
}

/* ---- TorchScript-style data.pkl (objects with attribute dicts) ---- */

static void test_torchscript(void)
{
    D = npe_pkl_new();
    npe_pv *cst = DICT();
    set(cst, "training", B(0));
    set(cst, "weight", tensor(storage("FloatStorage", "0", 12), 0, IT2(3, 4), IT2(4, 1)));
    set(cst, "stride", npe_pv_new_call(D, G("torch.jit._pickle", "build_intlist"),
                                       T(npe_pv_new_seq(D, NPE_PV_LIST), NULL)));
    npe_pv *conv = object("__torch__.torch.nn.modules.conv.___torch_mangle_0", "Conv2d", cst);
    npe_pv *rst = DICT();
    set(rst, "training", B(0));
    set(rst, "features", conv);
    npe_pv *root = object("__torch__", "Net", rst);
    static const char code[] = "class Net(Module):\n  pass\n";
    rec r[] = {{"data/0", F12, 48, 0}, {"code/__torch__.py", code, sizeof(code) - 1, 1},
               {"constants.pkl", "\x80\x02).", 4, 0}};
    const char *path = tpath("ts.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 3), 0);
    npe_pkl_free(D);
    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(f->kind, NPE_ARCHIVE_TORCHSCRIPT);
    CHECK_EQ_INT(f->n_tensors, 1);
    if (f->n_tensors)
        CHECK_STR(f->tensors[0].name, "features.weight");
    CHECK_EQ_INT(f->n_modules, 2);
    if (f->n_modules == 2) {
        CHECK_STR(f->modules[1].path, "features");
        CHECK_STR(f->modules[1].class_path, "__torch__.torch.nn.modules.conv.___torch_mangle_0.Conv2d");
        CHECK_EQ_INT(f->modules[1].n_attrs, 1);
        if (f->modules[1].n_attrs)
            CHECK_STR(f->modules[1].attr_values[0], "[]");
    }
    npe_torch_close(f);
}

/* ---- checkpoint object, cycles ---- */

static void test_object(void)
{
    D = npe_pkl_new();
    npe_pv *sd = OD();
    set(sd, "w", tensor(storage("FloatStorage", "0", 12), 0, IT1(12), IT1(1)));
    npe_pv *root = DICT();
    set(root, "model", sd);
    set(root, "epoch", I(3));
    npe_pv *lst = npe_pv_new_seq(D, NPE_PV_LIST); /* a list holding itself and a tensor */
    npe_pv_append(D, lst, lst);
    npe_pv_append(D, lst, tensor(storage("FloatStorage", "0", 12), 2, IT1(2), IT1(1)));
    set(root, "hist", lst);
    rec r[] = {{"data/0", F12, 48, 0}};
    const char *path = tpath("ckpt.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 1), 0);
    npe_pkl_free(D);
    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(f->kind, NPE_ARCHIVE_OBJECT);
    CHECK_EQ_INT(f->n_tensors, 2);
    CHECK_EQ_INT(f->n_storages, 1);
    if (f->n_tensors == 2) {
        CHECK_STR(f->tensors[0].name, "model.w");
        CHECK_STR(f->tensors[1].name, "hist.1");
        CHECK_EQ_INT(f->tensors[1].offset, 2);
    }
    npe_torch_close(f);
}

/* ---- 2.x forms: untyped storage with _rebuild_tensor_v3, tensor subclasses, Parameter ---- */

static void test_v2_forms(void)
{
    D = npe_pkl_new();
    npe_pv *us = npe_pv_new_persid(D, T(S("storage"), G("torch.storage", "UntypedStorage"), S("0"),
                                        S("cpu"), I(48), NULL));
    npe_pv *root = DICT();
    set(root, "v3", npe_pv_new_call(D, G("torch._utils", "_rebuild_tensor_v3"),
                                    T(us, I(1), IT1(3), IT1(2), B(0), OD(), G("torch", "float32"), NULL)));
    npe_pv *inner = T(storage("FloatStorage", "1", 12), I(0), IT2(2, 6), IT2(6, 1), B(0), OD(), NULL);
    set(root, "sub", npe_pv_new_call(D, G("torch._tensor", "_rebuild_from_type_v2"),
                                     T(G("torch._utils", "_rebuild_tensor_v2"), G("mylib", "MyTensor"),
                                       inner, DICT(), NULL)));
    set(root, "p", npe_pv_new_call(D, G("torch.nn.parameter", "Parameter"),
                                   T(tensor(storage("FloatStorage", "1", 12), 0, IT1(12), IT1(1)),
                                     B(0), NULL)));
    set(root, "bare", storage("FloatStorage", "1", 12)); /* a storage saved on its own */
    rec r[] = {{"data/0", F12, 48, 0}, {"data/1", F12, 48, 0}};
    const char *path = tpath("v2.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 2), 0);
    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(f->kind, NPE_ARCHIVE_OBJECT); /* 'bare' is not a tensor */
        CHECK_EQ_INT(f->n_tensors, 3);
        CHECK_EQ_INT(f->n_storages, 2);
        const npe_ttensor *v3 = find(f, "v3"), *sub = find(f, "sub"), *p = find(f, "p");
        CHECK(v3 && sub && p);
        if (v3 && sub && p) {
            CHECK_EQ_INT(v3->dtype, NPE_DTYPE_F32);
            CHECK_EQ_INT(f->storages[v3->storage].dtype, NPE_DTYPE_U8);
            CHECK_EQ_INT(f->storages[v3->storage].numel, 48);
            float b[3];
            CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, v3), b, sizeof(b), &err), 0);
            CHECK(b[0] == 1 && b[1] == 3 && b[2] == 5);
            CHECK_EQ_INT(sub->ndim, 2);
            CHECK_EQ_INT(sub->is_parameter, 0);
            CHECK_EQ_INT(p->is_parameter, 1);
            CHECK_EQ_INT(p->requires_grad, 0);
        }
        npe_torch_close(f);
    }
    /* an untyped storage one byte short of the last element */
    set(root, "v3", npe_pv_new_call(D, G("torch._utils", "_rebuild_tensor_v3"),
                                    T(us, I(10), IT1(3), IT1(1), B(0), OD(), G("torch", "float32"), NULL)));
    CHECK_EQ_INT(write_tree(path, root, r, 2), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_MSG(strstr(err.msg, "tensor 'v3' claims 13 elements but storage '0' holds 12"), "%s", err.msg);
    /* a dtype we do not hold */
    set(root, "v3", npe_pv_new_call(D, G("torch._utils", "_rebuild_tensor_v3"),
                                    T(us, I(0), IT1(3), IT1(1), B(0), OD(), G("torch", "uint16"), NULL)));
    CHECK_EQ_INT(write_tree(path, root, r, 2), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EUNSUPPORTED);
    CHECK(strstr(err.msg, "torch.uint16") != NULL);
    /* a bare storage whose record is missing is an error too */
    set(root, "v3", NONE());
    CHECK_EQ_INT(write_tree(path, root, r, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_MSG(strstr(err.msg, "storage '1' has no record 'm/data/1'"), "%s", err.msg);
    npe_pkl_free(D);
    unlink(path);
}

/* ---- legacy (< 1.6) layout, built byte by byte ---- */

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_pickle(bytes *b, npe_pv *root)
{
    void *pk;
    size_t n;
    npe_error err;
    if (npe_pkl_dump(root, 0, &pk, &n, &err) == 0) {
        put(b, pk, n);
        free(pk);
    } else {
        fprintf(stderr, "dump: %s\n", err.msg);
    }
}

static void put_u64(bytes *b, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    put(b, le, 8);
}

/* numel_fix: element count written before storage "5" (normally 3); trunc: bytes cut off */
static bytes legacy_blob(uint64_t numel_fix, size_t trunc)
{
    bytes b = {0};
    static const unsigned char magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                          0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    put(&b, magic, sizeof(magic));
    D = npe_pkl_new();
    put_pickle(&b, I(1001));
    npe_pv *si = DICT();
    set(si, "protocol_version", I(1001));
    set(si, "little_endian", B(1));
    put_pickle(&b, si);
    npe_pv *root = DICT();
    npe_pv *pidf = npe_pv_new_persid(D, T(S("storage"), G("torch", "FloatStorage"), S("140"),
                                          S("cuda:0"), I(12), NONE(), NULL));
    npe_pv *pidl = npe_pv_new_persid(D, T(S("storage"), G("torch", "LongStorage"), S("5"),
                                          S("cpu"), I(3), NONE(), NULL));
    /* a pre-0.4 storage view: elements 6..9 of storage 140 */
    npe_pv *pidv = npe_pv_new_persid(D, T(S("storage"), G("torch", "FloatStorage"), S("140"),
                                          S("cuda:0"), I(12), T(S("141"), I(6), I(4), NULL), NULL));
    set(root, "w", tensor(pidf, 1, IT2(2, 2), IT2(1, 2)));
    set(root, "n", tensor(pidl, 0, IT1(3), IT1(1)));
    set(root, "v", npe_pv_new_call(D, G("torch._utils", "_rebuild_tensor"),
                                   T(pidv, I(1), IT1(3), IT1(1), NULL)));
    put_pickle(&b, root);
    npe_pv *keys = npe_pv_new_seq(D, NPE_PV_LIST);
    npe_pv_append(D, keys, S("140"));
    npe_pv_append(D, keys, S("5"));
    put_pickle(&b, keys);
    npe_pkl_free(D);
    put_u64(&b, 12);
    put(&b, F12, sizeof(F12));
    put_u64(&b, numel_fix);
    put(&b, L3, sizeof(L3));
    b.n -= trunc;
    return b;
}

static void test_legacy(void)
{
    bytes b = legacy_blob(3, 0);
    npe_torch_file *f = NULL;
    npe_error err = {0};
    int rc = npe_torch_open_mem(b.p, b.n, "legacy.pth", &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK_EQ_INT(f->layout, NPE_LAYOUT_LEGACY);
        CHECK_EQ_INT(f->kind, NPE_ARCHIVE_STATE_DICT);
        CHECK_EQ_INT(f->n_tensors, 3);
        CHECK_EQ_INT(f->n_storages, 2);
        const npe_ttensor *w = find(f, "w"), *n = find(f, "n"), *v = find(f, "v");
        CHECK(w && n && v);
        if (w && n && v) {
            float fb[4];
            CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, w), fb, sizeof(fb), &err), 0);
            CHECK(fb[0] == 1 && fb[1] == 3 && fb[2] == 2 && fb[3] == 4); /* offset 1, transposed */
            int64_t lb[3];
            CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, n), lb, sizeof(lb), &err), 0);
            CHECK(lb[0] == 7 && lb[1] == -8 && lb[2] == 9);
            CHECK_EQ_INT(v->offset, 7); /* view base 6 + offset 1 */
            CHECK_EQ_INT(npe_torch_tensor_copy(f, tindex(f, v), fb, 12, &err), 0);
            CHECK(fb[0] == 7 && fb[2] == 9);
            CHECK_STR(f->storages[w->storage].location, "cuda:0");
        }
        npe_torch_close(f);
    }

    /* the same file through the public API: no records, tensors as above */
    FILE *o = fopen(tpath("legacy.pth"), "wb");
    fwrite(b.p, 1, b.n, o);
    fclose(o);
    free(b.p);
    npe_archive *a = NULL;
    rc = npe_archive_open(NULL, tpath("legacy.pth"), &a);
    CHECK_EQ_INT(rc, 0);
    if (!rc) {
        CHECK_EQ_INT(npe_archive_get_layout(a), NPE_LAYOUT_LEGACY);
        CHECK_EQ_INT(npe_archive_record_count(a), 0);
        char *text = NULL;
        CHECK_EQ_INT(npe_archive_describe(a, NPE_DESCRIBE_JSON, &text), 0);
        CHECK(text && strstr(text, "\"layout\": \"legacy\"") && strstr(text, "\"records\": []"));
        npe_free(text);
        CHECK_EQ_INT(npe_archive_save_state_dict(a, tpath("legacy-resaved.pt")), 0);
        npe_archive_destroy(a);
        npe_torch_file *g = NULL;
        rc = open_path(tpath("legacy-resaved.pt"), &g, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (!rc) {
            const npe_ttensor *v = find(g, "v");
            CHECK(v && v->offset == 7 && g->n_storages == 2);
            float fb[3];
            CHECK(v && npe_torch_tensor_copy(g, tindex(g, v), fb, sizeof(fb), &err) == 0 &&
                  fb[0] == 7 && fb[1] == 8 && fb[2] == 9);
            npe_torch_close(g);
        }
    }
    unlink(tpath("legacy.pth"));
    unlink(tpath("legacy-resaved.pt"));

    b = legacy_blob(4, 0); /* element count disagrees with the pickle */
    CHECK_EQ_INT(npe_torch_open_mem(b.p, b.n, "legacy.pth", &f, &err), NPE_EFORMAT);
    CHECK(strstr(err.msg, "'5'") != NULL);
    free(b.p);
    b = legacy_blob(3, 1); /* last byte missing */
    CHECK_EQ_INT(npe_torch_open_mem(b.p, b.n, "legacy.pth", &f, &err), NPE_EFORMAT);
    CHECK(strstr(err.msg, "truncated") != NULL);
    CHECK(f == NULL);
    free(b.p);
}

/* ---- malicious and malformed inputs ---- */

static int open_raw_pickle(const char *pk, size_t n, npe_error *err)
{
    const char *path = tpath("evil.pt");
    rec r[] = {{"data/0", F12, 48, 0}};
    if (write_zip(path, "m/", pk, n, r, 1, 1))
        return 1;
    npe_torch_file *f;
    int rc = open_path(path, &f, err);
    npe_torch_close(f);
    return rc;
}

#define RAW(s) s, sizeof(s) - 1

static void test_malicious(void)
{
    npe_error err;
    /* os.system('ls') */
    CHECK_EQ_INT(open_raw_pickle(RAW("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R."), &err),
                 NPE_EUNSAFE);
    CHECK_MSG(strstr(err.msg, "os.system") != NULL, "%s", err.msg);
    CHECK_EQ_INT(open_raw_pickle(RAW("\x80\x02" "cbuiltins\neval\nX\x01\x00\x00\x001\x85R."), &err),
                 NPE_EUNSAFE);
    CHECK_MSG(strstr(err.msg, "builtins.eval") != NULL, "%s", err.msg);
    CHECK_EQ_INT(open_raw_pickle(RAW("\x80\x02" "csubprocess\nPopen\nX\x02\x00\x00\x00ls\x85R."), &err),
                 NPE_EUNSAFE);
    CHECK_MSG(strstr(err.msg, "subprocess.Popen") != NULL, "%s", err.msg);
    CHECK_EQ_INT(open_raw_pickle(RAW("\x80\x02" "ctorch\nload\nX\x01\x00\x00\x00x\x85R."), &err),
                 NPE_EUNSAFE);
    /* a user class may be instantiated (inert) but not called */
    CHECK_EQ_INT(open_raw_pickle(RAW("\x80\x02" "c__main__\nNet\n)R."), &err), NPE_EUNSAFE);

    /* the resolver itself */
    static const struct {
        const char *m, *n;
        npe_pkl_global_kind k;
    } g[] = {
        {"torch._utils", "_rebuild_tensor_v2", NPE_PKL_CALLABLE},
        {"torch._utils", "_rebuild_parameter", NPE_PKL_CALLABLE},
        {"torch", "FloatStorage", NPE_PKL_CLASS},
        {"torch.storage", "UntypedStorage", NPE_PKL_CLASS},
        {"torch", "float32", NPE_PKL_VALUE},
        {"torch", "bfloat16", NPE_PKL_VALUE},
        {"collections", "OrderedDict", NPE_PKL_MAKE_DICT},
        {"__builtin__", "set", NPE_PKL_MAKE_SET},
        {"builtins", "frozenset", NPE_PKL_MAKE_SET},
        {"torch.nn.modules.conv", "Conv2d", NPE_PKL_CLASS},
        {"__main__", "Net", NPE_PKL_CLASS},
        {"__torch__.torch.nn.modules.conv.___torch_mangle_3", "Conv2d", NPE_PKL_CLASS},
        {"torchvision.models.resnet", "ResNet", NPE_PKL_CLASS},
        {"torch.jit._pickle", "build_intlist", NPE_PKL_CALLABLE},
        {"os", "system", NPE_PKL_DENY},
        {"posix", "system", NPE_PKL_DENY},
        {"builtins", "eval", NPE_PKL_DENY},
        {"__builtin__", "getattr", NPE_PKL_DENY},
        {"subprocess", "Popen", NPE_PKL_DENY},
        {"numpy.core.multiarray", "_reconstruct", NPE_PKL_DENY},
        {"collections", "defaultdict", NPE_PKL_DENY},
        {"torch", "load", NPE_PKL_DENY},
        {"torch.hub", "load", NPE_PKL_DENY},
        {"torch._utils", "_rebuild_qtensor", NPE_PKL_DENY},
        {"torch.serialization", "load", NPE_PKL_DENY},
        {"my module", "X", NPE_PKL_DENY},
        {"mylib", "X\nY", NPE_PKL_DENY},
        {"", "X", NPE_PKL_DENY},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        CHECK_MSG(npe_torch_resolve_global(NULL, g[i].m, g[i].n) == g[i].k, "%s.%s", g[i].m, g[i].n);

    npe_torch_file *f;
    const char *path = tpath("bad.pt");
    /* a tensor larger than its storage */
    D = npe_pkl_new();
    npe_pv *root = OD();
    set(root, "layer1.weight", tensor(storage("FloatStorage", "3", 12), 0, IT2(4, 4), IT2(4, 1)));
    rec r3[] = {{"data/3", F12, 48, 0}};
    CHECK_EQ_INT(write_tree(path, root, r3, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_MSG(strstr(err.msg, "tensor 'layer1.weight' claims 16 elements but storage '3' holds 12"),
              "%s", err.msg);
    /* the same through a huge stride (overflow-safe) */
    set(root, "layer1.weight", tensor(storage("FloatStorage", "3", 12), 0, IT2(2, 2),
                                      IT2(INT64_MAX, 1)));
    CHECK_EQ_INT(write_tree(path, root, r3, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    /* (4 - 1) * 6148914691236517205 is exactly 2^64 - 1: must not wrap to a small extent */
    set(root, "layer1.weight", tensor(storage("FloatStorage", "3", 12), 0, IT1(4),
                                      IT1(6148914691236517205)));
    CHECK_EQ_INT(write_tree(path, root, r3, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    set(root, "layer1.weight", tensor(storage("FloatStorage", "3", 12), 0, IT2(2, -2), IT2(1, 1)));
    CHECK_EQ_INT(write_tree(path, root, r3, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    /* storage record deflated, missing, of the wrong size */
    set(root, "layer1.weight", tensor(storage("FloatStorage", "3", 12), 0, IT1(12), IT1(1)));
    rec deflated[] = {{"data/3", F12, 48, 1}};
    CHECK_EQ_INT(write_tree(path, root, deflated, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EUNSUPPORTED);
    CHECK(strstr(err.msg, "m/data/3") != NULL);
    CHECK_EQ_INT(write_tree(path, root, NULL, 0), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK(strstr(err.msg, "no record 'm/data/3'") != NULL);
    rec shorter[] = {{"data/3", F12, 44, 0}};
    CHECK_EQ_INT(write_tree(path, root, shorter, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK(strstr(err.msg, "44 bytes") != NULL);
    /* a record outside the top folder */
    rec outside[] = {{"data/3", F12, 48, 0}, {"!other/x", "x", 1, 0}};
    CHECK_EQ_INT(write_tree(path, root, outside, 2), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK(strstr(err.msg, "outside the top folder") != NULL);
    /* one storage key declared with two types */
    set(root, "b", tensor(storage("LongStorage", "3", 6), 0, IT1(6), IT1(1)));
    CHECK_EQ_INT(write_tree(path, root, r3, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    /* a bad version record */
    npe_pkl_free(D);
    D = npe_pkl_new();
    root = OD();
    void *pk;
    size_t pks;
    npe_pkl_dump(root, 0, &pk, &pks, &err);
    rec v[] = {{"version", "99\n", 3, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, v, 1, 0), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EUNSUPPORTED);
    rec nov[] = {{"version", "x", 1, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, nov, 1, 0), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    rec big[] = {{"byteorder", "big", 3, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, big, 1, 1), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EUNSUPPORTED);
    rec other[] = {{"x", "x", 1, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", NULL, 0, other, 1, 1), 0); /* no data.pkl */
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_EQ_INT(write_zip(path, "", pk, pks, NULL, 0, 0), 0); /* no top folder */
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    free(pk);
    npe_pkl_free(D);

    /* deep nesting: 300 nested lists (APPEND builds them inside out) */
    size_t depth = 300;
    char *deep = malloc(2 * depth + 3);
    size_t k = 0;
    deep[k++] = '\x80';
    deep[k++] = 2;
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    for (size_t i = 0; i + 1 < depth; i++)
        deep[k++] = 'a';
    deep[k++] = '.';
    int rc = open_raw_pickle(deep, k, &err);
    CHECK_MSG(rc == NPE_ELIMIT, "%d %s", rc, err.msg);
    free(deep);

    /* not a PyTorch file at all, and an empty one */
    CHECK_EQ_INT(npe_torch_open_mem("hello world", 11, "x", &f, &err), NPE_EFORMAT);
    CHECK_EQ_INT(npe_torch_open_mem(NULL, 0, "x", &f, &err), NPE_EFORMAT);
    CHECK_EQ_INT(npe_torch_open(tpath("does-not-exist"), &f, &err), NPE_EIO);
}

/* ---- public archive API and context ---- */

static int log_calls;
static void log_fn(void *user, npe_log_level level, const char *msg)
{
    (void)msg;
    *(int *)user += level == NPE_LOG_ERROR;
    log_calls++;
}

static void test_archive_api(void)
{
    CHECK_STR(npe_version_string(), "0.1.0");
    CHECK_EQ_INT(npe_version(), NPE_VERSION_INT(0, 1, 0));
    npe_ctx *ctx = NULL;
    CHECK_EQ_INT(npe_ctx_create(&ctx), 0);
    int errors = 0;
    npe_ctx_set_log(ctx, log_fn, &errors);
    CHECK_STR(npe_ctx_last_error(ctx), "");
    npe_archive *a = NULL;
    CHECK_EQ_INT(npe_archive_open(ctx, tpath("does-not-exist"), &a), NPE_EIO);
    CHECK(a == NULL);
    CHECK(strstr(npe_ctx_last_error(ctx), "does-not-exist") != NULL);
    CHECK_EQ_INT(errors, 1);

    int rc = npe_archive_open(ctx, tpath("sd.pt"), &a);
    CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    if (rc) {
        npe_ctx_destroy(ctx);
        return;
    }
    CHECK_EQ_INT(npe_archive_get_kind(a), NPE_ARCHIVE_STATE_DICT);
    CHECK_STR(npe_archive_kind_name(npe_archive_get_kind(a)), "state_dict");
    CHECK_STR(npe_archive_kind_name(NPE_ARCHIVE_TORCHSCRIPT), "torchscript");
    CHECK_EQ_INT(npe_archive_get_layout(a), NPE_LAYOUT_ZIP);
    CHECK_EQ_INT(npe_archive_record_count(a), 4);
    npe_record_info ri;
    CHECK_EQ_INT(npe_archive_record(a, 1, &ri), 0);
    CHECK_STR(ri.name, "m/data/0");
    CHECK_EQ_INT(ri.size, 48);
    CHECK_EQ_INT(ri.deflated, 0);
    CHECK_EQ_INT(npe_archive_record(a, 4, &ri), NPE_EINVAL);
    CHECK_EQ_INT(npe_archive_tensor_count(a), 6);
    CHECK_EQ_INT(npe_archive_find_tensor(a, "row"), 2);
    CHECK_EQ_INT(npe_archive_find_tensor(a, "sub.i"), 4);
    CHECK_EQ_INT(npe_archive_find_tensor(a, "nope"), NPE_ENOTFOUND);
    npe_tensor_info ti;
    CHECK_EQ_INT(npe_archive_tensor(a, 1, &ti), 0);
    CHECK_STR(ti.name, "at");
    CHECK_STR(ti.storage_key, "0");
    CHECK_EQ_INT(ti.storage_numel, 12);
    CHECK_EQ_INT(ti.stride[1], 4);
    float col[3];
    CHECK_EQ_INT(npe_archive_tensor_data(a, 3, col, sizeof(col)), 0);
    CHECK(col[0] == 2 && col[2] == 10);
    CHECK_EQ_INT(npe_archive_tensor_data(a, 3, col, 4), NPE_EINVAL);
    CHECK(strstr(npe_ctx_last_error(ctx), "'col'") != NULL);
    /* floating tensors except running stats: a 12 + at 12 + row 4 + col 3 */
    CHECK_EQ_INT(npe_archive_param_count(a), 31);

    char *text = NULL;
    CHECK_EQ_INT(npe_archive_describe(a, NPE_DESCRIBE_JSON, &text), 0);
    CHECK(text && strstr(text, "\"kind\": \"state_dict\""));
    CHECK(text && strstr(text, "{\"name\": \"at\", \"dtype\": \"float32\", \"shape\": [4, 3], "
                               "\"stride\": [1, 4], \"storage_offset\": 0, \"storage\": \"0\""));
    CHECK(text && strstr(text, "\"params\": 31"));
    /* distinct tensor objects: 12+12+4+3+1 floats, 3 longs */
    CHECK(text && strstr(text, "\"tensor_bytes\": 152"));
    npe_free(text);
    CHECK_EQ_INT(npe_archive_describe(a, NPE_DESCRIBE_TEXT, &text), 0);
    CHECK(text && strstr(text, "kind: state_dict"));
    CHECK(text && strstr(text, "sub.running_mean  float32   []"));
    npe_free(text);
    CHECK_EQ_INT(npe_archive_describe(a, 7, &text), NPE_EINVAL);

    /* re-save: the views keep sharing one storage */
    CHECK_EQ_INT(npe_archive_save_state_dict(a, tpath("resaved.pt")), 0);
    npe_archive_destroy(a);
    rc = npe_archive_open(ctx, tpath("resaved.pt"), &a);
    CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    if (!rc) {
        CHECK_EQ_INT(npe_archive_tensor_count(a), 6);
        CHECK_EQ_INT(npe_archive_record_count(a), 5); /* data.pkl, 2 storages, version, byteorder */
        CHECK_EQ_INT(npe_archive_tensor(a, 5, &ti), 0);
        CHECK_STR(ti.name, "sub.running_mean");
        CHECK_STR(ti.storage_key, "0");
        CHECK_EQ_INT(ti.storage_offset, 11);
        CHECK_EQ_INT(npe_archive_tensor_data(a, 3, col, sizeof(col)), 0);
        CHECK(col[0] == 2 && col[1] == 6 && col[2] == 10);
        npe_archive_destroy(a);
    }

    /* full model through the public API */
    rc = npe_archive_open(ctx, tpath("full.pt"), &a);
    CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    if (!rc) {
        CHECK_EQ_INT(npe_archive_module_count(a), 4);
        npe_module_info mi;
        CHECK_EQ_INT(npe_archive_module(a, 1, &mi), 0);
        CHECK_STR(mi.path, "conv");
        CHECK_EQ_INT(mi.n_attrs, 4);
        CHECK_EQ_INT(npe_archive_module(a, 9, &mi), NPE_EINVAL);
        /* parameters: conv.weight 12 (tied with head.weight, once) + bn.weight 3 */
        CHECK_EQ_INT(npe_archive_param_count(a), 15);
        CHECK_EQ_INT(npe_archive_describe(a, NPE_DESCRIBE_TEXT, &text), 0);
        CHECK(text && strstr(text, "    conv: torch.nn.modules.conv.Conv2d (in_channels=1, "
                                   "out_channels=3, kernel_size=(2, 2), padding_mode='zeros')"));
        npe_free(text);
        npe_archive_destroy(a);
    }
    npe_archive_destroy(NULL);
    npe_ctx_destroy(ctx);
    npe_free(NULL);
}

/* ---- buffers registered with persistent=False ---- */

/* nn.Module.state_dict() leaves out the buffers named in _non_persistent_buffers_set, so a
 * state_dict written from a pickled model must too (else load_state_dict() fails on an
 * unexpected key); the reader still lists them as tensors of the file. */
static void test_nonpersistent(void)
{
    D = npe_pkl_new();
    npe_pv *tm = tensor(storage("FloatStorage", "1", 3), 0, IT1(3), IT1(1));
    npe_pv *np = npe_pv_new_seq(D, NPE_PV_SET); /* one set node shared by both children */
    npe_pv_append(D, np, S("mask"));
    npe_pv_append(D, np, S("absent"));

    npe_pv *ap = OD(), *ab = OD();
    set(ap, "weight", param(tensor(storage("FloatStorage", "0", 12), 0, IT2(3, 4), IT2(4, 1))));
    set(ab, "mask", tm);
    set(ab, "keep", tensor(storage("FloatStorage", "2", 3), 0, IT1(3), IT1(1)));
    npe_pv *ast = module_state(ap, ab, NULL);
    set(ast, "_non_persistent_buffers_set", np);
    npe_pv *bb = OD();
    set(bb, "mask", tensor(storage("FloatStorage", "3", 3), 0, IT1(3), IT1(1)));
    npe_pv *bst = module_state(NULL, bb, NULL);
    set(bst, "_non_persistent_buffers_set", np);
    npe_pv *mods = OD();
    set(mods, "a", object("mylib.nets", "Masked", ast));
    set(mods, "b", object("mylib.nets", "Masked", bst));
    /* the root holds a's mask under a name of its own, and that name is persistent */
    npe_pv *rb = OD();
    set(rb, "m2", tm);
    npe_pv *rst = module_state(NULL, rb, mods);
    set(rst, "_non_persistent_buffers_set", npe_pv_new_seq(D, NPE_PV_SET));
    npe_pv *root = object("mylib.nets", "Net", rst);
    rec r[] = {{"data/0", F12, 48, 0}, {"data/1", F12, 12, 0}, {"data/2", F12 + 3, 12, 0},
               {"data/3", F12 + 6, 12, 0}};
    const char *path = tpath("np.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 4), 0);

    npe_torch_file *f;
    npe_error err;
    int rc = open_path(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!rc) {
        static const char *names[] = {"m2", "a.weight", "a.mask", "a.keep", "b.mask"};
        static const int nonpers[] = {0, 0, 1, 0, 1};
        CHECK_EQ_INT(f->kind, NPE_ARCHIVE_FULL_MODEL);
        CHECK_EQ_INT(f->n_tensors, 5);
        for (size_t i = 0; i < 5 && i < f->n_tensors; i++) {
            CHECK_STR(f->tensors[i].name, names[i]);
            CHECK_MSG(f->tensors[i].non_persistent == nonpers[i], "%s: non_persistent %d",
                      names[i], f->tensors[i].non_persistent);
        }
        if (f->n_tensors == 5)
            CHECK(f->tensors[0].node == f->tensors[2].node);
        npe_torch_close(f);
    }

    npe_ctx *ctx = NULL;
    CHECK_EQ_INT(npe_ctx_create(&ctx), 0);
    npe_archive *a = NULL;
    rc = npe_archive_open(ctx, path, &a);
    CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    if (!rc) {
        CHECK_EQ_INT(npe_archive_tensor_count(a), 5);
        CHECK_EQ_INT(npe_archive_param_count(a), 12);
        CHECK_EQ_INT(npe_archive_save_state_dict(a, tpath("np_resaved.pt")), 0);
        npe_archive_destroy(a);
        rc = npe_archive_open(ctx, tpath("np_resaved.pt"), &a);
        CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    }
    if (!rc) {
        /* state_dict() keys: m2, a.weight, a.keep (a.mask and b.mask are not persistent) */
        CHECK_EQ_INT(npe_archive_tensor_count(a), 3);
        npe_tensor_info ti;
        static const char *kept[] = {"m2", "a.weight", "a.keep"};
        for (size_t i = 0; i < 3; i++) {
            CHECK_EQ_INT(npe_archive_tensor(a, i, &ti), 0);
            CHECK_STR(ti.name, kept[i]);
        }
        CHECK_EQ_INT(npe_archive_find_tensor(a, "a.mask"), NPE_ENOTFOUND);
        CHECK_EQ_INT(npe_archive_find_tensor(a, "b.mask"), NPE_ENOTFOUND);
        float v[3];
        CHECK_EQ_INT(npe_archive_tensor_data(a, 0, v, sizeof(v)), 0);
        CHECK(v[0] == 0 && v[1] == 1 && v[2] == 2);
        CHECK_EQ_INT(npe_archive_tensor_data(a, 2, v, sizeof(v)), 0);
        CHECK(v[0] == 3 && v[1] == 4 && v[2] == 5);
        npe_archive_destroy(a);
    }
    npe_ctx_destroy(ctx);

    /* anything but a set there is a malformed module */
    set(ast, "_non_persistent_buffers_set", I(3));
    CHECK_EQ_INT(write_tree(path, root, r, 4), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_MSG(strstr(err.msg, "module 'a': _non_persistent_buffers_set is a int"), "%s", err.msg);
    npe_pkl_free(D);
}

/* ---- a tied weight in a state_dict ---- */

/* state_dict() detaches each entry, so a weight tied between two modules is two tensor
 * objects over the same elements of one storage: the parameter count takes it once. */
static void test_tied_state_dict(void)
{
    D = npe_pkl_new();
    npe_pv *s0 = storage("FloatStorage", "0", 12);
    npe_pv *root = OD();
    set(root, "enc.weight", tensor(s0, 0, IT2(3, 4), IT2(4, 1)));
    set(root, "dec.weight", tensor(s0, 0, IT2(3, 4), IT2(4, 1))); /* tied: not counted again */
    set(root, "dec.bias", tensor(s0, 8, IT1(4), IT1(1)));        /* other offset: 4 */
    set(root, "head.weight", tensor(s0, 0, IT2(4, 3), IT2(1, 4))); /* other view: 12 */
    set(root, "bn.running_mean", tensor(s0, 0, IT2(3, 4), IT2(4, 1))); /* statistics: 0 */
    set(root, "other", tensor(storage("FloatStorage", "1", 12), 0, IT2(3, 4), IT2(4, 1)));
    rec r[] = {{"data/0", F12, 48, 0}, {"data/1", F12, 48, 0}};
    const char *path = tpath("tied.pt");
    CHECK_EQ_INT(write_tree(path, root, r, 2), 0);
    npe_pkl_free(D);

    npe_ctx *ctx = NULL;
    CHECK_EQ_INT(npe_ctx_create(&ctx), 0);
    npe_archive *a = NULL;
    int rc = npe_archive_open(ctx, path, &a);
    CHECK_MSG(rc == 0, "%s", npe_ctx_last_error(ctx));
    if (!rc) {
        CHECK_EQ_INT(npe_archive_get_kind(a), NPE_ARCHIVE_STATE_DICT);
        CHECK_EQ_INT(npe_archive_tensor_count(a), 6);
        /* enc.weight 12 + dec.bias 4 + head.weight 12 + other 12 */
        CHECK_EQ_INT(npe_archive_param_count(a), 40);
        char *text = NULL;
        CHECK_EQ_INT(npe_archive_describe(a, NPE_DESCRIBE_JSON, &text), 0);
        /* distinct views, running_mean included: (12 + 4 + 12 + 12) floats */
        CHECK_MSG(text && strstr(text, "\"tensor_bytes\": 160"), "%s", text ? text : "");
        npe_free(text);
        npe_archive_destroy(a);
    }
    npe_ctx_destroy(ctx);
}

/* ---- the version record ---- */

static void test_version_records(void)
{
    D = npe_pkl_new();
    npe_pv *root = OD();
    void *pk = NULL;
    size_t pks = 0;
    npe_error err = {0};
    CHECK_EQ_INT(npe_pkl_dump(root, 0, &pk, &pks, &err), 0);
    npe_pkl_free(D);
    const char *path = tpath("ver.pt");
    npe_torch_file *f;

    /* torch.load refuses an archive with neither record */
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, NULL, 0, 0), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EFORMAT);
    CHECK_MSG(strstr(err.msg, "no record 'm/version' or 'm/.data/version'"), "%s", err.msg);

    /* jit.save writes .data/version alone from version 6 on (8 for code calling linspace) */
    static const struct {
        const char *text;
        int code, version;
    } dv[] = {{"8\n", 0, 8}, {"1\n", 0, 1}, {"10\n", 0, 10}, {"0\n", NPE_EUNSUPPORTED, 0},
              {"11\n", NPE_EUNSUPPORTED, 0}, {"", NPE_EFORMAT, 0}};
    for (size_t i = 0; i < sizeof(dv) / sizeof(dv[0]); i++) {
        rec r[] = {{".data/version", dv[i].text, strlen(dv[i].text), 0}};
        CHECK_EQ_INT(write_zip(path, "m/", pk, pks, r, 1, 0), 0);
        int rc = open_path(path, &f, &err);
        CHECK_MSG(rc == dv[i].code, "'%s': %d %s", dv[i].text, rc, err.msg);
        if (!rc)
            CHECK_EQ_INT(f->version, dv[i].version);
        else
            CHECK_MSG(strstr(err.msg, "'m/.data/version'"), "%s", err.msg);
        npe_torch_close(f);
    }

    /* with both, torch (1.13 and 2.x) reads .data/version: a valid 'version' does not help */
    rec both[] = {{"version", "3\n", 2, 0}, {".data/version", "99\n", 3, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, both, 2, 0), 0);
    CHECK_EQ_INT(open_code(path, &err), NPE_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "'m/.data/version' holds version 99"), "%s", err.msg);
    rec both_ok[] = {{"version", "99\n", 3, 0}, {".data/version", "7\n", 2, 0}};
    CHECK_EQ_INT(write_zip(path, "m/", pk, pks, both_ok, 2, 0), 0);
    CHECK_EQ_INT(open_path(path, &f, &err), 0);
    CHECK(f && f->version == 7);
    npe_torch_close(f);
    free(pk);
}

/* ---- JSON writer ---- */

static void test_json(void)
{
    npe_json j;
    npe_json_init(&j, 0);
    npe_json_begin_object(&j, 0);
    npe_json_key(&j, "s");
    npe_json_str(&j, "q\"b\\n\n\x01\xc3\xa9\xff!");
    npe_json_key(&j, "a");
    npe_json_begin_array(&j, 0);
    npe_json_int(&j, -3);
    npe_json_uint(&j, UINT64_MAX);
    npe_json_double(&j, 0.1);
    npe_json_double(&j, 1.0 / 0.0);
    npe_json_bool(&j, 1);
    npe_json_null(&j);
    npe_json_end_array(&j);
    npe_json_key(&j, "e");
    npe_json_begin_object(&j, 0);
    npe_json_end_object(&j);
    npe_json_end_object(&j);
    char *out = npe_json_finish(&j, NULL);
    CHECK_STR(out, "{\"s\":\"q\\\"b\\\\n\\n\\u0001\xc3\xa9\\ufffd!\",\"a\":[-3,18446744073709551615,"
                   "0.1,null,true,null],\"e\":{}}");
    free(out);

    npe_json_init(&j, 1);
    npe_json_begin_object(&j, 0);
    npe_json_key(&j, "x");
    npe_json_begin_array(&j, 1);
    npe_json_int(&j, 1);
    npe_json_int(&j, 2);
    npe_json_end_array(&j);
    npe_json_key(&j, "y");
    npe_json_begin_array(&j, 0);
    npe_json_str(&j, "z");
    npe_json_end_array(&j);
    npe_json_end_object(&j);
    out = npe_json_finish(&j, NULL);
    CHECK_STR(out, "{\n  \"x\": [1, 2],\n  \"y\": [\n    \"z\"\n  ]\n}\n");
    free(out);

    /* misuse is reported, not written */
    npe_json_init(&j, 0);
    npe_json_begin_object(&j, 0);
    npe_json_int(&j, 1); /* value without a key */
    npe_json_end_object(&j);
    CHECK(npe_json_finish(&j, NULL) == NULL);
    npe_json_init(&j, 0);
    npe_json_begin_array(&j, 0);
    CHECK(npe_json_finish(&j, NULL) == NULL); /* still open */
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/npe_torch_file_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_state_dict();
    test_round_trip();
    test_full_model();
    test_torchscript();
    test_object();
    test_v2_forms();
    test_legacy();
    test_malicious();
    test_archive_api();
    test_nonpersistent();
    test_tied_state_dict();
    test_version_records();
    test_json();
    static const char *files[] = {"sd.pt", "saved.pt", "full.pt", "ts.pt", "ckpt.pt", "evil.pt",
                                  "bad.pt", "resaved.pt", "np.pt", "np_resaved.pt", "tied.pt",
                                  "ver.pt"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(tpath(files[i]));
    rmdir(tmpdir);
    return tu_finish("torch_file");
}
