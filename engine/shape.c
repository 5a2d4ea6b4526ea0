/* Shape inference: every tensor's shape and every scalar's value from the input shapes, in node
 * order, with PyTorch's rules per op; shape arithmetic (torch.size, NumToTensor, int(),
 * floor_divide on sizes) is evaluated here, so the graph keeps it symbolic and can be inferred
 * again after pruning changed parameters or literals. */
#include "ir.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATIC_NUMEL (1 << 24) /* factories evaluated here (torch.ones) */

typedef struct ictx {
    npe_graph *g;
    npe_error *err;
    int node;
} ictx;

NPE_PRINTF(3, 4) static int nerr(ictx *C, int code, const char *fmt, ...)
{
    char msg[640], where[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    npe_node_desc(C->g, C->node, where, sizeof where);
    return npe_error_set(C->err, code, "%s: %s", where, msg);
}

static void shape_str(const npe_value *v, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < v->ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %" PRId64 : "%" PRId64, v->shape[d]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

/* ---- Reading inputs -------------------------------------------------------------------------- */
typedef struct num {
    int is_int;
    int64_t i;
    double f;
} num;

static int is_int_dtype(npe_dtype t)
{
    return t == NPE_DTYPE_I64 || t == NPE_DTYPE_I32 || t == NPE_DTYPE_I16 || t == NPE_DTYPE_I8 ||
           t == NPE_DTYPE_U8 || t == NPE_DTYPE_BOOL;
}

static int known(const npe_graph *g, int vid, int depth)
{
    const npe_value *v = &g->values[vid];
    if (v->type == NPE_VT_NONE)
        return 1;
    if (v->type == NPE_VT_LIST) {
        if (depth > 16)
            return 0;
        for (int i = 0; i < v->n_items; i++)
            if (!known(g, v->items[i], depth + 1))
                return 0;
        return 1;
    }
    return (v->flags & NPE_VF_KNOWN) != 0;
}

/* A static 0-d (or one-element) tensor, or an int/float/bool scalar. */
static int get_num(const npe_graph *g, int vid, num *out)
{
    const npe_value *v = &g->values[vid];
    if (!(v->flags & NPE_VF_KNOWN))
        return 0;
    switch (v->type) {
    case NPE_VT_INT:
    case NPE_VT_BOOL:
        out->is_int = 1;
        out->i = v->i;
        out->f = (double)v->i;
        return 1;
    case NPE_VT_FLOAT:
        out->is_int = 0;
        out->f = v->f;
        out->i = (int64_t)v->f;
        return 1;
    case NPE_VT_TENSOR:
        if (!v->data || v->numel_data != 1)
            return 0;
        out->is_int = is_int_dtype(v->dtype);
        out->i = out->is_int ? v->i : (int64_t)v->f;
        out->f = out->is_int ? (double)v->i : v->f;
        return 1;
    default:
        return 0;
    }
}

static int get_int(ictx *C, int vid, const char *what, int64_t *out)
{
    num n;
    *out = 0;
    if (!get_num(C->g, vid, &n) || !n.is_int)
        return nerr(C, NPE_EUNSUPPORTED, "%s must be an integer known before running (found %s)",
                    what, npe_vtype_name(C->g->values[vid].type));
    *out = n.i;
    return 0;
}

static int get_float(ictx *C, int vid, const char *what, double *out)
{
    num n;
    *out = 0;
    if (!get_num(C->g, vid, &n))
        return nerr(C, NPE_EUNSUPPORTED, "%s must be a number known before running (found %s)",
                    what, npe_vtype_name(C->g->values[vid].type));
    *out = n.f;
    return 0;
}

static int get_bool(ictx *C, int vid, const char *what, int *out)
{
    num n;
    *out = 0;
    if (!get_num(C->g, vid, &n) || !n.is_int)
        return nerr(C, NPE_EUNSUPPORTED, "%s must be a bool known before running", what);
    *out = n.i != 0;
    return 0;
}

static int is_none(const npe_graph *g, int vid)
{
    return g->values[vid].type == NPE_VT_NONE;
}

/* A list of ints (or one int, which PyTorch repeats for int[2] arguments). */
static int get_ints(ictx *C, int vid, const char *what, int64_t *out, int max, int *n)
{
    *n = 0;
    const npe_value *v = &C->g->values[vid];
    if (v->type == NPE_VT_LIST) {
        if (v->n_items > max)
            return nerr(C, NPE_EUNSUPPORTED, "%s has %d items (at most %d)", what, v->n_items, max);
        for (int i = 0; i < v->n_items; i++) {
            num x;
            if (!get_num(C->g, v->items[i], &x) || !x.is_int)
                return nerr(C, NPE_EUNSUPPORTED, "%s: item %d is not an integer known before "
                            "running", what, i);
            out[i] = x.i;
        }
        *n = v->n_items;
        return 0;
    }
    num x;
    if (get_num(C->g, vid, &x) && x.is_int) {
        out[0] = x.i;
        *n = 1;
        return 0;
    }
    return nerr(C, NPE_EUNSUPPORTED, "%s must be a list of integers", what);
}

/* An int[2] argument (kernel size, stride...): one value is repeated. */
static int get_pair(ictx *C, int vid, const char *what, int64_t out[2])
{
    out[0] = out[1] = 0;
    int n;
    int64_t v[8];
    int r = get_ints(C, vid, what, v, 8, &n);
    if (r)
        return r;
    if (n == 1) {
        out[0] = out[1] = v[0];
    } else if (n == 2) {
        out[0] = v[0];
        out[1] = v[1];
    } else {
        return nerr(C, NPE_EUNSUPPORTED, "%s has %d values (2-D ops take 1 or 2)", what, n);
    }
    return 0;
}

static const npe_value *tensor_in(ictx *C, int k, const char *what)
{
    const npe_node *n = &C->g->nodes[C->node];
    const npe_value *v = &C->g->values[n->in[k]];
    if (v->type != NPE_VT_TENSOR) {
        nerr(C, NPE_EUNSUPPORTED, "%s must be a tensor (found %s)", what, npe_vtype_name(v->type));
        return NULL;
    }
    if (!(v->flags & NPE_VF_KNOWN)) {
        nerr(C, NPE_EFORMAT, "%s has no inferred shape", what);
        return NULL;
    }
    if (v->flags & NPE_VF_UNUSABLE) {
        nerr(C, NPE_EUNSUPPORTED, "%s is the indices output of a max pooling or of "
             "torch.max/min with a dim, which lbprune does not compute (values only)", what);
        return NULL;
    }
    return v;
}

static int wrap_dim(ictx *C, int64_t d, int ndim, const char *what, int *out)
{
    *out = 0;
    int64_t n = ndim > 0 ? ndim : 1;
    if (d < -n || d >= n)
        return nerr(C, NPE_EFORMAT, "%s %" PRId64 " is out of range for %d dims", what, d, ndim);
    *out = (int)(d < 0 ? d + n : d);
    return 0;
}

/* ---- Writing outputs ------------------------------------------------------------------------- */
static void set_tensor(npe_value *v, int ndim, const int64_t *shape)
{
    v->type = NPE_VT_TENSOR;
    v->dtype = NPE_DTYPE_F32;
    v->ndim = ndim;
    memset(v->shape, 0, sizeof v->shape);
    for (int d = 0; d < ndim; d++)
        v->shape[d] = shape[d];
    v->flags |= NPE_VF_KNOWN;
}

static int out_shape(ictx *C, int k, int ndim, const int64_t *shape)
{
    npe_value *v = &C->g->values[C->g->nodes[C->node].out[k]];
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return nerr(C, NPE_EFORMAT, "output dim %d would be %" PRId64, d, shape[d]);
    npe_value tmp = {0};
    tmp.ndim = ndim;
    memcpy(tmp.shape, shape, (size_t)ndim * sizeof *shape);
    if (npe_value_numel(&tmp) < 0 || npe_value_numel(&tmp) > (INT64_C(1) << 40))
        return nerr(C, NPE_ELIMIT, "output would have too many elements");
    set_tensor(v, ndim, shape);
    return 0;
}

static int same_shape_out(ictx *C, const npe_value *x)
{
    return out_shape(C, 0, x->ndim, x->shape);
}

/* A static scalar result: 0-d tensor (tensor=1) or an int/float value. */
static int set_static(ictx *C, int k, num x, int tensor, npe_dtype dt)
{
    npe_value *v = &C->g->values[C->g->nodes[C->node].out[k]];
    npe_value_drop_data(v);
    v->data = NULL;
    v->numel_data = 0;
    v->i = x.is_int ? x.i : (int64_t)x.f;
    v->f = x.is_int ? (double)x.i : x.f;
    if (tensor) {
        v->type = NPE_VT_TENSOR;
        v->dtype = dt;
        v->ndim = 0;
        v->data = malloc(sizeof(float));
        if (!v->data)
            return nerr(C, NPE_ENOMEM, "out of memory");
        v->data[0] = (float)v->f;
        v->numel_data = 1;
    } else {
        v->type = x.is_int ? NPE_VT_INT : NPE_VT_FLOAT;
    }
    v->flags |= NPE_VF_KNOWN | NPE_VF_STATIC;
    return 0;
}

/* ---- Per-op rules ---------------------------------------------------------------------------- */
static int broadcast(ictx *C, const npe_value *a, const npe_value *b, int *ndim, int64_t *shape)
{
    int na = a->type == NPE_VT_TENSOR ? a->ndim : 0, nb = b->type == NPE_VT_TENSOR ? b->ndim : 0;
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a->shape[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b->shape[i - (n - nb)];
        if (da != db && da != 1 && db != 1) {
            char sa[160], sb[160];
            shape_str(a, sa, sizeof sa);
            shape_str(b, sb, sizeof sb);
            return nerr(C, NPE_EFORMAT, "shapes %s and %s do not broadcast (dim %d: %" PRId64
                        " vs %" PRId64 ")", sa, sb, i, da, db);
        }
        shape[i] = da == 1 ? db : da;
    }
    *ndim = n;
    return 0;
}

static int is_scalar_like(const npe_value *v)
{
    return v->type == NPE_VT_INT || v->type == NPE_VT_FLOAT || v->type == NPE_VT_BOOL ||
           (v->type == NPE_VT_TENSOR && (v->flags & NPE_VF_STATIC) && v->data &&
            v->numel_data == 1 && v->ndim == 0);
}

static npe_dtype promote(const npe_value *a, const npe_value *b)
{
    npe_dtype da = a->type == NPE_VT_TENSOR ? a->dtype : (a->type == NPE_VT_FLOAT ? NPE_DTYPE_F64 : NPE_DTYPE_I64);
    npe_dtype db = b->type == NPE_VT_TENSOR ? b->dtype : (b->type == NPE_VT_FLOAT ? NPE_DTYPE_F64 : NPE_DTYPE_I64);
    if (!is_int_dtype(da) && !is_int_dtype(db))
        return da == NPE_DTYPE_F64 && db == NPE_DTYPE_F64 ? NPE_DTYPE_F64 : NPE_DTYPE_F32;
    if (!is_int_dtype(da))
        return da;
    if (!is_int_dtype(db))
        return db;
    return NPE_DTYPE_I64;
}

static int64_t floordiv64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int infer_arith(ictx *C, const npe_node *n)
{
    npe_graph *g = C->g;
    const npe_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    double alpha = 1;
    if ((n->op == NPE_OP_ADD || n->op == NPE_OP_SUB || n->op == NPE_OP_RSUB)) {
        int r = get_float(C, n->in[2], "alpha", &alpha);
        if (r)
            return r;
    }
    for (int k = 0; k < 2; k++) {
        const npe_value *v = k ? b : a;
        if (v->type != NPE_VT_TENSOR && !is_scalar_like(v))
            return nerr(C, NPE_EUNSUPPORTED, "operand %d is a %s", k + 1, npe_vtype_name(v->type));
        if (v->type == NPE_VT_TENSOR && !(v->flags & NPE_VF_KNOWN))
            return nerr(C, NPE_EFORMAT, "operand %d has no inferred shape", k + 1);
        if (v->flags & NPE_VF_UNUSABLE)
            return nerr(C, NPE_EUNSUPPORTED, "operand %d is the indices of a max pooling or "
                        "of torch.max/min with a dim (values only are computed)", k + 1);
    }
    if (is_scalar_like(a) && is_scalar_like(b)) {
        /* shape arithmetic */
        num x, y, z = {0};
        get_num(g, n->in[0], &x);
        get_num(g, n->in[1], &y);
        int as_int = x.is_int && y.is_int && n->op != NPE_OP_DIV &&
                     (n->op != NPE_OP_POW || y.i >= 0);
        z.is_int = as_int;
        if (as_int) {
            int64_t al = (int64_t)alpha;
            switch (n->op) {
            case NPE_OP_ADD: z.i = x.i + al * y.i; break;
            case NPE_OP_SUB: z.i = x.i - al * y.i; break;
            case NPE_OP_RSUB: z.i = y.i - al * x.i; break;
            case NPE_OP_MUL: z.i = x.i * y.i; break;
            case NPE_OP_FLOOR_DIV:
                if (y.i == 0)
                    return nerr(C, NPE_EFORMAT, "integer division by zero");
                z.i = floordiv64(x.i, y.i);
                break;
            case NPE_OP_MAXIMUM: z.i = x.i > y.i ? x.i : y.i; break;
            case NPE_OP_MINIMUM: z.i = x.i < y.i ? x.i : y.i; break;
            case NPE_OP_POW: {
                int64_t p = 1;
                for (int64_t k = 0; k < y.i && k < 64; k++)
                    p *= x.i;
                z.i = p;
                break;
            }
            default: break;
            }
        } else {
            switch (n->op) {
            case NPE_OP_ADD: z.f = x.f + alpha * y.f; break;
            case NPE_OP_SUB: z.f = x.f - alpha * y.f; break;
            case NPE_OP_RSUB: z.f = y.f - alpha * x.f; break;
            case NPE_OP_MUL: z.f = x.f * y.f; break;
            case NPE_OP_DIV: z.f = x.f / y.f; break;
            case NPE_OP_FLOOR_DIV: z.f = floor(x.f / y.f); break;
            case NPE_OP_POW: z.f = pow(x.f, y.f); break;
            case NPE_OP_MAXIMUM: z.f = fmax(x.f, y.f); break;
            case NPE_OP_MINIMUM: z.f = fmin(x.f, y.f); break;
            default: break;
            }
        }
        int tensor = a->type == NPE_VT_TENSOR || b->type == NPE_VT_TENSOR;
        npe_dtype dt = promote(a, b);
        if (n->op == NPE_OP_DIV && is_int_dtype(dt))
            dt = NPE_DTYPE_F32;
        C->g->nodes[C->node].flags |= NPE_NF_STATIC;
        return set_static(C, 0, z, tensor, dt);
    }
    if (n->op == NPE_OP_FLOOR_DIV)
        return nerr(C, NPE_EUNSUPPORTED, "floor_divide of activations is not supported (only of "
                    "sizes)");
    int nd = 0;
    int64_t shape[NPE_MAX_DIMS];
    int r = broadcast(C, a, b, &nd, shape);
    if (r)
        return r;
    return out_shape(C, 0, nd, shape);
}

static int conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t op,
                    int transposed)
{
    if (transposed)
        return (int)((in - 1) * s - 2 * p + d * (k - 1) + op + 1);
    int64_t num_ = in + 2 * p - d * (k - 1) - 1;
    if (num_ < 0)
        return -1;
    return (int)(num_ / s + 1);
}

static int infer_conv(ictx *C, const npe_node *n)
{
    npe_graph *g = C->g;
    const npe_value *x = tensor_in(C, 0, "input"), *w = tensor_in(C, 1, "weight");
    if (!x || !w)
        return C->err ? C->err->code : NPE_EFORMAT;
    int64_t st[2], pd[2], dl[2], op[2] = {0, 0}, extra[2] = {0, 0}, groups;
    int transposed = 0;
    const npe_value *pv = &g->values[n->in[NPE_CONV_PADDING]];
    int r;
    if ((r = get_pair(C, n->in[NPE_CONV_STRIDE], "stride", st)) ||
        (pv->type != NPE_VT_STR && (r = get_pair(C, n->in[NPE_CONV_PADDING], "padding", pd))) ||
        (r = get_pair(C, n->in[NPE_CONV_DILATION], "dilation", dl)) ||
        (r = get_bool(C, n->in[NPE_CONV_TRANSPOSED], "transposed", &transposed)) ||
        (r = get_int(C, n->in[NPE_CONV_GROUPS], "groups", &groups)))
        return r;
    if (transposed && (r = get_pair(C, n->in[NPE_CONV_OUTPUT_PADDING], "output_padding", op)))
        return r;
    if (x->ndim != 4 || w->ndim != 4)
        return nerr(C, NPE_EUNSUPPORTED, "only 2-D convolution of (N, C, H, W) inputs is "
                    "supported (input has %d dims, weight %d)", x->ndim, w->ndim);
    if (pv->type == NPE_VT_STR) {
        /* PyTorch's _convolution_mode: 'valid' is no padding; 'same' pads d * (k - 1) in all,
         * half before, the odd pixel after (an extra pad of the input's end) */
        int same = strcmp(pv->s, "same") == 0;
        if (!same && strcmp(pv->s, "valid") != 0)
            return nerr(C, NPE_EUNSUPPORTED, "padding='%s' (only 'same', 'valid' or sizes)", pv->s);
        if (transposed)
            return nerr(C, NPE_EUNSUPPORTED, "padding='%s' of a transposed convolution", pv->s);
        for (int i = 0; i < 2; i++) {
            if (same && st[i] != 1)
                return nerr(C, NPE_EFORMAT, "padding='same' needs stride 1 (found %" PRId64 ")",
                            st[i]);
            int64_t total = same && dl[i] > 0 && dl[i] < (1 << 20) ? dl[i] * (w->shape[2 + i] - 1) : 0;
            pd[i] = total / 2;
            extra[i] = total - 2 * pd[i];
        }
    }
    for (int i = 0; i < 2; i++)
        if (st[i] < 1 || dl[i] < 1 || pd[i] < 0 || op[i] < 0)
            return nerr(C, NPE_EFORMAT, "bad stride/padding/dilation");
    if (groups < 1 || x->shape[1] % groups)
        return nerr(C, NPE_EFORMAT, "input has %" PRId64 " channels, not divisible by groups %" PRId64,
                    x->shape[1], groups);
    int64_t cout;
    if (!transposed) {
        if (w->shape[1] * groups != x->shape[1] || w->shape[0] % groups)
            return nerr(C, NPE_EFORMAT, "input has %" PRId64 " channels but weight '%s' [%" PRId64
                        ", %" PRId64 ", ...] with groups %" PRId64 " expects %" PRId64,
                        x->shape[1], w->name, w->shape[0], w->shape[1], groups,
                        w->shape[1] * groups);
        cout = w->shape[0];
    } else {
        if (w->shape[0] != x->shape[1])
            return nerr(C, NPE_EFORMAT, "input has %" PRId64 " channels but transposed weight "
                        "'%s' expects %" PRId64, x->shape[1], w->name, w->shape[0]);
        cout = w->shape[1] * groups;
    }
    const npe_value *b = &g->values[n->in[NPE_CONV_BIAS]];
    if (b->type != NPE_VT_NONE &&
        (b->type != NPE_VT_TENSOR || b->ndim != 1 || b->shape[0] != cout))
        return nerr(C, NPE_EFORMAT, "bias '%s' does not have %" PRId64 " elements", b->name, cout);
    int64_t shape[4] = {x->shape[0], cout, 0, 0};
    for (int i = 0; i < 2; i++) {
        shape[2 + i] = conv_out(x->shape[2 + i] + extra[i], w->shape[2 + i], st[i], pd[i], dl[i],
                                op[i], transposed);
        if (shape[2 + i] <= 0)
            return nerr(C, NPE_EFORMAT, "input of size %" PRId64 "x%" PRId64 " is too small for "
                        "kernel %" PRId64 "x%" PRId64, x->shape[2], x->shape[3], w->shape[2],
                        w->shape[3]);
    }
    return out_shape(C, 0, 4, shape);
}

static int infer_linear(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input"), *w = tensor_in(C, 1, "weight");
    if (!x || !w)
        return C->err ? C->err->code : NPE_EFORMAT;
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) {
        char sx[160], sw[160];
        shape_str(x, sx, sizeof sx);
        shape_str(w, sw, sizeof sw);
        return nerr(C, NPE_EFORMAT, "input %s does not match weight '%s' %s", sx, w->name, sw);
    }
    const npe_value *b = &C->g->values[n->in[2]];
    if (b->type != NPE_VT_NONE && (b->type != NPE_VT_TENSOR || b->ndim != 1 ||
                                   b->shape[0] != w->shape[0]))
        return nerr(C, NPE_EFORMAT, "bias '%s' does not have %" PRId64 " elements", b->name,
                    w->shape[0]);
    int64_t shape[NPE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    return out_shape(C, 0, x->ndim, shape);
}

static int infer_batch_norm(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int training = 0;
    int r = get_bool(C, n->in[NPE_BN_TRAINING], "training", &training);
    if (r)
        return r;
    if (training)
        return nerr(C, NPE_EUNSUPPORTED, "batch_norm was traced in training mode: call "
                    "model.eval() before torch.jit.trace");
    double eps;
    if ((r = get_float(C, n->in[NPE_BN_EPS], "eps", &eps)))
        return r;
    if (x->ndim < 2)
        return nerr(C, NPE_EFORMAT, "input has %d dims (batch_norm needs at least 2)", x->ndim);
    static const int slots[] = {NPE_BN_WEIGHT, NPE_BN_BIAS, NPE_BN_MEAN, NPE_BN_VAR};
    for (int k = 0; k < 4; k++) {
        const npe_value *p = &C->g->values[n->in[slots[k]]];
        if (p->type == NPE_VT_NONE && slots[k] < NPE_BN_MEAN)
            continue;
        if (p->type != NPE_VT_TENSOR || !p->data || p->ndim != 1 || p->shape[0] != x->shape[1])
            return nerr(C, NPE_EFORMAT, "'%s' must hold %" PRId64 " values (one per channel)",
                        p->name[0] ? p->name : "running statistics", x->shape[1]);
    }
    return same_shape_out(C, x);
}

static int pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int ceil_mode)
{
    int64_t num_ = in + 2 * p - d * (k - 1) - 1;
    if (num_ < 0)
        return -1;
    int64_t o = (ceil_mode ? (num_ + s - 1) / s : num_ / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p)
        o--;
    return (int)o;
}

static int infer_pool(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int avg = n->op == NPE_OP_AVG_POOL2D;
    int64_t k[2], s[2], p[2], d[2] = {1, 1};
    int ceil_mode = 0, r;
    if ((r = get_pair(C, n->in[1], "kernel_size", k)) || (r = get_pair(C, n->in[3], "padding", p)))
        return r;
    const npe_value *sv = &C->g->values[n->in[2]];
    if (sv->type == NPE_VT_LIST && sv->n_items == 0) { /* stride=[] means the kernel size */
        s[0] = k[0];
        s[1] = k[1];
    } else if ((r = get_pair(C, n->in[2], "stride", s))) {
        return r;
    }
    if (!avg && (r = get_pair(C, n->in[4], "dilation", d)))
        return r;
    if ((r = get_bool(C, n->in[avg ? 4 : 5], "ceil_mode", &ceil_mode)))
        return r;
    if (avg) {
        int cip;
        if ((r = get_bool(C, n->in[5], "count_include_pad", &cip)))
            return r;
        if (!is_none(C->g, n->in[6])) {
            int64_t dv;
            if ((r = get_int(C, n->in[6], "divisor_override", &dv)))
                return r;
            if (dv <= 0)
                return nerr(C, NPE_EFORMAT, "divisor_override must be positive");
        }
    }
    if (x->ndim != 4)
        return nerr(C, NPE_EUNSUPPORTED, "2-D pooling needs an (N, C, H, W) input (found %d dims)",
                    x->ndim);
    int64_t shape[4] = {x->shape[0], x->shape[1], 0, 0};
    for (int i = 0; i < 2; i++) {
        if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0 || p[i] > k[i] / 2)
            return nerr(C, NPE_EFORMAT, "bad pooling parameters (kernel %" PRId64 ", stride %"
                        PRId64 ", padding %" PRId64 ")", k[i], s[i], p[i]);
        shape[2 + i] = pool_out(x->shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode);
        if (shape[2 + i] <= 0)
            return nerr(C, NPE_EFORMAT, "input of size %" PRId64 "x%" PRId64 " is too small for "
                        "the pooling window", x->shape[2], x->shape[3]);
    }
    return out_shape(C, 0, 4, shape);
}

static int infer_adaptive(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    if (x->ndim != 4)
        return nerr(C, NPE_EUNSUPPORTED, "adaptive pooling needs an (N, C, H, W) input");
    const npe_value *os = &C->g->values[n->in[1]];
    int64_t o[2];
    if (os->type == NPE_VT_LIST && os->n_items == 2) {
        for (int i = 0; i < 2; i++) {
            if (is_none(C->g, os->items[i])) {
                o[i] = x->shape[2 + i];
            } else {
                int r = get_int(C, os->items[i], "output_size", &o[i]);
                if (r)
                    return r;
            }
        }
    } else {
        int r = get_pair(C, n->in[1], "output_size", o);
        if (r)
            return r;
    }
    if (o[0] < 1 || o[1] < 1)
        return nerr(C, NPE_EFORMAT, "output size must be positive");
    int64_t shape[4] = {x->shape[0], x->shape[1], o[0], o[1]};
    int r = out_shape(C, 0, 4, shape);
    if (!r && n->n_out > 1)
        r = out_shape(C, 1, 4, shape);
    return r;
}

static int infer_upsample(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    if (x->ndim != 4)
        return nerr(C, NPE_EUNSUPPORTED, "2-D upsampling needs an (N, C, H, W) input");
    int bil = n->op == NPE_OP_UPSAMPLE_BILINEAR2D;
    int sf_slot = bil ? 3 : 2, r;
    if (bil) {
        int ac;
        if ((r = get_bool(C, n->in[2], "align_corners", &ac)))
            return r;
    }
    int64_t o[2];
    if (!is_none(C->g, n->in[1])) {
        if ((r = get_pair(C, n->in[1], "output_size", o)))
            return r;
    } else {
        const npe_value *sf = &C->g->values[n->in[sf_slot]];
        if (sf->type != NPE_VT_LIST || sf->n_items < 1 || sf->n_items > 2)
            return nerr(C, NPE_EFORMAT, "needs an output size or two scale factors");
        for (int i = 0; i < 2; i++) {
            double s;
            if ((r = get_float(C, sf->items[sf->n_items == 1 ? 0 : i], "scale factor", &s)))
                return r;
            if (!(s > 0) || s > 1e6)
                return nerr(C, NPE_EFORMAT, "scale factor %g", s);
            o[i] = (int64_t)floor((double)x->shape[2 + i] * s);
        }
    }
    if (o[0] < 1 || o[1] < 1 || o[0] > (1 << 24) || o[1] > (1 << 24))
        return nerr(C, NPE_EFORMAT, "output size %" PRId64 "x%" PRId64, o[0], o[1]);
    int64_t shape[4] = {x->shape[0], x->shape[1], o[0], o[1]};
    return out_shape(C, 0, 4, shape);
}

static int infer_pad(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    const npe_value *mode = &C->g->values[n->in[2]];
    int constant = mode->type == NPE_VT_STR && strcmp(mode->s, "constant") == 0;
    int reflect = mode->type == NPE_VT_STR && strcmp(mode->s, "reflect") == 0;
    int replicate = mode->type == NPE_VT_STR && strcmp(mode->s, "replicate") == 0;
    if (!constant && !reflect && !replicate)
        return nerr(C, NPE_EUNSUPPORTED, "padding mode '%s' is not supported (constant, reflect "
                    "or replicate)", mode->type == NPE_VT_STR ? mode->s : "?");
    if (!is_none(C->g, n->in[3])) {
        double v;
        int r = get_float(C, n->in[3], "value", &v);
        if (r)
            return r;
    }
    int64_t p[16];
    int np = 0, r = get_ints(C, n->in[1], "pad", p, 16, &np);
    if (r)
        return r;
    if (np % 2 || np / 2 > x->ndim)
        return nerr(C, NPE_EFORMAT, "pad has %d values for a %d-dim input", np, x->ndim);
    if (!constant) {
        if (np > 4)
            return nerr(C, NPE_EUNSUPPORTED, "%s padding of more than the last two dims is not "
                        "supported", mode->s);
        for (int i = 0; i < np; i++) {
            int64_t size = x->shape[x->ndim - 1 - i / 2];
            if (p[i] < 0)
                return nerr(C, NPE_EUNSUPPORTED, "%s padding by %" PRId64 " (negative)", mode->s,
                            p[i]);
            if (reflect && p[i] >= size)
                return nerr(C, NPE_EFORMAT, "reflect padding by %" PRId64 " of a dim of size %"
                            PRId64 " (it must be smaller than the size)", p[i], size);
            if (replicate && p[i] > 0 && size == 0)
                return nerr(C, NPE_EFORMAT, "replicate padding of an empty dim");
        }
    }
    int64_t shape[NPE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    for (int i = 0; i < np / 2; i++) {
        int d = x->ndim - 1 - i;
        shape[d] += p[2 * i] + p[2 * i + 1];
        if (shape[d] < 0)
            return nerr(C, NPE_EFORMAT, "padding makes dim %d negative", d);
    }
    return out_shape(C, 0, x->ndim, shape);
}

static int infer_cat(ictx *C, const npe_node *n)
{
    int nt = n->n_in - 1;
    const npe_value *x0 = tensor_in(C, 0, "first tensor");
    if (!x0)
        return C->err->code;
    int64_t dim;
    int r = get_int(C, n->in[nt], "dim", &dim);
    if (r)
        return r;
    int stack = n->op == NPE_OP_STACK, d = 0;
    if ((r = wrap_dim(C, dim, x0->ndim + stack, "dim", &d)))
        return r;
    int64_t shape[NPE_MAX_DIMS];
    int nd = x0->ndim + stack;
    if (nd > NPE_MAX_DIMS)
        return nerr(C, NPE_EUNSUPPORTED, "more than %d dims", NPE_MAX_DIMS);
    int64_t total = 0;
    for (int i = 0; i < nt; i++) {
        char what[32];
        snprintf(what, sizeof what, "tensor %d", i);
        const npe_value *x = tensor_in(C, i, what);
        if (!x)
            return C->err->code;
        if (x->ndim != x0->ndim)
            return nerr(C, NPE_EFORMAT, "tensor %d has %d dims, tensor 0 has %d", i, x->ndim,
                        x0->ndim);
        for (int k = 0; k < x->ndim; k++) {
            if ((stack || k != d) && x->shape[k] != x0->shape[k]) {
                char s0[160], s1[160];
                shape_str(x0, s0, sizeof s0);
                shape_str(x, s1, sizeof s1);
                return nerr(C, NPE_EFORMAT, "tensor 0 %s and tensor %d %s differ in dim %d", s0,
                            i, s1, k);
            }
        }
        if (!stack)
            total += x->shape[d];
    }
    if (stack) {
        for (int k = 0, j = 0; k < nd; k++)
            shape[k] = k == d ? nt : x0->shape[j++];
    } else {
        memcpy(shape, x0->shape, sizeof shape);
        shape[d] = total;
    }
    return out_shape(C, 0, nd, shape);
}

static int infer_split(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t dim;
    int d = 0, r;
    if ((r = get_int(C, n->in[n->op == NPE_OP_UNBIND ? 1 : 2], "dim", &dim)) ||
        (r = wrap_dim(C, dim, x->ndim, "dim", &d)))
        return r;
    if (x->ndim == 0)
        return nerr(C, NPE_EFORMAT, "cannot split a 0-d tensor");
    int64_t size = x->shape[d];
    int64_t pieces[NPE_IR_MAX_OUTPUTS > 4096 ? 4096 : NPE_IR_MAX_OUTPUTS];
    int np = 0;
    if (n->op == NPE_OP_UNBIND) {
        if (size > 4096)
            return nerr(C, NPE_ELIMIT, "unbind into %" PRId64 " pieces", size);
        for (int64_t i = 0; i < size; i++)
            pieces[np++] = 1;
    } else if (n->op == NPE_OP_SPLIT_WITH_SIZES) {
        if ((r = get_ints(C, n->in[1], "split_sizes", pieces, 4096, &np)))
            return r;
        int64_t sum = 0;
        for (int i = 0; i < np; i++) {
            if (pieces[i] < 0)
                return nerr(C, NPE_EFORMAT, "negative split size");
            sum += pieces[i];
        }
        if (sum != size)
            return nerr(C, NPE_EFORMAT, "split sizes add up to %" PRId64 " but dim %d has %" PRId64,
                        sum, d, size);
    } else {
        int64_t s;
        if (n->op == NPE_OP_CHUNK) {
            int64_t chunks;
            if ((r = get_int(C, n->in[1], "chunks", &chunks)))
                return r;
            if (chunks < 1)
                return nerr(C, NPE_EFORMAT, "chunks must be positive");
            s = (size + chunks - 1) / chunks;
        } else if ((r = get_int(C, n->in[1], "split_size", &s))) {
            return r;
        }
        if (s < 1 && size > 0)
            return nerr(C, NPE_EFORMAT, "split size must be positive");
        if (size == 0) {
            pieces[np++] = 0;
        } else {
            for (int64_t at = 0; at < size; at += s) {
                if (np >= 4096)
                    return nerr(C, NPE_ELIMIT, "too many pieces");
                pieces[np++] = at + s <= size ? s : size - at;
            }
        }
    }
    if (np != n->n_out)
        return nerr(C, NPE_EFORMAT, "makes %d pieces here, but the code uses %d", np, n->n_out);
    for (int i = 0; i < np; i++) {
        int64_t shape[NPE_MAX_DIMS];
        int nd = 0;
        for (int k = 0; k < x->ndim; k++) {
            if (k == d && n->op == NPE_OP_UNBIND)
                continue;
            shape[nd++] = k == d ? pieces[i] : x->shape[k];
        }
        if ((r = out_shape(C, i, nd, shape)))
            return r;
    }
    return 0;
}

/* The range x[..., start:end:step, ...] along dim (inputs k..k+3 of the node: dim, start, end,
 * step), clamped as PyTorch does: *d the wrapped dim, *start the first index, *len the count. */
static int slice_range(ictx *C, const npe_node *n, const npe_value *x, int k, int *d,
                       int64_t *start_out, int64_t *len)
{
    int64_t dim, start = 0, end = INT64_MAX, step;
    int r;
    if ((r = get_int(C, n->in[k], "dim", &dim)) || (r = wrap_dim(C, dim, x->ndim, "dim", d)) ||
        (r = get_int(C, n->in[k + 3], "step", &step)))
        return r;
    if (!is_none(C->g, n->in[k + 1]) && (r = get_int(C, n->in[k + 1], "start", &start)))
        return r;
    if (!is_none(C->g, n->in[k + 2]) && (r = get_int(C, n->in[k + 2], "end", &end)))
        return r;
    if (x->ndim == 0)
        return nerr(C, NPE_EFORMAT, "cannot slice a 0-d tensor");
    if (step < 1)
        return nerr(C, NPE_EFORMAT, "slice step must be positive");
    int64_t size = x->shape[*d];
    if (start < 0)
        start = start < -size ? 0 : start + size;
    if (end < 0)
        end = end < -size ? 0 : end + size;
    if (start > size)
        start = size;
    if (end > size)
        end = size;
    *start_out = start;
    *len = end > start ? (end - start + step - 1) / step : 0;
    return 0;
}

static int infer_slice(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int d = 0;
    int64_t start, len;
    int r = slice_range(C, n, x, 1, &d, &start, &len);
    if (r)
        return r;
    int64_t shape[NPE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = len;
    return out_shape(C, 0, x->ndim, shape);
}

static int infer_select(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t dim, index;
    int d = 0, r;
    if ((r = get_int(C, n->in[1], "dim", &dim)) || (r = wrap_dim(C, dim, x->ndim, "dim", &d)) ||
        (r = get_int(C, n->in[2], "index", &index)))
        return r;
    if (x->ndim == 0)
        return nerr(C, NPE_EFORMAT, "cannot select from a 0-d tensor");
    if (index < -x->shape[d] || index >= x->shape[d])
        return nerr(C, NPE_EFORMAT, "index %" PRId64 " out of range for size %" PRId64, index,
                    x->shape[d]);
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++)
        if (k != d)
            shape[nd++] = x->shape[k];
    return out_shape(C, 0, nd, shape);
}

/* Reduced dims of mean/sum as a mask. */
static int reduce_mask(ictx *C, const npe_value *x, int vid, unsigned *mask)
{
    *mask = 0;
    if (is_none(C->g, vid)) {
        *mask = (1u << x->ndim) - 1;
        return 0;
    }
    int64_t dims[NPE_MAX_DIMS];
    int nd = 0, r = get_ints(C, vid, "dim", dims, NPE_MAX_DIMS, &nd);
    if (r)
        return r;
    if (nd == 0) { /* dim=[] reduces everything, as in PyTorch */
        *mask = (1u << x->ndim) - 1;
        return 0;
    }
    for (int i = 0; i < nd; i++) {
        int d;
        if ((r = wrap_dim(C, dims[i], x->ndim, "dim", &d)))
            return r;
        if (*mask & (1u << d))
            return nerr(C, NPE_EFORMAT, "dim %d reduced twice", d);
        *mask |= 1u << d;
    }
    return 0;
}

static int check_float_dtype(ictx *C, int vid)
{
    if (is_none(C->g, vid))
        return 0;
    int64_t dt;
    int r = get_int(C, vid, "dtype", &dt);
    if (r)
        return r;
    if (dt != 5 && dt != 6 && dt != 7 && dt != 15)
        return nerr(C, NPE_EUNSUPPORTED, "conversion of activations to dtype code %" PRId64
                    " is not supported (float only)", dt);
    return 0;
}

static int infer_reduce(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    unsigned mask;
    int keep = 0, r;
    if ((r = reduce_mask(C, x, n->in[1], &mask)) || (r = get_bool(C, n->in[2], "keepdim", &keep)) ||
        (r = check_float_dtype(C, n->in[3])))
        return r;
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++) {
        if (mask & (1u << k)) {
            if (keep)
                shape[nd++] = 1;
        } else {
            shape[nd++] = x->shape[k];
        }
    }
    return out_shape(C, 0, nd, shape);
}

static int infer_softmax(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t dim;
    int d = 0, r;
    if ((r = get_int(C, n->in[1], "dim", &dim)) || (r = wrap_dim(C, dim, x->ndim, "dim", &d)) ||
        (r = check_float_dtype(C, n->in[2])))
        return r;
    return same_shape_out(C, x);
}

static int infer_flatten(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t s, e;
    int ds = 0, de = 0, r;
    if ((r = get_int(C, n->in[1], "start_dim", &s)) || (r = get_int(C, n->in[2], "end_dim", &e)))
        return r;
    if (x->ndim == 0) {
        int64_t one = 1;
        return out_shape(C, 0, 1, &one);
    }
    if ((r = wrap_dim(C, s, x->ndim, "start_dim", &ds)) ||
        (r = wrap_dim(C, e, x->ndim, "end_dim", &de)))
        return r;
    if (ds > de)
        return nerr(C, NPE_EFORMAT, "start_dim %d is after end_dim %d", ds, de);
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++) {
        if (k > ds && k <= de)
            shape[nd - 1] *= x->shape[k];
        else
            shape[nd++] = x->shape[k];
    }
    return out_shape(C, 0, nd, shape);
}

static int infer_reshape(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0, r = get_ints(C, n->in[1], "shape", shape, NPE_MAX_DIMS, &nd);
    if (r)
        return r;
    int64_t numel = npe_value_numel(x), prod = 1;
    int infer = -1;
    for (int i = 0; i < nd; i++) {
        if (shape[i] == -1) {
            if (infer >= 0)
                return nerr(C, NPE_EFORMAT, "more than one -1 in the shape");
            infer = i;
        } else if (shape[i] < 0) {
            return nerr(C, NPE_EFORMAT, "size %" PRId64 " in the shape", shape[i]);
        } else {
            if (shape[i] && prod > INT64_MAX / shape[i])
                return nerr(C, NPE_ELIMIT, "shape overflows");
            prod *= shape[i];
        }
    }
    if (infer >= 0) {
        if (prod == 0 || numel % prod)
            return nerr(C, NPE_EFORMAT, "cannot view %" PRId64 " elements with a -1 and the rest "
                        "multiplying to %" PRId64, numel, prod);
        shape[infer] = numel / prod;
    } else if (prod != numel) {
        char sx[160];
        shape_str(x, sx, sizeof sx);
        return nerr(C, NPE_EFORMAT, "cannot view input %s (%" PRId64 " elements) as a shape of %"
                    PRId64 " elements", sx, numel, prod);
    }
    return out_shape(C, 0, nd, shape);
}

static int infer_permute(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t dims[NPE_MAX_DIMS], shape[NPE_MAX_DIMS];
    int nd = 0, r = get_ints(C, n->in[1], "dims", dims, NPE_MAX_DIMS, &nd);
    if (r)
        return r;
    if (nd != x->ndim)
        return nerr(C, NPE_EFORMAT, "permutation of %d dims for a %d-dim input", nd, x->ndim);
    unsigned seen = 0;
    for (int i = 0; i < nd; i++) {
        int d;
        if ((r = wrap_dim(C, dims[i], x->ndim, "dim", &d)))
            return r;
        if (seen & (1u << d))
            return nerr(C, NPE_EFORMAT, "dim %d repeated in the permutation", d);
        seen |= 1u << d;
        shape[i] = x->shape[d];
    }
    return out_shape(C, 0, nd, shape);
}

static int infer_transpose(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t a, b;
    int da = 0, db = 0, r;
    if ((r = get_int(C, n->in[1], "dim0", &a)) || (r = get_int(C, n->in[2], "dim1", &b)) ||
        (r = wrap_dim(C, a, x->ndim, "dim0", &da)) || (r = wrap_dim(C, b, x->ndim, "dim1", &db)))
        return r;
    int64_t shape[NPE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    if (x->ndim) {
        shape[da] = x->shape[db];
        shape[db] = x->shape[da];
    }
    return out_shape(C, 0, x->ndim, shape);
}

static int infer_squeeze(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    unsigned mask = 0;
    if (is_none(C->g, n->in[1])) {
        for (int k = 0; k < x->ndim; k++)
            if (x->shape[k] == 1)
                mask |= 1u << k;
    } else {
        int64_t dims[NPE_MAX_DIMS];
        int nd = 0, r = get_ints(C, n->in[1], "dim", dims, NPE_MAX_DIMS, &nd);
        if (r)
            return r;
        for (int i = 0; i < nd; i++) {
            int d;
            if ((r = wrap_dim(C, dims[i], x->ndim, "dim", &d)))
                return r;
            if (x->ndim && x->shape[d] == 1)
                mask |= 1u << d;
        }
    }
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++)
        if (!(mask & (1u << k)))
            shape[nd++] = x->shape[k];
    return out_shape(C, 0, nd, shape);
}

static int infer_unsqueeze(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t dim;
    int d = 0, r;
    if ((r = get_int(C, n->in[1], "dim", &dim)))
        return r;
    if (x->ndim >= NPE_MAX_DIMS)
        return nerr(C, NPE_EUNSUPPORTED, "more than %d dims", NPE_MAX_DIMS);
    if (dim < -(x->ndim + 1) || dim > x->ndim)
        return nerr(C, NPE_EFORMAT, "dim %" PRId64 " out of range", dim);
    d = (int)(dim < 0 ? dim + x->ndim + 1 : dim);
    int64_t shape[NPE_MAX_DIMS];
    for (int k = 0, j = 0; k <= x->ndim; k++)
        shape[k] = k == d ? 1 : x->shape[j++];
    return out_shape(C, 0, x->ndim + 1, shape);
}

static int infer_expand(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t size[NPE_MAX_DIMS];
    int nd = 0, r = get_ints(C, n->in[1], "size", size, NPE_MAX_DIMS, &nd);
    if (r)
        return r;
    if (nd < x->ndim)
        return nerr(C, NPE_EFORMAT, "expand to %d dims from %d", nd, x->ndim);
    for (int i = 0; i < nd; i++) {
        int k = i - (nd - x->ndim);
        int64_t have = k >= 0 ? x->shape[k] : 1;
        if (size[i] == -1) {
            if (k < 0)
                return nerr(C, NPE_EFORMAT, "-1 in a new leading dim of expand");
            size[i] = have;
        } else if (have != 1 && have != size[i]) {
            return nerr(C, NPE_EFORMAT, "cannot expand size %" PRId64 " to %" PRId64, have, size[i]);
        }
    }
    return out_shape(C, 0, nd, size);
}

/* slice_scatter / select_scatter: src must have exactly the shape of the part it replaces. */
static int infer_scatter(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "self"), *src = tensor_in(C, 1, "src");
    if (!x || !src)
        return C->err->code;
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0, d = 0, r;
    if (n->op == NPE_OP_SLICE_SCATTER) {
        int64_t start, len;
        if ((r = slice_range(C, n, x, 2, &d, &start, &len)))
            return r;
        memcpy(shape, x->shape, sizeof shape);
        shape[d] = len;
        nd = x->ndim;
    } else {
        int64_t dim, index;
        if ((r = get_int(C, n->in[2], "dim", &dim)) || (r = wrap_dim(C, dim, x->ndim, "dim", &d)) ||
            (r = get_int(C, n->in[3], "index", &index)))
            return r;
        if (x->ndim == 0)
            return nerr(C, NPE_EFORMAT, "cannot select from a 0-d tensor");
        if (index < -x->shape[d] || index >= x->shape[d])
            return nerr(C, NPE_EFORMAT, "index %" PRId64 " out of range for size %" PRId64, index,
                        x->shape[d]);
        for (int k = 0; k < x->ndim; k++)
            if (k != d)
                shape[nd++] = x->shape[k];
    }
    int same = src->ndim == nd;
    for (int k = 0; same && k < nd; k++)
        same = src->shape[k] == shape[k];
    if (!same) {
        npe_value want = {0};
        want.ndim = nd;
        memcpy(want.shape, shape, sizeof want.shape);
        char ss[160], sw[160];
        shape_str(src, ss, sizeof ss);
        shape_str(&want, sw, sizeof sw);
        return nerr(C, NPE_EFORMAT, "the written value %s does not have the shape %s of the part "
                    "it replaces", ss, sw);
    }
    return same_shape_out(C, x);
}

/* A 1-D weight/bias of n values, or none. */
static int check_per_channel(ictx *C, int vid, const char *what, int64_t count)
{
    const npe_value *p = &C->g->values[vid];
    if (p->type == NPE_VT_NONE)
        return 0;
    if (p->type != NPE_VT_TENSOR || !(p->flags & NPE_VF_KNOWN) || npe_value_numel(p) != count)
        return nerr(C, NPE_EFORMAT, "'%s' must hold %" PRId64 " values", p->name[0] ? p->name : what,
                    count);
    return 0;
}

/* torch.group_norm(input, num_groups, weight, bias, eps): input (N, C, *), C a multiple of the
 * groups; weight and bias one value per channel. */
static int infer_group_norm(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t groups;
    double eps;
    int r;
    if ((r = get_int(C, n->in[NPE_GN_GROUPS], "num_groups", &groups)) ||
        (r = get_float(C, n->in[NPE_GN_EPS], "eps", &eps)))
        return r;
    if (x->ndim < 2)
        return nerr(C, NPE_EFORMAT, "input has %d dims (group_norm needs (N, C, ...))", x->ndim);
    if (groups < 1 || x->shape[1] % groups)
        return nerr(C, NPE_EFORMAT, "input has %" PRId64 " channels, not divisible into %" PRId64
                    " groups", x->shape[1], groups);
    if ((r = check_per_channel(C, n->in[NPE_GN_WEIGHT], "weight", x->shape[1])) ||
        (r = check_per_channel(C, n->in[NPE_GN_BIAS], "bias", x->shape[1])))
        return r;
    return same_shape_out(C, x);
}

/* torch.layer_norm(input, normalized_shape, weight, bias, eps): statistics over the last
 * len(normalized_shape) dims, which must equal normalized_shape; weight and bias of that shape. */
static int infer_layer_norm(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t ns[NPE_MAX_DIMS];
    int nn = 0, r;
    double eps;
    if ((r = get_ints(C, n->in[NPE_LN_SHAPE], "normalized_shape", ns, NPE_MAX_DIMS, &nn)) ||
        (r = get_float(C, n->in[NPE_LN_EPS], "eps", &eps)))
        return r;
    int match = nn >= 1 && nn <= x->ndim;
    int64_t count = 1;
    for (int i = 0; match && i < nn; i++) {
        match = ns[i] == x->shape[x->ndim - nn + i];
        count *= ns[i];
    }
    if (!match) {
        char sx[160];
        shape_str(x, sx, sizeof sx);
        return nerr(C, NPE_EFORMAT, "normalized_shape of %d dims does not match the last dims of "
                    "the input %s", nn, sx);
    }
    if ((r = check_per_channel(C, n->in[NPE_LN_WEIGHT], "weight", count)) ||
        (r = check_per_channel(C, n->in[NPE_LN_BIAS], "bias", count)))
        return r;
    return same_shape_out(C, x);
}

/* torch.matmul: (..., m, k) @ (..., k, n) with the batch dims broadcast; a 1-D left operand is a
 * row (its dim dropped from the result), a 1-D right operand a column (likewise). */
static int infer_matmul(ictx *C, const npe_node *n)
{
    (void)n;
    const npe_value *a = tensor_in(C, 0, "self"), *b = tensor_in(C, 1, "other");
    if (!a || !b)
        return C->err->code;
    if (a->ndim < 1 || b->ndim < 1)
        return nerr(C, NPE_EFORMAT, "matmul of a 0-d tensor");
    int64_t k = a->shape[a->ndim - 1], m = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
    int64_t k2 = b->ndim >= 2 ? b->shape[b->ndim - 2] : b->shape[0];
    int64_t nc = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    if (k != k2) {
        char sa[160], sb[160];
        shape_str(a, sa, sizeof sa);
        shape_str(b, sb, sizeof sb);
        return nerr(C, NPE_EFORMAT, "cannot multiply %s by %s (%" PRId64 " columns, %" PRId64
                    " rows)", sa, sb, k, k2);
    }
    int ba = a->ndim > 2 ? a->ndim - 2 : 0, bb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = ba > bb ? ba : bb;
    int64_t shape[NPE_MAX_DIMS + 2];
    for (int i = 0; i < nb; i++) {
        int64_t da = i < nb - ba ? 1 : a->shape[i - (nb - ba)];
        int64_t db = i < nb - bb ? 1 : b->shape[i - (nb - bb)];
        if (da != db && da != 1 && db != 1)
            return nerr(C, NPE_EFORMAT, "batch dims do not broadcast (%" PRId64 " vs %" PRId64 ")",
                        da, db);
        shape[i] = da == 1 ? db : da;
    }
    int nd = nb;
    if (a->ndim >= 2)
        shape[nd++] = m;
    if (b->ndim >= 2)
        shape[nd++] = nc;
    if (nd > NPE_MAX_DIMS)
        return nerr(C, NPE_EUNSUPPORTED, "more than %d dims", NPE_MAX_DIMS);
    return out_shape(C, 0, nd, shape);
}

/* amax/amin over dims (dim [] : all), and torch.max/min(x, dim) with values and indices. */
static int infer_minmax(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    unsigned mask = 0;
    int keep = 0, r;
    if (n->op == NPE_OP_AMAX || n->op == NPE_OP_AMIN) {
        r = reduce_mask(C, x, n->in[1], &mask);
    } else {
        int64_t dim;
        int d = 0;
        r = get_int(C, n->in[1], "dim", &dim);
        if (!r && x->ndim == 0 && dim != 0 && dim != -1)
            r = nerr(C, NPE_EFORMAT, "dim %" PRId64 " of a 0-d tensor", dim);
        if (!r && x->ndim > 0 && !(r = wrap_dim(C, dim, x->ndim, "dim", &d)))
            mask = 1u << d;
    }
    if (r || (r = get_bool(C, n->in[2], "keepdim", &keep)))
        return r;
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++) {
        if (mask & (1u << k)) {
            if (!x->shape[k])
                return nerr(C, NPE_EFORMAT, "%s over dim %d of size 0", npe_op_name(n->op), k);
            if (keep)
                shape[nd++] = 1;
        } else {
            shape[nd++] = x->shape[k];
        }
    }
    for (int k = 0; k < n->n_out; k++)
        if ((r = out_shape(C, k, nd, shape)))
            return r;
    return 0;
}

/* expand_as(self, other): self (a tensor, or a number for fill_) broadcast to other's shape. */
static int infer_expand_as(ictx *C, const npe_node *n)
{
    const npe_value *o = tensor_in(C, 1, "other");
    if (!o)
        return C->err->code;
    const npe_value *x = &C->g->values[n->in[0]];
    if (x->type == NPE_VT_TENSOR) {
        if (!(x = tensor_in(C, 0, "self")))
            return C->err->code;
        int ok = x->ndim <= o->ndim;
        for (int k = 0; ok && k < x->ndim; k++) {
            int64_t have = x->shape[k], want = o->shape[k + o->ndim - x->ndim];
            ok = have == want || have == 1;
        }
        if (!ok) {
            char sx[160], so[160];
            shape_str(x, sx, sizeof sx);
            shape_str(o, so, sizeof so);
            return nerr(C, NPE_EFORMAT, "cannot expand %s to %s", sx, so);
        }
    } else if (!is_scalar_like(x)) {
        return nerr(C, NPE_EUNSUPPORTED, "self is a %s (a tensor or a number is needed)",
                    npe_vtype_name(x->type));
    }
    return out_shape(C, 0, o->ndim, o->shape);
}

/* repeat(self, repeats): at least as many repeats as dims; leading ones make new dims. */
static int infer_repeat(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "self");
    if (!x)
        return C->err->code;
    int64_t rep[NPE_MAX_DIMS], shape[NPE_MAX_DIMS];
    int nr = 0, r = get_ints(C, n->in[1], "repeats", rep, NPE_MAX_DIMS, &nr);
    if (r)
        return r;
    if (nr < x->ndim)
        return nerr(C, NPE_EFORMAT, "%d repeats for a %d-dim tensor (at least one per dim)", nr,
                    x->ndim);
    for (int i = 0; i < nr; i++) {
        int k = i - (nr - x->ndim);
        int64_t have = k >= 0 ? x->shape[k] : 1;
        if (rep[i] < 0 || (rep[i] && have > (INT64_C(1) << 40) / rep[i]))
            return nerr(C, NPE_EFORMAT, "repeat count %" PRId64, rep[i]);
        shape[i] = have * rep[i];
    }
    return out_shape(C, 0, nr, shape);
}

static int infer_reshape_as(ictx *C, const npe_node *n)
{
    (void)n;
    const npe_value *x = tensor_in(C, 0, "self"), *o = tensor_in(C, 1, "other");
    if (!x || !o)
        return C->err->code;
    if (npe_value_numel(x) != npe_value_numel(o)) {
        char sx[160], so[160];
        shape_str(x, sx, sizeof sx);
        shape_str(o, so, sizeof so);
        return nerr(C, NPE_EFORMAT, "cannot view %s with the shape %s", sx, so);
    }
    return out_shape(C, 0, o->ndim, o->shape);
}

static int infer_unary(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int r = 0;
    double a, b;
    switch (n->op) {
    case NPE_OP_HARDTANH:
        if ((r = get_float(C, n->in[1], "min_val", &a)) || (r = get_float(C, n->in[2], "max_val", &b)))
            return r;
        break;
    case NPE_OP_LEAKY_RELU:
        if ((r = get_float(C, n->in[1], "negative_slope", &a)))
            return r;
        break;
    case NPE_OP_CLAMP:
        for (int k = 1; k <= 2; k++)
            if (!is_none(C->g, n->in[k]) && (r = get_float(C, n->in[k], k == 1 ? "min" : "max", &a)))
                return r;
        break;
    case NPE_OP_GELU: {
        const npe_value *ap = &C->g->values[n->in[1]];
        if (ap->type != NPE_VT_STR || strcmp(ap->s, "none") != 0)
            return nerr(C, NPE_EUNSUPPORTED, "gelu approximate='%s' is not supported ('none' only)",
                        ap->type == NPE_VT_STR ? ap->s : "?");
        break;
    }
    case NPE_OP_ELU:
        if ((r = get_float(C, n->in[1], "alpha", &a)) || (r = get_float(C, n->in[2], "scale", &b)))
            return r;
        if (b != 1)
            return nerr(C, NPE_EUNSUPPORTED, "elu with scale other than 1 is not supported");
        if ((r = get_float(C, n->in[3], "input_scale", &b)))
            return r;
        if (b != 1)
            return nerr(C, NPE_EUNSUPPORTED, "elu with input_scale other than 1 is not supported");
        break;
    case NPE_OP_DROPOUT: {
        int train = 0;
        if ((r = get_bool(C, n->in[2], "train", &train)))
            return r;
        if (train)
            return nerr(C, NPE_EUNSUPPORTED, "dropout was traced in training mode: call "
                        "model.eval() before torch.jit.trace");
        break;
    }
    default:
        break;
    }
    return same_shape_out(C, x);
}

static int infer_pixel_shuffle(ictx *C, const npe_node *n)
{
    const npe_value *x = tensor_in(C, 0, "input");
    if (!x)
        return C->err->code;
    int64_t f;
    int r = get_int(C, n->in[1], "upscale_factor", &f);
    if (r)
        return r;
    if (x->ndim != 4 || f < 1 || f > 4096 || x->shape[1] % (f * f))
        return nerr(C, NPE_EFORMAT, "input with %" PRId64 " channels cannot be shuffled by %" PRId64,
                    x->ndim >= 2 ? x->shape[1] : 0, f);
    int64_t shape[4] = {x->shape[0], x->shape[1] / (f * f), x->shape[2] * f, x->shape[3] * f};
    return out_shape(C, 0, 4, shape);
}

/* ---- Scalar ops ------------------------------------------------------------------------------ */
static int infer_scalar(ictx *C, const npe_node *n)
{
    npe_graph *g = C->g;
    C->g->nodes[C->node].flags |= NPE_NF_STATIC;
    switch (n->op) {
    case NPE_OP_SIZE: {
        const npe_value *x = tensor_in(C, 0, "input");
        if (!x)
            return C->err->code;
        int64_t dim;
        int d = 0, r;
        if ((r = get_int(C, n->in[1], "dim", &dim)) || (r = wrap_dim(C, dim, x->ndim, "dim", &d)))
            return r;
        if (x->ndim == 0)
            return nerr(C, NPE_EFORMAT, "size of a 0-d tensor");
        num v = {1, x->shape[d], (double)x->shape[d]};
        return set_static(C, 0, v, 0, NPE_DTYPE_I64);
    }
    case NPE_OP_NUM_TO_TENSOR: {
        num v;
        if (!get_num(g, n->in[0], &v))
            return nerr(C, NPE_EFORMAT, "argument is not a known number");
        return set_static(C, 0, v, 1, v.is_int ? NPE_DTYPE_I64 : NPE_DTYPE_F64);
    }
    case NPE_OP_INT:
    case NPE_OP_FLOAT: {
        num v;
        if (!get_num(g, n->in[0], &v))
            return nerr(C, NPE_EUNSUPPORTED, "%s() of a value only known when running (a "
                        "data-dependent shape)", n->op == NPE_OP_INT ? "int" : "float");
        if (n->op == NPE_OP_INT) {
            v.i = v.is_int ? v.i : (int64_t)v.f; /* truncation, as Python's int() */
            v.is_int = 1;
        } else {
            v.f = v.is_int ? (double)v.i : v.f;
            v.is_int = 0;
        }
        return set_static(C, 0, v, 0, NPE_DTYPE_I64);
    }
    default:
        return nerr(C, NPE_EFORMAT, "not a scalar op");
    }
}

static int infer_factory(ictx *C, const npe_node *n)
{
    C->g->nodes[C->node].flags |= NPE_NF_STATIC;
    int64_t shape[NPE_MAX_DIMS];
    int nd = 0, r = get_ints(C, n->in[0], "size", shape, NPE_MAX_DIMS, &nd);
    if (r || (r = check_float_dtype(C, n->in[1])))
        return r;
    int64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        if (shape[i] < 0 || (shape[i] && numel > MAX_STATIC_NUMEL / shape[i]))
            return nerr(C, NPE_ELIMIT, "size out of range");
        numel *= shape[i];
    }
    npe_value *v = &C->g->values[n->out[0]];
    npe_value_drop_data(v);
    v->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!v->data)
        return nerr(C, NPE_ENOMEM, "out of memory");
    for (int64_t i = 0; i < numel; i++)
        v->data[i] = n->op == NPE_OP_ONES ? 1.0f : 0.0f;
    v->numel_data = numel;
    set_tensor(v, nd, shape);
    v->flags |= NPE_VF_STATIC;
    v->f = numel == 1 ? v->data[0] : 0;
    v->i = (int64_t)v->f;
    return 0;
}

/* torch.arange(start, end, step): a static 1-D tensor (YOLO heads build their grids with it). */
static int infer_arange(ictx *C, const npe_node *n)
{
    C->g->nodes[C->node].flags |= NPE_NF_STATIC;
    num a, b, st;
    static const char *const what[] = {"start", "end", "step"};
    num *vals[] = {&a, &b, &st};
    for (int k = 0; k < 3; k++)
        if (!get_num(C->g, n->in[k], vals[k]))
            return nerr(C, NPE_EUNSUPPORTED, "%s must be a number known before running", what[k]);
    int r = is_none(C->g, n->in[3]) ? 0 : check_float_dtype(C, n->in[3]);
    if (r && !(r == NPE_EUNSUPPORTED))
        return r;
    if (r) /* integer dtypes: the values are exact in float for any sane grid */
        npe_error_clear(C->err);
    if (st.f == 0 || !isfinite(a.f) || !isfinite(b.f) || !isfinite(st.f))
        return nerr(C, NPE_EFORMAT, "arange step must be finite and nonzero");
    double len = ceil((b.f - a.f) / st.f);
    if (len < 0)
        len = 0;
    if (len > MAX_STATIC_NUMEL)
        return nerr(C, NPE_ELIMIT, "arange of %g elements", len);
    int64_t numel = (int64_t)len;
    npe_value *v = &C->g->values[n->out[0]];
    npe_value_drop_data(v);
    v->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!v->data)
        return nerr(C, NPE_ENOMEM, "out of memory");
    for (int64_t i = 0; i < numel; i++)
        v->data[i] = (float)(a.f + (double)i * st.f);
    v->numel_data = numel;
    set_tensor(v, 1, &numel);
    v->flags |= NPE_VF_STATIC;
    return 0;
}

/* torch.meshgrid(tensors, indexing): static grids from static 1-D tensors. */
static int infer_meshgrid(ictx *C, const npe_node *n)
{
    C->g->nodes[C->node].flags |= NPE_NF_STATIC;
    int nt = n->n_in - 1;
    const npe_value *ix = &C->g->values[n->in[nt]];
    if (ix->type != NPE_VT_STR || (strcmp(ix->s, "ij") != 0 && strcmp(ix->s, "xy") != 0))
        return nerr(C, NPE_EUNSUPPORTED, "meshgrid indexing must be 'ij' or 'xy'");
    int xy = strcmp(ix->s, "xy") == 0;
    if (nt > NPE_MAX_DIMS || nt != n->n_out)
        return nerr(C, NPE_EUNSUPPORTED, "meshgrid of %d tensors", nt);
    int64_t shape[NPE_MAX_DIMS], numel = 1;
    for (int i = 0; i < nt; i++) {
        const npe_value *t = &C->g->values[n->in[i]];
        if (t->type != NPE_VT_TENSOR || !(t->flags & NPE_VF_STATIC) || !t->data || t->ndim > 1)
            return nerr(C, NPE_EUNSUPPORTED, "meshgrid of tensors only known when running is not "
                        "supported (only of aranges and constants)");
        shape[i] = t->ndim ? t->shape[0] : 1;
        if (shape[i] && numel > MAX_STATIC_NUMEL / shape[i])
            return nerr(C, NPE_ELIMIT, "meshgrid too large");
        numel *= shape[i];
    }
    if (xy && nt >= 2) {
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
    }
    for (int i = 0; i < nt; i++) {
        /* output i varies along dim i ("ij"); with "xy" the first two dims swap roles */
        int axis = xy && i < 2 ? 1 - i : i;
        const npe_value *t = &C->g->values[n->in[i]];
        npe_value *v = &C->g->values[n->out[i]];
        npe_value_drop_data(v);
        v->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        if (!v->data)
            return nerr(C, NPE_ENOMEM, "out of memory");
        for (int64_t e = 0; e < numel; e++) {
            int64_t rem = e, idx = 0;
            for (int d = nt - 1; d >= 0; d--) {
                int64_t c = shape[d] ? rem % shape[d] : 0;
                rem = shape[d] ? rem / shape[d] : 0;
                if (d == axis)
                    idx = c;
            }
            v->data[e] = t->data[idx];
        }
        v->numel_data = numel;
        set_tensor(v, nt, shape);
        v->flags |= NPE_VF_STATIC;
    }
    return 0;
}

/* Ops that shape arithmetic uses on 0-d tensors: evaluated here when every input is static. */
static int infer_static_passthrough(ictx *C, const npe_node *n)
{
    num v;
    if (!get_num(C->g, n->in[0], &v))
        return nerr(C, NPE_EFORMAT, "argument is not a known number");
    const npe_value *x = &C->g->values[n->in[0]];
    npe_dtype dt = x->type == NPE_VT_TENSOR ? x->dtype : (v.is_int ? NPE_DTYPE_I64 : NPE_DTYPE_F64);
    if (n->op == NPE_OP_NEG) {
        v.i = -v.i;
        v.f = -v.f;
    }
    if (n->op == NPE_OP_TO && !is_none(C->g, n->in[1])) {
        int64_t code;
        int r = get_int(C, n->in[1], "dtype", &code);
        if (r)
            return r;
        static const npe_dtype codes[] = {NPE_DTYPE_U8, NPE_DTYPE_I8, NPE_DTYPE_I16, NPE_DTYPE_I32,
                                          NPE_DTYPE_I64, NPE_DTYPE_F16, NPE_DTYPE_F32, NPE_DTYPE_F64};
        if (code == 11)
            dt = NPE_DTYPE_BOOL;
        else if (code >= 0 && code < 8)
            dt = codes[code];
        else
            return nerr(C, NPE_EUNSUPPORTED, "dtype code %" PRId64, code);
        if (is_int_dtype(dt) && !v.is_int) {
            v.i = (int64_t)v.f;
            v.f = (double)v.i;
            v.is_int = 1;
        } else if (!is_int_dtype(dt)) {
            v.is_int = 0;
        }
    }
    C->g->nodes[C->node].flags |= NPE_NF_STATIC;
    return set_static(C, 0, v, x->type == NPE_VT_TENSOR, dt);
}

static int check_static_inputs(ictx *C, const npe_node *n)
{
    const npe_op_schema *s = npe_op_schema_of(n->op);
    for (int i = 0; i < n->n_in; i++) {
        int must = (s->flags & NPE_OPF_VARIADIC) ? i == n->n_in - 1 : (s->static_mask >> i) & 1;
        if (!must)
            continue;
        const npe_value *v = &C->g->values[n->in[i]];
        char slot[64];
        npe_op_slot_name(n->op, i, n->n_in, slot, sizeof slot);
        if (v->type == NPE_VT_TENSOR)
            return nerr(C, NPE_EUNSUPPORTED, "argument '%s' is a tensor; it must be a value known "
                        "before running", slot);
        if (!known(C->g, n->in[i], 0))
            return nerr(C, NPE_EUNSUPPORTED, "argument '%s' depends on data only known when "
                        "running", slot);
    }
    return 0;
}

static int infer_node(ictx *C)
{
    npe_graph *g = C->g;
    const npe_node *n = &g->nodes[C->node];
    int r = check_static_inputs(C, n);
    if (r)
        return r;
    switch (n->op) {
    case NPE_OP_CONV: return infer_conv(C, n);
    case NPE_OP_LINEAR: return infer_linear(C, n);
    case NPE_OP_BATCH_NORM: return infer_batch_norm(C, n);
    case NPE_OP_MAX_POOL2D:
    case NPE_OP_AVG_POOL2D: return infer_pool(C, n);
    case NPE_OP_ADAPTIVE_AVG_POOL2D:
    case NPE_OP_ADAPTIVE_MAX_POOL2D: return infer_adaptive(C, n);
    case NPE_OP_UPSAMPLE_NEAREST2D:
    case NPE_OP_UPSAMPLE_BILINEAR2D: return infer_upsample(C, n);
    case NPE_OP_PIXEL_SHUFFLE: return infer_pixel_shuffle(C, n);
    case NPE_OP_PAD: return infer_pad(C, n);
    case NPE_OP_ADD:
    case NPE_OP_SUB:
    case NPE_OP_RSUB:
    case NPE_OP_MUL:
    case NPE_OP_DIV:
    case NPE_OP_POW:
    case NPE_OP_MAXIMUM:
    case NPE_OP_MINIMUM:
    case NPE_OP_FLOOR_DIV: return infer_arith(C, n);
    case NPE_OP_CAT:
    case NPE_OP_STACK: return infer_cat(C, n);
    case NPE_OP_CHUNK:
    case NPE_OP_SPLIT:
    case NPE_OP_SPLIT_WITH_SIZES:
    case NPE_OP_UNBIND: return infer_split(C, n);
    case NPE_OP_SLICE: return infer_slice(C, n);
    case NPE_OP_SLICE_SCATTER:
    case NPE_OP_SELECT_SCATTER: return infer_scatter(C, n);
    case NPE_OP_GROUP_NORM: return infer_group_norm(C, n);
    case NPE_OP_LAYER_NORM: return infer_layer_norm(C, n);
    case NPE_OP_MATMUL: return infer_matmul(C, n);
    case NPE_OP_AMAX:
    case NPE_OP_AMIN:
    case NPE_OP_MAX_DIM:
    case NPE_OP_MIN_DIM: return infer_minmax(C, n);
    case NPE_OP_EXPAND_AS: return infer_expand_as(C, n);
    case NPE_OP_REPEAT: return infer_repeat(C, n);
    case NPE_OP_RESHAPE_AS: return infer_reshape_as(C, n);
    case NPE_OP_SELECT: return infer_select(C, n);
    case NPE_OP_MEAN:
    case NPE_OP_SUM: return infer_reduce(C, n);
    case NPE_OP_SOFTMAX:
    case NPE_OP_LOG_SOFTMAX: return infer_softmax(C, n);
    case NPE_OP_FLATTEN: return infer_flatten(C, n);
    case NPE_OP_RESHAPE: return infer_reshape(C, n);
    case NPE_OP_PERMUTE: return infer_permute(C, n);
    case NPE_OP_TRANSPOSE: return infer_transpose(C, n);
    case NPE_OP_SQUEEZE: return infer_squeeze(C, n);
    case NPE_OP_UNSQUEEZE: return infer_unsqueeze(C, n);
    case NPE_OP_EXPAND: return infer_expand(C, n);
    case NPE_OP_ONES:
    case NPE_OP_ZEROS: return infer_factory(C, n);
    case NPE_OP_ARANGE: return infer_arange(C, n);
    case NPE_OP_MESHGRID: return infer_meshgrid(C, n);
    case NPE_OP_SIZE:
    case NPE_OP_NUM_TO_TENSOR:
    case NPE_OP_INT:
    case NPE_OP_FLOAT: return infer_scalar(C, n);
    case NPE_OP_TO:
    case NPE_OP_NEG:
    case NPE_OP_CONTIGUOUS:
    case NPE_OP_IDENTITY:
        if (is_scalar_like(&g->values[n->in[0]]))
            return infer_static_passthrough(C, n);
        if (n->op == NPE_OP_TO && (r = check_float_dtype(C, n->in[1])))
            return r;
        return infer_unary(C, n);
    default:
        if (npe_op_schema_of(n->op)->flags & NPE_OPF_ELEMENTWISE)
            return infer_unary(C, n);
        return nerr(C, NPE_EUNSUPPORTED, "no shape rule for op %s", npe_op_name(n->op));
    }
}

int npe_graph_infer(npe_graph *g, const npe_tshape *inputs, int n_inputs, npe_error *err)
{
    npe_error local;
    if (!err)
        err = &local; /* the rules read the code back from it */
    const char *o = g->origin ? g->origin : "model";
    if (n_inputs != g->n_inputs)
        return npe_error_set(err, NPE_EINVAL, "%s takes %d input%s, %d given", o, g->n_inputs,
                             g->n_inputs == 1 ? "" : "s", n_inputs);
    /* forget the previous run: keep literals, params and constants, drop what nodes made */
    for (int v = 0; v < g->n_values; v++) {
        npe_value *val = &g->values[v];
        val->flags &= ~(unsigned)(NPE_VF_STATIC | NPE_VF_KNOWN);
        if (val->producer >= 0) {
            npe_value_drop_data(val);
            val->data = NULL;
            val->numel_data = 0;
            if (val->type == NPE_VT_TENSOR)
                val->ndim = 0;
        } else if (val->type == NPE_VT_TENSOR && val->data) {
            val->flags |= NPE_VF_STATIC | NPE_VF_KNOWN;
        } else if (val->flags & NPE_VF_CONST) {
            val->flags |= NPE_VF_STATIC | NPE_VF_KNOWN;
        } else if (val->type == NPE_VT_NONE) {
            val->flags |= NPE_VF_STATIC | NPE_VF_KNOWN;
        }
    }
    for (int i = 0; i < g->n_nodes; i++)
        g->nodes[i].flags &= ~(unsigned)NPE_NF_STATIC;
    for (int i = 0; i < n_inputs; i++) {
        npe_value *v = &g->values[g->inputs[i]];
        if (inputs[i].ndim < 0 || inputs[i].ndim > NPE_MAX_DIMS)
            return npe_error_set(err, NPE_EINVAL, "%s: input '%s' has %d dims", o, v->name,
                                 inputs[i].ndim);
        for (int d = 0; d < inputs[i].ndim; d++)
            if (inputs[i].d[d] < 0 || inputs[i].d[d] > (INT64_C(1) << 32))
                return npe_error_set(err, NPE_EINVAL, "%s: input '%s' dim %d is %" PRId64, o,
                                     v->name, d, inputs[i].d[d]);
        set_tensor(v, inputs[i].ndim, inputs[i].d);
    }
    ictx C = {g, err, 0};
    for (int i = 0; i < g->n_nodes; i++) {
        C.node = i;
        int r = infer_node(&C);
        if (r)
            return r;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const npe_value *v = &g->values[g->outputs[i]];
        if ((v->flags & NPE_VF_UNUSABLE) && v->producer >= 0) {
            C.node = v->producer;
            return nerr(&C, NPE_EUNSUPPORTED, "output %d is the indices of this op, which lbprune "
                        "does not compute (values only)", i);
        }
    }
    return 0;
}
