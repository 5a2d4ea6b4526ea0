/* Sensitivity analysis: baseline pass with a batch cache, (group, sparsity) evaluations handed to
 * worker threads in serial order, durable recording, then the per-group choice.
 *
 * Reuse of computation: pruning a group changes only the nodes downstream of its producers (the
 * region); everything upstream computes what the original model computes. So, group by group,
 * the original model's activations that the region reads (its frontier) are computed once per
 * batch and kept within the cache budget, every sparsity of the group then runs only the region
 * of its pruned clone (physically smaller tensors) on them, and the next group's frontier is
 * computed from the one held where it lies downstream of it. Batches whose frontier does not fit
 * have it computed again for each evaluation. The region runs the same kernels on the same bits
 * as the whole pruned model would, so the values are identical (NPE_SENS_REUSE=0 or
 * npe_sens_options.reuse = 0 runs whole models, the reference). */
#define _POSIX_C_SOURCE 200809L
#include "sens.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kernels/cpu/threadpool.h"
#include "exec.h"
#include "subgraph.h"

static const double default_sparsities[] = {0.1, 0.2, 0.3, 0.4, 0.5};

void npe_sens_options_init(npe_sens_options *o)
{
    memset(o, 0, sizeof(*o));
    o->batch_size = 32;
    npe_metric_opts_init(&o->metric, NPE_METRIC_TOP1);
    o->channel_alignment = 2;
    o->early_stop_mode = NPE_EARLY_STOP_NONE;
    o->ori_metric = NAN;
    o->workers = 1;
    o->cache_bytes = (size_t)1 << 30;
    const char *e = getenv("NPE_SENS_REUSE");
    o->reuse = !(e && strcmp(e, "0") == 0);
}

/* ---- Shared state ---------------------------------------------------------------------------- */
typedef struct sbatch {
    int64_t start, n;
    int cached;      /* in, tgt (and ref for fidelity) are held for every evaluation */
    npe_array in, tgt;
    npe_array *ref;  /* n_out arrays (fidelity, cached) */
} sbatch;

/* Where a value the region run needs comes from (gpart.rin, gpart.osrc). */
enum { SRC_INPUT = -(1 << 20) }; /* the batch's input; >= 0: a need slot or region output */

/* The current group's parts of the model (reuse). Value and node ids are the base graph's: a
 * pruned clone has the same. */
typedef struct gpart {
    int ok;                   /* 0: the group's pairs run whole models */
    unsigned char *region;    /* nodes downstream of the group's producers */
    unsigned char *run;       /* the region less its slice nodes: what a pair runs */
    npe_subgraph_plan rp;     /* run (+ static nodes it reads), its frontier */
    int *rout, n_rout;        /* region graph outputs: the model outputs it makes, the metric's
                               * first (n_rout_metric of them), then the others */
    int n_rout_metric;
    int *osrc;                /* metric output i: index into rout, SRC_INPUT, or -1 - need slot */
    int *rin;                 /* region input j (rp.inputs[j]): need slot or SRC_INPUT */
    const npe_chanmap **rsl;  /* region input j: NULL, or the channel map of the original value
                               * whose kept channels the pruned model has there (a slice) */
    int *need, n_need;        /* original model's activations the region run takes per batch */
    unsigned char *is_need;   /* per value */
    npe_graph *pre;           /* the unchanged part making need[] from the input; template */
    npe_graph *inc;           /* making inc_out[] from the previous group's need[]; or NULL */
    int *inc_in, n_inc_in;    /* its inputs (value ids) */
    int *inc_out, n_inc_out;  /* its first outputs: need values the previous group lacked */
} gpart;

typedef struct shared {
    const npe_sens_options *o;
    const npe_graph *base;  /* clone of the caller's graph, inferred by npe_groups_find: read only */
    const npe_groups *G;
    npe_kernels k;
    npe_sens_table *t;
    int *tg2G;              /* table group -> G group */
    int fidelity;
    int n_out;              /* outputs a run returns: all for fidelity, else the first */
    sbatch *batches;
    int64_t nb;
    int all_cached;
    /* reuse */
    int reuse;
    gpart part, old;          /* the current group's and the previous one's (old.need held) */
    npe_array **held;         /* per value: NULL or nb arrays (data NULL: not held) */
    int *hv, n_hv;            /* the values with arrays in held */
    unsigned char *bheld;     /* per batch: every part.need value is held */
    size_t fbudget, fused;    /* bytes for held activations, and held now */
    size_t fpeak;             /* most held at once */
    int slices;               /* pairs take the group's slice nodes from the original model */
    npe_prep_cache *pcache;   /* prepared weights of the base graph, shared by every executor */
    size_t pbudget;           /* bytes of the budget it and the variants' own ones may hold */
    int nworkers;
    size_t region_evals;
    int64_t *numel_at[2];     /* per value: elements at the full batch size and at the last one */
    /* work */
    pthread_mutex_t mu;
    size_t *item_g, *item_i;
    unsigned char *taken;
    size_t n_items, cursor, item_end;
    int stop, canceled, rc;
    npe_error err;
    size_t evaluated;
    double t0;
} shared;

typedef struct worker {
    shared *sh;
    npe_kpool *pool;
    npe_kexec kx;
    npe_exec_bufs bufs;     /* arena and scratch passed from one variant's executor to the next
                             * within a group */
    npe_graph *ref_graph;   /* the original model: baseline, references not cached */
    npe_exec *ref_exec;
    npe_metric *metric;
    npe_graph *pre_graph;   /* workers > 0: clone of part.pre (worker 0 runs part.pre itself) */
    npe_exec *pre_exec;     /* for batches whose frontier is not held */
    size_t own_peak;        /* most bytes a variant's executor held in its own preparations */
    pthread_t th;
    int started;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void slog(const npe_sens_options *o, npe_log_level lv, const char *fmt, ...) NPE_PRINTF(3, 4);
static void slog(const npe_sens_options *o, npe_log_level lv, const char *fmt, ...)
{
    if (!o->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o->log(o->log_user, lv, msg);
}

static void free_arrays(npe_array *a, int n)
{
    if (!a)
        return;
    for (int i = 0; i < n; i++)
        npe_array_free(&a[i]);
}

/* An executor for g (a clone sharing the base graph's tensors) taking the preparations of the
 * weights it borrows from the shared cache. */
static int exec_create(shared *sh, npe_graph *g, npe_exec **x, npe_error *err)
{
    int r = npe_exec_create(g, &sh->k, 0, x, err);
    if (!r) {
        /* the pruned weights' own preparations: in what the shared ones leave of the quarter */
        size_t used = npe_prep_cache_bytes(sh->pcache);
        npe_exec_use_prep_cache(*x, sh->pcache, 0);
        npe_exec_limit_own_preps(*x, used < sh->pbudget ? (sh->pbudget - used) / sh->nworkers : 0);
    }
    return r;
}

/* Destroy a variant's executor, noting the most its own preparations took. */
static void exec_done(worker *w, npe_exec *x)
{
    if (x && npe_exec_own_prep_bytes(x) > w->own_peak)
        w->own_peak = npe_exec_own_prep_bytes(x);
    npe_exec_destroy(x);
}

/* ---- Workers' resources ---------------------------------------------------------------------- */
static int worker_init(worker *w, shared *sh, int nthreads, int need_ref, npe_error *err)
{
    memset(w, 0, sizeof(*w));
    w->sh = sh;
    if (nthreads > 1)
        w->pool = npe_kpool_create(nthreads); /* NULL: serial, still correct */
    npe_kexec_init(&w->kx, w->pool, NULL, 0);
    int r = npe_metric_create(&sh->o->metric, &w->metric, err);
    if (r)
        return r;
    if (need_ref) {
        if ((r = npe_graph_clone_shared(sh->base, &w->ref_graph)))
            return npe_error_set(err, r, "out of memory cloning the model");
        if ((r = exec_create(sh, w->ref_graph, &w->ref_exec, err)))
            return r;
    }
    return 0;
}

/* A group's parts go, and the buffers its variants passed on: the next group's cache fill should
 * not find them still resident. */
static void worker_drop_part(worker *w)
{
    npe_exec_bufs_free(&w->bufs);
    npe_exec_destroy(w->pre_exec);
    npe_graph_destroy(w->pre_graph);
    w->pre_exec = NULL;
    w->pre_graph = NULL;
}

static void worker_fini(worker *w)
{
    worker_drop_part(w);
    npe_exec_destroy(w->ref_exec);
    npe_graph_destroy(w->ref_graph);
    npe_metric_destroy(w->metric);
    npe_kpool_destroy(w->pool);
    npe_exec_bufs_free(&w->bufs);
    memset(w, 0, sizeof(*w));
}

/* Inputs, targets and references of batch b: the cached ones, or read (and computed) now into
 * the caller's arrays (*owned = 1: free them). */
static int get_batch(worker *w, int64_t b, const npe_array **in, const npe_array **tgt,
                     const npe_array **ref, npe_array *own_in, npe_array *own_tgt,
                     npe_array *own_ref, npe_error *err)
{
    shared *sh = w->sh;
    sbatch *B = &sh->batches[b];
    if (B->cached) {
        *in = &B->in;
        *tgt = &B->tgt;
        *ref = B->ref;
        return 0;
    }
    int r = npe_dataset_read(sh->o->data, B->start, B->n, own_in, own_tgt, err);
    if (r)
        return r;
    *in = own_in;
    *tgt = own_tgt;
    *ref = NULL;
    if (sh->fidelity) {
        if ((r = npe_exec_run(w->ref_exec, &w->kx, own_in, 1, own_ref, sh->n_out, err))) {
            npe_error_prefix(err, "original model on samples %lld..%lld", (long long)B->start,
                             (long long)(B->start + B->n - 1));
            return r;
        }
        *ref = own_ref;
    }
    return 0;
}

/* Views of the first n outputs of graph g as executor x left them after a run (valid until its
 * next run or destruction): the metric reads them in place, with no copy per batch. */
static void output_views(const npe_exec *x, const npe_graph *g, npe_array *outs, int n)
{
    for (int k = 0; k < n; k++) {
        const npe_value *v = &g->values[g->outputs[k]];
        npe_array *a = &outs[k];
        memset(a, 0, sizeof(*a));
        a->dtype = NPE_DTYPE_F32;
        a->ndim = v->ndim;
        for (int d = 0; d < v->ndim; d++)
            a->shape[d] = v->shape[d];
        a->nbytes = (size_t)npe_value_numel(v) * sizeof(float);
        a->data = (void *)npe_exec_value(x, g->outputs[k]);
    }
}

/* The metric of graph pg over the data set. */
static int evaluate(worker *w, npe_graph *pg, double *value, npe_error *err)
{
    shared *sh = w->sh;
    npe_exec *x = NULL;
    int r = exec_create(sh, pg, &x, err);
    if (r)
        return r;
    npe_exec_use_bufs(x, &w->bufs);
    npe_metric_reset(w->metric);
    npe_array *outs = calloc((size_t)sh->n_out, sizeof(*outs));
    npe_array *own_ref = calloc((size_t)sh->n_out, sizeof(*own_ref));
    if (!outs || !own_ref) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t b = 0; b < sh->nb && !r; b++) {
        npe_array own_in = {0}, own_tgt = {0};
        const npe_array *in, *tgt, *ref;
        if ((r = get_batch(w, b, &in, &tgt, &ref, &own_in, &own_tgt, own_ref, err))) {
            npe_array_free(&own_in);
            npe_array_free(&own_tgt);
            break;
        }
        if ((r = npe_exec_run(x, &w->kx, in, 1, NULL, 0, err))) {
            npe_error_prefix(err, "samples %lld..%lld", (long long)sh->batches[b].start,
                             (long long)(sh->batches[b].start + sh->batches[b].n - 1));
        } else {
            output_views(x, pg, outs, sh->n_out);
            r = npe_metric_update_batch(w->metric, outs, sh->n_out, tgt, ref, err);
        }
        free_arrays(own_ref, sh->n_out);
        npe_array_free(&own_in);
        npe_array_free(&own_tgt);
    }
    if (!r)
        r = npe_metric_value(w->metric, value, err);
out:
    free(outs);
    free(own_ref);
    exec_done(w, x);
    return r;
}

/* ---- Reuse: the region of a pruned clone on the original model's frontier ------------------ */
/* Lists nest; no model we import goes deeper. */
#define LIST_DEPTH 16

static int reads_flag(const npe_graph *g, int v, const unsigned char *flag, int depth)
{
    if (flag[v])
        return 1;
    const npe_value *val = &g->values[v];
    for (int i = 0; depth < LIST_DEPTH && i < val->n_items; i++)
        if (reads_flag(g, val->items[i], flag, depth + 1))
            return 1;
    return 0;
}

/* Whether a value of the base graph and of a pruned clone hold the same parameter or literal. */
static int same_value(const npe_value *a, const npe_value *b)
{
    if (a->type != b->type || a->n_items != b->n_items || a->numel_data != b->numel_data ||
        !a->data != !b->data || a->i != b->i || memcmp(&a->f, &b->f, sizeof(a->f)) != 0 ||
        !a->s != !b->s || (a->s && strcmp(a->s, b->s) != 0))
        return 0;
    if (a->n_items && memcmp(a->items, b->items, (size_t)a->n_items * sizeof(int)) != 0)
        return 0;
    if (a->data && (a->ndim != b->ndim ||
                    memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t)) != 0 ||
                    (a->data != b->data && /* borrowed: the same */
                     memcmp(a->data, b->data, (size_t)a->numel_data * sizeof(float)) != 0)))
        return 0;
    return 1;
}

/* Whether every node outside the group's region reads in the pruned clone pg what it reads in
 * the original. The region comes from the group's structure; this checks the clone itself, so a
 * cut the structure did not foresee makes the pair run the whole model instead of a wrong part. */
static int unchanged_outside(const shared *sh, const npe_graph *pg)
{
    const npe_graph *b = sh->base;
    if (pg->n_values != b->n_values || pg->n_nodes != b->n_nodes)
        return 0;
    unsigned char *diff = calloc((size_t)b->n_values + 1, 1);
    if (!diff)
        return 0;
    int any = 0, ok = 1;
    for (int v = 0; v < b->n_values; v++)
        if (b->values[v].producer < 0 && !same_value(&b->values[v], &pg->values[v]))
            diff[v] = 1, any = 1;
    for (int i = 0; any && ok && i < b->n_nodes; i++) {
        if (sh->part.rp.keep[i] || sh->part.region[i])
            continue;
        const npe_node *n = &b->nodes[i];
        for (int k = 0; k < n->n_in && ok; k++)
            ok = !reads_flag(b, n->in[k], diff, 0);
    }
    free(diff);
    return ok;
}

/* The need values of batch b: the held ones, or the unchanged part run now on the input (into
 * own[], which the caller frees). */
static int need_values(worker *w, int64_t b, const npe_array *in, const npe_array **vals,
                       npe_array *own, npe_error *err)
{
    shared *sh = w->sh;
    const gpart *P = &sh->part;
    if (!P->n_need)
        return 0;
    if (sh->bheld[b]) {
        for (int k = 0; k < P->n_need; k++)
            vals[k] = &sh->held[P->need[k]][b];
        return 0;
    }
    int r;
    if (!w->pre_exec) /* made before the phase (prepare_pre) */
        return npe_error_set(err, NPE_EINVAL, "internal error: no executor for the unchanged part");
    if ((r = npe_exec_run(w->pre_exec, &w->kx, in, 1, own, P->n_need, err))) {
        npe_error_prefix(err, "original model on samples %lld..%lld",
                         (long long)sh->batches[b].start,
                         (long long)(sh->batches[b].start + sh->batches[b].n - 1));
        return r;
    }
    for (int k = 0; k < P->n_need; k++)
        vals[k] = &own[k];
    return 0;
}

/* The channels of an activation with channel map m (along dim 1) that a pair keeping keep[]
 * of group gi keeps: those of no group or another group, and gi's kept ones. idx has m->n
 * entries; returns how many are filled. */
static int64_t kept_indices(const npe_chanmap *m, int gi, const unsigned char *keep,
                            int64_t *idx)
{
    int64_t nk = 0;
    for (int c = 0; c < m->n; c++)
        if (m->at[c].group != gi || keep[m->at[c].chan])
            idx[nk++] = c;
    return nk;
}

/* A region input a pair takes from an original activation's kept channels. */
typedef struct slice_in {
    int64_t *idx, nk; /* the channels kept (kept_indices) */
    npe_array a;      /* made per batch */
    size_t cap;       /* bytes a.data holds */
} slice_in;

/* s->a = original activation a (float32, n channels along dim 1) at channels s->idx. */
static int gather_kept(const npe_array *a, int64_t n, slice_in *s, npe_error *err)
{
    if (a->dtype != NPE_DTYPE_F32 || a->ndim < 2 || a->shape[1] != n)
        return npe_error_set(err, NPE_EINVAL, "internal error: activation and channel map differ");
    int64_t keep_n[NPE_MAX_DIMS], *ix[NPE_MAX_DIMS] = {NULL};
    memcpy(keep_n, a->shape, sizeof(keep_n));
    keep_n[1] = s->nk;
    ix[1] = s->idx;
    const size_t bytes = (size_t)(npe_array_numel(a) / n * s->nk) * sizeof(float);
    if (bytes > s->cap) {
        void *d = realloc(s->a.data, bytes);
        if (!d)
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        s->a.data = d;
        s->cap = bytes;
    }
    s->a.dtype = NPE_DTYPE_F32;
    s->a.ndim = a->ndim;
    memcpy(s->a.shape, keep_n, sizeof(s->a.shape));
    s->a.nbytes = bytes;
    npe_gather_indices(s->a.data, a->data, a->ndim, a->shape, ix, keep_n);
    return 0;
}

/* The metric of pruned clone pg (cut here to the group's region) over the data set; plan
 * keeps channels kept[] of group gi. */
static int evaluate_region(worker *w, npe_graph *pg, int gi, const npe_prune_plan *plan,
                           double *value, npe_error *err)
{
    shared *sh = w->sh;
    const gpart *P = &sh->part;
    npe_exec *x = NULL;
    int r = npe_subgraph_cut(pg, &P->rp, P->rout, P->n_rout, err);
    if (r)
        return r;
    /* no metric output in the region: the pruned channels reach nothing measured */
    if (P->n_rout_metric && (r = exec_create(sh, pg, &x, err)))
        return r;
    if (x)
        npe_exec_use_bufs(x, &w->bufs);
    npe_metric_reset(w->metric);
    size_t nn = (size_t)P->n_need + 1, ni = (size_t)P->rp.n_inputs + 1, no = (size_t)sh->n_out;
    npe_array *outs = calloc(no, sizeof(*outs));
    npe_array *routs = calloc((size_t)P->n_rout + 1, sizeof(*routs));
    npe_array *own_ref = calloc(no, sizeof(*own_ref));
    npe_array *own_need = calloc(nn, sizeof(*own_need));
    npe_array *ins = calloc(ni, sizeof(*ins));
    const npe_array **vals = calloc(nn, sizeof(*vals));
    slice_in *sl = calloc(ni, sizeof(*sl));
    const int nc = sh->G->groups[gi].channels;
    unsigned char *keep = malloc((size_t)nc + 1);
    if (!outs || !routs || !own_ref || !own_need || !ins || !vals || !sl || !keep) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    memset(keep, !plan->kept[gi], (size_t)nc);
    for (int k = 0; plan->kept[gi] && k < plan->n_kept[gi]; k++)
        keep[plan->kept[gi][k]] = 1;
    for (int j = 0; j < P->rp.n_inputs && !r; j++)
        if (P->rsl[j]) {
            if (!(sl[j].idx = malloc(((size_t)P->rsl[j]->n + 1) * sizeof(int64_t))))
                r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            else
                sl[j].nk = kept_indices(P->rsl[j], gi, keep, sl[j].idx);
        }
    for (int64_t b = 0; b < sh->nb && !r; b++) {
        const sbatch *B = &sh->batches[b];
        npe_array own_in = {0}, own_tgt = {0};
        const npe_array *in, *tgt, *ref;
        if (!(r = get_batch(w, b, &in, &tgt, &ref, &own_in, &own_tgt, own_ref, err)) &&
            !(r = need_values(w, b, in, vals, own_need, err))) {
            for (int j = 0; j < P->rp.n_inputs && !r; j++) {
                if (P->rsl[j])
                    r = gather_kept(vals[P->rin[j]], P->rsl[j]->n, &sl[j], err);
                ins[j] = P->rin[j] == SRC_INPUT ? *in : P->rsl[j] ? sl[j].a : *vals[P->rin[j]];
            }
            if (!r && x && (r = npe_exec_run(x, &w->kx, ins, P->rp.n_inputs, NULL, 0, err)))
                npe_error_prefix(err, "samples %lld..%lld", (long long)B->start,
                                 (long long)(B->start + B->n - 1));
            else if (!r && x)
                output_views(x, pg, routs, P->n_rout_metric);
            for (int i = 0; !r && i < sh->n_out; i++) {
                int o = P->osrc[i];
                outs[i] = o >= 0 ? routs[o] : o == SRC_INPUT ? *in : *vals[-1 - o];
            }
            if (!r)
                r = npe_metric_update_batch(w->metric, outs, sh->n_out, tgt, ref, err);
        }
        free_arrays(own_need, P->n_need);
        free_arrays(own_ref, sh->n_out);
        npe_array_free(&own_in);
        npe_array_free(&own_tgt);
    }
    if (!r)
        r = npe_metric_value(w->metric, value, err);
out:
    free(outs);
    free(routs);
    free(own_ref);
    free(own_need);
    free(ins);
    free(vals);
    for (size_t j = 0; sl && j < ni; j++) {
        free(sl[j].idx);
        free(sl[j].a.data);
    }
    free(sl);
    free(keep);
    exec_done(w, x);
    return r;
}

/* Prune a clone of the base graph at (group gi, sparsity s) and measure it: its region when the
 * group has parts, else (or when the clone changed outside the region: *whole = 1) all of it. */
static int evaluate_pair(worker *w, int gi, double s, double *value, int *whole, npe_error *err)
{
    shared *sh = w->sh;
    npe_graph *pg = NULL;
    npe_prune_plan *plan = NULL;
    *whole = 0;
    int r = npe_graph_clone_shared(sh->base, &pg);
    if (r)
        return npe_error_set(err, r, "out of memory cloning the model");
    if (!(r = npe_prune_plan_create(sh->G, &plan)) &&
        !(r = npe_prune_select(sh->base, sh->G, gi, s, sh->o->channel_alignment, plan, err)) &&
        !(r = npe_prune_apply(pg, sh->G, plan, err))) {
        if (sh->reuse && sh->part.ok && unchanged_outside(sh, pg)) {
            r = evaluate_region(w, pg, gi, plan, value, err);
        } else {
            *whole = sh->reuse && sh->part.ok;
            r = evaluate(w, pg, value, err);
        }
    } else if (r && !err->msg[0])
        npe_error_set(err, r, "out of memory");
    npe_prune_plan_destroy(plan);
    npe_graph_destroy(pg);
    return r;
}

/* ---- The work loop --------------------------------------------------------------------------- */
/* Next pair to hand out, in serial order, skipping pairs taken or no longer pending (under mu). */
static int next_item(shared *sh, size_t *k_out)
{
    while (sh->cursor < sh->item_end &&
           (sh->taken[sh->cursor] ||
            !npe_sens_pending(sh->t, sh->item_g[sh->cursor], sh->item_i[sh->cursor])))
        sh->cursor++;
    for (size_t k = sh->cursor; k < sh->item_end; k++)
        if (!sh->taken[k] && npe_sens_pending(sh->t, sh->item_g[k], sh->item_i[k])) {
            *k_out = k;
            return 1;
        }
    return 0;
}

static void fail_locked(shared *sh, int r, const npe_error *e)
{
    if (!sh->rc) {
        sh->rc = r;
        sh->err = *e;
        if (!sh->err.code)
            sh->err.code = r;
    }
    sh->stop = 1;
}

static void *work(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    const npe_sens_options *o = sh->o;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        size_t k;
        if (sh->stop || !next_item(sh, &k))
            break;
        if (o->cancel && o->cancel(o->cancel_user)) {
            sh->canceled = 1;
            sh->stop = 1;
            break;
        }
        sh->taken[k] = 1;
        size_t tg = sh->item_g[k], ti = sh->item_i[k];
        const npe_sens_group *grp = &sh->t->groups[tg];
        double s = grp->sparsities[ti];
        int gi = sh->tg2G[tg];
        pthread_mutex_unlock(&sh->mu);

        npe_error e = {0};
        double v = NAN;
        int whole = 0;
        int r = evaluate_pair(w, gi, s, &v, &whole, &e);

        pthread_mutex_lock(&sh->mu);
        if (whole) {
            char sb[NPE_SENS_NUM_MAX];
            npe_sens_format_shortest(s, sb);
            slog(o, NPE_LOG_DEBUG, "group '%s' sparsity %s: pruning changed the model outside the "
                 "group's region; the whole model was run", grp->name, sb);
        }
        if (r) {
            char sb[NPE_SENS_NUM_MAX];
            npe_sens_format_shortest(s, sb);
            npe_error_prefix(&e, "group '%s' at sparsity %s", grp->name, sb);
            fail_locked(sh, r, &e);
            break;
        }
        if ((r = npe_sens_record(sh->t, tg, ti, v, &e))) {
            fail_locked(sh, r, &e);
            break;
        }
        sh->evaluated++;
        sh->region_evals += sh->reuse && sh->part.ok && !whole;
        char sb[NPE_SENS_NUM_MAX], vb[NPE_SENS_NUM_MAX];
        npe_sens_format_shortest(s, sb);
        npe_sens_format_value(v, vb);
        slog(o, NPE_LOG_DEBUG, "group '%s' sparsity %s: %s %s", grp->name, sb,
             sh->t->metric, vb);
        if (o->progress) {
            npe_sens_progress_info p = {0};
            p.group = grp->name;
            p.sparsity = s;
            p.value = v;
            npe_sens_progress(sh->t, &p.done, &p.total);
            p.evaluated = sh->evaluated;
            p.elapsed_s = now_s() - sh->t0;
            p.eta_s = p.elapsed_s / (double)sh->evaluated * (double)(p.total - p.done);
            o->progress(o->progress_user, &p);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* Workers take the items of [cursor, item_end) until none is left. */
static void run_phase(shared *sh, worker *W, int nworkers)
{
    for (int i = 1; i < nworkers; i++) {
        W[i].started = 0;
        if (pthread_create(&W[i].th, NULL, work, &W[i]))
            break; /* fewer workers: the others share the work */
        W[i].started = 1;
    }
    work(&W[0]);
    for (int i = 1; i < nworkers; i++)
        if (W[i].started)
            pthread_join(W[i].th, NULL);
}

/* ---- Setup helpers --------------------------------------------------------------------------- */
static int known_layer(const npe_graph *g, const npe_groups *G, const char *name)
{
    if (npe_groups_find_name(G, name) >= 0)
        return 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(npe_layer_name(g, i), name) == 0 || strcmp(g->nodes[i].scope, name) == 0)
            return 1;
    return 0;
}

static int check_options(const npe_graph *g, const npe_sens_options *o, npe_error *err)
{
    if (!o->data)
        return npe_error_set(err, NPE_EINVAL, "sensitivity analysis: no data set given");
    if (!o->inputs || o->n_inputs != 1 || g->n_inputs != 1)
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "sensitivity analysis needs a model with exactly one input and its "
                             "dummy_input shape (the model has %d input(s), %d shape(s) given)",
                             g->n_inputs, o->inputs ? o->n_inputs : 0);
    if (g->n_outputs < 1)
        return npe_error_set(err, NPE_EINVAL, "the model has no output");
    if (o->channel_alignment < 1)
        return npe_error_set(err, NPE_EINVAL, "channel_alignment must be >= 1, not %d",
                             o->channel_alignment);
    if (!isfinite(o->metric_thres) || o->metric_thres < 0)
        return npe_error_set(err, NPE_EINVAL, "metric_thres must be a finite number >= 0, not %g",
                             o->metric_thres);
    if (!isnan(o->ori_metric) && !isfinite(o->ori_metric))
        return npe_error_set(err, NPE_EINVAL, "ori_metric must be finite, not %g", o->ori_metric);
    if (o->target_macs != 0 && o->target_params != 0)
        return npe_error_set(err, NPE_EINVAL, "give target_macs or target_params, not both");
    double tg = o->target_macs != 0 ? o->target_macs : o->target_params;
    if (tg != 0 && !(tg > 0 && tg <= 1))
        return npe_error_set(err, NPE_EINVAL, "%s must be in (0, 1], not %g",
                             o->target_macs != 0 ? "target_macs" : "target_params", tg);
    for (size_t i = 0; i < o->n_sparsities_dict; i++)
        if (!o->sparsities_dict[i].name || !o->sparsities_dict[i].sparsities ||
            !o->sparsities_dict[i].n_sparsities)
            return npe_error_set(err, NPE_EINVAL, "sparsities_dict entry %zu has no name or no "
                                 "sparsities", i);
    return 0;
}

/* The data set against dummy_input and the metric's needs. */
static int check_data(const npe_sens_options *o, const npe_dataset_info *di, npe_error *err)
{
    const npe_tshape *in = &o->inputs[0];
    int same = di->sample_ndim + 1 == in->ndim;
    for (int d = 0; same && d < di->sample_ndim; d++)
        same = di->sample_shape[d] == in->d[d + 1];
    if (!same) {
        char a[160] = "", b[160] = "";
        size_t la = 0, lb = 0;
        for (int d = 0; d < di->sample_ndim && la < sizeof(a) - 24; d++)
            la += (size_t)snprintf(a + la, sizeof(a) - la, "%s%lld", d ? "," : "",
                                   (long long)di->sample_shape[d]);
        for (int d = 1; d < in->ndim && lb < sizeof(b) - 24; d++)
            lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "%s%lld", d > 1 ? "," : "",
                                   (long long)in->d[d]);
        return npe_error_set(err, NPE_EINVAL,
                             "the data set's samples are [%s] but dummy_input gives [%s] per "
                             "sample: resize/crop the data or fix dummy_input", a, b);
    }
    if (di->size < 1)
        return npe_error_set(err, NPE_EINVAL, "the data set is empty");
    npe_metric_input need = npe_metric_needs(o->metric.kind);
    if (need == NPE_METRIC_NEEDS_LABELS && di->target != NPE_TARGET_LABELS)
        return npe_error_set(err, NPE_EINVAL, "metric %s needs class labels, and the data set has "
                             "%s", npe_metric_name(o->metric.kind),
                             di->target == NPE_TARGET_MASKS ? "masks" : "none (use fidelity)");
    if (need == NPE_METRIC_NEEDS_MASKS && di->target != NPE_TARGET_MASKS)
        return npe_error_set(err, NPE_EINVAL, "metric %s needs segmentation masks, and the data set "
                             "has %s", npe_metric_name(o->metric.kind),
                             di->target == NPE_TARGET_LABELS ? "class labels" : "none");
    return 0;
}

/* Table of groups: members, channels, sparsity list or skip reason. */
static int build_table(shared *sh, const npe_sens_options *o, npe_error *err)
{
    const npe_graph *g = sh->base;
    const npe_groups *G = sh->G;
    npe_sens_table *t = sh->t;
    int r = 0;
    const char **dict_names = NULL;
    const char **members = NULL;
    if (o->n_sparsities_dict &&
        !(dict_names = calloc(o->n_sparsities_dict, sizeof(*dict_names))))
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n_sparsities_dict; i++) {
        dict_names[i] = o->sparsities_dict[i].name;
        if (!known_layer(g, G, dict_names[i])) {
            r = npe_error_set(err, NPE_ENOTFOUND, "sparsities_dict: '%s' is no layer of %s",
                              dict_names[i], g->origin ? g->origin : "the model");
            goto out;
        }
    }
    for (int i = 0; i < o->n_exclude_layers; i++)
        if (!o->exclude_layers[i] || !known_layer(g, G, o->exclude_layers[i])) {
            r = npe_error_set(err, NPE_ENOTFOUND, "exclude_layers: '%s' is no layer of %s",
                              o->exclude_layers[i] ? o->exclude_layers[i] : "(null)",
                              g->origin ? g->origin : "the model");
            goto out;
        }
    if (!(sh->tg2G = calloc((size_t)G->n_groups + 1, sizeof(int))) ||
        !(members = calloc((size_t)G->n_producers + 1, sizeof(*members)))) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *grp = &G->groups[gi];
        size_t nm = 0;
        for (int p = 0; p < grp->n_producers; p++) {
            const npe_producer *pr = &G->producers[grp->producers[p]];
            if (pr->shared)
                continue;
            const char *ln = npe_layer_name(g, pr->node);
            int dup = 0;
            for (size_t q = 0; q < nm; q++)
                dup |= strcmp(members[q], ln) == 0;
            if (!dup)
                members[nm++] = ln;
        }
        char why[512];
        npe_sens_group_spec spec = {0};
        spec.name = grp->name;
        spec.members = members;
        spec.n_members = nm;
        spec.channels = grp->channels;
        spec.sparsities = o->sparsities ? o->sparsities : default_sparsities;
        spec.n_sparsities = o->sparsities ? o->n_sparsities : 5;
        int ex = npe_prune_excluded(g, G, gi, o->exclude_layers, o->n_exclude_layers);
        int di = o->n_sparsities_dict
                     ? npe_prune_excluded(g, G, gi, dict_names, (int)o->n_sparsities_dict)
                     : -1;
        if (!grp->prunable) {
            spec.skip_reason = grp->reason ? grp->reason : "not prunable";
        } else if (ex >= 0) {
            snprintf(why, sizeof(why), "excluded by exclude_layers ('%s')", o->exclude_layers[ex]);
            spec.skip_reason = why;
        } else if (di >= 0) {
            spec.sparsities = o->sparsities_dict[di].sparsities;
            spec.n_sparsities = o->sparsities_dict[di].n_sparsities;
        }
        int idx = npe_sens_add_group(t, &spec, err);
        if (idx < 0) {
            r = idx;
            goto out;
        }
        sh->tg2G[idx] = gi;
        if (spec.skip_reason)
            slog(o, NPE_LOG_INFO, "group '%s' skipped: %s", grp->name, spec.skip_reason);
    }
out:
    free(members);
    free(dict_names);
    return r;
}

/* The baseline pass on worker w (the original model): fills the cache, returns the metric. */
static int baseline_pass(worker *w, double *measured, npe_error *err)
{
    shared *sh = w->sh;
    size_t left = sh->o->cache_bytes - sh->pbudget;
    int r = 0;
    npe_metric_reset(w->metric);
    sh->all_cached = 1;
    for (int64_t b = 0; b < sh->nb && !r; b++) {
        sbatch *B = &sh->batches[b];
        npe_array in = {0}, tgt = {0};
        npe_array *outs = calloc((size_t)sh->n_out, sizeof(*outs));
        if (!outs)
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        if ((r = npe_dataset_read(sh->o->data, B->start, B->n, &in, &tgt, err))) {
            free(outs);
            break;
        }
        if ((r = npe_exec_run(w->ref_exec, &w->kx, &in, 1, outs, sh->n_out, err)))
            npe_error_prefix(err, "original model on samples %lld..%lld", (long long)B->start,
                             (long long)(B->start + B->n - 1));
        else if (!sh->fidelity)
            r = npe_metric_update_batch(w->metric, outs, sh->n_out, &tgt, NULL, err);
        size_t bytes = in.nbytes + tgt.nbytes;
        for (int i = 0; sh->fidelity && i < sh->n_out; i++)
            bytes += outs[i].nbytes;
        if (!r && bytes <= left) {
            left -= bytes;
            B->cached = 1;
            B->in = in;
            B->tgt = tgt;
            if (sh->fidelity) {
                B->ref = outs;
                outs = NULL;
            }
        } else {
            sh->all_cached = 0;
            npe_array_free(&in);
            npe_array_free(&tgt);
        }
        free_arrays(outs, sh->n_out);
        free(outs);
    }
    if (r)
        return r;
    sh->fbudget = left; /* the rest of the budget holds frontier activations */
    if (sh->fidelity) {
        *measured = 1.0; /* the original against itself, by definition */
        return 0;
    }
    return npe_metric_value(w->metric, measured, err);
}

/* ---- Reuse: the group's parts and the frontier cache -------------------------------------- */
static void part_finish(gpart *P)
{
    free(P->region);
    free(P->run);
    free(P->rsl);
    npe_subgraph_plan_finish(&P->rp);
    free(P->rout);
    free(P->osrc);
    free(P->rin);
    free(P->need);
    free(P->is_need);
    npe_graph_destroy(P->pre);
    npe_graph_destroy(P->inc);
    free(P->inc_in);
    free(P->inc_out);
    memset(P, 0, sizeof(*P));
}

static int find_id(const int *a, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (a[i] == v)
            return i;
    return -1;
}

/* A copy of base cut to the part of plan pl, with outputs outs[0..n) and then every other model
 * output the part makes: a value that is an output of the model stays one, so the executor
 * treats it alike in the part and in the whole model. */
static int make_part(const npe_graph *base, const npe_subgraph_plan *pl, const int *outs, int n,
                     npe_graph **out, npe_error *err)
{
    *out = NULL;
    int *all = malloc(((size_t)n + (size_t)base->n_outputs + 1) * sizeof(int));
    if (!all)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    int na = 0;
    for (int i = 0; i < n; i++)
        all[na++] = outs[i];
    for (int i = 0; i < base->n_outputs; i++)
        if (npe_subgraph_makes(base, pl, base->outputs[i]) &&
            find_id(all, na, base->outputs[i]) < 0)
            all[na++] = base->outputs[i];
    npe_graph *g = NULL;
    int r = npe_graph_clone_shared(base, &g);
    if (r)
        r = npe_error_set(err, r, "out of memory cloning the model");
    else if ((r = npe_subgraph_cut(g, pl, all, na, err)))
        npe_graph_destroy(g);
    else
        *out = g;
    free(all);
    return r;
}

/* The channel map of activation v, or NULL. */
static const npe_chanmap *map_of(const npe_groups *G, int v)
{
    for (int i = 0; i < G->n_tensors; i++)
        if (G->tensors[i].value == v)
            return &G->tensors[i];
    return NULL;
}

static int is_channelwise(npe_op op)
{
    switch (op) {
    case NPE_OP_BATCH_NORM: case NPE_OP_RELU: case NPE_OP_HARDTANH: case NPE_OP_LEAKY_RELU:
    case NPE_OP_SILU: case NPE_OP_SIGMOID: case NPE_OP_HARDSWISH: case NPE_OP_HARDSIGMOID:
    case NPE_OP_TANH: case NPE_OP_GELU: case NPE_OP_ELU: case NPE_OP_CLAMP: case NPE_OP_NEG:
    case NPE_OP_EXP: case NPE_OP_SQRT: case NPE_OP_MAX_POOL2D: case NPE_OP_AVG_POOL2D:
    case NPE_OP_ADAPTIVE_AVG_POOL2D: case NPE_OP_UPSAMPLE_NEAREST2D:
    case NPE_OP_UPSAMPLE_BILINEAR2D: case NPE_OP_DROPOUT: case NPE_OP_IDENTITY:
    case NPE_OP_CONTIGUOUS: case NPE_OP_TO: case NPE_OP_ADD: case NPE_OP_SUB: case NPE_OP_MUL:
    case NPE_OP_MAXIMUM: case NPE_OP_MINIMUM:
        return 1;
    default:
        return 0;
    }
}

/* Slice nodes of group gi's region: nodes whose output in a pruned model is the original
 * output's kept channels, so a pair takes it from the original activation instead of running
 * them. They are the group's ungrouped conv producers reading an unchanged input (their
 * filters of the kept channels, on the same input), then the channelwise ops (batch norm,
 * activations, pooling, same-shape arithmetic) of slices only, with one channel map along
 * dim 1. Cleared from run[] (a copy of region[]). */
static void slice_nodes(const npe_graph *g, const npe_groups *G, int gi,
                        const unsigned char *region, unsigned char *run, unsigned char *sliced)
{
    const npe_group *grp = &G->groups[gi];
    for (int i = 0; i < g->n_nodes; i++) {
        if (!region[i])
            continue;
        const npe_node *n = &g->nodes[i];
        if (n->n_out != 1)
            continue;
        const npe_chanmap *om = map_of(G, n->out[0]);
        if (!om || om->dim != 1)
            continue;
        int ok = 0;
        if (n->op == NPE_OP_CONV) {
            for (int k = 0; k < grp->n_producers && !ok; k++) {
                const npe_producer *pr = &G->producers[grp->producers[k]];
                ok = pr->node == i && pr->dim == 0 && !pr->depthwise;
            }
            for (int k = 0; k < grp->n_consumers && ok; k++)
                ok = G->consumers[grp->consumers[k]].node != i;
            const int x = n->in[0], xp = g->values[x].producer;
            ok = ok && (xp < 0 || !region[xp]);
        } else if (is_channelwise(n->op)) {
            const npe_chanmap *first = NULL;
            ok = 1;
            for (int k = 0; k < n->n_in && ok; k++) {
                const int v = n->in[k];
                if (!npe_subgraph_is_activation(g, v)) {
                    /* parameters (cut with the channels) and numbers only */
                    ok = g->values[v].type != NPE_VT_TENSOR || g->values[v].producer < 0 ||
                         !region[g->values[v].producer];
                    continue;
                }
                const npe_chanmap *m = sliced[v] ? map_of(G, v) : NULL;
                ok = m && m->n == om->n && m->dim == 1 &&
                     (!first || !memcmp(first->at, m->at, (size_t)m->n * sizeof(*m->at)));
                first = first ? first : m;
            }
            ok = ok && first && !memcmp(first->at, om->at, (size_t)om->n * sizeof(*om->at));
        }
        if (ok) {
            run[i] = 0;
            sliced[n->out[0]] = 1;
        }
    }
}

/* Need slot of value v, added when new. */
static int need_slot(gpart *P, int v)
{
    if (!P->is_need[v]) {
        P->is_need[v] = 1;
        P->need[P->n_need++] = v;
    }
    return find_id(P->need, P->n_need, v);
}

/* The parts of table group tg: its region (what pruning it changes), the region's inputs from the
 * original model, the unchanged part making them from the input, and the part making the ones
 * the previous group did not hold from the ones it did. part.ok stays 0 when the model does not
 * split this way (the pairs then run whole models). */
static int setup_group(shared *sh, size_t tg, npe_error *err)
{
    const npe_graph *base = sh->base;
    const npe_groups *G = sh->G;
    gpart *P = &sh->part;
    int nn = base->n_nodes, nv = base->n_values, x = base->inputs[0];
    int r = 0;
    memset(P, 0, sizeof(*P));
    unsigned char *nodes = calloc((size_t)nn + 1, 1), *sliced = NULL;
    npe_subgraph_plan pp = {0}, ip = {0};
    P->region = calloc((size_t)nn + 1, 1);
    P->is_need = calloc((size_t)nv + 1, 1);
    if (!nodes || !P->region || !P->is_need) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    /* (unchanged_outside checks each pruned clone against this region) */
    if ((r = npe_subgraph_group_region(base, G, sh->tg2G[tg], P->region, err)))
        goto out;
    P->run = malloc((size_t)nn + 1);
    sliced = calloc((size_t)nv + 1, 1);
    if (!P->run || !sliced) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(P->run, P->region, (size_t)nn);
    if (sh->slices)
        slice_nodes(base, G, sh->tg2G[tg], P->region, P->run, sliced);
    if ((r = npe_subgraph_plan_make(base, P->run, &P->rp, err)))
        goto out;

    P->need = malloc(((size_t)P->rp.n_inputs + (size_t)sh->n_out + 1) * sizeof(int));
    P->rin = malloc(((size_t)P->rp.n_inputs + 1) * sizeof(int));
    P->rsl = calloc((size_t)P->rp.n_inputs + 1, sizeof(*P->rsl));
    P->rout = malloc(((size_t)base->n_outputs + 1) * sizeof(int));
    P->osrc = malloc(((size_t)sh->n_out + 1) * sizeof(int));
    if (!P->need || !P->rin || !P->rsl || !P->rout || !P->osrc) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < P->rp.n_inputs; j++) {
        int v = P->rp.inputs[j];
        if (v != x && (base->values[v].flags & NPE_VF_INPUT))
            goto out; /* not ok: only the model's one input comes with the batch */
        P->rin[j] = v == x ? SRC_INPUT : need_slot(P, v);
        if (sliced[v])
            P->rsl[j] = map_of(G, v);
    }
    for (int i = 0; i < sh->n_out; i++) {
        int v = base->outputs[i];
        if (npe_subgraph_makes(base, &P->rp, v)) {
            int o = find_id(P->rout, P->n_rout, v);
            if (o < 0)
                P->rout[o = P->n_rout++] = v;
            P->osrc[i] = o;
        } else {
            P->osrc[i] = v == x ? SRC_INPUT : -1 - need_slot(P, v);
        }
    }
    P->n_rout_metric = P->n_rout;
    for (int i = 0; i < base->n_outputs; i++)
        if (npe_subgraph_makes(base, &P->rp, base->outputs[i]) &&
            find_id(P->rout, P->n_rout, base->outputs[i]) < 0)
            P->rout[P->n_rout++] = base->outputs[i];

    if (P->n_need) {
        /* everything outside the region computes what the original does, from the input only */
        for (int i = 0; i < nn; i++)
            nodes[i] = !P->run[i];
        if ((r = npe_subgraph_plan_make(base, nodes, &pp, err)))
            goto out;
        if (pp.n_inputs != 1 || pp.inputs[0] != x)
            goto out; /* not ok */
        if ((r = make_part(base, &pp, P->need, P->n_need, &P->pre, err)))
            goto out;
    }
    if (P->n_need && sh->old.ok && sh->old.n_need) {
        /* The previous group's held values and the nodes its region covers that this group's
         * does not: when they make every value missing, the next fill runs only those nodes. */
        int *miss = malloc(((size_t)P->n_need + 1) * sizeof(int));
        if (!miss) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            goto out;
        }
        int nm = 0;
        for (int k = 0; k < P->n_need; k++)
            if (!sh->old.is_need[P->need[k]])
                miss[nm++] = P->need[k];
        for (int i = 0; i < nn; i++)
            nodes[i] = !P->run[i] && sh->old.run[i];
        int usable = nm > 0 && !(r = npe_subgraph_plan_make(base, nodes, &ip, err));
        for (int k = 0; usable && k < nm; k++)
            usable = npe_subgraph_makes(base, &ip, miss[k]);
        for (int j = 0; usable && j < ip.n_inputs; j++)
            usable = ip.inputs[j] == x || sh->old.is_need[ip.inputs[j]];
        if (usable && !(r = make_part(base, &ip, miss, nm, &P->inc, err))) {
            P->inc_out = miss;
            P->n_inc_out = nm;
            miss = NULL;
            P->inc_in = ip.inputs;
            P->n_inc_in = ip.n_inputs;
            ip.inputs = NULL;
        }
        free(miss);
        if (r)
            goto out;
    }
    P->ok = 1;
out:
    npe_subgraph_plan_finish(&pp);
    npe_subgraph_plan_finish(&ip);
    free(nodes);
    free(sliced);
    return r;
}

/* Bytes of the need values at batch b (from the sizes inferred at both batch sizes). */
static size_t need_bytes(const shared *sh, int64_t b, int only_missing)
{
    const gpart *P = &sh->part;
    int which = sh->batches[b].n == sh->batches[0].n ? 0 : 1;
    size_t t = 0;
    for (int k = 0; k < P->n_need; k++) {
        int v = P->need[k];
        if (!only_missing || !sh->held[v] || !sh->held[v][b].data)
            t += (size_t)sh->numel_at[which][v] * sizeof(float);
    }
    return t;
}

static void drop_held(shared *sh, int v, int64_t b)
{
    if (sh->held[v] && sh->held[v][b].data) {
        sh->fused -= sh->held[v][b].nbytes;
        npe_array_free(&sh->held[v][b]);
    }
}

/* Drop batch b's held values that the current group does not need (all: also the needed). */
static void drop_batch(shared *sh, int64_t b, int all)
{
    for (int i = 0; i < sh->n_hv; i++)
        if (all || !sh->part.is_need[sh->hv[i]])
            drop_held(sh, sh->hv[i], b);
}

static int hold(shared *sh, int v, int64_t b, npe_array *a, npe_error *err)
{
    if (!sh->held[v]) {
        int *nhv = realloc(sh->hv, ((size_t)sh->n_hv + 1) * sizeof(int));
        if (nhv)
            sh->hv = nhv;
        if (!nhv || !(sh->held[v] = calloc((size_t)sh->nb, sizeof(npe_array)))) {
            npe_array_free(a);
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        }
        sh->hv[sh->n_hv++] = v;
    }
    if (sh->held[v][b].data) { /* already held: the same bits */
        npe_array_free(a);
        return 0;
    }
    sh->held[v][b] = *a;
    memset(a, 0, sizeof(*a));
    sh->fused += sh->held[v][b].nbytes;
    if (sh->fused > sh->fpeak)
        sh->fpeak = sh->fused;
    return 0;
}

/* Hold the current group's need values for as many batches (in data order) as the budget allows,
 * on worker w, computing them from the previous group's where they lie downstream of those. */
static int fill_cache(shared *sh, worker *w, npe_error *err)
{
    gpart *P = &sh->part;
    int x = sh->base->inputs[0];
    int64_t kmax = 0;
    size_t tot = 0;
    for (int64_t b = 0; b < sh->nb; b++) {
        size_t nb = need_bytes(sh, b, 0);
        if (nb > sh->fbudget - tot)
            break;
        tot += nb;
        kmax = b + 1;
    }
    for (int64_t b = kmax; b < sh->nb; b++) {
        drop_batch(sh, b, 1);
        sh->bheld[b] = 0;
    }
    int64_t tail = sh->nb - 1; /* later batches whose previous-group values may go for room */
    npe_exec *inc_exec = NULL;
    npe_array *outs = calloc((size_t)P->n_need + 1, sizeof(*outs));
    npe_array *ins = calloc((size_t)P->n_inc_in + 1, sizeof(*ins));
    int r = 0;
    if (!outs || !ins)
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (int64_t b = 0; b < kmax && !r; b++) {
        size_t miss = need_bytes(sh, b, 1);
        if (!miss) {
            drop_batch(sh, b, 0);
            sh->bheld[b] = 1;
            continue;
        }
        /* room: what later batches hold for the previous group only goes first, then this one's */
        while (tail > b && sh->fused + miss > sh->fbudget)
            drop_batch(sh, tail--, 0);
        if (sh->fused + miss > sh->fbudget)
            drop_batch(sh, b, 0);
        sh->bheld[b] = 0;
        if (sh->fused + miss > sh->fbudget) {
            drop_batch(sh, b, 1);
            continue;
        }
        const sbatch *B = &sh->batches[b];
        npe_array own_in = {0}, own_tgt = {0};
        const npe_array *in = &B->in;
        if (!B->cached) {
            if ((r = npe_dataset_read(sh->o->data, B->start, B->n, &own_in, &own_tgt, err)))
                break;
            in = &own_in;
        }
        int use_inc = P->inc != NULL;
        for (int j = 0; use_inc && j < P->n_inc_in; j++)
            use_inc = P->inc_in[j] == x ||
                      (sh->held[P->inc_in[j]] && sh->held[P->inc_in[j]][b].data);
        if (use_inc) {
            for (int j = 0; j < P->n_inc_in; j++)
                ins[j] = P->inc_in[j] == x ? *in : sh->held[P->inc_in[j]][b];
            if (!inc_exec)
                r = exec_create(sh, P->inc, &inc_exec, err);
            if (!r && !(r = npe_exec_run(inc_exec, &w->kx, ins, P->n_inc_in, outs, P->n_inc_out,
                                         err)))
                for (int k = 0; k < P->n_inc_out && !r; k++)
                    r = hold(sh, P->inc_out[k], b, &outs[k], err);
            free_arrays(outs, P->n_inc_out);
        } else {
            if (!w->pre_exec)
                r = exec_create(sh, sh->part.pre, &w->pre_exec, err);
            if (!r && !(r = npe_exec_run(w->pre_exec, &w->kx, in, 1, outs, P->n_need, err)))
                for (int k = 0; k < P->n_need && !r; k++)
                    r = hold(sh, P->need[k], b, &outs[k], err);
            free_arrays(outs, P->n_need);
        }
        if (r)
            npe_error_prefix(err, "original model on samples %lld..%lld", (long long)B->start,
                             (long long)(B->start + B->n - 1));
        npe_array_free(&own_in);
        npe_array_free(&own_tgt);
        drop_batch(sh, b, 0);
        if (!r && sh->fused <= sh->fbudget)
            sh->bheld[b] = 1;
        else
            drop_batch(sh, b, 1);
    }
    npe_exec_destroy(inc_exec);
    npe_graph_destroy(sh->part.inc); /* only the fill runs it */
    sh->part.inc = NULL;
    int all = 1;
    for (int64_t b = 0; b < sh->nb; b++)
        all &= sh->bheld[b];
    if (all) { /* nothing reads the input again: its activations go now, not with the group */
        npe_exec_destroy(w->pre_exec);
        w->pre_exec = NULL;
    }
    free(outs);
    free(ins);
    return r;
}

/* Executors of the unchanged part for the workers when some batch's frontier is not held:
 * worker 0 runs the template, the others copies made now (not while worker 0 runs it). */
static int prepare_pre(shared *sh, worker *W, int nworkers, npe_error *err)
{
    int all = 1;
    for (int64_t b = 0; b < sh->nb; b++)
        all &= sh->bheld[b];
    if (!sh->part.n_need || all)
        return 0;
    int r = 0;
    for (int i = 0; i < nworkers && !r; i++) {
        worker *w = &W[i];
        if (w->pre_exec)
            continue;
        npe_graph *g = sh->part.pre;
        if (i > 0) {
            if ((r = npe_graph_clone_shared(sh->part.pre, &w->pre_graph)))
                return npe_error_set(err, r, "out of memory cloning the model");
            g = w->pre_graph;
        }
        r = exec_create(sh, g, &w->pre_exec, err);
    }
    return r;
}

/* After a group: its workers' parts go; its region and need values stay as the previous group's
 * for the next fill. */
static void teardown_group(shared *sh, worker *W, int nworkers)
{
    for (int i = 0; i < nworkers; i++)
        worker_drop_part(&W[i]);
    part_finish(&sh->old);
    sh->old = sh->part;
    npe_graph_destroy(sh->old.pre);
    npe_graph_destroy(sh->old.inc);
    sh->old.pre = sh->old.inc = NULL;
    memset(&sh->part, 0, sizeof(sh->part));
}

/* Elements of every activation at the full and at the last batch size, for the budget. */
static int estimate_sizes(shared *sh, npe_error *err)
{
    const npe_graph *base = sh->base;
    int64_t nlast = sh->batches[sh->nb - 1].n;
    for (int which = 0; which < 2; which++) {
        if (!(sh->numel_at[which] = calloc((size_t)base->n_values + 1, sizeof(int64_t))))
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        npe_graph *c = NULL;
        int r = npe_graph_clone_shared(base, &c);
        if (r)
            return npe_error_set(err, r, "out of memory cloning the model");
        npe_tshape in = sh->o->inputs[0];
        in.d[0] = which ? nlast : sh->batches[0].n;
        if ((r = npe_graph_infer(c, &in, 1, err))) {
            npe_graph_destroy(c);
            return r;
        }
        for (int v = 0; v < c->n_values; v++)
            if (npe_subgraph_is_activation(c, v)) {
                int64_t n = npe_value_numel(&c->values[v]);
                sh->numel_at[which][v] = n < 0 || n > (INT64_MAX >> 20) ? INT64_MAX >> 20 : n;
            }
        npe_graph_destroy(c);
    }
    return 0;
}

static int64_t kept_of(int64_t C, double s, int align)
{
    return npe_prune_kept_count(C, s, align);
}

/* MACs or params saved when only group gi is pruned at s (for the target policy). */
static int saving_of(const shared *sh, int gi, double s, enum npe_target_kind kind, int64_t total,
                     double *out, npe_error *err)
{
    npe_graph *pg = NULL;
    npe_prune_plan *plan = NULL;
    npe_counts c = {0};
    int r = npe_graph_clone_shared(sh->base, &pg);
    if (r)
        return npe_error_set(err, r, "out of memory cloning the model");
    if (!(r = npe_prune_plan_create(sh->G, &plan)) &&
        !(r = npe_prune_select(sh->base, sh->G, gi, s, sh->o->channel_alignment, plan, err)) &&
        !(r = npe_prune_apply(pg, sh->G, plan, err)) && !(r = npe_count(pg, &c, err)))
        *out = (double)(total - (kind == NPE_TARGET_MACS ? c.macs : c.params));
    else if (r && !err->msg[0])
        npe_error_set(err, r, "out of memory");
    npe_counts_free(&c);
    npe_prune_plan_destroy(plan);
    npe_graph_destroy(pg);
    return r;
}

static int choose(shared *sh, npe_sens_result *res, npe_error *err)
{
    const npe_sens_options *o = sh->o;
    npe_sens_table *t = &res->table;
    size_t n = t->n_groups;
    int r = 0;
    double *chosen = calloc(n + 1, sizeof(double));
    int *index = calloc(n + 1, sizeof(int));
    double **saving = calloc(n + 1, sizeof(double *));
    if (!chosen || !index || !saving) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    double target = o->target_macs != 0 ? o->target_macs : o->target_params;
    if (target != 0) {
        res->target_used = 1;
        res->target_kind = o->target_macs != 0 ? NPE_TARGET_MACS : NPE_TARGET_PARAMS;
        int64_t total = res->target_kind == NPE_TARGET_MACS ? res->macs_before : res->params_before;
        for (size_t g = 0; g < n && !r; g++) {
            const npe_sens_group *grp = &t->groups[g];
            if (grp->skip_reason)
                continue;
            if (!(saving[g] = calloc(grp->n_sparsities, sizeof(double)))) {
                r = npe_error_set(err, NPE_ENOMEM, "out of memory");
                break;
            }
            size_t len = npe_sens_row_len(t, g);
            for (size_t i = 0; i < len && !r; i++)
                r = saving_of(sh, sh->tg2G[g], grp->sparsities[i], res->target_kind, total,
                              &saving[g][i], err);
        }
        if (!r)
            r = npe_policy_target(t, res->target_kind, (const double *const *)saving,
                                  (double)total, target, chosen, index, &res->target, err);
    } else {
        r = npe_policy_threshold(t, o->metric_thres, chosen, index, err);
    }
    if (r)
        goto out;
    if (!(res->choices = calloc(n + 1, sizeof(*res->choices)))) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out;
    }
    res->n_choices = n;
    for (size_t g = 0; g < n; g++) {
        npe_sens_choice *c = &res->choices[g];
        const npe_sens_group *grp = &t->groups[g];
        c->name = grp->name;
        c->skip_reason = grp->skip_reason;
        c->channels = grp->channels;
        c->sparsity = grp->skip_reason ? 0 : chosen[g];
        c->index = grp->skip_reason ? -1 : index[g];
        c->kept = c->sparsity > 0 ? kept_of(grp->channels, c->sparsity, o->channel_alignment)
                                  : grp->channels;
    }
out:
    for (size_t g = 0; saving && g < n; g++)
        free(saving[g]);
    free(saving);
    free(chosen);
    free(index);
    return r;
}

/* Counts of the original and of the model with every choice applied. */
static int count_after(shared *sh, npe_sens_result *res, npe_error *err)
{
    npe_graph *pg = NULL;
    npe_prune_plan *plan = NULL;
    npe_counts c = {0};
    int r = npe_graph_clone_shared(sh->base, &pg);
    if (r)
        return npe_error_set(err, r, "out of memory cloning the model");
    if (!(r = npe_sens_plan(res, sh->base, sh->G, sh->o->channel_alignment, &plan, err)) &&
        !(r = npe_prune_apply(pg, sh->G, plan, err)) && !(r = npe_count(pg, &c, err))) {
        res->params_after = c.params;
        res->macs_after = c.macs;
    }
    npe_counts_free(&c);
    npe_prune_plan_destroy(plan);
    npe_graph_destroy(pg);
    return r;
}

int npe_sens_plan(const npe_sens_result *r, const npe_graph *g, const npe_groups *G, int align,
                  npe_prune_plan **out, npe_error *err)
{
    *out = NULL;
    npe_prune_plan *plan = NULL;
    int rc = npe_prune_plan_create(G, &plan);
    if (rc)
        return npe_error_set(err, rc, "out of memory");
    for (size_t i = 0; i < r->n_choices; i++) {
        const npe_sens_choice *c = &r->choices[i];
        if (c->skip_reason || !(c->sparsity > 0))
            continue;
        int gi = npe_groups_find_name(G, c->name);
        if (gi < 0)
            continue;
        if ((rc = npe_prune_select(g, G, gi, c->sparsity, align, plan, err))) {
            npe_prune_plan_destroy(plan);
            return rc;
        }
    }
    *out = plan;
    return 0;
}

void npe_sens_result_free(npe_sens_result *r)
{
    if (!r)
        return;
    npe_sens_finish(&r->table);
    free(r->choices);
    memset(r, 0, sizeof(*r));
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* ---- The analysis ---------------------------------------------------------------------------- */
int npe_sens_analyse(const npe_graph *g, const npe_sens_options *o, npe_sens_result *res,
                     npe_error *err)
{
    memset(res, 0, sizeof(*res));
    int r = check_options(g, o, err);
    if (r)
        return r;
    shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.o = o;
    sh.t = &res->table;
    sh.fidelity = o->metric.kind == NPE_METRIC_FIDELITY;
    npe_kernels_init_cpu(&sh.k, NPE_KCPU_ALL);
    int nworkers = o->workers > 1 ? o->workers : 1;
    int nthreads = o->threads > 0 ? o->threads : online_cpus() / nworkers;
    if (nthreads < 1)
        nthreads = 1;
    worker *W = NULL;
    npe_graph *base = NULL;
    npe_groups *G = NULL;
    int mutex_ok = 0;

    npe_dataset_info di;
    npe_dataset_get_info(o->data, &di);
    if ((r = check_data(o, &di, err)))
        return r;
    int64_t n_samples = di.size;
    if (o->limit > 0 && o->limit < n_samples)
        n_samples = o->limit;
    int64_t bs = o->batch_size > 0 ? o->batch_size : 32;
    /* fidelity compares every output; a caller metric (NEEDS_ANY) is handed every output too */
    sh.n_out = (sh.fidelity || npe_metric_needs(o->metric.kind) == NPE_METRIC_NEEDS_ANY)
                   ? g->n_outputs : 1;
    sh.nb = (n_samples + bs - 1) / bs;
    if (!(sh.batches = calloc((size_t)sh.nb, sizeof(*sh.batches)))) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    for (int64_t b = 0; b < sh.nb; b++) {
        sh.batches[b].start = b * bs;
        sh.batches[b].n = n_samples - b * bs < bs ? n_samples - b * bs : bs;
    }

    /* 1. groups, on a clone the workers share read-only */
    if ((r = npe_graph_clone_shared(g, &base))) {
        r = npe_error_set(err, r, "out of memory cloning the model");
        goto out_free;
    }
    if ((r = npe_groups_find(base, o->inputs, o->n_inputs, &G, err)))
        goto out_free;
    sh.base = base;
    sh.G = G;

    /* A quarter of the budget holds the conv weights every evaluation shares, prepared once
     * (Winograd's transformed filters, 4x the 3x3 weights): without them each batch of each
     * evaluation transforms them again. */
    if ((r = npe_prep_cache_create(o->cache_bytes / 4, &sh.pcache))) {
        r = npe_error_set(err, r, "out of memory");
        goto out_free;
    }
    sh.pbudget = o->cache_bytes / 4;
    {
        const char *e = getenv("NPE_SENS_SLICES");
        sh.slices = !(e && e[0] == '0');
    }
    sh.nworkers = nworkers;

    /* 2. baseline (fills the cache) on worker 0 */
    if (!(W = calloc((size_t)nworkers, sizeof(*W)))) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    if ((r = worker_init(&W[0], &sh, nthreads, 1, err)))
        goto out_workers;
    double measured = NAN;
    if ((r = baseline_pass(&W[0], &measured, err)))
        goto out_workers;
    res->measured_baseline = measured;
    if (sh.all_cached || !sh.fidelity) { /* the original model does not run again */
        npe_exec_destroy(W[0].ref_exec);
        npe_graph_destroy(W[0].ref_graph);
        W[0].ref_exec = NULL;
        W[0].ref_graph = NULL;
    }
    double baseline = sh.fidelity ? 1.0 : measured;
    char vb[NPE_SENS_NUM_MAX];
    npe_sens_format_value(measured, vb);
    slog(o, NPE_LOG_INFO, "baseline %s over %lld samples: %s (%.17g)",
         npe_metric_name(o->metric.kind), (long long)n_samples, vb, measured);
    if (!isnan(o->ori_metric)) {
        if (fabs(o->ori_metric - measured) > 1e-4)
            slog(o, NPE_LOG_WARN, "ori_metric %.10g differs from the measured baseline %.10g by "
                 "more than 1e-4 (different data, preprocessing or model?); ori_metric is used",
                 o->ori_metric, measured);
        baseline = o->ori_metric;
    }
    if (!isfinite(baseline)) {
        r = npe_error_set(err, NPE_EINVAL, "the original model's %s is %g: nothing to compare "
                          "against", npe_metric_name(o->metric.kind), baseline);
        goto out_workers;
    }
    res->baseline = baseline;

    /* the table, resumed from an earlier run */
    char fp[1024];
    snprintf(fp, sizeof(fp), "%s;channel_alignment=%d;num_classes=%d;ignore_index=%d;samples=%lld",
             o->fingerprint ? o->fingerprint : "", o->channel_alignment, o->metric.num_classes,
             o->metric.ignore_index, (long long)n_samples);
    npe_sens_config cfg = {0};
    cfg.metric = npe_metric_name(o->metric.kind);
    cfg.higher_is_better = npe_metric_higher_is_better(o->metric.kind);
    cfg.baseline = baseline;
    cfg.thres = o->metric_thres;
    cfg.early_stop = o->early_stop_mode;
    cfg.fingerprint = fp;
    if ((r = npe_sens_init(sh.t, &cfg, err)))
        goto out_workers;
    if (o->output_dir && (r = npe_sens_set_output(sh.t, o->output_dir, err)))
        goto out_workers;
    if ((r = build_table(&sh, o, err)))
        goto out_workers;
    if (o->output_dir) {
        npe_sens_resume_info ri = {0};
        if ((r = npe_sens_resume(sh.t, &ri, err)))
            goto out_workers;
        res->restored = ri.restored;
        res->discarded = ri.discarded;
        if (ri.found)
            slog(o, NPE_LOG_INFO, "resumed from %s: %zu value(s) taken over, %zu discarded",
                 o->output_dir, ri.restored, ri.discarded);
        if ((r = npe_sens_save(sh.t, err)))
            goto out_workers;
    }

    /* 3. the pairs, in serial order */
    for (size_t tg = 0; tg < sh.t->n_groups; tg++)
        sh.n_items += sh.t->groups[tg].skip_reason ? 0 : sh.t->groups[tg].n_sparsities;
    sh.item_g = calloc(sh.n_items + 1, sizeof(size_t));
    sh.item_i = calloc(sh.n_items + 1, sizeof(size_t));
    sh.taken = calloc(sh.n_items + 1, 1);
    if (!sh.item_g || !sh.item_i || !sh.taken) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_workers;
    }
    size_t k = 0;
    for (size_t tg = 0; tg < sh.t->n_groups; tg++)
        for (size_t i = 0; !sh.t->groups[tg].skip_reason && i < sh.t->groups[tg].n_sparsities;
             i++) {
            sh.item_g[k] = tg;
            sh.item_i[k++] = i;
        }
    size_t done0, total0;
    npe_sens_progress(sh.t, &done0, &total0);
    slog(o, NPE_LOG_INFO, "sensitivity analysis: %zu of %zu evaluations to run, %d worker(s) x %d "
         "thread(s)", total0 - done0, total0, nworkers, nthreads);

    /* 4. workers */
    sh.reuse = o->reuse != 0;
    if (sh.reuse) {
        npe_error e2 = {0};
        if (!(sh.held = calloc((size_t)base->n_values + 1, sizeof(*sh.held))) ||
            !(sh.bheld = calloc((size_t)sh.nb + 1, 1))) {
            r = npe_error_set(err, NPE_ENOMEM, "out of memory");
            goto out_workers;
        }
        if (estimate_sizes(&sh, &e2)) {
            /* the whole-model path reports the same failure with the batch that meets it */
            slog(o, NPE_LOG_DEBUG, "no reuse of computation: %s", e2.msg);
            sh.reuse = 0;
        } else {
            slog(o, NPE_LOG_INFO, "each group's region runs on the original model's activations "
                 "at its frontier, %zu MiB of them held at most", sh.fbudget >> 20);
        }
    }
    int need_ref = sh.fidelity && !sh.all_cached;
    for (int i = 1; i < nworkers; i++)
        if ((r = worker_init(&W[i], &sh, nthreads, need_ref, err)))
            goto out_workers;
    if (pthread_mutex_init(&sh.mu, NULL)) {
        r = npe_error_set(err, NPE_ENOMEM, "cannot create a mutex");
        goto out_workers;
    }
    mutex_ok = 1;
    sh.t0 = now_s();
    if (!sh.reuse) {
        sh.cursor = 0;
        sh.item_end = sh.n_items;
        run_phase(&sh, W, nworkers);
    }
    /* group by group: the parts, the frontier held, then the group's sparsities in parallel */
    for (size_t tg = 0, k0 = 0; sh.reuse && tg < sh.t->n_groups && !sh.stop; tg++) {
        size_t k1 = k0 + (sh.t->groups[tg].skip_reason ? 0 : sh.t->groups[tg].n_sparsities);
        int pending = 0;
        for (size_t i = 0; k0 + i < k1 && !pending; i++)
            pending = npe_sens_pending(sh.t, tg, i);
        if (pending) {
            if ((r = setup_group(&sh, tg, err)) ||
                (sh.part.ok && sh.part.n_need && (r = fill_cache(&sh, &W[0], err))) ||
                (sh.part.ok && (r = prepare_pre(&sh, W, nworkers, err)))) {
                npe_error_prefix(err, "group '%s'", sh.t->groups[tg].name);
                sh.rc = r;
                sh.err = *err;
                break;
            }
            sh.cursor = k0;
            sh.item_end = k1;
            run_phase(&sh, W, nworkers);
            teardown_group(&sh, W, nworkers);
        }
        k0 = k1;
    }
    res->evaluated = sh.evaluated;
    res->region_evals = sh.region_evals;
    /* what the batches took, the most held at the frontiers, and the prepared weights */
    res->cache_peak = (o->cache_bytes - sh.pbudget - sh.fbudget) + sh.fpeak +
                      npe_prep_cache_bytes(sh.pcache);
    for (int i = 0; i < nworkers; i++)
        res->cache_peak += W[i].own_peak;
    if (sh.reuse && sh.evaluated)
        slog(o, NPE_LOG_INFO, "%zu of %zu evaluation(s) ran only the group's region; cache peak "
             "%.1f MiB", sh.region_evals, sh.evaluated, (double)res->cache_peak / 1048576.0);
    if (sh.rc) {
        *err = sh.err;
        r = sh.rc;
        goto out_workers;
    }
    if (sh.canceled) {
        r = npe_error_set(err, NPE_ECANCELED, "sensitivity analysis cancelled after %zu "
                          "evaluation(s); run it again with the same output_dir to resume",
                          sh.evaluated);
        goto out_workers;
    }

    /* 5. counts and choice */
    npe_counts c0 = {0};
    if ((r = npe_count(base, &c0, err)))
        goto out_workers;
    res->params_before = c0.params;
    res->macs_before = c0.macs;
    npe_counts_free(&c0);
    if ((r = choose(&sh, res, err)) || (r = count_after(&sh, res, err)))
        goto out_workers;

out_workers:
    for (int i = 0; W && i < nworkers; i++)
        worker_fini(&W[i]);
    free(W);
    npe_prep_cache_destroy(sh.pcache);
    part_finish(&sh.part);
    part_finish(&sh.old);
    for (int v = 0; sh.held && v < base->n_values; v++) {
        free_arrays(sh.held[v], sh.held[v] ? (int)sh.nb : 0);
        free(sh.held[v]);
    }
    free(sh.held);
    free(sh.hv);
    free(sh.bheld);
    free(sh.numel_at[0]);
    free(sh.numel_at[1]);
    if (mutex_ok)
        pthread_mutex_destroy(&sh.mu);
out_free:
    for (int64_t b = 0; sh.batches && b < sh.nb; b++) {
        npe_array_free(&sh.batches[b].in);
        npe_array_free(&sh.batches[b].tgt);
        free_arrays(sh.batches[b].ref, sh.n_out);
        free(sh.batches[b].ref);
    }
    free(sh.batches);
    free(sh.item_g);
    free(sh.item_i);
    free(sh.taken);
    free(sh.tg2G);
    npe_groups_destroy(G);
    npe_graph_destroy(base);
    if (r)
        npe_sens_result_free(res);
    return r;
}
