/* TOML 1.0 reader for configuration files: tables, arrays of tables, inline tables, dotted keys,
 * basic/literal/multi-line strings, integers (dec/hex/oct/bin, underscores), floats (inf, nan),
 * booleans, arrays, comments; dates are kept as their text. Every value remembers its line and
 * column, and errors read "cfg.toml:12:5: expected '=' after key 'sparsity'". */
#ifndef NPE_FORMATS_TOML_H
#define NPE_FORMATS_TOML_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum npe_toml_kind {
    NPE_TOML_STRING = 0,
    NPE_TOML_INT,
    NPE_TOML_FLOAT,
    NPE_TOML_BOOL,
    NPE_TOML_DATETIME, /* offset/local date-time, date or time: kept as text in str */
    NPE_TOML_ARRAY,
    NPE_TOML_TABLE,
} npe_toml_kind;

typedef struct npe_toml_value npe_toml_value;
struct npe_toml_value {
    npe_toml_kind kind;
    int line, col; /* 1-based position of the value (of the header or first key for tables) */
    union {
        struct {
            char *s; /* NUL-terminated UTF-8 */
            size_t len;
        } str;       /* STRING, DATETIME */
        int64_t i;   /* INT */
        double f;    /* FLOAT */
        int b;       /* BOOL */
        struct {
            npe_toml_value **items;
            size_t n;
        } arr;       /* ARRAY (arrays of tables are arrays of TABLE values) */
        struct {
            char **keys;
            int *key_line, *key_col; /* where each key was written */
            npe_toml_value **vals;
            size_t n;
        } tab;       /* TABLE, keys in document order */
    } u;
};

typedef struct npe_toml_doc npe_toml_doc;

/* Parse text[0..len). filename is used in messages. */
int npe_toml_parse(const char *text, size_t len, const char *filename, npe_toml_doc **out,
                   npe_error *err);
int npe_toml_load(const char *path, npe_toml_doc **out, npe_error *err);
void npe_toml_free(npe_toml_doc *doc);

const npe_toml_value *npe_toml_root(const npe_toml_doc *doc); /* a TABLE */
const char *npe_toml_filename(const npe_toml_doc *doc);
/* Value of key in a TABLE, or NULL (also NULL when table is not a TABLE). */
const npe_toml_value *npe_toml_get(const npe_toml_value *table, const char *key);
/* "string", "integer", "float", "boolean", "datetime", "array", "table". */
const char *npe_toml_kind_name(npe_toml_kind k);

#endif
