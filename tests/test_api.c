/* The public C API (issue 7) through <npengine/npengine.h> only, on the bundled Fashion-MNIST CNN:
 * queries against hand-computed counts, forward into caller buffers, concurrent forwards against
 * serial bits, per-group pruning (names, indices, sparsities) and its errors, caller callbacks in
 * npe_run (errors propagate with the callback's message), and bad arguments.
 *
 * usage: test_api SOURCE_ROOT WORK_DIR
 *        test_api --prune-export MODEL OUT_DIR   (for check_api_prune.py: writes the pruned files) */
#define _XOPEN_SOURCE 700 /* nftw */
#include <npengine/npengine.h>

#include <math.h>
#include <pthread.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "testutil.h"

static char model_path[4096], work[4096];

#define HAS(hay, needle) (strstr((hay), (needle)) != NULL)

/* ---- Queries: every number below is computed by hand from examples/fashion_mnist/model.py --------
 * stem.0 Conv2d(1,32,3,p=1,no bias) -> BN(32) -> ReLU -> MaxPool(2); block: conv1, conv2 =
 * Conv2d(32,32,3,p=1,no bias) + BN each, residual add; down.0 Conv2d(32,64,3,s=2,p=1,no bias) ->
 * BN(64); avgpool; fc Linear(64,10). At 28x28: stem out 28x28, block 14x14, down 7x7. */
typedef struct layer_ref {
    const char *name, *type;
    int64_t in, out, params, macs;
    int k, stride, pad;
} layer_ref;

static const layer_ref layers28[] = {
    {"stem.0", "Conv2d", 1, 32, 288, 28 * 28 * 32 * 9, 3, 1, 1},
    {"stem.1", "BatchNorm2d", 32, 32, 64, 0, 0, 0, 0},
    {"block.conv1", "Conv2d", 32, 32, 9216, 14 * 14 * 32 * 32 * 9, 3, 1, 1},
    {"block.bn1", "BatchNorm2d", 32, 32, 64, 0, 0, 0, 0},
    {"block.conv2", "Conv2d", 32, 32, 9216, 14 * 14 * 32 * 32 * 9, 3, 1, 1},
    {"block.bn2", "BatchNorm2d", 32, 32, 64, 0, 0, 0, 0},
    {"down.0", "Conv2d", 32, 64, 18432, 7 * 7 * 64 * 32 * 9, 3, 2, 1},
    {"down.1", "BatchNorm2d", 64, 64, 128, 0, 0, 0, 0},
    {"fc", "Linear", 64, 10, 650, 640, 0, 0, 0},
};
#define PARAMS 38122
#define MACS28 4742272
#define MACS32 (32 * 32 * 32 * 9 + 2 * 16 * 16 * 32 * 288 + 8 * 8 * 64 * 288 + 640)

static int has_name(const char *const *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static void test_queries(npe_ctx *ctx)
{
    npe_model *m = NULL;
    CHECK_EQ_INT(npe_model_load(ctx, model_path, NULL, &m), 0);
    if (!m)
        return;
    /* before any analysis */
    npe_layer_info L;
    npe_group_info G;
    CHECK_EQ_INT(npe_model_layer_count(m), 0);
    CHECK_EQ_INT(npe_model_group_count(m), 0);
    CHECK_EQ_INT(npe_model_layer(m, 0, &L), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "npe_model_analyse"));
    CHECK_EQ_INT(npe_model_count(m, NULL, NULL), NPE_EINVAL);

    /* bad shapes */
    npe_shape bad[2] = {{4, {1, 1, 28, 28}}, {4, {1, 1, 28, 28}}};
    CHECK_EQ_INT(npe_model_analyse(m, bad, 2), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "1 input(s), 2 input shape(s)"));
    CHECK_EQ_INT(npe_model_analyse(m, NULL, 1), NPE_EINVAL);
    bad[0].d[2] = 0;
    CHECK_EQ_INT(npe_model_analyse(m, bad, 1), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "dim 2 is 0"));
    CHECK_EQ_INT(npe_model_analyse(NULL, bad, 1), NPE_EINVAL);

    npe_shape s28 = {4, {1, 1, 28, 28}};
    CHECK_EQ_INT(npe_model_analyse(m, &s28, 1), 0);
    int64_t params = 0, macs = 0;
    CHECK_EQ_INT(npe_model_count(m, &params, &macs), 0);
    CHECK_EQ_INT(params, PARAMS);
    CHECK_EQ_INT(macs, MACS28);
    int n = (int)(sizeof(layers28) / sizeof(layers28[0]));
    CHECK_EQ_INT(npe_model_layer_count(m), n);
    for (int i = 0; i < n && i < npe_model_layer_count(m); i++) {
        const layer_ref *r = &layers28[i];
        CHECK_EQ_INT(npe_model_layer(m, i, &L), 0);
        CHECK_STR(L.name, r->name);
        CHECK_STR(L.op_type, r->type);
        CHECK_EQ_INT(L.in_channels, r->in);
        CHECK_EQ_INT(L.out_channels, r->out);
        CHECK_EQ_INT(L.params, r->params);
        CHECK_EQ_INT(L.macs, r->macs);
        CHECK_EQ_INT(L.kernel[0], r->k);
        CHECK_EQ_INT(L.kernel[1], r->k);
        CHECK_EQ_INT(L.stride[0], r->stride);
        CHECK_EQ_INT(L.padding[1], r->pad);
        CHECK_EQ_INT(L.groups, 1);
        if (r->k)
            CHECK_EQ_INT(L.dilation[0], 1);
    }
    CHECK_EQ_INT(npe_model_layer(m, n, &L), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "outside 0..8"));

    /* groups: the residual add joins stem.0 and block.conv2; fc reaches the output */
    CHECK_EQ_INT(npe_model_group_count(m), 4);
    const char *gnames[] = {"stem.0", "block.conv1", "down.0", "fc"};
    const int gch[] = {32, 32, 64, 10};
    for (int i = 0; i < 4 && i < npe_model_group_count(m); i++) {
        CHECK_EQ_INT(npe_model_group(m, i, &G), 0);
        CHECK_STR(G.name, gnames[i]);
        CHECK_EQ_INT(G.channels, gch[i]);
        CHECK_EQ_INT(G.prunable, i < 3);
        CHECK_EQ_INT(npe_model_find_group(m, gnames[i]), i);
    }
    npe_model_group(m, 0, &G);
    CHECK_EQ_INT(G.n_producers, 2);
    CHECK(has_name(G.producers, G.n_producers, "stem.0"));
    CHECK(has_name(G.producers, G.n_producers, "block.conv2"));
    CHECK_EQ_INT(G.n_consumers, 2);
    CHECK(has_name(G.consumers, G.n_consumers, "block.conv1"));
    CHECK(has_name(G.consumers, G.n_consumers, "down.0"));
    CHECK(G.reason == NULL);
    npe_model_group(m, 2, &G);
    CHECK_EQ_INT(G.n_consumers, 1);
    CHECK(G.n_consumers == 1 && strcmp(G.consumers[0], "fc") == 0);
    npe_model_group(m, 3, &G);
    CHECK(G.reason && HAS(G.reason, "reaches model output"));
    CHECK_EQ_INT(npe_model_find_group(m, "nope"), NPE_ENOTFOUND);
    npe_shape os;
    CHECK_EQ_INT(npe_model_output_shape(m, 0, &os), 0);
    CHECK(os.ndim == 2 && os.d[0] == 1 && os.d[1] == 10);
    CHECK_EQ_INT(npe_model_output_shape(m, 1, &os), NPE_EINVAL);

    /* MACs are per image and follow the spatial size */
    npe_shape s32 = {4, {2, 1, 32, 32}};
    CHECK_EQ_INT(npe_model_analyse(m, &s32, 1), 0);
    CHECK_EQ_INT(npe_model_count(m, &params, &macs), 0);
    CHECK_EQ_INT(params, PARAMS);
    CHECK_EQ_INT(macs, MACS32);
    npe_model_destroy(m);
}

/* ---- Forward into caller buffers, and from several threads -------------------------------------- */

static void fill_random(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 65536.0f * 4.0f - 2.0f;
    }
}

#define NB 8
#define NOUT (NB * 10)

typedef struct job {
    npe_model *m;
    npe_tensor in;
    float out[NOUT];
    int rc, mismatches;
    const float *expect;
} job;

static void *run_job(void *arg)
{
    job *J = arg;
    for (int rep = 0; rep < 6; rep++) {
        npe_tensor o;
        memset(&o, 0, sizeof(o));
        o.data = J->out;
        o.nbytes = sizeof(J->out);
        int rc = npe_model_forward(J->m, &J->in, 1, &o, 1);
        if (rc)
            J->rc = rc;
        else if (memcmp(J->out, J->expect, sizeof(J->out)) != 0)
            J->mismatches++;
    }
    return NULL;
}

static void test_forward(npe_ctx *ctx)
{
    npe_model_options mo;
    npe_model_options_init(&mo);
    mo.threads = 1;
    npe_model *m = NULL;
    CHECK_EQ_INT(npe_model_load(ctx, model_path, &mo, &m), 0);
    if (!m)
        return;
    enum { NJOBS = 4 };
    static float inputs[NJOBS][NB * 28 * 28];
    static float serial[NJOBS][NOUT];
    npe_tensor in[NJOBS];
    for (int j = 0; j < NJOBS; j++) {
        fill_random(inputs[j], NB * 28 * 28, (uint32_t)j + 7);
        memset(&in[j], 0, sizeof(in[j]));
        in[j].dtype = NPE_DTYPE_F32;
        in[j].ndim = 4;
        in[j].shape[0] = NB;
        in[j].shape[1] = 1;
        in[j].shape[2] = in[j].shape[3] = 28;
        in[j].data = inputs[j];
        in[j].nbytes = sizeof(inputs[j]);
    }
    /* library-allocated output, then the same into a caller buffer */
    for (int j = 0; j < NJOBS; j++) {
        npe_tensor o;
        memset(&o, 0, sizeof(o));
        CHECK_EQ_INT(npe_model_forward(m, &in[j], 1, &o, 1), 0);
        CHECK(o.dtype == NPE_DTYPE_F32 && o.ndim == 2 && o.shape[0] == NB && o.shape[1] == 10 &&
              o.nbytes == sizeof(serial[j]));
        if (o.data && o.nbytes == sizeof(serial[j]))
            memcpy(serial[j], o.data, sizeof(serial[j]));
        npe_tensor_release(&o);
    }
    float buf[NOUT + 4];
    for (int i = 0; i < NOUT + 4; i++)
        buf[i] = -12345.0f;
    npe_tensor o;
    memset(&o, 0, sizeof(o));
    o.data = buf;
    o.nbytes = sizeof(buf);
    CHECK_EQ_INT(npe_model_forward(m, &in[0], 1, &o, 1), 0);
    CHECK(o.data == buf && o.nbytes == NOUT * sizeof(float) && o.ndim == 2 && o.shape[1] == 10);
    CHECK(memcmp(buf, serial[0], NOUT * sizeof(float)) == 0);
    CHECK(buf[NOUT] == -12345.0f); /* nothing past the output */
    /* too small: refused, nothing written */
    for (int i = 0; i < NOUT + 4; i++)
        buf[i] = -12345.0f;
    o.data = buf;
    o.nbytes = NOUT * sizeof(float) - 4;
    CHECK_EQ_INT(npe_model_forward(m, &in[0], 1, &o, 1), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "needs 320 bytes"));
    CHECK(buf[0] == -12345.0f);
    o.nbytes = 0;
    CHECK_EQ_INT(npe_model_forward(m, &in[0], 1, &o, 1), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "nbytes is 0"));
    /* bad arguments */
    memset(&o, 0, sizeof(o));
    CHECK_EQ_INT(npe_model_forward(m, &in[0], 2, &o, 1), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "takes 1 input(s), 2 given"));
    CHECK_EQ_INT(npe_model_forward(m, &in[0], 1, &o, 2), NPE_EINVAL);
    CHECK_EQ_INT(npe_model_forward(m, NULL, 1, &o, 1), NPE_EINVAL);
    npe_tensor short_in = in[0];
    short_in.nbytes -= 4;
    CHECK_EQ_INT(npe_model_forward(m, &short_in, 1, &o, 1), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "nbytes"));
    CHECK_EQ_INT(npe_model_forward(NULL, &in[0], 1, &o, 1), NPE_EINVAL);

    /* concurrent: each thread its own input, six times, every result the serial bits */
    job jobs[NJOBS];
    pthread_t th[NJOBS];
    for (int j = 0; j < NJOBS; j++) {
        memset(&jobs[j], 0, sizeof(jobs[j]));
        jobs[j].m = m;
        jobs[j].in = in[j];
        jobs[j].expect = serial[j];
    }
    for (int j = 0; j < NJOBS; j++)
        CHECK_EQ_INT(pthread_create(&th[j], NULL, run_job, &jobs[j]), 0);
    for (int j = 0; j < NJOBS; j++) {
        pthread_join(th[j], NULL);
        CHECK_EQ_INT(jobs[j].rc, 0);
        CHECK_EQ_INT(jobs[j].mismatches, 0);
    }
    npe_model_destroy(m);
}

/* ---- Per-group pruning ------------------------------------------------------------------------ */

static int64_t model_params(npe_model *m)
{
    int64_t p = -1;
    npe_model_count(m, &p, NULL);
    return p;
}

/* stem.0 keeps the even channels (16 of 32), down.0 sparsity 0.5 (32 of 64). Parameters by
 * hand: stem.0 16*9, stem.1 2*16, block.conv1 32*16*9, bn1 64, block.conv2 16*32*9, bn2 32,
 * down.0 32*16*9, down.1 64, fc 32*10+10. */
#define PRUNED_PARAMS (144 + 32 + 4608 + 64 + 4608 + 32 + 4608 + 64 + 330)

static int prune_example(npe_model *m)
{
    static int even[16];
    for (int i = 0; i < 16; i++)
        even[i] = 30 - 2 * i; /* any order */
    npe_shape s = {4, {1, 1, 28, 28}};
    npe_group_prune gp[2] = {{"stem.0", 0, even, 16}, {"down.0", 0.5, NULL, 0}};
    npe_prune_options po;
    npe_prune_options_init(&po);
    po.input_shapes = &s;
    po.n_input_shapes = 1;
    po.groups = gp;
    po.n_groups = 2;
    return npe_model_prune(m, &po);
}

static void test_prune(npe_ctx *ctx)
{
    npe_model *m = NULL;
    CHECK_EQ_INT(npe_model_load(ctx, model_path, NULL, &m), 0);
    if (!m)
        return;
    npe_shape s = {4, {1, 1, 28, 28}};
    CHECK_EQ_INT(npe_model_analyse(m, &s, 1), 0);
    npe_prune_options po;
    npe_prune_options_init(&po);
    po.input_shapes = &s;
    po.n_input_shapes = 1;
    int k3[3] = {0, 5, 7}, kdup[3] = {0, 5, 5}, krange[2] = {0, 32}, kneg[1] = {-1};
    struct {
        npe_group_prune g[2];
        int n, code;
        const char *msg;
    } bad[] = {
        {{{"stem.9", 0.5, NULL, 0}}, 1, NPE_ENOTFOUND, "no channel group 'stem.9'"},
        {{{"fc", 0.5, NULL, 0}}, 1, NPE_EINVAL, "reaches model output"},
        {{{"stem.0", 0.5, NULL, 0}, {"stem.0", 0.2, NULL, 0}}, 2, NPE_EINVAL, "both set group"},
        {{{"stem.0", 0, kdup, 3}}, 1, NPE_EINVAL, "repeated"},
        {{{"stem.0", 0, krange, 2}}, 1, NPE_EINVAL, "out of range"},
        {{{"stem.0", 0, kneg, 1}}, 1, NPE_EINVAL, "out of range"},
        {{{"stem.0", 1.0, NULL, 0}}, 1, NPE_EINVAL, "outside [0, 1)"},
        {{{"stem.0", -0.1, NULL, 0}}, 1, NPE_EINVAL, "outside [0, 1)"},
        {{{NULL, 0.5, NULL, 0}}, 1, NPE_EINVAL, "no group name"},
        {{{"stem.0", 0, NULL, 3}}, 1, NPE_EINVAL, "kept is NULL"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        po.groups = bad[i].g;
        po.n_groups = bad[i].n;
        int rc = npe_model_prune(m, &po);
        CHECK_MSG(rc == bad[i].code, "case %zu: %d (%s)", i, rc, npe_ctx_last_error(ctx));
        CHECK_MSG(HAS(npe_ctx_last_error(ctx), bad[i].msg), "case %zu: '%s' lacks '%s'", i,
                  npe_ctx_last_error(ctx), bad[i].msg);
        CHECK_EQ_INT(model_params(m), PARAMS); /* unchanged */
    }
    po.groups = NULL;
    po.n_groups = 1;
    CHECK_EQ_INT(npe_model_prune(m, &po), NPE_EINVAL);
    CHECK_EQ_INT(npe_model_prune(NULL, &po), NPE_EINVAL);
    CHECK(npe_model_prune_report(m) == NULL);

    /* exactly the indices given, in any order */
    npe_group_prune one = {"block.conv1", 0, k3, 3};
    po.groups = &one;
    po.n_groups = 1;
    CHECK_EQ_INT(npe_model_prune(m, &po), 0);
    const char *rep = npe_model_prune_report(m);
    CHECK(rep && HAS(rep, "\"kept\": [0, 5, 7]"));
    /* block.conv1 keeps 3: conv1 3*32*9, bn1 6, conv2 32*3*9 */
    CHECK_EQ_INT(model_params(m), PARAMS - 9216 * 2 + 3 * 32 * 9 * 2 - 64 + 6);
    npe_model_destroy(m);

    m = NULL;
    CHECK_EQ_INT(npe_model_load(ctx, model_path, NULL, &m), 0);
    if (!m)
        return;
    CHECK_EQ_INT(prune_example(m), 0);
    CHECK_EQ_INT(model_params(m), PRUNED_PARAMS);
    npe_group_info G;
    CHECK_EQ_INT(npe_model_group(m, 0, &G), 0);
    CHECK_EQ_INT(G.channels, 16);
    CHECK_EQ_INT(npe_model_group(m, 2, &G), 0);
    CHECK_EQ_INT(G.channels, 32);
    rep = npe_model_prune_report(m);
    CHECK(rep && HAS(rep, "\"kept\": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]"));
    npe_model_destroy(m);
}

/* ---- Callbacks in npe_run ----------------------------------------------------------------------- */

typedef struct src_state {
    int fail_from;    /* read fails for samples >= this (-1: never) */
    int fail_code;
    int reshape;      /* the callback changes the tensor it was given */
    int reads;
} src_state;

static int src_read(void *user, int64_t first, int64_t n, npe_tensor *input, npe_tensor *target,
                    char *msg, size_t msg_size)
{
    src_state *s = user;
    s->reads++;
    if (s->fail_from >= 0 && first + n > s->fail_from) {
        snprintf(msg, msg_size, "disk on fire at sample %d", s->fail_from);
        return s->fail_code;
    }
    if (s->reshape)
        input->ndim = 2;
    fill_random(input->data, input->nbytes / sizeof(float), (uint32_t)first);
    int64_t *lab = target->data;
    for (int64_t i = 0; i < n; i++)
        lab[i] = (first + i) % 10;
    return 0;
}

typedef struct met_state {
    int fail_accumulate, fail_end;
    int begun, ended, discarded;
    pthread_mutex_t lock;
} met_state;

static int met_begin(void *user, void **acc)
{
    met_state *s = user;
    pthread_mutex_lock(&s->lock);
    s->begun++;
    pthread_mutex_unlock(&s->lock);
    *acc = calloc(2, sizeof(long long));
    return *acc ? 0 : NPE_ENOMEM;
}

static int met_acc(void *user, void *acc, const npe_tensor *outputs, int n_outputs,
                   const npe_tensor *target, char *msg, size_t msg_size)
{
    met_state *s = user;
    if (s->fail_accumulate) {
        snprintf(msg, msg_size, "metric exploded");
        return 1;
    }
    long long *a = acc;
    if (n_outputs < 1 || outputs[0].ndim != 2 || !target)
        return 2;
    a[0] += outputs[0].shape[0];
    a[1] += ((const int64_t *)target->data)[0] % 2;
    return 0;
}

static int met_end(void *user, void *acc, double *value, char *msg, size_t msg_size)
{
    met_state *s = user;
    pthread_mutex_lock(&s->lock);
    s->ended++;
    pthread_mutex_unlock(&s->lock);
    long long *a = acc;
    *value = (double)a[0];
    free(acc);
    if (s->fail_end) {
        snprintf(msg, msg_size, "cannot finish");
        return -1;
    }
    return 0;
}

static void met_discard(void *user, void *acc)
{
    met_state *s = user;
    pthread_mutex_lock(&s->lock);
    s->discarded++;
    pthread_mutex_unlock(&s->lock);
    free(acc);
}

static int builtin_metric; /* run_with: [metric] name = "top1" of the config, no callbacks */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    return remove(path);
}

/* Each run starts afresh: an output dir left by an earlier test run (another model) would be
 * refused by the resume check, rightly. */
static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int run_with(npe_ctx *ctx, src_state *ss, met_state *ms, const npe_data_source *src_in,
                    const char *outdir, unsigned flags)
{
    rm_rf(outdir);
    char text[8192];
    /* without dummy_input it is [1, sample_shape...] of the source; given, the source must fit */
    int n = snprintf(text, sizeof(text),
                     "[model]\npath = \"%s\"\n%s[data]\nbatch_size = 16\n[prune]\nmetric_thres = "
                     "1000\nsparsities = [0.5]\n[run]\noutput_dir = \"%s\"\nworkers = 2\n%s",
                     model_path, src_in ? "dummy_input = [1, 1, 28, 28]\n" : "", outdir,
                     builtin_metric ? "[metric]\nname = \"top1\"\n" : "");
    npe_config *cfg = NULL;
    int rc = npe_config_parse(ctx, text, (size_t)n, NULL, &cfg);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        return rc;
    npe_data_source src;
    if (src_in) {
        src = *src_in;
    } else {
        memset(&src, 0, sizeof(src));
        src.n_samples = 40;
        src.sample_shape = (npe_shape){3, {1, 28, 28}};
        src.has_targets = 1;
        src.target_dtype = NPE_DTYPE_I64;
        src.read = src_read;
    }
    src.user = ss;
    npe_metric_callbacks met = {"samples_seen", 1, met_begin, met_acc, met_end, met_discard, ms};
    npe_run_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.data = &src;
    cb.metric = builtin_metric ? NULL : &met;
    char *summary = NULL;
    rc = npe_run(ctx, cfg, flags, &cb, &summary);
    npe_free(summary);
    npe_config_destroy(cfg);
    return rc;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void test_callbacks(npe_ctx *ctx)
{
    char out[4200], path[4400];
    src_state ss = {-1, 0, 0, 0};
    met_state ms;
    memset(&ms, 0, sizeof(ms));
    pthread_mutex_init(&ms.lock, NULL);

    /* a working run: the metric is the sample count (40), through every output file */
    snprintf(out, sizeof(out), "%s/cb_ok", work);
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, 0), 0);
    CHECK(ss.reads > 0);
    CHECK(ms.begun > 0 && ms.begun == ms.ended + ms.discarded);
    snprintf(path, sizeof(path), "%s/summary.json", out);
    CHECK(file_has(path, "\"metric\": \"samples_seen\""));
    CHECK(file_has(path, "\"metric_before\": 40"));
    snprintf(path, sizeof(path), "%s/sens_analysis/sens.csv", out);
    CHECK(file_has(path, "stem.0,40"));
    const char *files[] = {"pruned.pt", "pruned.pth", "pruned.channels.json", "prune_report.json",
                           "report.html"};
    for (int i = 0; i < 5; i++) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", out, files[i]);
        CHECK_MSG(stat(path, &st) == 0 && st.st_size > 0, "%s", path);
    }

    /* the caller's data with the built-in top1: labels i % 10 on random images */
    builtin_metric = 1;
    snprintf(out, sizeof(out), "%s/cb_top1", work);
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, 0), 0);
    snprintf(path, sizeof(path), "%s/summary.json", out);
    CHECK(file_has(path, "\"metric\": \"top1\""));
    builtin_metric = 0;

    /* the read callback fails: its message and the samples, NPE_ECALLBACK */
    ss = (src_state){20, 7, 0, 0};
    snprintf(out, sizeof(out), "%s/cb_read", work);
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, NPE_RUN_ANALYSIS_ONLY), NPE_ECALLBACK);
    CHECK(HAS(npe_ctx_last_error(ctx), "disk on fire at sample 20"));
    CHECK(HAS(npe_ctx_last_error(ctx), "samples 16..31"));
    /* ... or its own NPE_E* code */
    ss = (src_state){0, NPE_EIO, 0, 0};
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, NPE_RUN_ANALYSIS_ONLY), NPE_EIO);
    /* the callback changed the tensor it was given */
    ss = (src_state){-1, 0, 1, 0};
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, NPE_RUN_ANALYSIS_ONLY), NPE_ECALLBACK);
    CHECK(HAS(npe_ctx_last_error(ctx), "changed the tensors"));
    /* metric failures */
    ss = (src_state){-1, 0, 0, 0};
    ms.fail_accumulate = 1;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, NPE_RUN_ANALYSIS_ONLY), NPE_ECALLBACK);
    CHECK(HAS(npe_ctx_last_error(ctx), "metric 'samples_seen': accumulate"));
    CHECK(HAS(npe_ctx_last_error(ctx), "metric exploded"));
    ms.fail_accumulate = 0;
    ms.fail_end = 1;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, NULL, out, NPE_RUN_ANALYSIS_ONLY), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "cannot finish"));
    ms.fail_end = 0;
    pthread_mutex_lock(&ms.lock);
    CHECK_EQ_INT(ms.begun, ms.ended + ms.discarded); /* every accumulator released */
    pthread_mutex_unlock(&ms.lock);

    /* sources that cannot be used */
    npe_data_source src;
    memset(&src, 0, sizeof(src));
    src.n_samples = 40;
    src.sample_shape = (npe_shape){3, {1, 32, 32}}; /* not the model's 28x28 */
    src.has_targets = 1;
    src.target_dtype = NPE_DTYPE_I64;
    src.read = src_read;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, &src, out, NPE_RUN_ANALYSIS_ONLY), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "dummy_input"));
    src.sample_shape = (npe_shape){3, {1, 28, 28}};
    src.read = NULL;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, &src, out, NPE_RUN_ANALYSIS_ONLY), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "read callback"));
    src.read = src_read;
    src.n_samples = 0;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, &src, out, NPE_RUN_ANALYSIS_ONLY), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "n_samples"));
    src.n_samples = 40;
    src.target_dtype = (npe_dtype)99;
    CHECK_EQ_INT(run_with(ctx, &ss, &ms, &src, out, NPE_RUN_ANALYSIS_ONLY), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "target_dtype"));
    pthread_mutex_destroy(&ms.lock);

    /* configuration text */
    npe_config *cfg = NULL;
    const char *bad = "[model]\npath = \"m.pt\"\nbogus = 1\n";
    CHECK_EQ_INT(npe_config_parse(ctx, bad, strlen(bad), "/tmp", &cfg), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "config:3:1"));
    CHECK(HAS(npe_ctx_last_error(ctx), "bogus"));
    CHECK(cfg == NULL);
    CHECK_EQ_INT(npe_config_parse(ctx, NULL, 0, NULL, &cfg), NPE_EINVAL);
    const char *nodata = "[model]\npath = \"m.pt\"\ndummy_input = [1, 1, 28, 28]\n";
    CHECK_EQ_INT(npe_config_parse(ctx, nodata, strlen(nodata), "/tmp", &cfg), 0);
    CHECK_EQ_INT(npe_run(ctx, cfg, 0, NULL, NULL), NPE_EINVAL);
    CHECK(HAS(npe_ctx_last_error(ctx), "[data] kind is missing"));
    npe_config_destroy(cfg);
}

static void test_basics(void)
{
    CHECK_EQ_INT(npe_version(), NPE_VERSION);
    char v[32];
    snprintf(v, sizeof(v), "%d.%d.%d", NPE_VERSION_MAJOR, NPE_VERSION_MINOR, NPE_VERSION_PATCH);
    CHECK_STR(npe_version_string(), v);
    CHECK_STR(npe_strerror(NPE_ECALLBACK), "a caller callback failed");
    CHECK_EQ_INT(npe_ctx_create(NULL), NPE_EINVAL);
    npe_ctx_destroy(NULL);
    npe_model_destroy(NULL);
    npe_config_destroy(NULL);
    CHECK_STR(npe_ctx_last_error(NULL), "");
    npe_ctx *ctx = NULL;
    CHECK_EQ_INT(npe_ctx_create(&ctx), 0);
    npe_model *m = (npe_model *)1;
    CHECK_EQ_INT(npe_model_load(ctx, NULL, NULL, &m), NPE_EINVAL);
    CHECK(m == NULL);
    CHECK_EQ_INT(npe_model_load(ctx, "/nonexistent/model.pt", NULL, &m), NPE_EIO);
    CHECK(HAS(npe_ctx_last_error(ctx), "/nonexistent/model.pt"));
    /* the last error is the calling thread's own */
    CHECK_EQ_INT(npe_model_count(NULL, NULL, NULL), NPE_EINVAL);
    npe_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--prune-export") == 0) {
        /* the cut check_api_prune.py redoes in PyTorch */
        npe_ctx *ctx = NULL;
        npe_model *m = NULL;
        char p[4400];
        int rc = npe_ctx_create(&ctx);
        if (!rc)
            rc = npe_model_load(ctx, argv[2], NULL, &m);
        if (!rc)
            rc = prune_example(m);
        if (!rc)
            snprintf(p, sizeof(p), "%s/pruned.pt", argv[3]), rc = npe_model_save_torchscript(m, p);
        if (!rc)
            snprintf(p, sizeof(p), "%s/pruned.pth", argv[3]), rc = npe_model_save_state_dict(m, p);
        FILE *f = NULL;
        if (!rc) {
            snprintf(p, sizeof(p), "%s/report.json", argv[3]);
            f = fopen(p, "w");
            rc = f && fputs(npe_model_prune_report(m), f) >= 0 ? 0 : NPE_EIO;
            if (f)
                fclose(f);
        }
        if (rc)
            fprintf(stderr, "test_api: %s\n", npe_ctx_last_error(ctx));
        npe_model_destroy(m);
        npe_ctx_destroy(ctx);
        return rc ? 1 : 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: test_api SOURCE_ROOT WORK_DIR\n");
        return 2;
    }
    snprintf(model_path, sizeof(model_path), "%s/examples/fashion_mnist/model.pt", argv[1]);
    snprintf(work, sizeof(work), "%s", argv[2]);
    mkdir(work, 0755);
    test_basics();
    npe_ctx *ctx = NULL;
    if (npe_ctx_create(&ctx))
        return 1;
    test_queries(ctx);
    test_forward(ctx);
    test_prune(ctx);
    test_callbacks(ctx);
    npe_ctx_destroy(ctx);
    return tu_finish("test_api");
}
