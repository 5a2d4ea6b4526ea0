/* Tests of the .npy codec: files numpy 1.24 wrote (tests/data/npy, see make_codec_data.py),
 * byte-identical output, round trips of every dtype, and malformed input of every kind.
 * Usage: test_npy <tests/data dir> */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "testutil.h"

static const char *datadir;
static char tmpdir[64];

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
    snprintf(path, sizeof(path), "%s/npy/%s", datadir, name);
    return path;
}

/* Load a fixture and check its dtype and shape; the caller checks the values. */
static int load_ok(const char *name, npe_array *a, npe_dtype dt, int ndim, const int64_t *shape)
{
    npe_error err = {0};
    int rc = npe_npy_load(fixture(name), a, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc)
        return 0;
    CHECK_MSG(a->dtype == dt, "%s: dtype %s", name, npe_dtype_name(a->dtype));
    CHECK_EQ_INT(a->ndim, ndim);
    int same = a->ndim == ndim && a->dtype == dt;
    for (int i = 0; same && i < ndim; i++) {
        CHECK_EQ_INT(a->shape[i], shape[i]);
        same = a->shape[i] == shape[i];
    }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)shape[i];
    CHECK_EQ_INT(a->nbytes, numel * npe_dtype_size(dt));
    return same && a->nbytes == numel * npe_dtype_size(dt);
}

static const float f4_vals[6] = {1.5f, -2.25f, 3.0f, 0.0f, 0.1f, -1e-3f};
static const double f8_vals[3] = {0.1, -1e300, 3.141592653589793};
static const uint16_t f2_bits[4] = {0x3C00, 0xC100, 0x7BFF, 0x0400}; /* 1, -2.5, 65504, 2^-14 */
static const int64_t i8_vals[4] = {INT64_MIN, INT64_MAX, 0, -1};
static const int32_t i4_vals[5] = {INT32_MIN, INT32_MAX, 0, 1, -1};
static const int16_t i2_vals[3] = {-32768, 32767, 7};
static const int8_t i1_vals[4] = {-128, 127, 0, -1};
static const uint8_t u1_vals[4] = {0, 255, 128, 1};
static const uint8_t b1_vals[5] = {1, 0, 1, 1, 0};

static void test_numpy_files(void)
{
    npe_array a;
    static const int64_t s23[] = {2, 3}, s3[] = {3}, s4[] = {4}, s22[] = {2, 2}, s5[] = {5},
                         s234[] = {2, 3, 4}, s0[] = {0}, s20[] = {2, 0}, s32[] = {3, 2};

    const char *f4_files[] = {"f4_2x3.npy", "be_f4_2x3.npy", "v2_f4_2x3.npy"};
    for (int k = 0; k < 3; k++) {
        if (load_ok(f4_files[k], &a, NPE_DTYPE_F32, 2, s23))
            CHECK_MSG(memcmp(a.data, f4_vals, sizeof(f4_vals)) == 0, "%s values", f4_files[k]);
        npe_array_free(&a);
    }
    const char *f8_files[] = {"f8_3.npy", "be_f8_3.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(f8_files[k], &a, NPE_DTYPE_F64, 1, s3))
            CHECK_MSG(memcmp(a.data, f8_vals, sizeof(f8_vals)) == 0, "%s values", f8_files[k]);
        npe_array_free(&a);
    }
    const char *f2_files[] = {"f2_4.npy", "be_f2_4.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(f2_files[k], &a, NPE_DTYPE_F16, 1, s4))
            CHECK_MSG(memcmp(a.data, f2_bits, sizeof(f2_bits)) == 0, "%s values", f2_files[k]);
        npe_array_free(&a);
    }
    const char *i8_files[] = {"i8_2x2.npy", "be_i8_2x2.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(i8_files[k], &a, NPE_DTYPE_I64, 2, s22))
            CHECK_MSG(memcmp(a.data, i8_vals, sizeof(i8_vals)) == 0, "%s values", i8_files[k]);
        npe_array_free(&a);
    }
    const char *i4_files[] = {"i4_5.npy", "be_i4_5.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(i4_files[k], &a, NPE_DTYPE_I32, 1, s5))
            CHECK_MSG(memcmp(a.data, i4_vals, sizeof(i4_vals)) == 0, "%s values", i4_files[k]);
        npe_array_free(&a);
    }
    const char *i2_files[] = {"i2_3.npy", "be_i2_3.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(i2_files[k], &a, NPE_DTYPE_I16, 1, s3))
            CHECK_MSG(memcmp(a.data, i2_vals, sizeof(i2_vals)) == 0, "%s values", i2_files[k]);
        npe_array_free(&a);
    }
    if (load_ok("i1_4.npy", &a, NPE_DTYPE_I8, 1, s4))
        CHECK(memcmp(a.data, i1_vals, sizeof(i1_vals)) == 0);
    npe_array_free(&a);
    const char *u1_files[] = {"u1_2x2.npy", "v3_u1_2x2.npy"};
    for (int k = 0; k < 2; k++) {
        if (load_ok(u1_files[k], &a, NPE_DTYPE_U8, 2, s22))
            CHECK_MSG(memcmp(a.data, u1_vals, sizeof(u1_vals)) == 0, "%s values", u1_files[k]);
        npe_array_free(&a);
    }
    if (load_ok("b1_5.npy", &a, NPE_DTYPE_BOOL, 1, s5))
        CHECK(memcmp(a.data, b1_vals, sizeof(b1_vals)) == 0);
    npe_array_free(&a);
    if (load_ok("scalar_f8.npy", &a, NPE_DTYPE_F64, 0, NULL))
        CHECK(*(double *)a.data == 2.5);
    npe_array_free(&a);
    load_ok("empty_f4.npy", &a, NPE_DTYPE_F32, 1, s0);
    CHECK(a.data != NULL);
    npe_array_free(&a);
    load_ok("empty_i4_2x0.npy", &a, NPE_DTYPE_I32, 2, s20);
    npe_array_free(&a);
    if (load_ok("i4_2x3x4.npy", &a, NPE_DTYPE_I32, 3, s234)) {
        int ok = 1;
        for (int i = 0; i < 24; i++)
            ok &= ((int32_t *)a.data)[i] == i * 3 - 5;
        CHECK_MSG(ok, "i4_2x3x4 values");
    }
    npe_array_free(&a);

    /* Fortran order: element [i][j][k] of np.arange(24).reshape(2, 3, 4) is 12i + 4j + k, which
     * in C order is simply 0..23 whatever the order on disk. */
    if (load_ok("fortran_f4_2x3x4.npy", &a, NPE_DTYPE_F32, 3, s234)) {
        int ok = 1;
        for (int i = 0; i < 24; i++)
            ok &= ((float *)a.data)[i] == (float)i;
        CHECK_MSG(ok, "fortran_f4_2x3x4 values");
    }
    npe_array_free(&a);
    if (load_ok("fortran_i2_3x2.npy", &a, NPE_DTYPE_I16, 2, s32)) {
        static const int16_t want[6] = {1, 2, 3, 4, 5, 6};
        CHECK(memcmp(a.data, want, sizeof(want)) == 0);
    }
    npe_array_free(&a);
    if (load_ok("be_fortran_f8_2x3.npy", &a, NPE_DTYPE_F64, 2, s23)) {
        int ok = 1;
        for (int i = 0; i < 6; i++)
            ok &= ((double *)a.data)[i] == (double)i;
        CHECK_MSG(ok, "be_fortran_f8_2x3 values");
    }
    npe_array_free(&a);
}

static void test_unsupported_files(void)
{
    static const struct {
        const char *file, *descr;
    } cases[] = {
        {"object.npy", "'|O'"},
        {"structured.npy", "[('a', '<i4'), ('b', '<f8')]"},
        {"unicode.npy", "'<U3'"},
        {"u2.npy", "'<u2'"},
        {"c8.npy", "'<c8'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        npe_array a;
        npe_error err = {0};
        int rc = npe_npy_load(fixture(cases[i].file), &a, &err);
        CHECK_EQ_INT(rc, NPE_EUNSUPPORTED);
        CHECK_MSG(strstr(err.msg, cases[i].descr) != NULL, "%s: message '%s' lacks %s",
                  cases[i].file, err.msg, cases[i].descr);
        CHECK(a.data == NULL && a.ndim == 0);
    }
}

/* Our writer must produce exactly the bytes np.save wrote for the same array. */
static void test_identical_to_numpy(void)
{
    static int32_t i4_234[24];
    for (int i = 0; i < 24; i++)
        i4_234[i] = i * 3 - 5;
    static const double scalar = 2.5;
    static const struct {
        const char *file;
        npe_dtype dt;
        int ndim;
        int64_t shape[3];
        const void *data;
        size_t nbytes;
    } cases[] = {
        {"f4_2x3.npy", NPE_DTYPE_F32, 2, {2, 3}, f4_vals, sizeof(f4_vals)},
        {"f8_3.npy", NPE_DTYPE_F64, 1, {3}, f8_vals, sizeof(f8_vals)},
        {"f2_4.npy", NPE_DTYPE_F16, 1, {4}, f2_bits, sizeof(f2_bits)},
        {"i8_2x2.npy", NPE_DTYPE_I64, 2, {2, 2}, i8_vals, sizeof(i8_vals)},
        {"i4_5.npy", NPE_DTYPE_I32, 1, {5}, i4_vals, sizeof(i4_vals)},
        {"i2_3.npy", NPE_DTYPE_I16, 1, {3}, i2_vals, sizeof(i2_vals)},
        {"i1_4.npy", NPE_DTYPE_I8, 1, {4}, i1_vals, sizeof(i1_vals)},
        {"u1_2x2.npy", NPE_DTYPE_U8, 2, {2, 2}, u1_vals, sizeof(u1_vals)},
        {"b1_5.npy", NPE_DTYPE_BOOL, 1, {5}, b1_vals, sizeof(b1_vals)},
        {"scalar_f8.npy", NPE_DTYPE_F64, 0, {0}, &scalar, sizeof(scalar)},
        {"empty_f4.npy", NPE_DTYPE_F32, 1, {0}, NULL, 0},
        {"empty_i4_2x0.npy", NPE_DTYPE_I32, 2, {2, 0}, NULL, 0},
        {"i4_2x3x4.npy", NPE_DTYPE_I32, 3, {2, 3, 4}, i4_234, sizeof(i4_234)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        npe_array a = {0};
        a.dtype = cases[i].dt;
        a.ndim = cases[i].ndim;
        memcpy(a.shape, cases[i].shape, sizeof(cases[i].shape));
        a.data = (void *)cases[i].data;
        a.nbytes = cases[i].nbytes;
        char out[128];
        snprintf(out, sizeof(out), "%s/%s", tmpdir, cases[i].file);
        npe_error err = {0};
        int rc = npe_npy_save(out, &a, &err);
        CHECK_MSG(rc == 0, "%s: %s", cases[i].file, err.msg);
        size_t n1 = 0, n2 = 0;
        unsigned char *ours = slurp(out, &n1), *theirs = slurp(fixture(cases[i].file), &n2);
        CHECK_MSG(ours && theirs && n1 == n2 && memcmp(ours, theirs, n1) == 0,
                  "%s: our file (%zu bytes) differs from numpy's (%zu bytes)", cases[i].file, n1,
                  n2);
        free(ours);
        free(theirs);
        unlink(out);
    }
}

/* Every supported dtype through save and load, shapes (), (0,), (3,), (2, 3, 4). */
static void test_round_trip(void)
{
    static const npe_dtype dts[] = {NPE_DTYPE_F32, NPE_DTYPE_F64, NPE_DTYPE_F16, NPE_DTYPE_I64,
                                    NPE_DTYPE_I32, NPE_DTYPE_I16, NPE_DTYPE_I8,  NPE_DTYPE_U8,
                                    NPE_DTYPE_BOOL};
    static const struct {
        int ndim;
        int64_t shape[3];
    } shapes[] = {{0, {0}}, {1, {0}}, {1, {3}}, {3, {2, 3, 4}}};
    char path[128];
    snprintf(path, sizeof(path), "%s/rt.npy", tmpdir);
    for (size_t d = 0; d < sizeof(dts) / sizeof(dts[0]); d++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            npe_array a = {0}, b;
            a.dtype = dts[d];
            a.ndim = shapes[s].ndim;
            memcpy(a.shape, shapes[s].shape, sizeof(shapes[s].shape));
            size_t isz = npe_dtype_size(a.dtype), numel = (size_t)npe_array_numel(&a);
            a.nbytes = numel * isz;
            unsigned char *bytes = malloc(a.nbytes + 1);
            for (size_t i = 0; i < a.nbytes; i++) /* bools must stay 0/1 to round-trip */
                bytes[i] = a.dtype == NPE_DTYPE_BOOL ? (unsigned char)(i % 3 == 0)
                                                     : (unsigned char)(i * 37 + 11);
            a.data = bytes;
            npe_error err = {0};
            int rc = npe_npy_save(path, &a, &err);
            CHECK_MSG(rc == 0, "save %s ndim %d: %s", npe_dtype_name(a.dtype), a.ndim, err.msg);
            size_t fsize = 0;
            unsigned char *file = slurp(path, &fsize);
            if (file) {
                /* data starts at a multiple of 64, right after the '\n' closing the header */
                size_t hl = (size_t)file[8] | (size_t)file[9] << 8;
                CHECK_EQ_INT((10 + hl) % 64, 0);
                CHECK(file[6] == 1 && file[7] == 0 && file[10 + hl - 1] == '\n');
                CHECK_EQ_INT(fsize, 10 + hl + a.nbytes);
            }
            free(file);
            rc = npe_npy_load(path, &b, &err);
            CHECK_MSG(rc == 0, "load %s ndim %d: %s", npe_dtype_name(a.dtype), a.ndim, err.msg);
            if (!rc) {
                CHECK(b.dtype == a.dtype && b.ndim == a.ndim && b.nbytes == a.nbytes);
                CHECK(memcmp(b.shape, a.shape, sizeof(int64_t) * (size_t)a.ndim) == 0);
                CHECK(a.nbytes == 0 || memcmp(a.data, b.data, a.nbytes) == 0);
            }
            npe_array_free(&b);
            free(bytes);
        }
    unlink(path);
}

/* A version 1.0 file with the given header text (padded as numpy pads) and data bytes. */
static unsigned char *make_npy(const char *header, size_t data_len, size_t *size)
{
    size_t hl = strlen(header) + 1;
    size_t pad = 64 - (10 + hl) % 64;
    *size = 10 + hl + pad + data_len;
    unsigned char *b = calloc(1, *size);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl + pad);
    b[9] = (unsigned char)((hl + pad) >> 8);
    memcpy(b + 10, header, hl - 1);
    memset(b + 10 + hl - 1, ' ', pad);
    b[10 + hl + pad - 1] = '\n';
    for (size_t i = 0; i < data_len; i++)
        b[10 + hl + pad + i] = (unsigned char)i;
    return b;
}

static int parse_hdr(const char *header, size_t data_len, npe_array *a, npe_error *err)
{
    size_t size;
    unsigned char *b = make_npy(header, data_len, &size);
    int rc = npe_npy_parse(b, size, "x.npy", a, err);
    free(b);
    return rc;
}

static void expect_fail(const char *header, size_t data_len, int code, const char *msg_part)
{
    npe_array a;
    npe_error err = {0};
    int rc = parse_hdr(header, data_len, &a, &err);
    CHECK_MSG(rc == code, "header %s: rc %d, want %d (%s)", header, rc, code, err.msg);
    CHECK_MSG(!msg_part || strstr(err.msg, msg_part), "header %s: message '%s' lacks '%s'", header,
              err.msg, msg_part);
    CHECK(a.data == NULL);
    if (!rc)
        npe_array_free(&a);
}

static void test_headers(void)
{
    npe_array a;
    npe_error err = {0};

    /* keys in any order, odd spacing, no trailing comma, "(2, 3,)", Python 2 longs */
    const char *good[] = {
        "{ 'shape' : (2, 3) , 'fortran_order':False,'descr':'<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        "{'descr':'=f4','fortran_order':False,'shape':(2,3)}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = parse_hdr(good[i], 24, &a, &err);
        CHECK_MSG(rc == 0, "%s: %s", good[i], err.msg);
        CHECK(a.dtype == NPE_DTYPE_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
        npe_array_free(&a);
    }
    /* bool bytes other than 0 and 1 read as True */
    if (parse_hdr("{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", 4, &a, &err) == 0) {
        static const uint8_t want[4] = {0, 1, 1, 1}; /* make_npy's data bytes are 0, 1, 2, 3 */
        CHECK(memcmp(a.data, want, 4) == 0);
    }
    npe_array_free(&a);

    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 5), }", 96, NPE_EFORMAT,
                "x.npy: data holds 96 bytes, header shape (5, 5) float32 needs 100");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 5), }", 104, NPE_EFORMAT,
                "x.npy: data holds 104 bytes, header shape (5, 5) float32 needs 100");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0,
                NPE_EFORMAT, "header shape (4294967296, 4294967296) float32 needs more than 2^64");
    expect_fail("{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693952,), }", 16,
                NPE_EFORMAT, "needs more than 2^64");
    expect_fail("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8,
                NPE_EFORMAT,
                "expected a dimension below 2^63 in 'shape', found 99999999999999999999");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 0, NPE_EFORMAT,
                "expected a non-negative dimension in 'shape', found -3");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5), }", 20, NPE_EFORMAT,
                "expected ',' making 'shape' a tuple");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': [5], }", 20, NPE_EFORMAT,
                "expected '(' opening the 'shape' tuple, found '['");
    expect_fail("{'descr': '<f4', 'fortran_order': 0, 'shape': (5,), }", 20, NPE_EFORMAT,
                "expected True or False for 'fortran_order', found '0'");
    expect_fail("{'descr': '<f4', 'shape': (5,), }", 20, NPE_EFORMAT, "found no 'fortran_order'");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), 'extra': 1}", 20,
                NPE_EFORMAT, "expected key 'descr', 'fortran_order' or 'shape', found 'extra'");
    expect_fail("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5,)}", 20,
                NPE_EFORMAT, "expected each key once, found 'descr' twice");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5,)", 20, NPE_EFORMAT,
                "expected ',' or '}' after a header entry, found the end of the header");
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (5,)} x", 20, NPE_EFORMAT,
                "expected only padding after the header dict, found 'x'");
    expect_fail("['descr', '<f4']", 20, NPE_EFORMAT, "expected '{' opening the header dict");
    expect_fail("{'descr: '<f4'}", 20, NPE_EFORMAT, NULL);
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
                4, NPE_EUNSUPPORTED, "more than 8 dimensions");
    expect_fail("{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", 16, NPE_EUNSUPPORTED,
                "dtype '<f16' is not supported");
    expect_fail("{'descr': 'f', 'fortran_order': False, 'shape': (1,), }", 4, NPE_EUNSUPPORTED,
                "dtype 'f' is not supported");
    expect_fail("{'descr': 5, 'fortran_order': False, 'shape': (1,), }", 4, NPE_EUNSUPPORTED,
                "dtype 5 is not supported");
    /* a structured descr nested past the skip limit is refused, not recursed into */
    char deep[400];
    int n = snprintf(deep, sizeof(deep), "{'descr': ");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    expect_fail(deep, 0, NPE_ELIMIT, "nested deeper than 32");
}

static void test_bad_bytes(void)
{
    npe_array a;
    npe_error err = {0};
    size_t size;
    const char *files[] = {"f4_2x3.npy", "v2_f4_2x3.npy", "fortran_f4_2x3x4.npy", "scalar_f8.npy"};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        unsigned char *b = slurp(fixture(files[f]), &size);
        CHECK(b != NULL);
        if (!b)
            continue;
        int all_failed = 1;
        for (size_t len = 0; len < size; len++) {
            /* a private copy of exactly len bytes, so ASan sees any read past the end */
            unsigned char *cut = malloc(len ? len : 1);
            memcpy(cut, b, len);
            int rc = npe_npy_parse(cut, len, "cut.npy", &a, &err);
            if (rc != NPE_EFORMAT || a.data) {
                all_failed = 0;
                fprintf(stderr, "%s cut at %zu: rc %d\n", files[f], len, rc);
            }
            npe_array_free(&a);
            free(cut);
        }
        CHECK_MSG(all_failed, "%s: every truncation must fail with NPE_EFORMAT", files[f]);

        unsigned char *m = malloc(size);
        memcpy(m, b, size);
        m[1] = 'M';
        CHECK_EQ_INT(npe_npy_parse(m, size, "m.npy", &a, &err), NPE_EFORMAT);
        CHECK_STR(err.msg, "m.npy: expected the .npy magic 93 4e 55 4d 50 59 (\\x93NUMPY) at "
                           "offset 0, found 93 4d 55 4d 50 59");
        memcpy(m, b, size);
        m[6] = 4;
        CHECK_EQ_INT(npe_npy_parse(m, size, "m.npy", &a, &err), NPE_EUNSUPPORTED);
        CHECK(strstr(err.msg, "version 4.0 is not supported") != NULL);
        memcpy(m, b, size);
        m[8] = 0xff, m[9] = 0xff; /* header length past the end (2.0: 0x00ffffff) */
        if (m[6] == 2)
            m[10] = 0xff;
        CHECK_EQ_INT(npe_npy_parse(m, size, "m.npy", &a, &err), NPE_EFORMAT);
        CHECK(strstr(err.msg, "runs past the end of the file") != NULL);
        free(m);
        free(b);
    }
    CHECK_EQ_INT(npe_npy_parse("", 0, "e.npy", &a, &err), NPE_EFORMAT);
    CHECK_STR(err.msg, "e.npy: expected the .npy magic 93 4e 55 4d 50 59 (\\x93NUMPY) at offset 0, "
                       "found an empty file");
    CHECK_EQ_INT(npe_npy_parse("\x93NU", 3, "s.npy", &a, &err), NPE_EFORMAT);
    CHECK_STR(err.msg, "s.npy: expected the .npy magic 93 4e 55 4d 50 59 (\\x93NUMPY) at offset 0, "
                       "found 93 4e 55 and the end of the file");
    CHECK_EQ_INT(npe_npy_load("/nonexistent/dir/x.npy", &a, &err), NPE_EIO);
    CHECK(strstr(err.msg, "/nonexistent/dir/x.npy") != NULL);
}

static void test_save_errors(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/bad.npy", tmpdir);
    float v[4] = {0};
    npe_array a = {.dtype = NPE_DTYPE_F32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 12};
    npe_error err = {0};
    CHECK_EQ_INT(npe_npy_save(path, &a, &err), NPE_EINVAL);
    CHECK(access(path, F_OK) != 0);
    a.nbytes = 16;
    a.dtype = NPE_DTYPE_BF16;
    a.shape[0] = 8;
    CHECK_EQ_INT(npe_npy_save(path, &a, &err), NPE_EUNSUPPORTED);
    CHECK(strstr(err.msg, "bfloat16") != NULL);
    a.dtype = NPE_DTYPE_F32;
    a.shape[0] = -4;
    CHECK_EQ_INT(npe_npy_save(path, &a, &err), NPE_EINVAL);
    a.shape[0] = 4;
    a.ndim = 9;
    CHECK_EQ_INT(npe_npy_save(path, &a, &err), NPE_EINVAL);
    a.ndim = 1;
    CHECK_EQ_INT(npe_npy_save("/nonexistent/dir/x.npy", &a, &err), NPE_EIO);
    CHECK(access(path, F_OK) != 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <tests/data dir>\n", argv[0]);
        return 2;
    }
    datadir = argv[1];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/npe_test_npy.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_numpy_files();
    test_unsupported_files();
    test_identical_to_numpy();
    test_round_trip();
    test_headers();
    test_bad_bytes();
    test_save_errors();
    rmdir(tmpdir);
    return tu_finish("test_npy");
}
