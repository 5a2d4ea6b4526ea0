/* Fuzz target for the TorchScript code lexer and parser: parse the bytes as a code record, walk
 * what came out (every span must lie inside the input), parse them as one expression too. */
#include <stdint.h>
#include <stdlib.h>

#include "importers/ts_ast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_loc(npe_ts_loc loc, size_t size)
{
    if ((size_t)loc.off + loc.len > size)
        abort();
}

static void walk(const npe_ts_expr *e, size_t size, int depth)
{
    if (!e || depth > 2 * NPE_TS_MAX_DEPTH)
        return;
    check_loc(e->loc, size);
    walk(e->a, size, depth + 1);
    walk(e->b, size, depth + 1);
    for (int i = 0; i < e->n_items; i++)
        walk(e->items[i], size, depth + 1);
}

static void walk_method(const npe_ts_method *m, size_t size)
{
    for (int i = 0; i < m->n_params; i++) {
        walk(m->params[i].type, size, 0);
        walk(m->params[i].def, size, 0);
    }
    walk(m->ret_type, size, 0);
    for (int i = 0; i < m->n_body; i++) {
        check_loc(m->body[i]->loc, size);
        walk(m->body[i]->value, size, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_ts_module *m = NULL;
    npe_error err = {0};
    if (npe_ts_parse((const char *)data, size, "fuzz.py", &m, &err) == 0) {
        for (int c = 0; c < m->n_classes; c++)
            for (int k = 0; k < m->classes[c].n_methods; k++)
                walk_method(&m->classes[c].methods[k], size);
        for (int k = 0; k < m->n_functions; k++)
            walk_method(&m->functions[k], size);
        npe_ts_module_free(m);
    }
    npe_ts_arena arena = {0};
    npe_ts_expr *e = NULL;
    if (npe_ts_parse_expr((const char *)data, size, "fuzz", &arena, &e, &err) == 0)
        walk(e, size, 0);
    npe_ts_arena_free(&arena);
    return 0;
}
