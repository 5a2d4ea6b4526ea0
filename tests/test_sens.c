/* Sensitivity analysis on the bundled Fashion-MNIST example with the real t10k data: serial and
 * parallel runs give the same sens.csv bytes, a cancelled run resumes to the same file, early stop
 * evaluates nothing past a violation, fidelity is 1 at baseline, options are checked. Reuse of
 * computation (only each group's region run, on the original's frontier activations held within
 * the cache budget) gives the same values, bit for bit, as whole pruned models, at every budget
 * and worker count, here and on conformance models (YOLOv5-style, UNet) with fidelity. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/sens.h"
#include "../formats/fileio.h"
#include "../formats/npy.h"
#include "../importers/torchscript.h"
#include "testutil.h"

#define DATA "/usr/share/datasets/fashion-mnist"
#define LIMIT 256

/* Correct top-1 predictions of examples/fashion_mnist/model.pt on the first 256 t10k images,
 * computed by PyTorch 1.13 (torch.jit.load, (x/255 - 0.286)/0.353, argmax == label). */
#define TORCH_CORRECT_256 227

static char tmpdir[256];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static int same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && la > 0 && memcmp(x, y, la) == 0;
    if (!same)
        fprintf(stderr, "--- %s\n%s--- %s\n%s", a, x ? x : "(missing)", b, y ? y : "(missing)");
    free(x);
    free(y);
    return same;
}

static void quiet_log(void *user, npe_log_level lv, const char *msg)
{
    (void)user;
    if (lv <= NPE_LOG_WARN || getenv("SENS_VERBOSE"))
        fprintf(stderr, "  [log %d] %s\n", (int)lv, msg);
}

typedef struct counter {
    int calls, stop_after;
} counter;

static int cancel_after(void *user)
{
    counter *c = user;
    return c->calls++ >= c->stop_after;
}

static void progress_count(void *user, const npe_sens_progress_info *p)
{
    int *n = user;
    (*n)++;
    if (!(p->done <= p->total) || !p->group)
        fprintf(stderr, "bad progress %zu/%zu\n", p->done, p->total);
}

static npe_tshape shape_in = {4, {1, 1, 28, 28}};

static void base_opts(npe_sens_options *o, const npe_dataset *d, const char *dir)
{
    npe_sens_options_init(o);
    o->inputs = &shape_in;
    o->n_inputs = 1;
    o->data = d;
    o->batch_size = 100; /* 256 = 100 + 100 + 56: a partial last batch */
    o->limit = LIMIT;
    o->output_dir = dir;
    o->fingerprint = "test";
    o->threads = 1;
    o->metric_thres = 0.02;
    o->log = quiet_log;
}

/* The same rows (sens.csv) in a and b, and every value measured in both equal within 1e-6 (two
 * workers may measure a sparsity past an early stop that one worker never reaches). Not bit
 * for bit: a region takes a group's producers' kept channels from the original model's
 * activations, where the whole pruned model computes them with fewer channels, which may round
 * differently (a conv of 24 channels runs im2col where one of 48 runs Winograd); the metrics
 * differ by up to 4e-8 here (float rounding: the metric of a wrong channel differs by far more). */
static int same_values(const npe_sens_result *a, const npe_sens_result *b, const char *what)
{
    if (a->table.n_groups != b->table.n_groups) {
        fprintf(stderr, "%s: %zu groups against %zu\n", what, a->table.n_groups,
                b->table.n_groups);
        return 0;
    }
    for (size_t i = 0; i < a->table.n_groups; i++) {
        const npe_sens_group *x = &a->table.groups[i], *y = &b->table.groups[i];
        if (npe_sens_row_len(&a->table, i) != npe_sens_row_len(&b->table, i)) {
            fprintf(stderr, "%s: group %s: row of %zu values against %zu\n", what, x->name,
                    npe_sens_row_len(&a->table, i), npe_sens_row_len(&b->table, i));
            return 0;
        }
        for (size_t j = 0; !x->skip_reason && j < x->n_sparsities; j++)
            if ((j < npe_sens_row_len(&a->table, i) && !(x->measured[j] && y->measured[j])) ||
                (x->measured[j] && y->measured[j] && !(fabs(x->values[j] - y->values[j]) <= 1e-6))) {
                fprintf(stderr, "%s: group %s sparsity %g: %.17g against %.17g\n", what,
                        x->name, x->sparsities[j], x->values[j], y->values[j]);
                return 0;
            }
    }
    return 1;
}

/* The reference (whole pruned models, one worker) against reuse at several cache budgets, with
 * one and two workers in turn. budgets[] ends with (size_t)-1. Returns the groups analysed. */
static size_t check_reuse(const npe_graph *g, npe_sens_options *o, const size_t *budgets,
                          const char *what)
{
    npe_error err = {0};
    npe_sens_result ref, r;
    o->reuse = 0;
    o->workers = 1;
    o->cache_bytes = (size_t)1 << 30;
    int rc = npe_sens_analyse(g, o, &ref, &err);
    CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
    if (rc)
        return 0;
    CHECK_EQ_INT(ref.region_evals, 0);
    size_t analysed = 0;
    for (size_t i = 0; i < ref.table.n_groups; i++)
        analysed += !ref.table.groups[i].skip_reason;
    for (size_t k = 0; budgets[k] != (size_t)-1; k++) {
        int workers = 1 + (int)(k % 2);
        {
            o->reuse = 1;
            o->workers = workers;
            o->cache_bytes = budgets[k];
            rc = npe_sens_analyse(g, o, &r, &err);
            CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
            if (rc)
                continue;
            char w[200];
            snprintf(w, sizeof w, "%s, cache %zu bytes, %d worker(s)", what, budgets[k], workers);
            CHECK(same_values(&ref, &r, w));
            if (workers == 1)
                CHECK_EQ_INT(r.evaluated, ref.evaluated);
            /* reuse really ran regions, and the budget held */
            CHECK_MSG(r.region_evals == r.evaluated, "%s: %zu of %zu evaluations ran the region",
                      w, r.region_evals, r.evaluated);
            CHECK_MSG(r.cache_peak <= budgets[k], "%s: %zu bytes held", w, r.cache_peak);
            if (getenv("SENS_VERBOSE"))
                printf("%s: peak %zu bytes\n", w, r.cache_peak);
            npe_sens_result_free(&r);
        }
    }
    npe_sens_result_free(&ref);
    return analysed;
}

/* A conformance model on deterministic pseudo-random inputs of its own shape, fidelity. */
static void check_reuse_model(const char *models_dir, const char *model, int64_t n,
                              int64_t batch)
{
    char path[1024], data[600];
    snprintf(path, sizeof path, "%s/%s.pt", models_dir, model);
    if (access(path, R_OK) != 0) {
        printf("sens: %s missing (tests/gen_models.py): reuse check skipped\n", path);
        return;
    }
    npe_error err = {0};
    npe_graph *g = NULL;
    npe_array in = {0};
    npe_dataset *d = NULL;
    if (npe_ts_import(path, NULL, &g, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    snprintf(path, sizeof path, "%s/%s.b1.in0.npy", models_dir, model);
    if (npe_npy_load(path, &in, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        goto out;
    }
    /* n samples of the model's input shape */
    npe_array a = in;
    a.shape[0] = n;
    a.nbytes = (size_t)npe_array_numel(&a) * sizeof(float);
    a.data = malloc(a.nbytes);
    if (!a.data) {
        CHECK(0);
        goto out;
    }
    uint32_t seed = 12345;
    for (int64_t i = 0; i < npe_array_numel(&a); i++) {
        seed = seed * 1664525u + 1013904223u;
        ((float *)a.data)[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    snprintf(data, sizeof data, "%s/%s.npy", tmpdir, model);
    int rc = npe_npy_save(data, &a, &err);
    npe_array_free(&a);
    CHECK_MSG(rc == 0, "%s", err.msg);
    npe_dataset_opts dop;
    npe_dataset_opts_init(&dop);
    dop.kind = NPE_DATASET_NPY;
    dop.images = data;
    if (rc || npe_dataset_open(&dop, &d, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        goto out;
    }
    npe_tshape shp = {in.ndim, {0}};
    for (int k = 0; k < in.ndim; k++)
        shp.d[k] = in.shape[k];
    npe_sens_options o;
    npe_sens_options_init(&o);
    o.inputs = &shp;
    o.n_inputs = 1;
    o.data = d;
    o.batch_size = batch;
    o.threads = 1;
    o.log = quiet_log;
    npe_metric_opts_init(&o.metric, NPE_METRIC_FIDELITY);
    static const double sp[] = {0.25, 0.5};
    o.sparsities = sp;
    o.n_sparsities = 2;
    /* input batches alone take n * sample bytes: the small budgets hold them and part (or none)
     * of the frontier activations */
    size_t in_bytes = (size_t)n * (in.nbytes / (size_t)in.shape[0]);
    size_t budgets[] = {0, in_bytes / 2, in_bytes + in_bytes / 2, 3 * in_bytes,
                        (size_t)1 << 30, (size_t)1 << 30, (size_t)-1};
    size_t analysed = check_reuse(g, &o, budgets, model);
    printf("sens: %s: reuse gives the whole models' values on %zu groups\n", model, analysed);
    CHECK(analysed >= 3);
out:
    npe_dataset_destroy(d);
    npe_array_free(&in);
    npe_graph_destroy(g);
}

static void path_in(char *buf, size_t cap, const char *sub, const char *file)
{
    snprintf(buf, cap, "%s/%s%s%s", tmpdir, sub, file ? "/" : "", file ? file : "");
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    if (access(DATA "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        printf("sens: Fashion-MNIST not installed (dataset-fashion-mnist), skipped\n");
        return 77;
    }
    char model_path[1024];
    snprintf(model_path, sizeof(model_path), "%s/examples/fashion_mnist/model.pt", root);
    npe_error err = {0};
    npe_graph *g = NULL;
    if (npe_ts_import(model_path, NULL, &g, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    npe_dataset_opts dop;
    npe_dataset_opts_init(&dop);
    dop.kind = NPE_DATASET_IDX;
    dop.images = DATA "/t10k-images-idx3-ubyte.gz";
    dop.labels = DATA "/t10k-labels-idx1-ubyte.gz";
    dop.n_norm = 1;
    dop.mean[0] = 0.2860;
    dop.std[0] = 0.3530;
    npe_dataset *d = NULL;
    if (npe_dataset_open(&dop, &d, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        npe_graph_destroy(g);
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sens.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char dir1[512], dir2[512], dir3[512], dir4[512], a[600], b[600];
    path_in(dir1, sizeof dir1, "serial", NULL);
    path_in(dir2, sizeof dir2, "parallel", NULL);
    path_in(dir3, sizeof dir3, "resumed", NULL);
    path_in(dir4, sizeof dir4, "early", NULL);

    /* ---- serial run: the reference ------------------------------------------------------- */
    npe_sens_options o;
    base_opts(&o, d, dir1);
    int nprog = 0;
    o.progress = progress_count;
    o.progress_user = &nprog;
    npe_sens_result r1;
    int rc = npe_sens_analyse(g, &o, &r1, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(fabs(r1.measured_baseline - TORCH_CORRECT_256 / 256.0) < 1e-12);
    CHECK(r1.baseline == r1.measured_baseline);
    size_t analysed = 0, skipped = 0;
    for (size_t i = 0; i < r1.table.n_groups; i++) {
        if (r1.table.groups[i].skip_reason)
            skipped++;
        else
            analysed++;
    }
    /* stem+block.conv2 (residual), block.conv1, down.0 are prunable; fc reaches the output */
    CHECK_EQ_INT(analysed, 3);
    CHECK(skipped >= 1);
    CHECK_EQ_INT(r1.evaluated, analysed * 5);
    CHECK_EQ_INT(nprog, (int)r1.evaluated);
    CHECK_EQ_INT(r1.restored, 0);
    CHECK_EQ_INT(r1.n_choices, r1.table.n_groups);
    for (size_t i = 0; i < r1.n_choices; i++) {
        const npe_sens_choice *c = &r1.choices[i];
        const npe_sens_group *gr = &r1.table.groups[i];
        if (c->skip_reason) {
            CHECK(c->sparsity == 0 && c->kept == c->channels);
            continue;
        }
        /* metric_thres by hand: the largest s whose every s' <= s stays within 0.02 */
        double want = 0;
        for (size_t j = 0; j < gr->n_sparsities; j++) {
            if (gr->values[j] < r1.baseline - 0.02)
                break;
            want = gr->sparsities[j];
        }
        CHECK_MSG(c->sparsity == want, "group %s chose %g, expected %g", c->name, c->sparsity,
                  want);
        for (size_t j = 0; j < gr->n_sparsities; j++)
            CHECK(gr->measured[j] && gr->values[j] >= 0 && gr->values[j] <= 1);
        if (want > 0)
            CHECK_EQ_INT(c->kept, npe_prune_kept_count(c->channels, want, 2));
    }
    CHECK(r1.params_after <= r1.params_before && r1.macs_after <= r1.macs_before);
    CHECK(r1.params_before > 0 && r1.macs_before > 0);

    /* ---- two workers: the same bytes ------------------------------------------------------- */
    base_opts(&o, d, dir2);
    o.workers = 2;
    npe_sens_result r2;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    path_in(a, sizeof a, "serial", "sens.csv");
    path_in(b, sizeof b, "parallel", "sens.csv");
    CHECK(same_file(a, b));
    CHECK_EQ_INT(r2.evaluated, r1.evaluated);
    npe_sens_result_free(&r2);
    /* two workers with two kernel threads each (pools) */
    base_opts(&o, d, NULL);
    o.workers = 2;
    o.threads = 2;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    for (size_t i = 0; rc == 0 && i < r1.table.n_groups; i++)
        for (size_t j = 0; !r1.table.groups[i].skip_reason && j < r1.table.groups[i].n_sparsities;
             j++)
            CHECK(r2.table.groups[i].values[j] == r1.table.groups[i].values[j]);
    npe_sens_result_free(&r2);

    /* ---- cancel after 4 evaluations, then resume ------------------------------------------- */
    base_opts(&o, d, dir3);
    counter cc = {0, 4};
    o.cancel = cancel_after;
    o.cancel_user = &cc;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_EQ_INT(rc, NPE_ECANCELED);
    CHECK(strstr(err.msg, "resume") != NULL);
    CHECK_EQ_INT(r2.evaluated, 0); /* the result is zeroed on failure */
    o.cancel = NULL;
    o.workers = 2;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(r2.restored, 4);
    CHECK_EQ_INT(r2.evaluated, r1.evaluated - 4);
    path_in(b, sizeof b, "resumed", "sens.csv");
    CHECK(same_file(a, b));
    npe_sens_result_free(&r2);
    /* a third run finds everything done */
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(r2.evaluated, 0);
    CHECK_EQ_INT(r2.restored, r1.evaluated);
    CHECK(same_file(a, b));
    npe_sens_result_free(&r2);

    /* ---- early stop "dropped" with a tight threshold: nothing past a violation ------------ */
    base_opts(&o, d, dir4);
    o.early_stop_mode = NPE_EARLY_STOP_DROPPED;
    o.metric_thres = 0.004;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    size_t expect_evals = 0, cut = 0;
    for (size_t i = 0; i < r1.table.n_groups; i++) {
        const npe_sens_group *full = &r1.table.groups[i];
        if (full->skip_reason)
            continue;
        size_t len = full->n_sparsities;
        for (size_t j = 0; j < full->n_sparsities; j++)
            if (full->values[j] < r1.baseline - 0.004) {
                len = j + 1;
                break;
            }
        cut += len < full->n_sparsities;
        expect_evals += len;
        int e = npe_sens_find_group(&r2.table, full->name);
        CHECK(e >= 0);
        if (e < 0)
            continue;
        CHECK_EQ_INT(npe_sens_row_len(&r2.table, (size_t)e), len);
        for (size_t j = 0; j < r2.table.groups[e].n_sparsities; j++) {
            CHECK_EQ_INT(r2.table.groups[e].measured[j], j < len);
            if (j < len)
                CHECK(r2.table.groups[e].values[j] == full->values[j]);
        }
    }
    CHECK(cut >= 1); /* the threshold is tight enough to stop some group */
    CHECK_EQ_INT(r2.evaluated, expect_evals);
    npe_sens_result_free(&r2);

    /* ---- fidelity: baseline 1, values <= 1; cached and recomputed references agree --------- */
    double fid[2][64];
    size_t nfid = 0;
    for (int pass = 0; pass < 2; pass++) {
        base_opts(&o, d, NULL);
        npe_metric_opts_init(&o.metric, NPE_METRIC_FIDELITY);
        o.workers = 2;
        o.cache_bytes = pass ? 0 : (size_t)1 << 30; /* pass 1 recomputes every reference */
        rc = npe_sens_analyse(g, &o, &r2, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        CHECK(r2.baseline == 1.0);
        size_t k = 0;
        for (size_t i = 0; i < r2.table.n_groups; i++)
            for (size_t j = 0; !r2.table.groups[i].skip_reason &&
                               j < r2.table.groups[i].n_sparsities && k < 64; j++) {
                double v = r2.table.groups[i].values[j];
                CHECK(r2.table.groups[i].measured[j]);
                CHECK_MSG(v <= 1.0 + 1e-12 && v > 0, "fidelity %g", v);
                fid[pass][k++] = v;
            }
        nfid = k;
        npe_sens_result_free(&r2);
    }
    CHECK(nfid == analysed * 5);
    for (size_t k = 0; k < nfid; k++)
        CHECK(fid[0][k] == fid[1][k]);

    /* ---- target policy: MACs at most 70% predicted ----------------------------------------- */
    base_opts(&o, d, dir1); /* resumes everything: no evaluation */
    o.target_macs = 0.7;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(r2.evaluated, 0);
    CHECK(r2.target_used && r2.target.feasible && r2.target.fraction <= 0.7);
    CHECK(r2.macs_after < r2.macs_before);
    npe_sens_result_free(&r2);

    /* ---- reuse of computation: the same values as whole pruned models ---------------------- */
    {
        base_opts(&o, d, NULL);
        o.metric_thres = 0.004;
        o.early_stop_mode = NPE_EARLY_STOP_DROPPED;
        /* 256 images of 3 KiB: 0.75 MiB of batches; then frontier activations */
        size_t budgets[] = {0, 400 << 10, 900 << 10, 2 << 20, 0, 400 << 10, (size_t)-1};
        check_reuse(g, &o, budgets, "fashion top1, early stop");
        base_opts(&o, d, NULL);
        npe_metric_opts_init(&o.metric, NPE_METRIC_FIDELITY);
        check_reuse(g, &o, budgets, "fashion fidelity");
        if (argc > 2) {
            check_reuse_model(argv[2], "yolov5", 5, 2);
            check_reuse_model(argv[2], "unet", 3, 2);
        }
    }

    /* ---- exclude_layers and errors --------------------------------------------------------- */
    base_opts(&o, d, NULL);
    const char *ex[] = {"block.conv1"};
    o.exclude_layers = ex;
    o.n_exclude_layers = 1;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int e = npe_sens_find_group(&r2.table, "block.conv1");
    CHECK(e >= 0 && r2.table.groups[e].skip_reason &&
          strstr(r2.table.groups[e].skip_reason, "exclude_layers"));
    CHECK_EQ_INT(r2.evaluated, (analysed - 1) * 5);
    npe_sens_result_free(&r2);

    const char *bad[] = {"block.conv9"};
    o.exclude_layers = bad;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_EQ_INT(rc, NPE_ENOTFOUND);
    CHECK(strstr(err.msg, "block.conv9") != NULL);

    base_opts(&o, d, NULL);
    npe_tshape wrong = {4, {1, 3, 32, 32}};
    o.inputs = &wrong;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_EQ_INT(rc, NPE_EINVAL);
    CHECK(strstr(err.msg, "dummy_input") != NULL);

    base_opts(&o, d, NULL);
    o.metric_thres = -1;
    CHECK_EQ_INT(npe_sens_analyse(g, &o, &r2, &err), NPE_EINVAL);

    /* ori_metric given: used as the baseline */
    base_opts(&o, d, NULL);
    o.ori_metric = 0.5;
    double sp[] = {0.5};
    o.sparsities = sp;
    o.n_sparsities = 1;
    o.log = NULL;
    rc = npe_sens_analyse(g, &o, &r2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(r2.baseline == 0.5 && fabs(r2.measured_baseline - TORCH_CORRECT_256 / 256.0) < 1e-12);
    npe_sens_result_free(&r2);

    npe_sens_result_free(&r1);
    npe_dataset_destroy(d);
    npe_graph_destroy(g);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (getenv("SENS_KEEP"))
        printf("kept %s\n", tmpdir);
    else if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("sens");
}
