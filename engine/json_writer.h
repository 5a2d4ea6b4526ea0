/* A small JSON emitter into a growing buffer: proper string escaping (always valid UTF-8 out),
 * commas and indentation handled by the writer. Used by npe_archive_describe and reports. */
#ifndef NPE_ENGINE_JSON_WRITER_H
#define NPE_ENGINE_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>

#define NPE_JSON_MAX_DEPTH 64

typedef struct npe_json {
    char *buf;
    size_t len, cap;
    int failed;  /* out of memory or misuse (too deep, value without key); sticky */
    int pretty;  /* newlines and two-space indentation */
    int depth;
    unsigned char count[NPE_JSON_MAX_DEPTH]; /* values written at each level (0, 1, "2+") */
    unsigned char is_obj[NPE_JSON_MAX_DEPTH];
    unsigned char inl[NPE_JSON_MAX_DEPTH];   /* container kept on one line */
    int after_key;
} npe_json;

void npe_json_init(npe_json *j, int pretty);
/* Containers. inline_ != 0 keeps this container on one line even when pretty ("[1, 2, 3]"). */
void npe_json_begin_object(npe_json *j, int inline_);
void npe_json_end_object(npe_json *j);
void npe_json_begin_array(npe_json *j, int inline_);
void npe_json_end_array(npe_json *j);
/* Key of the next value inside an object. */
void npe_json_key(npe_json *j, const char *key);
void npe_json_str(npe_json *j, const char *s);      /* NULL writes null */
void npe_json_strn(npe_json *j, const char *s, size_t n);
void npe_json_int(npe_json *j, int64_t v);
void npe_json_uint(npe_json *j, uint64_t v);
void npe_json_double(npe_json *j, double v);        /* NaN and infinities write null */
void npe_json_bool(npe_json *j, int v);
void npe_json_null(npe_json *j);
/* Take the NUL-terminated text (caller frees with free()) and reset j. Returns NULL if anything
 * failed or containers are still open. */
char *npe_json_finish(npe_json *j, size_t *len);
/* Drop the buffer (after an error). */
void npe_json_free(npe_json *j);

#endif
