/* Parameter and MAC counts of an inferred graph, total and per layer (what is counted, and what
 * not, is stated in prune.h). */
#include "prune.h"

#include <stdlib.h>
#include <string.h>

static int64_t numel_of(const npe_value *v)
{
    int64_t n = npe_value_numel(v);
    return n < 0 ? 0 : n;
}

/* Parameters a node reads (weights, biases, BN affine; not running statistics). */
static int64_t node_params(const npe_graph *g, const npe_node *n)
{
    int64_t p = 0;
    for (int j = 0; j < n->n_in; j++) {
        const npe_value *v = &g->values[n->in[j]];
        if (v->type == NPE_VT_TENSOR && (v->flags & NPE_VF_PARAM))
            p += numel_of(v);
    }
    return p;
}

/* Multiply-accumulates of one image (the batch dim divided out). */
static int64_t node_macs(const npe_graph *g, const npe_node *n)
{
    const npe_value *y = &g->values[n->out[0]];
    int64_t batch = y->ndim > 1 && y->shape[0] > 0 ? y->shape[0] : 1;
    if (n->op == NPE_OP_LINEAR) {
        const npe_value *w = &g->values[n->in[NPE_LINEAR_WEIGHT]];
        if (w->ndim != 2)
            return 0;
        return numel_of(y) / batch * w->shape[1];
    }
    if (n->op != NPE_OP_CONV)
        return 0;
    const npe_value *x = &g->values[n->in[NPE_CONV_INPUT]];
    const npe_value *w = &g->values[n->in[NPE_CONV_WEIGHT]];
    if (w->ndim != 4 || x->ndim != 4)
        return 0;
    int64_t kk = w->shape[2] * w->shape[3];
    if (g->values[n->in[NPE_CONV_TRANSPOSED]].i) {
        /* every input pixel of every input channel scatters into (Cout/g)*kh*kw outputs */
        int64_t xb = x->shape[0] > 0 ? x->shape[0] : 1;
        return numel_of(x) / xb * w->shape[1] * kk;
    }
    /* weight [Cout, Cin/g, kh, kw]: each output reads Cin/g*kh*kw inputs */
    return numel_of(y) / batch * w->shape[1] * kk;
}

int npe_count(const npe_graph *g, npe_counts *out, npe_error *err)
{
    memset(out, 0, sizeof *out);
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        npe_op op = g->nodes[i].op;
        n += op == NPE_OP_CONV || op == NPE_OP_LINEAR || op == NPE_OP_BATCH_NORM;
    }
    out->layers = calloc((size_t)(n ? n : 1), sizeof *out->layers);
    if (!out->layers)
        return npe_error_set(err, NPE_ENOMEM, "out of memory counting parameters");
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *nd = &g->nodes[i];
        if (nd->op != NPE_OP_CONV && nd->op != NPE_OP_LINEAR && nd->op != NPE_OP_BATCH_NORM)
            continue;
        if (nd->n_out < 1 || !(g->values[nd->out[0]].flags & NPE_VF_KNOWN)) {
            npe_counts_free(out);
            char where[512];
            npe_node_desc(g, i, where, sizeof where);
            return npe_error_set(err, NPE_EINVAL, "%s has no inferred shape: infer the graph "
                                 "before counting", where);
        }
        npe_layer_count *L = &out->layers[out->n_layers++];
        L->node = i;
        L->name = npe_layer_name(g, i);
        L->params = node_params(g, nd);
        L->macs = node_macs(g, nd);
        out->macs += L->macs;
    }
    /* each parameter tensor once, even when several calls of a module read it */
    for (int v = 0; v < g->n_values; v++) {
        const npe_value *val = &g->values[v];
        if (val->type == NPE_VT_TENSOR && (val->flags & NPE_VF_PARAM))
            out->params += numel_of(val);
    }
    return 0;
}

void npe_counts_free(npe_counts *c)
{
    if (!c)
        return;
    free(c->layers);
    memset(c, 0, sizeof *c);
}
