/* Evaluation metrics: accumulators fed one batch at a time, mergeable across parallel workers,
 * with exact sums so any split of the data gives bit-identical values. */
#ifndef NPE_ENGINE_METRIC_H
#define NPE_ENGINE_METRIC_H

#include <stdint.h>

#include <npengine/npengine.h>

#include "../formats/array.h"
#include "../formats/error.h"

/* Definitions (N = samples; outputs float32 or float64; labels/masks any integer dtype):
 * - top1, top5: output [N,C] (trailing dimensions of size 1 allowed), labels [N] in [0,C).
 *   A sample counts when fewer than k classes have a logit strictly greater than the label's
 *   (ties count in the label's favour; a NaN label logit never counts). Value: fraction of
 *   samples in [0,1]. top5 needs C >= 5.
 * - cross_entropy: the same shapes; per sample logsumexp(x) - x[label], computed in double with
 *   the maximum subtracted first (stable for any finite logits); value: mean over samples, as
 *   F.cross_entropy(reduction="mean") without weights. Lower is better.
 * - miou: output [N,K,*] logits (K = num_classes; K == 1 is a binary mask: class 1 where the
 *   logit > 0, num_classes becomes 2), masks [N,*] (the same spatial shape). Prediction = argmax
 *   over K (first maximum on ties, as torch.argmax). Pixels whose target is ignore_index are
 *   skipped; any other target outside [0,num_classes) is an error. From the confusion matrix,
 *   IoU_c = TP_c / (TP_c + FP_c + FN_c), and miou is the mean of IoU_c over the classes present in
 *   the target or the prediction (TP + FP + FN > 0), i.e. torch.nanmean of the per-class IoU.
 * - pixel_accuracy: the same inputs; correct pixels / non-ignored pixels.
 * - fidelity (label-free): the "target" is the original model's output on the same inputs, of
 *   the same shape as the pruned model's output [N,...] (any shape: classifier logits, detection
 *   heads, segmentation maps). Per sample, the cosine similarity of the two flattened outputs
 *   (double: dot / (|a| |b|); 1 when both are all zero, 0 when exactly one is); value: the mean
 *   over samples, in [-1, 1]. npe_metric_update_multi takes several outputs per sample
 *   (detection heads): the cosine of the concatenation of all of them, flattened per sample.
 * Every value is higher-is-better except cross_entropy. A value over no samples is an error.
 *
 * Exactness: per-sample values are accumulated in a 256-bit fixed-point sum (resolution 2^-100,
 * range 2^120 per value), and counts in integers, so the sum does not depend on the order of the
 * samples: merging the accumulators of any partition of the data gives the same bits as one
 * pass. A NaN per-sample value makes the result NaN, an infinite one +-inf. */

typedef enum npe_metric_kind {
    NPE_METRIC_TOP1 = 0,
    NPE_METRIC_TOP5,
    NPE_METRIC_CROSS_ENTROPY,
    NPE_METRIC_MIOU,
    NPE_METRIC_PIXEL_ACCURACY,
    NPE_METRIC_FIDELITY,
    NPE_METRIC_COUNT, /* built-in kinds above; npe_metric_from_name knows only those */
    /* Caller callbacks (npe_metric_opts.custom, npengine.h npe_metric_callbacks), as two kinds so
     * the kind alone says which way is better: */
    NPE_METRIC_CUSTOM = 32,   /* higher is better */
    NPE_METRIC_CUSTOM_LOWER,  /* lower is better */
} npe_metric_kind;

/* What update takes as its target. */
typedef enum npe_metric_input {
    NPE_METRIC_NEEDS_LABELS = 0, /* int [N] class labels */
    NPE_METRIC_NEEDS_MASKS,      /* int [N,*] class per pixel */
    NPE_METRIC_NEEDS_REFERENCE,  /* the original model's output, same shape as the output */
    NPE_METRIC_NEEDS_ANY,        /* custom: whatever the data set gives (or nothing) */
} npe_metric_input;

/* "top1", "top5", "cross_entropy", "miou", "pixel_accuracy", "fidelity"; "custom" for both
 * custom kinds (the callbacks' own name is in npe_metric_opts.custom). */
const char *npe_metric_name(npe_metric_kind k);
/* Parse a name above (exact, lower case); an unknown name is NPE_EINVAL with the list. */
int npe_metric_from_name(const char *name, npe_metric_kind *out, npe_error *err);
int npe_metric_higher_is_better(npe_metric_kind k);
npe_metric_input npe_metric_needs(npe_metric_kind k);

typedef struct npe_metric_opts {
    npe_metric_kind kind;
    int num_classes;  /* miou, pixel_accuracy: K (<= 4096); 0 = the output's channel count */
    int ignore_index; /* miou, pixel_accuracy: target value skipped (default 255; -1 none) */
    /* custom kinds: the callbacks (borrowed; must outlive every metric made from these opts).
     * Each npe_metric holds at most one accumulator: begun at the first update after create or
     * reset, ended by npe_metric_value (which then keeps returning that value until the next
     * reset), discarded by reset and destroy. Merging custom metrics is not supported. */
    const npe_metric_callbacks *custom;
} npe_metric_opts;

/* Defaults for kind: num_classes 0, ignore_index 255. */
void npe_metric_opts_init(npe_metric_opts *o, npe_metric_kind kind);

typedef struct npe_metric npe_metric;

int npe_metric_create(const npe_metric_opts *o, npe_metric **out, npe_error *err);
void npe_metric_destroy(npe_metric *m); /* NULL accepted */
/* Forget every sample (num_classes taken from an output stays). */
void npe_metric_reset(npe_metric *m);
npe_metric_kind npe_metric_get_kind(const npe_metric *m);

/* Add one batch: output [N,...] and target as npe_metric_needs(kind) says. On error (shapes,
 * dtypes, a label out of range) nothing of the batch is added. */
int npe_metric_update(npe_metric *m, const npe_array *output, const npe_array *target,
                      npe_error *err);
/* fidelity over n outputs per sample (outputs[i] against references[i], each [N,...] with the
 * same N); other kinds accept n == 1 only. */
int npe_metric_update_multi(npe_metric *m, const npe_array *outputs, const npe_array *references,
                            int n, npe_error *err);

/* One batch of an evaluation, whatever the kind: the model's n_outputs outputs, the data set's
 * target (labels or masks; unused by fidelity) and the original model's outputs on the same
 * inputs (fidelity only; may be NULL otherwise). Classification and segmentation metrics read
 * outputs[0]. The one entry point the analysis uses, so new kinds need no change there. */
int npe_metric_update_batch(npe_metric *m, const npe_array *outputs, int n_outputs,
                            const npe_array *target, const npe_array *references, npe_error *err);

/* into += from (same kind and options; miou: same num_classes once both know it). */
int npe_metric_merge(npe_metric *into, const npe_metric *from, npe_error *err);

/* The metric over every sample added so far. */
int npe_metric_value(const npe_metric *m, double *out, npe_error *err);
/* Samples added (N summed over updates). */
int64_t npe_metric_samples(const npe_metric *m);

#endif
