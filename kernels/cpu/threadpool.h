/* A persistent pthread pool behind npe_kexec.parallel_for: workers sleep between jobs and the
 * calling thread works too (thread index 0), so a pool of N threads starts N - 1 workers. */
#ifndef NPE_KERNELS_CPU_THREADPOOL_H
#define NPE_KERNELS_CPU_THREADPOOL_H

#include <stddef.h>

#include "kernels.h"

typedef struct npe_kpool npe_kpool;

/* nthreads counts the caller; <= 0 means one per online CPU. Returns NULL when memory or threads
 * could not be had (the caller can run serially with a NULL pool). Free with npe_kpool_destroy. */
npe_kpool *npe_kpool_create(int nthreads);
/* Joins the workers. Accepts NULL. No parallel_for may be running on the pool. */
void npe_kpool_destroy(npe_kpool *pool);
/* Threads the pool runs, the caller included; 1 for NULL. */
int npe_kpool_nthreads(const npe_kpool *pool);

/* Fill ex to run on pool (NULL: serially on the calling thread) with the caller's scratch, which
 * must be 64-byte aligned and stay valid while ex is used. The pool is borrowed, not owned.
 * parallel_for called from inside a parallel_for chunk (any pool) runs serially, so kernels can
 * nest without deadlock; two threads sharing one pool take turns. */
void npe_kexec_init(npe_kexec *ex, npe_kpool *pool, void *scratch, size_t scratch_size);

#endif
