/* Configuration files (TOML): the [model] and [prune] sections that pruning reads, checked key by
 * key so a typo is an error with its line and column, never a silently ignored setting. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/toml.h"
#include "config_internal.h"
#include "context.h"



static const char *const top_keys[] = {"model", "data", "metric", "prune", "run", NULL};
static const char *const model_keys[] = {"path", "format", "dummy_input", "forward_name",
                                         "full_model", NULL};
static const char *const data_keys[] = {"kind", "root", "masks", "images", "labels", "batch_size",
                                        "limit", "resize", "crop", "channels", "channel_order",
                                        "layout", "scale", "mean", "std", NULL};
static const char *const metric_keys[] = {"name", "num_classes", "ignore_index", NULL};
static const char *const run_keys[] = {"workers", "threads", "output_dir", "cache_mb", NULL};
static const char *const prune_keys[] = {
    "ori_metric", "metric_thres", "exclude_layers", "sparsities", "sparsities_dict",
    "early_stop_mode", "config_list", "channel_alignment", "single_process_mode", "sparsity",
    "target_macs", "target_params", NULL};
static const char *const rule_keys[] = {"sparsity", "op_types", "op_names", "exclude", NULL};

typedef struct loader {
    struct npe_config *c;
    npe_error *err;
} loader;

static int lerr(loader *L, int line, int col, const char *fmt, ...) NPE_PRINTF(4, 5);
static int lerr(loader *L, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return npe_error_set(L->err, NPE_EINVAL, "%s:%d:%d: %s", L->c->path, line, col, msg);
}

static int check_keys(loader *L, const npe_toml_value *t, const char *const *known, const char *where)
{
    for (size_t i = 0; i < t->u.tab.n; i++) {
        int ok = 0;
        for (int k = 0; known[k]; k++)
            ok |= strcmp(known[k], t->u.tab.keys[i]) == 0;
        if (!ok)
            return lerr(L, t->u.tab.key_line[i], t->u.tab.key_col[i], "unknown key '%s' in %s",
                        t->u.tab.keys[i], where);
    }
    return 0;
}

static int want(loader *L, const npe_toml_value *v, npe_toml_kind kind, const char *key)
{
    if (v->kind == kind || (kind == NPE_TOML_FLOAT && v->kind == NPE_TOML_INT))
        return 0;
    char what[128];
    snprintf(what, sizeof(what), "'%s' must be %s %s, not", key,
             kind == NPE_TOML_INT ? "an" : "a", npe_toml_kind_name(kind));
    return lerr(L, v->line, v->col, "%s %s", what, npe_toml_kind_name(v->kind));
}

static double num(const npe_toml_value *v)
{
    return v->kind == NPE_TOML_INT ? (double)v->u.i : v->u.f;
}

/* A list of strings, appended to c->names; *first receives where it starts. */
static int strings(loader *L, const npe_toml_value *v, const char *key, int *first, int *n)
{
    int r = want(L, v, NPE_TOML_ARRAY, key);
    if (r)
        return r;
    const char **grown = realloc(L->c->names, (size_t)(L->c->n_names + (int)v->u.arr.n + 1) *
                                                  sizeof(*grown));
    if (!grown)
        return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
    L->c->names = grown;
    *first = L->c->n_names;
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if ((r = want(L, v->u.arr.items[i], NPE_TOML_STRING, key)))
            return r;
        L->c->names[L->c->n_names++] = v->u.arr.items[i]->u.str.s;
    }
    *n = (int)v->u.arr.n;
    return 0;
}

static int shape_of(loader *L, const npe_toml_value *v, npe_shape *out)
{
    if (v->u.arr.n < 1 || v->u.arr.n > NPE_MAX_DIMS)
        return lerr(L, v->line, v->col, "dummy_input: a shape has 1 to 8 dims");
    out->ndim = (int)v->u.arr.n;
    for (size_t d = 0; d < v->u.arr.n; d++) {
        const npe_toml_value *x = v->u.arr.items[d];
        if (x->kind != NPE_TOML_INT || x->u.i < 1 || x->u.i > (1 << 30))
            return lerr(L, x->line, x->col, "dummy_input: dims are positive integers");
        out->d[d] = x->u.i;
    }
    return 0;
}

static int get_str(loader *L, const npe_toml_value *t, const char *key, const char **out)
{
    const npe_toml_value *v = npe_toml_get(t, key);
    if (!v)
        return 0;
    int r = want(L, v, NPE_TOML_STRING, key);
    if (!r)
        *out = v->u.str.s;
    return r;
}

static int get_int(loader *L, const npe_toml_value *t, const char *key, int64_t lo, int64_t hi,
                   int64_t *out)
{
    const npe_toml_value *v = npe_toml_get(t, key);
    if (!v)
        return 0;
    int r = want(L, v, NPE_TOML_INT, key);
    if (r)
        return r;
    if (v->u.i < lo || v->u.i > hi)
        return lerr(L, v->line, v->col, "'%s' must be from %lld to %lld, not %lld", key,
                    (long long)lo, (long long)hi, (long long)v->u.i);
    *out = v->u.i;
    return 0;
}

static int get_num(loader *L, const npe_toml_value *t, const char *key, double lo, double hi,
                   double *out)
{
    const npe_toml_value *v = npe_toml_get(t, key);
    if (!v)
        return 0;
    int r = want(L, v, NPE_TOML_FLOAT, key);
    if (r)
        return r;
    double x = num(v);
    if (!(x >= lo && x <= hi))
        return lerr(L, v->line, v->col, "'%s' must be from %g to %g, not %g", key, lo, hi, x);
    *out = x;
    return 0;
}

static int get_bool(loader *L, const npe_toml_value *t, const char *key, int *out)
{
    const npe_toml_value *v = npe_toml_get(t, key);
    if (!v)
        return 0;
    int r = want(L, v, NPE_TOML_BOOL, key);
    if (!r)
        *out = v->u.b;
    return r;
}

/* One of the words in `allowed` (NULL-terminated). */
static int get_word(loader *L, const npe_toml_value *t, const char *key,
                    const char *const *allowed, const char **out)
{
    const char *w = NULL;
    int r = get_str(L, t, key, &w);
    if (r || !w)
        return r;
    for (int i = 0; allowed[i]; i++)
        if (strcmp(allowed[i], w) == 0) {
            *out = w;
            return 0;
        }
    const npe_toml_value *v = npe_toml_get(t, key);
    char list[256] = "";
    for (int i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s'%s'", i ? ", " : "",
                 allowed[i]);
    return lerr(L, v->line, v->col, "'%s' must be one of %s, not '%s'", key, list, w);
}

/* A path from the file, resolved against the file's folder unless absolute. */
static int get_path(loader *L, const npe_toml_value *t, const char *key, char **out)
{
    const char *p = NULL;
    int r = get_str(L, t, key, &p);
    if (r || !p)
        return r;
    size_t n = strlen(L->c->dir) + strlen(p) + 2;
    char *full = malloc(n);
    if (!full)
        return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
    if (p[0] == '/')
        snprintf(full, n, "%s", p);
    else
        snprintf(full, n, "%s/%s", L->c->dir, p);
    free(*out);
    *out = full;
    return 0;
}

/* An array of numbers into a malloc'd double array. */
static int get_nums(loader *L, const npe_toml_value *v, const char *key, double **out, int *n)
{
    int r = want(L, v, NPE_TOML_ARRAY, key);
    if (r)
        return r;
    double *a = calloc(v->u.arr.n ? v->u.arr.n : 1, sizeof(double));
    if (!a)
        return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if ((r = want(L, v->u.arr.items[i], NPE_TOML_FLOAT, key))) {
            free(a);
            return r;
        }
        a[i] = num(v->u.arr.items[i]);
    }
    *out = a;
    *n = (int)v->u.arr.n;
    return 0;
}

/* sparsities lists: each in [0, 1), strictly increasing (the order they are measured in). */
static int check_sparsities(loader *L, const npe_toml_value *v, const double *s, int n,
                            const char *key)
{
    if (n < 1)
        return lerr(L, v->line, v->col, "'%s' needs at least one sparsity", key);
    for (int i = 0; i < n; i++) {
        if (!(s[i] >= 0 && s[i] < 1))
            return lerr(L, v->line, v->col, "'%s': sparsity %g is outside [0, 1)", key, s[i]);
        if (i && !(s[i] > s[i - 1]))
            return lerr(L, v->line, v->col, "'%s' must be strictly increasing (%g after %g)", key,
                        s[i], s[i - 1]);
    }
    return 0;
}

static int load_data(loader *L, const npe_toml_value *t)
{
    static const char *const kinds[] = {"imagefolder", "idx", "npy", NULL};
    static const char *const orders[] = {"rgb", "bgr", NULL};
    static const char *const layouts[] = {"nchw", "nhwc", NULL};
    struct npe_config *c = L->c;
    int64_t x;
    const char *w;
    int r;
    if ((r = check_keys(L, t, data_keys, "[data]")) || (r = get_word(L, t, "kind", kinds, &c->data_kind)) ||
        (r = get_path(L, t, "root", &c->data_root)) || (r = get_path(L, t, "masks", &c->data_masks)) ||
        (r = get_path(L, t, "images", &c->data_images)) ||
        (r = get_path(L, t, "labels", &c->data_labels)) ||
        (r = get_int(L, t, "batch_size", 1, 1 << 20, &c->batch_size)) ||
        (r = get_int(L, t, "limit", 1, INT64_MAX, &c->limit)) || (r = get_bool(L, t, "scale", &c->scale)))
        return r;
    x = 0;
    if ((r = get_int(L, t, "resize", 1, 1 << 16, &x)))
        return r;
    c->resize = (int)x;
    x = 0;
    if ((r = get_int(L, t, "channels", 1, 3, &x)))
        return r;
    if (x == 2)
        return lerr(L, npe_toml_get(t, "channels")->line, npe_toml_get(t, "channels")->col,
                    "'channels' must be 1 or 3");
    c->channels = (int)x;
    w = NULL;
    if ((r = get_word(L, t, "channel_order", orders, &w)))
        return r;
    c->bgr = w && strcmp(w, "bgr") == 0;
    w = NULL;
    if ((r = get_word(L, t, "layout", layouts, &w)))
        return r;
    c->nhwc = w && strcmp(w, "nhwc") == 0;
    const npe_toml_value *v;
    if ((v = npe_toml_get(t, "crop"))) {
        if (v->kind == NPE_TOML_INT) {
            if (v->u.i < 1 || v->u.i > (1 << 16))
                return lerr(L, v->line, v->col, "'crop' must be a positive size");
            c->crop_h = c->crop_w = (int)v->u.i;
        } else {
            if ((r = want(L, v, NPE_TOML_ARRAY, "crop")))
                return r;
            if (v->u.arr.n != 2 || v->u.arr.items[0]->kind != NPE_TOML_INT ||
                v->u.arr.items[1]->kind != NPE_TOML_INT || v->u.arr.items[0]->u.i < 1 ||
                v->u.arr.items[1]->u.i < 1)
                return lerr(L, v->line, v->col, "'crop' must be a size or [height, width]");
            c->crop_h = (int)v->u.arr.items[0]->u.i;
            c->crop_w = (int)v->u.arr.items[1]->u.i;
        }
    }
    const char *nk[2] = {"mean", "std"};
    double *dst[2] = {c->mean, c->std};
    int counts[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (!(v = npe_toml_get(t, nk[k])))
            continue;
        double *a = NULL;
        int n = 0;
        if ((r = get_nums(L, v, nk[k], &a, &n)))
            return r;
        if (n != 1 && n != 3) {
            free(a);
            return lerr(L, v->line, v->col, "'%s' needs 1 or 3 numbers", nk[k]);
        }
        for (int i = 0; i < n; i++)
            dst[k][i] = a[i];
        free(a);
        counts[k] = n;
        if (k == 1)
            for (int i = 0; i < n; i++)
                if (!(c->std[i] > 0))
                    return lerr(L, v->line, v->col, "'std' values must be positive");
    }
    if (counts[0] != counts[1])
        return lerr(L, t->line, t->col, "[data] 'mean' and 'std' must both be given, with as many "
                                        "numbers");
    c->n_norm = counts[0];
    return 0;
}

static int load_metric(loader *L, const npe_toml_value *t)
{
    static const char *const names[] = {"top1", "top5", "cross_entropy", "miou",
                                        "pixel_accuracy", "fidelity", NULL};
    int64_t x = 0;
    int r;
    if ((r = check_keys(L, t, metric_keys, "[metric]")) ||
        (r = get_word(L, t, "name", names, &L->c->metric)) ||
        (r = get_int(L, t, "num_classes", 1, 4096, &x)))
        return r;
    L->c->num_classes = (int)x;
    if (npe_toml_get(t, "ignore_index")) {
        x = 0;
        if ((r = get_int(L, t, "ignore_index", -1, INT32_MAX, &x)))
            return r;
        L->c->ignore_index = (int)x;
        L->c->has_ignore_index = 1;
    }
    return 0;
}

static int load_run(loader *L, const npe_toml_value *t)
{
    int64_t w = 0, th = 0;
    int r;
    if ((r = check_keys(L, t, run_keys, "[run]")) || (r = get_int(L, t, "workers", 1, 256, &w)) ||
        (r = get_int(L, t, "threads", 1, 1024, &th)) ||
        (r = get_int(L, t, "cache_mb", 0, INT64_MAX / (1 << 20), &L->c->cache_mb)) ||
        (r = get_path(L, t, "output_dir", &L->c->output_dir)))
        return r;
    L->c->workers = (int)w;
    L->c->threads = (int)th;
    return 0;
}

static int load_model(loader *L, const npe_toml_value *t)
{
    static const char *const formats[] = {"torchscript", NULL};
    const char *fmt = NULL;
    int r;
    if ((r = check_keys(L, t, model_keys, "[model]")) || (r = get_path(L, t, "path", &L->c->model_path)) ||
        (r = get_path(L, t, "full_model", &L->c->full_model)) ||
        (r = get_str(L, t, "forward_name", &L->c->forward_name)) ||
        (r = get_word(L, t, "format", formats, &fmt)))
        return r;
    const npe_toml_value *v = npe_toml_get(t, "dummy_input");
    if (!v)
        return 0;
    if ((r = want(L, v, NPE_TOML_ARRAY, "dummy_input")))
        return r;
    /* [1, 3, 224, 224] for one input, [[1, 3, 64, 64], [1, 16]] for several */
    int nested = v->u.arr.n > 0 && v->u.arr.items[0]->kind == NPE_TOML_ARRAY;
    int n = nested ? (int)v->u.arr.n : 1;
    if (n < 1 || n > 8)
        return lerr(L, v->line, v->col, "dummy_input: 1 to 8 input shapes");
    if (!(L->c->shapes = calloc((size_t)n, sizeof(npe_shape))))
        return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
    L->c->n_shapes = n;
    for (int i = 0; i < n; i++) {
        const npe_toml_value *s = nested ? v->u.arr.items[i] : v;
        if ((r = want(L, s, NPE_TOML_ARRAY, "dummy_input")) || (r = shape_of(L, s, &L->c->shapes[i])))
            return r;
    }
    return 0;
}

static int load_rule(loader *L, const npe_toml_value *t, npe_prune_rule *rule, int *name_first)
{
    int r = check_keys(L, t, rule_keys, "[[prune.config_list]]");
    if (r)
        return r;
    const npe_toml_value *v;
    if ((v = npe_toml_get(t, "exclude"))) {
        if ((r = want(L, v, NPE_TOML_BOOL, "exclude")))
            return r;
        rule->exclude = v->u.b;
    }
    if ((v = npe_toml_get(t, "sparsity"))) {
        if ((r = want(L, v, NPE_TOML_FLOAT, "sparsity")))
            return r;
        rule->sparsity = num(v);
        if (!(rule->sparsity >= 0 && rule->sparsity < 1))
            return lerr(L, v->line, v->col, "sparsity must be in [0, 1)");
    } else if (!rule->exclude) {
        return lerr(L, t->line, t->col, "a config_list entry needs 'sparsity' (or exclude = true)");
    }
    /* string lists: remember offsets into c->names (it may move while growing) */
    name_first[0] = name_first[1] = -1;
    if ((v = npe_toml_get(t, "op_types")) &&
        (r = strings(L, v, "op_types", &name_first[0], &rule->n_op_types)))
        return r;
    if ((v = npe_toml_get(t, "op_names")) &&
        (r = strings(L, v, "op_names", &name_first[1], &rule->n_op_names)))
        return r;
    return 0;
}

static int load_prune(loader *L, const npe_toml_value *t)
{
    static const char *const modes[] = {"dropped", "raised", "none", NULL};
    int r = check_keys(L, t, prune_keys, "[prune]");
    if (r)
        return r;
    struct npe_config *c = L->c;
    const npe_toml_value *v;
    if ((r = get_num(L, t, "ori_metric", -1e300, 1e300, &c->ori_metric)) ||
        (r = get_num(L, t, "metric_thres", 0, 1e300, &c->metric_thres)) ||
        (r = get_num(L, t, "target_macs", 0, 1, &c->target_macs)) ||
        (r = get_num(L, t, "target_params", 0, 1, &c->target_params)) ||
        (r = get_word(L, t, "early_stop_mode", modes, &c->early_stop_mode)) ||
        (r = get_bool(L, t, "single_process_mode", &c->single_process_mode)))
        return r;
    if (npe_toml_get(t, "sparsity")) {
        if ((r = get_num(L, t, "sparsity", 0, 1, &c->sparsity)))
            return r;
        if (c->sparsity >= 1)
            return lerr(L, npe_toml_get(t, "sparsity")->line, npe_toml_get(t, "sparsity")->col,
                        "'sparsity' must be below 1");
        c->has_sparsity = 1;
    }
    if (c->target_macs > 0 && c->target_params > 0)
        return lerr(L, t->line, t->col, "give target_macs or target_params, not both");
    if ((v = npe_toml_get(t, "sparsities"))) {
        if ((r = get_nums(L, v, "sparsities", &c->sparsities, &c->n_sparsities)) ||
            (r = check_sparsities(L, v, c->sparsities, c->n_sparsities, "sparsities")))
            return r;
    }
    if ((v = npe_toml_get(t, "sparsities_dict"))) {
        if ((r = want(L, v, NPE_TOML_TABLE, "sparsities_dict")))
            return r;
        c->dict = calloc(v->u.tab.n ? v->u.tab.n : 1, sizeof(*c->dict));
        if (!c->dict)
            return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
        for (size_t i = 0; i < v->u.tab.n; i++) {
            npe_config_dict *d = &c->dict[c->n_dict++];
            d->name = v->u.tab.keys[i];
            if ((r = get_nums(L, v->u.tab.vals[i], d->name, &d->sparsities, &d->n)) ||
                (r = check_sparsities(L, v->u.tab.vals[i], d->sparsities, d->n, d->name)))
                return r;
        }
    }
    if ((v = npe_toml_get(t, "channel_alignment"))) {
        if ((r = want(L, v, NPE_TOML_INT, "channel_alignment")))
            return r;
        if (v->u.i < 1 || v->u.i > 4096)
            return lerr(L, v->line, v->col, "channel_alignment must be 1 to 4096");
        L->c->align = (int)v->u.i;
    }
    int ex_first = -1;
    if ((v = npe_toml_get(t, "exclude_layers")) &&
        (r = strings(L, v, "exclude_layers", &ex_first, &L->c->n_exclude)))
        return r;
    int (*firsts)[2] = NULL;
    if ((v = npe_toml_get(t, "config_list"))) {
        if ((r = want(L, v, NPE_TOML_ARRAY, "config_list")))
            return r;
        int n = (int)v->u.arr.n;
        L->c->rules = calloc((size_t)(n ? n : 1), sizeof(npe_prune_rule));
        firsts = calloc((size_t)(n ? n : 1), sizeof(*firsts));
        if (!L->c->rules || !firsts) {
            free(firsts);
            return npe_error_set(L->err, NPE_ENOMEM, "out of memory");
        }
        L->c->n_rules = n;
        for (int i = 0; i < n; i++) {
            const npe_toml_value *e = v->u.arr.items[i];
            if ((r = want(L, e, NPE_TOML_TABLE, "config_list")) ||
                (r = load_rule(L, e, &L->c->rules[i], firsts[i]))) {
                free(firsts);
                return r;
            }
        }
    }
    /* c->names is final: point the rules and exclude_layers into it */
    if (ex_first >= 0)
        L->c->exclude = L->c->names + ex_first;
    for (int i = 0; i < L->c->n_rules; i++) {
        if (firsts[i][0] >= 0)
            L->c->rules[i].op_types = L->c->names + firsts[i][0];
        if (firsts[i][1] >= 0)
            L->c->rules[i].op_names = L->c->names + firsts[i][1];
    }
    free(firsts);
    return 0;
}

/* A config with its defaults; path names it in messages, dir resolves relative paths. */
static struct npe_config *config_new(const char *path, const char *dir)
{
    struct npe_config *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (!(c->path = strdup(path)) || !(c->dir = strdup(dir))) {
        free(c->path);
        free(c);
        return NULL;
    }
    c->ori_metric = NAN;
    c->single_process_mode = 0; /* parallel when [run] workers > 1 */
    c->scale = 1;
    return c;
}

/* Read the sections of c->doc into c. */
static int config_read(struct npe_config *c, npe_error *err)
{
    loader L = {c, err};
    int r;
    const npe_toml_value *root = npe_toml_root(c->doc), *t;
    if ((r = check_keys(&L, root, top_keys, "the file (sections are [model], [data], [metric], "
                                            "[prune], [run])")))
        return r;
    for (size_t i = 0; i < root->u.tab.n; i++)
        if ((r = want(&L, root->u.tab.vals[i], NPE_TOML_TABLE, root->u.tab.keys[i])))
            return r;
    if ((t = npe_toml_get(root, "model")) && (r = load_model(&L, t)))
        return r;
    if ((t = npe_toml_get(root, "prune")) && (r = load_prune(&L, t)))
        return r;
    if ((t = npe_toml_get(root, "data")) && (r = load_data(&L, t)))
        return r;
    if ((t = npe_toml_get(root, "metric")) && (r = load_metric(&L, t)))
        return r;
    if ((t = npe_toml_get(root, "run")) && (r = load_run(&L, t)))
        return r;
    return 0;
}

NPE_API int npe_config_load(npe_ctx *ctx, const char *path, npe_config **out)
{
    npe_ctx_clear_error(ctx);
    if (!path || !out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_config_load: NULL argument");
    *out = NULL;
    struct npe_config *c = config_new(path, path);
    if (!c)
        return npe_ctx_error(ctx, NPE_ENOMEM, "out of memory");
    char *slash = strrchr(c->dir, '/');
    if (slash)
        *(slash == c->dir ? slash + 1 : slash) = '\0';
    else
        strcpy(c->dir, ".");
    npe_error err = {0};
    int r = npe_toml_load(path, &c->doc, &err);
    if (r || (r = config_read(c, &err))) {
        npe_config_destroy(c);
        return npe_ctx_fail(ctx, &err);
    }
    *out = c;
    return 0;
}

NPE_API int npe_config_parse(npe_ctx *ctx, const char *toml_text, size_t len, const char *base_dir,
                             npe_config **out)
{
    npe_ctx_clear_error(ctx);
    if (!toml_text || !out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_config_parse: NULL argument");
    *out = NULL;
    if (base_dir && !base_dir[0])
        base_dir = NULL;
    struct npe_config *c = config_new("config", base_dir ? base_dir : ".");
    if (!c)
        return npe_ctx_error(ctx, NPE_ENOMEM, "out of memory");
    npe_error err = {0};
    int r = npe_toml_parse(toml_text, len, "config", &c->doc, &err);
    if (r || (r = config_read(c, &err))) {
        npe_config_destroy(c);
        return npe_ctx_fail(ctx, &err);
    }
    *out = c;
    return 0;
}

NPE_API void npe_config_destroy(npe_config *c)
{
    if (!c)
        return;
    npe_toml_free(c->doc);
    free(c->dir);
    free(c->model_path);
    free(c->full_model);
    free(c->data_root);
    free(c->data_masks);
    free(c->data_images);
    free(c->data_labels);
    free(c->output_dir);
    free(c->sparsities);
    for (int i = 0; i < c->n_dict; i++)
        free(c->dict[i].sparsities);
    free(c->dict);
    free(c->shapes);
    free(c->rules);
    free(c->names);
    free(c->path);
    free(c);
}

NPE_API int npe_config_prune_options(const npe_config *c, npe_prune_options *opt)
{
    if (!c || !opt)
        return NPE_EINVAL;
    if (c->n_shapes) {
        opt->input_shapes = c->shapes;
        opt->n_input_shapes = c->n_shapes;
    }
    if (c->n_rules) {
        opt->config_list = c->rules;
        opt->n_config_list = c->n_rules;
    }
    if (c->exclude) {
        opt->exclude_layers = c->exclude;
        opt->n_exclude_layers = c->n_exclude;
    }
    if (c->align)
        opt->channel_alignment = c->align;
    if (c->has_sparsity)
        opt->sparsity = c->sparsity;
    return 0;
}
