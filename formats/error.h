/* Error reporting shared by every internal layer: a code from npengine.h plus a message a
 * user can act on (file, record or line, what was expected, what was found). */
#ifndef NPE_FORMATS_ERROR_H
#define NPE_FORMATS_ERROR_H

#include <npengine/npengine.h>

#define NPE_ERROR_MSG_MAX 1024

typedef struct npe_error {
    int code;
    char msg[NPE_ERROR_MSG_MAX];
} npe_error;

#if defined(__GNUC__)
#define NPE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NPE_PRINTF(a, b)
#endif

/* Record an error in e (which may be NULL) and return code, so callers can write
 * `return npe_error_set(err, NPE_EFORMAT, "%s: ...", path);`. */
int npe_error_set(npe_error *e, int code, const char *fmt, ...) NPE_PRINTF(3, 4);
/* Put "context: " in front of the message already in e (no-op if e is NULL or empty). */
void npe_error_prefix(npe_error *e, const char *fmt, ...) NPE_PRINTF(2, 3);
void npe_error_clear(npe_error *e);

#endif
