/* Persistent pthread pool for npe_kexec.parallel_for: one job at a time, split into at most
 * nthreads contiguous chunks that the caller (thread index 0) and the workers (1..) claim in
 * turn, so a worker the OS has not scheduled yet does not hold up the job: whoever is running
 * takes the next chunk. The thread index passed to fn is the running thread's own, so kernels
 * can still give each thread its own scratch. */
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256
/* Workers poll this many times (a few microseconds) before sleeping: kernels of one network run
 * back to back, and a short poll saves a futex round trip per kernel without burning a shared
 * core for long. */
#define SPIN_ROUNDS 256

struct npe_kpool {
    pthread_mutex_t lock;   /* guards the job, next and done_chunks */
    pthread_cond_t wake;    /* workers: a new generation (job) or stop */
    pthread_cond_t done;    /* caller: every chunk of the job finished */
    pthread_mutex_t submit; /* one parallel_for at a time per pool */
    atomic_uint_least64_t generation;
    int stop;
    int nthreads;
    int started; /* workers created (nthreads - 1 once construction succeeded) */
    /* the job */
    npe_kfor_fn fn;
    void *arg;
    int64_t n;
    int nchunks;
    int nthreads_job; /* threads of the caller's exec: only indices below it may take chunks */
    int next;        /* first chunk nobody has claimed */
    int done_chunks; /* chunks finished */
    pthread_t *threads;
};

struct worker_start {
    npe_kpool *pool;
    int index;
};

/* Nonzero while this thread runs a chunk: a nested parallel_for then runs serially instead of
 * waiting on workers that may be busy with the outer job. */
static _Thread_local int tl_in_chunk;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void chunk_range(int64_t n, int nchunks, int i, int64_t *begin, int64_t *end)
{
    int64_t q = n / nchunks, r = n % nchunks;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r ? 1 : 0);
}

static void run_chunk(npe_kfor_fn fn, void *arg, int64_t n, int nchunks, int chunk, int thread)
{
    int64_t b, e;
    chunk_range(n, nchunks, chunk, &b, &e);
    if (b < e) {
        const int outer = tl_in_chunk;
        tl_in_chunk = 1;
        fn(arg, b, e, thread);
        tl_in_chunk = outer;
    }
}

/* Claim and run chunks of the current job until none is left; called and returns with the lock
 * held. The job cannot change meanwhile: its caller waits for every chunk to finish. */
static void work_on_job(npe_kpool *pool, int thread)
{
    if (thread >= pool->nthreads_job)
        return; /* the exec asked for fewer threads (and may have scratch for only those) */
    while (pool->next < pool->nchunks) {
        const int chunk = pool->next++;
        npe_kfor_fn fn = pool->fn;
        void *arg = pool->arg;
        const int64_t n = pool->n;
        const int nchunks = pool->nchunks;
        pthread_mutex_unlock(&pool->lock);
        run_chunk(fn, arg, n, nchunks, chunk, thread);
        pthread_mutex_lock(&pool->lock);
        if (++pool->done_chunks == pool->nchunks)
            pthread_cond_signal(&pool->done);
    }
}

static void *worker_main(void *p)
{
    npe_kpool *pool = ((struct worker_start *)p)->pool;
    const int index = ((struct worker_start *)p)->index;
    free(p);
    uint_least64_t seen = 0;
    for (;;) {
        for (int spin = 0; spin < SPIN_ROUNDS; spin++) {
            if (atomic_load_explicit(&pool->generation, memory_order_acquire) != seen)
                break;
            cpu_relax();
        }
        pthread_mutex_lock(&pool->lock);
        while (!pool->stop && atomic_load(&pool->generation) == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        seen = atomic_load(&pool->generation);
        work_on_job(pool, index);
        pthread_mutex_unlock(&pool->lock);
    }
}

static void serial_for(const npe_kexec *ex, int64_t n, npe_kfor_fn fn, void *arg)
{
    (void)ex;
    if (n > 0)
        fn(arg, 0, n, 0);
}

static void pool_for(const npe_kexec *ex, int64_t n, npe_kfor_fn fn, void *arg)
{
    npe_kpool *pool = ex->pool;
    if (n <= 0)
        return;
    int nchunks = pool ? pool->nthreads : 1;
    if (ex->nthreads < nchunks)
        nchunks = ex->nthreads;
    if (n < nchunks)
        nchunks = (int)n;
    if (nchunks <= 1 || tl_in_chunk) {
        /* still a chunk: a parallel_for nested in it must not hand out thread indices (and so
         * scratch slots) that this one is using */
        run_chunk(fn, arg, n, 1, 0, 0);
        return;
    }
    pthread_mutex_lock(&pool->submit);
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->nchunks = nchunks;
    pool->nthreads_job = ex->nthreads;
    pool->next = 0;
    pool->done_chunks = 0;
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    work_on_job(pool, 0);
    while (pool->done_chunks < pool->nchunks)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->submit);
}

npe_kpool *npe_kpool_create(int nthreads)
{
    if (nthreads <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = ncpu > 0 ? (int)(ncpu < MAX_THREADS ? ncpu : MAX_THREADS) : 1;
    }
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;

    npe_kpool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->nthreads = nthreads;
    atomic_init(&pool->generation, 0);
    if (pthread_mutex_init(&pool->lock, NULL))
        goto out_free_pool;
    if (pthread_mutex_init(&pool->submit, NULL))
        goto out_free_lock;
    if (pthread_cond_init(&pool->wake, NULL))
        goto out_free_submit;
    if (pthread_cond_init(&pool->done, NULL))
        goto out_free_wake;
    if (nthreads > 1) {
        pool->threads = calloc((size_t)nthreads - 1, sizeof(*pool->threads));
        if (!pool->threads)
            goto out_free_done;
    }
    for (int i = 1; i < nthreads; i++) {
        struct worker_start *ws = malloc(sizeof(*ws));
        if (!ws)
            goto out_join_workers;
        ws->pool = pool;
        ws->index = i;
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, ws)) {
            free(ws);
            goto out_join_workers;
        }
        pool->started++;
    }
    return pool;

out_join_workers:
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
out_free_done:
    pthread_cond_destroy(&pool->done);
out_free_wake:
    pthread_cond_destroy(&pool->wake);
out_free_submit:
    pthread_mutex_destroy(&pool->submit);
out_free_lock:
    pthread_mutex_destroy(&pool->lock);
out_free_pool:
    free(pool);
    return NULL;
}

void npe_kpool_destroy(npe_kpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->submit);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

int npe_kpool_nthreads(const npe_kpool *pool)
{
    return pool ? pool->nthreads : 1;
}

void npe_kexec_init(npe_kexec *ex, npe_kpool *pool, void *scratch, size_t scratch_size)
{
    ex->nthreads = npe_kpool_nthreads(pool);
    ex->parallel_for = pool && pool->nthreads > 1 ? pool_for : serial_for;
    ex->pool = pool;
    ex->scratch = scratch;
    ex->scratch_size = scratch_size;
}
