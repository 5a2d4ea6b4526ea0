/* Public model queries: layers, channel groups, parameter and MAC counts at given input shapes,
 * computed on a clone of the model's graph (the group finder and counter of engine/). */
#include <npengine/npengine.h>

#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "model_internal.h"

void npe_model_analysis_free(npe_model_analysis *a)
{
    if (!a)
        return;
    npe_counts_free(&a->counts);
    npe_groups_destroy(a->G);
    npe_graph_destroy(a->g);
    free(a->layers);
    free(a->groups);
    free(a->names);
    free(a->outputs);
    free(a);
}

/* Integer item idx of a list value (or the value itself when it is one int); 0 if neither. */
static int list_int(const npe_graph *g, int vid, int idx)
{
    const npe_value *v = &g->values[vid];
    if (v->type == NPE_VT_INT)
        return (int)v->i;
    if (v->type == NPE_VT_LIST && v->n_items > 0) {
        const npe_value *it = &g->values[v->items[idx < v->n_items ? idx : v->n_items - 1]];
        return it->type == NPE_VT_INT ? (int)it->i : 0;
    }
    return 0;
}

static void conv_info(const npe_graph *g, const npe_node *n, npe_layer_info *L)
{
    const npe_value *w = &g->values[n->in[NPE_CONV_WEIGHT]];
    int transposed = g->values[n->in[NPE_CONV_TRANSPOSED]].i != 0;
    int groups = list_int(g, n->in[NPE_CONV_GROUPS], 0);
    if (groups < 1)
        groups = 1;
    int sp = w->ndim - 2; /* spatial dims */
    static const char *const types[2][3] = {{"Conv1d", "Conv2d", "Conv3d"},
                                            {"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}};
    L->op_type = sp >= 1 && sp <= 3 ? types[transposed][sp - 1] : "Conv";
    L->groups = groups;
    if (w->ndim >= 2) {
        L->in_channels = transposed ? w->shape[0] : w->shape[1] * groups;
        L->out_channels = transposed ? w->shape[1] * groups : w->shape[0];
    }
    const npe_value *pad = &g->values[n->in[NPE_CONV_PADDING]];
    for (int d = 0; d < 2 && d < sp; d++) {
        L->kernel[d] = (int)w->shape[2 + d];
        L->stride[d] = list_int(g, n->in[NPE_CONV_STRIDE], d);
        L->dilation[d] = list_int(g, n->in[NPE_CONV_DILATION], d);
        if (pad->type == NPE_VT_STR) /* "same": dilation * (k - 1) in all, this much before */
            L->padding[d] = pad->s && strcmp(pad->s, "same") == 0
                                ? L->dilation[d] * (L->kernel[d] - 1) / 2 : 0;
        else
            L->padding[d] = list_int(g, n->in[NPE_CONV_PADDING], d);
    }
}

static int build_layers(npe_model_analysis *a, npe_error *err)
{
    const npe_graph *g = a->g;
    a->layers = calloc((size_t)(a->counts.n_layers ? a->counts.n_layers : 1), sizeof(*a->layers));
    if (!a->layers)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (int i = 0; i < a->counts.n_layers; i++) {
        const npe_layer_count *c = &a->counts.layers[i];
        const npe_node *n = &g->nodes[c->node];
        npe_layer_info *L = &a->layers[a->n_layers++];
        L->name = c->name;
        L->params = c->params;
        L->macs = c->macs;
        L->groups = 1;
        if (n->op == NPE_OP_CONV) {
            conv_info(g, n, L);
        } else if (n->op == NPE_OP_LINEAR) {
            const npe_value *w = &g->values[n->in[NPE_LINEAR_WEIGHT]];
            L->op_type = "Linear";
            if (w->ndim == 2) {
                L->out_channels = w->shape[0];
                L->in_channels = w->shape[1];
            }
        } else { /* batch norm: C from the running mean, the input's rank for the type */
            const npe_value *x = &g->values[n->in[NPE_BN_INPUT]];
            const npe_value *mean = &g->values[n->in[NPE_BN_MEAN]];
            L->op_type = x->ndim == 5 ? "BatchNorm3d" : x->ndim == 4 ? "BatchNorm2d" : "BatchNorm1d";
            L->in_channels = L->out_channels = mean->type == NPE_VT_TENSOR ? npe_value_numel(mean)
                                                                            : 0;
        }
    }
    return 0;
}

/* Append name to list[0..*n) unless it is there already. */
static void add_name(const char **list, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(list[i], name) == 0)
            return;
    list[(*n)++] = name;
}

static int build_groups(npe_model_analysis *a, npe_error *err)
{
    const npe_groups *G = a->G;
    size_t total = 0;
    for (int gi = 0; gi < G->n_groups; gi++)
        total += (size_t)G->groups[gi].n_producers + (size_t)G->groups[gi].n_consumers;
    a->groups = calloc((size_t)(G->n_groups ? G->n_groups : 1), sizeof(*a->groups));
    a->names = calloc(total ? total : 1, sizeof(*a->names));
    if (!a->groups || !a->names)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    const char **next = a->names;
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *gr = &G->groups[gi];
        npe_group_info *I = &a->groups[a->n_groups++];
        I->name = gr->name;
        I->channels = gr->channels;
        I->prunable = gr->prunable;
        I->reason = gr->prunable ? NULL : gr->reason;
        I->producers = next;
        for (int k = 0; k < gr->n_producers; k++)
            add_name(next, &I->n_producers, npe_layer_name(a->g, G->producers[gr->producers[k]].node));
        next += I->n_producers;
        I->consumers = next;
        for (int k = 0; k < gr->n_consumers; k++)
            add_name(next, &I->n_consumers, npe_layer_name(a->g, G->consumers[gr->consumers[k]].node));
        next += I->n_consumers;
    }
    return 0;
}

static int check_shapes(const npe_model *m, const npe_shape *shapes, int n, npe_error *err)
{
    if (!shapes || n < 1)
        return npe_error_set(err, NPE_EINVAL, "the shape of every model input is needed");
    if (n != m->graph->n_inputs || n > 8)
        return npe_error_set(err, NPE_EINVAL, "%s takes %d input(s), %d input shape(s) given",
                             m->path, m->graph->n_inputs, n);
    for (int i = 0; i < n; i++) {
        if (shapes[i].ndim < 1 || shapes[i].ndim > NPE_MAX_DIMS)
            return npe_error_set(err, NPE_EINVAL, "input shape %d has %d dims", i, shapes[i].ndim);
        for (int d = 0; d < shapes[i].ndim; d++)
            if (shapes[i].d[d] < 1 || shapes[i].d[d] > ((int64_t)1 << 31))
                return npe_error_set(err, NPE_EINVAL, "input shape %d: dim %d is %lld", i, d,
                                     (long long)shapes[i].d[d]);
    }
    return 0;
}

int npe_model_analysis_run(npe_model *m, const npe_shape *shapes, int n, npe_error *err)
{
    int r = check_shapes(m, shapes, n, err);
    if (r)
        return r;
    npe_model_analysis *a = calloc(1, sizeof(*a));
    if (!a)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    npe_tshape ts[8];
    for (int i = 0; i < n; i++) {
        ts[i].ndim = shapes[i].ndim;
        memcpy(ts[i].d, shapes[i].d, sizeof(ts[i].d));
    }
    if ((r = npe_graph_clone(m->graph, &a->g))) {
        r = npe_error_set(err, r, "out of memory copying the model");
        goto out_fail;
    }
    if ((r = npe_groups_find(a->g, ts, n, &a->G, err)) || (r = npe_count(a->g, &a->counts, err)) ||
        (r = build_layers(a, err)) || (r = build_groups(a, err)))
        goto out_fail;
    a->n_outputs = a->g->n_outputs;
    if (!(a->outputs = calloc((size_t)(a->n_outputs ? a->n_outputs : 1), sizeof(*a->outputs)))) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_fail;
    }
    for (int i = 0; i < a->n_outputs; i++) {
        const npe_value *v = &a->g->values[a->g->outputs[i]];
        a->outputs[i].ndim = v->ndim;
        memcpy(a->outputs[i].d, v->shape, sizeof(a->outputs[i].d));
    }
    npe_model_analysis_free(m->an);
    m->an = a;
    return 0;
out_fail:
    npe_model_analysis_free(a);
    return r;
}

NPE_API int npe_model_analyse(npe_model *m, const npe_shape *input_shapes, int n_input_shapes)
{
    if (!m)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    npe_error err = {0};
    if (npe_model_analysis_run(m, input_shapes, n_input_shapes, &err))
        return npe_ctx_fail(m->ctx, &err);
    return 0;
}

/* Why a getter cannot answer (the context's last error is per thread, so getters may set it
 * while other threads run forwards). */
static int getter_error(const npe_model *m, const char *fn, int i, int n)
{
    if (!m)
        return NPE_EINVAL;
    if (!m->an)
        return npe_ctx_error(m->ctx, NPE_EINVAL, "%s: no analysis yet: call npe_model_analyse "
                             "(or npe_model_prune) with the input shapes first", fn);
    if (n <= 0)
        return npe_ctx_error(m->ctx, NPE_EINVAL, "%s: index %d: there are none", fn, i);
    return npe_ctx_error(m->ctx, NPE_EINVAL, "%s: index %d is outside 0..%d (or a NULL "
                         "argument)", fn, i, n - 1);
}

NPE_API int npe_model_output_shape(const npe_model *m, int i, npe_shape *out)
{
    if (!m || !m->an || !out || i < 0 || i >= m->an->n_outputs)
        return getter_error(m, "npe_model_output_shape", i, m && m->an ? m->an->n_outputs : 0);
    *out = m->an->outputs[i];
    return 0;
}

NPE_API int npe_model_layer_count(const npe_model *m)
{
    return m && m->an ? m->an->n_layers : 0;
}

NPE_API int npe_model_layer(const npe_model *m, int i, npe_layer_info *out)
{
    if (!m || !m->an || !out || i < 0 || i >= m->an->n_layers)
        return getter_error(m, "npe_model_layer", i, m && m->an ? m->an->n_layers : 0);
    *out = m->an->layers[i];
    return 0;
}

NPE_API int npe_model_group_count(const npe_model *m)
{
    return m && m->an ? m->an->n_groups : 0;
}

NPE_API int npe_model_group(const npe_model *m, int i, npe_group_info *out)
{
    if (!m || !m->an || !out || i < 0 || i >= m->an->n_groups)
        return getter_error(m, "npe_model_group", i, m && m->an ? m->an->n_groups : 0);
    *out = m->an->groups[i];
    return 0;
}

NPE_API int npe_model_find_group(const npe_model *m, const char *name)
{
    if (!m || !m->an || !name)
        return getter_error(m, "npe_model_find_group", 0, 1);
    int gi = npe_groups_find_name(m->an->G, name);
    return gi >= 0 ? gi : NPE_ENOTFOUND;
}

NPE_API int npe_model_count(const npe_model *m, int64_t *params, int64_t *macs)
{
    if (!m || !m->an)
        return getter_error(m, "npe_model_count", 0, 1);
    if (params)
        *params = m->an->counts.params;
    if (macs)
        *macs = m->an->counts.macs;
    return 0;
}
