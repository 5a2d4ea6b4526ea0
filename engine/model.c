/* Public model API: import a traced TorchScript archive, run it with the optimised CPU kernels on a
 * private thread pool; and .npy tensors in and out, so tools need nothing but npengine.h. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/npy.h"
#include "../importers/torchscript.h"
#include "context.h"
#include "model_internal.h"

static void array_to_tensor(npe_array *a, npe_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->dtype = a->dtype;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof(t->shape));
    t->data = a->data;
    t->nbytes = a->nbytes;
    memset(a, 0, sizeof(*a)); /* ownership moves to t */
}

/* A borrowed view: the array does not own t's data. */
static void tensor_view(const npe_tensor *t, npe_array *a)
{
    memset(a, 0, sizeof(*a));
    a->dtype = t->dtype;
    a->ndim = t->ndim;
    memcpy(a->shape, t->shape, sizeof(a->shape));
    a->data = t->data;
    a->nbytes = t->nbytes;
}

static int check_tensor(npe_ctx *ctx, const npe_tensor *t, const char *what, int i)
{
    if (!t || t->ndim < 0 || t->ndim > NPE_MAX_DIMS || (unsigned)t->dtype >= NPE_DTYPE_COUNT)
        return npe_ctx_error(ctx, NPE_EINVAL, "%s %d: bad tensor description", what, i);
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return npe_ctx_error(ctx, NPE_EINVAL, "%s %d: negative dimension %lld", what, i,
                                 (long long)t->shape[d]);
        if (t->shape[d] && n > UINT64_MAX / (uint64_t)t->shape[d])
            return npe_ctx_error(ctx, NPE_EINVAL, "%s %d: shape overflows", what, i);
        n *= (uint64_t)t->shape[d];
    }
    if (n && n > SIZE_MAX / npe_dtype_size(t->dtype))
        return npe_ctx_error(ctx, NPE_EINVAL, "%s %d: shape overflows", what, i);
    if (t->nbytes != n * npe_dtype_size(t->dtype) || (n && !t->data))
        return npe_ctx_error(ctx, NPE_EINVAL,
                             "%s %d: nbytes is %zu but the shape needs %llu bytes of %s", what, i,
                             t->nbytes, (unsigned long long)(n * npe_dtype_size(t->dtype)),
                             npe_dtype_name(t->dtype));
    return 0;
}

NPE_API int npe_tensor_load_npy(npe_ctx *ctx, const char *path, npe_tensor *out)
{
    npe_ctx_clear_error(ctx);
    if (!path || !out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_tensor_load_npy: NULL argument");
    memset(out, 0, sizeof(*out));
    npe_error err = {0};
    npe_array a;
    int r = npe_npy_load(path, &a, &err);
    if (r)
        return npe_ctx_fail(ctx, &err);
    array_to_tensor(&a, out);
    return 0;
}

NPE_API int npe_tensor_save_npy(npe_ctx *ctx, const char *path, const npe_tensor *t)
{
    npe_ctx_clear_error(ctx);
    if (!path)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_tensor_save_npy: NULL path");
    int r = check_tensor(ctx, t, "tensor", 0);
    if (r)
        return r;
    npe_error err = {0};
    npe_array a;
    tensor_view(t, &a);
    if ((r = npe_npy_save(path, &a, &err)))
        return npe_ctx_fail(ctx, &err);
    return 0;
}

NPE_API void npe_tensor_release(npe_tensor *t)
{
    if (!t)
        return;
    free(t->data);
    memset(t, 0, sizeof(*t));
}

NPE_API void npe_model_options_init(npe_model_options *opt)
{
    if (opt)
        memset(opt, 0, sizeof(*opt));
}

/* Most forwards one model runs at once; more calls wait for a free slot. */
#define MAX_SLOTS 64

NPE_API int npe_model_load(npe_ctx *ctx, const char *path, const npe_model_options *opt,
                           npe_model **out)
{
    npe_ctx_clear_error(ctx);
    if (!out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_model_load: NULL out");
    *out = NULL;
    if (!path)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_model_load: NULL path");
    npe_model_options defaults;
    npe_model_options_init(&defaults);
    if (!opt)
        opt = &defaults;
    if (opt->n_cut_outputs < 0 || (opt->n_cut_outputs > 0 && !opt->cut_outputs))
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_model_load: bad cut_outputs");

    npe_model *m = calloc(1, sizeof(*m));
    if (!m)
        return npe_ctx_error(ctx, NPE_ENOMEM, "%s: out of memory", path);
    if (pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        return npe_ctx_error(ctx, NPE_ENOMEM, "%s: cannot create a mutex", path);
    }
    if (pthread_cond_init(&m->cv, NULL)) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return npe_ctx_error(ctx, NPE_ENOMEM, "%s: cannot create a condition variable", path);
    }
    m->ctx = ctx;
    m->threads = opt->threads;
    npe_error err = {0};
    int r = NPE_ENOMEM;
    if (!(m->path = strdup(path)) || !(m->slots = calloc(4, sizeof(*m->slots)))) {
        npe_error_set(&err, NPE_ENOMEM, "%s: out of memory", path);
        goto out_free_model;
    }
    m->cap_slots = 4;
    npe_ts_options ts = {0};
    ts.forward_name = opt->forward_name;
    ts.cut_outputs = opt->cut_outputs;
    ts.n_cut_outputs = opt->n_cut_outputs;
    if ((r = npe_ts_import(path, &ts, &m->graph, &err)))
        goto out_free_model;
    npe_kernels_init_cpu(&m->kernels, NPE_KCPU_ALL);
    if (opt->threads != 1)
        m->pool = npe_kpool_create(opt->threads); /* NULL (serial) if threads cannot be had */
    if ((r = npe_exec_create(m->graph, &m->kernels, 0, &m->exec, &err)))
        goto out_free_model;
    m->n_slots = 1;
    npe_model_reset_slots(m);
    *out = m;
    return 0;

out_free_model:
    npe_model_destroy(m);
    if (!strstr(err.msg, path)) /* messages from code records name the record, not the file */
        npe_error_prefix(&err, "%s", path);
    return npe_ctx_fail(ctx, &err);
}

void npe_model_reset_slots(npe_model *m)
{
    for (int i = 1; i < m->n_slots; i++) {
        npe_exec_destroy(m->slots[i].exec);
        npe_graph_destroy(m->slots[i].graph);
        npe_kpool_destroy(m->slots[i].pool);
    }
    memset(m->slots, 0, (size_t)m->cap_slots * sizeof(*m->slots));
    m->n_slots = 1;
    m->slots[0].graph = m->graph;
    m->slots[0].exec = m->exec;
    m->slots[0].pool = m->pool;
}

NPE_API void npe_model_destroy(npe_model *m)
{
    if (!m)
        return;
    if (m->slots)
        for (int i = 1; i < m->n_slots; i++) {
            npe_exec_destroy(m->slots[i].exec);
            npe_graph_destroy(m->slots[i].graph);
            npe_kpool_destroy(m->slots[i].pool);
        }
    free(m->slots);
    npe_model_analysis_free(m->an);
    npe_exec_destroy(m->exec);
    npe_kpool_destroy(m->pool);
    npe_graph_destroy(m->graph);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->report);
    free(m->path);
    free(m);
}

NPE_API int npe_model_input_count(const npe_model *m)
{
    return m ? m->graph->n_inputs : 0;
}

NPE_API int npe_model_output_count(const npe_model *m)
{
    return m ? m->graph->n_outputs : 0;
}

NPE_API const char *npe_model_input_name(const npe_model *m, int i)
{
    if (!m || i < 0 || i >= m->graph->n_inputs)
        return NULL;
    return m->graph->values[m->graph->inputs[i]].name;
}

NPE_API const char *npe_model_output_name(const npe_model *m, int i)
{
    if (!m || i < 0 || i >= m->graph->n_outputs)
        return NULL;
    return m->graph->values[m->graph->outputs[i]].name;
}

/* A free slot for this forward (waiting while all are busy): its index, and a copy of it in
 * *copy (m->slots may move when another thread adds a slot). */
static int acquire_slot(npe_model *m, npe_model_slot *copy)
{
    pthread_mutex_lock(&m->mu);
    for (;;) {
        for (int i = 0; i < m->n_slots; i++)
            if (!m->slots[i].busy) {
                m->slots[i].busy = 1;
                *copy = m->slots[i];
                pthread_mutex_unlock(&m->mu);
                return i;
            }
        m->waiting++;
        pthread_cond_wait(&m->cv, &m->mu);
        m->waiting--;
    }
}

/* A copy of graph g (an idle slot's: this thread holds it) as a new slot, for the calls waiting. */
static void add_slot(npe_model *m, const npe_graph *g)
{
    npe_model_slot ns = {0};
    npe_error err = {0};
    if (npe_graph_clone(g, &ns.graph))
        return;
    if (npe_exec_create(ns.graph, &m->kernels, 0, &ns.exec, &err)) {
        npe_graph_destroy(ns.graph);
        return;
    }
    if (m->threads != 1)
        ns.pool = npe_kpool_create(m->threads); /* NULL: serial, same results */
    pthread_mutex_lock(&m->mu);
    if (m->n_slots == m->cap_slots) {
        int cap = m->cap_slots * 2;
        npe_model_slot *grown = realloc(m->slots, (size_t)cap * sizeof(*grown));
        if (!grown) {
            pthread_mutex_unlock(&m->mu);
            npe_exec_destroy(ns.exec);
            npe_graph_destroy(ns.graph);
            npe_kpool_destroy(ns.pool);
            return;
        }
        memset(grown + m->cap_slots, 0, (size_t)(cap - m->cap_slots) * sizeof(*grown));
        m->slots = grown;
        m->cap_slots = cap;
    }
    m->slots[m->n_slots++] = ns;
    pthread_mutex_unlock(&m->mu);
}

/* Give slot si back; when calls are waiting, first copy its graph for them (it is idle now, so
 * it can be read while the others keep running theirs). */
static void release_slot(npe_model *m, int si, const npe_graph *g)
{
    pthread_mutex_lock(&m->mu);
    int grow = m->waiting > 0 && m->n_slots < MAX_SLOTS;
    pthread_mutex_unlock(&m->mu);
    if (grow)
        add_slot(m, g);
    pthread_mutex_lock(&m->mu);
    m->slots[si].busy = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

NPE_API int npe_model_forward(npe_model *m, const npe_tensor *inputs, int n_inputs,
                              npe_tensor *outputs, int n_outputs)
{
    if (!m)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    const npe_graph *g = m->graph;
    if (n_inputs != g->n_inputs || (n_inputs && !inputs))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "the model takes %d input(s), %d given",
                             g->n_inputs, n_inputs);
    if (n_outputs < 0 || n_outputs > g->n_outputs || (n_outputs && !outputs))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "the model has %d output(s), %d asked for",
                             g->n_outputs, n_outputs);
    int r;
    for (int i = 0; i < n_inputs; i++)
        if ((r = check_tensor(m->ctx, &inputs[i], "input", i)))
            return r;
    for (int i = 0; i < n_outputs; i++)
        if (outputs[i].data && outputs[i].nbytes == 0)
            return npe_ctx_error(m->ctx, NPE_EINVAL, "output %d: data is set but nbytes is 0 "
                                 "(set nbytes to the buffer's size, or data to NULL)", i);

    npe_array *in = calloc((size_t)(n_inputs ? n_inputs : 1), sizeof(*in));
    npe_array *res = calloc((size_t)(n_outputs ? n_outputs : 1), sizeof(*res));
    if (!in || !res) {
        free(in);
        free(res);
        return npe_ctx_error(m->ctx, NPE_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_inputs; i++)
        tensor_view(&inputs[i], &in[i]);
    npe_model_slot slot;
    int si = acquire_slot(m, &slot);
    npe_kexec ex;
    npe_kexec_init(&ex, slot.pool, NULL, 0);
    npe_error err = {0};
    r = npe_exec_run(slot.exec, &ex, in, n_inputs, res, n_outputs, &err);
    release_slot(m, si, slot.graph);
    /* caller buffers: all must fit before any is written */
    for (int i = 0; !r && i < n_outputs; i++)
        if (outputs[i].data && outputs[i].nbytes < res[i].nbytes)
            r = npe_error_set(&err, NPE_EINVAL, "output %d needs %zu bytes (%lld float32 "
                              "values), the caller's buffer has %zu", i, res[i].nbytes,
                              (long long)npe_array_numel(&res[i]), outputs[i].nbytes);
    if (r) {
        for (int i = 0; i < n_outputs; i++)
            npe_array_free(&res[i]);
        r = npe_ctx_fail(m->ctx, &err);
    } else {
        for (int i = 0; i < n_outputs; i++) {
            if (outputs[i].data) {
                void *dst = outputs[i].data;
                memcpy(dst, res[i].data, res[i].nbytes);
                outputs[i].dtype = res[i].dtype;
                outputs[i].ndim = res[i].ndim;
                memcpy(outputs[i].shape, res[i].shape, sizeof(outputs[i].shape));
                outputs[i].nbytes = res[i].nbytes;
                npe_array_free(&res[i]);
            } else {
                array_to_tensor(&res[i], &outputs[i]);
            }
        }
    }
    free(in);
    free(res);
    return r;
}
