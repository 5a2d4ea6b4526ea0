/* Hostile and broken PyTorch files must be refused cleanly: the right error code, a message that
 * names the problem, no crash, nothing executed, and the input left as it was.
 * usage: test_bad_files DIR   (DIR holds bad.list and good.list from gen_bad_files.py) */
#define _POSIX_C_SOURCE 200809L /* strdup, access */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <npengine/npengine.h>

#include "testutil.h"

static const struct {
    const char *name;
    int code;
} codes[] = {
    {"OK", NPE_OK},
    {"EINVAL", NPE_EINVAL},
    {"ENOMEM", NPE_ENOMEM},
    {"EIO", NPE_EIO},
    {"EFORMAT", NPE_EFORMAT},
    {"EUNSUPPORTED", NPE_EUNSUPPORTED},
    {"EUNSAFE", NPE_EUNSAFE},
    {"ELIMIT", NPE_ELIMIT},
    {"ENOTFOUND", NPE_ENOTFOUND},
    {"ECANCELED", NPE_ECANCELED},
};

static const char *code_name(int code)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].code == code)
            return codes[i].name;
    return "?";
}

/* expected is one code name, or several separated by commas where the contract allows either. */
static int code_matches(int code, const char *expected)
{
    const char *name = code_name(code);
    size_t len = strlen(name);
    for (const char *p = expected; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0)
            return 1;
        p += n + (end != NULL);
    }
    return 0;
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

typedef struct fingerprint {
    int ok;
    long long size;
    long long mtime;
    uint32_t crc;
} fingerprint;

static fingerprint take_fingerprint(const char *path)
{
    fingerprint fp = {0, -1, 0, 0};
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        return fp;
    }
    fp.size = (long long)st.st_size;
    fp.mtime = (long long)st.st_mtime;
    uLong crc = crc32(0L, Z_NULL, 0);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        crc = crc32(crc, buf, (uInt)n);
    fp.ok = !ferror(f);
    fp.crc = (uint32_t)crc;
    fclose(f);
    return fp;
}

/* Read every tensor of an opened archive; returns the first failure's code (0 if none). */
static int read_all_tensors(npe_archive *a)
{
    for (size_t i = 0; i < npe_archive_tensor_count(a); i++) {
        npe_tensor_info ti;
        int rc = npe_archive_tensor(a, i, &ti);
        if (rc)
            return rc;
        uint64_t numel = 1;
        for (int d = 0; d < ti.ndim; d++)
            numel *= (uint64_t)ti.shape[d];
        size_t bytes = (size_t)(numel * npe_dtype_size(ti.dtype));
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf)
            return NPE_ENOMEM;
        rc = npe_archive_tensor_data(a, i, buf, bytes);
        free(buf);
        if (rc)
            return rc;
    }
    return 0;
}

static char *read_list(const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
        n += got;
        if (n == cap - 1) {
            char *nb = realloc(buf, 2 * cap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* One line of bad.list: file, expected code(s), message substring, and optionally "data" when
 * the defect may surface only when tensor data is read (not used by the current corpus). */
static void check_bad(npe_ctx *ctx, const char *dir, char *line)
{
    char *f[4] = {0};
    size_t nf = 0;
    f[nf++] = line;
    for (char *p = line; *p && nf < 4; p++)
        if (*p == '\t') {
            *p = '\0';
            f[nf++] = p + 1;
        }
    CHECK_MSG(nf >= 3, "bad.list line '%s' has %zu fields", line, nf);
    if (nf < 3)
        return;
    const char *file = f[0], *want = f[1], *needle = f[2];
    int late = nf == 4 && strcmp(f[3], "data") == 0;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
        CHECK_MSG(0, "path too long: %s/%s", dir, file);
        return;
    }

    fingerprint before = take_fingerprint(path);
    CHECK_MSG(before.ok, "%s: cannot read the test file", path);
    npe_archive *a = (npe_archive *)(uintptr_t)1; /* must come back NULL on failure */
    int rc = npe_archive_open(ctx, path, &a);
    const char *stage = "open";
    if (rc == 0 && late && a) {
        rc = read_all_tensors(a);
        stage = "reading tensors";
    }
    const char *msg = npe_ctx_last_error(ctx);
    printf("%-36s %-12s %s\n", file, rc ? code_name(rc) : "ACCEPTED", rc ? msg : "");
    fflush(stdout); /* keep the log in order with the CHECK messages on stderr */
    if (rc == 0) {
        CHECK_MSG(0, "%s: accepted, expected %s mentioning '%s'", file, want, needle);
        if (a && a != (npe_archive *)(uintptr_t)1)
            npe_archive_destroy(a);
    } else {
        CHECK_MSG(code_matches(rc, want), "%s: %s failed with %s, expected %s", file, stage,
                  code_name(rc), want);
        CHECK_MSG(msg && contains_nocase(msg, needle), "%s: message '%s' does not mention '%s'",
                  file, msg ? msg : "(null)", needle);
        if (!late)
            CHECK_MSG(a == NULL, "%s: *out not NULL after a failed open", file);
        else if (a && a != (npe_archive *)(uintptr_t)1)
            npe_archive_destroy(a);
    }
    fingerprint after = take_fingerprint(path);
    CHECK_MSG(after.ok && after.size == before.size && after.crc == before.crc &&
                  after.mtime == before.mtime,
              "%s: the input changed while being read (size %lld -> %lld, crc %08x -> %08x)",
              file, before.size, after.size, before.crc, after.crc);
}

static void check_good(npe_ctx *ctx, const char *dir, const char *file)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
        CHECK_MSG(0, "path too long: %s/%s", dir, file);
        return;
    }
    npe_archive *a = NULL;
    int rc = npe_archive_open(ctx, path, &a);
    CHECK_MSG(rc == 0 && a, "control %s: open failed with %s: %s", file, code_name(rc),
              npe_ctx_last_error(ctx));
    if (rc || !a)
        return;
    CHECK_MSG(npe_archive_tensor_count(a) >= 1, "control %s: no tensors", file);
    rc = read_all_tensors(a);
    CHECK_MSG(rc == 0, "control %s: reading tensors failed with %s: %s", file, code_name(rc),
              npe_ctx_last_error(ctx));
    printf("%-36s %-12s\n", file, "OK (control)");
    fflush(stdout);
    npe_archive_destroy(a);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const char *pwned = "/tmp/npe_pwned"; /* what the hostile pickles would create */
    int pwned_before = access(pwned, F_OK) == 0;

    npe_ctx *ctx = NULL;
    CHECK(npe_ctx_create(&ctx) == 0 && ctx);
    if (!ctx)
        return tu_finish("test_bad_files");

    char *good = read_list(dir, "good.list");
    CHECK_MSG(good != NULL, "cannot read %s/good.list (run gen_bad_files.py first)", dir);
    for (char *save = NULL, *line = good ? strtok_r(good, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        check_good(ctx, dir, line);
    free(good);

    char *bad = read_list(dir, "bad.list");
    CHECK_MSG(bad != NULL, "cannot read %s/bad.list (run gen_bad_files.py first)", dir);
    size_t n = 0;
    for (char *save = NULL, *line = bad ? strtok_r(bad, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save), n++)
        check_bad(ctx, dir, line);
    free(bad);
    CHECK_MSG(n >= 20, "only %zu bad files listed", n);

    /* Paths that are not files. */
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/no-such-file.pth", dir) >= (int)sizeof(path))
        return tu_finish("test_bad_files");
    npe_archive *a = NULL;
    int rc = npe_archive_open(ctx, path, &a);
    printf("%-36s %-12s %s\n", "no-such-file.pth", code_name(rc), npe_ctx_last_error(ctx));
    CHECK_MSG(rc == NPE_EIO && a == NULL, "missing file: %s, expected EIO", code_name(rc));
    CHECK_MSG(contains_nocase(npe_ctx_last_error(ctx), "no-such-file.pth"),
              "missing file: message does not name the file");
    rc = npe_archive_open(ctx, dir, &a);
    printf("%-36s %-12s %s\n", "(a directory)", code_name(rc), npe_ctx_last_error(ctx));
    CHECK_MSG(rc < 0 && a == NULL, "a directory was accepted as an archive");

    CHECK_MSG(pwned_before || access(pwned, F_OK) != 0, "%s exists: something ran a pickle",
              pwned);
    npe_ctx_destroy(ctx);
    return tu_finish("test_bad_files");
}
