/* Pruned graph -> the files a user rebuilds or fine-tunes from: a state_dict .pth, a JSON of the
 * layers' channel counts, and a torch.save(model) archive with new tensors and module
 * attributes. See ts_export.h for the rules. */
#include "ts_export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/json_writer.h"
#include "../formats/fileio.h"
#include "export_internal.h"
#include "torch_file.h"
#include "ts_ast.h"

#define MAX_MODULE_DEPTH 256
#define MAX_STATE_ENTRIES (1 << 20) /* shared modules repeat their tensors; bound the repeats */
#define MAX_CODE_BYTES (64u << 20)

static int oom(npe_error *err)
{
    return npe_error_set(err, NPE_ENOMEM, "out of memory");
}

static int is_state_tensor(const npe_value *v)
{
    return v->type == NPE_VT_TENSOR && (v->flags & (NPE_VF_PARAM | NPE_VF_BUFFER)) &&
           v->const_index < 0;
}

/* Graph value of tensor node `node` of f: by the tensor's names (a tied tensor has several). */
static int index_graph_tensors(const npe_graph *g, const npe_torch_file *f, npe_xmap *vid_of_node,
                               npe_error *err)
{
    npe_xsmap byname = {0};
    for (size_t i = f->n_tensors; i-- > 0;)
        if (npe_xsmap_put(&byname, f->tensors[i].name, (int)i)) {
            npe_xsmap_free(&byname);
            return oom(err);
        }
    int r = 0;
    for (int vid = 0; vid < g->n_values && !r; vid++) {
        const npe_value *v = &g->values[vid];
        if (!is_state_tensor(v))
            continue;
        int ti = npe_xsmap_get(&byname, v->name);
        if (ti >= 0 && !npe_xmap_get(vid_of_node, f->tensors[ti].node) &&
            npe_xmap_put(vid_of_node, f->tensors[ti].node, (void *)(intptr_t)(vid + 1)))
            r = oom(err);
    }
    npe_xsmap_free(&byname);
    return r;
}

/* ---- state_dict ------------------------------------------------------------------------------ */
typedef struct sd {
    const npe_graph *g;
    npe_torch_file *f;
    npe_error *err;
    npe_xmap vid_of_node;     /* tensor node -> graph value id + 1 */
    npe_xmap ti_of_node;      /* tensor node -> tensor index + 1 */
    npe_xmap data_of_node;    /* tensor node -> index into bufs + 1 */
    void **bufs;
    size_t n_bufs, cap_bufs;
    npe_tw_tensor *tw;
    char **names;
    int64_t (*shapes)[NPE_MAX_DIMS];
    size_t n_tw, cap_tw;
    npe_xsmap written;        /* names already in the state_dict */
    size_t visits;            /* modules walked (shared ones once per path) */
    /* parsed code records by name */
    char **mod_names;
    npe_ts_module **mods;
    char **mod_texts;
    char **mod_recs;          /* record names (the parsed modules point at them) */
    size_t n_mods, cap_mods;
} sd;

static int grow_tw(sd *S)
{
    if (S->n_tw < S->cap_tw)
        return 0;
    size_t ncap = S->cap_tw ? S->cap_tw * 2 : 64;
    npe_tw_tensor *t = realloc(S->tw, ncap * sizeof *t);
    if (t)
        S->tw = t;
    char **n = realloc(S->names, ncap * sizeof *n);
    if (n)
        S->names = n;
    int64_t(*sh)[NPE_MAX_DIMS] = realloc(S->shapes, ncap * sizeof *sh);
    if (sh)
        S->shapes = sh;
    if (!t || !n || !sh)
        return oom(S->err);
    S->cap_tw = ncap;
    return 0;
}

/* Bytes of one tensor node (shared by every name of it), from the graph or the archive. */
static int node_data(sd *S, const npe_pv *node, int ti, const void **data, uint64_t *numel,
                     npe_dtype *dt, int *ndim, int64_t *shape)
{
    const npe_ttensor *t = &S->f->tensors[ti];
    int vid = (int)(intptr_t)npe_xmap_get(&S->vid_of_node, node) - 1;
    *dt = t->dtype;
    if (vid >= 0) {
        const npe_value *v = &S->g->values[vid];
        *ndim = v->ndim;
        memcpy(shape, v->shape, sizeof(int64_t) * NPE_MAX_DIMS);
    } else {
        *ndim = t->ndim;
        memcpy(shape, t->shape, sizeof(int64_t) * NPE_MAX_DIMS);
    }
    int64_t n = 1;
    for (int d = 0; d < *ndim; d++)
        n *= shape[d];
    *numel = (uint64_t)n;
    int have = (int)(intptr_t)npe_xmap_get(&S->data_of_node, node);
    if (have) {
        *data = S->bufs[have - 1];
        return 0;
    }
    void *buf = NULL;
    size_t nb = 0;
    int r;
    if (vid >= 0) {
        r = npe_x_value_bytes(&S->g->values[vid], t->dtype, &buf, &nb, S->err);
    } else {
        int64_t tn = npe_torch_tensor_numel(t);
        size_t isz = npe_dtype_size(t->dtype);
        if (tn < 0 || !isz || (uint64_t)tn > SIZE_MAX / isz / 2)
            return npe_error_set(S->err, NPE_ELIMIT, "tensor '%s' is too large", t->name);
        buf = malloc((size_t)tn * isz + 1);
        r = buf ? npe_torch_tensor_copy(S->f, (size_t)ti, buf, (size_t)tn * isz, S->err)
                : oom(S->err);
    }
    if (!r && S->n_bufs == S->cap_bufs) {
        size_t ncap = S->cap_bufs ? S->cap_bufs * 2 : 64;
        void **nb2 = realloc(S->bufs, ncap * sizeof *nb2);
        if (!nb2)
            r = oom(S->err);
        else {
            S->bufs = nb2;
            S->cap_bufs = ncap;
        }
    }
    if (r) {
        free(buf);
        return r;
    }
    S->bufs[S->n_bufs++] = buf;
    if (npe_xmap_put(&S->data_of_node, node, (void *)(intptr_t)S->n_bufs))
        return oom(S->err);
    *data = buf;
    return 0;
}

static int add_entry(sd *S, const char *name, const npe_pv *node)
{
    int ti = (int)(intptr_t)npe_xmap_get(&S->ti_of_node, node) - 1;
    if (ti < 0)
        return 0; /* not a tensor the loader knows */
    if (S->n_tw >= MAX_STATE_ENTRIES)
        return npe_error_set(S->err, NPE_ELIMIT, "%s: more than %d state_dict entries (shared "
                             "modules repeated too often)", S->f->path, MAX_STATE_ENTRIES);
    if (npe_xsmap_get(&S->written, name) >= 0)
        return 0;
    int r = grow_tw(S);
    if (r)
        return r;
    npe_tw_tensor *w = &S->tw[S->n_tw];
    memset(w, 0, sizeof *w);
    const void *data = NULL;
    uint64_t numel = 0;
    if ((r = node_data(S, node, ti, &data, &numel, &w->dtype, &w->ndim, S->shapes[S->n_tw])))
        return r;
    size_t len = strlen(name);
    S->names[S->n_tw] = malloc(len + 1);
    if (!S->names[S->n_tw])
        return oom(S->err);
    memcpy(S->names[S->n_tw], name, len + 1);
    w->name = S->names[S->n_tw];
    w->storage_data = data; /* shape: set from S->shapes once the arrays stop growing */
    w->storage_numel = numel;
    S->n_tw++;
    return npe_xsmap_put(&S->written, name, 1) ? oom(S->err) : 0;
}

/* The parsed class of a TorchScript object, or NULL when its code cannot be read. */
static const npe_ts_class *class_of(sd *S, const npe_pv *obj)
{
    const npe_pv *fn = obj->u.call.fn;
    const char *module = fn->u.global.module;
    npe_ts_module *m = NULL;
    size_t i;
    for (i = 0; i < S->n_mods; i++)
        if (strcmp(S->mod_names[i], module) == 0)
            break;
    if (i < S->n_mods) {
        m = S->mods[i];
    } else {
        if (S->n_mods == S->cap_mods) {
            size_t ncap = S->cap_mods ? S->cap_mods * 2 : 32;
            char **a = realloc(S->mod_names, ncap * sizeof *a);
            if (a)
                S->mod_names = a;
            npe_ts_module **b = realloc(S->mods, ncap * sizeof *b);
            if (b)
                S->mods = b;
            char **c = realloc(S->mod_texts, ncap * sizeof *c);
            if (c)
                S->mod_texts = c;
            char **d = realloc(S->mod_recs, ncap * sizeof *d);
            if (d)
                S->mod_recs = d;
            if (!a || !b || !c || !d)
                return NULL;
            S->cap_mods = ncap;
        }
        size_t pl = strlen(S->f->prefix), ml = strlen(module);
        char *rn = malloc(pl + ml + 9), *mn = malloc(ml + 1);
        if (!rn || !mn) {
            free(rn);
            free(mn);
            return NULL;
        }
        memcpy(mn, module, ml + 1);
        snprintf(rn, pl + ml + 9, "%scode/%s.py", S->f->prefix, module);
        for (char *p = rn + pl + 5; *p; p++)
            if (*p == '.' && strcmp(p, ".py") != 0)
                *p = '/';
        const npe_zip_entry *e = npe_zip_find(S->f->zip, rn);
        void *text = NULL;
        size_t len = 0;
        if (e && !npe_zip_read(S->f->zip, e, MAX_CODE_BYTES, &text, &len, NULL) &&
            npe_ts_parse(text, len, rn, &m, NULL))
            m = NULL;
        S->mod_recs[S->n_mods] = rn;
        S->mod_names[S->n_mods] = mn;
        S->mods[S->n_mods] = m;
        S->mod_texts[S->n_mods] = text;
        S->n_mods++;
    }
    return m ? npe_ts_find_class(m, fn->u.global.name) : NULL;
}

static int is_code_object(const npe_pv *v)
{
    return v && v->kind == NPE_PV_OBJECT && v->u.call.fn && v->u.call.fn->kind == NPE_PV_GLOBAL &&
           strncmp(v->u.call.fn->u.global.module, "__torch__", 9) == 0 && v->u.call.state &&
           v->u.call.state->kind == NPE_PV_DICT;
}

static char *join(const char *path, const char *name)
{
    size_t a = strlen(path), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    if (a)
        snprintf(s, a + b + 2, "%s.%s", path, name);
    else
        memcpy(s, name, b + 1);
    return s;
}

/* A module's parameters, then buffers (its class's lists, in their order), then children. */
static int walk_state(sd *S, const npe_pv *obj, const char *path, int depth)
{
    if (depth > MAX_MODULE_DEPTH)
        return npe_error_set(S->err, NPE_ELIMIT, "%s: modules nested deeper than %d levels",
                             S->f->path, MAX_MODULE_DEPTH);
    if (++S->visits > MAX_STATE_ENTRIES)
        return npe_error_set(S->err, NPE_ELIMIT, "%s: more than %d module paths (shared modules "
                             "repeated too often)", S->f->path, MAX_STATE_ENTRIES);
    const npe_pv *st = obj->u.call.state;
    const npe_ts_class *c = class_of(S, obj);
    int r = 0;
    if (c) {
        for (int pass = 0; pass < 2 && !r; pass++) {
            const char **names = pass ? c->buffer_names : c->param_names;
            int n = pass ? c->n_buffer_names : c->n_param_names;
            for (int i = 0; i < n && !r; i++) {
                const npe_pv *v = npe_pv_dict_get(st, names[i]);
                if (!v || v->kind == NPE_PV_NONE)
                    continue;
                char *full = join(path, names[i]);
                r = full ? add_entry(S, full, v) : oom(S->err);
                free(full);
            }
        }
    } else { /* no class to ask: every tensor attribute */
        for (size_t i = 0; i < st->u.dict.n && !r; i++) {
            const npe_pv *k = st->u.dict.keys[i];
            if (k->kind != NPE_PV_STR || is_code_object(st->u.dict.vals[i]))
                continue;
            char *full = join(path, k->u.str.s);
            r = full ? add_entry(S, full, st->u.dict.vals[i]) : oom(S->err);
            free(full);
        }
    }
    for (size_t i = 0; i < st->u.dict.n && !r; i++) {
        const npe_pv *k = st->u.dict.keys[i], *v = st->u.dict.vals[i];
        if (k->kind != NPE_PV_STR || !is_code_object(v))
            continue;
        char *full = join(path, k->u.str.s);
        r = full ? walk_state(S, v, full, depth + 1) : oom(S->err);
        free(full);
    }
    return r;
}

static void sd_free(sd *S)
{
    npe_xmap_free(&S->vid_of_node);
    npe_xmap_free(&S->ti_of_node);
    npe_xmap_free(&S->data_of_node);
    npe_xsmap_free(&S->written);
    for (size_t i = 0; i < S->n_bufs; i++)
        free(S->bufs[i]);
    free(S->bufs);
    for (size_t i = 0; i < S->n_tw; i++)
        free(S->names[i]);
    free(S->names);
    free(S->tw);
    free(S->shapes);
    for (size_t i = 0; i < S->n_mods; i++) {
        free(S->mod_names[i]);
        npe_ts_module_free(S->mods[i]);
        free(S->mod_texts[i]);
        free(S->mod_recs[i]);
    }
    free(S->mod_recs);
    free(S->mod_names);
    free(S->mods);
    free(S->mod_texts);
    npe_torch_close(S->f);
}

/* Without the archive: the graph's own parameters and buffers. */
static int graph_state(sd *S)
{
    const npe_graph *g = S->g;
    for (int vid = 0; vid < g->n_values; vid++) {
        const npe_value *v = &g->values[vid];
        if (!is_state_tensor(v))
            continue;
        int r = grow_tw(S);
        if (r)
            return r;
        npe_tw_tensor *w = &S->tw[S->n_tw];
        memset(w, 0, sizeof *w);
        npe_dtype dt = npe_dtype_size(v->dtype) ? v->dtype : NPE_DTYPE_F32;
        void *buf = NULL;
        size_t nb = 0;
        if ((r = npe_x_value_bytes(v, dt, &buf, &nb, S->err)))
            return r;
        if (S->n_bufs == S->cap_bufs) {
            size_t ncap = S->cap_bufs ? S->cap_bufs * 2 : 64;
            void **b = realloc(S->bufs, ncap * sizeof *b);
            if (!b) {
                free(buf);
                return oom(S->err);
            }
            S->bufs = b;
            S->cap_bufs = ncap;
        }
        S->bufs[S->n_bufs++] = buf;
        size_t len = strlen(v->name);
        if (!(S->names[S->n_tw] = malloc(len + 1)))
            return oom(S->err);
        memcpy(S->names[S->n_tw], v->name, len + 1);
        memcpy(S->shapes[S->n_tw], v->shape, sizeof S->shapes[0]);
        w->name = S->names[S->n_tw];
        w->dtype = dt;
        w->ndim = v->ndim;
        w->storage_data = buf;
        w->storage_numel = nb / npe_dtype_size(dt);
        S->n_tw++;
    }
    return 0;
}

int npe_state_dict_export(const npe_graph *g, const char *path, npe_error *err)
{
    if (!g || !path)
        return npe_error_set(err, NPE_EINVAL, "npe_state_dict_export: NULL argument");
    sd S;
    memset(&S, 0, sizeof S);
    S.g = g;
    S.err = err;
    int r = 0;
    if (g->origin) {
        if ((r = npe_torch_open(g->origin, &S.f, err)))
            goto out_free;
        if (S.f->kind != NPE_ARCHIVE_TORCHSCRIPT || !S.f->zip ||
            !is_code_object(S.f->root)) {
            r = npe_error_set(err, NPE_EUNSUPPORTED, "%s is not the TorchScript archive of a "
                              "module: cannot tell which tensors form the state_dict", g->origin);
            goto out_free;
        }
        for (size_t i = S.f->n_tensors; i-- > 0 && !r;)
            if (npe_xmap_put(&S.ti_of_node, S.f->tensors[i].node, (void *)(intptr_t)(i + 1)))
                r = oom(err);
        if (!r)
            r = index_graph_tensors(g, S.f, &S.vid_of_node, err);
        if (!r)
            r = walk_state(&S, S.f->root, "", 0);
    } else {
        r = graph_state(&S);
    }
    for (size_t i = 0; i < S.n_tw; i++) /* the shapes array moved while it grew */
        S.tw[i].shape = S.shapes[i];
    if (!r)
        r = npe_torch_save_state_dict(path, S.tw, S.n_tw, NULL, err);
out_free:
    sd_free(&S);
    return r;
}

/* ---- Channel counts -------------------------------------------------------------------------- */
/* Layer name: the parameter's name without its attribute ("layer1.conv.weight" -> "layer1.conv"),
 * else the node's scope. */
static void layer_name(const npe_value *p, const char *attr, const char *scope, char *buf,
                       size_t cap)
{
    size_t len = strlen(p->name), al = strlen(attr);
    if (len > al + 1 && p->name[len - al - 1] == '.' && strcmp(p->name + len - al, attr) == 0)
        snprintf(buf, cap, "%.*s", (int)(len - al - 1), p->name);
    else
        snprintf(buf, cap, "%s", scope);
}

/* Integer a node input holds (a literal, or shape arithmetic inference evaluated). */
static int int_input(const npe_graph *g, const npe_node *nd, int slot, int64_t *out)
{
    if (slot >= nd->n_in)
        return -1;
    const npe_value *v = &g->values[nd->in[slot]];
    if ((v->type != NPE_VT_INT && v->type != NPE_VT_BOOL) ||
        !(v->flags & (NPE_VF_CONST | NPE_VF_KNOWN)))
        return -1;
    *out = v->i;
    return 0;
}

static const npe_value *tensor_input(const npe_graph *g, const npe_node *nd, int slot)
{
    if (slot >= nd->n_in)
        return NULL;
    const npe_value *v = &g->values[nd->in[slot]];
    return v->type == NPE_VT_TENSOR && v->ndim > 0 ? v : NULL;
}

int npe_channels_export(const npe_graph *g, const char *path_json, npe_error *err)
{
    if (!g || !path_json)
        return npe_error_set(err, NPE_EINVAL, "npe_channels_export: NULL argument");
    npe_json j;
    npe_json_init(&j, 1);
    npe_json_begin_object(&j, 0);
    char **seen = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *seen);
    int n_seen = 0, r = 0;
    if (!seen)
        r = oom(err);
    for (int i = 0; i < g->n_nodes && !r; i++) {
        const npe_node *nd = &g->nodes[i];
        if (nd->op != NPE_OP_CONV && nd->op != NPE_OP_LINEAR && nd->op != NPE_OP_BATCH_NORM &&
            nd->op != NPE_OP_GROUP_NORM)
            continue;
        int wslot = nd->op == NPE_OP_CONV ? NPE_CONV_WEIGHT
                    : nd->op == NPE_OP_LINEAR ? NPE_LINEAR_WEIGHT
                    : nd->op == NPE_OP_GROUP_NORM ? NPE_GN_WEIGHT : NPE_BN_WEIGHT;
        const npe_value *w = tensor_input(g, nd, wslot);
        const char *attr = "weight";
        if (nd->op == NPE_OP_BATCH_NORM && !w) { /* affine=False: running_mean has the size */
            w = tensor_input(g, nd, NPE_BN_MEAN);
            attr = "running_mean";
        }
        if (!w)
            continue;
        char name[512];
        layer_name(w, attr, nd->scope, name, sizeof name);
        int dup = 0;
        for (int k = 0; k < n_seen && !dup; k++)
            dup = strcmp(seen[k], name) == 0;
        if (dup)
            continue;
        size_t nl = strlen(name);
        if (!(seen[n_seen] = malloc(nl + 1))) {
            r = oom(err);
            break;
        }
        memcpy(seen[n_seen++], name, nl + 1);
        npe_json_key(&j, name);
        npe_json_begin_object(&j, 1);
        if (nd->op == NPE_OP_CONV) {
            int64_t groups = 1, transposed = 0;
            if (int_input(g, nd, NPE_CONV_GROUPS, &groups) || groups < 1 ||
                int_input(g, nd, NPE_CONV_TRANSPOSED, &transposed) || w->ndim < 2) {
                char d[256];
                r = npe_error_set(err, NPE_EUNSUPPORTED, "%s: its groups are not known (run shape "
                                  "inference first)", npe_node_desc(g, i, d, sizeof d));
                break;
            }
            npe_json_key(&j, "in_channels");
            npe_json_int(&j, transposed ? w->shape[0] : w->shape[1] * groups);
            npe_json_key(&j, "out_channels");
            npe_json_int(&j, transposed ? w->shape[1] * groups : w->shape[0]);
            npe_json_key(&j, "groups");
            npe_json_int(&j, groups);
        } else if (nd->op == NPE_OP_LINEAR) {
            npe_json_key(&j, "in_features");
            npe_json_int(&j, w->shape[w->ndim - 1]);
            npe_json_key(&j, "out_features");
            npe_json_int(&j, w->ndim > 1 ? w->shape[0] : 1);
        } else if (nd->op == NPE_OP_GROUP_NORM) {
            int64_t groups = 0;
            if (!int_input(g, nd, NPE_GN_GROUPS, &groups)) {
                npe_json_key(&j, "num_groups");
                npe_json_int(&j, groups);
            }
            npe_json_key(&j, "num_channels");
            npe_json_int(&j, w->shape[0]);
        } else {
            npe_json_key(&j, "num_features");
            npe_json_int(&j, w->shape[0]);
        }
        npe_json_end_object(&j);
    }
    for (int k = 0; k < n_seen; k++)
        free(seen[k]);
    free(seen);
    npe_json_end_object(&j);
    size_t len = 0;
    char *text = r ? NULL : npe_json_finish(&j, &len);
    if (r) {
        npe_json_free(&j);
        return r;
    }
    if (!text)
        return oom(err);
    npe_afile af;
    memset(&af, 0, sizeof af);
    if (!(r = npe_afile_open(&af, path_json, err)) &&
        !(r = npe_afile_write(&af, text, len, err)) && !(r = npe_afile_write(&af, "\n", 1, err)))
        r = npe_afile_commit(&af, err);
    else
        npe_afile_abort(&af);
    free(text);
    return r;
}

/* ---- Full model ------------------------------------------------------------------------------ */
typedef struct attr_set {
    const npe_pv *state; /* the module's __dict__ */
    const npe_pv *key;   /* the attribute's key node */
    int64_t value;
} attr_set;

/* The node of op that reads vid at input slot, or NULL. */
static const npe_node *node_reading(const npe_graph *g, npe_op op, int slot, int vid)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == op && g->nodes[i].n_in > slot && g->nodes[i].in[slot] == vid)
            return &g->nodes[i];
    return NULL;
}

static const npe_pv *int_attr(const npe_pv *st, const char *name, const npe_pv **key)
{
    for (size_t i = 0; i < st->u.dict.n; i++) {
        const npe_pv *k = st->u.dict.keys[i];
        if (k->kind == NPE_PV_STR && strcmp(k->u.str.s, name) == 0) {
            *key = k;
            return st->u.dict.vals[i]->kind == NPE_PV_INT ? st->u.dict.vals[i] : NULL;
        }
    }
    return NULL;
}

static int want_attr(attr_set **sets, size_t *n, size_t *cap, const npe_pv *st, const char *name,
                     int64_t value)
{
    const npe_pv *key = NULL, *cur = int_attr(st, name, &key);
    if (!cur || cur->u.i == value)
        return 0;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        attr_set *ns = realloc(*sets, ncap * sizeof *ns);
        if (!ns)
            return NPE_ENOMEM;
        *sets = ns;
        *cap = ncap;
    }
    (*sets)[(*n)++] = (attr_set){st, key, value};
    return 0;
}

/* The attributes of module m (path, its __dict__) that follow its tensors in the graph. */
static int module_attrs(const npe_graph *g, const char *path, const npe_pv *st, attr_set **sets,
                        size_t *n, size_t *cap)
{
    char name[1024];
    snprintf(name, sizeof name, "%s%sweight", path, path[0] ? "." : "");
    int w = npe_graph_find_value(g, name);
    const npe_value *wv = w >= 0 && is_state_tensor(&g->values[w]) ? &g->values[w] : NULL;
    const npe_pv *key;
    int r = 0;
    if (wv && wv->ndim >= 3 && int_attr(st, "out_channels", &key) &&
        int_attr(st, "in_channels", &key)) {
        const npe_pv *gv = int_attr(st, "groups", &key);
        int64_t groups = gv ? gv->u.i : 1, transposed = 0;
        const npe_pv *tv = npe_pv_dict_get(st, "transposed");
        if (tv && tv->kind == NPE_PV_BOOL)
            transposed = tv->u.b;
        const npe_node *nd = node_reading(g, NPE_OP_CONV, NPE_CONV_WEIGHT, w);
        if (nd) {
            int64_t x;
            if (!int_input(g, nd, NPE_CONV_GROUPS, &x) && x >= 1)
                groups = x;
            if (!int_input(g, nd, NPE_CONV_TRANSPOSED, &x))
                transposed = x;
        }
        int64_t in = transposed ? wv->shape[0] : wv->shape[1] * groups;
        int64_t out = transposed ? wv->shape[1] * groups : wv->shape[0];
        if ((r = want_attr(sets, n, cap, st, "in_channels", in)) ||
            (r = want_attr(sets, n, cap, st, "out_channels", out)) ||
            (r = want_attr(sets, n, cap, st, "groups", groups)))
            return r;
    }
    if (wv && wv->ndim == 2 && int_attr(st, "in_features", &key) &&
        ((r = want_attr(sets, n, cap, st, "in_features", wv->shape[1])) ||
         (r = want_attr(sets, n, cap, st, "out_features", wv->shape[0]))))
        return r;
    if (wv && wv->ndim == 1 && int_attr(st, "num_channels", &key) &&
        int_attr(st, "num_groups", &key)) { /* group norm */
        const npe_node *nd = node_reading(g, NPE_OP_GROUP_NORM, NPE_GN_WEIGHT, w);
        int64_t groups;
        if ((r = want_attr(sets, n, cap, st, "num_channels", wv->shape[0])) ||
            (nd && !int_input(g, nd, NPE_GN_GROUPS, &groups) &&
             (r = want_attr(sets, n, cap, st, "num_groups", groups))))
            return r;
    }
    if (int_attr(st, "num_features", &key)) {
        const npe_value *f = wv && wv->ndim == 1 ? wv : NULL;
        if (!f) {
            snprintf(name, sizeof name, "%s%srunning_mean", path, path[0] ? "." : "");
            int m = npe_graph_find_value(g, name);
            f = m >= 0 && is_state_tensor(&g->values[m]) && g->values[m].ndim == 1 ? &g->values[m]
                                                                                    : NULL;
        }
        if (f && (r = want_attr(sets, n, cap, st, "num_features", f->shape[0])))
            return r;
    }
    return 0;
}

int npe_full_model_export(const npe_graph *g, const char *in_full_pth, const char *out_full_pth,
                          npe_error *err)
{
    if (!g || !in_full_pth || !out_full_pth)
        return npe_error_set(err, NPE_EINVAL, "npe_full_model_export: NULL argument");
    npe_torch_file *f = NULL, *o = NULL;
    npe_xsmap byname = {0}, orig_byname = {0};
    npe_x_changes ch = {0};
    npe_x_recs repl = {0}, added = {0};
    npe_pkl *doc = NULL;
    npe_xmap rmap = {0}, memo = {0}, done = {0};
    attr_set *sets = NULL;
    size_t n_sets = 0, cap_sets = 0;
    void *pkl = NULL;
    size_t pkl_size = 0;
    char *dpkl = NULL;
    int r = npe_torch_open(in_full_pth, &f, err);
    if (r)
        return r;
    if (f->kind != NPE_ARCHIVE_FULL_MODEL || !f->zip) {
        r = npe_error_set(err, NPE_EUNSUPPORTED, "%s is not a torch.save(model) zip archive (a "
                          "pickled nn.Module)", in_full_pth);
        goto out_free;
    }
    if (g->origin && (r = npe_torch_open(g->origin, &o, err)))
        goto out_free;
    for (size_t i = f->n_tensors; i-- > 0 && !r;)
        if (npe_xsmap_put(&byname, f->tensors[i].name, (int)i))
            r = oom(err);
    for (size_t i = o ? o->n_tensors : 0; i-- > 0 && !r;)
        if (npe_xsmap_put(&orig_byname, o->tensors[i].name, (int)i))
            r = oom(err);
    for (int vid = 0; vid < g->n_values && !r; vid++) {
        const npe_value *v = &g->values[vid];
        if (!is_state_tensor(v))
            continue;
        int ti = npe_xsmap_get(&byname, v->name);
        if (ti < 0) {
            r = npe_error_set(err, NPE_ENOTFOUND, "%s has no tensor '%s' of the pruned model (is it "
                              "the model the TorchScript archive was traced from?)", in_full_pth,
                              v->name);
            break;
        }
        const npe_ttensor *t = &f->tensors[ti];
        int oi = npe_xsmap_get(&orig_byname, v->name);
        if (oi >= 0) {
            const npe_ttensor *ot = &o->tensors[oi];
            int same = ot->ndim == t->ndim;
            for (int d = 0; same && d < t->ndim; d++)
                same = ot->shape[d] == t->shape[d];
            if (!same) {
                r = npe_error_set(err, NPE_EINVAL, "tensor '%s' has another shape in %s than in %s: "
                                  "they hold different models", v->name, in_full_pth, g->origin);
                break;
            }
        }
        int64_t n = npe_torch_tensor_numel(t);
        size_t isz = npe_dtype_size(t->dtype);
        if (n < 0 || !isz || (uint64_t)n > SIZE_MAX / isz / 2) {
            r = npe_error_set(err, NPE_ELIMIT, "%s: tensor '%s' is too large", in_full_pth, v->name);
            break;
        }
        void *orig = malloc((size_t)n * isz + 1);
        if (!orig) {
            r = oom(err);
            break;
        }
        r = npe_torch_tensor_copy(f, (size_t)ti, orig, (size_t)n * isz, err);
        int diff = r ? 0 : npe_x_value_differs(v, orig, t->dtype, t->ndim, t->shape, err);
        free(orig);
        if (r || diff < 0) {
            r = r ? r : diff;
            break;
        }
        if (!diff)
            continue;
        const npe_pv *inner = npe_x_inner_rebuild(t->node);
        if (!inner) {
            r = npe_error_set(err, NPE_EUNSUPPORTED, "%s: tensor '%s' is not stored in a form the "
                              "exporter can rewrite", in_full_pth, v->name);
            break;
        }
        if (npe_xmap_get(&done, inner))
            continue; /* tied: the first name's value wins */
        if (npe_xmap_put(&done, inner, (void *)1)) {
            r = oom(err);
            break;
        }
        npe_x_change c;
        memset(&c, 0, sizeof c);
        c.node = inner;
        if ((r = npe_x_parse_v2(inner, v->name, &c.info, err)))
            break;
        c.ndim = v->ndim;
        memcpy(c.shape, v->shape, sizeof c.shape);
        if ((r = npe_x_value_bytes(v, c.info.dtype, &c.bytes, &c.nbytes, err)))
            break;
        int users = 0;
        npe_xmap seen = {0};
        for (size_t k = 0; k < f->n_tensors && !r; k++) {
            const npe_pv *in = npe_x_inner_rebuild(f->tensors[k].node);
            if (f->tensors[k].storage != t->storage || npe_xmap_get(&seen, in ? in : f->tensors[k].node))
                continue;
            users++;
            if (npe_xmap_put(&seen, in ? in : f->tensors[k].node, (void *)1))
                r = oom(err);
        }
        npe_xmap_free(&seen);
        c.reuse = users == 1;
        snprintf(c.key, sizeof c.key, "%s", f->storages[t->storage].key);
        if (r)
            free(c.bytes);
        else if (npe_x_changes_add(&ch, &c))
            r = oom(err);
    }
    if (r)
        goto out_free;
    /* module attributes that follow the new shapes */
    for (size_t i = 0; i < f->n_modules && !r; i++) {
        const npe_pv *st = f->modules[i].obj->u.call.state;
        if (st && st->kind == NPE_PV_DICT && (r = module_attrs(g, f->modules[i].path, st, &sets,
                                                               &n_sets, &cap_sets)))
            r = oom(err);
    }
    if (r)
        goto out_free;
    if (!ch.n && !n_sets) { /* nothing to change: the same archive */
        r = npe_x_write_archive(f->zip, out_full_pth, NULL, NULL, err);
        goto out_free;
    }
    {
        const char **used = malloc((f->n_storages + 1) * sizeof *used);
        if (!used) {
            r = oom(err);
            goto out_free;
        }
        for (size_t i = 0; i < f->n_storages; i++)
            used[i] = f->storages[i].key;
        r = npe_x_changes_keys(&ch, used, f->n_storages, f->n_storages) ? oom(err) : 0;
        free(used);
    }
    if (!r && !(doc = npe_pkl_new()))
        r = oom(err);
    if (!r && npe_x_changes_repl(&ch, doc, &rmap))
        r = oom(err);
    npe_pv *copy = NULL;
    if (!r)
        r = npe_x_copy_tree(doc, f->root, &rmap, &memo, &copy, err);
    for (size_t i = 0; i < n_sets && !r; i++) {
        npe_pv *st = npe_xmap_get(&memo, sets[i].state);
        npe_pv *val = npe_pv_new_int(doc, sets[i].value);
        if (!st || !val || npe_pv_dict_set(doc, st, (npe_pv *)(uintptr_t)sets[i].key, val))
            r = oom(err);
    }
    if (!r)
        r = npe_pkl_dump(copy, 0, &pkl, &pkl_size, err);
    if (!r && !(dpkl = malloc(strlen(f->prefix) + 9)))
        r = oom(err);
    if (!r) {
        snprintf(dpkl, strlen(f->prefix) + 9, "%sdata.pkl", f->prefix);
        if (npe_x_recs_add(&repl, dpkl, pkl, pkl_size, 0, 1, NULL, 0))
            r = oom(err);
        pkl = NULL;
    }
    if (!r && npe_x_changes_records(&ch, f->prefix, "data", dpkl, &repl, &added))
        r = oom(err);
    if (!r)
        r = npe_x_write_archive(f->zip, out_full_pth, &repl, &added, err);
    if (r)
        npe_error_prefix(err, "writing %s", out_full_pth);
out_free:
    free(pkl);
    free(dpkl);
    free(sets);
    npe_xmap_free(&rmap);
    npe_xmap_free(&memo);
    npe_xmap_free(&done);
    npe_pkl_free(doc);
    npe_x_recs_free(&repl);
    npe_x_recs_free(&added);
    npe_x_changes_free(&ch);
    npe_xsmap_free(&byname);
    npe_xsmap_free(&orig_byname);
    npe_torch_close(o);
    npe_torch_close(f);
    return r;
}
