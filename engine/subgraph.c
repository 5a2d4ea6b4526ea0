/* Parts of a graph: the region downstream of an edit, its frontier, and the part cut out as a
 * graph of its own (see subgraph.h). */
#include "subgraph.h"

#include <stdlib.h>
#include <string.h>

/* Lists nest (a list of lists of ints): deeper than this is no model we import. */
#define LIST_DEPTH 16

int npe_subgraph_is_activation(const npe_graph *g, int v)
{
    const npe_value *val = &g->values[v];
    if (val->type != NPE_VT_TENSOR || (val->flags & NPE_VF_UNUSABLE))
        return 0;
    if (val->flags & NPE_VF_INPUT)
        return 1;
    if (val->producer < 0)
        return 0; /* parameter, buffer, constant */
    return !((val->flags & NPE_VF_STATIC) && val->data);
}

/* Whether v, or an item of a list v holds, is flagged. */
static int flagged(const npe_graph *g, int v, const unsigned char *flag, int depth)
{
    if (flag[v])
        return 1;
    const npe_value *val = &g->values[v];
    if (val->type != NPE_VT_LIST || depth >= LIST_DEPTH)
        return 0;
    for (int i = 0; i < val->n_items; i++)
        if (flagged(g, val->items[i], flag, depth + 1))
            return 1;
    return 0;
}

void npe_subgraph_downstream(const npe_graph *g, const int *seeds, int n_seeds,
                             const unsigned char *changed_values, unsigned char *nodes_out)
{
    memset(nodes_out, 0, (size_t)g->n_nodes);
    for (int i = 0; i < n_seeds; i++)
        if (seeds[i] >= 0 && seeds[i] < g->n_nodes)
            nodes_out[seeds[i]] = 1;
    unsigned char *ch = calloc((size_t)g->n_values + 1, 1);
    if (!ch) { /* no memory for the walk: everything may change, which is always right */
        memset(nodes_out, 1, (size_t)g->n_nodes);
        return;
    }
    if (changed_values)
        memcpy(ch, changed_values, (size_t)g->n_values);
    /* nodes are in topological order: one pass sees every change before its readers */
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in && !nodes_out[i]; k++)
            if (flagged(g, n->in[k], ch, 0))
                nodes_out[i] = 1;
        if (nodes_out[i])
            for (int k = 0; k < n->n_out; k++)
                ch[n->out[k]] = 1;
    }
    free(ch);
}

int npe_subgraph_group_region(const npe_graph *g, const npe_groups *G, int gi,
                              unsigned char *nodes_out, npe_error *err)
{
    const npe_group *grp = &G->groups[gi];
    size_t nseeds = (size_t)grp->n_producers + (size_t)grp->n_consumers + (size_t)grp->n_lits;
    int *seeds = malloc((nseeds + 1) * sizeof(int));
    unsigned char *changed = calloc((size_t)g->n_values + 1, 1);
    if (!seeds || !changed) {
        free(seeds);
        free(changed);
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    }
    int ns = 0;
    for (int i = 0; i < grp->n_producers; i++) {
        const npe_producer *pr = &G->producers[grp->producers[i]];
        seeds[ns++] = pr->node;
        if (pr->weight >= 0 && pr->weight < g->n_values)
            changed[pr->weight] = 1;
    }
    for (int i = 0; i < grp->n_consumers; i++) {
        const npe_consumer *c = &G->consumers[grp->consumers[i]];
        seeds[ns++] = c->node;
        if (c->in.value >= 0 && c->in.value < g->n_values)
            changed[c->in.value] = 1;
    }
    for (int i = 0; i < grp->n_params; i++) {
        int v = G->cuts[grp->params[i]].map.value;
        if (v >= 0 && v < g->n_values)
            changed[v] = 1;
    }
    for (int i = 0; i < grp->n_lits; i++) {
        const npe_lit *l = &G->lits[grp->lits[i]];
        seeds[ns++] = l->node;
        if (l->value >= 0 && l->value < g->n_values)
            changed[l->value] = 1;
    }
    npe_subgraph_downstream(g, seeds, ns, changed, nodes_out);
    free(seeds);
    free(changed);
    return 0;
}

void npe_subgraph_plan_finish(npe_subgraph_plan *p)
{
    if (!p)
        return;
    free(p->keep);
    free(p->inputs);
    memset(p, 0, sizeof(*p));
}

/* Pull the producer of every static value node reads into keep (see plan_make). */
static void pull_static(const npe_graph *g, int v, unsigned char *keep, int depth)
{
    const npe_value *val = &g->values[v];
    if (val->producer >= 0 && !keep[val->producer] && !npe_subgraph_is_activation(g, v))
        keep[val->producer] = 1;
    if (val->type == NPE_VT_LIST && depth < LIST_DEPTH)
        for (int i = 0; i < val->n_items; i++)
            pull_static(g, val->items[i], keep, depth + 1);
}

static void mark_frontier(const npe_graph *g, int v, const unsigned char *keep,
                          unsigned char *front, int depth)
{
    const npe_value *val = &g->values[v];
    if (npe_subgraph_is_activation(g, v) && (val->producer < 0 || !keep[val->producer]))
        front[v] = 1;
    if (val->type == NPE_VT_LIST && depth < LIST_DEPTH)
        for (int i = 0; i < val->n_items; i++)
            mark_frontier(g, val->items[i], keep, front, depth + 1);
}

int npe_subgraph_plan_make(const npe_graph *g, const unsigned char *nodes, npe_subgraph_plan *p,
                           npe_error *err)
{
    memset(p, 0, sizeof(*p));
    p->keep = malloc((size_t)g->n_nodes + 1);
    unsigned char *front = calloc((size_t)g->n_values + 1, 1);
    if (!p->keep || !front) {
        free(front);
        npe_subgraph_plan_finish(p);
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    }
    memcpy(p->keep, nodes, (size_t)g->n_nodes);
    /* a pulled node comes before its reader: walking backwards sees it after it was pulled, and
     * pulls what it reads in turn */
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        if (!p->keep[i])
            continue;
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            pull_static(g, n->in[k], p->keep, 0);
    }
    int nf = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!p->keep[i])
            continue;
        p->n_keep++;
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            mark_frontier(g, n->in[k], p->keep, front, 0);
    }
    for (int v = 0; v < g->n_values; v++)
        nf += front[v];
    p->inputs = malloc((size_t)(nf ? nf : 1) * sizeof(int));
    if (!p->inputs) {
        free(front);
        npe_subgraph_plan_finish(p);
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++)
        if (front[v])
            p->inputs[p->n_inputs++] = v;
    free(front);
    return 0;
}

int npe_subgraph_makes(const npe_graph *g, const npe_subgraph_plan *p, int v)
{
    int pr = g->values[v].producer;
    return pr >= 0 && p->keep[pr];
}

int npe_subgraph_cut(npe_graph *g, const npe_subgraph_plan *p, const int *outs, int n_outs,
                     npe_error *err)
{
    for (int i = 0; i < n_outs; i++)
        if (outs[i] < 0 || outs[i] >= g->n_values || !npe_subgraph_makes(g, p, outs[i]))
            return npe_error_set(err, NPE_EINVAL, "part of the graph: output %d ('%s') is not "
                                 "made by a node of the part", i,
                                 outs[i] >= 0 && outs[i] < g->n_values ? g->values[outs[i]].name
                                                                       : "?");
    /* Outputs while dead nodes are removed: the ones asked for, then one result of every kept
     * node, so nodes no output needs stay (remove_dead keeps every result of a live node). */
    int *tmp = malloc(((size_t)n_outs + (size_t)p->n_keep + 1) * sizeof(int));
    if (!tmp)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    int nt = 0;
    for (int i = 0; i < n_outs; i++)
        tmp[nt++] = outs[i];
    for (int i = 0; i < g->n_nodes; i++)
        if (p->keep[i] && g->nodes[i].n_out > 0)
            tmp[nt++] = g->nodes[i].out[0];
    /* frontier values lose their producers: the walk from the outputs stops at them */
    for (int i = 0; i < p->n_inputs; i++) {
        npe_value *v = &g->values[p->inputs[i]];
        v->producer = -1;
        v->producer_out = 0;
        v->flags |= NPE_VF_INPUT;
    }
    int r = npe_graph_set_inputs(g, p->inputs, p->n_inputs);
    if (!r)
        r = npe_graph_set_outputs(g, tmp, nt);
    free(tmp);
    if (r)
        return npe_error_set(err, r, "out of memory");
    if ((r = npe_graph_remove_dead(g, err)))
        return r;
    /* remove_dead renumbered the outputs too: the first n_outs are the ones asked for */
    if (g->n_outputs < n_outs)
        return npe_error_set(err, NPE_EINVAL, "part of the graph: outputs lost");
    g->n_outputs = n_outs;
    return npe_graph_validate(g, err);
}
