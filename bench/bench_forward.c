/* Forward throughput of one model on the public API, driven line by line by bench/run.py so that
 * its rounds interleave with PyTorch's (bench/torch_forward.py speaks the same protocol).
 *
 *   bench_forward MODEL.pt INPUT.npy THREADS OUT_PREFIX
 * stdout "ready <load_s>" once the model is loaded and has run once (warm-up); then per stdin line
 *   "run K"  K forwards, answered "<best_s> <median_s>" (seconds per forward);
 *   "quit"   every output of the last forward to OUT_PREFIX.out<i>.npy, answered "rss <KB>"
 *            (peak resident set of this process), then exit 0.
 * Errors: one line on stderr naming the file and the problem, exit 1. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_OUT 16
#define MAX_RUNS 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void release_all(npe_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        npe_tensor_release(&t[i]);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_forward MODEL.pt INPUT.npy THREADS OUT_PREFIX\n");
        return 2;
    }
    const char *model_path = argv[1], *input_path = argv[2], *prefix = argv[4];
    int rc = 1;
    npe_ctx *ctx = NULL;
    npe_model *m = NULL;
    npe_tensor in, out[MAX_OUT];
    memset(&in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    int n_out = 0;

    if (npe_ctx_create(&ctx)) {
        fprintf(stderr, "bench_forward: out of memory\n");
        return 1;
    }
    const double t0 = now_s();
    npe_model_options opt;
    npe_model_options_init(&opt);
    opt.threads = atoi(argv[3]);
    if (npe_model_load(ctx, model_path, &opt, &m) || npe_tensor_load_npy(ctx, input_path, &in)) {
        fprintf(stderr, "bench_forward: %s\n", npe_ctx_last_error(ctx));
        goto out_free;
    }
    n_out = npe_model_output_count(m);
    if (n_out > MAX_OUT)
        n_out = MAX_OUT;
    if (npe_model_forward(m, &in, 1, out, n_out)) {
        fprintf(stderr, "bench_forward: %s: %s\n", model_path, npe_ctx_last_error(ctx));
        goto out_free;
    }
    printf("ready %.3f\n", now_s() - t0);
    fflush(stdout);

    char line[128];
    while (fgets(line, sizeof(line), stdin)) {
        int k;
        if (sscanf(line, "run %d", &k) == 1 && k >= 1 && k <= MAX_RUNS) {
            double t[MAX_RUNS];
            for (int i = 0; i < k; i++) {
                release_all(out, n_out);
                const double s = now_s();
                if (npe_model_forward(m, &in, 1, out, n_out)) {
                    fprintf(stderr, "bench_forward: %s: %s\n", model_path,
                            npe_ctx_last_error(ctx));
                    goto out_free;
                }
                t[i] = now_s() - s;
            }
            qsort(t, (size_t)k, sizeof(t[0]), cmp_double);
            printf("%.6f %.6f\n", t[0], t[k / 2]);
            fflush(stdout);
        } else if (strncmp(line, "quit", 4) == 0) {
            for (int i = 0; i < n_out; i++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s.out%d.npy", prefix, i);
                if (npe_tensor_save_npy(ctx, path, &out[i])) {
                    fprintf(stderr, "bench_forward: %s\n", npe_ctx_last_error(ctx));
                    goto out_free;
                }
            }
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            printf("rss %ld\n", ru.ru_maxrss);
            fflush(stdout);
            rc = 0;
            break;
        } else {
            fprintf(stderr, "bench_forward: unknown command '%s'\n", line);
            goto out_free;
        }
    }

out_free:
    release_all(out, n_out);
    npe_tensor_release(&in);
    npe_model_destroy(m);
    npe_ctx_destroy(ctx);
    return rc;
}
