/* checkkern: every optimised kernel against the reference on random shapes and inputs, at every
 * flag level and thread count, with canaries around outputs and scratch; --bench times them.
 *   checkkern [--seed N] [--op NAME] [--case K] [--cases-scale F] [--bench] [--threads N] [-v]
 * The seed is printed; rerunning with it (and --op/--case to narrow) replays the same cases. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "cpu/blas.h"
#include "cpu/cpu.h"
#include "cpu/threadpool.h"
#include "kernels.h"

/* ---- random numbers (splitmix64) ------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform integer in [lo, hi] */
static int rng_int(rng *r, int lo, int hi)
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static float rng_float(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next(r) >> 40) * (1.0 / 16777216.0));
}

static int rng_chance(rng *r, int percent)
{
    return rng_int(r, 0, 99) < percent;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- buffers with canaries ------------------------------------------------------------------- */

#define CANARY_FLOATS 64
static const uint32_t canary_bits = 0x7fa5a5a5u; /* a NaN no kernel computes */
static const uint32_t poison_bits = 0xffc0deadu; /* outputs start as this NaN: unwritten shows */

typedef struct tensor {
    float *base, *p;
    size_t n;
} tensor;

static void fill_bits(float *p, size_t n, uint32_t bits)
{
    for (size_t i = 0; i < n; i++)
        memcpy(p + i, &bits, sizeof(bits));
}

static tensor t_alloc(size_t n)
{
    tensor t = {0};
    t.n = n;
    t.base = malloc((n + 2 * CANARY_FLOATS) * sizeof(float));
    if (!t.base) {
        fprintf(stderr, "checkkern: out of memory (%zu floats)\n", n);
        exit(2);
    }
    t.p = t.base + CANARY_FLOATS;
    fill_bits(t.base, CANARY_FLOATS, canary_bits);
    fill_bits(t.p + n, CANARY_FLOATS, canary_bits);
    fill_bits(t.p, n, poison_bits);
    return t;
}

static void t_free(tensor *t)
{
    free(t->base);
    t->base = t->p = NULL;
}

/* Index of the first damaged canary float relative to t.p (negative: before), or 0 if intact;
 * *ok is set accordingly. */
static int t_canaries_ok(const tensor *t, long *where)
{
    for (size_t i = 0; i < CANARY_FLOATS; i++) {
        uint32_t b;
        memcpy(&b, t->base + i, sizeof(b));
        if (b != canary_bits) {
            *where = (long)i - CANARY_FLOATS;
            return 0;
        }
        memcpy(&b, t->p + t->n + i, sizeof(b));
        if (b != canary_bits) {
            *where = (long)(t->n + i);
            return 0;
        }
    }
    return 1;
}

/* Inputs: uniform in [lo, hi), with special values (NaN, +-inf, large) sprinkled at
 * special_pct percent when asked. */
static void fill_random(rng *r, float *p, size_t n, float lo, float hi, int special_pct)
{
    static const float specials[] = {NAN, INFINITY, -INFINITY, 100.0f, -100.0f, 0.0f, -0.0f,
                                     1e-30f, 90.0f, -90.0f};
    for (size_t i = 0; i < n; i++) {
        if (special_pct && rng_chance(r, special_pct))
            p[i] = specials[rng_int(r, 0, (int)(sizeof(specials) / sizeof(specials[0])) - 1)];
        else
            p[i] = rng_float(r, lo, hi);
    }
}

/* ---- the levels every kernel runs at --------------------------------------------------------- */

typedef struct level {
    const char *name;
    unsigned flags;
    int nthreads; /* 0: the kernel gets ex == NULL */
    int fine;     /* split work as finely as the threads allow (npe_kcpu_fine_grain) */
    npe_kernels k;
    npe_kpool *pool;
} level_t;

/* "fine" levels split even tiny shapes, so chunk edges land everywhere; all/2 splits as in
 * production (small work stays serial). */
static level_t levels[] = {
    {"blas", NPE_KCPU_BLAS, 1, 0, {0}, NULL},
    {"blas+simd", NPE_KCPU_BLAS | NPE_KCPU_SIMD, 1, 0, {0}, NULL},
    {"threads/2-fine", NPE_KCPU_THREADS, 2, 1, {0}, NULL},
    {"simd+threads/2-fine", NPE_KCPU_SIMD | NPE_KCPU_THREADS, 2, 1, {0}, NULL},
    {"all/1", NPE_KCPU_ALL, 1, 0, {0}, NULL},
    {"all/2", NPE_KCPU_ALL, 2, 0, {0}, NULL},
    {"all-but-avx2/2", NPE_KCPU_ALL & ~NPE_KCPU_AVX2, 2, 0, {0}, NULL},
    {"all-but-avx2/2-fine", NPE_KCPU_ALL & ~NPE_KCPU_AVX2, 2, 1, {0}, NULL},
    {"all/3-fine", NPE_KCPU_ALL, 3, 1, {0}, NULL},
    {"all/no-exec", NPE_KCPU_ALL, 0, 0, {0}, NULL},
};
#define NLEVELS (sizeof(levels) / sizeof(levels[0]))

typedef struct ctx {
    npe_kernels ref;
    int verbose;
    long checks, failures;
    int printed; /* failure reports printed for the current op */
    uint64_t seed;
    const char *op;
    int case_index;
} ctx;

/* ---- one case: inputs, the reference output, every level compared -------------------------- */

#define MAX_IN 6
typedef struct kcase kcase;
typedef void (*call_fn)(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                        const float *const *in, float *out);

struct kcase {
    char desc[320];
    tensor in[MAX_IN];
    int nin;
    size_t out_n;
    double tol;        /* max |got - ref| / max |ref|; 0: bit-exact up to NaN payloads */
    double floor;      /* max |ref| is taken as at least this (0: 1e-30) */
    int inplace;       /* the kernel reads in[0] from the output buffer (y == x) */
    const float *out_init; /* output starts as a copy of this (NULL: poison) */
    size_t entry;      /* offsetof(npe_kernels, entry) under test */
    call_fn call;
    const void *params;
    /* conv only: scratch bytes a table wants for nthreads */
    size_t (*scratch)(const npe_kernels *k, const kcase *c, int nthreads);
    /* describe output index i (coordinates) for the failure report */
    void (*where)(const kcase *c, size_t i, char *buf, size_t n);
};

static int same_entry(const npe_kernels *a, const npe_kernels *b, size_t off)
{
    return memcmp((const char *)a + off, (const char *)b + off, sizeof(void (*)(void))) == 0;
}

static void report(ctx *cx, const kcase *c, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(ctx *cx, const kcase *c, const char *level, const char *fmt, ...)
{
    cx->failures++;
    if (cx->printed++ >= 5) {
        if (cx->printed == 7)
            fprintf(stderr, "  (more %s failures not shown)\n", cx->op);
        return;
    }
    va_list ap;
    fprintf(stderr, "FAIL %s case %d at level %s: %s\n  ", cx->op, cx->case_index, level,
            c->desc);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  replay: checkkern --seed %" PRIu64 " --op %s --case %d\n", cx->seed,
            cx->op, cx->case_index);
}

/* Compare got against ref: |got - ref| <= tol * max |ref| (finite values), NaN where the
 * reference has NaN, infinities equal. Returns 1 when all pass, else fills the first offender. */
static int compare(const float *ref, const float *got, size_t n, double tol, double floor,
                   size_t *bad, double *maxerr)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > scale)
            scale = fabs(ref[i]);
    /* magnitudes below 1e-30 count as zero: kernels may flush what the double reference
     * still resolves (exp underflow, subnormals) */
    if (floor < 1e-30)
        floor = 1e-30;
    if (scale < floor)
        scale = floor;
    *maxerr = 0.0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const float r = ref[i], g = got[i];
        int good;
        if (isnan(r) || isnan(g))
            good = isnan(r) && isnan(g);
        else if (isinf(r) || isinf(g))
            good = r == g;
        else {
            const double e = fabs((double)g - r) / scale;
            if (e > *maxerr)
                *maxerr = e;
            good = tol == 0.0 ? r == g : e <= tol;
        }
        if (!good && ok) {
            ok = 0;
            *bad = i;
        }
    }
    return ok;
}

static void init_out(const kcase *c, float *out)
{
    if (c->inplace)
        memcpy(out, c->in[0].p, c->out_n * sizeof(float));
    else if (c->out_init)
        memcpy(out, c->out_init, c->out_n * sizeof(float));
}

/* Run c at every level against the reference. Frees nothing: the caller owns c's tensors. */
static void run_case(ctx *cx, kcase *c)
{
    float *saved[MAX_IN];
    for (int i = 0; i < c->nin; i++) {
        saved[i] = malloc(c->in[i].n * sizeof(float) + 1);
        memcpy(saved[i], c->in[i].p, c->in[i].n * sizeof(float));
    }
    const float *ins[MAX_IN];
    tensor ref = t_alloc(c->out_n);
    init_out(c, ref.p);
    for (int i = 0; i < c->nin; i++)
        ins[i] = c->in[i].p;
    if (c->inplace)
        ins[0] = ref.p;
    c->call(&cx->ref, NULL, c, ins, ref.p);
    long where;
    if (!t_canaries_ok(&ref, &where))
        report(cx, c, "ref", "the reference wrote outside its output (float %ld)", where);

    for (size_t l = 0; l < NLEVELS; l++) {
        level_t *lv = &levels[l];
        if (same_entry(&lv->k, &cx->ref, c->entry))
            continue; /* this level keeps the reference for this op */
        cx->checks++;
        tensor out = t_alloc(c->out_n);
        init_out(c, out.p);
        for (int i = 0; i < c->nin; i++)
            ins[i] = c->in[i].p;
        if (c->inplace)
            ins[0] = out.p;
        /* scratch as the table asks, with a canary tail; every 4th case at all/2 gets none,
         * which the kernel must survive (it borrows from the heap or falls back) */
        size_t sbytes = 0;
        unsigned char *scratch = NULL;
        const int nt = lv->nthreads ? lv->nthreads : 1;
        npe_kcpu_fine_grain = lv->fine;
        if (c->scratch)
            sbytes = c->scratch(&lv->k, c, nt);
        const int starve = sbytes && lv->nthreads == 2 && cx->case_index % 4 == 3;
        if (sbytes && !starve) {
            scratch = aligned_alloc(64, (sbytes + 64 + 63) / 64 * 64);
            memset(scratch + sbytes, 0xa5, 64);
        }
        npe_kexec ex;
        npe_kexec_init(&ex, lv->pool, scratch, scratch ? sbytes : 0);
        c->call(&lv->k, lv->nthreads ? &ex : NULL, c, ins, out.p);
        npe_kcpu_fine_grain = 0;

        if (!t_canaries_ok(&out, &where))
            report(cx, c, lv->name, "wrote outside the output: float %ld of %zu damaged", where,
                   c->out_n);
        for (size_t i = 0; scratch && i < 64; i++)
            if (scratch[sbytes + i] != 0xa5) {
                report(cx, c, lv->name, "wrote past its scratch (%zu bytes asked)", sbytes);
                break;
            }
        for (int i = 0; i < c->nin; i++)
            if (memcmp(saved[i], c->in[i].p, c->in[i].n * sizeof(float)) != 0 ||
                !t_canaries_ok(&c->in[i], &where)) {
                report(cx, c, lv->name, "modified input %d", i);
                memcpy(c->in[i].p, saved[i], c->in[i].n * sizeof(float));
            }
        size_t bad;
        double maxerr;
        if (!compare(ref.p, out.p, c->out_n, c->tol, c->floor, &bad, &maxerr)) {
            char at[160] = "";
            if (c->where)
                c->where(c, bad, at, sizeof(at));
            report(cx, c, lv->name,
                   "output %zu%s: got %.9g, reference %.9g (max error %.3g of max |ref|, "
                   "tolerance %.3g)",
                   bad, at, out.p[bad], ref.p[bad], maxerr, c->tol);
        } else if (cx->verbose > 1) {
            printf("  %s case %d %s ok (max error %.3g)\n", cx->op, cx->case_index, lv->name,
                   maxerr);
        }
        free(scratch);
        t_free(&out);
    }
    t_free(&ref);
    for (int i = 0; i < c->nin; i++)
        free(saved[i]);
}

static void free_case(kcase *c)
{
    for (int i = 0; i < c->nin; i++)
        t_free(&c->in[i]);
}

static void add_input(kcase *c, rng *r, size_t n, float lo, float hi, int special_pct)
{
    c->in[c->nin] = t_alloc(n);
    fill_random(r, c->in[c->nin].p, n, lo, hi, special_pct);
    c->nin++;
}

/* ---- conv2d --------------------------------------------------------------------------------- */

static void conv_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                      const float *const *in, float *out)
{
    k->conv2d(ex, c->params, in[0], in[1], c->nin > 2 ? in[2] : NULL, out);
}

static size_t conv_scratch(const npe_kernels *k, const kcase *c, int nthreads)
{
    return k->conv2d_scratch(c->params, nthreads);
}

static void conv_where(const kcase *c, size_t i, char *buf, size_t n)
{
    const npe_conv2d_params *p = c->params;
    const size_t hw = (size_t)p->h_out * p->w_out;
    snprintf(buf, n, " = (n %zu, c %zu, h %zu, w %zu)", i / hw / p->c_out, i / hw % p->c_out,
             i % hw / p->w_out, i % p->w_out);
}

/* Random convolution of one of the shapes the kernels treat differently. */
static void gen_conv(rng *r, npe_conv2d_params *p)
{
    for (;;) {
        memset(p, 0, sizeof(*p));
        p->n = rng_int(r, 1, 3);
        p->sh = p->sw = p->dh = p->dw = 1;
        p->groups = 1;
        int cin_g = rng_int(r, 1, 12), cout_g = rng_int(r, 1, 12);
        p->h_in = rng_int(r, 1, 16);
        p->w_in = rng_int(r, 1, 16);
        p->kh = rng_int(r, 1, 5);
        p->kw = rng_int(r, 1, 5);
        switch (rng_int(r, 0, 12)) {
        case 0: /* anything */
        case 1:
            p->sh = rng_int(r, 1, 3), p->sw = rng_int(r, 1, 3);
            p->ph = rng_int(r, 0, 3), p->pw = rng_int(r, 0, 3);
            p->dh = rng_int(r, 1, 3), p->dw = rng_int(r, 1, 3);
            break;
        case 2: /* grouped */
            p->groups = rng_int(r, 2, 4);
            p->sh = p->sw = rng_int(r, 1, 2);
            p->ph = p->pw = p->kh / 2;
            p->kw = p->kh;
            break;
        case 3: /* depthwise, multiplier 1 or 2 */
        case 4:
            p->groups = rng_int(r, 1, 24);
            cin_g = 1;
            cout_g = rng_chance(r, 80) ? 1 : 2;
            p->kh = p->kw = rng_chance(r, 70) ? (rng_chance(r, 60) ? 3 : 5) : rng_int(r, 1, 7);
            if (rng_chance(r, 5)) /* more taps than the vector kernel holds */
                p->kh = 9, p->kw = rng_int(r, 8, 9);
            p->sh = p->sw = rng_int(r, 1, 2);
            p->ph = p->pw = rng_chance(r, 70) ? p->kh / 2 : rng_int(r, 0, 3);
            if (rng_chance(r, 25))
                p->dh = p->dw = 2;
            p->h_in = rng_int(r, 1, 24);
            p->w_in = rng_int(r, 1, 24);
            break;
        case 5: /* 1x1 stride 1: the direct sgemm */
        case 6:
            p->kh = p->kw = 1;
            cin_g = rng_int(r, 1, 48);
            cout_g = rng_int(r, 1, 48);
            if (rng_chance(r, 25))
                p->groups = rng_int(r, 2, 3);
            if (rng_chance(r, 20))
                p->dh = p->dw = 2; /* meaningless for 1x1 but legal */
            break;
        case 7: /* 1x1 strided or padded */
            p->kh = p->kw = 1;
            p->sh = p->sw = rng_int(r, 1, 2);
            p->ph = p->pw = rng_int(r, 0, 1);
            break;
        case 8: /* transposed */
        case 9:
            p->transposed = 1;
            p->groups = rng_chance(r, 30) ? rng_int(r, 2, 3) : 1;
            p->sh = rng_int(r, 1, 3), p->sw = rng_int(r, 1, 3);
            p->dh = rng_int(r, 1, 2), p->dw = rng_int(r, 1, 2);
            p->ph = rng_int(r, 0, (p->kh - 1) * p->dh), p->pw = rng_int(r, 0, (p->kw - 1) * p->dw);
            p->oph = rng_int(r, 0, (p->sh > p->dh ? p->sh : p->dh) - 1);
            p->opw = rng_int(r, 0, (p->sw > p->dw ? p->sw : p->dw) - 1);
            if (rng_chance(r, 15)) /* depthwise transposed */
                p->groups = rng_int(r, 2, 8), cin_g = 1, cout_g = 1;
            break;
        case 10: /* medium: several column tiles per image */
            p->n = rng_int(r, 1, 2);
            cin_g = rng_int(r, 16, 40);
            cout_g = rng_int(r, 4, 24);
            p->h_in = rng_int(r, 24, 48);
            p->w_in = rng_int(r, 24, 48);
            p->kh = p->kw = 3;
            p->ph = p->pw = 1;
            p->sh = p->sw = rng_int(r, 1, 2);
            if (rng_chance(r, 30)) {
                p->transposed = 1;
                p->ph = p->pw = rng_int(r, 0, 2);
                p->oph = p->opw = p->sh - 1;
                p->h_in /= 2, p->w_in /= 2;
            }
            break;
        case 11: /* small images, many output channels: blocks of channels per thread; now
                  * and then many input channels too (deep products over few columns) */
            p->n = rng_int(r, 1, 2);
            cin_g = rng_chance(r, 25) ? rng_int(r, 256, 300) : rng_int(r, 4, 40);
            cout_g = rng_int(r, 40, 100);
            p->h_in = rng_int(r, 2, 9);
            p->w_in = rng_int(r, 2, 9);
            p->kh = p->kw = rng_chance(r, 50) ? 3 : 1;
            p->ph = p->pw = p->kh / 2;
            p->sh = p->sw = rng_chance(r, 20) ? 2 : 1;
            break;
        default: /* big images, few channels */
            cin_g = rng_int(r, 1, 4);
            cout_g = rng_int(r, 1, 8);
            p->h_in = rng_int(r, 32, 80);
            p->w_in = rng_int(r, 32, 80);
            p->ph = rng_int(r, 0, 2), p->pw = rng_int(r, 0, 2);
            break;
        }
        p->c_in = cin_g * p->groups;
        p->c_out = cout_g * p->groups;
        if (npe_conv2d_out_size(p) == 0)
            return;
    }
}

/* Products summed into each output of p. */
static double conv_terms(const npe_conv2d_params *p)
{
    return (double)(p->transposed ? p->c_out : p->c_in) / p->groups * p->kh * p->kw;
}

/* Weights within +-1, or within +-360 / K for sums of K > 360 products (the wide cases): the
 * tolerances below are for the rounding of sums that size, which an activation that clamps the
 * range (hardtanh, hardsigmoid) would otherwise measure against outputs a fraction of the
 * sum's size. */
static float weight_scale(const npe_conv2d_params *p)
{
    const double k = conv_terms(p);
    return k > 360.0 ? (float)(360.0 / k) : 1.0f;
}

static void test_conv2d(ctx *cx, rng *r)
{
    npe_conv2d_params p;
    gen_conv(r, &p);
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc),
             "%s n=%d cin=%d %dx%d -> cout=%d %dx%d k=%dx%d s=%d,%d p=%d,%d d=%d,%d g=%d op=%d,%d",
             p.transposed ? "conv_transpose2d" : "conv2d", p.n, p.c_in, p.h_in, p.w_in,
             p.c_out, p.h_out, p.w_out, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw,
             p.groups, p.oph, p.opw);
    const size_t wn = p.transposed ? (size_t)p.c_in * (p.c_out / p.groups) * p.kh * p.kw
                                   : (size_t)p.c_out * (p.c_in / p.groups) * p.kh * p.kw;
    add_input(&c, r, (size_t)p.n * p.c_in * p.h_in * p.w_in, -1.0f, 1.0f, 0);
    const float ws = weight_scale(&p);
    add_input(&c, r, wn, -ws, ws, 0);
    if (rng_chance(r, 75))
        add_input(&c, r, (size_t)p.c_out, -1.0f, 1.0f, 0);
    c.out_n = (size_t)p.n * p.c_out * p.h_out * p.w_out;
    c.tol = 1e-4; /* float sums of up to ~400 products against double ones */
    c.floor = 1.0; /* float rounding is relative to the terms (|x|, |w| <= 1), not the sum */
    c.entry = offsetof(npe_kernels, conv2d);
    c.call = conv_call;
    c.params = &p;
    c.scratch = conv_scratch;
    c.where = conv_where;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- conv2d with a fused epilogue ------------------------------------------------------------ */

typedef struct conv_ep_params {
    npe_conv2d_params p;
    npe_conv_epilogue ep;
    int bias, affine; /* inputs: x, w, then bias, then scale and shift when set */
    int prep;         /* the weights prepared first (conv2d_prep) when the table prepares them */
} conv_ep_params;

static void conv_ep_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                         const float *const *in, float *out)
{
    const conv_ep_params *cp = c->params;
    npe_conv_epilogue ep = cp->ep;
    const int a = 2 + cp->bias;
    ep.scale = cp->affine ? in[a] : NULL;
    ep.shift = cp->affine ? in[a + 1] : NULL;
    void *prep = NULL;
    const size_t pb = cp->prep ? k->conv2d_prep_bytes(&cp->p, ex ? ex->nthreads : 1) : 0;
    if (pb && (prep = aligned_alloc(64, (pb + 63) / 64 * 64)))
        k->conv2d_prep(ex, &cp->p, in[1], prep);
    k->conv2d_ep(ex, &cp->p, in[0], in[1], prep, cp->bias ? in[2] : NULL, &ep, out);
    free(prep);
}

static size_t conv_ep_scratch(const npe_kernels *k, const kcase *c, int nthreads)
{
    const conv_ep_params *cp = c->params;
    return k->conv2d_scratch(&cp->p, nthreads);
}

static void conv_ep_where(const kcase *c, size_t i, char *buf, size_t n)
{
    const conv_ep_params *cp = c->params;
    kcase plain = *c;
    plain.params = &cp->p;
    conv_where(&plain, i, buf, n);
}

/* Every conv path with a batch norm affine and/or an activation after it, as the executor
 * fuses them; the output must match the reference conv followed by the separate ops. */
static void test_conv2d_ep(ctx *cx, rng *r)
{
    static const struct {
        npe_unary_op op;
        float alpha, beta;
    } acts[] = {
        {NPE_UNARY_RELU, 0, 0},        {NPE_UNARY_HARDTANH, 0, 6},  {NPE_UNARY_LEAKY_RELU, 0.1f, 0},
        {NPE_UNARY_SILU, 0, 0},        {NPE_UNARY_SIGMOID, 0, 0},   {NPE_UNARY_HARDSWISH, 0, 0},
        {NPE_UNARY_HARDSIGMOID, 0, 0}, {NPE_UNARY_TANH, 0, 0},      {NPE_UNARY_GELU, 0, 0},
        {NPE_UNARY_ELU, 1.0f, 0},      {NPE_UNARY_HARDTANH, -1, 1},
    };
    conv_ep_params cp;
    memset(&cp, 0, sizeof(cp));
    gen_conv(r, &cp.p);
    const npe_conv2d_params *p = &cp.p;
    cp.bias = rng_chance(r, 60);
    cp.affine = rng_chance(r, 70);
    cp.prep = rng_chance(r, 50);
    if (!cp.affine || rng_chance(r, 80)) {
        const int a = rng_int(r, 0, (int)(sizeof(acts) / sizeof(acts[0])) - 1);
        cp.ep.act = (int)acts[a].op + 1;
        cp.ep.alpha = acts[a].alpha;
        cp.ep.beta = acts[a].beta;
    }
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc),
             "%s n=%d cin=%d %dx%d -> cout=%d %dx%d k=%dx%d s=%d,%d p=%d,%d d=%d,%d g=%d "
             "bias=%d affine=%d act=%d(%g,%g) prep=%d",
             p->transposed ? "conv_transpose2d" : "conv2d", p->n, p->c_in, p->h_in, p->w_in,
             p->c_out, p->h_out, p->w_out, p->kh, p->kw, p->sh, p->sw, p->ph, p->pw, p->dh, p->dw,
             p->groups, cp.bias, cp.affine, cp.ep.act - 1, cp.ep.alpha, cp.ep.beta, cp.prep);
    const size_t wn = p->transposed ? (size_t)p->c_in * (p->c_out / p->groups) * p->kh * p->kw
                                    : (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    add_input(&c, r, (size_t)p->n * p->c_in * p->h_in * p->w_in, -1.0f, 1.0f, 0);
    const float ws = weight_scale(p);
    add_input(&c, r, wn, -ws, ws, 0);
    if (cp.bias)
        add_input(&c, r, (size_t)p->c_out, -1.0f, 1.0f, 0);
    if (cp.affine) {
        add_input(&c, r, (size_t)p->c_out, 0.25f, 2.0f, 0);
        add_input(&c, r, (size_t)p->c_out, -1.0f, 1.0f, 0);
    }
    c.out_n = (size_t)p->n * p->c_out * p->h_out * p->w_out;
    c.tol = 2e-4; /* as conv2d, times the scale (<= 2) the affine applies */
    /* against the sums' scale (their standard deviation, about sqrt(K) * ws / 3, times the
     * affine's): an activation that clamps (hardsigmoid, hardtanh) leaves outputs a fraction of
     * it, while the rounding it passes on comes from the sums */
    c.floor = sqrt(conv_terms(p)) * ws / 3.0 * (cp.affine ? 2.0 : 1.0);
    if (c.floor < 1.0)
        c.floor = 1.0;
    c.entry = offsetof(npe_kernels, conv2d_ep);
    c.call = conv_ep_call;
    c.params = &cp;
    c.scratch = conv_ep_scratch;
    c.where = conv_ep_where;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- linear --------------------------------------------------------------------------------- */

typedef struct linear_params {
    int64_t m, k, n;
} linear_params;

static void linear_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                        const float *const *in, float *out)
{
    const linear_params *p = c->params;
    k->linear(ex, p->m, p->k, p->n, in[0], in[1], c->nin > 2 ? in[2] : NULL, out);
}

static void linear_where(const kcase *c, size_t i, char *buf, size_t n)
{
    const linear_params *p = c->params;
    snprintf(buf, n, " = (row %zu, col %zu)", i / (size_t)p->n, i % (size_t)p->n);
}

static void test_linear(ctx *cx, rng *r)
{
    linear_params p = {rng_int(r, 1, 40), rng_int(r, 1, 300), rng_int(r, 1, 120)};
    if (rng_chance(r, 20))
        p.m = 1, p.k = rng_int(r, 100, 3000), p.n = rng_int(r, 1, 300); /* batch of one: gemv */
    if (rng_chance(r, 3))
        p.k = 0; /* y = b */
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc), "linear m=%" PRId64 " k=%" PRId64 " n=%" PRId64, p.m, p.k,
             p.n);
    add_input(&c, r, (size_t)(p.m * p.k), -1.0f, 1.0f, 0);
    add_input(&c, r, (size_t)(p.n * p.k), -1.0f, 1.0f, 0);
    if (rng_chance(r, 75))
        add_input(&c, r, (size_t)p.n, -1.0f, 1.0f, 0);
    c.out_n = (size_t)(p.m * p.n);
    c.tol = 1e-4;
    c.floor = 1.0;
    c.entry = offsetof(npe_kernels, linear);
    c.call = linear_call;
    c.params = &p;
    c.where = linear_where;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- channel_affine ------------------------------------------------------------------------- */

static void affine_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                        const float *const *in, float *out)
{
    const int64_t *p = c->params;
    k->channel_affine(ex, p[0], p[1], p[2], in[0], in[1], in[2], out);
}

static void test_channel_affine(ctx *cx, rng *r)
{
    int64_t p[3] = {rng_int(r, 1, 3), rng_int(r, 1, 40), rng_int(r, 1, 3000)};
    if (rng_chance(r, 20))
        p[2] = rng_int(r, 1, 7);
    kcase c = {0};
    c.inplace = rng_chance(r, 50);
    snprintf(c.desc, sizeof(c.desc), "channel_affine n=%" PRId64 " c=%" PRId64 " inner=%" PRId64
             "%s", p[0], p[1], p[2], c.inplace ? " in place" : "");
    add_input(&c, r, (size_t)(p[0] * p[1] * p[2]), -4.0f, 4.0f, 1);
    add_input(&c, r, (size_t)p[1], -2.0f, 2.0f, 0);
    add_input(&c, r, (size_t)p[1], -2.0f, 2.0f, 0);
    c.out_n = (size_t)(p[0] * p[1] * p[2]);
    c.tol = 1e-6;
    c.floor = 8.0; /* x * s + t rounds twice in float: relative to |x * s| <= 8 when it cancels */
    c.entry = offsetof(npe_kernels, channel_affine);
    c.call = affine_call;
    c.params = p;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- unary ---------------------------------------------------------------------------------- */

typedef struct unary_params {
    npe_unary_op op;
    int64_t count;
    float alpha, beta;
} unary_params;

static const char *const unary_names[NPE_UNARY_COUNT] = {
    "relu", "hardtanh", "leaky_relu", "silu", "sigmoid", "hardswish", "hardsigmoid",
    "tanh", "gelu", "elu", "mul_scalar", "exp", "sqrt", "neg"};

static void unary_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                       const float *const *in, float *out)
{
    const unary_params *p = c->params;
    k->unary(ex, p->op, p->count, in[0], out, p->alpha, p->beta);
}

static void test_unary(ctx *cx, rng *r)
{
    unary_params p = {(npe_unary_op)rng_int(r, 0, NPE_UNARY_COUNT - 1), rng_int(r, 1, 60000),
                      0.0f, 0.0f};
    if (rng_chance(r, 30))
        p.count = rng_int(r, 1, 9); /* tails only */
    switch (p.op) {
    case NPE_UNARY_HARDTANH:
        p.alpha = rng_float(r, -3.0f, 0.0f), p.beta = rng_float(r, 0.0f, 6.0f);
        break;
    case NPE_UNARY_LEAKY_RELU:
        p.alpha = rng_float(r, 0.0f, 0.3f);
        break;
    case NPE_UNARY_ELU:
        p.alpha = rng_float(r, 0.5f, 2.0f);
        break;
    case NPE_UNARY_MUL_SCALAR:
        p.alpha = rng_float(r, -3.0f, 3.0f), p.beta = rng_float(r, -3.0f, 3.0f);
        break;
    default:
        break;
    }
    kcase c = {0};
    c.inplace = rng_chance(r, 40);
    snprintf(c.desc, sizeof(c.desc), "unary %s count=%" PRId64 " alpha=%g beta=%g%s",
             unary_names[p.op], p.count, p.alpha, p.beta, c.inplace ? " in place" : "");
    add_input(&c, r, (size_t)p.count, -8.0f, 8.0f, 3);
    c.out_n = (size_t)p.count;
    /* the vector exp is within 2.5e-7 relative; tanh's 1 - 2/(e^2x + 1) loses ~1e-7 absolute */
    c.tol = 2e-6;
    /* Errors of float math are judged against magnitude 1 at least: a lone deep-tail value
     * (GELU at x = -7 is 3e-12, where the double reference's 1 + erf(z) cancels worse than the
     * float kernel's erfc) or x * alpha + beta near 0 would otherwise be judged against itself. */
    c.floor = 1.0;
    c.entry = offsetof(npe_kernels, unary);
    c.call = unary_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- binary --------------------------------------------------------------------------------- */

typedef struct binary_params {
    npe_binary_op op;
    int ndim;
    int64_t shape[NPE_KMAX_DIMS], as[NPE_KMAX_DIMS], bs[NPE_KMAX_DIMS];
    float alpha;
} binary_params;

static const char *const binary_names[NPE_BINARY_COUNT] = {"add", "sub", "mul", "div",
                                                           "max", "min", "pow"};

static void binary_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                        const float *const *in, float *out)
{
    const binary_params *p = c->params;
    k->binary(ex, p->op, p->ndim, p->shape, in[0], p->as, in[1], p->bs, out, p->alpha);
}

/* Strides of an operand of the output shape: broadcast dims (stride 0) with probability bpct,
 * the rest laid out contiguously in a random dim order (a permuted view). Returns the element
 * count the operand's storage needs. */
static size_t random_strides(rng *r, int ndim, const int64_t *shape, int64_t *st, int bpct,
                             int permute)
{
    int order[NPE_KMAX_DIMS];
    for (int d = 0; d < ndim; d++)
        order[d] = d;
    if (permute)
        for (int d = ndim - 1; d > 0; d--) {
            const int j = rng_int(r, 0, d), t = order[d];
            order[d] = order[j];
            order[j] = t;
        }
    int64_t step = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        const int d = order[i];
        if (rng_chance(r, bpct)) {
            st[d] = 0;
        } else {
            st[d] = step;
            step *= shape[d];
        }
    }
    return (size_t)step;
}

static void test_binary(ctx *cx, rng *r)
{
    binary_params p = {(npe_binary_op)rng_int(r, 0, NPE_BINARY_COUNT - 1), rng_int(r, 0, 5),
                       {0}, {0}, {0}, 1.0f};
    int64_t total = 1;
    for (int d = 0; d < p.ndim; d++) {
        p.shape[d] = rng_chance(r, 20) ? 1 : rng_int(r, 1, p.ndim > 3 ? 8 : 40);
        total *= p.shape[d];
    }
    if (rng_chance(r, 30) && (p.op == NPE_BINARY_ADD || p.op == NPE_BINARY_SUB))
        p.alpha = rng_float(r, -2.0f, 2.0f);
    const int a_plain = rng_chance(r, 50);
    const size_t an = random_strides(r, p.ndim, p.shape, p.as, a_plain ? 0 : 25,
                                     !a_plain && rng_chance(r, 30));
    const size_t bn = random_strides(r, p.ndim, p.shape, p.bs, 40, rng_chance(r, 20));
    kcase c = {0};
    c.inplace = a_plain && rng_chance(r, 50);
    char sh[160] = "";
    for (int d = 0, o = 0; d < p.ndim; d++)
        o += snprintf(sh + o, sizeof(sh) - (size_t)o, "%s%" PRId64 "(%" PRId64 ",%" PRId64 ")",
                      d ? " " : "", p.shape[d], p.as[d], p.bs[d]);
    snprintf(c.desc, sizeof(c.desc), "binary %s alpha=%g shape(a,b strides)=[%s]%s",
             binary_names[p.op], p.alpha, sh, c.inplace ? " in place" : "");
    const int special = p.op == NPE_BINARY_MAX || p.op == NPE_BINARY_MIN ? 5 : 0;
    if (p.op == NPE_BINARY_POW) {
        add_input(&c, r, an, 0.0f, 3.0f, 0);
        add_input(&c, r, bn, -2.0f, 2.0f, 0);
    } else if (p.op == NPE_BINARY_DIV) {
        add_input(&c, r, an, -4.0f, 4.0f, 0);
        add_input(&c, r, bn, 0.5f, 4.0f, 0);
    } else {
        add_input(&c, r, an, -4.0f, 4.0f, special);
        add_input(&c, r, bn, -4.0f, 4.0f, special);
    }
    c.out_n = (size_t)total;
    c.tol = 1e-6;
    /* a + alpha * b rounds alpha * b in float (as PyTorch does): when the two nearly cancel, the
     * error is relative to the operands (up to 4 here), not to the small result */
    c.floor = 4.0;
    c.entry = offsetof(npe_kernels, binary);
    c.call = binary_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- copy_strided --------------------------------------------------------------------------- */

typedef struct copy_params {
    int ndim;
    int64_t shape[NPE_KMAX_DIMS], xs[NPE_KMAX_DIMS], ys[NPE_KMAX_DIMS];
    int64_t x_off, y_off;
} copy_params;

static void copy_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                      const float *const *in, float *out)
{
    const copy_params *p = c->params;
    k->copy_strided(ex, p->ndim, p->shape, in[0] + p->x_off, p->xs, out + p->y_off, p->ys);
}

/* x is a view of a bigger tensor (permuted, sliced, expanded); y is either contiguous or a slice
 * of a bigger output (cat), whose untouched elements must keep their initial values. */
static void test_copy_strided(ctx *cx, rng *r)
{
    copy_params p = {rng_int(r, 0, 6), {0}, {0}, {0}, 0, 0};
    int64_t xbig[NPE_KMAX_DIMS] = {0}, ybig[NPE_KMAX_DIMS] = {0};
    for (int d = 0; d < p.ndim; d++) {
        p.shape[d] = rng_chance(r, 15) ? 1 : rng_int(r, 1, p.ndim > 3 ? 7 : 30);
        xbig[d] = p.shape[d] + (rng_chance(r, 20) ? rng_int(r, 1, 3) : 0);
        ybig[d] = p.shape[d] + (rng_chance(r, 15) ? rng_int(r, 1, 3) : 0);
    }
    size_t xn = random_strides(r, p.ndim, xbig, p.xs, 10, rng_chance(r, 60));
    size_t yn = random_strides(r, p.ndim, ybig, p.ys, 0, 0);
    for (int d = 0; d < p.ndim; d++) {
        if (p.xs[d])
            p.x_off += (xbig[d] - p.shape[d]) * p.xs[d] / 2; /* a centred slice */
        p.y_off += (ybig[d] - p.shape[d]) * p.ys[d];         /* the last slice */
    }
    kcase c = {0};
    char sh[200] = "";
    for (int d = 0, o = 0; d < p.ndim; d++)
        o += snprintf(sh + o, sizeof(sh) - (size_t)o, "%s%" PRId64 "(%" PRId64 ",%" PRId64 ")",
                      d ? " " : "", p.shape[d], p.xs[d], p.ys[d]);
    snprintf(c.desc, sizeof(c.desc), "copy_strided shape(x,y strides)=[%s] x+%" PRId64
             " y+%" PRId64, sh, p.x_off, p.y_off);
    add_input(&c, r, xn, -4.0f, 4.0f, 0);
    add_input(&c, r, yn, -4.0f, 4.0f, 0); /* the bigger output's prior contents */
    c.out_n = yn;
    c.out_init = c.in[1].p;
    c.tol = 0.0;
    c.entry = offsetof(npe_kernels, copy_strided);
    c.call = copy_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- pad2d ---------------------------------------------------------------------------------- */

typedef struct pad_params {
    int64_t outer;
    int h, w, left, right, top, bottom;
    float value;
} pad_params;

static void pad_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                     const float *const *in, float *out)
{
    const pad_params *p = c->params;
    k->pad2d(ex, p->outer, p->h, p->w, p->left, p->right, p->top, p->bottom, p->value, in[0],
             out);
}

static void test_pad2d(ctx *cx, rng *r)
{
    pad_params p;
    do {
        p = (pad_params){rng_int(r, 1, 40), rng_int(r, 1, 30), rng_int(r, 1, 30),
                         rng_int(r, -3, 5), rng_int(r, -3, 5), rng_int(r, -3, 5),
                         rng_int(r, -3, 5), rng_float(r, -2.0f, 2.0f)};
    } while (p.h + p.top + p.bottom < 1 || p.w + p.left + p.right < 1 || p.left < -p.w ||
             p.right < -p.w || p.top < -p.h || p.bottom < -p.h);
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc), "pad2d outer=%" PRId64 " %dx%d l=%d r=%d t=%d b=%d v=%g",
             p.outer, p.h, p.w, p.left, p.right, p.top, p.bottom, p.value);
    add_input(&c, r, (size_t)(p.outer * p.h * p.w), -4.0f, 4.0f, 0);
    c.out_n = (size_t)(p.outer * (p.h + p.top + p.bottom) * (p.w + p.left + p.right));
    c.tol = 0.0;
    c.entry = offsetof(npe_kernels, pad2d);
    c.call = pad_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

/* ---- pooling -------------------------------------------------------------------------------- */

static void max_pool_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                          const float *const *in, float *out)
{
    k->max_pool2d(ex, c->params, in[0], out);
}

static void avg_pool_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                          const float *const *in, float *out)
{
    k->avg_pool2d(ex, c->params, in[0], out);
}

static void test_pool(ctx *cx, rng *r, int is_max)
{
    npe_pool2d_params p;
    do {
        memset(&p, 0, sizeof(p));
        p.n = rng_int(r, 1, 3);
        p.c = rng_int(r, 1, 8);
        p.h_in = rng_int(r, 1, 24);
        p.w_in = rng_int(r, 1, 24);
        p.kh = rng_int(r, 1, 5);
        p.kw = rng_chance(r, 70) ? p.kh : rng_int(r, 1, 5);
        p.sh = rng_int(r, 1, 3);
        p.sw = rng_chance(r, 70) ? p.sh : rng_int(r, 1, 3);
        p.ph = rng_int(r, 0, p.kh / 2);
        p.pw = rng_int(r, 0, p.kw / 2);
        p.dh = p.dw = 1;
        if (is_max && rng_chance(r, 25))
            p.dh = rng_int(r, 1, 3), p.dw = rng_int(r, 1, 3);
        p.ceil_mode = rng_chance(r, 40);
        if (!is_max) {
            p.count_include_pad = rng_chance(r, 50);
            p.divisor_override = rng_chance(r, 20) ? rng_int(r, 1, 10) : 0;
        }
        if (rng_chance(r, 10))
            p.c = rng_int(r, 16, 64), p.h_in = rng_int(r, 40, 64), p.w_in = rng_int(r, 40, 64);
        if (rng_chance(r, 4)) /* rows too wide for the kernel's stack block */
            p.c = 1, p.h_in = rng_int(r, 1, 6), p.w_in = rng_int(r, 2800, 4000);
    } while (npe_pool2d_out_size(&p) != 0);
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc),
             "%s n=%d c=%d %dx%d -> %dx%d k=%dx%d s=%d,%d p=%d,%d d=%d,%d ceil=%d incl_pad=%d "
             "div=%d",
             is_max ? "max_pool2d" : "avg_pool2d", p.n, p.c, p.h_in, p.w_in, p.h_out, p.w_out,
             p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.ceil_mode, p.count_include_pad,
             p.divisor_override);
    add_input(&c, r, (size_t)p.n * p.c * p.h_in * p.w_in, -4.0f, 4.0f, is_max ? 1 : 0);
    c.out_n = (size_t)p.n * p.c * p.h_out * p.w_out;
    c.tol = is_max ? 0.0 : 1e-6;
    c.entry = is_max ? offsetof(npe_kernels, max_pool2d) : offsetof(npe_kernels, avg_pool2d);
    c.call = is_max ? max_pool_call : avg_pool_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

static void test_max_pool2d(ctx *cx, rng *r)
{
    test_pool(cx, r, 1);
}

static void test_avg_pool2d(ctx *cx, rng *r)
{
    test_pool(cx, r, 0);
}

/* adaptive pools and upsampling share (n, c, h, w, oh, ow) */
typedef struct resize_params {
    int n, c, h, w, oh, ow, align_corners;
    float scale_h, scale_w;
} resize_params;

static void adaptive_avg_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                              const float *const *in, float *out)
{
    const resize_params *p = c->params;
    k->adaptive_avg_pool2d(ex, p->n, p->c, p->h, p->w, p->oh, p->ow, in[0], out);
}

static void adaptive_max_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                              const float *const *in, float *out)
{
    const resize_params *p = c->params;
    k->adaptive_max_pool2d(ex, p->n, p->c, p->h, p->w, p->oh, p->ow, in[0], out);
}

static void nearest_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                         const float *const *in, float *out)
{
    const resize_params *p = c->params;
    k->upsample_nearest2d(ex, p->n, p->c, p->h, p->w, p->oh, p->ow, p->scale_h, p->scale_w,
                          in[0], out);
}

static void bilinear_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                          const float *const *in, float *out)
{
    const resize_params *p = c->params;
    k->upsample_bilinear2d(ex, p->n, p->c, p->h, p->w, p->oh, p->ow, p->align_corners,
                           p->scale_h, p->scale_w, in[0], out);
}

/* kind: 0 adaptive avg, 1 adaptive max, 2 nearest, 3 bilinear */
static void test_resize(ctx *cx, rng *r, int kind)
{
    resize_params p = {rng_int(r, 1, 3), rng_int(r, 1, 12), rng_int(r, 1, 24), rng_int(r, 1, 24),
                       0, 0, 0, 0.0f, 0.0f};
    if (rng_chance(r, 10))
        p.c = rng_int(r, 32, 96);
    if (rng_chance(r, 5)) /* wide rows: outputs past the kernels' stack tables */
        p.c = 1, p.h = rng_int(r, 1, 4), p.w = rng_int(r, 400, 700);
    if (kind <= 1) {
        p.oh = rng_chance(r, 20) ? 1 : rng_int(r, 1, p.h + 3);
        p.ow = rng_chance(r, 20) ? 1 : rng_int(r, 1, p.w + 3);
    } else if (rng_chance(r, 50)) {
        /* a scale factor: out = floor(in * f), the kernel gets 1/f */
        /* including factors whose 1/f disagrees with in/out (1.2 with in 3 gives out 3) */
        static const float factors[] = {2.0f, 3.0f, 1.5f, 0.5f, 2.5f, 4.0f,
                                        1.0f, 1.2f, 2.2f, 0.7f, 1.9f, 2.1f};
        const int nf = (int)(sizeof(factors) / sizeof(factors[0]));
        const float fh = factors[rng_int(r, 0, nf - 1)], fw = factors[rng_int(r, 0, nf - 1)];
        p.oh = (int)floorf((float)p.h * fh);
        p.ow = (int)floorf((float)p.w * fw);
        if (p.oh < 1)
            p.oh = 1;
        if (p.ow < 1)
            p.ow = 1;
        p.scale_h = 1.0f / fh;
        p.scale_w = 1.0f / fw;
    } else {
        p.oh = rng_int(r, 1, 3 * p.h);
        p.ow = rng_int(r, 1, 3 * p.w);
    }
    if (kind == 3)
        p.align_corners = rng_chance(r, 50);
    static const char *const names[] = {"adaptive_avg_pool2d", "adaptive_max_pool2d",
                                        "upsample_nearest2d", "upsample_bilinear2d"};
    static const call_fn calls[] = {adaptive_avg_call, adaptive_max_call, nearest_call,
                                    bilinear_call};
    static const size_t entries[] = {offsetof(npe_kernels, adaptive_avg_pool2d),
                                     offsetof(npe_kernels, adaptive_max_pool2d),
                                     offsetof(npe_kernels, upsample_nearest2d),
                                     offsetof(npe_kernels, upsample_bilinear2d)};
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc), "%s n=%d c=%d %dx%d -> %dx%d scale=%g,%g align=%d",
             names[kind], p.n, p.c, p.h, p.w, p.oh, p.ow, p.scale_h, p.scale_w,
             p.align_corners);
    add_input(&c, r, (size_t)p.n * p.c * p.h * p.w, -4.0f, 4.0f, kind == 1 ? 1 : 0);
    c.out_n = (size_t)p.n * p.c * p.oh * p.ow;
    c.tol = kind == 0 || kind == 3 ? 1e-6 : 0.0;
    c.entry = entries[kind];
    c.call = calls[kind];
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

static void test_adaptive_avg_pool2d(ctx *cx, rng *r)
{
    test_resize(cx, r, 0);
}

static void test_adaptive_max_pool2d(ctx *cx, rng *r)
{
    test_resize(cx, r, 1);
}

static void test_upsample_nearest2d(ctx *cx, rng *r)
{
    test_resize(cx, r, 2);
}

static void test_upsample_bilinear2d(ctx *cx, rng *r)
{
    test_resize(cx, r, 3);
}

/* ---- reduce / softmax ----------------------------------------------------------------------- */

typedef struct reduce_params {
    int op; /* npe_reduce_op, or for softmax: log */
    int64_t outer, r, inner;
} reduce_params;

static void reduce_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                        const float *const *in, float *out)
{
    const reduce_params *p = c->params;
    k->reduce(ex, (npe_reduce_op)p->op, p->outer, p->r, p->inner, in[0], out);
}

static void softmax_call(const npe_kernels *k, const npe_kexec *ex, const kcase *c,
                         const float *const *in, float *out)
{
    const reduce_params *p = c->params;
    k->softmax(ex, p->op, p->outer, p->r, p->inner, in[0], out);
}

static void test_reduce_like(ctx *cx, rng *r, int softmax)
{
    reduce_params p = {softmax ? rng_int(r, 0, 1) : rng_int(r, 0, NPE_REDUCE_COUNT - 1),
                       rng_int(r, 1, 200), rng_int(r, softmax ? 1 : 0, 100), rng_int(r, 1, 40)};
    if (rng_chance(r, 30))
        p.inner = 1;
    kcase c = {0};
    snprintf(c.desc, sizeof(c.desc), "%s %d outer=%" PRId64 " r=%" PRId64 " inner=%" PRId64,
             softmax ? "softmax(log)" : "reduce(op)", p.op, p.outer, p.r, p.inner);
    add_input(&c, r, (size_t)(p.outer * p.r * p.inner), -4.0f, 4.0f, softmax ? 0 : 1);
    c.out_n = (size_t)(softmax ? p.outer * p.r * p.inner : p.outer * p.inner);
    c.tol = 1e-6;
    c.entry = softmax ? offsetof(npe_kernels, softmax) : offsetof(npe_kernels, reduce);
    c.call = softmax ? softmax_call : reduce_call;
    c.params = &p;
    run_case(cx, &c);
    free_case(&c);
}

static void test_reduce(ctx *cx, rng *r)
{
    test_reduce_like(cx, r, 0);
}

static void test_softmax(ctx *cx, rng *r)
{
    test_reduce_like(cx, r, 1);
}

/* ---- the thread pool itself ------------------------------------------------------------------ */

typedef struct pool_probe {
    int64_t n;
    unsigned char *hits;
    int nthreads, bad_thread, nested_ok;
    const npe_kexec *ex;
} pool_probe;

static void probe_inner(void *arg, int64_t b, int64_t e, int thread)
{
    int *count = arg;
    (void)thread;
    *count += (int)(e - b);
}

static void probe_fn(void *arg, int64_t b, int64_t e, int thread)
{
    pool_probe *pp = arg;
    if (thread < 0 || thread >= pp->nthreads)
        pp->bad_thread = 1;
    for (int64_t i = b; i < e; i++)
        pp->hits[i]++;
    /* long enough chunks that every thread wakes and competes for them */
    const struct timespec nap = {0, 200000};
    nanosleep(&nap, NULL);
    /* a nested parallel_for runs serially on this thread */
    int count = 0;
    pp->ex->parallel_for(pp->ex, 5, probe_inner, &count);
    if (count != 5)
        pp->nested_ok = 0;
}

static void test_threadpool(ctx *cx, rng *r)
{
    const int nthreads = rng_int(r, 1, 4);
    npe_kpool *pool = npe_kpool_create(nthreads);
    cx->checks++;
    if (!pool) {
        cx->failures++;
        fprintf(stderr, "FAIL threadpool: npe_kpool_create(%d) returned NULL\n", nthreads);
        return;
    }
    npe_kexec full;
    npe_kexec_init(&full, pool, NULL, 0);
    for (int job = 0; job < 50; job++) {
        /* sometimes an exec that offers fewer threads than the pool has */
        npe_kexec ex = full;
        if (rng_chance(r, 30))
            ex.nthreads = rng_int(r, 1, nthreads);
        pool_probe pp = {rng_int(r, 0, 100), NULL, ex.nthreads, 0, 1, &ex};
        pp.hits = calloc((size_t)pp.n + 1, 1);
        ex.parallel_for(&ex, pp.n, probe_fn, &pp);
        int ok = !pp.bad_thread && pp.nested_ok;
        for (int64_t i = 0; i < pp.n; i++)
            ok &= pp.hits[i] == 1;
        if (!ok) {
            cx->failures++;
            fprintf(stderr,
                    "FAIL threadpool: %d threads, n=%" PRId64 ": an index not run exactly once, "
                    "a thread index out of range or a nested call not serial\n",
                    nthreads, pp.n);
        }
        free(pp.hits);
    }
    npe_kpool_destroy(pool);
}

/* ---- the op list ----------------------------------------------------------------------------- */

typedef struct op_test {
    const char *name;
    void (*run)(ctx *cx, rng *r);
    int cases;
} op_test;

static const op_test ops[] = {
    {"threadpool", test_threadpool, 20},
    {"conv2d", test_conv2d, 1000},
    {"conv2d_ep", test_conv2d_ep, 500},
    {"linear", test_linear, 150},
    {"channel_affine", test_channel_affine, 150},
    {"unary", test_unary, 400},
    {"binary", test_binary, 600},
    {"copy_strided", test_copy_strided, 500},
    {"pad2d", test_pad2d, 150},
    {"max_pool2d", test_max_pool2d, 250},
    {"avg_pool2d", test_avg_pool2d, 250},
    {"adaptive_avg_pool2d", test_adaptive_avg_pool2d, 100},
    {"adaptive_max_pool2d", test_adaptive_max_pool2d, 100},
    {"upsample_nearest2d", test_upsample_nearest2d, 150},
    {"upsample_bilinear2d", test_upsample_bilinear2d, 100},
    {"reduce", test_reduce, 150},
    {"softmax", test_softmax, 100},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

/* ---- benchmarks ------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*bench_fn)(void *arg);

/* Best time of one call: repeated until min_time has passed (at least 3 runs, after a warm-up);
 * the best, not the mean, because this machine may be shared. */
static double time_best(bench_fn fn, void *arg, double min_time)
{
    fn(arg);
    double best = 1e30, start = now_s();
    int runs = 0;
    while (runs < 3 || now_s() - start < min_time) {
        const double t0 = now_s();
        fn(arg);
        const double t = now_s() - t0;
        if (t < best)
            best = t;
        runs++;
    }
    return best;
}

typedef struct conv_bench {
    const npe_kernels *k;
    const npe_kexec *ex;
    const npe_conv2d_params *p;
    const float *x, *w, *b;
    float *y;
} conv_bench;

static void conv_bench_fn(void *arg)
{
    conv_bench *cb = arg;
    cb->k->conv2d(cb->ex, cb->p, cb->x, cb->w, cb->b, cb->y);
}

typedef struct gemm_bench {
    int threads, m, n, k;
    const float *a, *b;
    float *c;
} gemm_bench;

static void gemm_bench_fn(void *arg)
{
    gemm_bench *gb = arg;
    npe_blas_sgemm(gb->threads, 0, 0, gb->m, gb->n, gb->k, 1.0f, gb->a, gb->k, gb->b, gb->n,
                   0.0f, gb->c, gb->n);
}

static float *random_buf(rng *r, size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "checkkern: out of memory\n");
        exit(2);
    }
    fill_random(r, p, n, -1.0f, 1.0f, 0);
    return p;
}

typedef struct conv_setup {
    conv_bench cb;
    npe_kexec ex;
    float *x, *w, *b, *y;
    void *scratch;
} conv_setup;

static void conv_setup_init(conv_setup *cs, rng *r, const npe_kernels *k,
                            const npe_conv2d_params *p, int nthreads, npe_kpool *pool)
{
    const size_t xn = (size_t)p->n * p->c_in * p->h_in * p->w_in;
    const size_t wn = (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    const size_t yn = (size_t)p->n * p->c_out * p->h_out * p->w_out;
    cs->x = random_buf(r, xn);
    cs->w = random_buf(r, wn);
    cs->b = random_buf(r, (size_t)p->c_out);
    cs->y = random_buf(r, yn);
    const size_t sbytes = k->conv2d_scratch(p, nthreads);
    cs->scratch = sbytes ? aligned_alloc(64, (sbytes + 63) / 64 * 64) : NULL;
    npe_kexec_init(&cs->ex, nthreads > 1 ? pool : NULL, cs->scratch, sbytes);
    cs->cb = (conv_bench){k, &cs->ex, p, cs->x, cs->w, cs->b, cs->y};
}

static void conv_setup_free(conv_setup *cs)
{
    free(cs->scratch);
    free(cs->x), free(cs->w), free(cs->b), free(cs->y);
}

/* The issue-6 table: 3x3 and 1x1 convolutions against one sgemm of the same M, N, K (the
 * product the convolution lowers to), same thread count. The two are timed alternately, many
 * rounds, and each keeps its best round: on a shared machine both then see the same quiet
 * moments. */
static void bench_conv_vs_gemm(const npe_kernels *cpu, int nthreads, npe_kpool *pool,
                               double min_time)
{
    rng r = {12345};
    printf("\nconv2d (cpu table) vs one sgemm of the same M=Cout, N=Ho*Wo, K=Cin*kh*kw, batch 1, "
           "%d thread%s, best of alternating runs:\n",
           nthreads, nthreads > 1 ? "s" : "");
    printf("  %-26s %6s %6s %6s %10s %10s %7s\n", "shape", "M", "N", "K", "conv GF/s",
           "sgemm GF/s", "ratio");
    static const int chans[] = {64, 128, 256};
    static const int sizes[] = {56, 28};
    static const int ksz[] = {3, 1};
    double sum_ratio = 0.0;
    int count = 0;
    for (int ki = 0; ki < 2; ki++)
        for (int si = 0; si < 2; si++)
            for (int ci = 0; ci < 3; ci++) {
                npe_conv2d_params p = {0};
                p.n = 1;
                p.c_in = p.c_out = chans[ci];
                p.h_in = p.w_in = sizes[si];
                p.kh = p.kw = ksz[ki];
                p.sh = p.sw = p.dh = p.dw = 1;
                p.ph = p.pw = ksz[ki] / 2;
                p.groups = 1;
                if (npe_conv2d_out_size(&p) != 0)
                    continue;
                const int m = p.c_out, n = p.h_out * p.w_out, kd = p.c_in * p.kh * p.kw;
                const double flops = 2.0 * m * n * kd;
                conv_setup cs;
                conv_setup_init(&cs, &r, cpu, &p, nthreads, pool);
                float *a = random_buf(&r, (size_t)m * kd), *b = random_buf(&r, (size_t)kd * n);
                float *c = random_buf(&r, (size_t)m * n);
                gemm_bench gb = {nthreads, m, n, kd, a, b, c};
                double tc = 1e30, tg = 1e30;
                const double start = now_s();
                for (int round = 0; round < 5 || now_s() - start < 2 * min_time; round++) {
                    const double t1 = time_best(conv_bench_fn, &cs.cb, 0.0);
                    const double t2 = time_best(gemm_bench_fn, &gb, 0.0);
                    tc = t1 < tc ? t1 : tc;
                    tg = t2 < tg ? t2 : tg;
                }
                free(a), free(b), free(c);
                conv_setup_free(&cs);
                char name[64];
                snprintf(name, sizeof(name), "%dx%d %dch %dx%d", p.kh, p.kw, p.c_in, p.h_in,
                         p.w_in);
                printf("  %-26s %6d %6d %6d %10.1f %10.1f %6.0f%%\n", name, m, n, kd,
                       flops / tc * 1e-9, flops / tg * 1e-9, 100.0 * tg / tc);
                sum_ratio += tg / tc;
                count++;
            }
    printf("  mean ratio %.0f%%\n", 100.0 * sum_ratio / count);
}

typedef struct op_bench {
    const char *name;
    const npe_kernels *k;
    const npe_kexec *ex;
    void (*fn)(const struct op_bench *);
    const float *x, *w, *b;
    float *y;
    const void *params;
} op_bench;

static void op_bench_fn(void *arg)
{
    const op_bench *ob = arg;
    ob->fn(ob);
}

static void ob_linear(const op_bench *ob)
{
    const int64_t *d = ob->params;
    ob->k->linear(ob->ex, d[0], d[1], d[2], ob->x, ob->w, ob->b, ob->y);
}

static void ob_conv(const op_bench *ob)
{
    ob->k->conv2d(ob->ex, ob->params, ob->x, ob->w, ob->b, ob->y);
}

static void ob_affine(const op_bench *ob)
{
    ob->k->channel_affine(ob->ex, 1, 256, 56 * 56, ob->x, ob->w, ob->b, ob->y);
}

static void ob_relu(const op_bench *ob)
{
    ob->k->unary(ob->ex, NPE_UNARY_RELU, 256 * 56 * 56, ob->x, ob->y, 0.0f, 0.0f);
}

static void ob_silu(const op_bench *ob)
{
    ob->k->unary(ob->ex, NPE_UNARY_SILU, 256 * 56 * 56, ob->x, ob->y, 0.0f, 0.0f);
}

static void ob_add(const op_bench *ob)
{
    static const int64_t shape[1] = {256 * 56 * 56}, st[1] = {1};
    ob->k->binary(ob->ex, NPE_BINARY_ADD, 1, shape, ob->x, st, ob->w, st, ob->y, 1.0f);
}

static void ob_permute(const op_bench *ob)
{
    /* NCHW -> NHWC of (1, 256, 56, 56) */
    static const int64_t shape[3] = {56, 56, 256}, xs[3] = {56, 1, 56 * 56},
                         ys[3] = {56 * 256, 256, 1};
    ob->k->copy_strided(ob->ex, 3, shape, ob->x, xs, ob->y, ys);
}

static void ob_maxpool(const op_bench *ob)
{
    ob->k->max_pool2d(ob->ex, ob->params, ob->x, ob->y);
}

static void ob_nearest(const op_bench *ob)
{
    ob->k->upsample_nearest2d(ob->ex, 1, 256, 28, 28, 56, 56, 0.0f, 0.0f, ob->x, ob->y);
}

static void ob_gap(const op_bench *ob)
{
    ob->k->adaptive_avg_pool2d(ob->ex, 1, 256, 56, 56, 1, 1, ob->x, ob->y);
}

static void ob_softmax(const op_bench *ob)
{
    ob->k->softmax(ob->ex, 0, 64, 1000, 1, ob->x, ob->y);
}

static int run_bench(const char *only, int nthreads)
{
    npe_kernels ref, cpu;
    npe_kernels_init_ref(&ref);
    npe_kernels_init_cpu(&cpu, NPE_KCPU_ALL);
    npe_kpool *pool = nthreads > 1 ? npe_kpool_create(nthreads) : NULL;
    const double min_time = 0.3;
    rng r = {777};
    const size_t big = 256 * 56 * 56 * 4;
    float *x = random_buf(&r, big), *w = random_buf(&r, big), *b = random_buf(&r, big);
    float *y = random_buf(&r, big);
    size_t sbytes = 0;
    void *scratch = NULL;

    npe_conv2d_params c3 = {1, 64, 56, 56, 64, 0, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    npe_conv2d_params c1 = {1, 256, 56, 56, 64, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0};
    npe_conv2d_params dw = {1, 256, 56, 56, 256, 0, 0, 3, 3, 1, 1, 1, 1, 1, 1, 256, 0, 0, 0};
    npe_conv2d_params tr = {1, 64, 28, 28, 32, 0, 0, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0};
    npe_conv2d_params *convs[] = {&c3, &c1, &dw, &tr};
    for (int i = 0; i < 4; i++) {
        npe_conv2d_out_size(convs[i]);
        const size_t s = cpu.conv2d_scratch(convs[i], nthreads);
        sbytes = s > sbytes ? s : sbytes;
    }
    if (sbytes)
        scratch = aligned_alloc(64, (sbytes + 63) / 64 * 64);
    npe_pool2d_params mp = {1, 64, 112, 112, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0};
    npe_pool2d_out_size(&mp);
    static const int64_t lin_big[3] = {64, 2048, 1000}, lin_one[3] = {1, 2048, 1000};

    struct {
        const char *name;
        void (*fn)(const op_bench *);
        const void *params;
        double flops;
    } items[] = {
        {"conv2d 3x3 64->64 56x56", ob_conv, &c3, 2.0 * 64 * 64 * 9 * 56 * 56},
        {"conv2d 1x1 256->64 56x56", ob_conv, &c1, 2.0 * 256 * 64 * 56 * 56},
        {"conv2d dw3x3 256 56x56", ob_conv, &dw, 2.0 * 256 * 9 * 56 * 56},
        {"conv_t 4x4 s2 64->32 28x28", ob_conv, &tr, 2.0 * 64 * 32 * 16 * 28 * 28},
        {"linear 64x2048 -> 1000", ob_linear, lin_big, 2.0 * 64 * 2048 * 1000},
        {"linear 1x2048 -> 1000", ob_linear, lin_one, 2.0 * 2048 * 1000},
        {"channel_affine 256x56x56", ob_affine, NULL, 0},
        {"relu 256x56x56", ob_relu, NULL, 0},
        {"silu 256x56x56", ob_silu, NULL, 0},
        {"add 256x56x56", ob_add, NULL, 0},
        {"permute nchw->nhwc 256x56x56", ob_permute, NULL, 0},
        {"max_pool 3x3 s2 64x112x112", ob_maxpool, &mp, 0},
        {"nearest 2x 256x28x28", ob_nearest, NULL, 0},
        {"global avg pool 256x56x56", ob_gap, NULL, 0},
        {"softmax 64x1000", ob_softmax, NULL, 0},
    };
    printf("checkkern --bench: cpu table (all flags, %d thread%s) against the reference, "
           "best of runs\n",
           nthreads, nthreads > 1 ? "s" : "");
    printf("  %-30s %10s %10s %8s %10s\n", "kernel", "ref ms", "cpu ms", "speedup", "cpu GF/s");
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        if (only && !strstr(items[i].name, only))
            continue;
        npe_kexec ex;
        npe_kexec_init(&ex, pool, scratch, sbytes);
        op_bench ob = {items[i].name, &ref, &ex, items[i].fn, x, w, b, y, items[i].params};
        const double tr_ = time_best(op_bench_fn, &ob, items[i].flops > 1e8 ? 0.05 : min_time);
        ob.k = &cpu;
        const double tc = time_best(op_bench_fn, &ob, min_time);
        printf("  %-30s %10.3f %10.3f %7.1fx", items[i].name, tr_ * 1e3, tc * 1e3, tr_ / tc);
        if (items[i].flops > 0)
            printf(" %10.1f", items[i].flops / tc * 1e-9);
        printf("\n");
    }
    if (!only || strstr("conv2d", only)) {
        bench_conv_vs_gemm(&cpu, 1, NULL, min_time);
        if (nthreads > 1)
            bench_conv_vs_gemm(&cpu, nthreads, pool, min_time);
    }
    free(scratch);
    free(x), free(w), free(b), free(y);
    npe_kpool_destroy(pool);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: checkkern [--seed N] [--op NAME] [--case K] [--cases-scale F] [-v]\n"
            "       checkkern --bench [--op NAME] [--threads N]\n"
            "Checks every cpu kernel against the reference on random cases; ops:");
    for (size_t i = 0; i < NOPS; i++)
        fprintf(stderr, " %s", ops[i].name);
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    ctx cx = {0};
    const char *only = NULL;
    int bench = 0, one_case = -1, nthreads = 0;
    double scale = 1.0;
    cx.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            cx.seed = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--op") && v)
            only = v, i++;
        else if (!strcmp(a, "--case") && v)
            one_case = atoi(v), i++;
        else if (!strcmp(a, "--cases-scale") && v)
            scale = atof(v), i++;
        else if (!strcmp(a, "--threads") && v)
            nthreads = atoi(v), i++;
        else if (!strcmp(a, "--bench"))
            bench = 1;
        else if (!strcmp(a, "-v"))
            cx.verbose++;
        else {
            usage();
            return 2;
        }
    }
    if (bench) {
        if (nthreads <= 0) {
            const long n = sysconf(_SC_NPROCESSORS_ONLN);
            nthreads = n > 0 ? (int)n : 1;
        }
        return run_bench(only, nthreads);
    }
    if (only) {
        size_t i = 0;
        while (i < NOPS && strcmp(ops[i].name, only))
            i++;
        if (i == NOPS) {
            fprintf(stderr, "checkkern: no op named '%s'\n", only);
            usage();
            return 2;
        }
    }

    printf("checkkern: seed %" PRIu64 " (replay with --seed %" PRIu64 ")\n", cx.seed, cx.seed);
    npe_kernels_init_ref(&cx.ref);
    for (size_t l = 0; l < NLEVELS; l++) {
        npe_kernels_init_cpu(&levels[l].k, levels[l].flags);
        if (levels[l].nthreads > 1) {
            levels[l].pool = npe_kpool_create(levels[l].nthreads);
            if (!levels[l].pool) {
                fprintf(stderr, "checkkern: cannot start a pool of %d threads\n",
                        levels[l].nthreads);
                return 2;
            }
        }
    }
    const double t_all = now_s();
    for (size_t i = 0; i < NOPS; i++) {
        if (only && strcmp(ops[i].name, only))
            continue;
        cx.op = ops[i].name;
        cx.printed = 0;
        const long f0 = cx.failures, c0 = cx.checks;
        const int cases = (int)(ops[i].cases * scale) > 0 ? (int)(ops[i].cases * scale) : 1;
        const double t0 = now_s();
        for (int k = 0; k < cases; k++) {
            if (one_case >= 0 && k != one_case)
                continue;
            /* each case has its own stream: --case K replays case K alone */
            rng r = {cx.seed ^ hash_str(ops[i].name) ^ ((uint64_t)k * 0xd1b54a32d192ed03ull)};
            rng_next(&r);
            cx.case_index = k;
            ops[i].run(&cx, &r);
        }
        printf("  %-20s %4d cases %6ld checks %4ld failed  %6.2f s\n", ops[i].name,
               one_case >= 0 ? 1 : cases, cx.checks - c0, cx.failures - f0, now_s() - t0);
    }
    for (size_t l = 0; l < NLEVELS; l++)
        npe_kpool_destroy(levels[l].pool);
    printf("checkkern: %.1f s, seed %" PRIu64 "\n", now_s() - t_all, cx.seed);
    tu_checks = (int)cx.checks;
    tu_failures = (int)cx.failures;
    return tu_finish("checkkern");
}
