/* Optimised pooling: max pooling as vector passes over output rows, and every pooling op split
 * over planes (or rows) across threads, the threads-only ones running the reference per chunk. */
#include <limits.h>

#include "cpu.h"
#include "vec.h"

typedef struct pool_job {
    const npe_pool2d_params *p;
    int64_t planes, tiles, ntasks;
    const float *x;
    float *y;
} pool_job;

/* Valid o in [0, count) with 0 <= o*s + off < limit, as [*lo, *hi). */
static void valid_range(int64_t count, int64_t s, int64_t off, int64_t limit, int64_t *lo,
                        int64_t *hi)
{
    int64_t l = off < 0 ? (-off + s - 1) / s : 0;
    int64_t h = limit - 1 - off >= 0 ? (limit - 1 - off) / s + 1 : 0;
    if (h > count)
        h = count;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Rows [r0, r1) of one plane, for rows too wide for max_rows_phased's stack block: the running
 * max of each output row takes one pass per tap, taps in the reference's order; NaN wins and
 * stays (v > m fails against NaN). */
static void max_rows(const npe_pool2d_params *p, const float *xp, float *yp, int64_t r0,
                     int64_t r1)
{
    const int64_t wo = p->w_out, w_in = p->w_in, sw = p->sw;
    for (int64_t oh = r0; oh < r1; oh++) {
        float *yr = yp + oh * wo;
        for (int64_t ow = 0; ow < wo; ow++)
            yr[ow] = -INFINITY;
        for (int64_t ki = 0; ki < p->kh; ki++) {
            const int64_t ih = oh * p->sh - p->ph + ki * p->dh;
            if (ih < 0 || ih >= p->h_in)
                continue;
            const float *xr = xp + ih * w_in;
            for (int64_t kj = 0; kj < p->kw; kj++) {
                const int64_t off = kj * p->dw - p->pw;
                int64_t lo, hi, ow;
                valid_range(wo, sw, off, w_in, &lo, &hi);
                ow = lo;
                if (sw == 1)
                    for (; ow + KV_N <= hi; ow += KV_N) {
                        const kv m = kv_load(yr + ow), v = kv_load(xr + ow + off);
                        kv_store(yr + ow, kv_select(KV_MASK((v > m) | (v != v)), v, m));
                    }
                for (; ow < hi; ow++) {
                    const float v = xr[ow * sw + off];
                    if (v > yr[ow] || v != v)
                        yr[ow] = v;
                }
            }
        }
    }
}

/* Padded rows on the stack per block (32 KiB); wider rows take max_rows. */
#define MAX_BLOCK_FLOATS 8192
#define MAX_TAPS 64

/* Rows [r0, r1) of one plane through padded, phased rows (npe_kcpu_phase_rows, -inf outside the
 * input): every tap is a contiguous in-bounds load, whatever the stride. Returns 0 (nothing
 * done) when one output row's input rows do not fit the stack block. */
static int max_rows_phased(const npe_pool2d_params *p, const float *xp, float *yp, int64_t r0,
                           int64_t r1)
{
    const int64_t wo = p->w_out, sw = p->sw, kk = (int64_t)p->kh * p->kw;
    const int64_t wp = (wo - 1) * sw + (int64_t)(p->kw - 1) * p->dw + 1;
    const int64_t lq = (wp + sw - 1) / sw, rowf = sw * lq;
    const int64_t ext = (int64_t)(p->kh - 1) * p->dh + 1;
    const int64_t budget = npe_kcpu_fine_grain ? 0 : MAX_BLOCK_FLOATS;
    int64_t rb = (budget / rowf - ext) / p->sh + 1;
    if (kk > MAX_TAPS || rowf * ext > MAX_BLOCK_FLOATS)
        return 0;
    if (rb < 1)
        rb = 1;
    float rows[MAX_BLOCK_FLOATS];
    int64_t toff[MAX_TAPS];
    for (int64_t ki = 0; ki < p->kh; ki++)
        for (int64_t kj = 0; kj < p->kw; kj++) {
            const int64_t c = kj * p->dw;
            toff[ki * p->kw + kj] = ki * p->dh * rowf + c % sw * lq + c / sw;
        }
#define MAX_STEP(m, v) m = kv_select(KV_MASK(((v) > (m)) | ((v) != (v))), (v), (m))
    const kv ninf = kv_set1(-INFINITY);
    for (int64_t oh0 = r0; oh0 < r1; oh0 += rb) {
        const int64_t oh1 = oh0 + rb < r1 ? oh0 + rb : r1;
        npe_kcpu_phase_rows(xp, p->h_in, p->w_in, p->ph, p->pw, sw, lq, oh0 * p->sh,
                            (oh1 - 1) * p->sh + ext, -INFINITY, rows);
        for (int64_t oh = oh0; oh < oh1; oh++) {
            const float *base = rows + (oh - oh0) * p->sh * rowf;
            float *yr = yp + oh * wo;
            int64_t ow = 0;
            for (; ow + 2 * KV_N <= wo; ow += 2 * KV_N) {
                kv m0 = ninf, m1 = ninf;
                for (int64_t t = 0; t < kk; t++) {
                    const kv v0 = kv_load(base + toff[t] + ow);
                    const kv v1 = kv_load(base + toff[t] + ow + KV_N);
                    MAX_STEP(m0, v0);
                    MAX_STEP(m1, v1);
                }
                kv_store(yr + ow, m0);
                kv_store(yr + ow + KV_N, m1);
            }
            for (; ow < wo; ow++) {
                float m = -INFINITY;
                for (int64_t t = 0; t < kk; t++) {
                    const float v = base[toff[t] + ow];
                    if (v > m || v != v)
                        m = v;
                }
                yr[ow] = m;
            }
        }
    }
#undef MAX_STEP
    return 1;
}

static void max_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const pool_job *job = arg;
    const npe_pool2d_params *p = job->p;
    const int64_t hw_in = (int64_t)p->h_in * p->w_in, hw_out = (int64_t)p->h_out * p->w_out;
    for (int64_t t = begin; t < end; t++) {
        const int64_t plane = t / job->tiles, tile = t % job->tiles;
        int64_t r0, r1;
        kcpu_split(p->h_out, job->tiles, tile, &r0, &r1);
        if (!max_rows_phased(p, job->x + plane * hw_in, job->y + plane * hw_out, r0, r1))
            max_rows(p, job->x + plane * hw_in, job->y + plane * hw_out, r0, r1);
    }
}

static void max_run(const npe_kexec *ex, unsigned flags, const npe_pool2d_params *p,
                    const float *x, float *y)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    const int64_t planes = (int64_t)p->n * p->c;
    if (planes <= 0 || p->h_out <= 0 || p->w_out <= 0)
        return;
    pool_job job = {p, planes, 1, 0, x, y};
    const int64_t row_cost = (int64_t)p->w_out * p->kh * p->kw;
    const int64_t threads = kcpu_tasks(ex, planes * p->h_out, row_cost, KCPU_MIN_TASK);
    /* few planes (a batch of one with few channels): split their rows too */
    if (planes < 4 * threads) {
        const int64_t want = (4 * threads + planes - 1) / planes;
        job.tiles = want < p->h_out ? want : p->h_out;
    }
    job.ntasks = planes * job.tiles;
    kcpu_for(threads > 1 ? ex : NULL, job.ntasks, max_tasks, &job);
}

static void max_pool2d_s(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                         float *y)
{
    max_run(ex, NPE_KCPU_SIMD, p, x, y);
}

static void max_pool2d_st(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                          float *y)
{
    max_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, p, x, y);
}

/* ---- threads only: the reference on runs of whole planes ------------------------------------ */

enum chunk_op { CHUNK_MAX, CHUNK_AVG, CHUNK_ADAPTIVE_AVG, CHUNK_ADAPTIVE_MAX };

typedef struct chunk_job {
    enum chunk_op op;
    const npe_pool2d_params *p;
    int h, w, oh, ow;
    int64_t planes, ntasks;
    const float *x;
    float *y;
} chunk_job;

static void chunk_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const chunk_job *job = arg;
    int64_t pl0, pl1, unused;
    kcpu_split(job->planes, job->ntasks, begin, &pl0, &unused);
    kcpu_split(job->planes, job->ntasks, end - 1, &unused, &pl1);
    const int c = (int)(pl1 - pl0); /* chunk_run keeps planes within int */
    const float *x = job->x + pl0 * job->h * job->w;
    float *y = job->y + pl0 * job->oh * job->ow;
    npe_pool2d_params q = {0};
    if (job->p) {
        q = *job->p;
        q.n = 1;
        q.c = c;
    }
    switch (job->op) {
    case CHUNK_MAX:
        npe_ref_max_pool2d(NULL, &q, x, y);
        break;
    case CHUNK_AVG:
        npe_ref_avg_pool2d(NULL, &q, x, y);
        break;
    case CHUNK_ADAPTIVE_AVG:
        npe_ref_adaptive_avg_pool2d(NULL, 1, c, job->h, job->w, job->oh, job->ow, x, y);
        break;
    case CHUNK_ADAPTIVE_MAX:
        npe_ref_adaptive_max_pool2d(NULL, 1, c, job->h, job->w, job->oh, job->ow, x, y);
        break;
    }
}

/* cost: work per plane, to keep small ops serial. */
static void chunk_run(const npe_kexec *ex, chunk_job *job, int n, int c, int64_t cost)
{
    job->planes = (int64_t)n * c;
    if (job->planes <= 0 || job->h <= 0 || job->w <= 0 || job->oh <= 0 || job->ow <= 0)
        return;
    job->ntasks = kcpu_tasks(ex, job->planes, cost, KCPU_MIN_TASK);
    if (job->ntasks <= 1 || job->planes > INT_MAX) {
        /* one call with the caller's n and c (a chunk's plane count must fit in int) */
        switch (job->op) {
        case CHUNK_MAX:
            npe_ref_max_pool2d(NULL, job->p, job->x, job->y);
            break;
        case CHUNK_AVG:
            npe_ref_avg_pool2d(NULL, job->p, job->x, job->y);
            break;
        case CHUNK_ADAPTIVE_AVG:
            npe_ref_adaptive_avg_pool2d(NULL, n, c, job->h, job->w, job->oh, job->ow, job->x,
                                        job->y);
            break;
        case CHUNK_ADAPTIVE_MAX:
            npe_ref_adaptive_max_pool2d(NULL, n, c, job->h, job->w, job->oh, job->ow, job->x,
                                        job->y);
            break;
        }
        return;
    }
    kcpu_for(ex, job->ntasks, chunk_tasks, job);
}

static void max_pool2d_t(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                         float *y)
{
    chunk_job job = {CHUNK_MAX, p, p->h_in, p->w_in, p->h_out, p->w_out, 0, 0, x, y};
    chunk_run(ex, &job, p->n, p->c, (int64_t)p->h_out * p->w_out * p->kh * p->kw);
}

static void avg_pool2d_t(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                         float *y)
{
    chunk_job job = {CHUNK_AVG, p, p->h_in, p->w_in, p->h_out, p->w_out, 0, 0, x, y};
    chunk_run(ex, &job, p->n, p->c, (int64_t)p->h_out * p->w_out * p->kh * p->kw);
}

/* Each output bin reads about (h/oh + 1) x (w/ow + 1) inputs. */
static int64_t adaptive_cost(int h, int w, int oh, int ow)
{
    return (int64_t)oh * ow * ((int64_t)h / oh + 1) * ((int64_t)w / ow + 1);
}

static void adaptive_avg_pool2d_t(const npe_kexec *ex, int n, int c, int h, int w, int oh,
                                  int ow, const float *x, float *y)
{
    chunk_job job = {CHUNK_ADAPTIVE_AVG, NULL, h, w, oh, ow, 0, 0, x, y};
    chunk_run(ex, &job, n, c, adaptive_cost(h, w, oh, ow));
}

static void adaptive_max_pool2d_t(const npe_kexec *ex, int n, int c, int h, int w, int oh,
                                  int ow, const float *x, float *y)
{
    chunk_job job = {CHUNK_ADAPTIVE_MAX, NULL, h, w, oh, ow, 0, 0, x, y};
    chunk_run(ex, &job, n, c, adaptive_cost(h, w, oh, ow));
}

/* Max pooling is upgraded by SIMD (then split by THREADS); the other pools only by THREADS. */
void npe_kcpu_init_pool(npe_kernels *k, unsigned flags)
{
    const int t = (flags & NPE_KCPU_THREADS) != 0;
    if (flags & NPE_KCPU_SIMD)
        k->max_pool2d = t ? max_pool2d_st : max_pool2d_s;
    else if (t)
        k->max_pool2d = max_pool2d_t;
    if (t) {
        k->avg_pool2d = avg_pool2d_t;
        k->adaptive_avg_pool2d = adaptive_avg_pool2d_t;
        k->adaptive_max_pool2d = adaptive_max_pool2d_t;
    }
}
