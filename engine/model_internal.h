/* The library object behind the public npe_model handle (engine/model.c, engine/prune_api.c). */
#ifndef NPE_ENGINE_MODEL_INTERNAL_H
#define NPE_ENGINE_MODEL_INTERNAL_H

#include <npengine/npengine.h>

#include "../kernels/cpu/threadpool.h"
#include "exec.h"
#include "ir.h"

struct npe_model {
    npe_ctx *ctx;
    char *path;       /* the TorchScript archive it was imported from */
    npe_graph *graph;
    npe_kernels kernels;
    npe_kpool *pool;  /* NULL: serial */
    npe_exec *exec;
    char *report;     /* JSON of the last prune, or NULL */
};

#endif
