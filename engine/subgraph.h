/* Parts of a graph, so the sensitivity analysis runs only what a pruned group changes: the nodes
 * downstream of an edit (the region), the activations they read from outside (the frontier), and
 * a graph of just those nodes whose inputs are the frontier values.
 *
 * A part keeps every node it is given, even one no output needs: each activation of the part then
 * has the same readers as in the whole graph (or is an output of the part), so the executor plans
 * and runs it the same way and the part computes the same bits as the whole graph does. Static
 * values the part reads from outside (shape arithmetic such as torch.size of an upstream tensor,
 * factories) are made by pulling their nodes in; the activations those read become inputs. */
#ifndef NPE_ENGINE_SUBGRAPH_H
#define NPE_ENGINE_SUBGRAPH_H

#include "../formats/error.h"
#include "groups.h"
#include "ir.h"

/* Whether value v of the inferred graph g is an activation: a tensor computed at run time (or a
 * graph input), which a frontier carries. Parameters, constants, literals, lists and static
 * tensors (known after inference) are not. */
int npe_subgraph_is_activation(const npe_graph *g, int v);

/* Mark in nodes_out (g->n_nodes entries) the nodes whose results can differ when the seed nodes
 * and the values flagged in changed_values (g->n_values entries, may be NULL: parameters and
 * literals that an edit rewrites) change: the seeds, the readers of changed values (directly or
 * through list values), and every node reading a result of a marked node. The set is closed
 * downstream; its complement is closed upstream (it computes what the unedited graph does). */
void npe_subgraph_downstream(const npe_graph *g, const int *seeds, int n_seeds,
                             const unsigned char *changed_values, unsigned char *nodes_out);

/* The region of group gi of G (found on g): the nodes pruning it edits (its producers, the
 * readers of the weights and per-channel tensors it cuts and of the literals it rewrites) and
 * everything downstream of them. Pruning the group leaves the other nodes computing what they
 * compute in g. nodes_out has g->n_nodes entries. */
int npe_subgraph_group_region(const npe_graph *g, const npe_groups *G, int gi,
                              unsigned char *nodes_out, npe_error *err);

typedef struct npe_subgraph_plan {
    unsigned char *keep; /* per node of g: in the part (the nodes asked for, plus the static
                          * nodes they read from) */
    int n_keep;
    int *inputs;         /* the frontier: activations (value ids of g, ascending) read by kept
                          * nodes and made outside them, graph inputs included */
    int n_inputs;
} npe_subgraph_plan;

/* The part made of the nodes flagged in nodes[] (g->n_nodes entries) of the inferred graph g. */
int npe_subgraph_plan_make(const npe_graph *g, const unsigned char *nodes, npe_subgraph_plan *p,
                           npe_error *err);
void npe_subgraph_plan_finish(npe_subgraph_plan *p); /* zeroes *p */

/* Whether value v is made by a node of the part (an output the part can give). */
int npe_subgraph_makes(const npe_graph *g, const npe_subgraph_plan *p, int v);

/* Cut g, in place, down to the part: its inputs become p->inputs (in that order), its outputs
 * outs[0..n_outs) (value ids of g; each made by a node of the part), and every node outside the
 * part goes with the parameters only it read. g is the graph the plan was made on or a clone of
 * it with the same ids (pruned parameters and literals are fine). On failure g is unusable. */
int npe_subgraph_cut(npe_graph *g, const npe_subgraph_plan *p, const int *outs, int n_outs,
                     npe_error *err);

#endif
