/* 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016): each 4x4 block of outputs ("tile") comes from the
 * 6x6 block of inputs under it with 36 multiplications per (input, output) channel pair instead
 * of 144. Per block of tiles:
 *
 *   V[xi][ic][t] = (B^T d B)[xi]   for the 6x6 input block d of tile t in channel ic
 *   M[xi]        = U[.][xi] @ V[xi] 36 products: (Cout x Cin) @ (Cin x tiles)
 *   y tile       = A^T M A          plus the bias, then the fused epilogue
 *
 * where U[oc][xi][ic] = (G g G^T)[xi] is the filter g transformed once per call, or prepared once
 * for many (npe_kcpu_wino_prep). Stride 2 takes the same steps with 81 points per tile (see
 * s2_point below). The transforms run on vectors across the tiles of a block (winograd_body.h,
 * once with the portable four-float vectors and once for AVX2+FMA, chosen at run time): the
 * portable instance splits input rows into their four column phases and copies each tile's
 * input block out as arrays over the tiles; the AVX2 one loads each row of eight tiles' blocks
 * and transposes them, and keeps U packed for its own product kernel (wino_packed). Results
 * differ from the direct sum by rounding only (the transforms scale by at most 8 and 1/24),
 * within the 1e-4 relative tolerance the kernel tests hold every conv path to. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cpu.h"
#include "vec.h"

/* Scratch per thread for the transformed inputs and products of a block (2 MiB: L2). */
#ifndef WINO_BLOCK_FLOATS
#define WINO_BLOCK_FLOATS (512 * 1024)
#endif
/* Tiles per block at least: each sgemm packs its whole (Cout x Cin) matrix of U again, which a
 * narrow block cannot amortise. */
#define WINO_MIN_TILES 64
/* Widest vector of the instances below, in floats. */
#define WINO_MAX_WV 8

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static size_t round16(int64_t v)
{
    return (size_t)((v + 15) / 16 * 16);
}

/* At least v floats, an odd number of 64-byte lines: the 36 transform points of a block are
 * read and written as 36 streams this far apart, which at a power of two (64 channels of 128
 * tiles: 32 KiB) would all fall in the same cache sets. */
static int64_t point_stride(int64_t v)
{
    const int64_t s = (int64_t)round16(v);
    return s / 16 % 2 ? s : s + 16;
}

/* Stride 2, by splitting the filter into its taps on even and odd inputs (as Huang et al., "DWM:
 * A Decomposable Winograd Method for Convolution Acceleration", 2020). Along one direction,
 * the four outputs y[o] = g0 x[2o] + g1 x[2o+1] + g2 x[2o+2] of a tile read the nine inputs
 * x[0..8] under it: the odd inputs x[1], x[3], x[5], x[7] meet the middle tap alone (four
 * "points" where the transformed filter is g1), and the even ones x[0], x[2], .., x[8] the outer
 * taps (g0, g2) as a two-tap filter over four outputs, done by F(4, 2) in five points. Across
 * both directions that is 81 points per tile (81 multiplications per channel pair instead of
 * 144) but only 36 distinct transformed filters ("slices" q of U, laid out as stride 1's 36
 * points): the 16 odd-odd points share g[1][1] (q 0), the odd-row even-column points share one
 * slice per column point (q 1-5, four each), the even-row odd-column ones one per row point
 * (q 6-10, four each), and the 25 even-even points have one each (q 11-35). Points that share a
 * slice are one product, their tile arrays side by side. Point pr (and pc) 0-3 is the odd input
 * 2pr+1, 4-8 the even inputs' F(4, 2) point pr-4. */
static int s2_share(int q)
{
    return q == 0 ? 16 : q <= 10 ? 4 : 1;
}

/* The slice q of point (pr, pc) and the point's place r among the points that share it. */
static inline __attribute__((always_inline)) void s2_point(int pr, int pc, int *q, int *r)
{
    if (pr < 4 && pc < 4) {
        *q = 0;
        *r = pr * 4 + pc;
    } else if (pr < 4) {
        *q = 1 + (pc - 4);
        *r = pr;
    } else if (pc < 4) {
        *q = 6 + (pr - 4);
        *r = pc;
    } else {
        *q = 11 + (pr - 4) * 5 + (pc - 4);
        *r = 0;
    }
}

/* NPE_CONV_WINOGRAD=0, read on the first plan only (plans are made on every call). */
static int wino_disabled(void)
{
    static _Atomic int off = -1;
    int v = atomic_load_explicit(&off, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("NPE_CONV_WINOGRAD");
        v = e && e[0] == '0';
        atomic_store_explicit(&off, v, memory_order_relaxed);
    }
    return v;
}

/* The shapes of weights Winograd may take (some batch and image sizes aside). */
static int wino_weights_ok(const npe_conv2d_params *p)
{
    if (p->transposed || p->groups != 1 || p->kh != 3 || p->kw != 3 || p->sh != p->sw ||
        (p->sh != 1 && p->sh != 2) || p->dh != 1 || p->dw != 1)
        return 0;
    return npe_kcpu_fine_grain ? (int64_t)p->c_in * p->c_out >= 64
                               : p->c_in >= 32 && p->c_out >= 32;
}

size_t npe_kcpu_wino_prep_bytes(const npe_conv2d_params *p)
{
    if (!wino_weights_ok(p) || wino_disabled())
        return 0;
    return 36 * (size_t)p->c_out * (size_t)p->c_in * sizeof(float);
}

/* Where the AVX2 kernel runs the products, U's slices are packed for it (each slice's rows in
 * groups of six, a group's six elements of an input channel side by side: one stream for the
 * kernel's broadcasts instead of six rows 36 * Cin floats apart), made so by the AVX2 instance's
 * filter transform; elsewhere OpenBLAS reads U[oc][q][ic] as it is. (The same products in a
 * harness, 36 slices from memory: 256 x 512 by 32 tiles 80 -> 86 GF/s, 256 x 256 by 64 75 ->
 * 92, 128 x 128 by 64 80 -> 110.) */
static int wino_packed(unsigned flags)
{
    return npe_kcpu_gemm_small_ok(flags, 1);
}

int npe_kcpu_wino_plan(unsigned flags, const npe_conv2d_params *p, int nthreads,
                       npe_wino_plan *wp)
{
    memset(wp, 0, sizeof(*wp));
    if (!wino_weights_ok(p))
        return 0;
    const int64_t tw = ceil_div(p->w_out, 4), th = ceil_div(p->h_out, 4);
    const int64_t units = (int64_t)p->n * th, tiles = units * tw;
    /* Small channel counts leave the transforms (linear in the channels) to dominate the
     * products (quadratic); few tiles leave the filter transform to dominate, and with several
     * threads splitting few tiles by channels each thread transforms every input (bench/: YOLO's
     * 3x3 64->64 at 20x20, 25 tiles, 1.3x sgemm's rate on one thread, 0.7x on two). Under the test
     * hook every small shape takes this path, so the random kernel cases cover it. */
    if (!npe_kcpu_fine_grain &&
        (tiles < 16 ||
         (tiles < (nthreads > 1 ? 32 : 24) && (int64_t)p->c_in * p->c_out < 128 * 128)))
        return 0;
    if (wino_disabled())
        return 0;
    wp->nthreads = nthreads < 1 ? 1 : nthreads;
    wp->packed = wino_packed(flags);
    wp->tw = tw;
    wp->th = th;
    wp->units = units;
    wp->s2 = p->sh == 2;
    const int np = wp->s2 ? 81 : 36; /* transform points per tile */
    int64_t tb = WINO_BLOCK_FLOATS / (np * ((int64_t)p->c_in + p->c_out));
    if (tb < WINO_MIN_TILES)
        tb = WINO_MIN_TILES;
    if (npe_kcpu_fine_grain)
        tb = 1;
    /* Tile blocks in a multiple of the threads while each thread still gets WINO_MIN_TILES;
     * with fewer tiles, blocks of output channels instead: each thread then packs only its
     * rows of U, which a split by tiles would make every thread pack whole. */
    int64_t blocks = ceil_div(units, ceil_div(tb, tw));
    wp->mblocks = 1;
    wp->mrows = p->c_out;
    /* the test hook takes the channel split for single images, so both are covered */
    const int by_tiles = npe_kcpu_fine_grain ? p->n > 1
                                             : tiles >= (int64_t)wp->nthreads * WINO_MIN_TILES;
    if (by_tiles) {
        blocks = ceil_div(blocks, wp->nthreads) * wp->nthreads;
        if (blocks > units)
            blocks = units;
    } else if (blocks < wp->nthreads || npe_kcpu_fine_grain) {
        int64_t want = ceil_div(wp->nthreads, blocks);
        if (npe_kcpu_fine_grain && want < 2)
            want = 2;
        int64_t rows = ceil_div(p->c_out, want);
        if (wino_packed(flags)) /* whole groups of packed rows */
            rows = ceil_div(rows, 6) * 6;
        else if (!npe_kcpu_fine_grain) /* whole register blocks of sgemm's kernel */
            rows = ceil_div(rows, 16) * 16;
        if (rows > p->c_out)
            rows = p->c_out;
        wp->mrows = rows;
        wp->mblocks = ceil_div(p->c_out, rows);
    }
    wp->upb = ceil_div(units, blocks);
    wp->blocks = ceil_div(units, wp->upb);
    const int64_t upb = wp->upb;
    wp->ntasks = wp->blocks * wp->mblocks;
    /* stride 2: points sharing a slice of U are one product over their tile arrays side by
     * side, slack included, which the input transform then fills with zeros */
    wp->tbs = (int64_t)round16(upb * tw + (wp->s2 ? 0 : WINO_MAX_WV));
    wp->lq = tw + 1;
    for (int q = 0; q < 36; q++) {
        const int64_t k = wp->s2 ? s2_share(q) : 1;
        wp->vq[q + 1] = wp->vq[q] + point_stride(k * p->c_in * wp->tbs);
        wp->mq[q + 1] = wp->mq[q] + point_stride(k * wp->mrows * wp->tbs);
    }
    wp->per_thread = (size_t)(wp->vq[36] + wp->mq[36]) + round16(6 * 4 * wp->lq) +
                     round16((np + 16 + np) * wp->tbs);
    wp->shared = round16(36 * (int64_t)p->c_out * p->c_in);
    /* Split by channels, every task of a block would transform the block's inputs again: they
     * are transformed once instead, by all threads, into V's of the blocks after U. */
    wp->vblock = wp->mblocks > 1 ? wp->vq[36] : 0;
    wp->shared += (size_t)wp->blocks * wp->vblock;
    return 1;
}

size_t npe_kcpu_wino_scratch_floats(const npe_wino_plan *wp)
{
    return wp->per_thread * (size_t)wp->nthreads + wp->shared;
}

/* ---- Transforms ------------------------------------------------------------------------------ */
/* r[c] lane l <-> r[l] lane c for four vectors of four (a 4x4 transpose); other widths never
 * call it. */
#if KV_N == 4
KV_INLINE void kv_transpose4(kv *r)
{
#if defined(__clang__)
    const kv t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    const kv t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    const kv t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    const kv t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
    r[1] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
    r[2] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
    r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
#else
    const kv t0 = __builtin_shuffle(r[0], r[1], (kvi){0, 4, 1, 5});
    const kv t1 = __builtin_shuffle(r[0], r[1], (kvi){2, 6, 3, 7});
    const kv t2 = __builtin_shuffle(r[2], r[3], (kvi){0, 4, 1, 5});
    const kv t3 = __builtin_shuffle(r[2], r[3], (kvi){2, 6, 3, 7});
    r[0] = __builtin_shuffle(t0, t2, (kvi){0, 1, 4, 5});
    r[1] = __builtin_shuffle(t0, t2, (kvi){2, 3, 6, 7});
    r[2] = __builtin_shuffle(t1, t3, (kvi){0, 1, 4, 5});
    r[3] = __builtin_shuffle(t1, t3, (kvi){2, 3, 6, 7});
#endif
}
#endif

typedef struct wino_job {
    const npe_conv2d_params *p;
    const npe_wino_plan *wp;
    const float *x, *w, *b;
    float *y;
    float *u;                /* the transformed filters: made here, or prepared */
    const float *u_ready;    /* prepared ones (u then points at them), or NULL */
    float *scratch;
    const npe_conv_epilogue *ep;
    unsigned flags;
    float *vsh; /* the blocks' transformed inputs when split by channels (wp->vblock apart) */
} wino_job;

/* A thread's scratch past its transformed inputs: products, phased rows, input blocks (36 or 81
 * arrays of tbs floats) and outputs (16 arrays). */
typedef struct wino_bufs {
    float *m, *rows, *d, *o;
    int32_t *msk; /* the AVX2 instance's row loads: each tile's column masks (d then holds its
                   * tile tables) */
} wino_bufs;

static float *thread_bufs(const wino_job *job, int thread, wino_bufs *bf)
{
    const npe_wino_plan *wp = job->wp;
    float *v = job->scratch + (size_t)thread * wp->per_thread;
    bf->m = v + wp->vq[36];
    bf->rows = bf->m + wp->mq[36];
    bf->d = bf->rows + round16(6 * 4 * wp->lq);
    bf->o = bf->d + (wp->s2 ? 81 : 36) * wp->tbs;
    bf->msk = (int32_t *)(bf->o + 16 * wp->tbs);
    return v;
}

/* M[q] = U's slice q (rows oc0.. of m) @ V[q] over n tiles: 36 single-threaded products, by
 * the AVX2 kernel on packed slices or by OpenBLAS on U[oc][q][ic]. */
static void block_products(const wino_job *job, int64_t n, int64_t oc0, int64_t m, const float *v,
                           float *mb)
{
    const npe_conv2d_params *p = job->p;
    const int64_t ts = job->wp->tbs;
    for (int q = 0; q < 36; q++) {
        /* stride 2: the k points sharing slice q side by side, k * ts apart per channel */
        const int64_t k = job->wp->s2 ? s2_share(q) : 1, cols = (k - 1) * ts + n;
        const float *vx = v + job->wp->vq[q];
        float *mx = mb + job->wp->mq[q];
        if (job->wp->packed) /* oc0 starts a group of six */
            npe_kcpu_gemm_packed_avx2((int)m, (int)cols, p->c_in,
                                      job->u + ((int64_t)q * p->c_out + oc0) * p->c_in, vx,
                                      (int)(k * ts), mx, (int)(k * ts));
        else
            npe_blas_sgemm(1, 0, 0, (int)m, (int)cols, p->c_in, 1.0f,
                           job->u + (oc0 * 36 + q) * p->c_in, 36 * p->c_in, vx, (int)(k * ts),
                           0.0f, mx, (int)(k * ts));
    }
}

/* Padded rows [r0, r0 + 6) of plane xp in four column phases of lq floats: element j of phase
 * q of padded row a is x[r0 + a - ph][4j + q - pw], 0 outside the input (as
 * npe_kcpu_phase_rows with stride 4, with a 4x4 transpose per four elements inside the row). */
static void phase_rows4(const npe_conv2d_params *p, const float *xp, int64_t r0, int64_t lq,
                        float *dst)
{
    const int64_t w = p->w_in, pw = p->pw;
    for (int a = 0; a < 6; a++) {
        float *row = dst + a * 4 * lq;
        const int64_t ih = r0 + a - p->ph;
        if (ih < 0 || ih >= p->h_in) {
            memset(row, 0, (size_t)(4 * lq) * sizeof(float));
            continue;
        }
        const float *xr = xp + ih * w;
        int64_t j = 0;
#if KV_N == 4
        /* vectors once the first column is inside, while all sixteen are */
        for (; j < lq && 4 * j - pw < 0; j++)
            for (int q4 = 0; q4 < 4; q4++) {
                const int64_t c = 4 * j + q4 - pw;
                row[q4 * lq + j] = c >= 0 && c < w ? xr[c] : 0.0f;
            }
        for (; j + 4 <= lq && 4 * j - pw + 16 <= w; j += 4) {
            const float *src = xr + 4 * j - pw;
            kv v[4] = {kv_load(src), kv_load(src + 4), kv_load(src + 8), kv_load(src + 12)};
            kv_transpose4(v);
            for (int q4 = 0; q4 < 4; q4++)
                kv_store(row + q4 * lq + j, v[q4]);
        }
#endif
        for (; j < lq; j++)
            for (int q4 = 0; q4 < 4; q4++) {
                const int64_t c = 4 * j + q4 - pw;
                row[q4 * lq + j] = c >= 0 && c < w ? xr[c] : 0.0f;
            }
    }
}

#define WV KV_N
#define WB(name) wino_##name##_base
#include "winograd_body.h"
#undef WB
#undef WV

#if NPE_KCPU_AVX2_CODE
NPE_KCPU_AVX2_BEGIN
#define WV 8
#define WB(name) wino_##name##_avx2
#define WB_AVX2 1
#include <immintrin.h>
#include "winograd_body.h"
#undef WB_AVX2
#undef WB
#undef WV
NPE_KCPU_AVX2_END
#endif

void npe_kcpu_wino_run(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                       const npe_wino_plan *wp, const float *x, const float *w, const void *prep,
                       const float *b, const npe_conv_epilogue *ep, float *y, float *scratch)
{
    float *u = scratch + wp->per_thread * (size_t)wp->nthreads;
    wino_job job = {p, wp, x, w, b, y, u, prep, scratch, ep, flags,
                    u + round16(36 * (int64_t)p->c_out * p->c_in)};
    if (prep)
        job.u = (float *)prep; /* read only: the filter pass is skipped */
#if NPE_KCPU_AVX2_CODE
    if (wp->packed) { /* the AVX2 instance makes and reads U packed */
        wino_run_avx2(ex, &job);
        return;
    }
#endif
    wino_run_base(ex, &job);
}

void npe_kcpu_wino_prep(const npe_kexec *ex, unsigned flags, const npe_conv2d_params *p,
                        const float *w, void *prep)
{
    wino_job job = {0};
    job.p = p;
    job.w = w;
    job.u = prep;
#if NPE_KCPU_AVX2_CODE
    if (wino_packed(flags)) { /* as npe_kcpu_wino_run: packed for the AVX2 instance */
        kcpu_for(ex, p->c_out, wino_filter_tasks_avx2, &job);
        return;
    }
#endif
    (void)flags;
    kcpu_for(ex, p->c_out, wino_filter_tasks_base, &job);
}
