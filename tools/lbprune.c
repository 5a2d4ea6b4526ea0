/* lbprune: command-line front end of libnpengine. Uses the public API only (include/npengine). */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage; /* full --help text */
    int (*run)(int argc, char **argv);
} command;

static const command *find_command(const char *name);

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static int fail(npe_ctx *ctx, int rc)
{
    fprintf(stderr, "lbprune: error: %s\n",
            ctx && npe_ctx_last_error(ctx)[0] ? npe_ctx_last_error(ctx) : npe_strerror(rc));
    return 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lbprune %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'lbprune %s --help'.\n", cmd);
    return 2;
}

/* ---- inspect -------------------------------------------------------------------------------- */
static const char inspect_usage[] =
    "Usage: lbprune inspect FILE [--json]\n"
    "\n"
    "Describe a PyTorch file without running anything in it: the kind of archive\n"
    "(state_dict, full model, TorchScript, other pickled object; zip or legacy layout),\n"
    "its records, every tensor (name, dtype, shape), the module tree when the file\n"
    "holds one, and the total number of parameters.\n"
    "\n"
    "Options:\n"
    "  --json       print the description as JSON (machine-readable)\n"
    "  -h, --help   show this help\n"
    "\n"
    "Examples:\n"
    "  lbprune inspect examples/fashion_mnist/model.pt\n"
    "  lbprune inspect resnet18_state.pth --json > resnet18.json\n";

static int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("inspect", "unknown option '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            return usage_error("inspect", "unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return usage_error("inspect", "%s", "missing FILE");

    npe_ctx *ctx = NULL;
    npe_archive *a = NULL;
    char *text = NULL;
    int rc = npe_ctx_create(&ctx);
    if (rc)
        return fail(NULL, rc);
    if ((rc = npe_archive_open(ctx, path, &a)) || (rc = npe_archive_describe(a, json, &text))) {
        fail(ctx, rc);
        npe_archive_destroy(a);
        npe_ctx_destroy(ctx);
        return 1;
    }
    fputs(text, stdout);
    npe_free(text);
    npe_archive_destroy(a);
    npe_ctx_destroy(ctx);
    return 0;
}

/* ---- state-dict ----------------------------------------------------------------------------- */
static const char state_dict_usage[] =
    "Usage: lbprune state-dict IN OUT.pth\n"
    "\n"
    "Write every tensor of IN (a state_dict, full-model, TorchScript, legacy or\n"
    "checkpoint file) as a state_dict archive that torch.load reads, also with\n"
    "weights_only=True. Tensor names are module paths (\"layer1.0.conv1.weight\");\n"
    "views that shared a storage keep sharing it. OUT is written atomically and\n"
    "IN is never modified.\n"
    "\n"
    "Examples:\n"
    "  lbprune state-dict examples/fashion_mnist/model.pt weights.pth\n"
    "  python3 -c \"import torch; print(torch.load('weights.pth', weights_only=True).keys())\"\n";

static int cmd_state_dict(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            return usage_error("state-dict", "unknown option '%s'", argv[i]);
        else if (!in)
            in = argv[i];
        else if (!out)
            out = argv[i];
        else
            return usage_error("state-dict", "unexpected argument '%s'", argv[i]);
    }
    if (!in || !out)
        return usage_error("state-dict", "%s", "expected IN and OUT.pth");

    npe_ctx *ctx = NULL;
    npe_archive *a = NULL;
    int rc = npe_ctx_create(&ctx);
    if (rc)
        return fail(NULL, rc);
    if ((rc = npe_archive_open(ctx, in, &a)) || (rc = npe_archive_save_state_dict(a, out))) {
        fail(ctx, rc);
        npe_archive_destroy(a);
        npe_ctx_destroy(ctx);
        return 1;
    }
    printf("wrote %zu tensors to %s\n", npe_archive_tensor_count(a), out);
    npe_archive_destroy(a);
    npe_ctx_destroy(ctx);
    return 0;
}

/* ---- eval ----------------------------------------------------------------------------------- */
static const char eval_usage[] =
    "Usage: lbprune eval MODEL --input X.npy [--input X2.npy ...] (--output Y.npy | --output-dir DIR)\n"
    "                    [--threads N] [--forward NAME] [--cut NAME[,NAME...]]\n"
    "\n"
    "Run a traced TorchScript model (torch.jit.trace(model, x).save(MODEL)) on float32\n"
    "or float64 .npy inputs with lbprune's own CPU kernels, and write its outputs as\n"
    "float32 .npy files. Batch size and image size come from the inputs' shapes.\n"
    "\n"
    "Options:\n"
    "  --input X.npy       an input of the model, in the order of its forward arguments\n"
    "  --output Y.npy      write output 0 to Y.npy\n"
    "  --output-dir DIR    write every output i to DIR/output_<i>.npy (DIR must exist)\n"
    "  --threads N         kernel threads (default: one per CPU)\n"
    "  --forward NAME      run another exported method instead of forward\n"
    "  --cut NAMES         make the named values (module paths) the outputs\n"
    "  -h, --help          show this help\n"
    "\n"
    "Examples:\n"
    "  lbprune eval examples/fashion_mnist/model.pt --input x.npy --output logits.npy\n"
    "  lbprune eval yolo.pt --input img.npy --output-dir heads/ --threads 2\n"
    "  lbprune eval yolo.pt --forward dummy_forward --input img.npy --output y.npy\n";

#define MAX_CLI_TENSORS 64

static int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *output = NULL, *output_dir = NULL;
    const char *inputs[MAX_CLI_TENSORS];
    int n_inputs = 0;
    npe_model_options opt;
    npe_model_options_init(&opt);
    char *cut_buf = NULL;
    const char *cuts[MAX_CLI_TENSORS];
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--input") == 0 || strcmp(a, "--output") == 0 ||
            strcmp(a, "--output-dir") == 0 || strcmp(a, "--threads") == 0 ||
            strcmp(a, "--forward") == 0 || strcmp(a, "--cut") == 0) {
            if (!has_value) {
                rc = usage_error("eval", "%s needs a value", a);
                goto out;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--input") == 0) {
                if (n_inputs == MAX_CLI_TENSORS) {
                    rc = usage_error("eval", "more than %d inputs", MAX_CLI_TENSORS);
                    goto out;
                }
                inputs[n_inputs++] = v;
            } else if (strcmp(a, "--output") == 0) {
                output = v;
            } else if (strcmp(a, "--output-dir") == 0) {
                output_dir = v;
            } else if (strcmp(a, "--threads") == 0) {
                char *end;
                long t = strtol(v, &end, 10);
                if (*end || t < 1 || t > 1024) {
                    rc = usage_error("eval", "--threads wants a number from 1 to 1024, not '%s'", v);
                    goto out;
                }
                opt.threads = (int)t;
            } else if (strcmp(a, "--forward") == 0) {
                opt.forward_name = v;
            } else {
                free(cut_buf);
                cut_buf = strdup(v);
                if (!cut_buf) {
                    rc = 1;
                    goto out;
                }
                opt.n_cut_outputs = 0;
                for (char *tok = strtok(cut_buf, ","); tok; tok = strtok(NULL, ",")) {
                    if (opt.n_cut_outputs == MAX_CLI_TENSORS) {
                        rc = usage_error("eval", "more than %d --cut names", MAX_CLI_TENSORS);
                        goto out;
                    }
                    cuts[opt.n_cut_outputs++] = tok;
                }
                opt.cut_outputs = cuts;
            }
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error("eval", "unknown option '%s'", a);
            goto out;
        } else if (!model_path) {
            model_path = a;
        } else {
            rc = usage_error("eval", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!model_path) {
        rc = usage_error("eval", "%s", "missing MODEL");
        goto out;
    }
    if (!n_inputs) {
        rc = usage_error("eval", "%s", "give at least one --input X.npy");
        goto out;
    }
    if (!output == !output_dir) {
        rc = usage_error("eval", "%s", "give exactly one of --output or --output-dir");
        goto out;
    }

    npe_ctx *ctx = NULL;
    npe_model *m = NULL;
    npe_tensor in[MAX_CLI_TENSORS], *outs = NULL;
    int n_outs = 0, r;
    memset(in, 0, sizeof(in));
    rc = 1;
    if ((r = npe_ctx_create(&ctx))) {
        fail(NULL, r);
        goto out;
    }
    for (int i = 0; i < n_inputs; i++)
        if ((r = npe_tensor_load_npy(ctx, inputs[i], &in[i]))) {
            fail(ctx, r);
            goto out_release;
        }
    if ((r = npe_model_load(ctx, model_path, &opt, &m))) {
        fail(ctx, r);
        goto out_release;
    }
    n_outs = output ? 1 : npe_model_output_count(m);
    outs = calloc((size_t)(n_outs ? n_outs : 1), sizeof(*outs));
    if (!outs) {
        fprintf(stderr, "lbprune: error: out of memory\n");
        goto out_release;
    }
    if ((r = npe_model_forward(m, in, n_inputs, outs, n_outs))) {
        fail(ctx, r);
        goto out_release;
    }
    for (int i = 0; i < n_outs; i++) {
        char path[4096];
        if (output)
            snprintf(path, sizeof(path), "%s", output);
        else if ((size_t)snprintf(path, sizeof(path), "%s/output_%d.npy", output_dir, i) >=
                 sizeof(path)) {
            fprintf(stderr, "lbprune: error: --output-dir path too long\n");
            goto out_release;
        }
        if ((r = npe_tensor_save_npy(ctx, path, &outs[i]))) {
            fail(ctx, r);
            goto out_release;
        }
        printf("%s: output %d [", path, i);
        for (int d = 0; d < outs[i].ndim; d++)
            printf("%s%lld", d ? ", " : "", (long long)outs[i].shape[d]);
        printf("]\n");
    }
    rc = 0;
out_release:
    for (int i = 0; i < n_outs && outs; i++)
        npe_tensor_release(&outs[i]);
    free(outs);
    for (int i = 0; i < n_inputs; i++)
        npe_tensor_release(&in[i]);
    npe_model_destroy(m);
    npe_ctx_destroy(ctx);
out:
    free(cut_buf);
    return rc;
}

/* ---- prune ---------------------------------------------------------------------------------- */
static const char prune_usage[] =
    "Usage: lbprune prune MODEL -o OUT.pt --input-shape N,C,H,W [--input-shape ...]\n"
    "                     [--sparsity S] [--exclude a,b] [--align N] [--config cfg.toml]\n"
    "                     [--state-dict OUT.pth] [--full-model IN_FULL.pth OUT_FULL.pth]\n"
    "                     [--report R.json] [--forward NAME]\n"
    "\n"
    "Cut channels physically out of a traced TorchScript model and write the smaller\n"
    "model as a TorchScript archive that torch.jit.load reads. Channels that must go\n"
    "together (residual adds, concatenations, depthwise chains) are cut as one group;\n"
    "groups whose channels reach a model output (classifier, detection heads) stay whole.\n"
    "Within a group the channels with the smallest filter L1 norm go first.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT.pt        the pruned TorchScript archive\n"
    "  --input-shape SHAPE        shape of a model input, e.g. 1,3,224,224 (one per input;\n"
    "                             or dummy_input in [model] of --config)\n"
    "  --sparsity S               fraction of channels to cut in every prunable group, 0 <= S < 1\n"
    "  --exclude a,b              layers (module paths) whose groups stay whole\n"
    "  --align N                  keep a multiple of N channels per group (default 2)\n"
    "  --config cfg.toml          [prune] config_list / exclude_layers / channel_alignment and\n"
    "                             [model] dummy_input; command-line options win\n"
    "  --state-dict OUT.pth       also write a state_dict, and OUT.channels.json with every\n"
    "                             layer's new channel counts to rebuild the model class\n"
    "  --full-model IN OUT        rewrite the torch.save(model) archive IN (the model that was\n"
    "                             traced) as OUT with pruned tensors and updated attributes\n"
    "  --report R.json            parameters and MACs before/after, and per group the kept\n"
    "                             channels, producers, consumers, or why it stayed whole\n"
    "  --forward NAME             prune the graph of another exported method\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Examples:\n"
    "  lbprune prune examples/fashion_mnist/model.pt -o small.pt --input-shape 1,1,28,28 \\\n"
    "      --sparsity 0.5 --report report.json\n"
    "  lbprune prune resnet18.pt -o r18_small.pt --input-shape 1,3,224,224 --sparsity 0.3 \\\n"
    "      --align 8 --exclude layer4.1.conv2 --state-dict r18_small.pth\n"
    "  lbprune prune yolo.pt -o yolo_small.pt --config prune.toml\n";

static int parse_shape(const char *text, npe_shape *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = text;
    while (*p) {
        if (out->ndim == NPE_MAX_DIMS)
            return -1;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || v > (1LL << 30))
            return -1;
        out->d[out->ndim++] = v;
        if (*end == ',' || *end == 'x')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return out->ndim ? 0 : -1;
}

static int split_list(char *text, const char **items, int max)
{
    int n = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ","))
        if (n < max)
            items[n++] = tok;
        else
            return -1;
    return n;
}

/* Print "params A -> B (-x%), MACs C -> D (-y%)" from the report's top-level keys. */
static long long report_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static int write_text(const char *path, const char *text)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

static int cmd_prune(int argc, char **argv)
{
    const char *model_path = NULL, *out = NULL, *cfg_path = NULL, *sd_out = NULL, *report = NULL;
    const char *full_in = NULL, *full_out = NULL;
    npe_shape shapes[8];
    int n_shapes = 0, have_sparsity = 0, have_align = 0, align = 2, rc = 2;
    double sparsity = 0;
    char *exclude_buf = NULL;
    const char *exclude[256];
    int n_exclude = -1;
    npe_model_options mopt;
    npe_model_options_init(&mopt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--full-model") == 0) {
            if (i + 2 >= argc) {
                rc = usage_error("prune", "%s", "--full-model needs IN_FULL.pth and OUT_FULL.pth");
                goto out;
            }
            full_in = argv[++i];
            full_out = argv[++i];
            continue;
        }
        int takes = strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                    strcmp(a, "--input-shape") == 0 || strcmp(a, "--sparsity") == 0 ||
                    strcmp(a, "--exclude") == 0 || strcmp(a, "--align") == 0 ||
                    strcmp(a, "--config") == 0 || strcmp(a, "--state-dict") == 0 ||
                    strcmp(a, "--report") == 0 || strcmp(a, "--forward") == 0;
        if (takes && !v) {
            rc = usage_error("prune", "%s needs a value", a);
            goto out;
        }
        if (takes)
            i++;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = v;
        } else if (strcmp(a, "--input-shape") == 0) {
            if (n_shapes == 8 || parse_shape(v, &shapes[n_shapes])) {
                rc = usage_error("prune", "--input-shape wants positive sizes like 1,3,224,224, not '%s'",
                                 v);
                goto out;
            }
            n_shapes++;
        } else if (strcmp(a, "--sparsity") == 0) {
            char *end;
            sparsity = strtod(v, &end);
            if (*end || !(sparsity >= 0 && sparsity < 1)) {
                rc = usage_error("prune", "--sparsity wants a number in [0, 1), not '%s'", v);
                goto out;
            }
            have_sparsity = 1;
        } else if (strcmp(a, "--exclude") == 0) {
            free(exclude_buf);
            exclude_buf = strdup(v);
            n_exclude = exclude_buf ? split_list(exclude_buf, exclude, 256) : -1;
            if (n_exclude < 0) {
                rc = usage_error("prune", "%s", "--exclude: too many names (256 at most)");
                goto out;
            }
        } else if (strcmp(a, "--align") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 4096) {
                rc = usage_error("prune", "--align wants a number from 1 to 4096, not '%s'", v);
                goto out;
            }
            align = (int)n;
            have_align = 1;
        } else if (strcmp(a, "--config") == 0) {
            cfg_path = v;
        } else if (strcmp(a, "--state-dict") == 0) {
            sd_out = v;
        } else if (strcmp(a, "--report") == 0) {
            report = v;
        } else if (strcmp(a, "--forward") == 0) {
            mopt.forward_name = v;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error("prune", "unknown option '%s'", a);
            goto out;
        } else if (!model_path) {
            model_path = a;
        } else {
            rc = usage_error("prune", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!model_path || !out) {
        rc = usage_error("prune", "%s", model_path ? "missing -o OUT.pt" : "missing MODEL");
        goto out;
    }
    if (!have_sparsity && !cfg_path) {
        rc = usage_error("prune", "%s", "give --sparsity S or --config cfg.toml");
        goto out;
    }

    npe_ctx *ctx = NULL;
    npe_config *cfg = NULL;
    npe_model *m = NULL;
    rc = 1;
    int r;
    if ((r = npe_ctx_create(&ctx))) {
        fail(NULL, r);
        goto out;
    }
    npe_prune_options popt;
    npe_prune_options_init(&popt);
    if (cfg_path) {
        if ((r = npe_config_load(ctx, cfg_path, &cfg)) || (r = npe_config_prune_options(cfg, &popt))) {
            fail(ctx, r);
            goto out_free;
        }
    }
    if (n_shapes) {
        popt.input_shapes = shapes;
        popt.n_input_shapes = n_shapes;
    }
    if (have_sparsity) {
        popt.sparsity = sparsity;
        popt.n_config_list = 0; /* the command line wins over the file's config_list */
    }
    if (have_align)
        popt.channel_alignment = align;
    if (n_exclude >= 0) {
        popt.exclude_layers = exclude;
        popt.n_exclude_layers = n_exclude;
    }
    if (!popt.n_input_shapes) {
        fprintf(stderr, "lbprune prune: give --input-shape (or dummy_input in [model] of --config)\n");
        rc = 2;
        goto out_free;
    }
    if ((r = npe_model_load(ctx, model_path, &mopt, &m)) || (r = npe_model_prune(m, &popt)) ||
        (r = npe_model_save_torchscript(m, out))) {
        fail(ctx, r);
        goto out_free;
    }
    const char *json = npe_model_prune_report(m);
    if (sd_out) {
        char chan[4200];
        size_t n = strlen(sd_out);
        if (n > 4 && strcmp(sd_out + n - 4, ".pth") == 0)
            n -= 4;
        if ((size_t)snprintf(chan, sizeof(chan), "%.*s.channels.json", (int)n, sd_out) >= sizeof(chan)) {
            fprintf(stderr, "lbprune: error: --state-dict path too long\n");
            goto out_free;
        }
        if ((r = npe_model_save_state_dict(m, sd_out)) || (r = npe_model_save_channels(m, chan))) {
            fail(ctx, r);
            goto out_free;
        }
        printf("wrote %s and %s\n", sd_out, chan);
    }
    if (full_in && (r = npe_model_save_full_model(m, full_in, full_out))) {
        fail(ctx, r);
        goto out_free;
    }
    if (full_in)
        printf("wrote %s\n", full_out);
    if (report && write_text(report, json)) {
        fprintf(stderr, "lbprune: error: %s: cannot write the report\n", report);
        goto out_free;
    }
    long long pb = report_number(json, "params_before"), pa = report_number(json, "params_after");
    long long mb = report_number(json, "macs_before"), ma = report_number(json, "macs_after");
    printf("wrote %s: params %lld -> %lld (%.1f%%), MACs %lld -> %lld (%.1f%%)\n", out, pb, pa,
           pb > 0 ? 100.0 * (double)(pa - pb) / (double)pb : 0.0, mb, ma,
           mb > 0 ? 100.0 * (double)(ma - mb) / (double)mb : 0.0);
    rc = 0;
out_free:
    npe_model_destroy(m);
    npe_config_destroy(cfg);
    npe_ctx_destroy(ctx);
out:
    free(exclude_buf);
    return rc;
}

/* ---- run, sens ------------------------------------------------------------------------------ */
static const char run_usage[] =
    "Usage: lbprune run cfg.toml\n"
    "\n"
    "The whole compression job of a configuration file: measure the metric of the\n"
    "original model on the data, measure every prunable channel group at every\n"
    "sparsity (sens_analysis/sens.csv, written as it goes: an interrupted run started\n"
    "again resumes), choose per group the largest sparsity whose metric stays within\n"
    "metric_thres (or meet target_macs / target_params), prune every group at once,\n"
    "evaluate the result and write pruned.pt, pruned.pth, pruned.channels.json,\n"
    "pruned_full.pth (with [model] full_model), prune_report.json and summary.json\n"
    "into [run] output_dir. A [prune] config_list skips the analysis.\n"
    "The keys of cfg.toml are listed in README.md.\n"
    "\n"
    "Examples:\n"
    "  lbprune run examples/fashion_mnist/cfg.toml\n"
    "  lbprune sens examples/fashion_mnist/cfg.toml   # the analysis only\n";

static const char sens_usage[] =
    "Usage: lbprune sens cfg.toml\n"
    "\n"
    "Only the sensitivity analysis of 'lbprune run': the baseline metric and, for\n"
    "every prunable channel group and sparsity, the metric with that group pruned,\n"
    "written to <output_dir>/sens_analysis/sens.csv and sens.json (resumable).\n"
    "\n"
    "Example:\n"
    "  lbprune sens examples/fashion_mnist/cfg.toml\n";

static int tty_progress;

static void show_progress(void *user, const char *group, double sparsity, double value,
                          size_t done, size_t total, double eta_s)
{
    (void)user;
    if (tty_progress)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s @ %.2f: %.5f  (ETA %.0f s)", done, total, group,
                sparsity, value, eta_s);
    else
        fprintf(stderr, "[%zu/%zu] %s @ %.2f: %.5f (ETA %.0f s)\n", done, total, group, sparsity,
                value, eta_s);
}

static void show_log(void *user, npe_log_level level, const char *msg)
{
    (void)user;
    /* errors are printed once, by fail(), from the context's last error */
    if (level == NPE_LOG_WARN || level == NPE_LOG_INFO)
        fprintf(stderr, "%s%s: %s\n", tty_progress ? "\r\033[K" : "",
                level == NPE_LOG_WARN ? "warning" : "info", msg);
}

static int run_job(const char *name, int argc, char **argv, unsigned flags)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage_error(name, "%s", argc < 2 ? "missing cfg.toml" : "expected exactly one cfg.toml");
    npe_ctx *ctx = NULL;
    npe_config *cfg = NULL;
    char *summary = NULL;
    int r = npe_ctx_create(&ctx);
    if (r)
        return fail(NULL, r);
    tty_progress = isatty(fileno(stderr));
    npe_ctx_set_log(ctx, show_log, NULL);
    npe_run_callbacks cb = {.progress = show_progress};
    if ((r = npe_config_load(ctx, argv[1], &cfg)) || (r = npe_run(ctx, cfg, flags, &cb, &summary))) {
        if (tty_progress)
            fputc('\n', stderr);
        fail(ctx, r);
        npe_config_destroy(cfg);
        npe_ctx_destroy(ctx);
        return 1;
    }
    if (tty_progress)
        fputc('\n', stderr);
    fputs(summary ? summary : "", stdout);
    npe_free(summary);
    npe_config_destroy(cfg);
    npe_ctx_destroy(ctx);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    return run_job("run", argc, argv, 0);
}

static int cmd_sens(int argc, char **argv)
{
    return run_job("sens", argc, argv, NPE_RUN_ANALYSIS_ONLY);
}

/* ---- version, help -------------------------------------------------------------------------- */
static const char version_usage[] =
    "Usage: lbprune version\n"
    "\n"
    "Print the version of lbprune and of the libnpengine it runs on.\n"
    "\n"
    "Example:\n"
    "  lbprune version\n";

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return usage_error("version", "%s", "takes no arguments");
    printf("lbprune %s (libnpengine %s)\n", npe_version_string(), npe_version_string());
    return 0;
}

static const char help_usage[] =
    "Usage: lbprune help [COMMAND]\n"
    "\n"
    "Show the list of commands, or the help of one command.\n"
    "\n"
    "Example:\n"
    "  lbprune help inspect\n";

static const command commands[] = {
    {"run", "compress a model as cfg.toml says: analysis, choice, pruning, export", run_usage,
     cmd_run},
    {"sens", "the sensitivity analysis of 'run' only (sens.csv)", sens_usage, cmd_sens},
    {"inspect", "describe a PyTorch file: kind, records, tensors, modules, parameters",
     inspect_usage, cmd_inspect},
    {"state-dict", "write the tensors of any PyTorch file as a state_dict .pth", state_dict_usage,
     cmd_state_dict},
    {"eval", "run a traced TorchScript model on .npy inputs with lbprune's kernels", eval_usage,
     cmd_eval},
    {"prune", "cut channels out of a traced model and write files PyTorch loads", prune_usage,
     cmd_prune},
    {"version", "print the version", version_usage, cmd_version},
    {"help", "show help for a command", help_usage, NULL},
};

static void print_overview(FILE *f)
{
    fprintf(f, "Usage: lbprune COMMAND [ARGS...]\n\n"
               "Channel pruning for convolutional networks, on PyTorch files, without Python.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'lbprune COMMAND --help' for the options and examples of a command.\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || is_help(argv[1])) {
        print_overview(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(1, argv + 1);
    const command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "lbprune: unknown command '%s'\n\n", argv[1]);
        print_overview(stderr);
        return 2;
    }
    if (c->run == NULL) { /* help */
        if (argc > 2 && !is_help(argv[2])) {
            const command *t = find_command(argv[2]);
            if (!t) {
                fprintf(stderr, "lbprune: unknown command '%s'\n", argv[2]);
                return 2;
            }
            fputs(t->usage, stdout);
        } else if (argc > 2) {
            fputs(c->usage, stdout);
        } else {
            print_overview(stdout);
        }
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (is_help(argv[i])) {
            fputs(c->usage, stdout);
            return 0;
        }
    }
    return c->run(argc - 1, argv + 1);
}
