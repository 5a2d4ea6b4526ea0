/* Executor: memory plan over the graph (one arena, buffers reused after their last reader, views
 * sharing their source's buffer, elementwise ops in place when their input dies), batch norm
 * folded into scale/shift once per plan, conv -> batch norm -> activation chains run as one
 * conv with a fused epilogue, and one kernel call (or a few) per node. */
#include "exec.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../importers/torchscript.h"
#include "../kernels/cpu/threadpool.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

struct npe_exec {
    npe_graph *g;
    const npe_kernels *k;
    unsigned flags;
    int planned;
    int n_in;
    npe_tshape *shapes;     /* input shapes of the plan */
    int *root;              /* per value: value whose buffer it uses */
    int64_t *off;           /* per value (roots): offset in floats into the arena, -1 none */
    unsigned char *run;     /* per node: executed at run time */
    float **affine;         /* per node: batch norm scale (C) then shift (C) */
    int *fuse_bn;           /* per conv node: batch norm node fused into it, or -1 */
    int *fuse_act;          /* per conv node: activation node fused into it, or -1 */
    unsigned char *gone;    /* per value: a fused chain's intermediate, never stored */
    float *arena;
    size_t arena_n;
    size_t arena_bytes;     /* allocated: >= arena_n floats */
    float *tmp;             /* intermediates of reductions, norms, matmul: tmp_n floats */
    size_t tmp_n;
    void *scratch;
    size_t scratch_size;
    int scratch_threads;
    npe_exec_bufs *bufs;    /* where the arena and scratch come from and go back to, or NULL */
    /* Prepared conv weights (kernels' conv2d_prep), kept across runs and plans. */
    struct node_prep {
        void *data;         /* the preparation, or NULL */
        const float *w;     /* the weights it was made from */
        size_t bytes;       /* its size when this executor owns it, else 0 */
        unsigned gen;       /* the plan that last asked the kernels (0: none) */
    } *prep;                /* per node */
    unsigned plan_gen;      /* counts plans: shapes decide whether a conv takes a preparation */
    int prep_n;             /* nodes it covers */
    npe_prep_cache *pcache; /* shared preparations, or NULL */
    int pcache_all;         /* every weight of the graph is stable, not only borrowed ones */
    size_t own_bytes, own_max; /* bytes of the preparations it owns, and at most */
};

/* ---- Prepared weights ------------------------------------------------------------------------ */
typedef struct prep_entry {
    const float *w;
    npe_conv2d_params key; /* channels, kernel, stride, dilation, groups; the rest zero */
    void *data;
    size_t bytes;
} prep_entry;

struct npe_prep_cache {
    pthread_mutex_t mu;
    prep_entry *e;
    int n, cap;
    size_t bytes, max_bytes;
};

int npe_prep_cache_create(size_t max_bytes, npe_prep_cache **out)
{
    npe_prep_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NPE_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL)) {
        free(c);
        return NPE_ENOMEM;
    }
    c->max_bytes = max_bytes;
    *out = c;
    return 0;
}

void npe_prep_cache_destroy(npe_prep_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->e[i].data);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

size_t npe_prep_cache_bytes(npe_prep_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t b = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return b;
}

void npe_exec_use_prep_cache(npe_exec *x, npe_prep_cache *c, int all_stable)
{
    x->pcache = c;
    x->pcache_all = all_stable;
}

/* What a preparation depends on besides the weights. */
static npe_conv2d_params prep_key(const npe_conv2d_params *p)
{
    npe_conv2d_params k = {0};
    k.c_in = p->c_in, k.c_out = p->c_out, k.kh = p->kh, k.kw = p->kw, k.sh = p->sh;
    k.sw = p->sw, k.dh = p->dh, k.dw = p->dw, k.groups = p->groups;
    k.transposed = p->transposed;
    return k;
}

/* The shared preparation of w for p: found, or made now when the budget has room; NULL if not. */
static void *prep_cache_get(npe_prep_cache *c, const npe_kernels *k, const npe_kexec *ex,
                            const npe_conv2d_params *p, const float *w, size_t bytes)
{
    const npe_conv2d_params key = prep_key(p);
    void *d = NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n && !d; i++)
        if (c->e[i].w == w && !memcmp(&c->e[i].key, &key, sizeof(key)))
            d = c->e[i].data;
    if (!d && c->bytes + bytes <= c->max_bytes) {
        if (c->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 64;
            prep_entry *e = realloc(c->e, (size_t)cap * sizeof(*e));
            if (e)
                c->e = e, c->cap = cap;
        }
        if (c->n < c->cap && (d = aligned_alloc(64, (bytes + 63) / 64 * 64))) {
            /* made under the lock: another worker wanting it waits rather than makes it too */
            k->conv2d_prep(ex, p, w, d);
            c->e[c->n++] = (prep_entry){w, key, d, bytes};
            c->bytes += bytes;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return d;
}

void npe_exec_limit_own_preps(npe_exec *x, size_t max_bytes)
{
    x->own_max = max_bytes;
}

size_t npe_exec_own_prep_bytes(const npe_exec *x)
{
    return x->own_bytes;
}

static void drop_preps(npe_exec *x)
{
    for (int i = 0; i < x->prep_n; i++)
        if (x->prep[i].bytes)
            free(x->prep[i].data);
    free(x->prep);
    x->prep = NULL;
    x->prep_n = 0;
    x->own_bytes = 0;
}

/* The preparation of conv node i's weights w (value wv) for p, or NULL: made on the first run
 * that needs it and kept; from the shared cache for weights that stay put (borrowed from
 * another graph, or every weight when the caller said so), else owned within own_max. */
static const void *conv_prep(npe_exec *x, const npe_kexec *ex, int i, int wv,
                             const npe_conv2d_params *p, const float *w)
{
    if (x->prep_n != x->g->n_nodes) {
        drop_preps(x);
        if (!(x->prep = calloc((size_t)x->g->n_nodes + 1, sizeof(*x->prep))))
            return NULL;
        x->prep_n = x->g->n_nodes;
    }
    struct node_prep *np = &x->prep[i];
    /* made by an earlier run; or none, and the kernels already said so for this plan */
    if (np->w == w && (np->data || np->gen == x->plan_gen))
        return np->data;
    const size_t bytes =
        x->k->conv2d_prep_bytes(p, ex && ex->parallel_for && ex->nthreads > 1 ? ex->nthreads : 1);
    if (np->bytes) {
        free(np->data);
        x->own_bytes -= np->bytes;
    }
    *np = (struct node_prep){NULL, w, 0, x->plan_gen};
    if (!bytes)
        return NULL;
    const int stable = x->pcache_all || x->g->values[wv].data_borrowed;
    if (x->pcache && stable) {
        np->data = prep_cache_get(x->pcache, x->k, ex, p, w, bytes);
    } else if (x->own_bytes + bytes <= x->own_max &&
               (np->data = aligned_alloc(64, (bytes + 63) / 64 * 64))) {
        x->k->conv2d_prep(ex, p, w, np->data);
        np->bytes = bytes;
        x->own_bytes += bytes;
    }
    return np->data;
}

/* A buffer of at least need bytes: the one *keep holds when large enough (taken from it), else a
 * new one (*keep's too small one is freed). */
static void *take_buf(void **keep, size_t *keep_n, size_t need, size_t *got)
{
    if (*keep && *keep_n >= need) {
        void *p = *keep;
        *got = *keep_n;
        *keep = NULL;
        *keep_n = 0;
        return p;
    }
    free(*keep);
    *keep = NULL;
    *keep_n = 0;
    *got = need;
    return aligned_alloc(64, need);
}

/* Give buffer p of n bytes back to *keep (the larger of the two stays), or free it. */
static void give_buf(void **keep, size_t *keep_n, void *p, size_t n)
{
    if (!p)
        return;
    if (*keep && *keep_n >= n) {
        free(p);
        return;
    }
    free(*keep);
    *keep = p;
    *keep_n = n;
}

void npe_exec_use_bufs(npe_exec *x, npe_exec_bufs *b)
{
    x->bufs = b;
}

void npe_exec_bufs_free(npe_exec_bufs *b)
{
    if (!b)
        return;
    free(b->arena);
    free(b->scratch);
    memset(b, 0, sizeof(*b));
}

NPE_PRINTF(4, 5) static int xerr(npe_exec *x, int node, npe_error *err, const char *fmt, ...)
{
    char msg[512], where[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    npe_node_desc(x->g, node, where, sizeof where);
    return npe_error_set(err, NPE_EUNSUPPORTED, "%s: %s", where, msg);
}

/* ---- Reading the graph ----------------------------------------------------------------------- */
static int64_t ival(const npe_graph *g, int vid)
{
    const npe_value *v = &g->values[vid];
    switch (v->type) {
    case NPE_VT_INT:
    case NPE_VT_BOOL:
        return v->i;
    case NPE_VT_FLOAT:
        return (int64_t)v->f;
    case NPE_VT_TENSOR:
        return v->i;
    default:
        return 0;
    }
}

static double fval(const npe_graph *g, int vid)
{
    const npe_value *v = &g->values[vid];
    switch (v->type) {
    case NPE_VT_INT:
    case NPE_VT_BOOL:
        return (double)v->i;
    case NPE_VT_FLOAT:
    case NPE_VT_TENSOR:
        return v->f;
    default:
        return 0;
    }
}

static int is_none(const npe_graph *g, int vid)
{
    return g->values[vid].type == NPE_VT_NONE;
}

/* int[2] argument: a list of 1 or 2 ints, or one int. */
static void pair(const npe_graph *g, int vid, int64_t out[2])
{
    const npe_value *v = &g->values[vid];
    if (v->type == NPE_VT_LIST && v->n_items >= 1) {
        out[0] = ival(g, v->items[0]);
        out[1] = ival(g, v->items[v->n_items > 1 ? 1 : 0]);
    } else {
        out[0] = out[1] = ival(g, vid);
    }
}

static int ints(const npe_graph *g, int vid, int64_t *out, int max)
{
    const npe_value *v = &g->values[vid];
    if (v->type != NPE_VT_LIST) {
        out[0] = ival(g, vid);
        return 1;
    }
    int n = v->n_items < max ? v->n_items : max;
    for (int i = 0; i < n; i++)
        out[i] = ival(g, v->items[i]);
    return n;
}

static int wrap(int64_t d, int ndim)
{
    int n = ndim > 0 ? ndim : 1;
    return (int)(d < 0 ? d + n : d);
}

static void strides_of(const npe_value *v, int64_t *s)
{
    int64_t acc = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        s[d] = acc;
        acc *= v->shape[d];
    }
}

static int64_t prod(const int64_t *s, int a, int b)
{
    int64_t p = 1;
    for (int i = a; i < b; i++)
        p *= s[i];
    return p;
}

/* Is value v held by the graph (parameter, constant, static) rather than computed at run time? */
static int is_static_tensor(const npe_graph *g, int v)
{
    const npe_value *val = &g->values[v];
    return val->type == NPE_VT_TENSOR && (val->flags & NPE_VF_STATIC) && val->data &&
           !(val->flags & NPE_VF_INPUT);
}

static float *vptr(const npe_exec *x, int v)
{
    int r = x->root[v];
    if (x->off[r] >= 0)
        return x->arena + x->off[r];
    return x->g->values[r].data;
}

/* ---- Planning -------------------------------------------------------------------------------- */
static void unplan(npe_exec *x)
{
    if (x->affine && x->g) {
        for (int i = 0; i < x->g->n_nodes; i++)
            free(x->affine[i]);
    }
    free(x->affine);
    free(x->fuse_bn);
    free(x->fuse_act);
    free(x->gone);
    x->fuse_bn = x->fuse_act = NULL;
    x->gone = NULL;
    free(x->root);
    free(x->off);
    free(x->run);
    if (x->bufs)
        give_buf(&x->bufs->arena, &x->bufs->arena_bytes, x->arena, x->arena_bytes);
    else
        free(x->arena);
    free(x->tmp);
    x->affine = NULL;
    x->root = NULL;
    x->off = NULL;
    x->run = NULL;
    x->arena = NULL;
    x->tmp = NULL;
    x->arena_n = x->tmp_n = x->arena_bytes = 0;
    x->planned = 0;
}

static int inplace_capable(npe_op op)
{
    switch (op) {
    case NPE_OP_RELU: case NPE_OP_HARDTANH: case NPE_OP_LEAKY_RELU: case NPE_OP_SILU:
    case NPE_OP_SIGMOID: case NPE_OP_HARDSWISH: case NPE_OP_HARDSIGMOID: case NPE_OP_TANH:
    case NPE_OP_GELU: case NPE_OP_ELU: case NPE_OP_CLAMP: case NPE_OP_NEG: case NPE_OP_EXP:
    case NPE_OP_SQRT: case NPE_OP_BATCH_NORM: case NPE_OP_ADD: case NPE_OP_SUB: case NPE_OP_MUL:
    case NPE_OP_DIV: case NPE_OP_POW: case NPE_OP_MAXIMUM: case NPE_OP_MINIMUM:
    case NPE_OP_SLICE_SCATTER: case NPE_OP_SELECT_SCATTER:
        return 1;
    default:
        return 0;
    }
}

static int same_shape(const npe_value *a, const npe_value *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

typedef struct placed {
    int64_t off, size;
} placed;

static int cmp_placed(const void *a, const void *b)
{
    const placed *p = a, *q = b;
    return p->off < q->off ? -1 : p->off > q->off;
}

/* Floats of x->tmp node n needs (see the run functions). */
static size_t tmp_need(const npe_graph *g, const npe_node *n)
{
    const npe_value *xv = &g->values[n->in[0]];
    size_t numel = xv->type == NPE_VT_TENSOR ? (size_t)npe_value_numel(xv) : 0;
    switch (n->op) {
    case NPE_OP_MEAN:
    case NPE_OP_SUM:
    case NPE_OP_AMAX:
    case NPE_OP_MAX_DIM:
        return 2 * numel;                   /* two halves for multi-dim reductions */
    case NPE_OP_AMIN:
    case NPE_OP_MIN_DIM:
        return 3 * numel;                   /* the negated input, then the two halves */
    case NPE_OP_GROUP_NORM:
    case NPE_OP_LAYER_NORM:
        return 2 * numel + 1;               /* squares, then a statistic per row (rows <= numel) */
    case NPE_OP_MATMUL: {
        const npe_value *b = &g->values[n->in[1]];
        return (size_t)npe_value_numel(b);  /* the right operand transposed */
    }
    default:
        return 0;
    }
}

static int unary_of(const npe_graph *g, const npe_node *n, npe_unary_op *opp, float *ap,
                    float *bp);

/* Activations a conv epilogue applies: elementwise functions of their one tensor input. */
static int is_activation(npe_op op)
{
    switch (op) {
    case NPE_OP_RELU: case NPE_OP_HARDTANH: case NPE_OP_CLAMP: case NPE_OP_LEAKY_RELU:
    case NPE_OP_SILU: case NPE_OP_SIGMOID: case NPE_OP_HARDSWISH: case NPE_OP_HARDSIGMOID:
    case NPE_OP_TANH: case NPE_OP_GELU: case NPE_OP_ELU:
        return 1;
    default:
        return 0;
    }
}

/* The node that reads tensor v, as its input 0, when it is the only read of v by a node that
 * runs and v is no graph output; else -1. nread/reader: reads per value, and by which node. */
static int sole_reader(const npe_exec *x, const int *nread, const int *reader, int v)
{
    if (nread[v] != 1)
        return -1;
    const npe_node *n = &x->g->nodes[reader[v]];
    if (!x->run[reader[v]] || n->n_out != 1 || n->in[0] != v ||
        x->g->values[n->out[0]].type != NPE_VT_TENSOR ||
        !same_shape(&x->g->values[v], &x->g->values[n->out[0]]))
        return -1;
    return reader[v];
}

/* Fuse conv -> batch norm -> activation (either one optional) when each intermediate is read
 * by the next node only: the conv then writes the chain's last value through its epilogue and
 * the intermediates get no buffer. Folding the batch norm as an affine after the sum, rather
 * than into the weights, costs one multiply-add per output, keeps no second copy of the
 * weights, and rounds exactly as the separate ops do. def: per value, the node defining it. */
static int fuse_chains(npe_exec *x, int *def)
{
    npe_graph *g = x->g;
    const int nv = g->n_values, nn = g->n_nodes;
    x->fuse_bn = malloc((size_t)(nn ? nn : 1) * sizeof *x->fuse_bn);
    x->fuse_act = malloc((size_t)(nn ? nn : 1) * sizeof *x->fuse_act);
    x->gone = calloc((size_t)(nv ? nv : 1), 1);
    int *nread = calloc((size_t)(nv ? nv : 1), sizeof *nread);
    int *reader = calloc((size_t)(nv ? nv : 1), sizeof *reader);
    if (!x->fuse_bn || !x->fuse_act || !x->gone || !nread || !reader) {
        free(nread);
        free(reader);
        return -1;
    }
    for (int i = 0; i < nn; i++)
        x->fuse_bn[i] = x->fuse_act[i] = -1;
    const int allowed = !(x->flags & (NPE_EXEC_KEEP_ALL | NPE_EXEC_NO_FUSE)) && x->k->conv2d_ep;
    for (int i = 0; i < nn && allowed; i++) {
        if (!x->run[i])
            continue;
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (g->values[n->in[k]].type == NPE_VT_TENSOR) {
                nread[n->in[k]]++;
                reader[n->in[k]] = i;
            }
    }
    for (int i = 0; i < g->n_outputs; i++)
        nread[g->outputs[i]] += 2;
    for (int i = 0; i < nn && allowed; i++) {
        const npe_node *n = &g->nodes[i];
        if (!x->run[i] || n->op != NPE_OP_CONV || n->n_out != 1 ||
            g->values[n->out[0]].ndim != 4)
            continue;
        int v = n->out[0], last = v, r = sole_reader(x, nread, reader, v);
        if (r >= 0 && g->nodes[r].op == NPE_OP_BATCH_NORM) {
            x->fuse_bn[i] = r;
            x->run[r] = 0;
            x->gone[last] = 1;
            last = g->nodes[r].out[0];
            r = sole_reader(x, nread, reader, last);
        }
        if (r >= 0 && is_activation(g->nodes[r].op)) {
            x->fuse_act[i] = r;
            x->run[r] = 0;
            x->gone[last] = 1;
            last = g->nodes[r].out[0];
        }
        if (last == v)
            continue;
        /* the conv's output and the batch norm's are the last value's buffer, defined here */
        x->root[v] = last;
        if (x->fuse_bn[i] >= 0 && x->fuse_act[i] >= 0)
            x->root[g->nodes[x->fuse_bn[i]].out[0]] = last;
        def[last] = i;
    }
    free(nread);
    free(reader);
    return 0;
}

/* Batch norm node n (eval) as y = x * scale + shift: 2 * C floats, scale then shift. */
static float *bn_affine(const npe_graph *g, const npe_node *n)
{
    const npe_value *xv = &g->values[n->in[0]];
    int64_t c = xv->shape[1];
    float *aff = malloc((size_t)(2 * c + 1) * sizeof(float));
    if (!aff)
        return NULL;
    const float *w = is_none(g, n->in[NPE_BN_WEIGHT]) ? NULL : g->values[n->in[NPE_BN_WEIGHT]].data;
    const float *b = is_none(g, n->in[NPE_BN_BIAS]) ? NULL : g->values[n->in[NPE_BN_BIAS]].data;
    const float *mean = g->values[n->in[NPE_BN_MEAN]].data;
    const float *var = g->values[n->in[NPE_BN_VAR]].data;
    double eps = fval(g, n->in[NPE_BN_EPS]);
    for (int64_t ch = 0; ch < c; ch++) {
        /* as PyTorch: (x - mean) / sqrt(var + eps) * w + b, in float */
        float inv = 1.0f / sqrtf(var[ch] + (float)eps);
        float sc = (w ? w[ch] : 1.0f) * inv;
        aff[ch] = sc;
        aff[c + ch] = (b ? b[ch] : 0.0f) - mean[ch] * sc;
    }
    return aff;
}

static int plan(npe_exec *x, npe_error *err)
{
    npe_graph *g = x->g;
    int nv = g->n_values, nn = g->n_nodes;
    unplan(x);
    x->root = malloc((size_t)(nv ? nv : 1) * sizeof *x->root);
    x->off = malloc((size_t)(nv ? nv : 1) * sizeof *x->off);
    x->run = calloc((size_t)(nn ? nn : 1), 1);
    x->affine = calloc((size_t)(nn ? nn : 1), sizeof *x->affine);
    int *def = malloc((size_t)(nv ? nv : 1) * sizeof *def);
    int *last = malloc((size_t)(nv ? nv : 1) * sizeof *last);
    int *order = malloc((size_t)(nv ? nv : 1) * sizeof *order);
    placed *pl = malloc((size_t)(nv ? nv : 1) * sizeof *pl);
    int r = 0;
    if (!x->root || !x->off || !x->run || !x->affine || !def || !last || !order || !pl) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    const int keep = (x->flags & NPE_EXEC_KEEP_ALL) != 0;
    for (int v = 0; v < nv; v++) {
        x->root[v] = v;
        x->off[v] = -1;
        def[v] = -2; /* not an arena buffer */
        last[v] = -1;
    }
    for (int i = 0; i < g->n_inputs; i++)
        def[g->inputs[i]] = -1;
    for (int i = 0; i < nn; i++) {
        const npe_node *n = &g->nodes[i];
        if (n->flags & NPE_NF_STATIC)
            continue;
        x->run[i] = 1;
        const npe_op_schema *s = npe_op_schema_of(n->op);
        for (int k = 0; k < n->n_out; k++)
            if (g->values[n->out[k]].type == NPE_VT_TENSOR && !(g->values[n->out[k]].flags & NPE_VF_UNUSABLE))
                def[n->out[k]] = i;
        if ((s->flags & NPE_OPF_ALIAS) && g->values[n->in[0]].type == NPE_VT_TENSOR)
            x->root[n->out[0]] = x->root[n->in[0]];
    }
    if (fuse_chains(x, def)) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    /* last use per root (outputs live to the end) */
    for (int i = 0; i < nn; i++) {
        if (!x->run[i])
            continue;
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (g->values[n->in[k]].type == NPE_VT_TENSOR && last[x->root[n->in[k]]] < i)
                last[x->root[n->in[k]]] = i;
        for (int k = 0; k < n->n_out; k++)
            if (last[x->root[n->out[k]]] < i)
                last[x->root[n->out[k]]] = i;
    }
    for (int i = 0; i < g->n_outputs; i++)
        last[x->root[g->outputs[i]]] = nn;
    /* in place: an elementwise op whose input buffer dies here writes over it */
    for (int i = 0; i < nn && !keep; i++) {
        const npe_node *n = &g->nodes[i];
        if (!x->run[i] || !inplace_capable(n->op))
            continue;
        int in0 = n->in[0], out0 = n->out[0];
        if (g->values[in0].type != NPE_VT_TENSOR || is_static_tensor(g, x->root[in0]))
            continue;
        int ri = x->root[in0];
        if (last[ri] != i || def[ri] == -2 || x->root[out0] != out0 ||
            !same_shape(&g->values[in0], &g->values[out0]))
            continue;
        int shared = 0;
        for (int k = 1; k < n->n_in; k++)
            if (g->values[n->in[k]].type == NPE_VT_TENSOR && x->root[n->in[k]] == ri)
                shared = 1;
        if (shared)
            continue;
        x->root[out0] = ri;
        last[ri] = last[out0] > i ? last[out0] : i;
        for (int v = 0; v < nv; v++) /* values already aliasing out0 (none yet: out0 is new) */
            if (x->root[v] == out0)
                x->root[v] = ri;
    }
    /* aliases of aliases: resolve to the final root */
    for (int v = 0; v < nv; v++) {
        int rr = x->root[v], guard = 0;
        while (x->root[rr] != rr && guard++ < nv)
            rr = x->root[rr];
        x->root[v] = rr;
    }
    for (int v = 0; v < nv; v++)
        if (x->root[v] != v && last[v] > last[x->root[v]])
            last[x->root[v]] = last[v];
    if (keep)
        for (int v = 0; v < nv; v++)
            last[v] = nn;
    /* place roots: earliest definition first, lowest free offset among live overlapping ones */
    int nroots = 0;
    for (int v = 0; v < nv; v++)
        if (x->root[v] == v && def[v] != -2 && !is_static_tensor(g, v))
            order[nroots++] = v;
    size_t top = 0;
    for (int a = 0; a < nroots; a++) {
        int v = order[a];
        int64_t numel = npe_value_numel(&g->values[v]);
        if (numel < 0 || (uint64_t)numel > (SIZE_MAX / sizeof(float)) / 4) {
            r = npe_error_set(err, NPE_ELIMIT, "activation '%s' is too large", g->values[v].name);
            goto out_free;
        }
        int64_t size = (numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        if (!size)
            size = ALIGN_FLOATS;
        int np = 0;
        for (int b = 0; b < a; b++) {
            int u = order[b];
            if (def[u] <= last[v] && def[v] <= last[u]) {
                int64_t nu = npe_value_numel(&g->values[u]);
                pl[np].off = x->off[u];
                pl[np].size = nu ? (nu + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS : ALIGN_FLOATS;
                np++;
            }
        }
        qsort(pl, (size_t)np, sizeof *pl, cmp_placed);
        int64_t at = 0;
        for (int k = 0; k < np; k++) {
            if (pl[k].off - at >= size)
                break;
            if (pl[k].off + pl[k].size > at)
                at = pl[k].off + pl[k].size;
        }
        x->off[v] = at;
        if ((size_t)(at + size) > top)
            top = (size_t)(at + size);
    }
    x->arena_n = top;
    x->arena = NULL;
    if (top && x->bufs)
        x->arena = take_buf(&x->bufs->arena, &x->bufs->arena_bytes, top * sizeof(float),
                            &x->arena_bytes);
    else if (top)
        x->arena = aligned_alloc(64, x->arena_bytes = top * sizeof(float));
    if (top && !x->arena) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory for %zu MiB of activations",
                          top * sizeof(float) >> 20);
        goto out_free;
    }
    /* per-node constants: batch norm folded; reduction intermediates */
    size_t tmp = 0;
    for (int i = 0; i < nn; i++) {
        const npe_node *n = &g->nodes[i];
        if (n->op == NPE_OP_CONV && x->fuse_bn[i] >= 0) { /* the fused batch norm's */
            const int bn = x->fuse_bn[i];
            if (!(x->affine[bn] = bn_affine(g, &g->nodes[bn]))) {
                r = npe_error_set(err, NPE_ENOMEM, "out of memory");
                goto out_free;
            }
        }
        if (!x->run[i])
            continue;
        if (n->op == NPE_OP_BATCH_NORM) {
            if (!(x->affine[i] = bn_affine(g, n))) {
                r = npe_error_set(err, NPE_ENOMEM, "out of memory");
                goto out_free;
            }
        } else if (n->op == NPE_OP_GROUP_NORM && (is_none(g, n->in[NPE_GN_WEIGHT]) ||
                                                  is_none(g, n->in[NPE_GN_BIAS]))) {
            /* ones and zeros for a missing weight or bias */
            int64_t c = g->values[n->in[0]].shape[1];
            float *aff = malloc((size_t)(2 * c + 1) * sizeof(float));
            if (!aff) {
                r = npe_error_set(err, NPE_ENOMEM, "out of memory");
                goto out_free;
            }
            for (int64_t ch = 0; ch < c; ch++) {
                aff[ch] = 1.0f;
                aff[c + ch] = 0.0f;
            }
            x->affine[i] = aff;
        }
        size_t need = tmp_need(g, n);
        if (need > tmp)
            tmp = need;
    }
    if (tmp) {
        x->tmp = malloc(tmp * sizeof(float));
        if (!x->tmp) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            goto out_free;
        }
        x->tmp_n = tmp;
    }
    x->scratch_threads = 0; /* sized on the next run */
    x->planned = 1;
    x->plan_gen++;
out_free:
    free(def);
    free(last);
    free(order);
    free(pl);
    if (r)
        unplan(x);
    return r;
}

/* The kernel's parameters of a conv node. extra[0], extra[1]: rows and columns of zeros the
 * input needs at its end first (padding='same' with an even receptive field pads unevenly, which
 * the kernel's symmetric padding cannot express); p then describes the padded input. */
static void conv_params(const npe_graph *g, const npe_node *n, npe_conv2d_params *p, int extra[2])
{
    const npe_value *xv = &g->values[n->in[0]], *w = &g->values[n->in[1]], *y = &g->values[n->out[0]];
    int64_t st[2], pd[2] = {0, 0}, dl[2], op[2] = {0, 0};
    const npe_value *pv = &g->values[n->in[NPE_CONV_PADDING]];
    pair(g, n->in[NPE_CONV_STRIDE], st);
    pair(g, n->in[NPE_CONV_DILATION], dl);
    extra[0] = extra[1] = 0;
    if (pv->type != NPE_VT_STR) {
        pair(g, n->in[NPE_CONV_PADDING], pd);
    } else if (strcmp(pv->s, "same") == 0) { /* as shape inference: half each side, odd one after */
        for (int i = 0; i < 2; i++) {
            int64_t total = dl[i] * (w->shape[2 + i] - 1);
            pd[i] = total / 2;
            extra[i] = (int)(total - 2 * pd[i]);
        }
    }
    int transposed = ival(g, n->in[NPE_CONV_TRANSPOSED]) != 0;
    if (transposed)
        pair(g, n->in[NPE_CONV_OUTPUT_PADDING], op);
    memset(p, 0, sizeof *p);
    p->n = (int)xv->shape[0];
    p->c_in = (int)xv->shape[1];
    p->h_in = (int)xv->shape[2] + extra[0];
    p->w_in = (int)xv->shape[3] + extra[1];
    p->c_out = (int)y->shape[1];
    p->h_out = (int)y->shape[2];
    p->w_out = (int)y->shape[3];
    p->kh = (int)w->shape[2];
    p->kw = (int)w->shape[3];
    p->sh = (int)st[0];
    p->sw = (int)st[1];
    p->ph = (int)pd[0];
    p->pw = (int)pd[1];
    p->dh = (int)dl[0];
    p->dw = (int)dl[1];
    p->groups = (int)ival(g, n->in[NPE_CONV_GROUPS]);
    p->transposed = transposed;
    p->oph = (int)op[0];
    p->opw = (int)op[1];
}

/* Bytes of a conv's unevenly padded input at the start of the scratch (64-byte aligned). */
static size_t padded_bytes(const npe_conv2d_params *p)
{
    size_t n = (size_t)p->n * (size_t)p->c_in * (size_t)p->h_in * (size_t)p->w_in * sizeof(float);
    return (n + 63) & ~(size_t)63;
}

static int size_scratch(npe_exec *x, int nthreads, npe_error *err)
{
    if (x->scratch_threads == nthreads && x->scratch)
        return 0;
    size_t need = 64;
    for (int i = 0; i < x->g->n_nodes; i++) {
        if (!x->run[i] || x->g->nodes[i].op != NPE_OP_CONV)
            continue;
        npe_conv2d_params p;
        int extra[2];
        conv_params(x->g, &x->g->nodes[i], &p, extra);
        size_t s = x->k->conv2d_scratch(&p, nthreads);
        if (extra[0] || extra[1])
            s += padded_bytes(&p);
        if (s > need)
            need = s;
    }
    need = (need + 63) & ~(size_t)63;
    if (need > x->scratch_size || !x->scratch) {
        if (x->bufs) {
            give_buf(&x->bufs->scratch, &x->bufs->scratch_bytes, x->scratch, x->scratch_size);
            x->scratch = take_buf(&x->bufs->scratch, &x->bufs->scratch_bytes, need, &need);
        } else {
            free(x->scratch);
            x->scratch = aligned_alloc(64, need);
        }
        if (!x->scratch) {
            x->scratch_size = 0;
            return npe_error_set(err, NPE_ENOMEM, "out of memory for %zu MiB of kernel scratch",
                                 need >> 20);
        }
        x->scratch_size = need;
    }
    x->scratch_threads = nthreads;
    return 0;
}

/* ---- Running one node ------------------------------------------------------------------------ */
static int run_binary(npe_exec *x, const npe_kexec *ex, const npe_node *n, int nidx,
                      npe_error *err)
{
    const npe_graph *g = x->g;
    const npe_value *y = &g->values[n->out[0]];
    int ia = 0, ib = 1;
    npe_binary_op op;
    float alpha = 1.0f;
    switch (n->op) {
    case NPE_OP_ADD: op = NPE_BINARY_ADD; alpha = (float)fval(g, n->in[2]); break;
    case NPE_OP_SUB: op = NPE_BINARY_SUB; alpha = (float)fval(g, n->in[2]); break;
    case NPE_OP_RSUB: op = NPE_BINARY_SUB; alpha = (float)fval(g, n->in[2]); ia = 1; ib = 0; break;
    case NPE_OP_MUL: op = NPE_BINARY_MUL; break;
    case NPE_OP_DIV: op = NPE_BINARY_DIV; break;
    case NPE_OP_POW: op = NPE_BINARY_POW; break;
    case NPE_OP_MAXIMUM: op = NPE_BINARY_MAX; break;
    case NPE_OP_MINIMUM: op = NPE_BINARY_MIN; break;
    default: return xerr(x, nidx, err, "not a binary op");
    }
    float sa, sb;
    const float *pa = NULL, *pb = NULL;
    int64_t shape[NPE_MAX_DIMS], as[NPE_MAX_DIMS], bs[NPE_MAX_DIMS];
    int nd = y->ndim;
    for (int d = 0; d < nd; d++)
        shape[d] = y->shape[d];
    if (nd == 0) {
        nd = 1;
        shape[0] = 1;
    }
    for (int k = 0; k < 2; k++) {
        int vid = n->in[k == 0 ? ia : ib];
        const npe_value *v = &g->values[vid];
        int64_t *st = k == 0 ? as : bs;
        if (v->type != NPE_VT_TENSOR) {
            float *slot = k == 0 ? &sa : &sb;
            *slot = (float)fval(g, vid);
            if (k == 0)
                pa = slot;
            else
                pb = slot;
            for (int d = 0; d < nd; d++)
                st[d] = 0;
            continue;
        }
        int64_t cs[NPE_MAX_DIMS];
        strides_of(v, cs);
        for (int d = 0; d < nd; d++) {
            int j = d - (nd - v->ndim);
            st[d] = (j < 0 || v->shape[j] == 1) ? 0 : cs[j];
        }
        if (k == 0)
            pa = vptr(x, vid);
        else
            pb = vptr(x, vid);
    }
    x->k->binary(ex, op, nd, shape, pa, as, pb, bs, vptr(x, n->out[0]), alpha);
    return 0;
}

/* The unary kernel op of node n and its alpha/beta; 0 when n is not a unary op. */
static int unary_of(const npe_graph *g, const npe_node *n, npe_unary_op *opp, float *ap, float *bp)
{
    npe_unary_op op = NPE_UNARY_RELU;
    float a = 0, b = 0;
    switch (n->op) {
    case NPE_OP_RELU: op = NPE_UNARY_RELU; break;
    case NPE_OP_HARDTANH:
        op = NPE_UNARY_HARDTANH;
        a = (float)fval(g, n->in[1]);
        b = (float)fval(g, n->in[2]);
        break;
    case NPE_OP_CLAMP:
        op = NPE_UNARY_HARDTANH;
        a = is_none(g, n->in[1]) ? -INFINITY : (float)fval(g, n->in[1]);
        b = is_none(g, n->in[2]) ? INFINITY : (float)fval(g, n->in[2]);
        break;
    case NPE_OP_LEAKY_RELU: op = NPE_UNARY_LEAKY_RELU; a = (float)fval(g, n->in[1]); break;
    case NPE_OP_SILU: op = NPE_UNARY_SILU; break;
    case NPE_OP_SIGMOID: op = NPE_UNARY_SIGMOID; break;
    case NPE_OP_HARDSWISH: op = NPE_UNARY_HARDSWISH; break;
    case NPE_OP_HARDSIGMOID: op = NPE_UNARY_HARDSIGMOID; break;
    case NPE_OP_TANH: op = NPE_UNARY_TANH; break;
    case NPE_OP_GELU: op = NPE_UNARY_GELU; break;
    case NPE_OP_ELU: op = NPE_UNARY_ELU; a = (float)fval(g, n->in[1]); break;
    case NPE_OP_NEG: op = NPE_UNARY_NEG; break;
    case NPE_OP_EXP: op = NPE_UNARY_EXP; break;
    case NPE_OP_SQRT: op = NPE_UNARY_SQRT; break;
    default: return 0;
    }
    *opp = op;
    *ap = a;
    *bp = b;
    return 1;
}

static int run_unary(npe_exec *x, const npe_kexec *ex, const npe_node *n)
{
    const npe_graph *g = x->g;
    npe_unary_op op = NPE_UNARY_RELU;
    float a = 0, b = 0;
    unary_of(g, n, &op, &a, &b);
    const npe_value *y = &g->values[n->out[0]];
    x->k->unary(ex, op, npe_value_numel(y), vptr(x, n->in[0]), vptr(x, n->out[0]), a, b);
    return 0;
}

/* y (contiguous, shape of out) = x viewed with strides xs from base. */
static void gather(npe_exec *x, const npe_kexec *ex, int ndim, const int64_t *shape,
                   const float *src, const int64_t *xs, float *dst)
{
    int64_t ys[NPE_MAX_DIMS + 2], acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        ys[d] = acc;
        acc *= shape[d];
    }
    if (acc == 0)
        return;
    if (ndim == 0) {
        int64_t one = 1, z = 0;
        x->k->copy_strided(ex, 1, &one, src, &z, dst, &z);
        return;
    }
    x->k->copy_strided(ex, ndim, shape, src, xs, dst, ys);
}

/* mean, sum, amax/amin, and the values of max/min with a dim: the reduced dims are taken as runs
 * of adjacent dims, one kernel call per run, intermediates in two halves of x->tmp. A minimum is
 * minus the maximum of the negated input (the reduce kernel has no MIN). */
/* gather for up to 2 * NPE_MAX_DIMS dims: the kernel takes NPE_KMAX_DIMS, so the leading dims
 * beyond that are walked here. */
static void gather_big(npe_exec *x, const npe_kexec *ex, int ndim, const int64_t *shape,
                       const float *src, const int64_t *xs, float *dst)
{
    if (ndim <= NPE_KMAX_DIMS) {
        gather(x, ex, ndim, shape, src, xs, dst);
        return;
    }
    int64_t inner = prod(shape, 1, ndim);
    for (int64_t i = 0; i < shape[0]; i++)
        gather_big(x, ex, ndim - 1, shape + 1, src + i * xs[0], xs + 1, dst + i * inner);
}

static void run_reduce(npe_exec *x, const npe_kexec *ex, const npe_node *n)
{
    const npe_graph *g = x->g;
    const npe_value *xv = &g->values[n->in[0]];
    int is_min = n->op == NPE_OP_AMIN || n->op == NPE_OP_MIN_DIM;
    unsigned mask = 0;
    if (n->op == NPE_OP_MAX_DIM || n->op == NPE_OP_MIN_DIM) {
        if (xv->ndim)
            mask = 1u << wrap(ival(g, n->in[1]), xv->ndim);
    } else if (is_none(g, n->in[1])) {
        mask = (1u << xv->ndim) - 1;
    } else {
        int64_t dims[NPE_MAX_DIMS];
        int nd = ints(g, n->in[1], dims, NPE_MAX_DIMS);
        for (int i = 0; i < nd; i++)
            mask |= 1u << wrap(dims[i], xv->ndim);
        if (!nd)
            mask = (1u << xv->ndim) - 1;
    }
    npe_reduce_op op = n->op == NPE_OP_MEAN ? NPE_REDUCE_MEAN
                       : n->op == NPE_OP_SUM ? NPE_REDUCE_SUM : NPE_REDUCE_MAX;
    int64_t cur[NPE_MAX_DIMS];
    int nd = xv->ndim;
    memcpy(cur, xv->shape, sizeof cur);
    int64_t numel = npe_value_numel(xv);
    const float *src = vptr(x, n->in[0]);
    float *dst_final = vptr(x, n->out[0]);
    float *halves = x->tmp;
    if (is_min) {
        x->k->unary(ex, NPE_UNARY_NEG, numel, src, x->tmp, 0, 0);
        src = x->tmp;
        halves = x->tmp + numel;
    }
    int buf = 0;
    if (!mask || nd == 0) { /* nothing reduced: a copy */
        memmove(dst_final, src, (size_t)numel * sizeof(float));
    }
    while (mask && nd > 0) {
        int e = nd - 1;
        while (!(mask & (1u << e)))
            e--;
        int s = e;
        while (s > 0 && (mask & (1u << (s - 1))))
            s--;
        int64_t outer = prod(cur, 0, s), r = prod(cur, s, e + 1), inner = prod(cur, e + 1, nd);
        for (int d = s; d <= e; d++)
            mask &= ~(1u << d);
        float *dst = mask ? halves + (size_t)buf * (size_t)numel : dst_final;
        x->k->reduce(ex, op, outer, r, inner, src, dst);
        src = dst;
        buf ^= 1;
        /* drop dims s..e */
        int w = s;
        for (int d = e + 1; d < nd; d++)
            cur[w++] = cur[d];
        nd = w;
    }
    if (is_min)
        x->k->unary(ex, NPE_UNARY_NEG, npe_value_numel(&g->values[n->out[0]]), dst_final,
                    dst_final, 0, 0);
}

/* Rows of x (R, L) to zero mean and unit variance (biased, as PyTorch's norms): mean, centre,
 * mean of squares, + eps, sqrt, divide. tmp: R*L + R floats. */
static void normalize_rows(npe_exec *x, const npe_kexec *ex, int64_t rows, int64_t len, float eps,
                           const float *src, float *dst, float *tmp)
{
    float *sq = tmp, *stat = tmp + rows * len;
    int64_t shape[2] = {rows, len}, as[2] = {len, 1}, bs[2] = {1, 0};
    x->k->reduce(ex, NPE_REDUCE_MEAN, rows, len, 1, src, stat);
    x->k->binary(ex, NPE_BINARY_SUB, 2, shape, src, as, stat, bs, dst, 1.0f);
    x->k->binary(ex, NPE_BINARY_MUL, 2, shape, dst, as, dst, as, sq, 1.0f);
    x->k->reduce(ex, NPE_REDUCE_MEAN, rows, len, 1, sq, stat);
    x->k->unary(ex, NPE_UNARY_MUL_SCALAR, rows, stat, stat, 1.0f, eps);
    x->k->unary(ex, NPE_UNARY_SQRT, rows, stat, stat, 0, 0);
    x->k->binary(ex, NPE_BINARY_DIV, 2, shape, dst, as, stat, bs, dst, 1.0f);
}

static void run_norm(npe_exec *x, const npe_kexec *ex, const npe_node *n, int nidx)
{
    const npe_graph *g = x->g;
    const npe_value *xv = &g->values[n->in[0]];
    int64_t numel = npe_value_numel(xv);
    if (!numel)
        return;
    float *y = vptr(x, n->out[0]);
    if (n->op == NPE_OP_GROUP_NORM) {
        /* x (N, C, S): rows are (sample, group) of C/G channels * S positions */
        int64_t groups = ival(g, n->in[NPE_GN_GROUPS]), c = xv->shape[1];
        int64_t rows = xv->shape[0] * groups;
        normalize_rows(x, ex, rows, numel / rows, (float)fval(g, n->in[NPE_GN_EPS]),
                       vptr(x, n->in[0]), y, x->tmp);
        const float *sc = is_none(g, n->in[NPE_GN_WEIGHT]) ? x->affine[nidx]
                                                           : vptr(x, n->in[NPE_GN_WEIGHT]);
        const float *sh = is_none(g, n->in[NPE_GN_BIAS]) ? x->affine[nidx] + c
                                                         : vptr(x, n->in[NPE_GN_BIAS]);
        x->k->channel_affine(ex, xv->shape[0], c, numel / (xv->shape[0] * c), y, sc, sh, y);
        return;
    }
    const npe_value *ns = &g->values[n->in[NPE_LN_SHAPE]];
    int64_t len = 1;
    if (ns->type == NPE_VT_LIST)
        for (int k = 0; k < ns->n_items; k++)
            len *= ival(g, ns->items[k]);
    else
        len = ival(g, n->in[NPE_LN_SHAPE]);
    int64_t rows = numel / len;
    normalize_rows(x, ex, rows, len, (float)fval(g, n->in[NPE_LN_EPS]), vptr(x, n->in[0]), y,
                   x->tmp);
    int64_t shape[2] = {rows, len}, ys[2] = {len, 1}, ws[2] = {0, 1};
    if (!is_none(g, n->in[NPE_LN_WEIGHT]))
        x->k->binary(ex, NPE_BINARY_MUL, 2, shape, y, ys, vptr(x, n->in[NPE_LN_WEIGHT]), ws, y, 1.0f);
    if (!is_none(g, n->in[NPE_LN_BIAS]))
        x->k->binary(ex, NPE_BINARY_ADD, 2, shape, y, ys, vptr(x, n->in[NPE_LN_BIAS]), ws, y, 1.0f);
}

/* matmul through the linear kernel (y = a @ w^T): the right operand is transposed into x->tmp
 * once, then one call per output batch (or one call for all when it has no batch dims). */
static void run_matmul(npe_exec *x, const npe_kexec *ex, const npe_node *n)
{
    const npe_graph *g = x->g;
    const npe_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]], *y = &g->values[n->out[0]];
    int64_t k = a->shape[a->ndim - 1], m = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
    int64_t nc = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    int ba = a->ndim > 2 ? a->ndim - 2 : 0, bb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = ba > bb ? ba : bb;
    if (!npe_value_numel(y))
        return;
    const float *pa = vptr(x, n->in[0]);
    float *py = vptr(x, n->out[0]);
    if (!k) { /* empty sums */
        memset(py, 0, (size_t)npe_value_numel(y) * sizeof(float));
        return;
    }
    int64_t bbatch = prod(b->shape, 0, bb);
    int64_t shape[3] = {bbatch, nc, k}, xs[3] = {k * nc, 1, nc}, ts[3] = {nc * k, k, 1};
    x->k->copy_strided(ex, 3, shape, vptr(x, n->in[1]), xs, x->tmp, ts);
    if (bb == 0) { /* every row of a against the same matrix */
        x->k->linear(ex, npe_value_numel(a) / k, k, nc, pa, x->tmp, NULL, py);
        return;
    }
    /* batch strides (in matrices) of a and b for each output batch dim, 0 where broadcast */
    int64_t as[NPE_MAX_DIMS], bs[NPE_MAX_DIMS], oshape[NPE_MAX_DIMS];
    int64_t sa = 1, sb = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int ja = d - (nb - ba), jb = d - (nb - bb);
        int64_t da = ja >= 0 ? a->shape[ja] : 1, db = jb >= 0 ? b->shape[jb] : 1;
        as[d] = da == 1 ? 0 : sa;
        bs[d] = db == 1 ? 0 : sb;
        oshape[d] = da == 1 ? db : da;
        sa *= da;
        sb *= db;
    }
    int64_t nbatch = prod(oshape, 0, nb);
    for (int64_t o = 0; o < nbatch; o++) {
        int64_t rem = o, ia = 0, ib = 0;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t c = rem % oshape[d];
            rem /= oshape[d];
            ia += c * as[d];
            ib += c * bs[d];
        }
        x->k->linear(ex, m, k, nc, pa + ia * m * k, x->tmp + ib * nc * k, NULL, py + o * m * nc);
    }
}

/* Reflect or replicate padding of the last two dims of (outer, h, w), as nine strided copies:
 * the middle, four borders and four corners, each reading x forwards, backwards (reflect) or
 * one row/column over and over (replicate). */
static void run_pad_mode(npe_exec *x, const npe_kexec *ex, int reflect, int64_t outer, int64_t h,
                         int64_t w, const int64_t p[4], const float *src, float *dst)
{
    int64_t oh = h + p[2] + p[3], ow = w + p[0] + p[1];
    /* per axis: three segments (before, inside, after): length, first source index, step */
    int64_t len[2][3], first[2][3], step[2][3];
    const int64_t size[2] = {h, w}, before[2] = {p[2], p[0]}, after[2] = {p[3], p[1]};
    for (int ax = 0; ax < 2; ax++) {
        len[ax][0] = before[ax];
        first[ax][0] = reflect ? before[ax] : 0;
        step[ax][0] = reflect ? -1 : 0;
        len[ax][1] = size[ax];
        first[ax][1] = 0;
        step[ax][1] = 1;
        len[ax][2] = after[ax];
        first[ax][2] = reflect ? size[ax] - 2 : size[ax] - 1;
        step[ax][2] = reflect ? -1 : 0;
    }
    int64_t ys[3] = {oh * ow, ow, 1};
    int64_t y0 = 0;
    for (int r = 0; r < 3; r++) {
        int64_t x0 = 0;
        for (int c = 0; c < 3; c++) {
            if (len[0][r] && len[1][c] && outer) {
                int64_t shape[3] = {outer, len[0][r], len[1][c]};
                int64_t xs[3] = {h * w, step[0][r] * w, step[1][c]};
                x->k->copy_strided(ex, 3, shape, src + first[0][r] * w + first[1][c], xs,
                                   dst + y0 * ow + x0, ys);
            }
            x0 += len[1][c];
        }
        y0 += len[0][r];
    }
}

static int run_node(npe_exec *x, const npe_kexec *ex, int i, npe_error *err)
{
    const npe_graph *g = x->g;
    const npe_node *n = &g->nodes[i];
    const npe_op_schema *s = npe_op_schema_of(n->op);
    const npe_value *y = &g->values[n->out[0]];
    const npe_value *xv = &g->values[n->in[0]];
    if (s->flags & NPE_OPF_ALIAS) {
        if (x->root[n->out[0]] != x->root[n->in[0]]) { /* input not a tensor buffer */
            int64_t numel = npe_value_numel(y);
            memcpy(vptr(x, n->out[0]), vptr(x, n->in[0]), (size_t)numel * sizeof(float));
        }
        return 0;
    }
    switch (n->op) {
    case NPE_OP_CONV: {
        npe_conv2d_params p;
        int extra[2];
        conv_params(g, n, &p, extra);
        const float *b = is_none(g, n->in[NPE_CONV_BIAS]) ? NULL : vptr(x, n->in[NPE_CONV_BIAS]);
        const float *in = vptr(x, n->in[0]);
        npe_kexec cx = *ex;
        if (extra[0] || extra[1]) { /* zeros after the end first, then the symmetric kernel */
            size_t pb = padded_bytes(&p);
            float *padded = ex->scratch;
            x->k->pad2d(ex, (int64_t)p.n * p.c_in, p.h_in - extra[0], p.w_in - extra[1], 0,
                        extra[1], 0, extra[0], 0.0f, in, padded);
            cx.scratch = (char *)ex->scratch + pb;
            cx.scratch_size = ex->scratch_size - pb;
            in = padded;
        }
        npe_conv_epilogue ep = {0};
        if (x->fuse_bn[i] >= 0) {
            ep.scale = x->affine[x->fuse_bn[i]];
            ep.shift = ep.scale + p.c_out;
        }
        if (x->fuse_act[i] >= 0) {
            npe_unary_op op = NPE_UNARY_RELU;
            unary_of(g, &g->nodes[x->fuse_act[i]], &op, &ep.alpha, &ep.beta);
            ep.act = (int)op + 1;
        }
        const float *w = vptr(x, n->in[1]);
        const void *prep = conv_prep(x, ex, i, n->in[1], &p, w);
        x->k->conv2d_ep(&cx, &p, in, w, prep, b, ep.scale || ep.act ? &ep : NULL,
                        vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_LINEAR: {
        const npe_value *w = &g->values[n->in[1]];
        int64_t kdim = w->shape[1], ndim_out = w->shape[0];
        int64_t m = kdim ? npe_value_numel(xv) / kdim : 0;
        const float *b = is_none(g, n->in[2]) ? NULL : vptr(x, n->in[2]);
        x->k->linear(ex, m, kdim, ndim_out, vptr(x, n->in[0]), vptr(x, n->in[1]), b,
                     vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_BATCH_NORM: {
        int64_t c = xv->shape[1];
        x->k->channel_affine(ex, xv->shape[0], c, prod(xv->shape, 2, xv->ndim), vptr(x, n->in[0]),
                             x->affine[i], x->affine[i] + c, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_ADD:
    case NPE_OP_SUB:
    case NPE_OP_RSUB:
    case NPE_OP_MUL:
    case NPE_OP_DIV:
    case NPE_OP_POW:
    case NPE_OP_MAXIMUM:
    case NPE_OP_MINIMUM:
        return run_binary(x, ex, n, i, err);
    case NPE_OP_MAX_POOL2D:
    case NPE_OP_AVG_POOL2D: {
        int avg = n->op == NPE_OP_AVG_POOL2D;
        npe_pool2d_params p;
        memset(&p, 0, sizeof p);
        int64_t k[2], st[2], pd[2], dl[2] = {1, 1};
        pair(g, n->in[1], k);
        const npe_value *sv = &g->values[n->in[2]];
        if (sv->type == NPE_VT_LIST && sv->n_items == 0) {
            st[0] = k[0];
            st[1] = k[1];
        } else {
            pair(g, n->in[2], st);
        }
        pair(g, n->in[3], pd);
        if (!avg)
            pair(g, n->in[4], dl);
        p.n = (int)xv->shape[0];
        p.c = (int)xv->shape[1];
        p.h_in = (int)xv->shape[2];
        p.w_in = (int)xv->shape[3];
        p.h_out = (int)y->shape[2];
        p.w_out = (int)y->shape[3];
        p.kh = (int)k[0];
        p.kw = (int)k[1];
        p.sh = (int)st[0];
        p.sw = (int)st[1];
        p.ph = (int)pd[0];
        p.pw = (int)pd[1];
        p.dh = (int)dl[0];
        p.dw = (int)dl[1];
        p.ceil_mode = (int)ival(g, n->in[avg ? 4 : 5]);
        if (avg) {
            p.count_include_pad = (int)ival(g, n->in[5]);
            p.divisor_override = is_none(g, n->in[6]) ? 0 : (int)ival(g, n->in[6]);
            x->k->avg_pool2d(ex, &p, vptr(x, n->in[0]), vptr(x, n->out[0]));
        } else {
            x->k->max_pool2d(ex, &p, vptr(x, n->in[0]), vptr(x, n->out[0]));
        }
        return 0;
    }
    case NPE_OP_ADAPTIVE_AVG_POOL2D:
    case NPE_OP_ADAPTIVE_MAX_POOL2D: {
        void (*fn)(const npe_kexec *, int, int, int, int, int, int, const float *, float *) =
            n->op == NPE_OP_ADAPTIVE_AVG_POOL2D ? x->k->adaptive_avg_pool2d
                                                : x->k->adaptive_max_pool2d;
        fn(ex, (int)xv->shape[0], (int)xv->shape[1], (int)xv->shape[2], (int)xv->shape[3],
           (int)y->shape[2], (int)y->shape[3], vptr(x, n->in[0]), vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_UPSAMPLE_NEAREST2D:
    case NPE_OP_UPSAMPLE_BILINEAR2D: {
        int bil = n->op == NPE_OP_UPSAMPLE_BILINEAR2D;
        int sf = bil ? 3 : 2;
        float sc[2];
        const npe_value *sv = &g->values[n->in[sf]];
        for (int d = 0; d < 2; d++) {
            if (is_none(g, n->in[1]) && sv->type == NPE_VT_LIST && sv->n_items >= 1)
                sc[d] = (float)(1.0 / fval(g, sv->items[sv->n_items > 1 ? d : 0]));
            else
                sc[d] = (float)xv->shape[2 + d] / (float)y->shape[2 + d];
        }
        if (bil)
            x->k->upsample_bilinear2d(ex, (int)xv->shape[0], (int)xv->shape[1], (int)xv->shape[2],
                                      (int)xv->shape[3], (int)y->shape[2], (int)y->shape[3],
                                      (int)ival(g, n->in[2]), sc[0], sc[1], vptr(x, n->in[0]),
                                      vptr(x, n->out[0]));
        else
            x->k->upsample_nearest2d(ex, (int)xv->shape[0], (int)xv->shape[1], (int)xv->shape[2],
                                     (int)xv->shape[3], (int)y->shape[2], (int)y->shape[3], sc[0],
                                     sc[1], vptr(x, n->in[0]), vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_PIXEL_SHUFFLE: {
        int64_t f = ival(g, n->in[1]);
        int64_t N = xv->shape[0], C = y->shape[1], H = xv->shape[2], W = xv->shape[3];
        int64_t shape[6] = {N, C, H, f, W, f};
        int64_t xs[6] = {C * f * f * H * W, f * f * H * W, W, f * H * W, 1, H * W};
        gather(x, ex, 6, shape, vptr(x, n->in[0]), xs, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_PAD: {
        int64_t p[16];
        int np = ints(g, n->in[1], p, 16);
        for (int k = 4; k < np; k++)
            if (p[k])
                return xerr(x, i, err, "padding of more than the last two dims is not supported");
        int64_t w = xv->ndim >= 1 ? xv->shape[xv->ndim - 1] : 1;
        int64_t h = xv->ndim >= 2 ? xv->shape[xv->ndim - 2] : 1;
        int64_t outer = xv->ndim >= 2 ? prod(xv->shape, 0, xv->ndim - 2) : 1;
        const npe_value *mode = &g->values[n->in[2]];
        if (mode->type == NPE_VT_STR && strcmp(mode->s, "constant") != 0) {
            int64_t p4[4] = {p[0], np > 1 ? p[1] : 0, np > 2 ? p[2] : 0, np > 3 ? p[3] : 0};
            run_pad_mode(x, ex, strcmp(mode->s, "reflect") == 0, outer, h, w, p4,
                         vptr(x, n->in[0]), vptr(x, n->out[0]));
            return 0;
        }
        float value = is_none(g, n->in[3]) ? 0.0f : (float)fval(g, n->in[3]);
        x->k->pad2d(ex, outer, (int)h, (int)w, (int)p[0], (int)(np > 1 ? p[1] : 0),
                    (int)(np > 2 ? p[2] : 0), (int)(np > 3 ? p[3] : 0), value, vptr(x, n->in[0]),
                    vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_CAT:
    case NPE_OP_STACK: {
        int nt = n->n_in - 1, stack = n->op == NPE_OP_STACK;
        int d = wrap(ival(g, n->in[nt]), y->ndim);
        int64_t ys[NPE_MAX_DIMS];
        strides_of(y, ys);
        float *dst = vptr(x, n->out[0]);
        int64_t at = 0;
        for (int t = 0; t < nt; t++) {
            const npe_value *v = &g->values[n->in[t]];
            int64_t xs[NPE_MAX_DIMS], oys[NPE_MAX_DIMS];
            strides_of(v, xs);
            for (int k = 0, j = 0; k < y->ndim; k++)
                if (!stack || k != d)
                    oys[j++] = ys[k];
            if (npe_value_numel(v) > 0) {
                if (v->ndim == 0) {
                    dst[at * ys[d]] = vptr(x, n->in[t])[0];
                } else {
                    x->k->copy_strided(ex, v->ndim, v->shape, vptr(x, n->in[t]), xs,
                                       dst + at * ys[d], oys);
                }
            }
            at += stack ? 1 : v->shape[d];
        }
        return 0;
    }
    case NPE_OP_CHUNK:
    case NPE_OP_SPLIT:
    case NPE_OP_SPLIT_WITH_SIZES:
    case NPE_OP_UNBIND: {
        int unbind = n->op == NPE_OP_UNBIND;
        int d = wrap(ival(g, n->in[unbind ? 1 : 2]), xv->ndim);
        int64_t xs[NPE_MAX_DIMS];
        strides_of(xv, xs);
        int64_t at = 0;
        for (int k = 0; k < n->n_out; k++) {
            const npe_value *o = &g->values[n->out[k]];
            int64_t shape[NPE_MAX_DIMS];
            memcpy(shape, xv->shape, sizeof shape);
            shape[d] = unbind ? 1 : o->shape[d];
            gather(x, ex, xv->ndim, shape, vptr(x, n->in[0]) + at * xs[d], xs, vptr(x, n->out[k]));
            at += shape[d];
        }
        return 0;
    }
    case NPE_OP_SLICE: {
        int d = wrap(ival(g, n->in[1]), xv->ndim);
        int64_t size = xv->shape[d];
        int64_t start = is_none(g, n->in[2]) ? 0 : ival(g, n->in[2]);
        int64_t step = ival(g, n->in[4]);
        if (start < 0)
            start = start < -size ? 0 : start + size;
        if (start > size)
            start = size;
        int64_t xs[NPE_MAX_DIMS];
        strides_of(xv, xs);
        const float *src = vptr(x, n->in[0]) + start * xs[d];
        xs[d] *= step;
        gather(x, ex, y->ndim, y->shape, src, xs, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_SELECT: {
        int d = wrap(ival(g, n->in[1]), xv->ndim);
        int64_t idx = ival(g, n->in[2]);
        if (idx < 0)
            idx += xv->shape[d];
        int64_t xs[NPE_MAX_DIMS], ss[NPE_MAX_DIMS];
        strides_of(xv, xs);
        for (int k = 0, j = 0; k < xv->ndim; k++)
            if (k != d)
                ss[j++] = xs[k];
        gather(x, ex, y->ndim, y->shape, vptr(x, n->in[0]) + idx * xs[d], ss, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_PERMUTE:
    case NPE_OP_TRANSPOSE: {
        int64_t xs[NPE_MAX_DIMS], ps[NPE_MAX_DIMS];
        strides_of(xv, xs);
        if (n->op == NPE_OP_PERMUTE) {
            int64_t dims[NPE_MAX_DIMS];
            int nd = ints(g, n->in[1], dims, NPE_MAX_DIMS);
            for (int k = 0; k < nd; k++)
                ps[k] = xs[wrap(dims[k], xv->ndim)];
        } else {
            memcpy(ps, xs, sizeof ps);
            if (xv->ndim) {
                int a = wrap(ival(g, n->in[1]), xv->ndim), b = wrap(ival(g, n->in[2]), xv->ndim);
                ps[a] = xs[b];
                ps[b] = xs[a];
            }
        }
        gather(x, ex, y->ndim, y->shape, vptr(x, n->in[0]), ps, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_EXPAND:
    case NPE_OP_EXPAND_AS: {
        int64_t xs[NPE_MAX_DIMS], es[NPE_MAX_DIMS];
        float number = (float)fval(g, n->in[0]);
        const float *src = &number; /* expand_as of a number: fill_ */
        int xnd = 0;
        if (xv->type == NPE_VT_TENSOR) {
            strides_of(xv, xs);
            src = vptr(x, n->in[0]);
            xnd = xv->ndim;
        }
        for (int d = 0; d < y->ndim; d++) {
            int j = d - (y->ndim - xnd);
            es[d] = (j < 0 || xv->shape[j] == 1) ? 0 : xs[j];
        }
        gather(x, ex, y->ndim, y->shape, src, es, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_REPEAT: {
        /* output dim i seen as (repeats[i], size[i]): the repeat dim reads with stride 0 */
        int64_t rep[NPE_MAX_DIMS], xs[NPE_MAX_DIMS], shape[2 * NPE_MAX_DIMS], ss[2 * NPE_MAX_DIMS];
        int nr = ints(g, n->in[1], rep, NPE_MAX_DIMS), nd = 0;
        strides_of(xv, xs);
        for (int d = 0; d < nr; d++) {
            int k = d - (nr - xv->ndim);
            if (rep[d] != 1) {
                shape[nd] = rep[d];
                ss[nd++] = 0;
            }
            shape[nd] = k >= 0 ? xv->shape[k] : 1;
            ss[nd++] = k >= 0 ? xs[k] : 0;
        }
        if (npe_value_numel(y))
            gather_big(x, ex, nd, shape, vptr(x, n->in[0]), ss, vptr(x, n->out[0]));
        return 0;
    }
    case NPE_OP_MEAN:
    case NPE_OP_SUM:
    case NPE_OP_AMAX:
    case NPE_OP_AMIN:
    case NPE_OP_MAX_DIM:
    case NPE_OP_MIN_DIM:
        run_reduce(x, ex, n);
        return 0;
    case NPE_OP_GROUP_NORM:
    case NPE_OP_LAYER_NORM:
        run_norm(x, ex, n, i);
        return 0;
    case NPE_OP_MATMUL:
        run_matmul(x, ex, n);
        return 0;
    case NPE_OP_SLICE_SCATTER:
    case NPE_OP_SELECT_SCATTER: {
        /* a copy of self (unless planned in place), then src into the part it replaces */
        const npe_value *src = &g->values[n->in[1]];
        float *dst = vptr(x, n->out[0]);
        if (dst != vptr(x, n->in[0]))
            memcpy(dst, vptr(x, n->in[0]), (size_t)npe_value_numel(y) * sizeof(float));
        int d = wrap(ival(g, n->in[2]), xv->ndim);
        int64_t ys[NPE_MAX_DIMS], rs[NPE_MAX_DIMS], ss[NPE_MAX_DIMS];
        strides_of(xv, ys);
        strides_of(src, ss);
        int64_t size = xv->shape[d], at;
        if (n->op == NPE_OP_SLICE_SCATTER) {
            at = is_none(g, n->in[3]) ? 0 : ival(g, n->in[3]);
            if (at < 0)
                at = at < -size ? 0 : at + size;
            if (at > size)
                at = size;
            memcpy(rs, ys, sizeof rs);
            rs[d] *= ival(g, n->in[5]);
        } else {
            at = ival(g, n->in[3]);
            if (at < 0)
                at += size;
            for (int k = 0, j = 0; k < xv->ndim; k++)
                if (k != d)
                    rs[j++] = ys[k];
        }
        if (!npe_value_numel(src))
            return 0;
        if (src->ndim == 0)
            dst[at * ys[d]] = vptr(x, n->in[1])[0];
        else
            x->k->copy_strided(ex, src->ndim, src->shape, vptr(x, n->in[1]), ss, dst + at * ys[d],
                               rs);
        return 0;
    }
    case NPE_OP_SOFTMAX:
    case NPE_OP_LOG_SOFTMAX: {
        int d = wrap(ival(g, n->in[1]), xv->ndim);
        int64_t outer = prod(xv->shape, 0, d), dd = xv->ndim ? xv->shape[d] : 1;
        int64_t inner = prod(xv->shape, d + 1, xv->ndim);
        x->k->softmax(ex, n->op == NPE_OP_LOG_SOFTMAX, outer, dd, inner, vptr(x, n->in[0]),
                      vptr(x, n->out[0]));
        return 0;
    }
    default:
        if (s->flags & NPE_OPF_ELEMENTWISE)
            return run_unary(x, ex, n);
        return xerr(x, i, err, "the executor cannot run op %s on activations", s->name);
    }
}

/* ---- Public ---------------------------------------------------------------------------------- */
int npe_exec_create(npe_graph *g, const npe_kernels *k, unsigned flags, npe_exec **out,
                    npe_error *err)
{
    *out = NULL;
    npe_exec *x = calloc(1, sizeof *x);
    if (!x)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    x->g = g;
    x->k = k;
    x->flags = flags;
    x->own_max = SIZE_MAX;
    *out = x;
    return 0;
}

void npe_exec_destroy(npe_exec *x)
{
    if (!x)
        return;
    unplan(x);
    drop_preps(x);
    free(x->shapes);
    if (x->bufs)
        give_buf(&x->bufs->scratch, &x->bufs->scratch_bytes, x->scratch, x->scratch_size);
    else
        free(x->scratch);
    free(x);
}

void npe_exec_invalidate(npe_exec *x)
{
    if (x) {
        unplan(x);
        drop_preps(x); /* the weights may have changed in place */
        x->n_in = -1;
    }
}

size_t npe_exec_arena_bytes(const npe_exec *x)
{
    return x->planned ? x->arena_n * sizeof(float) : 0;
}

const float *npe_exec_value(const npe_exec *x, int vid)
{
    if (!x->planned || vid < 0 || vid >= x->g->n_values ||
        x->g->values[vid].type != NPE_VT_TENSOR || x->gone[vid])
        return NULL;
    int r = x->root[vid];
    if (x->off[r] < 0 && !x->g->values[r].data)
        return NULL;
    return vptr(x, vid);
}

static int shapes_match(const npe_exec *x, const npe_array *inputs, int n)
{
    if (!x->planned || x->n_in != n || !x->shapes)
        return 0;
    for (int i = 0; i < n; i++) {
        if (x->shapes[i].ndim != inputs[i].ndim)
            return 0;
        for (int d = 0; d < inputs[i].ndim; d++)
            if (x->shapes[i].d[d] != inputs[i].shape[d])
                return 0;
    }
    return 1;
}

int npe_exec_run(npe_exec *x, const npe_kexec *kx, const npe_array *inputs, int n_inputs,
                 npe_array *outputs, int n_outputs, npe_error *err)
{
    npe_graph *g = x->g;
    const char *o = g->origin ? g->origin : "model";
    if (n_inputs < 0 || n_inputs != g->n_inputs)
        return npe_error_set(err, NPE_EINVAL, "%s takes %d input%s, %d given", o, g->n_inputs,
                             g->n_inputs == 1 ? "" : "s", n_inputs);
    if (n_outputs < 0 || n_outputs > g->n_outputs)
        return npe_error_set(err, NPE_EINVAL, "%s has %d outputs, %d asked for", o, g->n_outputs,
                             n_outputs);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i].dtype != NPE_DTYPE_F32 && inputs[i].dtype != NPE_DTYPE_F64)
            return npe_error_set(err, NPE_EINVAL, "%s: input %d is %s; float32 or float64 needed",
                                 o, i, npe_dtype_name(inputs[i].dtype));
    int r;
    if (!shapes_match(x, inputs, n_inputs)) {
        npe_tshape *sh = calloc((size_t)(n_inputs ? n_inputs : 1), sizeof *sh);
        if (!sh)
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        for (int i = 0; i < n_inputs; i++) {
            sh[i].ndim = inputs[i].ndim;
            for (int d = 0; d < inputs[i].ndim; d++)
                sh[i].d[d] = inputs[i].shape[d];
        }
        free(x->shapes);
        x->shapes = sh;
        x->n_in = n_inputs;
        unplan(x);
        if ((r = npe_graph_infer(g, sh, n_inputs, err)) || (r = plan(x, err)))
            return r;
    }
    npe_kexec ex = {0};
    if (kx)
        ex = *kx;
    else
        ex.nthreads = 1;
    if (ex.nthreads < 1)
        ex.nthreads = 1;
    if ((r = size_scratch(x, ex.nthreads, err)))
        return r;
    ex.scratch = x->scratch;
    ex.scratch_size = x->scratch_size;
    for (int i = 0; i < n_inputs; i++) {
        float *dst = vptr(x, g->inputs[i]);
        int64_t numel = npe_array_numel(&inputs[i]);
        if (inputs[i].dtype == NPE_DTYPE_F32) {
            memcpy(dst, inputs[i].data, (size_t)numel * sizeof(float));
        } else {
            const double *s = inputs[i].data;
            for (int64_t k = 0; k < numel; k++)
                dst[k] = (float)s[k];
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (!x->run[i])
            continue;
        if ((r = run_node(x, &ex, i, err)))
            return r;
    }
    for (int k = 0; k < n_outputs; k++) {
        const npe_value *v = &g->values[g->outputs[k]];
        npe_array *a = &outputs[k];
        memset(a, 0, sizeof *a);
        a->dtype = NPE_DTYPE_F32;
        a->ndim = v->ndim;
        for (int d = 0; d < v->ndim; d++)
            a->shape[d] = v->shape[d];
        int64_t numel = npe_value_numel(v);
        a->nbytes = (size_t)numel * sizeof(float);
        a->data = malloc(a->nbytes ? a->nbytes : 1);
        if (!a->data) {
            for (int j = 0; j <= k; j++)
                npe_array_free(&outputs[j]);
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        }
        const float *src = npe_exec_value(x, g->outputs[k]);
        if (src && a->nbytes)
            memcpy(a->data, src, a->nbytes);
    }
    return 0;
}

int npe_eval_torchscript(const char *model_path, const char *forward_name,
                         const npe_array *inputs, int n_inputs, npe_array **outputs,
                         int *n_outputs, int nthreads, npe_error *err)
{
    *outputs = NULL;
    *n_outputs = 0;
    npe_ts_options opt = {0};
    opt.forward_name = forward_name;
    npe_graph *g = NULL;
    int r = npe_ts_import(model_path, &opt, &g, err);
    if (r)
        return r;
    npe_kernels k;
    npe_kernels_init_cpu(&k, NPE_KCPU_ALL);
    npe_kpool *pool = nthreads == 1 ? NULL : npe_kpool_create(nthreads);
    npe_exec *x = NULL;
    npe_array *outs = calloc((size_t)(g->n_outputs ? g->n_outputs : 1), sizeof *outs);
    if (!outs) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free_graph;
    }
    if ((r = npe_exec_create(g, &k, 0, &x, err)))
        goto out_free_graph;
    npe_kexec ex;
    npe_kexec_init(&ex, pool, NULL, 0);
    if ((r = npe_exec_run(x, &ex, inputs, n_inputs, outs, g->n_outputs, err)))
        goto out_free_graph;
    *outputs = outs;
    *n_outputs = g->n_outputs;
    outs = NULL;
out_free_graph:
    free(outs);
    npe_exec_destroy(x);
    npe_kpool_destroy(pool);
    npe_graph_destroy(g);
    return r;
}
