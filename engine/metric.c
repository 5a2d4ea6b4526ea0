/* Evaluation metrics (definitions in metric.h): classification accuracy and loss, segmentation
 * confusion matrices, output fidelity; exact order-independent sums for mergeable results. */
#include "metric.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest num_classes for a confusion matrix (4096^2 counters = 128 MiB). */
#define MAX_CLASSES 4096

/* ---- Exact sums ------------------------------------------------------------------------------
 * A signed 256-bit two's-complement integer counting units of 2^-XS_FRAC. Every finite double
 * with |x| < 2^XS_MAX_EXP is added exactly (bits below 2^-XS_FRAC dropped, toward zero), so the
 * total is independent of the order of additions and of how partial sums are merged. */
#define XS_WORDS 4
#define XS_FRAC 100
#define XS_MAX_EXP 120

typedef struct xsum {
    uint64_t w[XS_WORDS]; /* little-endian words */
    int64_t nan, pinf, ninf;
} xsum;

static void xs_add_words(uint64_t *acc, const uint64_t *v)
{
    uint64_t carry = 0;
    for (int i = 0; i < XS_WORDS; i++) {
        uint64_t a = acc[i], s = a + v[i];
        uint64_t c1 = s < a;
        uint64_t t = s + carry;
        uint64_t c2 = t < s;
        acc[i] = t;
        carry = c1 | c2;
    }
}

static void xs_negate(uint64_t *v)
{
    uint64_t carry = 1;
    for (int i = 0; i < XS_WORDS; i++) {
        v[i] = ~v[i] + carry;
        carry = carry && v[i] == 0;
    }
}

static void xs_add(xsum *s, double x)
{
    if (isnan(x)) {
        s->nan++;
        return;
    }
    if (x == 0.0)
        return;
    int e;
    double m = frexp(fabs(x), &e); /* |x| = m 2^e, 0.5 <= m < 1 */
    if (isinf(x) || e > XS_MAX_EXP) {
        if (x > 0)
            s->pinf++;
        else
            s->ninf++;
        return;
    }
    uint64_t mant = (uint64_t)ldexp(m, 53); /* exact: |x| = mant 2^(e-53) */
    int shift = e - 53 + XS_FRAC;           /* |x| 2^XS_FRAC = mant 2^shift */
    if (shift < 0) {
        if (shift <= -64)
            return;
        mant >>= -shift;
        shift = 0;
    }
    uint64_t v[XS_WORDS] = {0};
    int wi = shift / 64, b = shift % 64;
    v[wi] = mant << b;
    if (b && wi + 1 < XS_WORDS)
        v[wi + 1] = mant >> (64 - b);
    if (x < 0)
        xs_negate(v);
    xs_add_words(s->w, v);
}

static void xs_merge(xsum *into, const xsum *from)
{
    xs_add_words(into->w, from->w);
    into->nan += from->nan;
    into->pinf += from->pinf;
    into->ninf += from->ninf;
}

static double xs_value(const xsum *s)
{
    if (s->nan || (s->pinf && s->ninf))
        return NAN;
    if (s->pinf)
        return INFINITY;
    if (s->ninf)
        return -INFINITY;
    uint64_t v[XS_WORDS];
    memcpy(v, s->w, sizeof(v));
    int neg = (int)(v[XS_WORDS - 1] >> 63);
    if (neg)
        xs_negate(v);
    double d = 0.0;
    for (int i = 0; i < XS_WORDS; i++)
        d += ldexp((double)v[i], 64 * i - XS_FRAC);
    return neg ? -d : d;
}

/* ---- Names ----------------------------------------------------------------------------------- */

static const char *const names[NPE_METRIC_COUNT] = {
    "top1", "top5", "cross_entropy", "miou", "pixel_accuracy", "fidelity",
};
_Static_assert(sizeof(names) / sizeof(names[0]) == NPE_METRIC_COUNT, "a name per metric");

static int is_custom(npe_metric_kind k)
{
    return k == NPE_METRIC_CUSTOM || k == NPE_METRIC_CUSTOM_LOWER;
}

const char *npe_metric_name(npe_metric_kind k)
{
    if (is_custom(k))
        return "custom";
    return (unsigned)k < NPE_METRIC_COUNT ? names[k] : "unknown";
}

int npe_metric_from_name(const char *name, npe_metric_kind *out, npe_error *err)
{
    for (int k = 0; k < NPE_METRIC_COUNT; k++)
        if (name && !strcmp(name, names[k])) {
            *out = (npe_metric_kind)k;
            return 0;
        }
    return npe_error_set(err, NPE_EINVAL, "unknown metric '%s': expected top1, top5, "
                         "cross_entropy, miou, pixel_accuracy or fidelity", name ? name : "");
}

int npe_metric_higher_is_better(npe_metric_kind k)
{
    return k != NPE_METRIC_CROSS_ENTROPY && k != NPE_METRIC_CUSTOM_LOWER;
}

npe_metric_input npe_metric_needs(npe_metric_kind k)
{
    switch (k) {
    case NPE_METRIC_MIOU:
    case NPE_METRIC_PIXEL_ACCURACY: return NPE_METRIC_NEEDS_MASKS;
    case NPE_METRIC_FIDELITY: return NPE_METRIC_NEEDS_REFERENCE;
    case NPE_METRIC_CUSTOM:
    case NPE_METRIC_CUSTOM_LOWER: return NPE_METRIC_NEEDS_ANY;
    default: return NPE_METRIC_NEEDS_LABELS;
    }
}

/* ---- Accumulator ----------------------------------------------------------------------------- */

struct npe_metric {
    npe_metric_opts o;
    int64_t samples;
    int64_t hits;      /* top1, top5: samples counted */
    xsum sum;          /* cross_entropy, fidelity: per-sample values */
    int k;             /* miou, pixel_accuracy: classes (0 until the first output) */
    int binary;        /* miou, pixel_accuracy: outputs have one channel (logit > 0); -1 unknown */
    uint64_t *conf;    /* k x k, row = target class, column = predicted class */
    struct custom_state *cs; /* custom kinds */
};

/* The caller's accumulator. Kept apart so npe_metric_value, which takes a const metric, can end
 * it and remember the value. */
typedef struct custom_state {
    void *acc;
    int open;          /* acc was begun and not yet ended or discarded */
    int have_value;
    double value;
} custom_state;

void npe_metric_opts_init(npe_metric_opts *o, npe_metric_kind kind)
{
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->ignore_index = 255;
}

static int alloc_conf(npe_metric *m, int k, npe_error *err)
{
    if (k < 1 || k > MAX_CLASSES)
        return npe_error_set(err, NPE_ELIMIT, "%s: %d classes; between 1 and %d are supported",
                             names[m->o.kind], k, MAX_CLASSES);
    m->conf = calloc((size_t)k * k, sizeof(uint64_t));
    if (!m->conf)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory for %d classes",
                             names[m->o.kind], k);
    m->k = k;
    return 0;
}

static const char *custom_name(const npe_metric *m)
{
    return m->o.custom && m->o.custom->name ? m->o.custom->name : "custom";
}

static void custom_discard(const npe_metric *m)
{
    custom_state *cs = m->cs;
    if (!cs->open)
        return;
    const npe_metric_callbacks *cb = m->o.custom;
    if (cb->discard) {
        cb->discard(cb->user, cs->acc);
    } else {
        double v;
        char msg[8];
        cb->end(cb->user, cs->acc, &v, msg, sizeof(msg));
    }
    cs->acc = NULL;
    cs->open = 0;
}

/* A callback's failure as an error: its own NPE_E* code when it returned one, else
 * NPE_ECALLBACK; its message when it wrote one. */
static int callback_error(npe_error *err, int rc, const char *msg, const char *fmt, ...)
    NPE_PRINTF(4, 5);
static int callback_error(npe_error *err, int rc, const char *msg, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    int code = rc < 0 && rc >= NPE_ECALLBACK ? rc : NPE_ECALLBACK;
    if (msg && msg[0])
        return npe_error_set(err, code, "%s: %s", what, msg);
    return npe_error_set(err, code, "%s (returned %d)", what, rc);
}

static int create_custom(const npe_metric_opts *o, npe_metric **out, npe_error *err)
{
    const npe_metric_callbacks *cb = o->custom;
    if (!cb || !cb->begin || !cb->accumulate || !cb->end)
        return npe_error_set(err, NPE_EINVAL, "metric callbacks: begin, accumulate and end are "
                             "required%s", cb ? "" : " (none given)");
    npe_metric *m = calloc(1, sizeof(*m));
    custom_state *cs = calloc(1, sizeof(*cs));
    if (!m || !cs) {
        free(m);
        free(cs);
        return npe_error_set(err, NPE_ENOMEM, "metric: out of memory");
    }
    m->o = *o;
    m->cs = cs;
    m->binary = -1;
    *out = m;
    return 0;
}

static void to_tensor(const npe_array *a, npe_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->dtype = a->dtype;
    t->ndim = a->ndim;
    memcpy(t->shape, a->shape, sizeof(t->shape));
    t->data = a->data;
    t->nbytes = a->nbytes;
}

static int update_custom(npe_metric *m, const npe_array *outputs, int n_outputs,
                         const npe_array *target, npe_error *err)
{
    const npe_metric_callbacks *cb = m->o.custom;
    custom_state *cs = m->cs;
    char msg[512] = "";
    int rc;
    if (n_outputs < 1 || outputs[0].ndim < 1)
        return npe_error_set(err, NPE_EINVAL, "metric '%s': a batch needs at least one output "
                             "with a batch dim", custom_name(m));
    int64_t n = outputs[0].shape[0];
    npe_tensor one[4], *outs = n_outputs <= 4 ? one : malloc((size_t)n_outputs * sizeof(*outs));
    if (!outs)
        return npe_error_set(err, NPE_ENOMEM, "metric: out of memory");
    for (int i = 0; i < n_outputs; i++)
        to_tensor(&outputs[i], &outs[i]);
    npe_tensor tgt;
    int has_tgt = target && target->data && target->ndim > 0;
    if (has_tgt)
        to_tensor(target, &tgt);
    if (!cs->open) {
        cs->have_value = 0;
        cs->acc = NULL;
        if ((rc = cb->begin(cb->user, &cs->acc))) {
            if (outs != one)
                free(outs);
            return callback_error(err, rc, NULL, "metric '%s': begin failed", custom_name(m));
        }
        cs->open = 1;
    }
    rc = cb->accumulate(cb->user, cs->acc, outs, n_outputs, has_tgt ? &tgt : NULL, msg,
                        sizeof(msg));
    if (outs != one)
        free(outs);
    msg[sizeof(msg) - 1] = '\0';
    if (rc)
        return callback_error(err, rc, msg, "metric '%s': accumulate of a batch of %lld "
                              "sample(s) failed", custom_name(m), (long long)n);
    m->samples += n;
    return 0;
}

static int value_custom(const npe_metric *m, double *out, npe_error *err)
{
    const npe_metric_callbacks *cb = m->o.custom;
    custom_state *cs = m->cs;
    if (cs->have_value) {
        *out = cs->value;
        return 0;
    }
    if (!cs->open)
        return npe_error_set(err, NPE_EINVAL, "metric '%s': no samples were evaluated",
                             custom_name(m));
    char msg[512] = "";
    double v = NAN;
    int rc = cb->end(cb->user, cs->acc, &v, msg, sizeof(msg));
    msg[sizeof(msg) - 1] = '\0';
    cs->acc = NULL;
    cs->open = 0;
    if (rc)
        return callback_error(err, rc, msg, "metric '%s': end failed after %lld sample(s)",
                              custom_name(m), (long long)m->samples);
    cs->value = v;
    cs->have_value = 1;
    *out = v;
    return 0;
}

int npe_metric_create(const npe_metric_opts *o, npe_metric **out, npe_error *err)
{
    *out = NULL;
    if (is_custom(o->kind))
        return create_custom(o, out, err);
    if ((unsigned)o->kind >= NPE_METRIC_COUNT)
        return npe_error_set(err, NPE_EINVAL, "metric: unknown kind %d", (int)o->kind);
    if (o->num_classes < 0)
        return npe_error_set(err, NPE_EINVAL, "%s: num_classes must be >= 0 (0: from the "
                             "output), not %d", names[o->kind], o->num_classes);
    npe_metric *m = calloc(1, sizeof(*m));
    if (!m)
        return npe_error_set(err, NPE_ENOMEM, "metric: out of memory");
    m->o = *o;
    m->binary = -1;
    if (npe_metric_needs(o->kind) == NPE_METRIC_NEEDS_MASKS && o->num_classes > 0) {
        int r = alloc_conf(m, o->num_classes, err);
        if (r) {
            free(m);
            return r;
        }
    }
    *out = m;
    return 0;
}

void npe_metric_destroy(npe_metric *m)
{
    if (!m)
        return;
    if (m->cs) {
        custom_discard(m);
        free(m->cs);
    }
    free(m->conf);
    free(m);
}

void npe_metric_reset(npe_metric *m)
{
    m->samples = 0;
    m->hits = 0;
    memset(&m->sum, 0, sizeof(m->sum));
    if (m->conf)
        memset(m->conf, 0, (size_t)m->k * m->k * sizeof(uint64_t));
    if (m->cs) {
        custom_discard(m);
        m->cs->have_value = 0;
    }
}

npe_metric_kind npe_metric_get_kind(const npe_metric *m)
{
    return m->o.kind;
}

int64_t npe_metric_samples(const npe_metric *m)
{
    return m->samples;
}

/* ---- Element access -------------------------------------------------------------------------- */

static double fval(const npe_array *a, size_t i)
{
    return a->dtype == NPE_DTYPE_F32 ? (double)((const float *)a->data)[i]
                                     : ((const double *)a->data)[i];
}

static int64_t ival(const npe_array *a, size_t i)
{
    const unsigned char *p = a->data;
    switch (a->dtype) {
    case NPE_DTYPE_I64: { int64_t v; memcpy(&v, p + i * 8, 8); return v; }
    case NPE_DTYPE_I32: { int32_t v; memcpy(&v, p + i * 4, 4); return v; }
    case NPE_DTYPE_I16: { int16_t v; memcpy(&v, p + i * 2, 2); return v; }
    case NPE_DTYPE_I8: return (int8_t)p[i];
    case NPE_DTYPE_U8: return p[i];
    default: return 0;
    }
}

static void shape_str(const npe_array *a, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < a->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? "," : "", a->shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

/* The array holds what its shape says, of an accepted dtype. */
static int check_array(const npe_metric *m, const npe_array *a, int want_float, const char *role,
                       int64_t *numel, npe_error *err)
{
    const char *name = names[m->o.kind];
    if (!a || a->ndim < 1 || a->ndim > NPE_MAX_DIMS)
        return npe_error_set(err, NPE_EINVAL, "%s: the %s must have 1 to %d dimensions", name,
                             role, NPE_MAX_DIMS);
    int ok = want_float ? (a->dtype == NPE_DTYPE_F32 || a->dtype == NPE_DTYPE_F64)
                        : (a->dtype == NPE_DTYPE_I64 || a->dtype == NPE_DTYPE_I32 ||
                           a->dtype == NPE_DTYPE_I16 || a->dtype == NPE_DTYPE_I8 ||
                           a->dtype == NPE_DTYPE_U8);
    if (!ok)
        return npe_error_set(err, NPE_EINVAL, "%s: the %s must be %s, not %s", name, role,
                             want_float ? "float32 or float64" : "integers",
                             npe_dtype_name(a->dtype));
    int64_t n = npe_array_numel(a);
    if (n < 0 || (n > 0 && (!a->data || a->nbytes / npe_dtype_size(a->dtype) < (uint64_t)n)))
        return npe_error_set(err, NPE_EINVAL, "%s: the %s's data does not match its shape", name,
                             role);
    *numel = n;
    return 0;
}

/* ---- Updates --------------------------------------------------------------------------------- */

static int update_classification(npe_metric *m, const npe_array *out, const npe_array *lab,
                                 npe_error *err)
{
    const char *name = names[m->o.kind];
    int64_t on, ln;
    int r;
    if ((r = check_array(m, out, 1, "output", &on, err)) ||
        (r = check_array(m, lab, 0, "labels", &ln, err)))
        return r;
    char s1[96], s2[96];
    shape_str(out, s1, sizeof(s1));
    shape_str(lab, s2, sizeof(s2));
    int trailing_ones = 1;
    for (int i = 2; i < out->ndim; i++)
        trailing_ones &= out->shape[i] == 1;
    if (out->ndim < 2 || !trailing_ones || out->shape[1] < 1)
        return npe_error_set(err, NPE_EINVAL, "%s: output %s, expected logits [N,C]", name, s1);
    const int64_t n = out->shape[0], c = out->shape[1];
    if (lab->shape[0] != n || ln != n)
        return npe_error_set(err, NPE_EINVAL, "%s: labels %s for output %s; expected [%" PRId64
                             "]", name, s2, s1, n);
    int k = m->o.kind == NPE_METRIC_TOP5 ? 5 : 1;
    if (c < k)
        return npe_error_set(err, NPE_EINVAL, "%s: the output has %" PRId64 " classes, top%d "
                             "needs at least %d", name, c, k, k);
    for (int64_t i = 0; i < n; i++) {
        int64_t y = ival(lab, (size_t)i);
        if (y < 0 || y >= c)
            return npe_error_set(err, NPE_EINVAL, "%s: label %" PRId64 " of sample %" PRId64
                                 " in the batch is outside [0, %" PRId64 ")", name, y, i, c);
    }
    xsum part;
    memset(&part, 0, sizeof(part));
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t row = (size_t)(i * c);
        int64_t y = ival(lab, (size_t)i);
        double xy = fval(out, row + (size_t)y);
        if (m->o.kind == NPE_METRIC_CROSS_ENTROPY) {
            double mx = -INFINITY;
            int has_nan = 0;
            for (int64_t j = 0; j < c; j++) {
                double v = fval(out, row + (size_t)j);
                has_nan |= isnan(v);
                if (v > mx)
                    mx = v;
            }
            /* A NaN logit, or none finite at the top (+inf, or all -inf), has no loss: NaN,
             * as PyTorch gives. A -inf logit at the label gives +inf. */
            double loss = NAN;
            if (!has_nan && !isinf(mx)) {
                double s = 0.0;
                for (int64_t j = 0; j < c; j++)
                    s += exp(fval(out, row + (size_t)j) - mx);
                loss = mx + log(s) - xy;
            }
            xs_add(&part, loss);
        } else {
            int64_t greater = 0;
            for (int64_t j = 0; j < c && greater < k; j++)
                greater += fval(out, row + (size_t)j) > xy;
            hits += !isnan(xy) && greater < k;
        }
    }
    xs_merge(&m->sum, &part);
    m->hits += hits;
    m->samples += n;
    return 0;
}

static int update_segmentation(npe_metric *m, const npe_array *out, const npe_array *tgt,
                               npe_error *err)
{
    const char *name = names[m->o.kind];
    int64_t on, tn;
    int r;
    if ((r = check_array(m, out, 1, "output", &on, err)) ||
        (r = check_array(m, tgt, 0, "masks", &tn, err)))
        return r;
    char s1[96], s2[96];
    shape_str(out, s1, sizeof(s1));
    shape_str(tgt, s2, sizeof(s2));
    if (out->ndim < 3 || out->shape[1] < 1)
        return npe_error_set(err, NPE_EINVAL, "%s: output %s, expected per-pixel logits "
                             "[N,K,H,W]", name, s1);
    int same = tgt->ndim == out->ndim - 1 && tgt->shape[0] == out->shape[0];
    for (int i = 1; same && i < tgt->ndim; i++)
        same = tgt->shape[i] == out->shape[i + 1];
    if (!same)
        return npe_error_set(err, NPE_EINVAL, "%s: masks %s for output %s; expected the output's "
                             "shape without its class dimension", name, s2, s1);
    const int64_t n = out->shape[0], K = out->shape[1];
    const int binary = K == 1;
    const int64_t classes = binary ? 2 : K;
    if (m->k && (classes != m->k || (m->binary >= 0 && binary != m->binary)))
        return npe_error_set(err, NPE_EINVAL, "%s: output %s gives %" PRId64 " classes%s, "
                             "expected %d", name, s1, classes, binary ? " (binary)" : "", m->k);
    if (classes > MAX_CLASSES)
        return npe_error_set(err, NPE_ELIMIT, "%s: %" PRId64 " classes; at most %d are supported",
                             name, classes, MAX_CLASSES);
    const int64_t hw = n ? tn / n : 0;
    const int64_t ign = m->o.ignore_index;
    for (int64_t i = 0; i < tn; i++) {
        int64_t t = ival(tgt, (size_t)i);
        if (t != ign && (t < 0 || t >= classes))
            return npe_error_set(err, NPE_EINVAL, "%s: mask value %" PRId64 " at sample %" PRId64
                                 " pixel %" PRId64 " of the batch is outside [0, %" PRId64 ") "
                                 "and is not ignore_index (%d)",
                                 name, t, i / (hw ? hw : 1), i % (hw ? hw : 1), classes,
                                 m->o.ignore_index);
    }
    if (!m->k && (r = alloc_conf(m, (int)classes, err)))
        return r;
    m->binary = binary;
    for (int64_t s = 0; s < n; s++)
        for (int64_t p = 0; p < hw; p++) {
            int64_t t = ival(tgt, (size_t)(s * hw + p));
            if (t == ign)
                continue;
            size_t base = (size_t)(s * K * hw + p);
            int pred = 0;
            if (binary) {
                pred = fval(out, base) > 0.0;
            } else {
                double best = fval(out, base);
                for (int64_t c = 1; c < K; c++) {
                    double v = fval(out, base + (size_t)(c * hw));
                    if (v > best) {
                        best = v;
                        pred = (int)c;
                    }
                }
            }
            m->conf[(size_t)t * m->k + pred]++;
        }
    m->samples += n;
    return 0;
}

/* Adds sum(a*b), sum(a*a), sum(b*b) over n floats to *dot, *na, *nb, in double, with four
 * partial sums of each (a single chain of dependent additions ran at one element per four
 * cycles; the fidelity of a detection model reads half a million outputs per image). */
static void f32_sums(const float *a, const float *b, int64_t n, double *dot, double *na,
                     double *nb)
{
    double d[4] = {0}, x[4] = {0}, y[4] = {0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int k = 0; k < 4; k++) {
            const double p = a[j + k], q = b[j + k];
            d[k] += p * q;
            x[k] += p * p;
            y[k] += q * q;
        }
    for (; j < n; j++) {
        const double p = a[j], q = b[j];
        d[0] += p * q;
        x[0] += p * p;
        y[0] += q * q;
    }
    *dot += (d[0] + d[1]) + (d[2] + d[3]);
    *na += (x[0] + x[1]) + (x[2] + x[3]);
    *nb += (y[0] + y[1]) + (y[2] + y[3]);
}

static int update_fidelity(npe_metric *m, const npe_array *outs, const npe_array *refs, int cnt,
                           npe_error *err)
{
    const char *name = names[m->o.kind];
    if (cnt < 1)
        return npe_error_set(err, NPE_EINVAL, "%s: no outputs given", name);
    int64_t n = -1;
    for (int i = 0; i < cnt; i++) {
        int64_t a, b;
        int r;
        if ((r = check_array(m, &outs[i], 1, "output", &a, err)) ||
            (r = check_array(m, &refs[i], 1, "reference output", &b, err)))
            return r;
        char s1[96], s2[96];
        shape_str(&outs[i], s1, sizeof(s1));
        shape_str(&refs[i], s2, sizeof(s2));
        int same = outs[i].ndim == refs[i].ndim;
        for (int d = 0; same && d < outs[i].ndim; d++)
            same = outs[i].shape[d] == refs[i].shape[d];
        if (!same)
            return npe_error_set(err, NPE_EINVAL, "%s: output %d is %s, the reference output %s",
                                 name, i, s1, s2);
        if (n >= 0 && outs[i].shape[0] != n)
            return npe_error_set(err, NPE_EINVAL, "%s: output %d has %" PRId64 " samples, "
                                 "output 0 has %" PRId64, name, i, outs[i].shape[0], n);
        n = outs[i].shape[0];
    }
    xsum part;
    memset(&part, 0, sizeof(part));
    for (int64_t s = 0; s < n; s++) {
        double dot = 0.0, na = 0.0, nb = 0.0;
        for (int i = 0; i < cnt; i++) {
            int64_t per = n ? npe_array_numel(&outs[i]) / n : 0;
            if (outs[i].dtype == NPE_DTYPE_F32 && refs[i].dtype == NPE_DTYPE_F32) {
                f32_sums((const float *)outs[i].data + s * per,
                         (const float *)refs[i].data + s * per, per, &dot, &na, &nb);
                continue;
            }
            for (int64_t j = 0; j < per; j++) {
                double a = fval(&outs[i], (size_t)(s * per + j));
                double b = fval(&refs[i], (size_t)(s * per + j));
                dot += a * b;
                na += a * a;
                nb += b * b;
            }
        }
        double cs;
        if (na == 0.0 && nb == 0.0)
            cs = 1.0;
        else if (na == 0.0 || nb == 0.0)
            cs = 0.0;
        else
            cs = dot / (sqrt(na) * sqrt(nb));
        xs_add(&part, cs);
    }
    xs_merge(&m->sum, &part);
    m->samples += n;
    return 0;
}

int npe_metric_update_multi(npe_metric *m, const npe_array *outputs, const npe_array *references,
                            int n, npe_error *err)
{
    if (m->cs)
        return update_custom(m, outputs, n, references, err);
    if (m->o.kind == NPE_METRIC_FIDELITY)
        return update_fidelity(m, outputs, references, n, err);
    if (n != 1)
        return npe_error_set(err, NPE_EINVAL, "%s: takes one output per batch, %d given",
                             names[m->o.kind], n);
    if (npe_metric_needs(m->o.kind) == NPE_METRIC_NEEDS_MASKS)
        return update_segmentation(m, outputs, references, err);
    return update_classification(m, outputs, references, err);
}

int npe_metric_update(npe_metric *m, const npe_array *output, const npe_array *target,
                      npe_error *err)
{
    return npe_metric_update_multi(m, output, target, 1, err);
}

int npe_metric_update_batch(npe_metric *m, const npe_array *outputs, int n_outputs,
                            const npe_array *target, const npe_array *references, npe_error *err)
{
    if (m->cs)
        return update_custom(m, outputs, n_outputs, target, err);
    if (m->o.kind == NPE_METRIC_FIDELITY)
        return update_fidelity(m, outputs, references, n_outputs, err);
    return npe_metric_update_multi(m, outputs, target, 1, err);
}

int npe_metric_merge(npe_metric *into, const npe_metric *from, npe_error *err)
{
    if (into->cs || from->cs)
        return npe_error_set(err, NPE_EUNSUPPORTED, "metric '%s': custom metrics cannot be "
                             "merged", custom_name(into->cs ? into : from));
    if (into->o.kind != from->o.kind || into->o.ignore_index != from->o.ignore_index ||
        into->o.num_classes != from->o.num_classes)
        return npe_error_set(err, NPE_EINVAL, "metric: cannot merge %s into %s (different kind "
                             "or options)", names[from->o.kind], names[into->o.kind]);
    if (from->k && into->k &&
        (from->k != into->k ||
         (from->binary >= 0 && into->binary >= 0 && from->binary != into->binary)))
        return npe_error_set(err, NPE_EINVAL, "%s: cannot merge %d classes into %d",
                             names[into->o.kind], from->k, into->k);
    if (from->k && !into->k) {
        int r = alloc_conf(into, from->k, err);
        if (r)
            return r;
    }
    if (into->binary < 0)
        into->binary = from->binary;
    if (from->k)
        for (size_t i = 0; i < (size_t)from->k * from->k; i++)
            into->conf[i] += from->conf[i];
    xs_merge(&into->sum, &from->sum);
    into->hits += from->hits;
    into->samples += from->samples;
    return 0;
}

int npe_metric_value(const npe_metric *m, double *out, npe_error *err)
{
    *out = NAN;
    if (m->cs)
        return value_custom(m, out, err);
    const char *name = names[m->o.kind];
    if (m->samples == 0)
        return npe_error_set(err, NPE_EINVAL, "%s: no samples were evaluated", name);
    switch (m->o.kind) {
    case NPE_METRIC_TOP1:
    case NPE_METRIC_TOP5:
        *out = (double)m->hits / (double)m->samples;
        return 0;
    case NPE_METRIC_CROSS_ENTROPY:
    case NPE_METRIC_FIDELITY:
        *out = xs_value(&m->sum) / (double)m->samples;
        return 0;
    case NPE_METRIC_MIOU:
    case NPE_METRIC_PIXEL_ACCURACY: {
        uint64_t total = 0, correct = 0;
        double iou_sum = 0.0;
        int present = 0;
        for (int c = 0; c < m->k; c++) {
            uint64_t tp = m->conf[(size_t)c * m->k + c], row = 0, col = 0;
            for (int j = 0; j < m->k; j++) {
                row += m->conf[(size_t)c * m->k + j];
                col += m->conf[(size_t)j * m->k + c];
            }
            total += row;
            correct += tp;
            uint64_t uni = row + col - tp;
            if (uni > 0) {
                iou_sum += (double)tp / (double)uni;
                present++;
            }
        }
        if (total == 0)
            return npe_error_set(err, NPE_EINVAL, "%s: every pixel was ignore_index (%d)", name,
                                 m->o.ignore_index);
        *out = m->o.kind == NPE_METRIC_MIOU ? iou_sum / present
                                            : (double)correct / (double)total;
        return 0;
    }
    default: break;
    }
    return npe_error_set(err, NPE_EINVAL, "metric: unknown kind %d", (int)m->o.kind);
}
