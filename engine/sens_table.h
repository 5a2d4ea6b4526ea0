/* Sensitivity table: per channel group the metric at each sparsity; early stop, sens.csv and its
 * JSON companion written durably as results come in, readers of both, resume of a killed run. */
#ifndef NPE_ENGINE_SENS_TABLE_H
#define NPE_ENGINE_SENS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "../formats/error.h"

/* ---- Number formatting (sens.csv) ----------------------------------------------------------
 * Both produce exactly what Python 3 prints, so a sens.csv of ours is byte-identical to one
 * written by a Python tool with str(round(v, 5)) and str(s):
 *   npe_sens_format_value(v)    = str(round(v, 5)): 0.03740 -> "0.0374", 1 -> "1.0",
 *       100 -> "100.0", 1e-6 -> "0.0", 0.123456 -> "0.12346", 0.015625 -> "0.01562" (ties to
 *       even on the exact binary value, as Python), 1e-5 -> "1e-05" (Python switches to
 *       exponent form below 1e-4 and from 1e16), nan -> "nan", inf -> "inf".
 *       One deliberate difference: a value that rounds to zero from below prints "0.0", not
 *       Python's "-0.0" (the sign of a zero metric carries nothing and reads like a bug).
 *   npe_sens_format_shortest(s) = repr(s): the shortest text that reads back as exactly s
 *       (0.1 -> "0.1", 0.30000000000000004 stays so, 0.5 -> "0.5"); used for sparsities, which
 *       are not rounded, so a header read back gives the very doubles of the config.
 * buf must hold NPE_SENS_NUM_MAX bytes; returns the length written. */
#define NPE_SENS_NUM_MAX 32
int npe_sens_format_value(double v, char *buf);
int npe_sens_format_shortest(double v, char *buf);

/* ---- Early stop ----------------------------------------------------------------------------- */
enum npe_early_stop {
    NPE_EARLY_STOP_NONE = 0,
    NPE_EARLY_STOP_DROPPED, /* stop a group after the first s with metric < ori - thres */
    NPE_EARLY_STOP_RAISED,  /* stop a group after the first s with metric > ori + thres */
};

/* "dropped", "raised", or NULL for none. */
const char *npe_early_stop_name(enum npe_early_stop mode);
/* Parse "dropped" / "raised" / "none" / "" (NULL too) into *mode; NPE_EINVAL otherwise. */
int npe_early_stop_parse(const char *name, enum npe_early_stop *mode, npe_error *err);

/* 1 when v stops the group under mode: strict comparisons, so v == ori - thres does not stop
 * "dropped". A NaN metric stops both modes (a broken model tells nothing more). Never for NONE. */
int npe_early_stop_violates(enum npe_early_stop mode, double ori, double thres, double v);
/* values[0..n) measured in order: how many belong to the group's row, i.e. n, or one past the
 * first violating value (the violating value is still written). */
size_t npe_early_stop_row_len(enum npe_early_stop mode, double ori, double thres,
                              const double *values, size_t n);
/* Whether a group with n_total sparsities needs no more evaluation once values[0..n) are
 * measured in order: n == n_total, or one of them violates. */
int npe_early_stop_done(enum npe_early_stop mode, double ori, double thres, const double *values,
                        size_t n, size_t n_total);

/* ---- The table ------------------------------------------------------------------------------ */
typedef struct npe_sens_group {
    char *name;            /* the row name in sens.csv: the group's first producer in graph order */
    char **members;        /* producer layer names (n_members; none for a table read from CSV) */
    size_t n_members;
    int64_t channels;      /* output channels of the group; -1 when unknown (read from CSV) */
    double *sparsities;    /* strictly increasing, each in [0, 1] (n_sparsities >= 1) */
    size_t n_sparsities;
    double *values;        /* values[i]: metric at sparsities[i], valid where measured[i] */
    unsigned char *measured;
    char *skip_reason;     /* non-NULL: not analysed (excluded, reaches a model output, ...): no
                            * sparsities, no row in sens.csv, chosen sparsity 0, listed in JSON */
} npe_sens_group;

typedef struct npe_sens_config {
    const char *metric;        /* metric name, e.g. "top1" (required) */
    int higher_is_better;      /* 1: accuracy-like (a drop is bad); 0: loss-like (a rise is bad) */
    double baseline;           /* the metric of the unpruned model (ori_metric), finite */
    double thres;              /* metric_thres, finite, >= 0 */
    enum npe_early_stop early_stop;
    /* Everything else the measured values depend on, as one string the caller composes (the
     * model file's npe_sens_file_fingerprint, data set path, limit, preprocessing...). Compared
     * verbatim on resume. NULL = "". */
    const char *fingerprint;
} npe_sens_config;

typedef struct npe_sens_table {
    npe_sens_group *groups;
    size_t n_groups, cap_groups;
    char *metric;              /* NULL for a table read from CSV */
    int higher_is_better;
    double baseline;           /* NaN for a table read from CSV */
    double thres;
    enum npe_early_stop early_stop;
    char *fingerprint;         /* never NULL after init ("" when none) */
    char *csv_path, *json_path;/* set by npe_sens_set_output; NULL: npe_sens_record writes nothing */
} npe_sens_table;

/* Caller storage: init copies cfg's strings; finish frees everything (safe on a zeroed or
 * finished table). NPE_EINVAL on a missing metric, non-finite baseline, negative threshold. */
int npe_sens_init(npe_sens_table *t, const npe_sens_config *cfg, npe_error *err);
void npe_sens_finish(npe_sens_table *t);

typedef struct npe_sens_group_spec {
    const char *name;                 /* non-empty, unique in the table */
    const char *const *members;       /* may be NULL when n_members == 0 */
    size_t n_members;
    int64_t channels;                 /* >= 1, or -1 when unknown */
    const double *sparsities;         /* the config's `sparsities`, or the group's own list from
                                       * `sparsities_dict`; strictly increasing, within [0, 1] */
    size_t n_sparsities;              /* >= 1 unless skip_reason */
    const char *skip_reason;          /* non-NULL: a group that is not analysed (sparsities ignored) */
} npe_sens_group_spec;

/* Append a group (everything copied). Returns its index (>= 0) or a negative error: NPE_EINVAL
 * naming the group for a duplicate or empty name, an empty, unsorted or out-of-range list. */
int npe_sens_add_group(npe_sens_table *t, const npe_sens_group_spec *spec, npe_error *err);
/* Index of the group called name, or NPE_ENOTFOUND. */
int npe_sens_find_group(const npe_sens_table *t, const char *name);

/* The measured prefix of group g (stops at the first unmeasured sparsity), cut after the first
 * early-stop violation: the sparsities written in g's sens.csv row. 0 for skipped groups. */
size_t npe_sens_row_len(const npe_sens_table *t, size_t g);
/* Whether (g, i) still has to be evaluated: unmeasured, and no measured value at a smaller
 * sparsity of g stops the group. Workers may evaluate pending pairs in any order and in
 * parallel: values measured past the stop point are kept in the JSON but never reach the row,
 * so sens.csv is the same as a serial run's. */
int npe_sens_pending(const npe_sens_table *t, size_t g, size_t i);
/* Whether group g needs nothing more (skipped groups are done). */
int npe_sens_group_done(const npe_sens_table *t, size_t g);
/* The first pending pair in serial order (groups in order, sparsities ascending): 1 and *g, *i
 * set, or 0 when the analysis is complete. */
int npe_sens_next(const npe_sens_table *t, size_t *g, size_t *i);
/* For progress lines: *done = measured pairs, *total = *done + pending pairs (pending shrinks
 * when early stop cuts a group, so the total can only fall). */
void npe_sens_progress(const npe_sens_table *t, size_t *done, size_t *total);

/* ---- Output and durability ------------------------------------------------------------------ */
/* Where npe_sens_record and npe_sens_save write: dir/sens.csv and dir/sens.json (the directory is
 * created when missing, its parent must exist). Nothing is written yet. */
int npe_sens_set_output(npe_sens_table *t, const char *dir, npe_error *err);
/* Store the value measured for (g, i) (again: replaced) and, when an output is set, rewrite
 * sens.json and then sens.csv, each atomically (temporary file, fsync, rename, fsync of the
 * directory): a kill at any moment leaves complete files holding every earlier record, so at
 * most the evaluation in flight is lost. Not thread-safe: workers hand their results to one
 * thread, or hold a lock around it. NPE_EINVAL for a skipped group or an index out of range. */
int npe_sens_record(npe_sens_table *t, size_t g, size_t i, double value, npe_error *err);
/* Rewrite both files now (after resume, or to have them before the first result). */
int npe_sens_save(const npe_sens_table *t, npe_error *err);

/* sens.csv text (malloc'd, NUL-terminated, caller frees): per group with a non-empty row, in table
 * order, "layername,<s1>,...,<sk>\n<name>,<v1>,...,<vk>\n" with k = npe_sens_row_len; names are
 * quoted as Python's csv module does (only when they hold , " CR or LF). */
int npe_sens_csv_text(const npe_sens_table *t, char **out, size_t *len, npe_error *err);
int npe_sens_write_csv(const npe_sens_table *t, const char *path, npe_error *err);

/* The JSON companion (pretty, malloc'd text): {"format": "lbprune-sensitivity", "version": 1,
 * "metric", "higher_is_better", "baseline", "metric_thres", "early_stop_mode" ("dropped",
 * "raised" or null), "fingerprint", "groups": [{"name", "members", "channels" (null when
 * unknown), "sparsities", "values" (full precision; null where not measured; a measured NaN or
 * infinity as the string "nan", "inf", "-inf"), "row" (npe_sens_row_len), "done"}, ...]};
 * a skipped group has {"name", "members", "channels", "skipped": reason} instead. */
int npe_sens_json_text(const npe_sens_table *t, char **out, size_t *len, npe_error *err);
int npe_sens_write_json(const npe_sens_table *t, const char *path, npe_error *err);

/* ---- Reading -------------------------------------------------------------------------------- */
/* Read a sens.csv into t (initialised here: metric NULL, baseline NaN, members empty, channels
 * -1). Accepts our form (a "layername,..." header before every row) and NNI's (one header, then
 * one row per layer), LF or CRLF, a UTF-8 BOM, Python-csv quoting. Each row's values belong to the
 * sparsities of the latest header, in order; a row may be shorter than its header (early stop)
 * but not longer. A line is a header when its first field is "layername" and the line before was
 * not a header. Errors are NPE_EFORMAT "path:line: ...". */
int npe_sens_read_csv(npe_sens_table *t, const char *path, npe_error *err);
/* Read a JSON companion into t (initialised here); errors "path:line:col: ...". */
int npe_sens_read_json(npe_sens_table *t, const char *path, npe_error *err);

/* ---- Resume --------------------------------------------------------------------------------- */
typedef struct npe_sens_resume_info {
    int found;             /* a sens.json was there */
    size_t restored;       /* measured values taken over */
    size_t discarded;      /* values there for groups or sparsities this run does not have, or
                            * for a group whose members or channels differ (measured again) */
    size_t stale_tmp;      /* temporary files of an interrupted write, removed */
} npe_sens_resume_info;

/* After npe_sens_set_output and adding every group: take over the values of an earlier run from
 * dir/sens.json. Measured values are facts about (model and data, metric, group, sparsity), so
 * they are reused whenever those match, whatever metric_thres, early_stop_mode or the sparsity
 * lists say now; pairs this run does not have are dropped (counted in info->discarded).
 * A sens.json measured in another context is an error, not a silent fresh start (that would throw
 * away hours of measurements of something the user may still want): NPE_EINVAL naming what
 * differs (metric, its direction, baseline by more than 1e-9, fingerprint), telling the user to
 * remove the folder or choose another output_dir. A corrupt sens.json is NPE_EFORMAT with its
 * line. No sens.json: a fresh start (info->found = 0). Leftover temporary files of a write that
 * was killed ("sens.json.tmp.*", "sens.csv.tmp.*") are removed. info may be NULL. */
int npe_sens_resume(npe_sens_table *t, npe_sens_resume_info *info, npe_error *err);

/* "size=<bytes> crc32=<8 hex>" of a file's content (not its name or mtime: a copied model resumes,
 * a retrained one of the same size does not). out must hold 64 bytes. */
int npe_sens_file_fingerprint(const char *path, char *out, npe_error *err);

#endif
