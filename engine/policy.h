/* Per-group sparsity choice from a sensitivity table: the metric_thres policy of DESIGN.md, and a
 * global MACs / params target met by one threshold on metric drop shared by all groups. */
#ifndef NPE_ENGINE_POLICY_H
#define NPE_ENGINE_POLICY_H

#include <stddef.h>

#include "../formats/error.h"
#include "sens_table.h"

/* How much worse v is than ori: ori - v when higher is better, v - ori otherwise (negative when
 * pruning helped; NaN stays NaN). */
double npe_policy_drop(int higher_is_better, double ori, double v);

/* The largest k such that every values[j], j < k, stays within thres of ori: with higher is better
 * !(v < ori - thres), else !(v > ori + thres); equality is within (the same comparisons as early
 * stop), NaN never is. A later recovery does not count: the first failure ends the run. */
size_t npe_policy_within_len(int higher_is_better, double ori, double thres, const double *values,
                             size_t n);

/* metric_thres policy: for every group g of t, chosen[g] = the largest sparsity s of g's row
 * (npe_sens_row_len: measured in order, cut at early stop) such that every s' <= s of the row is
 * within thres of t->baseline; 0 for skipped groups, for groups whose first sparsity fails, and
 * for groups with nothing measured. index[g] (optional, may be NULL) gets the position of the
 * chosen sparsity in g's list, or -1. The group's list is its own (`sparsities_dict` applies when
 * the table is built). NPE_EINVAL when thres is negative or not finite or t has no baseline. */
int npe_policy_threshold(const npe_sens_table *t, double thres, double *chosen, int *index,
                         npe_error *err);

enum npe_target_kind { NPE_TARGET_MACS, NPE_TARGET_PARAMS };

typedef struct npe_target_result {
    int feasible;        /* the predicted fraction meets the target */
    double threshold;    /* largest metric drop accepted (-INFINITY: nothing needed pruning) */
    double fraction;     /* predicted remaining fraction of the chosen configuration */
    double min_fraction; /* the smallest fraction the table can reach: every group at the largest
                          * sparsity of its row (values that are NaN excepted) */
} npe_target_result;

/* Global target policy (target_macs / target_params): keep at most target (a fraction of the
 * original, in (0, 1]; >= 1 needs no pruning) of total.
 * saving[g][i] is the predicted amount (MACs or parameters) removed when only group g is pruned at
 * t->groups[g].sparsities[i] (the caller fills it, e.g. by counting a pruned copy); rows of
 * skipped groups are not read (may be NULL). Savings are taken as additive across groups: an
 * approximation, since a layer between two pruned groups loses inputs and outputs at once and so
 * saves less than the sum of the two (the real model can end slightly above the target); the
 * caller counts the pruned model again and reports the real figure.
 * Search: one threshold T on metric drop shared by all groups. At T every group takes the largest
 * sparsity of its row whose drop, and the drop of every smaller sparsity, is <= T (so the curve's
 * running maximum of drop decides). T runs over the sorted distinct running maxima of all groups,
 * and the smallest T whose predicted fraction (total - sum of savings) / total is <= target is
 * chosen: the configuration meeting the target whose worst per-group metric drop is smallest.
 * chosen[g] and index[g] (optional) as in npe_policy_threshold.
 * An unreachable target is NPE_EINVAL with a message giving the smallest reachable fraction;
 * chosen, index and *res then describe that closest configuration (res->feasible = 0). */
int npe_policy_target(const npe_sens_table *t, enum npe_target_kind kind,
                      const double *const *saving, double total, double target, double *chosen,
                      int *index, npe_target_result *res, npe_error *err);

#endif
