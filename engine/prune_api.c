/* Public pruning API: analyse the model's channel groups for the given input shapes, choose the
 * kept channels (uniform sparsity or a config_list), cut a copy of the graph and swap it in; and the
 * exports of the pruned model. */
#define _POSIX_C_SOURCE 200809L
#include <npengine/npengine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../importers/ts_export.h"
#include "context.h"
#include "groups.h"
#include "json_writer.h"
#include "model_internal.h"
#include "prune.h"

NPE_API void npe_prune_options_init(npe_prune_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof(*opt));
    opt->channel_alignment = 2;
}

/* "Conv2d", "ConvTranspose2d" or "Linear": the PyTorch module type of a producer node. */
static const char *producer_type(const npe_graph *g, int node)
{
    const npe_node *n = &g->nodes[node];
    if (n->op == NPE_OP_LINEAR)
        return "Linear";
    if (n->op == NPE_OP_CONV) {
        const npe_value *t = &g->values[n->in[NPE_CONV_TRANSPOSED]];
        return t->i ? "ConvTranspose2d" : "Conv2d";
    }
    return "";
}

static int name_in(const char *name, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* A user-given layer name must name something, or a typo would silently prune the wrong model. */
static int known_layer(const npe_graph *g, const npe_groups *G, const char *name)
{
    if (npe_groups_find_name(G, name) >= 0)
        return 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(npe_layer_name(g, i), name) == 0 || strcmp(g->nodes[i].scope, name) == 0)
            return 1;
    return 0;
}

static int rule_matches(const npe_graph *g, const npe_groups *G, int gi, const npe_prune_rule *r)
{
    const npe_group *grp = &G->groups[gi];
    if (r->n_op_names && name_in(grp->name, r->op_names, r->n_op_names)) {
        if (!r->n_op_types)
            return 1;
    }
    for (int k = 0; k < grp->n_producers; k++) {
        int node = G->producers[grp->producers[k]].node;
        int type_ok = !r->n_op_types || name_in(producer_type(g, node), r->op_types, r->n_op_types) ||
                      name_in("default", r->op_types, r->n_op_types);
        int name_ok = !r->n_op_names || name_in(npe_layer_name(g, node), r->op_names, r->n_op_names) ||
                      name_in(grp->name, r->op_names, r->n_op_names);
        if (type_ok && name_ok)
            return 1;
    }
    return 0;
}

int npe_prune_plan_rules(const npe_graph *g, const npe_groups *G, const npe_prune_options *opt,
                         npe_prune_plan **out, npe_error *err)
{
    npe_prune_plan *plan = NULL;
    int r = npe_prune_plan_create(G, &plan);
    if (r)
        return npe_error_set(err, r, "out of memory");
    for (int gi = 0; gi < G->n_groups; gi++) {
        double s = 0;
        int excluded = npe_prune_excluded(g, G, gi, opt->exclude_layers, opt->n_exclude_layers) >= 0;
        for (int k = 0; k < opt->n_config_list; k++) {
            const npe_prune_rule *rule = &opt->config_list[k];
            if (!rule_matches(g, G, gi, rule))
                continue;
            if (rule->exclude)
                excluded = 1;
            else
                s = rule->sparsity;
        }
        if (excluded || s <= 0 || !G->groups[gi].prunable)
            continue;
        if ((r = npe_prune_select(g, G, gi, s, opt->channel_alignment, plan, err))) {
            npe_prune_plan_destroy(plan);
            return r;
        }
    }
    *out = plan;
    return 0;
}

static int check_options(npe_model *m, const npe_prune_options *opt)
{
    if (!opt || !opt->input_shapes || opt->n_input_shapes < 1)
        return npe_ctx_error(m->ctx, NPE_EINVAL,
                             "pruning needs the shape of every model input (dummy_input)");
    if (opt->n_input_shapes != m->graph->n_inputs || opt->n_input_shapes > 8)
        return npe_ctx_error(m->ctx, NPE_EINVAL, "%s takes %d input(s), %d input shape(s) given",
                             m->path, m->graph->n_inputs, opt->n_input_shapes);
    for (int i = 0; i < opt->n_input_shapes; i++) {
        const npe_shape *sh = &opt->input_shapes[i];
        if (sh->ndim < 1 || sh->ndim > NPE_MAX_DIMS)
            return npe_ctx_error(m->ctx, NPE_EINVAL, "input shape %d has %d dims", i, sh->ndim);
        for (int d = 0; d < sh->ndim; d++)
            if (sh->d[d] < 1)
                return npe_ctx_error(m->ctx, NPE_EINVAL, "input shape %d: dim %d is %lld", i, d,
                                     (long long)sh->d[d]);
    }
    if (opt->n_groups < 0 || (opt->n_groups > 0 && !opt->groups))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "groups: %d entries but no array", opt->n_groups);
    if (opt->n_config_list < 0 || (opt->n_config_list > 0 && !opt->config_list))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "config_list: %d entries but no array",
                             opt->n_config_list);
    if (opt->n_exclude_layers < 0 || (opt->n_exclude_layers > 0 && !opt->exclude_layers))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "exclude_layers: %d entries but no array",
                             opt->n_exclude_layers);
    for (int k = 0; k < opt->n_groups; k++) {
        const npe_group_prune *e = &opt->groups[k];
        if (!e->group)
            return npe_ctx_error(m->ctx, NPE_EINVAL, "groups[%d]: no group name", k);
        if (e->n_kept < 0 || (e->n_kept > 0 && !e->kept))
            return npe_ctx_error(m->ctx, NPE_EINVAL, "groups[%d] ('%s'): n_kept is %d but kept "
                                 "is %s", k, e->group, e->n_kept, e->kept ? "set" : "NULL");
        if (!e->n_kept && !(e->sparsity >= 0 && e->sparsity < 1))
            return npe_ctx_error(m->ctx, NPE_EINVAL, "groups[%d] ('%s'): sparsity %g is outside "
                                 "[0, 1)", k, e->group, e->sparsity);
        for (int j = 0; j < k; j++)
            if (opt->groups[j].group && strcmp(opt->groups[j].group, e->group) == 0)
                return npe_ctx_error(m->ctx, NPE_EINVAL, "groups[%d] and groups[%d] both set "
                                     "group '%s'", j, k, e->group);
    }
    if (!(opt->sparsity >= 0 && opt->sparsity < 1))
        return npe_ctx_error(m->ctx, NPE_EINVAL, "sparsity %g is outside [0, 1)", opt->sparsity);
    if (opt->channel_alignment < 1 || opt->channel_alignment > 4096)
        return npe_ctx_error(m->ctx, NPE_EINVAL, "channel_alignment %d is outside [1, 4096]",
                             opt->channel_alignment);
    for (int k = 0; k < opt->n_config_list; k++) {
        double s = opt->config_list[k].sparsity;
        if (!opt->config_list[k].exclude && !(s >= 0 && s < 1))
            return npe_ctx_error(m->ctx, NPE_EINVAL, "config_list[%d]: sparsity %g is outside [0, 1)",
                                 k, s);
    }
    return 0;
}

/* "a, b, c" (the first names of G's groups) for messages. */
static void group_names(const npe_groups *G, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int gi = 0; gi < G->n_groups && n + 8 < cap; gi++) {
        int k = snprintf(buf + n, cap - n, "%s%s", gi ? ", " : "", G->groups[gi].name);
        if (k < 0 || (size_t)k >= cap - n) {
            snprintf(buf + n, cap - n, "...");
            return;
        }
        n += (size_t)k;
    }
}

/* The per-group entries of opt, applied to plan (they win over everything else). */
static int plan_groups(const npe_graph *g, const npe_groups *G, const npe_prune_options *opt,
                       const char *path, npe_prune_plan *plan, npe_error *err)
{
    int r;
    for (int k = 0; k < opt->n_groups; k++) {
        const npe_group_prune *e = &opt->groups[k];
        int gi = npe_groups_find_name(G, e->group);
        if (gi < 0) {
            char names[600];
            group_names(G, names, sizeof(names));
            return npe_error_set(err, NPE_ENOTFOUND, "groups[%d]: %s has no channel group '%s' "
                                 "(groups: %s)", k, path, e->group, names);
        }
        const npe_group *gr = &G->groups[gi];
        if (!gr->prunable)
            return npe_error_set(err, NPE_EINVAL, "groups[%d]: group '%s' cannot be pruned: %s",
                                 k, gr->name, gr->reason);
        r = 0;
        if (e->n_kept > 0) {
            r = npe_prune_set_kept(G, plan, gi, e->kept, e->n_kept, err);
        } else if (e->sparsity > 0) {
            r = npe_prune_select(g, G, gi, e->sparsity, opt->channel_alignment, plan, err);
        } else { /* sparsity 0: explicitly whole */
            free(plan->kept[gi]);
            plan->kept[gi] = NULL;
            plan->n_kept[gi] = gr->channels;
        }
        if (r) {
            npe_error_prefix(err, "groups[%d]", k);
            return r;
        }
        free(plan->why[gi]); /* set by the user: no longer "excluded" */
        plan->why[gi] = NULL;
    }
    return 0;
}

NPE_API int npe_model_prune(npe_model *m, const npe_prune_options *opt)
{
    if (!m)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    int r = check_options(m, opt);
    if (r)
        return r;

    npe_error err = {0};
    npe_graph *g = NULL;
    npe_groups *G = NULL;
    npe_prune_plan *plan = NULL;
    npe_counts before = {0}, after = {0};
    npe_exec *x = NULL;
    npe_json j;
    npe_json_init(&j, 1);
    npe_tshape shapes[8];
    for (int i = 0; i < opt->n_input_shapes; i++) {
        shapes[i].ndim = opt->input_shapes[i].ndim;
        memcpy(shapes[i].d, opt->input_shapes[i].d, sizeof(shapes[i].d));
    }

    /* Cut a clone: a failure half way leaves the model as it was. */
    if ((r = npe_graph_clone(m->graph, &g))) {
        npe_error_set(&err, r, "out of memory");
        goto out_free;
    }
    if ((r = npe_groups_find(g, shapes, opt->n_input_shapes, &G, &err)))
        goto out_free;
    for (int i = 0; i < opt->n_exclude_layers; i++)
        if (!known_layer(g, G, opt->exclude_layers[i])) {
            r = npe_error_set(&err, NPE_ENOTFOUND,
                              "exclude_layers: '%s' is no layer of %s", opt->exclude_layers[i],
                              m->path);
            goto out_free;
        }
    for (int k = 0; k < opt->n_config_list; k++)
        for (int i = 0; i < opt->config_list[k].n_op_names; i++)
            if (!known_layer(g, G, opt->config_list[k].op_names[i])) {
                r = npe_error_set(&err, NPE_ENOTFOUND, "config_list[%d].op_names: '%s' is no layer of %s",
                                  k, opt->config_list[k].op_names[i], m->path);
                goto out_free;
            }
    if (opt->n_config_list > 0)
        r = npe_prune_plan_rules(g, G, opt, &plan, &err);
    else
        r = npe_prune_plan_uniform(g, G, opt->sparsity, opt->channel_alignment, opt->exclude_layers,
                                   opt->n_exclude_layers, &plan, &err);
    if (r || (r = plan_groups(g, G, opt, m->path, plan, &err)))
        goto out_free;
    if ((r = npe_count(g, &before, &err)) || (r = npe_prune_apply(g, G, plan, &err)) ||
        (r = npe_count(g, &after, &err)))
        goto out_free;

    npe_json_begin_object(&j, 0);
    if ((r = npe_prune_report_json(&j, g, G, plan, &before, &after))) {
        npe_error_set(&err, r, "cannot write the pruning report");
        goto out_free;
    }
    npe_json_end_object(&j);
    char *report = npe_json_finish(&j, NULL);
    if (!report) {
        r = npe_error_set(&err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    if ((r = npe_exec_create(g, &m->kernels, 0, &x, &err))) {
        free(report);
        goto out_free;
    }
    /* Swap the pruned graph in. */
    npe_exec_destroy(m->exec);
    npe_graph_destroy(m->graph);
    free(m->report);
    m->exec = x;
    m->graph = g;
    m->report = report;
    npe_model_reset_slots(m);
    g = NULL;
    r = 0;
    /* the queries now describe the pruned model at these shapes */
    if (npe_model_analysis_run(m, opt->input_shapes, opt->n_input_shapes, &err)) {
        npe_model_analysis_free(m->an);
        m->an = NULL;
        npe_ctx_log(m->ctx, NPE_LOG_WARN, "the pruned model could not be analysed again: %s",
                    err.msg);
    }
out_free:
    npe_json_free(&j);
    npe_counts_free(&before);
    npe_counts_free(&after);
    npe_prune_plan_destroy(plan);
    npe_groups_destroy(G);
    npe_graph_destroy(g);
    if (r)
        return npe_ctx_fail(m->ctx, &err);
    return 0;
}

NPE_API const char *npe_model_prune_report(const npe_model *m)
{
    return m ? m->report : NULL;
}

static int export_done(npe_model *m, int r, npe_error *err)
{
    return r ? npe_ctx_fail(m->ctx, err) : 0;
}

NPE_API int npe_model_save_torchscript(npe_model *m, const char *path)
{
    if (!m || !path)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    npe_error err = {0};
    return export_done(m, npe_ts_export(m->graph, m->path, path, &err), &err);
}

NPE_API int npe_model_save_state_dict(npe_model *m, const char *path)
{
    if (!m || !path)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    npe_error err = {0};
    return export_done(m, npe_state_dict_export(m->graph, path, &err), &err);
}

NPE_API int npe_model_save_channels(npe_model *m, const char *json_path)
{
    if (!m || !json_path)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    npe_error err = {0};
    return export_done(m, npe_channels_export(m->graph, json_path, &err), &err);
}

NPE_API int npe_model_save_full_model(npe_model *m, const char *in_full, const char *out_full)
{
    if (!m || !in_full || !out_full)
        return NPE_EINVAL;
    npe_ctx_clear_error(m->ctx);
    npe_error err = {0};
    return export_done(m, npe_full_model_export(m->graph, in_full, out_full, &err), &err);
}
