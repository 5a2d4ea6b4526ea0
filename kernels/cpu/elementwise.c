/* Optimised elementwise kernels: unary activations, broadcast binary arithmetic and the
 * per-channel affine, as four-float vector loops over contiguous runs, split into ranges of the
 * flat output index across threads. */
#include "cpu.h"
#include "vec.h"

/* ---- unary --------------------------------------------------------------------------------- */

typedef struct unary_job {
    npe_unary_op op;
    int64_t count, ntasks;
    const float *x;
    float *y;
    float alpha, beta;
    int avx2; /* the exp-based ops take the eight-float AVX2+FMA loop */
} unary_job;

/* The exp-based activations (SiLU, sigmoid, tanh, ELU, exp) as eight-float vector loops with
 * fused multiply-adds: the same formulas as unary_range's, compiled for AVX2+FMA and used only
 * when the table has NPE_KCPU_AVX2 and the CPU has it (within the same tolerance of the
 * reference; they are the ops YOLO-style models spend a quarter of their time in). */
#if NPE_KCPU_AVX2_CODE
#include <immintrin.h>
NPE_KCPU_AVX2_BEGIN
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define V8_MASK(cond) ((v8i)(cond))

KV_INLINE v8 v8_set1(float s)
{
    return (v8){s, s, s, s, s, s, s, s};
}

KV_INLINE v8i v8_bits(v8 v)
{
    v8i r;
    memcpy(&r, &v, sizeof(r));
    return r;
}

KV_INLINE v8 v8_from_bits(v8i b)
{
    v8 r;
    memcpy(&r, &b, sizeof(r));
    return r;
}

KV_INLINE v8 v8_select(v8i m, v8 a, v8 b)
{
    return v8_from_bits((m & v8_bits(a)) | (~m & v8_bits(b)));
}

KV_EXP_DEFINE(v8_exp, v8, v8i, v8_set1, v8_select, v8_bits, v8_from_bits, V8_MASK)

/* exp(-x) for the logistic function: kv_exp's reduction and polynomial with the argument clamped
 * to [-87, 88] (so 2^n is one normal float) instead of most of its edge cases, which the
 * logistic does not need: there 1 / (1 + exp(-x)) is already 1 or below 1e-38, and a NaN x stays
 * NaN through the product or the sum it is used in. */
KV_INLINE v8 v8_exp_neg_clamped(v8 x)
{
    /* max and min return their second operand when one is NaN: a NaN stays NaN */
    const __m256 xc = _mm256_min_ps(_mm256_set1_ps(88.0f),
                                    _mm256_max_ps(_mm256_set1_ps(-87.0f), (__m256)-x));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic)),
                         _mm256_set1_epi32(127)),
        23);
    /* but exp(inf) stays inf: silu(-inf) is -inf / inf = NaN, as in PyTorch */
    return (v8)_mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)),
                                _mm256_set1_ps(INFINITY),
                                _mm256_cmp_ps((__m256)x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
}

#define UNARY_LOOP8(EXPR)                                                                      \
    do {                                                                                       \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8) {                                                           \
            v8 x;                                                                              \
            memcpy(&x, src + i, sizeof(x));                                                    \
            const v8 y = EXPR;                                                                 \
            memcpy(dst + i, &y, sizeof(y));                                                    \
        }                                                                                      \
        if (i < n) {                                                                           \
            float tmp[8] = {0};                                                                \
            memcpy(tmp, src + i, (size_t)(n - i) * sizeof(float));                             \
            v8 x;                                                                              \
            memcpy(&x, tmp, sizeof(x));                                                        \
            const v8 y = EXPR;                                                                 \
            memcpy(tmp, &y, sizeof(y));                                                        \
            memcpy(dst + i, tmp, (size_t)(n - i) * sizeof(float));                             \
        }                                                                                      \
    } while (0)

static void unary_heavy_avx2(npe_unary_op op, float alpha_s, const float *src, float *dst,
                             int64_t n)
{
    const v8 zero = v8_set1(0.0f), one = v8_set1(1.0f), two = v8_set1(2.0f);
    const v8 alpha = v8_set1(alpha_s);
    switch (op) {
    case NPE_UNARY_SILU:
        UNARY_LOOP8(x / (one + v8_exp_neg_clamped(x)));
        break;
    case NPE_UNARY_SIGMOID:
        UNARY_LOOP8(one / (one + v8_exp_neg_clamped(x)));
        break;
    case NPE_UNARY_TANH:
        UNARY_LOOP8(one - two / (v8_exp(two * x) + one));
        break;
    case NPE_UNARY_ELU:
        UNARY_LOOP8(v8_select(V8_MASK(x > zero), x, alpha * (v8_exp(x) - one)));
        break;
    default: /* NPE_UNARY_EXP */
        UNARY_LOOP8(v8_exp(x));
        break;
    }
}
#undef UNARY_LOOP8
NPE_KCPU_AVX2_END
#endif

static int exp_based(npe_unary_op op)
{
    return op == NPE_UNARY_SILU || op == NPE_UNARY_SIGMOID || op == NPE_UNARY_TANH ||
           op == NPE_UNARY_ELU || op == NPE_UNARY_EXP;
}

static int use_avx2(unsigned flags, npe_unary_op op)
{
    return NPE_KCPU_AVX2_CODE && (flags & NPE_KCPU_SIMD) && (flags & NPE_KCPU_AVX2) &&
           exp_based(op);
}

/* Apply EXPR (of the kv x) to [b, e): full vectors, then the tail through a padded copy so the
 * tail gets the same arithmetic as the body. */
#define UNARY_LOOP(EXPR)                                                                       \
    do {                                                                                       \
        int64_t i = b;                                                                         \
        for (; i + KV_N <= e; i += KV_N) {                                                     \
            const kv x = kv_load(src + i);                                                     \
            kv_store(dst + i, EXPR);                                                           \
        }                                                                                      \
        if (i < e) {                                                                           \
            float tmp[KV_N] = {0};                                                             \
            memcpy(tmp, src + i, (size_t)(e - i) * sizeof(float));                             \
            const kv x = kv_load(tmp);                                                         \
            kv_store(tmp, EXPR);                                                               \
            memcpy(dst + i, tmp, (size_t)(e - i) * sizeof(float));                             \
        }                                                                                      \
    } while (0)

static inline kv kv_min6(kv t, kv six)
{
    return kv_select(KV_MASK(t < six), t, six);
}

static void unary_range(const unary_job *job, int64_t b, int64_t e)
{
    const float *src = job->x;
    float *dst = job->y;
    const kv zero = kv_set1(0.0f), one = kv_set1(1.0f), two = kv_set1(2.0f);
    const kv three = kv_set1(3.0f), six = kv_set1(6.0f);
    const kv alpha = kv_set1(job->alpha), beta = kv_set1(job->beta);
#if NPE_KCPU_AVX2_CODE
    if (job->avx2) {
        unary_heavy_avx2(job->op, job->alpha, src + b, dst + b, e - b);
        return;
    }
#endif
    switch (job->op) {
    case NPE_UNARY_RELU:
        /* NaN compares false and passes through, as in torch.relu */
        UNARY_LOOP(kv_select(KV_MASK(x < zero), zero, x));
        break;
    case NPE_UNARY_HARDTANH:
        UNARY_LOOP(kv_select(KV_MASK(x < alpha), alpha, kv_select(KV_MASK(x > beta), beta, x)));
        break;
    case NPE_UNARY_LEAKY_RELU:
        UNARY_LOOP(kv_select(KV_MASK(x >= zero), x, alpha * x));
        break;
    case NPE_UNARY_SILU:
        UNARY_LOOP(x / (one + kv_exp(-x)));
        break;
    case NPE_UNARY_SIGMOID:
        UNARY_LOOP(one / (one + kv_exp(-x)));
        break;
    /* relu6(x + 3) as the reference's fmin(fmax(x + 3, 0), 6): NaN goes to 0 at the fmax */
#define RELU6_3(x) kv_min6(kv_select(KV_MASK(((x) + three) > zero), (x) + three, zero), six)
    case NPE_UNARY_HARDSWISH:
        UNARY_LOOP(x * RELU6_3(x) / six);
        break;
    case NPE_UNARY_HARDSIGMOID:
        UNARY_LOOP(RELU6_3(x) / six);
        break;
#undef RELU6_3
    case NPE_UNARY_TANH:
        /* 1 - 2 / (e^2x + 1): exact at +-inf, absolute error ~1e-7 near 0 */
        UNARY_LOOP(one - two / (kv_exp(two * x) + one));
        break;
    case NPE_UNARY_ELU:
        UNARY_LOOP(kv_select(KV_MASK(x > zero), x, alpha * (kv_exp(x) - one)));
        break;
    case NPE_UNARY_MUL_SCALAR:
        UNARY_LOOP(x * alpha + beta);
        break;
    case NPE_UNARY_EXP:
        UNARY_LOOP(kv_exp(x));
        break;
    case NPE_UNARY_NEG:
        UNARY_LOOP(-x);
        break;
    case NPE_UNARY_GELU:
        /* 1 + erf(z) as erfc(-z): no cancellation for negative x, where 1 + erff(z) in float
         * collapses to 0 long before the true value does */
        for (int64_t i = b; i < e; i++)
            dst[i] = 0.5f * src[i] * erfcf(-src[i] * 0.70710678118654752440f);
        break;
    case NPE_UNARY_SQRT:
        for (int64_t i = b; i < e; i++)
            dst[i] = sqrtf(src[i]);
        break;
    default:
        npe_ref_unary(NULL, job->op, e - b, src + b, dst + b, job->alpha, job->beta);
        break;
    }
}

void npe_kcpu_unary_span(unsigned flags, npe_unary_op op, float alpha, float beta,
                         const float *x, float *y, int64_t n)
{
    const unary_job job = {op, n, 1, x, y, alpha, beta, use_avx2(flags, op)};
    unary_range(&job, 0, n);
}

static void unary_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const unary_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t b, e;
        kcpu_split(job->count, job->ntasks, t, &b, &e);
        unary_range(job, b, e);
    }
}

static void unary_run(const npe_kexec *ex, unsigned flags, npe_unary_op op, int64_t count,
                      const float *x, float *y, float alpha, float beta)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    if (count <= 0)
        return;
    /* the exp-based ops cost ~20 flops an element, the rest one or two */
    const int heavy = exp_based(op) || op == NPE_UNARY_GELU;
    unary_job job = {op, count, 0, x, y, alpha, beta, use_avx2(flags, op)};
    job.ntasks = kcpu_tasks(ex, count, heavy ? 8 : 1, KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, unary_tasks, &job);
}

static void unary_s(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x,
                    float *y, float alpha, float beta)
{
    unary_run(ex, NPE_KCPU_SIMD, op, count, x, y, alpha, beta);
}

static void unary_st(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x,
                     float *y, float alpha, float beta)
{
    unary_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, op, count, x, y, alpha, beta);
}

static void unary_s_x(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x,
                      float *y, float alpha, float beta)
{
    unary_run(ex, NPE_KCPU_SIMD | NPE_KCPU_AVX2, op, count, x, y, alpha, beta);
}

static void unary_st_x(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x,
                       float *y, float alpha, float beta)
{
    unary_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS | NPE_KCPU_AVX2, op, count, x, y, alpha,
              beta);
}

/* ---- binary -------------------------------------------------------------------------------- */

typedef struct binary_job {
    npe_binary_op op;
    int nd;
    int64_t shape[NPE_KMAX_DIMS], as[NPE_KMAX_DIMS], bs[NPE_KMAX_DIMS];
    int64_t total, ntasks;
    const float *a, *b;
    float *y;
    float alpha;
} binary_job;

/* One run of n outputs along the innermost dim; a and b step by sa and sb (0: broadcast). The
 * three usual stride patterns get vector loops, anything else a scalar one. */
#define BINARY_RUN(EXPR)                                                                       \
    do {                                                                                       \
        int64_t i = 0;                                                                         \
        if (sa == 1 && sb == 1) {                                                              \
            for (; i + KV_N <= n; i += KV_N) {                                                 \
                const kv va = kv_load(a + i), vb = kv_load(b + i);                             \
                kv_store(y + i, EXPR);                                                         \
            }                                                                                  \
        } else if (sa == 1 && sb == 0) {                                                       \
            const kv vb = kv_set1(b[0]);                                                       \
            for (; i + KV_N <= n; i += KV_N) {                                                 \
                const kv va = kv_load(a + i);                                                  \
                kv_store(y + i, EXPR);                                                         \
            }                                                                                  \
        } else if (sa == 0 && sb == 1) {                                                       \
            const kv va = kv_set1(a[0]);                                                       \
            for (; i + KV_N <= n; i += KV_N) {                                                 \
                const kv vb = kv_load(b + i);                                                  \
                kv_store(y + i, EXPR);                                                         \
            }                                                                                  \
        }                                                                                      \
        for (; i < n; i++) {                                                                   \
            const kv va = kv_set1(a[i * sa]), vb = kv_set1(b[i * sb]);                         \
            const kv r = EXPR;                                                                 \
            memcpy(y + i, &r, sizeof(float));                                                  \
        }                                                                                      \
    } while (0)

static void binary_run_inner(npe_binary_op op, int64_t n, const float *a, int64_t sa,
                             const float *b, int64_t sb, float *y, float alpha_s)
{
    const kv alpha = kv_set1(alpha_s);
    switch (op) {
    case NPE_BINARY_ADD:
        if (alpha_s == 1.0f)
            BINARY_RUN(va + vb);
        else
            BINARY_RUN(va + alpha * vb);
        break;
    case NPE_BINARY_SUB:
        if (alpha_s == 1.0f)
            BINARY_RUN(va - vb);
        else
            BINARY_RUN(va - alpha * vb);
        break;
    case NPE_BINARY_MUL:
        BINARY_RUN(va * vb);
        break;
    case NPE_BINARY_DIV:
        BINARY_RUN(va / vb);
        break;
    /* NaN from either side wins (torch.maximum/minimum); a + b is NaN exactly then. */
    case NPE_BINARY_MAX:
        BINARY_RUN(kv_select(KV_MASK((va != va) | (vb != vb)), va + vb,
                             kv_select(KV_MASK(va > vb), va, vb)));
        break;
    case NPE_BINARY_MIN:
        BINARY_RUN(kv_select(KV_MASK((va != va) | (vb != vb)), va + vb,
                             kv_select(KV_MASK(va < vb), va, vb)));
        break;
    case NPE_BINARY_POW:
        for (int64_t i = 0; i < n; i++)
            y[i] = powf(a[i * sa], b[i * sb]);
        break;
    default: {
        const int64_t shape = n, as = sa, bs = sb;
        npe_ref_binary(NULL, op, 1, &shape, a, &as, b, &bs, y, alpha_s);
        break;
    }
    }
}

/* Outputs [begin, end) of the flat index, walked as runs of the innermost dim. */
static void binary_range(const binary_job *job, int64_t begin, int64_t end)
{
    const int nd = job->nd, last = nd - 1;
    int64_t idx[NPE_KMAX_DIMS], ao = 0, bo = 0, rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % job->shape[d];
        rem /= job->shape[d];
        ao += idx[d] * job->as[d];
        bo += idx[d] * job->bs[d];
    }
    int64_t pos = begin;
    while (pos < end) {
        const int64_t i0 = idx[last], len = job->shape[last];
        const int64_t run = len - i0 < end - pos ? len - i0 : end - pos;
        binary_run_inner(job->op, run, job->a + ao, job->as[last], job->b + bo, job->bs[last],
                         job->y + pos, job->alpha);
        pos += run;
        if (pos >= end)
            break;
        /* at the end of a row: back to its start, then carry into the outer dims */
        ao -= i0 * job->as[last];
        bo -= i0 * job->bs[last];
        idx[last] = 0;
        for (int d = last - 1; d >= 0; d--) {
            idx[d]++;
            ao += job->as[d];
            bo += job->bs[d];
            if (idx[d] < job->shape[d])
                break;
            ao -= job->as[d] * job->shape[d];
            bo -= job->bs[d] * job->shape[d];
            idx[d] = 0;
        }
    }
}

static void binary_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const binary_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t b, e;
        kcpu_split(job->total, job->ntasks, t, &b, &e);
        binary_range(job, b, e);
    }
}

static void binary_run(const npe_kexec *ex, unsigned flags, npe_binary_op op, int ndim,
                       const int64_t *shape, const float *a, const int64_t *as, const float *b,
                       const int64_t *bs, float *y, float alpha)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    if (ndim < 0 || ndim > NPE_KMAX_DIMS) {
        npe_ref_binary(ex, op, ndim, shape, a, as, b, bs, y, alpha);
        return;
    }
    binary_job job = {.op = op, .a = a, .b = b, .y = y, .alpha = alpha, .total = 1};
    /* Drop size-1 dims and merge dims that are contiguous in a, b and y alike, so the innermost
     * run is as long as the layout allows. */
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return; /* empty output */
        job.total *= shape[d];
        if (shape[d] == 1)
            continue;
        const int k = job.nd - 1;
        if (k >= 0 && job.as[k] == as[d] * shape[d] && job.bs[k] == bs[d] * shape[d]) {
            job.shape[k] *= shape[d];
            job.as[k] = as[d];
            job.bs[k] = bs[d];
        } else {
            job.shape[job.nd] = shape[d];
            job.as[job.nd] = as[d];
            job.bs[job.nd] = bs[d];
            job.nd++;
        }
    }
    if (job.nd == 0) {
        job.nd = 1;
        job.shape[0] = 1;
    }
    job.ntasks = kcpu_tasks(ex, job.total, op == NPE_BINARY_POW ? 8 : 1, KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, binary_tasks, &job);
}

static void binary_s(const npe_kexec *ex, npe_binary_op op, int ndim, const int64_t *shape,
                     const float *a, const int64_t *as, const float *b, const int64_t *bs,
                     float *y, float alpha)
{
    binary_run(ex, NPE_KCPU_SIMD, op, ndim, shape, a, as, b, bs, y, alpha);
}

static void binary_st(const npe_kexec *ex, npe_binary_op op, int ndim, const int64_t *shape,
                      const float *a, const int64_t *as, const float *b, const int64_t *bs,
                      float *y, float alpha)
{
    binary_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, op, ndim, shape, a, as, b, bs, y, alpha);
}

/* ---- per-channel affine -------------------------------------------------------------------- */

typedef struct affine_job {
    int64_t c, inner, total, ntasks;
    const float *x, *scale, *shift;
    float *y;
} affine_job;

static void affine_range(const affine_job *job, int64_t begin, int64_t end)
{
    int64_t pos = begin;
    while (pos < end) {
        const int64_t plane = pos / job->inner, i0 = pos % job->inner;
        const int64_t run = job->inner - i0 < end - pos ? job->inner - i0 : end - pos;
        const int64_t ch = plane % job->c;
        const kv s = kv_set1(job->scale[ch]), t = kv_set1(job->shift[ch]);
        const float *src = job->x + pos;
        float *dst = job->y + pos;
        const int64_t b = 0, e = run;
        UNARY_LOOP(x * s + t);
        pos += run;
    }
}

void npe_kcpu_affine_span(float scale, float shift, const float *x, float *y, int64_t n)
{
    const affine_job job = {1, n, n, 1, x, &scale, &shift, y};
    affine_range(&job, 0, n);
}

static void affine_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const affine_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t b, e;
        kcpu_split(job->total, job->ntasks, t, &b, &e);
        affine_range(job, b, e);
    }
}

static void affine_run(const npe_kexec *ex, unsigned flags, int64_t n, int64_t c, int64_t inner,
                       const float *x, const float *scale, const float *shift, float *y)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    if (n <= 0 || c <= 0 || inner <= 0)
        return;
    affine_job job = {c, inner, n * c * inner, 0, x, scale, shift, y};
    job.ntasks = kcpu_tasks(ex, job.total, 1, KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, affine_tasks, &job);
}

static void affine_s(const npe_kexec *ex, int64_t n, int64_t c, int64_t inner, const float *x,
                     const float *scale, const float *shift, float *y)
{
    affine_run(ex, NPE_KCPU_SIMD, n, c, inner, x, scale, shift, y);
}

static void affine_st(const npe_kexec *ex, int64_t n, int64_t c, int64_t inner, const float *x,
                      const float *scale, const float *shift, float *y)
{
    affine_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, n, c, inner, x, scale, shift, y);
}

/* These ops are upgraded by SIMD (the vector loops); THREADS then splits them. */
void npe_kcpu_init_elementwise(npe_kernels *k, unsigned flags)
{
    if (!(flags & NPE_KCPU_SIMD))
        return;
    const int t = (flags & NPE_KCPU_THREADS) != 0;
    if (NPE_KCPU_AVX2_CODE && (flags & NPE_KCPU_AVX2))
        k->unary = t ? unary_st_x : unary_s_x;
    else
        k->unary = t ? unary_st : unary_s;
    k->binary = t ? binary_st : binary_s;
    k->channel_affine = t ? affine_st : affine_s;
}
