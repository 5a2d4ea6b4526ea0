/* Optimised fully connected layer: OpenBLAS sgemm (sgemv for one row) on blocks of rows or of
 * output features, one block per thread, each call single-threaded inside its task. */
#include <limits.h>
#include <string.h>

#include "blas.h"
#include "cpu.h"

typedef struct linear_job {
    int64_t m, k, n;
    int64_t ntasks;
    int split_rows; /* 1: tasks own blocks of rows of y; 0: blocks of columns */
    const float *x, *w, *b;
    float *y;
} linear_job;

static void linear_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const linear_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t r0 = 0, r1 = job->m, c0 = 0, c1 = job->n;
        if (job->split_rows)
            kcpu_split(job->m, job->ntasks, t, &r0, &r1);
        else
            kcpu_split(job->n, job->ntasks, t, &c0, &c1);
        if (r0 >= r1 || c0 >= c1)
            continue;
        float *y = job->y + r0 * job->n + c0;
        float beta = 0.0f;
        if (job->b) {
            for (int64_t i = r0; i < r1; i++)
                memcpy(job->y + i * job->n + c0, job->b + c0, (size_t)(c1 - c0) * sizeof(float));
            beta = 1.0f;
        }
        if (r1 - r0 == 1)
            /* one row of x: y = W x is a matrix-vector product, which sgemm does poorly */
            npe_blas_sgemv(1, (int)(c1 - c0), (int)job->k, 1.0f, job->w + c0 * job->k,
                           (int)job->k, job->x + r0 * job->k, beta, y);
        else
            npe_blas_sgemm(1, 0, 1, (int)(r1 - r0), (int)(c1 - c0), (int)job->k, 1.0f,
                           job->x + r0 * job->k, (int)job->k, job->w + c0 * job->k, (int)job->k,
                           beta, y, (int)job->n);
    }
}

static void linear_run(const npe_kexec *ex, unsigned flags, int64_t m, int64_t k, int64_t n,
                       const float *x, const float *w, const float *b, float *y)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX) {
        /* nothing to multiply, or sizes sgemm cannot take: the reference handles both */
        npe_ref_linear(ex, m, k, n, x, w, b, y);
        return;
    }
    linear_job job = {m, k, n, 1, 1, x, w, b, y};
    /* Rows when there are enough for every thread; otherwise output features, which for a
     * batch of one also spreads the weight reads (the whole cost) across threads. */
    const int64_t threads = kcpu_tasks(ex, m * n, k, 1 << 20);
    if (m >= 4 * threads) {
        job.split_rows = 1;
        job.ntasks = threads;
    } else {
        job.split_rows = 0;
        job.ntasks = threads < n ? threads : n;
    }
    kcpu_for(ex, job.ntasks, linear_tasks, &job);
}

static void linear_b(const npe_kexec *ex, int64_t m, int64_t k, int64_t n, const float *x,
                     const float *w, const float *b, float *y)
{
    linear_run(ex, NPE_KCPU_BLAS, m, k, n, x, w, b, y);
}

static void linear_bt(const npe_kexec *ex, int64_t m, int64_t k, int64_t n, const float *x,
                      const float *w, const float *b, float *y)
{
    linear_run(ex, NPE_KCPU_BLAS | NPE_KCPU_THREADS, m, k, n, x, w, b, y);
}

void npe_kcpu_init_linear(npe_kernels *k, unsigned flags)
{
    if (!(flags & NPE_KCPU_BLAS))
        return;
    k->linear = (flags & NPE_KCPU_THREADS) ? linear_bt : linear_b;
}
