/* Recursive-descent parser of TorchScript's printed code: classes, methods, and the statements
 * and expressions traced code is made of. Statements of scripted code (if, for, while...) are kept
 * as "unsupported" so the importer can say what it met where, and only if it runs into them. */
#include "ts_ast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    npe_ts_tokens toks;
    size_t p;
    const char *name;
    const char *text;
    npe_ts_arena *arena;
    int depth;
    npe_error *err;
    int code; /* last error code */
} parser;

static const npe_ts_token *peek(const parser *P)
{
    return &P->toks.v[P->p];
}

static const npe_ts_token *peek_at(const parser *P, size_t k)
{
    size_t i = P->p + k;
    return i < P->toks.n ? &P->toks.v[i] : &P->toks.v[P->toks.n - 1];
}

static const npe_ts_token *next(parser *P)
{
    const npe_ts_token *t = &P->toks.v[P->p];
    if (t->kind != NPE_TK_EOF)
        P->p++;
    return t;
}

static int is_op(const npe_ts_token *t, const char *op)
{
    return t->kind == NPE_TK_OP && strcmp(t->sval, op) == 0;
}

static int is_kw(const npe_ts_token *t, const char *kw)
{
    return t->kind == NPE_TK_NAME && strcmp(t->sval, kw) == 0;
}

static void describe(const npe_ts_token *t, char *buf, size_t cap)
{
    switch (t->kind) {
    case NPE_TK_EOF: snprintf(buf, cap, "end of file"); break;
    case NPE_TK_NEWLINE: snprintf(buf, cap, "end of line"); break;
    case NPE_TK_INDENT: snprintf(buf, cap, "an indented block"); break;
    case NPE_TK_DEDENT: snprintf(buf, cap, "the end of a block"); break;
    case NPE_TK_NAME: snprintf(buf, cap, "'%.60s'", t->sval); break;
    case NPE_TK_INT: snprintf(buf, cap, "number %lld", (long long)t->ival); break;
    case NPE_TK_FLOAT: snprintf(buf, cap, "number %g", t->fval); break;
    case NPE_TK_STR: snprintf(buf, cap, "a string"); break;
    case NPE_TK_OP: snprintf(buf, cap, "'%s'", t->sval); break;
    }
}

NPE_PRINTF(3, 4) static int perr(parser *P, int code, const char *fmt, ...)
{
    const npe_ts_token *t = peek(P);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    P->code = code;
    return npe_error_set(P->err, code, "%s:%u:%u: %s", P->name, t->loc.line, t->loc.col, msg);
}

static int expected(parser *P, const char *what)
{
    char found[96];
    describe(peek(P), found, sizeof found);
    return perr(P, NPE_EFORMAT, "expected %s but found %s", what, found);
}

static int expect_op(parser *P, const char *op)
{
    if (!is_op(peek(P), op)) {
        char what[16];
        snprintf(what, sizeof what, "'%s'", op);
        return expected(P, what);
    }
    next(P);
    return 0;
}

static void *alloc(parser *P, size_t n)
{
    void *p = npe_ts_alloc(P->arena, n);
    if (!p)
        perr(P, NPE_ENOMEM, "out of memory");
    return p;
}

static npe_ts_expr *new_expr(parser *P, npe_ts_expr_kind kind, const npe_ts_token *t)
{
    npe_ts_expr *e = alloc(P, sizeof *e);
    if (e) {
        e->kind = kind;
        e->loc = t->loc;
    }
    return e;
}

/* Extend e's span to the end of the token before the current one. */
static void span_to_prev(parser *P, npe_ts_loc *loc)
{
    if (P->p == 0)
        return;
    const npe_ts_token *last = &P->toks.v[P->p - 1];
    uint32_t end = last->loc.off + last->loc.len;
    if (end > loc->off)
        loc->len = end - loc->off;
}

/* A growable array of pointers in malloc'd memory, copied into the arena when complete. */
typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

static int vec_push(parser *P, vec *a, void *x)
{
    if (a->n >= NPE_TS_MAX_ITEMS)
        return perr(P, NPE_ELIMIT, "more than %d items in one list, call or block", NPE_TS_MAX_ITEMS);
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 8;
        void **nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv)
            return perr(P, NPE_ENOMEM, "out of memory");
        a->v = nv;
        a->cap = ncap;
    }
    a->v[a->n++] = x;
    return 0;
}

static void **vec_finish(parser *P, vec *a)
{
    void **out = alloc(P, (a->n ? a->n : 1) * sizeof *out);
    if (out && a->n)
        memcpy(out, a->v, a->n * sizeof *out);
    free(a->v);
    a->v = NULL;
    return out;
}

/* ---- Expressions ----------------------------------------------------------------------------- */
static npe_ts_expr *parse_expr(parser *P);
static npe_ts_expr *parse_expr_list(parser *P, int *is_tuple);

static int enter(parser *P)
{
    if (++P->depth > NPE_TS_MAX_DEPTH) {
        perr(P, NPE_ELIMIT, "expression nested deeper than %d levels", NPE_TS_MAX_DEPTH);
        return 0;
    }
    return 1;
}

/* Items up to the closing bracket; a trailing comma is allowed. Sets *had_comma. */
static int parse_items(parser *P, const char *close, vec *items, int *had_comma)
{
    *had_comma = 0;
    while (!is_op(peek(P), close)) {
        npe_ts_expr *e = parse_expr(P);
        if (!e)
            return P->code;
        int r = vec_push(P, items, e);
        if (r)
            return r;
        if (is_op(peek(P), ",")) {
            next(P);
            *had_comma = 1;
            continue;
        }
        if (!is_op(peek(P), close)) {
            char what[32];
            snprintf(what, sizeof what, "',' or '%s'", close);
            return expected(P, what);
        }
    }
    next(P);
    return 0;
}

static npe_ts_expr *parse_atom(parser *P)
{
    const npe_ts_token *t = peek(P);
    npe_ts_expr *e = NULL;
    switch (t->kind) {
    case NPE_TK_NAME:
        next(P);
        if (strcmp(t->sval, "None") == 0)
            return new_expr(P, NPE_TS_E_NONE, t);
        if (strcmp(t->sval, "True") == 0 || strcmp(t->sval, "False") == 0) {
            e = new_expr(P, NPE_TS_E_BOOL, t);
            if (e)
                e->ival = t->sval[0] == 'T';
            return e;
        }
        if (strcmp(t->sval, "lambda") == 0) {
            perr(P, NPE_EUNSUPPORTED, "lambda expressions are not supported");
            return NULL;
        }
        e = new_expr(P, NPE_TS_E_NAME, t);
        if (e)
            e->name = t->sval;
        return e;
    case NPE_TK_INT:
        if (t->fval != 0) { /* 2**63 without a minus sign */
            perr(P, NPE_EUNSUPPORTED, "integer literal does not fit 64 bits");
            return NULL;
        }
        next(P);
        e = new_expr(P, NPE_TS_E_INT, t);
        if (e)
            e->ival = t->ival;
        return e;
    case NPE_TK_FLOAT:
        next(P);
        e = new_expr(P, NPE_TS_E_FLOAT, t);
        if (e)
            e->fval = t->fval;
        return e;
    case NPE_TK_STR: {
        next(P);
        e = new_expr(P, NPE_TS_E_STR, t);
        if (!e)
            return NULL;
        e->sval = t->sval;
        e->slen = t->slen;
        /* adjacent strings concatenate */
        while (peek(P)->kind == NPE_TK_STR) {
            const npe_ts_token *u = next(P);
            if (e->slen > SIZE_MAX / 2 || u->slen > SIZE_MAX / 2) {
                perr(P, NPE_ELIMIT, "string too long");
                return NULL;
            }
            char *cat = alloc(P, e->slen + u->slen + 1);
            if (!cat)
                return NULL;
            memcpy(cat, e->sval, e->slen);
            memcpy(cat + e->slen, u->sval, u->slen);
            cat[e->slen + u->slen] = '\0';
            e->sval = cat;
            e->slen += u->slen;
        }
        span_to_prev(P, &e->loc);
        return e;
    }
    case NPE_TK_OP:
        if (is_op(t, "(") || is_op(t, "[")) {
            int paren = is_op(t, "(");
            next(P);
            vec items = {0};
            int comma = 0;
            if (parse_items(P, paren ? ")" : "]", &items, &comma)) {
                free(items.v);
                return NULL;
            }
            if (paren && items.n == 1 && !comma) { /* parenthesised expression */
                npe_ts_expr *inner = items.v[0];
                free(items.v);
                return inner;
            }
            e = new_expr(P, paren ? NPE_TS_E_TUPLE : NPE_TS_E_LIST, t);
            if (!e) {
                free(items.v);
                return NULL;
            }
            e->n_items = (int)items.n;
            e->items = (npe_ts_expr **)vec_finish(P, &items);
            if (!e->items)
                return NULL;
            span_to_prev(P, &e->loc);
            return e;
        }
        if (is_op(t, "{")) {
            /* dicts (and sets) never occur in traced code: skip to the closing brace */
            next(P);
            int d = 1;
            while (d > 0 && peek(P)->kind != NPE_TK_EOF) {
                const npe_ts_token *u = next(P);
                if (is_op(u, "{"))
                    d++;
                else if (is_op(u, "}"))
                    d--;
            }
            e = new_expr(P, NPE_TS_E_OTHER, t);
            if (e) {
                e->name = "dict literal";
                span_to_prev(P, &e->loc);
            }
            return e;
        }
        if (is_op(t, "...")) {
            next(P);
            e = new_expr(P, NPE_TS_E_OTHER, t);
            if (e)
                e->name = "'...'";
            return e;
        }
        break;
    default:
        break;
    }
    expected(P, "an expression");
    return NULL;
}

static npe_ts_expr *parse_call(parser *P, npe_ts_expr *callee)
{
    const npe_ts_token *open = next(P); /* ( */
    vec args = {0}, kws = {0};
    int has_kw = 0;
    while (!is_op(peek(P), ")")) {
        const char *kw = NULL;
        if (peek(P)->kind == NPE_TK_NAME && is_op(peek_at(P, 1), "=")) {
            kw = peek(P)->sval;
            next(P);
            next(P);
            has_kw = 1;
        } else if (is_op(peek(P), "*") || is_op(peek(P), "**")) {
            perr(P, NPE_EUNSUPPORTED, "argument unpacking (*args, **kwargs) is not supported");
            goto out_free;
        }
        npe_ts_expr *a = parse_expr(P);
        if (!a || vec_push(P, &args, a) || vec_push(P, &kws, (void *)kw))
            goto out_free;
        if (is_op(peek(P), ",")) {
            next(P);
            continue;
        }
        if (!is_op(peek(P), ")")) {
            expected(P, "',' or ')'");
            goto out_free;
        }
    }
    next(P);
    npe_ts_expr *e = new_expr(P, NPE_TS_E_CALL, open);
    if (!e)
        goto out_free;
    e->loc = callee->loc;
    e->a = callee;
    e->n_items = (int)args.n;
    e->items = (npe_ts_expr **)vec_finish(P, &args);
    e->kwnames = has_kw ? (const char **)vec_finish(P, &kws) : NULL;
    free(kws.v);
    if (!e->items || (has_kw && !e->kwnames))
        return NULL;
    span_to_prev(P, &e->loc);
    return e;
out_free:
    free(args.v);
    free(kws.v);
    return NULL;
}

static npe_ts_expr *parse_primary(parser *P)
{
    npe_ts_expr *e = parse_atom(P);
    while (e) {
        const npe_ts_token *t = peek(P);
        if (is_op(t, ".")) {
            next(P);
            const npe_ts_token *n = peek(P);
            if (n->kind != NPE_TK_NAME) {
                expected(P, "a name after '.'");
                return NULL;
            }
            next(P);
            npe_ts_expr *a = new_expr(P, NPE_TS_E_ATTR, n);
            if (!a)
                return NULL;
            a->loc = e->loc;
            a->a = e;
            a->name = n->sval;
            span_to_prev(P, &a->loc);
            e = a;
        } else if (is_op(t, "(")) {
            if (!enter(P))
                return NULL;
            e = parse_call(P, e);
            P->depth--;
        } else if (is_op(t, "[")) {
            next(P);
            if (!enter(P))
                return NULL;
            int tuple = 0;
            npe_ts_expr *idx = NULL;
            if (is_op(peek(P), ":") || is_op(peek(P), "]")) {
                expected(P, "an index (slices are not supported)");
                return NULL;
            }
            idx = parse_expr_list(P, &tuple);
            P->depth--;
            if (!idx)
                return NULL;
            if (is_op(peek(P), ":")) {
                perr(P, NPE_EUNSUPPORTED, "slice subscripts (a[i:j]) are not supported");
                return NULL;
            }
            if (expect_op(P, "]"))
                return NULL;
            npe_ts_expr *s = new_expr(P, NPE_TS_E_SUBSCRIPT, t);
            if (!s)
                return NULL;
            s->loc = e->loc;
            s->a = e;
            s->b = idx;
            span_to_prev(P, &s->loc);
            e = s;
        } else {
            break;
        }
    }
    return e;
}

static npe_ts_expr *parse_unary(parser *P);

static npe_ts_expr *parse_power(parser *P)
{
    npe_ts_expr *e = parse_primary(P);
    if (e && is_op(peek(P), "**")) {
        const npe_ts_token *op = next(P);
        npe_ts_expr *r = parse_unary(P);
        if (!r)
            return NULL;
        npe_ts_expr *b = new_expr(P, NPE_TS_E_BINARY, op);
        if (!b)
            return NULL;
        b->loc = e->loc;
        b->name = op->sval;
        b->a = e;
        b->b = r;
        span_to_prev(P, &b->loc);
        e = b;
    }
    return e;
}

static npe_ts_expr *parse_unary(parser *P)
{
    const npe_ts_token *t = peek(P);
    if (is_op(t, "-") || is_op(t, "+") || is_op(t, "~")) {
        next(P);
        if (!enter(P))
            return NULL;
        /* fold a sign into a number literal: the literal's span then covers it, so an exporter
         * rewriting "-1" replaces the whole text */
        const npe_ts_token *n = peek(P);
        if (!is_op(t, "~") && (n->kind == NPE_TK_INT || n->kind == NPE_TK_FLOAT) &&
            !is_op(peek_at(P, 1), "**") && !is_op(peek_at(P, 1), ".") &&
            !is_op(peek_at(P, 1), "(") && !is_op(peek_at(P, 1), "[")) {
            next(P);
            P->depth--;
            npe_ts_expr *e = new_expr(P, n->kind == NPE_TK_INT ? NPE_TS_E_INT : NPE_TS_E_FLOAT, t);
            if (!e)
                return NULL;
            int neg = is_op(t, "-");
            if (n->kind == NPE_TK_INT) {
                if (n->fval != 0) { /* 2**63 */
                    if (!neg) {
                        perr(P, NPE_EUNSUPPORTED, "integer literal does not fit 64 bits");
                        return NULL;
                    }
                    e->ival = INT64_MIN;
                } else {
                    e->ival = neg ? -n->ival : n->ival;
                }
            } else {
                e->fval = neg ? -n->fval : n->fval;
            }
            span_to_prev(P, &e->loc);
            return e;
        }
        npe_ts_expr *a = parse_unary(P);
        P->depth--;
        if (!a)
            return NULL;
        npe_ts_expr *e = new_expr(P, NPE_TS_E_UNARY, t);
        if (!e)
            return NULL;
        e->name = t->sval;
        e->a = a;
        span_to_prev(P, &e->loc);
        return e;
    }
    return parse_power(P);
}

/* Binary operator levels, loosest first (Python's precedence). */
static const char *const level_ops[][8] = {
    {"or", NULL},
    {"and", NULL},
    {NULL}, /* not: handled in parse_level */
    {"==", "!=", "<", ">", "<=", ">=", "in", "is"},
    {"|", NULL},
    {"^", NULL},
    {"&", NULL},
    {"<<", ">>", NULL},
    {"+", "-", NULL},
    {"*", "/", "//", "%", "@", NULL},
};
#define N_LEVELS ((int)(sizeof level_ops / sizeof level_ops[0]))

static const char *match_level(parser *P, int level)
{
    const npe_ts_token *t = peek(P);
    if (t->kind != NPE_TK_OP && t->kind != NPE_TK_NAME)
        return NULL;
    for (int k = 0; k < 8 && level_ops[level][k]; k++) {
        if (strcmp(t->sval, level_ops[level][k]) == 0) {
            /* a name operator must be a keyword, not part of an identifier */
            return level_ops[level][k];
        }
    }
    if (level == 3 && is_kw(t, "not") && is_kw(peek_at(P, 1), "in"))
        return "not in";
    return NULL;
}

static npe_ts_expr *parse_level(parser *P, int level)
{
    if (level >= N_LEVELS)
        return parse_unary(P);
    if (!enter(P))
        return NULL;
    npe_ts_expr *e;
    if (level == 2 && is_kw(peek(P), "not")) {
        const npe_ts_token *t = next(P);
        npe_ts_expr *a = parse_level(P, level);
        e = a ? new_expr(P, NPE_TS_E_UNARY, t) : NULL;
        if (e) {
            e->name = "not";
            e->a = a;
            span_to_prev(P, &e->loc);
        }
        P->depth--;
        return e;
    }
    e = parse_level(P, level + 1);
    const char *op;
    while (e && (op = match_level(P, level))) {
        const npe_ts_token *t = next(P);
        if (strcmp(op, "not in") == 0)
            next(P);
        if (strcmp(op, "is") == 0 && is_kw(peek(P), "not")) {
            next(P);
            op = "is not";
        }
        npe_ts_expr *r = parse_level(P, level + 1);
        if (!r) {
            e = NULL;
            break;
        }
        npe_ts_expr *b = new_expr(P, NPE_TS_E_BINARY, t);
        if (!b) {
            e = NULL;
            break;
        }
        b->loc = e->loc;
        b->name = op;
        b->a = e;
        b->b = r;
        span_to_prev(P, &b->loc);
        e = b;
    }
    P->depth--;
    return e;
}

static npe_ts_expr *parse_expr(parser *P)
{
    if (!enter(P))
        return NULL;
    npe_ts_expr *e = parse_level(P, 0);
    if (e && is_kw(peek(P), "if")) {
        /* conditional expression: parsed so the error can name it */
        next(P);
        npe_ts_expr *c = parse_level(P, 0);
        if (c && !is_kw(peek(P), "else")) {
            expected(P, "'else'");
            c = NULL;
        }
        npe_ts_expr *o = c ? (next(P), parse_expr(P)) : NULL;
        npe_ts_expr *x = o ? new_expr(P, NPE_TS_E_OTHER, peek(P)) : NULL;
        if (x) {
            x->loc = e->loc;
            x->name = "conditional expression (a if c else b)";
            span_to_prev(P, &x->loc);
        }
        e = x;
    }
    P->depth--;
    return e;
}

/* expr [, expr]* [,] -- a tuple when there is a comma. */
static npe_ts_expr *parse_expr_list(parser *P, int *is_tuple)
{
    const npe_ts_token *first = peek(P);
    npe_ts_expr *e = parse_expr(P);
    *is_tuple = 0;
    if (!e || !is_op(peek(P), ","))
        return e;
    vec items = {0};
    if (vec_push(P, &items, e)) {
        free(items.v);
        return NULL;
    }
    while (is_op(peek(P), ",")) {
        next(P);
        const npe_ts_token *t = peek(P);
        if (t->kind == NPE_TK_NEWLINE || is_op(t, "=") || is_op(t, "]") || is_op(t, ")") ||
            t->kind == NPE_TK_EOF)
            break;
        npe_ts_expr *x = parse_expr(P);
        if (!x || vec_push(P, &items, x)) {
            free(items.v);
            return NULL;
        }
    }
    npe_ts_expr *t = new_expr(P, NPE_TS_E_TUPLE, first);
    if (!t) {
        free(items.v);
        return NULL;
    }
    t->n_items = (int)items.n;
    t->items = (npe_ts_expr **)vec_finish(P, &items);
    if (!t->items)
        return NULL;
    span_to_prev(P, &t->loc);
    *is_tuple = 1;
    return t;
}

/* ---- Statements ------------------------------------------------------------------------------ */

/* Skip the rest of a logical line, and the block it opens if any. */
static void skip_statement(parser *P)
{
    while (peek(P)->kind != NPE_TK_NEWLINE && peek(P)->kind != NPE_TK_EOF &&
           peek(P)->kind != NPE_TK_DEDENT && peek(P)->kind != NPE_TK_INDENT)
        next(P);
    if (peek(P)->kind == NPE_TK_NEWLINE)
        next(P);
    if (peek(P)->kind == NPE_TK_INDENT) {
        int d = 0;
        do {
            const npe_ts_token *t = next(P);
            if (t->kind == NPE_TK_INDENT)
                d++;
            else if (t->kind == NPE_TK_DEDENT)
                d--;
            else if (t->kind == NPE_TK_EOF)
                break;
        } while (d > 0);
    }
}

static const char *const unsupported_kw[] = {
    "if", "elif", "else", "for", "while", "with", "try", "except", "finally", "raise",
    "assert", "del", "break", "continue", "global", "nonlocal", "import", "from", "yield",
    "async", "await", "class", "def", NULL};

static int end_statement(parser *P)
{
    if (peek(P)->kind == NPE_TK_NEWLINE) {
        next(P);
        return 0;
    }
    if (peek(P)->kind == NPE_TK_DEDENT || peek(P)->kind == NPE_TK_EOF)
        return 0;
    return expected(P, "end of line");
}

static npe_ts_stmt *parse_statement(parser *P)
{
    const npe_ts_token *t = peek(P);
    npe_ts_stmt *s = alloc(P, sizeof *s);
    if (!s)
        return NULL;
    s->loc = t->loc;
    if (t->kind == NPE_TK_NAME) {
        for (int k = 0; unsupported_kw[k]; k++) {
            if (strcmp(t->sval, unsupported_kw[k]) == 0) {
                char *what = alloc(P, 64);
                if (!what)
                    return NULL;
                snprintf(what, 64, "'%s' statement", unsupported_kw[k]);
                s->kind = NPE_TS_S_UNSUPPORTED;
                s->what = what;
                skip_statement(P);
                return s;
            }
        }
        if (strcmp(t->sval, "pass") == 0) {
            next(P);
            s->kind = NPE_TS_S_PASS;
            return end_statement(P) ? NULL : s;
        }
        if (strcmp(t->sval, "return") == 0) {
            next(P);
            s->kind = NPE_TS_S_RETURN;
            if (peek(P)->kind != NPE_TK_NEWLINE && peek(P)->kind != NPE_TK_DEDENT) {
                int tuple;
                s->value = parse_expr_list(P, &tuple);
                if (!s->value)
                    return NULL;
            }
            span_to_prev(P, &s->loc);
            return end_statement(P) ? NULL : s;
        }
    }
    int tuple = 0;
    npe_ts_expr *lhs = parse_expr_list(P, &tuple);
    if (!lhs)
        return NULL;
    const npe_ts_token *o = peek(P);
    if (o->kind == NPE_TK_OP && o->slen >= 2 && o->sval[o->slen - 1] == '=' &&
        strcmp(o->sval, "==") && strcmp(o->sval, "!=") && strcmp(o->sval, "<=") &&
        strcmp(o->sval, ">=")) {
        s->kind = NPE_TS_S_UNSUPPORTED;
        s->what = "augmented assignment (x += ...)";
        skip_statement(P);
        return s;
    }
    if (is_op(o, ":")) {
        s->kind = NPE_TS_S_UNSUPPORTED;
        s->what = "annotated assignment";
        skip_statement(P);
        return s;
    }
    if (!is_op(o, "=")) {
        s->kind = NPE_TS_S_EXPR;
        s->value = lhs;
        span_to_prev(P, &s->loc);
        return end_statement(P) ? NULL : s;
    }
    next(P);
    /* targets: one name, or a tuple of names */
    int n = tuple ? lhs->n_items : 1;
    npe_ts_expr **tg = tuple ? lhs->items : &lhs;
    for (int i = 0; i < n; i++) {
        if (tg[i]->kind != NPE_TS_E_NAME) {
            s->kind = NPE_TS_S_UNSUPPORTED;
            s->what = tg[i]->kind == NPE_TS_E_SUBSCRIPT ? "assignment to a subscript (x[i] = ...)"
                      : tg[i]->kind == NPE_TS_E_ATTR   ? "assignment to an attribute (a.b = ...)"
                                                       : "assignment to an expression";
            skip_statement(P);
            return s;
        }
    }
    s->kind = NPE_TS_S_ASSIGN;
    s->unpack = tuple;
    s->n_targets = n;
    s->targets = alloc(P, (size_t)n * sizeof *s->targets);
    s->target_locs = alloc(P, (size_t)n * sizeof *s->target_locs);
    if (!s->targets || !s->target_locs)
        return NULL;
    for (int i = 0; i < n; i++) {
        s->targets[i] = tg[i]->name;
        s->target_locs[i] = tg[i]->loc;
    }
    int vt;
    s->value = parse_expr_list(P, &vt);
    if (!s->value)
        return NULL;
    if (is_op(peek(P), "=")) {
        s->kind = NPE_TS_S_UNSUPPORTED;
        s->what = "chained assignment (a = b = ...)";
        skip_statement(P);
        return s;
    }
    span_to_prev(P, &s->loc);
    return end_statement(P) ? NULL : s;
}

/* ---- Definitions ----------------------------------------------------------------------------- */

/* Parse "def name(params) -> type:" and the body. Body parse errors are kept on the method. */
static int parse_def(parser *P, npe_ts_method *m)
{
    const npe_ts_token *d = next(P); /* def */
    m->loc = d->loc;
    if (peek(P)->kind != NPE_TK_NAME)
        return expected(P, "a method name after 'def'");
    m->name = next(P)->sval;
    if (expect_op(P, "("))
        return P->code;
    vec params = {0};
    while (!is_op(peek(P), ")")) {
        if (peek(P)->kind != NPE_TK_NAME) {
            free(params.v);
            return expected(P, "a parameter name");
        }
        npe_ts_param *pm = alloc(P, sizeof *pm);
        if (!pm) {
            free(params.v);
            return P->code;
        }
        const npe_ts_token *pn = next(P);
        pm->name = pn->sval;
        pm->loc = pn->loc;
        if (is_op(peek(P), ":")) {
            next(P);
            if (!(pm->type = parse_expr(P))) {
                free(params.v);
                return P->code;
            }
        }
        if (is_op(peek(P), "=")) {
            next(P);
            if (!(pm->def = parse_expr(P))) {
                free(params.v);
                return P->code;
            }
        }
        if (vec_push(P, &params, pm)) {
            free(params.v);
            return P->code;
        }
        if (is_op(peek(P), ",")) {
            next(P);
        } else if (!is_op(peek(P), ")")) {
            free(params.v);
            return expected(P, "',' or ')' in the parameter list");
        }
    }
    next(P);
    m->n_params = (int)params.n;
    m->params = alloc(P, (params.n ? params.n : 1) * sizeof *m->params);
    if (!m->params) {
        free(params.v);
        return P->code;
    }
    for (size_t i = 0; i < params.n; i++)
        m->params[i] = *(npe_ts_param *)params.v[i];
    free(params.v);
    if (is_op(peek(P), "->")) {
        next(P);
        if (!(m->ret_type = parse_expr(P)))
            return P->code;
    }
    if (expect_op(P, ":"))
        return P->code;
    if (peek(P)->kind != NPE_TK_NEWLINE)
        return expected(P, "a new line after the method header");
    next(P);
    if (peek(P)->kind != NPE_TK_INDENT)
        return expected(P, "an indented method body");
    next(P);
    vec body = {0};
    while (peek(P)->kind != NPE_TK_DEDENT && peek(P)->kind != NPE_TK_EOF) {
        if (peek(P)->kind == NPE_TK_NEWLINE) {
            next(P);
            continue;
        }
        npe_ts_stmt *s = parse_statement(P);
        if (!s || vec_push(P, &body, s)) {
            if (P->code == NPE_ENOMEM) {
                free(body.v);
                return P->code;
            }
            /* keep the error for when the method is called; skip the rest of the body */
            m->err_code = P->code;
            m->err_msg = npe_ts_strndup(P->arena, P->err ? P->err->msg : "syntax error",
                                        strlen(P->err ? P->err->msg : "syntax error"));
            if (P->err)
                npe_error_clear(P->err);
            int dd = 0;
            for (;;) {
                const npe_ts_token *t = peek(P);
                if (t->kind == NPE_TK_EOF)
                    break;
                if (t->kind == NPE_TK_DEDENT && dd == 0)
                    break;
                next(P);
                if (t->kind == NPE_TK_INDENT)
                    dd++;
                else if (t->kind == NPE_TK_DEDENT)
                    dd--;
            }
            break;
        }
    }
    if (peek(P)->kind == NPE_TK_DEDENT)
        next(P);
    m->n_body = (int)body.n;
    m->body = (npe_ts_stmt **)vec_finish(P, &body);
    return m->body ? 0 : P->code;
}

static int parse_class(parser *P, npe_ts_class *c)
{
    const npe_ts_token *k = next(P); /* class */
    c->loc = k->loc;
    if (peek(P)->kind != NPE_TK_NAME)
        return expected(P, "a class name");
    c->name = next(P)->sval;
    if (is_op(peek(P), "(")) {
        next(P);
        int d = 1;
        while (d > 0 && peek(P)->kind != NPE_TK_EOF) {
            const npe_ts_token *t = next(P);
            if (is_op(t, "("))
                d++;
            else if (is_op(t, ")"))
                d--;
        }
    }
    if (expect_op(P, ":"))
        return P->code;
    if (peek(P)->kind != NPE_TK_NEWLINE)
        return expected(P, "a new line after the class header");
    next(P);
    if (peek(P)->kind != NPE_TK_INDENT)
        return expected(P, "an indented class body");
    next(P);
    vec methods = {0};
    while (peek(P)->kind != NPE_TK_DEDENT && peek(P)->kind != NPE_TK_EOF) {
        const npe_ts_token *t = peek(P);
        if ((is_kw(t, "__parameters__") || is_kw(t, "__buffers__")) && is_op(peek_at(P, 1), "=")) {
            int params = is_kw(t, "__parameters__");
            npe_ts_stmt *s = parse_statement(P);
            if (!s) {
                free(methods.v);
                return P->code;
            }
            const npe_ts_expr *l = s->value;
            if (s->kind != NPE_TS_S_ASSIGN || !l || l->kind != NPE_TS_E_LIST) {
                free(methods.v);
                return perr(P, NPE_EFORMAT, "class %s: %s is not a list of names", c->name,
                            params ? "__parameters__" : "__buffers__");
            }
            const char **names = alloc(P, (size_t)(l->n_items ? l->n_items : 1) * sizeof *names);
            if (!names) {
                free(methods.v);
                return P->code;
            }
            for (int i = 0; i < l->n_items; i++) {
                if (l->items[i]->kind != NPE_TS_E_STR) {
                    free(methods.v);
                    return perr(P, NPE_EFORMAT, "class %s: %s holds something else than names",
                                c->name, params ? "__parameters__" : "__buffers__");
                }
                names[i] = l->items[i]->sval;
            }
            if (params) {
                c->param_names = names;
                c->n_param_names = l->n_items;
            } else {
                c->buffer_names = names;
                c->n_buffer_names = l->n_items;
            }
        } else if (is_kw(t, "def")) {
            npe_ts_method *m = alloc(P, sizeof *m);
            if (!m || parse_def(P, m) || vec_push(P, &methods, m)) {
                free(methods.v);
                return P->code;
            }
        } else if (t->kind == NPE_TK_NEWLINE) {
            next(P);
        } else {
            /* attribute declarations, __parameters__, __annotations__[...] = ..., decorators,
             * __constants__: the module tree comes from data.pkl, so these are skipped */
            skip_statement(P);
        }
    }
    if (peek(P)->kind == NPE_TK_DEDENT)
        next(P);
    c->n_methods = (int)methods.n;
    c->methods = alloc(P, (methods.n ? methods.n : 1) * sizeof *c->methods);
    if (!c->methods) {
        free(methods.v);
        return P->code;
    }
    for (size_t i = 0; i < methods.n; i++)
        c->methods[i] = *(npe_ts_method *)methods.v[i];
    free(methods.v);
    return 0;
}

int npe_ts_parse_expr(const char *text, size_t len, const char *name, npe_ts_arena *arena,
                      npe_ts_expr **out, npe_error *err)
{
    *out = NULL;
    npe_error local;
    parser P = {0};
    P.name = name ? name : "<expr>";
    P.text = text;
    P.arena = arena;
    P.err = err ? err : &local;
    int r = npe_ts_lex(text, len, P.name, arena, &P.toks, P.err);
    if (r)
        return r;
    int tuple;
    npe_ts_expr *e = parse_expr_list(&P, &tuple);
    if (e && peek(&P)->kind != NPE_TK_NEWLINE && peek(&P)->kind != NPE_TK_EOF) {
        expected(&P, "end of expression");
        e = NULL;
    }
    free(P.toks.v);
    if (!e)
        return P.code ? P.code : NPE_EFORMAT;
    *out = e;
    return 0;
}

int npe_ts_parse(const char *text, size_t len, const char *name, npe_ts_module **out,
                 npe_error *err)
{
    *out = NULL;
    npe_error local;
    if (!err)
        err = &local;
    npe_ts_module *m = calloc(1, sizeof *m);
    if (!m)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    m->name = name ? name : "<code>";
    m->text = text;
    m->len = len;
    parser P = {0};
    P.name = m->name;
    P.text = text;
    P.arena = &m->arena;
    P.err = err;
    int r = npe_ts_lex(text, len, m->name, &m->arena, &P.toks, err);
    if (r)
        goto out_free_module;
    vec classes = {0}, funcs = {0};
    while (peek(&P)->kind != NPE_TK_EOF) {
        const npe_ts_token *t = peek(&P);
        if (is_kw(t, "class")) {
            npe_ts_class *c = alloc(&P, sizeof *c);
            if (!c || parse_class(&P, c) || vec_push(&P, &classes, c)) {
                r = P.code ? P.code : NPE_EFORMAT;
                goto out_free_vecs;
            }
        } else if (is_kw(t, "def")) {
            npe_ts_method *f = alloc(&P, sizeof *f);
            if (!f || parse_def(&P, f) || vec_push(&P, &funcs, f)) {
                r = P.code ? P.code : NPE_EFORMAT;
                goto out_free_vecs;
            }
        } else if (t->kind == NPE_TK_NEWLINE) {
            next(&P);
        } else if (t->kind == NPE_TK_INDENT || t->kind == NPE_TK_DEDENT) {
            r = expected(&P, "a class or a function at the top level");
            goto out_free_vecs;
        } else {
            /* op_version_set = 1, import lines: nothing the importer needs */
            skip_statement(&P);
        }
    }
    m->n_classes = (int)classes.n;
    m->classes = alloc(&P, (classes.n ? classes.n : 1) * sizeof *m->classes);
    m->n_functions = (int)funcs.n;
    m->functions = alloc(&P, (funcs.n ? funcs.n : 1) * sizeof *m->functions);
    if (!m->classes || !m->functions) {
        r = NPE_ENOMEM;
        goto out_free_vecs;
    }
    for (size_t i = 0; i < classes.n; i++)
        m->classes[i] = *(npe_ts_class *)classes.v[i];
    for (size_t i = 0; i < funcs.n; i++)
        m->functions[i] = *(npe_ts_method *)funcs.v[i];
    free(classes.v);
    free(funcs.v);
    free(P.toks.v);
    *out = m;
    return 0;

out_free_vecs:
    free(classes.v);
    free(funcs.v);
out_free_module:
    free(P.toks.v);
    npe_ts_arena_free(&m->arena);
    free(m);
    return r;
}

void npe_ts_module_free(npe_ts_module *m)
{
    if (!m)
        return;
    npe_ts_arena_free(&m->arena);
    free(m);
}

const npe_ts_class *npe_ts_find_class(const npe_ts_module *m, const char *name)
{
    for (int i = 0; i < m->n_classes; i++)
        if (strcmp(m->classes[i].name, name) == 0)
            return &m->classes[i];
    return NULL;
}

const npe_ts_method *npe_ts_find_method(const npe_ts_class *c, const char *name)
{
    for (int i = 0; i < c->n_methods; i++)
        if (strcmp(c->methods[i].name, name) == 0)
            return &c->methods[i];
    return NULL;
}

static size_t dotted_rec(const npe_ts_expr *e, char *buf, size_t cap, int depth)
{
    if (!e || depth > 64)
        return (size_t)-1;
    if (e->kind == NPE_TS_E_NAME) {
        size_t n = strlen(e->name);
        if (n + 1 > cap)
            return (size_t)-1;
        memcpy(buf, e->name, n + 1);
        return n;
    }
    if (e->kind != NPE_TS_E_ATTR)
        return (size_t)-1;
    size_t k = dotted_rec(e->a, buf, cap, depth + 1);
    if (k == (size_t)-1)
        return k;
    size_t n = strlen(e->name);
    if (k + 1 + n + 1 > cap)
        return (size_t)-1;
    buf[k] = '.';
    memcpy(buf + k + 1, e->name, n + 1);
    return k + 1 + n;
}

const char *npe_ts_dotted(const npe_ts_expr *e, char *buf, size_t cap)
{
    if (!cap)
        return NULL;
    return dotted_rec(e, buf, cap, 0) == (size_t)-1 ? NULL : buf;
}
