/* Tests of the sensitivity table: number formatting against Python's own output, early stop at its
 * boundary, the exact sens.csv text, CSV and JSON round trips, NNI's CSV form with CRLF, reader
 * errors with their line, and resume after a real SIGKILL at many points of a run. */
#define _GNU_SOURCE

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "engine/sens_table.h"
#include "testutil.h"

static char tmpdir[256];

/* ---- Helpers --------------------------------------------------------------------------------- */

static void path_in(char *out, size_t n, const char *sub, const char *name)
{
    if (sub)
        snprintf(out, n, "%s/%s/%s", tmpdir, sub, name);
    else
        snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fwrite(text, 1, len, f);
    fclose(f);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

/* Remove a directory this test made, with the files in it. */
static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- Formatting: expected strings printed by Python 3.11 (str(round(v, 5)), repr(s)) --------- */

static void test_format(void)
{
    static const struct { double v; const char *want; } values[] = {
        {0.0374, "0.0374"},       {0.03740, "0.0374"},     {1e-6, "0.0"},
        {0.123456, "0.12346"},    {-0.123456, "-0.12346"}, {100.0, "100.0"},
        {1.0, "1.0"},             {0.0, "0.0"},            {0.1, "0.1"},
        {1e-05, "1e-05"},         {1.2345e-05, "1e-05"},   {0.0001, "0.0001"},
        {0.015625, "0.01562"},    /* an exact tie: half to even, as Python */
        {0.123455, "0.12345"},    /* the double is just below the half */
        {2.5e-05, "3e-05"},       {5e-06, "1e-05"},        {1.5e-05, "2e-05"},
        {12345678.123456, "12345678.12346"},
        {1e16, "1e+16"},          {1e17, "1e+17"},
        {1.2345678901234568e+17, "1.2345678901234568e+17"},
        {-3.14159265, "-3.14159"}, {0.30000000000000004, "0.3"}, {0.99999999, "1.0"},
        {0.89999, "0.89999"},     {1.000005, "1.00001"},   {-2.5, "-2.5"},
        {-0.000004, "0.0"},       /* Python prints "-0.0"; we drop the sign (documented) */
        {-1e-6, "0.0"},           {123.0, "123.0"},        {-7.0, "-7.0"},
        {1e15, "1000000000000000.0"},
    };
    char b[NPE_SENS_NUM_MAX];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        npe_sens_format_value(values[i].v, b);
        CHECK_MSG(!strcmp(b, values[i].want), "value %.17g: '%s', want '%s'", values[i].v, b,
                  values[i].want);
    }
    npe_sens_format_value(NAN, b);
    CHECK_STR(b, "nan");
    npe_sens_format_value(INFINITY, b);
    CHECK_STR(b, "inf");
    npe_sens_format_value(-INFINITY, b);
    CHECK_STR(b, "-inf");

    static const struct { double v; const char *want; } shortest[] = {
        {0.1, "0.1"}, {0.2, "0.2"}, {0.25, "0.25"}, {0.5, "0.5"}, {1.0, "1.0"}, {0.0, "0.0"},
        {0.30000000000000004, "0.30000000000000004"}, {0.1 * 3, "0.30000000000000004"},
        {1e-05, "1e-05"}, {0.0001, "0.0001"}, {0.123456789, "0.123456789"},
        {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
        /* 2^-1017: the correctly rounded 16-digit string reads back as a neighbour, but a
         * 16-digit one beside it reads back exactly (Python finds it; a naive %.*e loop gives
         * 17 digits) */
        {7.120236347223045e-307, "7.120236347223045e-307"},
        {1e22, "1e+22"}, {123456789012345.6, "123456789012345.6"},
    };
    for (size_t i = 0; i < sizeof(shortest) / sizeof(shortest[0]); i++) {
        int n = npe_sens_format_shortest(shortest[i].v, b);
        CHECK_MSG(!strcmp(b, shortest[i].want), "shortest %.17g: '%s', want '%s'", shortest[i].v, b,
                  shortest[i].want);
        CHECK_EQ_INT(n, (long long)strlen(b));
        CHECK(strtod(b, NULL) == shortest[i].v);
    }
    CHECK(ldexp(1.0, -1017) == 7.120236347223045e-307);
}

/* ---- Early stop ------------------------------------------------------------------------------ */

static void test_early_stop(void)
{
    /* 0.75 - 0.25 = 0.5 and 0.5 + 0.25 = 0.75 exactly: the boundary itself is no violation. */
    double below = nextafter(0.5, 0), above = nextafter(0.75, 1);
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, 0.5));
    CHECK(npe_early_stop_violates(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, below));
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, 5.0));
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_RAISED, 0.5, 0.25, 0.75));
    CHECK(npe_early_stop_violates(NPE_EARLY_STOP_RAISED, 0.5, 0.25, above));
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_RAISED, 0.5, 0.25, -5.0));
    CHECK(npe_early_stop_violates(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, NAN));
    CHECK(npe_early_stop_violates(NPE_EARLY_STOP_RAISED, 0.75, 0.25, NAN));
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_NONE, 0.75, 0.25, -100));
    CHECK(!npe_early_stop_violates(NPE_EARLY_STOP_NONE, 0.75, 0.25, NAN));

    /* dropped, ori 0.75, thres 0.25: stops after 0.4 (the violating value is in the row) */
    double v[] = {0.74, 0.5, 0.6, 0.4, 0.7};
    CHECK_EQ_INT(npe_early_stop_row_len(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, v, 5), 4);
    CHECK_EQ_INT(npe_early_stop_row_len(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, v, 3), 3);
    CHECK_EQ_INT(npe_early_stop_row_len(NPE_EARLY_STOP_NONE, 0.75, 0.25, v, 5), 5);
    CHECK(!npe_early_stop_done(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, v, 3, 5));
    CHECK(npe_early_stop_done(NPE_EARLY_STOP_DROPPED, 0.75, 0.25, v, 4, 5));
    CHECK(!npe_early_stop_done(NPE_EARLY_STOP_NONE, 0.75, 0.25, v, 4, 5));
    CHECK(npe_early_stop_done(NPE_EARLY_STOP_NONE, 0.75, 0.25, v, 5, 5));
    /* raised (a loss): ori 0.5, thres 0.25; 0.75 is allowed, 0.8 stops */
    double l[] = {0.6, 0.75, 0.8, 0.7};
    CHECK_EQ_INT(npe_early_stop_row_len(NPE_EARLY_STOP_RAISED, 0.5, 0.25, l, 4), 3);
    CHECK(npe_early_stop_done(NPE_EARLY_STOP_RAISED, 0.5, 0.25, l, 3, 4));
    CHECK(!npe_early_stop_done(NPE_EARLY_STOP_RAISED, 0.5, 0.25, l, 2, 4));

    enum npe_early_stop m;
    npe_error err = {0};
    CHECK(npe_early_stop_parse("dropped", &m, &err) == 0 && m == NPE_EARLY_STOP_DROPPED);
    CHECK(npe_early_stop_parse("raised", &m, &err) == 0 && m == NPE_EARLY_STOP_RAISED);
    CHECK(npe_early_stop_parse("none", &m, &err) == 0 && m == NPE_EARLY_STOP_NONE);
    CHECK(npe_early_stop_parse(NULL, &m, &err) == 0 && m == NPE_EARLY_STOP_NONE);
    CHECK(npe_early_stop_parse("drop", &m, &err) == NPE_EINVAL);
    CHECK(strstr(err.msg, "\"drop\"") != NULL);
    CHECK_STR(npe_early_stop_name(NPE_EARLY_STOP_RAISED), "raised");
    CHECK(npe_early_stop_name(NPE_EARLY_STOP_NONE) == NULL);
}

/* ---- Table bookkeeping ----------------------------------------------------------------------- */

static const double S5[] = {0.1, 0.2, 0.3, 0.4, 0.5};

static void test_table(void)
{
    npe_error err = {0};
    npe_sens_table t;
    npe_sens_config cfg = {.metric = "top1", .higher_is_better = 1, .baseline = 0.75,
                           .thres = 0.25, .early_stop = NPE_EARLY_STOP_DROPPED};
    CHECK(npe_sens_init(&t, &cfg, &err) == 0);
    const char *mem[] = {"conv1", "conv2"};
    npe_sens_group_spec a = {.name = "conv1", .members = mem, .n_members = 2, .channels = 16,
                             .sparsities = S5, .n_sparsities = 5};
    CHECK_EQ_INT(npe_sens_add_group(&t, &a, &err), 0);
    CHECK_EQ_INT(npe_sens_add_group(&t, &a, &err), NPE_EINVAL); /* duplicate */
    CHECK(strstr(err.msg, "'conv1'") != NULL);
    double unsorted[] = {0.1, 0.3, 0.2};
    npe_sens_group_spec b = {.name = "b", .channels = 8, .sparsities = unsorted, .n_sparsities = 3};
    CHECK_EQ_INT(npe_sens_add_group(&t, &b, &err), NPE_EINVAL);
    CHECK(strstr(err.msg, "strictly increasing") != NULL);
    double dup[] = {0.1, 0.1};
    b.sparsities = dup;
    b.n_sparsities = 2;
    CHECK_EQ_INT(npe_sens_add_group(&t, &b, &err), NPE_EINVAL);
    double out[] = {0.5, 1.5};
    b.sparsities = out;
    CHECK_EQ_INT(npe_sens_add_group(&t, &b, &err), NPE_EINVAL);
    CHECK(strstr(err.msg, "outside [0, 1]") != NULL);
    b.n_sparsities = 0;
    CHECK_EQ_INT(npe_sens_add_group(&t, &b, &err), NPE_EINVAL);
    b.name = "";
    CHECK_EQ_INT(npe_sens_add_group(&t, &b, &err), NPE_EINVAL);
    npe_sens_group_spec sk = {.name = "fc", .channels = 10, .skip_reason = "reaches a model output"};
    CHECK_EQ_INT(npe_sens_add_group(&t, &sk, &err), 1);
    double s3[] = {0.25, 0.5, 0.75};
    npe_sens_group_spec c = {.name = "conv3", .channels = 4, .sparsities = s3, .n_sparsities = 3};
    CHECK_EQ_INT(npe_sens_add_group(&t, &c, &err), 2);
    CHECK_EQ_INT(npe_sens_find_group(&t, "conv3"), 2);
    CHECK_EQ_INT(npe_sens_find_group(&t, "nope"), NPE_ENOTFOUND);

    size_t g = 99, i = 99, done, total;
    CHECK(npe_sens_next(&t, &g, &i) == 1 && g == 0 && i == 0);
    npe_sens_progress(&t, &done, &total);
    CHECK(done == 0 && total == 8);
    CHECK(npe_sens_record(&t, 1, 0, 0.5, &err) == NPE_EINVAL); /* skipped group */
    CHECK(npe_sens_record(&t, 0, 5, 0.5, &err) == NPE_EINVAL);
    CHECK(npe_sens_record(&t, 3, 0, 0.5, &err) == NPE_EINVAL);

    /* Parallel order: 0.3 (index 2) arrives first and violates; 0.4 and 0.5 are no longer needed,
     * but 0.1 and 0.2 still are (either could stop the group earlier). */
    CHECK(npe_sens_record(&t, 0, 2, 0.4, &err) == 0);
    CHECK(npe_sens_pending(&t, 0, 0) && npe_sens_pending(&t, 0, 1));
    CHECK(!npe_sens_pending(&t, 0, 3) && !npe_sens_pending(&t, 0, 4) && !npe_sens_pending(&t, 0, 2));
    CHECK(!npe_sens_group_done(&t, 0));
    CHECK_EQ_INT(npe_sens_row_len(&t, 0), 0);
    npe_sens_progress(&t, &done, &total);
    CHECK(done == 1 && total == 6);
    CHECK(npe_sens_record(&t, 0, 4, 0.7, &err) == 0); /* speculative, past the stop */
    CHECK(npe_sens_record(&t, 0, 0, 0.74, &err) == 0);
    CHECK_EQ_INT(npe_sens_row_len(&t, 0), 1);
    CHECK(npe_sens_record(&t, 0, 1, 0.5, &err) == 0); /* == ori - thres: no stop */
    CHECK_EQ_INT(npe_sens_row_len(&t, 0), 3);
    CHECK(npe_sens_group_done(&t, 0));
    CHECK(npe_sens_group_done(&t, 1));
    CHECK(npe_sens_next(&t, &g, &i) == 1 && g == 2 && i == 0);
    npe_sens_progress(&t, &done, &total);
    CHECK(done == 4 && total == 7);
    npe_sens_finish(&t);
    npe_sens_finish(&t); /* twice is harmless */

    /* init refuses what it cannot use */
    npe_sens_config bad = cfg;
    bad.metric = NULL;
    CHECK(npe_sens_init(&t, &bad, &err) == NPE_EINVAL);
    bad = cfg;
    bad.baseline = NAN;
    CHECK(npe_sens_init(&t, &bad, &err) == NPE_EINVAL);
    bad = cfg;
    bad.thres = -0.1;
    CHECK(npe_sens_init(&t, &bad, &err) == NPE_EINVAL);
    npe_sens_finish(&t);
}

/* ---- sens.csv text --------------------------------------------------------------------------- */

/* ori 0.9, thres 0.05, dropped: ori - thres = 0.85 */
static void build_csv_table(npe_sens_table *t)
{
    npe_error err = {0};
    npe_sens_config cfg = {.metric = "top1", .higher_is_better = 1, .baseline = 0.9, .thres = 0.05,
                           .early_stop = NPE_EARLY_STOP_DROPPED, .fingerprint = "model-a"};
    CHECK(npe_sens_init(t, &cfg, &err) == 0);
    const char *m1[] = {"conv1", "layer1.0.conv2"};
    npe_sens_group_spec g1 = {.name = "conv1", .members = m1, .n_members = 2, .channels = 16,
                              .sparsities = S5, .n_sparsities = 5};
    double s2[] = {0.25, 0.5};
    const char *m2[] = {"layer1.0.conv,x"};
    npe_sens_group_spec g2 = {.name = "layer1.0.conv,x", .members = m2, .n_members = 1,
                              .channels = 8, .sparsities = s2, .n_sparsities = 2};
    const char *m3[] = {"fc"};
    npe_sens_group_spec g3 = {.name = "fc", .members = m3, .n_members = 1, .channels = 10,
                              .skip_reason = "reaches a model output"};
    double s4[] = {0.1};
    npe_sens_group_spec g4 = {.name = "conv9", .channels = 4, .sparsities = s4, .n_sparsities = 1};
    double s5[] = {0.0, 0.30000000000000004};
    npe_sens_group_spec g5 = {.name = "a\"b", .channels = 2, .sparsities = s5, .n_sparsities = 2};
    CHECK(npe_sens_add_group(t, &g1, &err) == 0);
    CHECK(npe_sens_add_group(t, &g2, &err) == 1);
    CHECK(npe_sens_add_group(t, &g3, &err) == 2);
    CHECK(npe_sens_add_group(t, &g4, &err) == 3);
    CHECK(npe_sens_add_group(t, &g5, &err) == 4);
    CHECK(npe_sens_record(t, 0, 0, 0.9012345, &err) == 0);
    CHECK(npe_sens_record(t, 0, 1, 0.88, &err) == 0);
    CHECK(npe_sens_record(t, 0, 2, 0.8, &err) == 0);  /* < 0.85: stops */
    CHECK(npe_sens_record(t, 0, 4, 0.7, &err) == 0);  /* speculative: not in the row */
    CHECK(npe_sens_record(t, 1, 0, 0.86, &err) == 0);
    CHECK(npe_sens_record(t, 1, 1, 100.0, &err) == 0);
    CHECK(npe_sens_record(t, 4, 0, 0.9, &err) == 0);
    CHECK(npe_sens_record(t, 4, 1, 0.8500000001, &err) == 0);
}

/* The file Python's csv.writer(lineterminator='\n') writes for these rows (checked by hand with
 * Python 3: quoting of the name with a comma and the one with a quote). */
static const char want_csv[] =
    "layername,0.1,0.2,0.3\n"
    "conv1,0.90123,0.88,0.8\n"
    "layername,0.25,0.5\n"
    "\"layer1.0.conv,x\",0.86,100.0\n"
    "layername,0.0,0.30000000000000004\n"
    "\"a\"\"b\",0.9,0.85\n";

static void test_csv_text(void)
{
    npe_error err = {0};
    npe_sens_table t;
    build_csv_table(&t);
    char *s = NULL;
    size_t n = 0;
    CHECK(npe_sens_csv_text(&t, &s, &n, &err) == 0);
    CHECK_STR(s, want_csv);
    CHECK_EQ_INT(n, strlen(want_csv));
    free(s);

    /* write -> read: names, sparsities, and the values as printed */
    char path[512];
    path_in(path, sizeof(path), NULL, "rt.csv");
    CHECK(npe_sens_write_csv(&t, path, &err) == 0);
    size_t len;
    char *back = read_text(path, &len);
    CHECK(back && !strcmp(back, want_csv));
    free(back);
    npe_sens_table r;
    CHECK_MSG(npe_sens_read_csv(&r, path, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(r.n_groups, 3);
    if (r.n_groups == 3) {
        CHECK_STR(r.groups[0].name, "conv1");
        CHECK_EQ_INT(r.groups[0].n_sparsities, 3);
        CHECK(r.groups[0].sparsities[2] == 0.3);
        CHECK(r.groups[0].values[0] == 0.90123 && r.groups[0].values[2] == 0.8);
        CHECK(r.groups[0].channels == -1 && r.groups[0].n_members == 0);
        CHECK_STR(r.groups[1].name, "layer1.0.conv,x");
        CHECK(r.groups[1].values[1] == 100.0 && r.groups[1].measured[1]);
        CHECK_STR(r.groups[2].name, "a\"b");
        CHECK(r.groups[2].sparsities[1] == 0.30000000000000004);
        CHECK(r.groups[2].values[1] == 0.85);
        CHECK(r.metric == NULL && isnan(r.baseline));
    }
    /* written again from what was read: the same bytes */
    r.early_stop = NPE_EARLY_STOP_NONE;
    CHECK(npe_sens_csv_text(&r, &s, &n, &err) == 0);
    CHECK_STR(s, want_csv);
    free(s);
    npe_sens_finish(&r);
    npe_sens_finish(&t);
}

/* ---- JSON companion round trip ---------------------------------------------------------------- */

static void test_json(void)
{
    npe_error err = {0};
    npe_sens_table t, r;
    build_csv_table(&t);
    CHECK(npe_sens_record(&t, 0, 3, NAN, &err) == 0);
    CHECK(npe_sens_record(&t, 1, 0, -INFINITY, &err) == 0);
    char path[512];
    path_in(path, sizeof(path), NULL, "rt.json");
    CHECK(npe_sens_write_json(&t, path, &err) == 0);
    char *text = read_text(path, NULL);
    CHECK(text && strstr(text, "\"format\": \"lbprune-sensitivity\"") != NULL);
    CHECK(text && strstr(text, "\"values\": [0.9012345, 0.88, 0.8, \"nan\", 0.7]") != NULL);
    CHECK(text && strstr(text, "\"values\": [\"-inf\", 100]") != NULL);
    CHECK(text && strstr(text, "\"values\": [null]") != NULL);
    CHECK(text && strstr(text, "\"skipped\": \"reaches a model output\"") != NULL);
    CHECK(text && strstr(text, "\"early_stop_mode\": \"dropped\"") != NULL);
    CHECK(text && strstr(text, "\"members\": [\"conv1\", \"layer1.0.conv2\"]") != NULL);
    CHECK(text && strstr(text, "\"row\": 3") != NULL);
    free(text);

    CHECK_MSG(npe_sens_read_json(&r, path, &err) == 0, "%s", err.msg);
    CHECK_STR(r.metric, "top1");
    CHECK(r.higher_is_better == 1 && r.baseline == 0.9 && r.thres == 0.05);
    CHECK(r.early_stop == NPE_EARLY_STOP_DROPPED);
    CHECK_STR(r.fingerprint, "model-a");
    CHECK_EQ_INT(r.n_groups, t.n_groups);
    for (size_t g = 0; g < t.n_groups && g < r.n_groups; g++) {
        const npe_sens_group *a = &t.groups[g], *b = &r.groups[g];
        CHECK_STR(b->name, a->name);
        CHECK(a->channels == b->channels && a->n_members == b->n_members);
        for (size_t m = 0; m < a->n_members && m < b->n_members; m++)
            CHECK_STR(b->members[m], a->members[m]);
        CHECK((a->skip_reason == NULL) == (b->skip_reason == NULL));
        if (a->skip_reason && b->skip_reason)
            CHECK_STR(b->skip_reason, a->skip_reason);
        CHECK_EQ_INT(b->n_sparsities, a->n_sparsities);
        for (size_t i = 0; i < a->n_sparsities && i < b->n_sparsities; i++) {
            CHECK(a->sparsities[i] == b->sparsities[i]);
            CHECK(a->measured[i] == b->measured[i]);
            if (a->measured[i])
                CHECK_MSG(a->values[i] == b->values[i] ||
                              (isnan(a->values[i]) && isnan(b->values[i])),
                          "group %zu value %zu: %.17g vs %.17g", g, i, a->values[i], b->values[i]);
        }
    }
    npe_sens_finish(&r);

    /* Every truncation of the file is refused with a line (only the one without its final line
     * end is still a whole document), and none crashes the parser. */
    size_t len;
    char *full = read_text(path, &len);
    char tpath[512];
    path_in(tpath, sizeof(tpath), NULL, "trunc.json");
    int refused = 0, with_line = 0, tried = 0;
    for (size_t cut = 0; full && cut + 1 < len; cut++) {
        write_text(tpath, full, cut);
        tried++;
        npe_error e2 = {0};
        int rc = npe_sens_read_json(&r, tpath, &e2);
        if (rc == NPE_EFORMAT)
            refused++;
        if (rc && strstr(e2.msg, "trunc.json:"))
            with_line++;
        if (!rc)
            npe_sens_finish(&r);
    }
    CHECK_EQ_INT(refused, tried);
    CHECK_EQ_INT(with_line, tried);
    write_text(tpath, full, len - 1);
    CHECK(npe_sens_read_json(&r, tpath, &err) == 0);
    npe_sens_finish(&r);
    free(full);

    /* malformed documents name line and column */
    static const struct { const char *text, *want; } bad[] = {
        {"{\"format\": \"lbprune-sensitivity\",\n  \"version\": 1,\n  \"metric\": 5}",
         "trunc.json:3:13: top level: \"metric\" must be a string, found a number"},
        {"{\"format\": \"other\"}", "trunc.json:1:12: format is \"other\""},
        {"{\"format\": \"lbprune-sensitivity\", \"version\": 2}", "version 2"},
        {"{\n\"a\": [1, 2,, 3]}", "trunc.json:2:12: expected a value, found ','"},
        {"{\"a\": \"\\ud800x\"}", "low surrogate"},
        {"{\"a\": 01}", "expected ',' or '}', found '1'"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nesting"},
        {"{\"format\": \"lbprune-sensitivity\", \"version\": 1, \"metric\": \"m\", "
         "\"higher_is_better\": true, \"baseline\": 1, \"metric_thres\": 0, "
         "\"early_stop_mode\": null, \"fingerprint\": \"\", \"groups\": [{\"name\": \"g\", "
         "\"members\": [], \"channels\": 3, \"sparsities\": [0.1, 0.2], \"values\": [1]}]}",
         "group 0 ('g'): 1 values for 2 sparsities"},
        {"{\"format\": \"lbprune-sensitivity\", \"version\": 1, \"metric\": \"m\", "
         "\"higher_is_better\": true, \"baseline\": 1, \"metric_thres\": 0, "
         "\"early_stop_mode\": null, \"fingerprint\": \"\", \"groups\": [{\"name\": \"g\", "
         "\"members\": [], \"channels\": 3, \"sparsities\": [0.2, 0.1], \"values\": [1, 2]}]}",
         "strictly increasing"},
        {"{\"format\": \"lbprune-sensitivity\", \"version\": 1, \"metric\": \"m\", "
         "\"higher_is_better\": true, \"baseline\": 1, \"metric_thres\": 0, "
         "\"early_stop_mode\": null, \"fingerprint\": \"\", \"groups\": [\n{\"name\": \"g\", "
         "\"members\": [], \"channels\": 3, \"sparsities\": [0.1], \"values\": [1]},\n"
         "{\"name\": \"g\", \"members\": [], \"channels\": 3, \"sparsities\": [0.1], "
         "\"values\": [1]}]}",
         "trunc.json:3:1: group 'g' appears twice (first on line 2)"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_text(tpath, bad[k].text, strlen(bad[k].text));
        npe_error e2 = {0};
        int rc = npe_sens_read_json(&r, tpath, &e2);
        CHECK_MSG(rc < 0 && strstr(e2.msg, bad[k].want), "case %zu: rc %d, '%s'", k, rc, e2.msg);
        if (!rc)
            npe_sens_finish(&r);
    }
    unlink(tpath);
    unlink(path);
    npe_sens_finish(&t);
}

/* ---- CSV reading: NNI's form, CRLF, errors --------------------------------------------------- */

static void test_csv_read(void)
{
    npe_error err = {0};
    npe_sens_table r;
    char path[512];
    path_in(path, sizeof(path), NULL, "nni.csv");
    /* What NNI's SensitivityAnalysis.export writes: csv.writer defaults (CRLF), one header from
     * str(sparsity), full-precision values, a shorter row where early stop cut a layer. */
    const char nni[] = "layername,0.1,0.2,0.3\r\n"
                       "features.0,0.9012345678901234,0.85,0.8\r\n"
                       "features.3,0.91,0.7\r\n"
                       "classifier.1,0.9,0.9,0.89\r\n";
    write_text(path, nni, sizeof(nni) - 1);
    CHECK_MSG(npe_sens_read_csv(&r, path, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(r.n_groups, 3);
    if (r.n_groups == 3) {
        CHECK_STR(r.groups[0].name, "features.0");
        CHECK(r.groups[0].values[0] == 0.9012345678901234);
        CHECK_STR(r.groups[1].name, "features.3");
        CHECK_EQ_INT(r.groups[1].n_sparsities, 3);
        CHECK(r.groups[1].measured[0] && r.groups[1].measured[1] && !r.groups[1].measured[2]);
        CHECK(r.groups[1].values[1] == 0.7);
        CHECK(r.groups[2].sparsities[2] == 0.3 && r.groups[2].values[2] == 0.89);
    }
    npe_sens_finish(&r);

    /* our form with CRLF, a BOM, a blank line, and a row called "layername" right after a header */
    const char ours[] = "\xEF\xBB\xBFlayername,0.1,0.2\r\nconv1,0.9,0.8\r\n\r\n"
                        "layername,0.5\r\nlayername,1e-05\r\n";
    write_text(path, ours, sizeof(ours) - 1);
    CHECK_MSG(npe_sens_read_csv(&r, path, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(r.n_groups, 2);
    if (r.n_groups == 2) {
        CHECK_STR(r.groups[1].name, "layername");
        CHECK(r.groups[1].sparsities[0] == 0.5 && r.groups[1].values[0] == 1e-05);
    }
    npe_sens_finish(&r);

    static const struct { const char *text, *want; } bad[] = {
        {"conv1,0.9\n", "nni.csv:1: expected a header line starting with 'layername', found 'conv1'"},
        {"layername,0.1,0.2\nconv1,0.9,0.8,0.7\n",
         "nni.csv:2: row 'conv1' has 3 values but the header on line 1 lists 2 sparsities"},
        {"layername,0.1\r\n\r\nconv1,abc\r\n",
         "nni.csv:3: row 'conv1', field 2: expected a number, found 'abc'"},
        {"layername,0.1\nconv1,0.5\nconv2,0.5\nlayername,0.2\nconv1,0.4\n",
         "nni.csv:5: layer 'conv1' appears twice (first on line 2)"},
        {"layername,0.2,0.1\n", "nni.csv:1: sparsities must be strictly increasing, found 0.1 after 0.2"},
        {"layername,0.1,1.5\n", "nni.csv:1: field 3: expected a sparsity in [0, 1], found '1.5'"},
        {"layername\n", "nni.csv:1: header lists no sparsities"},
        {"layername,0.1\n\"conv1,0.5\n", "nni.csv:2: quoted field not closed"},
        {"layername,0.1\nconv1,\n", "nni.csv:2: row 'conv1', field 2: expected a number, found ''"},
        {"layername,0.1\n,0.5\n", "nni.csv:2: row without a layer name"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_text(path, bad[k].text, strlen(bad[k].text));
        npe_error e2 = {0};
        int rc = npe_sens_read_csv(&r, path, &e2);
        CHECK_MSG(rc == NPE_EFORMAT && strstr(e2.msg, bad[k].want), "case %zu: rc %d, '%s'", k, rc,
                  e2.msg);
        if (!rc)
            npe_sens_finish(&r);
    }
    /* a missing file is an I/O error naming it */
    path_in(path, sizeof(path), NULL, "missing.csv");
    CHECK(npe_sens_read_csv(&r, path, &err) == NPE_EIO || err.code < 0);
    CHECK(strstr(err.msg, "missing.csv") != NULL);
    path_in(path, sizeof(path), NULL, "nni.csv");
    unlink(path);
}

/* ---- Resume ---------------------------------------------------------------------------------- */

#define KG 12
#define KS 8
static const double KSP[KS] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};

/* The "evaluation": deterministic, with groups falling at different rates so early stop cuts some
 * rows (ori 0.9, thres 0.1, dropped: stop below 0.8). */
static double fake_metric(size_t g, size_t i)
{
    return 0.9 - 0.015 * (double)(i + 1) * (double)(g % 4 + 1) + 1e-7 * (double)g;
}

static int build_resume_table(npe_sens_table *t, const char *dir, const char *metric,
                              double baseline, const char *fingerprint, npe_error *err)
{
    npe_sens_config cfg = {.metric = metric, .higher_is_better = 1, .baseline = baseline,
                           .thres = 0.1, .early_stop = NPE_EARLY_STOP_DROPPED,
                           .fingerprint = fingerprint};
    int rc = npe_sens_init(t, &cfg, err);
    if (rc)
        return rc;
    for (size_t g = 0; g < KG; g++) {
        char name[32], mem[32];
        snprintf(name, sizeof(name), "layer%zu.conv", g);
        snprintf(mem, sizeof(mem), "layer%zu.down", g);
        const char *members[] = {name, mem};
        npe_sens_group_spec s = {.name = name, .members = members, .n_members = 2,
                                 .channels = (int64_t)(8 + g), .sparsities = KSP, .n_sparsities = KS};
        rc = npe_sens_add_group(t, &s, err);
        if (rc < 0)
            return rc;
    }
    return dir ? npe_sens_set_output(t, dir, err) : 0;
}

static int run_to_end(npe_sens_table *t, npe_error *err)
{
    size_t g, i;
    while (npe_sens_next(t, &g, &i)) {
        int rc = npe_sens_record(t, g, i, fake_metric(g, i), err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every value a resumed table holds is one the killed run computed; the CSV on disk parses and
 * agrees with fake_metric, rounded. */
static void check_state(const char *dir, size_t *restored)
{
    npe_error err = {0};
    npe_sens_table t;
    npe_sens_resume_info info;
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "fp", &err) == 0);
    CHECK_MSG(npe_sens_resume(&t, &info, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(info.discarded, 0);
    *restored = info.restored;
    for (size_t g = 0; g < t.n_groups; g++)
        for (size_t i = 0; i < KS; i++)
            if (t.groups[g].measured[i])
                CHECK(t.groups[g].values[i] == fake_metric(g, i));
    CHECK(count_entries(dir) <= 2); /* stale temporaries removed */
    npe_sens_finish(&t);
    char p[600];
    snprintf(p, sizeof(p), "%s/sens.csv", dir);
    struct stat st;
    if (stat(p, &st) == 0) {
        npe_sens_table c;
        CHECK_MSG(npe_sens_read_csv(&c, p, &err) == 0, "%s", err.msg);
        for (size_t g = 0; g < c.n_groups; g++) {
            unsigned k;
            CHECK(sscanf(c.groups[g].name, "layer%u.conv", &k) == 1);
            for (size_t i = 0; i < c.groups[g].n_sparsities; i++)
                if (c.groups[g].measured[i]) {
                    char b[NPE_SENS_NUM_MAX];
                    npe_sens_format_value(fake_metric(k, i), b);
                    CHECK(c.groups[g].values[i] == strtod(b, NULL));
                }
        }
        npe_sens_finish(&c);
    }
}

static void test_resume(void)
{
    npe_error err = {0};
    char dir[512], json[600], csv[600];
    snprintf(dir, sizeof(dir), "%s/sens_analysis", tmpdir);
    snprintf(json, sizeof(json), "%s/sens.json", dir);
    snprintf(csv, sizeof(csv), "%s/sens.csv", dir);

    /* The reference: one uninterrupted run, in memory. */
    npe_sens_table ref;
    CHECK(build_resume_table(&ref, NULL, "top1", 0.9, "fp", &err) == 0);
    CHECK(run_to_end(&ref, &err) == 0);
    char *want = NULL;
    CHECK(npe_sens_csv_text(&ref, &want, NULL, &err) == 0);
    size_t want_measured = 0, total;
    npe_sens_progress(&ref, &want_measured, &total);
    CHECK(want_measured == total && want_measured < KG * KS); /* early stop cut something */
    npe_sens_finish(&ref);

    /* Fresh start: no sens.json. */
    npe_sens_table t;
    npe_sens_resume_info info;
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == 0);
    CHECK(info.found == 0 && info.restored == 0);
    npe_sens_finish(&t);

    /* Killed for real: a child process runs (resuming what earlier children left) and gets
     * SIGKILL at a different moment each time; after each kill the state must hold only values
     * the run computed, and files that parse. */
    static const unsigned delays_us[] = {0, 30, 100, 300, 600, 1000, 1500, 2500, 4000, 7000,
                                         12000, 20000};
    const size_t nd = sizeof(delays_us) / sizeof(delays_us[0]);
    size_t last = 0, restored = 0;
    int progressed = 0;
    for (size_t k = 0;; k++) {
        /* On a loaded machine the child may not get far in 20 ms: wait longer until it has. */
        unsigned long d;
        if (k < nd)
            d = delays_us[k];
        else if (!progressed && k < nd + 8)
            d = 40000ul << (k - nd);
        else
            break;
        pid_t pid = fork();
        if (pid == 0) {
            npe_error e = {0};
            npe_sens_table c;
            if (build_resume_table(&c, dir, "top1", 0.9, "fp", &e) || npe_sens_resume(&c, NULL, &e) ||
                run_to_end(&c, &e))
                _exit(3);
            _exit(0);
        }
        CHECK(pid > 0);
        if (pid <= 0)
            break;
        struct timespec ts = {(time_t)(d / 1000000), (long)(d % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) != 0));
        check_state(dir, &restored);
        printf("kill after %5lu us: %zu values stored\n", d, restored);
        CHECK(restored >= last); /* a kill never loses what an earlier record stored */
        if (restored > last)
            progressed++;
        last = restored;
    }
    CHECK(progressed > 0);

    /* A write killed before its rename leaves a partial temporary file: ignored and removed. */
    char stale[700];
    snprintf(stale, sizeof(stale), "%s.tmp.ab12CD", json);
    write_text(stale, "{\"format\": \"lbprune-sensi", 25);
    snprintf(stale, sizeof(stale), "%s.tmp.Zz9900", csv);
    write_text(stale, "layername,0.1\nlay", 17);
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "fp", &err) == 0);
    CHECK_MSG(npe_sens_resume(&t, &info, &err) == 0, "%s", err.msg);
    CHECK(info.found == 1 && info.stale_tmp == 2 && info.restored == last);
    CHECK(count_entries(dir) <= 2);
    /* finish the run: the same sens.csv as the uninterrupted one */
    CHECK(npe_sens_save(&t, &err) == 0);
    CHECK(run_to_end(&t, &err) == 0);
    char *got = read_text(csv, NULL);
    CHECK(got && want && !strcmp(got, want));
    free(got);
    npe_sens_finish(&t);

    /* A complete run resumes to nothing pending. */
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == 0);
    CHECK(info.restored == want_measured);
    size_t g, i;
    CHECK(npe_sens_next(&t, &g, &i) == 0);
    npe_sens_finish(&t);

    /* Another context is an error naming what differs; the baseline may move by 1e-9. */
    CHECK(build_resume_table(&t, dir, "top5", 0.9, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == NPE_EINVAL);
    CHECK(strstr(err.msg, "metric: 'top1' there, 'top5' now") && strstr(err.msg, "output_dir"));
    npe_sens_finish(&t);
    CHECK(build_resume_table(&t, dir, "top1", 0.9 + 2e-9, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == NPE_EINVAL);
    CHECK(strstr(err.msg, "baseline") != NULL);
    npe_sens_finish(&t);
    CHECK(build_resume_table(&t, dir, "top1", 0.9 + 5e-10, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == 0 && info.restored == want_measured);
    npe_sens_finish(&t);
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "other model", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == NPE_EINVAL);
    CHECK(strstr(err.msg, "fingerprint: 'fp' there, 'other model' now") != NULL);
    npe_sens_finish(&t);

    /* Same context, other groups and lists: values of matching pairs are kept, others dropped.
     * layer0 now has a different member list (re-measured); layer1 only 0.1..0.3 plus 0.95;
     * layers 2.. are gone. */
    npe_sens_config cfg = {.metric = "top1", .higher_is_better = 1, .baseline = 0.9, .thres = 0.3,
                           .early_stop = NPE_EARLY_STOP_NONE, .fingerprint = "fp"};
    CHECK(npe_sens_init(&t, &cfg, &err) == 0);
    const char *m0[] = {"layer0.conv"};
    npe_sens_group_spec s0 = {.name = "layer0.conv", .members = m0, .n_members = 1, .channels = 8,
                              .sparsities = KSP, .n_sparsities = KS};
    const char *m1[] = {"layer1.conv", "layer1.down"};
    double l1[] = {0.1, 0.2, 0.3, 0.95};
    npe_sens_group_spec s1 = {.name = "layer1.conv", .members = m1, .n_members = 2, .channels = 9,
                              .sparsities = l1, .n_sparsities = 4};
    CHECK(npe_sens_add_group(&t, &s0, &err) == 0 && npe_sens_add_group(&t, &s1, &err) == 1);
    CHECK(npe_sens_set_output(&t, dir, &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == 0);
    CHECK_EQ_INT(info.restored, 3);
    CHECK_EQ_INT(info.discarded, want_measured - 3);
    CHECK(t.groups[1].measured[0] && t.groups[1].measured[2] && !t.groups[1].measured[3]);
    CHECK(t.groups[1].values[2] == fake_metric(1, 2));
    for (size_t k = 0; k < KS; k++)
        CHECK(!t.groups[0].measured[k]);
    npe_sens_finish(&t);

    /* A damaged sens.json (not from a kill: we only rename complete files) is an error with its
     * line, not a silent fresh start. */
    size_t len;
    char *full = read_text(json, &len);
    write_text(json, full, len / 2);
    CHECK(build_resume_table(&t, dir, "top1", 0.9, "fp", &err) == 0);
    CHECK(npe_sens_resume(&t, &info, &err) == NPE_EFORMAT);
    CHECK(strstr(err.msg, "sens.json:") && strstr(err.msg, "remove the file"));
    npe_sens_finish(&t);
    free(full);
    free(want);
    rm_dir(dir);
}

/* Parallel order: results recorded out of order (later sparsities first, speculative ones past the
 * stop) give the serial run's sens.csv. */
static void test_parallel_order(void)
{
    npe_error err = {0};
    npe_sens_table a, b;
    CHECK(build_resume_table(&a, NULL, "top1", 0.9, "fp", &err) == 0);
    CHECK(build_resume_table(&b, NULL, "top1", 0.9, "fp", &err) == 0);
    CHECK(run_to_end(&a, &err) == 0);
    for (size_t i = KS; i-- > 0;)
        for (size_t g = KG; g-- > 0;)
            if (npe_sens_pending(&b, g, i) || (g % 3 == 0))
                CHECK(npe_sens_record(&b, g, i, fake_metric(g, i), &err) == 0);
    size_t g, i;
    CHECK(npe_sens_next(&b, &g, &i) == 0);
    char *x = NULL, *y = NULL;
    CHECK(npe_sens_csv_text(&a, &x, NULL, &err) == 0 && npe_sens_csv_text(&b, &y, NULL, &err) == 0);
    CHECK(x && y && !strcmp(x, y));
    free(x);
    free(y);
    npe_sens_finish(&a);
    npe_sens_finish(&b);
}

static void test_fingerprint(void)
{
    npe_error err = {0};
    char path[512], fp[64];
    path_in(path, sizeof(path), NULL, "model.bin");
    write_text(path, "hello", 5);
    CHECK(npe_sens_file_fingerprint(path, fp, &err) == 0);
    CHECK_STR(fp, "size=5 crc32=3610a686"); /* Python: zlib.crc32(b'hello') == 0x3610a686 */
    write_text(path, "", 0);
    CHECK(npe_sens_file_fingerprint(path, fp, &err) == 0);
    CHECK_STR(fp, "size=0 crc32=00000000");
    unlink(path);
    CHECK(npe_sens_file_fingerprint(path, fp, &err) < 0);
    CHECK(strstr(err.msg, "model.bin") != NULL);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/npe_sens_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    test_format();
    test_early_stop();
    test_table();
    test_csv_text();
    test_json();
    test_csv_read();
    test_resume();
    test_parallel_order();
    test_fingerprint();
    char p[512];
    path_in(p, sizeof(p), NULL, "rt.csv");
    unlink(p);
    rm_dir(tmpdir);
    return tu_finish("sens_table");
}
