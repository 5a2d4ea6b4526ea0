/* TOML 1.0 reader for lbprune configuration files: a hand-written recursive-descent parser that
 * builds a tree of npe_toml_value, enforcing TOML's rules on redefinition as it goes. */
#include "toml.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

/* Deepest nesting of tables and arrays: bounds the parser's recursion and the recursion of
 * anything that walks the tree. Configuration files nest three or four levels. */
#define MAX_DEPTH 128
#define MAX_FILE_BYTES ((size_t)64 << 20)

/* How a table or array came to exist; TOML's redefinition rules depend on it. */
enum {
    T_IMPLICIT = 1, /* made as a parent by a [a.b] header; a later [a] may still define it */
    T_EXPLICIT = 2, /* defined by its own [header] or [[header]] */
    T_DOTTED = 4,   /* made by a dotted key (a.b = 1): dotted keys may extend it, headers not */
    T_SEALED = 8,   /* an inline table (or inside one), complete once its '}' is read */
    A_TABLES = 16,  /* an array made by [[header]]s; every other array is static */
};

/* A value plus what only the parser needs. v comes first: the public pointers are node
 * pointers. */
typedef struct node {
    npe_toml_value v;
    unsigned flags;
    size_t cap;
    size_t *index;  /* TABLE with many keys: open-addressing hash of key -> entry, or NULL */
    size_t index_cap;
} node;

struct npe_toml_doc {
    node *root;
    char *filename;
};

typedef struct parser {
    const char *s;
    size_t n, pos;
    int line, col;
    const char *fname;
    npe_error *err;
} parser;

typedef struct keypart {
    char *s;
    size_t len;
    int line, col;
} keypart;

typedef struct keypath {
    keypart *v;
    size_t n, cap;
} keypath;

typedef struct sbuf {
    char *d;
    size_t n, cap;
} sbuf;

/* ---- Tree ---------------------------------------------------------------------------------- */

static void node_free(node *x)
{
    if (!x)
        return;
    switch (x->v.kind) {
    case NPE_TOML_STRING:
    case NPE_TOML_DATETIME:
        free(x->v.u.str.s);
        break;
    case NPE_TOML_ARRAY:
        for (size_t i = 0; i < x->v.u.arr.n; i++)
            node_free((node *)x->v.u.arr.items[i]);
        free(x->v.u.arr.items);
        break;
    case NPE_TOML_TABLE:
        for (size_t i = 0; i < x->v.u.tab.n; i++) {
            free(x->v.u.tab.keys[i]);
            node_free((node *)x->v.u.tab.vals[i]);
        }
        free(x->v.u.tab.keys);
        free(x->v.u.tab.key_line);
        free(x->v.u.tab.key_col);
        free(x->v.u.tab.vals);
        free(x->index);
        break;
    default:
        break;
    }
    free(x);
}

static node *node_new(npe_toml_kind kind, int line, int col)
{
    node *x = calloc(1, sizeof(*x));
    if (x) {
        x->v.kind = kind;
        x->v.line = line;
        x->v.col = col;
    }
    return x;
}

/* Tables past this many keys get a hash index, so a hostile file with a million keys costs
 * linear, not quadratic, time. */
#define INDEX_FROM 16
#define NO_ENTRY ((size_t)-1)

static size_t hash_key(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

static void index_insert(node *t, size_t entry)
{
    size_t mask = t->index_cap - 1, at = hash_key(t->v.u.tab.keys[entry]) & mask;
    while (t->index[at] != NO_ENTRY)
        at = (at + 1) & mask;
    t->index[at] = entry;
}

/* Keep the index at most half full; without memory for it, lookups fall back to a scan. */
static void index_update(node *t)
{
    size_t n = t->v.u.tab.n;
    if (n < INDEX_FROM)
        return;
    if (t->index && 2 * n <= t->index_cap) {
        index_insert(t, n - 1);
        return;
    }
    free(t->index);
    t->index = NULL;
    t->index_cap = 0;
    size_t cap = 64;
    while (cap < 4 * n)
        cap *= 2;
    size_t *ix = malloc(cap * sizeof(*ix));
    if (!ix)
        return;
    for (size_t i = 0; i < cap; i++)
        ix[i] = NO_ENTRY;
    t->index = ix;
    t->index_cap = cap;
    for (size_t i = 0; i < n; i++)
        index_insert(t, i);
}

static long find_key(const node *t, const char *key)
{
    if (t->index) {
        size_t mask = t->index_cap - 1;
        for (size_t at = hash_key(key) & mask; t->index[at] != NO_ENTRY; at = (at + 1) & mask)
            if (strcmp(t->v.u.tab.keys[t->index[at]], key) == 0)
                return (long)t->index[at];
        return -1;
    }
    for (size_t i = 0; i < t->v.u.tab.n; i++)
        if (strcmp(t->v.u.tab.keys[i], key) == 0)
            return (long)i;
    return -1;
}

/* Append key -> v to table t. Takes ownership of key and v, freeing them on failure. */
static int tab_add(node *t, char *key, int line, int col, node *v)
{
    if (t->v.u.tab.n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4;
        char **k = realloc(t->v.u.tab.keys, nc * sizeof(*k));
        if (k)
            t->v.u.tab.keys = k;
        int *kl = realloc(t->v.u.tab.key_line, nc * sizeof(*kl));
        if (kl)
            t->v.u.tab.key_line = kl;
        int *kc = realloc(t->v.u.tab.key_col, nc * sizeof(*kc));
        if (kc)
            t->v.u.tab.key_col = kc;
        npe_toml_value **vv = realloc(t->v.u.tab.vals, nc * sizeof(*vv));
        if (vv)
            t->v.u.tab.vals = vv;
        if (!k || !kl || !kc || !vv) {
            free(key);
            node_free(v);
            return NPE_ENOMEM;
        }
        t->cap = nc;
    }
    size_t i = t->v.u.tab.n++;
    t->v.u.tab.keys[i] = key;
    t->v.u.tab.key_line[i] = line;
    t->v.u.tab.key_col[i] = col;
    t->v.u.tab.vals[i] = &v->v;
    index_update(t);
    return 0;
}

/* Append v to array a, taking ownership of v. */
static int arr_add(node *a, node *v)
{
    if (a->v.u.arr.n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 4;
        npe_toml_value **it = realloc(a->v.u.arr.items, nc * sizeof(*it));
        if (!it) {
            node_free(v);
            return NPE_ENOMEM;
        }
        a->v.u.arr.items = it;
        a->cap = nc;
    }
    a->v.u.arr.items[a->v.u.arr.n++] = &v->v;
    return 0;
}

/* Mark an inline table and the tables its dotted keys made as complete. */
static void seal(node *t)
{
    t->flags |= T_SEALED;
    for (size_t i = 0; i < t->v.u.tab.n; i++) {
        node *c = (node *)t->v.u.tab.vals[i];
        if (c->v.kind == NPE_TOML_TABLE && !(c->flags & T_SEALED))
            seal(c);
    }
}

/* ---- Characters and errors ----------------------------------------------------------------- */

static int peek(const parser *p, size_t k)
{
    return p->pos + k < p->n ? (unsigned char)p->s[p->pos + k] : -1;
}

/* Columns count characters, not bytes: a UTF-8 continuation byte does not move the column. */
static void adv(parser *p)
{
    if (p->pos >= p->n)
        return;
    unsigned char c = (unsigned char)p->s[p->pos++];
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;
    }
}

static void adv_n(parser *p, size_t k)
{
    while (k--)
        adv(p);
}

static int is_ws(int c)
{
    return c == ' ' || c == '\t';
}

static int is_nl(const parser *p)
{
    return peek(p, 0) == '\n' || (peek(p, 0) == '\r' && peek(p, 1) == '\n');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

/* Ends a run of characters shown as one word in messages, and a number or keyword token. */
static int is_word_end(int c)
{
    return c < 0 || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ']' ||
           c == '}' || c == '#' || c == '=' || c == '[' || c == '{' || c == '"' || c == '\'';
}

static int is_control(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

/* Describe what sits at the current position, for the "found ..." half of a message. */
static const char *describe(const parser *p, char *buf, size_t cap)
{
    int c = peek(p, 0);
    if (c < 0)
        return "end of file";
    if (is_nl(p))
        return "end of line";
    if (c == '\r')
        return "a carriage return not followed by a newline";
    if (is_control(c)) {
        snprintf(buf, cap, "control character U+%04X", (unsigned)c);
        return buf;
    }
    if (c == '#')
        return "a comment";
    if (strchr("=[]{},.\"'", c)) {
        snprintf(buf, cap, "'%c'", c);
        return buf;
    }
    size_t e = p->pos;
    while (e < p->n && e - p->pos < 32 && !is_word_end((unsigned char)p->s[e]) &&
           !is_control((unsigned char)p->s[e]))
        e++;
    while (e > p->pos + 1 && e < p->n && ((unsigned char)p->s[e] & 0xC0) == 0x80)
        e--;
    int more = e < p->n && e - p->pos >= 32 && !is_word_end((unsigned char)p->s[e]);
    snprintf(buf, cap, "'%.*s%s'", (int)(e - p->pos), p->s + p->pos, more ? "..." : "");
    return buf;
}

static int fail_at(parser *p, int line, int col, int code, const char *fmt, ...) NPE_PRINTF(5, 6);
static int fail_at(parser *p, int line, int col, int code, const char *fmt, ...)
{
    char msg[NPE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return npe_error_set(p->err, code, "%s:%d:%d: %s", p->fname, line, col, msg);
}

/* "expected <what>, found <whatever is at the current position>" */
static int fail(parser *p, const char *expected)
{
    char buf[64];
    return fail_at(p, p->line, p->col, NPE_EFORMAT, "expected %s, found %s", expected,
                   describe(p, buf, sizeof(buf)));
}

static int oom(parser *p)
{
    return fail_at(p, p->line, p->col, NPE_ENOMEM, "expected memory for the document, found none "
                   "(out of memory)");
}

/* The whole text must be UTF-8 (TOML requires it); checking once up front lets every later
 * step treat bytes >= 0x80 as parts of valid characters. */
static int check_utf8(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    int line = 1, col = 1;
    for (size_t i = p->pos; i < p->n;) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) {
            if (c == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (p->n - i < len)
            goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += len;
        col++;
        continue;
    bad:
        return fail_at(p, line, col, NPE_EFORMAT, "expected UTF-8 text, found byte 0x%02X", c);
    }
    return 0;
}

static void skip_ws(parser *p)
{
    while (is_ws(peek(p, 0)))
        adv(p);
}

/* A '#' comment up to (not including) the newline. */
static int skip_comment(parser *p)
{
    if (peek(p, 0) != '#')
        return 0;
    adv(p);
    while (peek(p, 0) >= 0 && !is_nl(p)) {
        if (is_control(peek(p, 0)))
            return fail(p, "a comment without control characters");
        adv(p);
    }
    return 0;
}

static void skip_nl(parser *p)
{
    if (peek(p, 0) == '\r')
        adv(p);
    adv(p);
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static int skip_ws_nl(parser *p)
{
    for (;;) {
        skip_ws(p);
        int c = peek(p, 0);
        if (c == '#') {
            int rc = skip_comment(p);
            if (rc)
                return rc;
        } else if (is_nl(p)) {
            skip_nl(p);
        } else {
            return 0;
        }
    }
}

/* After a key/value pair or a header: optional comment, then a newline or the end. */
static int expect_eol(parser *p, const char *after)
{
    skip_ws(p);
    int rc = skip_comment(p);
    if (rc)
        return rc;
    if (peek(p, 0) < 0)
        return 0;
    if (is_nl(p)) {
        skip_nl(p);
        return 0;
    }
    char what[96];
    snprintf(what, sizeof(what), "end of line after %s", after);
    return fail(p, what);
}

/* ---- Strings ------------------------------------------------------------------------------- */

static int sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n <= n) {
        size_t nc = b->cap ? b->cap : 32;
        while (nc - b->n <= n)
            nc *= 2;
        char *d = realloc(b->d, nc);
        if (!d)
            return NPE_ENOMEM;
        b->d = d;
        b->cap = nc;
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = '\0';
    return 0;
}

static int sb_utf8(sbuf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return sb_put(b, u, n);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One escape sequence; the current position is the backslash. */
static int parse_escape(parser *p, sbuf *b)
{
    int line = p->line, col = p->col;
    int c = peek(p, 1);
    const char *simple = NULL;
    switch (c) {
    case 'b': simple = "\b"; break;
    case 't': simple = "\t"; break;
    case 'n': simple = "\n"; break;
    case 'f': simple = "\f"; break;
    case 'r': simple = "\r"; break;
    case '"': simple = "\""; break;
    case '\\': simple = "\\"; break;
    default: break;
    }
    if (simple) {
        adv_n(p, 2);
        return sb_put(b, simple, 1) ? oom(p) : 0;
    }
    if (c == 'u' || c == 'U') {
        int nd = c == 'u' ? 4 : 8;
        unsigned long cp = 0;
        for (int i = 0; i < nd; i++) {
            int h = hexval(peek(p, 2 + (size_t)i));
            if (h < 0) {
                int shown = 2;
                while (shown < nd + 2 && peek(p, (size_t)shown) > 0x20 &&
                       peek(p, (size_t)shown) < 0x7f)
                    shown++;
                return fail_at(p, line, col, NPE_EFORMAT,
                               "expected %d hex digits after '\\%c', found '%.*s'", nd, c, shown,
                               p->s + p->pos);
            }
            cp = cp << 4 | (unsigned long)h;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail_at(p, line, col, NPE_EFORMAT,
                           "expected a Unicode scalar value, found '%.*s'", nd + 2, p->s + p->pos);
        adv_n(p, 2 + (size_t)nd);
        return sb_utf8(b, cp) ? oom(p) : 0;
    }
    adv(p);
    return fail_at(p, line, col, NPE_EFORMAT,
                   "expected an escape (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX), found "
                   "'\\%.*s'",
                   c < 0 || is_control(c) ? 0 : 1, p->s + p->pos);
}

/* Copy one (possibly multi-byte) character of string content after checking it is allowed. */
static int string_char(parser *p, sbuf *b, const char *expected)
{
    int c = peek(p, 0);
    if (is_control(c))
        return fail(p, expected);
    size_t len = 1;
    while (p->pos + len < p->n && ((unsigned char)p->s[p->pos + len] & 0xC0) == 0x80)
        len++;
    if (sb_put(b, p->s + p->pos, len))
        return oom(p);
    adv_n(p, len);
    return 0;
}

/* In a multi-line string: a run of the quote character q at the current position. Three to
 * five end the string (the first one or two belong to it); six or more are an error. Returns
 * 1 when the string ended. */
static int ml_quotes(parser *p, sbuf *b, char q, int *rc)
{
    size_t k = 0;
    while (peek(p, k) == q)
        k++;
    *rc = 0;
    if (k < 3) {
        if (sb_put(b, p->s + p->pos, k))
            *rc = oom(p);
        adv_n(p, k);
        return 0;
    }
    if (k > 5) {
        adv_n(p, 5);
        *rc = fail_at(p, p->line, p->col, NPE_EFORMAT,
                      "expected at most five quotes closing a multi-line string, found %zu", k);
        return 1;
    }
    if (sb_put(b, p->s + p->pos, k - 3))
        *rc = oom(p);
    adv_n(p, k);
    return 1;
}

/* Any of the four string forms; the current position is the opening quote. */
static int parse_string(parser *p, sbuf *b, int allow_multiline)
{
    char q = (char)peek(p, 0);
    int basic = q == '"';
    int line = p->line, col = p->col;
    b->n = 0;
    if (sb_put(b, "", 0))
        return oom(p);
    int rc;
    if (peek(p, 1) == q && peek(p, 2) == q) {
        if (!allow_multiline)
            return fail(p, "a key (multi-line strings cannot be keys)");
        adv_n(p, 3);
        if (is_nl(p)) /* a newline right after the opening delimiter is trimmed */
            skip_nl(p);
        for (;;) {
            int c = peek(p, 0);
            if (c < 0)
                return fail_at(p, line, col, NPE_EFORMAT,
                               "expected %s closing the multi-line string, found end of file",
                               basic ? "'\"\"\"'" : "\"'''\"");
            if (c == q) {
                if (ml_quotes(p, b, q, &rc))
                    return rc;
                if (rc)
                    return rc;
            } else if (is_nl(p)) {
                skip_nl(p);
                if (sb_put(b, "\n", 1))
                    return oom(p);
            } else if (basic && c == '\\') {
                size_t k = 1;
                while (is_ws(peek(p, k)))
                    k++;
                if (peek(p, k) == '\n' || (peek(p, k) == '\r' && peek(p, k + 1) == '\n')) {
                    /* line-ending backslash: drop it and all whitespace up to the next text */
                    adv_n(p, k);
                    while (is_ws(peek(p, 0)) || is_nl(p))
                        is_nl(p) ? skip_nl(p) : adv(p);
                } else if ((rc = parse_escape(p, b))) {
                    return rc;
                }
            } else if ((rc = string_char(p, b, "string text without control characters"))) {
                return rc;
            }
        }
    }
    adv(p);
    for (;;) {
        int c = peek(p, 0);
        if (c == q) {
            adv(p);
            return 0;
        }
        if (c < 0 || is_nl(p)) {
            char what[48];
            snprintf(what, sizeof(what), "%s closing the string", basic ? "'\"'" : "\"'\"");
            return fail(p, what);
        }
        if (basic && c == '\\') {
            if ((rc = parse_escape(p, b)))
                return rc;
        } else if ((rc = string_char(p, b, "string text without control characters"))) {
            return rc;
        }
    }
}

/* ---- Keys ---------------------------------------------------------------------------------- */

static void keypath_free(keypath *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i].s);
    free(k->v);
    memset(k, 0, sizeof(*k));
}

/* A dotted key: parts separated by '.', whitespace allowed around the dots. */
static int parse_key(parser *p, keypath *k)
{
    sbuf b = {0};
    int rc = 0;
    for (;;) {
        skip_ws(p);
        int line = p->line, col = p->col, c = peek(p, 0);
        if (c == '"' || c == '\'') {
            if ((rc = parse_string(p, &b, 0)))
                goto out_free_buf;
            if (strlen(b.d) != b.n) {
                rc = fail_at(p, line, col, NPE_EFORMAT,
                             "expected a key without U+0000, found one containing it");
                goto out_free_buf;
            }
        } else if (is_bare(c)) {
            b.n = 0;
            while (is_bare(peek(p, 0))) {
                if (sb_put(&b, p->s + p->pos, 1)) {
                    rc = oom(p);
                    goto out_free_buf;
                }
                adv(p);
            }
        } else {
            rc = fail(p, "a key");
            goto out_free_buf;
        }
        if (k->n == k->cap) {
            size_t nc = k->cap ? k->cap * 2 : 4;
            keypart *v = realloc(k->v, nc * sizeof(*v));
            if (!v) {
                rc = oom(p);
                goto out_free_buf;
            }
            k->v = v;
            k->cap = nc;
        }
        k->v[k->n++] = (keypart){b.d, b.n, line, col};
        b = (sbuf){0};
        if (k->n > MAX_DEPTH) {
            rc = fail_at(p, line, col, NPE_ELIMIT,
                         "expected a key of at most %d parts, found more", MAX_DEPTH);
            goto out_free_buf;
        }
        skip_ws(p);
        if (peek(p, 0) != '.')
            return 0;
        adv(p);
    }
out_free_buf:
    free(b.d);
    return rc;
}

/* What an existing key holds, for redefinition messages. */
static const char *kind_article(const node *x)
{
    switch (x->v.kind) {
    case NPE_TOML_STRING: return "a string";
    case NPE_TOML_INT: return "an integer";
    case NPE_TOML_FLOAT: return "a float";
    case NPE_TOML_BOOL: return "a boolean";
    case NPE_TOML_DATETIME: return "a date-time";
    case NPE_TOML_ARRAY: return x->flags & A_TABLES ? "an array of tables" : "a static array";
    case NPE_TOML_TABLE:
        return x->flags & T_SEALED ? "an inline table"
               : x->flags & T_EXPLICIT ? "a [table]"
               : x->flags & T_DOTTED ? "a table of dotted keys"
               : "a table";
    }
    return "a value";
}

/* "expected <what>, found 'key' already defined at L:C as <kind>" */
static int fail_conflict(parser *p, const keypart *k, const node *t, long i, const char *expected)
{
    const node *x = (const node *)t->v.u.tab.vals[i];
    int shown = k->len > 60 ? 60 : (int)k->len;
    return fail_at(p, k->line, k->col, NPE_EFORMAT,
                   "expected %s, found '%.*s%s' already defined at %d:%d as %s", expected, shown,
                   k->s, k->len > 60 ? "..." : "", t->v.u.tab.key_line[i], t->v.u.tab.key_col[i],
                   kind_article(x));
}

/* ---- Values -------------------------------------------------------------------------------- */

static int parse_value(parser *p, int depth, node **out);
static int parse_keyval(parser *p, node *tab, int depth);

/* Digits of the given base with single underscores between digits; returns the end or 0 when
 * the run is malformed (empty, or an underscore not between two digits). */
static size_t digit_run(const char *t, size_t i, size_t n, int base)
{
    size_t start = i;
    int last_digit = 0;
    for (; i < n; i++) {
        int c = (unsigned char)t[i], v = hexval(c);
        if (c == '_') {
            if (!last_digit)
                return 0;
            last_digit = 0;
        } else if (v >= 0 && v < base && (base == 16 || is_digit(c))) {
            last_digit = 1;
        } else {
            break;
        }
    }
    return i > start && last_digit ? i : 0;
}

static int parse_float_text(parser *p, const char *t, size_t n, int line, int col, double *out)
{
    char *buf = malloc(n + 1);
    if (!buf)
        return oom(p);
    /* strtod follows the C locale's decimal point, which the host program may have changed */
    char dp = localeconv()->decimal_point[0];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] != '_')
            buf[m++] = t[i] == '.' ? dp : t[i];
    buf[m] = '\0';
    char *end;
    double v = strtod(buf, &end);
    int ok = end == buf + m;
    free(buf);
    if (!ok || isinf(v))
        return fail_at(p, line, col, NPE_EFORMAT, "expected a float within the range of a "
                       "double, found '%.*s'", (int)n, t);
    *out = v;
    return 0;
}

/* Integers and floats, from a token already cut at the next delimiter. */
static int parse_number(parser *p, const char *t, size_t n, int line, int col, node *v)
{
    int shown = n > 40 ? 40 : (int)n;
    size_t i = 0;
    int neg = 0;
    if (t[0] == '+' || t[0] == '-') {
        neg = t[0] == '-';
        i = 1;
    }
    if (n - i > 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
        int base = t[i + 1] == 'x' ? 16 : t[i + 1] == 'o' ? 8 : 2;
        if (i)
            return fail_at(p, line, col, NPE_EFORMAT, "expected no sign before a 0%c integer, "
                           "found '%.*s'", t[i + 1], shown, t);
        if (digit_run(t, 2, n, base) != n)
            return fail_at(p, line, col, NPE_EFORMAT, "expected base-%d digits after '0%c', "
                           "found '%.*s'", base, t[1], shown, t);
        uint64_t u = 0;
        for (size_t k = 2; k < n; k++) {
            if (t[k] == '_')
                continue;
            uint64_t d = (uint64_t)hexval((unsigned char)t[k]);
            if (u > ((uint64_t)INT64_MAX - d) / (uint64_t)base)
                return fail_at(p, line, col, NPE_EFORMAT, "expected an integer at most "
                               "9223372036854775807, found '%.*s'", shown, t);
            u = u * (uint64_t)base + d;
        }
        v->v.kind = NPE_TOML_INT;
        v->v.u.i = (int64_t)u;
        return 0;
    }
    size_t j = digit_run(t, i, n, 10);
    if (!j)
        goto bad_float;
    if (t[i] == '0' && j - i > 1)
        return fail_at(p, line, col, NPE_EFORMAT, "expected a number without leading zeros, "
                       "found '%.*s'", shown, t);
    if (j == n) {
        uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t k = i; k < n; k++) {
            if (t[k] == '_')
                continue;
            uint64_t d = (uint64_t)(t[k] - '0');
            if (u > (lim - d) / 10)
                return fail_at(p, line, col, NPE_EFORMAT, "expected an integer from "
                               "-9223372036854775808 to 9223372036854775807, found '%.*s'",
                               shown, t);
            u = u * 10 + d;
        }
        v->v.kind = NPE_TOML_INT;
        v->v.u.i = neg ? (int64_t)(0 - u) : (int64_t)u;
        return 0;
    }
    int frac = 0, ex = 0;
    if (t[j] == '.') {
        j = digit_run(t, j + 1, n, 10);
        frac = j != 0;
        if (!j)
            goto bad_float;
    }
    if (j < n && (t[j] == 'e' || t[j] == 'E')) {
        j++;
        if (j < n && (t[j] == '+' || t[j] == '-'))
            j++;
        j = digit_run(t, j, n, 10);
        ex = j != 0;
        if (!j)
            goto bad_float;
    }
    if (j != n || (!frac && !ex))
        goto bad_float;
    v->v.kind = NPE_TOML_FLOAT;
    return parse_float_text(p, t, n, line, col, &v->v.u.f);
bad_float:
    return fail_at(p, line, col, NPE_EFORMAT, "expected a number (digits, '.', exponent, single "
                   "'_' between digits), found '%.*s'", shown, t);
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* n digits at offset k from the current position, or -1. */
static int fixed_digits(const parser *p, size_t k, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        int c = peek(p, k + (size_t)i);
        if (!is_digit(c))
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* HH:MM:SS[.frac] at offset k; returns its length or 0. */
static size_t scan_time(const parser *p, size_t k)
{
    int h = fixed_digits(p, k, 2), m = fixed_digits(p, k + 3, 2), s = fixed_digits(p, k + 6, 2);
    if (h < 0 || m < 0 || s < 0 || peek(p, k + 2) != ':' || peek(p, k + 5) != ':' || h > 23 ||
        m > 59 || s > 60)
        return 0;
    size_t len = 8;
    if (peek(p, k + len) == '.') {
        size_t f = 0;
        while (is_digit(peek(p, k + len + 1 + f)))
            f++;
        if (!f)
            return 0;
        len += 1 + f;
    }
    return len;
}

/* Dates and times are validated, then kept as written. */
static int parse_datetime(parser *p, node *v)
{
    size_t len;
    if (peek(p, 2) == ':') {
        len = scan_time(p, 0);
        if (!len)
            return fail(p, "a time HH:MM:SS[.fraction]");
    } else {
        int y = fixed_digits(p, 0, 4), m = fixed_digits(p, 5, 2), d = fixed_digits(p, 8, 2);
        if (y < 0 || m < 1 || m > 12 || d < 1 || peek(p, 7) != '-' || d > days_in_month(y, m))
            return fail(p, "a date YYYY-MM-DD");
        len = 10;
        int sep = peek(p, 10);
        if (sep == 'T' || sep == 't' ||
            (sep == ' ' && is_digit(peek(p, 11)) && is_digit(peek(p, 12)) && peek(p, 13) == ':')) {
            size_t tl = scan_time(p, 11);
            if (!tl) {
                adv_n(p, 11);
                return fail(p, "a time HH:MM:SS[.fraction] after the date");
            }
            len = 11 + tl;
            int z = peek(p, len);
            if (z == 'Z' || z == 'z') {
                len++;
            } else if (z == '+' || z == '-') {
                int oh = fixed_digits(p, len + 1, 2), om = fixed_digits(p, len + 4, 2);
                if (oh < 0 || om < 0 || peek(p, len + 3) != ':' || oh > 23 || om > 59) {
                    adv_n(p, len);
                    return fail(p, "a time offset Z or +HH:MM");
                }
                len += 6;
            }
        }
    }
    v->v.kind = NPE_TOML_DATETIME;
    v->v.u.str.s = malloc(len + 1);
    if (!v->v.u.str.s)
        return oom(p);
    memcpy(v->v.u.str.s, p->s + p->pos, len);
    v->v.u.str.s[len] = '\0';
    v->v.u.str.len = len;
    adv_n(p, len);
    return 0;
}

static int parse_array(parser *p, int depth, node *a)
{
    a->v.kind = NPE_TOML_ARRAY;
    adv(p);
    for (;;) {
        int rc = skip_ws_nl(p);
        if (rc)
            return rc;
        if (peek(p, 0) == ']') {
            adv(p);
            return 0;
        }
        node *item;
        if ((rc = parse_value(p, depth + 1, &item)))
            return rc;
        if (arr_add(a, item))
            return oom(p);
        if ((rc = skip_ws_nl(p)))
            return rc;
        if (peek(p, 0) == ',')
            adv(p);
        else if (peek(p, 0) != ']')
            return fail(p, "',' or ']' after an array element");
    }
}

static int parse_inline_table(parser *p, int depth, node *t)
{
    t->v.kind = NPE_TOML_TABLE;
    t->flags = T_EXPLICIT;
    adv(p);
    skip_ws(p);
    if (peek(p, 0) == '}') {
        adv(p);
        seal(t);
        return 0;
    }
    for (;;) {
        int rc = parse_keyval(p, t, depth);
        if (rc)
            return rc;
        skip_ws(p);
        if (peek(p, 0) == '}') {
            adv(p);
            seal(t);
            return 0;
        }
        if (peek(p, 0) != ',')
            return fail(p, "',' or '}' in an inline table (which must fit on one line)");
        adv(p);
        skip_ws(p);
        if (peek(p, 0) == '}')
            return fail(p, "a key after ',' (TOML 1.0 inline tables take no trailing comma)");
    }
}

static int parse_value(parser *p, int depth, node **out)
{
    *out = NULL;
    if (depth > MAX_DEPTH)
        return fail_at(p, p->line, p->col, NPE_ELIMIT,
                       "expected values nested at most %d deep, found deeper nesting", MAX_DEPTH);
    node *v = node_new(NPE_TOML_STRING, p->line, p->col);
    if (!v)
        return oom(p);
    int rc, c = peek(p, 0);
    if (c == '"' || c == '\'') {
        sbuf b = {0};
        rc = parse_string(p, &b, 1);
        if (!rc && !b.d && sb_put(&b, "", 0))
            rc = oom(p);
        v->v.u.str.s = b.d;
        v->v.u.str.len = b.n;
    } else if (c == '[') {
        rc = parse_array(p, depth, v);
    } else if (c == '{') {
        rc = parse_inline_table(p, depth, v);
    } else if (is_digit(c) && ((is_digit(peek(p, 1)) && peek(p, 2) == ':') ||
                               (fixed_digits(p, 0, 4) >= 0 && peek(p, 4) == '-'))) {
        rc = parse_datetime(p, v);
    } else if (is_digit(c) || c == '+' || c == '-' || (c >= 'a' && c <= 'z')) {
        size_t e = p->pos;
        while (e < p->n && !is_word_end((unsigned char)p->s[e]))
            e++;
        const char *t = p->s + p->pos;
        size_t n = e - p->pos;
        size_t body = n && (t[0] == '+' || t[0] == '-') ? 1 : 0;
        if ((n == 4 && memcmp(t, "true", 4) == 0) || (n == 5 && memcmp(t, "false", 5) == 0)) {
            v->v.kind = NPE_TOML_BOOL;
            v->v.u.b = n == 4;
            rc = 0;
        } else if (n - body == 3 && memcmp(t + body, "inf", 3) == 0) {
            v->v.kind = NPE_TOML_FLOAT;
            v->v.u.f = t[0] == '-' ? -INFINITY : INFINITY;
            rc = 0;
        } else if (n - body == 3 && memcmp(t + body, "nan", 3) == 0) {
            v->v.kind = NPE_TOML_FLOAT;
            v->v.u.f = t[0] == '-' ? -NAN : NAN;
            rc = 0;
        } else if (n > body && is_digit(t[body])) {
            rc = parse_number(p, t, n, p->line, p->col, v);
        } else {
            rc = fail(p, "a value (string, number, boolean, date, array or inline table)");
        }
        if (!rc)
            adv_n(p, n);
    } else {
        rc = fail(p, "a value (string, number, boolean, date, array or inline table)");
    }
    if (rc) {
        node_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* key = value into table tab (at depth `depth`); dotted keys make or extend sub-tables. */
static int parse_keyval(parser *p, node *tab, int depth)
{
    keypath k = {0};
    node *v = NULL;
    int rc = parse_key(p, &k);
    if (rc)
        goto out_free_key;
    skip_ws(p);
    if (peek(p, 0) != '=') {
        char what[96];
        const keypart *last = &k.v[k.n - 1];
        snprintf(what, sizeof(what), "'=' after key '%.*s%s'", last->len > 40 ? 40 : (int)last->len,
                 last->s, last->len > 40 ? "..." : "");
        rc = fail(p, what);
        goto out_free_key;
    }
    adv(p);
    skip_ws(p);
    node *t = tab;
    for (size_t i = 0; i + 1 < k.n; i++) {
        long at = find_key(t, k.v[i].s);
        if (at < 0) {
            if (depth + (int)i + 1 > MAX_DEPTH) {
                rc = fail_at(p, k.v[i].line, k.v[i].col, NPE_ELIMIT,
                             "expected tables nested at most %d deep, found deeper nesting",
                             MAX_DEPTH);
                goto out_free_key;
            }
            node *c = node_new(NPE_TOML_TABLE, k.v[i].line, k.v[i].col);
            if (!c) {
                rc = oom(p);
                goto out_free_key;
            }
            c->flags = T_DOTTED;
            if (tab_add(t, k.v[i].s, k.v[i].line, k.v[i].col, c)) {
                k.v[i].s = NULL;
                rc = oom(p);
                goto out_free_key;
            }
            k.v[i].s = NULL;
            t = c;
            continue;
        }
        node *c = (node *)t->v.u.tab.vals[at];
        if (c->v.kind != NPE_TOML_TABLE || (c->flags & (T_EXPLICIT | T_SEALED))) {
            rc = fail_conflict(p, &k.v[i], t, at, "a table that dotted keys may extend");
            goto out_free_key;
        }
        /* a parent made by a header, now given keys by dotted keys: no header may define it */
        c->flags |= T_DOTTED;
        t = c;
    }
    keypart *last = &k.v[k.n - 1];
    long at = find_key(t, last->s);
    if (at >= 0) {
        rc = fail_conflict(p, last, t, at, "a key not defined before");
        goto out_free_key;
    }
    if ((rc = parse_value(p, depth + (int)k.n, &v)))
        goto out_free_key;
    rc = tab_add(t, last->s, last->line, last->col, v);
    last->s = NULL;
    if (rc)
        rc = oom(p);
out_free_key:
    keypath_free(&k);
    return rc;
}

/* [a.b.c] or [[a.b.c]]: find or make the table that the following keys go into. */
static int parse_header(parser *p, node *root, node **cur, int *cur_depth)
{
    int line = p->line, col = p->col;
    int aot = peek(p, 1) == '[';
    adv_n(p, aot ? 2 : 1);
    keypath k = {0};
    int rc = parse_key(p, &k);
    if (rc)
        goto out_free_key;
    skip_ws(p);
    if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
        rc = fail(p, aot ? "']]' closing the array-of-tables header"
                         : "']' closing the table header");
        goto out_free_key;
    }
    adv_n(p, aot ? 2 : 1);

    node *t = root;
    int d = 0;
    for (size_t i = 0; i + 1 < k.n; i++) {
        long at = find_key(t, k.v[i].s);
        if (at < 0) {
            node *c = node_new(NPE_TOML_TABLE, line, col);
            if (!c) {
                rc = oom(p);
                goto out_free_key;
            }
            c->flags = T_IMPLICIT;
            rc = tab_add(t, k.v[i].s, k.v[i].line, k.v[i].col, c);
            k.v[i].s = NULL;
            if (rc) {
                rc = oom(p);
                goto out_free_key;
            }
            t = c;
            d++;
            continue;
        }
        node *c = (node *)t->v.u.tab.vals[at];
        if (c->v.kind == NPE_TOML_TABLE && !(c->flags & T_SEALED)) {
            t = c;
            d++;
        } else if (c->v.kind == NPE_TOML_ARRAY && (c->flags & A_TABLES)) {
            t = (node *)c->v.u.arr.items[c->v.u.arr.n - 1];
            d += 2;
        } else {
            rc = fail_conflict(p, &k.v[i], t, at, "a table");
            goto out_free_key;
        }
    }
    if (d + (aot ? 2 : 1) > MAX_DEPTH) {
        rc = fail_at(p, line, col, NPE_ELIMIT,
                     "expected tables nested at most %d deep, found deeper nesting", MAX_DEPTH);
        goto out_free_key;
    }
    keypart *last = &k.v[k.n - 1];
    long at = find_key(t, last->s);
    node *c = at >= 0 ? (node *)t->v.u.tab.vals[at] : NULL;
    if (!aot) {
        if (c && c->v.kind == NPE_TOML_TABLE && c->flags == T_IMPLICIT) {
            c->flags = T_EXPLICIT;
            c->v.line = line;
            c->v.col = col;
        } else if (c) {
            rc = fail_conflict(p, last, t, at, "a table not defined before");
            goto out_free_key;
        } else {
            if (!(c = node_new(NPE_TOML_TABLE, line, col))) {
                rc = oom(p);
                goto out_free_key;
            }
            c->flags = T_EXPLICIT;
            rc = tab_add(t, last->s, last->line, last->col, c);
            last->s = NULL;
            if (rc) {
                rc = oom(p);
                goto out_free_key;
            }
        }
        *cur = c;
        *cur_depth = d + 1;
    } else {
        if (c && !(c->v.kind == NPE_TOML_ARRAY && (c->flags & A_TABLES))) {
            rc = fail_conflict(p, last, t, at, "an array of tables");
            goto out_free_key;
        }
        if (!c) {
            if (!(c = node_new(NPE_TOML_ARRAY, line, col))) {
                rc = oom(p);
                goto out_free_key;
            }
            c->flags = A_TABLES;
            rc = tab_add(t, last->s, last->line, last->col, c);
            last->s = NULL;
            if (rc) {
                rc = oom(p);
                goto out_free_key;
            }
        }
        node *e = node_new(NPE_TOML_TABLE, line, col);
        if (!e || arr_add(c, e)) {
            rc = oom(p);
            goto out_free_key;
        }
        e->flags = T_EXPLICIT;
        *cur = e;
        *cur_depth = d + 2;
    }
    rc = expect_eol(p, aot ? "an array-of-tables header" : "a table header");
out_free_key:
    keypath_free(&k);
    return rc;
}

static int parse_document(parser *p, node *root)
{
    node *cur = root;
    int depth = 0, rc;
    for (;;) {
        skip_ws(p);
        int c = peek(p, 0);
        if (c < 0)
            return 0;
        if (c == '#') {
            if ((rc = skip_comment(p)))
                return rc;
        } else if (is_nl(p)) {
            skip_nl(p);
        } else if (c == '[') {
            if ((rc = parse_header(p, root, &cur, &depth)))
                return rc;
        } else if (is_bare(c) || c == '"' || c == '\'') {
            if ((rc = parse_keyval(p, cur, depth)) || (rc = expect_eol(p, "the value")))
                return rc;
        } else {
            return fail(p, "a key, a [table] header or a comment");
        }
    }
}

/* ---- API ----------------------------------------------------------------------------------- */

int npe_toml_parse(const char *text, size_t len, const char *filename, npe_toml_doc **out,
                   npe_error *err)
{
    *out = NULL;
    if (!filename)
        filename = "<toml>";
    if (!text && len)
        return npe_error_set(err, NPE_EINVAL, "%s: no text given", filename);
    npe_toml_doc *doc = calloc(1, sizeof(*doc));
    if (!doc)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", filename);
    int rc = NPE_ENOMEM;
    doc->filename = malloc(strlen(filename) + 1);
    doc->root = node_new(NPE_TOML_TABLE, 1, 1);
    if (!doc->filename || !doc->root) {
        npe_error_set(err, rc, "%s: out of memory", filename);
        goto out_free_doc;
    }
    strcpy(doc->filename, filename);
    doc->root->flags = T_EXPLICIT;
    parser p = {text ? text : "", len, 0, 1, 1, doc->filename, err};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) /* a byte-order mark some editors add */
        p.pos = 3;
    if ((rc = check_utf8(&p)) || (rc = parse_document(&p, doc->root)))
        goto out_free_doc;
    *out = doc;
    return 0;
out_free_doc:
    npe_toml_free(doc);
    return rc;
}

int npe_toml_load(const char *path, npe_toml_doc **out, npe_error *err)
{
    char *text;
    size_t len;
    *out = NULL;
    int rc = npe_read_file(path, MAX_FILE_BYTES, &text, &len, err);
    if (rc)
        return rc;
    rc = npe_toml_parse(text, len, path, out, err);
    free(text);
    return rc;
}

void npe_toml_free(npe_toml_doc *doc)
{
    if (!doc)
        return;
    node_free(doc->root);
    free(doc->filename);
    free(doc);
}

const npe_toml_value *npe_toml_root(const npe_toml_doc *doc)
{
    return doc ? &doc->root->v : NULL;
}

const char *npe_toml_filename(const npe_toml_doc *doc)
{
    return doc ? doc->filename : NULL;
}

const npe_toml_value *npe_toml_get(const npe_toml_value *table, const char *key)
{
    if (!table || !key || table->kind != NPE_TOML_TABLE)
        return NULL;
    long i = find_key((const node *)table, key); /* every value is the head of a node */
    return i < 0 ? NULL : table->u.tab.vals[i];
}

const char *npe_toml_kind_name(npe_toml_kind k)
{
    switch (k) {
    case NPE_TOML_STRING: return "string";
    case NPE_TOML_INT: return "integer";
    case NPE_TOML_FLOAT: return "float";
    case NPE_TOML_BOOL: return "boolean";
    case NPE_TOML_DATETIME: return "datetime";
    case NPE_TOML_ARRAY: return "array";
    case NPE_TOML_TABLE: return "table";
    }
    return "?";
}
