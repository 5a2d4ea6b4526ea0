/* Library context (log callback, last error text), the version queries and npe_free. */
#include "context.h"

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

NPE_API int npe_ctx_create(npe_ctx **out)
{
    if (!out)
        return NPE_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? NPE_OK : NPE_ENOMEM;
}

NPE_API void npe_ctx_destroy(npe_ctx *ctx)
{
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
    return ctx ? ctx->last_error : "";
}

void npe_ctx_clear_error(npe_ctx *ctx)
{
    if (ctx)
        ctx->last_error[0] = '\0';
}

int npe_ctx_fail(npe_ctx *ctx, const npe_error *e)
{
    int code = e && e->code ? e->code : NPE_EINVAL;
    if (!ctx)
        return code;
    const char *msg = e && e->msg[0] ? e->msg : npe_strerror(code);
    snprintf(ctx->last_error, sizeof(ctx->last_error), "%s", msg);
    if (ctx->log)
        ctx->log(ctx->log_user, NPE_LOG_ERROR, ctx->last_error);
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
