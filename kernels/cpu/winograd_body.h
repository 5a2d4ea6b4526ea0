/* The transforms and block loop of winograd.c, included there once per instruction set: WB(x)
 * names this instance's functions and WV is its vector width in floats. Vectors run across the
 * tiles of a block (all its tile rows, so small images fill them too): the 6x6 input blocks are
 * first copied out as 36 arrays over the tiles ("D"), and the 16 outputs of every tile are
 * produced as 16 arrays ("O") before they are scattered into the output planes. */

#if WV > 1
typedef float WB(vec) __attribute__((vector_size(WV * sizeof(float))));
#else
typedef float WB(vec);
#endif
#define VEC WB(vec)

static inline __attribute__((always_inline)) VEC WB(ld)(const float *p)
{
    VEC v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline __attribute__((always_inline)) void WB(st)(float *p, VEC v)
{
    memcpy(p, &v, sizeof(v));
}

static inline __attribute__((always_inline)) VEC WB(set1)(float s)
{
    VEC v;
    for (int i = 0; i < WV; i++)
        memcpy((char *)&v + i * sizeof(float), &s, sizeof(float));
    return v;
}

/* y = B^T x for a column x of six: the input transform along one direction. */
static inline __attribute__((always_inline)) void WB(bt)(const VEC *x, VEC *y)
{
    const VEC four = WB(set1)(4.0f), five = WB(set1)(5.0f), two = WB(set1)(2.0f);
    const VEC p = x[4] - four * x[2], q = four * x[1] - x[3];
    const VEC r = x[4] - x[2], s = two * (x[1] - x[3]);
    y[0] = four * x[0] - five * x[2] + x[4];
    y[1] = p - q;
    y[2] = p + q;
    y[3] = r - s;
    y[4] = r + s;
    y[5] = four * x[1] - five * x[3] + x[5];
}

/* o = A^T m for a column m of six: the output transform along one direction. */
static inline __attribute__((always_inline)) void WB(at)(const VEC *m, VEC *o)
{
    const VEC s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + s12 + s34;
    o[1] = d12 + WB(set1)(2.0f) * d34;
    o[2] = s12 + WB(set1)(4.0f) * s34;
    o[3] = d12 + WB(set1)(8.0f) * d34 + m[5];
}

/* t = G g for a column g of three: G's rows are (1/4, 0, 0), -(1, 1, 1)/6, (-1, 1, -1)/6,
 * (1/4, 1/2, 1)/6, (1/4, -1/2, 1)/6 and (0, 0, 1). */
static inline __attribute__((always_inline)) void WB(g3)(VEC g0, VEC g1, VEC g2, VEC *t)
{
    const VEC h = WB(set1)(0.5f), q = WB(set1)(0.25f), s6 = WB(set1)(1.0f / 6.0f);
    const VEC e = g0 + g2, f = q * g0 + g2;
    t[0] = q * g0;
    t[1] = -(e + g1) * s6;
    t[2] = (g1 - e) * s6;
    t[3] = (f + h * g1) * s6;
    t[4] = (f - h * g1) * s6;
    t[5] = g2;
}

/* The nine taps of filters oc at input channels [ic0, ic0 + nl) as vectors over the channels
 * (lanes past nl zero), and the store of a vector's first nl lanes. */
static inline __attribute__((always_inline)) void WB(filter_taps)(const float *w, int64_t cin,
                                                                  int64_t oc, int64_t ic0,
                                                                  int64_t nl, VEC *g)
{
    float lanes[9][WV] = {{0}};
    for (int64_t l = 0; l < nl; l++)
        for (int e = 0; e < 9; e++)
            lanes[e][l] = w[(oc * cin + ic0 + l) * 9 + e];
    for (int e = 0; e < 9; e++)
        g[e] = WB(ld)(lanes[e]);
}

static inline __attribute__((always_inline)) void WB(st_lanes)(float *dst, VEC v, int64_t nl)
{
    if (nl == WV) {
        WB(st)(dst, v);
    } else {
        float tmp[WV];
        WB(st)(tmp, v);
        memcpy(dst, tmp, (size_t)nl * sizeof(float));
    }
}

/* Slice q of filter oc at input channels [ic0, ic0 + nl): U[oc][q][ic] in the portable instance,
 * packed for npe_kcpu_gemm_packed_avx2 in the AVX2 one (winograd.c: wino_packed). */
static inline __attribute__((always_inline)) void WB(u_store)(const npe_conv2d_params *p,
                                                              float *u, int64_t oc, int q,
                                                              int64_t ic0, VEC v, int64_t nl)
{
    const int64_t cin = p->c_in;
#ifdef WB_AVX2
    const int64_t g = oc / 6 * 6, w = p->c_out - g < 6 ? p->c_out - g : 6;
    float *dst = u + ((int64_t)q * p->c_out + g) * cin + ic0 * w + (oc - g);
    float tmp[WV];
    WB(st)(tmp, v);
    for (int64_t l = 0; l < nl; l++)
        dst[l * w] = tmp[l];
#else
    WB(st_lanes)(u + (oc * 36 + q) * cin + ic0, v, nl);
#endif
}

/* Filter oc's slices G g G^T at input channels [ic0, ic0 + nl) from its taps g. */
static inline __attribute__((always_inline)) void WB(filter_slices)(const npe_conv2d_params *p,
                                                                    float *u, int64_t oc,
                                                                    int64_t ic0, int64_t nl,
                                                                    const VEC *g)
{
    VEC t[3][6]; /* t[c][k] = (G g)[k][c] */
    for (int c = 0; c < 3; c++)
        WB(g3)(g[c], g[3 + c], g[6 + c], t[c]);
    for (int k = 0; k < 6; k++) {
        VEC r[6];
        WB(g3)(t[0][k], t[1][k], t[2][k], r);
        for (int l = 0; l < 6; l++)
            WB(u_store)(p, u, oc, k * 6 + l, ic0, r[l], nl);
    }
}

/* ---- Stride 2 (winograd.c: s2_point) ---- */
/* t = the nine points of taps (g0, g1, g2) along one direction: g1 at the four odd inputs, then
 * F(4, 2)'s G (rows (1, 0)/2, (1, 1)/2, (1, -1)/6, (1, 2)/6, (0, 1)) on the outer taps. */
static inline __attribute__((always_inline)) void WB(g9)(VEC g0, VEC g1, VEC g2, VEC *t)
{
    const VEC h = WB(set1)(0.5f), s6 = WB(set1)(1.0f / 6.0f);
    t[0] = t[1] = t[2] = t[3] = g1;
    t[4] = h * g0;
    t[5] = h * (g0 + g2);
    t[6] = s6 * (g0 - g2);
    t[7] = s6 * (g0 + g2 + g2);
    t[8] = g2;
}

/* y = the nine points of inputs x[0..8] along one direction: the odd inputs, then F(4, 2)'s B^T
 * (rows (2, -1, -2, 1, 0), (0, 2, 1, -1, 0), (0, -2, 3, -1, 0), (0, -1, 0, 1, 0),
 * (0, 2, -1, -2, 1), the first four scaled to integers against G's) on the even ones. */
static inline __attribute__((always_inline)) void WB(bt9)(const VEC *x, VEC *y)
{
    const VEC two = WB(set1)(2.0f), three = WB(set1)(3.0f);
    const VEC d0 = x[0], d1 = x[2], d2 = x[4], d3 = x[6], d4 = x[8];
    const VEC e = d3 - d1;
    y[0] = x[1];
    y[1] = x[3];
    y[2] = x[5];
    y[3] = x[7];
    y[4] = two * (d0 - d2) + e;
    y[5] = two * d1 + d2 - d3;
    y[6] = three * d2 - two * d1 - d3;
    y[7] = e;
    y[8] = d4 - d2 - two * e;
}

/* o = the four outputs of nine points m along one direction: the odd points are outputs
 * already, plus F(4, 2)'s A^T (rows (1, 1, 1, 1, 0), (0, 1, -1, 2, 0), (0, 1, 1, 4, 0),
 * (0, 1, -1, 8, 1)) of the others. */
static inline __attribute__((always_inline)) void WB(at9)(const VEC *m, VEC *o)
{
    const VEC s = m[5] + m[6], d = m[5] - m[6];
    o[0] = m[0] + m[4] + s + m[7];
    o[1] = m[1] + d + WB(set1)(2.0f) * m[7];
    o[2] = m[2] + s + WB(set1)(4.0f) * m[7];
    o[3] = m[3] + d + WB(set1)(8.0f) * m[7] + m[8];
}

/* Stride 2: filter oc's slices at input channels [ic0, ic0 + nl), each from point (pr, pc) of
 * the first point sharing it. */
static inline __attribute__((always_inline)) void WB(filter_slices_s2)(
    const npe_conv2d_params *p, float *u, int64_t oc, int64_t ic0, int64_t nl, const VEC *g)
{
    VEC t[3][9]; /* t[c][pr]: filter column c at row point pr */
    for (int c = 0; c < 3; c++)
        WB(g9)(g[c], g[3 + c], g[6 + c], t[c]);
    for (int pr = 0; pr < 9; pr++) {
        VEC r[9];
        WB(g9)(t[0][pr], t[1][pr], t[2][pr], r);
        for (int pc = 0; pc < 9; pc++) {
            int q, rr;
            s2_point(pr, pc, &q, &rr);
            if (rr == 0)
                WB(u_store)(p, u, oc, q, ic0, r[pc], nl);
        }
    }
}

/* U for filters [oc0, oc1), vectors across input channels. */
static void WB(filters)(const npe_conv2d_params *p, const float *w, float *u, int64_t oc0,
                        int64_t oc1)
{
    const int64_t cin = p->c_in;
    for (int64_t oc = oc0; oc < oc1; oc++)
        for (int64_t ic0 = 0; ic0 < cin; ic0 += WV) {
            const int64_t nl = cin - ic0 < WV ? cin - ic0 : WV;
            VEC g[9];
            WB(filter_taps)(w, cin, oc, ic0, nl, g);
            if (p->sh == 2)
                WB(filter_slices_s2)(p, u, oc, ic0, nl, g);
            else
                WB(filter_slices)(p, u, oc, ic0, nl, g);
        }
}

/* Where each point's tile arrays start in V (or M, from mq) and how far apart successive
 * channels' are: the k points sharing a slice lie side by side in one row per channel. */
static void WB(s2_places)(const npe_wino_plan *wp, const int64_t *qoff, int64_t *start,
                          int64_t *step)
{
    for (int pr = 0; pr < 9; pr++)
        for (int pc = 0; pc < 9; pc++) {
            int q, r;
            s2_point(pr, pc, &q, &r);
            start[pr * 9 + pc] = qoff[q] + r * wp->tbs;
            step[pr * 9 + pc] = s2_share(q) * wp->tbs;
        }
}

/* The 81 points of a tile column-pass: x[a][pc] (rows through bt9) to V, t of channel ic. */
static inline __attribute__((always_inline)) void WB(columns9)(VEC x[9][9], float *v,
                                                               const int64_t *start,
                                                               const int64_t *step, int64_t ic,
                                                               int64_t t)
{
    for (int pc = 0; pc < 9; pc++) {
        VEC col[9], o[9];
        for (int a = 0; a < 9; a++)
            col[a] = x[a][pc];
        WB(bt9)(col, o);
        for (int pr = 0; pr < 9; pr++)
            WB(st)(v + start[pr * 9 + pc] + ic * step[pr * 9 + pc] + t, o[pr]);
    }
}

static void WB(filter_tasks)(void *arg, int64_t begin, int64_t end, int thread)
{
    const wino_job *job = arg;
    (void)thread;
    WB(filters)(job->p, job->w, job->u, begin, end);
}

/* The column pass of the input transform on r (rows already through B^T), stored to the 36
 * transform points xs floats apart from v; lanes past the block's tiles land in the slack of its
 * rows (tbs >= n + WV). */
static inline __attribute__((always_inline)) void WB(columns)(VEC r[6][6], float *v, int64_t xs)
{
    for (int k = 0; k < 6; k++) {
        const VEC col[6] = {r[0][k], r[1][k], r[2][k], r[3][k], r[4][k], r[5][k]};
        VEC o[6];
        WB(bt)(col, o);
        for (int a = 0; a < 6; a++)
            WB(st)(v + (a * 6 + k) * xs, o[a]);
    }
}

#ifdef WB_AVX2
/* Eight rows of eight transposed: r[l] lane c -> o[c] lane l (callers that use only the
 * first columns leave the rest to dead-code elimination). */
static inline __attribute__((always_inline)) void WB(transpose8)(const __m256 *r, VEC *o)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    o[0] = (VEC)_mm256_permute2f128_ps(s0, s4, 0x20);
    o[1] = (VEC)_mm256_permute2f128_ps(s1, s5, 0x20);
    o[2] = (VEC)_mm256_permute2f128_ps(s2, s6, 0x20);
    o[3] = (VEC)_mm256_permute2f128_ps(s3, s7, 0x20);
    o[4] = (VEC)_mm256_permute2f128_ps(s0, s4, 0x31);
    o[5] = (VEC)_mm256_permute2f128_ps(s1, s5, 0x31);
    o[6] = (VEC)_mm256_permute2f128_ps(s2, s6, 0x31);
    o[7] = (VEC)_mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Per tile t < count of the block from unit u0 (tiles past n none): its input block's first
 * element (from the channel's plane, blocks stride * tile apart), first row, the mask of its
 * first eight columns inside the input and, with c8, whether its ninth column is. */
static void WB(tile_tables)(const wino_job *job, int64_t u0, int64_t n, int64_t count, int stride,
                            int32_t *off, int32_t *row0, int32_t *c8, int32_t *cmask)
{
    const npe_conv2d_params *p = job->p;
    const npe_wino_plan *wp = job->wp;
    const int64_t hw = (int64_t)p->h_in * p->w_in, w = p->w_in, tw = wp->tw;
    for (int64_t t = 0; t < count; t++) {
        const int64_t u = u0 + t / tw, j = t % tw;
        const int64_t img = u / wp->th, r0 = stride * (u % wp->th) - p->ph;
        const int64_t c0 = stride * j - p->pw;
        off[t] = t < n ? (int32_t)(img * p->c_in * hw + r0 * w + c0) : 0;
        row0[t] = t < n ? (int32_t)r0 : -16; /* no row inside */
        if (c8)
            c8[t] = c0 + 8 >= 0 && c0 + 8 < w;
        for (int l = 0; l < 8; l++)
            cmask[t * 8 + l] = c0 + l >= 0 && c0 + l < w ? -1 : 0;
    }
}

/* Row a of the input blocks of eight tiles (tables from t) in the plane at xc, as vectors over
 * the tiles: x[0..7] its first eight columns (a masked load per tile, then a transpose; lanes
 * outside the input 0) and, with c8, x[8] its ninth. pf: floats to the plane whose rows to
 * prefetch (the next channel's), 0 for none. Addresses are integers: a masked lane's column may
 * lie before the plane. */
static inline __attribute__((always_inline)) void WB(row8)(uintptr_t xc, const int32_t *off,
                                                           const int32_t *row0, const int32_t *c8,
                                                           const __m256i *cm, unsigned h,
                                                           int64_t w, int a, int64_t pf, VEC *x)
{
    __m256 rw[8];
    float last[8];
    for (int l = 0; l < 8; l++) {
        const int inside = (unsigned)(row0[l] + a) < h;
        const __m256i m = inside ? cm[l] : _mm256_setzero_si256();
        const intptr_t e = (intptr_t)off[l] + (intptr_t)a * (intptr_t)w;
        const float *src = (const float *)(xc + (uintptr_t)(e * 4));
        rw[l] = _mm256_maskload_ps(src, m);
        if (c8)
            last[l] = inside && c8[l] ? src[8] : 0.0f;
        if (pf)
            _mm_prefetch((const char *)(xc + (uintptr_t)((e + pf) * 4)), _MM_HINT_T0);
    }
    WB(transpose8)(rw, x);
    if (c8) /* built in registers: eight scalar stores and a vector load would stall */
        x[8] = (VEC)_mm256_set_ps(last[7], last[6], last[5], last[4], last[3], last[2], last[1],
                                  last[0]);
    else
        x[8] = (VEC)_mm256_setzero_ps();
}

/* WB(inputs) with AVX2 loads straight from x, eight tiles at a time: each row of a tile's input
 * block is one masked load of eight columns (lanes outside the input read as 0), and a transpose
 * turns the eight tiles' rows into six vectors over the tiles, instead of phasing rows and
 * copying blocks out. Gathering the 36 elements across the tiles cost about the same; what the
 * row loads buy is the prefetch of the next channel's rows (resnet18's four 3x3 shapes at batch
 * 32, one thread, timing conv2d_ep alone: 41 -> 35 ms). */
static void WB(inputs_rows)(const wino_job *job, int64_t u0, int64_t n, float *v,
                              const wino_bufs *bf, int64_t ic0, int64_t ic1)
{
    const npe_conv2d_params *p = job->p;
    const int64_t hw = (int64_t)p->h_in * p->w_in, ts = job->wp->tbs, xs = job->wp->vq[1];
    int32_t *off = (int32_t *)bf->d, *row0 = off + ts, *cmask = bf->msk;
    WB(tile_tables)(job, u0, n, (n + 7) / 8 * 8, 4, off, row0, NULL, cmask);
    for (int64_t ic = ic0; ic < ic1; ic++) {
        const uintptr_t xc = (uintptr_t)(job->x + ic * hw);
        float *vc = v + ic * ts;
        for (int64_t t = 0; t < n; t += 8) {
            __m256i cm[8];
            memcpy(cm, cmask + t * 8, sizeof(cm));
            VEC r[6][6];
            for (int a = 0; a < 6; a++) {
                VEC x[9];
                WB(row8)(xc, off + t, row0 + t, NULL, cm, (unsigned)p->h_in, p->w_in, a,
                         ic + 1 < ic1 ? hw : 0, x);
                WB(bt)(x, r[a]);
            }
            WB(columns)(r, vc + t, xs);
        }
    }
}

/* WB(inputs_s2) with AVX2 loads as WB(inputs_rows): the first eight columns of each row of a
 * tile's 9x9 input block by a masked load, the ninth element by itself. */
static void WB(inputs_s2_rows)(const wino_job *job, int64_t u0, int64_t n, float *v,
                               const wino_bufs *bf, int64_t ic0, int64_t ic1)
{
    const npe_conv2d_params *p = job->p;
    const int64_t hw = (int64_t)p->h_in * p->w_in, ts = job->wp->tbs;
    int64_t start[81], step[81];
    WB(s2_places)(job->wp, job->wp->vq, start, step);
    int32_t *off = (int32_t *)bf->d, *row0 = off + ts, *c8 = row0 + ts, *cmask = bf->msk;
    WB(tile_tables)(job, u0, n, ts, 8, off, row0, c8, cmask); /* zeros in the slack */
    for (int64_t ic = ic0; ic < ic1; ic++) {
        const uintptr_t xc = (uintptr_t)(job->x + ic * hw);
        for (int64_t t = 0; t < ts; t += 8) {
            __m256i cm[8];
            memcpy(cm, cmask + t * 8, sizeof(cm));
            VEC r[9][9];
            for (int a = 0; a < 9; a++) {
                VEC x[9];
                WB(row8)(xc, off + t, row0 + t, c8 + t, cm, (unsigned)p->h_in, p->w_in, a,
                         ic + 1 < ic1 ? hw : 0, x);
                WB(bt9)(x, r[a]);
            }
            WB(columns9)(r, v, start, step, ic, t);
        }
    }
}
#endif

/* Stride 2: V for input channels [ic0, ic1) and the n tiles of units [u0, u1), the slack of
 * every point's tile arrays (n to tbs) zero. */
static void WB(inputs_s2)(const wino_job *job, int64_t u0, int64_t u1, int64_t n, float *v,
                          const wino_bufs *bf, int64_t ic0, int64_t ic1)
{
    const npe_conv2d_params *p = job->p;
    const npe_wino_plan *wp = job->wp;
    const int64_t cin = p->c_in, hw = (int64_t)p->h_in * p->w_in, tw = wp->tw, w = p->w_in;
    const int64_t ts = wp->tbs;
    int64_t start[81], step[81];
    WB(s2_places)(wp, wp->vq, start, step);
    for (int64_t ic = ic0; ic < ic1; ic++) {
        /* the 9x9 blocks copied out as 81 arrays over the tiles */
        for (int e = 0; e < 81; e++)
            memset(bf->d + e * ts + n, 0, (size_t)(ts - n) * sizeof(float));
        for (int64_t u = u0; u < u1; u++) {
            const int64_t img = u / wp->th, r0 = 8 * (u % wp->th) - p->ph, t0 = (u - u0) * tw;
            const float *xp = job->x + (img * cin + ic) * hw;
            for (int a = 0; a < 9; a++) {
                const int64_t ih = r0 + a;
                const int row_in = ih >= 0 && ih < p->h_in;
                for (int c = 0; c < 9; c++) {
                    float *dst = bf->d + (a * 9 + c) * ts + t0;
                    for (int64_t j = 0; j < tw; j++) {
                        const int64_t iw = 8 * j - p->pw + c;
                        dst[j] = row_in && iw >= 0 && iw < w ? xp[ih * w + iw] : 0.0f;
                    }
                }
            }
        }
        for (int64_t t = 0; t < ts; t += WV) {
            VEC r[9][9];
            for (int a = 0; a < 9; a++) {
                VEC x[9];
                for (int c = 0; c < 9; c++)
                    x[c] = WB(ld)(bf->d + (a * 9 + c) * ts + t);
                WB(bt9)(x, r[a]);
            }
            WB(columns9)(r, v, start, step, ic, t);
        }
    }
}

/* V[xi][ic][t] for input channels [ic0, ic1) and the n tiles of units [u0, u1) (tile t =
 * (u - u0) * tw + j). */
static void WB(inputs)(const wino_job *job, int64_t u0, int64_t u1, int64_t n, float *v,
                       const wino_bufs *bf, int64_t ic0, int64_t ic1)
{
    const npe_conv2d_params *p = job->p;
    const npe_wino_plan *wp = job->wp;
    const int64_t lq = wp->lq, cin = p->c_in, hw = (int64_t)p->h_in * p->w_in, tw = wp->tw;
    const int64_t ts = wp->tbs, xs = wp->vq[1]; /* floats between tiles' arrays, points */
    for (int64_t ic = ic0; ic < ic1; ic++) {
        for (int64_t u = u0; u < u1; u++) {
            const int64_t img = u / wp->th, ti = u % wp->th, t0 = (u - u0) * tw;
            phase_rows4(p, job->x + (img * cin + ic) * hw, 4 * ti, lq, bf->rows);
            for (int a = 0; a < 6; a++)
                for (int c = 0; c < 6; c++) {
                    const float *src = bf->rows + (a * 4 + c % 4) * lq + c / 4;
                    float *dst = bf->d + (a * 6 + c) * ts + t0;
                    for (int64_t j = 0; j < tw; j++)
                        dst[j] = src[j];
                }
        }
        float *vc = v + ic * ts;
        for (int64_t t = 0; t < n; t += WV) {
            VEC r[6][6]; /* r[a][k]: row a of d after B^T along the columns */
            for (int a = 0; a < 6; a++) {
                VEC x[6];
                for (int c = 0; c < 6; c++)
                    x[c] = WB(ld)(bf->d + (a * 6 + c) * ts + t);
                WB(bt)(x, r[a]);
            }
            WB(columns)(r, vc + t, xs);
        }
    }
}

/* V for input channels [ic0, ic1) of the n tiles of units [u0, u1), by the variant for this
 * stride and instance. */
static void WB(transform_inputs)(const wino_job *job, int64_t u0, int64_t u1, int64_t n, float *v,
                                 const wino_bufs *bf, int64_t ic0, int64_t ic1)
{
#ifdef WB_AVX2
    /* its tile tables hold int32 offsets: inputs of up to 2^31 floats */
    if ((int64_t)job->p->n * job->p->c_in * job->p->h_in * job->p->w_in < ((int64_t)1 << 31)) {
        (job->wp->s2 ? WB(inputs_s2_rows) : WB(inputs_rows))(job, u0, n, v, bf, ic0, ic1);
        return;
    }
#endif
    (job->wp->s2 ? WB(inputs_s2) : WB(inputs))(job, u0, u1, n, v, bf, ic0, ic1);
}

/* Output channels [oc0, oc0 + m) of units [u0, u1) from M[xi][oc - oc0][t] (stride 2: from its
 * 81 points), with the bias and the epilogue. */
static void WB(outputs)(const wino_job *job, int64_t u0, int64_t u1, int64_t n, int64_t oc0,
                        int64_t m, const float *mb, const wino_bufs *bf)
{
    const npe_conv2d_params *p = job->p;
    const npe_wino_plan *wp = job->wp;
    const int64_t ts = wp->tbs, ms = wp->mq[1], wo = p->w_out, ho = p->h_out, tw = wp->tw;
    const int64_t hw = ho * wo;
    int64_t start[81], step[81];
    if (wp->s2)
        WB(s2_places)(wp, wp->mq, start, step);
    for (int64_t i = 0; i < m; i++) {
        const int64_t oc = oc0 + i;
        const float *mc = mb + i * ts;
        const VEC bias = WB(set1)(job->b ? job->b[oc] : 0.0f);
        for (int64_t t = 0; wp->s2 && t < n; t += WV) {
            VEC s[4][9]; /* s[r][pc]: column pc of M after the row pass */
            for (int pc = 0; pc < 9; pc++) {
                VEC col[9], o[4];
                for (int pr = 0; pr < 9; pr++)
                    col[pr] = WB(ld)(mb + start[pr * 9 + pc] + i * step[pr * 9 + pc] + t);
                WB(at9)(col, o);
                for (int r = 0; r < 4; r++)
                    s[r][pc] = o[r];
            }
            for (int r = 0; r < 4; r++) {
                VEC o[4];
                WB(at9)(s[r], o);
                for (int c = 0; c < 4; c++)
                    WB(st)(bf->o + (r * 4 + c) * ts + t, o[c] + bias);
            }
        }
        for (int64_t t = 0; !wp->s2 && t < n; t += WV) {
            VEC s[4][6]; /* s[r][b]: column b of M after A^T along the rows */
            for (int b = 0; b < 6; b++) {
                VEC col[6], o[4];
                for (int a = 0; a < 6; a++)
                    col[a] = WB(ld)(mc + (a * 6 + b) * ms + t);
                WB(at)(col, o);
                for (int r = 0; r < 4; r++)
                    s[r][b] = o[r];
            }
            for (int r = 0; r < 4; r++) {
                VEC o[4];
                WB(at)(s[r], o);
                for (int c = 0; c < 4; c++)
                    WB(st)(bf->o + (r * 4 + c) * ts + t, o[c] + bias);
            }
        }
        /* elementwise, so on the 16 arrays before they are scattered: 16 spans per channel and
         * block instead of one per tile row (16-112 floats at resnet18's 112x112) */
        for (int k = 0; job->ep && k < 16; k++)
            npe_kcpu_conv_epilogue(job->ep, job->flags, oc, bf->o + k * ts, n);
        for (int64_t u = u0; u < u1; u++) {
            const int64_t img = u / wp->th, ti = u % wp->th, t0 = (u - u0) * tw;
            const int64_t nr = ho - 4 * ti < 4 ? ho - 4 * ti : 4;
            float *yc = job->y + (img * p->c_out + oc) * hw + 4 * ti * wo;
            for (int64_t r = 0; r < nr; r++) {
                float *yr = yc + r * wo;
                const float *o0 = bf->o + r * 4 * ts + t0;
                int64_t j = 0;
                for (; 4 * j + 4 <= wo; j++) {
                    yr[4 * j] = o0[j];
                    yr[4 * j + 1] = o0[ts + j];
                    yr[4 * j + 2] = o0[2 * ts + j];
                    yr[4 * j + 3] = o0[3 * ts + j];
                }
                for (int c = 0; 4 * j + c < wo; c++)
                    yr[4 * j + c] = o0[c * ts + j];
            }
        }
    }
}

static void WB(block_tasks)(void *arg, int64_t begin, int64_t end, int thread)
{
    const wino_job *job = arg;
    const npe_conv2d_params *p = job->p;
    const npe_wino_plan *wp = job->wp;
    wino_bufs bf;
    float *v = thread_bufs(job, thread, &bf);
    int64_t have = -1; /* the block whose inputs v holds */
    for (int64_t t = begin; t < end; t++) {
        const int64_t blk = t / wp->mblocks, mblk = t % wp->mblocks;
        const int64_t u0 = blk * wp->upb;
        const int64_t u1 = u0 + wp->upb < wp->units ? u0 + wp->upb : wp->units;
        const int64_t oc0 = mblk * wp->mrows;
        const int64_t m = wp->mrows < p->c_out - oc0 ? wp->mrows : p->c_out - oc0;
        const int64_t n = (u1 - u0) * wp->tw;
        if (wp->vblock)
            v = job->vsh + blk * wp->vblock; /* transformed by input_tasks */
        else if (have != blk)
            WB(transform_inputs)(job, u0, u1, n, v, &bf, 0, p->c_in);
        have = blk;
        block_products(job, n, oc0, m, v, bf.m);
        WB(outputs)(job, u0, u1, n, oc0, m, bf.m, &bf);
    }
}

/* Tasks over (block, input channel): the blocks' inputs transformed once for the tasks that
 * split each block by output channels. */
static void WB(input_tasks)(void *arg, int64_t begin, int64_t end, int thread)
{
    const wino_job *job = arg;
    const npe_wino_plan *wp = job->wp;
    const int64_t cin = job->p->c_in;
    wino_bufs bf;
    thread_bufs(job, thread, &bf);
    while (begin < end) { /* one block's run of channels at a time */
        const int64_t blk = begin / cin, ic0 = begin % cin;
        const int64_t ic1 = end - blk * cin < cin ? end - blk * cin : cin;
        const int64_t u0 = blk * wp->upb;
        const int64_t u1 = u0 + wp->upb < wp->units ? u0 + wp->upb : wp->units;
        WB(transform_inputs)(job, u0, u1, (u1 - u0) * wp->tw, job->vsh + blk * wp->vblock, &bf,
                             ic0, ic1);
        begin += ic1 - ic0;
    }
}

static void WB(run)(const npe_kexec *ex, wino_job *job)
{
    if (!job->u_ready)
        kcpu_for(ex, job->p->c_out, WB(filter_tasks), job);
    if (job->wp->vblock)
        kcpu_for(ex, job->wp->blocks * job->p->c_in, WB(input_tasks), job);
    kcpu_for(ex, job->wp->ntasks, WB(block_tasks), job);
}

#undef VEC
