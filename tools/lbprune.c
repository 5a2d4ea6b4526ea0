/* lbprune: command-line front end of libnpengine. Uses the public API only (include/npengine). */
#include <npengine/npengine.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    {"inspect", "describe a PyTorch file: kind, records, tensors, modules, parameters",
     inspect_usage, cmd_inspect},
    {"state-dict", "write the tensors of any PyTorch file as a state_dict .pth", state_dict_usage,
     cmd_state_dict},
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
