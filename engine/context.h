/* The library context behind the public npe_ctx handle: log routing and the text of the last
 * error, set by every public function that fails. Private to libnpengine. */
#ifndef NPE_ENGINE_CONTEXT_H
#define NPE_ENGINE_CONTEXT_H

#include <npengine/npengine.h>

#include <pthread.h>

#include "../formats/error.h"

struct npe_ctx {
    npe_log_fn log;
    void *log_user;
    char last_error[NPE_ERROR_MSG_MAX]; /* the last error of any thread (under lock) */
    pthread_mutex_t lock;
    uint64_t id;  /* unique per context made: matches the calling thread's own last error */
};

/* Record e as ctx's last error (ctx may be NULL), pass it to the log callback at ERROR level,
 * and return e->code (NPE_EINVAL if e holds no code). */
int npe_ctx_fail(npe_ctx *ctx, const npe_error *e);
/* Same from a code and a printf-style message. */
int npe_ctx_error(npe_ctx *ctx, int code, const char *fmt, ...) NPE_PRINTF(3, 4);
/* Send a message to the log callback, if any. */
void npe_ctx_log(npe_ctx *ctx, npe_log_level level, const char *fmt, ...) NPE_PRINTF(3, 4);
/* Forget the last error (public functions call it when they start). The last error is kept per
 * thread too: npe_ctx_last_error returns the calling thread's own last error on ctx when it has
 * one, so concurrent npe_model_forward calls do not read each other's. */
void npe_ctx_clear_error(npe_ctx *ctx);

#endif
