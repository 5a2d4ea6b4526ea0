/* OpenBLAS sgemm/sgemv behind wrappers that choose, per call, how many threads OpenBLAS may use:
 * kernels call them from parallel_for workers with threads = 1, so OpenBLAS never starts its own
 * threads on top of ours and the cores are not oversubscribed. */
#ifndef NPE_KERNELS_CPU_BLAS_H
#define NPE_KERNELS_CPU_BLAS_H

/* Row-major C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C, op = transpose when
 * trans_* is nonzero; lda/ldb/ldc are row strides of the matrices as stored. Every size and
 * leading dimension must fit in int (the callers split larger products).
 *
 * threads: OpenBLAS threads for this call; 1 inside parallel_for. OpenBLAS's thread count is one
 * process-wide setting, so calls wanting different counts take turns (calls wanting the same
 * count run concurrently); when no call of ours is in flight the setting the process had before
 * is put back, so an application that also uses OpenBLAS keeps its own choice. */
void npe_blas_sgemm(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc);

/* Row-major y (m) = alpha * A (m x n) @ x (n) + beta * y; same threading rule. */
void npe_blas_sgemv(int threads, int m, int n, float alpha, const float *a, int lda,
                    const float *x, float beta, float *y);

#endif
