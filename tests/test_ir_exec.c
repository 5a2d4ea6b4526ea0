/* Tests of the graph IR, shape inference, the TorchScript importer and the executor: a graph built
 * by hand with shape arithmetic (values computed by hand), the bundled Fashion-MNIST model against
 * PyTorch's outputs (tests/gen_ts_fixtures.py wrote them with torch.jit.load of the same file),
 * forward_name, cut outputs, the errors a user meets (scripted model, unknown op, wrong input),
 * and in-place ops on tensors with views, in archives written here from TorchScript code with
 * results worked out by hand.
 * Usage: test_ir_exec [SOURCE_ROOT]  (default: the current directory) */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec.h"
#include "formats/npy.h"
#include "formats/pickle.h"
#include "formats/zip.h"
#include "importers/torchscript.h"
#include "kernels/cpu/threadpool.h"
#include "testutil.h"

#include <unistd.h>

static const char *root = ".";

static char *path_of(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, rel);
    return buf[k];
}

/* max |a - b| / max |b|, the tolerance rule of the conformance suite. */
static double rel_diff(const npe_array *a, const npe_array *b)
{
    int64_t n = npe_array_numel(b);
    if (a->ndim != b->ndim || npe_array_numel(a) != n)
        return INFINITY;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return INFINITY;
    const float *x = a->data, *y = b->data;
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= md))
            md = d;
        if (fabs((double)y[i]) > mr)
            mr = fabs((double)y[i]);
    }
    return md / (mr > 0 ? mr : 1);
}

static int load(const char *rel, npe_array *a)
{
    npe_error e = {0};
    int r = npe_npy_load(path_of(rel), a, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    return r;
}

/* ---- A graph built by hand ------------------------------------------------------------------- *
 * y = reshape(x, [int(floor_divide(NumToTensor(size(x, 0)), c1)), -1]) * 2.0
 * a, b = chunk(y, 2, 1);  z = cat([b, a], 1);  s = sum(z, [1])
 * With x[n] = 8n .. 8n+7: z[n] = 2*(8n+4..8n+7), 2*(8n..8n+3) and s[n] = 128n + 56. */
static void test_hand_graph(void)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    CHECK_EQ_INT(npe_graph_create(&g), 0);
    int x = npe_graph_add_value(g, NPE_VT_TENSOR, "x");
    g->values[x].flags |= NPE_VF_INPUT;
    int zero = npe_graph_add_int(g, 0, NULL), one = npe_graph_add_int(g, 1, NULL);
    int n = npe_graph_add_node(g, NPE_OP_SIZE, (int[]){x, zero}, 2, 1, "", NULL, &e);
    int sz = g->nodes[n].out[0];
    n = npe_graph_add_node(g, NPE_OP_NUM_TO_TENSOR, &sz, 1, 1, "", NULL, &e);
    int t = g->nodes[n].out[0];
    int64_t c1v = 1;
    int c1 = npe_graph_add_tensor_data(g, "CONSTANTS.c0", NPE_VF_CONST, NPE_DTYPE_I64, 0, NULL,
                                       &c1v, NPE_DTYPE_I64);
    CHECK(c1 >= 0);
    n = npe_graph_add_node(g, NPE_OP_FLOOR_DIV, (int[]){t, c1}, 2, 1, "", NULL, &e);
    int q = g->nodes[n].out[0];
    n = npe_graph_add_node(g, NPE_OP_INT, &q, 1, 1, "", NULL, &e);
    int qi = g->nodes[n].out[0];
    int m1 = npe_graph_add_int(g, -1, NULL);
    int shape = npe_graph_add_list(g, (int[]){qi, m1}, 2, 0, NULL);
    n = npe_graph_add_node(g, NPE_OP_RESHAPE, (int[]){x, shape}, 2, 1, "flat", NULL, &e);
    int v = g->nodes[n].out[0];
    int two = npe_graph_add_float(g, 2.0, NULL);
    n = npe_graph_add_node(g, NPE_OP_MUL, (int[]){v, two}, 2, 1, "scale", NULL, &e);
    int y = g->nodes[n].out[0];
    int dead = npe_graph_add_node(g, NPE_OP_RELU, &y, 1, 1, "unused", NULL, &e);
    CHECK(dead >= 0);
    int twoi = npe_graph_add_int(g, 2, NULL);
    n = npe_graph_add_node(g, NPE_OP_CHUNK, (int[]){y, twoi, one}, 3, 2, "split", NULL, &e);
    int a = g->nodes[n].out[0], b = g->nodes[n].out[1];
    CHECK_STR(g->values[a].name, "split");
    CHECK_STR(g->values[b].name, "split:1");
    n = npe_graph_add_node(g, NPE_OP_CAT, (int[]){b, a, one}, 3, 1, "", NULL, &e);
    int z = g->nodes[n].out[0];
    CHECK_STR(g->values[z].name, "cat");
    int dims = npe_graph_add_list(g, &one, 1, 0, NULL);
    int fls = npe_graph_add_bool(g, 0, NULL);
    n = npe_graph_add_node(g, NPE_OP_SUM, (int[]){z, dims, fls, npe_graph_none(g)}, 4, 1, "", NULL, &e);
    int s = g->nodes[n].out[0];
    CHECK_EQ_INT(npe_graph_set_inputs(g, &x, 1), 0);
    CHECK_EQ_INT(npe_graph_set_outputs(g, (int[]){s, z}, 2), 0);
    CHECK_EQ_INT(npe_graph_validate(g, &e), 0);

    /* users, through a list too */
    int *users = NULL;
    CHECK_EQ_INT(npe_graph_users(g, qi, &users), 1);
    free(users);
    CHECK_EQ_INT(npe_graph_users(g, y, &users), 2); /* the dead relu and the chunk */
    free(users);

    int nodes_before = g->n_nodes;
    CHECK_EQ_INT(npe_graph_remove_dead(g, &e), 0);
    CHECK_EQ_INT(g->n_nodes, nodes_before - 1);
    CHECK_EQ_INT(npe_graph_find_value(g, "unused"), -1);
    CHECK_EQ_INT(npe_graph_validate(g, &e), 0);
    s = g->outputs[0];
    z = g->outputs[1];

    npe_kernels k;
    npe_kernels_init_ref(&k);
    npe_exec *xe = NULL;
    CHECK_EQ_INT(npe_exec_create(g, &k, 0, &xe, &e), 0);
    for (int batch = 1; batch <= 3; batch += 2) {
        npe_array in = {0};
        in.dtype = NPE_DTYPE_F32;
        in.ndim = 4;
        in.shape[0] = batch;
        in.shape[1] = in.shape[2] = in.shape[3] = 2;
        in.nbytes = (size_t)batch * 8 * sizeof(float);
        in.data = malloc(in.nbytes);
        for (int i = 0; i < batch * 8; i++)
            ((float *)in.data)[i] = (float)i;
        npe_array out[2] = {{0}};
        int r = npe_exec_run(xe, NULL, &in, 1, out, 2, &e);
        CHECK_MSG(r == 0, "%s", e.msg);
        if (!r) {
            /* the reshape followed the batch: shape arithmetic stayed symbolic */
            CHECK_EQ_INT(g->values[z].ndim, 2);
            CHECK_EQ_INT(g->values[z].shape[0], batch);
            CHECK_EQ_INT(out[0].ndim, 1);
            CHECK_EQ_INT(out[0].shape[0], batch);
            CHECK_EQ_INT(out[1].shape[1], 8);
            for (int i = 0; i < batch; i++) {
                CHECK(((float *)out[0].data)[i] == (float)(128 * i + 56));
                const float *row = (const float *)out[1].data + 8 * i;
                CHECK(row[0] == 2.0f * (8 * i + 4) && row[3] == 2.0f * (8 * i + 7));
                CHECK(row[4] == 2.0f * (8 * i) && row[7] == 2.0f * (8 * i + 3));
            }
        }
        npe_array_free(&out[0]);
        npe_array_free(&out[1]);
        npe_array_free(&in);
    }
    /* int() of the floor division was evaluated by inference (static) */
    int qi2 = g->nodes[3].out[0];
    CHECK(g->values[qi2].flags & NPE_VF_KNOWN);
    CHECK_EQ_INT(g->values[qi2].i, 3);
    CHECK(g->nodes[3].flags & NPE_NF_STATIC);

    /* bad graphs are refused */
    CHECK(npe_graph_add_node(g, NPE_OP_CONV, &x, 1, 1, "", NULL, &e) < 0);
    CHECK(strstr(e.msg, "conv takes 9..9 inputs") != NULL);
    int lst = npe_graph_add_list(g, &x, 1, 0, NULL);
    CHECK_EQ_INT(npe_graph_set_outputs(g, &lst, 1), 0);
    CHECK(npe_graph_validate(g, &e) != 0);
    CHECK(strstr(e.msg, "output 0 is not a tensor") != NULL);
    npe_exec_destroy(xe);
    npe_graph_destroy(g);
}

/* YOLO-style grids: a = arange(size(x, 2)), b = arange(0.5, size(x, 3), 1.0),
 * yv, xv = meshgrid([a, b], "ij"), y = (x + xv ** 2) * yv. For x of shape [1, 1, 2, 3] holding
 * 0..5: row 0 is zero (yv = 0), row 1 is (3 + j) + (j + 0.5)^2 = 3.25, 6.25, 11.25. */
static void test_grid_factories(void)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    npe_graph_create(&g);
    int x = npe_graph_add_value(g, NPE_VT_TENSOR, "x");
    int two = npe_graph_add_int(g, 2, NULL), three = npe_graph_add_int(g, 3, NULL);
    int none = npe_graph_none(g);
    int n = npe_graph_add_node(g, NPE_OP_SIZE, (int[]){x, two}, 2, 1, "", NULL, &e);
    int h = g->nodes[n].out[0];
    n = npe_graph_add_node(g, NPE_OP_SIZE, (int[]){x, three}, 2, 1, "", NULL, &e);
    int w = g->nodes[n].out[0];
    int zero = npe_graph_add_int(g, 0, NULL), one = npe_graph_add_int(g, 1, NULL);
    n = npe_graph_add_node(g, NPE_OP_ARANGE, (int[]){zero, h, one, none}, 4, 1, "", NULL, &e);
    int a = g->nodes[n].out[0];
    int half = npe_graph_add_float(g, 0.5, NULL), onef = npe_graph_add_float(g, 1.0, NULL);
    n = npe_graph_add_node(g, NPE_OP_ARANGE, (int[]){half, w, onef, none}, 4, 1, "", NULL, &e);
    int b = g->nodes[n].out[0];
    int ij = npe_graph_add_str(g, "ij", NULL);
    n = npe_graph_add_node(g, NPE_OP_MESHGRID, (int[]){a, b, ij}, 3, 2, "grid", NULL, &e);
    int yv = g->nodes[n].out[0], xv = g->nodes[n].out[1];
    n = npe_graph_add_node(g, NPE_OP_POW, (int[]){xv, two}, 2, 1, "", NULL, &e);
    int p = g->nodes[n].out[0];
    n = npe_graph_add_node(g, NPE_OP_ADD, (int[]){x, p, one}, 3, 1, "", NULL, &e);
    int s = g->nodes[n].out[0];
    n = npe_graph_add_node(g, NPE_OP_MUL, (int[]){s, yv}, 2, 1, "", NULL, &e);
    CHECK(n >= 0);
    int y = g->nodes[n].out[0];
    npe_graph_set_inputs(g, &x, 1);
    npe_graph_set_outputs(g, &y, 1);
    CHECK_EQ_INT(npe_graph_validate(g, &e), 0);
    npe_kernels k;
    npe_kernels_init_ref(&k);
    npe_exec *xe = NULL;
    npe_exec_create(g, &k, 0, &xe, &e);
    float xin[6] = {0, 1, 2, 3, 4, 5};
    npe_array in = {0}, out = {0};
    in.dtype = NPE_DTYPE_F32;
    in.ndim = 4;
    in.shape[0] = in.shape[1] = 1;
    in.shape[2] = 2;
    in.shape[3] = 3;
    in.data = xin;
    in.nbytes = sizeof xin;
    int r = npe_exec_run(xe, NULL, &in, 1, &out, 1, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    if (!r) {
        static const float want[6] = {0, 0, 0, 3.25f, 6.25f, 11.25f};
        CHECK_EQ_INT(npe_array_numel(&out), 6);
        for (int i = 0; i < 6 && npe_array_numel(&out) == 6; i++)
            CHECK_MSG(((float *)out.data)[i] == want[i], "y[%d] = %g", i, ((float *)out.data)[i]);
        CHECK(g->nodes[g->values[yv].producer].flags & NPE_NF_STATIC);
    }
    npe_array_free(&out);
    npe_exec_destroy(xe);
    npe_graph_destroy(g);
}

/* ---- The bundled Fashion-MNIST model --------------------------------------------------------- */
static const npe_value *find(const npe_graph *g, const char *name)
{
    int v = npe_graph_find_value(g, name);
    CHECK_MSG(v >= 0, "no value '%s'", name);
    return v >= 0 ? &g->values[v] : NULL;
}

static void test_fashion_structure(npe_graph *g)
{
    CHECK_EQ_INT(g->n_inputs, 1);
    CHECK_EQ_INT(g->n_outputs, 1);
    CHECK_EQ_INT(g->n_nodes, 17);
    CHECK_STR(g->values[g->inputs[0]].name, "x");
    CHECK_STR(g->values[g->outputs[0]].name, "fc");
    const npe_value *v;
    if ((v = find(g, "stem.0.weight"))) {
        CHECK(v->flags & NPE_VF_PARAM);
        CHECK_EQ_INT(v->ndim, 4);
        CHECK_EQ_INT(v->shape[0], 32);
        CHECK(v->data != NULL);
    }
    if ((v = find(g, "stem.1.running_var")))
        CHECK((v->flags & NPE_VF_BUFFER) && !(v->flags & NPE_VF_PARAM));
    if ((v = find(g, "block.relu#1"))) /* the ReLU module called a second time (forward1) */
        CHECK_EQ_INT(g->nodes[v->producer].op, NPE_OP_RELU);
    if ((v = find(g, "block"))) /* the residual add, in the block's own code */
        CHECK_EQ_INT(g->nodes[v->producer].op, NPE_OP_ADD);
    find(g, "stem.0");
    find(g, "pool");

    /* the strided conv: its call site and the literals it was given, with their source spans */
    v = find(g, "down.0");
    if (!v)
        return;
    const npe_node *n = &g->nodes[v->producer];
    CHECK_EQ_INT(n->op, NPE_OP_CONV);
    CHECK_STR(n->scope, "down.0");
    char where[256];
    CHECK_STR(npe_span_str(g, &n->site, where, sizeof where),
              "code/__torch__/torch/nn/modules/conv/___torch_mangle_5.py:10");
    const npe_value *stride = &g->values[n->in[NPE_CONV_STRIDE]];
    CHECK_EQ_INT(stride->type, NPE_VT_LIST);
    CHECK_EQ_INT(stride->n_items, 2);
    const npe_value *s0 = &g->values[stride->items[0]];
    CHECK_EQ_INT(s0->i, 2);
    CHECK(s0->flags & NPE_VF_CONST);
    CHECK(s0->span.source >= 0);
    if (s0->span.source >= 0) {
        const npe_source *src = &g->sources[s0->span.source];
        CHECK(s0->span.offset + s0->span.len <= src->len);
        CHECK(s0->span.len == 1 && src->text[s0->span.offset] == '2');
        CHECK_EQ_INT(s0->span.line, 10);
    }
    const npe_value *groups = &g->values[n->in[NPE_CONV_GROUPS]];
    CHECK_EQ_INT(groups->type, NPE_VT_INT);
    CHECK_EQ_INT(groups->i, 1);
    CHECK(groups->span.source >= 0 &&
          g->sources[groups->span.source].text[groups->span.offset] == '1');
    CHECK_EQ_INT(g->values[n->in[NPE_CONV_BIAS]].type, NPE_VT_NONE);
    char slot[32];
    CHECK_STR(npe_op_slot_name(NPE_OP_CONV, NPE_CONV_GROUPS, 9, slot, sizeof slot), "groups");
    CHECK_EQ_INT(npe_op_slot_index(NPE_OP_BATCH_NORM, "running_var"), NPE_BN_VAR);

    char *dump = NULL;
    CHECK_EQ_INT(npe_graph_dump(g, &dump), 0);
    CHECK(dump && strstr(dump, "%fc = linear(%flatten, %fc.weight, %fc.bias)") != NULL);
    free(dump);
}

static void run_fashion(npe_graph *g, const npe_kernels *k, const npe_kexec *ex, const char *what)
{
    npe_error e = {0};
    npe_exec *x = NULL;
    CHECK_EQ_INT(npe_exec_create(g, k, 0, &x, &e), 0);
    /* batch 1, then 4 (a new plan), then 1 again (another) */
    static const char *const ins[] = {"tests/data/fashion_ref/input_b1.npy",
                                      "tests/data/fashion_ref/input_b4.npy",
                                      "tests/data/fashion_ref/input_b1.npy"};
    static const char *const refs[] = {"tests/data/fashion_ref/output_b1.npy",
                                       "tests/data/fashion_ref/output_b4.npy",
                                       "tests/data/fashion_ref/output_b1.npy"};
    for (int i = 0; i < 3; i++) {
        npe_array in = {0}, ref = {0}, out = {0};
        if (load(ins[i], &in) || load(refs[i], &ref)) {
            npe_array_free(&in);
            continue;
        }
        int r = npe_exec_run(x, ex, &in, 1, &out, 1, &e);
        CHECK_MSG(r == 0, "%s: %s", what, e.msg);
        if (!r) {
            double d = rel_diff(&out, &ref);
            CHECK_MSG(d <= 1e-4, "%s, %s: relative difference %g", what, ins[i], d);
        }
        npe_array_free(&in);
        npe_array_free(&ref);
        npe_array_free(&out);
    }
    npe_exec_destroy(x);
}

/* conv -> batch norm -> relu (stem.0, stem.1, stem.2) runs as one conv with an epilogue: the
 * outputs are bit for bit those of the separate ops (the epilogue uses their arithmetic), with
 * either kernel table and on two threads, and the fused intermediates are not readable, while
 * KEEP_ALL (which turns fusion off) still keeps them. */
static void test_fused_chains(npe_graph *g, const npe_kernels *ref, const npe_kernels *cpu,
                              const npe_kexec *ex)
{
    npe_array in = {0}, want = {0};
    if (load("tests/data/fashion_ref/input_b4.npy", &in) ||
        load("tests/data/fashion_ref/output_b4.npy", &want)) {
        npe_array_free(&in);
        return;
    }
    const int s0 = npe_graph_find_value(g, "stem.0"), s1 = npe_graph_find_value(g, "stem.1");
    const int s2 = npe_graph_find_value(g, "stem.2");
    CHECK(s0 >= 0 && s1 >= 0 && s2 >= 0);
    for (int t = 0; t < 2 && s0 >= 0 && s1 >= 0 && s2 >= 0; t++) {
        const npe_kernels *k = t ? cpu : ref;
        const npe_kexec *kx = t ? ex : NULL;
        static const unsigned flags[3] = {0, NPE_EXEC_NO_FUSE, NPE_EXEC_KEEP_ALL};
        npe_exec *x[3] = {NULL, NULL, NULL};
        npe_array out[3] = {{0}, {0}, {0}};
        npe_error e = {0};
        for (int f = 0; f < 3; f++) {
            CHECK_EQ_INT(npe_exec_create(g, k, flags[f], &x[f], &e), 0);
            CHECK_MSG(npe_exec_run(x[f], kx, &in, 1, &out[f], 1, &e) == 0, "%s", e.msg);
        }
        for (int f = 1; f < 3; f++)
            CHECK_MSG(out[f].nbytes == out[0].nbytes && out[0].data &&
                          memcmp(out[f].data, out[0].data, out[0].nbytes) == 0,
                      "%s kernels: fused output differs from flags %u", k->name, flags[f]);
        double d = rel_diff(&out[0], &want);
        CHECK_MSG(d <= 1e-4, "%s kernels, fused: relative difference %g to PyTorch", k->name, d);
        /* fused: the conv's and the batch norm's outputs were never stored; the relu's was */
        CHECK(npe_exec_value(x[0], s0) == NULL);
        CHECK(npe_exec_value(x[0], s1) == NULL);
        CHECK(npe_exec_value(x[2], s0) != NULL && npe_exec_value(x[2], s1) != NULL);
        const float *a = npe_exec_value(x[2], s2);
        CHECK(a != NULL);
        /* not fused: stem.2 is relu(stem.1), elementwise */
        const float *b1 = npe_exec_value(x[2], s1);
        if (a && b1) {
            int64_t n = npe_value_numel(&g->values[s2]), bad = 0;
            for (int64_t i = 0; i < n; i++)
                bad += a[i] != (b1[i] < 0 ? 0.0f : b1[i]);
            CHECK_MSG(bad == 0, "%lld values of stem.2 are not relu(stem.1)", (long long)bad);
        }
        for (int f = 0; f < 3; f++) {
            npe_array_free(&out[f]);
            npe_exec_destroy(x[f]);
        }
    }
    npe_array_free(&in);
    npe_array_free(&want);
}

static void test_fashion(void)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    int r = npe_ts_import(path_of("examples/fashion_mnist/model.pt"), NULL, &g, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    if (r)
        return;
    test_fashion_structure(g);

    npe_kernels ref, cpu;
    npe_kernels_init_ref(&ref);
    npe_kernels_init_cpu(&cpu, NPE_KCPU_ALL);
    run_fashion(g, &ref, NULL, "reference kernels");
    npe_kpool *pool = npe_kpool_create(2);
    npe_kexec ex;
    npe_kexec_init(&ex, pool, NULL, 0);
    run_fashion(g, &cpu, &ex, "cpu kernels, 2 threads");

    /* a clone computes the same, and is independent of the original */
    npe_graph *c = NULL;
    CHECK_EQ_INT(npe_graph_clone(g, &c), 0);
    if (c) {
        CHECK_EQ_INT(npe_graph_validate(c, &e), 0);
        CHECK_EQ_INT(npe_graph_find_value(c, "block.relu#1"), npe_graph_find_value(g, "block.relu#1"));
        run_fashion(c, &ref, NULL, "clone");
        int w = npe_graph_find_value(c, "fc.weight");
        c->values[w].data[0] += 1.0f;
        CHECK(g->values[w].data[0] != c->values[w].data[0]);
        npe_graph_destroy(c);
    }

    /* memory plan: with reuse the arena is smaller than keeping every activation */
    npe_array in = {0};
    if (!load("tests/data/fashion_ref/input_b4.npy", &in)) {
        npe_exec *a = NULL, *b = NULL;
        npe_array o1 = {0}, o2 = {0};
        npe_exec_create(g, &ref, 0, &a, &e);
        npe_exec_create(g, &ref, NPE_EXEC_KEEP_ALL, &b, &e);
        CHECK_EQ_INT(npe_exec_run(a, NULL, &in, 1, &o1, 1, &e), 0);
        CHECK_EQ_INT(npe_exec_run(b, NULL, &in, 1, &o2, 1, &e), 0);
        CHECK(npe_exec_arena_bytes(a) > 0);
        CHECK_MSG(npe_exec_arena_bytes(a) < npe_exec_arena_bytes(b) / 2, "%zu vs %zu",
                  npe_exec_arena_bytes(a), npe_exec_arena_bytes(b));
        CHECK(o1.nbytes == o2.nbytes && memcmp(o1.data, o2.data, o1.nbytes) == 0);
        /* every activation is readable with KEEP_ALL: stem.3 is the 2x2 max of stem.2 */
        int s2 = npe_graph_find_value(g, "stem.2"), s3 = npe_graph_find_value(g, "stem.3");
        const float *p2 = npe_exec_value(b, s2), *p3 = npe_exec_value(b, s3);
        CHECK(p2 && p3);
        if (p2 && p3) {
            float m = fmaxf(fmaxf(p2[0], p2[1]), fmaxf(p2[28], p2[29]));
            CHECK(p3[0] == m);
        }
        npe_array_free(&o1);
        npe_array_free(&o2);
        npe_exec_destroy(a);
        npe_exec_destroy(b);
    }
    npe_array_free(&in);
    test_fused_chains(g, &ref, &cpu, &ex);

    /* inference errors name the node, and inference runs again after an edit */
    npe_tshape bad = {4, {1, 3, 28, 28}};
    CHECK_EQ_INT(npe_graph_infer(g, &bad, 1, &e), NPE_EFORMAT);
    CHECK_MSG(strstr(e.msg, "node 'stem.0' (conv) at code/__torch__/torch/nn/modules/conv.py:10: "
                            "input has 3 channels") != NULL, "%s", e.msg);
    npe_tshape good = {4, {2, 1, 28, 28}};
    CHECK_EQ_INT(npe_graph_infer(g, &good, 1, &e), 0);
    CHECK_EQ_INT(g->values[g->outputs[0]].shape[0], 2);
    CHECK_EQ_INT(g->values[g->outputs[0]].shape[1], 10);
    int w = npe_graph_find_value(g, "stem.0.weight");
    float *smaller = calloc(16 * 9, sizeof(float));
    CHECK_EQ_INT(npe_graph_set_tensor_data(g, w, 4, (int64_t[]){16, 1, 3, 3}, smaller), 0);
    CHECK_EQ_INT(npe_graph_infer(g, &good, 1, &e), NPE_EFORMAT);
    CHECK_MSG(strstr(e.msg, "node 'stem.1' (batch_norm)") && strstr(e.msg, "must hold 16 values"),
              "%s", e.msg);
    npe_kpool_destroy(pool);
    npe_graph_destroy(g);
}

static void test_cut_outputs(void)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    const char *names[] = {"down.2"};
    npe_ts_options opt = {0};
    opt.cut_outputs = names;
    opt.n_cut_outputs = 1;
    int r = npe_ts_import(path_of("examples/fashion_mnist/model.pt"), &opt, &g, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    if (r)
        return;
    CHECK_EQ_INT(g->n_outputs, 1);
    CHECK_EQ_INT(g->n_nodes, 14); /* pool, flatten and fc are gone */
    CHECK_EQ_INT(npe_graph_find_value(g, "fc.weight"), -1);
    npe_kernels k;
    npe_kernels_init_ref(&k);
    npe_exec *x = NULL;
    npe_exec_create(g, &k, 0, &x, &e);
    npe_array in = {0}, ref = {0}, out = {0};
    if (!load("tests/data/fashion_ref/input_b1.npy", &in) &&
        !load("tests/data/fashion_ref/cut_down2_b1.npy", &ref)) {
        CHECK_EQ_INT(npe_exec_run(x, NULL, &in, 1, &out, 1, &e), 0);
        CHECK_EQ_INT(out.ndim, 4);
        CHECK_EQ_INT(out.shape[1], 64);
        CHECK_EQ_INT(out.shape[2], 7);
        double d = rel_diff(&out, &ref);
        CHECK_MSG(d <= 1e-4, "cut at down.2: relative difference %g", d);
    }
    npe_array_free(&in);
    npe_array_free(&ref);
    npe_array_free(&out);
    npe_exec_destroy(x);
    npe_graph_destroy(g);

    names[0] = "no.such.layer";
    CHECK_EQ_INT(npe_ts_import(path_of("examples/fashion_mnist/model.pt"), &opt, &g, &e),
                 NPE_ENOTFOUND);
    CHECK(g == NULL);
    CHECK(strstr(e.msg, "no tensor called 'no.such.layer'") != NULL);
}

static void test_forward_name(void)
{
    static const struct {
        const char *method, *ref;
    } cases[] = {{NULL, "tests/data/ts/two_methods_forward.npy"},
                 {"dummy_forward", "tests/data/ts/two_methods_dummy.npy"}};
    npe_kernels k;
    npe_kernels_init_ref(&k);
    for (int i = 0; i < 2; i++) {
        npe_graph *g = NULL;
        npe_error e = {0};
        npe_ts_options opt = {0};
        opt.forward_name = cases[i].method;
        int r = npe_ts_import(path_of("tests/data/ts/two_methods.pt"), &opt, &g, &e);
        CHECK_MSG(r == 0, "%s", e.msg);
        if (r)
            continue;
        /* dummy_forward calls the submodules a second time: forward1 of each */
        CHECK_EQ_INT(g->n_nodes, cases[i].method ? 3 : 4);
        npe_exec *x = NULL;
        npe_exec_create(g, &k, 0, &x, &e);
        npe_array in = {0}, ref = {0}, out = {0};
        if (!load("tests/data/ts/two_methods_in.npy", &in) && !load(cases[i].ref, &ref)) {
            CHECK_EQ_INT(npe_exec_run(x, NULL, &in, 1, &out, 1, &e), 0);
            double d = rel_diff(&out, &ref);
            CHECK_MSG(d <= 1e-4, "%s: relative difference %g", cases[i].ref, d);
        }
        npe_array_free(&in);
        npe_array_free(&ref);
        npe_array_free(&out);
        npe_exec_destroy(x);
        npe_graph_destroy(g);
    }
    npe_graph *g = NULL;
    npe_error e = {0};
    npe_ts_options opt = {0};
    opt.forward_name = "predict";
    CHECK_EQ_INT(npe_ts_import(path_of("tests/data/ts/two_methods.pt"), &opt, &g, &e), NPE_ENOTFOUND);
    CHECK_MSG(strstr(e.msg, "has no method 'predict'; it has: forward, dummy_forward") != NULL,
              "%s", e.msg);
}

static void test_errors(void)
{
    static const struct {
        const char *file;
        int code;
        const char *want[3];
    } cases[] = {
        {"tests/data/ts/scripted.pt", NPE_EUNSUPPORTED,
         {"code/__torch__.py:8: 'if' statement", "torch.jit.script", "torch.jit.trace"}},
        {"tests/data/ts/unsupported_op.pt", NPE_EUNSUPPORTED,
         {"code/__torch__.py:10: op 'torch.cumsum' is not supported", NULL, NULL}},
        {"examples/fashion_mnist/model_state.pth", NPE_EUNSUPPORTED,
         {"is a state_dict archive, not TorchScript", NULL, NULL}},
        {"tests/data/ts/no_such_file.pt", NPE_EIO, {"no_such_file.pt", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        npe_graph *g = (npe_graph *)&g;
        npe_error e = {0};
        int r = npe_ts_import(path_of(cases[i].file), NULL, &g, &e);
        CHECK_MSG(r == cases[i].code, "%s: rc %d (%s)", cases[i].file, r, e.msg);
        CHECK(g == NULL);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            CHECK_MSG(strstr(e.msg, cases[i].want[k]) != NULL, "%s: '%s' not in '%s'",
                      cases[i].file, cases[i].want[k], e.msg);
    }
}

static void test_eval_entry(void)
{
    npe_array in = {0}, ref = {0};
    if (load("tests/data/fashion_ref/input_b4.npy", &in) ||
        load("tests/data/fashion_ref/output_b4.npy", &ref)) {
        npe_array_free(&in);
        return;
    }
    npe_array *outs = NULL;
    int n = 0;
    npe_error e = {0};
    int r = npe_eval_torchscript(path_of("examples/fashion_mnist/model.pt"), NULL, &in, 1, &outs,
                                 &n, 2, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    if (!r) {
        CHECK_EQ_INT(n, 1);
        double d = rel_diff(&outs[0], &ref);
        CHECK_MSG(d <= 1e-4, "npe_eval_torchscript: relative difference %g", d);
        for (int i = 0; i < n; i++)
            npe_array_free(&outs[i]);
        free(outs);
    }
    /* wrong number of inputs */
    r = npe_eval_torchscript(path_of("examples/fashion_mnist/model.pt"), NULL, &in, 0, &outs, &n,
                             1, &e);
    CHECK_EQ_INT(r, NPE_EINVAL);
    CHECK(strstr(e.msg, "takes 1 input, 0 given") != NULL);
    npe_array_free(&in);
    npe_array_free(&ref);
}

/* ---- In-place ops, in archives written here ------------------------------------------------ */
static char ts_dir[64];

/* Write a TorchScript archive whose root module (class __torch__.M, nothing in it) has a forward
 * of x running body (statements indented by four spaces), and import it. The statements start
 * at line 7 of code/__torch__.py. */
static int import_body(const char *body, npe_graph **g, npe_error *e)
{
    char path[128], code[4096];
    snprintf(path, sizeof path, "%s/m.pt", ts_dir);
    snprintf(code, sizeof code,
             "class M(Module):\n"
             "  __parameters__ = []\n"
             "  __buffers__ = []\n"
             "  training : bool\n"
             "  def forward(self: __torch__.M,\n"
             "    x: Tensor) -> Tensor:\n"
             "%s", body);
    npe_pkl *doc = npe_pkl_new();
    npe_pv *obj = doc ? npe_pv_new_object(doc, npe_pv_new_global(doc, "__torch__", "M"),
                                          npe_pv_new_seq(doc, NPE_PV_TUPLE)) : NULL;
    npe_pv *st = doc ? npe_pv_new_dict(doc, NULL) : NULL;
    void *pk = NULL;
    size_t n = 0;
    npe_zip_writer *w = NULL;
    int r = !obj || !st || npe_pv_dict_set(doc, st, npe_pv_new_str(doc, "training"),
                                           npe_pv_new_bool(doc, 0));
    if (!r) {
        obj->u.call.state = st;
        r = npe_pkl_dump(obj, 0, &pk, &n, e);
    }
    if (!r && !(r = npe_zip_writer_open(path, 0, &w, e))) {
        if ((r = npe_zip_writer_add(w, "m/data.pkl", pk, n, 0, e)) ||
            (r = npe_zip_writer_add(w, "m/code/__torch__.py", code, strlen(code), 1, e)) ||
            (r = npe_zip_writer_add(w, "m/version", "3\n", 2, 0, e)))
            npe_zip_writer_abort(w);
        else
            r = npe_zip_writer_finish(w, e);
    }
    free(pk);
    npe_pkl_free(doc);
    CHECK_MSG(r == 0, "writing %s: %s", path, e->msg);
    if (r)
        return r;
    r = npe_ts_import(path, NULL, g, e);
    remove(path);
    return r;
}

/* Run body on the 2x3 input x and compare every output with want (outputs back to back). */
static void check_body(const char *what, const char *body, const float x[6], int n_out,
                       const float *want, int n_want)
{
    npe_graph *g = NULL;
    npe_error e = {0};
    int r = import_body(body, &g, &e);
    CHECK_MSG(r == 0, "%s: %s", what, e.msg);
    if (r)
        return;
    CHECK_EQ_INT(g->n_outputs, n_out);
    npe_kernels k;
    npe_kernels_init_ref(&k);
    npe_exec *xe = NULL;
    npe_array in = {0}, out[8] = {{0}};
    in.dtype = NPE_DTYPE_F32;
    in.ndim = 2;
    in.shape[0] = 2;
    in.shape[1] = 3;
    in.nbytes = 6 * sizeof(float);
    in.data = (void *)x;
    CHECK_EQ_INT(npe_exec_create(g, &k, 0, &xe, &e), 0);
    r = npe_exec_run(xe, NULL, &in, 1, out, n_out, &e);
    CHECK_MSG(r == 0, "%s: %s", what, e.msg);
    int at = 0;
    for (int i = 0; !r && i < n_out; i++) {
        const float *o = out[i].data;
        for (int64_t j = 0; j < npe_array_numel(&out[i]) && at < n_want; j++, at++)
            CHECK_MSG(o[j] == want[at], "%s: output %d element %lld is %g, want %g", what, i,
                      (long long)j, o[j], want[at]);
        npe_array_free(&out[i]);
    }
    if (!r)
        CHECK_MSG(at == n_want, "%s: %d values out, %d wanted", what, at, n_want);
    npe_exec_destroy(xe);
    npe_graph_destroy(g);
}

static void check_refused(const char *what, const char *body, const char *const want[3])
{
    npe_graph *g = NULL;
    npe_error e = {0};
    int r = import_body(body, &g, &e);
    CHECK_MSG(r == NPE_EUNSUPPORTED, "%s: rc %d (%s)", what, r, e.msg);
    CHECK(g == NULL);
    for (int k = 0; k < 3 && want[k]; k++)
        CHECK_MSG(strstr(e.msg, want[k]) != NULL, "%s: '%s' not in '%s'", what, want[k], e.msg);
    npe_graph_destroy(g);
}

static void test_inplace(void)
{
    snprintf(ts_dir, sizeof ts_dir, "/tmp/npe_test_ir_exec.XXXXXX");
    if (!mkdtemp(ts_dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    /* a view made before relu_ of its base sees the ReLU (it once came out without it) */
    static const float x1[6] = {-2, -1, 0, 1, 2, 3};
    static const float w1[6] = {0, 0, 0, 1, 2, 3};
    check_body("view then relu_",
               "    _0 = torch.view(x, [-1])\n"
               "    _1 = torch.relu_(x)\n"
               "    return _0\n", x1, 1, w1, 6);

    /* writes through a select (fill_), a transpose (mul_) and a slice (copy_ of a value read
     * after the first two writes); x = [[1, 2, 3], [4, 5, 6]]:
     *   fill column 0 with 7:         [[7, 2, 3], [7, 5, 6]]
     *   times 2 through x^T:          [[14, 4, 6], [14, 10, 12]]
     *   x[:, 1:3] = -x[:, 0:2]:       [[14, -14, -4], [14, -14, -10]] */
    static const float x2[6] = {1, 2, 3, 4, 5, 6};
    static const float w2[] = {14, -14, -4, 14, -14, -10, /* x */
                               14, 14,                     /* s = x[:, 0] */
                               14, 14, -14, -14, -4, -10,  /* t = x^T */
                               -14, -4, -14, -10};         /* u = x[:, 1:3] */
    check_body("writes through views",
               "    s = torch.select(x, 1, 0)\n"
               "    _1 = torch.fill_(s, 7.)\n"
               "    t = torch.transpose(x, 0, 1)\n"
               "    _2 = torch.mul_(t, 2.)\n"
               "    u = torch.slice(x, 1, 1, 3, 1)\n"
               "    _3 = torch.copy_(u, torch.neg(torch.slice(x, 1, 0, 2, 1)))\n"
               "    return (x, s, t, _3)\n", x2, 4, w2, (int)(sizeof w2 / sizeof w2[0]));

    /* contiguous() of a permute is a copy or a view depending on the strides: writing to it is
     * fine while its base is not read again, and refused when it is */
    static const float x3[6] = {-1, 2, -3, 4, -5, 6};
    static const float w3[6] = {0, 4, 2, 0, 0, 6};
    check_body("contiguous then relu_",
               "    p = torch.permute(x, [1, 0])\n"
               "    y = torch.contiguous(p)\n"
               "    _1 = torch.relu_(y)\n"
               "    return _1\n", x3, 1, w3, 6);
    static const char *const want3[3] = {
        "code/__torch__.py:10: ", "in-place torch.relu_ at code/__torch__.py:9",
        "'contiguous' (contiguous) at code/__torch__.py:8"};
    check_refused("contiguous then relu_, base read",
                  "    p = torch.permute(x, [1, 0])\n"
                  "    y = torch.contiguous(p)\n"
                  "    _1 = torch.relu_(y)\n"
                  "    return (x, _1)\n", want3);
    static const char *const want4[3] = {
        "code/__torch__.py:9: ", "after the in-place torch.sigmoid_ at code/__torch__.py:8",
        "(reshape) at code/__torch__.py:7"};
    check_refused("reshape of a permute, base written",
                  "    y = torch.reshape(torch.permute(x, [1, 0]), [-1])\n"
                  "    _1 = torch.sigmoid_(x)\n"
                  "    return y\n", want4);
    static const char *const want5[3] = {
        "code/__torch__.py:8: in-place torch.relu_ writes to the result of",
        "(expand) at code/__torch__.py:7", "share memory"};
    check_refused("relu_ of an expand",
                  "    e = torch.expand(x, [2, 2, 3])\n"
                  "    _1 = torch.relu_(e)\n"
                  "    return _1\n", want5);
    rmdir(ts_dir);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    test_hand_graph();
    test_grid_factories();
    test_fashion();
    test_cut_outputs();
    test_forward_name();
    test_errors();
    test_eval_entry();
    test_inplace();
    return tu_finish("ir_exec");
}
