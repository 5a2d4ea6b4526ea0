/* Four-float vectors for the SIMD kernels, as GCC/clang vector extensions: they compile to SSE2
 * (x86-64 baseline) or NEON without intrinsics and without relying on the auto-vectoriser, which
 * GCC's -O2 does not run on loops of unknown length. Other compilers get one float per "vector"
 * through the same helpers. */
#ifndef NPE_KERNELS_CPU_VEC_H
#define NPE_KERNELS_CPU_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* NPE_NO_VECTOR_EXT forces the one-float path, to test it with GCC or clang. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(NPE_NO_VECTOR_EXT)
#define KV_INLINE static inline __attribute__((always_inline))
#define KV_N 4
typedef float kv __attribute__((vector_size(16)));
typedef int32_t kvi __attribute__((vector_size(16)));
#define KV_MASK(cond) ((kvi)(cond))
#else
#define KV_INLINE static inline
#define KV_N 1
typedef float kv;
typedef int32_t kvi;
#define KV_MASK(cond) ((cond) ? (kvi)-1 : (kvi)0)
#endif

/* Loads and stores through memcpy: no alignment or aliasing assumptions, one movups each. */
static inline kv kv_load(const float *p)
{
    kv v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void kv_store(float *p, kv v)
{
    memcpy(p, &v, sizeof(v));
}

static inline kv kv_set1(float s)
{
    kv v;
    for (int i = 0; i < KV_N; i++)
        memcpy((char *)&v + i * sizeof(float), &s, sizeof(float));
    return v;
}

static inline kvi kv_bits(kv v)
{
    kvi r;
    memcpy(&r, &v, sizeof(r));
    return r;
}

static inline kv kv_from_bits(kvi b)
{
    kv r;
    memcpy(&r, &b, sizeof(r));
    return r;
}

/* Lanes 0, 2, 4, ... of the 2 * KV_N floats at p: a stride-2 gather as two loads and a
 * shuffle (im2col and the phased rows of stride-2 convolutions and pools). */
static inline kv kv_even(const float *p)
{
#if KV_N == 4 && defined(__clang__)
    return __builtin_shufflevector(kv_load(p), kv_load(p + 4), 0, 2, 4, 6);
#elif KV_N == 4
    return __builtin_shuffle(kv_load(p), kv_load(p + 4), (kvi){0, 2, 4, 6});
#else
    return p[0];
#endif
}

/* m ? a : b per lane, m all-ones or all-zeros per lane (a comparison result). */
static inline kv kv_select(kvi m, kv a, kv b)
{
    return kv_from_bits((m & kv_bits(a)) | (~m & kv_bits(b)));
}

/* exp(x) within 2.5e-7 relative (2 ulp) for normal results; +inf above 88.72, 0 below -87.33
 * (where the true value is subnormal, below 1.2e-38), NaN stays NaN. Cody-Waite reduction
 * x = n ln2 + r with |r| <= ln2/2, then e^r by its degree-6 Taylor polynomial. Written once for
 * any vector type V (ints VI, helpers SET1, SELECT, BITS, FROM_BITS, MASK): kv_exp below, and
 * the eight-float instance of the AVX2 kernels. */
#define KV_EXP_DEFINE(NAME, V, VI, SET1, SELECT, BITS, FROM_BITS, MASK)                         \
    KV_INLINE V NAME(V x)                                                                      \
    {                                                                                          \
        const V hi = SET1(88.72283f), lo = SET1(-87.33654f);                                   \
        V xc = SELECT(MASK(x > hi), hi, x);                                                    \
        xc = SELECT(MASK(xc < lo), lo, xc);                                                    \
        /* Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits. */            \
        const V magic = SET1(12582912.0f);                                                     \
        const V t = xc * SET1(1.44269504088896341f) + magic;                                   \
        const V n = t - magic;                                                                 \
        const VI ni = BITS(t) - BITS(magic);                                                   \
        V r = xc - n * SET1(0.693359375f); /* ln2 split so n * ln2_hi is exact */              \
        r = r - n * SET1(-2.12194440e-4f);                                                     \
        V p = SET1(1.0f / 720.0f);                                                             \
        p = p * r + SET1(1.0f / 120.0f);                                                       \
        p = p * r + SET1(1.0f / 24.0f);                                                        \
        p = p * r + SET1(1.0f / 6.0f);                                                         \
        p = p * r + SET1(0.5f);                                                                \
        p = p * r + SET1(1.0f);                                                                \
        p = p * r + SET1(1.0f);                                                                \
        /* n is in [-126, 128], one past the normal exponents at each end: scale by 2^(n/2)    \
         * and 2^(n - n/2), both normal. */                                                    \
        const VI n1 = ni >> 1, n2 = ni - n1;                                                   \
        V e = p * FROM_BITS((n1 + 127) << 23) * FROM_BITS((n2 + 127) << 23);                   \
        e = SELECT(MASK(x > hi), SET1(INFINITY), e);                                           \
        e = SELECT(MASK(x < lo), SET1(0.0f), e);                                               \
        return SELECT(MASK(x != x), x, e);                                                     \
    }

KV_EXP_DEFINE(kv_exp, kv, kvi, kv_set1, kv_select, kv_bits, kv_from_bits, KV_MASK)

#endif
