/* Channel dependency groups: follow every output channel of every producer through the graph
 * (labels per index of each tensor's channel dim, joined with a union-find), then gather the
 * groups, what reads them and what pruning must cut. The model is documented in groups.h. */
#include "groups.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS (1 << 24) /* indices of one followed dim (a flattened feature map) */
#define MAX_TAINT 64         /* classes remembered per value past an op we cannot follow */

/* Labels of one activation: class per index of dim ax (-1: no class), or ax = -1. Past an op
 * that cannot be followed a value keeps the classes that fed it (taint), so a later graph output
 * can still name itself as the reason. */
typedef struct lab {
    int ax;
    int n;
    int *c;
    int *taint;
    int n_taint;
} lab;

typedef struct cut_rec {
    int value, dim, n, role, node, blocks;
    int *c;
    int next; /* next cut of the same value, -1 */
} cut_rec;

typedef struct prod_rec {
    int node, weight, dim, shared, depthwise, out, n;
    int *c;
} prod_rec;

typedef struct cons_rec {
    int node, weight, dim, n, groups;
    int *c;
} cons_rec;

/* Channels split into pieces (conv groups, chunk, split, slice): c[i] is the class at index i
 * of the split tensor, piece[i] its piece. */
typedef struct part_rec {
    int node, equal, n;
    int *c, *piece;
    const char *what;
} part_rec;

typedef struct lit_rec {
    int value, node, tensor, lo, hi;
    const char *what;
} lit_rec;

typedef struct actx {
    npe_graph *g;
    npe_error *err;
    int fail;          /* sticky error code (out of memory) */
    lab *L;            /* per value */
    int *sdep;         /* per value: the labeled tensor whose channel count this scalar carries */
    int *cut_head;     /* per value: first cut, -1 */
    cut_rec *cuts;
    int n_cuts, cap_cuts;
    prod_rec *prods;
    int n_prods, cap_prods;
    cons_rec *cons;
    int n_cons, cap_cons;
    lit_rec *lits;
    int n_lits, cap_lits;
    part_rec *parts;
    int n_parts, cap_parts;
    int *parent, *rsn, *orsn; /* per class: union-find parent, first reason, output reason */
    int n_cls, cap_cls;
    char **reasons;
    int n_reasons, cap_reasons;
    int node;          /* node being followed */
    int join_rsn;      /* reason made for this node's joins with unfollowed channels, or -1 */
    int pass_taint;    /* the conv being followed is depthwise: its channels are its input's */
} actx;

/* ---- Small helpers --------------------------------------------------------------------------- */
static int grow(actx *A, void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > (1 << 28)) {
            A->fail = NPE_ELIMIT;
            return -1;
        }
        nc *= 2;
    }
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) {
        A->fail = NPE_ENOMEM;
        return -1;
    }
    *p = np;
    *cap = nc;
    return 0;
}

static int *alloc_ints(actx *A, int64_t n, int fill)
{
    if (n < 0 || n > MAX_LABELS) {
        A->fail = NPE_ELIMIT;
        return NULL;
    }
    int *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) {
        A->fail = NPE_ENOMEM;
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = fill;
    return p;
}

static int *dup_ints(actx *A, const int *src, int n)
{
    int *p = alloc_ints(A, n, -1);
    if (p && src)
        memcpy(p, src, (size_t)n * sizeof *p);
    return p;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static const npe_value *V(const actx *A, int vid)
{
    return &A->g->values[vid];
}

static int is_tensor(const actx *A, int vid)
{
    return V(A, vid)->type == NPE_VT_TENSOR;
}

/* An activation: made by a node at run time, or a graph input. */
static int is_act(const actx *A, int vid)
{
    const npe_value *v = V(A, vid);
    if (v->type != NPE_VT_TENSOR)
        return 0;
    if (v->flags & NPE_VF_INPUT)
        return 1;
    return v->producer >= 0 && !(v->flags & NPE_VF_STATIC);
}

/* A tensor pruning can cut: a parameter, buffer or constant holding its data. */
static int cuttable(const actx *A, int vid)
{
    const npe_value *v = V(A, vid);
    return v->type == NPE_VT_TENSOR && v->producer < 0 && v->data && !(v->flags & NPE_VF_INPUT);
}

static int get_int(const actx *A, int vid, int64_t *out)
{
    const npe_value *v = V(A, vid);
    if ((v->type == NPE_VT_INT || v->type == NPE_VT_BOOL) && (v->flags & NPE_VF_KNOWN)) {
        *out = v->i;
        return 1;
    }
    if (v->type == NPE_VT_TENSOR && (v->flags & NPE_VF_KNOWN) && v->data && v->numel_data == 1) {
        *out = v->i;
        return 1;
    }
    return 0;
}

static int wrap(int64_t d, int nd, int *out)
{
    int64_t n = nd > 0 ? nd : 1;
    if (d < -n || d >= n)
        return 0;
    *out = (int)(d < 0 ? d + n : d);
    return 1;
}

/* ---- Classes and reasons --------------------------------------------------------------------- */
static int new_class(actx *A)
{
    int need = A->n_cls + 1;
    if (need > A->cap_cls) {
        int cap = A->cap_cls;
        if (grow(A, (void **)&A->parent, &cap, need, sizeof(int)))
            return -1;
        cap = A->cap_cls;
        if (grow(A, (void **)&A->rsn, &cap, need, sizeof(int)))
            return -1;
        cap = A->cap_cls;
        if (grow(A, (void **)&A->orsn, &cap, need, sizeof(int)))
            return -1;
        A->cap_cls = cap;
    }
    int c = A->n_cls++;
    A->parent[c] = c;
    A->rsn[c] = -1;
    A->orsn[c] = -1;
    return c;
}

static int find(actx *A, int c)
{
    int r = c;
    while (A->parent[r] != r)
        r = A->parent[r];
    while (A->parent[c] != r) {
        int n = A->parent[c];
        A->parent[c] = r;
        c = n;
    }
    return r;
}

static int root(actx *A, int c)
{
    return c < 0 ? -1 : find(A, c);
}

static int min_rsn(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static void unite(actx *A, int a, int b)
{
    a = find(A, a);
    b = find(A, b);
    if (a == b)
        return;
    if (b < a) {
        int t = a;
        a = b;
        b = t;
    }
    A->parent[b] = a;
    A->rsn[a] = min_rsn(A->rsn[a], A->rsn[b]);
    A->orsn[a] = min_rsn(A->orsn[a], A->orsn[b]);
}

NPE_PRINTF(2, 3) static int reason(actx *A, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (grow(A, (void **)&A->reasons, &A->cap_reasons, A->n_reasons + 1, sizeof(char *)))
        return -1;
    char *s = dupstr(buf);
    if (!s) {
        A->fail = NPE_ENOMEM;
        return -1;
    }
    A->reasons[A->n_reasons] = s;
    return A->n_reasons++;
}

/* "why (node 'x' (op) at file:line)" for the node being followed. */
static int node_reason(actx *A, const char *why)
{
    char where[512];
    npe_node_desc(A->g, A->node, where, sizeof where);
    return reason(A, "%s (%s)", why, where);
}

static void fix(actx *A, int c, int r)
{
    if (c < 0 || r < 0)
        return;
    c = find(A, c);
    A->rsn[c] = min_rsn(A->rsn[c], r);
}

/* Both indices must be cut together: unite their classes; an index with a class met by one
 * without (graph input, constant, unfollowed op) can never be cut. Returns the class kept. */
static int join(actx *A, int a, int b)
{
    if (a >= 0 && b >= 0) {
        unite(A, a, b);
        return a;
    }
    if (a < 0 && b < 0)
        return -1;
    int c = a >= 0 ? a : b;
    if (A->join_rsn < 0)
        A->join_rsn = node_reason(A, "combined with channels that are not followed (a graph "
                                     "input, a constant or an op without a rule)");
    fix(A, c, A->join_rsn);
    return c;
}

/* ---- Labels ---------------------------------------------------------------------------------- */
static void add_taint(actx *A, int vid, int c)
{
    lab *l = &A->L[vid];
    if (c < 0 || l->n_taint >= MAX_TAINT)
        return;
    for (int i = 0; i < l->n_taint; i++)
        if (l->taint[i] == c)
            return;
    if (!l->taint) {
        l->taint = malloc(MAX_TAINT * sizeof *l->taint);
        if (!l->taint) {
            A->fail = NPE_ENOMEM;
            return;
        }
    }
    l->taint[l->n_taint++] = c;
}

/* The classes of src (labels and taint) flow into dst. */
static void taint_from(actx *A, int dst, int src)
{
    const lab *s = &A->L[src];
    for (int i = 0; i < s->n_taint; i++)
        add_taint(A, dst, s->taint[i]);
    if (s->ax < 0)
        return;
    int last = -2;
    for (int i = 0; i < s->n && A->L[dst].n_taint < MAX_TAINT; i++) {
        if (s->c[i] >= 0 && s->c[i] != last)
            add_taint(A, dst, s->c[i]);
        last = s->c[i];
    }
}

/* Every tensor input's classes taint every output (ops whose channels are not followed). */
static void taint_outputs(actx *A, const npe_node *n)
{
    for (int k = 0; k < n->n_out; k++)
        for (int j = 0; j < n->n_in; j++)
            if (is_tensor(A, n->in[j]))
                taint_from(A, n->out[k], n->in[j]);
}

static void fix_value(actx *A, int vid, int r)
{
    const lab *l = &A->L[vid];
    if (r < 0)
        return;
    for (int i = 0; l->ax >= 0 && i < l->n; i++)
        fix(A, l->c[i], r);
    for (int i = 0; i < l->n_taint; i++)
        fix(A, l->taint[i], r);
}

static void fix_ints(actx *A, const int *c, int n, int r)
{
    for (int i = 0; c && i < n; i++)
        fix(A, c[i], r);
}

/* Output labels (takes c). Inputs' taint flows along, except through a layer that mixes its
 * input channels into new ones (conv, linear): what it reads does not reach its output. */
static void set_out(actx *A, const npe_node *n, int k, int ax, int cnt, int *c)
{
    lab *l = &A->L[n->out[k]];
    const npe_value *v = V(A, n->out[k]);
    if (c && (v->type != NPE_VT_TENSOR || ax < 0 || ax >= v->ndim || v->shape[ax] != cnt)) {
        /* labels always match the shape they index (every rule relies on it) */
        fix_ints(A, c, cnt, node_reason(A, "channels that do not match the inferred shape"));
        free(c);
        c = NULL;
    }
    free(l->c);
    l->ax = c ? ax : -1;
    l->n = c ? cnt : 0;
    l->c = c;
    if (n->op == NPE_OP_LINEAR || (n->op == NPE_OP_CONV && !A->pass_taint))
        return;
    for (int j = 0; j < n->n_in; j++)
        if (is_tensor(A, n->in[j])) {
            const lab *s = &A->L[n->in[j]];
            for (int i = 0; i < s->n_taint; i++)
                add_taint(A, n->out[k], s->taint[i]);
        }
}

/* Output k gets input value src's labels with the channel dim at ax. */
static void copy_out(actx *A, const npe_node *n, int k, int src, int ax)
{
    const lab *s = &A->L[src];
    if (s->ax < 0) {
        set_out(A, n, k, -1, 0, NULL);
        return;
    }
    set_out(A, n, k, ax, s->n, dup_ints(A, s->c, s->n));
}

/* The node cannot be followed: its inputs' channels are fixed, outputs carry them as taint. */
static void opaque(actx *A, const npe_node *n, const char *why)
{
    int r = -1;
    for (int j = 0; j < n->n_in; j++) {
        if (!is_tensor(A, n->in[j]))
            continue;
        const lab *l = &A->L[n->in[j]];
        if (l->ax < 0 && !l->n_taint)
            continue;
        if (r < 0)
            r = node_reason(A, why);
        fix_value(A, n->in[j], r);
    }
    for (int k = 0; k < n->n_out; k++)
        set_out(A, n, k, -1, 0, NULL);
    taint_outputs(A, n);
}

/* ---- Parameter dims -------------------------------------------------------------------------- */
static cut_rec *find_cut_b(actx *A, int vid, int dim, int blocks)
{
    for (int i = A->cut_head[vid]; i >= 0; i = A->cuts[i].next)
        if (A->cuts[i].dim == dim && A->cuts[i].blocks == blocks)
            return &A->cuts[i];
    return NULL;
}

static cut_rec *find_cut(actx *A, int vid, int dim)
{
    return find_cut_b(A, vid, dim, 1);
}

static cut_rec *new_cut(actx *A, int vid, int dim, int n, int role, int *c, int blocks)
{
    if (grow(A, (void **)&A->cuts, &A->cap_cuts, A->n_cuts + 1, sizeof *A->cuts)) {
        free(c);
        return NULL;
    }
    cut_rec *r = &A->cuts[A->n_cuts];
    r->value = vid;
    r->dim = dim;
    r->n = n;
    r->role = role;
    r->node = A->node;
    r->c = c;
    r->blocks = blocks;
    r->next = -1;
    /* append: cuts of a value stay in the order they were met */
    int *link = &A->cut_head[vid];
    while (*link >= 0)
        link = &A->cuts[*link].next;
    *link = A->n_cuts;
    A->n_cuts++;
    return r;
}

/* Index i of dim `dim` of tensor vid holds channel c[i] (c NULL: no channel). A second use of
 * the same dim (a module called twice, a shared constant) joins what both uses see. */
static void param_dim(actx *A, int vid, int dim, const int *c, int n, int role)
{
    if (A->fail || !is_tensor(A, vid))
        return;
    const npe_value *v = V(A, vid);
    if (!cuttable(A, vid)) {
        char why[320];
        snprintf(why, sizeof why, "'%s' is computed at run time, so its channels cannot be cut",
                 v->name[0] ? v->name : "a weight");
        fix_ints(A, c, n, node_reason(A, why));
        return;
    }
    if (dim >= v->ndim || v->shape[dim] != n) {
        char why[320];
        snprintf(why, sizeof why, "'%s' does not have %d entries along dim %d", v->name, n, dim);
        fix_ints(A, c, n, node_reason(A, why));
        return;
    }
    cut_rec *r = find_cut(A, vid, dim);
    if (!r) {
        int *cc = dup_ints(A, c, n);
        if (cc)
            new_cut(A, vid, dim, n, role, cc, 1);
        return;
    }
    for (int i = 0; i < n; i++)
        r->c[i] = join(A, r->c[i], c ? c[i] : -1);
}

/* Dim 1 of a grouped conv's weight: `blocks` conv groups each read their own channels through
 * the same columns, so the dim is indexed by all n = blocks * shape[1] channels. */
static void grouped_dim(actx *A, int vid, const int *c, int n, int blocks, int role)
{
    if (A->fail)
        return;
    const npe_value *v = V(A, vid);
    if (!cuttable(A, vid) || v->ndim < 2 || v->shape[1] * blocks != n ||
        v->shape[0] % blocks) {
        fix_ints(A, c, n, node_reason(A, "the weight of this grouped convolution cannot be cut"));
        return;
    }
    cut_rec *r = find_cut_b(A, vid, 1, blocks);
    if (!r) {
        int *cc = dup_ints(A, c, n);
        if (cc)
            new_cut(A, vid, 1, n, role, cc, blocks);
        return;
    }
    for (int i = 0; i < n; i++)
        r->c[i] = join(A, r->c[i], c ? c[i] : -1);
}

/* Pieces of n channels (piece[i] for index i) that must be cut piece by piece. */
static void add_part(actx *A, const int *c, int n, const int *piece, int equal, const char *what)
{
    if (A->fail || !c)
        return;
    if (grow(A, (void **)&A->parts, &A->cap_parts, A->n_parts + 1, sizeof *A->parts))
        return;
    int *cc = dup_ints(A, c, n), *pp = dup_ints(A, piece, n);
    if (!cc || !pp) {
        free(cc);
        free(pp);
        return;
    }
    A->parts[A->n_parts++] = (part_rec){A->node, equal, n, cc, pp, what};
}

/* Conv groups as pieces: index i of n is in piece i / (n / groups). */
static void add_group_part(actx *A, const int *c, int n, int groups, const char *what)
{
    int *piece = alloc_ints(A, n, 0);
    if (!piece)
        return;
    for (int i = 0; i < n; i++)
        piece[i] = i / (n / groups);
    add_part(A, c, n, piece, 1, what);
    free(piece);
}

/* Output channels of a producer weight dim: new classes, or the ones an earlier call of the same
 * module made. Returns a copy for the output's labels. */
static int *atoms(actx *A, int vid, int dim, int n, int *shared)
{
    *shared = 0;
    cut_rec *r = cuttable(A, vid) ? find_cut(A, vid, dim) : NULL;
    if (r && r->n == n && r->role == NPE_CUT_PRODUCER) {
        *shared = 1;
        return dup_ints(A, r->c, n);
    }
    int *c = alloc_ints(A, n, -1);
    if (!c)
        return NULL;
    for (int i = 0; i < n; i++)
        if ((c[i] = new_class(A)) < 0) {
            free(c);
            return NULL;
        }
    if (r) {
        /* the dim was met as something else first (never in traced models): join both */
        for (int i = 0; i < n; i++)
            r->c[i] = join(A, r->c[i], c[i]);
    } else if (cuttable(A, vid) && dim < V(A, vid)->ndim && V(A, vid)->shape[dim] == n) {
        int *cc = dup_ints(A, c, n);
        if (cc)
            new_cut(A, vid, dim, n, NPE_CUT_PRODUCER, cc, 1);
    } else {
        char why[320];
        snprintf(why, sizeof why, "weight '%s' is computed at run time, so its channels cannot "
                 "be cut", V(A, vid)->name);
        fix_ints(A, c, n, node_reason(A, why));
    }
    return c;
}

static void add_producer(actx *A, int node, int weight, int dim, int shared, int depthwise,
                         int out, const int *c, int n)
{
    if (grow(A, (void **)&A->prods, &A->cap_prods, A->n_prods + 1, sizeof *A->prods))
        return;
    int *cc = dup_ints(A, c, n);
    if (!cc)
        return;
    A->prods[A->n_prods++] = (prod_rec){node, weight, dim, shared, depthwise, out, n, cc};
}

static void add_consumer(actx *A, int node, int weight, int dim, const int *c, int n, int groups)
{
    if (grow(A, (void **)&A->cons, &A->cap_cons, A->n_cons + 1, sizeof *A->cons))
        return;
    int *cc = dup_ints(A, c, n);
    if (!cc)
        return;
    A->cons[A->n_cons++] = (cons_rec){node, weight, dim, n, groups, cc};
}

static void add_lit(actx *A, int value, int tensor, int lo, int hi, const char *what)
{
    if (grow(A, (void **)&A->lits, &A->cap_lits, A->n_lits + 1, sizeof *A->lits))
        return;
    A->lits[A->n_lits++] = (lit_rec){value, A->node, tensor, lo, hi, what};
}

/* Labels of input vid along dim `dim`, or NULL when it has none there (its channels, if on
 * another dim, are fixed with why). */
static const int *labels_on(actx *A, int vid, int dim, const char *why)
{
    const lab *l = &A->L[vid];
    if (l->ax < 0)
        return NULL;
    if (l->ax == dim)
        return l->c;
    fix_value(A, vid, node_reason(A, why));
    return NULL;
}

/* ---- Per-op rules ---------------------------------------------------------------------------- */
static void do_conv(actx *A, const npe_node *n)
{
    int x = n->in[NPE_CONV_INPUT], w = n->in[NPE_CONV_WEIGHT], b = n->in[NPE_CONV_BIAS];
    int y = n->out[0];
    const npe_value *vx = V(A, x), *vw = V(A, w), *vy = V(A, y);
    int64_t groups = 1, transposed = 0;
    get_int(A, n->in[NPE_CONV_GROUPS], &groups);
    get_int(A, n->in[NPE_CONV_TRANSPOSED], &transposed);
    if (vx->ndim != 4 || vw->ndim != 4 || vy->ndim != 4) {
        opaque(A, n, "convolution of a tensor that is not (N, C, H, W)");
        return;
    }
    int cin = (int)vx->shape[1], cout = (int)vy->shape[1];
    const int *ic = labels_on(A, x, 1, "convolution reads channels on dim 1, but the channels "
                                       "of its input run along another dim");
    int dw = groups > 1 && groups == cin;
    int *oc = NULL, shared = 0;
    const npe_value *gv = V(A, n->in[NPE_CONV_GROUPS]);
    if (dw) {
        /* input channel c feeds outputs c*m .. c*m+m-1: they are the same channels */
        int m = cout / cin;
        oc = alloc_ints(A, cout, -1);
        if (!oc)
            return;
        for (int o = 0; o < cout; o++)
            oc[o] = ic ? ic[o / m] : -1;
        if (!transposed)
            param_dim(A, w, 0, oc, cout, NPE_CUT_CHANNEL);
        else
            param_dim(A, w, 0, ic, cin, NPE_CUT_CHANNEL);
        add_producer(A, A->node, w, 0, find_cut(A, w, 0) && find_cut(A, w, 0)->node != A->node,
                     1, y, oc, cout);
        if (gv->type == NPE_VT_INT && (gv->flags & NPE_VF_CONST)) {
            add_lit(A, n->in[NPE_CONV_GROUPS], x, 0, cin, "groups");
        } else {
            int r = node_reason(A, "the groups of this depthwise convolution are computed, so "
                                   "they cannot be rewritten");
            fix_ints(A, oc, cout, r);
        }
    } else if (!transposed) {
        oc = atoms(A, w, 0, cout, &shared);
        if (!oc)
            return;
        add_producer(A, A->node, w, 0, shared, 0, y, oc, cout);
        if (groups == 1) {
            param_dim(A, w, 1, ic, cin, NPE_CUT_CONSUMER);
            add_consumer(A, A->node, w, 1, ic, cin, 1);
        } else if (groups > 1 && cin >= groups && cout >= groups && cin % groups == 0 &&
                   cout % groups == 0) {
            /* each conv group keeps the same number of inputs and of outputs */
            grouped_dim(A, w, ic, cin, (int)groups, NPE_CUT_CONSUMER);
            add_consumer(A, A->node, w, 1, ic, cin, (int)groups);
            add_group_part(A, ic, cin, (int)groups, "grouped convolution (its input)");
            add_group_part(A, oc, cout, (int)groups, "grouped convolution (its output)");
        } else {
            int r = node_reason(A, "convolution with groups that do not divide its channels");
            fix_ints(A, ic, cin, r);
            fix_ints(A, oc, cout, r);
        }
    } else {
        /* transposed: weight [Cin, Cout/g, kh, kw] */
        if (groups == 1) {
            oc = atoms(A, w, 1, cout, &shared);
            if (!oc)
                return;
            add_producer(A, A->node, w, 1, shared, 0, y, oc, cout);
            param_dim(A, w, 0, ic, cin, NPE_CUT_CONSUMER);
            add_consumer(A, A->node, w, 0, ic, cin, 1);
        } else {
            /* output channel G*(Cout/g)+q is column q of the rows of conv group G: its outputs
             * are dim 1 of the weight seen as g blocks (made once per weight) */
            int ok = groups > 1 && cin >= groups && cout >= groups && cin % groups == 0 &&
                     cout % groups == 0;
            cut_rec *r = ok && cuttable(A, w) ? find_cut_b(A, w, 1, (int)groups) : NULL;
            shared = r != NULL;
            oc = r ? dup_ints(A, r->c, cout) : alloc_ints(A, cout, -1);
            if (!oc)
                return;
            for (int o = 0; o < cout && !r; o++)
                oc[o] = new_class(A);
            add_producer(A, A->node, w, 1, shared, 0, y, oc, cout);
            if (ok) {
                if (!r)
                    grouped_dim(A, w, oc, cout, (int)groups, NPE_CUT_PRODUCER);
                param_dim(A, w, 0, ic, cin, NPE_CUT_CONSUMER);
                add_consumer(A, A->node, w, 0, ic, cin, 1);
                add_group_part(A, ic, cin, (int)groups,
                               "grouped transposed convolution (its input)");
                add_group_part(A, oc, cout, (int)groups,
                               "grouped transposed convolution (its output)");
            } else {
                int rr = node_reason(A, "transposed convolution with groups that do not divide its "
                                        "channels");
                fix_ints(A, ic, cin, rr);
                fix_ints(A, oc, cout, rr);
            }
        }
    }
    if (V(A, b)->type == NPE_VT_TENSOR)
        param_dim(A, b, 0, oc, cout, NPE_CUT_CHANNEL);
    A->pass_taint = dw;
    set_out(A, n, 0, 1, cout, oc);
    A->pass_taint = 0;
}

static void do_linear(actx *A, const npe_node *n)
{
    int x = n->in[NPE_LINEAR_INPUT], w = n->in[NPE_LINEAR_WEIGHT], b = n->in[NPE_LINEAR_BIAS];
    int y = n->out[0];
    const npe_value *vx = V(A, x), *vw = V(A, w), *vy = V(A, y);
    if (vw->ndim != 2 || vx->ndim < 1) {
        opaque(A, n, "linear with an unexpected weight");
        return;
    }
    int in = (int)vw->shape[1], out = (int)vw->shape[0];
    const int *ic = labels_on(A, x, vx->ndim - 1, "linear mixes the last dim, but the "
                                                  "channels of its input run along another dim");
    int shared = 0;
    int *oc = atoms(A, w, 0, out, &shared);
    if (!oc)
        return;
    add_producer(A, A->node, w, 0, shared, 0, y, oc, out);
    param_dim(A, w, 1, ic, in, NPE_CUT_CONSUMER);
    add_consumer(A, A->node, w, 1, ic, in, 1);
    if (V(A, b)->type == NPE_VT_TENSOR)
        param_dim(A, b, 0, oc, out, NPE_CUT_CHANNEL);
    set_out(A, n, 0, vy->ndim - 1, out, oc);
}

static void do_batch_norm(actx *A, const npe_node *n)
{
    int x = n->in[NPE_BN_INPUT];
    const npe_value *vx = V(A, x);
    if (vx->ndim < 2) {
        opaque(A, n, "batch_norm of a tensor with fewer than 2 dims");
        return;
    }
    int c = (int)vx->shape[1];
    const int *ic = labels_on(A, x, 1, "batch_norm normalises dim 1, but the channels of its "
                                       "input run along another dim");
    static const int slots[] = {NPE_BN_WEIGHT, NPE_BN_BIAS, NPE_BN_MEAN, NPE_BN_VAR};
    for (int k = 0; k < 4; k++)
        if (is_tensor(A, n->in[slots[k]]))
            param_dim(A, n->in[slots[k]], 0, ic, c, NPE_CUT_CHANNEL);
    copy_out(A, n, 0, x, 1);
}

/* layer_norm normalises the last dims: channels among them are normalised together. */
static void do_layer_norm(actx *A, const npe_node *n)
{
    int x = n->in[NPE_LN_INPUT];
    const lab *l = &A->L[x];
    const npe_value *sh = V(A, n->in[NPE_LN_SHAPE]);
    int nn = sh->type == NPE_VT_LIST ? sh->n_items : 1;
    if (l->ax >= 0 && l->ax >= V(A, x)->ndim - nn) {
        opaque(A, n, "layer_norm normalises the channels together");
        return;
    }
    copy_out(A, n, 0, x, l->ax);
}

/* Pooling and resampling of (N, C, H, W): channels stay on dim 1. */
static void do_spatial(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    if (l->ax >= 0 && l->ax != 1) {
        opaque(A, n, "pooling or resampling over the dim the channels run along");
        return;
    }
    for (int k = 0; k < n->n_out; k++)
        copy_out(A, n, k, x, 1);
}

static void do_pixel_shuffle(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    int64_t r = 0;
    const npe_value *vy = V(A, n->out[0]);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (l->ax != 1 || !get_int(A, n->in[1], &r) || r < 1 || vy->ndim != 4) {
        opaque(A, n, "pixel_shuffle of a tensor whose channels are not on dim 1");
        return;
    }
    int cout = (int)vy->shape[1], rr = (int)(r * r);
    int *c = alloc_ints(A, cout, -1);
    if (!c)
        return;
    /* output channel k is made of input channels k*r*r .. k*r*r+r*r-1: cut in blocks */
    for (int k = 0; k < cout; k++) {
        int cc = l->c[k * rr];
        for (int j = 1; j < rr; j++)
            cc = join(A, cc, l->c[k * rr + j]);
        c[k] = cc;
    }
    set_out(A, n, 0, 1, cout, c);
}

static void do_pad(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x), *pl = V(A, n->in[1]);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    int64_t before = 0, after = 0;
    if (pl->type == NPE_VT_LIST) {
        for (int i = 0; i + 1 < pl->n_items; i += 2) {
            int d = vx->ndim - 1 - i / 2;
            if (d != l->ax)
                continue;
            if (!get_int(A, pl->items[i], &before) || !get_int(A, pl->items[i + 1], &after)) {
                opaque(A, n, "padding of the channel dim by unknown amounts");
                return;
            }
        }
    }
    if (before < 0 || after < 0) {
        opaque(A, n, "negative padding (cropping) of the channel dim");
        return;
    }
    const npe_value *mode = V(A, n->in[2]);
    if ((before || after) && (mode->type != NPE_VT_STR || strcmp(mode->s, "constant") != 0)) {
        opaque(A, n, "reflect or replicate padding of the channel dim copies channels");
        return;
    }
    if (before > MAX_LABELS || after > MAX_LABELS || l->n + before + after > MAX_LABELS) {
        opaque(A, n, "padding of the channel dim to too many channels to follow");
        return;
    }
    int total = (int)(l->n + before + after);
    int *c = alloc_ints(A, total, -1);
    if (!c)
        return;
    memcpy(c + before, l->c, (size_t)l->n * sizeof *c);
    set_out(A, n, 0, l->ax, total, c);
}

/* add/sub/mul/div/pow with broadcasting: every operand with the full channel dim joins; a
 * parameter or constant with a channel-sized dim is cut with the channels. */
static void do_binary(actx *A, const npe_node *n)
{
    int y = n->out[0];
    const npe_value *vy = V(A, y);
    int nd = vy->ndim, ops[2] = {n->in[0], n->in[1]};
    int axis = -1;
    for (int k = 0; k < 2; k++) {
        int v = ops[k];
        if (!is_act(A, v) || A->L[v].ax < 0)
            continue;
        const lab *l = &A->L[v];
        int oa = l->ax + nd - V(A, v)->ndim;
        if (V(A, v)->shape[l->ax] == 1 && vy->shape[oa] > 1) {
            fix_value(A, v, node_reason(A, "a single channel is broadcast over other channels"));
            continue;
        }
        if (axis < 0) {
            axis = oa;
        } else if (oa != axis) {
            int r = node_reason(A, "operands whose channels run along different dims");
            fix_value(A, ops[0], r);
            fix_value(A, ops[1], r);
        }
    }
    if (axis < 0) {
        /* no followed channels here; parameters used here must never be cut elsewhere */
        for (int k = 0; k < 2; k++)
            if (cuttable(A, ops[k]))
                for (int d = 0; d < V(A, ops[k])->ndim; d++)
                    if (V(A, ops[k])->shape[d] > 1)
                        param_dim(A, ops[k], d, NULL, (int)V(A, ops[k])->shape[d],
                                  NPE_CUT_CHANNEL);
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    int C = (int)vy->shape[axis];
    int *out = alloc_ints(A, C, -2);
    if (!out)
        return;
    for (int k = 0; k < 2; k++) {
        int v = ops[k];
        if (!is_act(A, v))
            continue;
        int d = axis - (nd - V(A, v)->ndim);
        if (d < 0 || V(A, v)->shape[d] == 1)
            continue; /* broadcast along the channels: no constraint */
        const int *c = A->L[v].ax == d ? A->L[v].c : NULL;
        for (int p = 0; p < C; p++)
            out[p] = out[p] == -2 ? (c ? c[p] : -1) : join(A, out[p], c ? c[p] : -1);
    }
    for (int p = 0; p < C; p++)
        if (out[p] == -2)
            out[p] = -1;
    for (int k = 0; k < 2; k++) {
        int v = ops[k];
        if (!is_tensor(A, v) || is_act(A, v))
            continue;
        const npe_value *vv = V(A, v);
        int d = axis - (nd - vv->ndim);
        for (int e = 0; e < vv->ndim; e++) {
            if (vv->shape[e] <= 1)
                continue;
            if (e == d) {
                if (cuttable(A, v))
                    param_dim(A, v, e, out, C, NPE_CUT_CHANNEL);
                else
                    fix_ints(A, out, C, node_reason(A, "combined with a tensor computed from "
                                                       "shapes, which cannot be cut"));
            } else if (cuttable(A, v)) {
                param_dim(A, v, e, NULL, (int)vv->shape[e], NPE_CUT_CHANNEL);
            }
        }
    }
    set_out(A, n, 0, axis, C, out);
}

static void do_cat(actx *A, const npe_node *n)
{
    int nt = n->n_in - 1, stack = n->op == NPE_OP_STACK;
    int y = n->out[0];
    const npe_value *vy = V(A, y);
    int64_t dim;
    int d = 0, ax = -1;
    if (!get_int(A, n->in[nt], &dim) || !wrap(dim, vy->ndim, &d)) {
        opaque(A, n, "cat with an unknown dim");
        return;
    }
    for (int i = 0; i < nt; i++) {
        const lab *l = &A->L[n->in[i]];
        if (l->ax < 0)
            continue;
        if (ax < 0)
            ax = l->ax;
        else if (l->ax != ax)
            fix_value(A, n->in[i], node_reason(A, "joins tensors whose channels run along "
                                                  "different dims"));
    }
    if (ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (!stack && d == ax) {
        int64_t total = vy->shape[d];
        int *c = alloc_ints(A, total, -1);
        if (!c)
            return;
        int64_t at = 0;
        for (int i = 0; i < nt; i++) {
            const lab *l = &A->L[n->in[i]];
            int64_t sz = V(A, n->in[i])->shape[d];
            if (at + sz > total)
                break;
            if (l->ax == ax)
                memcpy(c + at, l->c, (size_t)sz * sizeof *c);
            at += sz;
        }
        set_out(A, n, 0, ax, (int)total, c);
        return;
    }
    /* along another dim (or stacked): every input has the same channels */
    int C = (int)V(A, n->in[0])->shape[ax];
    int *c = alloc_ints(A, C, -2);
    if (!c)
        return;
    for (int i = 0; i < nt; i++) {
        const int *ci = A->L[n->in[i]].ax == ax ? A->L[n->in[i]].c : NULL;
        for (int p = 0; p < C; p++)
            c[p] = c[p] == -2 ? (ci ? ci[p] : -1) : join(A, c[p], ci ? ci[p] : -1);
    }
    set_out(A, n, 0, stack && ax >= d ? ax + 1 : ax, C, c);
}

static void do_split(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x);
    int64_t dim;
    int d = 0;
    int unbind = n->op == NPE_OP_UNBIND;
    if (l->ax < 0) {
        for (int k = 0; k < n->n_out; k++)
            set_out(A, n, k, -1, 0, NULL);
        return;
    }
    if (!get_int(A, n->in[unbind ? 1 : 2], &dim) || !wrap(dim, vx->ndim, &d)) {
        opaque(A, n, "split with an unknown dim");
        return;
    }
    if (d != l->ax) {
        for (int k = 0; k < n->n_out; k++)
            copy_out(A, n, k, x, unbind && d < l->ax ? l->ax - 1 : l->ax);
        return;
    }
    if (n->n_out == 1 && (n->op == NPE_OP_CHUNK || n->op == NPE_OP_SPLIT)) {
        copy_out(A, n, 0, x, l->ax); /* one piece: the size (>= C) stays right */
        return;
    }
    if (unbind) {
        opaque(A, n, "unbind along the channel dim");
        return;
    }
    /* pieces: chunk and split need equal ones, split_with_sizes any (its sizes are rewritten) */
    int64_t at = 0, first = -1;
    int equal = n->op != NPE_OP_SPLIT_WITH_SIZES, uneven = 0;
    int *piece = alloc_ints(A, l->n, -1);
    if (!piece)
        return;
    const npe_value *sl = V(A, n->in[1]);
    const char *bad = NULL;
    for (int k = 0; k < n->n_out; k++) {
        const npe_value *vo = V(A, n->out[k]);
        int64_t sz = vo->ndim == vx->ndim ? vo->shape[d] : -1;
        if (sz < 0 || at + sz > l->n) {
            bad = "split whose pieces do not add up";
            break;
        }
        if (first < 0)
            first = sz;
        uneven |= sz != first;
        for (int64_t i = at; i < at + sz; i++)
            piece[i] = k;
        if (n->op == NPE_OP_SPLIT_WITH_SIZES) {
            const npe_value *it = sl->type == NPE_VT_LIST && k < sl->n_items ? V(A, sl->items[k])
                                                                            : NULL;
            if (it && it->type == NPE_VT_INT && (it->flags & NPE_VF_CONST))
                add_lit(A, sl->items[k], x, (int)at, (int)(at + sz), "split size");
            else
                bad = "split_with_sizes along the channel dim with sizes computed at run time";
        }
        set_out(A, n, k, d, (int)sz, dup_ints(A, l->c + at, (int)sz));
        at += sz;
    }
    if (!bad && equal && uneven)
        bad = n->op == NPE_OP_CHUNK ? "chunk of the channel dim into unequal pieces"
                                    : "split of the channel dim into unequal pieces";
    if (!bad && n->op == NPE_OP_SPLIT) {
        if (sl->type == NPE_VT_INT && (sl->flags & NPE_VF_CONST))
            add_lit(A, n->in[1], x, 0, (int)first, "split size");
        else
            bad = "split along the channel dim with a size computed at run time";
    }
    if (bad)
        fix_value(A, x, node_reason(A, bad));
    else if (n->n_out > 1)
        add_part(A, l->c, l->n, piece, equal, npe_op_name(n->op));
    free(piece);
}

static void do_slice(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x);
    int64_t dim, start = 0, end = INT64_MAX, step = 1;
    int d = 0;
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (!get_int(A, n->in[1], &dim) || !wrap(dim, vx->ndim, &d)) {
        opaque(A, n, "slice with an unknown dim");
        return;
    }
    if (d != l->ax) {
        copy_out(A, n, 0, x, l->ax);
        return;
    }
    int64_t C = l->n;
    int ok = get_int(A, n->in[4], &step);
    if (V(A, n->in[2])->type != NPE_VT_NONE)
        ok = ok && get_int(A, n->in[2], &start);
    if (V(A, n->in[3])->type != NPE_VT_NONE)
        ok = ok && get_int(A, n->in[3], &end);
    if (ok && start < 0)
        start = start < -C ? 0 : start + C;
    if (ok && end < 0)
        end = end < -C ? 0 : end + C;
    if (ok && end > C)
        end = C;
    if (ok && step == 1 && start == 0 && end >= C) {
        copy_out(A, n, 0, x, l->ax); /* x[:, :] */
        return;
    }
    /* part of the channels, x[:, a:b]: pieces [0, a), [a, b), [b, C) whose bounds (literals) are
     * rewritten to the kept counts before them */
    const npe_value *vs = V(A, n->in[2]), *ve = V(A, n->in[3]);
    int lit_s = vs->type == NPE_VT_NONE || (vs->type == NPE_VT_INT && (vs->flags & NPE_VF_CONST));
    int lit_e = ve->type == NPE_VT_NONE || (ve->type == NPE_VT_INT && (ve->flags & NPE_VF_CONST));
    const npe_value *vy = V(A, n->out[0]);
    if (!ok || step != 1 || start > C || end > C || start > end || vy->ndim != vx->ndim ||
        !lit_s || !lit_e) {
        opaque(A, n, step != 1 ? "strided slice of the channel dim"
                               : "slice of part of the channel dim with bounds computed at run "
                                 "time");
        return;
    }
    int *piece = alloc_ints(A, C, 0);
    if (!piece)
        return;
    for (int64_t i = 0; i < C; i++)
        piece[i] = i < start ? 0 : i < end ? 1 : 2;
    if (start > 0)
        add_lit(A, n->in[2], x, 0, (int)start, "slice start");
    if (end < C)
        add_lit(A, n->in[3], x, 0, (int)end, "slice end");
    add_part(A, l->c, (int)C, piece, 0, "slice");
    free(piece);
    set_out(A, n, 0, d, (int)(end - start), dup_ints(A, l->c + start, (int)(end - start)));
}

static void do_select(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    int64_t dim;
    int d = 0;
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (!get_int(A, n->in[1], &dim) || !wrap(dim, V(A, x)->ndim, &d) || d == l->ax) {
        opaque(A, n, "select of one channel");
        return;
    }
    copy_out(A, n, 0, x, d < l->ax ? l->ax - 1 : l->ax);
}

static void do_reduce(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x), *dl = V(A, n->in[1]);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    unsigned mask = 0;
    if (dl->type == NPE_VT_NONE || (dl->type == NPE_VT_LIST && dl->n_items == 0)) {
        mask = ~0u;
    } else if (dl->type == NPE_VT_LIST) {
        for (int i = 0; i < dl->n_items; i++) {
            int64_t dv;
            int d;
            if (!get_int(A, dl->items[i], &dv) || !wrap(dv, vx->ndim, &d)) {
                opaque(A, n, "reduction over unknown dims");
                return;
            }
            mask |= 1u << d;
        }
    } else {
        int64_t dv;
        int d;
        if (!get_int(A, n->in[1], &dv) || !wrap(dv, vx->ndim, &d)) {
            opaque(A, n, "reduction over unknown dims");
            return;
        }
        mask = 1u << d;
    }
    if (mask & (1u << l->ax)) {
        opaque(A, n, "reduction over the channel dim");
        return;
    }
    int64_t keep = 0;
    get_int(A, n->in[2], &keep);
    int ax = l->ax;
    if (!keep)
        for (int d = 0; d < l->ax; d++)
            if (mask & (1u << d))
                ax--;
    copy_out(A, n, 0, x, ax);
    for (int k = 1; k < n->n_out; k++) /* indices of torch.max(x, dim): not usable */
        set_out(A, n, k, -1, 0, NULL);
}

static void do_softmax(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    int64_t dim;
    int d = 0;
    if (l->ax >= 0 && (!get_int(A, n->in[1], &dim) || !wrap(dim, V(A, x)->ndim, &d) ||
                       d == l->ax)) {
        opaque(A, n, "softmax over the channel dim");
        return;
    }
    copy_out(A, n, 0, x, l->ax);
}

static void do_flatten(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x);
    int64_t s, e;
    int ds = 0, de = 0;
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (!get_int(A, n->in[1], &s) || !get_int(A, n->in[2], &e) || !wrap(s, vx->ndim, &ds) ||
        !wrap(e, vx->ndim, &de)) {
        opaque(A, n, "flatten with unknown dims");
        return;
    }
    if (l->ax < ds || l->ax > de) {
        copy_out(A, n, 0, x, l->ax > de ? l->ax - (de - ds) : l->ax);
        return;
    }
    /* channel c owns features c*inner .. c*inner+inner-1 of each outer block */
    int64_t inner = 1, total = 1;
    for (int k = ds; k <= de; k++) {
        total *= vx->shape[k];
        if (k > l->ax)
            inner *= vx->shape[k];
        if (total > MAX_LABELS)
            break;
    }
    if (total > MAX_LABELS || inner < 1) {
        opaque(A, n, "flatten into too many features to follow");
        return;
    }
    int *c = alloc_ints(A, total, -1);
    if (!c)
        return;
    for (int64_t f = 0; f < total; f++)
        c[f] = l->c[(f / inner) % l->n];
    set_out(A, n, 0, ds, (int)total, c);
}

/* The items of a shape list that carry a channel count must be where the channels go. */
static void check_shape_items(actx *A, const npe_node *n, int slot, int at_ax, int y,
                              const char *what)
{
    const npe_value *sl = V(A, n->in[slot]);
    if (sl->type != NPE_VT_LIST)
        return;
    for (int k = 0; k < sl->n_items; k++) {
        int iv = sl->items[k];
        int dep = A->sdep[iv];
        if (k == at_ax) {
            const npe_value *it = V(A, iv);
            if (it->type == NPE_VT_INT && (it->flags & NPE_VF_CONST)) {
                if (it->i != -1)
                    add_lit(A, iv, y, 0, A->L[y].n, what);
            } else if (dep < 0) {
                char why[200];
                snprintf(why, sizeof why, "the %s at the channel dim is computed from other "
                         "sizes, so it would not follow the cut", what);
                fix_value(A, y, node_reason(A, why));
            }
        } else if (dep >= 0) {
            char why[320];
            snprintf(why, sizeof why, "the channel count of '%s' sets another dim of this %s",
                     V(A, dep)->name, what);
            int r = node_reason(A, why);
            fix_value(A, dep, r);
            fix_value(A, y, r);
        }
    }
}

static void do_reshape(actx *A, const npe_node *n)
{
    int as = n->op == NPE_OP_RESHAPE_AS; /* the shape is another tensor's: no literals */
    int x = n->in[0], y = n->out[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x), *vy = V(A, y);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        if (!as)
            check_shape_items(A, n, 1, -1, y, "view size");
        return;
    }
    if (l->n <= 0 || npe_value_numel(vx) <= 0) {
        opaque(A, n, "view of an empty tensor");
        return;
    }
    int no = vy->ndim;
    int64_t C = l->n, inner = 1;
    for (int k = l->ax + 1; k < vx->ndim; k++)
        inner *= vx->shape[k];
    int64_t ostr[NPE_MAX_DIMS];
    int64_t acc = 1;
    for (int k = no - 1; k >= 0; k--) {
        ostr[k] = acc;
        acc *= vy->shape[k];
    }
    /* output dims whose index ranges overlap the channel digit of the element index */
    int e0 = -1, e1 = -1;
    for (int k = 0; k < no; k++)
        if (vy->shape[k] > 1 && ostr[k] < inner * C && ostr[k] * vy->shape[k] > inner) {
            if (e0 < 0)
                e0 = k;
            e1 = k;
        }
    if (e0 < 0 || inner % ostr[e1] != 0 || (ostr[e0] * vy->shape[e0]) % (inner * C) != 0) {
        opaque(A, n, "view that mixes the channel dim unevenly with other dims");
        return;
    }
    int64_t wn = ostr[e0] * vy->shape[e0] / ostr[e1], sub = inner / ostr[e1];
    if (wn > MAX_LABELS) {
        opaque(A, n, "view of too many features to follow");
        return;
    }
    /* which window dims the labels actually vary along (a flattened map varies along one) */
    int varies[NPE_MAX_DIMS] = {0}, nvar = 0, vdim = -1;
    for (int k = e0; k <= e1; k++) {
        int64_t ws = ostr[k] / ostr[e1], sz = vy->shape[k];
        if (sz <= 1)
            continue;
        for (int64_t w = 0; w < wn && !varies[k]; w++) {
            int64_t base = w - ((w / ws) % sz) * ws;
            if (root(A, l->c[(w / sub) % C]) != root(A, l->c[(base / sub) % C]))
                varies[k] = 1;
        }
        if (varies[k]) {
            nvar++;
            vdim = k;
        }
    }
    if (nvar != 1) {
        if (nvar == 0 && l->c[0] < 0) {
            set_out(A, n, 0, -1, 0, NULL);
            return;
        }
        opaque(A, n, nvar ? "view that spreads the channels over several dims (as a channel "
                            "shuffle or a detection head does)"
                          : "view that drops the channel dim");
        return;
    }
    int64_t ws = ostr[vdim] / ostr[e1], cnt = vy->shape[vdim];
    int *c = alloc_ints(A, cnt, -1);
    if (!c)
        return;
    for (int64_t i = 0; i < cnt; i++)
        c[i] = l->c[(i * ws / sub) % C];
    set_out(A, n, 0, vdim, (int)cnt, c);
    if (!as)
        check_shape_items(A, n, 1, vdim, y, "view size");
}

static void do_permute(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *dl = V(A, n->in[1]);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (n->op == NPE_OP_TRANSPOSE) {
        int64_t a, b;
        int da = 0, db = 0, nd = V(A, x)->ndim;
        if (!get_int(A, n->in[1], &a) || !get_int(A, n->in[2], &b) || !wrap(a, nd, &da) ||
            !wrap(b, nd, &db)) {
            opaque(A, n, "transpose with unknown dims");
            return;
        }
        copy_out(A, n, 0, x, l->ax == da ? db : l->ax == db ? da : l->ax);
        return;
    }
    if (dl->type == NPE_VT_LIST)
        for (int k = 0; k < dl->n_items; k++) {
            int64_t dv;
            int d;
            if (get_int(A, dl->items[k], &dv) && wrap(dv, V(A, x)->ndim, &d) && d == l->ax) {
                copy_out(A, n, 0, x, k);
                return;
            }
        }
    opaque(A, n, "permute with unknown dims");
}

static void do_squeeze(actx *A, const npe_node *n)
{
    int x = n->in[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x), *dl = V(A, n->in[1]);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        return;
    }
    if (n->op == NPE_OP_UNSQUEEZE) {
        int64_t dv;
        int d;
        if (!get_int(A, n->in[1], &dv) || !wrap(dv, vx->ndim + 1, &d)) {
            opaque(A, n, "unsqueeze with an unknown dim");
            return;
        }
        copy_out(A, n, 0, x, d <= l->ax ? l->ax + 1 : l->ax);
        return;
    }
    /* the dims squeezed, as shape inference decides them: listed (or all) dims of size 1 */
    unsigned mask = 0;
    if (dl->type == NPE_VT_NONE) {
        mask = ~0u;
    } else if (dl->type == NPE_VT_LIST) {
        for (int i = 0; i < dl->n_items; i++) {
            int64_t dv;
            int d;
            if (!get_int(A, dl->items[i], &dv) || !wrap(dv, vx->ndim, &d)) {
                opaque(A, n, "squeeze with unknown dims");
                return;
            }
            mask |= 1u << d;
        }
    } else {
        int64_t dv;
        int d;
        if (!get_int(A, n->in[1], &dv) || !wrap(dv, vx->ndim, &d)) {
            opaque(A, n, "squeeze with an unknown dim");
            return;
        }
        mask = 1u << d;
    }
    int below = 0;
    for (int k = 0; k < vx->ndim; k++) {
        if (!(mask & (1u << k)) || vx->shape[k] != 1)
            continue;
        if (k == l->ax) {
            opaque(A, n, "squeeze of a single-channel dim");
            return;
        }
        below += k < l->ax;
    }
    copy_out(A, n, 0, x, l->ax - below);
}

static void do_expand(actx *A, const npe_node *n)
{
    int x = n->in[0], y = n->out[0];
    const lab *l = &A->L[x];
    const npe_value *vx = V(A, x), *vy = V(A, y);
    if (l->ax < 0) {
        set_out(A, n, 0, -1, 0, NULL);
        check_shape_items(A, n, 1, -1, y, "expand size");
        return;
    }
    int ax = l->ax + vy->ndim - vx->ndim;
    if (vx->shape[l->ax] == 1 && vy->shape[ax] > 1) {
        opaque(A, n, "expand of a single channel over other channels");
        return;
    }
    copy_out(A, n, 0, x, ax);
    check_shape_items(A, n, 1, ax, y, "expand size");
}

/* Shape arithmetic: remember which tensor's channel count a scalar holds. */
static void do_static(actx *A, const npe_node *n)
{
    int dep = -1;
    if (n->op == NPE_OP_SIZE) {
        int x = n->in[0];
        int64_t dv;
        int d;
        if (is_tensor(A, x) && A->L[x].ax >= 0 && get_int(A, n->in[1], &dv) &&
            wrap(dv, V(A, x)->ndim, &d) && d == A->L[x].ax)
            dep = x;
    } else {
        for (int j = 0; j < n->n_in && dep < 0; j++) {
            const npe_value *v = V(A, n->in[j]);
            if (A->sdep[n->in[j]] >= 0)
                dep = A->sdep[n->in[j]];
            for (int i = 0; v->type == NPE_VT_LIST && i < v->n_items && dep < 0; i++)
                dep = A->sdep[v->items[i]];
        }
    }
    for (int k = 0; k < n->n_out; k++)
        A->sdep[n->out[k]] = dep;
}

/* A channel count used by a node that is not shape arithmetic: the count is a number there. */
static void check_count_uses(actx *A, const npe_node *n)
{
    int allowed = n->op == NPE_OP_RESHAPE || n->op == NPE_OP_EXPAND;
    for (int j = 0; j < n->n_in; j++) {
        if (allowed && j == 1)
            continue;
        const npe_value *v = V(A, n->in[j]);
        int dep = A->sdep[n->in[j]];
        for (int i = 0; v->type == NPE_VT_LIST && i < v->n_items && dep < 0; i++)
            dep = A->sdep[v->items[i]];
        if (dep < 0)
            continue;
        char why[320];
        snprintf(why, sizeof why, "the channel count of '%s' is used as a number here",
                 V(A, dep)->name);
        fix_value(A, dep, node_reason(A, why));
    }
}

static void follow(actx *A, int i)
{
    const npe_node *n = &A->g->nodes[i];
    A->node = i;
    A->join_rsn = -1;
    if (n->flags & NPE_NF_STATIC) {
        do_static(A, n);
        return;
    }
    check_count_uses(A, n);
    switch (n->op) {
    case NPE_OP_CONV: do_conv(A, n); return;
    case NPE_OP_LINEAR: do_linear(A, n); return;
    case NPE_OP_BATCH_NORM: do_batch_norm(A, n); return;
    case NPE_OP_MAX_POOL2D:
    case NPE_OP_AVG_POOL2D:
    case NPE_OP_ADAPTIVE_AVG_POOL2D:
    case NPE_OP_ADAPTIVE_MAX_POOL2D:
    case NPE_OP_UPSAMPLE_NEAREST2D:
    case NPE_OP_UPSAMPLE_BILINEAR2D: do_spatial(A, n); return;
    case NPE_OP_PIXEL_SHUFFLE: do_pixel_shuffle(A, n); return;
    case NPE_OP_PAD: do_pad(A, n); return;
    case NPE_OP_ADD:
    case NPE_OP_SUB:
    case NPE_OP_RSUB:
    case NPE_OP_MUL:
    case NPE_OP_DIV:
    case NPE_OP_POW:
    case NPE_OP_MAXIMUM:
    case NPE_OP_MINIMUM: do_binary(A, n); return;
    case NPE_OP_LAYER_NORM: do_layer_norm(A, n); return;
    case NPE_OP_GROUP_NORM:
        opaque(A, n, "group_norm normalises groups of channels together");
        return;
    case NPE_OP_CAT:
    case NPE_OP_STACK: do_cat(A, n); return;
    case NPE_OP_CHUNK:
    case NPE_OP_SPLIT:
    case NPE_OP_SPLIT_WITH_SIZES:
    case NPE_OP_UNBIND: do_split(A, n); return;
    case NPE_OP_SLICE: do_slice(A, n); return;
    case NPE_OP_SELECT: do_select(A, n); return;
    case NPE_OP_MEAN:
    case NPE_OP_SUM:
    case NPE_OP_AMAX:
    case NPE_OP_AMIN:
    case NPE_OP_MAX_DIM:
    case NPE_OP_MIN_DIM: do_reduce(A, n); return;
    case NPE_OP_SOFTMAX:
    case NPE_OP_LOG_SOFTMAX: do_softmax(A, n); return;
    case NPE_OP_FLATTEN: do_flatten(A, n); return;
    case NPE_OP_RESHAPE:
    case NPE_OP_RESHAPE_AS: do_reshape(A, n); return;
    case NPE_OP_PERMUTE:
    case NPE_OP_TRANSPOSE: do_permute(A, n); return;
    case NPE_OP_SQUEEZE:
    case NPE_OP_UNSQUEEZE: do_squeeze(A, n); return;
    case NPE_OP_EXPAND: do_expand(A, n); return;
    case NPE_OP_EXPAND_AS: do_binary(A, n); return; /* other's channels must match self's */
    default:
        break;
    }
    const npe_op_schema *s = npe_op_schema_of(n->op);
    if (s && (s->flags & NPE_OPF_ELEMENTWISE) && n->n_out == 1 && is_tensor(A, n->in[0])) {
        /* one tensor in, channel c from channel c; the other inputs are scalars */
        int others = 0;
        for (int j = 1; j < n->n_in; j++)
            others |= is_act(A, n->in[j]);
        if (!others) {
            copy_out(A, n, 0, n->in[0], A->L[n->in[0]].ax);
            return;
        }
    }
    char why[200];
    snprintf(why, sizeof why, "op %s has no channel rule in the dependency analysis",
             npe_op_name(n->op));
    opaque(A, n, why);
}

/* ---- Gathering groups ------------------------------------------------------------------------ */
static void free_actx(actx *A)
{
    if (A->L)
        for (int v = 0; v < A->g->n_values; v++) {
            free(A->L[v].c);
            free(A->L[v].taint);
        }
    free(A->L);
    free(A->sdep);
    free(A->cut_head);
    for (int i = 0; i < A->n_cuts; i++)
        free(A->cuts[i].c);
    free(A->cuts);
    for (int i = 0; i < A->n_prods; i++)
        free(A->prods[i].c);
    free(A->prods);
    for (int i = 0; i < A->n_cons; i++)
        free(A->cons[i].c);
    free(A->cons);
    free(A->lits);
    for (int i = 0; i < A->n_parts; i++) {
        free(A->parts[i].c);
        free(A->parts[i].piece);
    }
    free(A->parts);
    free(A->parent);
    free(A->rsn);
    free(A->orsn);
    for (int i = 0; i < A->n_reasons; i++)
        free(A->reasons[i]);
    free(A->reasons);
}

void npe_groups_destroy(npe_groups *G)
{
    if (!G)
        return;
    for (int i = 0; i < G->n_groups; i++) {
        npe_group *gr = &G->groups[i];
        free(gr->name);
        free(gr->reason);
        free(gr->producers);
        free(gr->consumers);
        free(gr->params);
        free(gr->lits);
        free(gr->part);
    }
    free(G->groups);
    for (int i = 0; i < G->n_producers; i++)
        free(G->producers[i].out.at);
    free(G->producers);
    for (int i = 0; i < G->n_consumers; i++)
        free(G->consumers[i].in.at);
    free(G->consumers);
    for (int i = 0; i < G->n_cuts; i++)
        free(G->cuts[i].map.at);
    free(G->cuts);
    for (int i = 0; i < G->n_tensors; i++)
        free(G->tensors[i].at);
    free(G->tensors);
    free(G->lits);
    free(G);
}

const char *npe_layer_name(const npe_graph *g, int node)
{
    const npe_node *n = &g->nodes[node];
    if (n->scope && n->scope[0])
        return n->scope;
    return n->n_out > 0 ? g->values[n->out[0]].name : "";
}

int npe_groups_find_name(const npe_groups *G, const char *name)
{
    for (int i = 0; G && name && i < G->n_groups; i++)
        if (strcmp(G->groups[i].name, name) == 0)
            return i;
    return -1;
}

/* Class labels -> group channels, through the per-class table ref. */
static npe_chanref *to_refs(const int *c, int n, const npe_chanref *ref, actx *A)
{
    npe_chanref *at = malloc((size_t)(n ? n : 1) * sizeof *at);
    if (!at) {
        A->fail = NPE_ENOMEM;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        at[i] = c[i] >= 0 ? ref[find(A, c[i])] : (npe_chanref){-1, -1};
    return at;
}

static int push_index(int **arr, int *n, int v)
{
    if (*n && (*arr)[*n - 1] == v)
        return 0;
    int *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p)
        return NPE_ENOMEM;
    p[(*n)++] = v;
    *arr = p;
    return 0;
}

/* Add index idx to the list of every group that at[] touches. */
static int list_in_groups(npe_groups *G, const npe_chanref *at, int n, int which, int idx,
                          unsigned char *seen)
{
    memset(seen, 0, (size_t)G->n_groups);
    for (int i = 0; i < n; i++) {
        int gi = at[i].group;
        if (gi < 0 || seen[gi])
            continue;
        seen[gi] = 1;
        npe_group *gr = &G->groups[gi];
        int r = which == 0   ? push_index(&gr->producers, &gr->n_producers, idx)
                : which == 1 ? push_index(&gr->consumers, &gr->n_consumers, idx)
                : which == 2 ? push_index(&gr->params, &gr->n_params, idx)
                             : push_index(&gr->lits, &gr->n_lits, idx);
        if (r)
            return r;
    }
    return 0;
}

static int group_fail(npe_groups *G, int gi, const char *why)
{
    npe_group *gr = &G->groups[gi];
    if (!gr->prunable)
        return 0;
    gr->prunable = 0;
    free(gr->reason);
    gr->reason = dupstr(why);
    return gr->reason ? 0 : NPE_ENOMEM;
}

/* Every piece of fine[] (nf pieces) lies within one piece of coarse[]. */
static int refines(const int *fine, const int *coarse, int n, int nf)
{
    int *to = malloc((size_t)(nf ? nf : 1) * sizeof *to);
    int ok = to != NULL;
    for (int i = 0; ok && i < nf; i++)
        to[i] = -1;
    for (int i = 0; ok && i < n; i++) {
        if (to[fine[i]] < 0)
            to[fine[i]] = coarse[i];
        ok = to[fine[i]] == coarse[i];
    }
    free(to);
    return ok;
}

/* Two labelings of the same channels make the same pieces. */
static int same_partition(const int *a, int na, const int *b, int nb, int n)
{
    if (na != nb)
        return 0;
    int *ab = malloc((size_t)(na ? na : 1) * sizeof *ab);
    int *ba = malloc((size_t)(nb ? nb : 1) * sizeof *ba);
    int same = ab && ba;
    for (int i = 0; same && i < na; i++)
        ab[i] = ba[i] = -1;
    for (int i = 0; same && i < n; i++) {
        if (ab[a[i]] < 0 && ba[b[i]] < 0) {
            ab[a[i]] = b[i];
            ba[b[i]] = a[i];
        }
        same = ab[a[i]] == b[i] && ba[b[i]] == a[i];
    }
    free(ab);
    free(ba);
    return same;
}

/* A split into pieces (conv groups, chunk, split, slice): a partition of the one group whose
 * channels it covers exactly, or nothing to keep when every piece holds whole groups (free
 * pieces only); anything else cannot be cut consistently. */
static int apply_part(actx *A, npe_groups *G, const part_rec *P, const npe_chanref *ref)
{
    char where[512], why[900];
    npe_node_desc(A->g, P->node, where, sizeof where);
    int ng = G->n_groups, *touched = calloc((size_t)(ng ? ng : 1), sizeof *touched);
    npe_chanref *r = malloc((size_t)(P->n ? P->n : 1) * sizeof *r);
    int rc = NPE_ENOMEM, nt = 0, neg = 0, gi = -1, ok = 1;
    int *piece = NULL, *cnt = NULL;
    if (!touched || !r)
        goto out_free;
    rc = 0;
    for (int i = 0; i < P->n; i++) {
        r[i] = P->c[i] >= 0 ? ref[find(A, P->c[i])] : (npe_chanref){-1, -1};
        if (r[i].group < 0) {
            neg = 1;
            continue;
        }
        if (!touched[r[i].group]++)
            nt++;
        gi = r[i].group;
    }
    if (!nt)
        goto out_free;
    /* every group touched: are its channels all here, each as often (a depthwise conv with
     * multiplier m repeats each m times), every copy in the same piece? */
    for (int k = 0; k < ng && ok; k++) {
        if (!touched[k])
            continue;
        int C = G->groups[k].channels, one_piece = 1, p0 = -1;
        free(cnt);
        if (!(cnt = calloc((size_t)C * 2, sizeof *cnt))) {
            rc = NPE_ENOMEM;
            goto out_free;
        }
        int *where_p = cnt + C;
        for (int i = 0; i < P->n && ok; i++) {
            if (r[i].group != k)
                continue;
            if (cnt[r[i].chan]++ && where_p[r[i].chan] != P->piece[i])
                ok = 0;
            where_p[r[i].chan] = P->piece[i];
            if (p0 < 0)
                p0 = P->piece[i];
            one_piece &= P->piece[i] == p0;
        }
        for (int c = 0; c < C && ok; c++)
            ok = cnt[c] >= 1 && cnt[c] == cnt[0];
        if (ok && nt > 1)
            ok = !P->equal && one_piece; /* whole groups per piece: nothing to keep */
    }
    if (!ok || neg) {
        const char *what = neg      ? "followed channels together with others"
                           : nt > 1 ? "the channels of several groups"
                                    : "part of a group's channels";
        snprintf(why, sizeof why, "%s splits %s into pieces that cannot be cut consistently (%s)",
                 P->what, what, where);
        for (int k = 0; k < ng && !rc; k++)
            if (touched[k])
                rc = group_fail(G, k, why);
        goto out_free;
    }
    if (nt > 1)
        goto out_free;
    /* one group, covered exactly: number its pieces in channel order */
    npe_group *gr = &G->groups[gi];
    int C = gr->channels, np = 0;
    piece = malloc((size_t)C * sizeof *piece);
    int *map = malloc((size_t)(P->n ? P->n : 1) * sizeof *map);
    if (!piece || !map) {
        free(map);
        rc = NPE_ENOMEM;
        goto out_free;
    }
    int maxp = 0;
    for (int i = 0; i < P->n; i++)
        if (P->piece[i] > maxp)
            maxp = P->piece[i];
    free(map);
    if (!(map = malloc((size_t)(maxp + 1) * sizeof *map))) {
        rc = NPE_ENOMEM;
        goto out_free;
    }
    for (int i = 0; i <= maxp; i++)
        map[i] = -1;
    for (int i = 0; i < P->n; i++)
        piece[r[i].chan] = P->piece[i];
    for (int c = 0; c < C; c++) {
        if (map[piece[c]] < 0)
            map[piece[c]] = np++;
        piece[c] = map[piece[c]];
    }
    free(map);
    if (np <= 1)
        goto out_free; /* one piece: no constraint */
    if (P->equal) {
        int *size = calloc((size_t)np, sizeof *size);
        if (!size) {
            rc = NPE_ENOMEM;
            goto out_free;
        }
        for (int c = 0; c < C; c++)
            size[piece[c]]++;
        for (int p = 1; p < np && ok; p++)
            ok = size[p] == size[0];
        free(size);
        if (!ok) {
            snprintf(why, sizeof why, "%s needs pieces of equal size, but they are not (%s)",
                     P->what, where);
            rc = group_fail(G, gi, why);
            goto out_free;
        }
    }
    if (!gr->part) {
        gr->part = piece;
        piece = NULL;
        gr->n_parts = np;
        gr->equal_parts = P->equal;
    } else if (same_partition(gr->part, gr->n_parts, piece, np, C)) {
        gr->equal_parts |= P->equal;
    } else if (refines(piece, gr->part, C, np) && (P->equal || !gr->equal_parts)) {
        /* the new pieces nest in the old: equal fine pieces keep equal coarse ones, and any
         * fine pieces keep at least one per coarse one */
        free(gr->part);
        gr->part = piece;
        piece = NULL;
        gr->n_parts = np;
        gr->equal_parts = P->equal;
    } else if (refines(gr->part, piece, C, gr->n_parts) && (gr->equal_parts || !P->equal)) {
        /* the old pieces nest in the new ones and already keep them right */
    } else {
        snprintf(why, sizeof why, "%s splits the channels into other pieces than another split "
                 "of the same group does (%s)", P->what, where);
        rc = group_fail(G, gi, why);
    }
out_free:
    free(touched);
    free(r);
    free(piece);
    free(cnt);
    return rc;
}

static int gather(actx *A, npe_groups *G)
{
    npe_graph *g = A->g;
    int nc = A->n_cls;
    /* producers' channels are cut together: connected components over producers */
    int *gp = malloc((size_t)(nc ? nc : 1) * sizeof *gp);
    int *gid = malloc((size_t)(nc ? nc : 1) * sizeof *gid);
    npe_chanref *ref = malloc((size_t)(nc ? nc : 1) * sizeof *ref);
    unsigned char *seen = NULL;
    int rc = NPE_ENOMEM;
    if (!gp || !gid || !ref)
        goto out_free;
    for (int c = 0; c < nc; c++) {
        gp[c] = find(A, c);
        gid[c] = -1;
        ref[c] = (npe_chanref){-1, -1};
    }
    for (int p = 0; p < A->n_prods; p++) {
        const prod_rec *pr = &A->prods[p];
        if (pr->depthwise)
            continue;
        int first = -1;
        for (int o = 0; o < pr->n; o++) {
            if (pr->c[o] < 0)
                continue;
            int r = find(A, pr->c[o]);
            while (gp[r] != r)
                r = gp[r];
            if (first < 0) {
                first = r;
            } else if (r != first) {
                if (r < first) {
                    gp[first] = r;
                    first = r;
                } else {
                    gp[r] = first;
                }
            }
        }
    }
    /* number groups and channels in order of first producer and its output channels */
    int ng = 0;
    int *chans = NULL, *first_node = NULL, *rsn = NULL, *orsn = NULL;
    for (int p = 0; p < A->n_prods; p++) {
        const prod_rec *pr = &A->prods[p];
        if (pr->depthwise)
            continue;
        for (int o = 0; o < pr->n; o++) {
            if (pr->c[o] < 0)
                continue;
            int cls = find(A, pr->c[o]), r = cls;
            while (gp[r] != r)
                r = gp[r];
            if (gid[r] < 0) {
                int *a = realloc(chans, (size_t)(ng + 1) * sizeof *a);
                if (!a)
                    goto out_free_lists;
                chans = a;
                if (!(a = realloc(first_node, (size_t)(ng + 1) * sizeof *a)))
                    goto out_free_lists;
                first_node = a;
                if (!(a = realloc(rsn, (size_t)(ng + 1) * sizeof *a)))
                    goto out_free_lists;
                rsn = a;
                if (!(a = realloc(orsn, (size_t)(ng + 1) * sizeof *a)))
                    goto out_free_lists;
                orsn = a;
                chans[ng] = 0;
                first_node[ng] = pr->node;
                rsn[ng] = orsn[ng] = -1;
                gid[r] = ng++;
            }
            int gi = gid[r];
            if (ref[cls].group < 0) {
                ref[cls] = (npe_chanref){gi, chans[gi]++};
                rsn[gi] = min_rsn(rsn[gi], A->rsn[cls]);
                orsn[gi] = min_rsn(orsn[gi], A->orsn[cls]);
            }
        }
    }
    G->groups = calloc((size_t)(ng ? ng : 1), sizeof *G->groups);
    if (!G->groups)
        goto out_free_lists;
    G->n_groups = ng;
    for (int gi = 0; gi < ng; gi++) {
        npe_group *gr = &G->groups[gi];
        gr->channels = chans[gi];
        gr->first_node = first_node[gi];
        int r = orsn[gi] >= 0 ? orsn[gi] : rsn[gi];
        gr->prunable = r < 0;
        if (r >= 0 && !(gr->reason = dupstr(A->reasons[r])))
            goto out_free_lists;
        const char *base = npe_layer_name(g, first_node[gi]);
        int dup = 0;
        for (int k = 0; k < gi && !dup; k++)
            dup = strcmp(G->groups[k].name, base) == 0;
        if (dup) /* two producers in one module: the output value names are unique */
            base = g->values[g->nodes[first_node[gi]].out[0]].name;
        if (!(gr->name = dupstr(base)))
            goto out_free_lists;
    }
    seen = malloc((size_t)(ng ? ng : 1));
    if (!seen)
        goto out_free_lists;
    for (int k = 0; k < A->n_parts; k++)
        if (apply_part(A, G, &A->parts[k], ref))
            goto out_free_lists;

    /* producers, consumers, cuts, tensors, literals in group-channel form */
    G->producers = calloc((size_t)(A->n_prods ? A->n_prods : 1), sizeof *G->producers);
    G->consumers = calloc((size_t)(A->n_cons ? A->n_cons : 1), sizeof *G->consumers);
    G->cuts = calloc((size_t)(A->n_cuts ? A->n_cuts : 1), sizeof *G->cuts);
    G->lits = calloc((size_t)(A->n_lits ? A->n_lits : 1), sizeof *G->lits);
    if (!G->producers || !G->consumers || !G->cuts || !G->lits)
        goto out_free_lists;
    for (int p = 0; p < A->n_prods; p++) {
        const prod_rec *pr = &A->prods[p];
        npe_producer *P = &G->producers[G->n_producers];
        P->node = pr->node;
        P->weight = pr->weight;
        P->dim = pr->dim;
        P->shared = pr->shared;
        P->depthwise = pr->depthwise;
        P->out = (npe_chanmap){pr->node, pr->out, 1, pr->n, to_refs(pr->c, pr->n, ref, A)};
        if (!P->out.at)
            goto out_free_lists;
        P->out.dim = A->L[pr->out].ax >= 0 ? A->L[pr->out].ax : 1;
        G->n_producers++;
        if (list_in_groups(G, P->out.at, P->out.n, 0, G->n_producers - 1, seen))
            goto out_free_lists;
    }
    for (int k = 0; k < A->n_cons; k++) {
        const cons_rec *cr = &A->cons[k];
        npe_consumer *C = &G->consumers[G->n_consumers];
        C->node = cr->node;
        C->in = (npe_chanmap){cr->node, cr->weight, cr->dim, cr->n, to_refs(cr->c, cr->n, ref, A)};
        C->groups = cr->groups;
        if (!C->in.at)
            goto out_free_lists;
        G->n_consumers++;
        if (list_in_groups(G, C->in.at, C->in.n, 1, G->n_consumers - 1, seen))
            goto out_free_lists;
    }
    for (int k = 0; k < A->n_cuts; k++) {
        const cut_rec *cr = &A->cuts[k];
        npe_cut *C = &G->cuts[G->n_cuts];
        C->role = cr->role;
        C->blocks = cr->blocks;
        C->map = (npe_chanmap){cr->node, cr->value, cr->dim, cr->n, to_refs(cr->c, cr->n, ref, A)};
        if (!C->map.at)
            goto out_free_lists;
        G->n_cuts++;
        if (cr->role == NPE_CUT_CHANNEL &&
            list_in_groups(G, C->map.at, C->map.n, 2, G->n_cuts - 1, seen))
            goto out_free_lists;
    }
    int *tix = malloc((size_t)g->n_values * sizeof *tix);
    if (!tix)
        goto out_free_lists;
    int nt = 0;
    for (int v = 0; v < g->n_values; v++)
        nt += A->L[v].ax >= 0;
    G->tensors = calloc((size_t)(nt ? nt : 1), sizeof *G->tensors);
    if (!G->tensors) {
        free(tix);
        goto out_free_lists;
    }
    for (int v = 0; v < g->n_values; v++) {
        tix[v] = -1;
        const lab *l = &A->L[v];
        if (l->ax < 0)
            continue;
        npe_chanmap *T = &G->tensors[G->n_tensors];
        *T = (npe_chanmap){g->values[v].producer, v, l->ax, l->n, to_refs(l->c, l->n, ref, A)};
        if (!T->at) {
            free(tix);
            goto out_free_lists;
        }
        tix[v] = G->n_tensors++;
    }
    for (int k = 0; k < A->n_lits; k++) {
        const lit_rec *lr = &A->lits[k];
        if (tix[lr->tensor] < 0)
            continue;
        npe_lit *Lt = &G->lits[G->n_lits];
        *Lt = (npe_lit){lr->value, lr->node, lr->what, tix[lr->tensor], lr->lo, lr->hi};
        G->n_lits++;
        const npe_chanmap *T = &G->tensors[Lt->tensor];
        int lo = Lt->lo < 0 ? 0 : Lt->lo, hi = Lt->hi > T->n ? T->n : Lt->hi;
        if (hi > lo && list_in_groups(G, T->at + lo, hi - lo, 3, G->n_lits - 1, seen)) {
            free(tix);
            goto out_free_lists;
        }
    }
    free(tix);
    rc = A->fail;
out_free_lists:
    free(chans);
    free(first_node);
    free(rsn);
    free(orsn);
out_free:
    free(seen);
    free(gp);
    free(gid);
    free(ref);
    return rc;
}

int npe_groups_find(npe_graph *g, const npe_tshape *inputs, int n_inputs, npe_groups **out,
                    npe_error *err)
{
    *out = NULL;
    if (n_inputs < 0 || n_inputs > 8)
        return npe_error_set(err, NPE_EUNSUPPORTED, "%s: dependency analysis supports at most 8 "
                             "graph inputs, %d given", g->origin ? g->origin : "model", n_inputs);
    int r = npe_graph_infer(g, inputs, n_inputs, err);
    if (r)
        return r;
    actx A = {0};
    A.g = g;
    A.err = err;
    npe_groups *G = calloc(1, sizeof *G);
    A.L = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *A.L);
    A.sdep = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *A.sdep);
    A.cut_head = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *A.cut_head);
    if (!G || !A.L || !A.sdep || !A.cut_head) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory finding channel groups");
        goto out_free;
    }
    for (int v = 0; v < g->n_values; v++) {
        A.L[v].ax = -1;
        A.sdep[v] = -1;
        A.cut_head[v] = -1;
    }
    for (int i = 0; i < g->n_nodes && !A.fail; i++)
        follow(&A, i);
    /* channels that reach an output are the model's interface: never cut */
    for (int k = 0; k < g->n_outputs && !A.fail; k++) {
        int v = g->outputs[k];
        const lab *l = &A.L[v];
        if (l->ax < 0 && !l->n_taint)
            continue;
        int rr = reason(&A, "reaches model output '%s'", g->values[v].name);
        for (int i = 0; l->ax >= 0 && i < l->n; i++)
            if (l->c[i] >= 0) {
                int c = find(&A, l->c[i]);
                A.orsn[c] = min_rsn(A.orsn[c], rr);
            }
        for (int i = 0; i < l->n_taint; i++) {
            int c = find(&A, l->taint[i]);
            A.orsn[c] = min_rsn(A.orsn[c], rr);
        }
    }
    if (!A.fail)
        A.fail = gather(&A, G);
    if (A.fail) {
        r = npe_error_set(err, A.fail, "%s: %s while finding channel groups",
                          g->origin ? g->origin : "model",
                          A.fail == NPE_ENOMEM ? "out of memory" : "a size limit was exceeded");
        goto out_free;
    }
    for (int i = 0; i < n_inputs; i++)
        G->inputs[i] = inputs[i];
    G->n_inputs = n_inputs;
    G->n_values = g->n_values;
    G->n_nodes = g->n_nodes;
    *out = G;
    G = NULL;
    r = 0;
out_free:
    free_actx(&A);
    npe_groups_destroy(G);
    return r;
}
