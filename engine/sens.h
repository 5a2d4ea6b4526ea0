/* Sensitivity analysis (DESIGN.md): the metric of the model with one channel group physically
 * pruned, for every prunable group and sparsity, written durably and resumably as it goes, run by
 * parallel workers; then the per-group sparsity choice (metric_thres or a MACs/params target). */
#ifndef NPE_ENGINE_SENS_H
#define NPE_ENGINE_SENS_H

#include <stddef.h>
#include <stdint.h>

#include <npengine/npengine.h>

#include "../formats/error.h"
#include "dataset.h"
#include "groups.h"
#include "ir.h"
#include "metric.h"
#include "policy.h"
#include "prune.h"
#include "sens_table.h"

/* One entry of sparsities_dict: the groups it names get their own list instead of `sparsities`. */
typedef struct npe_sens_dict_entry {
    const char *name;          /* a group's name, or the layer name of one of its producers */
    const double *sparsities;  /* strictly increasing, within [0, 1] */
    size_t n_sparsities;       /* >= 1 */
} npe_sens_dict_entry;

/* Passed to the progress callback after every value measured by this run. */
typedef struct npe_sens_progress_info {
    const char *group;   /* the group just measured */
    double sparsity;
    double value;
    size_t done, total;  /* npe_sens_progress: measured pairs (restored ones too), and that plus the
                          * pairs still pending (falls when early stop cuts a group) */
    size_t evaluated;    /* evaluations made by this run so far */
    double elapsed_s;    /* since the first evaluation of this run started */
    double eta_s;        /* elapsed / evaluated * (total - done) */
} npe_sens_progress_info;

typedef void (*npe_sens_progress_fn)(void *user, const npe_sens_progress_info *p);
/* Asked before each evaluation is handed out: nonzero stops the analysis (evaluations already
 * running finish and are recorded; npe_sens_analyse then returns NPE_ECANCELED). */
typedef int (*npe_sens_cancel_fn)(void *user);

typedef struct npe_sens_options {
    /* dummy_input: the shapes groups are found and pruned clones inferred with (batch dim any);
     * the graph must have exactly one input, and the data set's sample shape must equal
     * inputs[0] without its first dim. */
    const npe_tshape *inputs;
    int n_inputs;
    const npe_dataset *data;   /* borrowed; read concurrently by the workers */
    int64_t batch_size;        /* samples per run; <= 0: 32 */
    int64_t limit;             /* > 0: only the first `limit` samples of data */
    npe_metric_opts metric;    /* fidelity: the references are the original model's outputs */
    const double *sparsities;  /* NULL / 0: 0.1, 0.2, 0.3, 0.4, 0.5 */
    size_t n_sparsities;
    const npe_sens_dict_entry *sparsities_dict; /* a name that matches nothing is an error */
    size_t n_sparsities_dict;
    const char *const *exclude_layers; /* group or layer names; one that matches nothing is an error */
    int n_exclude_layers;
    int channel_alignment;     /* >= 1 (default 2) */
    enum npe_early_stop early_stop_mode;
    double metric_thres;       /* finite, >= 0 */
    double ori_metric;         /* NaN: not given. Given: the table's baseline (the measured one is
                                * still computed and a warning logged when they differ by > 1e-4) */
    /* Where sens.csv and sens.json go (created if missing; its parent must exist) and where an
     * earlier run is resumed from. NULL: nothing written, nothing resumed. */
    const char *output_dir;
    /* What the values depend on that this function cannot see (model file fingerprint, data set
     * path, preprocessing), compared on resume; channel_alignment, the metric options and the
     * sample count are added here. NULL = "". */
    const char *fingerprint;
    int workers;               /* threads evaluating pairs, each with its own graph clone,
                                * executor and kernel threads; <= 1: serial */
    int threads;               /* kernel threads per worker; <= 0: online CPUs / workers (>= 1) */
    /* Global target (a fraction of the original, in (0, 1]); 0: none. At most one of them. */
    double target_macs, target_params;
    /* Bytes kept in memory to avoid recomputation. A quarter holds conv weights prepared once
     * (Winograd's transformed filters): the original model's, shared by every evaluation, and
     * each worker's current pruned ones; past it, those filters are transformed per call. The
     * rest holds input batches, labels and fidelity references (filled in data order during the
     * baseline pass), then the original model's activations at the current group's frontier
     * (see reuse), per batch; what does not fit is read (and computed) again for every
     * evaluation. Default 1 GiB. */
    size_t cache_bytes;
    /* Nonzero (default): evaluate only the part of each pruned model that the group changes, on
     * the original model's activations at its frontier; the group's producers (and the batch
     * norms, activations and pooling right after them) are not run either: their kept channels
     * are taken from the original activations (NPE_SENS_SLICES=0 runs them). Same values up to
     * float rounding (the kept channels of a conv computed with fewer channels may round
     * differently). 0: run the whole pruned model for every pair. npe_sens_options_init takes
     * the default from the environment: NPE_SENS_REUSE=0 turns it off. */
    int reuse;
    /* Callbacks (may be NULL). From worker threads, but never two at once. */
    npe_log_fn log;
    void *log_user;
    npe_sens_progress_fn progress;
    void *progress_user;
    npe_sens_cancel_fn cancel;
    void *cancel_user;
} npe_sens_options;

/* Defaults as stated above; ori_metric NaN, early stop none, metric_thres 0, metric top1. */
void npe_sens_options_init(npe_sens_options *o);

/* The choice for one group of the table. */
typedef struct npe_sens_choice {
    const char *name;         /* points into the result's table */
    const char *skip_reason;  /* into the table; NULL when the group was analysed */
    int64_t channels;
    double sparsity;          /* chosen; 0 when skipped or when even the first sparsity fails */
    int index;                /* position of sparsity in the group's list, or -1 */
    int64_t kept;             /* channels kept at that sparsity with channel_alignment */
} npe_sens_choice;

typedef struct npe_sens_result {
    npe_sens_table table;      /* every group (skipped ones with their reason), every value */
    double baseline;           /* the table's: ori_metric when given, 1 for fidelity, else measured */
    double measured_baseline;  /* the original model's metric on the data (fidelity: 1) */
    npe_sens_choice *choices;  /* one per table group, in table order */
    size_t n_choices;
    int target_used;           /* 1: choices come from the target policy, else from metric_thres */
    enum npe_target_kind target_kind;
    npe_target_result target;
    /* Whole model, original and with every group pruned at its chosen sparsity (npe_count). */
    int64_t params_before, macs_before, params_after, macs_after;
    size_t evaluated;          /* evaluations made by this run */
    size_t restored;           /* values taken over from an earlier run in output_dir */
    size_t discarded;          /* values found there that no longer apply */
    size_t region_evals;       /* evaluations that ran only the group's region (reuse) */
    size_t cache_peak;         /* most bytes the cache held: batches, then frontier activations,
                                * plus the prepared weights (never more than cache_bytes) */
} npe_sens_result;

/* Run the analysis on g (not modified: it is cloned) and choose the sparsities. *res is
 * overwritten; on failure it is left zeroed (the files in output_dir keep what was measured, so a
 * new call resumes). NPE_ECANCELED when the cancel callback stopped it. Errors name the group
 * and sparsity, the batch, or the option at fault. */
int npe_sens_analyse(const npe_graph *g, const npe_sens_options *o, npe_sens_result *res,
                     npe_error *err);
void npe_sens_result_free(npe_sens_result *r); /* zeroes *r; safe on a zeroed result */

/* A prune plan for G (found on g or a clone) applying the result's choices, matched by group
 * name; groups the result does not name stay whole. */
int npe_sens_plan(const npe_sens_result *r, const npe_graph *g, const npe_groups *G, int align,
                  npe_prune_plan **out, npe_error *err);

#endif
