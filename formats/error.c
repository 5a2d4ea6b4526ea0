/* Error reporting: formatting helpers for npe_error and the public code-to-text table. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int npe_error_set(npe_error *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

void npe_error_prefix(npe_error *e, const char *fmt, ...)
{
    if (!e || !e->msg[0])
        return;
    char head[NPE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t hl = strlen(head), ml = strlen(e->msg);
    if (hl + 2 >= sizeof(e->msg))
        return;
    /* Shift the old message right, truncating its tail, then write "head: " in front. */
    size_t keep = ml;
    if (hl + 2 + keep >= sizeof(e->msg))
        keep = sizeof(e->msg) - hl - 3;
    memmove(e->msg + hl + 2, e->msg, keep);
    e->msg[hl + 2 + keep] = '\0';
    memcpy(e->msg, head, hl);
    e->msg[hl] = ':';
    e->msg[hl + 1] = ' ';
}

void npe_error_clear(npe_error *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

NPE_API const char *npe_strerror(int code)
{
    switch (code) {
    case NPE_OK: return "success";
    case NPE_EINVAL: return "invalid argument";
    case NPE_ENOMEM: return "out of memory";
    case NPE_EIO: return "input/output error";
    case NPE_EFORMAT: return "malformed input";
    case NPE_EUNSUPPORTED: return "unsupported input";
    case NPE_EUNSAFE: return "refused for safety";
    case NPE_ELIMIT: return "input exceeds a safety limit";
    case NPE_ENOTFOUND: return "not found";
    case NPE_ECANCELED: return "cancelled";
    case NPE_ECALLBACK: return "a caller callback failed";
    default: return "unknown error";
    }
}
