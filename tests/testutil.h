/* Minimal test harness shared by the C test programs: CHECK macros that report file:line and
 * keep going, and a summary that sets the exit status (77 = skipped, as meson expects). */
#ifndef NPE_TESTS_TESTUTIL_H
#define NPE_TESTS_TESTUTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failures, tu_checks;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        tu_checks++;                                                                           \
        if (!(cond)) {                                                                         \
            tu_failures++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        tu_checks++;                                                                           \
        if (!(cond)) {                                                                         \
            tu_failures++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
    do {                                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                  \
        CHECK_MSG(va_ == vb_, "%lld != %lld", va_, vb_);                                       \
    } while (0)

#define CHECK_STR(a, b)                                                                        \
    do {                                                                                       \
        const char *sa_ = (a), *sb_ = (b);                                                     \
        CHECK_MSG(sa_ && sb_ && strcmp(sa_, sb_) == 0, "'%s' != '%s'", sa_ ? sa_ : "(null)",   \
                  sb_ ? sb_ : "(null)");                                                       \
    } while (0)

/* Print a summary and return the process exit status. */
static inline int tu_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

#endif
