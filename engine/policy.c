/* Sparsity choice per group: the metric_thres rule, and a global MACs / params target reached by
 * scanning one shared threshold on metric drop. */
#include "policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double npe_policy_drop(int higher_is_better, double ori, double v)
{
    return higher_is_better ? ori - v : v - ori;
}

size_t npe_policy_within_len(int higher_is_better, double ori, double thres, const double *values,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (isnan(v) || (higher_is_better ? v < ori - thres : v > ori + thres))
            return i;
    }
    return n;
}

int npe_policy_threshold(const npe_sens_table *t, double thres, double *chosen, int *index,
                         npe_error *err)
{
    if (!isfinite(thres) || thres < 0)
        return npe_error_set(err, NPE_EINVAL, "metric_thres: expected a number >= 0, found %g", thres);
    if (!isfinite(t->baseline))
        return npe_error_set(err, NPE_EINVAL, "sensitivity table has no baseline metric");
    for (size_t g = 0; g < t->n_groups; g++) {
        const npe_sens_group *gr = &t->groups[g];
        size_t k = 0;
        if (!gr->skip_reason)
            k = npe_policy_within_len(t->higher_is_better, t->baseline, thres, gr->values,
                                      npe_sens_row_len(t, g));
        chosen[g] = k ? gr->sparsities[k - 1] : 0.0;
        if (index)
            index[g] = k ? (int)(k - 1) : -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per group the running maximum of drop over its row (INFINITY from a NaN on: never taken), in
 * one flat array; off[g] is where group g starts, rows[g] its row length. */
typedef struct curves {
    double *pm;
    size_t *off, *rows;
    size_t n;
} curves;

/* Choose at threshold T; returns the predicted remaining amount. */
static double choose_at(const npe_sens_table *t, const curves *c, const double *const *saving,
                        double total, double T, double *chosen, int *index)
{
    double removed = 0;
    for (size_t g = 0; g < t->n_groups; g++) {
        size_t k = 0;
        while (k < c->rows[g] && c->pm[c->off[g] + k] <= T)
            k++;
        if (chosen)
            chosen[g] = k ? t->groups[g].sparsities[k - 1] : 0.0;
        if (index)
            index[g] = k ? (int)(k - 1) : -1;
        if (k)
            removed += saving[g][k - 1];
    }
    return total - removed;
}

int npe_policy_target(const npe_sens_table *t, enum npe_target_kind kind,
                      const double *const *saving, double total, double target, double *chosen,
                      int *index, npe_target_result *res, npe_error *err)
{
    const char *key = kind == NPE_TARGET_PARAMS ? "target_params" : "target_macs";
    const char *what = kind == NPE_TARGET_PARAMS ? "parameters" : "MACs";
    npe_target_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    if (!isfinite(target) || target <= 0)
        return npe_error_set(err, NPE_EINVAL, "%s: expected a fraction of the original in (0, 1], "
                             "found %g", key, target);
    if (!isfinite(total) || total <= 0)
        return npe_error_set(err, NPE_EINVAL, "%s: the original model's %s count is %g", key, what,
                             total);
    if (!isfinite(t->baseline))
        return npe_error_set(err, NPE_EINVAL, "sensitivity table has no baseline metric");
    curves c = {0};
    c.off = malloc((t->n_groups + 1) * sizeof(size_t));
    c.rows = malloc((t->n_groups + 1) * sizeof(size_t));
    if (!c.off || !c.rows)
        goto out_nomem;
    for (size_t g = 0; g < t->n_groups; g++) {
        c.off[g] = c.n;
        c.rows[g] = t->groups[g].skip_reason ? 0 : npe_sens_row_len(t, g);
        if (c.rows[g] && (!saving || !saving[g])) {
            free(c.off);
            free(c.rows);
            return npe_error_set(err, NPE_EINVAL, "%s: no predicted savings for group '%s'", key,
                                 t->groups[g].name);
        }
        for (size_t i = 0; i < c.rows[g]; i++)
            if (!isfinite(saving[g][i]) || saving[g][i] < 0) {
                double bad = saving[g][i];
                free(c.off);
                free(c.rows);
                return npe_error_set(err, NPE_EINVAL,
                                     "%s: predicted saving of group '%s' at sparsity %g is %g", key,
                                     t->groups[g].name, t->groups[g].sparsities[i], bad);
            }
        c.n += c.rows[g];
    }
    c.pm = malloc((c.n ? c.n : 1) * sizeof(double));
    double *cand = malloc((c.n ? c.n : 1) * sizeof(double));
    if (!c.pm || !cand) {
        free(cand);
        goto out_nomem;
    }
    size_t nc = 0;
    for (size_t g = 0; g < t->n_groups; g++) {
        double m = -INFINITY;
        for (size_t i = 0; i < c.rows[g]; i++) {
            double d = npe_policy_drop(t->higher_is_better, t->baseline, t->groups[g].values[i]);
            if (isnan(d) || d > m)
                m = isnan(d) ? INFINITY : d;
            c.pm[c.off[g] + i] = m;
            if (isfinite(m))
                cand[nc++] = m;
        }
    }
    qsort(cand, nc, sizeof(double), cmp_double);
    size_t nu = 0;
    for (size_t i = 0; i < nc; i++)
        if (!nu || cand[i] != cand[nu - 1])
            cand[nu++] = cand[i];

    double top = nu ? cand[nu - 1] : -INFINITY;
    res->min_fraction = choose_at(t, &c, saving, total, top, NULL, NULL) / total;
    int rc = 0;
    double T = -INFINITY;
    double frac = choose_at(t, &c, saving, total, T, NULL, NULL) / total;
    for (size_t i = 0; frac > target && i < nu; i++) {
        T = cand[i];
        frac = choose_at(t, &c, saving, total, T, NULL, NULL) / total;
    }
    res->feasible = frac <= target;
    res->threshold = T;
    res->fraction = choose_at(t, &c, saving, total, T, chosen, index) / total;
    if (!res->feasible)
        rc = npe_error_set(err, NPE_EINVAL,
                           "%s = %g cannot be met from the sensitivity table: with every group at the "
                           "largest sparsity it was measured at, %.4g of the original %s remain "
                           "(predicted); raise the target, add larger sparsities, or loosen "
                           "early_stop_mode / metric_thres so more sparsities are measured",
                           key, target, res->min_fraction, what);
    free(cand);
    free(c.pm);
    free(c.off);
    free(c.rows);
    return rc;

out_nomem:
    free(c.pm);
    free(c.off);
    free(c.rows);
    return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", key);
}
