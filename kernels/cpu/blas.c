/* OpenBLAS wrappers: one process-wide thread count, switched per call under a small monitor so
 * concurrent calls never see a count they did not ask for. */
#include "blas.h"

#include <cblas.h>
#include <pthread.h>

static pthread_mutex_t mode_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mode_idle = PTHREAD_COND_INITIALIZER;
static int mode_threads;  /* count OpenBLAS is set to for the calls in flight */
static int mode_active;   /* our calls in flight */
static int saved_threads; /* the process's count before our first call switched it; 0 = unknown */

static void blas_enter(int threads)
{
    if (threads < 1)
        threads = 1;
    pthread_mutex_lock(&mode_lock);
    while (mode_active > 0 && mode_threads != threads)
        pthread_cond_wait(&mode_idle, &mode_lock);
    if (mode_active == 0) {
        int now = openblas_get_num_threads();
        if (!saved_threads)
            saved_threads = now;
        if (now != threads)
            openblas_set_num_threads(threads);
        mode_threads = threads;
    }
    mode_active++;
    pthread_mutex_unlock(&mode_lock);
}

static void blas_leave(void)
{
    pthread_mutex_lock(&mode_lock);
    if (--mode_active == 0) {
        /* Costs a few ns (OpenBLAS only stores the count), so restoring after every burst is
         * cheap; the saved value is re-read at the next burst in case the application changed
         * it meanwhile. */
        if (saved_threads && saved_threads != mode_threads)
            openblas_set_num_threads(saved_threads);
        saved_threads = 0;
        pthread_cond_broadcast(&mode_idle);
    }
    pthread_mutex_unlock(&mode_lock);
}

void npe_blas_sgemm(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    blas_enter(threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
    blas_leave();
}

void npe_blas_sgemv(int threads, int m, int n, float alpha, const float *a, int lda,
                    const float *x, float beta, float *y)
{
    if (m <= 0)
        return;
    blas_enter(threads);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
    blas_leave();
}
