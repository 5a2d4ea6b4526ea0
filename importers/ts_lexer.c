/* Tokeniser of TorchScript's printed code (Python syntax: indentation, brackets joining lines,
 * comments, numbers, strings) and the arena the syntax tree lives in. */
#include "ts_ast.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Arena ----------------------------------------------------------------------------------- */
struct npe_ts_block {
    struct npe_ts_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *npe_ts_alloc(npe_ts_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!n)
        n = 16;
    struct npe_ts_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > SIZE_MAX - sizeof *b)
            return NULL;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *npe_ts_strndup(npe_ts_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = npe_ts_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void npe_ts_arena_free(npe_ts_arena *a)
{
    struct npe_ts_block *b = a->head;
    while (b) {
        struct npe_ts_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ---- Lexer ----------------------------------------------------------------------------------- */
typedef struct lexer {
    const char *s;
    size_t n, i;
    uint32_t line, line_start;
    const char *name;
    npe_ts_arena *arena;
    npe_ts_tokens *toks;
    size_t cap;
    int depth;        /* open brackets */
    int indents[NPE_TS_MAX_INDENT + 1];
    int n_indents;
    npe_error *err;
    int last; /* code of the last error raised */
} lexer;

static int lerr(lexer *L, size_t at, int code, const char *what)
{
    uint32_t col = (uint32_t)(at - L->line_start) + 1;
    L->last = code;
    return npe_error_set(L->err, code, "%s:%u:%u: %s", L->name, L->line, col, what);
}

static npe_ts_token *push(lexer *L, npe_ts_tok_kind kind, size_t start, size_t end)
{
    if (L->toks->n >= NPE_TS_MAX_TOKENS) {
        lerr(L, start, NPE_ELIMIT, "more tokens than the importer accepts in one file");
        return NULL;
    }
    if (L->toks->n == L->cap) {
        size_t ncap = L->cap ? L->cap * 2 : 1024;
        npe_ts_token *nv = realloc(L->toks->v, ncap * sizeof *nv);
        if (!nv) {
            lerr(L, start, NPE_ENOMEM, "out of memory");
            return NULL;
        }
        L->toks->v = nv;
        L->cap = ncap;
    }
    npe_ts_token *t = &L->toks->v[L->toks->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->loc.off = (uint32_t)start;
    t->loc.len = (uint32_t)(end - start);
    t->loc.line = L->line;
    t->loc.col = (uint32_t)(start - L->line_start) + 1;
    return t;
}

static int is_name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Handle the indentation at the start of a logical line; returns 1 if the line is blank. */
static int line_start(lexer *L, int *rc)
{
    size_t i = L->i;
    int width = 0;
    while (i < L->n && (L->s[i] == ' ' || L->s[i] == '\t' || L->s[i] == '\f')) {
        width = L->s[i] == '\t' ? (width / 8 + 1) * 8 : width + 1;
        if (width > 100000) {
            *rc = lerr(L, i, NPE_ELIMIT, "indentation too deep");
            return 0;
        }
        i++;
    }
    if (i >= L->n || L->s[i] == '\n' || L->s[i] == '\r' || L->s[i] == '#') {
        L->i = i; /* blank or comment line: no indentation change */
        return 1;
    }
    L->i = i;
    int top = L->indents[L->n_indents - 1];
    if (width > top) {
        if (L->n_indents > NPE_TS_MAX_INDENT) {
            *rc = lerr(L, i, NPE_ELIMIT, "blocks nested deeper than the importer accepts");
            return 0;
        }
        L->indents[L->n_indents++] = width;
        if (!push(L, NPE_TK_INDENT, i, i)) {
            *rc = L->last;
            return 0;
        }
    } else {
        while (width < L->indents[L->n_indents - 1]) {
            L->n_indents--;
            if (!push(L, NPE_TK_DEDENT, i, i)) {
                *rc = L->last;
                return 0;
            }
        }
        if (width != L->indents[L->n_indents - 1]) {
            *rc = lerr(L, i, NPE_EFORMAT, "indentation does not match any outer block");
            return 0;
        }
    }
    return 0;
}

static int lex_number(lexer *L)
{
    size_t st = L->i, i = L->i;
    int is_float = 0;
    if (i + 1 < L->n && L->s[i] == '0' && (L->s[i + 1] == 'x' || L->s[i + 1] == 'X')) {
        i += 2;
        size_t d0 = i;
        uint64_t v = 0;
        while (i < L->n && (is_digit((unsigned char)L->s[i]) ||
                            ((L->s[i] | 32) >= 'a' && (L->s[i] | 32) <= 'f'))) {
            unsigned c = (unsigned char)L->s[i];
            unsigned d = is_digit((unsigned char)c) ? c - '0' : (c | 32) - 'a' + 10;
            if (v > (UINT64_MAX >> 4))
                return lerr(L, st, NPE_EUNSUPPORTED, "integer literal does not fit 64 bits");
            v = v * 16 + d;
            i++;
        }
        if (i == d0 || v > (uint64_t)INT64_MAX)
            return lerr(L, st, NPE_EFORMAT, "bad hexadecimal literal");
        npe_ts_token *t = push(L, NPE_TK_INT, st, i);
        if (!t)
            return L->last;
        t->ival = (int64_t)v;
        L->i = i;
        return 0;
    }
    while (i < L->n && is_digit((unsigned char)L->s[i]))
        i++;
    if (i < L->n && L->s[i] == '.') {
        is_float = 1;
        i++;
        while (i < L->n && is_digit((unsigned char)L->s[i]))
            i++;
    }
    if (i < L->n && (L->s[i] == 'e' || L->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->n && (L->s[j] == '+' || L->s[j] == '-'))
            j++;
        if (j < L->n && is_digit((unsigned char)L->s[j])) {
            is_float = 1;
            i = j;
            while (i < L->n && is_digit((unsigned char)L->s[i]))
                i++;
        }
    }
    if (i < L->n && (is_name_start((unsigned char)L->s[i]) || L->s[i] == '.'))
        return lerr(L, i, NPE_EFORMAT, "bad number literal");
    char buf[128];
    size_t len = i - st;
    if (len >= sizeof buf)
        return lerr(L, st, NPE_EUNSUPPORTED, "number literal too long");
    memcpy(buf, L->s + st, len);
    buf[len] = '\0';
    npe_ts_token *t = push(L, is_float ? NPE_TK_FLOAT : NPE_TK_INT, st, i);
    if (!t)
        return L->last;
    if (is_float) {
        t->fval = strtod(buf, NULL);
    } else {
        uint64_t v = 0;
        for (size_t k = 0; k < len; k++) {
            unsigned d = (unsigned)(buf[k] - '0');
            if (v > (UINT64_MAX - d) / 10)
                return lerr(L, st, NPE_EUNSUPPORTED, "integer literal does not fit 64 bits");
            v = v * 10 + d;
        }
        /* 9223372036854775808 only makes sense after a '-': the parser folds it */
        if (v > (uint64_t)INT64_MAX + 1)
            return lerr(L, st, NPE_EUNSUPPORTED, "integer literal does not fit 64 bits");
        t->ival = (int64_t)(v == (uint64_t)INT64_MAX + 1 ? (uint64_t)INT64_MAX : v);
        if (v == (uint64_t)INT64_MAX + 1)
            t->fval = 1; /* marks "2**63": valid only negated */
    }
    L->i = i;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 32;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int lex_string(lexer *L)
{
    size_t st = L->i;
    char q = L->s[L->i];
    int triple = L->i + 2 < L->n && L->s[L->i + 1] == q && L->s[L->i + 2] == q;
    size_t i = L->i + (triple ? 3 : 1);
    /* decoded text is never longer than the source */
    size_t cap = 0;
    for (size_t j = i; j < L->n; j++, cap++) {
        if (!triple && (L->s[j] == '\n'))
            break;
        if (L->s[j] == q && (!triple || (j + 2 < L->n && L->s[j + 1] == q && L->s[j + 2] == q)))
            break;
        if (L->s[j] == '\\')
            j++;
    }
    char *out = npe_ts_alloc(L->arena, cap + 1);
    if (!out)
        return lerr(L, st, NPE_ENOMEM, "out of memory");
    size_t o = 0;
    for (;;) {
        if (i >= L->n || (!triple && (L->s[i] == '\n' || L->s[i] == '\r')))
            return lerr(L, st, NPE_EFORMAT, "string literal is not closed");
        char c = L->s[i];
        if (c == q && (!triple || (i + 2 < L->n && L->s[i + 1] == q && L->s[i + 2] == q))) {
            i += triple ? 3 : 1;
            break;
        }
        if (c == '\n') {
            L->line++;
            L->line_start = (uint32_t)(i + 1);
        }
        if (c == '\\') {
            if (i + 1 >= L->n)
                return lerr(L, i, NPE_EFORMAT, "string literal ends in a backslash");
            char e = L->s[i + 1];
            i += 2;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '0': c = '\0'; break;
            case '\\': case '\'': case '"': c = e; break;
            case 'x': {
                int h1 = i < L->n ? hexval(L->s[i]) : -1;
                int h2 = i + 1 < L->n ? hexval(L->s[i + 1]) : -1;
                if (h1 < 0 || h2 < 0)
                    return lerr(L, i, NPE_EFORMAT, "bad \\x escape in string");
                c = (char)(h1 * 16 + h2);
                i += 2;
                break;
            }
            case '\n':
                L->line++;
                L->line_start = (uint32_t)i;
                continue;
            default:
                /* Python keeps unknown escapes literally */
                if (o + 2 > cap)
                    return lerr(L, i, NPE_EFORMAT, "bad string literal");
                out[o++] = '\\';
                c = e;
                break;
            }
        } else {
            i++;
        }
        if (o >= cap)
            return lerr(L, st, NPE_EFORMAT, "bad string literal");
        out[o++] = c;
    }
    out[o] = '\0';
    npe_ts_token *t = push(L, NPE_TK_STR, st, i);
    if (!t)
        return L->last;
    t->sval = out;
    t->slen = o;
    L->i = i;
    return 0;
}

/* Operators, longest first. */
static const char *const ops3[] = {"**=", "//=", ">>=", "<<=", "...", NULL};
static const char *const ops2[] = {"->", "==", "!=", "<=", ">=", "**", "//", "+=", "-=", "*=",
                                   "/=", "%=", "&=", "|=", "^=", "<<", ">>", ":=", "@=", NULL};
static const char ops1[] = "()[]{},:.;=+-*/%<>@~^&|!";

static int lex_op(lexer *L)
{
    size_t st = L->i, len = 0;
    for (int k = 0; ops3[k] && !len; k++)
        if (L->n - st >= 3 && memcmp(L->s + st, ops3[k], 3) == 0)
            len = 3;
    for (int k = 0; ops2[k] && !len; k++)
        if (L->n - st >= 2 && memcmp(L->s + st, ops2[k], 2) == 0)
            len = 2;
    if (!len && strchr(ops1, L->s[st]) && L->s[st])
        len = 1;
    if (!len) {
        char what[64];
        unsigned char c = (unsigned char)L->s[st];
        if (c >= 32 && c < 127)
            snprintf(what, sizeof what, "unexpected character '%c'", c);
        else
            snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
        return lerr(L, st, NPE_EFORMAT, what);
    }
    char c = L->s[st];
    if (len == 1 && (c == '(' || c == '[' || c == '{')) {
        if (++L->depth > NPE_TS_MAX_DEPTH)
            return lerr(L, st, NPE_ELIMIT, "brackets nested deeper than the importer accepts");
    } else if (len == 1 && (c == ')' || c == ']' || c == '}')) {
        if (L->depth > 0)
            L->depth--;
    }
    npe_ts_token *t = push(L, NPE_TK_OP, st, st + len);
    if (!t)
        return L->last;
    t->sval = npe_ts_strndup(L->arena, L->s + st, len);
    if (!t->sval)
        return lerr(L, st, NPE_ENOMEM, "out of memory");
    t->slen = len;
    L->i = st + len;
    return 0;
}

int npe_ts_lex(const char *text, size_t len, const char *name, npe_ts_arena *arena,
               npe_ts_tokens *toks, npe_error *err)
{
    lexer L = {0};
    L.s = text;
    L.n = len;
    L.line = 1;
    L.name = name ? name : "<code>";
    L.arena = arena;
    L.toks = toks;
    L.err = err;
    L.indents[0] = 0;
    L.n_indents = 1;
    toks->v = NULL;
    toks->n = 0;
    if (len > UINT32_MAX - 16)
        return npe_error_set(err, NPE_ELIMIT, "%s: code record too large", L.name);
    int rc = 0, at_line_start = 1;
    while (!rc) {
        if (at_line_start && L.depth == 0) {
            if (line_start(&L, &rc)) {
                /* blank line: skip to its end */
                while (L.i < L.n && L.s[L.i] != '\n')
                    L.i++;
                if (L.i >= L.n)
                    break;
                L.i++;
                L.line++;
                L.line_start = (uint32_t)L.i;
                continue;
            }
            if (rc)
                break;
            at_line_start = 0;
        }
        if (L.i >= L.n)
            break;
        unsigned char c = (unsigned char)L.s[L.i];
        if (c == ' ' || c == '\t' || c == '\f' || c == '\r') {
            L.i++;
        } else if (c == '#') {
            while (L.i < L.n && L.s[L.i] != '\n')
                L.i++;
        } else if (c == '\\' && L.i + 1 < L.n && (L.s[L.i + 1] == '\n' || L.s[L.i + 1] == '\r')) {
            L.i += L.s[L.i + 1] == '\r' && L.i + 2 < L.n && L.s[L.i + 2] == '\n' ? 3 : 2;
            L.line++;
            L.line_start = (uint32_t)L.i;
        } else if (c == '\n') {
            if (L.depth == 0) {
                size_t nt = toks->n;
                if (nt && toks->v[nt - 1].kind != NPE_TK_NEWLINE &&
                    toks->v[nt - 1].kind != NPE_TK_INDENT && toks->v[nt - 1].kind != NPE_TK_DEDENT) {
                    if (!push(&L, NPE_TK_NEWLINE, L.i, L.i + 1))
                        return L.last;
                }
                at_line_start = 1;
            }
            L.i++;
            L.line++;
            L.line_start = (uint32_t)L.i;
        } else if (is_name_start(c)) {
            size_t st = L.i;
            while (L.i < L.n && (is_name_start((unsigned char)L.s[L.i]) ||
                                 is_digit((unsigned char)L.s[L.i])))
                L.i++;
            npe_ts_token *t = push(&L, NPE_TK_NAME, st, L.i);
            if (!t)
                return L.last;
            t->sval = npe_ts_strndup(arena, L.s + st, L.i - st);
            t->slen = L.i - st;
            if (!t->sval)
                return lerr(&L, st, NPE_ENOMEM, "out of memory");
        } else if (is_digit(c) || (c == '.' && L.i + 1 < L.n && is_digit((unsigned char)L.s[L.i + 1]))) {
            rc = lex_number(&L);
        } else if (c == '"' || c == '\'') {
            rc = lex_string(&L);
        } else {
            rc = lex_op(&L);
        }
    }
    if (rc)
        goto out_free_tokens;
    if (L.depth > 0) {
        rc = lerr(&L, L.i, NPE_EFORMAT, "file ends inside brackets");
        goto out_free_tokens;
    }
    if (toks->n && toks->v[toks->n - 1].kind != NPE_TK_NEWLINE &&
        toks->v[toks->n - 1].kind != NPE_TK_DEDENT && !push(&L, NPE_TK_NEWLINE, L.i, L.i)) {
        rc = L.last;
        goto out_free_tokens;
    }
    while (L.n_indents > 1) {
        L.n_indents--;
        if (!push(&L, NPE_TK_DEDENT, L.i, L.i)) {
            rc = L.last;
            goto out_free_tokens;
        }
    }
    if (!push(&L, NPE_TK_EOF, L.i, L.i)) {
        rc = L.last;
        goto out_free_tokens;
    }
    return 0;

out_free_tokens:
    free(toks->v);
    toks->v = NULL;
    toks->n = 0;
    return rc ? rc : NPE_EFORMAT;
}
