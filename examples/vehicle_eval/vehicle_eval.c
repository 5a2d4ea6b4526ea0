/* vehicle_eval: a vehicle-side evaluation tool built on libnpengine's public API only.
 *
 * It shows what a team with its own data loader and its own metric does to compress a model:
 *   1. load the traced TorchScript model and list its channel groups, parameters and MACs;
 *   2. load its own data (.npy files: float32 images [N,C,H,W], or uint8 [N,H,W] / [N,C,H,W]
 *      scaled to [0,1] and normalised with --mean/--std like torchvision; int labels [N]) and
 *      hand batches to the library through a data-source callback;
 *   3. score each batch with its own metric through metric callbacks: "top1" (accuracy against
 *      the labels) or "agree" (the share of samples whose predicted class is the original
 *      model's, computed up front with npe_model_forward: no labels needed);
 *   4. run the sensitivity analysis and the compression (npe_run), which writes sens.csv, the
 *      pruned TorchScript model, state_dict, channels JSON, report and summary into --out;
 *   5. load the pruned model back and report its size.
 *
 * Build (installed library):  cc vehicle_eval.c $(pkg-config --cflags --libs npengine)
 * Run:   vehicle_eval --model model.pt --images x.npy --labels y.npy --out out_dir
 * See --help for every option. In-tree, meson builds it as build/examples/vehicle_eval. */
#include <npengine/npengine.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Options ---------------------------------------------------------------------------------- */

typedef struct options {
    const char *model, *full_model, *images, *labels, *out, *config, *forward;
    const char *metric;        /* "top1" or "agree" */
    const char *sparsities;    /* "0.1,0.2,..." */
    const char *early_stop;    /* "dropped", "raised" or NULL */
    double mean, std, thres;
    int normalise, align, workers, analysis_only, list;
    long long limit, batch;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vehicle_eval --model MODEL.pt --images X.npy [--labels Y.npy] --out DIR "
            "[options]\n"
            "\n"
            "Sensitivity analysis and channel pruning of a traced TorchScript model, with the data\n"
            "read and the metric computed by this program (libnpengine callbacks).\n"
            "\n"
            "  --model PATH        traced TorchScript archive (torch.jit.trace(...).save)\n"
            "  --full-model PATH   torch.save(model) file: a pruned copy is written too\n"
            "  --forward NAME      method to analyse (default forward)\n"
            "  --images PATH       .npy inputs: float32 [N,C,H,W] used as stored, or uint8\n"
            "                      [N,H,W] / [N,C,H,W] scaled by 1/255\n"
            "  --mean M --std S    uint8 inputs: then (x/255 - M) / S, in float32\n"
            "  --labels PATH       .npy integer class labels [N] (needed by --metric top1)\n"
            "  --limit N           only the first N samples\n"
            "  --metric NAME       top1: accuracy against the labels (default with --labels);\n"
            "                      agree: share of samples whose top class is the original\n"
            "                      model's (default without --labels)\n"
            "  --thres T           metric_thres: accepted metric drop per group (default 0.02)\n"
            "  --sparsities LIST   comma-separated, increasing (default 0.1,...,0.5)\n"
            "  --early-stop MODE   dropped or raised (default: none)\n"
            "  --align N           channel_alignment (default 2)\n"
            "  --batch N           samples per batch (default 64)\n"
            "  --workers N         parallel analysis workers (default 1)\n"
            "  --config PATH       take [model]/[prune]/[run] from this TOML file instead of the\n"
            "                      options above ([data] and [metric] still come from here)\n"
            "  --out DIR           output folder (sens_analysis/sens.csv, pruned.pt, ...)\n"
            "  --analysis-only     stop after sens.csv\n"
            "  --list              print layers, channel groups, params and MACs, and exit\n"
            "  --help              this text\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->std = 1.0;
    o->thres = 0.02;
    o->align = 2;
    o->workers = 1;
    o->batch = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR_OPT(name, field)                                                                      \
    if (strcmp(a, name) == 0) {                                                                   \
        if (!v) {                                                                                 \
            fprintf(stderr, "vehicle_eval: %s needs a value\n", name);                            \
            return -1;                                                                            \
        }                                                                                         \
        o->field = v;                                                                             \
        i++;                                                                                      \
        continue;                                                                                 \
    }
        STR_OPT("--model", model)
        STR_OPT("--full-model", full_model)
        STR_OPT("--forward", forward)
        STR_OPT("--images", images)
        STR_OPT("--labels", labels)
        STR_OPT("--out", out)
        STR_OPT("--config", config)
        STR_OPT("--metric", metric)
        STR_OPT("--sparsities", sparsities)
        STR_OPT("--early-stop", early_stop)
#undef STR_OPT
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--analysis-only") == 0) {
            o->analysis_only = 1;
            continue;
        }
        if (strcmp(a, "--list") == 0) {
            o->list = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "vehicle_eval: unknown option or missing value: %s\n", a);
            return -1;
        }
        char *end = NULL;
        double x = strtod(v, &end);
        if (!end || *end || end == v) {
            fprintf(stderr, "vehicle_eval: %s: '%s' is not a number\n", a, v);
            return -1;
        }
        i++;
        if (strcmp(a, "--mean") == 0) {
            o->mean = x;
            o->normalise = 1;
        } else if (strcmp(a, "--std") == 0) {
            o->std = x;
            o->normalise = 1;
        } else if (strcmp(a, "--thres") == 0) {
            o->thres = x;
        } else if (strcmp(a, "--align") == 0) {
            o->align = (int)x;
        } else if (strcmp(a, "--workers") == 0) {
            o->workers = (int)x;
        } else if (strcmp(a, "--limit") == 0) {
            o->limit = (long long)x;
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = (long long)x;
        } else {
            fprintf(stderr, "vehicle_eval: unknown option %s (see --help)\n", a);
            return -1;
        }
    }
    if (!o->model || (!o->list && (!o->images || !o->out))) {
        fprintf(stderr, "vehicle_eval: --model, --images and --out are required (see --help)\n");
        return -1;
    }
    if (!o->metric)
        o->metric = o->labels ? "top1" : "agree";
    if (strcmp(o->metric, "top1") && strcmp(o->metric, "agree")) {
        fprintf(stderr, "vehicle_eval: --metric must be top1 or agree, not '%s'\n", o->metric);
        return -1;
    }
    if (!strcmp(o->metric, "top1") && !o->labels) {
        fprintf(stderr, "vehicle_eval: --metric top1 needs --labels\n");
        return -1;
    }
    if (o->batch < 1 || o->limit < 0 || o->workers < 1 || o->std == 0.0) {
        fprintf(stderr, "vehicle_eval: --batch and --workers must be >= 1, --limit >= 0, "
                        "--std non-zero\n");
        return -1;
    }
    return 0;
}

/* ---- Our data: .npy arrays in memory, preprocessed per batch ------------------------------------ */

typedef struct dataset {
    npe_tensor images;   /* as loaded */
    int64_t n, sample_numel;
    npe_shape sample;    /* [C,H,W] */
    int64_t *labels;     /* n labels: the file's (top1) or the original model's classes (agree) */
    float mean, std;
    int normalise;
} dataset;

static int64_t int_at(const npe_tensor *t, int64_t i)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case NPE_DTYPE_I64: { int64_t v; memcpy(&v, p + i * 8, 8); return v; }
    case NPE_DTYPE_I32: { int32_t v; memcpy(&v, p + i * 4, 4); return v; }
    case NPE_DTYPE_I16: { int16_t v; memcpy(&v, p + i * 2, 2); return v; }
    case NPE_DTYPE_I8: return (int8_t)p[i];
    case NPE_DTYPE_U8: return p[i];
    default: return -1;
    }
}

/* Samples [first, first + n) of our data into dst, preprocessed. */
static void fill_inputs(const dataset *d, int64_t first, int64_t n, float *dst)
{
    size_t count = (size_t)(n * d->sample_numel);
    if (d->images.dtype == NPE_DTYPE_F32) {
        memcpy(dst, (const float *)d->images.data + first * d->sample_numel, count * sizeof(float));
        return;
    }
    /* uint8: what torchvision's ToTensor + Normalize compute, in float32 */
    const unsigned char *src = (const unsigned char *)d->images.data + first * d->sample_numel;
    for (size_t i = 0; i < count; i++) {
        float v = (float)src[i] / 255.0f;
        dst[i] = d->normalise ? (v - d->mean) / d->std : v;
    }
}

/* The data-source callback: fill samples [first, first + n) into the tensors the library gives.
 * It reads only immutable memory, so it is safe on several threads at once (concurrent = 1). */
static int read_batch(void *user, int64_t first, int64_t n, npe_tensor *input, npe_tensor *target,
                      char *msg, size_t msg_size)
{
    const dataset *d = user;
    if (first < 0 || first + n > d->n) {
        snprintf(msg, msg_size, "samples %lld..%lld are outside 0..%lld", (long long)first,
                 (long long)(first + n - 1), (long long)(d->n - 1));
        return -1;
    }
    fill_inputs(d, first, n, input->data);
    int64_t *lab = target->data;
    for (int64_t i = 0; i < n; i++)
        lab[i] = d->labels[first + i];
    return 0;
}

static int load_dataset(npe_ctx *ctx, const options *o, dataset *d)
{
    memset(d, 0, sizeof(*d));
    if (npe_tensor_load_npy(ctx, o->images, &d->images))
        return -1;
    const npe_tensor *t = &d->images;
    if (t->dtype != NPE_DTYPE_F32 && t->dtype != NPE_DTYPE_U8) {
        fprintf(stderr, "vehicle_eval: %s: images must be float32 or uint8, not %s\n", o->images,
                npe_dtype_name(t->dtype));
        return -1;
    }
    if (t->ndim == 3) { /* [N,H,W]: one channel */
        d->sample.ndim = 3;
        d->sample.d[0] = 1;
        d->sample.d[1] = t->shape[1];
        d->sample.d[2] = t->shape[2];
    } else if (t->ndim == 4) {
        d->sample.ndim = 3;
        memcpy(d->sample.d, t->shape + 1, 3 * sizeof(int64_t));
    } else {
        fprintf(stderr, "vehicle_eval: %s: images must be [N,H,W] or [N,C,H,W]\n", o->images);
        return -1;
    }
    d->n = t->shape[0];
    if (o->limit > 0 && o->limit < d->n)
        d->n = o->limit;
    d->sample_numel = d->sample.d[0] * d->sample.d[1] * d->sample.d[2];
    d->mean = (float)o->mean;
    d->std = (float)o->std;
    d->normalise = o->normalise;
    if (d->n < 1) {
        fprintf(stderr, "vehicle_eval: %s: no samples\n", o->images);
        return -1;
    }
    if (!(d->labels = calloc((size_t)d->n, sizeof(int64_t)))) {
        fprintf(stderr, "vehicle_eval: out of memory\n");
        return -1;
    }
    if (o->labels) {
        npe_tensor lab;
        if (npe_tensor_load_npy(ctx, o->labels, &lab))
            return -1;
        int ok = lab.ndim == 1 && lab.shape[0] >= d->n;
        for (int64_t i = 0; ok && i < d->n; i++)
            ok = (d->labels[i] = int_at(&lab, i)) >= 0;
        npe_tensor_release(&lab);
        if (!ok) {
            fprintf(stderr, "vehicle_eval: %s: labels must be non-negative integers [N] with N >= "
                            "%lld\n", o->labels, (long long)d->n);
            return -1;
        }
    }
    return 0;
}

/* "agree": the original model's top class of every sample becomes its label. The first batch's
 * output is allocated by the library; later batches are written into that same buffer in place
 * (npe_model_forward writes caller memory when data is set). */
static int original_classes(npe_model *m, dataset *d, int64_t batch)
{
    npe_tensor in;
    memset(&in, 0, sizeof(in));
    in.dtype = NPE_DTYPE_F32;
    in.ndim = 4;
    memcpy(in.shape + 1, d->sample.d, 3 * sizeof(int64_t));
    float *buf = malloc((size_t)(batch * d->sample_numel) * sizeof(float));
    void *logits = NULL;
    size_t cap = 0;
    int rc = -1;
    if (!buf)
        goto out;
    for (int64_t s = 0; s < d->n; s += batch) {
        int64_t b = d->n - s < batch ? d->n - s : batch;
        in.shape[0] = b;
        in.data = buf;
        in.nbytes = (size_t)(b * d->sample_numel) * sizeof(float);
        fill_inputs(d, s, b, buf);
        npe_tensor out;
        memset(&out, 0, sizeof(out));
        out.data = logits; /* NULL the first time: the library allocates */
        out.nbytes = cap;
        if (npe_model_forward(m, &in, 1, &out, 1))
            goto out;
        if (!logits) {
            logits = out.data;
            cap = out.nbytes; /* batches only get smaller: this fits every later one */
        }
        if (out.ndim != 2 || out.shape[0] != b) {
            fprintf(stderr, "vehicle_eval: agree needs logits [N, classes]\n");
            goto out;
        }
        int64_t C = out.shape[1];
        const float *x = out.data;
        for (int64_t i = 0; i < b; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < C; c++)
                if (x[i * C + c] > x[i * C + best])
                    best = c;
            d->labels[s + i] = best;
        }
    }
    rc = 0;
out:
    free(buf);
    npe_free(logits);
    return rc;
}

/* ---- Our metric: top-1 accuracy, counted in integers ------------------------------------------- */

typedef struct top1_acc {
    long long hits, samples;
} top1_acc;

static int metric_begin(void *user, void **acc)
{
    (void)user;
    *acc = calloc(1, sizeof(top1_acc));
    return *acc ? 0 : -2;
}

/* A sample counts when no class has a logit strictly above the label's (ties count for it). */
static int metric_accumulate(void *user, void *acc, const npe_tensor *outputs, int n_outputs,
                             const npe_tensor *target, char *msg, size_t msg_size)
{
    (void)user;
    top1_acc *a = acc;
    const npe_tensor *y = &outputs[0];
    if (n_outputs < 1 || y->ndim != 2 || !target || target->ndim != 1 ||
        target->shape[0] != y->shape[0]) {
        snprintf(msg, msg_size, "expected logits [N, classes] and labels [N]");
        return -1;
    }
    int64_t N = y->shape[0], C = y->shape[1];
    const float *x = y->data;
    const int64_t *lab = target->data;
    for (int64_t i = 0; i < N; i++) {
        if (lab[i] < 0 || lab[i] >= C) {
            snprintf(msg, msg_size, "label %lld of a batch sample is outside 0..%lld",
                     (long long)lab[i], (long long)(C - 1));
            return -1;
        }
        float l = x[i * C + lab[i]];
        int above = isnan(l);
        for (int64_t c = 0; c < C && !above; c++)
            above = x[i * C + c] > l;
        a->hits += !above;
    }
    a->samples += N;
    return 0;
}

static int metric_end(void *user, void *acc, double *value, char *msg, size_t msg_size)
{
    (void)user;
    top1_acc *a = acc;
    int rc = 0;
    if (a->samples == 0) {
        snprintf(msg, msg_size, "no samples");
        rc = -1;
    } else {
        *value = (double)a->hits / (double)a->samples;
    }
    free(a);
    return rc;
}

static void metric_discard(void *user, void *acc)
{
    (void)user;
    free(acc);
}

/* ---- Library callbacks: log and progress ------------------------------------------------------- */

static void on_log(void *user, npe_log_level level, const char *msg)
{
    (void)user;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= NPE_LOG_INFO)
        fprintf(stderr, "vehicle_eval: %s: %s\n", names[level], msg);
}

static void on_progress(void *user, const char *group, double sparsity, double value, size_t done,
                        size_t total, double eta_s)
{
    (void)user;
    fprintf(stderr, "  [%zu/%zu] %-28s sparsity %.2f  metric %.5f  (%.0f s left)\n", done, total,
            group, sparsity, value, eta_s);
}

/* ---- Main ------------------------------------------------------------------------------------- */

static int fail(npe_ctx *ctx, const char *what, int rc)
{
    const char *m = ctx ? npe_ctx_last_error(ctx) : "";
    fprintf(stderr, "vehicle_eval: %s: %s\n", what, m[0] ? m : npe_strerror(rc));
    return 1;
}

static void list_model(npe_model *m)
{
    int64_t params = 0, macs = 0;
    npe_model_count(m, &params, &macs);
    printf("params %lld, MACs per image %lld\n", (long long)params, (long long)macs);
    for (int i = 0; i < npe_model_layer_count(m); i++) {
        npe_layer_info L;
        if (npe_model_layer(m, i, &L) == 0)
            printf("  layer %-24s %-16s %5lld -> %-5lld params %-8lld MACs %lld\n", L.name,
                   L.op_type, (long long)L.in_channels, (long long)L.out_channels,
                   (long long)L.params, (long long)L.macs);
    }
    for (int i = 0; i < npe_model_group_count(m); i++) {
        npe_group_info G;
        if (npe_model_group(m, i, &G) == 0)
            printf("  group %-24s %4d channels, %d producer(s), %d consumer(s)%s%s\n", G.name,
                   G.channels, G.n_producers, G.n_consumers, G.prunable ? "" : ", not prunable: ",
                   G.prunable ? "" : G.reason);
    }
}

/* The configuration as TOML text: [model], [prune] and [run] from our options. */
static int make_config(npe_ctx *ctx, const options *o, const dataset *d, npe_config **cfg)
{
    if (o->config)
        return npe_config_load(ctx, o->config, cfg);
    char text[8192];
    int n = snprintf(text, sizeof(text),
                     "[model]\npath = \"%s\"\ndummy_input = [1, %lld, %lld, %lld]\n", o->model,
                     (long long)d->sample.d[0], (long long)d->sample.d[1],
                     (long long)d->sample.d[2]);
    if (o->full_model)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "full_model = \"%s\"\n", o->full_model);
    if (o->forward)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "forward_name = \"%s\"\n", o->forward);
    n += snprintf(text + n, sizeof(text) - (size_t)n,
                  "[data]\nbatch_size = %lld\n[prune]\nmetric_thres = %.17g\n"
                  "channel_alignment = %d\n",
                  o->batch, o->thres, o->align);
    if (o->sparsities)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "sparsities = [%s]\n", o->sparsities);
    if (o->early_stop)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "early_stop_mode = \"%s\"\n",
                      o->early_stop);
    n += snprintf(text + n, sizeof(text) - (size_t)n, "[run]\noutput_dir = \"%s\"\nworkers = %d\n",
                  o->out, o->workers);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        fprintf(stderr, "vehicle_eval: paths too long\n");
        return NPE_EINVAL;
    }
    return npe_config_parse(ctx, text, (size_t)n, NULL, cfg);
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return 2;
    npe_ctx *ctx = NULL;
    npe_model *m = NULL, *pruned = NULL;
    npe_config *cfg = NULL;
    char *summary = NULL;
    dataset d;
    memset(&d, 0, sizeof(d));
    int status = 1, rc;
    if ((rc = npe_ctx_create(&ctx)))
        return fail(NULL, "npe_ctx_create", rc);
    npe_ctx_set_log(ctx, on_log, NULL);
    printf("libnpengine %s\n", npe_version_string());

    /* 1. the model and what pruning can cut */
    npe_model_options mo;
    npe_model_options_init(&mo);
    mo.forward_name = o.forward;
    if ((rc = npe_model_load(ctx, o.model, &mo, &m))) {
        fail(ctx, "loading the model", rc);
        goto out;
    }
    if (o.list) {
        if (!o.images) {
            fprintf(stderr, "vehicle_eval: --list needs --images (for the input size)\n");
            goto out;
        }
    }
    if (load_dataset(ctx, &o, &d)) {
        if (npe_ctx_last_error(ctx)[0])
            fail(ctx, "loading the data", NPE_EIO);
        goto out;
    }
    npe_shape in_shape = {4, {1, d.sample.d[0], d.sample.d[1], d.sample.d[2]}};
    if ((rc = npe_model_analyse(m, &in_shape, 1))) {
        fail(ctx, "analysing the model", rc);
        goto out;
    }
    if (o.list) {
        list_model(m);
        status = 0;
        goto out;
    }
    if (!strcmp(o.metric, "agree") && original_classes(m, &d, o.batch)) {
        fail(ctx, "running the original model", NPE_EINVAL);
        goto out;
    }
    int64_t params0 = 0, macs0 = 0;
    npe_model_count(m, &params0, &macs0);

    /* 2-4. our data and metric through callbacks; the library does the rest */
    npe_data_source src;
    memset(&src, 0, sizeof(src));
    src.n_samples = d.n;
    src.sample_shape = d.sample;
    src.has_targets = 1;
    src.target_dtype = NPE_DTYPE_I64;
    src.target_shape.ndim = 0; /* one class label per sample */
    src.read = read_batch;
    src.concurrent = 1;
    char fingerprint[1024];
    snprintf(fingerprint, sizeof(fingerprint), "%s %s limit=%lld mean=%g std=%g metric=%s",
             o.images, o.labels ? o.labels : "-", (long long)o.limit, o.mean, o.std, o.metric);
    src.fingerprint = fingerprint;
    src.user = &d;

    npe_metric_callbacks metric;
    memset(&metric, 0, sizeof(metric));
    metric.name = !strcmp(o.metric, "top1") ? "own_top1" : "agreement";
    metric.higher_is_better = 1;
    metric.begin = metric_begin;
    metric.accumulate = metric_accumulate;
    metric.end = metric_end;
    metric.discard = metric_discard;

    npe_run_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.progress = on_progress;
    cb.data = &src;
    cb.metric = &metric;

    if ((rc = make_config(ctx, &o, &d, &cfg))) {
        fail(ctx, "configuration", rc);
        goto out;
    }
    if ((rc = npe_run(ctx, cfg, o.analysis_only ? NPE_RUN_ANALYSIS_ONLY : 0, &cb, &summary))) {
        fail(ctx, "npe_run", rc);
        goto out;
    }
    fputs(summary, stdout);
    if (o.analysis_only) {
        status = 0;
        goto out;
    }

    /* 5. the pruned model, loaded back through the same API */
    char path[4096];
    if (o.config) {
        status = 0; /* output_dir is the config's: nothing more to check here */
        goto out;
    }
    snprintf(path, sizeof(path), "%s/pruned.pt", o.out);
    int64_t params1 = 0, macs1 = 0;
    if ((rc = npe_model_load(ctx, path, &mo, &pruned)) ||
        (rc = npe_model_analyse(pruned, &in_shape, 1)) ||
        (rc = npe_model_count(pruned, &params1, &macs1))) {
        fail(ctx, "loading the pruned model", rc);
        goto out;
    }
    printf("pruned model %s: params %lld -> %lld, MACs %lld -> %lld\n", path, (long long)params0,
           (long long)params1, (long long)macs0, (long long)macs1);
    status = 0;
out:
    npe_free(summary);
    npe_config_destroy(cfg);
    npe_model_destroy(pruned);
    npe_model_destroy(m);
    npe_tensor_release(&d.images);
    free(d.labels);
    npe_ctx_destroy(ctx);
    return status;
}
