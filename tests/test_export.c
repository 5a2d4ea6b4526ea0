/* Tests of the exporters (importers/ts_export.h): channels pruned by hand in the bundled
 * Fashion-MNIST model and in torchvision's MobileNetV2 (a depthwise conv whose `groups` literal
 * changes, also with its class shared by two modules so the exporter must split it), exported
 * as TorchScript, state_dict, channel JSON and full model, then read back by our own readers.
 * PyTorch's side (torch.jit.load / torch.load of every file, outputs against our runtime's) is
 * tests/check_export.py, which runs this program with an output folder and reads cases.txt.
 *
 * Usage: test_export SOURCE_ROOT [OUT_DIR [MODELS_DIR]]
 *   OUT_DIR: where the files go (default: a temporary folder, removed at the end);
 *   MODELS_DIR: folder with mobilenet_v2.pt of tests/gen_models.py (default: skip those cases). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/exec.h"
#include "formats/npy.h"
#include "importers/export_internal.h"
#include "importers/torch_file.h"
#include "importers/torchscript.h"
#include "importers/ts_export.h"
#include "testutil.h"

static const char *root = ".";
static char out_dir[1024];
static int keep_files;
static FILE *cases;
static char *written[64];
static int n_written;

static char *src_path(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, rel);
    return buf[k];
}

/* Absolute path for cases.txt (read from another folder). */
static const char *abs_path(const char *p)
{
    static char buf[4][PATH_MAX];
    static int k;
    k = (k + 1) % 4;
    if (!realpath(p, buf[k]))
        snprintf(buf[k], sizeof buf[k], "%s", p);
    return buf[k];
}

/* A file in the output folder (remembered, to be removed when the folder is temporary). */
static char *out_path(const char *name)
{
    static char buf[8][1400];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", out_dir, name);
    int known = 0;
    for (int i = 0; i < n_written; i++)
        known |= strcmp(written[i], buf[k]) == 0;
    if (!known && n_written < 64)
        written[n_written++] = strdup(buf[k]);
    return buf[k];
}

/* ---- Helpers --------------------------------------------------------------------------------- */
static npe_graph *import(const char *path)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    int r = npe_ts_import(path, NULL, &g, &e);
    CHECK_MSG(r == 0, "import %s: %s", path, e.msg);
    return g;
}

/* Run g on x with the optimised CPU kernels; out is the first output. */
static int run(npe_graph *g, const npe_array *x, npe_array *out)
{
    npe_kernels k;
    npe_kernels_init_cpu(&k, NPE_KCPU_BLAS | NPE_KCPU_SIMD);
    npe_exec *ex = NULL;
    npe_error e = {0};
    int r = npe_exec_create(g, &k, 0, &ex, &e);
    if (!r)
        r = npe_exec_run(ex, NULL, x, 1, out, 1, &e);
    CHECK_MSG(r == 0, "run: %s", e.msg);
    npe_exec_destroy(ex);
    return r;
}

static npe_array input(int n, int c, int h, int w, uint32_t seed)
{
    npe_array a = {0};
    a.dtype = NPE_DTYPE_F32;
    a.ndim = 4;
    a.shape[0] = n;
    a.shape[1] = c;
    a.shape[2] = h;
    a.shape[3] = w;
    a.nbytes = (size_t)n * c * h * w * sizeof(float);
    a.data = malloc(a.nbytes);
    float *p = a.data;
    for (size_t i = 0; i < a.nbytes / sizeof(float); i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return a;
}

/* max |a - b| / max |b| */
static double rel_diff(const npe_array *a, const npe_array *b)
{
    if (a->ndim != b->ndim || npe_array_numel(a) != npe_array_numel(b))
        return INFINITY;
    const float *x = a->data, *y = b->data;
    double md = 0, mr = 0;
    for (int64_t i = 0; i < npe_array_numel(b); i++) {
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= md))
            md = d;
        if (fabs((double)y[i]) > mr)
            mr = fabs((double)y[i]);
    }
    return md / (mr > 0 ? mr : 1);
}

static void save(const char *name, const npe_array *a)
{
    npe_error e = {0};
    int r = npe_npy_save(out_path(name), a, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
}

static npe_value *val(npe_graph *g, const char *name)
{
    int v = npe_graph_find_value(g, name);
    CHECK_MSG(v >= 0, "no value '%s'", name);
    return v >= 0 ? &g->values[v] : NULL;
}

static int dropped(int i, const int *drop, int n)
{
    for (int k = 0; k < n; k++)
        if (drop[k] == i)
            return 1;
    return 0;
}

/* Remove indices drop[] along dim of a parameter, as pruning does. */
static void cut(npe_graph *g, const char *name, int dim, const int *drop, int ndrop)
{
    npe_value *v = val(g, name);
    if (!v)
        return;
    int64_t shape[NPE_MAX_DIMS], outer = 1, inner = 1;
    memcpy(shape, v->shape, sizeof shape);
    for (int d = 0; d < dim; d++)
        outer *= shape[d];
    for (int d = dim + 1; d < v->ndim; d++)
        inner *= shape[d];
    int64_t n = shape[dim];
    shape[dim] = n - ndrop;
    float *nd = malloc((size_t)(outer * shape[dim] * inner) * sizeof(float) + 1);
    int64_t k = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < n; c++)
            if (!dropped((int)c, drop, ndrop))
                for (int64_t i = 0; i < inner; i++)
                    nd[k++] = v->data[(o * n + c) * inner + i];
    CHECK_EQ_INT(npe_graph_set_tensor_data(g, (int)(v - g->values), v->ndim, shape, nd), 0);
}

/* Zero indices zero[] along dim 1 of a 2-D or 4-D weight (the consumer's inputs). */
static void zero_inputs(npe_graph *g, const char *name, const int *zero, int nz)
{
    npe_value *v = val(g, name);
    if (!v)
        return;
    int64_t inner = 1;
    for (int d = 2; d < v->ndim; d++)
        inner *= v->shape[d];
    for (int64_t o = 0; o < v->shape[0]; o++)
        for (int k = 0; k < nz; k++)
            for (int64_t i = 0; i < inner; i++)
                v->data[(o * v->shape[1] + zero[k]) * inner + i] = 0.0f;
}

/* The conv node reading weight `name`. */
static npe_node *conv_reading(npe_graph *g, const char *name)
{
    int w = npe_graph_find_value(g, name);
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == NPE_OP_CONV && g->nodes[i].in[NPE_CONV_WEIGHT] == w)
            return &g->nodes[i];
    CHECK_MSG(0, "no conv reads '%s'", name);
    return NULL;
}

static char *read_text(const char *path)
{
    char *t = NULL;
    size_t n = 0;
    npe_error e = {0};
    int r = npe_read_file(path, 1 << 20, &t, &n, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    return t;
}

/* Bytes of record `rel` (under the top folder) of a zip: malloc'd, NULL when absent. */
static void *record(const char *zip_path, const char *rel, size_t *size)
{
    npe_zip_reader *z = NULL;
    npe_error e = {0};
    if (npe_zip_open(zip_path, &z, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        return NULL;
    }
    void *data = NULL;
    for (size_t i = 0; i < npe_zip_count(z); i++) {
        const npe_zip_entry *en = npe_zip_entry_at(z, i);
        const char *slash = strchr(en->name, '/');
        if (slash && strcmp(slash + 1, rel) == 0) {
            int r = npe_zip_read(z, en, (size_t)en->size, &data, size, &e);
            CHECK_MSG(r == 0, "%s", e.msg);
            break;
        }
    }
    npe_zip_close(z);
    return data;
}

/* Records of b against those of a of the same name (bytes and compression); stored records of b
 * must be 64-byte aligned. Returns how many differ, counting records only one of them has. */
static int compare_archives(const char *a_path, const char *b_path)
{
    npe_zip_reader *a = NULL, *b = NULL;
    npe_error e = {0};
    int diff = 0;
    if (npe_zip_open(a_path, &a, &e) || npe_zip_open(b_path, &b, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        npe_zip_close(a);
        return -1;
    }
    for (size_t i = 0; i < npe_zip_count(a); i++)
        diff += npe_zip_find(b, npe_zip_entry_at(a, i)->name) == NULL;
    for (size_t i = 0; i < npe_zip_count(b); i++) {
        const npe_zip_entry *eb = npe_zip_entry_at(b, i);
        const npe_zip_entry *ea = npe_zip_find(a, eb->name);
        if (eb->method == 0)
            CHECK_MSG(eb->data_offset % 64 == 0, "%s is not 64-byte aligned", eb->name);
        if (!ea) {
            diff++;
            continue;
        }
        void *da = NULL, *db = NULL;
        size_t sa = 0, sb = 0;
        if (npe_zip_read(a, ea, (size_t)ea->size, &da, &sa, &e) ||
            npe_zip_read(b, eb, (size_t)eb->size, &db, &sb, &e)) {
            CHECK_MSG(0, "%s", e.msg);
        } else if (sa != sb || memcmp(da, db, sa) != 0 || ea->method != eb->method) {
            diff++;
        }
        free(da);
        free(db);
    }
    npe_zip_close(a);
    npe_zip_close(b);
    return diff;
}

static const npe_ttensor *tensor_named(const npe_torch_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    CHECK_MSG(0, "%s has no tensor '%s'", f->path, name);
    return NULL;
}

static const char *module_attr(const npe_torch_file *f, const char *path, const char *attr)
{
    for (size_t i = 0; i < f->n_modules; i++) {
        if (strcmp(f->modules[i].path, path) != 0)
            continue;
        for (size_t k = 0; k < f->modules[i].n_attrs; k++)
            if (strcmp(f->modules[i].attr_names[k], attr) == 0)
                return f->modules[i].attr_values[k];
    }
    return "(none)";
}

static const char *module_class(const npe_torch_file *f, const char *path)
{
    for (size_t i = 0; i < f->n_modules; i++)
        if (strcmp(f->modules[i].path, path) == 0)
            return f->modules[i].class_path;
    return "(none)";
}

/* ---- Fashion-MNIST --------------------------------------------------------------------------- */
static const int fm_drop[] = {0, 5, 7};
#define FM_NDROP 3

static void prune_fashion(npe_graph *g)
{
    static const char *const bn[] = {"down.1.weight", "down.1.bias", "down.1.running_mean",
                                     "down.1.running_var"};
    cut(g, "down.0.weight", 0, fm_drop, FM_NDROP);
    for (int i = 0; i < 4; i++)
        cut(g, bn[i], 0, fm_drop, FM_NDROP);
    cut(g, "fc.weight", 1, fm_drop, FM_NDROP); /* after avgpool + flatten, feature c = channel c */
}

static void test_fashion(void)
{
    const char *model = src_path("examples/fashion_mnist/model.pt");
    npe_graph *g = import(model);
    if (!g)
        return;
    npe_error e = {0};
    npe_array x = input(2, 1, 28, 28, 7), y0 = {0}, y1 = {0}, yz = {0}, yr = {0};
    save("fashion_in.npy", &x);

    /* unchanged: every record byte-identical */
    int r = npe_ts_export(g, model, out_path("fashion_same.pt"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    CHECK_EQ_INT(compare_archives(model, out_path("fashion_same.pt")), 0);
    r = npe_ts_export(g, model, out_path("fashion_inplace.pt"), &e); /* overwritten below */
    CHECK_MSG(r == 0, "%s", e.msg);
    run(g, &x, &y0);
    save("fashion_orig_out.npy", &y0);
    fprintf(cases, "jit_same %s fashion_same.pt fashion_in.npy\n", abs_path(model));

    /* reference for the pruned model: the original with the removed channels zeroed where fc
     * reads them (what pruning must not change) */
    npe_graph *gz = NULL;
    CHECK_EQ_INT(npe_graph_clone(g, &gz), 0);
    zero_inputs(gz, "fc.weight", fm_drop, FM_NDROP);
    run(gz, &x, &yz);
    npe_graph_destroy(gz);

    prune_fashion(g);
    if (run(g, &x, &y1) == 0) {
        CHECK_EQ_INT(y1.shape[1], 10);
        double d = rel_diff(&y1, &yz);
        CHECK_MSG(d < 1e-5, "pruned vs zeroed original: %g", d);
    }
    save("fashion_out.npy", &y1);

    /* TorchScript */
    r = npe_ts_export(g, model, out_path("fashion_pruned.pt"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    fprintf(cases, "jit fashion_pruned.pt fashion_in.npy fashion_out.npy\n");
    /* only data.pkl and the storages of the six cut tensors differ; each kept its key */
    CHECK_EQ_INT(compare_archives(model, out_path("fashion_pruned.pt")), 7);
    npe_torch_file *tf = NULL;
    if (npe_torch_open(out_path("fashion_pruned.pt"), &tf, &e) == 0) {
        const npe_ttensor *t = tensor_named(tf, "down.0.weight");
        if (t) {
            CHECK_EQ_INT(t->shape[0], 61);
            CHECK_EQ_INT(t->offset, 0);
            CHECK_EQ_INT(t->stride[0], 32 * 9);
            CHECK_EQ_INT(tf->storages[t->storage].numel, 61 * 32 * 9);
        }
        if ((t = tensor_named(tf, "fc.weight"))) {
            CHECK_EQ_INT(t->shape[1], 61);
            CHECK_EQ_INT(t->stride[0], 61);
        }
        npe_torch_close(tf);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    npe_graph *g2 = import(out_path("fashion_pruned.pt"));
    if (g2 && run(g2, &x, &yr) == 0)
        CHECK_MSG(rel_diff(&yr, &y1) == 0, "re-imported pruned model: %g", rel_diff(&yr, &y1));
    npe_graph_destroy(g2);

    /* state_dict: PyTorch's own (examples/.../model_state.pth) gives the names, their order and
     * the values of what was not pruned */
    r = npe_state_dict_export(g, out_path("fashion_state.pth"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    npe_torch_file *sd = NULL, *ref = NULL;
    if (!npe_torch_open(out_path("fashion_state.pth"), &sd, &e) &&
        !npe_torch_open(src_path("examples/fashion_mnist/model_state.pth"), &ref, &e)) {
        CHECK_EQ_INT(sd->kind, NPE_ARCHIVE_STATE_DICT);
        CHECK_EQ_INT(sd->n_tensors, ref->n_tensors);
        for (size_t i = 0; i < sd->n_tensors && i < ref->n_tensors; i++) {
            const npe_ttensor *a = &sd->tensors[i], *b = &ref->tensors[i];
            CHECK_STR(a->name, b->name);
            CHECK_EQ_INT(a->dtype, b->dtype);
            int pruned = strncmp(a->name, "down.", 5) == 0 || strcmp(a->name, "fc.weight") == 0;
            int64_t n = npe_torch_tensor_numel(a), m = npe_torch_tensor_numel(b);
            if (strstr(a->name, "num_batches_tracked") || !pruned) {
                CHECK_EQ_INT(n, m);
                size_t bytes = (size_t)n * npe_dtype_size(a->dtype);
                void *da = malloc(bytes + 1), *db = malloc(bytes + 1);
                if (n == m && !npe_torch_tensor_copy(sd, i, da, bytes, &e) &&
                    !npe_torch_tensor_copy(ref, i, db, bytes, &e))
                    CHECK_MSG(memcmp(da, db, bytes) == 0, "%s differs from PyTorch's", a->name);
                free(da);
                free(db);
            } else if (strcmp(a->name, "fc.bias") != 0) {
                CHECK_MSG(n * 64 == m * 61, "%s: %lld elements", a->name, (long long)n);
            }
        }
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    npe_torch_close(sd);
    npe_torch_close(ref);

    r = npe_channels_export(g, out_path("fashion_channels.json"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    char *js = read_text(out_path("fashion_channels.json"));
    if (js) {
        CHECK(strstr(js, "\"stem.0\": {\"in_channels\": 1, \"out_channels\": 32, \"groups\": 1}"));
        CHECK(strstr(js, "\"down.0\": {\"in_channels\": 32, \"out_channels\": 61, \"groups\": 1}"));
        CHECK(strstr(js, "\"down.1\": {\"num_features\": 61}"));
        CHECK(strstr(js, "\"block.bn2\": {\"num_features\": 32}"));
        CHECK(strstr(js, "\"fc\": {\"in_features\": 61, \"out_features\": 10}"));
    }
    free(js);
    fprintf(cases, "fashion_state fashion_state.pth fashion_channels.json fashion_in.npy "
                   "fashion_out.npy\n");

    /* full model: tensors and the attributes that follow them */
    r = npe_full_model_export(g, src_path("examples/fashion_mnist/model_full.pth"),
                              out_path("fashion_full.pth"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    npe_torch_file *ff = NULL;
    if (npe_torch_open(out_path("fashion_full.pth"), &ff, &e) == 0) {
        CHECK_EQ_INT(ff->kind, NPE_ARCHIVE_FULL_MODEL);
        CHECK_STR(module_attr(ff, "down.0", "out_channels"), "61");
        CHECK_STR(module_attr(ff, "down.0", "in_channels"), "32");
        CHECK_STR(module_attr(ff, "down.1", "num_features"), "61");
        CHECK_STR(module_attr(ff, "fc", "in_features"), "61");
        CHECK_STR(module_attr(ff, "fc", "out_features"), "10");
        CHECK_STR(module_attr(ff, "stem.0", "out_channels"), "32");
        const npe_ttensor *t = tensor_named(ff, "down.1.running_var");
        if (t)
            CHECK_EQ_INT(t->shape[0], 61);
        if ((t = tensor_named(ff, "down.0.weight")))
            CHECK(t->is_parameter && t->requires_grad);
        npe_torch_close(ff);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    fprintf(cases, "full fashion_full.pth fashion_in.npy fashion_out.npy\n");

    /* literals: block.conv1 dilated by 2 with padding 2 keeps its shapes; its padding items
     * become new values without a span (as a pass may make them), its dilation items are
     * assigned in place; both must be written at the list items' places */
    npe_graph *gd = NULL;
    CHECK_EQ_INT(npe_graph_clone(g, &gd), 0);
    npe_node *cd = gd ? conv_reading(gd, "block.conv1.weight") : NULL;
    if (cd) {
        int pad = cd->in[NPE_CONV_PADDING], dil = cd->in[NPE_CONV_DILATION];
        CHECK(gd->values[pad].n_items == 2 && gd->values[dil].n_items == 2);
        for (int i = 0; i < 2; i++) {
            int two = npe_graph_add_int(gd, 2, NULL);
            gd->values[pad].items[i] = two;
            gd->values[gd->values[dil].items[i]].i = 2;
        }
        npe_array yd = {0};
        if (run(gd, &x, &yd) == 0) {
            CHECK_MSG(rel_diff(&yd, &y1) > 1e-3, "dilation changed nothing");
            save("fashion_dil_out.npy", &yd);
        }
        npe_array_free(&yd);
        r = npe_ts_export(gd, model, out_path("fashion_dil.pt"), &e);
        CHECK_MSG(r == 0, "%s", e.msg);
        size_t n = 0;
        char *code = record(out_path("fashion_dil.pt"),
                            "code/__torch__/torch/nn/modules/conv/___torch_mangle_0.py", &n);
        CHECK_MSG(code && strstr(code, "[1, 1], [2, 2], [2, 2], False"), "%s", code ? code : "");
        free(code);
        fprintf(cases, "jit fashion_dil.pt fashion_in.npy fashion_dil_out.npy\n");
    }
    npe_graph_destroy(gd);

    /* the output may be the input file */
    r = npe_ts_export(g, out_path("fashion_inplace.pt"), out_path("fashion_inplace.pt"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    CHECK_EQ_INT(compare_archives(out_path("fashion_pruned.pt"), out_path("fashion_inplace.pt")), 0);

    /* errors a user meets */
    r = npe_ts_export(g, src_path("examples/fashion_mnist/model_state.pth"),
                      out_path("never.pt"), &e);
    CHECK(r == NPE_EUNSUPPORTED && strstr(e.msg, "not a TorchScript archive"));
    r = npe_full_model_export(g, model, out_path("never.pth"), &e);
    CHECK(r == NPE_EUNSUPPORTED && strstr(e.msg, "not a torch.save(model)"));
    CHECK(access(out_path("never.pt"), F_OK) != 0 && access(out_path("never.pth"), F_OK) != 0);

    /* one module needing two values at one literal (a span inlined twice) is refused: give the
     * second stride of down.0 the first one's span and another value */
    npe_node *nd = conv_reading(g, "down.0.weight");
    if (nd) {
        npe_value *stride = &g->values[nd->in[NPE_CONV_STRIDE]];
        CHECK_EQ_INT(stride->n_items, 2);
        if (stride->n_items == 2) {
            npe_value *s0 = &g->values[stride->items[0]], *s1 = &g->values[stride->items[1]];
            npe_span keep = s1->span;
            int64_t keep_i = s1->i;
            s1->span = s0->span;
            s1->i = 3;
            r = npe_ts_export(g, model, out_path("never.pt"), &e);
            CHECK(r == NPE_EUNSUPPORTED);
            CHECK_MSG(strstr(e.msg, "module 'down.0'") && strstr(e.msg, "both"), "%s", e.msg);
            s1->span = keep;
            s1->i = keep_i;
        }
    }
    npe_graph_destroy(g);
    npe_array_free(&x);
    npe_array_free(&y0);
    npe_array_free(&y1);
    npe_array_free(&yz);
    npe_array_free(&yr);
}

/* ---- MobileNetV2: depthwise groups ----------------------------------------------------------- */
static const int mb_drop[] = {1, 100, 959};
#define MB_NDROP 3

/* Prune 3 of the 960 hidden channels of features.15: expand conv and BN outputs, the depthwise
 * conv and BN, its groups literal, and the project conv's inputs. */
static void prune_mobilenet(npe_graph *g)
{
    static const char *const cuts[] = {"features.15.conv.0.0.weight", "features.15.conv.0.1.weight",
                                       "features.15.conv.0.1.bias",
                                       "features.15.conv.0.1.running_mean",
                                       "features.15.conv.0.1.running_var",
                                       "features.15.conv.1.0.weight", "features.15.conv.1.1.weight",
                                       "features.15.conv.1.1.bias",
                                       "features.15.conv.1.1.running_mean",
                                       "features.15.conv.1.1.running_var"};
    for (int i = 0; i < 10; i++)
        cut(g, cuts[i], 0, mb_drop, MB_NDROP);
    cut(g, "features.15.conv.2.weight", 1, mb_drop, MB_NDROP);
    npe_node *nd = conv_reading(g, "features.15.conv.1.0.weight");
    if (nd) {
        npe_value *gr = &g->values[nd->in[NPE_CONV_GROUPS]];
        CHECK(gr->type == NPE_VT_INT && (gr->flags & NPE_VF_CONST) && gr->i == 960);
        gr->i = 960 - MB_NDROP;
    }
}

/* A copy of mobilenet_v2.pt where features.16.conv.1.0 uses the class of features.15.conv.1.0
 * (their code differs only in the class name): data.pkl's GLOBAL and the parent's annotation
 * renamed in place (same length). 0 when made. */
static int make_shared(const char *src, const char *dst)
{
    npe_torch_file *f = NULL;
    npe_error e = {0};
    if (npe_torch_open(src, &f, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        return -1;
    }
    char a[256], b[256], parent[256];
    snprintf(a, sizeof a, "%s", module_class(f, "features.15.conv.1.0"));
    snprintf(b, sizeof b, "%s", module_class(f, "features.16.conv.1.0"));
    snprintf(parent, sizeof parent, "%s", module_class(f, "features.16.conv.1"));
    int r = -1;
    npe_x_recs repl = {0};
    char *dot_a = strrchr(a, '.'), *dot_b = strrchr(b, '.'), *dot_p = strrchr(parent, '.');
    if (!dot_a || !dot_b || !dot_p || strlen(a) != strlen(b) || strcmp(a, b) == 0) {
        printf("mobilenet_v2: classes %s and %s cannot be swapped in place: shared-class case "
               "skipped\n", a, b);
        goto out;
    }
    /* data.pkl: GLOBAL opcode "c<module>\n<name>\n" */
    char pat_b[300], pat_a[300];
    snprintf(pat_b, sizeof pat_b, "c%.*s\n%s\n", (int)(dot_b - b), b, dot_b + 1);
    snprintf(pat_a, sizeof pat_a, "c%.*s\n%s\n", (int)(dot_a - a), a, dot_a + 1);
    size_t pk_size = 0, code_size = 0;
    char *pk = record(src, "data.pkl", &pk_size);
    char rel[512];
    snprintf(rel, sizeof rel, "code/%.*s.py", (int)(dot_p - parent), parent);
    for (char *p = rel + 5; *p; p++)
        if (*p == '.' && strcmp(p, ".py") != 0)
            *p = '/';
    char *code = record(src, rel, &code_size);
    char *hit = NULL, *chit = NULL;
    for (size_t i = 0; pk && i + strlen(pat_b) <= pk_size; i++)
        if (memcmp(pk + i, pat_b, strlen(pat_b)) == 0)
            hit = pk + i;
    if (code)
        chit = strstr(code, b);
    CHECK(hit && chit);
    if (hit && chit) {
        memcpy(hit, pat_a, strlen(pat_a));
        memcpy(chit, a, strlen(a));
        char full[600];
        snprintf(full, sizeof full, "%sdata.pkl", f->prefix);
        npe_x_recs_add(&repl, full, pk, pk_size, 0, 0, NULL, 0);
        snprintf(full, sizeof full, "%s%s", f->prefix, rel);
        npe_x_recs_add(&repl, full, code, code_size, 1, 0, NULL, 0);
        r = npe_x_write_archive(f->zip, dst, &repl, NULL, &e);
        CHECK_MSG(r == 0, "%s", e.msg);
    }
    free(pk);
    free(code);
out:
    npe_x_recs_free(&repl);
    npe_torch_close(f);
    return r;
}

static void test_mobilenet(const char *models)
{
    char model[1024], shared[1024];
    snprintf(model, sizeof model, "%s/mobilenet_v2.pt", models);
    if (access(model, R_OK) != 0) {
        printf("%s not found: the depthwise cases are skipped\n", model);
        return;
    }
    npe_error e = {0};
    npe_array x = input(1, 3, 64, 64, 11), y = {0}, yz = {0}, yr = {0}, ys = {0};
    save("mb_in.npy", &x);

    /* pruning by hand matches the original with those hidden channels zeroed at the project
     * conv's inputs (a depthwise conv keeps channels apart) */
    npe_graph *g = import(model);
    if (!g)
        goto out_free;
    npe_graph *gz = NULL;
    CHECK_EQ_INT(npe_graph_clone(g, &gz), 0);
    zero_inputs(gz, "features.15.conv.2.weight", mb_drop, MB_NDROP);
    run(gz, &x, &yz);
    npe_graph_destroy(gz);
    prune_mobilenet(g);
    if (run(g, &x, &y) == 0) {
        double d = rel_diff(&y, &yz);
        CHECK_MSG(d < 1e-4, "pruned vs zeroed original: %g", d);
    }
    save("mb_out.npy", &y);

    int r = npe_ts_export(g, model, out_path("mb_pruned.pt"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    fprintf(cases, "jit mb_pruned.pt mb_in.npy mb_out.npy\n");
    npe_torch_file *tf = NULL;
    if (!npe_torch_open(out_path("mb_pruned.pt"), &tf, &e)) {
        /* the groups literal rewritten in the depthwise conv's own class, its debug info gone */
        const char *cls = module_class(tf, "features.15.conv.1.0");
        const char *dot = strrchr(cls, '.');
        char rel[512];
        snprintf(rel, sizeof rel, "code/%.*s.py", dot ? (int)(dot - cls) : 0, cls);
        for (char *p = rel + 5; *p; p++)
            if (*p == '.' && strcmp(p, ".py") != 0)
                *p = '/';
        size_t n = 0;
        char *code = record(out_path("mb_pruned.pt"), rel, &n);
        CHECK_MSG(code && strstr(code, "False, [0, 0], 957, False"), "%s", rel);
        free(code);
        strcat(rel, ".debug_pkl");
        CHECK(record(out_path("mb_pruned.pt"), rel, &n) == NULL);
        npe_torch_close(tf);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    /* the state_dict against the pruned TorchScript's own state_dict() (check_export.py) */
    r = npe_state_dict_export(g, out_path("mb_state.pth"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    fprintf(cases, "state_vs_jit mb_state.pth mb_pruned.pt\n");
    /* the full model, when check_export.py could make one (torchvision's class with the same
     * weights): the depthwise conv's groups and channel counts follow */
    if (access(out_path("mb_full_in.pth"), R_OK) == 0) {
        r = npe_full_model_export(g, out_path("mb_full_in.pth"), out_path("mb_full.pth"), &e);
        CHECK_MSG(r == 0, "%s", e.msg);
        npe_torch_file *ff = NULL;
        if (!r && !npe_torch_open(out_path("mb_full.pth"), &ff, &e)) {
            CHECK_STR(module_attr(ff, "features.15.conv.1.0", "groups"), "957");
            CHECK_STR(module_attr(ff, "features.15.conv.1.0", "in_channels"), "957");
            CHECK_STR(module_attr(ff, "features.15.conv.1.0", "out_channels"), "957");
            CHECK_STR(module_attr(ff, "features.15.conv.0.0", "out_channels"), "957");
            CHECK_STR(module_attr(ff, "features.15.conv.2", "in_channels"), "957");
            CHECK_STR(module_attr(ff, "features.16.conv.1.0", "groups"), "960");
            npe_torch_close(ff);
        }
        fprintf(cases, "full mb_full.pth mb_in.npy mb_out.npy\n");
    }
    /* 11 storages, data.pkl, one code record changed; its .debug_pkl dropped */
    CHECK_EQ_INT(compare_archives(model, out_path("mb_pruned.pt")), 14);
    npe_graph *g2 = import(out_path("mb_pruned.pt"));
    if (g2 && run(g2, &x, &yr) == 0)
        CHECK_MSG(rel_diff(&yr, &y) == 0, "re-imported: %g", rel_diff(&yr, &y));
    npe_graph_destroy(g2);
    npe_graph_destroy(g);
    g = NULL;

    /* the same pruning when features.15's and features.16's depthwise convs share one class:
     * the exporter must give one of them a copy of the class */
    snprintf(shared, sizeof shared, "%s", out_path("mb_shared.pt"));
    if (make_shared(model, shared) != 0)
        goto out_free;
    fprintf(cases, "jit_same %s mb_shared.pt mb_in.npy\n", abs_path(model));
    fprintf(cases, "types_same mb_shared.pt features.15.conv.1.0 features.16.conv.1.0\n");
    g = import(shared);
    if (!g)
        goto out_free;
    prune_mobilenet(g);
    run(g, &x, &ys);
    CHECK_MSG(rel_diff(&ys, &y) < 1e-6, "shared-class model pruned: %g", rel_diff(&ys, &y));
    save("mb_split_out.npy", &ys);
    r = npe_ts_export(g, shared, out_path("mb_split.pt"), &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    fprintf(cases, "jit mb_split.pt mb_in.npy mb_split_out.npy\n");
    fprintf(cases, "types_differ mb_split.pt features.15.conv.1.0 features.16.conv.1.0\n");
    if (!npe_torch_open(out_path("mb_split.pt"), &tf, &e)) {
        const char *c14 = module_class(tf, "features.15.conv.1.0");
        const char *c15 = module_class(tf, "features.16.conv.1.0");
        CHECK_MSG(strcmp(c14, c15) != 0, "%s", c14);
        CHECK_MSG(strstr(c15, "___torch_mangle_"), "%s", c15);
        /* the copy keeps 960, the original class (features.15's) says 957 */
        char rel[512];
        const char *dot = strrchr(c15, '.');
        snprintf(rel, sizeof rel, "code/%.*s.py", dot ? (int)(dot - c15) : 0, c15);
        for (char *p = rel + 5; *p; p++)
            if (*p == '.' && strcmp(p, ".py") != 0)
                *p = '/';
        size_t n = 0;
        char *code = record(out_path("mb_split.pt"), rel, &n);
        CHECK_MSG(code && strstr(code, "[0, 0], 960, False") && strstr(code, c15), "%s", rel);
        free(code);
        npe_torch_close(tf);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    g2 = import(out_path("mb_split.pt"));
    npe_array_free(&yr);
    if (g2 && run(g2, &x, &yr) == 0)
        CHECK_MSG(rel_diff(&yr, &ys) == 0, "re-imported split model: %g", rel_diff(&yr, &ys));
    npe_graph_destroy(g2);
out_free:
    npe_graph_destroy(g);
    npe_array_free(&x);
    npe_array_free(&y);
    npe_array_free(&yz);
    npe_array_free(&yr);
    npe_array_free(&ys);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    if (argc > 2) {
        snprintf(out_dir, sizeof out_dir, "%s", argv[2]);
        mkdir(out_dir, 0777);
        keep_files = 1;
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(out_dir, sizeof out_dir, "%s/npe_export_XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(out_dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    char cases_path[1100];
    snprintf(cases_path, sizeof cases_path, "%s/cases.txt", out_dir);
    cases = fopen(cases_path, "w");
    if (!cases) {
        perror(cases_path);
        return 1;
    }
    test_fashion();
    if (argc > 3)
        test_mobilenet(argv[3]);
    fclose(cases);
    if (!keep_files) {
        for (int i = 0; i < n_written; i++)
            unlink(written[i]);
        unlink(cases_path);
        rmdir(out_dir);
    }
    for (int i = 0; i < n_written; i++)
        free(written[i]);
    return tu_finish("export");
}
