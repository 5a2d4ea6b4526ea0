/* Library context (log callback, last error text), the version queries and npe_free. */
#include "context.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

NPE_API unsigned npe_version(void)
{
    return NPE_VERSION;
}

NPE_API const char *npe_version_string(void)
{
    return STR(NPE_VERSION_MAJOR) "." STR(NPE_VERSION_MINOR) "." STR(NPE_VERSION_PATCH);
}

NPE_API void npe_free(void *p)
{
    free(p);
}

/* The calling thread's last error and the context it came from (by id: a context made later at
 * the same address must not inherit it). */
static _Thread_local uint64_t tl_ctx_id;
static _Thread_local char tl_msg[NPE_ERROR_MSG_MAX];

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_id = 1;

NPE_API int npe_ctx_create(npe_ctx **out)
{
    if (!out)
        return NPE_EINVAL;
    npe_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        *out = NULL;
        return NPE_ENOMEM;
    }
    if (pthread_mutex_init(&ctx->lock, NULL)) {
        free(ctx);
        *out = NULL;
        return NPE_ENOMEM;
    }
    pthread_mutex_lock(&id_lock);
    ctx->id = next_id++;
    pthread_mutex_unlock(&id_lock);
    *out = ctx;
    return NPE_OK;
}

NPE_API void npe_ctx_destroy(npe_ctx *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

NPE_API void npe_ctx_set_log(npe_ctx *ctx, npe_log_fn fn, void *user)
{
    if (!ctx)
        return;
    ctx->log = fn;
    ctx->log_user = user;
}

NPE_API const char *npe_ctx_last_error(const npe_ctx *ctx)
{
    if (!ctx)
        return "";
    return tl_ctx_id == ctx->id ? tl_msg : ctx->last_error;
}

static void set_error(npe_ctx *ctx, const char *msg)
{
    tl_ctx_id = ctx->id;
    snprintf(tl_msg, sizeof(tl_msg), "%s", msg);
    pthread_mutex_lock(&ctx->lock);
    snprintf(ctx->last_error, sizeof(ctx->last_error), "%s", msg);
    pthread_mutex_unlock(&ctx->lock);
}

void npe_ctx_clear_error(npe_ctx *ctx)
{
    if (ctx)
        set_error(ctx, "");
}

int npe_ctx_fail(npe_ctx *ctx, const npe_error *e)
{
    int code = e && e->code ? e->code : NPE_EINVAL;
    if (!ctx)
        return code;
    const char *msg = e && e->msg[0] ? e->msg : npe_strerror(code);
    set_error(ctx, msg);
    if (ctx->log)
        ctx->log(ctx->log_user, NPE_LOG_ERROR, tl_msg);
    return code;
}

int npe_ctx_error(npe_ctx *ctx, int code, const char *fmt, ...)
{
    npe_error e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    e.code = code;
    return npe_ctx_fail(ctx, &e);
}

void npe_ctx_log(npe_ctx *ctx, npe_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log)
        return;
    char msg[NPE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, msg);
}
