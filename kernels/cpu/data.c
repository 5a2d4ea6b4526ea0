/* Optimised data movement and the remaining ops: strided copy, 2-D pad and nearest upsampling as
 * row copies split across threads (SIMD level), and bilinear upsampling, reductions and softmax
 * as the reference run on chunks of planes or rows (THREADS level). */
#include <limits.h>

#include "cpu.h"
#include "vec.h"

/* ---- copy_strided -------------------------------------------------------------------------- */

typedef struct copy_job {
    int nd;
    int64_t shape[NPE_KMAX_DIMS], xs[NPE_KMAX_DIMS], ys[NPE_KMAX_DIMS];
    int64_t total, ntasks;
    const float *x;
    float *y;
} copy_job;

static void copy_run_inner(int64_t n, const float *x, int64_t sx, float *y, int64_t sy)
{
    if (sx == 1 && sy == 1) {
        memcpy(y, x, (size_t)n * sizeof(float));
    } else if (sx == 0 && sy == 1) {
        const float v = x[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = v;
    } else if (sy == 1) {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i * sx];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i * sy] = x[i * sx];
    }
}

/* Elements [begin, end) of the flat index over shape, walked as runs of the innermost dim. */
static void copy_range(const copy_job *job, int64_t begin, int64_t end)
{
    const int last = job->nd - 1;
    int64_t idx[NPE_KMAX_DIMS], xo = 0, yo = 0, rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % job->shape[d];
        rem /= job->shape[d];
        xo += idx[d] * job->xs[d];
        yo += idx[d] * job->ys[d];
    }
    int64_t pos = begin;
    while (pos < end) {
        const int64_t i0 = idx[last], len = job->shape[last];
        const int64_t run = len - i0 < end - pos ? len - i0 : end - pos;
        copy_run_inner(run, job->x + xo, job->xs[last], job->y + yo, job->ys[last]);
        pos += run;
        if (pos >= end)
            break;
        xo -= i0 * job->xs[last];
        yo -= i0 * job->ys[last];
        idx[last] = 0;
        for (int d = last - 1; d >= 0; d--) {
            idx[d]++;
            xo += job->xs[d];
            yo += job->ys[d];
            if (idx[d] < job->shape[d])
                break;
            xo -= job->xs[d] * job->shape[d];
            yo -= job->ys[d] * job->shape[d];
            idx[d] = 0;
        }
    }
}

static void copy_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const copy_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t b, e;
        kcpu_split(job->total, job->ntasks, t, &b, &e);
        copy_range(job, b, e);
    }
}

static void copy_run(const npe_kexec *ex, unsigned flags, int ndim, const int64_t *shape,
                     const float *x, const int64_t *xs, float *y, const int64_t *ys)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    if (ndim < 0 || ndim > NPE_KMAX_DIMS) {
        npe_ref_copy_strided(ex, ndim, shape, x, xs, y, ys);
        return;
    }
    copy_job job = {.x = x, .y = y, .total = 1};
    /* drop size-1 dims, merge dims that are contiguous in both x and y */
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return;
        job.total *= shape[d];
        if (shape[d] == 1)
            continue;
        const int k = job.nd - 1;
        if (k >= 0 && job.xs[k] == xs[d] * shape[d] && job.ys[k] == ys[d] * shape[d]) {
            job.shape[k] *= shape[d];
            job.xs[k] = xs[d];
            job.ys[k] = ys[d];
        } else {
            job.shape[job.nd] = shape[d];
            job.xs[job.nd] = xs[d];
            job.ys[job.nd] = ys[d];
            job.nd++;
        }
    }
    if (job.nd == 0) {
        job.nd = 1;
        job.shape[0] = 1;
    }
    job.ntasks = kcpu_tasks(ex, job.total, 1, 4 * KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, copy_tasks, &job);
}

static void copy_strided_s(const npe_kexec *ex, int ndim, const int64_t *shape, const float *x,
                           const int64_t *xs, float *y, const int64_t *ys)
{
    copy_run(ex, NPE_KCPU_SIMD, ndim, shape, x, xs, y, ys);
}

static void copy_strided_st(const npe_kexec *ex, int ndim, const int64_t *shape, const float *x,
                            const int64_t *xs, float *y, const int64_t *ys)
{
    copy_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, ndim, shape, x, xs, y, ys);
}

/* ---- pad2d ----------------------------------------------------------------------------------- */

typedef struct pad_job {
    int64_t rows, ntasks; /* output rows: outer * (h + top + bottom) */
    int64_t h, w, oh, ow, left, top;
    float value;
    const float *x;
    float *y;
} pad_job;

static void fill(float *y, int64_t n, float v)
{
    int64_t i = 0;
    const kv vv = kv_set1(v);
    for (; i + KV_N <= n; i += KV_N)
        kv_store(y + i, vv);
    for (; i < n; i++)
        y[i] = v;
}

static void pad_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const pad_job *job = arg;
    int64_t r0, r1, unused;
    kcpu_split(job->rows, job->ntasks, begin, &r0, &unused);
    kcpu_split(job->rows, job->ntasks, end - 1, &unused, &r1);
    /* output columns j read x column j - left where that is inside x */
    int64_t j0 = job->left > 0 ? job->left : 0, j1 = job->w + job->left;
    if (j1 > job->ow)
        j1 = job->ow;
    if (j0 > j1)
        j0 = j1;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t o = r / job->oh, si = r % job->oh - job->top;
        float *yr = job->y + r * job->ow;
        if (si < 0 || si >= job->h || j0 == j1) {
            fill(yr, job->ow, job->value);
            continue;
        }
        fill(yr, j0, job->value);
        memcpy(yr + j0, job->x + (o * job->h + si) * job->w + (j0 - job->left),
               (size_t)(j1 - j0) * sizeof(float));
        fill(yr + j1, job->ow - j1, job->value);
    }
}

static void pad_run(const npe_kexec *ex, unsigned flags, int64_t outer, int h, int w, int left,
                    int right, int top, int bottom, float value, const float *x, float *y)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    const int64_t oh = (int64_t)h + top + bottom, ow = (int64_t)w + left + right;
    if (outer <= 0 || oh <= 0 || ow <= 0)
        return;
    pad_job job = {outer * oh, 0, h, w, oh, ow, left, top, value, x, y};
    job.ntasks = kcpu_tasks(ex, job.rows, ow, 4 * KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, pad_tasks, &job);
}

static void pad2d_s(const npe_kexec *ex, int64_t outer, int h, int w, int left, int right,
                    int top, int bottom, float value, const float *x, float *y)
{
    pad_run(ex, NPE_KCPU_SIMD, outer, h, w, left, right, top, bottom, value, x, y);
}

static void pad2d_st(const npe_kexec *ex, int64_t outer, int h, int w, int left, int right,
                     int top, int bottom, float value, const float *x, float *y)
{
    pad_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, outer, h, w, left, right, top, bottom, value,
            x, y);
}

/* ---- upsample_nearest2d ---------------------------------------------------------------------- */

/* The reference's source index, repeated here because it defines which pixel is read:
 * floor(dst * scale) in float, clamped to the last input pixel. */
static float nearest_scale(float given, int64_t in, int64_t out)
{
    return given > 0.0f ? given : (float)in / (float)out;
}

static int64_t nearest_src(int64_t dst, int64_t in, float scale)
{
    const int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

typedef struct nearest_job {
    int64_t rows, ntasks; /* output rows: planes * oh */
    int64_t h, w, oh, ow;
    float sh, sw;
    const float *x;
    float *y;
} nearest_job;

/* Column table entries on the stack; wider outputs compute each source column. */
#define NEAREST_BLOCK 1024

enum { COLS_GENERAL, COLS_SAME, COLS_DOUBLE };

static void nearest_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const nearest_job *job = arg;
    int64_t r0, r1, unused;
    kcpu_split(job->rows, job->ntasks, begin, &r0, &unused);
    kcpu_split(job->rows, job->ntasks, end - 1, &unused, &r1);
    int32_t cols[NEAREST_BLOCK];
    const int table = job->ow <= NEAREST_BLOCK;
    /* a given scale factor need not match the sizes, so the copy and doubling shortcuts are
     * taken only when the table says they read the same pixels */
    int kind = COLS_GENERAL;
    if (table) {
        int same = job->ow == job->w, dbl = job->ow == 2 * job->w;
        for (int64_t j = 0; j < job->ow; j++) {
            cols[j] = (int32_t)nearest_src(j, job->w, job->sw);
            same &= cols[j] == j;
            dbl &= cols[j] == j / 2;
        }
        kind = same ? COLS_SAME : dbl ? COLS_DOUBLE : COLS_GENERAL;
    }
    for (int64_t r = r0; r < r1; r++) {
        const int64_t plane = r / job->oh, i = r % job->oh;
        const int64_t si = nearest_src(i, job->h, job->sh);
        float *yr = job->y + r * job->ow;
        /* consecutive output rows of one plane often read the same source row */
        if (r > r0 && i > 0 && nearest_src(i - 1, job->h, job->sh) == si) {
            memcpy(yr, yr - job->ow, (size_t)job->ow * sizeof(float));
            continue;
        }
        const float *xr = job->x + (plane * job->h + si) * job->w;
        if (kind == COLS_SAME)
            memcpy(yr, xr, (size_t)job->ow * sizeof(float));
        else if (kind == COLS_DOUBLE)
            for (int64_t j = 0; j < job->w; j++)
                yr[2 * j] = yr[2 * j + 1] = xr[j];
        else if (table)
            for (int64_t j = 0; j < job->ow; j++)
                yr[j] = xr[cols[j]];
        else
            for (int64_t j = 0; j < job->ow; j++)
                yr[j] = xr[nearest_src(j, job->w, job->sw)];
    }
}

static void nearest_run(const npe_kexec *ex, unsigned flags, int n, int c, int h, int w, int oh,
                        int ow, float scale_h, float scale_w, const float *x, float *y)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    const int64_t planes = (int64_t)n * c;
    if (planes <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
        return;
    nearest_job job = {planes * oh, 0, h, w, oh, ow, nearest_scale(scale_h, h, oh),
                       nearest_scale(scale_w, w, ow), x, y};
    job.ntasks = kcpu_tasks(ex, job.rows, ow, 4 * KCPU_MIN_TASK);
    kcpu_for(ex, job.ntasks, nearest_tasks, &job);
}

static void upsample_nearest2d_s(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 float scale_h, float scale_w, const float *x, float *y)
{
    nearest_run(ex, NPE_KCPU_SIMD, n, c, h, w, oh, ow, scale_h, scale_w, x, y);
}

static void upsample_nearest2d_st(const npe_kexec *ex, int n, int c, int h, int w, int oh,
                                  int ow, float scale_h, float scale_w, const float *x, float *y)
{
    nearest_run(ex, NPE_KCPU_SIMD | NPE_KCPU_THREADS, n, c, h, w, oh, ow, scale_h, scale_w, x,
                y);
}

/* ---- threads only: the reference on chunks of planes or outer rows -------------------------- */

enum chunk_op { CHUNK_BILINEAR, CHUNK_REDUCE, CHUNK_SOFTMAX };

typedef struct chunk_job {
    enum chunk_op op;
    int64_t outer, ntasks;
    int64_t in_step, out_step; /* floats per plane / outer row in x and y */
    /* bilinear */
    int h, w, oh, ow, align_corners;
    float scale_h, scale_w;
    /* reduce / softmax */
    npe_reduce_op rop;
    int log;
    int64_t r, inner;
    const float *x;
    float *y;
} chunk_job;

static void chunk_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const chunk_job *job = arg;
    int64_t o0, o1, unused;
    kcpu_split(job->outer, job->ntasks, begin, &o0, &unused);
    kcpu_split(job->outer, job->ntasks, end - 1, &unused, &o1);
    const float *x = job->x + o0 * job->in_step;
    float *y = job->y + o0 * job->out_step;
    switch (job->op) {
    case CHUNK_BILINEAR: /* chunk_run keeps outer within int here */
        npe_ref_upsample_bilinear2d(NULL, 1, (int)(o1 - o0), job->h, job->w, job->oh, job->ow,
                                    job->align_corners, job->scale_h, job->scale_w, x, y);
        break;
    case CHUNK_REDUCE:
        npe_ref_reduce(NULL, job->rop, o1 - o0, job->r, job->inner, x, y);
        break;
    case CHUNK_SOFTMAX:
        npe_ref_softmax(NULL, job->log, o1 - o0, job->r, job->inner, x, y);
        break;
    }
}

static void chunk_run(const npe_kexec *ex, chunk_job *job, int64_t cost)
{
    job->ntasks = kcpu_tasks(ex, job->outer, cost, KCPU_MIN_TASK);
    kcpu_for(ex, job->ntasks, chunk_tasks, job);
}

static void upsample_bilinear2d_t(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                  int align_corners, float scale_h, float scale_w, const float *x,
                                  float *y)
{
    const int64_t planes = (int64_t)n * c;
    if (planes > INT_MAX) {
        npe_ref_upsample_bilinear2d(ex, n, c, h, w, oh, ow, align_corners, scale_h, scale_w, x,
                                    y);
        return;
    }
    if (planes <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
        return;
    chunk_job job = {.op = CHUNK_BILINEAR, .outer = planes, .in_step = (int64_t)h * w,
                     .out_step = (int64_t)oh * ow, .h = h, .w = w, .oh = oh, .ow = ow,
                     .align_corners = align_corners, .scale_h = scale_h, .scale_w = scale_w,
                     .x = x, .y = y};
    chunk_run(ex, &job, 8 * (int64_t)oh * ow);
}

static void reduce_t(const npe_kexec *ex, npe_reduce_op op, int64_t outer, int64_t r,
                     int64_t inner, const float *x, float *y)
{
    if (outer <= 0 || inner <= 0)
        return;
    chunk_job job = {.op = CHUNK_REDUCE, .outer = outer, .in_step = r * inner,
                     .out_step = inner, .rop = op, .r = r, .inner = inner, .x = x, .y = y};
    chunk_run(ex, &job, (r > 0 ? r : 1) * inner);
}

static void softmax_t(const npe_kexec *ex, int log, int64_t outer, int64_t d, int64_t inner,
                      const float *x, float *y)
{
    if (outer <= 0 || inner <= 0 || d <= 0)
        return;
    chunk_job job = {.op = CHUNK_SOFTMAX, .outer = outer, .in_step = d * inner,
                     .out_step = d * inner, .log = log, .r = d, .inner = inner, .x = x, .y = y};
    chunk_run(ex, &job, 30 * d * inner);
}

/* copy, pad and nearest upsampling are upgraded by SIMD (then split by THREADS); bilinear,
 * reduce and softmax only by THREADS. */
void npe_kcpu_init_data(npe_kernels *k, unsigned flags)
{
    const int t = (flags & NPE_KCPU_THREADS) != 0;
    if (flags & NPE_KCPU_SIMD) {
        k->copy_strided = t ? copy_strided_st : copy_strided_s;
        k->pad2d = t ? pad2d_st : pad2d_s;
        k->upsample_nearest2d = t ? upsample_nearest2d_st : upsample_nearest2d_s;
    }
    if (t) {
        k->upsample_bilinear2d = upsample_bilinear2d_t;
        k->reduce = reduce_t;
        k->softmax = softmax_t;
    }
}
