/* Conformance against PyTorch: runs every traced model written by tests/gen_models.py through
 * npe_eval_torchscript and compares each output with the one PyTorch computed for the same input.
 *
 * usage: test_conformance OUTDIR [NAME...]   (OUTDIR holds models.txt; NAMEs select models)
 * A listed name ARCHIVE@METHOD runs the exported method METHOD of ARCHIVE.pt (forward_name). Its
 * inputs and outputs are the files of the full name.
 * Tolerance: max|ours - torch| / max|torch| <= 1e-4 per output. Both sides compute in float32 but
 * sum in different orders (im2col + sgemm against PyTorch's kernels), and batch norm is folded into
 * an affine by us; 1e-4 of the output's range leaves room for that rounding and for nothing else.
 * Prints one line per model and batch size with the worst ratio over its outputs. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec.h"
#include "formats/npy.h"
#include "testutil.h"

#define TOLERANCE 1e-4
#define MAX_BATCHES 8
#define MAX_INPUTS 8
#define THREADS 2

typedef struct model_line {
    char name[128];
    int n_batches;
    int batch[MAX_BATCHES];
    int n_inputs;
    int n_outputs;
} model_line;

static int failed_runs, total_runs;

static void shape_str(const npe_array *a, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < a->ndim && n + 24 < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? "x%lld" : "%lld", (long long)a->shape[d]);
    if (a->ndim == 0)
        snprintf(buf, cap, "scalar");
}

/* Parse "NAME\tB=shape,shape B=shape\tN". Returns 0 on success, -1 with a message on error. */
static int parse_line(char *line, model_line *m, const char *path, int lineno)
{
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!tab1 || !tab2 || (size_t)(tab1 - line) >= sizeof(m->name)) {
        fprintf(stderr, "%s:%d: expected NAME<TAB>BATCHES<TAB>N_OUTPUTS\n", path, lineno);
        return -1;
    }
    memset(m, 0, sizeof(*m));
    memcpy(m->name, line, (size_t)(tab1 - line));
    *tab2 = '\0';
    m->n_outputs = atoi(tab2 + 1);
    char *save = NULL;
    for (char *tok = strtok_r(tab1 + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || m->n_batches == MAX_BATCHES) {
            fprintf(stderr, "%s:%d: bad batch entry '%s'\n", path, lineno, tok);
            return -1;
        }
        m->batch[m->n_batches++] = atoi(tok);
        int n = 1;
        for (const char *c = eq + 1; *c; c++)
            n += *c == ',';
        m->n_inputs = n;
    }
    if (m->n_batches == 0 || m->n_outputs <= 0 || m->n_inputs > MAX_INPUTS) {
        fprintf(stderr, "%s:%d: model '%s': no batches, outputs or too many inputs\n", path,
                lineno, m->name);
        return -1;
    }
    return 0;
}

/* max|a - b| / max|b| over the elements; a NaN anywhere gives INFINITY. */
static double rel_diff(const npe_array *ours, const npe_array *ref)
{
    const float *a = ours->data, *b = ref->data;
    int64_t n = npe_array_numel(ref);
    double dmax = 0.0, rmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d == d))
            return INFINITY;
        if (d > dmax)
            dmax = d;
        if (fabs((double)b[i]) > rmax)
            rmax = fabs((double)b[i]);
    }
    if (rmax == 0.0)
        return dmax == 0.0 ? 0.0 : INFINITY;
    return dmax / rmax;
}

/* Index and values of the worst element, for the failure message. */
static void worst(const npe_array *ours, const npe_array *ref, char *buf, size_t cap)
{
    const float *a = ours->data, *b = ref->data;
    int64_t n = npe_array_numel(ref), wi = 0;
    double wd = -1.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d == d) || d > wd) {
            wd = d == d ? d : INFINITY;
            wi = i;
            if (!(d == d))
                break;
        }
    }
    snprintf(buf, cap, "worst at flat index %lld: ours %.7g, torch %.7g", (long long)wi,
             n ? (double)a[wi] : 0.0, n ? (double)b[wi] : 0.0);
}

static void run_one(const char *dir, const model_line *m, int batch)
{
    char path[4096], msg[NPE_ERROR_MSG_MAX + 512] = "";
    npe_array inputs[MAX_INPUTS];
    npe_array *outputs = NULL;
    int n_outputs = 0, n_loaded = 0, ok = 1;
    double worst_ratio = 0.0;
    npe_error err = {0};

    memset(inputs, 0, sizeof(inputs));
    total_runs++;
    for (; n_loaded < m->n_inputs; n_loaded++) {
        snprintf(path, sizeof(path), "%s/%s.b%d.in%d.npy", dir, m->name, batch, n_loaded);
        if (npe_npy_load(path, &inputs[n_loaded], &err) != 0) {
            snprintf(msg, sizeof(msg), "input: %s", err.msg);
            ok = 0;
            goto out;
        }
    }
    const char *at = strchr(m->name, '@');
    snprintf(path, sizeof(path), "%s/%.*s.pt", dir, at ? (int)(at - m->name) : (int)strlen(m->name),
             m->name);
    if (npe_eval_torchscript(path, at ? at + 1 : NULL, inputs, m->n_inputs, &outputs, &n_outputs,
                             THREADS, &err) != 0) {
        snprintf(msg, sizeof(msg), "npe_eval_torchscript: %s", err.msg);
        ok = 0;
        goto out;
    }
    if (n_outputs != m->n_outputs) {
        snprintf(msg, sizeof(msg), "%d outputs, torch gives %d", n_outputs, m->n_outputs);
        ok = 0;
        goto out;
    }
    for (int i = 0; i < m->n_outputs; i++) {
        npe_array ref = {0};
        char sa[128], sb[128];
        snprintf(path, sizeof(path), "%s/%s.b%d.out%d.npy", dir, m->name, batch, i);
        if (npe_npy_load(path, &ref, &err) != 0) {
            snprintf(msg, sizeof(msg), "reference: %s", err.msg);
            ok = 0;
            goto out;
        }
        const npe_array *o = &outputs[i];
        int same = o->dtype == NPE_DTYPE_F32 && ref.dtype == NPE_DTYPE_F32 && o->ndim == ref.ndim;
        for (int d = 0; same && d < o->ndim; d++)
            same = o->shape[d] == ref.shape[d];
        if (!same) {
            shape_str(o, sa, sizeof(sa));
            shape_str(&ref, sb, sizeof(sb));
            snprintf(msg, sizeof(msg), "output %d: shape %s (dtype %d), torch %s", i, sa,
                     (int)o->dtype, sb);
            npe_array_free(&ref);
            ok = 0;
            goto out;
        }
        double r = rel_diff(o, &ref);
        if (r > worst_ratio || r != r)
            worst_ratio = r;
        if (!(r <= TOLERANCE) && ok) {
            char w[160];
            worst(o, &ref, w, sizeof(w));
            snprintf(msg, sizeof(msg), "output %d: max|diff|/max|ref| = %.3g > %g; %s", i, r,
                     TOLERANCE, w);
            ok = 0;
        }
        npe_array_free(&ref);
    }
out:
    if (ok)
        printf("PASS  %-28s batch %d  max rel diff %.3g\n", m->name, batch, worst_ratio);
    else
        printf("FAIL  %-28s batch %d  %s\n", m->name, batch, msg);
    fflush(stdout);
    CHECK_MSG(ok, "%s batch %d", m->name, batch);
    failed_runs += !ok;
    for (int i = 0; i < n_loaded; i++)
        npe_array_free(&inputs[i]);
    for (int i = 0; i < n_outputs; i++)
        npe_array_free(&outputs[i]);
    free(outputs);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc <= 2)
        return 1;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTDIR [NAME...]  (OUTDIR written by tests/gen_models.py)\n",
                argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char path[4096], line[4096];
    snprintf(path, sizeof(path), "%s/models.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open (run tests/gen_models.py %s first)\n", path, dir);
        return 1;
    }
    int lineno = 0, n_models = 0, n_selected = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        model_line m;
        if (parse_line(line, &m, path, lineno) != 0) {
            CHECK(0);
            continue;
        }
        n_models++;
        if (!selected(m.name, argc, argv))
            continue;
        n_selected++;
        for (int b = 0; b < m.n_batches; b++)
            run_one(dir, &m, m.batch[b]);
    }
    fclose(f);
    CHECK_MSG(n_models > 0, "%s lists no model", path);
    CHECK_MSG(argc <= 2 || n_selected == argc - 2, "a model named on the command line is not in %s",
              path);
    printf("%d of %d runs failed\n", failed_runs, total_runs);
    return tu_finish("conformance");
}
