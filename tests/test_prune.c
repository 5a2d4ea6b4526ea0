/* Tests of channel dependency groups, pruning and counting. Every pruned graph must run, and equal
 * the ORIGINAL graph with the removed channels zeroed at their consumers' inputs (the weights'
 * input slices set to zero in a clone: an independent way to compute what the cut model must
 * compute); sparsity 0 must leave the graph byte-identical; counts are checked against hand
 * formulas (Fashion-MNIST example, hand-built graphs) and against a recount from the shapes.
 * Usage: test_prune [SOURCE_ROOT [MODELS_DIR]]  (MODELS_DIR: tests/gen_models.py's output) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/exec.h"
#include "engine/prune.h"
#include "formats/npy.h"
#include "importers/torchscript.h"
#include "testutil.h"

static const char *root = ".";
static const char *models_dir = NULL;
static npe_kernels kern;
static int prepped_models; /* models whose executors shared Winograd's prepared filters */

/* ---- Helpers --------------------------------------------------------------------------------- */
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

/* Run g on inputs; outputs[0..g->n_outputs). Returns 0 or the error code (message printed). */
static int run(npe_graph *g, const npe_array *in, int n_in, npe_array *out, const char *what)
{
    npe_error e = {0};
    npe_exec *x = NULL;
    int r = npe_exec_create(g, &kern, 0, &x, &e);
    if (!r)
        r = npe_exec_run(x, NULL, in, n_in, out, g->n_outputs, &e);
    CHECK_MSG(r == 0, "%s: %s", what, e.msg);
    npe_exec_destroy(x);
    return r;
}

/* Byte-identical graphs: every value's type, shape, data and scalar. */
static int graphs_equal(const npe_graph *a, const npe_graph *b)
{
    if (a->n_values != b->n_values || a->n_nodes != b->n_nodes)
        return 0;
    for (int i = 0; i < a->n_values; i++) {
        const npe_value *x = &a->values[i], *y = &b->values[i];
        if (x->type != y->type || x->ndim != y->ndim || x->i != y->i ||
            x->numel_data != y->numel_data ||
            memcmp(x->shape, y->shape, sizeof x->shape) != 0 ||
            (x->numel_data && memcmp(x->data, y->data, (size_t)x->numel_data * 4) != 0))
            return 0;
    }
    return 1;
}

/* In a clone of the original graph, zero the input slices of every consumer weight that pruning
 * removes: the model the pruned one must equal. */
static int zero_removed_inputs(npe_graph *c, const npe_groups *G, const npe_prune_plan *plan)
{
    for (int k = 0; k < G->n_consumers; k++) {
        const npe_consumer *C = &G->consumers[k];
        npe_value *w = &c->values[C->in.value];
        int d = C->in.dim;
        int64_t outer = 1, inner = 1;
        for (int j = 0; j < d; j++)
            outer *= w->shape[j];
        for (int j = d + 1; j < w->ndim; j++)
            inner *= w->shape[j];
        for (int i = 0; i < C->in.n; i++) {
            npe_chanref r = C->in.at[i];
            if (r.group < 0 || !plan->kept[r.group])
                continue;
            int kept = 0;
            for (int q = 0; q < plan->n_kept[r.group] && !kept; q++)
                kept = plan->kept[r.group][q] == r.chan;
            if (kept)
                continue;
            if (C->groups > 1) {
                /* input i of a grouped conv: column i % (Cin/g) of the rows of conv group
                 * i / (Cin/g) */
                int64_t cols = w->shape[1], per = w->shape[0] / C->groups, b = i / cols;
                for (int64_t o = b * per; o < (b + 1) * per; o++)
                    memset(w->data + (o * cols + i % cols) * inner, 0,
                           (size_t)inner * sizeof(float));
                continue;
            }
            for (int64_t o = 0; o < outer; o++)
                memset(w->data + (o * w->shape[d] + i) * inner, 0, (size_t)inner * sizeof(float));
        }
    }
    return 0;
}

/* Parameters and MACs recounted here from the shapes, independently of engine/count.c. */
static void recount(const npe_graph *g, int64_t *params, int64_t *macs)
{
    *params = *macs = 0;
    for (int v = 0; v < g->n_values; v++) {
        const npe_value *x = &g->values[v];
        if (x->type != NPE_VT_TENSOR || !(x->flags & NPE_VF_PARAM))
            continue;
        int64_t n = 1;
        for (int d = 0; d < x->ndim; d++)
            n *= x->shape[d];
        *params += n;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *n = &g->nodes[i];
        const npe_value *y = &g->values[n->out[0]];
        if (n->op == NPE_OP_CONV) {
            const npe_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
            if (g->values[n->in[6]].i) /* transposed: Cin*Hi*Wi * (Cout/g)*kh*kw */
                *macs += x->shape[1] * x->shape[2] * x->shape[3] * w->shape[1] * w->shape[2] *
                         w->shape[3];
            else /* Cout*Ho*Wo * (Cin/g)*kh*kw */
                *macs += y->shape[1] * y->shape[2] * y->shape[3] * w->shape[1] * w->shape[2] *
                         w->shape[3];
        } else if (n->op == NPE_OP_LINEAR) {
            int64_t rows = 1;
            for (int d = 1; d < y->ndim - 1; d++)
                rows *= y->shape[d];
            const npe_value *w = &g->values[n->in[1]];
            *macs += rows * w->shape[0] * w->shape[1];
        }
    }
}

static int group_named(const npe_groups *G, const char *name)
{
    int gi = npe_groups_find_name(G, name);
    CHECK_MSG(gi >= 0, "no group '%s'", name);
    return gi;
}

/* ---- Prune one graph at every sparsity / alignment and check it ------------------------------ */
typedef struct result {
    int groups, prunable;
    int64_t params_before, macs_before, params_after, macs_after; /* at s=0.6, a=1 */
    double max_diff;
} result;

static void check_model(npe_graph *g, const npe_array *in, int n_in, const char *name,
                        result *res)
{
    npe_error e = {0};
    npe_tshape shapes[8];
    for (int i = 0; i < n_in; i++) {
        shapes[i].ndim = in[i].ndim;
        for (int d = 0; d < in[i].ndim; d++)
            shapes[i].d[d] = in[i].shape[d];
    }
    npe_groups *G = NULL;
    int r = npe_groups_find(g, shapes, n_in, &G, &e);
    CHECK_MSG(r == 0, "%s: %s", name, e.msg);
    if (r)
        return;
    memset(res, 0, sizeof *res);
    res->groups = G->n_groups;
    for (int i = 0; i < G->n_groups; i++) {
        res->prunable += G->groups[i].prunable;
        CHECK_MSG(G->groups[i].prunable || G->groups[i].reason, "%s: group '%s' has no reason",
                  name, G->groups[i].name);
        CHECK_MSG(G->groups[i].channels > 0, "%s: empty group", name);
    }
    npe_counts before;
    CHECK_EQ_INT(npe_count(g, &before, &e), 0);
    int64_t rp, rm;
    recount(g, &rp, &rm);
    CHECK_MSG(before.params == rp && before.macs == rm, "%s: counts %lld/%lld, recount %lld/%lld",
              name, (long long)before.params, (long long)before.macs, (long long)rp,
              (long long)rm);
    res->params_before = before.params;
    res->macs_before = before.macs;

    npe_array ref[16] = {{0}};
    int nout = g->n_outputs < 16 ? g->n_outputs : 16;
    if (run(g, in, n_in, ref, name))
        goto out_free;

    /* (c) sparsity 0 leaves the graph as it is */
    {
        npe_prune_plan *p = NULL;
        npe_graph *c = NULL;
        CHECK_EQ_INT(npe_prune_plan_uniform(g, G, 0.0, 8, NULL, 0, &p, &e), 0);
        CHECK_EQ_INT(npe_graph_clone(g, &c), 0);
        if (p && c) {
            CHECK_EQ_INT(npe_prune_apply(c, G, p, &e), 0);
            CHECK_MSG(graphs_equal(c, g), "%s: sparsity 0 changed the graph", name);
        }
        npe_graph_destroy(c);
        npe_prune_plan_destroy(p);
    }

    /* (d) a clone borrowing g's tensors (as the analysis makes them) prunes and runs like a
     * copy, and neither pruning, inference nor destroying it touches g */
    {
        npe_prune_plan *p = NULL;
        npe_graph *snap = NULL, *copy = NULL, *shared = NULL;
        npe_array co[16] = {{0}}, so[16] = {{0}};
        CHECK_EQ_INT(npe_prune_plan_uniform(g, G, 0.6, 1, NULL, 0, &p, &e), 0);
        CHECK_EQ_INT(npe_graph_clone(g, &snap), 0);
        CHECK_EQ_INT(npe_graph_clone(g, &copy), 0);
        CHECK_EQ_INT(npe_graph_clone_shared(g, &shared), 0);
        if (p && snap && copy && shared) {
            CHECK_EQ_INT(npe_prune_apply(copy, G, p, &e), 0);
            CHECK_EQ_INT(npe_prune_apply(shared, G, p, &e), 0);
            if (!run(copy, in, n_in, co, name) && !run(shared, in, n_in, so, name)) {
                CHECK_MSG(graphs_equal(shared, copy), "%s: the borrowing clone pruned otherwise",
                          name);
                for (int k = 0; k < nout; k++)
                    CHECK_MSG(co[k].nbytes == so[k].nbytes &&
                                  memcmp(co[k].data, so[k].data, co[k].nbytes) == 0,
                              "%s: output %d of the borrowing clone differs", name, k);
            }
            npe_graph_destroy(shared);
            shared = NULL;
            CHECK_MSG(graphs_equal(g, snap), "%s: the borrowing clone changed the original",
                      name);
        }
        for (int k = 0; k < nout; k++) {
            npe_array_free(&co[k]);
            npe_array_free(&so[k]);
        }
        npe_graph_destroy(shared);
        npe_graph_destroy(copy);
        npe_graph_destroy(snap);
        npe_prune_plan_destroy(p);
    }

    /* (e) Winograd's prepared filters shared through a cache (as the analysis runs its
     * executors): executors on borrowing clones, the original's and a pruned one's (whose cut
     * weights get preparations of its own), compute what plain executors compute, bit for bit,
     * on their first run and on the next that reuses the preparations */
    {
        npe_prune_plan *p = NULL;
        npe_prep_cache *pc = NULL;
        npe_graph *plain = NULL, *cut = NULL, *c1 = NULL, *c2 = NULL;
        CHECK_EQ_INT(npe_prune_plan_uniform(g, G, 0.3, 1, NULL, 0, &p, &e), 0);
        CHECK_EQ_INT(npe_prep_cache_create((size_t)1 << 30, &pc), 0);
        CHECK_EQ_INT(npe_graph_clone(g, &plain), 0);
        CHECK_EQ_INT(npe_graph_clone(g, &cut), 0);
        CHECK_EQ_INT(npe_graph_clone_shared(g, &c1), 0);
        CHECK_EQ_INT(npe_graph_clone_shared(g, &c2), 0);
        if (p && pc && plain && cut && c1 && c2 && !npe_prune_apply(cut, G, p, &e) &&
            !npe_prune_apply(c2, G, p, &e)) {
            npe_graph *gs[4] = {plain, c1, cut, c2};
            npe_exec *xs[4] = {NULL};
            npe_array o[4][16] = {{{0}}};
            for (int k = 0; k < 4; k++) {
                CHECK_EQ_INT(npe_exec_create(gs[k], &kern, 0, &xs[k], &e), 0);
                if (xs[k] && (k == 1 || k == 3))
                    npe_exec_use_prep_cache(xs[k], pc, 0);
            }
            for (int pass = 0; pass < 2; pass++) {
                int ok = 1;
                for (int k = 0; k < 4 && ok; k++) {
                    ok = xs[k] && !npe_exec_run(xs[k], NULL, in, n_in, o[k], nout, &e);
                    CHECK_MSG(ok, "%s: %s", name, e.msg);
                }
                for (int k = 0; ok && k < nout; k++)
                    for (int v = 0; v < 2; v++)
                        CHECK_MSG(o[2 * v][k].nbytes == o[2 * v + 1][k].nbytes &&
                                      !memcmp(o[2 * v][k].data, o[2 * v + 1][k].data,
                                              o[2 * v][k].nbytes),
                                  "%s: output %d of the %s model with shared preparations "
                                  "differs (run %d)", name, k, v ? "pruned" : "original", pass);
                for (int k = 0; k < 4; k++)
                    for (int j = 0; j < nout; j++)
                        npe_array_free(&o[k][j]);
            }
            prepped_models += npe_prep_cache_bytes(pc) > 0;
            for (int k = 0; k < 4; k++)
                npe_exec_destroy(xs[k]);
        }
        npe_graph_destroy(c2);
        npe_graph_destroy(c1);
        npe_graph_destroy(cut);
        npe_graph_destroy(plain);
        npe_prep_cache_destroy(pc);
        npe_prune_plan_destroy(p);
    }

    static const double sparsities[] = {0.3, 0.6};
    static const int aligns[] = {1, 8};
    for (int si = 0; si < 2; si++)
        for (int ai = 0; ai < 2; ai++) {
            char what[256];
            snprintf(what, sizeof what, "%s at sparsity %.1f, align %d", name, sparsities[si],
                     aligns[ai]);
            npe_prune_plan *p = NULL;
            npe_graph *pruned = NULL, *masked = NULL;
            r = npe_prune_plan_uniform(g, G, sparsities[si], aligns[ai], NULL, 0, &p, &e);
            CHECK_MSG(r == 0, "%s: %s", what, e.msg);
            if (r)
                continue;
            int cut = 0;
            for (int gi = 0; gi < G->n_groups; gi++)
                if (p->kept[gi]) {
                    cut = 1;
                    /* split groups keep the rule's count of every piece */
                    const npe_group *gr = &G->groups[gi];
                    int64_t want = 0;
                    for (int q = 0; q < (gr->part ? gr->n_parts : 1); q++) {
                        int64_t m = 0;
                        for (int c = 0; c < gr->channels; c++)
                            m += !gr->part || gr->part[c] == q;
                        want += npe_prune_kept_count(m, sparsities[si], aligns[ai]);
                    }
                    CHECK_EQ_INT(p->n_kept[gi], want);
                    for (int q = 1; q < p->n_kept[gi]; q++)
                        CHECK(p->kept[gi][q - 1] < p->kept[gi][q]);
                }
            if (npe_graph_clone(g, &pruned) || npe_graph_clone(g, &masked)) {
                CHECK(0);
                goto next;
            }
            r = npe_prune_apply(pruned, G, p, &e);
            CHECK_MSG(r == 0, "%s: %s", what, e.msg);
            if (r)
                goto next;
            CHECK_EQ_INT(npe_graph_validate(pruned, &e), 0);
            zero_removed_inputs(masked, G, p);
            npe_array po[16] = {{0}}, mo[16] = {{0}};
            /* (a) the pruned graph runs, (b) and equals the masked original */
            if (!run(pruned, in, n_in, po, what) && !run(masked, in, n_in, mo, what)) {
                for (int k = 0; k < nout; k++) {
                    double d = rel_diff(&po[k], &mo[k]);
                    CHECK_MSG(d <= 1e-4, "%s: output %d differs from the masked original by %g",
                              what, k, d);
                    if (d > res->max_diff || d != d)
                        res->max_diff = d;
                }
            }
            for (int k = 0; k < 16; k++) {
                npe_array_free(&po[k]);
                npe_array_free(&mo[k]);
            }
            /* (d) counts: smaller when something was cut, and the recount agrees */
            npe_counts after;
            if (npe_count(pruned, &after, &e) == 0) {
                recount(pruned, &rp, &rm);
                CHECK_MSG(after.params == rp && after.macs == rm, "%s: counts %lld/%lld, recount "
                          "%lld/%lld", what, (long long)after.params, (long long)after.macs,
                          (long long)rp, (long long)rm);
                if (cut)
                    CHECK_MSG(after.params < before.params && after.macs < before.macs,
                              "%s: params %lld -> %lld, MACs %lld -> %lld", what,
                              (long long)before.params, (long long)after.params,
                              (long long)before.macs, (long long)after.macs);
                else
                    CHECK(after.params == before.params && after.macs == before.macs);
                if (si == 1 && ai == 0) {
                    res->params_after = after.params;
                    res->macs_after = after.macs;
                }
                npe_counts_free(&after);
            }
            /* the report is valid JSON-writer output */
            npe_json j;
            npe_json_init(&j, 1);
            npe_json_begin_object(&j, 0);
            CHECK_EQ_INT(npe_prune_report_json(&j, g, G, p, &before, &before), 0);
            npe_json_end_object(&j);
            char *txt = npe_json_finish(&j, NULL);
            CHECK(txt != NULL);
            free(txt);
        next:
            npe_graph_destroy(pruned);
            npe_graph_destroy(masked);
            npe_prune_plan_destroy(p);
        }
out_free:
    for (int k = 0; k < 16; k++)
        npe_array_free(&ref[k]);
    npe_counts_free(&before);
    npe_groups_destroy(G);
}

/* ---- The kept-count rule --------------------------------------------------------------------- */
static void test_kept_count(void)
{
    /* k = C - floor(s*C); aligned: min(C, max(a, ceil(k/a)*a)) -- by hand */
    static const struct {
        int64_t C;
        double s;
        int a;
        int64_t k;
    } t[] = {
        {10, 0.3, 1, 7},   {10, 0.3, 8, 8},    {64, 0.6, 8, 32},  {64, 0.6, 1, 26},
        {3, 0.6, 8, 3},    {16, 0.0, 8, 16},   {7, 0.5, 2, 4},    {100, 0.29, 1, 72},
        {32, 0.5, 8, 16},  {12, 0.9, 8, 8},    {5, 0.99, 1, 1},   {1, 0.6, 1, 1},
        {24, 0.3, 16, 32 > 24 ? 24 : 32},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK_MSG(npe_prune_kept_count(t[i].C, t[i].s, t[i].a) == t[i].k,
                  "C=%lld s=%g a=%d: %lld, want %lld", (long long)t[i].C, t[i].s, t[i].a,
                  (long long)npe_prune_kept_count(t[i].C, t[i].s, t[i].a), (long long)t[i].k);
}

/* ---- Hand-built graphs ----------------------------------------------------------------------- */
static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static int param(npe_graph *g, const char *name, unsigned flags, int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    float *buf = malloc((size_t)n * sizeof *buf);
    for (int64_t i = 0; i < n; i++)
        buf[i] = frand();
    if (flags & NPE_VF_BUFFER) /* running_var must be positive */
        for (int64_t i = 0; i < n; i++)
            buf[i] = buf[i] + 1.0f;
    int v = npe_graph_add_tensor_data(g, name, flags, NPE_DTYPE_F32, nd, shape, buf, NPE_DTYPE_F32);
    free(buf);
    return v;
}

static int ints2(npe_graph *g, int a, int b)
{
    int it[2] = {npe_graph_add_int(g, a, NULL), npe_graph_add_int(g, b, NULL)};
    return npe_graph_add_list(g, it, 2, 0, NULL);
}

static int out0(npe_graph *g, int node)
{
    CHECK(node >= 0);
    return node >= 0 ? g->nodes[node].out[0] : 0;
}

/* conv (or transposed conv) with kernel k, padding k/2 (0 for transposed), optional bias */
static int conv(npe_graph *g, const char *scope, int x, int cin, int cout, int k, int groups,
                int transposed, int bias)
{
    char nm[128];
    int64_t ws[4] = {transposed ? cin : cout, transposed ? cout / groups : cin / groups, k, k};
    snprintf(nm, sizeof nm, "%s.weight", scope);
    int w = param(g, nm, NPE_VF_PARAM, 4, ws);
    int b = npe_graph_none(g);
    if (bias) {
        int64_t bs[1] = {cout};
        snprintf(nm, sizeof nm, "%s.bias", scope);
        b = param(g, nm, NPE_VF_PARAM, 1, bs);
    }
    int p = transposed ? 0 : k / 2;
    int in[9] = {x, w, b, ints2(g, 1, 1), ints2(g, p, p), ints2(g, 1, 1),
                 npe_graph_add_bool(g, transposed, NULL), ints2(g, 0, 0),
                 npe_graph_add_int(g, groups, NULL)};
    /* give the groups literal a span so it counts as source text */
    npe_span sp = {0, 1, 1, 0, 1};
    g->values[in[8]].span = sp;
    g->values[in[8]].flags &= ~(unsigned)NPE_VF_SYNTH;
    npe_error e = {0};
    return out0(g, npe_graph_add_node(g, NPE_OP_CONV, in, 9, 1, scope, NULL, &e));
}

static int bn(npe_graph *g, const char *scope, int x, int c)
{
    char nm[4][128];
    static const char *const sfx[] = {"weight", "bias", "running_mean", "running_var"};
    int p[4];
    int64_t s[1] = {c};
    for (int k = 0; k < 4; k++) {
        snprintf(nm[k], sizeof nm[k], "%s.%s", scope, sfx[k]);
        p[k] = param(g, nm[k], k < 2 ? NPE_VF_PARAM : NPE_VF_BUFFER, 1, s);
    }
    int in[9] = {x, p[0], p[1], p[2], p[3], npe_graph_add_bool(g, 0, NULL),
                 npe_graph_add_float(g, 0.1, NULL), npe_graph_add_float(g, 1e-5, NULL),
                 npe_graph_add_bool(g, 1, NULL)};
    npe_error e = {0};
    return out0(g, npe_graph_add_node(g, NPE_OP_BATCH_NORM, in, 9, 1, scope, NULL, &e));
}

static int unary(npe_graph *g, npe_op op, const char *scope, int x)
{
    npe_error e = {0};
    return out0(g, npe_graph_add_node(g, op, &x, 1, 1, scope, NULL, &e));
}

static npe_graph *new_graph(int *x)
{
    npe_graph *g = NULL;
    npe_graph_create(&g);
    npe_graph_add_source(g, "hand/code.py", "code.py", "1", 1);
    *x = npe_graph_add_value(g, NPE_VT_TENSOR, "x");
    g->values[*x].flags |= NPE_VF_INPUT;
    npe_graph_set_inputs(g, x, 1);
    return g;
}

static void input(npe_array *a, int64_t n, int64_t c, int64_t h, int64_t w)
{
    memset(a, 0, sizeof *a);
    a->dtype = NPE_DTYPE_F32;
    a->ndim = 4;
    a->shape[0] = n;
    a->shape[1] = c;
    a->shape[2] = h;
    a->shape[3] = w;
    a->nbytes = (size_t)(n * c * h * w) * sizeof(float);
    a->data = malloc(a->nbytes);
    for (int64_t i = 0; i < n * c * h * w; i++)
        ((float *)a->data)[i] = frand() * 4;
}

static npe_groups *groups_of(npe_graph *g, const npe_array *in)
{
    npe_error e = {0};
    npe_tshape s = {in->ndim, {0}};
    for (int d = 0; d < in->ndim; d++)
        s.d[d] = in->shape[d];
    npe_groups *G = NULL;
    CHECK_EQ_INT(npe_graph_validate(g, &e), 0);
    int r = npe_groups_find(g, &s, 1, &G, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    return G;
}

/* Prune g with the plan and compare with the masked original. */
static void check_plan(npe_graph *g, const npe_groups *G, const npe_prune_plan *p,
                       const npe_array *in, const char *what)
{
    npe_error e = {0};
    npe_graph *pruned = NULL, *masked = NULL;
    npe_graph_clone(g, &pruned);
    npe_graph_clone(g, &masked);
    int r = npe_prune_apply(pruned, G, p, &e);
    CHECK_MSG(r == 0, "%s: %s", what, e.msg);
    zero_removed_inputs(masked, G, p);
    npe_array a[4] = {{0}}, b[4] = {{0}};
    if (!r && !run(pruned, in, 1, a, what) && !run(masked, in, 1, b, what))
        for (int k = 0; k < g->n_outputs; k++) {
            double d = rel_diff(&a[k], &b[k]);
            CHECK_MSG(d <= 1e-5, "%s: output %d differs by %g", what, k, d);
        }
    for (int k = 0; k < 4; k++) {
        npe_array_free(&a[k]);
        npe_array_free(&b[k]);
    }
    npe_graph_destroy(pruned);
    npe_graph_destroy(masked);
}

/* Ties: filters with equal norms prune the lower index first. conv a (5 channels) with filter
 * norms 1, 1, 2, 0.5, 1 -> bn -> relu -> conv b. At s=0.4, k=3: prune channel 3 (0.5), then of
 * the three with norm 1 the lowest index, 0: kept 1, 2, 4. */
static void test_ranking(void)
{
    int x;
    npe_graph *g = new_graph(&x);
    int a = conv(g, "a", x, 1, 5, 1, 1, 0, 0);
    int y = unary(g, NPE_OP_RELU, "act", bn(g, "bn", a, 5));
    int b = conv(g, "b", y, 5, 2, 1, 1, 0, 1);
    npe_graph_set_outputs(g, &b, 1);
    int w = npe_graph_find_value(g, "a.weight");
    static const float norms[5] = {1, -1, 2, 0.5f, 1};
    for (int c = 0; c < 5; c++)
        g->values[w].data[c] = norms[c];
    npe_array in;
    input(&in, 1, 1, 4, 4);
    npe_groups *G = groups_of(g, &in);
    if (G) {
        CHECK_EQ_INT(G->n_groups, 2);
        int gi = group_named(G, "a");
        CHECK_EQ_INT(G->groups[gi].channels, 5);
        CHECK(G->groups[gi].prunable);
        double nv[5];
        npe_prune_norms(g, G, gi, nv);
        CHECK(nv[1] == 1.0 && nv[3] == 0.5);
        npe_prune_plan *p = NULL;
        npe_error e = {0};
        npe_prune_plan_create(G, &p);
        CHECK_EQ_INT(npe_prune_select(g, G, gi, 0.4, 1, p, &e), 0);
        CHECK_EQ_INT(p->n_kept[gi], 3);
        CHECK(p->kept[gi] && p->kept[gi][0] == 1 && p->kept[gi][1] == 2 && p->kept[gi][2] == 4);
        /* with alignment 2: k = 4, prune only channel 3 */
        CHECK_EQ_INT(npe_prune_select(g, G, gi, 0.4, 2, p, &e), 0);
        CHECK_EQ_INT(p->n_kept[gi], 4);
        CHECK(p->kept[gi] && p->kept[gi][3] == 4 && p->kept[gi][2] == 2);
        check_plan(g, G, p, &in, "ranking");
        /* the output group is never cut */
        int bo = group_named(G, "b");
        CHECK(!G->groups[bo].prunable && strstr(G->groups[bo].reason, "reaches model output 'b'"));
        CHECK(npe_prune_select(g, G, bo, 0.5, 1, p, &e) == NPE_EINVAL);
        CHECK(strstr(e.msg, "cannot be pruned") != NULL);
        /* explicit kept indices: any order, checked */
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gi, (int[]){4, 0}, 2, &e), 0);
        CHECK(p->kept[gi][0] == 0 && p->kept[gi][1] == 4);
        CHECK(npe_prune_set_kept(G, p, gi, (int[]){1, 1}, 2, &e) == NPE_EINVAL);
        CHECK(npe_prune_set_kept(G, p, gi, (int[]){5}, 1, &e) == NPE_EINVAL);
        CHECK(npe_prune_set_kept(G, p, gi, NULL, 0, &e) == NPE_EINVAL);
        check_plan(g, G, p, &in, "explicit kept");
        npe_prune_plan_destroy(p);
        npe_groups_destroy(G);
    }
    npe_array_free(&in);
    npe_graph_destroy(g);
}

/* pixel_shuffle(2) of conv a (8 channels) -> conv b: a's channels go in blocks of 4; conv a is
 * cut by whole blocks, b loses the matching inputs. Depthwise with multiplier 2 and a
 * transposed conv in a second branch: conv c (3) -> dw (6, groups 3) -> relu -> convT t
 * (6 -> 4) -> relu -> conv d. */
static void test_pixel_shuffle_depthwise_transposed(void)
{
    int x;
    npe_graph *g = new_graph(&x);
    npe_error e = {0};
    int a = conv(g, "a", x, 2, 8, 3, 1, 0, 1);
    int two = npe_graph_add_int(g, 2, NULL);
    int ps = out0(g, npe_graph_add_node(g, NPE_OP_PIXEL_SHUFFLE, (int[]){a, two}, 2, 1, "ps",
                                        NULL, &e));
    int b = conv(g, "b", ps, 2, 3, 3, 1, 0, 1);
    int c = conv(g, "c", x, 2, 3, 1, 1, 0, 1);
    int dw = unary(g, NPE_OP_RELU, "dwact", conv(g, "dw", c, 3, 6, 3, 3, 0, 1));
    int t = unary(g, NPE_OP_RELU, "tact", conv(g, "t", dw, 6, 4, 2, 1, 1, 1));
    int d = conv(g, "d", t, 4, 2, 1, 1, 0, 0);
    npe_graph_set_outputs(g, (int[]){b, d}, 2);
    npe_array in;
    input(&in, 2, 2, 5, 6);
    npe_groups *G = groups_of(g, &in);
    if (G) {
        int ga = group_named(G, "a"), gc = group_named(G, "c"), gt = group_named(G, "t");
        CHECK_EQ_INT(G->groups[ga].channels, 2); /* 8 conv channels in 2 blocks of 4 */
        CHECK(G->groups[ga].prunable);
        CHECK_EQ_INT(G->groups[gc].channels, 3);
        CHECK(G->groups[gc].prunable);
        CHECK_EQ_INT(G->groups[gc].n_producers, 2); /* c and the depthwise conv */
        CHECK_EQ_INT(G->groups[gc].n_lits, 1);      /* dw's groups */
        CHECK_EQ_INT(G->groups[gt].channels, 4);
        CHECK(G->groups[gt].prunable);
        const npe_producer *P = &G->producers[G->groups[ga].producers[0]];
        CHECK(P->out.n == 8 && P->out.at[3].chan == 0 && P->out.at[4].chan == 1);
        npe_prune_plan *p = NULL;
        npe_prune_plan_create(G, &p);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, ga, (int[]){1}, 1, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gc, (int[]){0, 2}, 2, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gt, (int[]){1, 2, 3}, 3, &e), 0);
        check_plan(g, G, p, &in, "pixel shuffle, depthwise, transposed");
        npe_graph *c2 = NULL;
        npe_graph_clone(g, &c2);
        CHECK_EQ_INT(npe_prune_apply(c2, G, p, &e), 0);
        const npe_value *aw = &c2->values[npe_graph_find_value(c2, "a.weight")];
        CHECK(aw->shape[0] == 4 && aw->shape[1] == 2);
        const npe_value *bw = &c2->values[npe_graph_find_value(c2, "b.weight")];
        CHECK(bw->shape[0] == 3 && bw->shape[1] == 1);
        const npe_value *dww = &c2->values[npe_graph_find_value(c2, "dw.weight")];
        CHECK(dww->shape[0] == 4 && dww->shape[1] == 1);
        const npe_value *tw = &c2->values[npe_graph_find_value(c2, "t.weight")];
        CHECK(tw->shape[0] == 4 && tw->shape[1] == 3); /* [Cin, Cout]: both cut */
        const npe_value *dwo = &c2->values[npe_graph_find_value(c2, "dw")];
        int gv = c2->nodes[dwo->producer].in[NPE_CONV_GROUPS];
        CHECK_EQ_INT(c2->values[gv].i, 2);
        /* the kept block of a is channels 4..7: row 0 of the cut weight is row 4 of the old */
        const npe_value *ow = &g->values[npe_graph_find_value(g, "a.weight")];
        CHECK(memcmp(aw->data, ow->data + 4 * 18, 4 * 18 * sizeof(float)) == 0);
        npe_graph_destroy(c2);
        npe_prune_plan_destroy(p);
        npe_groups_destroy(G);
    }
    npe_array_free(&in);
    npe_graph_destroy(g);
}

/* flatten into linear: channel c of [N, 4, 3, 3] owns features 9c .. 9c+8; a residual add
 * joins two producers; a SE-style gate [N, C, 1, 1] multiplies and joins its producer; cat
 * along channels gives the consumer inputs of two groups. */
static void test_flatten_se_cat(void)
{
    int x;
    npe_graph *g = new_graph(&x);
    npe_error e = {0};
    int a = conv(g, "a", x, 3, 4, 3, 1, 0, 1);
    int b = conv(g, "b", x, 3, 4, 1, 1, 0, 1);
    int s = out0(g, npe_graph_add_node(g, NPE_OP_ADD, (int[]){a, b, npe_graph_add_int(g, 1, NULL)},
                                       3, 1, "res", NULL, &e));
    int pool = out0(g, npe_graph_add_node(g, NPE_OP_ADAPTIVE_AVG_POOL2D,
                                          (int[]){s, ints2(g, 1, 1)}, 2, 1, "pool", NULL, &e));
    int gate = unary(g, NPE_OP_SIGMOID, "sig", conv(g, "fc", pool, 4, 4, 1, 1, 0, 1));
    int m = out0(g, npe_graph_add_node(g, NPE_OP_MUL, (int[]){s, gate}, 2, 1, "se", NULL, &e));
    int c = conv(g, "c", x, 3, 2, 3, 1, 0, 1);
    int one = npe_graph_add_int(g, 1, NULL);
    int cat = out0(g, npe_graph_add_node(g, NPE_OP_CAT, (int[]){c, m, one}, 3, 1, "", NULL, &e));
    int d = conv(g, "d", cat, 6, 4, 3, 1, 0, 0);
    int fl = out0(g, npe_graph_add_node(g, NPE_OP_FLATTEN,
                                        (int[]){d, one, npe_graph_add_int(g, -1, NULL)}, 3, 1,
                                        "", NULL, &e));
    int64_t ls[2] = {5, 36};
    int lw = param(g, "fc2.weight", NPE_VF_PARAM, 2, ls);
    int lin = out0(g, npe_graph_add_node(g, NPE_OP_LINEAR, (int[]){fl, lw, npe_graph_none(g)}, 3,
                                         1, "fc2", NULL, &e));
    npe_graph_set_outputs(g, &lin, 1);
    npe_array in;
    input(&in, 2, 3, 3, 3);
    npe_groups *G = groups_of(g, &in);
    if (G) {
        CHECK_EQ_INT(G->n_groups, 4); /* a+b+fc, c, d, fc2 */
        int ga = group_named(G, "a"), gc = group_named(G, "c"), gd = group_named(G, "d");
        CHECK_EQ_INT(G->groups[ga].n_producers, 3);
        CHECK(G->groups[ga].prunable && G->groups[gc].prunable && G->groups[gd].prunable);
        npe_prune_plan *p = NULL;
        npe_prune_plan_create(G, &p);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, ga, (int[]){1, 3}, 2, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gc, (int[]){1}, 1, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gd, (int[]){0, 2}, 2, &e), 0);
        check_plan(g, G, p, &in, "flatten, SE, cat");
        /* report: d's consumer fc2 loses features 9..17 and 27..35; a's consumers are fc
         * (inputs 0, 2) and d (cat offset 2: inputs 2, 4) */
        npe_counts cb;
        CHECK_EQ_INT(npe_count(g, &cb, &e), 0);
        npe_json j;
        npe_json_init(&j, 0);
        npe_json_begin_object(&j, 0);
        CHECK_EQ_INT(npe_prune_report_json(&j, g, G, p, &cb, &cb), 0);
        npe_json_end_object(&j);
        char *txt = npe_json_finish(&j, NULL);
        CHECK(txt != NULL);
        if (txt) {
            CHECK_MSG(strstr(txt, "{\"layer\":\"fc2\",\"removed_inputs\":[9,10,11,12,13,14,15,16,"
                                  "17,27,28,29,30,31,32,33,34,35]}") != NULL, "%s", txt);
            CHECK_MSG(strstr(txt, "\"name\":\"a\",\"channels\":4,\"kept\":[1,3],\"producers\":"
                                  "[\"a\",\"b\",\"fc\"],\"consumers\":[{\"layer\":\"fc\","
                                  "\"removed_inputs\":[0,2]},{\"layer\":\"d\",\"removed_inputs\""
                                  ":[2,4]}]}") != NULL, "%s", txt);
            CHECK(strstr(txt, "\"reason\":\"reaches model output 'fc2'\"") != NULL);
        }
        free(txt);
        npe_counts_free(&cb);
        npe_prune_plan_destroy(p);
        npe_groups_destroy(G);
    }
    npe_array_free(&in);
    npe_graph_destroy(g);
}

/* What cannot be followed makes its groups unprunable, naming the op: a channel shuffle
 * (view [N, 2, 4, H, W], transpose, view back), chunk into unequal pieces, a chunk whose pieces
 * mix two groups, softmax over channels, and the output. */
static void test_unprunable(void)
{
    int x;
    npe_graph *g = new_graph(&x);
    npe_error e = {0};
    int a = conv(g, "a", x, 3, 8, 1, 1, 0, 1);
    int lst[5] = {npe_graph_add_int(g, 1, NULL), npe_graph_add_int(g, 2, NULL),
                  npe_graph_add_int(g, 4, NULL), npe_graph_add_int(g, 3, NULL),
                  npe_graph_add_int(g, 3, NULL)};
    int v = out0(g, npe_graph_add_node(g, NPE_OP_RESHAPE,
                                       (int[]){a, npe_graph_add_list(g, lst, 5, 0, NULL)}, 2, 1,
                                       "shuffle", NULL, &e));
    int t = out0(g, npe_graph_add_node(g, NPE_OP_TRANSPOSE,
                                       (int[]){v, npe_graph_add_int(g, 1, NULL),
                                               npe_graph_add_int(g, 2, NULL)},
                                       3, 1, "shuffle", NULL, &e));
    int l2[4] = {npe_graph_add_int(g, 1, NULL), npe_graph_add_int(g, -1, NULL),
                 npe_graph_add_int(g, 3, NULL), npe_graph_add_int(g, 3, NULL)};
    int v2 = out0(g, npe_graph_add_node(g, NPE_OP_RESHAPE,
                                        (int[]){t, npe_graph_add_list(g, l2, 4, 0, NULL)}, 2, 1,
                                        "shuffle", NULL, &e));
    int c = conv(g, "c", v2, 8, 5, 1, 1, 0, 1);
    /* chunk(2) of 5 channels: pieces of 3 and 2 */
    int ch = npe_graph_add_node(g, NPE_OP_CHUNK, (int[]){c, npe_graph_add_int(g, 2, NULL),
                                                         npe_graph_add_int(g, 1, NULL)},
                                3, 2, "split", NULL, &e);
    int c1 = g->nodes[ch].out[0], c2 = g->nodes[ch].out[1];
    int d = conv(g, "d", c1, 3, 3, 1, 1, 0, 1);
    int sm = out0(g, npe_graph_add_node(g, NPE_OP_SOFTMAX,
                                        (int[]){d, npe_graph_add_int(g, 1, NULL),
                                                npe_graph_none(g)},
                                        3, 1, "sm", NULL, &e));
    int f = conv(g, "f", sm, 3, 2, 1, 1, 0, 1);
    /* cat of p (2) and q (4), chunk(2): each piece of 3 holds channels of both */
    int pp = conv(g, "p", c2, 2, 2, 1, 1, 0, 1), q = conv(g, "q", c2, 2, 4, 1, 1, 0, 1);
    int one = npe_graph_add_int(g, 1, NULL);
    int cat = out0(g, npe_graph_add_node(g, NPE_OP_CAT, (int[]){pp, q, one}, 3, 1, "", NULL, &e));
    int ch2 = npe_graph_add_node(g, NPE_OP_CHUNK, (int[]){cat, npe_graph_add_int(g, 2, NULL),
                                                          npe_graph_add_int(g, 1, NULL)},
                                 3, 2, "split2", NULL, &e);
    int h1 = conv(g, "h1", g->nodes[ch2].out[0], 3, 2, 1, 1, 0, 1);
    int h2 = conv(g, "h2", g->nodes[ch2].out[1], 3, 2, 1, 1, 0, 1);
    int o = out0(g, npe_graph_add_node(g, NPE_OP_ADD, (int[]){f, h1, npe_graph_add_int(g, 1, NULL)},
                                       3, 1, "out", NULL, &e));
    npe_graph_set_outputs(g, (int[]){o, h2}, 2);
    npe_array in;
    input(&in, 1, 3, 3, 3);
    npe_groups *G = groups_of(g, &in);
    if (G) {
        static const struct {
            const char *group, *reason;
        } want[] = {{"a", "view that spreads the channels over several dims"},
                    {"c", "chunk of the channel dim into unequal pieces"},
                    {"d", "softmax over the channel dim"},
                    {"f", "reaches model output 'out'"},
                    {"p", "chunk splits the channels of several groups into pieces"},
                    {"q", "chunk splits the channels of several groups into pieces"}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            int gi = group_named(G, want[i].group);
            if (gi < 0)
                continue;
            CHECK(!G->groups[gi].prunable);
            CHECK_MSG(G->groups[gi].reason && strstr(G->groups[gi].reason, want[i].reason),
                      "group %s: reason '%s', want '%s'", want[i].group,
                      G->groups[gi].reason ? G->groups[gi].reason : "", want[i].reason);
        }
        npe_prune_plan *p = NULL;
        CHECK_EQ_INT(npe_prune_plan_uniform(g, G, 0.5, 1, NULL, 0, &p, &e), 0);
        for (int gi = 0; p && gi < G->n_groups; gi++)
            CHECK(p->kept[gi] == NULL && p->why[gi] != NULL);
        npe_prune_plan_destroy(p);
        npe_groups_destroy(G);
    }
    npe_array_free(&in);
    npe_graph_destroy(g);
}

/* Groups split into pieces are cut per piece: a grouped conv (groups 4) keeps equally many
 * inputs and outputs per conv group, chunk(2) equal halves, split_with_sizes([2, 4]) any number
 * per piece (its sizes rewritten), x[:, 1:4] (its bounds rewritten). */
static void test_partitions(void)
{
    int x;
    npe_graph *g = new_graph(&x);
    npe_error e = {0};
    int a = unary(g, NPE_OP_RELU, "a.act", conv(g, "a", x, 3, 8, 1, 1, 0, 1));
    int b = unary(g, NPE_OP_RELU, "b.act", bn(g, "b.bn", conv(g, "b", a, 8, 8, 3, 4, 0, 0), 8));
    int c = conv(g, "c", b, 8, 6, 1, 1, 0, 1);
    int ch = npe_graph_add_node(g, NPE_OP_CHUNK, (int[]){c, npe_graph_add_int(g, 2, NULL),
                                                         npe_graph_add_int(g, 1, NULL)},
                                3, 2, "halves", NULL, &e);
    int d = conv(g, "d", g->nodes[ch].out[0], 3, 4, 1, 1, 0, 1);
    int e2 = conv(g, "e", g->nodes[ch].out[1], 3, 4, 1, 1, 0, 1);
    int sum = out0(g, npe_graph_add_node(g, NPE_OP_ADD,
                                         (int[]){d, e2, npe_graph_add_int(g, 1, NULL)}, 3, 1,
                                         "sum", NULL, &e));
    int f = conv(g, "f", sum, 4, 6, 1, 1, 0, 1);
    int sizes[2] = {npe_graph_add_int(g, 2, NULL), npe_graph_add_int(g, 4, NULL)};
    int sp = npe_graph_add_node(g, NPE_OP_SPLIT_WITH_SIZES,
                                (int[]){f, npe_graph_add_list(g, sizes, 2, 0, NULL),
                                        npe_graph_add_int(g, 1, NULL)},
                                3, 2, "split", NULL, &e);
    int g1 = conv(g, "g1", g->nodes[sp].out[0], 2, 3, 1, 1, 0, 1);
    int g2 = conv(g, "g2", g->nodes[sp].out[1], 4, 3, 1, 1, 0, 1);
    int h = unary(g, NPE_OP_RELU, "h.act", conv(g, "h", x, 3, 6, 1, 1, 0, 1));
    int st = npe_graph_add_int(g, 1, NULL), en = npe_graph_add_int(g, 4, NULL);
    int sl = out0(g, npe_graph_add_node(g, NPE_OP_SLICE,
                                        (int[]){h, npe_graph_add_int(g, 1, NULL), st, en,
                                                npe_graph_add_int(g, 1, NULL)},
                                        5, 1, "part", NULL, &e));
    int k = conv(g, "k", sl, 3, 2, 1, 1, 0, 1);
    int m = conv(g, "m", h, 6, 2, 1, 1, 0, 1);
    npe_graph_set_outputs(g, (int[]){g1, g2, k, m}, 4);
    npe_array in;
    input(&in, 2, 3, 5, 4);
    result res;
    check_model(g, &in, 1, "partitions", &res);
    CHECK_EQ_INT(res.prunable, 6); /* a, b, c, d+e, f, h */
    npe_groups *G = groups_of(g, &in);
    if (G) {
        int ga = group_named(G, "a"), gb = group_named(G, "b"), gc = group_named(G, "c"),
            gf = group_named(G, "f"), gh = group_named(G, "h");
        if (ga < 0 || gb < 0 || gc < 0 || gf < 0 || gh < 0)
            goto out_groups;
        const npe_group *A = &G->groups[ga], *B = &G->groups[gb], *C = &G->groups[gc],
                        *F = &G->groups[gf], *H = &G->groups[gh];
        CHECK(A->prunable && A->n_parts == 4 && A->equal_parts && A->part[3] == 1);
        CHECK(B->prunable && B->n_parts == 4 && B->equal_parts && B->part[7] == 3);
        CHECK(C->prunable && C->n_parts == 2 && C->equal_parts && C->part[2] == 0);
        CHECK(F->prunable && F->n_parts == 2 && !F->equal_parts && F->part[1] == 0);
        CHECK(H->prunable && H->n_parts == 3 && !H->equal_parts && H->part[3] == 1);
        npe_prune_plan *p = NULL;
        npe_prune_plan_create(G, &p);
        /* equal pieces must keep equally many: 2 of conv group 0, 1 of the others: refused */
        CHECK(npe_prune_set_kept(G, p, ga, (int[]){0, 1, 2, 4, 6}, 5, &e) == NPE_EINVAL);
        CHECK(strstr(e.msg, "must keep equally many channels") != NULL);
        CHECK(npe_prune_set_kept(G, p, gf, (int[]){2, 3}, 2, &e) == NPE_EINVAL);
        CHECK(strstr(e.msg, "would keep no channel of piece 0") != NULL);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, ga, (int[]){1, 2, 5, 7}, 4, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gb, (int[]){0, 1, 3, 5, 6, 7}, 6, &e) ==
                         NPE_EINVAL, 1);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gb, (int[]){0, 3, 5, 6}, 4, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gc, (int[]){0, 3, 5}, 3, &e) == NPE_EINVAL, 1);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gc, (int[]){2, 3}, 2, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gf, (int[]){0, 2, 5}, 3, &e), 0);
        CHECK_EQ_INT(npe_prune_set_kept(G, p, gh, (int[]){0, 3, 5}, 3, &e), 0);
        check_plan(g, G, p, &in, "partitions");
        npe_graph *c2 = NULL;
        npe_graph_clone(g, &c2);
        CHECK_EQ_INT(npe_prune_apply(c2, G, p, &e), 0);
        /* b: [8, 2, 3, 3] -> [4, 1, 3, 3], conv group 1 (rows 2, 3; inputs 2, 3) keeps row 3
         * and input 2 (column 0) */
        const npe_value *bw = &c2->values[npe_graph_find_value(c2, "b.weight")];
        const npe_value *ob = &g->values[npe_graph_find_value(g, "b.weight")];
        CHECK(bw->shape[0] == 4 && bw->shape[1] == 1);
        CHECK(memcmp(bw->data + 9, ob->data + (3 * 2 + 0) * 9, 9 * sizeof(float)) == 0);
        CHECK_EQ_INT(c2->values[sizes[0]].i, 1);
        CHECK_EQ_INT(c2->values[sizes[1]].i, 2);
        CHECK_EQ_INT(c2->values[st].i, 1);
        CHECK_EQ_INT(c2->values[en].i, 2);
        npe_graph_destroy(c2);
        npe_prune_plan_destroy(p);
    out_groups:
        npe_groups_destroy(G);
    }
    npe_array_free(&in);
    npe_graph_destroy(g);
}

/* ---- The bundled Fashion-MNIST model: groups, hand-counted params/MACs, report, exclude ---- */
static void test_fashion(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/fashion_mnist/model.pt", root);
    npe_graph *g = NULL;
    npe_error e = {0};
    int r = npe_ts_import(path, NULL, &g, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    if (r)
        return;
    npe_array in;
    input(&in, 2, 1, 28, 28);
    result res;
    check_model(g, &in, 1, "fashion_mnist", &res);
    npe_groups *G = groups_of(g, &in);
    if (!G)
        goto out_free;
    /* stem (conv + BN) and the residual branch's conv2 are one group: the add joins them */
    static const char *const names[] = {"stem.0", "block.conv1", "down.0", "fc"};
    CHECK_EQ_INT(G->n_groups, 4);
    for (int i = 0; i < 4 && i < G->n_groups; i++)
        CHECK_STR(G->groups[i].name, names[i]);
    int gs = group_named(G, "stem.0"), gb = group_named(G, "block.conv1"),
        gd = group_named(G, "down.0");
    if (gs < 0 || gb < 0 || gd < 0)
        goto out_groups;
    CHECK_EQ_INT(G->groups[gs].n_producers, 2);
    CHECK_EQ_INT(G->groups[gs].n_consumers, 2);
    CHECK_EQ_INT(G->groups[gs].n_params, 8); /* two BNs' weight, bias, mean, var */
    CHECK(!G->groups[3].prunable && strcmp(G->groups[3].reason, "reaches model output 'fc'") == 0);

    /* params and MACs by hand: stem conv 1->k1 3x3 at 28x28, BN; block conv k1->k2 and k2->k1
     * 3x3 at 14x14, BNs; down conv k1->k3 3x3 stride 2 at 7x7, BN; fc k3->10 */
    for (int si = 0; si < 3; si++) {
        static const double sv[] = {0, 0.3, 0.6};
        npe_prune_plan *p = NULL;
        npe_graph *c = NULL;
        CHECK_EQ_INT(npe_prune_plan_uniform(g, G, sv[si], 1, NULL, 0, &p, &e), 0);
        npe_graph_clone(g, &c);
        if (!p || !c || npe_prune_apply(c, G, p, &e)) {
            CHECK_MSG(0, "%s", e.msg);
            npe_prune_plan_destroy(p);
            npe_graph_destroy(c);
            continue;
        }
        int64_t k1 = p->n_kept[gs], k2 = p->n_kept[gb], k3 = p->n_kept[gd];
        CHECK_EQ_INT(k1, 32 - (int)floor(sv[si] * 32));
        CHECK_EQ_INT(k3, 64 - (int)floor(sv[si] * 64));
        int64_t params = 9 * k1 + 2 * k1 + 9 * k1 * k2 + 2 * k2 + 9 * k2 * k1 + 2 * k1 +
                         9 * k1 * k3 + 2 * k3 + 10 * k3 + 10;
        int64_t macs = 784 * k1 * 9 + 196 * k2 * k1 * 9 * 2 + 49 * k3 * k1 * 9 + 10 * k3;
        npe_counts cnt;
        CHECK_EQ_INT(npe_count(c, &cnt, &e), 0);
        CHECK_EQ_INT(cnt.params, params);
        CHECK_EQ_INT(cnt.macs, macs);
        CHECK_EQ_INT(cnt.n_layers, 9);
        if (cnt.n_layers == 9) {
            CHECK_STR(cnt.layers[0].name, "stem.0");
            CHECK_EQ_INT(cnt.layers[0].macs, 784 * k1 * 9);
            CHECK_EQ_INT(cnt.layers[8].params, 10 * k3 + 10);
        }
        if (si == 0) /* PyTorch: sum(p.numel() for p in torch.jit.load(model.pt).parameters()) */
            CHECK_EQ_INT(params, 38122);
        npe_counts_free(&cnt);
        npe_prune_plan_destroy(p);
        npe_graph_destroy(c);
    }

    /* exclude_layers: naming any producer keeps its whole group */
    const char *ex[] = {"block.conv2"};
    npe_prune_plan *p = NULL;
    CHECK_EQ_INT(npe_prune_plan_uniform(g, G, 0.5, 1, ex, 1, &p, &e), 0);
    if (p) {
        CHECK(p->kept[gs] == NULL);
        CHECK_STR(p->why[gs], "excluded by exclude_layers ('block.conv2')");
        CHECK(p->kept[gb] != NULL && p->n_kept[gb] == 16);
        npe_json j;
        npe_json_init(&j, 1);
        npe_json_begin_object(&j, 0);
        npe_counts c0;
        npe_count(g, &c0, &e);
        CHECK_EQ_INT(npe_prune_report_json(&j, g, G, p, &c0, &c0), 0);
        npe_json_end_object(&j);
        char *txt = npe_json_finish(&j, NULL);
        CHECK(txt && strstr(txt, "\"params_before\": 38122") != NULL);
        CHECK(txt && strstr(txt, "\"reason\": \"excluded by exclude_layers ('block.conv2')\""));
        CHECK(txt && strstr(txt, "\"producers\": [\"stem.0\", \"block.conv2\"]"));
        free(txt);
        npe_counts_free(&c0);
    }
    npe_prune_plan_destroy(p);
out_groups:
    npe_groups_destroy(G);
out_free:
    npe_array_free(&in);
    npe_graph_destroy(g);
    printf("%-22s groups %3d prunable %3d  params %9lld -> %9lld  MACs %11lld -> %11lld  "
           "max rel diff %.2g\n", "fashion_mnist", res.groups, res.prunable,
           (long long)res.params_before, (long long)res.params_after, (long long)res.macs_before,
           (long long)res.macs_after, res.max_diff);
}

/* ---- Models of the conformance suite --------------------------------------------------------- */
static void test_models(void)
{
    static const char *const models[] = {
        "resnet18", "mobilenet_v2", "yolov5", "unet", "se_block", "pixel_shuffle",
        "channel_shuffle", "grouped_conv", "densenet121", "resnet_mini", "mobilenet_mini",
        "inception_mini", "vgg_small", "fpn", "mbv3_block", "flatten_linear", "stack_mean",
        "efficientnet_b0", "regnet_x_400mf", "googlenet", "squeezenet1_0", "shufflenet_v2_x0_5",
        "mnasnet0_5", "mobilenet_v3_small", "pointpillars_rpn", "bn1d_head", "broadcast",
        "dropout_eval", "layout_ops", "chunk_split", "se_expand_as", "yolov5_decode",
    };
    struct stat st;
    if (!models_dir || stat(models_dir, &st) != 0) {
        printf("models: %s not found (run tests/gen_models.py): skipped\n",
               models_dir ? models_dir : "(no dir given)");
        return;
    }
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.pt", models_dir, models[m]);
        if (stat(path, &st) != 0) {
            printf("%-22s missing: skipped\n", models[m]);
            continue;
        }
        npe_graph *g = NULL;
        npe_error e = {0};
        int r = npe_ts_import(path, NULL, &g, &e);
        CHECK_MSG(r == 0, "%s", e.msg);
        if (r)
            continue;
        /* the smallest batch gen_models.py wrote inputs for */
        int batch = 1;
        for (; batch < 4; batch++) {
            snprintf(path, sizeof path, "%s/%s.b%d.in0.npy", models_dir, models[m], batch);
            if (stat(path, &st) == 0)
                break;
        }
        npe_array in[4] = {{0}};
        int n_in = 0;
        for (; n_in < g->n_inputs && n_in < 4; n_in++) {
            snprintf(path, sizeof path, "%s/%s.b%d.in%d.npy", models_dir, models[m], batch, n_in);
            if (npe_npy_load(path, &in[n_in], &e)) {
                CHECK_MSG(0, "%s", e.msg);
                break;
            }
        }
        if (n_in == g->n_inputs) {
            result res;
            memset(&res, 0, sizeof res);
            check_model(g, in, n_in, models[m], &res);
            printf("%-22s groups %3d prunable %3d  params %9lld -> %9lld  MACs %11lld -> %11lld  "
                   "max rel diff %.2g\n", models[m], res.groups, res.prunable,
                   (long long)res.params_before, (long long)res.params_after,
                   (long long)res.macs_before, (long long)res.macs_after, res.max_diff);
        }
        for (int i = 0; i < 4; i++)
            npe_array_free(&in[i]);
        npe_graph_destroy(g);
    }
    /* the models' 3x3 layers of >= 32 channels over >= 16 tiles take Winograd */
    printf("models with prepared Winograd filters: %d\n", prepped_models);
    CHECK(prepped_models > 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    if (argc > 2)
        models_dir = argv[2];
    npe_kernels_init_cpu(&kern, NPE_KCPU_ALL);
    test_kept_count();
    test_ranking();
    test_pixel_shuffle_depthwise_transposed();
    test_flatten_se_cat();
    test_unprunable();
    test_partitions();
    test_fashion();
    test_models();
    return tu_finish("prune");
}
