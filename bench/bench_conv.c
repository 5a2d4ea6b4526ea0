/* Convolution layers of the bench models through the optimised CPU kernel table, against one
 * OpenBLAS cblas_sgemm of the product each lowers to (M = Cout, N = Ho*Wo, K = Cin*kh*kw), timed
 * alternately in the same process with the same thread count.
 *
 *   bench_conv [--threads T] [--min-time S] [--smoke]
 * One JSON object per layer and thread count on stdout:
 *   {"layer": ..., "threads": T, "m": M, "n": N, "k": K, "conv_gflops": G, "sgemm_gflops": G}
 * The bench driver (bench/run.py) tabulates them. Batch 1: the engine runs a batch image by
 * image through the same kernel, so larger batches repeat these products. The weights are
 * prepared once before the timing (conv2d_prep: Winograd's transformed filters), as the
 * executor keeps them across runs; sgemm packs its operands on every call. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "cpu/threadpool.h"

typedef struct layer {
    const char *name;
    int cin, cout, hw, k, stride;
} layer;

/* Shapes of resnet18 and mobilenet_v2 at 224x224 and of the bench's YOLOv5 (width 16, i.e.
 * yolov5n's channels) at 320x320; every one with 64 channels or more on both sides. */
static const layer layers[] = {
    {"resnet18 layer1 3x3", 64, 64, 56, 3, 1},
    {"resnet18 layer2.0.conv1 3x3/2", 64, 128, 56, 3, 2},
    {"resnet18 layer2 3x3", 128, 128, 28, 3, 1},
    {"resnet18 layer3 3x3", 256, 256, 14, 3, 1},
    {"resnet18 layer4 3x3", 512, 512, 7, 3, 1},
    {"resnet18 downsample 1x1/2", 128, 256, 28, 1, 2},
    {"mobilenet_v2 expand 1x1", 64, 384, 14, 1, 1},
    {"mobilenet_v2 project 1x1", 384, 64, 14, 1, 1},
    {"mobilenet_v2 expand 1x1", 96, 576, 14, 1, 1},
    {"mobilenet_v2 project 1x1", 960, 160, 7, 1, 1},
    {"mobilenet_v2 last 1x1", 320, 1280, 7, 1, 1},
    {"yolov5 C3 cv3 1x1", 64, 64, 40, 1, 1},
    {"yolov5 b5 3x3/2", 64, 128, 40, 3, 2},
    {"yolov5 C3 m 3x3", 64, 64, 20, 3, 1},
    {"yolov5 C3 cv1 1x1", 128, 64, 20, 1, 1},
    {"yolov5 b7 3x3/2", 128, 256, 20, 3, 2},
    {"yolov5 sppf cv2 1x1", 512, 256, 10, 1, 1},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *random_buf(unsigned *state, size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return p;
}

/* Best of several calls after a warm-up; "best" because the machine may be shared. */
static double best_conv(const npe_kernels *k, const npe_kexec *ex, const npe_conv2d_params *p,
                        const float *x, const float *w, const void *prep, const float *b,
                        float *y, int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        const double t0 = now_s();
        k->conv2d_ep(ex, p, x, w, prep, b, NULL, y);
        const double t = now_s() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static double best_gemm(int m, int n, int kd, const float *a, const float *b, float *c, int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        const double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, kd, 1.0f, a, kd, b, n, 0.0f,
                    c, n);
        const double t = now_s() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static int bench_layer(const npe_kernels *k, npe_kpool *pool, int threads, const layer *l,
                       double min_time)
{
    npe_conv2d_params p;
    memset(&p, 0, sizeof(p));
    p.n = 1;
    p.c_in = l->cin;
    p.c_out = l->cout;
    p.h_in = p.w_in = l->hw;
    p.kh = p.kw = l->k;
    p.sh = p.sw = l->stride;
    p.ph = p.pw = l->k / 2;
    p.dh = p.dw = 1;
    p.groups = 1;
    if (npe_conv2d_out_size(&p)) {
        fprintf(stderr, "bench_conv: %s: empty output\n", l->name);
        return -1;
    }
    const int m = p.c_out, n = p.h_out * p.w_out, kd = p.c_in * p.kh * p.kw;
    unsigned st = 12345u + (unsigned)(m * 31 + n * 7 + kd);
    float *x = random_buf(&st, (size_t)p.c_in * p.h_in * p.w_in);
    float *w = random_buf(&st, (size_t)m * kd), *bias = random_buf(&st, (size_t)m);
    float *y = random_buf(&st, (size_t)m * n), *bm = random_buf(&st, (size_t)kd * n);
    const size_t sbytes = k->conv2d_scratch(&p, threads);
    void *scratch = sbytes ? aligned_alloc(64, (sbytes + 63) / 64 * 64) : NULL;
    const size_t pbytes = k->conv2d_prep_bytes(&p, threads);
    void *prep = pbytes ? aligned_alloc(64, (pbytes + 63) / 64 * 64) : NULL;
    int rc = -1;
    if (!x || !w || !bias || !y || !bm || (sbytes && !scratch) || (pbytes && !prep)) {
        fprintf(stderr, "bench_conv: out of memory\n");
        goto out_free;
    }
    npe_kexec ex;
    npe_kexec_init(&ex, threads > 1 ? pool : NULL, scratch, sbytes);
    openblas_set_num_threads(threads);
    if (prep) /* once, as the executor keeps the preparation across runs */
        k->conv2d_prep(&ex, &p, w, prep);

    /* Warm both, size the rounds to ~min_time/10 each, then alternate so both see the same
     * quiet moments of a shared machine. */
    const double tc0 = best_conv(k, &ex, &p, x, w, prep, bias, y, 2);
    best_gemm(m, n, kd, w, bm, y, 2);
    int reps = (int)(min_time / 10.0 / (tc0 > 1e-6 ? tc0 : 1e-6));
    reps = reps < 1 ? 1 : reps > 200 ? 200 : reps;
    double tc = 1e30, tg = 1e30;
    const double start = now_s();
    for (int round = 0; round < 4 || now_s() - start < min_time; round++) {
        const double a = best_conv(k, &ex, &p, x, w, prep, bias, y, reps);
        const double g = best_gemm(m, n, kd, w, bm, y, reps);
        tc = a < tc ? a : tc;
        tg = g < tg ? g : tg;
    }
    const double flops = 2.0 * m * (double)n * kd;
    printf("{\"layer\": \"%s\", \"shape\": \"%dx%d %d->%d %dx%d s%d\", \"threads\": %d, "
           "\"m\": %d, \"n\": %d, \"k\": %d, \"conv_gflops\": %.2f, \"sgemm_gflops\": %.2f}\n",
           l->name, l->k, l->k, l->cin, l->cout, l->hw, l->hw, l->stride, threads, m, n, kd,
           flops / tc * 1e-9, flops / tg * 1e-9);
    fflush(stdout);
    rc = 0;
out_free:
    free(scratch);
    free(prep);
    free(x), free(w), free(bias), free(y), free(bm);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 1, smoke = 0;
    double min_time = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--smoke"))
            smoke = 1;
        else {
            fprintf(stderr, "usage: bench_conv [--threads T] [--min-time S] [--smoke]\n");
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    npe_kernels k;
    npe_kernels_init_cpu(&k, NPE_KCPU_ALL);
    npe_kpool *pool = threads > 1 ? npe_kpool_create(threads) : NULL;
    if (threads > 1 && !pool) {
        fprintf(stderr, "bench_conv: could not start %d threads\n", threads);
        return 1;
    }
    const size_t count = smoke ? 2 : sizeof(layers) / sizeof(layers[0]);
    int rc = 0;
    for (size_t i = 0; i < count && !rc; i++)
        rc = bench_layer(&k, pool, threads, &layers[i], smoke ? 0.02 : min_time);
    npe_kpool_destroy(pool);
    return rc ? 1 : 0;
}
