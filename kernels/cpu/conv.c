/* Optimised 2-D convolution: im2col + OpenBLAS sgemm over cache-sized column tiles, 1x1 stride-1
 * convolution as a direct sgemm, a direct kernel for depthwise convolution, and transposed
 * convolution as sgemm + col2im. Work is split into (image, group, tile) tasks over the pool and
 * every sgemm runs single-threaded inside its task; the fused epilogue (conv2d_ep) runs on each
 * task's outputs while they are in cache. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cpu.h"
#include "vec.h"

#if NPE_KCPU_AVX2_CODE
#include <immintrin.h>
#endif

/* An im2col tile holds up to this many floats (2 MiB): written by im2col and read back by
 * sgemm's packing from L2/L3 instead of memory. */
#ifndef TILE_FLOATS
#define TILE_FLOATS (512 * 1024)
#endif
/* ... but at least this many columns: every sgemm call re-packs the whole weight matrix, which
 * narrow tiles cannot amortise (with K = 2304, 64-column tiles ran at 65% of one big sgemm, 512
 * at 95%). */
#ifndef MIN_TILE_COLS
#define MIN_TILE_COLS 512
#endif
/* Depthwise: padded input rows per block are kept within this many floats (256 KiB). */
#define DW_BLOCK_FLOATS (64 * 1024)
/* Depthwise taps held as broadcast vectors; larger kernels take the plain row passes. */
#define DW_MAX_TAPS 64
/* Output channels per block below which splitting them (rather than columns) stops paying. */
#define MIN_BLOCK_ROWS 32
/* Multiply-adds per thread below which waking workers costs more than it saves (~10 us). */
#define MIN_TASK_MACS (256 * 1024)

enum conv_path { PATH_REF, PATH_GEMM_1X1, PATH_IM2COL, PATH_DEPTHWISE, PATH_TRANSPOSED, PATH_WINOGRAD };

typedef struct conv_plan {
    int path;
    int nthreads;
    int64_t cin_g, cout_g, kk, kdim, hw_in, hw_out;
    /* tasks per (image, group): column tiles (forward), row blocks (depthwise, per plane) or
     * output-channel blocks (transposed) */
    int64_t tiles;
    int64_t tile_cols; /* forward: output columns per tile; transposed: input columns per pass */
    int64_t mblocks;   /* forward: blocks of output channels per tile (small images: see
                        * make_plan) */
    int64_t mrows;     /* forward: output channels per block */
    int64_t cob;       /* transposed: output channels per block */
    int64_t lq;        /* depthwise: floats per phase of a padded row (npe_kcpu_phase_rows) */
    int64_t rb;        /* depthwise: output rows per block of padded input rows */
    int64_t ntasks;
    size_t per_thread; /* scratch floats per thread, a multiple of 16 (64 bytes) */
    npe_wino_plan wino; /* PATH_WINOGRAD */
} conv_plan;

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static size_t round16(int64_t v)
{
    return (size_t)((v + 15) / 16 * 16);
}

/* Smallest t in [t0, tmax] (within nthreads steps) with units * t a multiple of nthreads, so the
 * contiguous chunks of parallel_for get equal work; t0 when there is none. */
static int64_t balance(int64_t units, int64_t t0, int64_t tmax, int nthreads)
{
    if (nthreads <= 1)
        return t0;
    for (int64_t t = t0; t <= tmax && t < t0 + nthreads; t++)
        if ((units * t) % nthreads == 0)
            return t;
    return t0;
}

/* Cache blocking budget; under the test hook, blocks as small as the kernel allows, so small
 * test shapes still cross block edges. */
static int64_t block_floats(int64_t normal)
{
    return npe_kcpu_fine_grain ? 0 : normal;
}

/* Forward tasks: tiles of at most hw_out / tiles0 columns per (image, group), balanced over the
 * threads. When balancing would cut the columns narrower than MIN_TILE_COLS (small images, few
 * of them), the output channels may be split instead: each task then packs only its block of
 * the weights, which narrow column tiles would each pack whole, and sgemm keeps its full width.
 * But every channel block packs the whole column matrix again, and on the im2col path builds it
 * again (writes plus strided reads: about three passes where sgemm's packing makes one), so
 * channel blocks pay only when the image is small next to the channel count: with wide images
 * and few channels (3x3/2 64->128 at 56x56, 3x3 64->64 at 20x20) they held two threads to
 * 65-77% of one two-thread sgemm (86% and 75% with column tiles). Compared in floats per K:
 * the extra column passes of mblocks - 1 blocks against the extra weight packs of the added
 * column tiles. */
static void split_columns(conv_plan *pl, int64_t units, int64_t tiles0)
{
    pl->tiles = balance(units, tiles0, pl->hw_out, pl->nthreads);
    pl->mblocks = 1;
    if (pl->tiles > tiles0 && ceil_div(pl->hw_out, pl->tiles) < MIN_TILE_COLS &&
        (pl->cout_g >= 2 * MIN_BLOCK_ROWS || npe_kcpu_fine_grain)) {
        const int64_t mb = balance(units * tiles0, 1, ceil_div(pl->cout_g, MIN_BLOCK_ROWS),
                                   pl->nthreads);
        const int64_t passes = pl->path == PATH_IM2COL ? 3 : 1;
        /* the test hook keeps channel blocks whenever they are possible, as before, so small
         * shapes still cover them */
        if (npe_kcpu_fine_grain ||
            passes * pl->hw_out * (mb - 1) < pl->cout_g * (pl->tiles - tiles0)) {
            pl->tiles = tiles0;
            pl->mblocks = mb;
        }
    }
    pl->tile_cols = ceil_div(pl->hw_out, pl->tiles);
    pl->tiles = ceil_div(pl->hw_out, pl->tile_cols);
    pl->mrows = ceil_div(pl->cout_g, pl->mblocks);
    if (!npe_kcpu_fine_grain) /* whole register blocks of sgemm's kernel */
        pl->mrows = ceil_div(pl->mrows, 16) * 16;
    if (pl->mrows > pl->cout_g)
        pl->mrows = pl->cout_g;
    pl->mblocks = ceil_div(pl->cout_g, pl->mrows);
    pl->ntasks = units * pl->tiles * pl->mblocks;
}

static void make_plan(const npe_conv2d_params *p, int nthreads, unsigned flags, conv_plan *pl)
{
    memset(pl, 0, sizeof(*pl));
    pl->path = PATH_REF;
    pl->nthreads = nthreads < 1 ? 1 : nthreads;
    pl->cin_g = p->c_in / p->groups;
    pl->cout_g = p->c_out / p->groups;
    pl->kk = (int64_t)p->kh * p->kw;
    pl->hw_in = (int64_t)p->h_in * p->w_in;
    pl->hw_out = (int64_t)p->h_out * p->w_out;
    const int64_t units = (int64_t)p->n * p->groups;
    const double macs = (double)p->n * (p->transposed ? (double)p->c_in * pl->hw_in * pl->cout_g
                                                      : (double)p->c_out * pl->hw_out * pl->cin_g) *
                        (double)pl->kk;
    if (!npe_kcpu_fine_grain && pl->nthreads > macs / MIN_TASK_MACS)
        pl->nthreads = macs / MIN_TASK_MACS >= 2 ? (int)(macs / MIN_TASK_MACS) : 1;
    /* sgemm takes int sizes and leading dimensions. */
    if (pl->hw_in > INT_MAX || pl->hw_out > INT_MAX || pl->cin_g * pl->kk > INT_MAX ||
        pl->cout_g * pl->kk > INT_MAX)
        return;

    if (p->transposed) {
        if (!(flags & NPE_KCPU_BLAS))
            return;
        pl->path = PATH_TRANSPOSED;
        pl->tiles = balance(units, 1, pl->cout_g, pl->nthreads);
        pl->cob = ceil_div(pl->cout_g, pl->tiles);
        pl->tiles = ceil_div(pl->cout_g, pl->cob);
        const int64_t m = pl->cob * pl->kk;
        int64_t rows = block_floats(TILE_FLOATS) / (m * p->w_in);
        rows = rows < 1 ? 1 : (rows > p->h_in ? p->h_in : rows);
        pl->tile_cols = rows * p->w_in;
        pl->per_thread = round16(m * pl->tile_cols);
        pl->ntasks = units * pl->tiles;
    } else if (pl->cin_g == 1 && (flags & NPE_KCPU_SIMD)) {
        pl->path = PATH_DEPTHWISE;
        pl->tiles = balance((int64_t)p->n * p->c_out, 1, p->h_out, pl->nthreads);
        pl->ntasks = (int64_t)p->n * p->c_out * pl->tiles;
        if (pl->kk <= DW_MAX_TAPS) {
            /* padded columns the taps reach; the output size rule keeps them within the
             * padded input */
            const int64_t wp = (int64_t)(p->w_out - 1) * p->sw + (int64_t)(p->kw - 1) * p->dw + 1;
            const int64_t row = p->sw * ceil_div(wp, p->sw);
            const int64_t ext = (int64_t)(p->kh - 1) * p->dh + 1;
            int64_t rb = (block_floats(DW_BLOCK_FLOATS) / row - ext) / p->sh + 1;
            rb = rb < 1 ? 1 : (rb > p->h_out ? p->h_out : rb);
            pl->lq = ceil_div(wp, p->sw);
            pl->rb = rb;
            pl->per_thread = round16(row * ((rb - 1) * p->sh + ext));
        }
    } else if (!(flags & NPE_KCPU_BLAS)) {
        return;
    } else if (p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 &&
               p->pw == 0) {
        pl->path = PATH_GEMM_1X1;
        pl->kdim = pl->cin_g;
        split_columns(pl, units, 1);
    } else if ((flags & NPE_KCPU_SIMD) && npe_kcpu_wino_plan(flags, p, pl->nthreads, &pl->wino)) {
        pl->path = PATH_WINOGRAD;
    } else {
        pl->path = PATH_IM2COL;
        pl->kdim = pl->cin_g * pl->kk;
        int64_t cols = block_floats(TILE_FLOATS) / pl->kdim;
        if (cols < MIN_TILE_COLS)
            cols = npe_kcpu_fine_grain ? 1 + (p->w_out + 1) / 3 : MIN_TILE_COLS;
        split_columns(pl, units, ceil_div(pl->hw_out, cols));
        pl->per_thread = round16(pl->kdim * pl->tile_cols);
    }
}

typedef struct conv_job {
    const npe_conv2d_params *p;
    const conv_plan *pl;
    const float *x, *w, *b;
    float *y;
    float *scratch;
    const npe_conv_epilogue *ep; /* NULL: none */
    unsigned flags;
} conv_job;

/* The epilogue on len outputs of output channel oc at y, with the vector loops of the
 * separate ops when SIMD is on (the same arithmetic, so fusing changes no result). */
void npe_kcpu_conv_epilogue(const npe_conv_epilogue *ep, unsigned flags, int64_t oc, float *y,
                            int64_t len)
{
    if (!(flags & NPE_KCPU_SIMD)) {
        npe_ref_conv_epilogue(ep, oc, y, len);
        return;
    }
    if (ep->scale && ep->shift)
        npe_kcpu_affine_span(ep->scale[oc], ep->shift[oc], y, y, len);
    if (ep->act > 0)
        npe_kcpu_unary_span(flags, (npe_unary_op)(ep->act - 1), ep->alpha, ep->beta, y, y,
                            len);
}

static void epilogue(const conv_job *job, int64_t oc, float *y, int64_t len)
{
    npe_kcpu_conv_epilogue(job->ep, job->flags, oc, y, len);
}

/* Valid output (or input, for col2im) positions o in [0, count) with 0 <= o*s + off < limit:
 * returns the range [*lo, *hi), empty when *lo == *hi. */
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

/* Vector fill and copy for the short runs of im2col and the bias rows: memset/memcpy calls
 * cost more than the few dozen floats a run usually has, and GCC -O2 leaves plain loops
 * scalar. */
static inline void run_fill(float *d, int64_t n, float v)
{
    int64_t i = 0;
    const kv vv = kv_set1(v);
    for (; i + KV_N <= n; i += KV_N)
        kv_store(d + i, vv);
    for (; i < n; i++)
        d[i] = v;
}

static inline void run_copy(float *restrict d, const float *restrict s, int64_t n)
{
    if (n < KV_N) {
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i];
        return;
    }
    int64_t i = 0;
    for (; i + 2 * KV_N <= n; i += 2 * KV_N) {
        const kv a = kv_load(s + i), b = kv_load(s + i + KV_N);
        kv_store(d + i, a);
        kv_store(d + i + KV_N, b);
    }
    if (i + KV_N <= n) {
        kv_store(d + i, kv_load(s + i));
        i += KV_N;
    }
    if (i < n) /* the last vector again, overlapping: no scalar tail */
        kv_store(d + n - KV_N, kv_load(s + n - KV_N));
}

/* Columns [c0, c1) of the im2col matrix of one image and group: row (ic, ki, kj) holds
 * x[ic, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw] (0 in the padding) for output positions
 * oh*w_out + ow in [c0, c1); rows are c1 - c0 floats apart. */
static void im2col_tile(const npe_conv2d_params *p, const conv_plan *pl, const float *xg,
                        int64_t c0, int64_t c1, float *col)
{
    const int64_t nc = c1 - c0, wo = p->w_out, sw = p->sw;
    for (int64_t ic = 0; ic < pl->cin_g; ic++) {
        const float *xc = xg + ic * pl->hw_in;
        for (int ki = 0; ki < p->kh; ki++)
            for (int kj = 0; kj < p->kw; kj++) {
                float *dst = col + ((ic * p->kh + ki) * p->kw + kj) * nc;
                const int64_t off = (int64_t)kj * p->dw - p->pw;
                int64_t lo, hi;
                valid_range(wo, sw, off, p->w_in, &lo, &hi);
                int64_t pos = c0, oh = c0 / wo, ow0 = c0 % wo;
                while (pos < c1) {
                    const int64_t ow1 = ow0 + (c1 - pos < wo - ow0 ? c1 - pos : wo - ow0);
                    float *d = dst + (pos - c0) - ow0; /* d[ow] for ow in [ow0, ow1) */
                    const int64_t ih = oh * p->sh - p->ph + (int64_t)ki * p->dh;
                    int64_t a = lo < ow0 ? ow0 : lo, e = hi > ow1 ? ow1 : hi;
                    if (ih < 0 || ih >= p->h_in || a >= e) {
                        run_fill(d + ow0, ow1 - ow0, 0.0f);
                    } else {
                        const float *xr = xc + ih * p->w_in;
                        run_fill(d + ow0, a - ow0, 0.0f);
                        if (sw == 1) {
                            run_copy(d + a, xr + a + off, e - a);
                        } else {
                            int64_t ow = a;
                            if (sw == 2) /* while both loads stay inside the row */
                                for (; ow + KV_N <= e && (ow + KV_N) * 2 + off <= p->w_in;
                                     ow += KV_N)
                                    kv_store(d + ow, kv_even(xr + ow * 2 + off));
                            for (; ow < e; ow++)
                                d[ow] = xr[ow * sw + off];
                        }
                        run_fill(d + e, ow1 - e, 0.0f);
                    }
                    pos += ow1 - ow0;
                    oh++;
                    ow0 = 0;
                }
            }
    }
}

/* Fill rows [0, m) x columns [c0, c1) of a (m, ld) matrix with the bias of each row. */
static void fill_bias(float *c, int64_t m, int64_t ld, int64_t c0, int64_t c1, const float *b)
{
    for (int64_t i = 0; i < m; i++)
        run_fill(c + i * ld + c0, c1 - c0, b[i]);
}

/* y (m x n, ldc) = w (m x k, rows k apart) @ b (k x n, ldb) (+ y when beta is 1): few rows and
 * enough columns through the AVX2 kernel that reads b in place, the rest through OpenBLAS. */
static void conv_gemm(unsigned flags, int m, int n, int k, const float *w, const float *b,
                      int ldb, float beta, float *y, int ldc)
{
    /* its 16-column blocks waste the lanes past n: narrow products stay with OpenBLAS */
    if (npe_kcpu_gemm_small_ok(flags, m) && (n % 16 == 0 || n >= 256))
        npe_kcpu_gemm_small_avx2(m, n, k, w, k, b, ldb, beta != 0.0f, y, ldc);
    else
        npe_blas_sgemm(1, 0, 0, m, n, k, 1.0f, w, k, b, ldb, beta, y, ldc);
}

static void forward_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    const conv_job *job = arg;
    const npe_conv2d_params *p = job->p;
    const conv_plan *pl = job->pl;
    float *col = job->scratch ? job->scratch + (size_t)thread * pl->per_thread : NULL;
    int64_t have = -1; /* the (image, group, tile) whose columns col holds */
    for (int64_t t = begin; t < end; t++) {
        const int64_t mb = t % pl->mblocks, ut = t / pl->mblocks;
        const int64_t tile = ut % pl->tiles, ug = ut / pl->tiles;
        const int64_t g = ug % p->groups, img = ug / p->groups;
        const int64_t c0 = tile * pl->tile_cols;
        const int64_t c1 = c0 + pl->tile_cols < pl->hw_out ? c0 + pl->tile_cols : pl->hw_out;
        const int64_t m0 = mb * pl->mrows;
        const int64_t m = pl->mrows < pl->cout_g - m0 ? pl->mrows : pl->cout_g - m0;
        const int64_t oc0 = g * pl->cout_g + m0;
        const float *xg = job->x + (img * p->c_in + g * pl->cin_g) * pl->hw_in;
        const float *wg = job->w + oc0 * pl->kdim;
        float *yg = job->y + (img * p->c_out + oc0) * pl->hw_out;
        float beta = 0.0f;
        if (job->b) {
            fill_bias(yg, m, pl->hw_out, c0, c1, job->b + oc0);
            beta = 1.0f;
        }
        if (pl->path == PATH_GEMM_1X1) {
            conv_gemm(job->flags, (int)m, (int)(c1 - c0), (int)pl->kdim, wg, xg + c0,
                      (int)pl->hw_in, beta, yg + c0, (int)pl->hw_out);
        } else {
            if (have != ut)
                im2col_tile(p, pl, xg, c0, c1, col);
            have = ut;
            conv_gemm(job->flags, (int)m, (int)(c1 - c0), (int)pl->kdim, wg, col, (int)(c1 - c0),
                      beta, yg + c0, (int)pl->hw_out);
        }
        if (job->ep)
            for (int64_t i = 0; i < m; i++)
                epilogue(job, oc0 + i, yg + i * pl->hw_out + c0, c1 - c0);
    }
}

/* Depthwise (one input channel per output channel): rows [r0, r1) of one output plane. Each tap
 * is a pass over the valid span of the output row, which with stride 1 is a contiguous
 * multiply-add the compiler vectorises. */
static void depthwise_rows(const npe_conv2d_params *p, const float *restrict xp,
                           const float *restrict wk, float bias, float *restrict yp, int64_t r0,
                           int64_t r1)
{
    const int64_t wo = p->w_out, w_in = p->w_in, sw = p->sw;
    for (int64_t oh = r0; oh < r1; oh++) {
        float *restrict yr = yp + oh * wo;
        for (int64_t ow = 0; ow < wo; ow++)
            yr[ow] = bias;
        for (int64_t ki = 0; ki < p->kh; ki++) {
            const int64_t ih = oh * p->sh - p->ph + ki * p->dh;
            if (ih < 0 || ih >= p->h_in)
                continue;
            const float *restrict xr = xp + ih * w_in;
            for (int64_t kj = 0; kj < p->kw; kj++) {
                const float wv = wk[ki * p->kw + kj];
                const int64_t off = kj * p->dw - p->pw;
                int64_t lo, hi;
                valid_range(wo, sw, off, w_in, &lo, &hi);
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++)
                        yr[ow] += wv * xr[ow + off];
                else
                    for (int64_t ow = lo; ow < hi; ow++)
                        yr[ow] += wv * xr[ow * sw + off];
            }
        }
    }
}

/* Offset of each tap (ki, kj) from an output's first phased input row, for depthwise_block and
 * its AVX2 twin: row ki*dh of the window, then column kj*dw found in phase (kj*dw) % sw. */
static void tap_offsets(const npe_conv2d_params *p, const conv_plan *pl, int64_t *toff)
{
    const int64_t rowf = p->sw * pl->lq;
    for (int64_t ki = 0; ki < p->kh; ki++)
        for (int64_t kj = 0; kj < p->kw; kj++) {
            const int64_t c = kj * p->dw;
            toff[ki * p->kw + kj] = ki * p->dh * rowf + c % p->sw * pl->lq + c / p->sw;
        }
}

/* Output rows [oh0, oh1) of one plane from padded, phased input rows (npe_kcpu_phase_rows)
 * starting at padded row oh0 * sh: every tap is an in-bounds contiguous load, and four
 * independent vector accumulators per 16 outputs keep the adds from waiting on each other. */
static void depthwise_block(const npe_conv2d_params *p, const conv_plan *pl, const float *rows,
                            const float *wk, float bias, float *yp, int64_t oh0, int64_t oh1)
{
    const int64_t wo = p->w_out, rowf = p->sw * pl->lq, kk = pl->kk;
    int64_t toff[DW_MAX_TAPS];
    kv wv[DW_MAX_TAPS];
    tap_offsets(p, pl, toff);
    for (int64_t t = 0; t < kk; t++)
        wv[t] = kv_set1(wk[t]);
    const kv vb = kv_set1(bias);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        const float *base = rows + (oh - oh0) * p->sh * rowf;
        float *yr = yp + oh * wo;
        int64_t ow = 0;
        for (; ow + 4 * KV_N <= wo; ow += 4 * KV_N) {
            kv a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            for (int64_t t = 0; t < kk; t++) {
                const float *src = base + toff[t] + ow;
                a0 += wv[t] * kv_load(src);
                a1 += wv[t] * kv_load(src + KV_N);
                a2 += wv[t] * kv_load(src + 2 * KV_N);
                a3 += wv[t] * kv_load(src + 3 * KV_N);
            }
            kv_store(yr + ow, a0);
            kv_store(yr + ow + KV_N, a1);
            kv_store(yr + ow + 2 * KV_N, a2);
            kv_store(yr + ow + 3 * KV_N, a3);
        }
        for (; ow + KV_N <= wo; ow += KV_N) {
            kv a0 = vb;
            for (int64_t t = 0; t < kk; t++)
                a0 += wv[t] * kv_load(base + toff[t] + ow);
            kv_store(yr + ow, a0);
        }
        for (; ow < wo; ow++) {
            float a = bias;
            for (int64_t t = 0; t < kk; t++)
                a += wk[t] * base[toff[t] + ow];
            yr[ow] = a;
        }
    }
}

#if NPE_KCPU_AVX2_CODE
/* depthwise_block with eight-float vectors and fused multiply-adds (NPE_KCPU_AVX2): the taps
 * are loads from cache, so the wider vectors and one instruction per tap are what it gains. */
__attribute__((target("avx2,fma"))) static void
depthwise_block_avx2(const npe_conv2d_params *p, const conv_plan *pl, const float *rows,
                     const float *wk, float bias, float *yp, int64_t oh0, int64_t oh1)
{
    const int64_t wo = p->w_out, rowf = p->sw * pl->lq, kk = pl->kk;
    int64_t toff[DW_MAX_TAPS];
    __m256 wv[DW_MAX_TAPS];
    tap_offsets(p, pl, toff);
    for (int64_t t = 0; t < kk; t++)
        wv[t] = _mm256_set1_ps(wk[t]);
    const __m256 vb = _mm256_set1_ps(bias);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        const float *base = rows + (oh - oh0) * p->sh * rowf;
        float *yr = yp + oh * wo;
        int64_t ow = 0;
        for (; ow + 32 <= wo; ow += 32) {
            __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            for (int64_t t = 0; t < kk; t++) {
                const float *src = base + toff[t] + ow;
                a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src), a0);
                a1 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src + 8), a1);
                a2 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src + 16), a2);
                a3 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src + 24), a3);
            }
            _mm256_storeu_ps(yr + ow, a0);
            _mm256_storeu_ps(yr + ow + 8, a1);
            _mm256_storeu_ps(yr + ow + 16, a2);
            _mm256_storeu_ps(yr + ow + 24, a3);
        }
        for (; ow + 8 <= wo; ow += 8) {
            __m256 a0 = vb;
            for (int64_t t = 0; t < kk; t++)
                a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(base + toff[t] + ow), a0);
            _mm256_storeu_ps(yr + ow, a0);
        }
        for (; ow < wo; ow++) {
            float a = bias;
            for (int64_t t = 0; t < kk; t++)
                a = fmaf(wk[t], base[toff[t] + ow], a);
            yr[ow] = a;
        }
    }
}
#endif

static void depthwise_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    const conv_job *job = arg;
    const npe_conv2d_params *p = job->p;
    const conv_plan *pl = job->pl;
    float *rows = pl->per_thread ? job->scratch + (size_t)thread * pl->per_thread : NULL;
    for (int64_t t = begin; t < end; t++) {
        const int64_t tile = t % pl->tiles, plane = t / pl->tiles;
        const int64_t oc = plane % p->c_out, img = plane / p->c_out;
        const int64_t ic = oc / pl->cout_g; /* group index == input channel */
        const float *xp = job->x + (img * p->c_in + ic) * pl->hw_in;
        const float *wk = job->w + oc * pl->kk;
        const float bias = job->b ? job->b[oc] : 0.0f;
        float *yp = job->y + plane * pl->hw_out;
        int64_t r0, r1;
        kcpu_split(p->h_out, pl->tiles, tile, &r0, &r1);
        if (!rows) {
            depthwise_rows(p, xp, wk, bias, yp, r0, r1);
            if (job->ep)
                epilogue(job, oc, yp + r0 * p->w_out, (r1 - r0) * p->w_out);
            continue;
        }
        for (int64_t oh0 = r0; oh0 < r1; oh0 += pl->rb) {
            const int64_t oh1 = oh0 + pl->rb < r1 ? oh0 + pl->rb : r1;
            npe_kcpu_phase_rows(xp, p->h_in, p->w_in, p->ph, p->pw, p->sw, pl->lq, oh0 * p->sh,
                                (oh1 - 1) * p->sh + (int64_t)(p->kh - 1) * p->dh + 1, 0.0f,
                                rows);
#if NPE_KCPU_AVX2_CODE
            if (job->flags & NPE_KCPU_AVX2)
                depthwise_block_avx2(p, pl, rows, wk, bias, yp, oh0, oh1);
            else
#endif
                depthwise_block(p, pl, rows, wk, bias, yp, oh0, oh1);
            if (job->ep)
                epilogue(job, oc, yp + oh0 * p->w_out, (oh1 - oh0) * p->w_out);
        }
    }
}

/* Transposed convolution of one (image, group, output-channel block): columns = W_g^T @ x_g over
 * whole input rows at a time, each column scattered (col2im) into the block's output planes,
 * which no other task touches. */
static void transposed_tasks(void *arg, int64_t begin, int64_t end, int thread)
{
    const conv_job *job = arg;
    const npe_conv2d_params *p = job->p;
    const conv_plan *pl = job->pl;
    float *col = job->scratch + (size_t)thread * pl->per_thread;
    const int64_t kk = pl->kk, w_in = p->w_in, wo = p->w_out, sw = p->sw;
    for (int64_t t = begin; t < end; t++) {
        const int64_t blk = t % pl->tiles, ug = t / pl->tiles;
        const int64_t g = ug % p->groups, img = ug / p->groups;
        const int64_t oc0 = blk * pl->cob;
        const int64_t oc1 = oc0 + pl->cob < pl->cout_g ? oc0 + pl->cob : pl->cout_g;
        const int64_t m = (oc1 - oc0) * kk;
        float *yb = job->y + (img * p->c_out + g * pl->cout_g + oc0) * pl->hw_out;
        for (int64_t oc = oc0; oc < oc1; oc++)
            run_fill(yb + (oc - oc0) * pl->hw_out, pl->hw_out,
                     job->b ? job->b[g * pl->cout_g + oc] : 0.0f);
        const float *xg = job->x + (img * p->c_in + g * pl->cin_g) * pl->hw_in;
        const float *wg = job->w + g * pl->cin_g * pl->cout_g * kk;
        for (int64_t c0 = 0; c0 < pl->hw_in; c0 += pl->tile_cols) {
            const int64_t nc = pl->tile_cols < pl->hw_in - c0 ? pl->tile_cols : pl->hw_in - c0;
            npe_blas_sgemm(1, 1, 0, (int)m, (int)nc, (int)pl->cin_g, 1.0f, wg + oc0 * kk,
                           (int)(pl->cout_g * kk), xg + c0, (int)pl->hw_in, 0.0f, col, (int)nc);
            const int64_t ih0 = c0 / w_in, rows = nc / w_in;
            for (int64_t r = 0; r < m; r++) {
                const int64_t ocl = r / kk, ki = r % kk / p->kw, kj = r % p->kw;
                float *restrict yp = yb + ocl * pl->hw_out;
                const float *restrict cr = col + r * nc;
                const int64_t off = kj * p->dw - p->pw;
                int64_t lo, hi;
                valid_range(w_in, sw, off, wo, &lo, &hi);
                for (int64_t rr = 0; rr < rows; rr++) {
                    const int64_t oh = (ih0 + rr) * p->sh - p->ph + ki * p->dh;
                    if (oh < 0 || oh >= p->h_out)
                        continue;
                    float *restrict yr = yp + oh * wo;
                    const float *restrict cw = cr + rr * w_in;
                    if (sw == 1)
                        for (int64_t iw = lo; iw < hi; iw++)
                            yr[iw + off] += cw[iw];
                    else
                        for (int64_t iw = lo; iw < hi; iw++)
                            yr[iw * sw + off] += cw[iw];
                }
            }
        }
        if (job->ep)
            for (int64_t oc = oc0; oc < oc1; oc++)
                epilogue(job, g * pl->cout_g + oc, yb + (oc - oc0) * pl->hw_out, pl->hw_out);
    }
}

static size_t plan_scratch_bytes(const conv_plan *pl)
{
    if (pl->path == PATH_WINOGRAD)
        return npe_kcpu_wino_scratch_floats(&pl->wino) * sizeof(float);
    return pl->per_thread * sizeof(float) * (size_t)pl->nthreads;
}

static void conv2d_run(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                       const float *x, const float *w, const void *prep, const float *b,
                       const npe_conv_epilogue *ep, float *y)
{
    if (ep && !(ep->scale && ep->shift) && ep->act <= 0)
        ep = NULL;
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    conv_plan pl;
    make_plan(p, kcpu_threads(ex), flags, &pl);
    npe_kexec fewer;
    if (ex && pl.nthreads < kcpu_threads(ex)) {
        /* small convolution: fewer threads than offered, and scratch indexed for that many */
        fewer = *ex;
        fewer.nthreads = pl.nthreads;
        ex = &fewer;
    }
    if (pl.path == PATH_REF) {
        npe_ref_conv2d_ep(ex, p, x, w, b, ep, y);
        return;
    }
    conv_job job = {p, &pl, x, w, b, y, NULL, ep, flags};
    void *owned = NULL;
    const size_t need = plan_scratch_bytes(&pl);
    if (need) {
        if (ex && ex->scratch && ex->scratch_size >= need) {
            job.scratch = ex->scratch;
        } else {
            /* The caller gave less scratch than conv2d_scratch asked for (or none): borrow
             * from the heap, and if even that fails the reference needs none. */
            owned = aligned_alloc(64, (need + 63) / 64 * 64);
            if (!owned) {
                npe_ref_conv2d_ep(ex, p, x, w, b, ep, y);
                return;
            }
            job.scratch = owned;
        }
    }
    switch (pl.path) {
    case PATH_DEPTHWISE:
        kcpu_for(ex, pl.ntasks, depthwise_tasks, &job);
        break;
    case PATH_TRANSPOSED:
        kcpu_for(ex, pl.ntasks, transposed_tasks, &job);
        break;
    case PATH_WINOGRAD:
        npe_kcpu_wino_run(ex, flags, p, &pl.wino, x, w, prep, b, ep, y, job.scratch);
        break;
    default:
        kcpu_for(ex, pl.ntasks, forward_tasks, &job);
        break;
    }
    free(owned);
}

static size_t conv2d_scratch_run(unsigned flags, const npe_conv2d_params *p, int nthreads)
{
    conv_plan pl;
    make_plan(p, (flags & NPE_KCPU_THREADS) ? nthreads : 1, flags, &pl);
    return plan_scratch_bytes(&pl);
}

/* Only the Winograd path takes prepared weights. */
static size_t conv2d_prep_bytes_run(unsigned flags, const npe_conv2d_params *p, int nthreads)
{
    conv_plan pl;
    make_plan(p, (flags & NPE_KCPU_THREADS) ? nthreads : 1, flags, &pl);
    return pl.path == PATH_WINOGRAD ? npe_kcpu_wino_prep_bytes(p) : 0;
}

static void conv2d_prep_run(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                            const float *w, void *prep)
{
    npe_kexec serial;
    if (!(flags & NPE_KCPU_THREADS))
        ex = serial_exec(ex, &serial);
    npe_kcpu_wino_prep(ex, flags, p, w, prep);
}

/* One entry pair per flag combination, so a table keeps its own level. */
#define CONV_VARIANT(name, fl)                                                                 \
    static size_t conv2d_scratch_##name(const npe_conv2d_params *p, int nthreads)           \
    {                                                                                          \
        return conv2d_scratch_run(fl, p, nthreads);                                           \
    }                                                                                          \
    static void conv2d_##name(const npe_kexec *ex, const npe_conv2d_params *p, const float *x, \
                              const float *w, const float *b, float *y)                        \
    {                                                                                          \
        conv2d_run(ex, fl, p, x, w, NULL, b, NULL, y);                                         \
    }                                                                                          \
    static void conv2d_ep_##name(const npe_kexec *ex, const npe_conv2d_params *p,              \
                                 const float *x, const float *w, const void *prep,             \
                                 const float *b, const npe_conv_epilogue *ep, float *y)        \
    {                                                                                          \
        conv2d_run(ex, fl, p, x, w, prep, b, ep, y);                                           \
    }                                                                                          \
    static size_t conv2d_prep_bytes_##name(const npe_conv2d_params *p, int nthreads)           \
    {                                                                                          \
        return conv2d_prep_bytes_run(fl, p, nthreads);                                         \
    }                                                                                          \
    static void conv2d_prep_##name(const npe_kexec *ex, const npe_conv2d_params *p,            \
                                   const float *w, void *prep)                                 \
    {                                                                                          \
        conv2d_prep_run(ex, fl, p, w, prep);                                                   \
    }

CONV_VARIANT(b, NPE_KCPU_BLAS)
CONV_VARIANT(s, NPE_KCPU_SIMD)
CONV_VARIANT(bs, NPE_KCPU_BLAS | NPE_KCPU_SIMD)
CONV_VARIANT(bt, NPE_KCPU_BLAS | NPE_KCPU_THREADS)
CONV_VARIANT(st, NPE_KCPU_SIMD | NPE_KCPU_THREADS)
CONV_VARIANT(bst, NPE_KCPU_BLAS | NPE_KCPU_SIMD | NPE_KCPU_THREADS)
#if NPE_KCPU_AVX2_CODE
CONV_VARIANT(s_x, NPE_KCPU_SIMD | NPE_KCPU_AVX2)
CONV_VARIANT(bs_x, NPE_KCPU_BLAS | NPE_KCPU_SIMD | NPE_KCPU_AVX2)
CONV_VARIANT(st_x, NPE_KCPU_SIMD | NPE_KCPU_THREADS | NPE_KCPU_AVX2)
CONV_VARIANT(bst_x, NPE_KCPU_BLAS | NPE_KCPU_SIMD | NPE_KCPU_THREADS | NPE_KCPU_AVX2)
#endif

void npe_kcpu_init_conv(npe_kernels *k, unsigned flags)
{
    switch (flags & (NPE_KCPU_BLAS | NPE_KCPU_SIMD | NPE_KCPU_THREADS)) {
    case NPE_KCPU_BLAS:
        k->conv2d_scratch = conv2d_scratch_b, k->conv2d = conv2d_b;
        k->conv2d_ep = conv2d_ep_b;
        k->conv2d_prep_bytes = conv2d_prep_bytes_b, k->conv2d_prep = conv2d_prep_b;
        break;
    case NPE_KCPU_SIMD:
        k->conv2d_scratch = conv2d_scratch_s, k->conv2d = conv2d_s;
        k->conv2d_ep = conv2d_ep_s;
        k->conv2d_prep_bytes = conv2d_prep_bytes_s, k->conv2d_prep = conv2d_prep_s;
        break;
    case NPE_KCPU_BLAS | NPE_KCPU_SIMD:
        k->conv2d_scratch = conv2d_scratch_bs, k->conv2d = conv2d_bs;
        k->conv2d_ep = conv2d_ep_bs;
        k->conv2d_prep_bytes = conv2d_prep_bytes_bs, k->conv2d_prep = conv2d_prep_bs;
        break;
    case NPE_KCPU_BLAS | NPE_KCPU_THREADS:
        k->conv2d_scratch = conv2d_scratch_bt, k->conv2d = conv2d_bt;
        k->conv2d_ep = conv2d_ep_bt;
        k->conv2d_prep_bytes = conv2d_prep_bytes_bt, k->conv2d_prep = conv2d_prep_bt;
        break;
    case NPE_KCPU_SIMD | NPE_KCPU_THREADS:
        k->conv2d_scratch = conv2d_scratch_st, k->conv2d = conv2d_st;
        k->conv2d_ep = conv2d_ep_st;
        k->conv2d_prep_bytes = conv2d_prep_bytes_st, k->conv2d_prep = conv2d_prep_st;
        break;
    case NPE_KCPU_BLAS | NPE_KCPU_SIMD | NPE_KCPU_THREADS:
        k->conv2d_scratch = conv2d_scratch_bst, k->conv2d = conv2d_bst;
        k->conv2d_ep = conv2d_ep_bst;
        k->conv2d_prep_bytes = conv2d_prep_bytes_bst, k->conv2d_prep = conv2d_prep_bst;
        break;
    default: /* nothing to gain over the reference without BLAS or SIMD */
        break;
    }
#if NPE_KCPU_AVX2_CODE
    if (!(flags & NPE_KCPU_SIMD) || !(flags & NPE_KCPU_AVX2))
        return;
    switch (flags & (NPE_KCPU_BLAS | NPE_KCPU_THREADS)) {
    case 0:
        k->conv2d_scratch = conv2d_scratch_s_x, k->conv2d = conv2d_s_x;
        k->conv2d_ep = conv2d_ep_s_x;
        k->conv2d_prep_bytes = conv2d_prep_bytes_s_x, k->conv2d_prep = conv2d_prep_s_x;
        break;
    case NPE_KCPU_BLAS:
        k->conv2d_scratch = conv2d_scratch_bs_x, k->conv2d = conv2d_bs_x;
        k->conv2d_ep = conv2d_ep_bs_x;
        k->conv2d_prep_bytes = conv2d_prep_bytes_bs_x, k->conv2d_prep = conv2d_prep_bs_x;
        break;
    case NPE_KCPU_THREADS:
        k->conv2d_scratch = conv2d_scratch_st_x, k->conv2d = conv2d_st_x;
        k->conv2d_ep = conv2d_ep_st_x;
        k->conv2d_prep_bytes = conv2d_prep_bytes_st_x, k->conv2d_prep = conv2d_prep_st_x;
        break;
    default:
        k->conv2d_scratch = conv2d_scratch_bst_x, k->conv2d = conv2d_bst_x;
        k->conv2d_ep = conv2d_ep_bst_x;
        k->conv2d_prep_bytes = conv2d_prep_bytes_bst_x, k->conv2d_prep = conv2d_prep_bst_x;
        break;
    }
#endif
}
