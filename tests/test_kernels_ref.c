/* Checks every reference kernel against PyTorch: reads the cases written by
 * tests/gen_kernel_refs.py (OUTDIR/cases.txt plus .npy inputs and torch outputs), runs the
 * kernel and compares; also checks the output-size rules on hand-worked invalid shapes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../formats/npy.h"
#include "testutil.h"

#define MAX_TOKENS 40
#define GUARD 16             /* canary floats after every output buffer */
#define CANARY 1234.5678f
#define TOL 1e-5             /* max |diff| relative to max |ref|: exact ops, sums in float */
#define TOL_TRANSCENDENTAL 1e-4 /* exp/erf/tanh/pow: libm and PyTorch's vector versions differ */

static const char *g_dir;
static npe_kernels g_k;

typedef struct op_stats {
    char op[32];
    int run, passed;
} op_stats;

static op_stats g_stats[32];
static int g_nstats;

static op_stats *stats_for(const char *op)
{
    for (int i = 0; i < g_nstats; i++)
        if (strcmp(g_stats[i].op, op) == 0)
            return &g_stats[i];
    if (g_nstats == (int)(sizeof(g_stats) / sizeof(g_stats[0])))
        return NULL;
    snprintf(g_stats[g_nstats].op, sizeof(g_stats[g_nstats].op), "%s", op);
    return &g_stats[g_nstats++];
}

/* ---- One case line: op id key=value ... ---------------------------------------------------- */
typedef struct case_line {
    char *tok[MAX_TOKENS];
    int ntok;
    const char *op, *id;
    int bad;      /* a key was missing or malformed */
    int compared; /* comparisons made */
    int failed;   /* comparisons that failed */
} case_line;

static const char *get_str(case_line *c, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 2; i < c->ntok; i++)
        if (strncmp(c->tok[i], key, kl) == 0 && c->tok[i][kl] == '=')
            return c->tok[i] + kl + 1;
    fprintf(stderr, "%s: key '%s' missing from cases.txt\n", c->id, key);
    c->bad = 1;
    return NULL;
}

static int get_int(case_line *c, const char *key)
{
    const char *s = get_str(c, key);
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -1000000000L || v > 1000000000L) {
        fprintf(stderr, "%s: key '%s': bad integer '%s'\n", c->id, key, s);
        c->bad = 1;
        return 0;
    }
    return (int)v;
}

static float get_float(case_line *c, const char *key)
{
    const char *s = get_str(c, key);
    if (!s)
        return 0.0f;
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s) {
        fprintf(stderr, "%s: key '%s': bad number '%s'\n", c->id, key, s);
        c->bad = 1;
        return 0.0f;
    }
    return (float)v;
}

/* A comma list of dims ("-" for none); returns the count. */
static int get_dims(case_line *c, const char *key, int64_t *dims)
{
    const char *s = get_str(c, key);
    if (!s || strcmp(s, "-") == 0)
        return 0;
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || n == NPE_KMAX_DIMS || (*end && *end != ',')) {
            fprintf(stderr, "%s: key '%s': bad dims '%s'\n", c->id, key, s);
            c->bad = 1;
            return 0;
        }
        dims[n++] = v;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* ---- Arrays -------------------------------------------------------------------------------- */
/* Load <id>_<name>.npy as float32; NULL (and a message) if absent or of another dtype. */
static float *load(case_line *c, const char *name, npe_array *a)
{
    char path[4096];
    npe_error err = {0};
    snprintf(path, sizeof(path), "%s/%s_%s.npy", g_dir, c->id, name);
    if (npe_npy_load(path, a, &err) != 0) {
        fprintf(stderr, "%s: %s\n", c->id, err.msg);
        c->bad = 1;
        return NULL;
    }
    if (a->dtype != NPE_DTYPE_F32) {
        fprintf(stderr, "%s: expected float32, found dtype %d\n", path, (int)a->dtype);
        npe_array_free(a);
        c->bad = 1;
        return NULL;
    }
    return (float *)a->data;
}

/* An output buffer of n floats followed by GUARD canaries, prefilled with NaN so an element the
 * kernel forgets to write fails the comparison. */
static float *out_alloc(int64_t n)
{
    float *y = malloc(((size_t)n + GUARD) * sizeof(float));
    if (!y) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n; i++)
        y[i] = NAN;
    for (int i = 0; i < GUARD; i++)
        y[n + i] = CANARY;
    return y;
}

/* Compare y (n floats + canaries) with torch's ref; what names the variant in messages. */
static int compare(case_line *c, const char *what, const float *y, const npe_array *ref,
                   int64_t n, double tol)
{
    int ok = 1;
    if (npe_array_numel(ref) != n) {
        fprintf(stderr, "%s%s: output has %lld elements, torch's has %lld\n", c->id, what,
                (long long)n, (long long)npe_array_numel(ref));
        ok = 0;
    }
    const float *r = ref->data;
    double maxref = 0.0, maxdiff = 0.0;
    for (int64_t i = 0; ok && i < n; i++)
        if (isfinite(r[i]) && fabs(r[i]) > maxref)
            maxref = fabs(r[i]);
    const double scale = maxref > 1e-6 ? maxref : 1e-6;
    int64_t first_bad = -1;
    for (int64_t i = 0; ok && i < n; i++) {
        double d;
        if (isnan(r[i]) || isinf(r[i]))
            d = (isnan(r[i]) ? isnan(y[i]) : y[i] == r[i]) ? 0.0 : INFINITY;
        else
            d = isnan(y[i]) ? INFINITY : fabs((double)y[i] - r[i]);
        if (d > maxdiff)
            maxdiff = d;
        if (d > tol * scale && first_bad < 0)
            first_bad = i;
    }
    if (ok && first_bad >= 0) {
        fprintf(stderr,
                "%s%s: max |diff| %.3g (relative %.3g > %.0e); first mismatch at flat index "
                "%lld: got %.9g, torch %.9g\n",
                c->id, what, maxdiff, maxdiff / scale, tol, (long long)first_bad,
                (double)y[first_bad], (double)r[first_bad]);
        ok = 0;
    }
    for (int i = 0; i < GUARD; i++)
        if (memcmp(&y[n + i], &(float){CANARY}, sizeof(float)) != 0) {
            fprintf(stderr, "%s%s: kernel wrote past its output (element %lld)\n", c->id, what,
                    (long long)(n + i));
            ok = 0;
            break;
        }
    CHECK_MSG(ok, "case %s%s", c->id, what);
    c->compared++;
    c->failed += !ok;
    return ok;
}

static int64_t prod(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= d[i];
    return p;
}

static void check_shape(case_line *c, const npe_array *ref, int ndim, const int64_t *dims)
{
    int ok = ref->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = ref->shape[i] == dims[i];
    CHECK_MSG(ok, "%s: computed output shape differs from torch's", c->id);
}

/* ---- Per-op runners ----------------------------------------------------------------------- */
static void run_conv2d(case_line *c)
{
    npe_conv2d_params p = {
        .n = get_int(c, "n"), .c_in = get_int(c, "cin"), .h_in = get_int(c, "h"),
        .w_in = get_int(c, "w"), .c_out = get_int(c, "cout"), .kh = get_int(c, "kh"),
        .kw = get_int(c, "kw"), .sh = get_int(c, "sh"), .sw = get_int(c, "sw"),
        .ph = get_int(c, "ph"), .pw = get_int(c, "pw"), .dh = get_int(c, "dh"),
        .dw = get_int(c, "dw"), .groups = get_int(c, "groups"),
        .transposed = get_int(c, "transposed"), .oph = get_int(c, "oph"),
        .opw = get_int(c, "opw"),
    };
    int bias = get_int(c, "bias");
    npe_array xa = {0}, wa = {0}, ba = {0}, ya = {0};
    float *x = load(c, "x", &xa), *w = load(c, "w", &wa), *b = bias ? load(c, "b", &ba) : NULL;
    load(c, "y", &ya);
    if (!c->bad) {
        CHECK_EQ_INT(npe_conv2d_out_size(&p), 0);
        int64_t dims[4] = {p.n, p.c_out, p.h_out, p.w_out};
        check_shape(c, &ya, 4, dims);
        int64_t ny = prod(dims, 4);
        CHECK_EQ_INT(g_k.conv2d_scratch(&p, 1), 0);
        float *y = out_alloc(ny);
        g_k.conv2d(NULL, &p, x, w, b, y);
        compare(c, "", y, &ya, ny, TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&wa);
    npe_array_free(&ba);
    npe_array_free(&ya);
}

static void run_linear(case_line *c)
{
    int m = get_int(c, "m"), k = get_int(c, "k"), n = get_int(c, "n"), bias = get_int(c, "bias");
    npe_array xa = {0}, wa = {0}, ba = {0}, ya = {0};
    float *x = load(c, "x", &xa), *w = load(c, "w", &wa), *b = bias ? load(c, "b", &ba) : NULL;
    load(c, "y", &ya);
    if (!c->bad) {
        float *y = out_alloc((int64_t)m * n);
        g_k.linear(NULL, m, k, n, x, w, b, y);
        compare(c, "", y, &ya, (int64_t)m * n, TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&wa);
    npe_array_free(&ba);
    npe_array_free(&ya);
}

static void run_affine(case_line *c)
{
    int n = get_int(c, "n"), ch = get_int(c, "c"), inner = get_int(c, "inner");
    npe_array xa = {0}, sa = {0}, ha = {0}, ya = {0};
    float *x = load(c, "x", &xa), *sc = load(c, "scale", &sa), *sh = load(c, "shift", &ha);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t total = (int64_t)n * ch * inner;
        float *y = out_alloc(total);
        g_k.channel_affine(NULL, n, ch, inner, x, sc, sh, y);
        compare(c, "", y, &ya, total, TOL);
        memcpy(y, x, (size_t)total * sizeof(float)); /* documented: y may equal x */
        g_k.channel_affine(NULL, n, ch, inner, y, sc, sh, y);
        compare(c, " (in place)", y, &ya, total, TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&sa);
    npe_array_free(&ha);
    npe_array_free(&ya);
}

static const struct {
    const char *name;
    npe_unary_op op;
    int transcendental;
} UNARY_OPS[] = {
    {"relu", NPE_UNARY_RELU, 0},           {"hardtanh", NPE_UNARY_HARDTANH, 0},
    {"leaky_relu", NPE_UNARY_LEAKY_RELU, 0}, {"silu", NPE_UNARY_SILU, 1},
    {"sigmoid", NPE_UNARY_SIGMOID, 1},     {"hardswish", NPE_UNARY_HARDSWISH, 0},
    {"hardsigmoid", NPE_UNARY_HARDSIGMOID, 0}, {"tanh", NPE_UNARY_TANH, 1},
    {"gelu", NPE_UNARY_GELU, 1},           {"elu", NPE_UNARY_ELU, 1},
    {"mul_scalar", NPE_UNARY_MUL_SCALAR, 0}, {"exp", NPE_UNARY_EXP, 1},
    {"sqrt", NPE_UNARY_SQRT, 1},           {"neg", NPE_UNARY_NEG, 0},
};

static void run_unary(case_line *c)
{
    const char *name = get_str(c, "op");
    int count = get_int(c, "count");
    float alpha = get_float(c, "alpha"), beta = get_float(c, "beta");
    int which = -1;
    for (size_t i = 0; name && i < sizeof(UNARY_OPS) / sizeof(UNARY_OPS[0]); i++)
        if (strcmp(name, UNARY_OPS[i].name) == 0)
            which = (int)i;
    if (which < 0) {
        fprintf(stderr, "%s: unknown unary op '%s'\n", c->id, name ? name : "");
        c->bad = 1;
        return;
    }
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        double tol = UNARY_OPS[which].transcendental ? TOL_TRANSCENDENTAL : TOL;
        float *y = out_alloc(count);
        g_k.unary(NULL, UNARY_OPS[which].op, count, x, y, alpha, beta);
        compare(c, "", y, &ya, count, tol);
        memcpy(y, x, (size_t)count * sizeof(float));
        g_k.unary(NULL, UNARY_OPS[which].op, count, y, y, alpha, beta);
        compare(c, " (in place)", y, &ya, count, tol);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

/* Element strides of a contiguous tensor of shape d (n dims) seen through an ndim output shape
 * with NumPy broadcasting (right-aligned; 0 where the input has size 1 or lacks the dim). */
static void broadcast_strides(const int64_t *d, int n, int ndim, int64_t *st)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        int j = i - (ndim - n);
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        st[i] = d[j] == 1 ? 0 : s;
        s *= d[j];
    }
}

static void run_binary(case_line *c)
{
    static const char *names[] = {"add", "sub", "mul", "div", "max", "min", "pow"};
    const char *name = get_str(c, "op");
    float alpha = get_float(c, "alpha");
    int64_t ad[NPE_KMAX_DIMS], bd[NPE_KMAX_DIMS], od[NPE_KMAX_DIMS];
    int an = get_dims(c, "ashape", ad), bn = get_dims(c, "bshape", bd);
    int op = -1;
    for (int i = 0; name && i < NPE_BINARY_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            op = i;
    if (op < 0 && !c->bad) {
        fprintf(stderr, "%s: unknown binary op '%s'\n", c->id, name);
        c->bad = 1;
    }
    int ndim = an > bn ? an : bn;
    for (int i = 0; i < ndim; i++) {
        int ja = i - (ndim - an), jb = i - (ndim - bn);
        int64_t sa = ja >= 0 ? ad[ja] : 1, sb = jb >= 0 ? bd[jb] : 1;
        od[i] = sa == 1 ? sb : sa;
    }
    npe_array aa = {0}, ba = {0}, ya = {0};
    float *a = load(c, "a", &aa), *b = load(c, "b", &ba);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t as[NPE_KMAX_DIMS], bs[NPE_KMAX_DIMS];
        broadcast_strides(ad, an, ndim, as);
        broadcast_strides(bd, bn, ndim, bs);
        check_shape(c, &ya, ndim, od);
        int64_t n = prod(od, ndim);
        double tol = op == NPE_BINARY_POW ? TOL_TRANSCENDENTAL : TOL;
        float *y = out_alloc(n);
        g_k.binary(NULL, (npe_binary_op)op, ndim, od, a, as, b, bs, y, alpha);
        compare(c, "", y, &ya, n, tol);
        if (prod(ad, an) == n) { /* documented: y may equal a when a has y's shape */
            memcpy(y, a, (size_t)n * sizeof(float));
            g_k.binary(NULL, (npe_binary_op)op, ndim, od, y, as, b, bs, y, alpha);
            compare(c, " (in place)", y, &ya, n, tol);
        }
        free(y);
    }
    npe_array_free(&aa);
    npe_array_free(&ba);
    npe_array_free(&ya);
}

static void contiguous_strides(const int64_t *d, int n, int64_t *st)
{
    int64_t s = 1;
    for (int i = n - 1; i >= 0; i--) {
        st[i] = s;
        s *= d[i];
    }
}

static void run_copy(case_line *c)
{
    int64_t shape[NPE_KMAX_DIMS], xs[NPE_KMAX_DIMS], ys[NPE_KMAX_DIMS];
    int nd = get_dims(c, "shape", shape), ns = get_dims(c, "strides", xs);
    int off = get_int(c, "offset");
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad && nd != ns) {
        fprintf(stderr, "%s: %d dims but %d strides\n", c->id, nd, ns);
        c->bad = 1;
    }
    if (!c->bad) {
        int64_t n = prod(shape, nd);
        contiguous_strides(shape, nd, ys);
        float *y = out_alloc(n);
        g_k.copy_strided(NULL, nd, shape, x + off, xs, y, ys);
        compare(c, "", y, &ya, n, 0.0);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

/* cat as the engine does it: one copy_strided per input into a slice of y. */
static void run_cat(case_line *c)
{
    int64_t ad[NPE_KMAX_DIMS], bd[NPE_KMAX_DIMS], yd[NPE_KMAX_DIMS], ys[NPE_KMAX_DIMS];
    int64_t as[NPE_KMAX_DIMS], bs[NPE_KMAX_DIMS];
    int an = get_dims(c, "ashape", ad), bn = get_dims(c, "bshape", bd), dim = get_int(c, "dim");
    npe_array aa = {0}, ba = {0}, ya = {0};
    float *a = load(c, "a", &aa), *b = load(c, "b", &ba);
    load(c, "y", &ya);
    if (!c->bad && (an != bn || dim < 0 || dim >= an)) {
        fprintf(stderr, "%s: bad cat shapes\n", c->id);
        c->bad = 1;
    }
    if (!c->bad) {
        memcpy(yd, ad, sizeof(yd));
        yd[dim] = ad[dim] + bd[dim];
        contiguous_strides(yd, an, ys);
        contiguous_strides(ad, an, as);
        contiguous_strides(bd, bn, bs);
        int64_t n = prod(yd, an);
        float *y = out_alloc(n);
        g_k.copy_strided(NULL, an, ad, a, as, y, ys);
        g_k.copy_strided(NULL, bn, bd, b, bs, y + ad[dim] * ys[dim], ys);
        check_shape(c, &ya, an, yd);
        compare(c, "", y, &ya, n, 0.0);
        free(y);
    }
    npe_array_free(&aa);
    npe_array_free(&ba);
    npe_array_free(&ya);
}

static void run_pool(case_line *c, int is_max)
{
    npe_pool2d_params p = {
        .n = get_int(c, "n"), .c = get_int(c, "c"), .h_in = get_int(c, "h"),
        .w_in = get_int(c, "w"), .kh = get_int(c, "kh"), .kw = get_int(c, "kw"),
        .sh = get_int(c, "sh"), .sw = get_int(c, "sw"), .ph = get_int(c, "ph"),
        .pw = get_int(c, "pw"), .dh = get_int(c, "dh"), .dw = get_int(c, "dw"),
        .ceil_mode = get_int(c, "ceil"), .count_include_pad = get_int(c, "cip"),
        .divisor_override = get_int(c, "div"),
    };
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        CHECK_EQ_INT(npe_pool2d_out_size(&p), 0);
        int64_t dims[4] = {p.n, p.c, p.h_out, p.w_out};
        check_shape(c, &ya, 4, dims);
        int64_t n = prod(dims, 4);
        float *y = out_alloc(n);
        (is_max ? g_k.max_pool2d : g_k.avg_pool2d)(NULL, &p, x, y);
        compare(c, "", y, &ya, n, is_max ? 0.0 : TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

static void run_adaptive(case_line *c, int is_max)
{
    int n = get_int(c, "n"), ch = get_int(c, "c"), h = get_int(c, "h"), w = get_int(c, "w");
    int oh = get_int(c, "oh"), ow = get_int(c, "ow");
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t cnt = (int64_t)n * ch * oh * ow;
        float *y = out_alloc(cnt);
        (is_max ? g_k.adaptive_max_pool2d : g_k.adaptive_avg_pool2d)(NULL, n, ch, h, w, oh, ow,
                                                                     x, y);
        compare(c, "", y, &ya, cnt, is_max ? 0.0 : TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

static void run_upsample(case_line *c, int bilinear)
{
    int n = get_int(c, "n"), ch = get_int(c, "c"), h = get_int(c, "h"), w = get_int(c, "w");
    int oh = get_int(c, "oh"), ow = get_int(c, "ow"), ac = get_int(c, "ac");
    float sh = get_float(c, "sh"), sw = get_float(c, "sw");
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t cnt = (int64_t)n * ch * oh * ow;
        float *y = out_alloc(cnt);
        if (bilinear)
            g_k.upsample_bilinear2d(NULL, n, ch, h, w, oh, ow, ac, sh, sw, x, y);
        else
            g_k.upsample_nearest2d(NULL, n, ch, h, w, oh, ow, sh, sw, x, y);
        compare(c, "", y, &ya, cnt, bilinear ? TOL : 0.0);
        if (sh <= 0.0f && sw <= 0.0f) {
            /* A caller that passes in/out itself must get the same pixels. */
            float fh = (float)h / (float)oh, fw = (float)w / (float)ow;
            if (bilinear)
                g_k.upsample_bilinear2d(NULL, n, ch, h, w, oh, ow, ac, fh, fw, x, y);
            else
                g_k.upsample_nearest2d(NULL, n, ch, h, w, oh, ow, fh, fw, x, y);
            compare(c, " (explicit in/out scale)", y, &ya, cnt, bilinear ? TOL : 0.0);
        }
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

static void run_pad2d(case_line *c)
{
    int outer = get_int(c, "outer"), h = get_int(c, "h"), w = get_int(c, "w");
    int l = get_int(c, "left"), r = get_int(c, "right"), t = get_int(c, "top");
    int b = get_int(c, "bottom");
    float v = get_float(c, "value");
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t cnt = (int64_t)outer * (h + t + b) * (w + l + r);
        float *y = out_alloc(cnt);
        g_k.pad2d(NULL, outer, h, w, l, r, t, b, v, x, y);
        compare(c, "", y, &ya, cnt, 0.0);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

static void run_reduce(case_line *c)
{
    const char *name = get_str(c, "op");
    int outer = get_int(c, "outer"), r = get_int(c, "r"), inner = get_int(c, "inner");
    int op = -1;
    if (name && strcmp(name, "mean") == 0)
        op = NPE_REDUCE_MEAN;
    else if (name && strcmp(name, "sum") == 0)
        op = NPE_REDUCE_SUM;
    else if (name && strcmp(name, "max") == 0)
        op = NPE_REDUCE_MAX;
    if (op < 0 && !c->bad) {
        fprintf(stderr, "%s: unknown reduce op '%s'\n", c->id, name);
        c->bad = 1;
    }
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t cnt = (int64_t)outer * inner;
        float *y = out_alloc(cnt);
        g_k.reduce(NULL, (npe_reduce_op)op, outer, r, inner, x, y);
        compare(c, "", y, &ya, cnt, TOL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

static void run_softmax(case_line *c)
{
    int log = get_int(c, "log"), outer = get_int(c, "outer"), d = get_int(c, "d");
    int inner = get_int(c, "inner");
    npe_array xa = {0}, ya = {0};
    float *x = load(c, "x", &xa);
    load(c, "y", &ya);
    if (!c->bad) {
        int64_t cnt = (int64_t)outer * d * inner;
        float *y = out_alloc(cnt);
        g_k.softmax(NULL, log, outer, d, inner, x, y);
        compare(c, "", y, &ya, cnt, TOL_TRANSCENDENTAL);
        free(y);
    }
    npe_array_free(&xa);
    npe_array_free(&ya);
}

/* ---- Output-size rules on shapes worked by hand ------------------------------------------- */
static void test_out_sizes(void)
{
    npe_conv2d_params cp = {.n = 1, .c_in = 4, .h_in = 7, .w_in = 8, .c_out = 6, .kh = 3,
                            .kw = 3, .sh = 2, .sw = 3, .ph = 1, .pw = 0, .dh = 1, .dw = 2,
                            .groups = 2};
    /* (7 + 2 - 2 - 1)/2 + 1 = 4; (8 + 0 - 4 - 1)/3 + 1 = 2 */
    CHECK_EQ_INT(npe_conv2d_out_size(&cp), 0);
    CHECK_EQ_INT(cp.h_out, 4);
    CHECK_EQ_INT(cp.w_out, 2);
    npe_conv2d_params bad = cp;
    bad.groups = 3; /* 4 channels do not split in 3 groups */
    CHECK_EQ_INT(npe_conv2d_out_size(&bad), -1);
    bad = cp;
    bad.kw = 5; /* dilated width 9 > 8 */
    CHECK_EQ_INT(npe_conv2d_out_size(&bad), -1);
    bad = cp;
    bad.sh = 0;
    CHECK_EQ_INT(npe_conv2d_out_size(&bad), -1);
    /* transposed: (7-1)*2 - 2 + 1*2 + 1 + 1 = 14; (8-1)*3 - 0 + 2*2 + 0 + 1 = 26 */
    npe_conv2d_params tp = cp;
    tp.transposed = 1;
    tp.oph = 1;
    CHECK_EQ_INT(npe_conv2d_out_size(&tp), 0);
    CHECK_EQ_INT(tp.h_out, 14);
    CHECK_EQ_INT(tp.w_out, 26);
    tp.oph = 2; /* not smaller than stride 2 nor dilation 1 */
    CHECK_EQ_INT(npe_conv2d_out_size(&tp), -1);
    tp.oph = 0;
    tp.opw = 2; /* smaller than stride 3: allowed */
    CHECK_EQ_INT(npe_conv2d_out_size(&tp), 0);
    CHECK_EQ_INT(tp.w_out, 28);

    npe_pool2d_params pp = {.n = 1, .c = 1, .h_in = 5, .w_in = 6, .kh = 2, .kw = 3, .sh = 2,
                            .sw = 2, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .ceil_mode = 1};
    /* h: ceil((5+2-1-1)/2)+1 = 4, but window 3 would start at 6 >= 5+1: 3.
     * w: ceil((6+2-2-1)/2)+1 = 4, (4-1)*2 = 6 < 6+1 keeps 4. */
    CHECK_EQ_INT(npe_pool2d_out_size(&pp), 0);
    CHECK_EQ_INT(pp.h_out, 3);
    CHECK_EQ_INT(pp.w_out, 4);
    pp.ceil_mode = 0; /* floor: (5+2-1-1)/2+1 = 3, (6+2-2-1)/2+1 = 3 */
    CHECK_EQ_INT(npe_pool2d_out_size(&pp), 0);
    CHECK_EQ_INT(pp.h_out, 3);
    CHECK_EQ_INT(pp.w_out, 3);
    npe_pool2d_params pb = pp;
    pb.ph = 2; /* more than half of kernel 2 */
    CHECK_EQ_INT(npe_pool2d_out_size(&pb), -1);
    pb = pp;
    pb.kh = 7; /* window larger than the padded input */
    pb.ph = 0;
    CHECK_EQ_INT(npe_pool2d_out_size(&pb), -1);
    pb = pp;
    pb.dw = 0;
    CHECK_EQ_INT(npe_pool2d_out_size(&pb), -1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR  (DIR written by tests/gen_kernel_refs.py)\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    npe_kernels_init_ref(&g_k);
    CHECK_STR(g_k.name, "ref");
    test_out_sizes();

    char path[4096];
    snprintf(path, sizeof(path), "%s/cases.txt", g_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        /* No PyTorch data (generating it needs torch): skipped, in meson's convention. */
        fprintf(stderr, "%s: %s (run tests/gen_kernel_refs.py %s first); skipping\n", path,
                strerror(errno), g_dir);
        return 77;
    }
    char line[2048];
    int lineno = 0, ncases = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        case_line c = {0};
        for (char *s = strtok(line, " \t\r\n"); s && c.ntok < MAX_TOKENS;
             s = strtok(NULL, " \t\r\n"))
            c.tok[c.ntok++] = s;
        if (c.ntok < 2) {
            fprintf(stderr, "%s:%d: expected 'op id key=value...'\n", path, lineno);
            CHECK(0);
            continue;
        }
        c.op = c.tok[0];
        c.id = c.tok[1];
        ncases++;
        if (strcmp(c.op, "conv2d") == 0)
            run_conv2d(&c);
        else if (strcmp(c.op, "linear") == 0)
            run_linear(&c);
        else if (strcmp(c.op, "affine") == 0)
            run_affine(&c);
        else if (strcmp(c.op, "unary") == 0)
            run_unary(&c);
        else if (strcmp(c.op, "binary") == 0)
            run_binary(&c);
        else if (strcmp(c.op, "copy") == 0)
            run_copy(&c);
        else if (strcmp(c.op, "cat") == 0)
            run_cat(&c);
        else if (strcmp(c.op, "maxpool") == 0)
            run_pool(&c, 1);
        else if (strcmp(c.op, "avgpool") == 0)
            run_pool(&c, 0);
        else if (strcmp(c.op, "adaptive_avg") == 0)
            run_adaptive(&c, 0);
        else if (strcmp(c.op, "adaptive_max") == 0)
            run_adaptive(&c, 1);
        else if (strcmp(c.op, "nearest") == 0)
            run_upsample(&c, 0);
        else if (strcmp(c.op, "bilinear") == 0)
            run_upsample(&c, 1);
        else if (strcmp(c.op, "pad2d") == 0)
            run_pad2d(&c);
        else if (strcmp(c.op, "reduce") == 0)
            run_reduce(&c);
        else if (strcmp(c.op, "softmax") == 0)
            run_softmax(&c);
        else {
            fprintf(stderr, "%s:%d: unknown op '%s'\n", path, lineno, c.op);
            c.bad = 1;
        }
        CHECK_MSG(!c.bad && c.compared > 0, "%s:%d: case %s could not be run", path, lineno,
                  c.id);
        op_stats *st = stats_for(c.op);
        if (st) {
            st->run++;
            st->passed += !c.bad && c.compared > 0 && c.failed == 0;
        }
    }
    fclose(f);
    CHECK_MSG(ncases > 0, "%s lists no cases", path);
    for (int i = 0; i < g_nstats; i++)
        printf("  %-13s %3d/%d torch cases passed\n", g_stats[i].op, g_stats[i].passed,
               g_stats[i].run);
    return tu_finish("test_kernels_ref");
}
