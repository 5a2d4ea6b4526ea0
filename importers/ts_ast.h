/* Private to the TorchScript importer: tokens, syntax tree, lexer and parser of the Python-like
 * code that torch.jit.save writes under code/ (ts_lexer.c, ts_parser.c, used by ts_import.c). */
#ifndef NPE_IMPORTERS_TS_AST_H
#define NPE_IMPORTERS_TS_AST_H

#include <stddef.h>
#include <stdint.h>

#include "../formats/error.h"

/* Limits: hostile code must not exhaust the stack or memory. */
#define NPE_TS_MAX_DEPTH 200        /* nesting of expressions and brackets */
#define NPE_TS_MAX_INDENT 100       /* indentation levels */
#define NPE_TS_MAX_TOKENS (1 << 24) /* tokens per file */
#define NPE_TS_MAX_ITEMS 65536      /* items of one list, tuple or call */

/* A bump allocator: everything of one parsed file lives in it and is freed at once. */
typedef struct npe_ts_arena {
    struct npe_ts_block *head;
} npe_ts_arena;

void *npe_ts_alloc(npe_ts_arena *a, size_t n); /* zeroed; NULL when out of memory */
char *npe_ts_strndup(npe_ts_arena *a, const char *s, size_t n);
void npe_ts_arena_free(npe_ts_arena *a);

/* Where a token or tree node is in the file. */
typedef struct npe_ts_loc {
    uint32_t off, len; /* bytes */
    uint32_t line, col; /* 1-based */
} npe_ts_loc;

/* ---- Lexer ---------------------------------------------------------------------------------- */
typedef enum npe_ts_tok_kind {
    NPE_TK_EOF = 0,
    NPE_TK_NEWLINE,
    NPE_TK_INDENT,
    NPE_TK_DEDENT,
    NPE_TK_NAME,  /* identifiers and keywords */
    NPE_TK_INT,
    NPE_TK_FLOAT,
    NPE_TK_STR,   /* decoded text in sval (may hold NULs: slen) */
    NPE_TK_OP,    /* punctuation and operators; the text is the source span */
} npe_ts_tok_kind;

typedef struct npe_ts_token {
    npe_ts_tok_kind kind;
    npe_ts_loc loc;
    int64_t ival;
    double fval;
    const char *sval; /* NAME: the name; STR: decoded; OP: the operator text (NUL-terminated) */
    size_t slen;
} npe_ts_token;

typedef struct npe_ts_tokens {
    npe_ts_token *v;
    size_t n;
} npe_ts_tokens;

/* Tokenise text (Python's rules for what traced code uses: indentation, implicit line joining
 * inside brackets, comments, int/float/string literals). Strings land in arena; the token array
 * is malloc'd (free toks->v). Errors: "<name>:<line>:<col>: ...". */
int npe_ts_lex(const char *text, size_t len, const char *name, npe_ts_arena *arena,
               npe_ts_tokens *toks, npe_error *err);

/* ---- Syntax tree ------------------------------------------------------------------------------ */
typedef enum npe_ts_expr_kind {
    NPE_TS_E_NAME = 0,
    NPE_TS_E_INT,
    NPE_TS_E_FLOAT,
    NPE_TS_E_STR,
    NPE_TS_E_BOOL,
    NPE_TS_E_NONE,
    NPE_TS_E_ATTR,      /* a.name */
    NPE_TS_E_CALL,      /* a(args, kw=...) */
    NPE_TS_E_LIST,      /* [items] */
    NPE_TS_E_TUPLE,     /* (items) or a, b */
    NPE_TS_E_SUBSCRIPT, /* a[b] (b is a TUPLE for a[x, y]) */
    NPE_TS_E_UNARY,     /* op a: not, -, +, ~ */
    NPE_TS_E_BINARY,    /* a op b: arithmetic, comparisons, and/or */
    NPE_TS_E_OTHER,     /* parsed but never supported (dict, conditional expression, lambda) */
} npe_ts_expr_kind;

typedef struct npe_ts_expr npe_ts_expr;
struct npe_ts_expr {
    npe_ts_expr_kind kind;
    npe_ts_loc loc;          /* the whole expression (a negative literal includes its '-') */
    const char *name;        /* NAME, ATTR: the name; UNARY/BINARY: the operator; OTHER: what */
    int64_t ival;            /* INT, BOOL */
    double fval;             /* FLOAT */
    const char *sval;        /* STR */
    size_t slen;
    npe_ts_expr *a, *b;      /* ATTR/CALL/SUBSCRIPT: the object (a), index (b); UNARY a; BINARY a, b */
    npe_ts_expr **items;     /* LIST, TUPLE items; CALL arguments */
    const char **kwnames;    /* CALL: keyword of each argument, NULL for positional */
    int n_items;
};

typedef enum npe_ts_stmt_kind {
    NPE_TS_S_ASSIGN = 0,  /* names = value (one target), or a, b, = value (unpack) */
    NPE_TS_S_RETURN,
    NPE_TS_S_EXPR,
    NPE_TS_S_PASS,
    NPE_TS_S_UNSUPPORTED, /* control flow and other statements of scripted code */
} npe_ts_stmt_kind;

typedef struct npe_ts_stmt {
    npe_ts_stmt_kind kind;
    npe_ts_loc loc;
    const char **targets;     /* ASSIGN */
    npe_ts_loc *target_locs;
    int n_targets;
    int unpack;               /* ASSIGN: the targets were a tuple (a, b, = ...) */
    npe_ts_expr *value;       /* ASSIGN, RETURN (NULL: bare return), EXPR */
    const char *what;         /* UNSUPPORTED: "'if' statement", "augmented assignment", ... */
} npe_ts_stmt;

typedef struct npe_ts_param {
    const char *name;
    npe_ts_loc loc;
    npe_ts_expr *type;        /* annotation or NULL */
    npe_ts_expr *def;         /* default value or NULL */
} npe_ts_param;

typedef struct npe_ts_method {
    const char *name;
    npe_ts_loc loc;
    npe_ts_param *params;
    int n_params;
    npe_ts_expr *ret_type;
    npe_ts_stmt **body;
    int n_body;
    /* A method whose body failed to parse keeps the error here; it is reported only when the
     * method is called (scripted helpers that traced code never calls must not stop an import). */
    int err_code;
    const char *err_msg;
} npe_ts_method;

typedef struct npe_ts_class {
    const char *name;
    npe_ts_loc loc;
    npe_ts_method *methods;
    int n_methods;
    /* __parameters__ = ["weight", "bias", ] and __buffers__ = [...] of the class body: which
     * tensor attributes are parameters and which are buffers */
    const char **param_names;
    int n_param_names;
    const char **buffer_names;
    int n_buffer_names;
} npe_ts_class;

typedef struct npe_ts_module {
    const char *name;         /* file name used in messages */
    const char *text;         /* not owned */
    size_t len;
    npe_ts_class *classes;
    int n_classes;
    npe_ts_method *functions; /* module-level def */
    int n_functions;
    npe_ts_arena arena;
} npe_ts_module;

/* Parse one code record. text must outlive the module (spans point into it). */
int npe_ts_parse(const char *text, size_t len, const char *name, npe_ts_module **out,
                 npe_error *err);
void npe_ts_module_free(npe_ts_module *m); /* NULL accepted */

/* Parse one expression (the defaults of the importer's op table), allocated in arena. */
int npe_ts_parse_expr(const char *text, size_t len, const char *name, npe_ts_arena *arena,
                      npe_ts_expr **out, npe_error *err);

const npe_ts_class *npe_ts_find_class(const npe_ts_module *m, const char *name);
const npe_ts_method *npe_ts_find_method(const npe_ts_class *c, const char *name);

/* Dotted name of an expression made of NAME and ATTR nodes ("torch.nn.functional.relu") into
 * buf; NULL if it is anything else or does not fit. */
const char *npe_ts_dotted(const npe_ts_expr *e, char *buf, size_t cap);

#endif
