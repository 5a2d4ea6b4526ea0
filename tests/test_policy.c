/* Tests of the sparsity choice: the metric_thres rule on hand-made curves (boundary values, a later
 * recovery, unmeasured gaps, early-stopped rows, lower-is-better metrics) and the global target
 * policy on a small table whose choice at every target is worked out by hand below. All numbers
 * are binary fractions, so the boundary comparisons are exact. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/policy.h"
#include "testutil.h"

static const double S5[] = {0.1, 0.2, 0.3, 0.4, 0.5};

static void add(npe_sens_table *t, const char *name, const double *s, size_t n, const double *v,
                size_t nv)
{
    npe_error err = {0};
    npe_sens_group_spec spec = {.name = name, .channels = 16, .sparsities = s, .n_sparsities = n};
    int g = npe_sens_add_group(t, &spec, &err);
    CHECK_MSG(g >= 0, "%s", err.msg);
    for (size_t i = 0; g >= 0 && i < nv; i++)
        CHECK(npe_sens_record(t, (size_t)g, i, v[i], &err) == 0);
}

static void test_within(void)
{
    /* ori 0.75, thres 0.125: within means v >= 0.625 */
    double v[] = {0.75, 0.7, 0.625, 0.6, 0.74};
    CHECK_EQ_INT(npe_policy_within_len(1, 0.75, 0.125, v, 5), 3);
    CHECK_EQ_INT(npe_policy_within_len(1, 0.75, 0.125, v, 2), 2);
    double w[] = {0.5, 0.75};
    CHECK_EQ_INT(npe_policy_within_len(1, 0.75, 0.125, w, 2), 0);
    double n[] = {0.7, NAN, 0.7};
    CHECK_EQ_INT(npe_policy_within_len(1, 0.75, 0.125, n, 3), 1);
    /* loss, ori 1, thres 0.25: within means v <= 1.25 */
    double l[] = {0.9, 1.25, nextafter(1.25, 2), 1.0};
    CHECK_EQ_INT(npe_policy_within_len(0, 1.0, 0.25, l, 4), 2);
    CHECK(npe_policy_drop(1, 0.75, 0.5) == 0.25);
    CHECK(npe_policy_drop(0, 1.0, 1.5) == 0.5);
    CHECK(npe_policy_drop(1, 0.75, 0.875) == -0.125);
}

static void test_threshold(void)
{
    npe_error err = {0};
    npe_sens_table t;
    npe_sens_config cfg = {.metric = "top1", .higher_is_better = 1, .baseline = 0.75,
                           .thres = 0.125, .early_stop = NPE_EARLY_STOP_NONE};
    CHECK(npe_sens_init(&t, &cfg, &err) == 0);
    /* A: passes 0.1..0.3 (0.3 exactly on the boundary), fails 0.4, recovers at 0.5: 0.3 */
    double a[] = {0.75, 0.7, 0.625, 0.6, 0.74};
    add(&t, "A", S5, 5, a, 5);
    /* B: fails at once: 0 */
    double b[] = {0.5, 0.75, 0.75, 0.75, 0.75};
    add(&t, "B", S5, 5, b, 5);
    /* C: excluded: 0 */
    npe_sens_group_spec c = {.name = "C", .channels = 4, .skip_reason = "excluded by exclude_layers"};
    CHECK(npe_sens_add_group(&t, &c, &err) == 2);
    /* D: its own list (sparsities_dict), all within: its largest, 0.75 */
    double sd[] = {0.25, 0.5, 0.75};
    double d[] = {0.75, 0.6875, 0.625};
    add(&t, "D", sd, 3, d, 3);
    /* E: 0.2 not measured yet: only 0.1 counts though 0.3 is fine */
    double e[] = {0.74};
    add(&t, "E", S5, 5, e, 1);
    CHECK(npe_sens_record(&t, 4, 2, 0.74, &err) == 0);
    /* F: nothing measured: 0 */
    add(&t, "F", S5, 5, NULL, 0);
    /* G: NaN at 0.2 stops it: 0.1 */
    double gv[] = {0.75, NAN, 0.75};
    add(&t, "G", S5, 5, gv, 3);

    double chosen[7];
    int index[7];
    CHECK(npe_policy_threshold(&t, 0.125, chosen, index, &err) == 0);
    const double want[7] = {0.3, 0, 0, 0.75, 0.1, 0, 0.1};
    const int want_i[7] = {2, -1, -1, 2, 0, -1, 0};
    for (int g = 0; g < 7; g++) {
        CHECK_MSG(chosen[g] == want[g], "group %d: %g, want %g", g, chosen[g], want[g]);
        CHECK_EQ_INT(index[g], want_i[g]);
    }
    /* a tighter threshold (within: >= 0.6875): A keeps 0.2 (0.7), D 0.5 (0.6875, on the bound) */
    CHECK(npe_policy_threshold(&t, 0.0625, chosen, NULL, &err) == 0);
    CHECK(chosen[0] == 0.2 && chosen[3] == 0.5 && chosen[4] == 0.1);
    CHECK(npe_policy_threshold(&t, -1, chosen, NULL, &err) == NPE_EINVAL);

    /* Early stop cuts the row: with "dropped" at 0.125, A stops after 0.4, and a value measured
     * past the stop (0.5, in a parallel run) must not count even with a loose threshold. */
    t.early_stop = NPE_EARLY_STOP_DROPPED;
    CHECK_EQ_INT(npe_sens_row_len(&t, 0), 4);
    CHECK(npe_policy_threshold(&t, 0.5, chosen, index, &err) == 0);
    CHECK(chosen[0] == 0.4 && index[0] == 3);
    npe_sens_finish(&t);

    /* A loss (lower is better): ori 1, thres 0.25: 1.1 and 1.25 pass, 1.3 fails, 1.0 after it
     * does not help. */
    npe_sens_config lc = {.metric = "loss", .higher_is_better = 0, .baseline = 1.0, .thres = 0.25};
    CHECK(npe_sens_init(&t, &lc, &err) == 0);
    double l[] = {1.1, 1.25, 1.3, 1.0};
    add(&t, "L", S5, 4, l, 4);
    double lc2[] = {0.5, 0.9};
    add(&t, "M", S5, 2, lc2, 2); /* better than the baseline: fine */
    CHECK(npe_policy_threshold(&t, 0.25, chosen, NULL, &err) == 0);
    CHECK(chosen[0] == 0.2 && chosen[1] == 0.2);
    npe_sens_finish(&t);
}

/* The target table. baseline 0.75, higher is better, total 1000.
 *   g0: s 0.25 0.5 0.75, values 0.75 0.625 0.5       drops 0 0.125 0.25   running max the same
 *   g1: s 0.25 0.5 0.75, values 0.6875 0.71875 0.5   drops 0.0625 0.03125 0.25
 *                                                    running max 0.0625 0.0625 0.25
 *   g2: s 0.5, value 0.25                            drop 0.5
 *   g3: skipped
 *   savings: g0 100 200 300, g1 50 100 150, g2 400
 * Threshold T -> choice -> remaining fraction:
 *   -inf   nothing                 1.0
 *   0      g0 0.25                 0.9
 *   0.0625 g0 0.25, g1 0.5         0.8   (g1's better 0.5 is taken with its 0.25)
 *   0.125  g0 0.5,  g1 0.5         0.7
 *   0.25   g0 0.75, g1 0.75        0.55
 *   0.5    + g2 0.5                0.15 */
static void build_target(npe_sens_table *t)
{
    npe_error err = {0};
    npe_sens_config cfg = {.metric = "top1", .higher_is_better = 1, .baseline = 0.75, .thres = 0.01};
    CHECK(npe_sens_init(t, &cfg, &err) == 0);
    double s3[] = {0.25, 0.5, 0.75};
    double v0[] = {0.75, 0.625, 0.5}, v1[] = {0.6875, 0.71875, 0.5};
    add(t, "g0", s3, 3, v0, 3);
    add(t, "g1", s3, 3, v1, 3);
    double s2[] = {0.5}, v2[] = {0.25};
    add(t, "g2", s2, 1, v2, 1);
    npe_sens_group_spec sk = {.name = "g3", .channels = 10, .skip_reason = "reaches a model output"};
    CHECK(npe_sens_add_group(t, &sk, &err) == 3);
}

static void test_target(void)
{
    npe_error err = {0};
    npe_sens_table t;
    build_target(&t);
    static const double sv0[] = {100, 200, 300}, sv1[] = {50, 100, 150}, sv2[] = {400};
    const double *saving[] = {sv0, sv1, sv2, NULL};
    static const struct {
        double target, T, fraction;
        double chosen[4];
    } cases[] = {
        {1.0, -INFINITY, 1.0, {0, 0, 0, 0}},
        {0.95, 0, 0.9, {0.25, 0, 0, 0}},
        {0.9, 0, 0.9, {0.25, 0, 0, 0}},
        {0.8, 0.0625, 0.8, {0.25, 0.5, 0, 0}},
        {0.75, 0.125, 0.7, {0.5, 0.5, 0, 0}},
        {0.6, 0.25, 0.55, {0.75, 0.75, 0, 0}},
        {0.5, 0.5, 0.15, {0.75, 0.75, 0.5, 0}},
        {0.15, 0.5, 0.15, {0.75, 0.75, 0.5, 0}},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double chosen[4] = {-1, -1, -1, -1};
        npe_target_result res;
        int rc = npe_policy_target(&t, NPE_TARGET_MACS, saving, 1000, cases[k].target, chosen, NULL,
                                   &res, &err);
        CHECK_MSG(rc == 0, "target %g: %s", cases[k].target, err.msg);
        CHECK(res.feasible == 1);
        CHECK_MSG(res.threshold == cases[k].T, "target %g: T %g, want %g", cases[k].target,
                  res.threshold, cases[k].T);
        CHECK_MSG(fabs(res.fraction - cases[k].fraction) < 1e-12, "target %g: fraction %g",
                  cases[k].target, res.fraction);
        CHECK(fabs(res.min_fraction - 0.15) < 1e-12);
        for (int g = 0; g < 4; g++)
            CHECK_MSG(chosen[g] == cases[k].chosen[g], "target %g group %d: %g, want %g",
                      cases[k].target, g, chosen[g], cases[k].chosen[g]);
    }

    /* Unreachable: an error giving the smallest reachable fraction, and that configuration. */
    double chosen[4];
    int index[4];
    npe_target_result res;
    CHECK(npe_policy_target(&t, NPE_TARGET_PARAMS, saving, 1000, 0.1, chosen, index, &res, &err) ==
          NPE_EINVAL);
    CHECK(strstr(err.msg, "target_params = 0.1 cannot be met") && strstr(err.msg, "0.15 of the original parameters"));
    CHECK(res.feasible == 0 && fabs(res.fraction - 0.15) < 1e-12 && res.threshold == 0.5);
    CHECK(chosen[0] == 0.75 && chosen[1] == 0.75 && chosen[2] == 0.5 && chosen[3] == 0);
    CHECK(index[0] == 2 && index[2] == 0 && index[3] == -1);

    /* Bad inputs */
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, saving, 1000, 0, chosen, NULL, &res, &err) ==
          NPE_EINVAL);
    CHECK(strstr(err.msg, "target_macs") != NULL);
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, saving, 0, 0.5, chosen, NULL, &res, &err) ==
          NPE_EINVAL);
    static const double badsv[] = {100, -1, 300};
    const double *bad[] = {sv0, badsv, sv2, NULL};
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, bad, 1000, 0.5, chosen, NULL, &res, &err) ==
          NPE_EINVAL);
    CHECK(strstr(err.msg, "'g1'") != NULL);
    const double *missing[] = {sv0, NULL, sv2, NULL};
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, missing, 1000, 0.5, chosen, NULL, &res, &err) ==
          NPE_EINVAL);

    /* Early stop: g0 "dropped" at thres 0.125 stops after 0.75 (0.5 < 0.625); make g1's 0.5
     * violate instead so its row ends there and its 0.75 (measured past the stop) is never
     * offered: the smallest reachable fraction becomes 1000 - 300 - 100 - 400 = 200. */
    t.early_stop = NPE_EARLY_STOP_DROPPED;
    t.thres = 0.125;
    t.groups[1].values[1] = 0.5;
    CHECK_EQ_INT(npe_sens_row_len(&t, 1), 2);
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, saving, 1000, 0.1, chosen, NULL, &res, &err) ==
          NPE_EINVAL);
    CHECK(fabs(res.min_fraction - 0.2) < 1e-12);
    CHECK(chosen[1] == 0.5);
    npe_sens_finish(&t);

    /* Lower is better: ori 1.0; g0 losses 1.0625 1.25 (drops 0.0625 0.25), g1 1.125 (0.125).
     * savings g0 300 500, g1 200 of 1000. target 0.6: T 0.0625 -> 0.7 no; T 0.125 -> 0.5 yes. */
    npe_sens_config lc = {.metric = "loss", .higher_is_better = 0, .baseline = 1.0, .thres = 0.5};
    CHECK(npe_sens_init(&t, &lc, &err) == 0);
    double s2[] = {0.25, 0.5}, l0[] = {1.0625, 1.25}, s1[] = {0.5}, l1[] = {1.125};
    add(&t, "h0", s2, 2, l0, 2);
    add(&t, "h1", s1, 1, l1, 1);
    static const double w0[] = {300, 500}, w1[] = {200};
    const double *ws[] = {w0, w1};
    CHECK(npe_policy_target(&t, NPE_TARGET_MACS, ws, 1000, 0.6, chosen, NULL, &res, &err) == 0);
    CHECK(res.threshold == 0.125 && fabs(res.fraction - 0.5) < 1e-12);
    CHECK(chosen[0] == 0.25 && chosen[1] == 0.5);
    npe_sens_finish(&t);
}

int main(void)
{
    test_within();
    test_threshold();
    test_target();
    return tu_finish("policy");
}
