/* Physical channel pruning: rank channels by their producers' filter norms, choose the kept ones,
 * cut every parameter dim and literal the dependency groups name, infer again and check. */
#include "prune.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---- Plans ----------------------------------------------------------------------------------- */
int npe_prune_plan_create(const npe_groups *G, npe_prune_plan **out)
{
    *out = NULL;
    npe_prune_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NPE_ENOMEM;
    int n = G->n_groups ? G->n_groups : 1;
    p->n_kept = malloc((size_t)n * sizeof *p->n_kept);
    p->kept = calloc((size_t)n, sizeof *p->kept);
    p->why = calloc((size_t)n, sizeof *p->why);
    if (!p->n_kept || !p->kept || !p->why) {
        npe_prune_plan_destroy(p);
        return NPE_ENOMEM;
    }
    p->n_groups = G->n_groups;
    for (int i = 0; i < G->n_groups; i++)
        p->n_kept[i] = G->groups[i].channels;
    *out = p;
    return 0;
}

void npe_prune_plan_destroy(npe_prune_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_groups; i++) {
        if (p->kept)
            free(p->kept[i]);
        if (p->why)
            free(p->why[i]);
    }
    free(p->n_kept);
    free(p->kept);
    free(p->why);
    free(p);
}

int64_t npe_prune_kept_count(int64_t C, double s, int align)
{
    if (C <= 0)
        return C;
    if (!(s > 0))
        s = 0;
    if (s > 1)
        s = 1;
    int64_t k = C - (int64_t)floor(s * (double)C);
    if (align > 1) {
        int64_t a = align, up = (k + a - 1) / a * a;
        k = up < a ? a : up;
    }
    if (k > C)
        k = C;
    return k < 1 ? 1 : k;
}

/* ---- Ranking --------------------------------------------------------------------------------- */
/* L1 norm of the filter making output channel o of producer node P. */
static double filter_norm(const npe_graph *g, const npe_producer *P, int o)
{
    const npe_node *n = &g->nodes[P->node];
    const npe_value *w = &g->values[P->weight];
    if (!w->data)
        return 0;
    double s = 0;
    if (n->op == NPE_OP_LINEAR || (n->op == NPE_OP_CONV && P->dim == 0 && !P->depthwise) ||
        (n->op == NPE_OP_CONV && P->depthwise && w->ndim == 4 &&
         g->values[n->in[NPE_CONV_TRANSPOSED]].i == 0)) {
        /* row o */
        int64_t row = w->shape[0] ? w->numel_data / w->shape[0] : 0;
        if (o >= w->shape[0])
            return 0;
        for (int64_t i = 0; i < row; i++)
            s += fabs((double)w->data[o * row + i]);
        return s;
    }
    /* transposed conv: weight [Cin, Cout/g, kh, kw]; output o = G*(Cout/g) + q reads
     * w[G*(Cin/g) .. (G+1)*(Cin/g) - 1, q] */
    if (w->ndim != 4)
        return 0;
    int64_t groups = g->values[n->in[NPE_CONV_GROUPS]].i;
    int64_t cin = w->shape[0], per = w->shape[1], k = w->shape[2] * w->shape[3];
    if (groups < 1 || cin % groups || per < 1)
        return 0;
    int64_t G = o / per, q = o % per, rows = cin / groups;
    for (int64_t i = G * rows; i < (G + 1) * rows && i < cin; i++)
        for (int64_t j = 0; j < k; j++)
            s += fabs((double)w->data[(i * per + q) * k + j]);
    return s;
}

int npe_prune_norms(const npe_graph *g, const npe_groups *G, int gi, double *norms)
{
    if (gi < 0 || gi >= G->n_groups)
        return NPE_EINVAL;
    const npe_group *gr = &G->groups[gi];
    for (int c = 0; c < gr->channels; c++)
        norms[c] = 0;
    for (int k = 0; k < gr->n_producers; k++) {
        const npe_producer *P = &G->producers[gr->producers[k]];
        if (P->shared)
            continue;
        for (int o = 0; o < P->out.n; o++) {
            npe_chanref r = P->out.at[o];
            if (r.group == gi && r.chan >= 0 && r.chan < gr->channels)
                norms[r.chan] += filter_norm(g, P, o);
        }
    }
    return 0;
}

typedef struct ranked {
    double norm;
    int index;
} ranked;

static int by_norm(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->norm != y->norm)
        return x->norm < y->norm ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

int npe_prune_set_kept(const npe_groups *G, npe_prune_plan *plan, int gi, const int *kept, int n,
                       npe_error *err)
{
    if (gi < 0 || gi >= G->n_groups || plan->n_groups != G->n_groups)
        return npe_error_set(err, NPE_EINVAL, "group %d does not exist (the model has %d)", gi,
                             G->n_groups);
    const npe_group *gr = &G->groups[gi];
    if (!gr->prunable)
        return npe_error_set(err, NPE_EINVAL, "group '%s' cannot be pruned: %s", gr->name,
                             gr->reason);
    if (n < 1 || n > gr->channels)
        return npe_error_set(err, NPE_EINVAL, "group '%s' has %d channels; %d kept is not "
                             "possible (at least 1)", gr->name, gr->channels, n);
    int *k = malloc((size_t)n * sizeof *k);
    if (!k)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    memcpy(k, kept, (size_t)n * sizeof *k);
    qsort(k, (size_t)n, sizeof *k, by_int);
    for (int i = 0; i < n; i++)
        if (k[i] < 0 || k[i] >= gr->channels || (i && k[i] == k[i - 1])) {
            int bad = k[i];
            free(k);
            return npe_error_set(err, NPE_EINVAL, "group '%s': kept channel %d is %s (channels "
                                 "0..%d)", gr->name, bad,
                                 bad < 0 || bad >= gr->channels ? "out of range" : "repeated",
                                 gr->channels - 1);
        }
    if (gr->part) {
        /* pieces: each keeps at least one channel; equal pieces keep equally many */
        int *per = calloc((size_t)gr->n_parts, sizeof *per);
        if (!per) {
            free(k);
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        }
        for (int i = 0; i < n; i++)
            per[gr->part[k[i]]]++;
        int bad = -1;
        for (int q = 0; q < gr->n_parts && bad < 0; q++)
            if (per[q] < 1 || (gr->equal_parts && per[q] != per[0]))
                bad = q;
        int got = bad >= 0 ? per[bad] : 0, first = per[0];
        free(per);
        if (bad >= 0) {
            free(k);
            if (got < 1)
                return npe_error_set(err, NPE_EINVAL, "group '%s' is split into %d pieces and "
                                     "would keep no channel of piece %d", gr->name, gr->n_parts,
                                     bad);
            return npe_error_set(err, NPE_EINVAL, "group '%s' is split into %d pieces that must "
                                 "keep equally many channels, but piece 0 keeps %d and piece %d "
                                 "keeps %d", gr->name, gr->n_parts, first, bad, got);
        }
    }
    free(plan->kept[gi]);
    if (n == gr->channels) {
        free(k);
        k = NULL;
    }
    plan->kept[gi] = k;
    plan->n_kept[gi] = n;
    return 0;
}

int npe_prune_select(const npe_graph *g, const npe_groups *G, int gi, double s, int align,
                     npe_prune_plan *plan, npe_error *err)
{
    if (gi < 0 || gi >= G->n_groups)
        return npe_error_set(err, NPE_EINVAL, "group %d does not exist (the model has %d)", gi,
                             G->n_groups);
    const npe_group *gr = &G->groups[gi];
    if (!gr->prunable)
        return npe_error_set(err, NPE_EINVAL, "group '%s' cannot be pruned: %s", gr->name,
                             gr->reason);
    int C = gr->channels;
    ranked *rk = malloc((size_t)(C ? C : 1) * sizeof *rk);
    double *norms = malloc((size_t)(C ? C : 1) * sizeof *norms);
    int *kept = malloc((size_t)(C ? C : 1) * sizeof *kept);
    if (!rk || !norms || !kept) {
        free(rk);
        free(norms);
        free(kept);
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    }
    npe_prune_norms(g, G, gi, norms);
    /* per piece when the group is split (one piece otherwise): the kept count of the piece's
     * size, the lowest norms pruned first, equal norms pruning the lower index first */
    int np = gr->part ? gr->n_parts : 1, nk = 0;
    for (int q = 0; q < np; q++) {
        int m = 0;
        for (int c = 0; c < C; c++)
            if (!gr->part || gr->part[c] == q)
                rk[m++] = (ranked){norms[c], c};
        int k = (int)npe_prune_kept_count(m, s, align);
        qsort(rk, (size_t)m, sizeof *rk, by_norm);
        for (int i = 0; i < k; i++)
            kept[nk++] = rk[m - k + i].index;
    }
    int r = npe_prune_set_kept(G, plan, gi, kept, nk, err);
    free(rk);
    free(norms);
    free(kept);
    return r;
}

int npe_prune_excluded(const npe_graph *g, const npe_groups *G, int gi,
                       const char *const *exclude, int n_exclude)
{
    const npe_group *gr = &G->groups[gi];
    for (int e = 0; e < n_exclude; e++) {
        if (!exclude[e])
            continue;
        if (strcmp(gr->name, exclude[e]) == 0)
            return e;
        for (int k = 0; k < gr->n_producers; k++)
            if (strcmp(npe_layer_name(g, G->producers[gr->producers[k]].node), exclude[e]) == 0)
                return e;
    }
    return -1;
}

int npe_prune_plan_uniform(const npe_graph *g, const npe_groups *G, double s, int align,
                           const char *const *exclude, int n_exclude, npe_prune_plan **out,
                           npe_error *err)
{
    *out = NULL;
    if (!(s >= 0 && s < 1))
        return npe_error_set(err, NPE_EINVAL, "sparsity %g is out of range (0 <= s < 1)", s);
    if (align < 1)
        return npe_error_set(err, NPE_EINVAL, "channel alignment %d must be at least 1", align);
    npe_prune_plan *p;
    if (npe_prune_plan_create(G, &p))
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *gr = &G->groups[gi];
        int ex = npe_prune_excluded(g, G, gi, exclude, n_exclude);
        if (!gr->prunable) {
            p->why[gi] = dupstr(gr->reason);
        } else if (ex >= 0) {
            char buf[600];
            snprintf(buf, sizeof buf, "excluded by exclude_layers ('%s')", exclude[ex]);
            p->why[gi] = dupstr(buf);
        } else {
            int r = npe_prune_select(g, G, gi, s, align, p, err);
            if (r) {
                npe_prune_plan_destroy(p);
                return r;
            }
            continue;
        }
        if (!p->why[gi]) {
            npe_prune_plan_destroy(p);
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        }
    }
    *out = p;
    return 0;
}

/* ---- Cutting --------------------------------------------------------------------------------- */
/* Index kept along a map: no group, or its channel kept. */
static int kept_at(unsigned char *const *keep, npe_chanref r)
{
    return r.group < 0 || !keep[r.group] || keep[r.group][r.chan];
}

void npe_gather_indices(float *dst, const float *src, int nd, const int64_t *shape,
                        int64_t *const *idx, const int64_t *nkeep)
{
    int64_t numel = 1, stride[NPE_MAX_DIMS];
    for (int d = nd - 1; d >= 0; d--) {
        stride[d] = d == nd - 1 ? 1 : stride[d + 1] * shape[d + 1];
    }
    for (int d = 0; d < nd; d++)
        numel *= nkeep[d];
    int cd = nd; /* dims [cd, nd) are whole: one run of `run` floats */
    int64_t run = 1;
    while (cd > 0 && !idx[cd - 1]) {
        cd--;
        run *= shape[cd];
    }
    int64_t pos[NPE_MAX_DIMS] = {0};
    for (int64_t e = 0; run && e < numel; e += run) {
        int64_t off = 0;
        for (int d = 0; d < cd; d++)
            off += (idx[d] ? idx[d][pos[d]] : pos[d]) * stride[d];
        memcpy(dst + e, src + off, (size_t)run * sizeof *dst);
        for (int d = cd - 1; d >= 0; d--) {
            if (++pos[d] < nkeep[d])
                break;
            pos[d] = 0;
        }
    }
}

/* npe_gather_indices into a new buffer of *out_numel floats. */
static float *gather(const float *src, int nd, const int64_t *shape, int64_t *const *idx,
                     const int64_t *nkeep, int64_t *out_numel)
{
    int64_t numel = 1;
    for (int d = 0; d < nd; d++)
        numel *= nkeep[d];
    float *dst = malloc((size_t)(numel ? numel : 1) * sizeof *dst);
    if (!dst)
        return NULL;
    npe_gather_indices(dst, src, nd, shape, idx, nkeep);
    *out_numel = numel;
    return dst;
}

/* Dim 1 of a grouped conv's weight after dim 0 was cut to rows[0..n_rows) (original indices):
 * the rows of conv group b keep the columns of b's kept channels. */
static float *gather_grouped(const npe_value *v, const npe_cut *c, unsigned char *const *keep,
                             const int64_t *rows, int64_t n_rows, int64_t *kc_out)
{
    int64_t blocks = c->blocks, cols = v->shape[1], inner = 1;
    for (int d = 2; d < v->ndim; d++)
        inner *= v->shape[d];
    int64_t per_block = v->shape[0] / blocks, kc = -1;
    int64_t *sel = malloc((size_t)(blocks * cols) * sizeof *sel);
    if (!sel)
        return NULL;
    for (int64_t b = 0; b < blocks; b++) {
        int64_t m = 0;
        for (int64_t q = 0; q < cols; q++)
            if (kept_at(keep, c->map.at[b * cols + q]))
                sel[b * cols + m++] = q;
        if (kc >= 0 && m != kc) { /* the partition should have made them equal */
            free(sel);
            *kc_out = -1;
            return NULL;
        }
        kc = m;
    }
    int64_t total = n_rows * kc * inner;
    float *dst = malloc((size_t)(total > 0 ? total : 1) * sizeof *dst);
    if (dst)
        for (int64_t i = 0; i < n_rows; i++) {
            int64_t b = rows[i] / per_block;
            for (int64_t j = 0; j < kc; j++)
                memcpy(dst + (i * kc + j) * inner,
                       v->data + (rows[i] * cols + sel[b * cols + j]) * inner,
                       (size_t)inner * sizeof *dst);
        }
    free(sel);
    *kc_out = kc;
    return dst;
}

static int cut_value(npe_graph *g, const npe_groups *G, int vid, unsigned char *const *keep,
                     npe_error *err)
{
    npe_value *v = &g->values[vid];
    int64_t *idx[NPE_MAX_DIMS] = {0}, nkeep[NPE_MAX_DIMS];
    int any = 0, r = 0;
    const npe_cut *grouped = NULL;
    for (int d = 0; d < v->ndim; d++)
        nkeep[d] = v->shape[d];
    for (int k = 0; k < G->n_cuts; k++) {
        const npe_cut *c = &G->cuts[k];
        if (c->map.value != vid)
            continue;
        if (c->blocks > 1) {
            if (v->ndim < 2 || v->shape[1] * c->blocks != c->map.n || v->shape[0] % c->blocks) {
                r = npe_error_set(err, NPE_EINVAL, "'%s' does not have the shape the dependency "
                                  "analysis saw: prune the graph the groups were found on",
                                  v->name);
                goto out_free;
            }
            for (int i = 0; i < c->map.n && !grouped; i++)
                if (!kept_at(keep, c->map.at[i]))
                    grouped = c;
            any |= grouped != NULL;
            continue;
        }
        int d = c->map.dim;
        if (d >= v->ndim || v->shape[d] != c->map.n) {
            r = npe_error_set(err, NPE_EINVAL, "'%s' has %" PRId64 " entries along dim %d, the "
                              "dependency analysis saw %d: prune the graph the groups were found "
                              "on", v->name, d < v->ndim ? v->shape[d] : 0, d, c->map.n);
            goto out_free;
        }
        int64_t n = 0;
        for (int i = 0; i < c->map.n; i++)
            n += kept_at(keep, c->map.at[i]);
        if (n == c->map.n || idx[d])
            continue;
        if (!(idx[d] = malloc((size_t)(n ? n : 1) * sizeof **idx))) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            goto out_free;
        }
        n = 0;
        for (int i = 0; i < c->map.n; i++)
            if (kept_at(keep, c->map.at[i]))
                idx[d][n++] = i;
        nkeep[d] = n;
        any = 1;
    }
    if (!any)
        goto out_free;
    if (!v->data || v->numel_data != npe_value_numel(v)) {
        r = npe_error_set(err, NPE_EINVAL, "'%s' holds no data to cut", v->name);
        goto out_free;
    }
    int64_t numel;
    float *data;
    if (grouped) {
        int64_t all = v->shape[0], *rows = idx[0];
        if (!rows && !(rows = idx[0] = malloc((size_t)all * sizeof *rows))) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory cutting '%s'", v->name);
            goto out_free;
        }
        if (nkeep[0] == all)
            for (int64_t i = 0; i < all; i++)
                rows[i] = i;
        data = gather_grouped(v, grouped, keep, rows, nkeep[0], &nkeep[1]);
        if (!data) {
            r = nkeep[1] < 0 ? npe_error_set(err, NPE_EINVAL, "the conv groups of '%s' would keep "
                                             "different numbers of channels", v->name)
                             : npe_error_set(err, NPE_ENOMEM, "out of memory cutting '%s'",
                                             v->name);
            goto out_free;
        }
    } else {
        data = gather(v->data, v->ndim, v->shape, idx, nkeep, &numel);
    }
    if (!data) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory cutting '%s'", v->name);
        goto out_free;
    }
    r = npe_graph_set_tensor_data(g, vid, v->ndim, nkeep, data);
    if (r) {
        free(data);
        r = npe_error_set(err, r, "cannot replace the data of '%s'", v->name);
    }
out_free:
    for (int d = 0; d < NPE_MAX_DIMS; d++)
        free(idx[d]);
    return r;
}

static int64_t kept_in(unsigned char *const *keep, const npe_chanmap *m, int lo, int hi)
{
    int64_t n = 0;
    for (int i = lo < 0 ? 0 : lo; i < hi && i < m->n; i++)
        n += kept_at(keep, m->at[i]);
    return n;
}

int npe_prune_apply(npe_graph *g, const npe_groups *G, const npe_prune_plan *plan, npe_error *err)
{
    if (g->n_values != G->n_values || g->n_nodes != G->n_nodes || plan->n_groups != G->n_groups)
        return npe_error_set(err, NPE_EINVAL, "the pruning plan does not belong to this graph "
                             "(prune the graph the groups were found on, or a clone)");
    unsigned char **keep = calloc((size_t)(G->n_groups ? G->n_groups : 1), sizeof *keep);
    unsigned char *done = NULL;
    int64_t *lit_new = NULL;
    int r = 0, cutting = 0;
    if (!keep)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *gr = &G->groups[gi];
        if (!plan->kept[gi] || plan->n_kept[gi] >= gr->channels)
            continue;
        if (!gr->prunable) {
            r = npe_error_set(err, NPE_EINVAL, "group '%s' cannot be pruned: %s", gr->name,
                              gr->reason);
            goto out_free;
        }
        if (!(keep[gi] = calloc((size_t)gr->channels, 1))) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            goto out_free;
        }
        for (int i = 0; i < plan->n_kept[gi]; i++) {
            int c = plan->kept[gi][i];
            if (c < 0 || c >= gr->channels) {
                r = npe_error_set(err, NPE_EINVAL, "group '%s': kept channel %d is out of range",
                                  gr->name, c);
                goto out_free;
            }
            keep[gi][c] = 1;
        }
        cutting = 1;
    }
    if (!cutting)
        goto out_free; /* nothing to cut: the graph stays exactly as it is */

    /* the new literals first, so a conflict leaves g untouched */
    lit_new = malloc((size_t)(G->n_lits ? G->n_lits : 1) * sizeof *lit_new);
    if (!lit_new) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    for (int k = 0; k < G->n_lits; k++) {
        const npe_lit *L = &G->lits[k];
        lit_new[k] = kept_in(keep, &G->tensors[L->tensor], L->lo, L->hi);
        for (int j = 0; j < k; j++)
            if (G->lits[j].value == L->value && lit_new[j] != lit_new[k]) {
                char where[512];
                npe_node_desc(g, L->node, where, sizeof where);
                r = npe_error_set(err, NPE_EUNSUPPORTED, "the %s literal read by %s would have "
                                  "to be both %" PRId64 " and %" PRId64, L->what, where,
                                  lit_new[j], lit_new[k]);
                goto out_free;
            }
    }
    done = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    if (!done) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    for (int k = 0; k < G->n_cuts; k++) {
        int vid = G->cuts[k].map.value;
        if (done[vid])
            continue;
        done[vid] = 1;
        if ((r = cut_value(g, G, vid, keep, err)))
            goto out_free;
    }
    for (int k = 0; k < G->n_lits; k++)
        g->values[G->lits[k].value].i = lit_new[k];
    if ((r = npe_graph_infer(g, G->inputs, G->n_inputs, err))) {
        npe_error_prefix(err, "after pruning");
        goto out_free;
    }
    /* every followed tensor must now hold exactly the channels kept */
    for (int t = 0; t < G->n_tensors; t++) {
        const npe_chanmap *T = &G->tensors[t];
        const npe_value *v = &g->values[T->value];
        int64_t want = kept_in(keep, T, 0, T->n);
        int64_t have = T->dim < v->ndim ? v->shape[T->dim] : -1;
        if (have != want) {
            char where[512] = "";
            if (T->node >= 0)
                npe_node_desc(g, T->node, where, sizeof where);
            r = npe_error_set(err, NPE_EUNSUPPORTED, "after pruning, '%s' (%s) has %" PRId64
                              " entries along dim %d where %" PRId64 " channels were kept: its "
                              "shape is computed in a way the dependency analysis did not follow",
                              v->name, where, have, T->dim, want);
            goto out_free;
        }
    }
out_free:
    for (int gi = 0; gi < G->n_groups; gi++)
        free(keep[gi]);
    free(keep);
    free(done);
    free(lit_new);
    return r;
}

/* ---- Report ---------------------------------------------------------------------------------- */
int npe_prune_report_json(npe_json *j, const npe_graph *g, const npe_groups *G,
                          const npe_prune_plan *plan, const npe_counts *before,
                          const npe_counts *after)
{
    npe_json_key(j, "params_before");
    npe_json_int(j, before ? before->params : 0);
    npe_json_key(j, "params_after");
    npe_json_int(j, after ? after->params : 0);
    npe_json_key(j, "macs_before");
    npe_json_int(j, before ? before->macs : 0);
    npe_json_key(j, "macs_after");
    npe_json_int(j, after ? after->macs : 0);
    npe_json_key(j, "groups");
    npe_json_begin_array(j, 0);
    unsigned char *keep = NULL;
    int *seen_w = NULL;
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *gr = &G->groups[gi];
        free(keep);
        keep = malloc((size_t)(gr->channels ? gr->channels : 1));
        free(seen_w);
        seen_w = malloc((size_t)(gr->n_consumers + gr->n_producers + 1) * sizeof *seen_w);
        if (!keep || !seen_w) {
            free(keep);
            free(seen_w);
            return NPE_ENOMEM;
        }
        const int *kept = plan && plan->kept[gi] ? plan->kept[gi] : NULL;
        int n_kept = kept ? plan->n_kept[gi] : gr->channels;
        memset(keep, kept ? 0 : 1, (size_t)gr->channels);
        for (int i = 0; kept && i < n_kept; i++)
            if (kept[i] >= 0 && kept[i] < gr->channels)
                keep[kept[i]] = 1;
        npe_json_begin_object(j, 0);
        npe_json_key(j, "name");
        npe_json_str(j, gr->name);
        npe_json_key(j, "channels");
        npe_json_int(j, gr->channels);
        npe_json_key(j, "kept");
        npe_json_begin_array(j, 1);
        for (int c = 0; c < gr->channels; c++)
            if (keep[c])
                npe_json_int(j, c);
        npe_json_end_array(j);
        /* layer names once each: a module called twice is one layer */
        npe_json_key(j, "producers");
        npe_json_begin_array(j, 1);
        int ns = 0;
        for (int k = 0; k < gr->n_producers; k++) {
            const npe_producer *P = &G->producers[gr->producers[k]];
            int dup = 0;
            for (int s = 0; s < ns && !dup; s++)
                dup = seen_w[s] == P->weight;
            if (dup)
                continue;
            seen_w[ns++] = P->weight;
            npe_json_str(j, npe_layer_name(g, P->node));
        }
        npe_json_end_array(j);
        npe_json_key(j, "consumers");
        npe_json_begin_array(j, 0);
        ns = 0;
        for (int k = 0; k < gr->n_consumers; k++) {
            const npe_consumer *C = &G->consumers[gr->consumers[k]];
            int dup = 0;
            for (int s = 0; s < ns && !dup; s++)
                dup = seen_w[s] == C->in.value;
            if (dup)
                continue;
            seen_w[ns++] = C->in.value;
            npe_json_begin_object(j, 1);
            npe_json_key(j, "layer");
            npe_json_str(j, npe_layer_name(g, C->node));
            npe_json_key(j, "removed_inputs");
            npe_json_begin_array(j, 1);
            for (int i = 0; i < C->in.n; i++) {
                npe_chanref r = C->in.at[i];
                if (r.group == gi && r.chan >= 0 && r.chan < gr->channels && !keep[r.chan])
                    npe_json_int(j, i);
            }
            npe_json_end_array(j);
            npe_json_end_object(j);
        }
        npe_json_end_array(j);
        const char *why = plan && plan->why[gi] ? plan->why[gi] : gr->reason;
        if (why) {
            npe_json_key(j, "reason");
            npe_json_str(j, why);
        }
        npe_json_end_object(j);
    }
    npe_json_end_array(j);
    free(keep);
    free(seen_w);
    return j->failed ? NPE_ENOMEM : 0;
}
