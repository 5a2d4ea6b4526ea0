/* Private helpers of the optimised CPU kernels (kernels/cpu): how a kernel splits work over
 * ex->parallel_for, and the per-file functions that upgrade a table for the enabled flags. */
#ifndef NPE_KERNELS_CPU_CPU_H
#define NPE_KERNELS_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "ref/ref.h"

/* Each file upgrades the entries it owns; flags are already masked by NPE_CPU_MASK. */
void npe_kcpu_init_conv(npe_kernels *k, unsigned flags);
void npe_kcpu_init_linear(npe_kernels *k, unsigned flags);
void npe_kcpu_init_elementwise(npe_kernels *k, unsigned flags);
void npe_kcpu_init_pool(npe_kernels *k, unsigned flags);
void npe_kcpu_init_data(npe_kernels *k, unsigned flags);

/* Whether this compiler builds the AVX2+FMA code (x86-64 GCC or clang with vector extensions),
 * and the pragmas that compile the functions between them for AVX2+FMA. Those functions run only
 * under NPE_KCPU_AVX2, which a table gets only when the CPU has both (npe_kcpu_have_avx2 is
 * asked once, when the table is built), so the kernels test the flag alone. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NPE_NO_VECTOR_EXT)
#define NPE_KCPU_AVX2_CODE 1
#if defined(__clang__)
#define NPE_KCPU_AVX2_BEGIN                                                                      \
    _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define NPE_KCPU_AVX2_END _Pragma("clang attribute pop")
#else
#define NPE_KCPU_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define NPE_KCPU_AVX2_END _Pragma("GCC pop_options")
#endif
#else
#define NPE_KCPU_AVX2_CODE 0
#endif

/* Nonzero when the CPU runs AVX2 and FMA (x86-64; 0 elsewhere): the NPE_KCPU_AVX2 variants
 * are used only then. Defined in table.c. */
int npe_kcpu_have_avx2(void);

/* The vector loops of unary and channel_affine on one contiguous span, serially: the conv
 * epilogue runs them on tiles still in cache, with the arithmetic of the separate ops (flags:
 * the table's, which choose the same loop as its unary entry). */
void npe_kcpu_unary_span(unsigned flags, npe_unary_op op, float alpha, float beta,
                         const float *x, float *y, int64_t n);
void npe_kcpu_affine_span(float scale, float shift, const float *x, float *y, int64_t n);

/* Sliding-window kernels (depthwise convolution, max pooling) read input rows through this
 * layout, so every tap of every output is in bounds and contiguous across outputs: padded row i
 * is input row i - ph (fill outside the input), and holds its padded columns c = j*sw + q, for
 * c - pw inside the input or not, as sw runs ("phases") q of lq floats: tap column
 * ow*sw + kj*dw is then phase (kj*dw) % sw, element ow + (kj*dw) / sw. Copies padded rows
 * [r0, r1) of the h_in x w_in plane xp into dst (sw * lq floats per row). */
void npe_kcpu_phase_rows(const float *xp, int64_t h_in, int64_t w_in, int64_t ph, int64_t pw,
                         int64_t sw, int64_t lq, int64_t r0, int64_t r1, float fill, float *dst);

/* The conv epilogue (see npe_conv_epilogue) on len outputs of channel oc at y: the reference's
 * arithmetic, with the vector loops of the separate ops when flags has NPE_KCPU_SIMD. */
void npe_kcpu_conv_epilogue(const npe_conv_epilogue *ep, unsigned flags, int64_t oc, float *y,
                            int64_t len);

/* Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (winograd.c): how a call is split. */
typedef struct npe_wino_plan {
    int nthreads;
    int64_t tw, th;       /* tiles per tile row, tile rows per image */
    int64_t units;        /* tile rows over the batch: (image, tile row) */
    int64_t upb, blocks;  /* units per block, blocks */
    int64_t mblocks, mrows; /* output channels per block when blocks alone are too few */
    int64_t ntasks;       /* blocks * mblocks */
    int64_t tbs;          /* floats between the tile rows of a transform point, >= upb*tw + KV_N */
    int s2;               /* stride 2: 81 points per tile over 36 slices of U (winograd.c) */
    int packed;           /* U's slices packed for npe_kcpu_gemm_packed_avx2 (the AVX2 level) */
    int64_t vq[37], mq[37]; /* where V's and M's points of U slice q start, an odd number of
                             * cache lines apart; [36]: their floats (stride 1: the points are
                             * vq[1] and mq[1] apart) */
    int64_t lq;           /* floats per phase of a phased input row */
    size_t per_thread;    /* scratch floats per thread, multiple of 16 */
    size_t shared;        /* scratch floats of the transformed filters, after the threads',
                           * then of the blocks' transformed inputs when mblocks > 1 */
    int64_t vblock;       /* floats of one block's transformed inputs when mblocks > 1, else 0 */
} npe_wino_plan;

/* Fills *wp and returns 1 when p takes the Winograd path with nthreads threads, else 0 (not 3x3
 * stride 1 or 2 undilated ungrouped, too few channels or tiles, or NPE_CONV_WINOGRAD=0 in the
 * environment). */
int npe_kcpu_wino_plan(unsigned flags, const npe_conv2d_params *p, int nthreads,
                       npe_wino_plan *wp);
size_t npe_kcpu_wino_scratch_floats(const npe_wino_plan *wp);
/* conv2d (+ epilogue ep, may be NULL) on wp->nthreads threads of ex; scratch holds
 * npe_kcpu_wino_scratch_floats(wp) floats, 64-byte aligned. prep: the filters transformed by
 * npe_kcpu_wino_prep, or NULL to transform w here. */
void npe_kcpu_wino_run(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                       const npe_wino_plan *wp, const float *x, const float *w, const void *prep,
                       const float *b, const npe_conv_epilogue *ep, float *y, float *scratch);
/* Bytes of p's transformed filters when some batch and image size take the Winograd path, else
 * 0 (conv.c asks only when this call's plan takes it); and the transform of w into prep (that
 * many bytes). */
size_t npe_kcpu_wino_prep_bytes(const npe_conv2d_params *p);
void npe_kcpu_wino_prep(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                        const float *w, void *prep);

/* Row-major C (m x n) = A (m x k, lda) B (k x n, ldb), plus C when acc, reading A and B in place
 * (gemm_avx2.c): the conv paths call it instead of OpenBLAS for few rows
 * (npe_kcpu_gemm_small_ok(flags, m)) and Winograd for wide blocks (ok(flags, 1)). */
#define NPE_KCPU_SMALL_GEMM_ROWS 64
int npe_kcpu_gemm_small_ok(unsigned flags, int m);
void npe_kcpu_gemm_small_avx2(int m, int n, int k, const float *a, int lda, const float *b,
                              int ldb, int acc, float *c, int ldc);
/* C (m x n, ldc) = A B with A packed: its rows in groups of six from the first (the last group
 * m % 6 wide when that is not 0), group g's element (r, p) at a[6 * g * k + p * width + r]; the
 * kernel's broadcasts then read one contiguous stream (Winograd's U, laid out so when prepared
 * for AVX2: winograd.c). Any CPU may call it only where npe_kcpu_gemm_small_ok(flags, 1). */
void npe_kcpu_gemm_packed_avx2(int m, int n, int k, const float *a, const float *b, int ldb,
                               float *c, int ldc);

/* Threads a kernel may split over: 1 without an exec, without threads or when THREADS is masked
 * (the masked variants pass a serial copy of ex, see serial_exec). */
static inline int kcpu_threads(const npe_kexec *ex)
{
    return ex && ex->parallel_for && ex->nthreads > 1 ? ex->nthreads : 1;
}

/* Run fn over [0, n) in at most kcpu_threads(ex) chunks. */
static inline void kcpu_for(const npe_kexec *ex, int64_t n, npe_kfor_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (kcpu_threads(ex) > 1)
        ex->parallel_for(ex, n, fn, arg);
    else
        fn(arg, 0, n, 0);
}

/* Test hook (checkkern): nonzero makes kernels split work as finely as the threads allow, so
 * small random shapes cross chunk boundaries everywhere. Defined in table.c; 0 normally. */
extern int npe_kcpu_fine_grain;

/* Split count items of about cost_per_item work each into at most kcpu_threads(ex) tasks, but
 * none smaller than min_cost: waking a worker costs microseconds, so tiny ops stay serial.
 * Returns the number of tasks (>= 1 when count > 0). */
static inline int64_t kcpu_tasks(const npe_kexec *ex, int64_t count, int64_t cost_per_item,
                                 int64_t min_cost)
{
    int64_t t = kcpu_threads(ex);
    if (count <= 0)
        return 0;
    if (cost_per_item < 1)
        cost_per_item = 1;
    if (npe_kcpu_fine_grain)
        min_cost = 1;
    /* items per task for min_cost, computed without multiplying (count * cost can overflow) */
    const int64_t per_task =
        cost_per_item >= min_cost ? 1 : (min_cost + cost_per_item - 1) / cost_per_item;
    const int64_t by_cost = count / per_task;
    if (t > by_cost)
        t = by_cost;
    if (t > count)
        t = count;
    return t < 1 ? 1 : t;
}

/* Work per task below which splitting costs more than it saves (elementwise float ops). */
#define KCPU_MIN_TASK 32768

/* Item range of task i among ntasks over count items, balanced to within one item. */
static inline void kcpu_split(int64_t count, int64_t ntasks, int64_t i, int64_t *begin,
                              int64_t *end)
{
    int64_t q = count / ntasks, r = count % ntasks;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r ? 1 : 0);
}

/* A copy of ex that runs serially but keeps the caller's scratch: the THREADS-masked variants. */
static inline const npe_kexec *serial_exec(const npe_kexec *ex, npe_kexec *tmp)
{
    if (!ex)
        return NULL;
    *tmp = *ex;
    tmp->nthreads = 1;
    tmp->parallel_for = NULL;
    tmp->pool = NULL;
    return tmp;
}

#endif
