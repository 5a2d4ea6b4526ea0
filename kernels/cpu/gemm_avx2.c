/* C = A B (+ C) for few rows of A (the output channels of a small convolution), with AVX2+FMA:
 * 6 x 16 blocks of C in twelve registers, A's elements broadcast and B's rows read in place.
 * OpenBLAS packs B (K x N: the activations) on every call before its kernel runs, a whole extra
 * pass over the data that its compute amortises only over many rows; with 16-64 output channels
 * (YOLO-style necks and heads) that pass costs about as much as the products. Here B is read once
 * per block of six rows, from cache: panels of 16 columns are at most K * 64 bytes. Winograd's
 * products use the same blocks on A packed once when the filters are transformed
 * (npe_kcpu_gemm_packed_avx2), where OpenBLAS would pack the rows of U again for each of the 36
 * products of every block of tiles. */
#include <string.h>

#include "cpu.h"

#if NPE_KCPU_AVX2_CODE
#include <immintrin.h>

NPE_KCPU_AVX2_BEGIN

/* Lanes [0, n) of two eight-float masks, for the last columns of a row. */
static void tail_masks(int n, __m256i *m0, __m256i *m1)
{
    int32_t l[16];
    for (int i = 0; i < 16; i++)
        l[i] = i < n ? -1 : 0;
    memcpy(m0, l, sizeof(*m0));
    memcpy(m1, l + 8, sizeof(*m1));
}

/* Rows [0, MR) x columns [j, j + 16) of C; FULL 0: only the first nc columns (masked loads and
 * stores); PACKED: A's element (r, p) at a[p * as + r] (a group of as rows packed, see
 * npe_kcpu_gemm_packed_avx2), else at a[r * as + p] (rows as floats apart). The loops over the
 * rows are unrolled so the sums stay in registers. */
#define GEMM_BLOCK_IMPL(NAME, MR, FULL, PACKED)                                                   \
    static void NAME(int nc, int k, const float *a, int as, const float *b, int ldb, int acc,   \
                     float *c, int ldc)                                                          \
    {                                                                                            \
        __m256 s0[MR], s1[MR];                                                                   \
        __m256i m0, m1;                                                                          \
        tail_masks(FULL ? 16 : nc, &m0, &m1);                                                    \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                     \
        {                                                                                        \
            if (!acc) {                                                                          \
                s0[r] = _mm256_setzero_ps();                                                     \
                s1[r] = _mm256_setzero_ps();                                                     \
            } else {                                                                             \
                s0[r] = FULL ? _mm256_loadu_ps(c + r * ldc)                                      \
                             : _mm256_maskload_ps(c + r * ldc, m0);                              \
                s1[r] = FULL ? _mm256_loadu_ps(c + r * ldc + 8)                                  \
                             : _mm256_maskload_ps(c + r * ldc + 8, m1);                          \
            }                                                                                    \
        }                                                                                        \
        const float *ap = a;                                                                     \
        for (int p = 0; p < k; p++, ap += PACKED ? as : 1) {                                     \
            const float *bp = b + (size_t)p * ldb;                                               \
            const __m256 b0 = FULL ? _mm256_loadu_ps(bp) : _mm256_maskload_ps(bp, m0);           \
            const __m256 b1 = FULL ? _mm256_loadu_ps(bp + 8) : _mm256_maskload_ps(bp + 8, m1);   \
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                 \
            {                                                                                    \
                const __m256 ar = _mm256_broadcast_ss(ap + (PACKED ? (size_t)r : (size_t)r * as)); \
                s0[r] = _mm256_fmadd_ps(ar, b0, s0[r]);                                          \
                s1[r] = _mm256_fmadd_ps(ar, b1, s1[r]);                                          \
            }                                                                                    \
        }                                                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                     \
        {                                                                                        \
            if (FULL) {                                                                          \
                _mm256_storeu_ps(c + r * ldc, s0[r]);                                            \
                _mm256_storeu_ps(c + r * ldc + 8, s1[r]);                                        \
            } else {                                                                             \
                _mm256_maskstore_ps(c + r * ldc, m0, s0[r]);                                     \
                _mm256_maskstore_ps(c + r * ldc + 8, m1, s1[r]);                                 \
            }                                                                                    \
        }                                                                                        \
    }

#define GEMM_BLOCK(PRE, MR, PACKED)                                                               \
    GEMM_BLOCK_IMPL(PRE##full_##MR, MR, 1, PACKED)                                               \
    GEMM_BLOCK_IMPL(PRE##part_##MR, MR, 0, PACKED)                                               \
    static void PRE##block_##MR(int nc, int k, const float *a, int as, const float *b, int ldb, \
                                int acc, float *c, int ldc)                                      \
    {                                                                                            \
        if (nc == 16)                                                                            \
            PRE##full_##MR(nc, k, a, as, b, ldb, acc, c, ldc);                                   \
        else                                                                                     \
            PRE##part_##MR(nc, k, a, as, b, ldb, acc, c, ldc);                                   \
    }

GEMM_BLOCK(, 6, 0)
GEMM_BLOCK(, 4, 0)
GEMM_BLOCK(, 2, 0)
GEMM_BLOCK(, 1, 0)
GEMM_BLOCK(p, 6, 1)
GEMM_BLOCK(p, 4, 1)
GEMM_BLOCK(p, 2, 1)
GEMM_BLOCK(p, 1, 1)

void npe_kcpu_gemm_small_avx2(int m, int n, int k, const float *a, int lda, const float *b,
                              int ldb, int acc, float *c, int ldc)
{
    for (int j = 0; j < n; j += 16) {
        const int nc = n - j < 16 ? n - j : 16;
        int i = 0;
        for (; i + 6 <= m; i += 6)
            block_6(nc, k, a + (size_t)i * lda, lda, b + j, ldb, acc, c + (size_t)i * ldc + j,
                    ldc);
        for (; i + 4 <= m; i += 4)
            block_4(nc, k, a + (size_t)i * lda, lda, b + j, ldb, acc, c + (size_t)i * ldc + j,
                    ldc);
        for (; i + 2 <= m; i += 2)
            block_2(nc, k, a + (size_t)i * lda, lda, b + j, ldb, acc, c + (size_t)i * ldc + j,
                    ldc);
        for (; i < m; i++)
            block_1(nc, k, a + (size_t)i * lda, lda, b + j, ldb, acc, c + (size_t)i * ldc + j,
                    ldc);
    }
}

void npe_kcpu_gemm_packed_avx2(int m, int n, int k, const float *a, const float *b, int ldb,
                               float *c, int ldc)
{
    for (int j = 0; j < n; j += 16) {
        const int nc = n - j < 16 ? n - j : 16;
        for (int g = 0; g < m; g += 6) {
            const int w = m - g < 6 ? m - g : 6;
            const float *ag = a + (size_t)g * k;
            float *cg = c + (size_t)g * ldc + j;
            int r = 0;
            if (w == 6) {
                pblock_6(nc, k, ag, 6, b + j, ldb, 0, cg, ldc);
                continue;
            }
            if (w - r >= 4) {
                pblock_4(nc, k, ag + r, w, b + j, ldb, 0, cg + (size_t)r * ldc, ldc);
                r += 4;
            }
            if (w - r >= 2) {
                pblock_2(nc, k, ag + r, w, b + j, ldb, 0, cg + (size_t)r * ldc, ldc);
                r += 2;
            }
            if (w - r >= 1)
                pblock_1(nc, k, ag + r, w, b + j, ldb, 0, cg + (size_t)r * ldc, ldc);
        }
    }
}

NPE_KCPU_AVX2_END
#else
void npe_kcpu_gemm_small_avx2(int m, int n, int k, const float *a, int lda, const float *b,
                              int ldb, int acc, float *c, int ldc)
{
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)acc, (void)c;
    (void)ldc;
}

void npe_kcpu_gemm_packed_avx2(int m, int n, int k, const float *a, const float *b, int ldb,
                               float *c, int ldc)
{
    (void)m, (void)n, (void)k, (void)a, (void)b, (void)ldb, (void)c, (void)ldc;
}
#endif

/* Outside the AVX2 functions: any CPU asks it. */
int npe_kcpu_gemm_small_ok(unsigned flags, int m)
{
    return NPE_KCPU_AVX2_CODE && (flags & NPE_KCPU_SIMD) && (flags & NPE_KCPU_AVX2) &&
           m <= NPE_KCPU_SMALL_GEMM_ROWS;
}
