/* TorchScript archive -> graph IR: parses the code/ records, then inlines the selected method of
 * the root module down through every submodule call, binding self to the module objects of
 * data.pkl, parameters and buffers by attribute path, and CONSTANTS.cN from constants.pkl.
 * Traced code is straight-line; anything else is reported with the source line it came from.
 * In-place ops are made functional here: see "Storage" below. */
#include "torchscript.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torch_file.h"
#include "torch_internal.h"
#include "ts_ast.h"

#define MAX_CALL_DEPTH 64           /* module nesting of real models is about 10 */
#define MAX_CODE_BYTES (64u << 20)  /* one code record */
#define MAX_CONST_BYTES (256u << 20)
#define MAX_STATEMENTS (1 << 20)    /* statements executed over the whole import */

/* ---- References: what a name in the code stands for ------------------------------------------ */
typedef enum rkind {
    R_VALUE = 0, /* a graph value */
    R_MODULE,    /* a module object of data.pkl */
    R_TUPLE,     /* a tuple of references (tuple literal, method returning several values) */
    R_LIST,      /* a list literal */
    R_PENDING,   /* result of a multi-output op whose number of pieces the use decides */
} rkind;

typedef struct pending {
    npe_op op;
    int *in;
    int n_in;
    int default_n;   /* pieces when the use does not say; -1 unknown */
    const char *scope;
    npe_span site;
    const char *fn;  /* name in the source, for messages */
    npe_ts_loc loc;
    struct cfile *cf;
    int node;        /* -1 until made */
    int self_ident;  /* the tensor split (its pieces are views of it), -1 if not a value */
    int made;        /* storage stamp when the call ran (see "Storage") */
} pending;

typedef struct ref {
    rkind kind;
    int v;                  /* VALUE */
    const npe_pv *obj;      /* MODULE */
    const char *path;       /* MODULE: module path ("" for the root) */
    struct ref *items;      /* TUPLE, LIST */
    int n;
    npe_span span;          /* TUPLE, LIST literal: where it is written */
    pending *pend;
} ref;

/* A parsed code record. */
typedef struct cfile {
    char *module;           /* "__torch__.models" */
    int source;             /* index in g->sources, -1 when the record is missing */
    npe_ts_module *mod;
} cfile;

typedef struct var {
    const char *name;
    ref r;
} var;

typedef struct frame {
    var *vars;
    int n_vars, cap_vars;
    const char *scope;      /* module path of self */
    const char *cls;        /* qualified class name, for messages */
    const npe_ts_method *m;
    cfile *cf;
} frame;

/* ---- Op table: TorchScript functions -> IR ops ---------------------------------------------- */
enum {
    SP_NONE = 0,
    SP_TO,          /* torch.to: several overloads, the dtype is what matters */
    SP_UPSAMPLE,    /* vec and scalar-scale overloads */
    SP_DIV,         /* rounding_mode */
    SP_SPLIT,       /* int or list split size */
    SP_ARANGE,      /* arange(end), arange(start, end), arange(start, end, step) */
    SP_MAXMIN,      /* max(x), max(x, other), max(x, dim, keepdim): entries fn#all, fn#other */
};

typedef struct bspec {
    const char *fn;      /* name as printed, without the trailing '_' of in-place variants */
    npe_op op;
    const char *params;  /* the function's parameters: name[>slot][=default], '*' variadic */
    const char *fixed;   /* slots the function does not have: slot=value */
    int special;
} bspec;

static const bspec builtins[] = {
    {"torch._convolution", NPE_OP_CONV,
     "input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, "
     "benchmark=False, deterministic=False, cudnn_enabled=True, allow_tf32=True", NULL, 0},
    {"torch.conv2d", NPE_OP_CONV,
     "input, weight, bias=None, stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1",
     "transposed=False, output_padding=[0, 0]", 0},
    {"torch.conv_transpose2d", NPE_OP_CONV,
     "input, weight, bias=None, stride=[1, 1], padding=[0, 0], output_padding=[0, 0], groups=1, "
     "dilation=[1, 1]", "transposed=True", 0},
    {"torch._convolution_mode", NPE_OP_CONV,
     "input, weight, bias, stride, padding, dilation, groups", "transposed=False, "
     "output_padding=[0, 0]", 0},
    {"torch.linear", NPE_OP_LINEAR, "input, weight, bias=None", NULL, 0},
    {"torch.matmul", NPE_OP_MATMUL, "self, other", NULL, 0},
    {"torch.mm", NPE_OP_MATMUL, "self, mat2>other", NULL, 0},
    {"torch.bmm", NPE_OP_MATMUL, "self, mat2>other", NULL, 0},
    {"torch.group_norm", NPE_OP_GROUP_NORM,
     "input, num_groups, weight=None, bias=None, eps=1e-05, cudnn_enabled=True", NULL, 0},
    {"torch.layer_norm", NPE_OP_LAYER_NORM,
     "input, normalized_shape, weight=None, bias=None, eps=1e-05, cudnn_enable=True", NULL, 0},
    {"torch.batch_norm", NPE_OP_BATCH_NORM,
     "input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled",
     NULL, 0},
    {"torch.relu", NPE_OP_RELU, "self", NULL, 0},
    {"torch.relu6", NPE_OP_HARDTANH, "self", "min_val=0., max_val=6.", 0},
    {"torch.hardtanh", NPE_OP_HARDTANH, "self, min_val=-1., max_val=1.", NULL, 0},
    {"torch.leaky_relu", NPE_OP_LEAKY_RELU, "self, negative_slope=0.01", NULL, 0},
    {"torch.silu", NPE_OP_SILU, "self", NULL, 0},
    {"torch.sigmoid", NPE_OP_SIGMOID, "self", NULL, 0},
    {"torch.hardswish", NPE_OP_HARDSWISH, "self", NULL, 0},
    {"torch.hardsigmoid", NPE_OP_HARDSIGMOID, "self", NULL, 0},
    {"torch.tanh", NPE_OP_TANH, "self", NULL, 0},
    {"torch.gelu", NPE_OP_GELU, "self, approximate=\"none\"", NULL, 0},
    {"torch.elu", NPE_OP_ELU, "self, alpha=1., scale=1., input_scale=1.", NULL, 0},
    {"torch.clamp", NPE_OP_CLAMP, "self, min=None, max=None", NULL, 0},
    {"torch.clip", NPE_OP_CLAMP, "self, min=None, max=None", NULL, 0},
    {"torch.clamp_min", NPE_OP_CLAMP, "self, min", "max=None", 0},
    {"torch.clamp_max", NPE_OP_CLAMP, "self, max", "min=None", 0},
    {"torch.neg", NPE_OP_NEG, "self", NULL, 0},
    {"torch.exp", NPE_OP_EXP, "self", NULL, 0},
    {"torch.sqrt", NPE_OP_SQRT, "self", NULL, 0},
    {"torch.max_pool2d", NPE_OP_MAX_POOL2D,
     "self, kernel_size, stride=[], padding=[0, 0], dilation=[1, 1], ceil_mode=False", NULL, 0},
    {"torch.avg_pool2d", NPE_OP_AVG_POOL2D,
     "self, kernel_size, stride=[], padding=[0, 0], ceil_mode=False, count_include_pad=True, "
     "divisor_override=None", NULL, 0},
    {"torch.adaptive_avg_pool2d", NPE_OP_ADAPTIVE_AVG_POOL2D, "self, output_size", NULL, 0},
    {"torch.adaptive_max_pool2d", NPE_OP_ADAPTIVE_MAX_POOL2D, "self, output_size", NULL, 0},
    {"torch.upsample_nearest2d", NPE_OP_UPSAMPLE_NEAREST2D, "input, output_size, scale_factors",
     NULL, SP_UPSAMPLE},
    {"torch.upsample_bilinear2d", NPE_OP_UPSAMPLE_BILINEAR2D,
     "input, output_size, align_corners, scale_factors", NULL, SP_UPSAMPLE},
    {"torch.pixel_shuffle", NPE_OP_PIXEL_SHUFFLE, "self, upscale_factor", NULL, 0},
    {"torch.pad", NPE_OP_PAD, "self, pad, mode=\"constant\", value=None", NULL, 0},
    {"torch.constant_pad_nd", NPE_OP_PAD, "self, pad, value=0", "mode=\"constant\"", 0},
    {"torch.reflection_pad1d", NPE_OP_PAD, "self, padding>pad", "mode=\"reflect\", value=None", 0},
    {"torch.reflection_pad2d", NPE_OP_PAD, "self, padding>pad", "mode=\"reflect\", value=None", 0},
    {"torch.replication_pad1d", NPE_OP_PAD, "self, padding>pad", "mode=\"replicate\", value=None",
     0},
    {"torch.replication_pad2d", NPE_OP_PAD, "self, padding>pad", "mode=\"replicate\", value=None",
     0},
    {"torch.add", NPE_OP_ADD, "self, other, alpha=1", NULL, 0},
    {"torch.sub", NPE_OP_SUB, "self, other, alpha=1", NULL, 0},
    {"torch.rsub", NPE_OP_RSUB, "self, other, alpha=1", NULL, 0},
    {"torch.mul", NPE_OP_MUL, "self, other", NULL, 0},
    {"torch.div", NPE_OP_DIV, "self, other, rounding_mode=None", NULL, SP_DIV},
    {"torch.floor_divide", NPE_OP_FLOOR_DIV, "self, other", NULL, 0},
    {"torch.pow", NPE_OP_POW, "self, exponent", NULL, 0},
    {"torch.maximum", NPE_OP_MAXIMUM, "self, other", NULL, 0},
    {"torch.minimum", NPE_OP_MINIMUM, "self, other", NULL, 0},
    {"torch.max", NPE_OP_MAX_DIM, "self, dim, keepdim=False", NULL, SP_MAXMIN},
    {"torch.min", NPE_OP_MIN_DIM, "self, dim, keepdim=False", NULL, SP_MAXMIN},
    {"torch.max#other", NPE_OP_MAXIMUM, "self, other", NULL, 0},
    {"torch.min#other", NPE_OP_MINIMUM, "self, other", NULL, 0},
    {"torch.max#all", NPE_OP_AMAX, "self", "dim=[], keepdim=False", 0},
    {"torch.min#all", NPE_OP_AMIN, "self", "dim=[], keepdim=False", 0},
    {"torch.amax", NPE_OP_AMAX, "self, dim=[], keepdim=False", NULL, 0},
    {"torch.amin", NPE_OP_AMIN, "self, dim=[], keepdim=False", NULL, 0},
    {"torch.cat", NPE_OP_CAT, "*tensors, dim=0", NULL, 0},
    {"torch.concat", NPE_OP_CAT, "*tensors, dim=0", NULL, 0},
    {"torch.concatenate", NPE_OP_CAT, "*tensors, dim=0", NULL, 0},
    {"torch.stack", NPE_OP_STACK, "*tensors, dim=0", NULL, 0},
    {"torch.chunk", NPE_OP_CHUNK, "self, chunks, dim=0", NULL, 0},
    {"torch.split", NPE_OP_SPLIT, "self, split_size, dim=0", NULL, SP_SPLIT},
    {"torch.split_with_sizes", NPE_OP_SPLIT_WITH_SIZES, "self, split_sizes, dim=0", NULL, 0},
    {"torch.unbind", NPE_OP_UNBIND, "self, dim=0", NULL, 0},
    {"torch.slice", NPE_OP_SLICE, "self, dim=0, start=None, end=None, step=1", NULL, 0},
    {"torch.select", NPE_OP_SELECT, "self, dim, index", NULL, 0},
    {"torch.slice_scatter", NPE_OP_SLICE_SCATTER,
     "self, src, dim=0, start=None, end=None, step=1", NULL, 0},
    {"torch.select_scatter", NPE_OP_SELECT_SCATTER, "self, src, dim, index", NULL, 0},
    {"torch.mean", NPE_OP_MEAN, "self, dim=None, keepdim=False, dtype=None", NULL, 0},
    {"torch.sum", NPE_OP_SUM, "self, dim=None, keepdim=False, dtype=None", NULL, 0},
    {"torch.softmax", NPE_OP_SOFTMAX, "self, dim, dtype=None", NULL, 0},
    {"torch.log_softmax", NPE_OP_LOG_SOFTMAX, "self, dim, dtype=None", NULL, 0},
    {"torch.flatten", NPE_OP_FLATTEN, "self, start_dim=0, end_dim=-1", NULL, 0},
    {"torch.view", NPE_OP_RESHAPE, "self, size>shape", NULL, 0},
    {"torch.reshape", NPE_OP_RESHAPE, "self, shape", NULL, 0},
    {"torch.permute", NPE_OP_PERMUTE, "self, dims", NULL, 0},
    {"torch.transpose", NPE_OP_TRANSPOSE, "self, dim0, dim1", NULL, 0},
    {"torch.t", NPE_OP_TRANSPOSE, "self", "dim0=0, dim1=-1", 0},
    {"torch.squeeze", NPE_OP_SQUEEZE, "self, dim=None", NULL, 0},
    {"torch.unsqueeze", NPE_OP_UNSQUEEZE, "self, dim", NULL, 0},
    {"torch.expand", NPE_OP_EXPAND, "self, size, implicit=False", NULL, 0},
    {"torch.expand_as", NPE_OP_EXPAND_AS, "self, other", NULL, 0},
    {"torch.repeat", NPE_OP_REPEAT, "self, repeats", NULL, 0},
    {"torch.view_as", NPE_OP_RESHAPE_AS, "self, other", NULL, 0},
    {"torch.reshape_as", NPE_OP_RESHAPE_AS, "self, other", NULL, 0},
    {"torch.contiguous", NPE_OP_CONTIGUOUS, "self, memory_format=0", NULL, 0},
    {"torch.dropout", NPE_OP_DROPOUT, "input, p, train", NULL, 0},
    {"torch.feature_dropout", NPE_OP_DROPOUT, "input, p, train", NULL, 0},
    {"torch.alpha_dropout", NPE_OP_DROPOUT, "input, p, train", NULL, 0},
    {"torch.feature_alpha_dropout", NPE_OP_DROPOUT, "input, p, train", NULL, 0},
    {"torch.detach", NPE_OP_IDENTITY, "self", NULL, 0},
    {"torch.clone", NPE_OP_IDENTITY, "self, memory_format=None", NULL, 0},
    {"torch.to", NPE_OP_TO, "self, dtype", NULL, SP_TO},
    {"torch.ones", NPE_OP_ONES,
     "size, dtype=None, layout=None, device=None, pin_memory=None", NULL, 0},
    {"torch.zeros", NPE_OP_ZEROS,
     "size, dtype=None, layout=None, device=None, pin_memory=None", NULL, 0},
    {"torch.arange", NPE_OP_ARANGE, "start, end, step, dtype", NULL, SP_ARANGE},
    {"torch.meshgrid", NPE_OP_MESHGRID, "*tensors, indexing=\"ij\"", NULL, 0},
    {"torch.size", NPE_OP_SIZE, "self, dim", NULL, 0},
    {"ops.prim.NumToTensor", NPE_OP_NUM_TO_TENSOR, "a", NULL, 0},
    {"int", NPE_OP_INT, "a", NULL, 0},
    {"float", NPE_OP_FLOAT, "a", NULL, 0},
};
#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))
#define MAX_SPEC_PARAMS 16

typedef struct pspec {
    const char *name;
    int slot;              /* IR slot, -1: not an IR input (accepted and dropped) */
    int variadic;
    npe_ts_expr *def;      /* NULL: required */
} pspec;

typedef struct parsed_spec {
    pspec p[MAX_SPEC_PARAMS];
    int n;
    pspec fixed[4];
    int n_fixed;
} parsed_spec;

/* ---- Importer state -------------------------------------------------------------------------- */
typedef struct imp {
    npe_torch_file *f;
    npe_graph *g;
    npe_error *err;
    npe_ts_arena arena;     /* refs, paths, pendings, parsed specs */
    cfile **files;          /* pointers stay valid while the array grows */
    int n_files, cap_files;
    /* data.pkl tensors by pickle node */
    const npe_pv **tkeys;
    int *tvals;
    size_t tcap;
    int *tensor_value;      /* per tensor index: value id or -1 */
    /* constants.pkl */
    int consts_loaded;
    npe_pkl *consts_doc;
    const npe_pv *consts;   /* the tuple */
    int *const_value;
    parsed_spec *specs[N_BUILTINS];
    int depth;
    long statements;
    /* storage of tensors, for in-place ops (see "Storage") */
    struct vinfo *vi;       /* per value id, n_vi of them (values past it: plain tensors) */
    int n_vi;
    int stamp;              /* number of in-place writes so far */
    int detach_gen;         /* views turned into roots so far (cached roots older are stale) */
    npe_ts_loc ret_loc;     /* return statement of the imported method (outputs are read there) */
    int have_ret;
} imp;

NPE_PRINTF(5, 6)
static int ferr(imp *I, const frame *F, const npe_ts_loc *loc, int code, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (F && F->cf && F->cf->source >= 0 && loc) {
        const char *file = I->g->sources[F->cf->source].name;
        if (F->scope && F->cls)
            return npe_error_set(I->err, code, "%s:%u: %s (in module '%s', class %s)", file,
                                 loc->line, msg, F->scope[0] ? F->scope : "<root>", F->cls);
        return npe_error_set(I->err, code, "%s:%u: %s", file, loc->line, msg);
    }
    return npe_error_set(I->err, code, "%s: %s", I->f->path, msg);
}

static int oom(imp *I)
{
    return npe_error_set(I->err, NPE_ENOMEM, "out of memory");
}

static void *ialloc(imp *I, size_t n)
{
    return npe_ts_alloc(&I->arena, n);
}

static const char *join_path(imp *I, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = ialloc(I, na + nb + 2);
    if (!s)
        return NULL;
    if (na) {
        memcpy(s, a, na);
        s[na] = '.';
        memcpy(s + na + 1, b, nb + 1);
    } else {
        memcpy(s, b, nb + 1);
    }
    return s;
}

static npe_span span_of(const frame *F, const npe_ts_loc *loc)
{
    npe_span s = {-1, 0, 0, 0, 0};
    if (F && F->cf && loc) {
        s.source = F->cf->source;
        s.line = loc->line;
        s.col = loc->col;
        s.offset = loc->off;
        s.len = loc->len;
    }
    return s;
}

static ref value_ref(int v)
{
    ref r = {0};
    r.kind = R_VALUE;
    r.v = v;
    r.span.source = -1;
    return r;
}

static const char *rkind_word(const imp *I, const ref *r)
{
    switch (r->kind) {
    case R_VALUE: return npe_vtype_name(I->g->values[r->v].type);
    case R_MODULE: return "module";
    case R_TUPLE: return "tuple";
    case R_LIST: return "list";
    case R_PENDING: return "list of tensors";
    }
    return "?";
}

/* ---- Tensors of data.pkl --------------------------------------------------------------------- */
static size_t ptr_hash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static int index_tensors(imp *I)
{
    size_t n = I->f->n_tensors, cap = 16;
    while (cap < n * 2 + 2)
        cap *= 2;
    I->tkeys = calloc(cap, sizeof *I->tkeys);
    I->tvals = malloc(cap * sizeof *I->tvals);
    I->tensor_value = malloc((n ? n : 1) * sizeof *I->tensor_value);
    if (!I->tkeys || !I->tvals || !I->tensor_value)
        return oom(I);
    I->tcap = cap;
    for (size_t i = 0; i < n; i++) {
        I->tensor_value[i] = -1;
        const npe_pv *k = I->f->tensors[i].node;
        if (!k)
            continue;
        size_t h = ptr_hash(k, cap - 1);
        while (I->tkeys[h] && I->tkeys[h] != k)
            h = (h + 1) & (cap - 1);
        if (!I->tkeys[h]) { /* the first name of a shared tensor wins */
            I->tkeys[h] = k;
            I->tvals[h] = (int)i;
        }
    }
    return 0;
}

static int find_tensor(const imp *I, const npe_pv *node)
{
    if (!I->tcap)
        return -1;
    size_t h = ptr_hash(node, I->tcap - 1);
    while (I->tkeys[h]) {
        if (I->tkeys[h] == node)
            return I->tvals[h];
        h = (h + 1) & (I->tcap - 1);
    }
    return -1;
}

static int is_tensor_pv(const npe_pv *v)
{
    if (!v || v->kind != NPE_PV_CALL || !v->u.call.fn || v->u.call.fn->kind != NPE_PV_GLOBAL)
        return 0;
    return strcmp(v->u.call.fn->u.global.module, "torch._utils") == 0 &&
           strncmp(v->u.call.fn->u.global.name, "_rebuild_", 9) == 0;
}

/* Copy tensor ti of data.pkl into a graph value named name. */
static int tensor_value(imp *I, const frame *F, const npe_ts_loc *loc, int ti, const char *name,
                        unsigned flags, int *vid)
{
    if (I->tensor_value[ti] >= 0) {
        *vid = I->tensor_value[ti];
        return 0;
    }
    const npe_ttensor *t = &I->f->tensors[ti];
    size_t isz = npe_dtype_size(t->dtype);
    int64_t n = npe_torch_tensor_numel(t);
    if (!isz || t->dtype == NPE_DTYPE_C64 || t->dtype == NPE_DTYPE_C128 ||
        t->dtype >= NPE_DTYPE_QINT8)
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "tensor '%s' has dtype %s (float and integer "
                    "tensors are supported)", name, npe_dtype_name(t->dtype));
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8 / 2)
        return ferr(I, F, loc, NPE_ELIMIT, "tensor '%s' is too large", name);
    if (t->dtype == NPE_DTYPE_F32 && t->ndim > 0) {
        /* straight into the graph's copy, no second buffer (a 0-d constant also keeps its value
         * for shape arithmetic, which npe_graph_add_tensor_data sets from the source) */
        const int id = npe_graph_add_tensor_data(I->g, name, flags, NPE_DTYPE_F32, t->ndim,
                                                 t->shape, NULL, NPE_DTYPE_F32);
        if (id < 0)
            return npe_error_set(I->err, id, "tensor '%s': out of memory", name);
        const int r = npe_torch_tensor_copy(I->f, (size_t)ti, I->g->values[id].data,
                                            (size_t)n * isz, I->err);
        if (!r)
            I->tensor_value[ti] = *vid = id;
        return r;
    }
    void *buf = malloc((size_t)n * isz + 1);
    if (!buf)
        return oom(I);
    int r = npe_torch_tensor_copy(I->f, (size_t)ti, buf, (size_t)n * isz, I->err);
    if (!r) {
        int id = npe_graph_add_tensor_data(I->g, name, flags,
                                           t->dtype == NPE_DTYPE_F32 ? NPE_DTYPE_F32 : t->dtype,
                                           t->ndim, t->shape, buf, t->dtype);
        if (id < 0)
            r = npe_error_set(I->err, id, "tensor '%s': cannot convert %s data", name,
                              npe_dtype_name(t->dtype));
        else
            I->tensor_value[ti] = *vid = id;
    }
    free(buf);
    return r;
}

/* ---- Code records ---------------------------------------------------------------------------- */
static int valid_module_name(const char *m)
{
    if (strcmp(m, "__torch__") != 0 && strncmp(m, "__torch__.", 10) != 0)
        return 0;
    for (const char *p = m; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return 0;
        if (c == '.' && (p[1] == '.' || p[1] == '\0'))
            return 0;
    }
    return strlen(m) < 1024;
}

/* The parsed record of a Python module path ("__torch__.models" -> code/__torch__/models.py). */
static int get_cfile(imp *I, const frame *F, const npe_ts_loc *loc, const char *module,
                     cfile **out)
{
    for (int i = 0; i < I->n_files; i++) {
        if (strcmp(I->files[i]->module, module) == 0) {
            *out = I->files[i];
            return 0;
        }
    }
    if (!valid_module_name(module))
        return ferr(I, F, loc, NPE_EFORMAT, "class module '%.200s' is not a TorchScript code path",
                    module);
    if (I->n_files == I->cap_files) {
        int ncap = I->cap_files ? I->cap_files * 2 : 32;
        cfile **nf = realloc(I->files, (size_t)ncap * sizeof *nf);
        if (!nf)
            return oom(I);
        I->files = nf;
        I->cap_files = ncap;
    }
    size_t ml = strlen(module), pl = strlen(I->f->prefix);
    char *record = malloc(pl + 5 + ml + 4);
    char *modcopy = malloc(ml + 1);
    cfile *cf = malloc(sizeof *cf);
    if (!record || !modcopy || !cf) {
        free(record);
        free(modcopy);
        free(cf);
        return oom(I);
    }
    memcpy(modcopy, module, ml + 1);
    memcpy(record, I->f->prefix, pl);
    memcpy(record + pl, "code/", 5);
    for (size_t i = 0; i < ml; i++)
        record[pl + 5 + i] = module[i] == '.' ? '/' : module[i];
    memcpy(record + pl + 5 + ml, ".py", 4);
    cf->module = modcopy;
    cf->source = -1;
    cf->mod = NULL;
    I->files[I->n_files++] = cf;
    *out = cf;
    const npe_zip_entry *e = npe_zip_find(I->f->zip, record);
    if (!e) {
        int r = ferr(I, F, loc, NPE_EFORMAT, "the archive has no code record '%s' for classes of "
                     "module %s", record + pl, module);
        free(record);
        return r;
    }
    void *text = NULL;
    size_t len = 0;
    int r = npe_zip_read(I->f->zip, e, MAX_CODE_BYTES, &text, &len, I->err);
    if (r) {
        free(record);
        return r;
    }
    int src = npe_graph_add_source(I->g, record, record + pl, text, len);
    free(text);
    free(record);
    if (src < 0)
        return oom(I);
    cf->source = src;
    const npe_source *s = &I->g->sources[src];
    return npe_ts_parse(s->text, s->len, s->name, &cf->mod, I->err);
}

/* Class of a module object: its file and parsed class. */
static int class_of(imp *I, const frame *F, const npe_ts_loc *loc, const npe_pv *obj,
                    cfile **cf, const npe_ts_class **cls, const char **qual)
{
    const npe_pv *fn = obj->u.call.fn;
    if (!fn || fn->kind != NPE_PV_GLOBAL)
        return ferr(I, F, loc, NPE_EFORMAT, "module object without a class in data.pkl");
    int r = get_cfile(I, F, loc, fn->u.global.module, cf);
    if (r)
        return r;
    if (!(*cf)->mod)
        return ferr(I, F, loc, NPE_EFORMAT, "no code for class %s.%s", fn->u.global.module,
                    fn->u.global.name);
    *cls = npe_ts_find_class((*cf)->mod, fn->u.global.name);
    if (!*cls)
        return ferr(I, F, loc, NPE_EFORMAT, "code record %s has no class %s",
                    I->g->sources[(*cf)->source].name, fn->u.global.name);
    if (qual) {
        const char *q = join_path(I, fn->u.global.module, fn->u.global.name);
        if (!q)
            return oom(I);
        *qual = q;
    }
    return 0;
}

/* ---- constants.pkl --------------------------------------------------------------------------- */
static int load_constants(imp *I, const frame *F, const npe_ts_loc *loc)
{
    if (I->consts_loaded)
        return 0;
    I->consts_loaded = 1;
    size_t pl = strlen(I->f->prefix);
    char *name = malloc(pl + 16);
    if (!name)
        return oom(I);
    memcpy(name, I->f->prefix, pl);
    memcpy(name + pl, "constants.pkl", 14);
    const npe_zip_entry *e = npe_zip_find(I->f->zip, name);
    if (!e) {
        int r = ferr(I, F, loc, NPE_EFORMAT, "the code uses CONSTANTS but the archive has no "
                     "record '%s'", name);
        free(name);
        return r;
    }
    void *data = NULL;
    size_t size = 0;
    int r = npe_zip_read(I->f->zip, e, MAX_CONST_BYTES, &data, &size, I->err);
    if (!r)
        r = npe_pkl_load(data, size, name, npe_torch_resolve_global, NULL, &I->consts_doc, NULL,
                         I->err);
    free(data);
    free(name);
    if (r)
        return r;
    const npe_pv *root = npe_pkl_root(I->consts_doc);
    if (!root || root->kind != NPE_PV_TUPLE)
        return ferr(I, F, loc, NPE_EFORMAT, "constants.pkl does not hold a tuple");
    I->consts = root;
    I->const_value = malloc((root->u.seq.n ? root->u.seq.n : 1) * sizeof(int));
    if (!I->const_value)
        return oom(I);
    for (size_t i = 0; i < root->u.seq.n; i++)
        I->const_value[i] = -1;
    return 0;
}

static const npe_pv *call_arg(const npe_pv *c, size_t i)
{
    const npe_pv *a = c->u.call.args;
    return a && a->kind == NPE_PV_TUPLE && i < a->u.seq.n ? a->u.seq.items[i] : NULL;
}

/* Unwrap torch.Size(...) and TorchScript list builders around a tuple. */
static const npe_pv *unwrap_seq(const npe_pv *v)
{
    for (int k = 0; k < 4 && v && v->kind == NPE_PV_CALL; k++)
        v = call_arg(v, 0);
    return v && (v->kind == NPE_PV_TUPLE || v->kind == NPE_PV_LIST) ? v : NULL;
}

static int const_value(imp *I, const frame *F, const npe_ts_loc *loc, long idx, int *vid)
{
    int r = load_constants(I, F, loc);
    if (r)
        return r;
    if (idx < 0 || (size_t)idx >= I->consts->u.seq.n)
        return ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld does not exist (constants.pkl holds %zu)",
                    idx, I->consts->u.seq.n);
    if (I->const_value[idx] >= 0) {
        *vid = I->const_value[idx];
        return 0;
    }
    const npe_pv *t = I->consts->u.seq.items[idx];
    if (!is_tensor_pv(t))
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "CONSTANTS.c%ld is not a tensor", idx);
    const npe_pv *pid = call_arg(t, 0), *off = call_arg(t, 1);
    const npe_pv *size = unwrap_seq(call_arg(t, 2)), *stride = unwrap_seq(call_arg(t, 3));
    const npe_pv *tup = pid && pid->kind == NPE_PV_PERSID ? pid->u.pid : NULL;
    if (!tup || tup->kind != NPE_PV_TUPLE || tup->u.seq.n < 5 || !off || off->kind != NPE_PV_INT ||
        !size || !stride || size->u.seq.n != stride->u.seq.n || size->u.seq.n > NPE_MAX_DIMS)
        return ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld: malformed tensor in constants.pkl", idx);
    const npe_pv *ty = tup->u.seq.items[1], *key = tup->u.seq.items[2], *num = tup->u.seq.items[4];
    npe_dtype dt;
    if (!ty || ty->kind != NPE_PV_GLOBAL || !key || key->kind != NPE_PV_STR || !num ||
        num->kind != NPE_PV_INT || num->u.i < 0 ||
        !npe_torch_storage_dtype(ty->u.global.module, ty->u.global.name, &dt))
        return ferr(I, F, loc, NPE_EUNSUPPORTED,
                    "CONSTANTS.c%ld: storage of an unsupported type in constants.pkl", idx);
    for (const char *p = key->u.str.s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '_'))
            return ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld: bad storage key", idx);
    size_t isz = npe_dtype_size(dt);
    int ndim = (int)size->u.seq.n;
    int64_t shape[NPE_MAX_DIMS], extent = 1, numel = 1;
    int empty = 0;
    for (int d = 0; d < ndim; d++) {
        const npe_pv *s = size->u.seq.items[d], *st = stride->u.seq.items[d];
        if (s->kind != NPE_PV_INT || st->kind != NPE_PV_INT || s->u.i < 0 || st->u.i < 0 ||
            s->u.i > (1 << 26) || st->u.i > (INT64_C(1) << 40))
            return ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld: bad size or stride", idx);
        shape[d] = s->u.i;
        if (!s->u.i)
            empty = 1;
        extent += (s->u.i - 1) * st->u.i;
        numel *= s->u.i;
        if (numel > (1 << 26))
            return ferr(I, F, loc, NPE_ELIMIT, "CONSTANTS.c%ld is too large", idx);
    }
    if (empty)
        extent = 0;
    if (off->u.i < 0 || off->u.i > num->u.i || extent > num->u.i - off->u.i ||
        (uint64_t)num->u.i > MAX_CONST_BYTES / (isz ? isz : 1))
        return ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld lies outside its storage", idx);
    size_t pl = strlen(I->f->prefix), kl = strlen(key->u.str.s);
    char *rec = malloc(pl + 11 + kl + 1);
    if (!rec)
        return oom(I);
    memcpy(rec, I->f->prefix, pl);
    memcpy(rec + pl, "constants/", 10);
    memcpy(rec + pl + 10, key->u.str.s, kl + 1);
    const npe_zip_entry *e = npe_zip_find(I->f->zip, rec);
    if (!e || e->size != (uint64_t)num->u.i * isz) {
        r = ferr(I, F, loc, NPE_EFORMAT, "CONSTANTS.c%ld: record '%s' %s", idx, rec + pl,
                 e ? "has the wrong size" : "is missing");
        free(rec);
        return r;
    }
    void *data = NULL;
    size_t dsize = 0;
    r = npe_zip_read(I->f->zip, e, MAX_CONST_BYTES, &data, &dsize, I->err);
    free(rec);
    if (r)
        return r;
    /* gather the strided view into a contiguous array of the storage dtype */
    unsigned char *dense = malloc((size_t)numel * isz + 1);
    if (!dense) {
        free(data);
        return oom(I);
    }
    for (int64_t i = 0; i < numel; i++) {
        int64_t rem = i, src = off->u.i;
        for (int d = ndim - 1; d >= 0; d--) {
            int64_t c = shape[d] ? rem % shape[d] : 0;
            rem = shape[d] ? rem / shape[d] : 0;
            src += c * stride->u.seq.items[d]->u.i;
        }
        memcpy(dense + i * (int64_t)isz, (unsigned char *)data + src * (int64_t)isz, isz);
    }
    free(data);
    char nm[48];
    snprintf(nm, sizeof nm, "CONSTANTS.c%ld", idx);
    int id = npe_graph_add_tensor_data(I->g, nm, NPE_VF_CONST, dt, ndim, shape, dense, dt);
    free(dense);
    if (id < 0)
        return ferr(I, F, loc, id == NPE_ENOMEM ? NPE_ENOMEM : NPE_EUNSUPPORTED,
                    "CONSTANTS.c%ld: cannot convert its %s data", idx, npe_dtype_name(dt));
    I->g->values[id].const_index = (int)idx;
    I->const_value[idx] = *vid = id;
    return 0;
}

/* ---- Frames ---------------------------------------------------------------------------------- */
static int frame_set(imp *I, frame *F, const char *name, const ref *r)
{
    for (int i = F->n_vars - 1; i >= 0; i--) {
        if (strcmp(F->vars[i].name, name) == 0) {
            F->vars[i].r = *r;
            return 0;
        }
    }
    if (F->n_vars == F->cap_vars) {
        int ncap = F->cap_vars ? F->cap_vars * 2 : 16;
        var *nv = realloc(F->vars, (size_t)ncap * sizeof *nv);
        if (!nv)
            return oom(I);
        F->vars = nv;
        F->cap_vars = ncap;
    }
    F->vars[F->n_vars].name = name;
    F->vars[F->n_vars].r = *r;
    F->n_vars++;
    return 0;
}

static const ref *frame_get(const frame *F, const char *name)
{
    for (int i = F->n_vars - 1; i >= 0; i--)
        if (strcmp(F->vars[i].name, name) == 0)
            return &F->vars[i].r;
    return NULL;
}

/* ---- Values from references ------------------------------------------------------------------ */
static int make_pending(imp *I, pending *p, int n, ref *out);
static int note_view(imp *I, int node, int sv, const char *fn, int made);
static int read_tensor(imp *I, const frame *F, const npe_ts_loc *loc, int v, int *out);

/* The value a reference stands for, as a node input: tensors with their current content (see
 * "Storage"), unless read is 0 (inputs whose shape only matters: torch.size). */
static int materialize_r(imp *I, const frame *F, const npe_ts_loc *loc, const ref *r, int *vid,
                         int depth, int read)
{
    if (depth > 32)
        return ferr(I, F, loc, NPE_ELIMIT, "lists nested too deeply");
    switch (r->kind) {
    case R_VALUE:
        if (read)
            return read_tensor(I, F, loc, r->v, vid);
        *vid = r->v;
        return 0;
    case R_MODULE:
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "module '%s' used as a value",
                    r->path[0] ? r->path : "<root>");
    case R_PENDING: {
        ref t;
        int rc = make_pending(I, r->pend, -1, &t);
        if (rc)
            return rc;
        return materialize_r(I, F, loc, &t, vid, depth + 1, read);
    }
    case R_TUPLE:
    case R_LIST: {
        int *ids = malloc((size_t)(r->n ? r->n : 1) * sizeof *ids);
        if (!ids)
            return oom(I);
        for (int i = 0; i < r->n; i++) {
            int rc = materialize_r(I, F, loc, &r->items[i], &ids[i], depth + 1, read);
            if (rc) {
                free(ids);
                return rc;
            }
        }
        int id = npe_graph_add_list(I->g, ids, r->n, r->kind == R_TUPLE,
                                    r->span.source >= 0 ? &r->span : NULL);
        free(ids);
        if (id < 0)
            return id == NPE_ELIMIT ? ferr(I, F, loc, NPE_ELIMIT, "list too long") : oom(I);
        *vid = id;
        return 0;
    }
    }
    return ferr(I, F, loc, NPE_EFORMAT, "bad reference");
}

static int materialize(imp *I, const frame *F, const npe_ts_loc *loc, const ref *r, int *vid,
                       int depth)
{
    return materialize_r(I, F, loc, r, vid, depth, 1);
}

/* Items of a sequence reference (tuple, list, pending pieces, or a list value). */
static int seq_items(imp *I, const frame *F, const npe_ts_loc *loc, const ref *r, int want,
                     ref **items, int *n)
{
    if (r->kind == R_PENDING) {
        ref t;
        int rc = make_pending(I, r->pend, want, &t);
        if (rc)
            return rc;
        *items = t.items;
        *n = t.n;
        return 0;
    }
    if (r->kind == R_TUPLE || r->kind == R_LIST) {
        *items = r->items;
        *n = r->n;
        return 0;
    }
    if (r->kind == R_VALUE && I->g->values[r->v].type == NPE_VT_LIST) {
        const npe_value *lv = &I->g->values[r->v];
        ref *it = ialloc(I, (size_t)(lv->n_items ? lv->n_items : 1) * sizeof *it);
        if (!it)
            return oom(I);
        for (int i = 0; i < I->g->values[r->v].n_items; i++)
            it[i] = value_ref(I->g->values[r->v].items[i]);
        *items = it;
        *n = I->g->values[r->v].n_items;
        return 0;
    }
    return ferr(I, F, loc, NPE_EUNSUPPORTED, "expected a tuple or list, found a %s",
                rkind_word(I, r));
}

/* ---- Nodes ----------------------------------------------------------------------------------- */
static int node_ref(imp *I, int node, ref *out)
{
    const npe_node *nd = &I->g->nodes[node];
    if (nd->n_out == 1) {
        *out = value_ref(nd->out[0]);
        return 0;
    }
    ref *it = ialloc(I, (size_t)nd->n_out * sizeof *it);
    if (!it)
        return oom(I);
    for (int i = 0; i < nd->n_out; i++)
        it[i] = value_ref(I->g->nodes[node].out[i]);
    memset(out, 0, sizeof *out);
    out->kind = R_TUPLE;
    out->items = it;
    out->n = nd->n_out;
    out->span.source = -1;
    return 0;
}

static int add_node(imp *I, const frame *F, const npe_ts_loc *loc, npe_op op, const int *in,
                    int n_in, int n_out, ref *out)
{
    npe_span site = span_of(F, loc);
    int node = npe_graph_add_node(I->g, op, in, n_in, n_out, F ? F->scope : "", &site, I->err);
    if (node < 0) {
        npe_error_prefix(I->err, "%s:%u", F && F->cf && F->cf->source >= 0
                                              ? I->g->sources[F->cf->source].name : I->f->path,
                         loc ? loc->line : 0);
        return node;
    }
    return node_ref(I, node, out);
}

/* Make the node of a multi-output op with n pieces (n < 0: the default the op implies). */
static int make_pending(imp *I, pending *p, int n, ref *out)
{
    frame tmp = {0};
    tmp.cf = p->cf;
    tmp.scope = p->scope;
    if (p->node >= 0) {
        if (n >= 0 && I->g->nodes[p->node].n_out != n)
            return ferr(I, &tmp, &p->loc, NPE_EUNSUPPORTED,
                        "%s: the pieces are used as %d and as %d values", p->fn,
                        I->g->nodes[p->node].n_out, n);
        return node_ref(I, p->node, out);
    }
    if (n < 0)
        n = p->default_n;
    if (n < 0)
        return ferr(I, &tmp, &p->loc, NPE_EUNSUPPORTED,
                    "%s: cannot tell how many pieces it makes here (unpack them into names)", p->fn);
    if (n < 1 || n > NPE_IR_MAX_OUTPUTS)
        return ferr(I, &tmp, &p->loc, NPE_EUNSUPPORTED, "%s: %d pieces", p->fn, n);
    int node = npe_graph_add_node(I->g, p->op, p->in, p->n_in, n, p->scope, &p->site, I->err);
    if (node < 0)
        return node;
    p->node = node;
    int rc0 = note_view(I, node, p->self_ident, p->fn, p->made);
    if (rc0)
        return rc0;
    ref r;
    int rc = node_ref(I, node, &r);
    if (rc)
        return rc;
    if (r.kind == R_VALUE) { /* one piece: still a sequence */
        ref *it = ialloc(I, sizeof *it);
        if (!it)
            return oom(I);
        it[0] = r;
        memset(&r, 0, sizeof r);
        r.kind = R_TUPLE;
        r.items = it;
        r.n = 1;
        r.span.source = -1;
    }
    *out = r;
    return 0;
}

/* ---- Storage: in-place ops on tensors that share memory ---------------------------------------
 * PyTorch's in-place ops (relu_, add_, copy_ of x[...] = y) write into a storage that every view
 * of it sees: after y = conv(x); z = y.view(b, -1); y.relu_(), z holds relu'd values too. Traced
 * code names each tensor once (later uses of y print as the in-place op's result, but z keeps its
 * name), so the importer tracks storage:
 *  - a value made by a view op (view, permute, slice, select, chunk pieces, ...) records its
 *    parent (the tensor it views) and how; other tensors own their storage (a root);
 *  - an in-place op computes the new content with the out-of-place op, then writes it back up
 *    the chain of views to the root with scatter ops (slice_scatter, select_scatter, reshape_as,
 *    an inverse permute, cat of the pieces), and stamps the root as changed;
 *  - reading a tensor (making it an input of a node, or an output) whose root changed after it
 *    was made replays its views on the root's new content.
 * A name in the code stands for a tensor (its value id when made); read_tensor gives the value
 * that holds its current content. reshape, flatten and contiguous return a view or a copy
 * depending on the strides at run time; when that decides a result, the import is refused with
 * both ops named rather than guessed. */
enum {
    VK_OWN = 0,   /* owns its storage */
    VK_RESHAPE,   /* same elements in row-major order, another shape */
    VK_SAME,      /* same tensor (detach, dropout in eval, to() a float type, contiguous) */
    VK_PERMUTE,
    VK_TRANSPOSE,
    VK_SLICE,
    VK_SELECT,
    VK_PIECE,     /* an output of chunk, split, split_with_sizes, unbind */
    VK_EXPAND,    /* elements repeated: not writable */
    VK_MAYBE,     /* reshape/flatten/contiguous of a tensor that may not be contiguous */
};

typedef struct vinfo {
    int parent1;        /* 1 + the tensor it views; 0: a root */
    unsigned char kind; /* VK_* */
    unsigned char noncontig; /* may not be contiguous (decides reshape's view-or-copy) */
    int made;           /* stamp when its value was computed */
    int memo, memo_stamp; /* its content recomputed at memo_stamp (0: none) */
    /* roots */
    int cur, mut_stamp; /* content after the last in-place write (mut_stamp 0: never written) */
    const char *mut_fn; /* that write, for messages */
    npe_span mut_site;
    int ambig1;         /* 1 + node of a VK_MAYBE view written in place: whether this root
                         * changed with it is unknown */
    int depth;          /* views between it and its root */
    int root1, root_gen;/* 1 + its root, cached while detach_gen is root_gen */
} vinfo;

#define MAX_VIEW_DEPTH 1024 /* views of views of ...: bounds every walk to the root */

static int vgrow(imp *I)
{
    int need = I->g->n_values;
    if (need <= I->n_vi)
        return 0;
    int ncap = I->n_vi ? I->n_vi : 256;
    while (ncap < need)
        ncap *= 2;
    vinfo *nv = realloc(I->vi, (size_t)ncap * sizeof *nv);
    if (!nv)
        return oom(I);
    memset(nv + I->n_vi, 0, (size_t)(ncap - I->n_vi) * sizeof *nv);
    I->vi = nv;
    I->n_vi = ncap;
    return 0;
}

static int root_of(imp *I, int v)
{
    if (v >= I->n_vi)
        return v;
    vinfo *V = &I->vi[v];
    if (V->root1 && V->root_gen == I->detach_gen)
        return V->root1 - 1;
    int r = v;
    for (int guard = 0; r < I->n_vi && I->vi[r].parent1 && guard <= MAX_VIEW_DEPTH; guard++)
        r = I->vi[r].parent1 - 1;
    V->root1 = r + 1;
    V->root_gen = I->detach_gen;
    return r;
}

static const char *site_str(const imp *I, const npe_span *s, char *buf, size_t cap)
{
    npe_span_str(I->g, s, buf, cap);
    if (!buf[0])
        snprintf(buf, cap, "%s", I->f->path);
    return buf;
}

static int is_int_lit(const imp *I, int vid, int64_t want)
{
    const npe_value *v = &I->g->values[vid];
    return v->type == NPE_VT_INT && (v->flags & NPE_VF_CONST) && v->i == want;
}

/* Record how the outputs of node (a view op on tensor sv) alias sv. */
static int note_view(imp *I, int node, int sv, const char *fn, int made)
{
    if (sv < 0 || I->g->values[sv].type != NPE_VT_TENSOR)
        return 0;
    int r = vgrow(I);
    if (r)
        return r;
    const npe_node *nd = &I->g->nodes[node];
    int pnc = I->vi[sv].noncontig, kind = VK_OWN, nc = pnc;
    switch (nd->op) {
    case NPE_OP_RESHAPE:
    case NPE_OP_RESHAPE_AS:
    case NPE_OP_FLATTEN:
        if (strcmp(fn, "torch.view") == 0 || strcmp(fn, "torch.view_as") == 0)
            kind = VK_RESHAPE; /* a view always (PyTorch refuses it otherwise) */
        else
            kind = pnc ? VK_MAYBE : VK_RESHAPE;
        nc = pnc;
        break;
    case NPE_OP_SQUEEZE:
    case NPE_OP_UNSQUEEZE:
        kind = VK_RESHAPE;
        break;
    case NPE_OP_CONTIGUOUS:
        kind = pnc ? VK_MAYBE : VK_SAME;
        nc = 0;
        break;
    case NPE_OP_DROPOUT:
        kind = VK_SAME;
        break;
    case NPE_OP_IDENTITY:
        kind = strcmp(fn, "torch.detach") == 0 ? VK_SAME : VK_OWN; /* clone copies */
        break;
    case NPE_OP_TO: {
        const npe_value *dt = &I->g->values[nd->in[1]];
        kind = dt->type == NPE_VT_NONE || (dt->type == NPE_VT_INT && dt->i == 6) ? VK_SAME : VK_OWN;
        break;
    }
    case NPE_OP_PERMUTE:
        kind = VK_PERMUTE;
        nc = 1;
        break;
    case NPE_OP_TRANSPOSE:
        kind = VK_TRANSPOSE;
        nc = 1;
        break;
    case NPE_OP_SLICE:
        kind = VK_SLICE;
        nc = pnc || !is_int_lit(I, nd->in[1], 0) || !is_int_lit(I, nd->in[4], 1);
        break;
    case NPE_OP_SELECT:
        kind = VK_SELECT;
        nc = pnc || !is_int_lit(I, nd->in[1], 0);
        break;
    case NPE_OP_CHUNK:
    case NPE_OP_SPLIT:
    case NPE_OP_SPLIT_WITH_SIZES:
    case NPE_OP_UNBIND:
        kind = VK_PIECE;
        nc = pnc || !is_int_lit(I, nd->in[nd->op == NPE_OP_UNBIND ? 1 : 2], 0);
        break;
    case NPE_OP_EXPAND:
    case NPE_OP_EXPAND_AS:
        kind = VK_EXPAND;
        nc = 1;
        break;
    default:
        break;
    }
    if (kind == VK_OWN)
        return 0;
    int depth = I->vi[sv].depth + 1;
    if (depth > MAX_VIEW_DEPTH) {
        char w[600];
        npe_node_desc(I->g, node, w, sizeof w);
        return npe_error_set(I->err, NPE_ELIMIT, "%s: a view of a view of ... %d levels deep "
                             "(at most %d are supported)", w, depth, MAX_VIEW_DEPTH);
    }
    for (int k = 0; k < nd->n_out; k++) {
        vinfo *o = &I->vi[nd->out[k]];
        o->parent1 = sv + 1;
        o->kind = (unsigned char)kind;
        o->noncontig = (unsigned char)nc;
        o->made = made;
        o->depth = depth;
    }
    return 0;
}

/* Add a node made by the importer itself (no call in the source makes it): scatters and
 * replayed views, scoped and sited like the code that needs them. */
static int emit(imp *I, npe_op op, const int *in, int n_in, int n_out, const char *scope,
                const npe_span *site, int *node)
{
    *node = npe_graph_add_node(I->g, op, in, n_in, n_out, scope, site, I->err);
    if (*node < 0) {
        char where[600];
        npe_error_prefix(I->err, "%s", site_str(I, site, where, sizeof where));
        return *node;
    }
    return vgrow(I);
}

/* Replay the view op that made tensor id on its parent's current content pc. */
static int replay(imp *I, int id, int pc, int stamp, int *content)
{
    const npe_node *nd = &I->g->nodes[I->g->values[id].producer];
    int k = I->g->values[id].producer_out, n_in = nd->n_in, n_out = nd->n_out;
    npe_op op = nd->op;
    const char *scope = nd->scope;
    npe_span site = nd->site;
    int *in = malloc((size_t)n_in * sizeof *in);
    if (!in)
        return oom(I);
    memcpy(in, nd->in, (size_t)n_in * sizeof *in);
    in[0] = pc;
    int node, r = emit(I, op, in, n_in, n_out, scope, &site, &node);
    free(in);
    if (r)
        return r;
    const npe_node *old = &I->g->nodes[I->g->values[id].producer], *nw = &I->g->nodes[node];
    for (int j = 0; j < n_out; j++) { /* the other pieces of a split: replayed too */
        vinfo *o = &I->vi[old->out[j]];
        o->memo = nw->out[j];
        o->memo_stamp = stamp;
    }
    *content = nw->out[k];
    return 0;
}

/* The value holding tensor v's current content (v itself unless an in-place op changed its
 * storage after v was made). */
static int read_tensor(imp *I, const frame *F, const npe_ts_loc *loc, int v, int *out)
{
    *out = v;
    if (!I->stamp || v < 0 || v >= I->n_vi || I->g->values[v].type != NPE_VT_TENSOR)
        return 0;
    int root = root_of(I, v);
    char w1[600], w2[600];
    if (I->vi[root].ambig1) {
        const vinfo *R = &I->vi[root];
        npe_node_desc(I->g, R->ambig1 - 1, w1, sizeof w1);
        return ferr(I, F, loc, NPE_EUNSUPPORTED,
                    "this reads a tensor that the in-place %s at %s may or may not have changed: "
                    "it wrote to the result of %s, which is a view or a copy depending on the "
                    "strides at run time; make the copy explicit (.clone()) or write out of place",
                    R->mut_fn ? R->mut_fn : "op", site_str(I, &R->mut_site, w2, sizeof w2), w1);
    }
    int ms = I->vi[root].mut_stamp;
    if (!ms)
        return 0;
    int *chain = NULL, n = 0, cap = 0, base = v, c = v, r = 0;
    for (;;) {
        const vinfo *C = &I->vi[c];
        if (c == root) {
            base = I->vi[root].cur;
            break;
        }
        if (C->memo_stamp >= ms) {
            base = C->memo;
            break;
        }
        if (C->made >= ms) {
            base = c;
            break;
        }
        if (C->kind == VK_MAYBE) {
            const vinfo *R = &I->vi[root];
            npe_node_desc(I->g, I->g->values[c].producer, w1, sizeof w1);
            free(chain);
            return ferr(I, F, loc, NPE_EUNSUPPORTED,
                        "this reads the result of %s, which is a view or a copy depending on the "
                        "strides at run time, after the in-place %s at %s wrote to the tensor it "
                        "came from: whether it changed is unknown; make the copy explicit "
                        "(.clone()) or write out of place",
                        w1, R->mut_fn ? R->mut_fn : "op", site_str(I, &R->mut_site, w2, sizeof w2));
        }
        if (n == cap) {
            int ncap = cap ? cap * 2 : 8;
            int *nc = realloc(chain, (size_t)ncap * sizeof *nc);
            if (!nc) {
                free(chain);
                return oom(I);
            }
            chain = nc;
            cap = ncap;
        }
        chain[n++] = c;
        c = C->parent1 - 1;
    }
    int content = base;
    for (int i = n - 1; i >= 0 && !r; i--)
        r = replay(I, chain[i], content, ms, &content);
    free(chain);
    if (!r)
        *out = content;
    return r;
}

/* The storage written by an in-place op on tensor sv through its chain of views: its parent's
 * content with sv's part replaced by nc. */
static int scatter(imp *I, const frame *F, const npe_ts_loc *loc, const char *fn, int sv,
                   int pc, int nc, int *out)
{
    const vinfo *C = &I->vi[sv];
    const npe_node *nd = &I->g->nodes[I->g->values[sv].producer];
    npe_span site = span_of(F, loc);
    const char *scope = F ? F->scope : "";
    char w1[600];
    int in[8], node, r;
    switch (C->kind) {
    case VK_SAME:
        *out = nc;
        return 0;
    case VK_RESHAPE:
        in[0] = nc;
        in[1] = pc;
        r = emit(I, NPE_OP_RESHAPE_AS, in, 2, 1, scope, &site, &node);
        break;
    case VK_TRANSPOSE:
        in[0] = nc;
        in[1] = nd->in[1];
        in[2] = nd->in[2];
        r = emit(I, NPE_OP_TRANSPOSE, in, 3, 1, scope, &site, &node);
        break;
    case VK_PERMUTE: {
        const npe_value *dims = &I->g->values[nd->in[1]];
        int nd_ = dims->type == NPE_VT_LIST ? dims->n_items : -1;
        int inv[NPE_MAX_DIMS], seen = 0, ok = nd_ >= 0 && nd_ <= NPE_MAX_DIMS;
        for (int i = 0; ok && i < nd_; i++) {
            const npe_value *d = &I->g->values[dims->items[i]];
            int64_t dv = d->type == NPE_VT_INT && (d->flags & NPE_VF_CONST) ? d->i : INT64_MIN;
            if (dv < 0 && dv >= -nd_)
                dv += nd_;
            ok = dv >= 0 && dv < nd_ && !(seen & (1 << dv));
            if (ok) {
                seen |= 1 << dv;
                inv[dv] = i;
            }
        }
        if (!ok) {
            npe_node_desc(I->g, I->g->values[sv].producer, w1, sizeof w1);
            return ferr(I, F, loc, NPE_EUNSUPPORTED, "in-place %s on the result of %s, whose dims "
                        "are not written as numbers", fn, w1);
        }
        int items[NPE_MAX_DIMS];
        for (int i = 0; i < nd_; i++)
            if ((items[i] = npe_graph_add_int(I->g, inv[i], NULL)) < 0)
                return oom(I);
        in[0] = nc;
        if ((in[1] = npe_graph_add_list(I->g, items, nd_, 0, NULL)) < 0)
            return oom(I);
        r = emit(I, NPE_OP_PERMUTE, in, 2, 1, scope, &site, &node);
        break;
    }
    case VK_SLICE:
        in[0] = pc;
        in[1] = nc;
        for (int i = 1; i < 5; i++)
            in[1 + i] = nd->in[i];
        r = emit(I, NPE_OP_SLICE_SCATTER, in, 6, 1, scope, &site, &node);
        break;
    case VK_SELECT:
        in[0] = pc;
        in[1] = nc;
        in[2] = nd->in[1];
        in[3] = nd->in[2];
        r = emit(I, NPE_OP_SELECT_SCATTER, in, 4, 1, scope, &site, &node);
        break;
    case VK_PIECE: {
        /* the pieces cover the parent in order: it is their cat (stack for unbind) */
        npe_op op = nd->op == NPE_OP_UNBIND ? NPE_OP_STACK : NPE_OP_CAT;
        int np = nd->n_out, dim = nd->in[nd->op == NPE_OP_UNBIND ? 1 : 2];
        int *pin = malloc((size_t)(np + 1) * sizeof *pin);
        int *pieces = malloc((size_t)np * sizeof *pieces);
        if (!pin || !pieces) {
            free(pin);
            free(pieces);
            return oom(I);
        }
        memcpy(pieces, nd->out, (size_t)np * sizeof *pieces);
        r = 0;
        for (int j = 0; j < np && !r; j++)
            r = pieces[j] == sv ? (pin[j] = nc, 0) : read_tensor(I, F, loc, pieces[j], &pin[j]);
        pin[np] = dim;
        if (!r)
            r = emit(I, op, pin, np + 1, 1, scope, &site, &node);
        free(pin);
        free(pieces);
        break;
    }
    case VK_EXPAND:
    default:
        npe_node_desc(I->g, I->g->values[sv].producer, w1, sizeof w1);
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "in-place %s writes to the result of %s, whose "
                    "elements share memory (PyTorch refuses this too)", fn, w1);
    }
    if (r)
        return r;
    *out = I->g->nodes[node].out[0];
    return 0;
}

/* In-place op fn on tensor sv computed its new content nc: write it back to the storage. */
static int mutate(imp *I, const frame *F, const npe_ts_loc *loc, const char *fn, int sv, int nc)
{
    int r = vgrow(I);
    if (r)
        return r;
    if (I->stamp >= INT32_MAX - 1)
        return ferr(I, F, loc, NPE_ELIMIT, "too many in-place ops");
    /* (tensor, new content) from sv up to the root */
    int ids[64], news[64], n = 0, c = sv, cur = nc;
    int *pid = ids, *pnew = news, cap = 64;
    for (;;) {
        if (n == cap) {
            if (cap > MAX_VIEW_DEPTH) {
                r = ferr(I, F, loc, NPE_ELIMIT, "in-place %s on a view of a view ... more than %d "
                         "levels deep", fn, MAX_VIEW_DEPTH);
                goto out_free;
            }
            int ncap = cap * 2;
            int *a = malloc((size_t)ncap * sizeof *a), *b = malloc((size_t)ncap * sizeof *b);
            if (!a || !b) {
                free(a);
                free(b);
                r = oom(I);
                goto out_free;
            }
            memcpy(a, pid, (size_t)n * sizeof *a);
            memcpy(b, pnew, (size_t)n * sizeof *b);
            if (pid != ids) {
                free(pid);
                free(pnew);
            }
            pid = a;
            pnew = b;
            cap = ncap;
        }
        pid[n] = c;
        pnew[n] = cur;
        n++;
        if (!I->vi[c].parent1)
            break;
        if (I->vi[c].kind == VK_MAYBE) {
            /* copy or view: c owns its storage from now on, its old root is in doubt */
            int old_root = root_of(I, c);
            I->vi[old_root].ambig1 = I->g->values[c].producer + 1;
            I->vi[old_root].mut_fn = npe_ts_strndup(&I->arena, fn, strlen(fn));
            I->vi[old_root].mut_site = span_of(F, loc);
            I->vi[c].parent1 = 0;
            I->vi[c].kind = VK_OWN;
            I->vi[c].depth = 0; /* its views keep their depth: an upper bound is enough */
            I->detach_gen++;
            if (!I->vi[old_root].mut_fn) {
                r = oom(I);
                goto out_free;
            }
            break;
        }
        int p = I->vi[c].parent1 - 1, pc = -1, np = -1;
        if ((r = read_tensor(I, F, loc, p, &pc)) || (r = scatter(I, F, loc, fn, c, pc, cur, &np)))
            goto out_free;
        c = p;
        cur = np;
    }
    int stamp = ++I->stamp;
    vinfo *R = &I->vi[c];
    R->cur = cur;
    R->mut_stamp = stamp;
    R->mut_fn = npe_ts_strndup(&I->arena, fn, strlen(fn));
    R->mut_site = span_of(F, loc);
    if (!R->mut_fn) {
        r = oom(I);
        goto out_free;
    }
    for (int i = 0; i < n - 1; i++) {
        I->vi[pid[i]].memo = pnew[i];
        I->vi[pid[i]].memo_stamp = stamp;
    }
out_free:
    if (pid != ids) {
        free(pid);
        free(pnew);
    }
    return r;
}

/* ---- Evaluation ------------------------------------------------------------------------------ */
static int eval(imp *I, frame *F, const npe_ts_expr *e, ref *out);
static int call_method(imp *I, const frame *caller, const npe_ts_loc *loc, const ref *self,
                       cfile *cf, const char *qual, const npe_ts_method *m, const ref *args,
                       const char *const *kw, int nargs, ref *out);

static int literal(imp *I, const frame *F, const npe_ts_expr *e, ref *out)
{
    npe_span sp = span_of(F, &e->loc);
    const npe_span *spp = F && F->cf ? &sp : NULL;
    int id;
    switch (e->kind) {
    case NPE_TS_E_INT: id = npe_graph_add_int(I->g, e->ival, spp); break;
    case NPE_TS_E_FLOAT: id = npe_graph_add_float(I->g, e->fval, spp); break;
    case NPE_TS_E_BOOL: id = npe_graph_add_bool(I->g, (int)e->ival, spp); break;
    case NPE_TS_E_NONE: id = npe_graph_none(I->g); break;
    case NPE_TS_E_STR:
        if (memchr(e->sval, 0, e->slen))
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "string with a NUL byte");
        id = npe_graph_add_str(I->g, e->sval, spp);
        break;
    default:
        return ferr(I, F, &e->loc, NPE_EFORMAT, "not a literal");
    }
    if (id < 0)
        return oom(I);
    *out = value_ref(id);
    return 0;
}

/* Attribute name of a module object: submodule, parameter, buffer or plain value. */
static int module_attr(imp *I, frame *F, const npe_ts_loc *loc, const ref *m, const char *name,
                       ref *out)
{
    const npe_pv *st = m->obj->u.call.state;
    const npe_pv *v = st && st->kind == NPE_PV_DICT ? npe_pv_dict_get(st, name) : NULL;
    const npe_pv *fn = m->obj->u.call.fn;
    const char *cls = fn && fn->kind == NPE_PV_GLOBAL ? fn->u.global.name : "?";
    if (!v)
        return ferr(I, F, loc, NPE_EFORMAT, "module '%s' (%s) has no attribute '%s' in data.pkl",
                    m->path[0] ? m->path : "<root>", cls, name);
    const char *path = join_path(I, m->path, name);
    if (!path)
        return oom(I);
    if (v->kind == NPE_PV_OBJECT) {
        memset(out, 0, sizeof *out);
        out->kind = R_MODULE;
        out->obj = v;
        out->path = path;
        out->span.source = -1;
        return 0;
    }
    if (is_tensor_pv(v)) {
        int ti = find_tensor(I, v);
        if (ti < 0)
            return ferr(I, F, loc, NPE_EFORMAT, "tensor '%s' was not loaded from data.pkl", path);
        /* parameter or buffer: the class's __parameters__ / __buffers__ say */
        unsigned flags = I->f->tensors[ti].is_parameter ? NPE_VF_PARAM : NPE_VF_BUFFER;
        cfile *cf;
        const npe_ts_class *c;
        if (!class_of(I, F, loc, m->obj, &cf, &c, NULL)) {
            for (int i = 0; i < c->n_param_names; i++)
                if (strcmp(c->param_names[i], name) == 0)
                    flags = NPE_VF_PARAM;
            for (int i = 0; i < c->n_buffer_names; i++)
                if (strcmp(c->buffer_names[i], name) == 0)
                    flags = NPE_VF_BUFFER;
        } else {
            npe_error_clear(I->err);
        }
        int vid = -1;
        int r = tensor_value(I, F, loc, ti, path, flags, &vid);
        if (r)
            return r;
        *out = value_ref(vid);
        return 0;
    }
    int id;
    switch (v->kind) {
    case NPE_PV_NONE: id = npe_graph_none(I->g); break;
    case NPE_PV_BOOL: id = npe_graph_add_bool(I->g, v->u.b, NULL); break;
    case NPE_PV_INT: id = npe_graph_add_int(I->g, v->u.i, NULL); break;
    case NPE_PV_FLOAT: id = npe_graph_add_float(I->g, v->u.f, NULL); break;
    case NPE_PV_STR:
        if (memchr(v->u.str.s, 0, v->u.str.len))
            return ferr(I, F, loc, NPE_EUNSUPPORTED, "attribute '%s' holds a NUL byte", path);
        id = npe_graph_add_str(I->g, v->u.str.s, NULL);
        break;
    default:
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "attribute '%s' of module '%s' is a pickled %d, "
                    "which traced code should not read", name, m->path[0] ? m->path : "<root>",
                    (int)v->kind);
    }
    if (id < 0)
        return oom(I);
    *out = value_ref(id);
    return 0;
}

static int eval_args(imp *I, frame *F, const npe_ts_expr *call, ref **args)
{
    *args = ialloc(I, (size_t)(call->n_items ? call->n_items : 1) * sizeof **args);
    if (!*args)
        return oom(I);
    for (int i = 0; i < call->n_items; i++) {
        int r = eval(I, F, call->items[i], &(*args)[i]);
        if (r)
            return r;
    }
    return 0;
}

/* Parse a builtin's parameter list once. */
static int get_spec(imp *I, int bi, parsed_spec **out)
{
    if (I->specs[bi]) {
        *out = I->specs[bi];
        return 0;
    }
    const bspec *b = &builtins[bi];
    parsed_spec *ps = ialloc(I, sizeof *ps);
    if (!ps)
        return oom(I);
    for (int pass = 0; pass < 2; pass++) {
        const char *s = pass ? b->fixed : b->params;
        if (!s)
            continue;
        while (*s) {
            while (*s == ' ' || *s == ',')
                s++;
            if (!*s)
                break;
            /* one parameter up to a comma outside brackets */
            const char *e = s;
            int d = 0, q = 0;
            while (*e && (d > 0 || q || *e != ',')) {
                if (*e == '"')
                    q = !q;
                else if (!q && (*e == '[' || *e == '('))
                    d++;
                else if (!q && (*e == ']' || *e == ')'))
                    d--;
                e++;
            }
            pspec *p = pass ? &ps->fixed[ps->n_fixed] : &ps->p[ps->n];
            if ((pass ? ps->n_fixed : ps->n) >= (pass ? 4 : MAX_SPEC_PARAMS))
                return npe_error_set(I->err, NPE_EINVAL, "op table: %s has too many parameters",
                                     b->fn);
            const char *eq = memchr(s, '=', (size_t)(e - s));
            const char *nend = eq ? eq : e;
            const char *gt = memchr(s, '>', (size_t)(nend - s));
            if (*s == '*') {
                p->variadic = 1;
                s++;
            }
            const char *name = npe_ts_strndup(&I->arena, s, (size_t)((gt ? gt : nend) - s));
            const char *slot = gt ? npe_ts_strndup(&I->arena, gt + 1, (size_t)(nend - gt - 1)) : name;
            if (!name || !slot)
                return oom(I);
            p->name = name;
            p->slot = p->variadic ? 0 : npe_op_slot_index(b->op, slot);
            if (eq) {
                int r = npe_ts_parse_expr(eq + 1, (size_t)(e - eq - 1), "op table", &I->arena,
                                          &p->def, I->err);
                if (r)
                    return r;
            }
            if (pass)
                ps->n_fixed++;
            else
                ps->n++;
            s = e;
        }
    }
    I->specs[bi] = ps;
    *out = ps;
    return 0;
}

static int builtin_index(const char *fn)
{
    for (int i = 0; i < N_BUILTINS; i++)
        if (strcmp(builtins[i].fn, fn) == 0)
            return i;
    return -1;
}

/* Value of a reference that must be an int/str literal-like value now (import-time checks). */
static const npe_value *ref_value(const imp *I, const ref *r)
{
    return r->kind == R_VALUE ? &I->g->values[r->v] : NULL;
}

/* Bind call arguments to a builtin's parameters; bound[i] set, given[i] 1 if from the call. */
static int bind(imp *I, frame *F, const npe_ts_expr *call, const char *fn, const parsed_spec *ps,
                const ref *args, ref *bound, int *given)
{
    for (int i = 0; i < ps->n; i++)
        given[i] = 0;
    int pos = 0;
    for (int a = 0; a < call->n_items; a++) {
        const char *kw = call->kwnames ? call->kwnames[a] : NULL;
        int k = -1;
        if (!kw) {
            if (pos >= ps->n)
                return ferr(I, F, &call->loc, NPE_EUNSUPPORTED,
                            "%s takes at most %d arguments, got %d (an overload the importer "
                            "does not know)", fn, ps->n, call->n_items);
            k = pos++;
        } else {
            for (int i = 0; i < ps->n; i++)
                if (strcmp(ps->p[i].name, kw) == 0)
                    k = i;
            if (k < 0)
                return ferr(I, F, &call->items[a]->loc, NPE_EUNSUPPORTED,
                            "%s has no parameter '%s' the importer knows", fn, kw);
        }
        if (given[k])
            return ferr(I, F, &call->items[a]->loc, NPE_EFORMAT, "%s: '%s' given twice", fn,
                        ps->p[k].name);
        bound[k] = args[a];
        given[k] = 1;
    }
    for (int i = 0; i < ps->n; i++) {
        if (given[i])
            continue;
        if (!ps->p[i].def)
            return ferr(I, F, &call->loc, NPE_EFORMAT, "%s: missing argument '%s'", fn,
                        ps->p[i].name);
        int r = eval(I, NULL, ps->p[i].def, &bound[i]);
        if (r)
            return r;
    }
    return 0;
}

static int is_none(const imp *I, const ref *r)
{
    const npe_value *v = ref_value(I, r);
    return v && v->type == NPE_VT_NONE;
}

/* Is an in-place variant of op a write to its tensor (relu_) rather than a change of its shape
 * (unsqueeze_, transpose_: traced code names the result, so they import as the view op)? */
static int inplace_writes(npe_op op)
{
    return op != NPE_OP_SQUEEZE && op != NPE_OP_UNSQUEEZE && op != NPE_OP_TRANSPOSE;
}

/* The tensor an in-place op writes to: a value (its name in the code), not a list or module. */
static int inplace_target(imp *I, frame *F, const npe_ts_loc *loc, const char *fn, const ref *r,
                          int *sv)
{
    if (r->kind != R_VALUE || I->g->values[r->v].type != NPE_VT_TENSOR)
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "in-place %s on a %s", fn, rkind_word(I, r));
    *sv = r->v;
    return 0;
}

static int builtin_call(imp *I, frame *F, const npe_ts_expr *call, const char *fn, int bi,
                        int inplace, ref *out)
{
    const bspec *b = &builtins[bi];
    parsed_spec *ps = NULL;
    int r = get_spec(I, bi, &ps);
    if (r)
        return r;
    ref *args;
    if ((r = eval_args(I, F, call, &args)))
        return r;
    if (b->special == SP_MAXMIN) {
        /* max(x): all elements; max(x, other_tensor): elementwise; max(x, dim[, keepdim]) */
        const char *variant = NULL;
        if (call->n_items == 1)
            variant = "#all";
        for (int a = 1; a < call->n_items && !variant; a++) {
            const char *kw = call->kwnames ? call->kwnames[a] : NULL;
            const npe_value *v = ref_value(I, &args[a]);
            if ((kw && strcmp(kw, "other") == 0) ||
                (!kw && a == 1 && v && v->type == NPE_VT_TENSOR))
                variant = "#other";
        }
        if (variant) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", b->fn, variant);
            if ((bi = builtin_index(name)) < 0)
                return npe_error_set(I->err, NPE_EINVAL, "op table: no %s", name);
            b = &builtins[bi];
            if ((r = get_spec(I, bi, &ps)))
                return r;
        }
    }
    npe_op op = b->op;
    int writes = inplace && inplace_writes(op);
    if (inplace && (b->special == SP_TO || b->special == SP_ARANGE || b->special == SP_UPSAMPLE ||
                    (npe_op_schema_of(op)->flags & (NPE_OPF_MULTI_OUT | NPE_OPF_VARIADIC |
                                                    NPE_OPF_FACTORY | NPE_OPF_SCALAR))))
        return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "in-place op '%s' is not supported by the "
                    "importer", fn);
    ref bound[MAX_SPEC_PARAMS];
    int given[MAX_SPEC_PARAMS];
    ref extra_scale = {0};
    int use_extra_scale = 0;

    if (b->special == SP_TO) {
        /* to(self, dtype, ...), to(self, device, dtype, ...), to(self, other_tensor, ...):
         * the float tensors we run stay float; only a dtype given as an int matters */
        if (call->n_items < 1)
            return ferr(I, F, &call->loc, NPE_EFORMAT, "%s without arguments", fn);
        int dtype = -1;
        for (int a = 1; a < call->n_items; a++) {
            const char *kw = call->kwnames ? call->kwnames[a] : NULL;
            const npe_value *v = ref_value(I, &args[a]);
            if (kw && strcmp(kw, "dtype") == 0) {
                dtype = args[a].kind == R_VALUE ? args[a].v : -1;
                break;
            }
            if (!kw && v && v->type == NPE_VT_INT) {
                dtype = args[a].v;
                break;
            }
            if (!kw && v && v->type == NPE_VT_TENSOR)
                return ferr(I, F, &call->loc, NPE_EUNSUPPORTED,
                            "%s(tensor, other_tensor) is not supported", fn);
        }
        int in[2];
        if ((r = materialize(I, F, &call->loc, &args[0], &in[0], 0)))
            return r;
        in[1] = dtype >= 0 ? dtype : npe_graph_none(I->g);
        if (in[1] < 0)
            return oom(I);
        int made = I->stamp;
        if ((r = add_node(I, F, &call->loc, NPE_OP_TO, in, 2, 1, out)))
            return r;
        return note_view(I, I->g->values[out->v].producer,
                         args[0].kind == R_VALUE ? args[0].v : -1, fn, made);
    }
    if (b->special == SP_ARANGE) {
        /* the leading positional numbers are (end), (start, end) or (start, end, step); dtype
         * comes as a keyword or right after them; layout, device, pin_memory do not matter */
        int npos = 0, dtype = -1, pidx[3] = {0, 0, 0};
        for (int a = 0; a < call->n_items; a++) {
            const char *kw = call->kwnames ? call->kwnames[a] : NULL;
            if (kw) {
                if (strcmp(kw, "dtype") == 0 && args[a].kind == R_VALUE)
                    dtype = args[a].v;
                else if (strcmp(kw, "end") == 0 || strcmp(kw, "start") == 0 || strcmp(kw, "step") == 0)
                    return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s with '%s' as a keyword",
                                fn, kw);
                continue;
            }
            const npe_value *v = ref_value(I, &args[a]);
            if (npos < 3 && dtype < 0 && v &&
                (v->type == NPE_VT_INT || v->type == NPE_VT_FLOAT || v->type == NPE_VT_TENSOR))
                pidx[npos++] = a;
            else if (dtype < 0 && v && (v->type == NPE_VT_INT || v->type == NPE_VT_NONE))
                dtype = args[a].v;
        }
        if (npos < 1)
            return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s without an end", fn);
        int in[4];
        int zero = npe_graph_add_int(I->g, 0, NULL), one = npe_graph_add_int(I->g, 1, NULL);
        int none = npe_graph_none(I->g);
        if (zero < 0 || one < 0 || none < 0)
            return oom(I);
        in[0] = npos >= 2 ? args[pidx[0]].v : zero;
        in[1] = npos >= 2 ? args[pidx[1]].v : args[pidx[0]].v;
        in[2] = npos >= 3 ? args[pidx[2]].v : one;
        in[3] = dtype >= 0 ? dtype : none;
        return add_node(I, F, &call->loc, NPE_OP_ARANGE, in, 4, 1, out);
    }
    if (b->special == SP_UPSAMPLE) {
        /* vec overload: (input, output_size, [align_corners,] scale_factors); the older one:
         * (self, output_size, [align_corners,] scales_h, scales_w) */
        int base = op == NPE_OP_UPSAMPLE_BILINEAR2D ? 3 : 2;
        if (call->n_items == base + 2 && !call->kwnames) {
            for (int i = 0; i < base; i++) {
                bound[i] = args[i];
                given[i] = 1;
            }
            if (is_none(I, &args[base]) || is_none(I, &args[base + 1])) {
                int nv = npe_graph_none(I->g);
                if (nv < 0)
                    return oom(I);
                extra_scale = value_ref(nv);
            } else {
                ref *it = ialloc(I, 2 * sizeof *it);
                if (!it)
                    return oom(I);
                it[0] = args[base];
                it[1] = args[base + 1];
                memset(&extra_scale, 0, sizeof extra_scale);
                extra_scale.kind = R_LIST;
                extra_scale.items = it;
                extra_scale.n = 2;
                extra_scale.span.source = -1;
            }
            bound[base] = extra_scale;
            given[base] = 1;
            use_extra_scale = 1;
        }
    }
    if (!use_extra_scale && (r = bind(I, F, call, fn, ps, args, bound, given)))
        return r;
    if (b->special == SP_DIV) {
        const npe_value *rm = ref_value(I, &bound[2]);
        if (rm && rm->type == NPE_VT_STR) {
            if (strcmp(rm->s, "floor") == 0)
                op = NPE_OP_FLOOR_DIV;
            else
                return ferr(I, F, &call->loc, NPE_EUNSUPPORTED,
                            "%s with rounding_mode='%s' is not supported", fn, rm->s);
        } else if (!rm || rm->type != NPE_VT_NONE) {
            return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s: rounding_mode must be a literal",
                        fn);
        }
    }
    if (b->special == SP_SPLIT) {
        const ref *ss = &bound[1];
        const npe_value *v = ref_value(I, ss);
        if (ss->kind == R_LIST || ss->kind == R_TUPLE || (v && v->type == NPE_VT_LIST))
            op = NPE_OP_SPLIT_WITH_SIZES;
    }

    const npe_op_schema *sc = npe_op_schema_of(op);
    int in_fixed[16];
    int *in = in_fixed;
    int n_in = sc->min_in;
    int self_ident = -1, sv = -1, made = I->stamp;
    if (sc->flags & NPE_OPF_VARIADIC) {
        /* tensors..., dim */
        ref *items;
        int n;
        if ((r = seq_items(I, F, &call->loc, &bound[0], -1, &items, &n)))
            return r;
        if (n < 1)
            return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s of an empty list", fn);
        if (n + 1 > NPE_IR_MAX_INPUTS)
            return ferr(I, F, &call->loc, NPE_ELIMIT, "%s of %d tensors", fn, n);
        in = ialloc(I, (size_t)(n + 1) * sizeof *in);
        if (!in)
            return oom(I);
        for (int i = 0; i < n; i++) {
            if ((r = materialize(I, F, &call->loc, &items[i], &in[i], 0)))
                return r;
            if (I->g->values[in[i]].type != NPE_VT_TENSOR)
                return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s: item %d is a %s, not a tensor",
                            fn, i, npe_vtype_name(I->g->values[in[i]].type));
        }
        if ((r = materialize(I, F, &call->loc, &bound[1], &in[n], 0)))
            return r;
        n_in = n + 1;
    } else {
        for (int i = 0; i < n_in; i++)
            in[i] = -1;
        for (int i = 0; i < ps->n; i++) {
            int slot = ps->p[i].slot;
            if (slot < 0)
                continue;
            /* the tensor a view or in-place op works on, by name (see "Storage") */
            if (slot == 0 && bound[i].kind == R_VALUE)
                self_ident = bound[i].v;
            int shape_only = (op == NPE_OP_SIZE && slot == 0) ||
                             ((op == NPE_OP_EXPAND_AS || op == NPE_OP_RESHAPE_AS) && slot == 1);
            if (slot == 0 && writes && (r = inplace_target(I, F, &call->loc, fn, &bound[i], &sv)))
                return r;
            if ((r = materialize_r(I, F, &call->loc, &bound[i], &in[slot], 0, !shape_only)))
                return r;
        }
        for (int i = 0; i < ps->n_fixed; i++) {
            ref fx;
            if (ps->fixed[i].slot < 0)
                continue;
            if ((r = eval(I, NULL, ps->fixed[i].def, &fx)) ||
                (r = materialize(I, F, &call->loc, &fx, &in[ps->fixed[i].slot], 0)))
                return r;
        }
        for (int i = 0; i < n_in; i++) {
            if (in[i] < 0) {
                char slot[64];
                return ferr(I, F, &call->loc, NPE_EINVAL, "op table: %s leaves input '%s' of %s "
                            "unset", fn, npe_op_slot_name(op, i, n_in, slot, sizeof slot),
                            sc->name);
            }
        }
    }
    if (sc->flags & NPE_OPF_MULTI_OUT) {
        pending *p = ialloc(I, sizeof *p);
        int *cp = ialloc(I, (size_t)n_in * sizeof *cp);
        if (!p || !cp)
            return oom(I);
        memcpy(cp, in, (size_t)n_in * sizeof *cp);
        p->op = op;
        p->in = cp;
        p->n_in = n_in;
        p->scope = F->scope;
        p->site = span_of(F, &call->loc);
        p->fn = npe_ts_strndup(&I->arena, fn, strlen(fn)); /* fn lives on the caller's stack */
        if (!p->fn)
            return oom(I);
        p->loc = call->loc;
        p->cf = F->cf;
        p->node = -1;
        p->default_n = -1;
        p->self_ident = self_ident;
        p->made = made;
        const npe_value *a1 = &I->g->values[in[1]];
        if (op == NPE_OP_CHUNK && a1->type == NPE_VT_INT && (a1->flags & NPE_VF_CONST))
            p->default_n = (int)(a1->i > 0 && a1->i <= NPE_IR_MAX_OUTPUTS ? a1->i : -1);
        if (op == NPE_OP_SPLIT_WITH_SIZES && a1->type == NPE_VT_LIST)
            p->default_n = a1->n_items;
        if (op == NPE_OP_MESHGRID)
            p->default_n = n_in - 1;
        memset(out, 0, sizeof *out);
        out->kind = R_PENDING;
        out->pend = p;
        out->span.source = -1;
        return 0;
    }
    if ((r = add_node(I, F, &call->loc, op, in, n_in, 0, out)))
        return r;
    if (writes) { /* the op computed the new content; the name keeps standing for the tensor */
        if ((r = mutate(I, F, &call->loc, fn, sv, out->v)))
            return r;
        *out = value_ref(sv);
        return 0;
    }
    if (out->kind == R_VALUE && I->g->values[out->v].producer >= 0)
        return note_view(I, I->g->values[out->v].producer, self_ident, fn, made);
    return 0;
}

/* copy_(self, src[, non_blocking]) (x[...] = y), fill_(self, value), zero_(self): the new content
 * of self is src (or the number) broadcast to its shape. */
static int fill_call(imp *I, frame *F, const npe_ts_expr *call, const char *fn, ref *out)
{
    ref *args;
    int r = eval_args(I, F, call, &args);
    if (r)
        return r;
    int is_zero = strcmp(fn, "torch.zero_") == 0, is_copy = strcmp(fn, "torch.copy_") == 0;
    int want = is_zero ? 1 : 2;
    for (int a = 0; a < call->n_items; a++)
        if (call->kwnames && call->kwnames[a] && strcmp(call->kwnames[a], "non_blocking") != 0)
            return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s has no parameter '%s' the "
                        "importer knows", fn, call->kwnames[a]);
    if (call->n_items < want || call->n_items > (is_copy ? 3 : want))
        return ferr(I, F, &call->loc, NPE_EFORMAT, "%s takes %d argument%s, got %d", fn, want,
                    want > 1 ? "s" : "", call->n_items);
    int sv, in[2];
    if ((r = inplace_target(I, F, &call->loc, fn, &args[0], &sv)) ||
        (r = read_tensor(I, F, &call->loc, sv, &in[1])))
        return r;
    if (is_zero) {
        if ((in[0] = npe_graph_add_float(I->g, 0.0, NULL)) < 0)
            return oom(I);
    } else if ((r = materialize(I, F, &call->loc, &args[1], &in[0], 0))) {
        return r;
    }
    npe_vtype t = I->g->values[in[0]].type;
    if (t != NPE_VT_TENSOR && t != NPE_VT_FLOAT && t != NPE_VT_INT && t != NPE_VT_BOOL)
        return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "%s of a %s", fn, npe_vtype_name(t));
    ref nv;
    if ((r = add_node(I, F, &call->loc, NPE_OP_EXPAND_AS, in, 2, 1, &nv)) ||
        (r = mutate(I, F, &call->loc, fn, sv, nv.v)))
        return r;
    *out = value_ref(sv);
    return 0;
}

/* Call of a function defined at module level of a code record (__torch__.a.b.fn(...)). */
static int function_call(imp *I, frame *F, const npe_ts_expr *call, const char *dotted, ref *out)
{
    const char *dot = strrchr(dotted, '.');
    char *module = npe_ts_strndup(&I->arena, dotted, (size_t)(dot - dotted));
    if (!module)
        return oom(I);
    cfile *cf;
    int r = get_cfile(I, F, &call->loc, module, &cf);
    if (r)
        return r;
    const npe_ts_method *fnm = NULL;
    for (int i = 0; cf->mod && i < cf->mod->n_functions; i++)
        if (strcmp(cf->mod->functions[i].name, dot + 1) == 0)
            fnm = &cf->mod->functions[i];
    if (!fnm)
        return ferr(I, F, &call->loc, NPE_EUNSUPPORTED, "function %s is not in the archive's code",
                    dotted);
    ref *args;
    if ((r = eval_args(I, F, call, &args)))
        return r;
    return call_method(I, F, &call->loc, NULL, cf, dotted, fnm, args,
                       (const char *const *)call->kwnames, call->n_items, out);
}

static int eval_call(imp *I, frame *F, const npe_ts_expr *e, ref *out)
{
    const npe_ts_expr *callee = e->a;
    char dotted[256];
    const char *dn = npe_ts_dotted(callee, dotted, sizeof dotted);
    const char *root = NULL;
    char rootbuf[256];
    if (dn) {
        size_t k = strcspn(dn, ".");
        if (k < sizeof rootbuf) {
            memcpy(rootbuf, dn, k);
            rootbuf[k] = '\0';
            root = rootbuf;
        }
    }
    /* method call on a value the frame knows: (conv1).forward(x), self.fc.forward(x) */
    if (callee->kind == NPE_TS_E_ATTR && (!dn || (F && frame_get(F, root)))) {
        ref base;
        int r = eval(I, F, callee->a, &base);
        if (r)
            return r;
        if (base.kind != R_MODULE)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "method '%s' called on a %s (tensor "
                        "methods are printed as torch.%s(...) in traced code)", callee->name,
                        rkind_word(I, &base), callee->name);
        cfile *cf;
        const npe_ts_class *cls;
        const char *qual;
        if ((r = class_of(I, F, &e->loc, base.obj, &cf, &cls, &qual)))
            return r;
        const npe_ts_method *m = npe_ts_find_method(cls, callee->name);
        if (!m)
            return ferr(I, F, &e->loc, NPE_EFORMAT, "class %s has no method '%s'", qual,
                        callee->name);
        ref *args;
        if ((r = eval_args(I, F, e, &args)))
            return r;
        return call_method(I, F, &e->loc, &base, cf, qual, m, args,
                           (const char *const *)e->kwnames, e->n_items, out);
    }
    if (!dn)
        return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "call of an expression is not supported");
    if (strcmp(dn, "getattr") == 0) {
        if (e->n_items != 2 || e->kwnames || e->items[1]->kind != NPE_TS_E_STR)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "getattr takes an object and a name");
        ref base;
        int r = eval(I, F, e->items[0], &base);
        if (r)
            return r;
        if (base.kind != R_MODULE)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "getattr on a %s", rkind_word(I, &base));
        return module_attr(I, F, &e->loc, &base, e->items[1]->sval, out);
    }
    if (strcmp(dn, "annotate") == 0) {
        if (e->n_items != 2 || e->kwnames)
            return ferr(I, F, &e->loc, NPE_EFORMAT, "annotate takes a type and a value");
        return eval(I, F, e->items[1], out);
    }
    if (strcmp(dn, "torch.device") == 0) {
        if (e->n_items != 1 || e->items[0]->kind != NPE_TS_E_STR)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "torch.device takes one string here");
        return literal(I, F, e->items[0], out);
    }
    if (strncmp(dn, "__torch__.", 10) == 0 && strchr(dn + 10, '.'))
        return function_call(I, F, e, dn, out);
    if (strcmp(dn, "uninitialized") == 0 || strcmp(dn, "isinstance") == 0 ||
        strcmp(dn, "len") == 0 || strcmp(dn, "range") == 0 || strncmp(dn, "ops.prim.Raise", 14) == 0 ||
        strcmp(dn, "torch.__is__") == 0 || strcmp(dn, "torch.__isnot__") == 0 ||
        strcmp(dn, "torch.append") == 0 || strcmp(dn, "torch.len") == 0 ||
        strcmp(dn, "torch.dim") == 0 || strcmp(dn, "torch.eq") == 0 || strcmp(dn, "torch.ne") == 0)
        return ferr(I, F, &e->loc, NPE_EUNSUPPORTED,
                    "'%s' belongs to scripted code (torch.jit.script): lbprune imports traced "
                    "models; save torch.jit.trace(model.eval(), example_input) instead", dn);
    int bi = builtin_index(dn), inplace = 0;
    if (bi < 0) {
        size_t n = strlen(dn);
        if (n > 1 && dn[n - 1] == '_' && dn[n - 2] != '_') { /* in-place variant */
            if (strcmp(dn, "torch.copy_") == 0 || strcmp(dn, "torch.fill_") == 0 ||
                strcmp(dn, "torch.zero_") == 0)
                return fill_call(I, F, e, dn, out);
            char base[256];
            memcpy(base, dn, n - 1);
            base[n - 1] = '\0';
            bi = builtin_index(base);
            inplace = 1;
        }
    }
    if (bi < 0)
        return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "op '%s' is not supported by the importer",
                    dn);
    return builtin_call(I, F, e, dn, bi, inplace, out);
}

static int eval(imp *I, frame *F, const npe_ts_expr *e, ref *out)
{
    if (!e)
        return npe_error_set(I->err, NPE_EFORMAT, "missing expression");
    switch (e->kind) {
    case NPE_TS_E_INT:
    case NPE_TS_E_FLOAT:
    case NPE_TS_E_BOOL:
    case NPE_TS_E_NONE:
    case NPE_TS_E_STR:
        return literal(I, F, e, out);
    case NPE_TS_E_NAME: {
        const ref *r = F ? frame_get(F, e->name) : NULL;
        if (!r)
            return ferr(I, F, &e->loc, NPE_EFORMAT, "name '%s' is not defined here", e->name);
        *out = *r;
        return 0;
    }
    case NPE_TS_E_ATTR: {
        char dotted[256];
        const char *dn = npe_ts_dotted(e, dotted, sizeof dotted);
        if (dn && strncmp(dn, "CONSTANTS.c", 11) == 0 && (!F || !frame_get(F, "CONSTANTS"))) {
            char *end;
            long idx = strtol(dn + 11, &end, 10);
            if (*end || end == dn + 11)
                return ferr(I, F, &e->loc, NPE_EFORMAT, "bad constant name %s", dn);
            int vid = -1;
            int r = const_value(I, F, &e->loc, idx, &vid);
            if (r)
                return r;
            *out = value_ref(vid);
            return 0;
        }
        ref base;
        int r = eval(I, F, e->a, &base);
        if (r)
            return r;
        if (base.kind != R_MODULE)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "attribute '%s' of a %s", e->name,
                        rkind_word(I, &base));
        return module_attr(I, F, &e->loc, &base, e->name, out);
    }
    case NPE_TS_E_CALL:
        return eval_call(I, F, e, out);
    case NPE_TS_E_LIST:
    case NPE_TS_E_TUPLE: {
        ref *it = ialloc(I, (size_t)(e->n_items ? e->n_items : 1) * sizeof *it);
        if (!it)
            return oom(I);
        for (int i = 0; i < e->n_items; i++) {
            int r = eval(I, F, e->items[i], &it[i]);
            if (r)
                return r;
        }
        memset(out, 0, sizeof *out);
        out->kind = e->kind == NPE_TS_E_LIST ? R_LIST : R_TUPLE;
        out->items = it;
        out->n = e->n_items;
        out->span = span_of(F, &e->loc);
        return 0;
    }
    case NPE_TS_E_SUBSCRIPT: {
        ref base;
        int r = eval(I, F, e->a, &base);
        if (r)
            return r;
        if (e->b->kind != NPE_TS_E_INT)
            return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "subscripts must be integer literals");
        ref *items;
        int n;
        if ((r = seq_items(I, F, &e->loc, &base, -1, &items, &n)))
            return r;
        int64_t k = e->b->ival;
        if (k < 0)
            k += n;
        if (k < 0 || k >= n)
            return ferr(I, F, &e->loc, NPE_EFORMAT, "index %" PRId64 " out of range (%d items)",
                        e->b->ival, n);
        *out = items[k];
        return 0;
    }
    case NPE_TS_E_UNARY:
    case NPE_TS_E_BINARY:
        return ferr(I, F, &e->loc, NPE_EUNSUPPORTED,
                    "operator '%s' on values belongs to scripted code (torch.jit.script); "
                    "lbprune imports traced models", e->name);
    case NPE_TS_E_OTHER:
        return ferr(I, F, &e->loc, NPE_EUNSUPPORTED, "%s is not supported", e->name);
    }
    return ferr(I, F, &e->loc, NPE_EFORMAT, "unknown expression");
}

/* ---- Statements and calls -------------------------------------------------------------------- */
static int exec_body(imp *I, frame *F, ref *ret, int *returned)
{
    const npe_ts_method *m = F->m;
    for (int i = 0; i < m->n_body; i++) {
        const npe_ts_stmt *s = m->body[i];
        if (++I->statements > MAX_STATEMENTS)
            return ferr(I, F, &s->loc, NPE_ELIMIT, "the code runs more statements than the "
                        "importer accepts");
        int r = 0;
        switch (s->kind) {
        case NPE_TS_S_PASS:
            break;
        case NPE_TS_S_EXPR: {
            ref tmp;
            r = eval(I, F, s->value, &tmp);
            break;
        }
        case NPE_TS_S_RETURN:
            if (I->depth == 1) {
                I->ret_loc = s->loc;
                I->have_ret = 1;
            }
            if (s->value) {
                r = eval(I, F, s->value, ret);
            } else {
                int nv = npe_graph_none(I->g);
                if (nv < 0)
                    return oom(I);
                *ret = value_ref(nv);
            }
            if (!r)
                *returned = 1;
            return r;
        case NPE_TS_S_ASSIGN: {
            ref v;
            if ((r = eval(I, F, s->value, &v)))
                return r;
            if (!s->unpack) {
                r = frame_set(I, F, s->targets[0], &v);
                break;
            }
            ref *items;
            int n;
            if ((r = seq_items(I, F, &s->loc, &v, s->n_targets, &items, &n)))
                return r;
            if (n != s->n_targets)
                return ferr(I, F, &s->loc, NPE_EFORMAT, "unpacking %d values into %d names", n,
                            s->n_targets);
            for (int k = 0; k < n && !r; k++)
                r = frame_set(I, F, s->targets[k], &items[k]);
            break;
        }
        case NPE_TS_S_UNSUPPORTED:
            return ferr(I, F, &s->loc, NPE_EUNSUPPORTED,
                        "%s in method '%s': this model was compiled with torch.jit.script (it has "
                        "control flow or other scripted code); lbprune imports traced models: save "
                        "torch.jit.trace(model.eval(), example_input) instead", s->what, m->name);
        }
        if (r)
            return r;
    }
    return 0;
}

static int call_method(imp *I, const frame *caller, const npe_ts_loc *loc, const ref *self,
                       cfile *cf, const char *qual, const npe_ts_method *m, const ref *args,
                       const char *const *kw, int nargs, ref *out)
{
    if (m->err_code)
        return npe_error_set(I->err, m->err_code, "%s (in method '%s' of %s)", m->err_msg,
                             m->name, qual);
    if (I->depth >= MAX_CALL_DEPTH)
        return ferr(I, caller, loc, NPE_ELIMIT, "calls nested deeper than %d levels",
                    MAX_CALL_DEPTH);
    frame F = {0};
    F.scope = self ? self->path : (caller ? caller->scope : "");
    F.cls = qual;
    F.m = m;
    F.cf = cf;
    int r = 0, first = 0;
    if (self) {
        if (m->n_params < 1) {
            r = ferr(I, &F, &m->loc, NPE_EFORMAT, "method '%s' has no self parameter", m->name);
            goto out_free_frame;
        }
        if ((r = frame_set(I, &F, m->params[0].name, self)))
            goto out_free_frame;
        first = 1;
    }
    int *given = calloc((size_t)(m->n_params ? m->n_params : 1), sizeof *given);
    if (!given) {
        r = oom(I);
        goto out_free_frame;
    }
    int pos = first;
    for (int a = 0; a < nargs && !r; a++) {
        int k = -1;
        if (kw && kw[a]) {
            for (int i = first; i < m->n_params; i++)
                if (strcmp(m->params[i].name, kw[a]) == 0)
                    k = i;
        } else if (pos < m->n_params) {
            k = pos++;
        }
        if (k < 0 || given[k])
            r = ferr(I, caller, loc, NPE_EFORMAT, "call of %s.%s: argument %d does not match its "
                     "parameters", qual, m->name, a + 1);
        else {
            given[k] = 1;
            r = frame_set(I, &F, m->params[k].name, &args[a]);
        }
    }
    for (int i = first; i < m->n_params && !r; i++) {
        if (given[i])
            continue;
        if (!m->params[i].def) {
            r = ferr(I, caller, loc, NPE_EFORMAT, "call of %s.%s: missing argument '%s'", qual,
                     m->name, m->params[i].name);
            break;
        }
        ref d;
        if (!(r = eval(I, &F, m->params[i].def, &d)))
            r = frame_set(I, &F, m->params[i].name, &d);
    }
    free(given);
    if (r)
        goto out_free_frame;
    I->depth++;
    int returned = 0;
    r = exec_body(I, &F, out, &returned);
    I->depth--;
    if (!r && !returned) {
        int nv = npe_graph_none(I->g);
        if (nv < 0)
            r = oom(I);
        else
            *out = value_ref(nv);
    }
out_free_frame:
    free(F.vars);
    return r;
}

/* ---- Top level ------------------------------------------------------------------------------- */
static int flatten_outputs(imp *I, const frame *F, const npe_ts_loc *loc, const ref *r, int **ids,
                           int *n, int *cap, int depth)
{
    if (depth > 32)
        return ferr(I, F, loc, NPE_ELIMIT, "outputs nested too deeply");
    if (r->kind == R_VALUE && I->g->values[r->v].type == NPE_VT_TENSOR) {
        int content;
        int rc = read_tensor(I, F, loc, r->v, &content);
        if (rc)
            return rc;
        if (*n == *cap) {
            int ncap = *cap ? *cap * 2 : 8;
            if (ncap > NPE_IR_MAX_OUTPUTS)
                return ferr(I, F, loc, NPE_ELIMIT, "more than %d outputs", NPE_IR_MAX_OUTPUTS);
            int *ni = realloc(*ids, (size_t)ncap * sizeof *ni);
            if (!ni)
                return oom(I);
            *ids = ni;
            *cap = ncap;
        }
        (*ids)[(*n)++] = content;
        return 0;
    }
    if (r->kind == R_VALUE && I->g->values[r->v].type != NPE_VT_LIST)
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "the model returns a %s; only tensors (in tuples "
                    "and lists) are supported as outputs", npe_vtype_name(I->g->values[r->v].type));
    if (r->kind == R_MODULE)
        return ferr(I, F, loc, NPE_EUNSUPPORTED, "the model returns a module");
    ref *items;
    int cnt;
    int rc = seq_items(I, F, loc, r, -1, &items, &cnt);
    for (int i = 0; i < cnt && !rc; i++)
        rc = flatten_outputs(I, F, loc, &items[i], ids, n, cap, depth + 1);
    return rc;
}

static const char *kind_word(npe_archive_kind k)
{
    switch (k) {
    case NPE_ARCHIVE_STATE_DICT: return "state_dict";
    case NPE_ARCHIVE_FULL_MODEL: return "full-model (torch.save(model))";
    case NPE_ARCHIVE_TORCHSCRIPT: return "TorchScript";
    default: return "pickled object";
    }
}

static int import(imp *I, const npe_ts_options *opt)
{
    npe_torch_file *f = I->f;
    const char *fwd = opt && opt->forward_name ? opt->forward_name : "forward";
    if (f->kind != NPE_ARCHIVE_TORCHSCRIPT || !f->zip)
        return npe_error_set(I->err, NPE_EUNSUPPORTED,
                             "%s is a %s archive, not TorchScript: save the model with "
                             "torch.jit.trace(model.eval(), example_input).save(path)", f->path,
                             kind_word(f->kind));
    const npe_pv *root = f->root;
    if (!root || root->kind != NPE_PV_OBJECT || !root->u.call.state ||
        root->u.call.state->kind != NPE_PV_DICT)
        return npe_error_set(I->err, NPE_EFORMAT, "%s: data.pkl does not hold a module object",
                             f->path);
    int r = index_tensors(I);
    if (r)
        return r;
    cfile *cf;
    const npe_ts_class *cls;
    const char *qual;
    if ((r = class_of(I, NULL, NULL, root, &cf, &cls, &qual)))
        return r;
    const npe_ts_method *m = npe_ts_find_method(cls, fwd);
    if (!m) {
        char names[512] = "";
        size_t k = 0;
        for (int i = 0; i < cls->n_methods && k + 80 < sizeof names; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "",
                                  cls->methods[i].name);
        return npe_error_set(I->err, NPE_ENOTFOUND, "%s: the root module (%s) has no method '%s'; "
                             "it has: %s", f->path, qual, fwd, names[0] ? names : "none");
    }
    if (m->n_params < 1)
        return npe_error_set(I->err, NPE_EFORMAT, "%s: method %s has no self", f->path, fwd);
    /* graph inputs first, so they keep the parameter names */
    int nin = m->n_params - 1;
    if (nin > NPE_IR_MAX_OUTPUTS)
        return npe_error_set(I->err, NPE_ELIMIT, "%s: too many inputs", f->path);
    ref *args = ialloc(I, (size_t)(nin ? nin : 1) * sizeof *args);
    int *in_ids = ialloc(I, (size_t)(nin ? nin : 1) * sizeof *in_ids);
    if (!args || !in_ids)
        return oom(I);
    frame top = {0};
    top.cf = cf;
    top.scope = "";
    top.cls = qual;
    top.m = m;
    for (int i = 0; i < nin; i++) {
        const npe_ts_param *p = &m->params[i + 1];
        char ty[256];
        const char *tn = p->type ? npe_ts_dotted(p->type, ty, sizeof ty) : "Tensor";
        if (!tn || strcmp(tn, "Tensor") != 0)
            return ferr(I, &top, &p->loc, NPE_EUNSUPPORTED, "input '%s' of %s is not a Tensor "
                        "(only tensor inputs are supported)", p->name, fwd);
        int id = npe_graph_add_value(I->g, NPE_VT_TENSOR, p->name);
        if (id < 0)
            return oom(I);
        I->g->values[id].flags |= NPE_VF_INPUT;
        in_ids[i] = id;
        args[i] = value_ref(id);
    }
    ref self = {0};
    self.kind = R_MODULE;
    self.obj = root;
    self.path = "";
    self.span.source = -1;
    ref result;
    if ((r = call_method(I, NULL, &m->loc, &self, cf, qual, m, args, NULL, nin, &result)))
        return r;
    int *outs = NULL, nout = 0, cap = 0;
    if ((r = flatten_outputs(I, &top, I->have_ret ? &I->ret_loc : &m->loc, &result, &outs, &nout,
                             &cap, 0))) {
        free(outs);
        return r;
    }
    if (!nout) {
        free(outs);
        return npe_error_set(I->err, NPE_EUNSUPPORTED, "%s: method %s returns no tensor", f->path,
                             fwd);
    }
    r = npe_graph_set_inputs(I->g, in_ids, nin);
    if (!r)
        r = npe_graph_set_outputs(I->g, outs, nout);
    free(outs);
    if (r)
        return oom(I);
    if ((r = npe_graph_remove_dead(I->g, I->err)))
        return r;
    if (opt && opt->n_cut_outputs > 0 &&
        (r = npe_graph_cut_outputs(I->g, opt->cut_outputs, opt->n_cut_outputs, I->err)))
        return r;
    return npe_graph_validate(I->g, I->err);
}

static int import_opened(npe_torch_file *f, const npe_ts_options *opt, npe_graph **out,
                         npe_error *err)
{
    imp I = {0};
    I.f = f;
    I.err = err;
    int r = npe_graph_create(&I.g);
    if (r)
        return npe_error_set(err, r, "out of memory");
    I.g->origin = malloc(strlen(f->path) + 1);
    if (!I.g->origin) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free_state;
    }
    strcpy(I.g->origin, f->path);
    r = import(&I, opt);
out_free_state:
    for (int i = 0; i < I.n_files; i++) {
        npe_ts_module_free(I.files[i]->mod);
        free(I.files[i]->module);
        free(I.files[i]);
    }
    free(I.files);
    free(I.tkeys);
    free(I.tvals);
    free(I.tensor_value);
    free(I.const_value);
    free(I.vi);
    npe_pkl_free(I.consts_doc);
    npe_ts_arena_free(&I.arena);
    if (r) {
        npe_graph_destroy(I.g);
        return r;
    }
    *out = I.g;
    return 0;
}

int npe_ts_import(const char *path, const npe_ts_options *opt, npe_graph **out, npe_error *err)
{
    *out = NULL;
    npe_torch_file *f = NULL;
    int r = npe_torch_open(path, &f, err);
    if (r)
        return r;
    r = import_opened(f, opt, out, err);
    npe_torch_close(f);
    return r;
}

int npe_ts_import_mem(const void *data, size_t size, const char *name, const npe_ts_options *opt,
                      npe_graph **out, npe_error *err)
{
    *out = NULL;
    npe_torch_file *f = NULL;
    int r = npe_torch_open_mem(data, size, name, &f, err);
    if (r)
        return r;
    r = import_opened(f, opt, out, err);
    npe_torch_close(f);
    return r;
}
