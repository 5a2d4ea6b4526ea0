/* Metrics against PyTorch references (tests/gen_data_refs.py, float64), hand cases, merging of
 * accumulators against one pass (bit-identical), and errors.
 * Usage: test_metric REFS_DIR */
#include <math.h>

#include "../engine/metric.h"
#include "npy.h"
#include "testutil.h"

static const char *refs;

static int load(const char *name, npe_array *a)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", refs, name);
    npe_error e = {0};
    int r = npe_npy_load(p, a, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    return r;
}

static double ref_value(const char *key)
{
    char p[4096], name[64];
    snprintf(p, sizeof(p), "%s/metrics.txt", refs);
    FILE *f = fopen(p, "r");
    double v, found = NAN;
    while (f && fscanf(f, "%63s %lf", name, &v) == 2)
        if (!strcmp(name, key))
            found = v;
    if (f)
        fclose(f);
    CHECK_MSG(!isnan(found), "no reference '%s' in %s", key, p);
    return found;
}

static npe_metric *make(npe_metric_kind k)
{
    npe_metric_opts o;
    npe_metric_opts_init(&o, k);
    npe_metric *m = NULL;
    npe_error e = {0};
    CHECK_MSG(npe_metric_create(&o, &m, &e) == 0, "%s", e.msg);
    return m;
}

static double value(const npe_metric *m)
{
    double v = NAN;
    npe_error e = {0};
    CHECK_MSG(npe_metric_value(m, &v, &e) == 0, "%s", e.msg);
    return v;
}

/* Rows [start, start + n) of a as a view (shares a's data; not to be freed). */
static npe_array rows(const npe_array *a, int64_t start, int64_t n)
{
    npe_array v = *a;
    int64_t per = a->shape[0] ? npe_array_numel(a) / a->shape[0] : 0;
    size_t isz = npe_dtype_size(a->dtype);
    v.shape[0] = n;
    v.data = (unsigned char *)a->data + (size_t)(start * per) * isz;
    v.nbytes = (size_t)(n * per) * isz;
    return v;
}

#define TOL 1e-9 /* both sides in float64 over the same float32 inputs */

static void check_close(double got, double want, double tol, const char *what)
{
    CHECK_MSG(fabs(got - want) <= tol, "%s: got %.17g, PyTorch %.17g (diff %.3g)", what, got,
              want, fabs(got - want));
}

/* One pass over everything, then the same data split into uneven batches over three
 * accumulators merged in a different order: the value must be the same bits. */
static void check_split(npe_metric_kind k, const npe_array *out, const npe_array *tgt,
                        const npe_array *out2, const npe_array *tgt2, double want,
                        const char *what)
{
    npe_metric *one = make(k), *parts[3] = {make(k), make(k), make(k)};
    npe_error e = {0};
    int n_arr = out2 ? 2 : 1;
    npe_array o[2] = {*out, out2 ? *out2 : *out}, t[2] = {*tgt, tgt2 ? *tgt2 : *tgt};
    if (!one || !parts[0] || !parts[1] || !parts[2])
        goto out;
    CHECK_MSG(npe_metric_update_multi(one, o, t, n_arr, &e) == 0, "%s: %s", what, e.msg);
    double v1 = value(one);
    check_close(v1, want, TOL, what);
    CHECK_EQ_INT(npe_metric_samples(one), out->shape[0]);
    int64_t n = out->shape[0], cut[4] = {0, 1, n / 2 + 1, n};
    for (int p = 0; p < 3; p++) {
        int64_t s = cut[p], len = cut[p + 1] - cut[p];
        /* Part 1 goes in one-sample batches. */
        for (int64_t i = s; i < s + len; i += (p == 1 ? 1 : len)) {
            int64_t l = p == 1 ? 1 : len;
            npe_array ov[2], tv[2];
            for (int a = 0; a < n_arr; a++) {
                ov[a] = rows(&o[a], i, l);
                tv[a] = rows(&t[a], i, l);
            }
            CHECK_MSG(npe_metric_update_multi(parts[p], ov, tv, n_arr, &e) == 0, "%s: %s", what,
                      e.msg);
        }
    }
    CHECK(npe_metric_merge(parts[2], parts[0], &e) == 0);
    CHECK(npe_metric_merge(parts[2], parts[1], &e) == 0);
    double v2 = value(parts[2]);
    CHECK_MSG(memcmp(&v1, &v2, sizeof(double)) == 0, "%s: merged %.17g != one pass %.17g", what,
              v2, v1);
    CHECK_EQ_INT(npe_metric_samples(parts[2]), n);
    /* Reset forgets the samples. */
    npe_metric_reset(one);
    CHECK_EQ_INT(npe_metric_samples(one), 0);
    double dummy;
    CHECK_EQ_INT(npe_metric_value(one, &dummy, &e), NPE_EINVAL);
out:
    npe_metric_destroy(one);
    for (int p = 0; p < 3; p++)
        npe_metric_destroy(parts[p]);
}

static void test_against_torch(void)
{
    npe_array logits = {0}, labels = {0}, seg = {0}, tgt = {0}, blog = {0}, btgt = {0};
    npe_array fo = {0}, fr = {0}, fo2 = {0}, fr2 = {0};
    if (load("m_cls_logits.npy", &logits) || load("m_cls_labels.npy", &labels) ||
        load("m_seg_logits.npy", &seg) || load("m_seg_target.npy", &tgt) ||
        load("m_bin_logits.npy", &blog) || load("m_bin_target.npy", &btgt) ||
        load("m_fid_out.npy", &fo) || load("m_fid_ref.npy", &fr) ||
        load("m_fid_out2.npy", &fo2) || load("m_fid_ref2.npy", &fr2))
        goto out;
    check_split(NPE_METRIC_TOP1, &logits, &labels, NULL, NULL, ref_value("top1"), "top1");
    check_split(NPE_METRIC_TOP5, &logits, &labels, NULL, NULL, ref_value("top5"), "top5");
    check_split(NPE_METRIC_CROSS_ENTROPY, &logits, &labels, NULL, NULL,
                ref_value("cross_entropy"), "cross_entropy");
    /* PyTorch's float32 loss agrees to float32 precision. */
    npe_metric *m = make(NPE_METRIC_CROSS_ENTROPY);
    if (m && npe_metric_update(m, &logits, &labels, NULL) == 0)
        check_close(value(m), ref_value("cross_entropy_f32"), 1e-6, "cross_entropy vs float32");
    npe_metric_destroy(m);
    check_split(NPE_METRIC_MIOU, &seg, &tgt, NULL, NULL, ref_value("miou"), "miou");
    check_split(NPE_METRIC_PIXEL_ACCURACY, &seg, &tgt, NULL, NULL, ref_value("pixel_accuracy"),
                "pixel_accuracy");
    check_split(NPE_METRIC_MIOU, &blog, &btgt, NULL, NULL, ref_value("bin_miou"), "binary miou");
    check_split(NPE_METRIC_PIXEL_ACCURACY, &blog, &btgt, NULL, NULL,
                ref_value("bin_pixel_accuracy"), "binary pixel_accuracy");
    check_split(NPE_METRIC_FIDELITY, &fo, &fr, NULL, NULL, ref_value("fidelity"), "fidelity");
    check_split(NPE_METRIC_FIDELITY, &fo, &fr, &fo2, &fr2, ref_value("fidelity_multi"),
                "fidelity over two outputs");
    /* torch.nn.functional.cosine_similarity on the first 4 samples (no zero vectors). */
    m = make(NPE_METRIC_FIDELITY);
    npe_array o4 = rows(&fo, 0, 4), r4 = rows(&fr, 0, 4);
    if (m && npe_metric_update(m, &o4, &r4, NULL) == 0)
        check_close(value(m), ref_value("fidelity_first4"), TOL, "fidelity vs torch cosine");
    npe_metric_destroy(m);
    /* A binary output with num_classes = 2 given up front. */
    npe_metric_opts ob;
    npe_metric_opts_init(&ob, NPE_METRIC_MIOU);
    ob.num_classes = 2;
    npe_error eb = {0};
    if (npe_metric_create(&ob, &m, &eb) == 0) {
        CHECK_MSG(npe_metric_update(m, &blog, &btgt, &eb) == 0, "%s", eb.msg);
        check_close(value(m), ref_value("bin_miou"), TOL, "binary miou, num_classes 2");
        npe_metric_destroy(m);
    }
    /* num_classes given up front, and a float64 output, give the same miou. */
    npe_metric_opts o;
    npe_metric_opts_init(&o, NPE_METRIC_MIOU);
    o.num_classes = 6;
    npe_error e = {0};
    if (npe_metric_create(&o, &m, &e) == 0) {
        npe_array s64 = seg;
        int64_t n = npe_array_numel(&seg);
        double *d = malloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++)
            d[i] = ((float *)seg.data)[i];
        s64.dtype = NPE_DTYPE_F64;
        s64.data = d;
        s64.nbytes = (size_t)n * sizeof(double);
        CHECK(npe_metric_update(m, &s64, &tgt, &e) == 0);
        check_close(value(m), ref_value("miou"), TOL, "miou float64, num_classes 6");
        free(d);
        npe_metric_destroy(m);
    }
out:
    npe_array_free(&logits);
    npe_array_free(&labels);
    npe_array_free(&seg);
    npe_array_free(&tgt);
    npe_array_free(&blog);
    npe_array_free(&btgt);
    npe_array_free(&fo);
    npe_array_free(&fr);
    npe_array_free(&fo2);
    npe_array_free(&fr2);
}

static npe_array farr(float *v, int64_t n, int64_t c)
{
    npe_array a = {.dtype = NPE_DTYPE_F32, .ndim = 2, .data = v};
    a.shape[0] = n;
    a.shape[1] = c;
    a.nbytes = (size_t)(n * c) * sizeof(float);
    return a;
}

static npe_array iarr(int64_t *v, int64_t n)
{
    npe_array a = {.dtype = NPE_DTYPE_I64, .ndim = 1, .data = v};
    a.shape[0] = n;
    a.nbytes = (size_t)n * sizeof(int64_t);
    return a;
}

static void test_hand_cases(void)
{
    /* Two equal logits: CE = log 2; the tie counts for top1. A -inf logit elsewhere costs
     * nothing: log(e^0 + e^0 + 0) = log 2 again. */
    float x[6] = {0, 0, -INFINITY, 1, 1, -INFINITY};
    int64_t y[2] = {1, 0};
    npe_array xa = farr(x, 2, 3), ya = iarr(y, 2);
    npe_metric *m = make(NPE_METRIC_CROSS_ENTROPY);
    if (m && npe_metric_update(m, &xa, &ya, NULL) == 0)
        check_close(value(m), log(2.0), 1e-15, "ce of ties");
    npe_metric_destroy(m);
    m = make(NPE_METRIC_TOP1);
    if (m && npe_metric_update(m, &xa, &ya, NULL) == 0)
        CHECK(value(m) == 1.0);
    npe_metric_destroy(m);
    /* Large logits: stable (a naive exp would overflow): [1000, 0] label 1 -> 1000. */
    float big[2] = {1000, 0};
    int64_t l1[1] = {1};
    xa = farr(big, 1, 2);
    ya = iarr(l1, 1);
    m = make(NPE_METRIC_CROSS_ENTROPY);
    if (m && npe_metric_update(m, &xa, &ya, NULL) == 0)
        check_close(value(m), 1000.0, 1e-12, "ce of large logits");
    npe_metric_destroy(m);
    /* A NaN logit makes the loss NaN, and top1 does not count a NaN label logit. */
    float nanx[2] = {NAN, 0};
    int64_t l0[1] = {0};
    xa = farr(nanx, 1, 2);
    ya = iarr(l0, 1);
    m = make(NPE_METRIC_CROSS_ENTROPY);
    if (m && npe_metric_update(m, &xa, &ya, NULL) == 0)
        CHECK(isnan(value(m)));
    npe_metric_destroy(m);
    m = make(NPE_METRIC_TOP1);
    if (m && npe_metric_update(m, &xa, &ya, NULL) == 0)
        CHECK(value(m) == 0.0);
    npe_metric_destroy(m);
    /* Trailing 1x1 dims are accepted for classification: [2,3,1,1]. */
    xa = farr(x, 2, 3);
    xa.ndim = 4;
    xa.shape[2] = xa.shape[3] = 1;
    ya = iarr(y, 2);
    m = make(NPE_METRIC_TOP1);
    npe_error e = {0};
    CHECK_MSG(m && npe_metric_update(m, &xa, &ya, &e) == 0, "%s", e.msg);
    npe_metric_destroy(m);
    /* miou: target [0,0,1,255], prediction [0,1,1,0] -> class 0: TP 1, FN 1 -> 1/2; class 1:
     * TP 1, FP 1 -> 1/2; miou 0.5, pixel accuracy 2/3. A class absent from both (class 2 of 3)
     * is left out of the mean. */
    float s[12] = {/* class 0 */ 5, 0, 0, 5, /* class 1 */ 0, 5, 5, 0,
                   /* class 2 */ -9, -9, -9, -9};
    int64_t t[4] = {0, 0, 1, 255};
    npe_array sa = {.dtype = NPE_DTYPE_F32, .ndim = 4, .shape = {1, 3, 2, 2}, .data = s,
                    .nbytes = sizeof(s)};
    npe_array ta = {.dtype = NPE_DTYPE_I64, .ndim = 3, .shape = {1, 2, 2}, .data = t,
                    .nbytes = sizeof(t)};
    m = make(NPE_METRIC_MIOU);
    if (m && npe_metric_update(m, &sa, &ta, &e) == 0)
        check_close(value(m), 0.5, 1e-15, "miou hand case");
    npe_metric_destroy(m);
    m = make(NPE_METRIC_PIXEL_ACCURACY);
    if (m && npe_metric_update(m, &sa, &ta, &e) == 0)
        check_close(value(m), 2.0 / 3.0, 1e-15, "pixel accuracy hand case");
    npe_metric_destroy(m);
}

static void test_errors(void)
{
    npe_metric_kind k;
    npe_error e = {0};
    CHECK_EQ_INT(npe_metric_from_name("accuracy@1", &k, &e), NPE_EINVAL);
    CHECK(strstr(e.msg, "accuracy@1") && strstr(e.msg, "top1"));
    for (int i = 0; i < NPE_METRIC_COUNT; i++) {
        CHECK(npe_metric_from_name(npe_metric_name((npe_metric_kind)i), &k, NULL) == 0 &&
              (int)k == i);
        CHECK_EQ_INT(npe_metric_higher_is_better((npe_metric_kind)i),
                     i != NPE_METRIC_CROSS_ENTROPY);
    }
    CHECK_EQ_INT(npe_metric_needs(NPE_METRIC_TOP5), NPE_METRIC_NEEDS_LABELS);
    CHECK_EQ_INT(npe_metric_needs(NPE_METRIC_MIOU), NPE_METRIC_NEEDS_MASKS);
    CHECK_EQ_INT(npe_metric_needs(NPE_METRIC_FIDELITY), NPE_METRIC_NEEDS_REFERENCE);

    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t y[2] = {0, 3}, y3[3] = {0, 1, 2};
    npe_array xa = farr(x, 2, 3), ya = iarr(y, 2), y3a = iarr(y3, 3);
    npe_metric *m = make(NPE_METRIC_TOP1);
    CHECK_EQ_INT(npe_metric_update(m, &xa, &ya, &e), NPE_EINVAL); /* label 3 of 3 classes */
    CHECK(strstr(e.msg, "label 3") != NULL);
    CHECK_EQ_INT(npe_metric_samples(m), 0); /* nothing of the failed batch was added */
    CHECK_EQ_INT(npe_metric_update(m, &xa, &y3a, &e), NPE_EINVAL); /* 3 labels, 2 samples */
    CHECK(strstr(e.msg, "[3]") && strstr(e.msg, "[2,3]"));
    double v;
    CHECK_EQ_INT(npe_metric_value(m, &v, &e), NPE_EINVAL);
    CHECK(strstr(e.msg, "no samples") != NULL);
    npe_metric *m5 = make(NPE_METRIC_TOP5);
    y[1] = 1;
    CHECK_EQ_INT(npe_metric_update(m5, &xa, &ya, &e), NPE_EINVAL); /* 3 classes */
    CHECK(strstr(e.msg, "top5") != NULL);
    CHECK_EQ_INT(npe_metric_merge(m, m5, &e), NPE_EINVAL);
    npe_metric_destroy(m5);
    /* Float labels are refused. */
    npe_array fl = farr(x, 2, 1);
    fl.ndim = 1;
    CHECK_EQ_INT(npe_metric_update(m, &xa, &fl, &e), NPE_EINVAL);
    npe_metric_destroy(m);
    /* Fidelity: shapes must match. */
    m = make(NPE_METRIC_FIDELITY);
    npe_array r = farr(x, 3, 2);
    CHECK_EQ_INT(npe_metric_update(m, &xa, &r, &e), NPE_EINVAL);
    CHECK(strstr(e.msg, "[2,3]") && strstr(e.msg, "[3,2]"));
    npe_metric_destroy(m);
    /* Segmentation: a mask value outside the classes that is not ignore_index. */
    float s[8] = {0};
    int64_t t[4] = {0, 1, 7, 255};
    npe_array sa = {.dtype = NPE_DTYPE_F32, .ndim = 4, .shape = {1, 2, 2, 2}, .data = s,
                    .nbytes = sizeof(s)};
    npe_array ta = {.dtype = NPE_DTYPE_I64, .ndim = 3, .shape = {1, 2, 2}, .data = t,
                    .nbytes = sizeof(t)};
    m = make(NPE_METRIC_MIOU);
    CHECK_EQ_INT(npe_metric_update(m, &sa, &ta, &e), NPE_EINVAL);
    CHECK(strstr(e.msg, "mask value 7") != NULL);
    t[2] = 1;
    ta.shape[2] = 1; /* [1,2,1] against [1,2,2,2] */
    CHECK_EQ_INT(npe_metric_update(m, &sa, &ta, &e), NPE_EINVAL);
    ta.shape[2] = 2;
    CHECK(npe_metric_update(m, &sa, &ta, &e) == 0);
    /* Then an output with 3 classes does not fit the first's 2. */
    float s3[12] = {0};
    npe_array s3a = {.dtype = NPE_DTYPE_F32, .ndim = 4, .shape = {1, 3, 2, 2}, .data = s3,
                     .nbytes = sizeof(s3)};
    CHECK_EQ_INT(npe_metric_update(m, &s3a, &ta, &e), NPE_EINVAL);
    npe_metric_destroy(m);
    /* Every pixel ignored. */
    int64_t all[4] = {255, 255, 255, 255};
    ta.data = all;
    m = make(NPE_METRIC_PIXEL_ACCURACY);
    CHECK(npe_metric_update(m, &sa, &ta, &e) == 0);
    CHECK_EQ_INT(npe_metric_value(m, &v, &e), NPE_EINVAL);
    CHECK(strstr(e.msg, "ignore_index") != NULL);
    npe_metric_destroy(m);
    /* An array whose data is shorter than its shape. */
    m = make(NPE_METRIC_TOP1);
    xa.nbytes = 8;
    ya = iarr(y, 2);
    CHECK_EQ_INT(npe_metric_update(m, &xa, &ya, &e), NPE_EINVAL);
    npe_metric_destroy(m);
}

/* The fixed-point sum is exact: cancellation and order do not matter. */
static void test_exact_sum(void)
{
    /* Fidelity values are cosines; cross-entropy values can be large. Samples with losses 1e15,
     * ~0.25, 1e15 again in different groupings: a double running sum of 1e15 + 0.25 + ...
     * rounds; the fixed-point sum must give the same mean every way. */
    float x[8] = {0, 1e15f, 0, -0.5f, 0, 1e15f, 0, 3e-8f};
    int64_t y[4] = {0, 0, 0, 1};
    npe_array xa = farr(x, 4, 2), ya = iarr(y, 4);
    npe_metric *a = make(NPE_METRIC_CROSS_ENTROPY), *b = make(NPE_METRIC_CROSS_ENTROPY);
    npe_metric *c = make(NPE_METRIC_CROSS_ENTROPY);
    if (!a || !b || !c)
        goto out;
    CHECK(npe_metric_update(a, &xa, &ya, NULL) == 0);
    for (int i = 3; i >= 0; i--) { /* reverse order, one at a time */
        npe_array xi = rows(&xa, i, 1), yi = rows(&ya, i, 1);
        CHECK(npe_metric_update(i % 2 ? b : c, &xi, &yi, NULL) == 0);
    }
    CHECK(npe_metric_merge(c, b, NULL) == 0);
    double va = value(a), vc = value(c);
    CHECK_MSG(memcmp(&va, &vc, sizeof(double)) == 0, "exact sum: %.17g vs %.17g", va, vc);
    /* The mean from the per-sample losses written out. */
    double l0 = (double)1e15f + log1p(exp(-(double)1e15f)), l1 = log(1 + exp(-0.5));
    double l3 = log(1 + exp((double)3e-8f)) - (double)3e-8f;
    double want = ((l0 + l0) + (l1 + l3)) / 4;
    check_close(va, want, 1e-3, "large cross-entropy mean");
out:
    npe_metric_destroy(a);
    npe_metric_destroy(b);
    npe_metric_destroy(c);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s REFS_DIR\n", argv[0]);
        return 2;
    }
    refs = argv[1];
    test_against_torch();
    test_hand_cases();
    test_errors();
    test_exact_sum();
    return tu_finish("metric");
}
