/* The executor: runs a graph of engine/ir.h on float32 inputs with a kernel table. A plan gives
 * every activation a place in one arena (reused once its last reader ran), folds batch norm into
 * a per-channel affine once, fuses a conv's batch norm and activation into its epilogue, and is
 * remade when the input shapes change (a new batch size) or the graph was edited
 * (npe_exec_invalidate). */
#ifndef NPE_ENGINE_EXEC_H
#define NPE_ENGINE_EXEC_H

#include "../formats/array.h"
#include "../formats/error.h"
#include "../kernels/kernels.h"
#include "ir.h"

typedef struct npe_exec npe_exec;

enum {
    /* Keep every activation until the next run (no buffer reuse, no in-place ops), so
     * npe_exec_value can read any of them: tests, debugging, caching a prefix's activations. */
    NPE_EXEC_KEEP_ALL = 1 << 0,
    /* Run every node as its own kernel call: no conv -> batch norm -> activation fusion (which
     * KEEP_ALL turns off too, as the fused intermediates are never stored). For tests. */
    NPE_EXEC_NO_FUSE = 1 << 1,
};

/* Make an executor for g with kernels k (both borrowed: they must outlive it). The graph is
 * inferred and planned on the first run; runs write inferred shapes into g (a graph is used by one
 * thread at a time: workers each run their own copy). */
int npe_exec_create(npe_graph *g, const npe_kernels *k, unsigned flags, npe_exec **out,
                    npe_error *err);
void npe_exec_destroy(npe_exec *x); /* NULL accepted */

/* Buffers handed from one executor to the next (a thread making executors one after another,
 * as the analysis makes one per pruned variant): a destroyed executor's activation arena and
 * kernel scratch go back here and the next one takes them when large enough, so their pages are
 * not faulted in and zeroed by the kernel again. Zero-initialise; used by one thread at a time. */
typedef struct npe_exec_bufs {
    void *arena, *scratch;
    size_t arena_bytes, scratch_bytes;
} npe_exec_bufs;

/* x takes its buffers from b and gives them back to it (b must outlive x); call before the first
 * run. */
void npe_exec_use_bufs(npe_exec *x, npe_exec_bufs *b);
void npe_exec_bufs_free(npe_exec_bufs *b); /* frees what b holds; b stays usable */

/* Weights prepared once for many runs (Winograd's transformed conv filters; the kernels'
 * conv2d_prep): an executor makes them on the first run that uses them and keeps them until it
 * is destroyed or invalidated, costing that memory (up to 4x the 3x3 conv weights). Executors
 * over clones of one model share the preparations of the weights they borrow from it
 * (npe_graph_clone_shared) through a cache, keyed by the weights' address, which holds up to
 * max_bytes and then makes no more (executors then transform those filters on every call). The
 * cache is thread-safe; the weights it was used for must stay unchanged and alive while it is. */
typedef struct npe_prep_cache npe_prep_cache;
int npe_prep_cache_create(size_t max_bytes, npe_prep_cache **out); /* NPE_ENOMEM */
void npe_prep_cache_destroy(npe_prep_cache *c);                    /* NULL accepted */
size_t npe_prep_cache_bytes(npe_prep_cache *c);                    /* held now */
/* x takes borrowed weights' preparations from c (all_stable: every weight of x's graph, which
 * then must stay unchanged while c lives) and makes its own for the rest. Call before the first
 * run; c must outlive x. */
void npe_exec_use_prep_cache(npe_exec *x, npe_prep_cache *c, int all_stable);
/* x owns preparations of at most max_bytes in all (default: no limit); past it, those convs
 * prepare their weights on every call. And the bytes it owns now. */
void npe_exec_limit_own_preps(npe_exec *x, size_t max_bytes);
size_t npe_exec_own_prep_bytes(const npe_exec *x);

/* The graph changed (pruned parameters, rewritten literals): infer and plan again next run. */
void npe_exec_invalidate(npe_exec *x);

/* Run the graph. inputs[i] is the graph's input i (float32 or float64, converted); batch size and
 * spatial size come from its shape. outputs[0..n_outputs) receive the graph's first n_outputs
 * outputs as float32 arrays the caller frees with npe_array_free (n_outputs may be less than the
 * graph has; 0 runs for npe_exec_value only). kx gives the threads (NULL: run serially); its
 * scratch is replaced by the executor's own. */
int npe_exec_run(npe_exec *x, const npe_kexec *kx, const npe_array *inputs, int n_inputs,
                 npe_array *outputs, int n_outputs, npe_error *err);

/* Data of value vid after the last run, or NULL: static values (parameters, constants) always;
 * activations only while their buffer holds them (always with NPE_EXEC_KEEP_ALL; the graph
 * outputs always); NULL for the intermediates of a fused chain (a conv's output read only by
 * its batch norm or activation), which are never stored. Shape in x's graph. */
const float *npe_exec_value(const npe_exec *x, int vid);

/* Bytes of the activation arena of the current plan (0 before the first run). */
size_t npe_exec_arena_bytes(const npe_exec *x);

/* ---- One call for `lbprune eval` ------------------------------------------------------------
 * Import the TorchScript archive at model_path (forward_name NULL: "forward"), run it on inputs
 * with the optimised CPU kernels on nthreads threads (<= 0: one per CPU), and return every output:
 * *outputs is a malloc'd array of *n_outputs arrays; free each with npe_array_free, then the
 * array with free(). */
int npe_eval_torchscript(const char *model_path, const char *forward_name,
                         const npe_array *inputs, int n_inputs, npe_array **outputs,
                         int *n_outputs, int nthreads, npe_error *err);

#endif
