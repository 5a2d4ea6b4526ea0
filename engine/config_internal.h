/* The parsed configuration file (engine/config.c); engine/run.c reads it. Strings point into the
 * TOML document, paths are resolved against the file's folder. */
#ifndef NPE_ENGINE_CONFIG_INTERNAL_H
#define NPE_ENGINE_CONFIG_INTERNAL_H

#include <npengine/npengine.h>

#include "../formats/toml.h"

typedef struct npe_config_dict {
    const char *name;
    double *sparsities;
    int n;
} npe_config_dict;

struct npe_config {
    npe_toml_doc *doc;
    char *path;
    char *dir;          /* folder of the file: relative paths in it are relative to this */
    /* [model] */
    char *model_path, *full_model; /* resolved, or NULL */
    const char *forward_name;
    npe_shape *shapes;
    int n_shapes;
    /* [data] */
    const char *data_kind;          /* "imagefolder", "idx", "npy" */
    char *data_root, *data_masks, *data_images, *data_labels; /* resolved, or NULL */
    int64_t batch_size, limit;
    int resize, crop_h, crop_w, channels, bgr, nhwc, scale;
    int n_norm;
    double mean[3], std[3];
    /* [metric] */
    const char *metric;             /* NULL: top1 */
    int num_classes, ignore_index, has_ignore_index;
    /* [prune] */
    double ori_metric;              /* NaN: not given */
    double metric_thres;
    double *sparsities;
    int n_sparsities;
    npe_config_dict *dict;
    int n_dict;
    const char *early_stop_mode;    /* NULL: none */
    int single_process_mode;        /* 1: workers = 1 whatever [run] workers says */
    double target_macs, target_params, sparsity;
    int has_sparsity;
    npe_prune_rule *rules;
    int n_rules;
    const char **names; /* every string list of rules and exclude_layers, pointing into doc */
    int n_names;
    const char **exclude;
    int n_exclude;
    int align; /* 0: not set */
    /* [run] */
    int workers, threads;
    char *output_dir;               /* resolved; NULL: <file's folder>/lbprune_out */
    int64_t cache_mb;
};

#endif
