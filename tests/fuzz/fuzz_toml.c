/* libFuzzer target for the TOML reader: parse arbitrary text, walk every value checking the
 * tree's invariants, free everything. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const npe_toml_value *v, int depth)
{
    if (depth > 130 || v->line < 1 || v->col < 1)
        abort();
    switch (v->kind) {
    case NPE_TOML_STRING:
    case NPE_TOML_DATETIME:
        if (!v->u.str.s || v->u.str.s[v->u.str.len] != '\0')
            abort();
        break;
    case NPE_TOML_INT:
    case NPE_TOML_FLOAT:
    case NPE_TOML_BOOL:
        break;
    case NPE_TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            walk(v->u.arr.items[i], depth + 1);
        break;
    case NPE_TOML_TABLE:
        for (size_t i = 0; i < v->u.tab.n; i++) {
            /* keys are unique, so a lookup finds exactly this entry */
            if (npe_toml_get(v, v->u.tab.keys[i]) != v->u.tab.vals[i] || v->u.tab.key_line[i] < 1 ||
                v->u.tab.key_col[i] < 1)
                abort();
            walk(v->u.tab.vals[i], depth + 1);
        }
        break;
    default:
        abort();
    }
    if (strlen(npe_toml_kind_name(v->kind)) == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_toml_doc *doc;
    npe_error err = {0};
    if (npe_toml_parse((const char *)data, size, "fuzz.toml", &doc, &err) == 0) {
        walk(npe_toml_root(doc), 0);
        npe_toml_free(doc);
    } else if (doc || strncmp(err.msg, "fuzz.toml", 9) != 0) {
        abort();
    }
    return 0;
}
