/* The graph IR every part of the engine stands on: importers build it, shape inference annotates
 * it, the executor runs it, pruning cuts its parameters and literals, exporters write it back.
 *
 * Model of the IR
 * ---------------
 * A graph is a list of values and a list of nodes in topological order (every node only reads
 * values made before it). Values are SSA: each has at most one producer.
 *
 * - Tensor values: activations (made by nodes), graph inputs, parameters and buffers of modules
 *   (named "layer1.0.conv1.weight", float32 data owned by the graph so pruning can replace it),
 *   constant tensors of the source (TorchScript's CONSTANTS.cN, data owned too), and small tensors
 *   that only shape arithmetic makes (ops.prim.NumToTensor results, torch.ones([1])): those are
 *   "static", computed by shape inference, and hold their data after it ran.
 * - Scalar values: int, float, bool, str, none. Literals of the source are values with the
 *   NPE_VF_CONST flag and the byte span where they are written (so an exporter can rewrite
 *   `groups`, split sizes, slice bounds, view sizes); results of shape arithmetic (torch.size,
 *   int(), floor_divide...) are values made by "scalar" nodes, evaluated by shape inference from the
 *   input shapes, never folded at import.
 * - List values: an ordered list of other values (ints of a view size, strides). A list value has
 *   no producer node: its items are the values it lists ([_16, 3, 8, _17, int(nx)] lists two
 *   literals and three results of int()). Tensor lists (torch.cat([a, b], 1)) never become values:
 *   the tensors are inputs of the node directly (see NPE_OPF_VARIADIC).
 *
 * A node is an op, its inputs and outputs (value ids), the scope (module path of the module whose
 * code made it, "layer1.0.conv1"; "" for the root) and the source call site. Its inputs follow
 * the op's schema (npe_op_schema: named slots, arity, which slots must be known at inference).
 * Defaults the source left out are filled by the importer with values flagged NPE_VF_SYNTH (no
 * span). In-place ops (relu_, add_, copy_, x[...] = y) are made functional by the importer:
 * the op computes a new value, and when the mutated tensor is a view (or has views), scatter ops
 * (slice_scatter, select_scatter, reshape_as, inverse permutes) rebuild the storage it shares,
 * so every later reader of any alias sees the change, as in PyTorch.
 *
 * Names: every tensor value has a unique user-facing name. Node outputs are named after the node's
 * scope (the module that made them: "layer1.0.conv1"); a later output in the same scope gets
 * "#1", "#2"... appended ("layer1.0.relu#1" for the second call of a shared ReLU), a root-level
 * node is named after its op ("cat", "cat#1"), and output i > 0 of a multi-output node gets ":i".
 * Graph inputs keep the parameter name of the traced forward ("x"), constant tensors are named
 * "CONSTANTS.c0"..., and results of scalar ops (shape arithmetic) are unnamed.
 *
 * Literal spans: the same source text can be inlined several times (a class shared by several
 * module instances, a module called twice). Each inlining makes its own literal values with the
 * same span; an exporter that rewrites a span must check that every value with that span agrees.
 *
 * Editing (pruning): replace a parameter's data and shape with npe_graph_set_tensor_data, rewrite
 * a literal by assigning its value (v->i of an INT literal, the items of a list), then run
 * npe_graph_infer again; nothing in the graph caches shapes except what inference writes. An
 * exporter finds the text to rewrite through v->span (g->sources[span.source].record, offset,
 * len) and constant tensors through v->const_index. Executors planned on the old graph must be
 * invalidated (npe_exec_invalidate).
 *
 * Ownership: the graph owns every string, list and data array it points to. Functions that take a
 * string copy it. Thread safety: a graph is used by one thread at a time; shape inference writes
 * into it (the executor infers again when the input shapes change), so workers each use their own
 * clone. */
#ifndef NPE_ENGINE_IR_H
#define NPE_ENGINE_IR_H

#include <stddef.h>
#include <stdint.h>

#include <npengine/npengine.h>

#include "../formats/error.h"

/* Bounds that keep a hostile model from exhausting memory through the IR. */
#define NPE_IR_MAX_VALUES (1 << 24)
#define NPE_IR_MAX_NODES (1 << 22)
#define NPE_IR_MAX_INPUTS 4096 /* inputs of one node (cat of many tensors) */
#define NPE_IR_MAX_OUTPUTS 4096
#define NPE_IR_MAX_LIST 4096   /* items of one list value */

/* ---- Ops ------------------------------------------------------------------------------------ */
typedef enum npe_op {
    /* layers with parameters */
    NPE_OP_CONV = 0,       /* 2-D convolution or transposed convolution (torch._convolution) */
    NPE_OP_LINEAR,
    NPE_OP_BATCH_NORM,     /* eval mode only: runs as a per-channel affine */
    NPE_OP_GROUP_NORM,     /* statistics per (sample, group) over its channels and positions */
    NPE_OP_LAYER_NORM,     /* statistics over the last dims (normalized_shape) */
    NPE_OP_MATMUL,         /* torch.matmul, mm, bmm: batch dims broadcast, 1-D operands as in
                            * PyTorch */
    /* activations (elementwise on one tensor) */
    NPE_OP_RELU,
    NPE_OP_HARDTANH,       /* ReLU6 is hardtanh(0, 6) */
    NPE_OP_LEAKY_RELU,
    NPE_OP_SILU,
    NPE_OP_SIGMOID,
    NPE_OP_HARDSWISH,
    NPE_OP_HARDSIGMOID,
    NPE_OP_TANH,
    NPE_OP_GELU,
    NPE_OP_ELU,
    NPE_OP_CLAMP,          /* min/max may be none */
    NPE_OP_NEG,
    NPE_OP_EXP,
    NPE_OP_SQRT,
    /* pooling and resampling */
    NPE_OP_MAX_POOL2D,
    NPE_OP_AVG_POOL2D,
    NPE_OP_ADAPTIVE_AVG_POOL2D,
    NPE_OP_ADAPTIVE_MAX_POOL2D, /* two outputs: values, indices (indices may not be used) */
    NPE_OP_UPSAMPLE_NEAREST2D,
    NPE_OP_UPSAMPLE_BILINEAR2D,
    NPE_OP_PIXEL_SHUFFLE,
    NPE_OP_PAD,            /* padding of the last dims: constant, reflect or replicate */
    /* arithmetic with broadcasting; also shape arithmetic when every input is static */
    NPE_OP_ADD,            /* self + alpha * other */
    NPE_OP_SUB,            /* self - alpha * other */
    NPE_OP_RSUB,           /* other - alpha * self */
    NPE_OP_MUL,
    NPE_OP_DIV,
    NPE_OP_FLOOR_DIV,      /* shape arithmetic only */
    NPE_OP_POW,            /* self ** exponent */
    NPE_OP_MAXIMUM,        /* elementwise max / min of two tensors (torch.max(a, b)) */
    NPE_OP_MINIMUM,
    /* joining and splitting */
    NPE_OP_CAT,            /* variadic: tensors..., dim */
    NPE_OP_STACK,          /* variadic: tensors..., dim */
    NPE_OP_CHUNK,          /* multi-output */
    NPE_OP_SPLIT,          /* multi-output, one split size */
    NPE_OP_SPLIT_WITH_SIZES, /* multi-output, list of sizes */
    NPE_OP_UNBIND,         /* multi-output */
    NPE_OP_SLICE,
    NPE_OP_SELECT,
    NPE_OP_SLICE_SCATTER,  /* self with self[..., start:end:step, ...] (along dim) replaced by src */
    NPE_OP_SELECT_SCATTER, /* self with self.select(dim, index) replaced by src */
    /* reductions and normalisation */
    NPE_OP_MEAN,
    NPE_OP_SUM,
    NPE_OP_AMAX,           /* max over dims (dim [] : all), values only */
    NPE_OP_AMIN,
    NPE_OP_MAX_DIM,        /* torch.max(x, dim, keepdim): values, indices (indices unusable) */
    NPE_OP_MIN_DIM,
    NPE_OP_SOFTMAX,
    NPE_OP_LOG_SOFTMAX,
    /* layout */
    NPE_OP_FLATTEN,
    NPE_OP_RESHAPE,        /* view and reshape */
    NPE_OP_PERMUTE,
    NPE_OP_TRANSPOSE,
    NPE_OP_SQUEEZE,        /* dim none: every dim of size 1 */
    NPE_OP_UNSQUEEZE,
    NPE_OP_EXPAND,
    NPE_OP_EXPAND_AS,      /* self (a tensor or a number) broadcast to other's shape */
    NPE_OP_REPEAT,         /* tile: dim i repeated repeats[i] times (leading repeats add dims) */
    NPE_OP_RESHAPE_AS,     /* view_as, reshape_as: self with other's shape */
    NPE_OP_CONTIGUOUS,     /* identity for us */
    NPE_OP_DROPOUT,        /* identity in eval (dropout, feature_dropout, alpha_dropout) */
    NPE_OP_TO,             /* dtype conversion: identity on float tensors */
    NPE_OP_IDENTITY,       /* detach, clone */
    /* factories (static: evaluated by shape inference) */
    NPE_OP_ONES,
    NPE_OP_ZEROS,
    NPE_OP_ARANGE,         /* start, end, step: 1-D tensor (YOLO grids) */
    NPE_OP_MESHGRID,       /* variadic: 1-D tensors..., indexing; multi-output */
    /* scalar ops: shape arithmetic, evaluated by shape inference */
    NPE_OP_SIZE,           /* torch.size(x, dim) -> int */
    NPE_OP_NUM_TO_TENSOR,  /* int/float -> 0-d tensor */
    NPE_OP_INT,            /* int(x) */
    NPE_OP_FLOAT,          /* float(x) */
    NPE_OP_COUNT
} npe_op;

/* Op flags (npe_op_schema.flags). */
enum {
    NPE_OPF_ELEMENTWISE = 1 << 0, /* output has input 0's shape, channel c depends on channel c */
    NPE_OPF_BROADCAST = 1 << 1,   /* binary elementwise with broadcasting (inputs 0 and 1) */
    NPE_OPF_ALIAS = 1 << 2,       /* output is input 0's data seen with another shape: no copy */
    NPE_OPF_SCALAR = 1 << 3,      /* shape arithmetic: evaluated by inference, never executed */
    NPE_OPF_FACTORY = 1 << 4,     /* makes a tensor from literals only (static) */
    NPE_OPF_VARIADIC = 1 << 5,    /* inputs 0..n-2 are tensors of a list, the last is dim */
    NPE_OPF_MULTI_OUT = 1 << 6,   /* number of outputs decided per node */
    NPE_OPF_PARAMS = 1 << 7,      /* reads module parameters (conv, linear, batch_norm) */
};

typedef struct npe_op_schema {
    const char *name;        /* "conv", "batch_norm", ... (used in messages and reports) */
    const char *slots;       /* input slot names separated by spaces, in input order */
    int min_in, max_in;      /* arity; max_in -1: unbounded (variadic) */
    int n_out;               /* outputs; 0 for NPE_OPF_MULTI_OUT (see the node) */
    uint32_t static_mask;    /* bit i: input i must be a non-tensor value known at inference
                              * (a literal or shape arithmetic). For variadic ops: the last input */
    unsigned flags;          /* NPE_OPF_* */
} npe_op_schema;

const npe_op_schema *npe_op_schema_of(npe_op op);
/* "conv", or "?" when out of range. */
const char *npe_op_name(npe_op op);
/* Name of input slot i of op ("weight"), or NULL past the schema (variadic ops: "tensors" for
 * every tensor input, "dim" for the last). buf receives the name; returns buf or NULL. */
const char *npe_op_slot_name(npe_op op, int i, int n_in, char *buf, size_t cap);
/* Slot index of name in op's schema, -1 if none (variadic tensors: -1). */
int npe_op_slot_index(npe_op op, const char *name);

/* Input slots of the ops pruning reads most. */
enum { NPE_CONV_INPUT = 0, NPE_CONV_WEIGHT, NPE_CONV_BIAS, NPE_CONV_STRIDE, NPE_CONV_PADDING,
       NPE_CONV_DILATION, NPE_CONV_TRANSPOSED, NPE_CONV_OUTPUT_PADDING, NPE_CONV_GROUPS };
enum { NPE_LINEAR_INPUT = 0, NPE_LINEAR_WEIGHT, NPE_LINEAR_BIAS };
enum { NPE_BN_INPUT = 0, NPE_BN_WEIGHT, NPE_BN_BIAS, NPE_BN_MEAN, NPE_BN_VAR, NPE_BN_TRAINING,
       NPE_BN_MOMENTUM, NPE_BN_EPS };
enum { NPE_GN_INPUT = 0, NPE_GN_GROUPS, NPE_GN_WEIGHT, NPE_GN_BIAS, NPE_GN_EPS };
enum { NPE_LN_INPUT = 0, NPE_LN_SHAPE, NPE_LN_WEIGHT, NPE_LN_BIAS, NPE_LN_EPS };
/* A conv's padding slot holds ints, or the string "same" or "valid" (nn.Conv2d(padding="same"),
 * traced as torch._convolution_mode): "same" pads dilation * (kernel - 1) per dim, half on each
 * side and the odd pixel at the bottom/right, as PyTorch does; stride must be 1. */

/* ---- Values --------------------------------------------------------------------------------- */
typedef enum npe_vtype {
    NPE_VT_NONE = 0,
    NPE_VT_TENSOR,
    NPE_VT_INT,
    NPE_VT_FLOAT,
    NPE_VT_BOOL,
    NPE_VT_STR,   /* strings and devices ("constant", "cpu") */
    NPE_VT_LIST,  /* list or tuple of values */
    NPE_VT_COUNT
} npe_vtype;

const char *npe_vtype_name(npe_vtype t); /* "tensor", "int", ... */

enum {
    NPE_VF_INPUT = 1 << 0,   /* graph input */
    NPE_VF_PARAM = 1 << 1,   /* parameter of a module (weight, bias) */
    NPE_VF_BUFFER = 1 << 2,  /* buffer of a module (running_mean, running_var) */
    NPE_VF_CONST = 1 << 3,   /* literal of the source, or a constant tensor (CONSTANTS.cN) */
    NPE_VF_SYNTH = 1 << 4,   /* made by the importer (default argument): not in the source */
    NPE_VF_TUPLE = 1 << 5,   /* list value that was a tuple in the source */
    NPE_VF_STATIC = 1 << 6,  /* set by inference: known without input data (shape arithmetic,
                              * literals, params and constants) */
    NPE_VF_KNOWN = 1 << 7,   /* set by inference: scalar value / static data is valid */
    NPE_VF_UNUSABLE = 1 << 8,/* an output that must not be used (indices of max pooling and of
                              * torch.max/min with a dim) */
};

/* Where something is written in the source: a span of a code record. */
typedef struct npe_span {
    int32_t source;    /* index into g->sources; -1 when not from source */
    uint32_t line;     /* 1-based */
    uint32_t col;      /* 1-based, in bytes */
    uint32_t offset;   /* byte offset in the source text */
    uint32_t len;      /* bytes */
} npe_span;

/* A code record the graph was imported from. */
typedef struct npe_source {
    char *record;  /* full record name in the archive ("archive/code/__torch__/models.py") */
    char *name;    /* as shown to users ("code/__torch__/models.py") */
    char *text;    /* the bytes, NUL-terminated */
    size_t len;
} npe_source;

typedef struct npe_value {
    npe_vtype type;
    unsigned flags;      /* NPE_VF_* */
    char *name;          /* never NULL; "" for literals and lists */
    int producer;        /* node id, -1 for inputs, params, constants, literals, lists */
    int producer_out;    /* output index within the producer */
    npe_span span;       /* literal or constant reference: where it is written */

    /* TENSOR: shape (params and constants: from their data; others: set by inference) */
    npe_dtype dtype;     /* F32 for activations and params; constants and shape tensors keep
                          * PyTorch's dtype (int64 sizes, float64 scalars) */
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    float *data;         /* params, buffers, constants, static tensors after inference; owned
                          * unless data_borrowed */
    int64_t numel_data;  /* elements in data */
    int data_borrowed;   /* data belongs to the graph this one was cloned from (see
                          * npe_graph_clone_shared); replacing it never frees it */
    int const_index;     /* CONSTANTS.c<N>: N; else -1 */

    /* scalars: literals, and shape arithmetic once inferred. A static 0-d tensor also holds its
     * exact value here (i when its dtype is integral, f always). */
    int64_t i;           /* INT, BOOL */
    double f;            /* FLOAT */
    char *s;             /* STR */
    int *items;          /* LIST: value ids */
    int n_items;
} npe_value;

/* ---- Nodes ---------------------------------------------------------------------------------- */
enum {
    NPE_NF_STATIC = 1 << 0, /* set by inference: evaluated there, the executor skips it */
};

typedef struct npe_node {
    npe_op op;
    unsigned flags;
    int n_in, n_out;
    int *in;            /* value ids; absent optional inputs are none values */
    int *out;           /* value ids */
    char *scope;        /* module path ("layer1.0.conv1"), "" for the root module */
    npe_span site;      /* the call in the source */
} npe_node;

typedef struct npe_graph {
    npe_value *values;
    int n_values, cap_values;
    npe_node *nodes;    /* topological order */
    int n_nodes, cap_nodes;
    int *inputs;        /* tensor value ids */
    int n_inputs;
    int *outputs;       /* tensor value ids (the source's nested tuples flattened) */
    int n_outputs;
    npe_source *sources;
    int n_sources;
    char *origin;       /* file the graph was imported from (messages) */
    int none_value;     /* shared none value, -1 until first asked for */
    struct npe_name_index *names; /* private: name -> value id */
} npe_graph;

/* Tensor shape given to inference. */
typedef struct npe_tshape {
    int ndim;
    int64_t d[NPE_MAX_DIMS];
} npe_tshape;

/* ---- Building ------------------------------------------------------------------------------- */
int npe_graph_create(npe_graph **out);
void npe_graph_destroy(npe_graph *g); /* NULL accepted */
/* Deep copy (values, data, nodes, sources). */
int npe_graph_clone(const npe_graph *g, npe_graph **out);
/* npe_graph_clone whose tensors borrow g's data instead of copying it: g must outlive the clone
 * and its data must not change meanwhile. Pruning, inference and cutting the clone replace
 * borrowed data with their own (npe_value_drop_data), so g is never written. */
int npe_graph_clone_shared(const npe_graph *g, npe_graph **out);
/* Free v's data unless borrowed, and leave v without data. */
void npe_value_drop_data(npe_value *v);

/* Add a source record (texts are copied); returns its index or a negative code. */
int npe_graph_add_source(npe_graph *g, const char *record, const char *name, const char *text,
                         size_t len);

/* Add a value of type t named name (NULL: ""). Returns the id or a negative code. The pointer
 * g->values may move: do not hold npe_value pointers across additions. */
int npe_graph_add_value(npe_graph *g, npe_vtype t, const char *name);
/* Literal helpers: a CONST value (span may be NULL: then SYNTH). */
int npe_graph_add_int(npe_graph *g, int64_t v, const npe_span *span);
int npe_graph_add_float(npe_graph *g, double v, const npe_span *span);
int npe_graph_add_bool(npe_graph *g, int v, const npe_span *span);
int npe_graph_add_str(npe_graph *g, const char *s, const npe_span *span);
int npe_graph_none(npe_graph *g); /* the shared none value */
/* A list of items (ids copied). */
int npe_graph_add_list(npe_graph *g, const int *items, int n, int is_tuple, const npe_span *span);
/* A tensor value holding data (copied from f32 src, or converted: src_dtype F32/F64/I64/I32/
 * BOOL...). flags: NPE_VF_PARAM, NPE_VF_BUFFER or NPE_VF_CONST. */
int npe_graph_add_tensor_data(npe_graph *g, const char *name, unsigned flags, npe_dtype dtype,
                              int ndim, const int64_t *shape, const void *src,
                              npe_dtype src_dtype);
/* Replace a tensor value's data and shape (pruning). data must be malloc'd: the graph takes it. */
int npe_graph_set_tensor_data(npe_graph *g, int vid, int ndim, const int64_t *shape, float *data);

/* Add a node; its n_out output values are created (tensors, or the scalar type of a scalar op;
 * inference may refine scalar types) and named as described above. in is copied. Returns the node
 * id (outputs in g->nodes[id].out) or a negative code with err set. */
int npe_graph_add_node(npe_graph *g, npe_op op, const int *in, int n_in, int n_out,
                       const char *scope, const npe_span *site, npe_error *err);

int npe_graph_set_inputs(npe_graph *g, const int *ids, int n);
int npe_graph_set_outputs(npe_graph *g, const int *ids, int n);

/* Id of the value called name, or -1. */
int npe_graph_find_value(const npe_graph *g, const char *name);
/* Replace the outputs with the values called names (tensors), then drop every node no output
 * needs. Errors name the missing value. */
int npe_graph_cut_outputs(npe_graph *g, const char *const *names, int n, npe_error *err);
/* Remove nodes whose outputs nothing needs, and values nothing refers to (ids are renumbered;
 * params and constants survive only while used). */
int npe_graph_remove_dead(npe_graph *g, npe_error *err);

/* Check structure: ids in range, topological order, arity per schema, single producers.
 * Importers call it; so should any pass that edits the graph. */
int npe_graph_validate(const npe_graph *g, npe_error *err);

/* Users of value v: node ids that read it (directly or through a list value). *out is malloc'd
 * (free it); returns the count or a negative code. */
int npe_graph_users(const npe_graph *g, int v, int **out);

/* "code/__torch__/models.py:42" for a span, "" when it has none. */
const char *npe_span_str(const npe_graph *g, const npe_span *s, char *buf, size_t cap);
/* "node 'layer1.0.conv1' (conv) at code/...py:12" for messages. */
const char *npe_node_desc(const npe_graph *g, int node, char *buf, size_t cap);

/* Total elements of a tensor value's shape (1 for 0-d), -1 on overflow. */
int64_t npe_value_numel(const npe_value *v);

/* Text dump of the graph (one line per node with shapes when known), malloc'd; for tests and
 * `lbprune inspect --graph`. */
int npe_graph_dump(const npe_graph *g, char **out);

/* ---- Shape inference (engine/shape.c) ---------------------------------------------------------
 * Set every tensor value's shape and every scalar's value from the shapes of the graph inputs,
 * in node order; evaluate shape arithmetic and factories; mark static nodes and values.
 * Re-runnable after the graph changed (pruned params, rewritten literals). Errors name the node
 * (scope, op, source line) and the mismatch. */
int npe_graph_infer(npe_graph *g, const npe_tshape *inputs, int n_inputs, npe_error *err);

#endif
