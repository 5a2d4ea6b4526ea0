/* `lbprune run` / `lbprune sens`: the whole job of a configuration file. Analysis (engine/sens.c),
 * the per-group choice, one physical cut of every group, the final evaluation and every export. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../formats/fileio.h"
#include "../importers/torchscript.h"
#include "../importers/ts_export.h"
#include "../kernels/cpu/threadpool.h"
#include "config_internal.h"
#include "context.h"
#include "dataset.h"
#include "exec.h"
#include "json_writer.h"
#include "metric.h"
#include "prune.h"
#include "report_html.h"
#include "sens.h"

typedef struct job {
    npe_ctx *ctx;
    const npe_run_callbacks *cb;
} job;

static void on_progress(void *user, const npe_sens_progress_info *p)
{
    job *J = user;
    if (J->cb && J->cb->progress)
        J->cb->progress(J->cb->user, p->group, p->sparsity, p->value, p->done, p->total, p->eta_s);
}

static int on_cancel(void *user)
{
    job *J = user;
    return J->cb && J->cb->cancel ? J->cb->cancel(J->cb->user) : 0;
}

static int mkdir_p(const char *dir, npe_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
        return npe_error_set(err, NPE_EINVAL, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return npe_error_set(err, NPE_EIO, "%s: cannot create: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return npe_error_set(err, NPE_EIO, "%s: cannot create: %s", buf, strerror(errno));
    return 0;
}

static void free_arrays(npe_array *a, int n)
{
    for (int i = 0; a && i < n; i++)
        npe_array_free(&a[i]);
}

/* Metric of graph g over the data set (fidelity: against ref_g's outputs on the same batches).
 * Fidelity and custom metrics get every output of the model, the others the first. */
static int evaluate(npe_graph *g, npe_graph *ref_g, const npe_dataset *d, int64_t batch,
                    int64_t limit, const npe_metric_opts *mo, int threads, double *value,
                    npe_error *err)
{
    npe_kernels k;
    npe_kernels_init_cpu(&k, NPE_KCPU_ALL);
    npe_kpool *pool = threads == 1 ? NULL : npe_kpool_create(threads);
    npe_exec *x = NULL, *rx = NULL;
    npe_metric *m = NULL;
    int fidelity = mo->kind == NPE_METRIC_FIDELITY;
    int n_out = fidelity || npe_metric_needs(mo->kind) == NPE_METRIC_NEEDS_ANY ? g->n_outputs : 1;
    npe_array in = {0}, tgt = {0};
    npe_array *out = calloc((size_t)n_out, sizeof(*out));
    npe_array *ref = calloc((size_t)n_out, sizeof(*ref));
    npe_kexec ex;
    npe_kexec_init(&ex, pool, NULL, 0);
    int r;
    if (!out || !ref) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    if ((r = npe_exec_create(g, &k, 0, &x, err)) ||
        (fidelity && (r = npe_exec_create(ref_g, &k, 0, &rx, err))) ||
        (r = npe_metric_create(mo, &m, err)))
        goto out_free;
    npe_dataset_info info;
    npe_dataset_get_info(d, &info);
    int64_t n = limit > 0 && limit < info.size ? limit : info.size;
    for (int64_t s = 0; s < n; s += batch) {
        int64_t b = n - s < batch ? n - s : batch;
        if ((r = npe_dataset_read(d, s, b, &in, fidelity ? NULL : &tgt, err)) ||
            (r = npe_exec_run(x, &ex, &in, 1, out, n_out, err)) ||
            (fidelity && (r = npe_exec_run(rx, &ex, &in, 1, ref, n_out, err))) ||
            (r = npe_metric_update_batch(m, out, n_out, &tgt, fidelity ? ref : NULL, err)))
            goto out_free;
        npe_array_free(&in);
        npe_array_free(&tgt);
        free_arrays(out, n_out);
        free_arrays(ref, n_out);
    }
    r = npe_metric_value(m, value, err);
out_free:
    npe_array_free(&in);
    npe_array_free(&tgt);
    free_arrays(out, n_out);
    free_arrays(ref, n_out);
    free(out);
    free(ref);
    npe_metric_destroy(m);
    npe_exec_destroy(x);
    npe_exec_destroy(rx);
    npe_kpool_destroy(pool);
    return r;
}

/* Growable text for the summary table. */
typedef struct text {
    char *s;
    size_t n, cap;
} text;

static void tprintf(text *t, const char *fmt, ...) NPE_PRINTF(2, 3);
static void tprintf(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = t->cap - t->n;
        va_start(ap, fmt);
        int k = t->s ? vsnprintf(t->s + t->n, room, fmt, ap) : -2;
        va_end(ap);
        if (k >= 0 && (size_t)k < room) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (k >= 0 && cap - t->n <= (size_t)k)
            cap *= 2;
        char *ns = realloc(t->s, cap);
        if (!ns)
            return;
        t->s = ns;
        t->cap = cap;
    }
}

/* Write a text output atomically (formats/fileio.h: temporary file, fsync, rename). */
static int write_file(const char *path, const char *s, npe_error *err)
{
    npe_afile af;
    int r = npe_afile_open(&af, path, err);
    if (r)
        return r;
    if ((r = npe_afile_write(&af, s, strlen(s), err))) {
        npe_afile_abort(&af);
        return r;
    }
    return npe_afile_commit(&af, err);
}

NPE_API int npe_run(npe_ctx *ctx, const npe_config *cfg, unsigned flags, const npe_run_callbacks *cb,
                    char **summary)
{
    npe_ctx_clear_error(ctx);
    if (summary)
        *summary = NULL;
    if (!cfg)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_run: NULL configuration");
    const struct npe_config *c = cfg;
    const npe_data_source *src = cb ? cb->data : NULL;
    const npe_metric_callbacks *mcb = cb ? cb->metric : NULL;
    if (!c->model_path)
        return npe_ctx_error(ctx, NPE_EINVAL, "%s: [model] path is missing", c->path);
    if (!c->n_shapes && !src)
        return npe_ctx_error(ctx, NPE_EINVAL, "%s: [model] dummy_input is missing", c->path);
    if (!c->data_kind && !src)
        return npe_ctx_error(ctx, NPE_EINVAL, "%s: [data] kind is missing (imagefolder, idx, npy)",
                             c->path);
    if (src && (!src->read || src->sample_shape.ndim < 1 ||
                src->sample_shape.ndim > NPE_MAX_DIMS - 1))
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_run: the data source needs a read callback "
                             "and a sample_shape of 1 to %d dims", NPE_MAX_DIMS - 1);
    if (mcb && (!mcb->begin || !mcb->accumulate || !mcb->end))
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_run: the metric callbacks begin, accumulate "
                             "and end are required");
    if (src && c->data_kind)
        npe_ctx_log(ctx, NPE_LOG_WARN, "%s: [data] kind '%s' is ignored: the caller's data "
                    "source is read (only batch_size and limit of [data] apply)", c->path,
                    c->data_kind);
    if (mcb && c->metric)
        npe_ctx_log(ctx, NPE_LOG_WARN, "%s: [metric] name '%s' is ignored: the caller's metric "
                    "'%s' is used", c->path, c->metric, mcb->name ? mcb->name : "custom");

    npe_error err = {0};
    job J = {ctx, cb};
    npe_graph *g = NULL, *pg = NULL;
    npe_dataset *d = NULL;
    npe_groups *G = NULL;
    npe_prune_plan *plan = NULL;
    npe_counts before = {0}, after = {0};
    npe_sens_result res = {0};
    int have_res = 0;
    text sum = {0};
    npe_json j;
    npe_json_init(&j, 1);
    char *json = NULL, out_dir[4096], sens_dir[4200], path[4400];
    int r;

    snprintf(out_dir, sizeof(out_dir), "%s", c->output_dir ? c->output_dir : c->dir);
    if (!c->output_dir)
        snprintf(out_dir, sizeof(out_dir), "%s/lbprune_out", c->dir);
    snprintf(sens_dir, sizeof(sens_dir), "%s/sens_analysis", out_dir);
    if ((r = mkdir_p(out_dir, &err)))
        goto out_free;

    npe_ts_options ts = {0};
    ts.forward_name = c->forward_name;
    if ((r = npe_ts_import(c->model_path, &ts, &g, &err)))
        goto out_free;
    npe_tshape shapes[8];
    int n_shapes = c->n_shapes < 8 ? c->n_shapes : 8;
    for (int i = 0; i < n_shapes; i++) {
        shapes[i].ndim = c->shapes[i].ndim;
        memcpy(shapes[i].d, c->shapes[i].d, sizeof(shapes[i].d));
    }
    if (!n_shapes) { /* a data source without dummy_input: one sample of it */
        n_shapes = 1;
        shapes[0].ndim = src->sample_shape.ndim + 1;
        shapes[0].d[0] = 1;
        memcpy(shapes[0].d + 1, src->sample_shape.d,
               (size_t)src->sample_shape.ndim * sizeof(int64_t));
    }

    npe_dataset_opts dopt;
    npe_dataset_opts_init(&dopt);
    if (src) {
        dopt.kind = NPE_DATASET_CALLBACK;
        dopt.source = src;
        dopt.limit = c->limit;
        r = npe_dataset_open(&dopt, &d, &err);
    } else {
        dopt.kind = strcmp(c->data_kind, "idx") == 0   ? NPE_DATASET_IDX
                    : strcmp(c->data_kind, "npy") == 0 ? NPE_DATASET_NPY
                                                       : NPE_DATASET_IMAGEFOLDER;
        dopt.root = c->data_root;
        dopt.masks = c->data_masks;
        dopt.images = c->data_images;
        dopt.labels = c->data_labels;
        dopt.resize = c->resize;
        dopt.crop_h = c->crop_h;
        dopt.crop_w = c->crop_w;
        dopt.channels = c->channels;
        dopt.bgr = c->bgr;
        dopt.nhwc = c->nhwc;
        dopt.scale = c->scale;
        dopt.n_norm = c->n_norm;
        memcpy(dopt.mean, c->mean, sizeof(dopt.mean));
        memcpy(dopt.std, c->std, sizeof(dopt.std));
        dopt.limit = c->limit;
        if (shapes[0].ndim == 4) { /* the images must have the model's input size */
            dopt.height = (int)shapes[0].d[c->nhwc ? 1 : 2];
            dopt.width = (int)shapes[0].d[c->nhwc ? 2 : 3];
        }
        r = npe_dataset_open(&dopt, &d, &err);
    }
    if (r) {
        npe_error_prefix(&err, "%s: [data]", c->path);
        goto out_free;
    }
    npe_metric_opts mo;
    npe_metric_kind mk = NPE_METRIC_TOP1;
    if (mcb)
        mk = mcb->higher_is_better ? NPE_METRIC_CUSTOM : NPE_METRIC_CUSTOM_LOWER;
    else if (c->metric && (r = npe_metric_from_name(c->metric, &mk, &err)))
        goto out_free;
    npe_metric_opts_init(&mo, mk);
    mo.num_classes = c->num_classes;
    if (c->has_ignore_index)
        mo.ignore_index = c->ignore_index;
    mo.custom = mcb;
    const char *metric_name = mcb ? (mcb->name ? mcb->name : "custom") : npe_metric_name(mk);
    int64_t batch = c->batch_size > 0 ? c->batch_size : 32;
    int align = c->align ? c->align : 2;
    int workers = c->single_process_mode || c->workers < 1 ? 1 : c->workers;

    if (c->n_rules == 0) {
        /* ---- the analysis ---- */
        char fp[512], mfp[128];
        if ((r = npe_sens_file_fingerprint(c->model_path, mfp, &err)))
            goto out_free;
        if (src)
            snprintf(fp, sizeof(fp), "model %s; data source %s; metric %s; forward %s", mfp,
                     src->fingerprint ? src->fingerprint : "", metric_name,
                     c->forward_name ? c->forward_name : "forward");
        else
            snprintf(fp, sizeof(fp), "model %s; data %s %s %s; forward %s", mfp, c->data_kind,
                     c->data_root ? c->data_root : "", c->data_images ? c->data_images : "",
                     c->forward_name ? c->forward_name : "forward");
        npe_sens_dict_entry *dict = calloc((size_t)(c->n_dict ? c->n_dict : 1), sizeof(*dict));
        if (!dict) {
            r = npe_error_set(&err, NPE_ENOMEM, "out of memory");
            goto out_free;
        }
        for (int i = 0; i < c->n_dict; i++)
            dict[i] = (npe_sens_dict_entry){c->dict[i].name, c->dict[i].sparsities,
                                            (size_t)c->dict[i].n};
        npe_sens_options so;
        npe_sens_options_init(&so);
        so.inputs = shapes;
        so.n_inputs = n_shapes;
        so.data = d;
        so.batch_size = batch;
        so.limit = c->limit;
        so.metric = mo;
        so.sparsities = c->sparsities;
        so.n_sparsities = (size_t)c->n_sparsities;
        so.sparsities_dict = dict;
        so.n_sparsities_dict = (size_t)c->n_dict;
        so.exclude_layers = c->exclude;
        so.n_exclude_layers = c->n_exclude;
        so.channel_alignment = align;
        if ((r = npe_early_stop_parse(c->early_stop_mode, &so.early_stop_mode, &err))) {
            free(dict);
            goto out_free;
        }
        so.metric_thres = c->metric_thres;
        so.ori_metric = c->ori_metric;
        so.output_dir = sens_dir;
        so.fingerprint = fp;
        so.workers = workers;
        so.threads = c->threads;
        so.target_macs = c->target_macs;
        so.target_params = c->target_params;
        if (c->cache_mb > 0)
            so.cache_bytes = (size_t)c->cache_mb << 20;
        so.log = ctx ? ctx->log : NULL;
        so.log_user = ctx ? ctx->log_user : NULL;
        so.progress = on_progress;
        so.progress_user = &J;
        so.cancel = on_cancel;
        so.cancel_user = &J;
        r = npe_sens_analyse(g, &so, &res, &err);
        free(dict);
        if (r)
            goto out_free;
        have_res = 1;
        tprintf(&sum, "metric %s: baseline %.5f (measured %.5f)\n", metric_name, res.baseline,
                res.measured_baseline);
        tprintf(&sum, "sensitivity: %zu values measured, %zu resumed; %s/sens.csv\n", res.evaluated,
                res.restored, sens_dir);
        if (flags & NPE_RUN_ANALYSIS_ONLY) {
            r = 0;
            goto out_summary;
        }
    }

    /* ---- one cut of every group ---- */
    if ((r = npe_graph_clone(g, &pg)) ||
        (r = npe_groups_find(pg, shapes, n_shapes, &G, &err)))
        goto out_free;
    if (c->n_rules) {
        npe_prune_options po;
        npe_prune_options_init(&po);
        npe_config_prune_options(cfg, &po);
        po.channel_alignment = align;
        r = npe_prune_plan_rules(pg, G, &po, &plan, &err);
    } else {
        r = npe_sens_plan(&res, pg, G, align, &plan, &err);
    }
    if (r || (r = npe_count(pg, &before, &err)) || (r = npe_prune_apply(pg, G, plan, &err)) ||
        (r = npe_count(pg, &after, &err)))
        goto out_free;

    double m_before = have_res ? res.measured_baseline : NAN, m_after = NAN;
    int threads = c->threads > 0 ? c->threads : 0;
    if (!have_res &&
        (r = evaluate(g, g, d, batch, c->limit, &mo, threads, &m_before, &err)))
        goto out_free;
    if ((r = evaluate(pg, g, d, batch, c->limit, &mo, threads, &m_after, &err)))
        goto out_free;

    /* ---- exports ---- */
    snprintf(path, sizeof(path), "%s/pruned.pt", out_dir);
    if ((r = npe_ts_export(pg, c->model_path, path, &err)))
        goto out_free;
    snprintf(path, sizeof(path), "%s/pruned.pth", out_dir);
    if ((r = npe_state_dict_export(pg, path, &err)))
        goto out_free;
    snprintf(path, sizeof(path), "%s/pruned.channels.json", out_dir);
    if ((r = npe_channels_export(pg, path, &err)))
        goto out_free;
    if (c->full_model) {
        snprintf(path, sizeof(path), "%s/pruned_full.pth", out_dir);
        if ((r = npe_full_model_export(pg, c->full_model, path, &err)))
            goto out_free;
    }
    npe_json_begin_object(&j, 0);
    if ((r = npe_prune_report_json(&j, g, G, plan, &before, &after)))
        goto out_free;
    npe_json_end_object(&j);
    if (!(json = npe_json_finish(&j, NULL))) {
        r = npe_error_set(&err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    snprintf(path, sizeof(path), "%s/prune_report.json", out_dir);
    if ((r = write_file(path, json, &err)))
        goto out_free;
    free(json);
    json = NULL;

    /* ---- summary ---- */
    npe_json_init(&j, 1);
    npe_json_begin_object(&j, 0);
    npe_json_key(&j, "metric");
    npe_json_str(&j, metric_name);
    npe_json_key(&j, "higher_is_better");
    npe_json_bool(&j, npe_metric_higher_is_better(mk));
    npe_json_key(&j, "metric_before");
    npe_json_double(&j, m_before);
    npe_json_key(&j, "metric_after");
    npe_json_double(&j, m_after);
    npe_json_key(&j, "metric_thres");
    npe_json_double(&j, c->metric_thres);
    npe_json_key(&j, "params_before");
    npe_json_int(&j, before.params);
    npe_json_key(&j, "params_after");
    npe_json_int(&j, after.params);
    npe_json_key(&j, "macs_before");
    npe_json_int(&j, before.macs);
    npe_json_key(&j, "macs_after");
    npe_json_int(&j, after.macs);
    npe_json_key(&j, "groups");
    npe_json_begin_array(&j, 0);
    tprintf(&sum, "\n%-32s %10s %10s %10s\n", "group", "channels", "sparsity", "kept");
    for (int gi = 0; gi < G->n_groups; gi++) {
        const npe_group *grp = &G->groups[gi];
        int kept = plan->kept[gi] ? plan->n_kept[gi] : grp->channels;
        double s = 0;
        for (size_t k = 0; have_res && k < res.n_choices; k++)
            if (strcmp(res.choices[k].name, grp->name) == 0)
                s = res.choices[k].sparsity;
        npe_json_begin_object(&j, 1);
        npe_json_key(&j, "name");
        npe_json_str(&j, grp->name);
        npe_json_key(&j, "channels");
        npe_json_int(&j, grp->channels);
        npe_json_key(&j, "sparsity");
        npe_json_double(&j, have_res ? s : 1.0 - (double)kept / grp->channels);
        npe_json_key(&j, "kept");
        npe_json_int(&j, kept);
        if (!grp->prunable) {
            npe_json_key(&j, "reason");
            npe_json_str(&j, grp->reason);
        }
        npe_json_end_object(&j);
        tprintf(&sum, "%-32s %10d %10.2f %10d%s%s\n", grp->name, grp->channels,
                have_res ? s : 1.0 - (double)kept / grp->channels, kept,
                grp->prunable ? "" : "  (", grp->prunable ? "" : "not prunable)");
    }
    npe_json_end_array(&j);
    npe_json_end_object(&j);
    if (!(json = npe_json_finish(&j, NULL))) {
        r = npe_error_set(&err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    snprintf(path, sizeof(path), "%s/summary.json", out_dir);
    if ((r = write_file(path, json, &err)))
        goto out_free;
    {
        double *chosen = calloc(have_res && res.n_choices ? res.n_choices : 1, sizeof(double));
        if (!chosen) {
            r = npe_error_set(&err, NPE_ENOMEM, "out of memory");
            goto out_free;
        }
        for (size_t k = 0; have_res && k < res.n_choices; k++)
            chosen[k] = res.choices[k].sparsity;
        npe_html_report hr = {
            .model = c->model_path, .metric = metric_name,
            .higher_is_better = npe_metric_higher_is_better(mk),
            .baseline = have_res ? res.baseline : m_before, .thres = c->metric_thres,
            .metric_before = m_before, .metric_after = m_after,
            .params_before = before.params, .params_after = after.params,
            .macs_before = before.macs, .macs_after = after.macs,
            .table = have_res ? &res.table : NULL, .chosen = chosen,
            .n_chosen = have_res ? res.n_choices : 0};
        snprintf(path, sizeof(path), "%s/report.html", out_dir);
        r = npe_html_report_write(path, &hr, &err);
        free(chosen);
        if (r)
            goto out_free;
    }
    tprintf(&sum, "\n%-10s %16s %16s\n", "", "before", "after");
    tprintf(&sum, "%-10s %16.5f %16.5f\n", metric_name, m_before, m_after);
    tprintf(&sum, "%-10s %16lld %16lld  (%.1f%%)\n", "params", (long long)before.params,
            (long long)after.params,
            before.params ? 100.0 * (double)(after.params - before.params) / (double)before.params : 0.0);
    tprintf(&sum, "%-10s %16lld %16lld  (%.1f%%)\n", "MACs", (long long)before.macs,
            (long long)after.macs,
            before.macs ? 100.0 * (double)(after.macs - before.macs) / (double)before.macs : 0.0);
    tprintf(&sum, "\nwrote %s/pruned.pt, pruned.pth, pruned.channels.json, %sprune_report.json, "
                  "summary.json, report.html\n", out_dir, c->full_model ? "pruned_full.pth, " : "");
out_summary:
    r = 0;
    if (summary) {
        *summary = sum.s;
        sum.s = NULL;
    }
out_free:
    free(sum.s);
    free(json);
    npe_json_free(&j);
    npe_counts_free(&before);
    npe_counts_free(&after);
    npe_prune_plan_destroy(plan);
    npe_groups_destroy(G);
    if (have_res)
        npe_sens_result_free(&res);
    npe_dataset_destroy(d);
    npe_graph_destroy(pg);
    npe_graph_destroy(g);
    if (r)
        return npe_ctx_fail(ctx, &err);
    return 0;
}
