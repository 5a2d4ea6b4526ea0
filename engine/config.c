/* Configuration files (TOML): the [model] and [prune] sections that pruning reads, checked key by
 * key so a typo is an error with its line and column, never a silently ignored setting. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/toml.h"
#include "context.h"

struct npe_config {
    npe_toml_doc *doc;
    char *path;
    npe_shape *shapes;
    int n_shapes;
    npe_prune_rule *rules;
    int n_rules;
    const char **names; /* every string list of rules and exclude_layers, pointing into doc */
    int n_names;
    const char **exclude;
    int n_exclude;
    int align; /* 0: not set */
};

static const char *const top_keys[] = {"model", "data", "metric", "prune", "run", NULL};
static const char *const model_keys[] = {"path", "format", "dummy_input", "forward_name",
                                         "full_model", "state_dict", NULL};
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

static int load_model(loader *L, const npe_toml_value *t)
{
    int r = check_keys(L, t, model_keys, "[model]");
    if (r)
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
    int r = check_keys(L, t, prune_keys, "[prune]");
    if (r)
        return r;
    const npe_toml_value *v;
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

NPE_API int npe_config_load(npe_ctx *ctx, const char *path, npe_config **out)
{
    npe_ctx_clear_error(ctx);
    if (!path || !out)
        return npe_ctx_error(ctx, NPE_EINVAL, "npe_config_load: NULL argument");
    *out = NULL;
    struct npe_config *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return npe_ctx_error(ctx, NPE_ENOMEM, "out of memory");
    }
    npe_error err = {0};
    loader L = {c, &err};
    int r = npe_toml_load(path, &c->doc, &err);
    if (r)
        goto out_fail;
    const npe_toml_value *root = npe_toml_root(c->doc), *t;
    if ((r = check_keys(&L, root, top_keys, "the file (sections are [model], [data], [metric], "
                                            "[prune], [run])")))
        goto out_fail;
    for (size_t i = 0; i < root->u.tab.n; i++)
        if ((r = want(&L, root->u.tab.vals[i], NPE_TOML_TABLE, root->u.tab.keys[i])))
            goto out_fail;
    if ((t = npe_toml_get(root, "model")) && (r = load_model(&L, t)))
        goto out_fail;
    if ((t = npe_toml_get(root, "prune")) && (r = load_prune(&L, t)))
        goto out_fail;
    *out = c;
    return 0;
out_fail:
    npe_config_destroy(c);
    return npe_ctx_fail(ctx, &err);
}

NPE_API void npe_config_destroy(npe_config *c)
{
    if (!c)
        return;
    npe_toml_free(c->doc);
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
    return 0;
}
