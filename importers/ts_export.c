/* Pruned graph -> TorchScript archive: the original archive record by record, with new storages
 * for changed tensors and constants, data.pkl and constants.pkl pickled again, and code records
 * whose literals changed rewritten (classes shared by instances that need different literals
 * are split under new mangled names). See ts_export.h for the rules. */
#include "ts_export.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"
#include "torch_file.h"

#define MAX_CODE_BYTES (64u << 20)
#define MAX_CONST_BYTES (256u << 20)
#define MAX_LIST_NEST 8
#define MAX_SPLIT_ROUNDS 1000

/* ---- State ----------------------------------------------------------------------------------- */
typedef struct crec {         /* a code record of the archive */
    char *name;               /* full record name */
    char *module;             /* "__torch__.torch.nn.modules.conv" */
    char *text;               /* original bytes, NUL-terminated */
    size_t len;
    int first_class, n_classes; /* its classes in the class table */
} crec;

typedef struct tclass {
    int rec;                  /* code record of the (original) text */
    uint32_t start, end;      /* class text in that record */
    uint32_t line;            /* 1-based line of "class ..." */
    char *name;               /* "Conv2d" */
    char *module;             /* qualified module: the record's, or the new one of a copy */
    int orig;                 /* class it copies (itself for originals) */
    int rep;                  /* representative instance (first one of the class), -1 none */
} tclass;

typedef struct inst {         /* a module object of data.pkl */
    const npe_pv *obj;
    char *path;               /* first path reaching it (BFS), "" for the root */
    int orig_cls, cls;        /* class table index, -1 when no code class backs it */
    int first_edge, n_edges;  /* its attributes holding module objects */
} inst;

typedef struct edge {
    int child;
    const char *attr;         /* points into the pickle */
} edge;

typedef struct obs {          /* one inlining of a literal span */
    int rec;
    uint32_t off, len;
    int inst;                 /* owner instance, -1 for module-level code */
    char *text;               /* replacement, NULL when the value is what the text says */
    int vid;
} obs;

typedef struct span_key {     /* a span that some inlining wants changed */
    int rec;
    uint32_t off, len;
    int cls;                  /* original class containing it, -1 module-level */
    size_t first, n;          /* its observations (sorted array) */
} span_key;

typedef struct xp {
    const npe_graph *g;
    npe_torch_file *f;
    npe_error *err;
    const char *path;         /* the original archive (messages) */
    crec *recs;
    int n_recs, cap_recs;
    tclass *cls;
    int n_cls, cap_cls;
    inst *insts;
    int n_insts, cap_insts;
    edge *edges;
    int n_edges, cap_edges;
    npe_xmap inst_of;         /* object node -> inst index + 1 */
    obs *obs;
    size_t n_obs, cap_obs;
    span_key *keys;
    size_t n_keys;
    int *use_head, *use_next, *use_node;
    int n_uses, cap_uses;
    unsigned mangle_next;
    npe_x_changes tch;        /* data.pkl tensors */
    npe_x_changes cch;        /* constants */
    npe_pkl *consts_doc;
} xp;

static int oom(xp *X)
{
    return npe_error_set(X->err, NPE_ENOMEM, "out of memory");
}

static char *dupn(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

static char *fmt(const char *f, ...) NPE_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static int grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 32;
    if (ncap <= n || (size_t)ncap > SIZE_MAX / elem)
        return NPE_ENOMEM;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return NPE_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static const char *rec_shown(const xp *X, int rec)
{
    return X->recs[rec].name + strlen(X->f->prefix);
}

static uint32_t line_at(const char *text, uint32_t off)
{
    uint32_t line = 1;
    for (uint32_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

/* ---- Code records and their classes ---------------------------------------------------------- */
static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int valid_module(const char *m)
{
    if (strncmp(m, "__torch__", 9) != 0 || (m[9] != '\0' && m[9] != '.') || strlen(m) > 1024)
        return 0;
    for (const char *p = m; *p; p++)
        if (!is_ident_char(*p) && !(*p == '.' && p[1] && p[1] != '.'))
            return 0;
    return 1;
}

/* Classes of a record: a line starting with "class " opens one, which runs until the next line
 * that starts at column 0 (another class, a def) or the end. */
static int scan_classes(xp *X, int rec)
{
    crec *R = &X->recs[rec];
    R->first_class = X->n_cls;
    const char *t = R->text;
    size_t len = R->len, pos = 0;
    int open = -1;
    uint32_t line = 1;
    while (pos < len) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - t) + 1 : len;
        char c = t[pos];
        int top = c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '#';
        if (top && open >= 0) {
            X->cls[open].end = (uint32_t)pos;
            open = -1;
        }
        if (top && end - pos > 6 && memcmp(t + pos, "class ", 6) == 0) {
            size_t s = pos + 6, e = s;
            while (e < end && is_ident_char(t[e]))
                e++;
            if (e == s)
                return npe_error_set(X->err, NPE_EFORMAT, "%s:%u: a class without a name",
                                     rec_shown(X, rec), line);
            if (grow((void **)&X->cls, &X->cap_cls, X->n_cls, sizeof *X->cls))
                return oom(X);
            tclass *C = &X->cls[X->n_cls];
            memset(C, 0, sizeof *C);
            C->rec = rec;
            C->start = (uint32_t)pos;
            C->end = (uint32_t)len;
            C->line = line;
            C->name = dupn(t + s, e - s);
            C->module = dupn(R->module, strlen(R->module));
            C->orig = X->n_cls;
            C->rep = -1;
            open = X->n_cls++;
            R->n_classes++;
            if (!C->name || !C->module)
                return oom(X);
        }
        pos = end;
        line++;
    }
    return 0;
}

/* The code record with full name `name` (loaded from the archive on first use), or -1 with
 * err set when the archive has no such record. */
static int get_rec(xp *X, const char *name, int *out)
{
    for (int i = 0; i < X->n_recs; i++)
        if (strcmp(X->recs[i].name, name) == 0) {
            *out = i;
            return 0;
        }
    size_t pl = strlen(X->f->prefix), nl = strlen(name);
    if (nl < pl + 8 || strncmp(name, X->f->prefix, pl) != 0 ||
        strncmp(name + pl, "code/", 5) != 0 || strcmp(name + nl - 3, ".py") != 0)
        return npe_error_set(X->err, NPE_EINVAL, "'%s' is not a code record of %s", name, X->path);
    const npe_zip_entry *e = npe_zip_find(X->f->zip, name);
    if (!e)
        return npe_error_set(X->err, NPE_ENOTFOUND, "%s has no record '%s'", X->path, name);
    if (grow((void **)&X->recs, &X->cap_recs, X->n_recs, sizeof *X->recs))
        return oom(X);
    crec *R = &X->recs[X->n_recs];
    memset(R, 0, sizeof *R);
    R->name = dupn(name, nl);
    R->module = dupn(name + pl + 5, nl - pl - 8);
    if (!R->name || !R->module) {
        free(R->name);
        free(R->module);
        return oom(X);
    }
    for (char *p = R->module; *p; p++)
        if (*p == '/')
            *p = '.';
    void *text = NULL;
    size_t len = 0;
    int r = npe_zip_read(X->f->zip, e, MAX_CODE_BYTES, &text, &len, X->err);
    if (r) {
        free(R->name);
        free(R->module);
        return r;
    }
    R->text = text;
    R->len = len;
    *out = X->n_recs++;
    return scan_classes(X, *out);
}

/* Class index of module.name, -1 if the archive has no code for it. */
static int find_class(xp *X, const char *module, const char *name, int *out)
{
    *out = -1;
    if (!valid_module(module))
        return 0;
    char *rn = fmt("%scode/%s.py", X->f->prefix, module);
    if (!rn)
        return oom(X);
    for (char *p = rn + strlen(X->f->prefix) + 5; *p; p++)
        if (*p == '.' && strcmp(p, ".py") != 0)
            *p = '/';
    int rec = -1;
    int r = npe_zip_find(X->f->zip, rn) ? get_rec(X, rn, &rec) : 0;
    free(rn);
    if (r || rec < 0)
        return r;
    const crec *R = &X->recs[rec];
    for (int c = R->first_class; c < R->first_class + R->n_classes; c++)
        if (strcmp(X->cls[c].name, name) == 0) {
            *out = c;
            return 0;
        }
    return 0;
}

/* Original class whose text holds offset off of record rec, -1 for module-level code. */
static int class_at(const xp *X, int rec, uint32_t off)
{
    const crec *R = &X->recs[rec];
    for (int c = R->first_class; c < R->first_class + R->n_classes; c++)
        if (off >= X->cls[c].start && off < X->cls[c].end)
            return c;
    return -1;
}

static char *qual_name(const tclass *C)
{
    return fmt("%s.%s", C->module, C->name);
}

/* ---- Module instances of data.pkl ------------------------------------------------------------ */
static int is_code_object(const npe_pv *v)
{
    return v && v->kind == NPE_PV_OBJECT && v->u.call.fn && v->u.call.fn->kind == NPE_PV_GLOBAL &&
           strncmp(v->u.call.fn->u.global.module, "__torch__", 9) == 0;
}

static int add_inst(xp *X, const npe_pv *obj, const char *path, int *out)
{
    void *known = npe_xmap_get(&X->inst_of, obj);
    if (known) {
        *out = (int)((intptr_t)known - 1);
        return 0;
    }
    if (grow((void **)&X->insts, &X->cap_insts, X->n_insts, sizeof *X->insts))
        return oom(X);
    inst *I = &X->insts[X->n_insts];
    memset(I, 0, sizeof *I);
    I->obj = obj;
    I->path = dupn(path, strlen(path));
    if (!I->path || npe_xmap_put(&X->inst_of, obj, (void *)(intptr_t)(X->n_insts + 1)))
        return oom(X);
    const npe_pv *fn = obj->u.call.fn;
    int r = find_class(X, fn->u.global.module, fn->u.global.name, &X->insts[X->n_insts].orig_cls);
    if (r)
        return r;
    X->insts[X->n_insts].cls = X->insts[X->n_insts].orig_cls;
    *out = X->n_insts++;
    return 0;
}

/* Breadth first from the root, so each instance's path is its shortest one. */
static int walk_instances(xp *X)
{
    if (!is_code_object(X->f->root))
        return npe_error_set(X->err, NPE_EFORMAT, "%s: data.pkl does not hold a module object",
                             X->path);
    int root_inst;
    int r = add_inst(X, X->f->root, "", &root_inst);
    for (int q = 0; !r && q < X->n_insts; q++) {
        const npe_pv *st = X->insts[q].obj->u.call.state;
        X->insts[q].first_edge = X->n_edges;
        if (!st || st->kind != NPE_PV_DICT)
            continue;
        for (size_t i = 0; i < st->u.dict.n && !r; i++) {
            const npe_pv *k = st->u.dict.keys[i], *v = st->u.dict.vals[i];
            if (k->kind != NPE_PV_STR || !is_code_object(v) || strlen(k->u.str.s) != k->u.str.len)
                continue;
            char *p = X->insts[q].path[0] ? fmt("%s.%s", X->insts[q].path, k->u.str.s)
                                          : fmt("%s", k->u.str.s);
            int child = -1;
            r = p ? add_inst(X, v, p, &child) : oom(X);
            free(p);
            if (r)
                break;
            if (grow((void **)&X->edges, &X->cap_edges, X->n_edges, sizeof *X->edges))
                return oom(X);
            X->edges[X->n_edges].child = child;
            X->edges[X->n_edges].attr = k->u.str.s;
            X->n_edges++;
            X->insts[q].n_edges++;
        }
    }
    return r;
}

/* Instance at module path `path` (the scope of a node), -1 if none. */
static int inst_at(const xp *X, const char *path)
{
    int cur = 0;
    const char *p = path;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        int next = -1;
        const inst *I = &X->insts[cur];
        for (int e = I->first_edge; e < I->first_edge + I->n_edges && next < 0; e++)
            if (strlen(X->edges[e].attr) == n && memcmp(X->edges[e].attr, p, n) == 0)
                next = X->edges[e].child;
        if (next < 0)
            return -1;
        cur = next;
        p = dot ? dot + 1 : p + n;
    }
    return cur;
}

/* ---- Literals -------------------------------------------------------------------------------- */
static int add_use(xp *X, int v, int node, int depth)
{
    if (v < 0 || v >= X->g->n_values || depth > MAX_LIST_NEST)
        return 0;
    if (X->n_uses == X->cap_uses) {
        int ncap = X->cap_uses ? X->cap_uses * 2 : 256;
        if (ncap <= X->cap_uses)
            return oom(X);
        int *nn = realloc(X->use_next, (size_t)ncap * sizeof(int));
        if (!nn)
            return oom(X);
        X->use_next = nn;
        if (!(nn = realloc(X->use_node, (size_t)ncap * sizeof(int))))
            return oom(X);
        X->use_node = nn;
        X->cap_uses = ncap;
    }
    X->use_node[X->n_uses] = node;
    X->use_next[X->n_uses] = X->use_head[v];
    X->use_head[v] = X->n_uses++;
    const npe_value *val = &X->g->values[v];
    if (val->type == NPE_VT_LIST)
        for (int i = 0; i < val->n_items; i++) {
            int r = add_use(X, val->items[i], node, depth + 1);
            if (r)
                return r;
        }
    return 0;
}

static int index_uses(xp *X)
{
    const npe_graph *g = X->g;
    X->use_head = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof(int));
    if (!X->use_head)
        return oom(X);
    for (int v = 0; v < g->n_values; v++)
        X->use_head[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            int r = add_use(X, g->nodes[i].in[j], i, 0);
            if (r)
                return r;
        }
    return 0;
}

/* Render a scalar literal as TorchScript's printer writes it. */
static void render(const npe_value *v, char *buf, size_t cap)
{
    switch (v->type) {
    case NPE_VT_BOOL:
        snprintf(buf, cap, "%s", v->i ? "True" : "False");
        break;
    case NPE_VT_INT:
        snprintf(buf, cap, "%" PRId64, v->i);
        break;
    case NPE_VT_FLOAT:
        snprintf(buf, cap, "%.17g", v->f);
        if (!strpbrk(buf, ".eEn"))
            strncat(buf, ".", cap - strlen(buf) - 1);
        break;
    default:
        snprintf(buf, cap, "?");
    }
}

static int is_scalar_literal(const npe_value *v)
{
    return (v->flags & NPE_VF_CONST) &&
           (v->type == NPE_VT_INT || v->type == NPE_VT_FLOAT || v->type == NPE_VT_BOOL);
}

/* Does the source text t[0..n) say what v holds? 1 yes, 0 no, -1 it is not such a literal. */
static int text_says(const char *t, size_t n, const npe_value *v)
{
    char buf[96];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, t, n);
    buf[n] = '\0';
    if (v->type == NPE_VT_BOOL) {
        if (strcmp(buf, "True") == 0)
            return v->i != 0;
        if (strcmp(buf, "False") == 0)
            return v->i == 0;
        return -1;
    }
    const char *p = buf[0] == '-' ? buf + 1 : buf;
    if (!(*p >= '0' && *p <= '9') && *p != '.')
        return -1;
    char *end;
    int isint = !strpbrk(buf, ".eE");
    if (isint) {
        long long x = strtoll(buf, &end, 10);
        if (*end)
            return -1;
        return v->type == NPE_VT_INT ? x == v->i : (double)x == v->f;
    }
    double d = strtod(buf, &end);
    if (*end)
        return -1;
    return v->type == NPE_VT_INT ? d == (double)v->i : d == v->f;
}

/* The instance whose code holds the literal: the module a user node ran in, or its nearest
 * ancestor of the literal's class (a literal passed down as an argument). -2: no user. */
static int owner_of(xp *X, int vid, int rec, uint32_t off, int *out)
{
    int c = class_at(X, rec, off);
    *out = -1;
    if (c < 0)
        return 0;
    int any = 0;
    for (int u = X->use_head[vid]; u >= 0; u = X->use_next[u]) {
        any = 1;
        const char *scope = X->g->nodes[X->use_node[u]].scope;
        size_t n = strlen(scope);
        char *p = dupn(scope, n);
        if (!p)
            return oom(X);
        for (;;) {
            int i = inst_at(X, p);
            if (i >= 0 && X->insts[i].orig_cls == c) {
                free(p);
                *out = i;
                return 0;
            }
            char *dot = strrchr(p, '.');
            if (!p[0])
                break;
            if (dot)
                *dot = '\0';
            else
                p[0] = '\0';
        }
        free(p);
    }
    if (!any) {
        *out = -2;
        return 0;
    }
    int found = -1, count = 0;
    for (int i = 0; i < X->n_insts; i++)
        if (X->insts[i].orig_cls == c) {
            found = i;
            count++;
        }
    if (count <= 1) { /* its only module, or none (then it cannot be split: module-level) */
        *out = found;
        return 0;
    }
    char q[512];
    snprintf(q, sizeof q, "%s.%s", X->cls[c].module, X->cls[c].name);
    return npe_error_set(X->err, NPE_EUNSUPPORTED,
                         "%s:%u: cannot tell which of the %d modules of class %s the literal "
                         "belongs to", rec_shown(X, rec), line_at(X->recs[rec].text, off), count, q);
}

static int add_obs(xp *X, int rec, uint32_t off, uint32_t len, int owner, const char *text,
                   int vid)
{
    if (X->n_obs == X->cap_obs) {
        size_t ncap = X->cap_obs ? X->cap_obs * 2 : 256;
        obs *no = realloc(X->obs, ncap * sizeof *no);
        if (!no)
            return oom(X);
        X->obs = no;
        X->cap_obs = ncap;
    }
    obs *o = &X->obs[X->n_obs];
    o->rec = rec;
    o->off = off;
    o->len = len;
    o->inst = owner;
    o->vid = vid;
    o->text = text ? dupn(text, strlen(text)) : NULL;
    if (text && !o->text)
        return oom(X);
    X->n_obs++;
    return 0;
}

/* Record of graph source s, checked against the archive's bytes. */
static int source_rec(xp *X, int s, int *rec)
{
    const npe_source *src = &X->g->sources[s];
    int r = get_rec(X, src->record, rec);
    if (r) {
        npe_error_prefix(X->err, "the graph's code record '%s' is not in %s (export to the "
                         "archive the graph was imported from)", src->name, X->path);
        return r;
    }
    const crec *R = &X->recs[*rec];
    if (R->len != src->len || memcmp(R->text, src->text, R->len) != 0)
        return npe_error_set(X->err, NPE_EINVAL, "%s: record '%s' differs from the code the graph "
                             "was imported from (export to the archive the graph came from)",
                             X->path, src->name);
    return 0;
}

/* Item spans of a list/tuple literal "[a, b, c]": starts and lengths (trimmed), at most cap. */
static int list_items(const char *t, size_t n, uint32_t *start, uint32_t *len, int cap)
{
    if (n < 2 || !((t[0] == '[' && t[n - 1] == ']') || (t[0] == '(' && t[n - 1] == ')')))
        return -1;
    int count = 0, depth = 0;
    size_t s = 1;
    char q = 0;
    for (size_t i = 1; i < n; i++) {
        char c = t[i];
        if (q) {
            if (c == '\\')
                i++;
            else if (c == q)
                q = 0;
            continue;
        }
        if (c == '"' || c == '\'')
            q = c;
        else if (c == '[' || c == '(' || c == '{')
            depth++;
        else if ((c == ']' || c == ')' || c == '}') && depth > 0)
            depth--;
        else if ((c == ',' && depth == 0) || i == n - 1) {
            size_t a = s, b = i;
            while (a < b && (t[a] == ' ' || t[a] == '\n' || t[a] == '\t' || t[a] == '\r'))
                a++;
            while (b > a && (t[b - 1] == ' ' || t[b - 1] == '\n' || t[b - 1] == '\t' ||
                             t[b - 1] == '\r'))
                b--;
            if (b > a) { /* a trailing comma leaves an empty last item */
                if (count >= cap)
                    return -1;
                start[count] = (uint32_t)a;
                len[count] = (uint32_t)(b - a);
                count++;
            }
            s = i + 1;
        }
    }
    return count;
}

static int span_ok(const npe_graph *g, const npe_span *sp)
{
    return sp->source >= 0 && sp->source < g->n_sources &&
           (size_t)sp->offset + sp->len <= g->sources[sp->source].len && sp->len > 0;
}

static int collect_literals(xp *X)
{
    const npe_graph *g = X->g;
    int *src_rec = malloc((size_t)(g->n_sources ? g->n_sources : 1) * sizeof(int));
    if (!src_rec)
        return oom(X);
    int r = 0;
    for (int s = 0; s < g->n_sources && !r; s++)
        r = source_rec(X, s, &src_rec[s]);
    uint32_t *ist = NULL, *ilen = NULL;
    if (!r) {
        ist = malloc(NPE_IR_MAX_LIST * sizeof *ist);
        ilen = malloc(NPE_IR_MAX_LIST * sizeof *ilen);
        if (!ist || !ilen)
            r = oom(X);
    }
    for (int vid = 0; vid < g->n_values && !r; vid++) {
        const npe_value *v = &g->values[vid];
        if ((v->flags & NPE_VF_SYNTH) || !span_ok(g, &v->span) || X->use_head[vid] < 0)
            continue;
        int rec = src_rec[v->span.source];
        const char *t = X->recs[rec].text + v->span.offset;
        char buf[96];
        int owner;
        if (is_scalar_literal(v)) {
            int says = text_says(t, v->span.len, v);
            if (says < 0) {
                r = npe_error_set(X->err, NPE_EINVAL, "%s:%u: the literal's span holds '%.*s', "
                                  "not a %s literal", rec_shown(X, rec), v->span.line,
                                  (int)(v->span.len > 60 ? 60 : v->span.len), t,
                                  npe_vtype_name(v->type));
                break;
            }
            if ((r = owner_of(X, vid, rec, v->span.offset, &owner)) || owner == -2)
                continue;
            render(v, buf, sizeof buf);
            r = add_obs(X, rec, v->span.offset, v->span.len, owner, says ? NULL : buf, vid);
            continue;
        }
        if (v->type != NPE_VT_LIST)
            continue;
        int n = list_items(t, v->span.len, ist, ilen, NPE_IR_MAX_LIST);
        if (n < 0)
            continue; /* not a bracketed literal at this span: nothing written to rewrite */
        if ((r = owner_of(X, vid, rec, v->span.offset, &owner)) || owner == -2)
            continue;
        int all_lit = 1;
        for (int i = 0; i < v->n_items; i++)
            all_lit &= is_scalar_literal(&g->values[v->items[i]]);
        if (n != v->n_items) {
            if (!all_lit) {
                r = npe_error_set(X->err, NPE_EUNSUPPORTED, "%s:%u: the list '%.*s' now has %d "
                                  "items, some computed: it cannot be written back",
                                  rec_shown(X, rec), v->span.line,
                                  (int)(v->span.len > 60 ? 60 : v->span.len), t, v->n_items);
                break;
            }
            /* the whole list, rendered from its items */
            size_t cap = 8 + (size_t)v->n_items * (sizeof buf + 2), k = 0;
            char *whole = malloc(cap);
            if (!whole) {
                r = oom(X);
                break;
            }
            whole[k++] = t[0];
            for (int i = 0; i < v->n_items; i++) {
                render(&g->values[v->items[i]], buf, sizeof buf);
                k += (size_t)snprintf(whole + k, cap - k, "%s%s", i ? ", " : "", buf);
            }
            if (t[0] == '(' && v->n_items == 1)
                whole[k++] = ',';
            whole[k++] = t[0] == '(' ? ')' : ']';
            whole[k] = '\0';
            r = add_obs(X, rec, v->span.offset, v->span.len, owner, whole, vid);
            free(whole);
            continue;
        }
        for (int i = 0; i < n && !r; i++) {
            const npe_value *it = &g->values[v->items[i]];
            uint32_t ioff = v->span.offset + ist[i];
            if (!is_scalar_literal(it)) {
                char c = t[ist[i]];
                if (it->type != NPE_VT_NONE && ((c >= '0' && c <= '9') || c == '-'))
                    r = npe_error_set(X->err, NPE_EUNSUPPORTED, "%s:%u: item %d of the list "
                                      "'%.*s' is written as a number but the pruned graph "
                                      "computes it", rec_shown(X, rec), v->span.line, i,
                                      (int)(v->span.len > 60 ? 60 : v->span.len), t);
                continue;
            }
            if (!(it->flags & NPE_VF_SYNTH) && it->span.source == v->span.source &&
                it->span.offset == ioff && it->span.len == ilen[i])
                continue; /* the item's own literal: observed above on its own */
            int says = text_says(t + ist[i], ilen[i], it);
            if (says < 0) {
                r = npe_error_set(X->err, NPE_EUNSUPPORTED, "%s:%u: item %d of the list '%.*s' "
                                  "is not a literal the pruned graph's %s can replace",
                                  rec_shown(X, rec), v->span.line, i,
                                  (int)(v->span.len > 60 ? 60 : v->span.len), t,
                                  npe_vtype_name(it->type));
                break;
            }
            render(it, buf, sizeof buf);
            r = add_obs(X, rec, ioff, ilen[i], owner, says ? NULL : buf, vid);
        }
    }
    free(ist);
    free(ilen);
    free(src_rec);
    return r;
}

static int obs_cmp(const void *a, const void *b)
{
    const obs *x = a, *y = b;
    if (x->rec != y->rec)
        return x->rec < y->rec ? -1 : 1;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    if (x->inst != y->inst)
        return x->inst < y->inst ? -1 : 1;
    return x->vid < y->vid ? -1 : x->vid > y->vid;
}

static int text_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *shown_text(const xp *X, const obs *o, char *buf, size_t cap)
{
    if (o->text)
        return o->text;
    snprintf(buf, cap, "%.*s", (int)(o->len > 60 ? 60 : o->len), X->recs[o->rec].text + o->off);
    return buf;
}

/* Module path of the first node using value vid. */
static const char *first_scope(const xp *X, int vid)
{
    int u = X->use_head[vid];
    return u >= 0 ? X->g->nodes[X->use_node[u]].scope : "";
}

/* Group observations by span; keep the spans some inlining changes; refuse two texts for one
 * instance (or for module-level code). */
static int build_keys(xp *X)
{
    if (!X->n_obs)
        return 0;
    qsort(X->obs, X->n_obs, sizeof *X->obs, obs_cmp);
    X->keys = malloc(X->n_obs * sizeof *X->keys);
    if (!X->keys)
        return oom(X);
    for (size_t i = 0; i < X->n_obs;) {
        size_t j = i;
        int changed = 0;
        while (j < X->n_obs && X->obs[j].rec == X->obs[i].rec && X->obs[j].off == X->obs[i].off &&
               X->obs[j].len == X->obs[i].len) {
            changed |= X->obs[j].text != NULL;
            j++;
        }
        const obs *o = &X->obs[i];
        for (size_t k = i + 1; k < j; k++) {
            const obs *a = &X->obs[k - 1], *b = &X->obs[k];
            int same_owner = a->inst == b->inst || a->inst < 0 || b->inst < 0;
            if (same_owner && !text_eq(a->text, b->text)) {
                char ba[96], bb[96];
                uint32_t line = line_at(X->recs[o->rec].text, o->off);
                const char *who = a->inst >= 0 ? X->insts[a->inst].path
                                  : b->inst >= 0 ? X->insts[b->inst].path : NULL;
                if (who)
                    return npe_error_set(X->err, NPE_EUNSUPPORTED,
                                         "%s:%u: the literal '%.*s' is run more than once for module "
                                         "'%s' and the pruned graph needs it to be both %s and %s "
                                         "(prune those channels alike)", rec_shown(X, o->rec), line,
                                         (int)(o->len > 60 ? 60 : o->len),
                                         X->recs[o->rec].text + o->off, who[0] ? who : "<root>",
                                         shown_text(X, a, ba, sizeof ba),
                                         shown_text(X, b, bb, sizeof bb));
                const char *sa = first_scope(X, a->vid), *sb = first_scope(X, b->vid);
                return npe_error_set(X->err, NPE_EUNSUPPORTED,
                                     "%s:%u: the literal '%.*s' of module-level code is run for "
                                     "modules '%s' and '%s', and the pruned graph needs it to be "
                                     "%s and %s there (prune those channels alike)",
                                     rec_shown(X, o->rec), line, (int)(o->len > 60 ? 60 : o->len),
                                     X->recs[o->rec].text + o->off, sa[0] ? sa : "<root>",
                                     sb[0] ? sb : "<root>", shown_text(X, a, ba, sizeof ba),
                                     shown_text(X, b, bb, sizeof bb));
            }
        }
        if (changed) {
            span_key *K = &X->keys[X->n_keys++];
            K->rec = o->rec;
            K->off = o->off;
            K->len = o->len;
            K->cls = class_at(X, o->rec, o->off);
            K->first = i;
            K->n = j - i;
        }
        i = j;
    }
    return 0;
}

/* Text instance i wants at span key k (NULL: the original). */
static const char *key_text(const xp *X, const span_key *K, int i)
{
    for (size_t k = K->first; k < K->first + K->n; k++)
        if (X->obs[k].inst == i || X->obs[k].inst < 0)
            return X->obs[k].text;
    return NULL;
}

/* ---- Class splitting ------------------------------------------------------------------------- */
static int sig_put(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 2 > *cap) {
        size_t ncap = (*cap + n + 2) * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return NPE_ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    (*buf)[*len + n] = '\x1f';
    *len += n + 1;
    (*buf)[*len] = '\0';
    return 0;
}

/* What makes instance i's class text: its literal texts in its class, then the classes of its
 * module attributes (their type annotations). */
static int signature(xp *X, int i, char **out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const inst *I = &X->insts[i];
    int oc = X->cls[I->cls].orig;
    int r = sig_put(&buf, &len, &cap, "");
    for (size_t k = 0; k < X->n_keys && !r; k++) {
        if (X->keys[k].cls != oc)
            continue;
        const char *t = key_text(X, &X->keys[k], i);
        r = sig_put(&buf, &len, &cap, t ? t : "\x01");
    }
    for (int e = I->first_edge; e < I->first_edge + I->n_edges && !r; e++) {
        int c = X->insts[X->edges[e].child].cls;
        char num[32];
        snprintf(num, sizeof num, "%d", c);
        if (!(r = sig_put(&buf, &len, &cap, X->edges[e].attr)))
            r = sig_put(&buf, &len, &cap, num);
    }
    if (r) {
        free(buf);
        return oom(X);
    }
    *out = buf;
    return 0;
}

/* Highest N of ___torch_mangle_N in any record name or code text of the archive. */
static unsigned max_mangle(xp *X)
{
    unsigned best = 0;
    static const char tag[] = "___torch_mangle_";
    size_t n = npe_zip_count(X->f->zip);
    for (size_t i = 0; i < n; i++) {
        const char *s = npe_zip_entry_at(X->f->zip, i)->name;
        for (const char *p = strstr(s, tag); p; p = strstr(p + 1, tag)) {
            unsigned long v = strtoul(p + sizeof tag - 1, NULL, 10);
            if (v > best && v < 0x40000000ul)
                best = (unsigned)v;
        }
    }
    for (int r = 0; r < X->n_recs; r++)
        for (const char *p = strstr(X->recs[r].text, tag); p; p = strstr(p + 1, tag)) {
            unsigned long v = strtoul(p + sizeof tag - 1, NULL, 10);
            if (v > best && v < 0x40000000ul)
                best = (unsigned)v;
        }
    return best;
}

static int new_class(xp *X, int from, int *out)
{
    if (grow((void **)&X->cls, &X->cap_cls, X->n_cls, sizeof *X->cls))
        return oom(X);
    tclass *src = &X->cls[X->cls[from].orig];
    /* the module without a mangle of its own, then a fresh one */
    const char *m = src->module;
    const char *last = strrchr(m, '.');
    size_t base = last && strncmp(last + 1, "___torch_mangle_", 16) == 0 ? (size_t)(last - m)
                                                                          : strlen(m);
    tclass *C = &X->cls[X->n_cls];
    *C = *src;
    C->name = dupn(src->name, strlen(src->name));
    C->module = fmt("%.*s.___torch_mangle_%u", (int)base, m, X->mangle_next++);
    C->orig = src->orig;
    C->rep = -1;
    if (!C->name || !C->module) {
        free(C->name);
        free(C->module);
        return oom(X);
    }
    *out = X->n_cls++;
    return 0;
}

typedef struct member {
    int cls, i;
    const char *sig;
} member;

static int member_cmp(const void *a, const void *b)
{
    const member *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    int c = strcmp(x->sig, y->sig);
    if (c)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Give instances of one class that need different texts their own classes: in each round the
 * instances of a class are grouped by signature; the group holding its first instance keeps it,
 * each other group gets a copy. A split changes the parents' signatures (their annotations), so
 * rounds repeat until nothing splits (at most the depth of the module tree). */
static int split_classes(xp *X)
{
    X->mangle_next = max_mangle(X) + 1;
    size_t n = (size_t)(X->n_insts ? X->n_insts : 1);
    char **sig = calloc(n, sizeof *sig);
    member *m = malloc(n * sizeof *m);
    if (!sig || !m) {
        free(sig);
        free(m);
        return oom(X);
    }
    int r = 0;
    for (int round = 0; !r; round++) {
        if (round > MAX_SPLIT_ROUNDS) {
            r = npe_error_set(X->err, NPE_ELIMIT, "%s: splitting shared classes does not settle",
                              X->path);
            break;
        }
        int nm = 0, changed = 0;
        for (int i = 0; i < X->n_insts && !r; i++) {
            free(sig[i]);
            sig[i] = NULL;
            if (X->insts[i].cls < 0)
                continue;
            if (!(r = signature(X, i, &sig[i])))
                m[nm++] = (member){X->insts[i].cls, i, sig[i]};
        }
        if (r || !nm)
            break;
        qsort(m, (size_t)nm, sizeof *m, member_cmp);
        for (int s = 0; s < nm && !r;) {
            int e = s;
            int first = m[s].i, keep = s; /* the run (group) holding the class's first instance */
            while (e < nm && m[e].cls == m[s].cls) {
                if (m[e].i < first) {
                    first = m[e].i;
                    keep = e;
                }
                e++;
            }
            for (int g = s; g < e && !r;) {
                int h = g;
                while (h < e && strcmp(m[h].sig, m[g].sig) == 0)
                    h++;
                int in_keep = keep >= g && keep < h, target = m[g].cls;
                if (!in_keep) {
                    r = new_class(X, m[g].cls, &target);
                    changed = 1;
                }
                for (int k = g; k < h && !r; k++)
                    X->insts[m[k].i].cls = target;
                g = h;
            }
            s = e;
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < X->n_insts; i++)
        free(sig[i]);
    free(sig);
    free(m);
    if (r)
        return r;
    for (int i = 0; i < X->n_insts; i++) {
        int c = X->insts[i].cls;
        if (c >= 0 && X->cls[c].rep < 0)
            X->cls[c].rep = i;
    }
    return 0;
}

/* ---- Code texts ------------------------------------------------------------------------------ */
typedef struct tedit {
    uint32_t off, len;
    const char *text; /* borrowed */
    char *owned;
} tedit;

typedef struct tedits {
    tedit *v;
    int n, cap;
} tedits;

static int tedit_add(xp *X, tedits *l, uint32_t off, uint32_t len, const char *text, char *owned)
{
    if (grow((void **)&l->v, &l->cap, l->n, sizeof *l->v)) {
        free(owned);
        return oom(X);
    }
    l->v[l->n].off = off;
    l->v[l->n].len = len;
    l->v[l->n].text = owned ? owned : text;
    l->v[l->n].owned = owned;
    l->n++;
    return 0;
}

static void tedits_free(tedits *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i].owned);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int tedit_cmp(const void *a, const void *b)
{
    const tedit *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->len > y->len ? -1 : x->len < y->len; /* the enclosing one first */
}

/* Span of the type annotation of attribute attr in class C: "  attr : T" or
 * "  __annotations__["attr"] = T". */
static int find_annotation(const xp *X, const tclass *C, const char *attr, uint32_t *off,
                           uint32_t *len)
{
    const char *t = X->recs[C->rec].text;
    size_t an = strlen(attr);
    uint32_t pos = C->start;
    while (pos < C->end) {
        const char *nl = memchr(t + pos, '\n', C->end - pos);
        uint32_t end = nl ? (uint32_t)(nl - t) : C->end;
        uint32_t p = pos;
        while (p < end && t[p] == ' ')
            p++;
        const char *s = t + p;
        size_t rest = end - p;
        uint32_t tstart = 0;
        if (rest > an + 3 && memcmp(s, attr, an) == 0 && memcmp(s + an, " : ", 3) == 0)
            tstart = p + (uint32_t)an + 3;
        else if (rest > an + 21 && memcmp(s, "__annotations__[\"", 17) == 0 &&
                 memcmp(s + 17, attr, an) == 0 && memcmp(s + 17 + an, "\"] = ", 5) == 0)
            tstart = p + 17 + (uint32_t)an + 5;
        if (tstart) {
            uint32_t tend = end;
            while (tend > tstart && (t[tend - 1] == ' ' || t[tend - 1] == '\r'))
                tend--;
            *off = tstart;
            *len = tend - tstart;
            return 0;
        }
        pos = end + 1;
    }
    return -1;
}

/* Edits of class c's text (literal spans for its representative, annotations of its module
 * attributes) in record coordinates. */
static int class_edits(xp *X, int c, tedits *out)
{
    const tclass *C = &X->cls[c];
    int oc = C->orig, rep = C->rep;
    if (rep < 0)
        return 0;
    int r = 0;
    for (size_t k = 0; k < X->n_keys && !r; k++) {
        const span_key *K = &X->keys[k];
        if (K->cls != oc)
            continue;
        const char *t = key_text(X, K, rep);
        if (t)
            r = tedit_add(X, out, K->off, K->len, t, NULL);
    }
    const inst *I = &X->insts[rep];
    for (int e = I->first_edge; e < I->first_edge + I->n_edges && !r; e++) {
        const inst *ch = &X->insts[X->edges[e].child];
        if (ch->cls < 0 || ch->cls == ch->orig_cls)
            continue;
        uint32_t off, len;
        if (find_annotation(X, &X->cls[oc], X->edges[e].attr, &off, &len))
            return npe_error_set(X->err, NPE_EUNSUPPORTED,
                                 "%s:%u: class %s declares no type for attribute '%s', so module "
                                 "'%s' cannot be given its own copy of class %s",
                                 rec_shown(X, X->cls[oc].rec), X->cls[oc].line, X->cls[oc].name,
                                 X->edges[e].attr, ch->path, X->cls[ch->orig_cls].name);
        char *q = qual_name(&X->cls[ch->cls]);
        r = q ? tedit_add(X, out, off, len, NULL, q) : oom(X);
    }
    return r;
}

/* text[from..to) with edits applied (edits in record coordinates inside that range). */
static int apply_edits(xp *X, const char *text, uint32_t from, uint32_t to, tedits *ed,
                       const char *where, char **out, size_t *out_len)
{
    if (ed->n)
        qsort(ed->v, (size_t)ed->n, sizeof *ed->v, tedit_cmp);
    size_t cap = (size_t)(to - from) + 1;
    for (int i = 0; i < ed->n; i++)
        cap += strlen(ed->v[i].text);
    char *o = malloc(cap);
    if (!o)
        return oom(X);
    size_t k = 0;
    uint32_t pos = from;
    for (int i = 0; i < ed->n; i++) {
        const tedit *e = &ed->v[i];
        if (e->off < pos) {
            if (e->off + e->len <= pos)
                continue; /* inside a larger edit already written (an item of a whole list) */
            free(o);
            return npe_error_set(X->err, NPE_EINVAL, "%s: two rewrites overlap at byte %u", where,
                                 e->off);
        }
        memcpy(o + k, text + pos, e->off - pos);
        k += e->off - pos;
        size_t n = strlen(e->text);
        memcpy(o + k, e->text, n);
        k += n;
        pos = e->off + e->len;
    }
    memcpy(o + k, text + pos, to - pos);
    k += to - pos;
    o[k] = '\0';
    *out = o;
    *out_len = k;
    return 0;
}

/* Replace every whole-token occurrence of `from` by `to` in s (a new string). */
static char *replace_token(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
        n++;
    size_t sl = strlen(s);
    char *o = malloc(sl + n * (tl > fl ? tl - fl : 0) + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *hit = strstr(p, from);
        while (hit && ((hit > s && (is_ident_char(hit[-1]) || hit[-1] == '.')) ||
                       is_ident_char(hit[fl])))
            hit = strstr(hit + 1, from);
        if (!hit)
            break;
        memcpy(o + k, p, (size_t)(hit - p));
        k += (size_t)(hit - p);
        memcpy(o + k, to, tl);
        k += tl;
        p = hit + fl;
    }
    size_t rest = strlen(p);
    memcpy(o + k, p, rest + 1);
    return o;
}

static int add_code_records(xp *X, npe_x_recs *repl, npe_x_recs *added)
{
    int r = 0;
    for (int rec = 0; rec < X->n_recs && !r; rec++) {
        crec *R = &X->recs[rec];
        tedits ed = {0};
        for (size_t k = 0; k < X->n_keys && !r; k++) {
            const span_key *K = &X->keys[k];
            if (K->rec != rec || K->cls >= 0)
                continue;
            const char *t = key_text(X, K, -1);
            if (t)
                r = tedit_add(X, &ed, K->off, K->len, t, NULL);
        }
        for (int c = R->first_class; c < R->first_class + R->n_classes && !r; c++)
            r = class_edits(X, c, &ed);
        if (!r && ed.n) {
            char *text = NULL;
            size_t len = 0;
            r = apply_edits(X, R->text, 0, (uint32_t)R->len, &ed, rec_shown(X, rec), &text, &len);
            if (!r && (len != R->len || memcmp(text, R->text, len) != 0)) {
                char *dbg = fmt("%s.debug_pkl", R->name);
                if (!dbg)
                    r = oom(X);
                if (!r)
                    r = npe_x_recs_add(repl, R->name, text, len, 1, 1, NULL, 0) ? oom(X) : 0;
                else
                    free(text);
                text = NULL;
                if (!r && npe_zip_find(X->f->zip, dbg)) {
                    if (npe_x_recs_add(repl, dbg, NULL, 0, 0, 0, NULL, 0))
                        r = oom(X);
                    else
                        repl->v[repl->n - 1].drop = 1;
                }
                free(dbg);
            }
            free(text);
        }
        tedits_free(&ed);
    }
    /* copies of split classes, each in its own record next to the original's */
    for (int c = 0; c < X->n_cls && !r; c++) {
        const tclass *C = &X->cls[c];
        if (C->orig == c || C->rep < 0)
            continue;
        const tclass *O = &X->cls[C->orig];
        tedits ed = {0};
        char *text = NULL, *renamed = NULL, *oq = qual_name(O), *nq = qual_name(C);
        char *rn = fmt("%scode/%s.py", X->f->prefix, C->module);
        size_t len = 0;
        if (!oq || !nq || !rn)
            r = oom(X);
        if (!r)
            r = class_edits(X, c, &ed);
        if (!r)
            r = apply_edits(X, X->recs[O->rec].text, O->start, O->end, &ed, rec_shown(X, O->rec),
                            &text, &len);
        if (!r && !(renamed = replace_token(text, oq, nq)))
            r = oom(X);
        if (!r) {
            for (char *p = rn + strlen(X->f->prefix) + 5; *p; p++)
                if (*p == '.' && strcmp(p, ".py") != 0)
                    *p = '/';
            if (npe_zip_find(X->f->zip, rn))
                r = npe_error_set(X->err, NPE_EINVAL, "%s already has a record '%s'", X->path, rn);
            else if (npe_x_recs_add(added, rn, renamed, strlen(renamed), 1, 1,
                                    X->recs[O->rec].name, 1))
                r = oom(X);
            renamed = NULL;
        }
        free(renamed);
        free(text);
        free(oq);
        free(nq);
        free(rn);
        tedits_free(&ed);
    }
    return r;
}

/* ---- Tensors --------------------------------------------------------------------------------- */
static int collect_tensors(xp *X)
{
    const npe_graph *g = X->g;
    npe_torch_file *f = X->f;
    npe_xsmap byname = {0};
    npe_xmap done = {0};
    int r = 0;
    for (size_t i = f->n_tensors; i-- > 0 && !r;) /* first name wins */
        if (npe_xsmap_put(&byname, f->tensors[i].name, (int)i))
            r = oom(X);
    for (int vid = 0; vid < g->n_values && !r; vid++) {
        const npe_value *v = &g->values[vid];
        if (v->type != NPE_VT_TENSOR || !(v->flags & (NPE_VF_PARAM | NPE_VF_BUFFER)) ||
            v->const_index >= 0)
            continue;
        int ti = npe_xsmap_get(&byname, v->name);
        if (ti < 0) {
            r = npe_error_set(X->err, NPE_ENOTFOUND, "%s: data.pkl has no tensor '%s' (export to "
                              "the archive the graph was imported from)", X->path, v->name);
            break;
        }
        const npe_ttensor *t = &f->tensors[ti];
        int64_t n = npe_torch_tensor_numel(t);
        size_t isz = npe_dtype_size(t->dtype);
        if (n < 0 || !isz || (uint64_t)n > SIZE_MAX / isz / 2) {
            r = npe_error_set(X->err, NPE_ELIMIT, "%s: tensor '%s' is too large", X->path, v->name);
            break;
        }
        void *orig = malloc((size_t)n * isz + 1);
        if (!orig) {
            r = oom(X);
            break;
        }
        r = npe_torch_tensor_copy(f, (size_t)ti, orig, (size_t)n * isz, X->err);
        int diff = r ? 0 : npe_x_value_differs(v, orig, t->dtype, t->ndim, t->shape, X->err);
        free(orig);
        if (r || diff < 0) {
            r = r ? r : diff;
            break;
        }
        if (!diff)
            continue;
        if (npe_xmap_get(&done, t->node)) {
            r = npe_error_set(X->err, NPE_EINVAL, "%s: tensor '%s' is tied to another one the "
                              "graph changed separately", X->path, v->name);
            break;
        }
        if (npe_xmap_put(&done, t->node, (void *)1)) {
            r = oom(X);
            break;
        }
        npe_x_change c;
        memset(&c, 0, sizeof c);
        c.node = t->node;
        const npe_pv *inner = npe_x_inner_rebuild(t->node);
        if (inner != t->node) {
            r = npe_error_set(X->err, NPE_EUNSUPPORTED, "%s: tensor '%s' is not stored as a plain "
                              "_rebuild_tensor_v2 record", X->path, v->name);
            break;
        }
        if ((r = npe_x_parse_v2(inner, v->name, &c.info, X->err)))
            break;
        c.ndim = v->ndim;
        memcpy(c.shape, v->shape, sizeof c.shape);
        if ((r = npe_x_value_bytes(v, c.info.dtype, &c.bytes, &c.nbytes, X->err)))
            break;
        /* its storage's key when no other tensor node uses that storage */
        int users = 0;
        npe_xmap seen = {0};
        for (size_t k = 0; k < f->n_tensors && !r; k++) {
            if (f->tensors[k].storage != t->storage || npe_xmap_get(&seen, f->tensors[k].node))
                continue;
            users++;
            if (npe_xmap_put(&seen, f->tensors[k].node, (void *)1))
                r = oom(X);
        }
        npe_xmap_free(&seen);
        c.reuse = users == 1;
        if (c.reuse)
            snprintf(c.key, sizeof c.key, "%s", f->storages[t->storage].key);
        if (r)
            free(c.bytes);
        else if (npe_x_changes_add(&X->tch, &c))
            r = oom(X);
    }
    npe_xsmap_free(&byname);
    npe_xmap_free(&done);
    if (r)
        return r;
    /* fresh keys for the rest */
    const char **used = malloc((f->n_storages + 1) * sizeof *used);
    if (!used)
        return oom(X);
    for (size_t i = 0; i < f->n_storages; i++)
        used[i] = f->storages[i].key;
    r = npe_x_changes_keys(&X->tch, used, f->n_storages, f->n_storages) ? oom(X) : 0;
    free(used);
    return r;
}

/* constants.pkl: the tuple's tensors compared with the graph's CONSTANTS.cN values. */
static int collect_constants(xp *X)
{
    const npe_graph *g = X->g;
    int any = 0;
    for (int vid = 0; vid < g->n_values; vid++)
        any |= g->values[vid].type == NPE_VT_TENSOR && g->values[vid].const_index >= 0;
    if (!any)
        return 0;
    char *name = fmt("%sconstants.pkl", X->f->prefix);
    if (!name)
        return oom(X);
    const npe_zip_entry *e = npe_zip_find(X->f->zip, name);
    void *data = NULL;
    size_t size = 0;
    int r = e ? npe_zip_read(X->f->zip, e, MAX_CONST_BYTES, &data, &size, X->err)
              : npe_error_set(X->err, NPE_ENOTFOUND, "%s has no record '%s'", X->path, name);
    if (!r)
        r = npe_pkl_load(data, size, name, npe_torch_resolve_global, NULL, &X->consts_doc, NULL,
                         X->err);
    free(data);
    free(name);
    if (r)
        return r;
    const npe_pv *tup = npe_pkl_root(X->consts_doc);
    if (!tup || tup->kind != NPE_PV_TUPLE)
        return npe_error_set(X->err, NPE_EFORMAT, "%s: constants.pkl does not hold a tuple",
                             X->path);
    for (int vid = 0; vid < g->n_values && !r; vid++) {
        const npe_value *v = &g->values[vid];
        if (v->type != NPE_VT_TENSOR || v->const_index < 0)
            continue;
        if ((size_t)v->const_index >= tup->u.seq.n) {
            r = npe_error_set(X->err, NPE_EINVAL, "%s: constants.pkl has no CONSTANTS.c%d", X->path,
                              v->const_index);
            break;
        }
        npe_x_change c;
        memset(&c, 0, sizeof c);
        c.node = tup->u.seq.items[v->const_index];
        if ((r = npe_x_parse_v2(c.node, v->name, &c.info, X->err)))
            break;
        char *rn = fmt("%sconstants/%s", X->f->prefix, c.info.key);
        const npe_zip_entry *ce = rn ? npe_zip_find(X->f->zip, rn) : NULL;
        size_t isz = npe_dtype_size(c.info.dtype);
        void *sdata = NULL, *dense = NULL;
        size_t ssize = 0;
        if (!rn)
            r = oom(X);
        else if (!ce || c.info.numel > MAX_CONST_BYTES / isz || ce->size != c.info.numel * isz)
            r = npe_error_set(X->err, NPE_EFORMAT, "%s: record '%s' of CONSTANTS.c%d is %s", X->path,
                              rn, v->const_index, ce ? "of the wrong size" : "missing");
        else
            r = npe_zip_read(X->f->zip, ce, MAX_CONST_BYTES, &sdata, &ssize, X->err);
        free(rn);
        int64_t numel = 1;
        for (int d = 0; d < c.info.ndim; d++)
            numel *= c.info.shape[d];
        if (!r && !(dense = malloc((size_t)numel * isz + 1)))
            r = oom(X);
        if (!r)
            r = npe_x_gather(sdata, ssize, &c.info, dense, X->err);
        int diff = r ? 0 : npe_x_value_differs(v, dense, c.info.dtype, c.info.ndim, c.info.shape,
                                               X->err);
        free(sdata);
        free(dense);
        if (r || diff < 0) {
            r = r ? r : diff;
            break;
        }
        if (!diff)
            continue;
        c.ndim = v->ndim;
        memcpy(c.shape, v->shape, sizeof c.shape);
        if ((r = npe_x_value_bytes(v, c.info.dtype, &c.bytes, &c.nbytes, X->err)))
            break;
        int users = 0;
        for (size_t k = 0; k < tup->u.seq.n; k++) {
            const npe_pv *it = tup->u.seq.items[k];
            npe_x_tinfo ti;
            if (it == c.node)
                users++;
            else if (npe_x_inner_rebuild(it) && !npe_x_parse_v2(npe_x_inner_rebuild(it), "",
                                                                  &ti, NULL) &&
                     strcmp(ti.key, c.info.key) == 0)
                users++;
        }
        c.reuse = users == 1;
        snprintf(c.key, sizeof c.key, "%s", c.info.key);
        if (npe_x_changes_add(&X->cch, &c))
            r = oom(X);
    }
    if (r)
        return r;
    /* fresh keys among the constants' storages */
    size_t nk = 0;
    const char **used = malloc((tup->u.seq.n + 1) * sizeof *used);
    if (!used)
        return oom(X);
    for (size_t k = 0; k < tup->u.seq.n; k++) {
        npe_x_tinfo ti;
        const npe_pv *in = npe_x_inner_rebuild(tup->u.seq.items[k]);
        if (in && !npe_x_parse_v2(in, "", &ti, NULL))
            used[nk++] = ti.key;
    }
    r = npe_x_changes_keys(&X->cch, used, nk, 0) ? oom(X) : 0;
    free(used);
    return r;
}

/* Pickle root again with changed tensors replaced; objects of instances given a class copy
 * renamed. */
static int repickle(xp *X, const npe_pv *root, npe_x_changes *ch, int rename, void **out,
                    size_t *size)
{
    npe_pkl *doc = npe_pkl_new();
    npe_xmap repl = {0}, memo = {0};
    int r = doc ? 0 : oom(X);
    if (!r && npe_x_changes_repl(ch, doc, &repl))
        r = oom(X);
    npe_pv *copy = NULL;
    if (!r)
        r = npe_x_copy_tree(doc, root, &repl, &memo, &copy, X->err);
    for (int i = 0; rename && i < X->n_insts && !r; i++) {
        const inst *I = &X->insts[i];
        if (I->cls < 0 || I->cls == I->orig_cls)
            continue;
        npe_pv *o = npe_xmap_get(&memo, I->obj);
        npe_pv *gl = npe_pv_new_global(doc, X->cls[I->cls].module, X->cls[I->cls].name);
        if (!o || !gl)
            r = oom(X);
        else
            o->u.call.fn = gl;
    }
    if (!r)
        r = npe_pkl_dump(copy, 0, out, size, X->err);
    npe_xmap_free(&repl);
    npe_xmap_free(&memo);
    npe_pkl_free(doc);
    return r;
}

/* ---- Entry point ----------------------------------------------------------------------------- */
static void xp_free(xp *X)
{
    for (int i = 0; i < X->n_recs; i++) {
        free(X->recs[i].name);
        free(X->recs[i].module);
        free(X->recs[i].text);
    }
    free(X->recs);
    for (int i = 0; i < X->n_cls; i++) {
        free(X->cls[i].name);
        free(X->cls[i].module);
    }
    free(X->cls);
    for (int i = 0; i < X->n_insts; i++)
        free(X->insts[i].path);
    free(X->insts);
    free(X->edges);
    npe_xmap_free(&X->inst_of);
    for (size_t i = 0; i < X->n_obs; i++)
        free(X->obs[i].text);
    free(X->obs);
    free(X->keys);
    free(X->use_head);
    free(X->use_next);
    free(X->use_node);
    npe_x_changes_free(&X->tch);
    npe_x_changes_free(&X->cch);
    npe_pkl_free(X->consts_doc);
    npe_torch_close(X->f);
}

int npe_ts_export(const npe_graph *g, const char *orig_archive, const char *out_path,
                  npe_error *err)
{
    if (!g || !orig_archive || !out_path)
        return npe_error_set(err, NPE_EINVAL, "npe_ts_export: NULL argument");
    xp X;
    memset(&X, 0, sizeof X);
    X.g = g;
    X.err = err;
    X.path = orig_archive;
    int r = npe_torch_open(orig_archive, &X.f, err);
    if (r)
        return r;
    npe_x_recs repl = {0}, added = {0};
    if (X.f->kind != NPE_ARCHIVE_TORCHSCRIPT || !X.f->zip) {
        r = npe_error_set(err, NPE_EUNSUPPORTED, "%s is not a TorchScript archive: the pruned "
                          "TorchScript model is written from the archive the graph was imported "
                          "from", orig_archive);
        goto out_free;
    }
    if ((r = walk_instances(&X)) || (r = index_uses(&X)) || (r = collect_literals(&X)) ||
        (r = build_keys(&X)) || (r = split_classes(&X)) || (r = collect_tensors(&X)) ||
        (r = collect_constants(&X)))
        goto out_free;
    int renamed = 0;
    for (int i = 0; i < X.n_insts; i++)
        renamed |= X.insts[i].cls >= 0 && X.insts[i].cls != X.insts[i].orig_cls;
    if ((r = add_code_records(&X, &repl, &added)))
        goto out_free;
    char *dpkl = fmt("%sdata.pkl", X.f->prefix), *cpkl = fmt("%sconstants.pkl", X.f->prefix);
    if (!dpkl || !cpkl) {
        free(dpkl);
        free(cpkl);
        r = oom(&X);
        goto out_free;
    }
    if (X.tch.n || renamed) {
        void *pk = NULL;
        size_t pks = 0;
        if (!(r = repickle(&X, X.f->root, &X.tch, 1, &pk, &pks)) &&
            npe_x_recs_add(&repl, dpkl, pk, pks, 0, 1, NULL, 0))
            r = oom(&X);
        if (!r && npe_x_changes_records(&X.tch, X.f->prefix, "data", dpkl, &repl, &added))
            r = oom(&X);
    }
    if (!r && X.cch.n) {
        void *pk = NULL;
        size_t pks = 0;
        if (!(r = repickle(&X, npe_pkl_root(X.consts_doc), &X.cch, 0, &pk, &pks)) &&
            npe_x_recs_add(&repl, cpkl, pk, pks, 0, 1, NULL, 0))
            r = oom(&X);
        if (!r && npe_x_changes_records(&X.cch, X.f->prefix, "constants", cpkl, &repl, &added))
            r = oom(&X);
    }
    free(dpkl);
    free(cpkl);
    if (!r)
        r = npe_x_write_archive(X.f->zip, out_path, &repl, &added, err);
    if (r)
        npe_error_prefix(err, "writing %s", out_path);
out_free:
    npe_x_recs_free(&repl);
    npe_x_recs_free(&added);
    xp_free(&X);
    return r;
}
