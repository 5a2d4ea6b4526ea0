/* libnpengine public API: channel pruning engine for convolutional networks.
 * Everything a program linking libnpengine may use is declared here; the rest is private.
 * docs/api.md is the reference with a complete example; the comments here are the contract.
 *
 * Conventions
 * - Functions that can fail return 0 (NPE_OK) or a negative NPE_E* code; the message with its
 *   context goes to the context's last error and its log callback. The library never prints and
 *   never exits.
 * - Objects are made by *_create / *_load / *_open and freed by the matching *_destroy, which
 *   accepts NULL. Strings and arrays a function hands out are owned by the object they come from
 *   and stay valid as long as the comment says; memory the caller must free is said so
 *   (npe_free, npe_tensor_release).
 * - Thread safety is stated per function. "Thread-safe": any thread, any time. "Per object": calls
 *   on one object (and on the context it was made from, whose last error they set) from one thread
 *   at a time; different objects made from different contexts run in parallel freely. */
#ifndef NPENGINE_NPENGINE_H
#define NPENGINE_NPENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NPE_VERSION_MAJOR 0
#define NPE_VERSION_MINOR 1
#define NPE_VERSION_PATCH 0
#define NPE_VERSION_INT(a, b, c) (((a) << 16) | ((b) << 8) | (c))
#define NPE_VERSION NPE_VERSION_INT(NPE_VERSION_MAJOR, NPE_VERSION_MINOR, NPE_VERSION_PATCH)

#if defined(_WIN32)
#define NPE_API __declspec(dllexport)
#elif defined(__GNUC__)
#define NPE_API __attribute__((visibility("default")))
#else
#define NPE_API
#endif

/* ---- Errors -------------------------------------------------------------------------------
 * Every function that can fail returns 0 on success or one of these negative codes. The text
 * of the last failure, with its context (file, record, offset, line), is kept per context and
 * read with npe_ctx_last_error(). */
enum {
    NPE_OK = 0,
    NPE_EINVAL = -1,      /* bad argument from the caller */
    NPE_ENOMEM = -2,      /* allocation failed */
    NPE_EIO = -3,         /* a file could not be opened, read or written */
    NPE_EFORMAT = -4,     /* input bytes are malformed (truncated, bad CRC, bad offsets) */
    NPE_EUNSUPPORTED = -5,/* well-formed input using something we do not support */
    NPE_EUNSAFE = -6,     /* input asks for something refused for safety (pickle global) */
    NPE_ELIMIT = -7,      /* input exceeds a safety limit (size, depth, ratio) */
    NPE_ENOTFOUND = -8,   /* a named item (record, tensor, key, group) does not exist */
    NPE_ECANCELED = -9,   /* cancelled through a callback */
    NPE_ECALLBACK = -10,  /* a caller callback (data source, metric) reported a failure */
};

/* Short fixed description of an error code ("malformed input", ...). Never NULL. Thread-safe. */
NPE_API const char *npe_strerror(int code);

/* Version of the library actually linked, as NPE_VERSION_INT and as "0.1.0". Thread-safe. */
NPE_API unsigned npe_version(void);
NPE_API const char *npe_version_string(void);

/* ---- Element types --------------------------------------------------------------------------
 * The dtypes PyTorch saves. Values are stable (part of the ABI). */
typedef enum npe_dtype {
    NPE_DTYPE_F32 = 0,
    NPE_DTYPE_F64,
    NPE_DTYPE_F16,
    NPE_DTYPE_BF16,
    NPE_DTYPE_I64,
    NPE_DTYPE_I32,
    NPE_DTYPE_I16,
    NPE_DTYPE_I8,
    NPE_DTYPE_U8,
    NPE_DTYPE_BOOL,
    NPE_DTYPE_C64,  /* complex float */
    NPE_DTYPE_C128, /* complex double */
    NPE_DTYPE_QINT8,
    NPE_DTYPE_QUINT8,
    NPE_DTYPE_QINT32,
    NPE_DTYPE_COUNT
} npe_dtype;

/* Name as PyTorch prints it ("float32", "int64", "bool"...), or "?" when out of range.
 * Thread-safe. */
NPE_API const char *npe_dtype_name(npe_dtype t);
/* Size of one element in bytes, 0 when out of range. Thread-safe. */
NPE_API size_t npe_dtype_size(npe_dtype t);

#define NPE_MAX_DIMS 8

/* ---- Context --------------------------------------------------------------------------------
 * A context holds settings shared by the objects made from it and the text of the last error.
 * Thread safety: a context, and the objects made from it, are used by one thread at a time,
 * except where a function says more (npe_model_forward); objects made from different contexts
 * are independent. */
typedef struct npe_ctx npe_ctx;

/* Log levels of messages passed to the log callback. */
typedef enum npe_log_level { NPE_LOG_ERROR = 0, NPE_LOG_WARN, NPE_LOG_INFO, NPE_LOG_DEBUG } npe_log_level;
/* Called with each message (msg valid during the call only). The library never calls it from
 * two threads at once for one context... except from npe_model_forward running on several
 * threads, whose errors are logged from the calling threads: make it reentrant if you do that. */
typedef void (*npe_log_fn)(void *user, npe_log_level level, const char *msg);

/* Create a context. *out receives it; destroy with npe_ctx_destroy (NULL is accepted), after
 * every object made from it. Thread-safe. */
NPE_API int npe_ctx_create(npe_ctx **out);
NPE_API void npe_ctx_destroy(npe_ctx *ctx);
/* Route library messages to fn (NULL: drop them). The library itself never prints.
 * Per context; not while another thread uses the context. */
NPE_API void npe_ctx_set_log(npe_ctx *ctx, npe_log_fn fn, void *user);
/* Text of the last error raised through ctx ("" if none). Valid until the next call on ctx.
 * Per context: errors of npe_model_forward calls running at once on several threads land in the
 * context in some order; read the one you need right after your call returns, or give each
 * thread its own model handle. */
NPE_API const char *npe_ctx_last_error(const npe_ctx *ctx);

/* ---- Archives -------------------------------------------------------------------------------
 * Read-only view of a PyTorch file: torch.save(state_dict), torch.save(model), a TorchScript
 * archive, or a legacy (PyTorch < 1.6, non-zip) .pth. Tensor data is memory-mapped, not copied.
 * Nothing in the file is executed: pickled globals outside an allow-list are refused.
 * Thread safety: per archive (and its context). */
typedef struct npe_archive npe_archive;

typedef enum npe_archive_kind {
    NPE_ARCHIVE_STATE_DICT = 0, /* a dict of name -> tensor (torch.save(model.state_dict())) */
    NPE_ARCHIVE_FULL_MODEL,     /* a pickled nn.Module (torch.save(model)) */
    NPE_ARCHIVE_TORCHSCRIPT,    /* torch.jit.save archive with code/ */
    NPE_ARCHIVE_OBJECT,         /* any other pickled object holding tensors (checkpoint dict) */
} npe_archive_kind;

typedef enum npe_archive_layout {
    NPE_LAYOUT_ZIP = 0,  /* zip container (PyTorch >= 1.6) */
    NPE_LAYOUT_LEGACY,   /* sequence of pickles + raw storages (PyTorch < 1.6) */
} npe_archive_layout;

/* One record of the container (zip layout only). Strings are owned by the archive. */
typedef struct npe_record_info {
    const char *name;
    uint64_t size;            /* uncompressed bytes */
    uint64_t compressed_size; /* bytes in the file */
    uint64_t data_offset;     /* file offset of the record's data */
    uint32_t crc32;
    int deflated;             /* 1 if the record is deflate-compressed */
} npe_record_info;

/* One tensor, named by its path in the pickled object ("layer1.0.conv1.weight"). */
typedef struct npe_tensor_info {
    const char *name;
    npe_dtype dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    int64_t stride[NPE_MAX_DIMS];  /* in elements, as PyTorch reports */
    int64_t storage_offset;        /* in elements */
    const char *storage_key;       /* record key of the storage ("0", "1", ...) */
    uint64_t storage_numel;        /* elements in the storage */
    int requires_grad;
    int is_parameter;              /* pickled as nn.Parameter */
} npe_tensor_info;

/* One module of a pickled model tree (full-model and TorchScript archives). */
typedef struct npe_module_info {
    const char *path;        /* "" for the root, else "layer1.0.conv1" */
    const char *class_path;  /* "torch.nn.modules.conv.Conv2d" */
    size_t n_attrs;          /* plain attributes: in_channels, kernel_size, eps, ... */
    const char *const *attr_names;
    const char *const *attr_values; /* rendered as Python would print them: "64", "(3, 3)" */
} npe_module_info;

/* Open path. On failure *out is NULL and npe_ctx_last_error(ctx) says why. */
NPE_API int npe_archive_open(npe_ctx *ctx, const char *path, npe_archive **out);
NPE_API void npe_archive_destroy(npe_archive *a);

NPE_API npe_archive_kind npe_archive_get_kind(const npe_archive *a);
NPE_API npe_archive_layout npe_archive_get_layout(const npe_archive *a);
/* Name of a kind ("state_dict", "full_model", "torchscript", "object"). Thread-safe. */
NPE_API const char *npe_archive_kind_name(npe_archive_kind k);

NPE_API size_t npe_archive_record_count(const npe_archive *a);
NPE_API int npe_archive_record(const npe_archive *a, size_t i, npe_record_info *out);

NPE_API size_t npe_archive_tensor_count(const npe_archive *a);
NPE_API int npe_archive_tensor(const npe_archive *a, size_t i, npe_tensor_info *out);
/* Index of the tensor called name, or NPE_ENOTFOUND. */
NPE_API int npe_archive_find_tensor(const npe_archive *a, const char *name);
/* Copy tensor i into dst as a contiguous row-major array of its own dtype.
 * dst_bytes must be at least numel * npe_dtype_size(dtype). */
NPE_API int npe_archive_tensor_data(npe_archive *a, size_t i, void *dst, size_t dst_bytes);

NPE_API size_t npe_archive_module_count(const npe_archive *a);
NPE_API int npe_archive_module(const npe_archive *a, size_t i, npe_module_info *out);

/* Total elements over all distinct parameters (not buffers) when the archive says which
 * tensors are parameters; for a state_dict, over all floating tensors except BN running stats
 * and num_batches_tracked, matching sum(p.numel() for p in model.parameters()). */
NPE_API uint64_t npe_archive_param_count(const npe_archive *a);

enum { NPE_DESCRIBE_TEXT = 0, NPE_DESCRIBE_JSON = 1 };
/* Human-readable (or JSON) description: kind, records, tensors, module tree, parameters.
 * *text is allocated by the library; release it with npe_free. */
NPE_API int npe_archive_describe(npe_archive *a, int format, char **text);

/* Write every tensor of the archive as a torch.save(state_dict)-style archive at path
 * (atomically: temporary file then rename). Storages shared between tensors stay shared. */
NPE_API int npe_archive_save_state_dict(npe_archive *a, const char *path);

/* ---- Tensors ----------------------------------------------------------------------------------
 * A dense row-major array handed across the API. When the library fills one (loading a .npy,
 * running a model into a tensor whose data is NULL) it allocates data; give it back with
 * npe_tensor_release. */
typedef struct npe_tensor {
    npe_dtype dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    void *data;    /* numel * npe_dtype_size(dtype) bytes, C order */
    size_t nbytes;
} npe_tensor;

/* Read a .npy file (float16/32/64, int8/16/32/64, uint8, bool; either byte order; Fortran order
 * is converted). Per context. */
NPE_API int npe_tensor_load_npy(npe_ctx *ctx, const char *path, npe_tensor *out);
/* Write t as a .npy file, atomically. Per context. */
NPE_API int npe_tensor_save_npy(npe_ctx *ctx, const char *path, const npe_tensor *t);
/* Free data the library allocated and zero *t. NULL accepted. Never on a tensor whose data the
 * caller allocated. Thread-safe (per tensor). */
NPE_API void npe_tensor_release(npe_tensor *t);

/* Shapes of model inputs (dummy_input): the whole tensor, batch dim included. */
typedef struct npe_shape {
    int ndim;
    int64_t d[NPE_MAX_DIMS];
} npe_shape;

/* ---- Models -----------------------------------------------------------------------------------
 * A traced TorchScript archive (torch.jit.trace(model, x).save(path)) imported into the engine's
 * graph and run by its own CPU kernels. Thread safety: npe_model_forward may run on several
 * threads at once on one model; every other function on a model is "one thread at a time, and
 * not while a forward runs" unless it says otherwise. Separate models are independent. */
typedef struct npe_model npe_model;

typedef struct npe_model_options {
    const char *forward_name;       /* method to run; NULL: "forward" (e.g. "dummy_forward") */
    const char *const *cut_outputs; /* when n_cut_outputs > 0, the outputs become these named */
    int n_cut_outputs;              /* values (module paths), dropping what only fed the rest */
    int threads;                    /* kernel threads of one forward; <= 0: one per CPU. Several
                                     * forwards at once each get their own: for concurrent use,
                                     * 1 (each call runs on its caller's thread) is best. */
} npe_model_options;

/* Defaults: forward, all outputs, one thread per CPU. Thread-safe. */
NPE_API void npe_model_options_init(npe_model_options *opt);
/* Import the archive at path. opt may be NULL (defaults). Unknown ops and scripted (non-traced)
 * models are errors naming the op and the code line. Per context. */
NPE_API int npe_model_load(npe_ctx *ctx, const char *path, const npe_model_options *opt,
                           npe_model **out);
/* Not while a forward runs. */
NPE_API void npe_model_destroy(npe_model *m);
/* Inputs and outputs of the graph, and their names (as the model's code names them; owned by m,
 * valid until m is pruned or destroyed). Thread-safe (also during forwards). */
NPE_API int npe_model_input_count(const npe_model *m);
NPE_API int npe_model_output_count(const npe_model *m);
NPE_API const char *npe_model_input_name(const npe_model *m, int i);
NPE_API const char *npe_model_output_name(const npe_model *m, int i);

/* Run the model on inputs (float32 or float64; batch and spatial size from their shapes) and
 * fill outputs[0..n_outputs) (n_outputs may be less than the model has: the first ones). The
 * outputs are float32. For each outputs[i]:
 * - data == NULL: the library allocates it; release it with npe_tensor_release;
 * - data != NULL: caller memory of nbytes bytes, written in place (nothing allocated); dtype,
 *   ndim and shape are set and nbytes becomes the bytes written (restore your capacity before
 *   reusing the tensor). Too small: NPE_EINVAL naming the bytes needed, and no output written.
 * Thread-safe per model: any number of threads may call it at once on one model (each call runs
 * on a private copy of the graph, made the first time that many calls overlap: the first
 * overlapping call may wait for one running forward to finish). Not concurrently with
 * npe_model_prune, npe_model_analyse or npe_model_destroy on the same model. */
NPE_API int npe_model_forward(npe_model *m, const npe_tensor *inputs, int n_inputs,
                              npe_tensor *outputs, int n_outputs);

/* ---- Model queries ----------------------------------------------------------------------------
 * Layers, channel groups and counts depend on the input shapes (MACs scale with the image size,
 * flattened features with the spatial size), so they are computed by npe_model_analyse for given
 * shapes, and again by every npe_model_prune (with its input_shapes). Until then the counts below
 * are 0 and the getters NPE_EINVAL. Strings are owned by m and valid until the next analyse,
 * prune or destroy. Thread safety: the getters are thread-safe between analyses (also during
 * forwards); npe_model_analyse is one thread at a time and not during a forward. */

/* Infer the shapes from input_shapes (one per model input, batch dim included: the counts are
 * per image whatever the batch), find the channel groups and count parameters and MACs. */
NPE_API int npe_model_analyse(npe_model *m, const npe_shape *input_shapes, int n_input_shapes);

/* Shape of output i at the analysed input shapes. */
NPE_API int npe_model_output_shape(const npe_model *m, int i, npe_shape *out);

/* One conv, linear or batch-norm call in graph order (a module called twice appears twice). */
typedef struct npe_layer_info {
    const char *name;       /* module path ("layer1.0.conv1") */
    const char *op_type;    /* "Conv2d", "ConvTranspose2d", "Linear", "BatchNorm2d", "BatchNorm1d" */
    int64_t in_channels;    /* conv: input channels (all groups); linear: in_features; BN: C */
    int64_t out_channels;   /* conv: output channels; linear: out_features; BN: C */
    int kernel[2];          /* conv: kh, kw; else 0 */
    int stride[2];          /* conv; else 0 */
    int padding[2];         /* conv (symmetric part, "same" resolved); else 0 */
    int dilation[2];        /* conv; else 0 */
    int groups;             /* conv: groups; else 1 */
    int64_t params;         /* parameter elements it reads (weight, bias, BN affine) */
    int64_t macs;           /* multiply-accumulates per image (conv, linear; BN: 0) */
} npe_layer_info;

NPE_API int npe_model_layer_count(const npe_model *m);
NPE_API int npe_model_layer(const npe_model *m, int i, npe_layer_info *out);

/* One channel group: producers whose output channels are cut together (see Pruning). */
typedef struct npe_group_info {
    const char *name;       /* the first producer's module path: the name sens.csv, config
                             * sparsities_dict and npe_group_prune use */
    int channels;
    int prunable;
    const char *reason;     /* why not prunable ("reaches model output 'fc'"); NULL if prunable */
    const char *const *producers; /* layer names of the producers, graph order, each once */
    int n_producers;
    const char *const *consumers; /* layer names whose weights read these channels */
    int n_consumers;
} npe_group_info;

NPE_API int npe_model_group_count(const npe_model *m);
NPE_API int npe_model_group(const npe_model *m, int i, npe_group_info *out);
/* Index of the group called name, or NPE_ENOTFOUND (NPE_EINVAL before an analysis). */
NPE_API int npe_model_find_group(const npe_model *m, const char *name);

/* Parameters (as sum(p.numel() for p in model.parameters()), each shared tensor once) and MACs
 * per image (conv, transposed conv, linear; FLOPs = 2 x MACs) at the analysed shapes. Either
 * pointer may be NULL. */
NPE_API int npe_model_count(const npe_model *m, int64_t *params, int64_t *macs);

/* ---- Pruning ----------------------------------------------------------------------------------
 * Channels are cut physically, group by group: a group is every layer whose output channels must
 * be cut together (residual adds, concatenations, depthwise chains...). Channels are ranked by the
 * L1 norm of their filters summed over the group's producers, the lowest pruned first (ties: the
 * lower index first); at sparsity s a group of C channels keeps k = C - floor(s*C), rounded up to a
 * multiple of channel_alignment a: k = min(C, max(a, ceil(k/a)*a)). Groups whose channels reach a
 * model output (classifiers, detection heads) or meet an op the analysis cannot see through are
 * never cut; the report says why. */

/* One entry of a config_list: the groups it matches get this sparsity (later entries win). */
typedef struct npe_prune_rule {
    double sparsity;
    const char *const *op_types; /* "Conv2d", "ConvTranspose2d", "Linear"; none: any */
    int n_op_types;
    const char *const *op_names; /* layer names (module paths) of a producer; none: any */
    int n_op_names;
    int exclude;                 /* 1: the groups it matches are not pruned */
} npe_prune_rule;

/* One group set by name (npe_group_info.name): kept channels given, or a sparsity. */
typedef struct npe_group_prune {
    const char *group;
    double sparsity;      /* in [0, 1), ranked and aligned as above; used when n_kept == 0 */
    const int *kept;      /* n_kept > 0: exactly these channel indices (0..channels-1, any order,
                           * no repeats) are kept; channel_alignment does not apply */
    int n_kept;
} npe_group_prune;

typedef struct npe_prune_options {
    const npe_shape *input_shapes; /* dummy_input: the shape of each model input */
    int n_input_shapes;
    double sparsity;               /* every prunable group, unless config_list is given */
    int channel_alignment;         /* default 2 */
    const char *const *exclude_layers; /* a group whose name or producer is listed stays whole */
    int n_exclude_layers;
    const npe_prune_rule *config_list; /* when n_config_list > 0, replaces sparsity */
    int n_config_list;
    /* Per-group settings, applied last: they win over sparsity, config_list and exclude_layers.
     * An unknown name is NPE_ENOTFOUND, an unprunable group, a repeated name, an index out of
     * range or repeated, or a sparsity outside [0, 1) NPE_EINVAL, each naming the group. */
    const npe_group_prune *groups;
    int n_groups;
} npe_prune_options;

/* Defaults: sparsity 0, channel_alignment 2, nothing excluded, no per-group entries, no input
 * shapes (required). Thread-safe. */
NPE_API void npe_prune_options_init(npe_prune_options *opt);
/* Prune m in place (the analysis of npe_model_analyse is redone at opt's input shapes). Unknown
 * names in exclude_layers or op_names are errors naming them. On failure m is unchanged. The
 * report (npe_model_prune_report) is kept until the next prune. Not during a forward. */
NPE_API int npe_model_prune(npe_model *m, const npe_prune_options *opt);
/* JSON report of the last npe_model_prune: params_before/after, macs_before/after (per image),
 * and per group: name, channels, kept (indices), producers, consumers ({layer, removed_inputs}),
 * reason (groups left whole). NULL before the first prune. Owned by m, valid until the next
 * prune. Thread-safe between prunes. */
NPE_API const char *npe_model_prune_report(const npe_model *m);

/* Exports of the (pruned) model, each written atomically:
 * - a TorchScript archive torch.jit.load reads (the model's code with channel-count literals
 *   rewritten, smaller tensors);
 * - a state_dict .pth (torch.load, also weights_only=True);
 * - a JSON of each layer's new channel counts, to rebuild the model class for that state_dict;
 * - a full-model .pth from the torch.save(model) archive the model was traced from, with module
 *   attributes (out_channels, in_channels, num_features, in_features, groups) updated.
 * One thread at a time per model, not during a forward. */
NPE_API int npe_model_save_torchscript(npe_model *m, const char *path);
NPE_API int npe_model_save_state_dict(npe_model *m, const char *path);
NPE_API int npe_model_save_channels(npe_model *m, const char *json_path);
NPE_API int npe_model_save_full_model(npe_model *m, const char *in_full, const char *out_full);

/* ---- Configuration ----------------------------------------------------------------------------
 * TOML with the sections [model] (path, dummy_input = [1, 3, 224, 224], ...), [data], [metric],
 * [prune] (config_list, exclude_layers, channel_alignment, ...) and [run]. Keys unknown in these
 * sections, and values of the wrong type, are errors naming the file, line and column.
 * Thread safety: a config is read-only once made: npe_config_prune_options and npe_run may use
 * one config from several threads at once; load/parse are per context. */
typedef struct npe_config npe_config;
NPE_API int npe_config_load(npe_ctx *ctx, const char *path, npe_config **out);
/* The same from len bytes of TOML text in memory (no NUL needed), so a C tool can build its
 * configuration without a file. Relative paths in it are resolved against base_dir (NULL or "":
 * the current folder), output_dir defaults to <base_dir>/lbprune_out, and messages name the text
 * "config" ("config:3:1: unknown key ..."). */
NPE_API int npe_config_parse(npe_ctx *ctx, const char *toml_text, size_t len, const char *base_dir,
                             npe_config **out);
NPE_API void npe_config_destroy(npe_config *cfg);
/* Fill opt's input_shapes (from dummy_input), config_list, exclude_layers and channel_alignment
 * from cfg (fields the file does not set are left as they are). Strings and arrays stay owned by
 * cfg, which must outlive opt's use. */
NPE_API int npe_config_prune_options(const npe_config *cfg, npe_prune_options *opt);

/* ---- Caller-supplied data and metric ------------------------------------------------------------
 * Vehicle-side tools bring their own loader and metric: npe_run reads batches through an
 * npe_data_source and scores them with npe_metric_callbacks instead of the configuration's
 * [data] and [metric]. Callbacks return 0, or nonzero to fail the run: the run then returns
 * NPE_ECALLBACK (or the callback's own code when it returns a negative NPE_E* code) with a message
 * naming the callback, the samples, and the text the callback wrote into msg (msg_size bytes,
 * NUL-terminated by the library if you fill it up). */
typedef struct npe_data_source {
    int64_t n_samples;         /* >= 1; [data] limit still applies */
    npe_shape sample_shape;    /* one input sample, no batch dim: {3, {1, 28, 28}} */
    /* What each sample's target is. With a built-in metric: int64 class labels (target_ndim 0)
     * for top1/top5/cross_entropy, int64 masks {H, W} for miou/pixel_accuracy, none for fidelity.
     * With caller metric callbacks: any dtype and shape (bounding boxes, depth maps...). */
    int has_targets;
    npe_dtype target_dtype;
    npe_shape target_shape;    /* one sample's target, no batch dim (ndim 0: one value) */
    /* Fill samples [first, first + n) (0 <= first, first + n <= n_samples; any order, any batch
     * size, the same sample possibly several times: reads must be repeatable). input is float32
     * [n, sample_shape...] and target (NULL when has_targets is 0) [n, target_shape...] of
     * target_dtype, both allocated by the library with data and nbytes set: fill data, change
     * nothing else. */
    int (*read)(void *user, int64_t first, int64_t n, npe_tensor *input, npe_tensor *target,
                char *msg, size_t msg_size);
    /* 0: the library calls read from one thread at a time (it may be a different thread each
     * time). 1: read is safe to call from several threads at once (analysis workers then read
     * in parallel). */
    int concurrent;
    /* Optional: a string that changes when the data or its preprocessing changes; a resumed
     * analysis (same output_dir) discards values measured with another one. NULL: "". */
    const char *fingerprint;
    void *user;
} npe_data_source;

typedef struct npe_metric_callbacks {
    const char *name;          /* in logs, summary.json, report.html; NULL: "custom" */
    int higher_is_better;      /* 0: lower is better (a loss); metric_thres applies upwards */
    /* Start an accumulator for one evaluation of one model (*acc: your state, may be NULL). */
    int (*begin)(void *user, void **acc);
    /* Add one batch: outputs[0..n_outputs), the model's outputs in model output order (float32
     * [n, ...] each; see docs/api.md for how many the analysis passes) and the batch's targets as
     * the data source filled them (NULL without targets). Valid during the call only. */
    int (*accumulate)(void *user, void *acc, const npe_tensor *outputs, int n_outputs,
                      const npe_tensor *target, char *msg, size_t msg_size);
    /* The value over every batch accumulated; releases acc. */
    int (*end)(void *user, void *acc, double *value, char *msg, size_t msg_size);
    /* Optional: release acc without a value (after an error or a cancel). NULL: end is called
     * and its result ignored. */
    void (*discard)(void *user, void *acc);
    /* Thread safety: begin/accumulate/end of different accumulators may run at once on
     * different threads (analysis workers); one accumulator is used by one thread at a time. */
    void *user;
} npe_metric_callbacks;

/* ---- Sensitivity analysis and compression (the whole job of `lbprune run`) ----------------------
 * From a configuration: load [model], read [data] (or the data source), measure [metric] (or the
 * metric callbacks) on the original model, then for every prunable group and sparsity the metric
 * of the model with only that group pruned (written as it goes to <output_dir>/sens_analysis/
 * sens.csv and sens.json, resumable: a run stopped at any point and started again with the same
 * configuration skips what is done), choose per group the largest sparsity whose metric stays
 * within metric_thres (or meet target_macs / target_params), prune every group at once, evaluate
 * the result, and write pruned.pt, pruned.pth + pruned.channels.json, pruned_full.pth (when
 * [model] full_model is given), prune_report.json, summary.json and report.html into output_dir.
 * A [prune] config_list skips the analysis. */
typedef struct npe_run_callbacks {
    /* After every measured (group, sparsity): values done of total, estimated seconds left.
     * Called from worker threads, never two at once. */
    void (*progress)(void *user, const char *group, double sparsity, double value, size_t done,
                     size_t total, double eta_s);
    /* Nonzero stops the analysis (measured values are kept); the run returns NPE_ECANCELED.
     * Called from worker threads, never two at once. */
    int (*cancel)(void *user);
    void *user;
    /* Optional (NULL: [data] of the configuration, which is then required). With a source,
     * [model] dummy_input defaults to [1, sample_shape...] and [data] keeps only batch_size and
     * limit. */
    const npe_data_source *data;
    /* Optional (NULL: [metric] of the configuration, default top1). */
    const npe_metric_callbacks *metric;
} npe_run_callbacks;

enum { NPE_RUN_ANALYSIS_ONLY = 1 /* stop after sens.csv (`lbprune sens`) */ };

/* Run the job of cfg. cb may be NULL. *summary (may be NULL) receives a printable table: metric
 * before/after, params and MACs before/after, per group the chosen sparsity and channels; release
 * it with npe_free. Log messages go to the context's log callback. Per context: one run at a time
 * per context (runs on different contexts may overlap, with different output_dirs). */
NPE_API int npe_run(npe_ctx *ctx, const npe_config *cfg, unsigned flags, const npe_run_callbacks *cb,
                    char **summary);

/* Free memory the library handed to the caller. NULL is accepted. Thread-safe. */
NPE_API void npe_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
