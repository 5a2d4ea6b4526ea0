/* The library object behind the public npe_model handle (engine/model.c, engine/prune_api.c,
 * engine/api_query.c). */
#ifndef NPE_ENGINE_MODEL_INTERNAL_H
#define NPE_ENGINE_MODEL_INTERNAL_H

#include <npengine/npengine.h>

#include <pthread.h>

#include "../kernels/cpu/threadpool.h"
#include "exec.h"
#include "groups.h"
#include "ir.h"
#include "prune.h"

/* One private copy of the graph for one forward at a time: an executor writes inferred shapes
 * into its graph, so concurrent forwards each need their own. Slot 0 is the model's own graph,
 * executor and pool; the others are clones made when calls overlap. */
typedef struct npe_model_slot {
    npe_graph *graph;
    npe_exec *exec;
    npe_kpool *pool;  /* NULL: serial */
    int busy;
} npe_model_slot;

/* What npe_model_analyse found for some input shapes, on its own clone of the graph (the names
 * the infos point at live in it and in groups). */
typedef struct npe_model_analysis {
    npe_graph *g;
    npe_groups *G;
    npe_counts counts;
    npe_layer_info *layers;
    int n_layers;
    npe_group_info *groups;
    int n_groups;
    const char **names; /* producers and consumers of every group, one block */
    npe_shape *outputs; /* one per graph output */
    int n_outputs;
} npe_model_analysis;

struct npe_model {
    npe_ctx *ctx;
    char *path;       /* the TorchScript archive it was imported from */
    npe_graph *graph; /* = slots[0].graph */
    npe_kernels kernels;
    npe_kpool *pool;  /* = slots[0].pool; NULL: serial */
    npe_exec *exec;   /* = slots[0].exec */
    int threads;      /* kernel threads per forward, as asked (<= 0: one per CPU) */
    char *report;     /* JSON of the last prune, or NULL */
    /* concurrent forwards */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    npe_model_slot *slots;
    int n_slots, cap_slots;
    int waiting;      /* forwards waiting for a free slot */
    npe_model_analysis *an; /* NULL until npe_model_analyse */
};

/* After m->graph / m->exec were replaced (pruning): drop the other slots (clones of the old
 * graph) and point slot 0 at the new ones. No forward may run. */
void npe_model_reset_slots(npe_model *m);

/* Analyse m->graph at these shapes and keep the result in m->an (replacing the previous one). */
int npe_model_analysis_run(npe_model *m, const npe_shape *shapes, int n, npe_error *err);
void npe_model_analysis_free(npe_model_analysis *a); /* NULL accepted */

#endif
