/* Parts of a graph (engine/subgraph.h) on the conformance models: for each prunable group, the
 * unchanged part run on the input gives the original model's activations at the group's frontier
 * bit for bit, and the region of the pruned model run on those gives the whole pruned model's
 * outputs bit for bit (the model outputs outside the region are the original's). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/exec.h"
#include "../engine/groups.h"
#include "../engine/prune.h"
#include "../engine/subgraph.h"
#include "../formats/npy.h"
#include "../importers/torchscript.h"
#include "testutil.h"

static npe_kernels kern;

/* Bitwise equality of two float32 arrays of the same shape; prints the first difference. */
static int same_bits(const npe_array *a, const float *b, int64_t numel, const char *what)
{
    if (npe_array_numel(a) != numel) {
        fprintf(stderr, "%s: %lld elements, expected %lld\n", what,
                (long long)npe_array_numel(a), (long long)numel);
        return 0;
    }
    if (numel && memcmp(a->data, b, (size_t)numel * sizeof(float)) != 0) {
        const float *x = a->data;
        for (int64_t i = 0; i < numel; i++)
            if (memcmp(&x[i], &b[i], sizeof(float)) != 0) {
                fprintf(stderr, "%s: element %lld is %.9g, whole model %.9g\n", what,
                        (long long)i, (double)x[i], (double)b[i]);
                break;
            }
        return 0;
    }
    return 1;
}

typedef struct stats {
    int groups, partial, frontier_max;
} stats;

/* Group gi of G (found on g): prefix + region of the model pruned at sparsity 0.5 against the
 * whole models. orig: g's executor with every activation kept, run on in. */
static void check_group(const npe_graph *g, const npe_groups *G, int gi, npe_exec *orig,
                        const npe_array *in, const npe_array *orig_out, const char *model,
                        stats *st)
{
    const char *gname = G->groups[gi].name;
    npe_error e = {0};
    unsigned char *region = calloc((size_t)g->n_nodes + 1, 1);
    unsigned char *rest = calloc((size_t)g->n_nodes + 1, 1);
    npe_subgraph_plan rp = {0}, pp = {0};
    npe_graph *pg = NULL, *pre = NULL, *reg = NULL;
    npe_prune_plan *plan = NULL;
    npe_exec *xw = NULL, *xp = NULL, *xr = NULL;
    npe_array whole[16] = {{0}}, fr[64] = {{0}}, ro[16] = {{0}}, ins[65];
    int n_out = g->n_outputs < 16 ? g->n_outputs : 16;
    int need[64], n_need = 0, rout[16], orig_idx[16], n_rout = 0, ok = 1;
    int x = g->inputs[0];
    if (!region || !rest) {
        CHECK(0);
        goto out;
    }
    /* the whole pruned model: the reference */
    CHECK(npe_graph_clone(g, &pg) == 0);
    int r = npe_prune_plan_create(G, &plan);
    if (!r)
        r = npe_prune_select(g, G, gi, 0.5, 1, plan, &e);
    if (!r)
        r = npe_prune_apply(pg, G, plan, &e);
    if (!r)
        r = npe_exec_create(pg, &kern, 0, &xw, &e);
    if (!r)
        r = npe_exec_run(xw, NULL, in, 1, whole, n_out, &e);
    CHECK_MSG(r == 0, "%s group %s: whole pruned model: %s", model, gname, e.msg);
    if (r)
        goto out;

    /* the parts, planned on the original */
    CHECK(npe_subgraph_group_region(g, G, gi, region, &e) == 0);
    CHECK(npe_subgraph_plan_make(g, region, &rp, &e) == 0);
    for (int i = 0; i < g->n_nodes; i++)
        rest[i] = !region[i];
    CHECK(npe_subgraph_plan_make(g, rest, &pp, &e) == 0);
    /* the unchanged part reads the input only (nothing at all when the region is everything) */
    CHECK_MSG((pp.n_inputs == 1 && pp.inputs[0] == x) || (pp.n_inputs == 0 && pp.n_keep == 0),
              "%s group %s: the unchanged part reads %d values", model, gname, pp.n_inputs);
    if (rp.n_inputs > 64) {
        printf("%s group %s: %d frontier values, skipped\n", model, gname, rp.n_inputs);
        goto out;
    }
    for (int j = 0; j < rp.n_inputs; j++)
        if (rp.inputs[j] != x)
            need[n_need++] = rp.inputs[j];
    if (n_need > st->frontier_max)
        st->frontier_max = n_need;
    st->groups++;
    st->partial += rp.n_keep < g->n_nodes;

    /* prefix: the original's activations at the frontier */
    if (n_need) {
        CHECK(npe_graph_clone(g, &pre) == 0);
        r = npe_subgraph_cut(pre, &pp, need, n_need, &e);
        if (!r)
            r = npe_exec_create(pre, &kern, 0, &xp, &e);
        if (!r)
            r = npe_exec_run(xp, NULL, in, 1, fr, n_need, &e);
        CHECK_MSG(r == 0, "%s group %s: prefix: %s", model, gname, e.msg);
        if (r)
            goto out;
        for (int k = 0; k < n_need; k++) {
            const float *want = npe_exec_value(orig, need[k]);
            char what[300];
            snprintf(what, sizeof what, "%s group %s: frontier '%s'", model, gname,
                     g->values[need[k]].name);
            CHECK_MSG(want != NULL, "%s: not kept by the original's executor", what);
            if (want)
                CHECK(same_bits(&fr[k], want, npe_value_numel(&g->values[need[k]]), what));
        }
    }

    /* region of the pruned model on the frontier */
    for (int i = 0; i < n_out; i++)
        if (npe_subgraph_makes(g, &rp, g->outputs[i])) {
            rout[n_rout] = g->outputs[i];
            orig_idx[n_rout++] = i;
        }
    reg = pg; /* cut the pruned clone itself: it has the base's ids */
    pg = NULL;
    npe_exec_destroy(xw);
    xw = NULL;
    r = npe_subgraph_cut(reg, &rp, rout, n_rout, &e);
    CHECK_MSG(r == 0, "%s group %s: cut: %s", model, gname, e.msg);
    if (r)
        goto out;
    for (int j = 0, k = 0; j < rp.n_inputs; j++)
        ins[j] = rp.inputs[j] == x ? *in : fr[k++];
    if (n_rout) {
        r = npe_exec_create(reg, &kern, 0, &xr, &e);
        if (!r)
            r = npe_exec_run(xr, NULL, ins, rp.n_inputs, ro, n_rout, &e);
        CHECK_MSG(r == 0, "%s group %s: region: %s", model, gname, e.msg);
        if (r)
            goto out;
    }
    for (int i = 0; i < n_out; i++) {
        char what[300];
        snprintf(what, sizeof what, "%s group %s: output %d", model, gname, i);
        int j = 0;
        while (j < n_rout && orig_idx[j] != i)
            j++;
        int64_t numel = npe_array_numel(&whole[i]);
        if (j < n_rout) {
            ok &= same_bits(&ro[j], whole[i].data, numel, what);
        } else {
            /* outside the region: pruning must not have changed it */
            ok &= same_bits(&orig_out[i], whole[i].data, numel, what);
        }
    }
    CHECK(ok);
out:
    for (int i = 0; i < 16; i++) {
        npe_array_free(&whole[i]);
        npe_array_free(&ro[i]);
    }
    for (int i = 0; i < 64; i++)
        npe_array_free(&fr[i]);
    npe_exec_destroy(xw);
    npe_exec_destroy(xp);
    npe_exec_destroy(xr);
    npe_graph_destroy(pg);
    npe_graph_destroy(pre);
    npe_graph_destroy(reg);
    npe_prune_plan_destroy(plan);
    npe_subgraph_plan_finish(&rp);
    npe_subgraph_plan_finish(&pp);
    free(region);
    free(rest);
}

static void check_model(const char *dir, const char *model)
{
    char path[1024];
    struct stat stb;
    snprintf(path, sizeof path, "%s/%s.pt", dir, model);
    if (stat(path, &stb) != 0) {
        printf("%-20s missing: skipped\n", model);
        return;
    }
    npe_error e = {0};
    npe_graph *g = NULL;
    npe_groups *G = NULL;
    npe_exec *orig = NULL;
    npe_array in = {0}, outs[16] = {{0}};
    int r = npe_ts_import(path, NULL, &g, &e);
    CHECK_MSG(r == 0, "%s: %s", model, e.msg);
    if (r)
        return;
    int batch = 1;
    for (; batch < 4; batch++) {
        snprintf(path, sizeof path, "%s/%s.b%d.in0.npy", dir, model, batch);
        if (stat(path, &stb) == 0)
            break;
    }
    if (g->n_inputs != 1 || npe_npy_load(path, &in, &e) != 0) {
        printf("%-20s not one input: skipped\n", model);
        goto out;
    }
    npe_tshape shp = {in.ndim, {0}};
    for (int d = 0; d < in.ndim; d++)
        shp.d[d] = in.shape[d];
    int n_out = g->n_outputs < 16 ? g->n_outputs : 16;
    if ((r = npe_groups_find(g, &shp, 1, &G, &e)) ||
        (r = npe_exec_create(g, &kern, NPE_EXEC_KEEP_ALL, &orig, &e)) ||
        (r = npe_exec_run(orig, NULL, &in, 1, outs, n_out, &e))) {
        CHECK_MSG(0, "%s: %s", model, e.msg);
        goto out;
    }
    stats st = {0};
    for (int gi = 0; gi < G->n_groups; gi++)
        if (G->groups[gi].prunable)
            check_group(g, G, gi, orig, &in, outs, model, &st);
    printf("%-20s %3d prunable groups checked, %3d with a region smaller than the model, "
           "frontier up to %d values\n", model, st.groups, st.partial, st.frontier_max);
    CHECK(st.groups > 0);
out:
    for (int i = 0; i < 16; i++)
        npe_array_free(&outs[i]);
    npe_array_free(&in);
    npe_exec_destroy(orig);
    npe_groups_destroy(G);
    npe_graph_destroy(g);
}

int main(int argc, char **argv)
{
    static const char *const models[] = {
        "resnet_mini", "mobilenet_mini", "yolov5", "yolov5_decode", "unet", "se_block", "fpn",
        "inception_mini", "mbv3_block", "densenet121", "mobilenet_v2", "resnet18", "vgg_small",
        "pointpillars_rpn", "shufflenet_v2_x0_5", "squeezenet1_0", "mobilenet_v3_small",
    };
    struct stat stb;
    if (argc < 2 || stat(argv[1], &stb) != 0) {
        printf("subgraph: models dir %s not found (tests/gen_models.py makes it): skipped\n",
               argc > 1 ? argv[1] : "(none given)");
        return 77;
    }
    npe_kernels_init_cpu(&kern, NPE_KCPU_ALL);
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        check_model(argv[1], models[m]);
    return tu_finish("subgraph");
}
