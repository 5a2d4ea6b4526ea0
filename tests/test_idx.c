/* Tests of the IDX codec: small plain and gzip fixtures (tests/data/idx, written by
 * make_codec_data.py), malformed and hostile input, and the Debian Fashion-MNIST files.
 * Usage: test_idx <tests/data dir> */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"
#include "testutil.h"

static const char *datadir;

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (!got)
            break;
        n += got;
    }
    fclose(f);
    *size = n;
    return buf;
}

static const char *fixture(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/idx/%s", datadir, name);
    return path;
}

static int load_ok(const char *path, npe_array *a, npe_dtype dt, int ndim, const int64_t *shape)
{
    npe_error err = {0};
    int rc = npe_idx_load(path, a, &err);
    CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
    if (rc)
        return 0;
    int same = a->dtype == dt && a->ndim == ndim;
    CHECK_MSG(same, "%s: %s ndim %d", path, npe_dtype_name(a->dtype), a->ndim);
    size_t numel = 1;
    for (int i = 0; same && i < ndim; i++) {
        CHECK_EQ_INT(a->shape[i], shape[i]);
        same = a->shape[i] == shape[i];
        numel *= (size_t)shape[i];
    }
    CHECK(!same || a->nbytes == numel * npe_dtype_size(dt));
    return same && a->nbytes == numel * npe_dtype_size(dt);
}

static const uint8_t u8_vals[12] = {0, 1, 2, 3, 127, 128, 200, 255, 9, 8, 7, 6};
static const int16_t i16_vals[6] = {-32768, -1, 0, 1, 256, 32767};

static void test_fixtures(void)
{
    npe_array a;
    static const int64_t s34[] = {3, 4}, s5[] = {5}, s23[] = {2, 3}, s4[] = {4}, s22[] = {2, 2},
                         s3[] = {3}, s203[] = {2, 0, 3};
    const char *u8_files[] = {"u8_3x4.idx", "u8_3x4.idx.gz", "u8_3x4_2members.gz"};
    for (int k = 0; k < 3; k++) {
        if (load_ok(fixture(u8_files[k]), &a, NPE_DTYPE_U8, 2, s34))
            CHECK_MSG(memcmp(a.data, u8_vals, sizeof(u8_vals)) == 0, "%s values", u8_files[k]);
        npe_array_free(&a);
    }
    const char *i16_files[] = {"i16_2x3.idx", "i16_2x3.idx.gz"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(fixture(i16_files[k]), &a, NPE_DTYPE_I16, 2, s23))
            CHECK_MSG(memcmp(a.data, i16_vals, sizeof(i16_vals)) == 0, "%s values", i16_files[k]);
        npe_array_free(&a);
    }
    if (load_ok(fixture("i8_5.idx"), &a, NPE_DTYPE_I8, 1, s5)) {
        static const int8_t want[5] = {-128, -1, 0, 1, 127};
        CHECK(memcmp(a.data, want, sizeof(want)) == 0);
    }
    npe_array_free(&a);
    if (load_ok(fixture("i32_4.idx"), &a, NPE_DTYPE_I32, 1, s4)) {
        static const int32_t want[4] = {INT32_MIN, -2, 65536, INT32_MAX};
        CHECK(memcmp(a.data, want, sizeof(want)) == 0);
    }
    npe_array_free(&a);
    if (load_ok(fixture("f32_2x2.idx"), &a, NPE_DTYPE_F32, 2, s22)) {
        static const float want[4] = {1.5f, -0.25f, 3.0e38f, 1e-3f};
        CHECK(memcmp(a.data, want, sizeof(want)) == 0);
    }
    npe_array_free(&a);
    if (load_ok(fixture("f64_3.idx"), &a, NPE_DTYPE_F64, 1, s3)) {
        static const double want[3] = {0.1, -2.5, 1e300};
        CHECK(memcmp(a.data, want, sizeof(want)) == 0);
    }
    npe_array_free(&a);
    load_ok(fixture("u8_2x0x3.idx"), &a, NPE_DTYPE_U8, 3, s203);
    npe_array_free(&a);
}

/* gzip-compress n bytes (zlib, gzip wrapper) */
static unsigned char *gz(const void *data, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static int parse(const void *b, size_t n, npe_array *a, npe_error *err)
{
    /* a private copy of exactly n bytes so ASan catches any read past the end */
    unsigned char *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    int rc = npe_idx_parse(c, n, "t.idx", a, err);
    free(c);
    return rc;
}

static void expect(const void *b, size_t n, int code, const char *msg_part, const char *what)
{
    npe_array a;
    npe_error err = {0};
    int rc = parse(b, n, &a, &err);
    CHECK_MSG(rc == code, "%s: rc %d, want %d (%s)", what, rc, code, err.msg);
    CHECK_MSG(!msg_part || strstr(err.msg, msg_part), "%s: message '%s' lacks '%s'", what, err.msg,
              msg_part);
    if (code)
        CHECK(a.data == NULL && a.ndim == 0);
    npe_array_free(&a);
}

static void test_plain_errors(void)
{
    size_t n;
    unsigned char *b = slurp(fixture("i16_2x3.idx"), &n);
    CHECK(b && n == 24);
    if (!b)
        return;
    int all = 1;
    for (size_t len = 0; len < n; len++) {
        npe_array a;
        npe_error err = {0};
        if (parse(b, len, &a, &err) != NPE_EFORMAT)
            all = 0, fprintf(stderr, "cut at %zu: %s\n", len, err.msg);
        npe_array_free(&a);
    }
    CHECK_MSG(all, "every truncation of i16_2x3.idx must fail");
    expect(b, 23, NPE_EFORMAT, "t.idx: data holds 11 bytes, header dims 2x3 int16 need 12",
           "short");
    unsigned char big[25];
    memcpy(big, b, 24);
    big[24] = 0;
    expect(big, 25, NPE_EFORMAT, "data holds 13 bytes, header dims 2x3 int16 need 12", "long");
    unsigned char m[24];
    memcpy(m, b, 24);
    m[0] = 1;
    expect(m, 24, NPE_EFORMAT, "expected the IDX magic 00 00 at offset 0, found 01 00", "magic");
    memcpy(m, b, 24);
    m[2] = 0x0A;
    expect(m, 24, NPE_EFORMAT, "found 0A", "type");
    memcpy(m, b, 24);
    m[3] = 0;
    expect(m, 24, NPE_EFORMAT, "expected 1 to 8 dimensions at offset 3, found 0", "ndim 0");
    m[3] = 9;
    expect(m, 24, NPE_EUNSUPPORTED, "9 dimensions", "ndim 9");
    free(b);

    /* 0xFFFFFFFF^3 float64 elements overflow 64 bits; must not wrap to a small size */
    static const unsigned char ovf[] = {0, 0, 0x0E, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8};
    expect(ovf, sizeof(ovf), NPE_EFORMAT, "need more than 2^64", "overflow");
    /* 2^31 x 2^31 float32 is 2^64 bytes, one past the 64-bit range: must not wrap to 0 */
    static const unsigned char wrap[] = {0, 0, 0x0D, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0};
    expect(wrap, sizeof(wrap), NPE_EFORMAT, "need more than 2^64", "wrap");
    expect("", 0, NPE_EFORMAT, "truncated", "empty");
}

static void test_gzip_errors(void)
{
    size_t n, gn;
    unsigned char *b = slurp(fixture("u8_3x4.idx.gz"), &n);
    CHECK(b != NULL);
    if (!b)
        return;
    int all = 1;
    for (size_t len = 0; len < n; len++) {
        npe_array a;
        npe_error err = {0};
        if (parse(b, len, &a, &err) != NPE_EFORMAT)
            all = 0, fprintf(stderr, "gz cut at %zu: %s\n", len, err.msg);
        npe_array_free(&a);
    }
    CHECK_MSG(all, "every truncation of u8_3x4.idx.gz must fail");

    /* a flipped bit in the deflate data or in the CRC */
    unsigned char *m = malloc(n + 8);
    for (size_t at = 10; at < n; at++) {
        memcpy(m, b, n);
        m[at] ^= 0x10;
        npe_array a;
        npe_error err = {0};
        /* refused on the header it inflates to, on the size, or else by the CRC check */
        int rc = parse(m, n, &a, &err);
        CHECK_MSG(rc < 0 && !a.data, "flip at %zu: rc %d", at, rc);
        npe_array_free(&a);
    }
    /* trailing zero padding is accepted (as by Python's gzip); other trailing bytes are not */
    memcpy(m, b, n);
    memset(m + n, 0, 8);
    npe_array a;
    npe_error err = {0};
    CHECK_EQ_INT(parse(m, n + 8, &a, &err), 0);
    CHECK(a.nbytes == 12 && memcmp(a.data, u8_vals, 12) == 0);
    npe_array_free(&a);
    m[n] = 'x';
    expect(m, n + 8, NPE_EFORMAT, "expected another gzip member or the end of the file", "garbage");
    free(m);
    free(b);

    /* header promises 3x4 = 12 bytes; the stream holds 10 or 13 */
    unsigned char raw[16 + 13];
    memcpy(raw, "\0\0\x08\x02\0\0\0\x03\0\0\0\x04", 12);
    for (int i = 0; i < 13; i++)
        raw[12 + i] = (unsigned char)i;
    unsigned char *g = gz(raw, 22, &gn);
    expect(g, gn, NPE_EFORMAT, "t.idx: gzip data holds 10 bytes, header dims 3x4 uint8 need 12",
           "gz short");
    free(g);
    g = gz(raw, 25, &gn);
    expect(g, gn, NPE_EFORMAT, "gzip data holds more than 12 bytes, header dims 3x4 uint8 need 12",
           "gz long");
    free(g);
    g = gz(raw, 6, &gn);
    expect(g, gn, NPE_EFORMAT, "gzip data holds 6 bytes, a 2-dimensional IDX header needs 12",
           "gz header cut");
    free(g);
    g = gz(raw, 2, &gn);
    expect(g, gn, NPE_EFORMAT, "gzip data holds 2 bytes, an IDX header needs at least 4", "gz 2");
    free(g);
    g = gz("\0\0\x07\x01", 4, &gn);
    expect(g, gn, NPE_EFORMAT, "at offset 2, found 07", "gz bad type");
    free(g);

    /* a header asking for 32 GiB (float64 65536x65536) is refused before inflating further */
    static const unsigned char huge[] = {0, 0, 0x0E, 2, 0, 1, 0, 0, 0, 1, 0, 0};
    g = gz(huge, sizeof(huge), &gn);
    expect(g, gn, NPE_ELIMIT, "need 34359738368 bytes, over the 4294967296 accepted", "gz huge");
    free(g);
    /* 4 GiB promised (uint8 65536x65536), 100 bytes present: fails on the data, and the parser
     * must not have allocated 4 GiB up front (the fuzz target runs with a malloc limit) */
    unsigned char four[12 + 100] = {0, 0, 0x08, 2, 0, 1, 0, 0, 0, 1, 0, 0};
    g = gz(four, sizeof(four), &gn);
    expect(g, gn, NPE_EFORMAT, "gzip data holds 100 bytes, header dims 65536x65536 uint8 need "
           "4294967296", "gz promise");
    free(g);
}

/* A gzip bomb: the header promises 2x2 bytes, the stream inflates to 256 MiB of zeros. The
 * parser must stop one byte past the promise rather than inflate it all. */
static void test_gzip_bomb(void)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = 1 << 20, out_n = 0;
    unsigned char *out = malloc(cap), *zeros = calloc(1, 1 << 20);
    static const unsigned char head[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2};
    for (int chunk = -1; chunk < 256; chunk++) {
        z.next_in = chunk < 0 ? (Bytef *)head : zeros;
        z.avail_in = chunk < 0 ? sizeof(head) : 1 << 20;
        int flush = chunk == 255 ? Z_FINISH : Z_NO_FLUSH;
        do {
            if (cap - out_n < 4096) {
                cap *= 2;
                out = realloc(out, cap);
            }
            z.next_out = out + out_n;
            z.avail_out = (uInt)(cap - out_n);
            deflate(&z, flush);
            out_n = cap - z.avail_out;
        } while (z.avail_in || (flush == Z_FINISH && z.avail_out == 0));
    }
    deflateEnd(&z);
    expect(out, out_n, NPE_EFORMAT, "gzip data holds more than 4 bytes, header dims 2x2", "bomb");
    free(out);
    free(zeros);
}

/* Reference values read with Python's gzip module (make_codec_data.py --fashion-mnist). */
static void test_fashion_mnist(void)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char path[256];
    snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte.gz", dir);
    if (access(path, R_OK) != 0) {
        printf("test_idx: %s missing, Fashion-MNIST checks skipped\n", path);
        return;
    }
    static const struct {
        const char *file;
        int64_t n;
        uint64_t sum;
        int px[4][4]; /* image, row, col, value */
        int64_t img0_sum, last_sum;
        int first[10], last;
    } sets[] = {
        {"t10k-images-idx3-ubyte.gz", 10000, 573469082,
         {{0, 14, 14, 110}, {0, 10, 20, 157}, {1, 5, 7, 231}, {9999, 13, 13, 95}}, 33456, 24390,
         {0}, 0},
        {"train-images-idx3-ubyte.gz", 60000, 3431114169u,
         {{0, 14, 14, 217}, {0, 10, 20, 210}, {1, 5, 7, 204}, {59999, 13, 13, 0}}, 76247, 16684,
         {0}, 0},
        {"t10k-labels-idx1-ubyte.gz", 10000, 45000, {{0}}, 0, 0, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 5},
        {"train-labels-idx1-ubyte.gz", 60000, 270000, {{0}}, 0, 0, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5},
         5},
    };
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        snprintf(path, sizeof(path), "%s/%s", dir, sets[s].file);
        int images = strstr(sets[s].file, "images") != NULL;
        int64_t shape[3] = {sets[s].n, 28, 28};
        npe_array a;
        if (!load_ok(path, &a, NPE_DTYPE_U8, images ? 3 : 1, shape)) {
            npe_array_free(&a);
            continue;
        }
        const uint8_t *d = a.data;
        uint64_t sum = 0;
        for (size_t i = 0; i < a.nbytes; i++)
            sum += d[i];
        CHECK_MSG(sum == sets[s].sum, "%s: sum %llu", sets[s].file, (unsigned long long)sum);
        if (images) {
            for (int k = 0; k < 4; k++) {
                const int *p = sets[s].px[k];
                CHECK_EQ_INT(d[(size_t)p[0] * 784 + (size_t)p[1] * 28 + (size_t)p[2]], p[3]);
            }
            int64_t s0 = 0, sl = 0;
            for (size_t i = 0; i < 784; i++) {
                s0 += d[i];
                sl += d[a.nbytes - 784 + i];
            }
            CHECK_EQ_INT(s0, sets[s].img0_sum);
            CHECK_EQ_INT(sl, sets[s].last_sum);
        } else {
            for (int k = 0; k < 10; k++)
                CHECK_EQ_INT(d[k], sets[s].first[k]);
            CHECK_EQ_INT(d[a.nbytes - 1], sets[s].last);
        }
        npe_array_free(&a);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <tests/data dir>\n", argv[0]);
        return 2;
    }
    datadir = argv[1];
    test_fixtures();
    test_plain_errors();
    test_gzip_errors();
    test_gzip_bomb();
    test_fashion_mnist();
    npe_array a;
    npe_error err = {0};
    CHECK_EQ_INT(npe_idx_load("/nonexistent/x.idx", &a, &err), NPE_EIO);
    return tu_finish("test_idx");
}
