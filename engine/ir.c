/* Graph IR: op schemas, building, naming, cloning, dead-code removal, validation and dumps.
 * The model of the IR is documented in ir.h. */
#include "ir.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Op schemas ------------------------------------------------------------------------------ */
#define B(i) (1u << (i))

static const npe_op_schema schemas[] = {
    [NPE_OP_CONV] = {"conv", "input weight bias stride padding dilation transposed output_padding groups",
                     9, 9, 1, B(3) | B(4) | B(5) | B(6) | B(7) | B(8), NPE_OPF_PARAMS},
    [NPE_OP_LINEAR] = {"linear", "input weight bias", 3, 3, 1, 0, NPE_OPF_PARAMS},
    [NPE_OP_BATCH_NORM] = {"batch_norm",
                           "input weight bias running_mean running_var training momentum eps cudnn_enabled",
                           9, 9, 1, B(5) | B(6) | B(7) | B(8), NPE_OPF_PARAMS | NPE_OPF_ELEMENTWISE},
    [NPE_OP_GROUP_NORM] = {"group_norm", "input num_groups weight bias eps cudnn_enabled", 6, 6, 1,
                           B(1) | B(4) | B(5), NPE_OPF_PARAMS},
    [NPE_OP_LAYER_NORM] = {"layer_norm", "input normalized_shape weight bias eps cudnn_enable", 6, 6,
                           1, B(1) | B(4) | B(5), NPE_OPF_PARAMS},
    [NPE_OP_MATMUL] = {"matmul", "self other", 2, 2, 1, 0, 0},
    [NPE_OP_RELU] = {"relu", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_HARDTANH] = {"hardtanh", "self min_val max_val", 3, 3, 1, B(1) | B(2), NPE_OPF_ELEMENTWISE},
    [NPE_OP_LEAKY_RELU] = {"leaky_relu", "self negative_slope", 2, 2, 1, B(1), NPE_OPF_ELEMENTWISE},
    [NPE_OP_SILU] = {"silu", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_SIGMOID] = {"sigmoid", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_HARDSWISH] = {"hardswish", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_HARDSIGMOID] = {"hardsigmoid", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_TANH] = {"tanh", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_GELU] = {"gelu", "self approximate", 2, 2, 1, B(1), NPE_OPF_ELEMENTWISE},
    [NPE_OP_ELU] = {"elu", "self alpha scale input_scale", 4, 4, 1, B(1) | B(2) | B(3), NPE_OPF_ELEMENTWISE},
    [NPE_OP_CLAMP] = {"clamp", "self min max", 3, 3, 1, B(1) | B(2), NPE_OPF_ELEMENTWISE},
    [NPE_OP_NEG] = {"neg", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_EXP] = {"exp", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_SQRT] = {"sqrt", "self", 1, 1, 1, 0, NPE_OPF_ELEMENTWISE},
    [NPE_OP_MAX_POOL2D] = {"max_pool2d", "self kernel_size stride padding dilation ceil_mode", 6, 6, 1,
                           B(1) | B(2) | B(3) | B(4) | B(5), 0},
    [NPE_OP_AVG_POOL2D] = {"avg_pool2d",
                           "self kernel_size stride padding ceil_mode count_include_pad divisor_override",
                           7, 7, 1, B(1) | B(2) | B(3) | B(4) | B(5) | B(6), 0},
    [NPE_OP_ADAPTIVE_AVG_POOL2D] = {"adaptive_avg_pool2d", "self output_size", 2, 2, 1, B(1), 0},
    [NPE_OP_ADAPTIVE_MAX_POOL2D] = {"adaptive_max_pool2d", "self output_size", 2, 2, 2, B(1), 0},
    [NPE_OP_UPSAMPLE_NEAREST2D] = {"upsample_nearest2d", "input output_size scale_factors", 3, 3, 1,
                                   B(1) | B(2), 0},
    [NPE_OP_UPSAMPLE_BILINEAR2D] = {"upsample_bilinear2d",
                                    "input output_size align_corners scale_factors", 4, 4, 1,
                                    B(1) | B(2) | B(3), 0},
    [NPE_OP_PIXEL_SHUFFLE] = {"pixel_shuffle", "self upscale_factor", 2, 2, 1, B(1), 0},
    [NPE_OP_PAD] = {"pad", "self pad mode value", 4, 4, 1, B(1) | B(2) | B(3), 0},
    [NPE_OP_ADD] = {"add", "self other alpha", 3, 3, 1, B(2), NPE_OPF_BROADCAST},
    [NPE_OP_SUB] = {"sub", "self other alpha", 3, 3, 1, B(2), NPE_OPF_BROADCAST},
    [NPE_OP_RSUB] = {"rsub", "self other alpha", 3, 3, 1, B(2), NPE_OPF_BROADCAST},
    [NPE_OP_MUL] = {"mul", "self other", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_DIV] = {"div", "self other", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_FLOOR_DIV] = {"floor_divide", "self other", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_POW] = {"pow", "self exponent", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_MAXIMUM] = {"maximum", "self other", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_MINIMUM] = {"minimum", "self other", 2, 2, 1, 0, NPE_OPF_BROADCAST},
    [NPE_OP_CAT] = {"cat", "tensors dim", 2, -1, 1, 0, NPE_OPF_VARIADIC},
    [NPE_OP_STACK] = {"stack", "tensors dim", 2, -1, 1, 0, NPE_OPF_VARIADIC},
    [NPE_OP_CHUNK] = {"chunk", "self chunks dim", 3, 3, 0, B(1) | B(2), NPE_OPF_MULTI_OUT},
    [NPE_OP_SPLIT] = {"split", "self split_size dim", 3, 3, 0, B(1) | B(2), NPE_OPF_MULTI_OUT},
    [NPE_OP_SPLIT_WITH_SIZES] = {"split_with_sizes", "self split_sizes dim", 3, 3, 0, B(1) | B(2),
                                 NPE_OPF_MULTI_OUT},
    [NPE_OP_UNBIND] = {"unbind", "self dim", 2, 2, 0, B(1), NPE_OPF_MULTI_OUT},
    [NPE_OP_SLICE] = {"slice", "self dim start end step", 5, 5, 1, B(1) | B(2) | B(3) | B(4), 0},
    [NPE_OP_SELECT] = {"select", "self dim index", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_SLICE_SCATTER] = {"slice_scatter", "self src dim start end step", 6, 6, 1,
                              B(2) | B(3) | B(4) | B(5), 0},
    [NPE_OP_SELECT_SCATTER] = {"select_scatter", "self src dim index", 4, 4, 1, B(2) | B(3), 0},
    [NPE_OP_MEAN] = {"mean", "self dim keepdim dtype", 4, 4, 1, B(1) | B(2) | B(3), 0},
    [NPE_OP_SUM] = {"sum", "self dim keepdim dtype", 4, 4, 1, B(1) | B(2) | B(3), 0},
    [NPE_OP_AMAX] = {"amax", "self dim keepdim", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_AMIN] = {"amin", "self dim keepdim", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_MAX_DIM] = {"max", "self dim keepdim", 3, 3, 2, B(1) | B(2), 0},
    [NPE_OP_MIN_DIM] = {"min", "self dim keepdim", 3, 3, 2, B(1) | B(2), 0},
    [NPE_OP_SOFTMAX] = {"softmax", "self dim dtype", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_LOG_SOFTMAX] = {"log_softmax", "self dim dtype", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_FLATTEN] = {"flatten", "self start_dim end_dim", 3, 3, 1, B(1) | B(2), NPE_OPF_ALIAS},
    [NPE_OP_RESHAPE] = {"reshape", "self shape", 2, 2, 1, B(1), NPE_OPF_ALIAS},
    [NPE_OP_PERMUTE] = {"permute", "self dims", 2, 2, 1, B(1), 0},
    [NPE_OP_TRANSPOSE] = {"transpose", "self dim0 dim1", 3, 3, 1, B(1) | B(2), 0},
    [NPE_OP_SQUEEZE] = {"squeeze", "self dim", 2, 2, 1, B(1), NPE_OPF_ALIAS},
    [NPE_OP_UNSQUEEZE] = {"unsqueeze", "self dim", 2, 2, 1, B(1), NPE_OPF_ALIAS},
    [NPE_OP_EXPAND] = {"expand", "self size", 2, 2, 1, B(1), 0},
    [NPE_OP_EXPAND_AS] = {"expand_as", "self other", 2, 2, 1, 0, 0},
    [NPE_OP_REPEAT] = {"repeat", "self repeats", 2, 2, 1, B(1), 0},
    [NPE_OP_RESHAPE_AS] = {"reshape_as", "self other", 2, 2, 1, 0, NPE_OPF_ALIAS},
    [NPE_OP_CONTIGUOUS] = {"contiguous", "self", 1, 1, 1, 0, NPE_OPF_ALIAS | NPE_OPF_ELEMENTWISE},
    [NPE_OP_DROPOUT] = {"dropout", "input p train", 3, 3, 1, B(1) | B(2),
                        NPE_OPF_ALIAS | NPE_OPF_ELEMENTWISE},
    [NPE_OP_TO] = {"to", "self dtype", 2, 2, 1, B(1), NPE_OPF_ALIAS | NPE_OPF_ELEMENTWISE},
    [NPE_OP_IDENTITY] = {"identity", "self", 1, 1, 1, 0, NPE_OPF_ALIAS | NPE_OPF_ELEMENTWISE},
    [NPE_OP_ONES] = {"ones", "size dtype", 2, 2, 1, B(0) | B(1), NPE_OPF_FACTORY},
    [NPE_OP_ZEROS] = {"zeros", "size dtype", 2, 2, 1, B(0) | B(1), NPE_OPF_FACTORY},
    [NPE_OP_ARANGE] = {"arange", "start end step dtype", 4, 4, 1, B(3), NPE_OPF_FACTORY},
    [NPE_OP_MESHGRID] = {"meshgrid", "tensors indexing", 2, -1, 0, 0,
                         NPE_OPF_VARIADIC | NPE_OPF_MULTI_OUT | NPE_OPF_FACTORY},
    [NPE_OP_SIZE] = {"size", "self dim", 2, 2, 1, B(1), NPE_OPF_SCALAR},
    [NPE_OP_NUM_TO_TENSOR] = {"NumToTensor", "a", 1, 1, 1, B(0), NPE_OPF_SCALAR},
    [NPE_OP_INT] = {"int", "a", 1, 1, 1, 0, NPE_OPF_SCALAR},
    [NPE_OP_FLOAT] = {"float", "a", 1, 1, 1, 0, NPE_OPF_SCALAR},
};
_Static_assert(sizeof(schemas) / sizeof(schemas[0]) == NPE_OP_COUNT,
               "one schema per op: update schemas[] with npe_op");

const npe_op_schema *npe_op_schema_of(npe_op op)
{
    return (unsigned)op < NPE_OP_COUNT ? &schemas[op] : NULL;
}

const char *npe_op_name(npe_op op)
{
    return (unsigned)op < NPE_OP_COUNT && schemas[op].name ? schemas[op].name : "?";
}

/* Copy word k of a space-separated list into buf. */
static const char *nth_word(const char *list, int k, char *buf, size_t cap)
{
    const char *p = list;
    for (int i = 0; *p; i++) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if (e == p)
            break;
        if (i == k) {
            size_t n = (size_t)(e - p);
            if (n >= cap)
                n = cap ? cap - 1 : 0;
            if (cap) {
                memcpy(buf, p, n);
                buf[n] = '\0';
            }
            return buf;
        }
        p = e;
    }
    return NULL;
}

const char *npe_op_slot_name(npe_op op, int i, int n_in, char *buf, size_t cap)
{
    const npe_op_schema *s = npe_op_schema_of(op);
    if (!s || i < 0 || !cap)
        return NULL;
    if (s->flags & NPE_OPF_VARIADIC) {
        if (i >= n_in)
            return NULL;
        return nth_word(s->slots, i == n_in - 1 ? 1 : 0, buf, cap);
    }
    return nth_word(s->slots, i, buf, cap);
}

int npe_op_slot_index(npe_op op, const char *name)
{
    const npe_op_schema *s = npe_op_schema_of(op);
    char buf[64];
    if (!s || (s->flags & NPE_OPF_VARIADIC))
        return -1;
    for (int i = 0; nth_word(s->slots, i, buf, sizeof buf); i++)
        if (strcmp(buf, name) == 0)
            return i;
    return -1;
}

const char *npe_vtype_name(npe_vtype t)
{
    static const char *const names[] = {"none", "tensor", "int", "float", "bool", "str", "list"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == NPE_VT_COUNT, "one name per vtype");
    return (unsigned)t < NPE_VT_COUNT ? names[t] : "?";
}

/* ---- Name index: open addressing, string -> value id ---------------------------------------- */
typedef struct npe_name_index {
    int *slots; /* value id or -1 */
    size_t cap; /* power of two */
    size_t used;
} name_index;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int ni_find(const npe_graph *g, const char *name)
{
    const name_index *ni = g->names;
    if (!ni || !ni->cap || !name[0])
        return -1;
    size_t m = ni->cap - 1;
    for (size_t i = hash_str(name) & m;; i = (i + 1) & m) {
        int v = ni->slots[i];
        if (v < 0)
            return -1;
        if (strcmp(g->values[v].name, name) == 0)
            return v;
    }
}

static int ni_put_raw(name_index *ni, const npe_graph *g, int vid)
{
    size_t m = ni->cap - 1;
    for (size_t i = hash_str(g->values[vid].name) & m;; i = (i + 1) & m) {
        if (ni->slots[i] < 0) {
            ni->slots[i] = vid;
            ni->used++;
            return 0;
        }
    }
}

static int ni_grow(npe_graph *g)
{
    name_index *ni = g->names;
    size_t ncap = ni->cap ? ni->cap * 2 : 256;
    int *slots = malloc(ncap * sizeof *slots);
    if (!slots)
        return NPE_ENOMEM;
    for (size_t i = 0; i < ncap; i++)
        slots[i] = -1;
    int *old = ni->slots;
    size_t ocap = ni->cap;
    ni->slots = slots;
    ni->cap = ncap;
    ni->used = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i] >= 0)
            ni_put_raw(ni, g, old[i]);
    free(old);
    return 0;
}

/* Register value vid under its (non-empty, unique) name. */
static int ni_put(npe_graph *g, int vid)
{
    if (!g->values[vid].name[0])
        return 0;
    name_index *ni = g->names;
    if ((ni->used + 1) * 2 > ni->cap) {
        int r = ni_grow(g);
        if (r)
            return r;
    }
    return ni_put_raw(g->names, g, vid);
}

static int ni_rebuild(npe_graph *g)
{
    name_index *ni = g->names;
    free(ni->slots);
    ni->slots = NULL;
    ni->cap = 0;
    ni->used = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!g->values[v].name[0] || ni_find(g, g->values[v].name) >= 0)
            continue;
        int r = ni_put(g, v);
        if (r)
            return r;
    }
    return 0;
}

/* ---- Building -------------------------------------------------------------------------------- */
static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int npe_graph_create(npe_graph **out)
{
    *out = NULL;
    npe_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NPE_ENOMEM;
    g->names = calloc(1, sizeof *g->names);
    if (!g->names) {
        free(g);
        return NPE_ENOMEM;
    }
    g->none_value = -1;
    *out = g;
    return 0;
}

void npe_value_drop_data(npe_value *v)
{
    if (!v->data_borrowed)
        free(v->data);
    v->data = NULL;
    v->data_borrowed = 0;
}

static void value_finish(npe_value *v)
{
    free(v->name);
    npe_value_drop_data(v);
    free(v->s);
    free(v->items);
}

static void node_finish(npe_node *n)
{
    free(n->in);
    free(n->out);
    free(n->scope);
}

void npe_graph_destroy(npe_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_values; i++)
        value_finish(&g->values[i]);
    for (int i = 0; i < g->n_nodes; i++)
        node_finish(&g->nodes[i]);
    for (int i = 0; i < g->n_sources; i++) {
        free(g->sources[i].record);
        free(g->sources[i].name);
        free(g->sources[i].text);
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->sources);
    free(g->origin);
    if (g->names)
        free(g->names->slots);
    free(g->names);
    free(g);
}

int npe_graph_add_source(npe_graph *g, const char *record, const char *name, const char *text,
                         size_t len)
{
    if (g->n_sources >= 1 << 20)
        return NPE_ELIMIT;
    npe_source *ns = realloc(g->sources, (size_t)(g->n_sources + 1) * sizeof *ns);
    if (!ns)
        return NPE_ENOMEM;
    g->sources = ns;
    npe_source *s = &ns[g->n_sources];
    s->record = xstrdup(record ? record : "");
    s->name = xstrdup(name ? name : "");
    s->text = malloc(len + 1);
    s->len = len;
    if (!s->record || !s->name || !s->text) {
        free(s->record);
        free(s->name);
        free(s->text);
        return NPE_ENOMEM;
    }
    if (len)
        memcpy(s->text, text, len);
    s->text[len] = '\0';
    return g->n_sources++;
}

int npe_graph_add_value(npe_graph *g, npe_vtype t, const char *name)
{
    if (g->n_values >= NPE_IR_MAX_VALUES)
        return NPE_ELIMIT;
    if (g->n_values == g->cap_values) {
        int ncap = g->cap_values ? g->cap_values * 2 : 256;
        npe_value *nv = realloc(g->values, (size_t)ncap * sizeof *nv);
        if (!nv)
            return NPE_ENOMEM;
        g->values = nv;
        g->cap_values = ncap;
    }
    npe_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->type = t;
    v->name = xstrdup(name ? name : "");
    if (!v->name)
        return NPE_ENOMEM;
    v->producer = -1;
    v->const_index = -1;
    v->span.source = -1;
    v->dtype = NPE_DTYPE_F32;
    int id = g->n_values++;
    if (v->name[0] && ni_find(g, v->name) < 0) {
        int r = ni_put(g, id);
        if (r) {
            g->n_values--;
            free(g->values[id].name);
            return r;
        }
    }
    return id;
}

static int add_literal(npe_graph *g, npe_vtype t, const npe_span *span)
{
    int id = npe_graph_add_value(g, t, NULL);
    if (id < 0)
        return id;
    npe_value *v = &g->values[id];
    v->flags = NPE_VF_CONST;
    if (span)
        v->span = *span;
    else
        v->flags |= NPE_VF_SYNTH;
    return id;
}

int npe_graph_add_int(npe_graph *g, int64_t x, const npe_span *span)
{
    int id = add_literal(g, NPE_VT_INT, span);
    if (id >= 0)
        g->values[id].i = x;
    return id;
}

int npe_graph_add_float(npe_graph *g, double x, const npe_span *span)
{
    int id = add_literal(g, NPE_VT_FLOAT, span);
    if (id >= 0)
        g->values[id].f = x;
    return id;
}

int npe_graph_add_bool(npe_graph *g, int x, const npe_span *span)
{
    int id = add_literal(g, NPE_VT_BOOL, span);
    if (id >= 0)
        g->values[id].i = x != 0;
    return id;
}

int npe_graph_add_str(npe_graph *g, const char *s, const npe_span *span)
{
    char *d = xstrdup(s);
    if (!d)
        return NPE_ENOMEM;
    int id = add_literal(g, NPE_VT_STR, span);
    if (id < 0) {
        free(d);
        return id;
    }
    g->values[id].s = d;
    return id;
}

int npe_graph_none(npe_graph *g)
{
    if (g->none_value >= 0)
        return g->none_value;
    int id = add_literal(g, NPE_VT_NONE, NULL);
    if (id >= 0)
        g->none_value = id;
    return id;
}

int npe_graph_add_list(npe_graph *g, const int *items, int n, int is_tuple, const npe_span *span)
{
    if (n < 0 || n > NPE_IR_MAX_LIST)
        return NPE_ELIMIT;
    int *cp = malloc((size_t)(n ? n : 1) * sizeof *cp);
    if (!cp)
        return NPE_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (items[i] < 0 || items[i] >= g->n_values) {
            free(cp);
            return NPE_EINVAL;
        }
        cp[i] = items[i];
    }
    int id = npe_graph_add_value(g, NPE_VT_LIST, NULL);
    if (id < 0) {
        free(cp);
        return id;
    }
    npe_value *v = &g->values[id];
    v->items = cp;
    v->n_items = n;
    if (is_tuple)
        v->flags |= NPE_VF_TUPLE;
    if (span)
        v->span = *span;
    return id;
}

int64_t npe_value_numel(const npe_value *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] < 0)
            return -1;
        if (v->shape[d] && n > INT64_MAX / v->shape[d])
            return -1;
        n *= v->shape[d];
    }
    return n;
}

/* Convert count elements of src (dtype dt) to float. */
static int to_f32(float *dst, const void *src, npe_dtype dt, int64_t count)
{
    const unsigned char *p = src;
    for (int64_t i = 0; i < count; i++) {
        switch (dt) {
        case NPE_DTYPE_F32: { float x; memcpy(&x, p + 4 * i, 4); dst[i] = x; break; }
        case NPE_DTYPE_F64: { double x; memcpy(&x, p + 8 * i, 8); dst[i] = (float)x; break; }
        case NPE_DTYPE_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); dst[i] = (float)x; break; }
        case NPE_DTYPE_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); dst[i] = (float)x; break; }
        case NPE_DTYPE_I16: { int16_t x; memcpy(&x, p + 2 * i, 2); dst[i] = (float)x; break; }
        case NPE_DTYPE_I8: dst[i] = (float)(int8_t)p[i]; break;
        case NPE_DTYPE_U8: dst[i] = (float)p[i]; break;
        case NPE_DTYPE_BOOL: dst[i] = p[i] ? 1.0f : 0.0f; break;
        case NPE_DTYPE_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
            if (e == 0) {
                if (!m) {
                    bits = sign;
                } else { /* subnormal: normalise */
                    e = 113;
                    while (!(m & 1024)) {
                        m <<= 1;
                        e--;
                    }
                    bits = sign | (e << 23) | ((m & 1023) << 13);
                }
            } else if (e == 31) {
                bits = sign | 0x7f800000u | (m << 13);
            } else {
                bits = sign | ((e + 112) << 23) | (m << 13);
            }
            memcpy(&dst[i], &bits, 4);
            break;
        }
        case NPE_DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
            break;
        }
        default:
            return NPE_EUNSUPPORTED;
        }
    }
    return 0;
}

int npe_graph_add_tensor_data(npe_graph *g, const char *name, unsigned flags, npe_dtype dtype,
                              int ndim, const int64_t *shape, const void *src,
                              npe_dtype src_dtype)
{
    if (ndim < 0 || ndim > NPE_MAX_DIMS)
        return NPE_EINVAL;
    npe_value tmp = {0};
    tmp.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        tmp.shape[d] = shape[d];
    int64_t n = npe_value_numel(&tmp);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float) / 2)
        return NPE_ELIMIT;
    float *data = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!data)
        return NPE_ENOMEM;
    int r = src ? to_f32(data, src, src_dtype, n) : 0;
    if (!src)
        memset(data, 0, (size_t)n * sizeof(float));
    if (r) {
        free(data);
        return r;
    }
    int id = npe_graph_add_value(g, NPE_VT_TENSOR, name);
    if (id < 0) {
        free(data);
        return id;
    }
    npe_value *v = &g->values[id];
    v->flags = flags;
    v->dtype = dtype;
    v->ndim = ndim;
    memcpy(v->shape, tmp.shape, sizeof v->shape);
    v->data = data;
    v->numel_data = n;
    if (ndim == 0 && n == 1) { /* a 0-d constant is usable by shape arithmetic too */
        v->f = data[0];
        v->i = (int64_t)data[0];
        if (src && src_dtype == NPE_DTYPE_I64)
            memcpy(&v->i, src, 8);
        if (src && src_dtype == NPE_DTYPE_F64)
            memcpy(&v->f, src, 8);
        if (src && src_dtype == NPE_DTYPE_I64)
            v->f = (double)v->i;
    }
    return id;
}

int npe_graph_set_tensor_data(npe_graph *g, int vid, int ndim, const int64_t *shape, float *data)
{
    if (vid < 0 || vid >= g->n_values || g->values[vid].type != NPE_VT_TENSOR || ndim < 0 ||
        ndim > NPE_MAX_DIMS)
        return NPE_EINVAL;
    npe_value *v = &g->values[vid];
    npe_value tmp = {0};
    tmp.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        tmp.shape[d] = shape[d];
    int64_t n = npe_value_numel(&tmp);
    if (n < 0)
        return NPE_ELIMIT;
    npe_value_drop_data(v);
    v->data = data;
    v->numel_data = n;
    v->ndim = ndim;
    memcpy(v->shape, tmp.shape, sizeof v->shape);
    return 0;
}

/* Type of the outputs of op before inference refines them. */
static npe_vtype out_type(npe_op op)
{
    switch (op) {
    case NPE_OP_SIZE:
    case NPE_OP_INT:
        return NPE_VT_INT;
    case NPE_OP_FLOAT:
        return NPE_VT_FLOAT;
    default:
        return NPE_VT_TENSOR;
    }
}

/* A unique name for an output: base, then base#1, base#2... */
static char *unique_name(const npe_graph *g, const char *base)
{
    size_t n = strlen(base);
    char *buf = malloc(n + 24);
    if (!buf)
        return NULL;
    memcpy(buf, base, n + 1);
    for (unsigned k = 1; ni_find(g, buf) >= 0; k++)
        snprintf(buf + n, 24, "#%u", k);
    return buf;
}

int npe_graph_add_node(npe_graph *g, npe_op op, const int *in, int n_in, int n_out,
                       const char *scope, const npe_span *site, npe_error *err)
{
    const npe_op_schema *s = npe_op_schema_of(op);
    if (!s)
        return npe_error_set(err, NPE_EINVAL, "unknown op %d", (int)op);
    if (n_in < s->min_in || (s->max_in >= 0 && n_in > s->max_in) || n_in > NPE_IR_MAX_INPUTS)
        return npe_error_set(err, NPE_EINVAL, "op %s takes %d..%d inputs, got %d", s->name,
                             s->min_in, s->max_in, n_in);
    if (s->flags & NPE_OPF_MULTI_OUT) {
        if (n_out < 1 || n_out > NPE_IR_MAX_OUTPUTS)
            return npe_error_set(err, NPE_ELIMIT, "op %s: %d outputs (1..%d supported)", s->name,
                                 n_out, NPE_IR_MAX_OUTPUTS);
    } else {
        n_out = s->n_out;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= g->n_values)
            return npe_error_set(err, NPE_EINVAL, "op %s: input %d refers to no value", s->name, i);
    if (g->n_nodes >= NPE_IR_MAX_NODES || g->n_values > NPE_IR_MAX_VALUES - n_out)
        return npe_error_set(err, NPE_ELIMIT, "graph has more than %d nodes", NPE_IR_MAX_NODES);
    if (g->n_nodes == g->cap_nodes) {
        int ncap = g->cap_nodes ? g->cap_nodes * 2 : 128;
        npe_node *nn = realloc(g->nodes, (size_t)ncap * sizeof *nn);
        if (!nn)
            return npe_error_set(err, NPE_ENOMEM, "out of memory");
        g->nodes = nn;
        g->cap_nodes = ncap;
    }
    npe_node nd = {0};
    nd.op = op;
    nd.n_in = n_in;
    nd.n_out = n_out;
    nd.in = malloc((size_t)(n_in ? n_in : 1) * sizeof(int));
    nd.out = malloc((size_t)n_out * sizeof(int));
    nd.scope = xstrdup(scope ? scope : "");
    if (site)
        nd.site = *site;
    else
        nd.site.source = -1;
    if (!nd.in || !nd.out || !nd.scope)
        goto out_oom;
    if (n_in)
        memcpy(nd.in, in, (size_t)n_in * sizeof(int));
    int node_id = g->n_nodes;
    char *base = NULL;
    int named = !(s->flags & NPE_OPF_SCALAR);
    if (named) {
        base = unique_name(g, nd.scope[0] ? nd.scope : s->name);
        if (!base)
            goto out_oom;
    }
    int first_new = g->n_values;
    for (int k = 0; k < n_out; k++) {
        char *nm = NULL;
        if (named && k > 0) {
            nm = malloc(strlen(base) + 16);
            if (!nm)
                goto out_unwind;
            snprintf(nm, strlen(base) + 16, "%s:%d", base, k);
        }
        int vid = npe_graph_add_value(g, out_type(op), named ? (k ? nm : base) : NULL);
        free(nm);
        if (vid < 0)
            goto out_unwind;
        g->values[vid].producer = node_id;
        g->values[vid].producer_out = k;
        nd.out[k] = vid;
    }
    if (op == NPE_OP_ADAPTIVE_MAX_POOL2D || op == NPE_OP_MAX_DIM || op == NPE_OP_MIN_DIM)
        g->values[nd.out[1]].flags |= NPE_VF_UNUSABLE;
    free(base);
    g->nodes[g->n_nodes++] = nd;
    return node_id;

out_unwind:
    while (g->n_values > first_new) {
        npe_value *v = &g->values[--g->n_values];
        value_finish(v);
    }
    free(base);
    ni_rebuild(g);
out_oom:
    node_finish(&nd);
    return npe_error_set(err, NPE_ENOMEM, "out of memory");
}

static int set_ids(int **dst, int *dn, const npe_graph *g, const int *ids, int n)
{
    if (n < 0 || n > NPE_IR_MAX_OUTPUTS)
        return NPE_ELIMIT;
    int *cp = malloc((size_t)(n ? n : 1) * sizeof *cp);
    if (!cp)
        return NPE_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= g->n_values) {
            free(cp);
            return NPE_EINVAL;
        }
        cp[i] = ids[i];
    }
    free(*dst);
    *dst = cp;
    *dn = n;
    return 0;
}

int npe_graph_set_inputs(npe_graph *g, const int *ids, int n)
{
    return set_ids(&g->inputs, &g->n_inputs, g, ids, n);
}

int npe_graph_set_outputs(npe_graph *g, const int *ids, int n)
{
    return set_ids(&g->outputs, &g->n_outputs, g, ids, n);
}

int npe_graph_find_value(const npe_graph *g, const char *name)
{
    return name ? ni_find(g, name) : -1;
}

/* ---- Clone ----------------------------------------------------------------------------------- */
static int dup_mem(void **dst, const void *src, size_t n)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = malloc(n ? n : 1);
    if (!*dst)
        return NPE_ENOMEM;
    if (n)
        memcpy(*dst, src, n);
    return 0;
}

static int clone_graph(const npe_graph *g, int share, npe_graph **out)
{
    npe_graph *c = NULL;
    int r = npe_graph_create(&c);
    if (r)
        return r;
    c->values = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *c->values);
    c->nodes = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *c->nodes);
    c->sources = calloc((size_t)(g->n_sources ? g->n_sources : 1), sizeof *c->sources);
    if (!c->values || !c->nodes || !c->sources)
        goto out_free_clone;
    c->cap_values = g->n_values ? g->n_values : 1;
    c->cap_nodes = g->n_nodes ? g->n_nodes : 1;
    for (int i = 0; i < g->n_values; i++) {
        const npe_value *v = &g->values[i];
        npe_value *d = &c->values[i];
        *d = *v;
        d->name = NULL;
        d->data = NULL;
        d->s = NULL;
        d->items = NULL;
        d->data_borrowed = share && v->data;
        if (d->data_borrowed)
            d->data = v->data;
        c->n_values = i + 1;
        if (dup_mem((void **)&d->name, v->name, strlen(v->name) + 1) ||
            (!d->data_borrowed &&
             dup_mem((void **)&d->data, v->data, (size_t)v->numel_data * sizeof(float))) ||
            dup_mem((void **)&d->s, v->s, v->s ? strlen(v->s) + 1 : 0) ||
            dup_mem((void **)&d->items, v->items, (size_t)v->n_items * sizeof(int)))
            goto out_free_clone;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *n = &g->nodes[i];
        npe_node *d = &c->nodes[i];
        *d = *n;
        d->in = d->out = NULL;
        d->scope = NULL;
        c->n_nodes = i + 1;
        if (dup_mem((void **)&d->in, n->in, (size_t)n->n_in * sizeof(int)) ||
            dup_mem((void **)&d->out, n->out, (size_t)n->n_out * sizeof(int)) ||
            dup_mem((void **)&d->scope, n->scope, strlen(n->scope) + 1))
            goto out_free_clone;
    }
    for (int i = 0; i < g->n_sources; i++) {
        const npe_source *s = &g->sources[i];
        npe_source *d = &c->sources[i];
        c->n_sources = i + 1;
        if (dup_mem((void **)&d->record, s->record, strlen(s->record) + 1) ||
            dup_mem((void **)&d->name, s->name, strlen(s->name) + 1) ||
            dup_mem((void **)&d->text, s->text, s->len + 1))
            goto out_free_clone;
        d->len = s->len;
    }
    if (npe_graph_set_inputs(c, g->inputs, g->n_inputs) ||
        npe_graph_set_outputs(c, g->outputs, g->n_outputs))
        goto out_free_clone;
    if (g->origin && dup_mem((void **)&c->origin, g->origin, strlen(g->origin) + 1))
        goto out_free_clone;
    c->none_value = g->none_value;
    if (ni_rebuild(c))
        goto out_free_clone;
    *out = c;
    return 0;

out_free_clone:
    npe_graph_destroy(c);
    return NPE_ENOMEM;
}

int npe_graph_clone(const npe_graph *g, npe_graph **out)
{
    return clone_graph(g, 0, out);
}

int npe_graph_clone_shared(const npe_graph *g, npe_graph **out)
{
    return clone_graph(g, 1, out);
}

/* ---- Liveness, cutting, dead code ------------------------------------------------------------ */

/* Mark value v and what it lists as needed; push producer nodes. */
static void mark_value(const npe_graph *g, int v, unsigned char *vlive, unsigned char *nlive,
                       int *stack, int *sp)
{
    /* lists nest (a list of lists of ints is possible): walk them with the same stack,
     * encoding values as -(v+1) */
    int local[64];
    int lsp = 0;
    local[lsp++] = v;
    while (lsp) {
        int x = local[--lsp];
        if (vlive[x])
            continue;
        vlive[x] = 1;
        const npe_value *val = &g->values[x];
        if (val->producer >= 0 && !nlive[val->producer]) {
            nlive[val->producer] = 1;
            stack[(*sp)++] = val->producer;
        }
        for (int i = 0; i < val->n_items; i++) {
            int it = val->items[i];
            if (vlive[it])
                continue;
            if (lsp < (int)(sizeof local / sizeof local[0]))
                local[lsp++] = it;
            else /* deep or wide lists: recurse on the rest (bounded by list nesting) */
                mark_value(g, it, vlive, nlive, stack, sp);
        }
    }
}

int npe_graph_remove_dead(npe_graph *g, npe_error *err)
{
    int nv = g->n_values, nn = g->n_nodes;
    unsigned char *vlive = calloc((size_t)nv + 1, 1);
    unsigned char *nlive = calloc((size_t)nn + 1, 1);
    int *stack = malloc(((size_t)nn + 1) * sizeof(int));
    int *vmap = malloc(((size_t)nv + 1) * sizeof(int));
    int *nmap = malloc(((size_t)nn + 1) * sizeof(int));
    int r = 0;
    if (!vlive || !nlive || !stack || !vmap || !nmap) {
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
        goto out_free;
    }
    int sp = 0;
    for (int i = 0; i < g->n_outputs; i++)
        mark_value(g, g->outputs[i], vlive, nlive, stack, &sp);
    for (int i = 0; i < g->n_inputs; i++)
        vlive[g->inputs[i]] = 1;
    while (sp) {
        const npe_node *n = &g->nodes[stack[--sp]];
        for (int i = 0; i < n->n_in; i++)
            mark_value(g, n->in[i], vlive, nlive, stack, &sp);
        for (int i = 0; i < n->n_out; i++)
            vlive[n->out[i]] = 1; /* all outputs of a live node stay (chunk pieces) */
    }
    if (g->none_value >= 0)
        vlive[g->none_value] = 1;
    int k = 0;
    for (int v = 0; v < nv; v++)
        vmap[v] = vlive[v] ? k++ : -1;
    k = 0;
    for (int i = 0; i < nn; i++)
        nmap[i] = nlive[i] ? k++ : -1;
    /* compact values */
    int w = 0;
    for (int v = 0; v < nv; v++) {
        if (!vlive[v]) {
            value_finish(&g->values[v]);
            continue;
        }
        npe_value *val = &g->values[v];
        for (int i = 0; i < val->n_items; i++)
            val->items[i] = vmap[val->items[i]];
        if (val->producer >= 0)
            val->producer = nmap[val->producer];
        g->values[w++] = *val;
    }
    g->n_values = w;
    w = 0;
    for (int i = 0; i < nn; i++) {
        npe_node *n = &g->nodes[i];
        if (!nlive[i]) {
            node_finish(n);
            continue;
        }
        for (int j = 0; j < n->n_in; j++)
            n->in[j] = vmap[n->in[j]];
        for (int j = 0; j < n->n_out; j++)
            n->out[j] = vmap[n->out[j]];
        g->nodes[w++] = *n;
    }
    g->n_nodes = w;
    for (int i = 0; i < g->n_inputs; i++)
        g->inputs[i] = vmap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = vmap[g->outputs[i]];
    if (g->none_value >= 0)
        g->none_value = vmap[g->none_value];
    if (ni_rebuild(g))
        r = npe_error_set(err, NPE_ENOMEM, "out of memory");
out_free:
    free(vlive);
    free(nlive);
    free(stack);
    free(vmap);
    free(nmap);
    return r;
}

int npe_graph_cut_outputs(npe_graph *g, const char *const *names, int n, npe_error *err)
{
    if (n <= 0)
        return npe_error_set(err, NPE_EINVAL, "no output names given");
    if (n > NPE_IR_MAX_OUTPUTS)
        return npe_error_set(err, NPE_ELIMIT, "too many outputs");
    int *ids = malloc((size_t)n * sizeof *ids);
    if (!ids)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int v = npe_graph_find_value(g, names[i]);
        if (v < 0 || g->values[v].type != NPE_VT_TENSOR) {
            free(ids);
            return npe_error_set(err, NPE_ENOTFOUND,
                                 "%s: no tensor called '%.200s' to cut the outputs at (names are "
                                 "module paths such as 'layer1.0.conv1'; see the graph dump)",
                                 g->origin ? g->origin : "model", names[i]);
        }
        ids[i] = v;
    }
    int r = npe_graph_set_outputs(g, ids, n);
    free(ids);
    if (r)
        return npe_error_set(err, r, "out of memory");
    return npe_graph_remove_dead(g, err);
}

/* ---- Validation and queries ------------------------------------------------------------------ */
int npe_graph_validate(const npe_graph *g, npe_error *err)
{
    const char *o = g->origin ? g->origin : "graph";
    for (int v = 0; v < g->n_values; v++) {
        const npe_value *val = &g->values[v];
        if ((unsigned)val->type >= NPE_VT_COUNT)
            return npe_error_set(err, NPE_EFORMAT, "%s: value %d has a bad type", o, v);
        if (val->producer >= g->n_nodes || (val->producer >= 0 &&
            (val->producer_out < 0 || val->producer_out >= g->nodes[val->producer].n_out ||
             g->nodes[val->producer].out[val->producer_out] != v)))
            return npe_error_set(err, NPE_EFORMAT, "%s: value %d has a bad producer", o, v);
        for (int i = 0; i < val->n_items; i++)
            if (val->items[i] < 0 || val->items[i] >= v)
                return npe_error_set(err, NPE_EFORMAT, "%s: list value %d lists a later value", o, v);
        if (val->type == NPE_VT_TENSOR && (val->ndim < 0 || val->ndim > NPE_MAX_DIMS))
            return npe_error_set(err, NPE_EFORMAT, "%s: value %d has %d dims", o, v, val->ndim);
        if (val->data && val->numel_data != npe_value_numel(val))
            return npe_error_set(err, NPE_EFORMAT, "%s: tensor '%s' holds %" PRId64
                                 " elements for its shape", o, val->name, val->numel_data);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *n = &g->nodes[i];
        const npe_op_schema *s = npe_op_schema_of(n->op);
        if (!s)
            return npe_error_set(err, NPE_EFORMAT, "%s: node %d has unknown op %d", o, i, (int)n->op);
        if (n->n_in < s->min_in || (s->max_in >= 0 && n->n_in > s->max_in))
            return npe_error_set(err, NPE_EFORMAT, "%s: node %d (%s) has %d inputs", o, i, s->name,
                                 n->n_in);
        if (!(s->flags & NPE_OPF_MULTI_OUT) && n->n_out != s->n_out)
            return npe_error_set(err, NPE_EFORMAT, "%s: node %d (%s) has %d outputs", o, i,
                                 s->name, n->n_out);
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0 || v >= g->n_values)
                return npe_error_set(err, NPE_EFORMAT, "%s: node %d input %d out of range", o, i, j);
            int p = g->values[v].producer;
            if (p >= i)
                return npe_error_set(err, NPE_EFORMAT,
                                     "%s: node %d (%s) reads a value made later (not topological)",
                                     o, i, s->name);
        }
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0 || v >= g->n_values || g->values[v].producer != i)
                return npe_error_set(err, NPE_EFORMAT, "%s: node %d output %d is inconsistent", o,
                                     i, j);
        }
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] < 0 || g->inputs[i] >= g->n_values ||
            g->values[g->inputs[i]].type != NPE_VT_TENSOR)
            return npe_error_set(err, NPE_EFORMAT, "%s: input %d is not a tensor", o, i);
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < 0 || g->outputs[i] >= g->n_values ||
            g->values[g->outputs[i]].type != NPE_VT_TENSOR)
            return npe_error_set(err, NPE_EFORMAT, "%s: output %d is not a tensor", o, i);
    return 0;
}

static int lists_value(const npe_graph *g, int list, int v, int depth)
{
    const npe_value *l = &g->values[list];
    if (depth > 16)
        return 0;
    for (int i = 0; i < l->n_items; i++) {
        if (l->items[i] == v)
            return 1;
        if (g->values[l->items[i]].type == NPE_VT_LIST && lists_value(g, l->items[i], v, depth + 1))
            return 1;
    }
    return 0;
}

int npe_graph_users(const npe_graph *g, int v, int **out)
{
    *out = NULL;
    int n = 0, cap = 0;
    int *res = NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *nd = &g->nodes[i];
        int uses = 0;
        for (int j = 0; j < nd->n_in && !uses; j++)
            uses = nd->in[j] == v ||
                   (g->values[nd->in[j]].type == NPE_VT_LIST && lists_value(g, nd->in[j], v, 0));
        if (!uses)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int *nr = realloc(res, (size_t)cap * sizeof *nr);
            if (!nr) {
                free(res);
                return NPE_ENOMEM;
            }
            res = nr;
        }
        res[n++] = i;
    }
    *out = res;
    return n;
}

const char *npe_span_str(const npe_graph *g, const npe_span *s, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = '\0';
    if (s && s->source >= 0 && s->source < g->n_sources)
        snprintf(buf, cap, "%s:%u", g->sources[s->source].name, s->line);
    return buf;
}

const char *npe_node_desc(const npe_graph *g, int node, char *buf, size_t cap)
{
    if (node < 0 || node >= g->n_nodes) {
        snprintf(buf, cap, "node %d", node);
        return buf;
    }
    const npe_node *n = &g->nodes[node];
    char where[256];
    npe_span_str(g, &n->site, where, sizeof where);
    const char *name = n->n_out && g->values[n->out[0]].name[0] ? g->values[n->out[0]].name
                                                                 : n->scope;
    snprintf(buf, cap, "node '%.200s' (%s)%s%s", name[0] ? name : "<root>", npe_op_name(n->op),
             where[0] ? " at " : "", where);
    return buf;
}

/* ---- Dump ------------------------------------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

NPE_PRINTF(2, 3) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->n + (size_t)k + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

static void dump_value(sbuf *b, const npe_graph *g, int v, int depth)
{
    const npe_value *val = &g->values[v];
    int known = (val->flags & (NPE_VF_KNOWN | NPE_VF_CONST)) != 0;
    switch (val->type) {
    case NPE_VT_NONE:
        sb_printf(b, "None");
        break;
    case NPE_VT_INT:
        if (known)
            sb_printf(b, "%" PRId64, val->i);
        else
            sb_printf(b, "%%%d:int", v);
        break;
    case NPE_VT_BOOL:
        sb_printf(b, known ? (val->i ? "True" : "False") : "%%%d:bool", v);
        break;
    case NPE_VT_FLOAT:
        if (known)
            sb_printf(b, "%g", val->f);
        else
            sb_printf(b, "%%%d:float", v);
        break;
    case NPE_VT_STR:
        sb_printf(b, "\"%s\"", val->s ? val->s : "");
        break;
    case NPE_VT_LIST:
        sb_printf(b, (val->flags & NPE_VF_TUPLE) ? "(" : "[");
        for (int i = 0; i < val->n_items; i++) {
            if (i)
                sb_printf(b, ", ");
            if (depth < 8)
                dump_value(b, g, val->items[i], depth + 1);
            else
                sb_printf(b, "...");
        }
        sb_printf(b, (val->flags & NPE_VF_TUPLE) ? ")" : "]");
        break;
    case NPE_VT_TENSOR:
        if (val->name[0])
            sb_printf(b, "%%%s", val->name);
        else
            sb_printf(b, "%%%d", v);
        break;
    default:
        sb_printf(b, "?");
    }
}

static void dump_shape(sbuf *b, const npe_value *v)
{
    sb_printf(b, "[");
    for (int d = 0; d < v->ndim; d++)
        sb_printf(b, d ? ", %" PRId64 : "%" PRId64, v->shape[d]);
    sb_printf(b, "]");
}

int npe_graph_dump(const npe_graph *g, char **out)
{
    sbuf b = {0};
    *out = NULL;
    sb_printf(&b, "graph %s: %d inputs, %d outputs, %d nodes, %d values\n",
              g->origin ? g->origin : "", g->n_inputs, g->n_outputs, g->n_nodes, g->n_values);
    for (int i = 0; i < g->n_inputs; i++) {
        const npe_value *v = &g->values[g->inputs[i]];
        sb_printf(&b, "input %%%s ", v->name);
        dump_shape(&b, v);
        sb_printf(&b, "\n");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const npe_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            const npe_value *o = &g->values[n->out[k]];
            if (k)
                sb_printf(&b, ", ");
            if (o->type == NPE_VT_TENSOR) {
                dump_value(&b, g, n->out[k], 0);
                if (o->flags & NPE_VF_KNOWN || o->ndim)
                    dump_shape(&b, o);
            } else {
                sb_printf(&b, "%%%d:%s", n->out[k], npe_vtype_name(o->type));
                if (o->flags & NPE_VF_KNOWN) {
                    sb_printf(&b, "=");
                    dump_value(&b, g, n->out[k], 0);
                }
            }
        }
        sb_printf(&b, " = %s(", npe_op_name(n->op));
        for (int k = 0; k < n->n_in; k++) {
            if (k)
                sb_printf(&b, ", ");
            dump_value(&b, g, n->in[k], 0);
        }
        char where[256];
        npe_span_str(g, &n->site, where, sizeof where);
        sb_printf(&b, ")%s%s%s%s%s\n", n->scope[0] ? "  scope=" : "", n->scope,
                  where[0] ? "  at " : "", where, (n->flags & NPE_NF_STATIC) ? "  static" : "");
    }
    sb_printf(&b, "return ");
    for (int i = 0; i < g->n_outputs; i++) {
        if (i)
            sb_printf(&b, ", ");
        dump_value(&b, g, g->outputs[i], 0);
    }
    sb_printf(&b, "\n");
    if (b.oom) {
        free(b.p);
        return NPE_ENOMEM;
    }
    *out = b.p;
    return 0;
}
