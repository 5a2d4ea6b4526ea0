/* Physical channel pruning on the IR: rank a group's channels, choose the kept ones, cut the
 * parameters and literals (engine/groups.h says which), infer again; and the parameter / MAC
 * counts and the JSON report of `lbprune prune`. */
#ifndef NPE_ENGINE_PRUNE_H
#define NPE_ENGINE_PRUNE_H

#include <stdint.h>

#include "../formats/error.h"
#include "groups.h"
#include "ir.h"
#include "json_writer.h"

/* Channels kept per group. A group is whole while kept[g] is NULL (n_kept[g] == channels). */
typedef struct npe_prune_plan {
    int n_groups;
    int *n_kept;   /* per group */
    int **kept;    /* per group: n_kept ascending channel indices, or NULL (whole) */
    char **why;    /* per group: why it was left whole by npe_prune_plan_uniform (unprunable
                    * reason, "excluded by exclude_layers ('x')"), or NULL */
} npe_prune_plan;

/* A plan keeping every channel of every group of G. */
int npe_prune_plan_create(const npe_groups *G, npe_prune_plan **out);
void npe_prune_plan_destroy(npe_prune_plan *p); /* NULL accepted */

/* Channels kept of C at sparsity s with alignment a (DESIGN.md): k = C - floor(s*C); with
 * a > 1, k = min(C, max(a, ceil(k/a)*a)). s is clamped to [0, 1]; k is at least 1 (a group is
 * never cut to nothing). */
int64_t npe_prune_kept_count(int64_t C, double s, int align);

/* Importance of each channel of group gi: the L1 norm of every producer's filter of that channel,
 * summed over the group's producers (a weight shared by several calls counts once; depthwise
 * convs count: their filters are the channel's too). norms has G->groups[gi].channels entries. */
int npe_prune_norms(const npe_graph *g, const npe_groups *G, int gi, double *norms);

/* Keep the channels of group gi that sparsity s and alignment align leave: the lowest norms are
 * pruned first, ties pruning the lower index first; kept indices ascending. Refuses an
 * unprunable group (NPE_EINVAL, err says why). */
int npe_prune_select(const npe_graph *g, const npe_groups *G, int gi, double s, int align,
                     npe_prune_plan *plan, npe_error *err);

/* Keep exactly these channels of group gi (any order, no repeats, at least one). */
int npe_prune_set_kept(const npe_groups *G, npe_prune_plan *plan, int gi, const int *kept, int n,
                       npe_error *err);

/* Index into exclude[] of the first name that is the group's name or one of its producers'
 * layer names (npe_layer_name), or -1. */
int npe_prune_excluded(const npe_graph *g, const npe_groups *G, int gi,
                       const char *const *exclude, int n_exclude);

/* `--sparsity S --align N --exclude a,b`: every prunable, not excluded group at sparsity s.
 * plan->why says why each other group was left whole. */
int npe_prune_plan_uniform(const npe_graph *g, const npe_groups *G, double s, int align,
                           const char *const *exclude, int n_exclude, npe_prune_plan **out,
                           npe_error *err);

/* A config_list (npe_prune_options.config_list; later entries win, `exclude` entries keep
 * groups whole) plus exclude_layers and channel_alignment (engine/prune_api.c). */
int npe_prune_plan_rules(const npe_graph *g, const npe_groups *G, const npe_prune_options *opt,
                         npe_prune_plan **out, npe_error *err);

/* dst = the elements of a tensor src of shape shape[0..nd) at the indices idx[d] (ascending;
 * NULL: all) of each dim d, nkeep[d] of them, in order; runs of the uncut trailing dims are
 * copied whole. dst holds the product of nkeep. */
void npe_gather_indices(float *dst, const float *src, int nd, const int64_t *shape,
                        int64_t *const *idx, const int64_t *nkeep);

/* Cut g as the plan says: producers' output channels, per-channel tensors (BN, biases,
 * channel-shaped parameters and constants, depthwise rows), consumers' input channels; rewrite
 * the literals that hold channel counts (depthwise `groups`, view and expand sizes); infer the
 * shapes again with G's input shapes and check every followed tensor has the channels kept.
 * g must be the graph G was found on, or a clone of it, not pruned since. A plan that keeps
 * everything leaves g untouched. On failure g may be half cut: prune a clone when that matters.
 * Executors planned on g must be invalidated (npe_exec_invalidate). */
int npe_prune_apply(npe_graph *g, const npe_groups *G, const npe_prune_plan *plan, npe_error *err);

/* ---- Counting (engine/count.c) ----------------------------------------------------------------
 * Parameters: the elements of every parameter tensor, as model.parameters() counts them (conv,
 * linear and BN weights and biases, other nn.Parameters; not running statistics or constants),
 * each tensor once even when several calls share it.
 * MACs per image (batch dim divided out): conv Cout*Ho*Wo*(Cin/g)*kh*kw; transposed conv
 * Cin*Hi*Wi*(Cout/g)*kh*kw; linear in*out per row. Nothing else is counted: not biases, BN,
 * activations, pooling or elementwise arithmetic (FLOPs = 2 x MACs). */
typedef struct npe_layer_count {
    int node;
    const char *name;  /* npe_layer_name: points into the graph */
    int64_t params;    /* parameters the node reads */
    int64_t macs;
} npe_layer_count;

typedef struct npe_counts {
    int64_t params, macs;
    npe_layer_count *layers; /* conv, linear and batch_norm nodes in graph order */
    int n_layers;
} npe_counts;

/* Count g, whose shapes must be inferred (npe_graph_infer, npe_groups_find, npe_prune_apply). */
int npe_count(const npe_graph *g, npe_counts *out, npe_error *err);
void npe_counts_free(npe_counts *c); /* frees layers, zeroes *c */

/* ---- Report ----------------------------------------------------------------------------------
 * Write into the JSON object j has open: "params_before", "params_after", "macs_before",
 * "macs_after", and "groups": [{"name", "channels", "kept": [indices], "producers": [layer
 * names], "consumers": [{"layer", "removed_inputs": [indices into that layer's weight input
 * dim; for a grouped conv, its input channel indices]}], "reason" (groups left whole for a
 * reason only)}]. A module called several times is listed once. g is the graph G was found on
 * (the names are read from it). */
int npe_prune_report_json(npe_json *j, const npe_graph *g, const npe_groups *G,
                          const npe_prune_plan *plan, const npe_counts *before,
                          const npe_counts *after);

#endif
