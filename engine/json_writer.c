/* JSON emitter: escaping, separators, indentation; failures are sticky and reported once by
 * npe_json_finish, so callers write straight-line code. */
#include "json_writer.h"

#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void npe_json_init(npe_json *j, int pretty)
{
    memset(j, 0, sizeof(*j));
    j->pretty = pretty;
}

static void put(npe_json *j, const char *s, size_t n)
{
    if (j->failed)
        return;
    if (n >= j->cap - j->len || !j->buf) {
        size_t ncap = j->cap ? j->cap : 256;
        while (ncap - j->len <= n) {
            if (ncap > SIZE_MAX / 2) {
                j->failed = 1;
                return;
            }
            ncap *= 2;
        }
        char *p = realloc(j->buf, ncap);
        if (!p) {
            j->failed = 1;
            return;
        }
        j->buf = p;
        j->cap = ncap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void puts_(npe_json *j, const char *s)
{
    put(j, s, strlen(s));
}

static void newline(npe_json *j)
{
    static const char spaces[] = "                                ";
    put(j, "\n", 1);
    for (int d = 0; d < j->depth; d++)
        put(j, spaces, 2);
}

static int one_line(const npe_json *j)
{
    return !j->pretty || (j->depth > 0 && j->inl[j->depth - 1]);
}

/* Separator and indentation before a value (or a key) at the current level. */
static void before(npe_json *j, int is_key)
{
    if (j->failed)
        return;
    if (j->depth == 0) {
        if (j->len)
            j->failed = 1; /* a second top-level value */
        return;
    }
    int lvl = j->depth - 1;
    if (j->is_obj[lvl] && !is_key) {
        if (!j->after_key)
            j->failed = 1;
        j->after_key = 0;
        return;
    }
    if (j->is_obj[lvl] && j->after_key) {
        j->failed = 1; /* two keys in a row */
        return;
    }
    if (j->count[lvl])
        put(j, one_line(j) && j->pretty ? ", " : ",", one_line(j) && j->pretty ? 2 : 1);
    if (j->count[lvl] < 2)
        j->count[lvl]++;
    if (!one_line(j))
        newline(j);
}

static void begin(npe_json *j, int obj, int inline_)
{
    before(j, 0);
    if (j->failed)
        return;
    if (j->depth >= NPE_JSON_MAX_DEPTH) {
        j->failed = 1;
        return;
    }
    put(j, obj ? "{" : "[", 1);
    j->is_obj[j->depth] = (unsigned char)obj;
    j->inl[j->depth] = (unsigned char)(inline_ || (j->depth > 0 && j->inl[j->depth - 1]));
    j->count[j->depth] = 0;
    j->depth++;
}

static void end(npe_json *j, int obj)
{
    if (j->failed)
        return;
    if (j->depth == 0 || j->is_obj[j->depth - 1] != obj || j->after_key) {
        j->failed = 1;
        return;
    }
    int had = j->count[j->depth - 1] != 0, was_inline = one_line(j);
    j->depth--;
    if (had && !was_inline)
        newline(j);
    put(j, obj ? "}" : "]", 1);
}

void npe_json_begin_object(npe_json *j, int inline_) { begin(j, 1, inline_); }
void npe_json_end_object(npe_json *j) { end(j, 1); }
void npe_json_begin_array(npe_json *j, int inline_) { begin(j, 0, inline_); }
void npe_json_end_array(npe_json *j) { end(j, 0); }

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void put_string(npe_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    put(j, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one go */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                esc = ubuf;
            }
        }
        size_t len = esc ? 0 : utf8_len(p + i, n - i);
        if (!esc && len) {
            run += len;
            i += len;
            continue;
        }
        put(j, (const char *)p + i - run, run);
        run = 0;
        put(j, esc ? esc : "\\ufffd", strlen(esc ? esc : "\\ufffd")); /* invalid byte */
        i++;
    }
    put(j, (const char *)p + n - run, run);
    put(j, "\"", 1);
}

void npe_json_key(npe_json *j, const char *key)
{
    if (j->failed)
        return;
    if (j->depth == 0 || !j->is_obj[j->depth - 1]) {
        j->failed = 1;
        return;
    }
    before(j, 1);
    put_string(j, key ? key : "", key ? strlen(key) : 0);
    put(j, j->pretty ? ": " : ":", j->pretty ? 2 : 1);
    j->after_key = 1;
}

void npe_json_strn(npe_json *j, const char *s, size_t n)
{
    before(j, 0);
    if (s)
        put_string(j, s, n);
    else
        puts_(j, "null");
}

void npe_json_str(npe_json *j, const char *s)
{
    npe_json_strn(j, s, s ? strlen(s) : 0);
}

void npe_json_int(npe_json *j, int64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%" PRId64, v);
    before(j, 0);
    puts_(j, b);
}

void npe_json_uint(npe_json *j, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%" PRIu64, v);
    before(j, 0);
    puts_(j, b);
}

void npe_json_double(npe_json *j, double v)
{
    char b[40];
    before(j, 0);
    if (!isfinite(v)) {
        puts_(j, "null");
        return;
    }
    /* shortest of %.15g / %.17g that reads back exactly */
    snprintf(b, sizeof(b), "%.15g", v);
    if (strtod(b, NULL) != v)
        snprintf(b, sizeof(b), "%.17g", v);
    puts_(j, b);
}

void npe_json_bool(npe_json *j, int v)
{
    before(j, 0);
    puts_(j, v ? "true" : "false");
}

void npe_json_null(npe_json *j)
{
    before(j, 0);
    puts_(j, "null");
}

char *npe_json_finish(npe_json *j, size_t *len)
{
    if (j->failed || j->depth || !j->buf) {
        npe_json_free(j);
        return NULL;
    }
    if (j->pretty)
        put(j, "\n", 1);
    if (j->failed) {
        npe_json_free(j);
        return NULL;
    }
    char *out = j->buf;
    if (len)
        *len = j->len;
    j->buf = NULL;
    npe_json_free(j);
    return out;
}

void npe_json_free(npe_json *j)
{
    free(j->buf);
    int pretty = j->pretty;
    memset(j, 0, sizeof(*j));
    j->pretty = pretty;
}
