/* The TorchScript importer as engine/ sees it: load a traced TorchScript archive
 * (torch.jit.trace(...).save(), PyTorch 1.x and 2.x) into the graph IR of engine/ir.h. */
#ifndef NPE_IMPORTERS_TORCHSCRIPT_H
#define NPE_IMPORTERS_TORCHSCRIPT_H

#include <stddef.h>

#include "../engine/ir.h"
#include "../formats/error.h"

typedef struct npe_ts_options {
    /* Method of the root module to import as the graph (NULL: "forward"), e.g. a dummy_forward
     * exported next to forward without post-processing. */
    const char *forward_name;
    /* When n_cut_outputs > 0: the graph's outputs become the tensors with these names (module
     * paths such as "model.24.m.0"), and what only fed the old outputs is dropped. */
    const char *const *cut_outputs;
    int n_cut_outputs;
} npe_ts_options;

/* Import the archive at path. Parameters and buffers are copied into the graph as float32 (so
 * the archive may be closed); the code records the graph was built from are kept in
 * g->sources. opt may be NULL. On failure *out is NULL and err names the file, the code line and
 * the op or construct at fault. */
int npe_ts_import(const char *path, const npe_ts_options *opt, npe_graph **out, npe_error *err);

/* Same from an archive in memory (fuzzing, embedded models); name is used in messages. */
int npe_ts_import_mem(const void *data, size_t size, const char *name, const npe_ts_options *opt,
                      npe_graph **out, npe_error *err);

#endif
