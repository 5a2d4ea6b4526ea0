/* Tests of the TOML reader: an lbprune-style configuration with every value checked, one case
 * per error kind with its exact message and line:col, and hand-written cases in the manner of
 * the toml-test suite (valid documents with their values, invalid ones that must be refused).
 * Usage: test_toml <tests/data dir> (for toml/lbprune.toml, a copy of the inline config) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"
#include "testutil.h"

static npe_toml_doc *parse_ok(const char *text, const char *what)
{
    npe_toml_doc *doc = NULL;
    npe_error err = {0};
    int rc = npe_toml_parse(text, strlen(text), "t.toml", &doc, &err);
    CHECK_MSG(rc == 0 && doc, "%s: %s", what, err.msg);
    return doc;
}

static void expect_error(const char *text, int code, const char *msg)
{
    npe_toml_doc *doc = (npe_toml_doc *)1;
    npe_error err = {0};
    int rc = npe_toml_parse(text, strlen(text), "t.toml", &doc, &err);
    CHECK_MSG(rc == code, "rc %d, want %d for: %s (%s)", rc, code, text, err.msg);
    CHECK(doc == NULL);
    CHECK_STR(err.msg, msg);
    if (!rc)
        npe_toml_free(doc);
}

static const npe_toml_value *get(const npe_toml_value *t, const char *key, npe_toml_kind kind)
{
    const npe_toml_value *v = npe_toml_get(t, key);
    CHECK_MSG(v && v->kind == kind, "key '%s': %s, want %s", key,
              v ? npe_toml_kind_name(v->kind) : "missing", npe_toml_kind_name(kind));
    return v && v->kind == kind ? v : NULL;
}

static void check_str(const npe_toml_value *t, const char *key, const char *want)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_STRING);
    if (v) {
        CHECK_STR(v->u.str.s, want);
        CHECK_EQ_INT(v->u.str.len, strlen(want));
    }
}

static void check_int(const npe_toml_value *t, const char *key, int64_t want)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_INT);
    if (v)
        CHECK_MSG(v->u.i == want, "key '%s': %lld, want %lld", key, (long long)v->u.i,
                  (long long)want);
}

static void check_float(const npe_toml_value *t, const char *key, double want)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_FLOAT);
    if (v)
        CHECK_MSG(v->u.f == want, "key '%s': %.17g, want %.17g", key, v->u.f, want);
}

static void check_bool(const npe_toml_value *t, const char *key, int want)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_BOOL);
    if (v)
        CHECK_EQ_INT(v->u.b, want);
}

static void check_floats(const npe_toml_value *t, const char *key, const double *want, size_t n)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_ARRAY);
    if (!v)
        return;
    CHECK_EQ_INT(v->u.arr.n, n);
    for (size_t i = 0; i < n && i < v->u.arr.n; i++) {
        const npe_toml_value *e = v->u.arr.items[i];
        CHECK_MSG(e->kind == NPE_TOML_FLOAT && e->u.f == want[i], "%s[%zu]", key, i);
    }
}

static void check_strs(const npe_toml_value *t, const char *key, const char *const *want, size_t n)
{
    const npe_toml_value *v = get(t, key, NPE_TOML_ARRAY);
    if (!v)
        return;
    CHECK_EQ_INT(v->u.arr.n, n);
    for (size_t i = 0; i < n && i < v->u.arr.n; i++) {
        const npe_toml_value *e = v->u.arr.items[i];
        CHECK_MSG(e->kind == NPE_TOML_STRING && strcmp(e->u.str.s, want[i]) == 0, "%s[%zu]", key,
                  i);
    }
}

static void check_pos(const npe_toml_value *v, int line, int col)
{
    CHECK_MSG(v && v->line == line && v->col == col, "position %d:%d, want %d:%d",
              v ? v->line : 0, v ? v->col : 0, line, col);
}

/* Position of key i of table t as written. */
static void check_key(const npe_toml_value *t, size_t i, const char *key, int line, int col)
{
    CHECK_MSG(t && i < t->u.tab.n, "key %zu missing", i);
    if (!t || i >= t->u.tab.n)
        return;
    CHECK_STR(t->u.tab.keys[i], key);
    CHECK_MSG(t->u.tab.key_line[i] == line && t->u.tab.key_col[i] == col,
              "key '%s' at %d:%d, want %d:%d", key, t->u.tab.key_line[i], t->u.tab.key_col[i], line,
              col);
}

static const char config[] =
    "# lbprune: sensitivity analysis of ResNet-18 on Fashion-MNIST\n"   /* 1 */
    "title = \"resnet18 sensitivity\"\n"                                 /* 2 */
    "\n"                                                                 /* 3 */
    "[model]\n"                                                          /* 4 */
    "path = \"models/resnet18.pth\"\n"                                   /* 5 */
    "format = 'state_dict'  # or full_model, torchscript\n"              /* 6 */
    "input_shape = [1, 1, 28, 28]\n"                                     /* 7 */
    "\n"                                                                 /* 8 */
    "[data]\n"                                                           /* 9 */
    "dataset = \"fashion-mnist\"\n"                                      /* 10 */
    "root = '/usr/share/datasets/fashion-mnist'\n"                       /* 11 */
    "batch_size = 256\n"                                                 /* 12 */
    "num_batches = 0x10\n"                                               /* 13 */
    "mean = [0.2860]\n"                                                  /* 14 */
    "std = [0.3530]\n"                                                   /* 15 */
    "\n"                                                                 /* 16 */
    "[metric]\n"                                                         /* 17 */
    "name = \"top1\"\n"                                                  /* 18 */
    "ori_metric = 0.9231\n"                                              /* 19 */
    "metric_thres = 5e-2\n"                                              /* 20 */
    "\n"                                                                 /* 21 */
    "[prune]\n"                                                          /* 22 */
    "sparsities = [0.1, 0.2, 0.3]\n"                                     /* 23 */
    "exclude_layers = [\"conv1\", \"fc\"]\n"                             /* 24 */
    "early_stop_mode = \"dropped\"\n"                                    /* 25 */
    "channel_alignment = 2\n"                                            /* 26 */
    "max_evals = 1_000\n"                                                /* 27 */
    "\n"                                                                 /* 28 */
    "[prune.sparsities_dict]\n"                                          /* 29 */
    "\"layer1.0.conv1\" = [0.1, 0.5]\n"                                  /* 30 */
    "\"layer2.1.conv2\" = [\n"                                           /* 31 */
    "    0.25,  # a quarter\n"                                           /* 32 */
    "    0.75,\n"                                                        /* 33 */
    "]\n"                                                                /* 34 */
    "\n"                                                                 /* 35 */
    "[[prune.config_list]]\n"                                            /* 36 */
    "sparsity = 0.5\n"                                                   /* 37 */
    "op_types = [\"Conv2d\"]\n"                                          /* 38 */
    "op_names = [\"layer1.0.conv1\", \"layer1.0.conv2\"]\n"              /* 39 */
    "\n"                                                                 /* 40 */
    "[[prune.config_list]]\n"                                            /* 41 */
    "sparsity = 0.25\n"                                                  /* 42 */
    "op_types = [\"Conv2d\", \"Linear\"]\n"                              /* 43 */
    "op_names = []\n"                                                    /* 44 */
    "\n"                                                                 /* 45 */
    "[run]\n"                                                            /* 46 */
    "threads = 4\n"                                                      /* 47 */
    "seed = -1\n"                                                        /* 48 */
    "deterministic = true\n"                                             /* 49 */
    "cuda = false\n"                                                     /* 50 */
    "log = { level = \"info\", file = \"run.log\" }\n"                   /* 51 */
    "started = 2024-05-01T12:30:00Z\n";                                  /* 52 */

static void test_config(void)
{
    npe_toml_doc *doc = parse_ok(config, "config");
    if (!doc)
        return;
    CHECK_STR(npe_toml_filename(doc), "t.toml");
    const npe_toml_value *root = npe_toml_root(doc);
    CHECK(root->kind == NPE_TOML_TABLE && root->u.tab.n == 6);
    check_key(root, 0, "title", 2, 1);
    check_key(root, 1, "model", 4, 2);
    check_key(root, 2, "data", 9, 2);
    check_key(root, 3, "metric", 17, 2);
    check_key(root, 4, "prune", 22, 2);
    check_key(root, 5, "run", 46, 2);
    check_str(root, "title", "resnet18 sensitivity");
    check_pos(npe_toml_get(root, "title"), 2, 9);

    const npe_toml_value *model = get(root, "model", NPE_TOML_TABLE);
    check_pos(model, 4, 1);
    CHECK(model && model->u.tab.n == 3);
    check_str(model, "path", "models/resnet18.pth");
    check_str(model, "format", "state_dict");
    const npe_toml_value *shape = get(model, "input_shape", NPE_TOML_ARRAY);
    check_pos(shape, 7, 15);
    if (shape) {
        static const int64_t want[4] = {1, 1, 28, 28};
        CHECK_EQ_INT(shape->u.arr.n, 4);
        for (size_t i = 0; i < 4 && i < shape->u.arr.n; i++)
            CHECK(shape->u.arr.items[i]->kind == NPE_TOML_INT &&
                  shape->u.arr.items[i]->u.i == want[i]);
        if (shape->u.arr.n == 4)
            check_pos(shape->u.arr.items[2], 7, 22);
    }

    const npe_toml_value *data = get(root, "data", NPE_TOML_TABLE);
    CHECK(data && data->u.tab.n == 6);
    check_str(data, "dataset", "fashion-mnist");
    check_str(data, "root", "/usr/share/datasets/fashion-mnist");
    check_int(data, "batch_size", 256);
    check_int(data, "num_batches", 16);
    static const double mean[] = {0.2860}, std[] = {0.3530};
    check_floats(data, "mean", mean, 1);
    check_floats(data, "std", std, 1);

    const npe_toml_value *metric = get(root, "metric", NPE_TOML_TABLE);
    CHECK(metric && metric->u.tab.n == 3);
    check_str(metric, "name", "top1");
    check_float(metric, "ori_metric", 0.9231);
    check_float(metric, "metric_thres", 0.05);
    check_pos(npe_toml_get(metric, "metric_thres"), 20, 16);

    const npe_toml_value *prune = get(root, "prune", NPE_TOML_TABLE);
    CHECK(prune && prune->u.tab.n == 7);
    static const double sp[] = {0.1, 0.2, 0.3};
    check_floats(prune, "sparsities", sp, 3);
    static const char *const excl[] = {"conv1", "fc"};
    check_strs(prune, "exclude_layers", excl, 2);
    check_str(prune, "early_stop_mode", "dropped");
    check_int(prune, "channel_alignment", 2);
    check_int(prune, "max_evals", 1000);
    check_key(prune, 5, "sparsities_dict", 29, 8);
    check_key(prune, 6, "config_list", 36, 9);

    const npe_toml_value *sd = get(prune, "sparsities_dict", NPE_TOML_TABLE);
    check_pos(sd, 29, 1);
    CHECK(sd && sd->u.tab.n == 2);
    static const double l1[] = {0.1, 0.5}, l2[] = {0.25, 0.75};
    check_floats(sd, "layer1.0.conv1", l1, 2);
    check_floats(sd, "layer2.1.conv2", l2, 2);
    check_key(sd, 0, "layer1.0.conv1", 30, 1);
    check_key(sd, 1, "layer2.1.conv2", 31, 1);
    const npe_toml_value *l2v = npe_toml_get(sd, "layer2.1.conv2");
    if (l2v && l2v->kind == NPE_TOML_ARRAY && l2v->u.arr.n == 2) {
        check_pos(l2v, 31, 20);
        check_pos(l2v->u.arr.items[0], 32, 5);
        check_pos(l2v->u.arr.items[1], 33, 5);
    }

    const npe_toml_value *cl = get(prune, "config_list", NPE_TOML_ARRAY);
    check_pos(cl, 36, 1);
    if (cl && cl->u.arr.n == 2) {
        const npe_toml_value *c0 = cl->u.arr.items[0], *c1 = cl->u.arr.items[1];
        CHECK(c0->kind == NPE_TOML_TABLE && c1->kind == NPE_TOML_TABLE);
        check_pos(c0, 36, 1);
        check_pos(c1, 41, 1);
        check_float(c0, "sparsity", 0.5);
        static const char *const t0[] = {"Conv2d"};
        static const char *const n0[] = {"layer1.0.conv1", "layer1.0.conv2"};
        check_strs(c0, "op_types", t0, 1);
        check_strs(c0, "op_names", n0, 2);
        check_float(c1, "sparsity", 0.25);
        static const char *const t1[] = {"Conv2d", "Linear"};
        check_strs(c1, "op_types", t1, 2);
        check_strs(c1, "op_names", NULL, 0);
        check_key(c1, 0, "sparsity", 42, 1);
    } else {
        CHECK_MSG(0, "config_list should hold 2 tables");
    }

    const npe_toml_value *run = get(root, "run", NPE_TOML_TABLE);
    CHECK(run && run->u.tab.n == 6);
    check_int(run, "threads", 4);
    check_int(run, "seed", -1);
    check_bool(run, "deterministic", 1);
    check_bool(run, "cuda", 0);
    const npe_toml_value *log = get(run, "log", NPE_TOML_TABLE);
    check_pos(log, 51, 7);
    CHECK(log && log->u.tab.n == 2);
    check_str(log, "level", "info");
    check_str(log, "file", "run.log");
    check_key(log, 1, "file", 51, 25);
    const npe_toml_value *st = get(run, "started", NPE_TOML_DATETIME);
    if (st) {
        CHECK_STR(st->u.str.s, "2024-05-01T12:30:00Z");
        check_pos(st, 52, 11);
    }
    CHECK(npe_toml_get(run, "missing") == NULL);
    CHECK(npe_toml_get(npe_toml_get(run, "threads"), "x") == NULL); /* not a table */
    npe_toml_free(doc);
}

/* One case per kind of error, each with its exact message. */
static void test_errors(void)
{
    /* redefinitions */
    expect_error("a = 1\na = 2\n", NPE_EFORMAT,
                 "t.toml:2:1: expected a key not defined before, found 'a' already defined at 1:1 "
                 "as an integer");
    expect_error("[a]\nx = 1\n\n[a]\n", NPE_EFORMAT,
                 "t.toml:4:2: expected a table not defined before, found 'a' already defined at "
                 "1:2 as a [table]");
    expect_error("[x]\n[x.y]\n[x . y]\n", NPE_EFORMAT,
                 "t.toml:3:6: expected a table not defined before, found 'y' already defined at "
                 "2:4 as a [table]");
    expect_error("a.b = 1\n[a]\n", NPE_EFORMAT,
                 "t.toml:2:2: expected a table not defined before, found 'a' already defined at "
                 "1:1 as a table of dotted keys");
    expect_error("[t]\nx.y = 1\nx = 2\n", NPE_EFORMAT,
                 "t.toml:3:1: expected a key not defined before, found 'x' already defined at 2:1 "
                 "as a table of dotted keys");
    expect_error("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", NPE_EFORMAT,
                 "t.toml:4:3: expected a table that dotted keys may extend, found 'c' already "
                 "defined at 1:6 as a [table]");
    expect_error("[a.b.c]\n[a]\nb.d = 1\n[a.b]\n", NPE_EFORMAT,
                 "t.toml:4:4: expected a table not defined before, found 'b' already defined at "
                 "1:4 as a table of dotted keys");
    expect_error("x = 1\n[x.y]\n", NPE_EFORMAT,
                 "t.toml:2:2: expected a table, found 'x' already defined at 1:1 as an integer");
    expect_error("x = 1\nx.y = 2\n", NPE_EFORMAT,
                 "t.toml:2:1: expected a table that dotted keys may extend, found 'x' already "
                 "defined at 1:1 as an integer");
    /* inline tables are complete once closed */
    expect_error("log = {level = \"info\"}\nlog.file = \"x\"\n", NPE_EFORMAT,
                 "t.toml:2:1: expected a table that dotted keys may extend, found 'log' already "
                 "defined at 1:1 as an inline table");
    expect_error("a = {b = {c = 1}}\n[a.b.d]\n", NPE_EFORMAT,
                 "t.toml:2:2: expected a table, found 'a' already defined at 1:1 as an inline "
                 "table");
    expect_error("a = {}\n[a]\n", NPE_EFORMAT,
                 "t.toml:2:2: expected a table not defined before, found 'a' already defined at "
                 "1:1 as an inline table");
    expect_error("a = {b.c = 1, b = 2}\n", NPE_EFORMAT,
                 "t.toml:1:15: expected a key not defined before, found 'b' already defined at "
                 "1:6 as a table of dotted keys");
    /* arrays: static arrays take no [[ ]] */
    expect_error("x = [1]\n[[x]]\n", NPE_EFORMAT,
                 "t.toml:2:3: expected an array of tables, found 'x' already defined at 1:1 as a "
                 "static array");
    expect_error("x = [{a = 1}]\n[[x]]\n", NPE_EFORMAT,
                 "t.toml:2:3: expected an array of tables, found 'x' already defined at 1:1 as a "
                 "static array");
    expect_error("[[x]]\n[x]\n", NPE_EFORMAT,
                 "t.toml:2:2: expected a table not defined before, found 'x' already defined at "
                 "1:3 as an array of tables");
    expect_error("[x]\n[[x]]\n", NPE_EFORMAT,
                 "t.toml:2:3: expected an array of tables, found 'x' already defined at 1:2 as a "
                 "[table]");
    expect_error("[a]\n[[a.b]]\n[a]\nb.c = 1\n", NPE_EFORMAT,
                 "t.toml:3:2: expected a table not defined before, found 'a' already defined at "
                 "1:2 as a [table]");
    /* syntax */
    expect_error("[model]\nname \"resnet\"\n", NPE_EFORMAT,
                 "t.toml:2:6: expected '=' after key 'name', found '\"'");
    expect_error("[prune]\nsparsity =\n", NPE_EFORMAT,
                 "t.toml:2:11: expected a value (string, number, boolean, date, array or inline "
                 "table), found end of line");
    expect_error("a = 1 b = 2\n", NPE_EFORMAT,
                 "t.toml:1:7: expected end of line after the value, found 'b'");
    expect_error("[a] x = 1\n", NPE_EFORMAT,
                 "t.toml:1:5: expected end of line after a table header, found 'x'");
    expect_error("[a\n", NPE_EFORMAT,
                 "t.toml:1:3: expected ']' closing the table header, found end of line");
    expect_error("[[a]\n", NPE_EFORMAT,
                 "t.toml:1:4: expected ']]' closing the array-of-tables header, found ']'");
    expect_error("[]\n", NPE_EFORMAT, "t.toml:1:2: expected a key, found ']'");
    expect_error("a.\n", NPE_EFORMAT, "t.toml:1:3: expected a key, found end of line");
    expect_error("= 1\n", NPE_EFORMAT,
                 "t.toml:1:1: expected a key, a [table] header or a comment, found '='");
    expect_error("\"\"\"k\"\"\" = 1\n", NPE_EFORMAT,
                 "t.toml:1:1: expected a key (multi-line strings cannot be keys), found '\"'");
    /* strings */
    expect_error("s = \"C:\\path\"\n", NPE_EFORMAT,
                 "t.toml:1:8: expected an escape (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX "
                 "\\UXXXXXXXX), found '\\p'");
    expect_error("s = \"abc\ndef\"\n", NPE_EFORMAT,
                 "t.toml:1:9: expected '\"' closing the string, found end of line");
    expect_error("s = 'abc", NPE_EFORMAT,
                 "t.toml:1:9: expected \"'\" closing the string, found end of file");
    expect_error("s = \"\"\"abc\n", NPE_EFORMAT,
                 "t.toml:1:5: expected '\"\"\"' closing the multi-line string, found end of file");
    expect_error("s = \"\\u12\"\n", NPE_EFORMAT,
                 "t.toml:1:6: expected 4 hex digits after '\\u', found '\\u12\"'");
    expect_error("s = \"\\uD800\"\n", NPE_EFORMAT,
                 "t.toml:1:6: expected a Unicode scalar value, found '\\uD800'");
    expect_error("s = \"a\tb\x01\"\n", NPE_EFORMAT,
                 "t.toml:1:9: expected string text without control characters, found control "
                 "character U+0001");
    expect_error("s = '''a''''''\n", NPE_EFORMAT,
                 "t.toml:1:14: expected at most five quotes closing a multi-line string, found 6");
    /* numbers */
    expect_error("n = 9223372036854775808\n", NPE_EFORMAT,
                 "t.toml:1:5: expected an integer from -9223372036854775808 to "
                 "9223372036854775807, found '9223372036854775808'");
    expect_error("n = -9223372036854775809\n", NPE_EFORMAT,
                 "t.toml:1:5: expected an integer from -9223372036854775808 to "
                 "9223372036854775807, found '-9223372036854775809'");
    expect_error("n = 0x8000000000000000\n", NPE_EFORMAT,
                 "t.toml:1:5: expected an integer at most 9223372036854775807, found "
                 "'0x8000000000000000'");
    expect_error("n = 012\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a number without leading zeros, found '012'");
    expect_error("n = [1, 2, 1__000]\n", NPE_EFORMAT,
                 "t.toml:1:12: expected a number (digits, '.', exponent, single '_' between "
                 "digits), found '1__000'");
    expect_error("n = 1.\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a number (digits, '.', exponent, single '_' between "
                 "digits), found '1.'");
    expect_error("n = +0x10\n", NPE_EFORMAT,
                 "t.toml:1:5: expected no sign before a 0x integer, found '+0x10'");
    expect_error("n = 0b102\n", NPE_EFORMAT,
                 "t.toml:1:5: expected base-2 digits after '0b', found '0b102'");
    expect_error("f = 1e400\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a float within the range of a double, found '1e400'");
    expect_error("b = True\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a value (string, number, boolean, date, array or inline "
                 "table), found 'True'");
    /* dates */
    expect_error("d = 2023-02-29\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a date YYYY-MM-DD, found '2023-02-29'");
    expect_error("d = 1979-05-27T25:00:00\n", NPE_EFORMAT,
                 "t.toml:1:16: expected a time HH:MM:SS[.fraction] after the date, found "
                 "'25:00:00'");
    expect_error("d = 1979-05-27T07:32:00+7:00\n", NPE_EFORMAT,
                 "t.toml:1:24: expected a time offset Z or +HH:MM, found '+7:00'");
    expect_error("t = 07:32\n", NPE_EFORMAT,
                 "t.toml:1:5: expected a time HH:MM:SS[.fraction], found '07:32'");
    /* arrays and inline tables */
    expect_error("a = [1 2]\n", NPE_EFORMAT,
                 "t.toml:1:8: expected ',' or ']' after an array element, found '2'");
    expect_error("a = [1,\n  ,2]\n", NPE_EFORMAT,
                 "t.toml:2:3: expected a value (string, number, boolean, date, array or inline "
                 "table), found ','");
    expect_error("a = [1, 2\n", NPE_EFORMAT,
                 "t.toml:2:1: expected ',' or ']' after an array element, found end of file");
    expect_error("log = {level = \"info\",\n  file = \"x\"}\n", NPE_EFORMAT,
                 "t.toml:1:23: expected a key, found end of line");
    expect_error("log = {level = \"info\"\n}\n", NPE_EFORMAT,
                 "t.toml:1:22: expected ',' or '}' in an inline table (which must fit on one "
                 "line), found end of line");
    expect_error("log = {level = \"info\", }\n", NPE_EFORMAT,
                 "t.toml:1:24: expected a key after ',' (TOML 1.0 inline tables take no trailing "
                 "comma), found '}'");
    /* text */
    expect_error("# note\x7f\n", NPE_EFORMAT,
                 "t.toml:1:7: expected a comment without control characters, found control "
                 "character U+007F");
    expect_error("a = 1\nb = \"\xc3\x28\"\n", NPE_EFORMAT,
                 "t.toml:2:6: expected UTF-8 text, found byte 0xC3");
    expect_error("a = \"\xed\xa0\x80\"\n", NPE_EFORMAT, /* an encoded surrogate */
                 "t.toml:1:6: expected UTF-8 text, found byte 0xED");
    expect_error("a = 1\r\nb = 2\r", NPE_EFORMAT,
                 "t.toml:2:6: expected end of line after the value, found a carriage return not "
                 "followed by a newline");
    /* limits */
    char deep[400];
    int n = snprintf(deep, sizeof(deep), "a = ");
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    expect_error(deep, NPE_ELIMIT,
                 "t.toml:1:133: expected values nested at most 128 deep, found deeper nesting");
    n = 0;
    for (int i = 0; i < 130; i++)
        n += snprintf(deep + n, sizeof(deep) - (size_t)n, "a.");
    snprintf(deep + n, sizeof(deep) - (size_t)n, "b = 1\n");
    expect_error(deep, NPE_ELIMIT, "t.toml:1:257: expected a key of at most 128 parts, found more");
    char *inl = malloc(2000);
    n = snprintf(inl, 2000, "x = ");
    for (int i = 0; i < 130; i++)
        n += snprintf(inl + n, 2000 - (size_t)n, "{a = ");
    snprintf(inl + n, 2000 - (size_t)n, "1");
    expect_error(inl, NPE_ELIMIT,
                 "t.toml:1:645: expected values nested at most 128 deep, found deeper nesting");
    free(inl);

    npe_toml_doc *doc;
    npe_error err = {0};
    CHECK_EQ_INT(npe_toml_load("/nonexistent/cfg.toml", &doc, &err), NPE_EIO);
    CHECK(doc == NULL);
    CHECK(strstr(err.msg, "/nonexistent/cfg.toml") != NULL);
}

/* Valid documents in the manner of toml-test, each with its expected values. */
static void test_valid(void)
{
    npe_toml_doc *doc;
    const npe_toml_value *r;

    doc = parse_ok("", "empty");
    CHECK(doc && npe_toml_root(doc)->u.tab.n == 0);
    npe_toml_free(doc);
    doc = parse_ok("# only a comment\n\n   \t\n# another", "comments");
    CHECK(doc && npe_toml_root(doc)->u.tab.n == 0);
    npe_toml_free(doc);

    /* strings */
    doc = parse_ok("basic = \"tab\\tquote\\\"back\\\\ \\u00E9 \\U0001F600 \\b\\f\\r\\n\"\n"
                   "lit = 'C:\\Users\\nodejs\\templates'\n"
                   "ml = \"\"\"\nRoses are red\r\nViolets are blue\"\"\"\n"
                   "fold = \"\"\"\\\n    The quick \\\n\n    brown fox.\\\n    \"\"\"\n"
                   "mll = '''\nfirst\n  second \\n'''\n"
                   "q = \"\"\"\"one\" \"\"two\"\"\"\"\"\n"
                   "lq = ''''That,' she said, 'is it.''''\n"
                   "empty = \"\"\n"
                   "nul = \"a\\u0000b\"\n"
                   "utf8 = \"\xe2\x82\xac \xf0\x9f\x98\x80\"\n",
                   "strings");
    if (doc) {
        r = npe_toml_root(doc);
        check_str(r, "basic", "tab\tquote\"back\\ \xc3\xa9 \xf0\x9f\x98\x80 \b\f\r\n");
        check_str(r, "lit", "C:\\Users\\nodejs\\templates");
        check_str(r, "ml", "Roses are red\nViolets are blue");
        check_str(r, "fold", "The quick brown fox.");
        check_str(r, "mll", "first\n  second \\n");
        check_str(r, "q", "\"one\" \"\"two\"\"");
        check_str(r, "lq", "'That,' she said, 'is it.'");
        check_str(r, "empty", "");
        const npe_toml_value *nul = get(r, "nul", NPE_TOML_STRING);
        CHECK(nul && nul->u.str.len == 3 && memcmp(nul->u.str.s, "a\0b", 4) == 0);
        check_str(r, "utf8", "\xe2\x82\xac \xf0\x9f\x98\x80");
        npe_toml_free(doc);
    }

    /* integers and floats */
    doc = parse_ok("i1 = +99\ni2 = 42\ni3 = 0\ni4 = -17\ni5 = 1_000\ni6 = 5_349_221\n"
                   "i7 = -0\ni8 = +0\nh1 = 0xDEADBEEF\nh2 = 0xdead_beef\no1 = 0o01234567\n"
                   "o2 = 0o755\nb1 = 0b11010110\nmax = 9223372036854775807\n"
                   "min = -9223372036854775808\nhmax = 0x7FFFFFFFFFFFFFFF\nh0 = 0x000\n"
                   "f1 = +1.0\nf2 = 3.1415\nf3 = -0.01\nf4 = 5e+22\nf5 = 1e06\nf6 = -2E-2\n"
                   "f7 = 6.626e-34\nf8 = 224_617.445_991_228\nf9 = 0.0\nf10 = -0.0\n"
                   "f11 = 1e-400\nf12 = 0e0\nf13 = 1.7976931348623157e308\n"
                   "inf1 = inf\ninf2 = +inf\ninf3 = -inf\nnan1 = nan\nnan2 = +nan\nnan3 = -nan\n"
                   "t = true\nf = false\n",
                   "numbers");
    if (doc) {
        r = npe_toml_root(doc);
        check_int(r, "i1", 99);
        check_int(r, "i2", 42);
        check_int(r, "i3", 0);
        check_int(r, "i4", -17);
        check_int(r, "i5", 1000);
        check_int(r, "i6", 5349221);
        check_int(r, "i7", 0);
        check_int(r, "i8", 0);
        check_int(r, "h1", 0xDEADBEEF);
        check_int(r, "h2", 0xDEADBEEF);
        check_int(r, "o1", 01234567);
        check_int(r, "o2", 0755);
        check_int(r, "b1", 214);
        check_int(r, "max", INT64_MAX);
        check_int(r, "min", INT64_MIN);
        check_int(r, "hmax", INT64_MAX);
        check_int(r, "h0", 0);
        check_float(r, "f1", 1.0);
        check_float(r, "f2", 3.1415);
        check_float(r, "f3", -0.01);
        check_float(r, "f4", 5e22);
        check_float(r, "f5", 1e6);
        check_float(r, "f6", -0.02);
        check_float(r, "f7", 6.626e-34);
        check_float(r, "f8", 224617.445991228);
        check_float(r, "f9", 0.0);
        const npe_toml_value *f10 = get(r, "f10", NPE_TOML_FLOAT);
        CHECK(f10 && f10->u.f == 0.0 && signbit(f10->u.f));
        const npe_toml_value *f11 = get(r, "f11", NPE_TOML_FLOAT);
        CHECK(f11 && f11->u.f == 0.0);
        check_float(r, "f12", 0.0);
        check_float(r, "f13", 1.7976931348623157e308);
        const npe_toml_value *v;
        CHECK((v = get(r, "inf1", NPE_TOML_FLOAT)) && isinf(v->u.f) && v->u.f > 0);
        CHECK((v = get(r, "inf2", NPE_TOML_FLOAT)) && isinf(v->u.f) && v->u.f > 0);
        CHECK((v = get(r, "inf3", NPE_TOML_FLOAT)) && isinf(v->u.f) && v->u.f < 0);
        CHECK((v = get(r, "nan1", NPE_TOML_FLOAT)) && isnan(v->u.f));
        CHECK((v = get(r, "nan2", NPE_TOML_FLOAT)) && isnan(v->u.f));
        CHECK((v = get(r, "nan3", NPE_TOML_FLOAT)) && isnan(v->u.f));
        check_bool(r, "t", 1);
        check_bool(r, "f", 0);
        npe_toml_free(doc);
    }

    /* dates and times, kept as written */
    static const char *const dts[][2] = {
        {"odt1", "1979-05-27T07:32:00Z"},       {"odt2", "1979-05-27T00:32:00-07:00"},
        {"odt3", "1979-05-27T00:32:00.999999-07:00"}, {"odt4", "1979-05-27 07:32:00Z"},
        {"odt5", "1979-05-27t07:32:00z"},        {"ldt1", "1979-05-27T07:32:00"},
        {"ldt2", "1979-05-27T00:32:00.999999"},  {"ld1", "1979-05-27"},
        {"lt1", "07:32:00"},                     {"lt2", "00:32:00.999999"},
        {"leap", "2024-02-29"},                  {"sec60", "1990-12-31T23:59:60Z"},
    };
    char text[1024];
    size_t len = 0;
    for (size_t i = 0; i < sizeof(dts) / sizeof(dts[0]); i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s = %s # c\n", dts[i][0],
                                dts[i][1]);
    doc = parse_ok(text, "dates");
    if (doc) {
        r = npe_toml_root(doc);
        for (size_t i = 0; i < sizeof(dts) / sizeof(dts[0]); i++) {
            const npe_toml_value *v = get(r, dts[i][0], NPE_TOML_DATETIME);
            if (v)
                CHECK_STR(v->u.str.s, dts[i][1]);
        }
        npe_toml_free(doc);
    }

    /* keys */
    doc = parse_ok("key = 1\nbare_key-2 = 2\n1234 = 3\n\"127.0.0.1\" = 4\n"
                   "\"\xca\x8e\xc7\x9d\" = 5\n"
                   "'quoted \"value\"' = 6\n\"\" = 7\nsite.\"google.com\" = true\n"
                   "  a . b . c = 8\n3.14159 = \"pi\"\n",
                   "keys");
    if (doc) {
        r = npe_toml_root(doc);
        check_int(r, "key", 1);
        check_int(r, "bare_key-2", 2);
        check_int(r, "1234", 3);
        check_int(r, "127.0.0.1", 4);
        check_int(r, "\xca\x8e\xc7\x9d", 5);
        check_int(r, "quoted \"value\"", 6);
        check_int(r, "", 7);
        check_bool(get(r, "site", NPE_TOML_TABLE), "google.com", 1);
        const npe_toml_value *a = get(r, "a", NPE_TOML_TABLE);
        check_pos(a, 9, 3);
        check_int(get(a, "b", NPE_TOML_TABLE), "c", 8);
        check_key(get(a, "b", NPE_TOML_TABLE), 0, "c", 9, 11);
        check_str(get(r, "3", NPE_TOML_TABLE), "14159", "pi");
        npe_toml_free(doc);
    }

    /* tables, implicit parents, sub-tables under dotted keys, arrays of tables */
    doc = parse_ok("[x.y.z.w]\nv = 1\n[x]\nu = 2\n"
                   "[ j . \"\xca\x9e\" . 'l' ]\nk = 3\n"
                   "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
                   "[fruit.apple.texture]\nsmooth = true\n"
                   "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n"
                   "[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\n"
                   "name = \"granny smith\"\n[[fruits]]\nname = \"banana\"\n"
                   "[[fruits.varieties]]\nname = \"plantain\"\n",
                   "tables");
    if (doc) {
        r = npe_toml_root(doc);
        const npe_toml_value *x = get(r, "x", NPE_TOML_TABLE);
        check_pos(x, 3, 1); /* defined by its own header after being implied at 1:1 */
        check_int(x, "u", 2);
        check_int(get(get(get(x, "y", NPE_TOML_TABLE), "z", NPE_TOML_TABLE), "w",
                      NPE_TOML_TABLE),
                  "v", 1);
        check_int(get(get(get(r, "j", NPE_TOML_TABLE), "\xca\x9e", NPE_TOML_TABLE), "l",
                      NPE_TOML_TABLE),
                  "k", 3);
        const npe_toml_value *apple = get(get(r, "fruit", NPE_TOML_TABLE), "apple", NPE_TOML_TABLE);
        check_str(apple, "color", "red");
        check_bool(get(apple, "taste", NPE_TOML_TABLE), "sweet", 1);
        check_bool(get(apple, "texture", NPE_TOML_TABLE), "smooth", 1);
        const npe_toml_value *fr = get(r, "fruits", NPE_TOML_ARRAY);
        if (fr && fr->u.arr.n == 2) {
            const npe_toml_value *f0 = fr->u.arr.items[0], *f1 = fr->u.arr.items[1];
            check_str(f0, "name", "apple");
            check_str(get(f0, "physical", NPE_TOML_TABLE), "color", "red");
            const npe_toml_value *v0 = get(f0, "varieties", NPE_TOML_ARRAY);
            CHECK(v0 && v0->u.arr.n == 2);
            if (v0 && v0->u.arr.n == 2) {
                check_str(v0->u.arr.items[0], "name", "red delicious");
                check_str(v0->u.arr.items[1], "name", "granny smith");
            }
            check_str(f1, "name", "banana");
            const npe_toml_value *v1 = get(f1, "varieties", NPE_TOML_ARRAY);
            CHECK(v1 && v1->u.arr.n == 1);
            if (v1 && v1->u.arr.n == 1)
                check_str(v1->u.arr.items[0], "name", "plantain");
        } else {
            CHECK_MSG(0, "fruits should hold 2 tables");
        }
        npe_toml_free(doc);
    }

    /* arrays: mixed types, nesting, newlines, comments and a trailing comma */
    doc = parse_ok("a = [ 1, \"two\", 3.0, [4, [5]], {six = 6}, true, 1979-05-27, ]\n"
                   "b = [\n  # leading comment\n  1,\n\n  2 # trailing\n  ,\n]\n"
                   "c = []\nd = [[], [[]]]\n"
                   "e = {}\nf = {x = {y = 1}, z.w = [1, {q = 2}]}\n"
                   "g = {a.b = 1, a.c = 2}\n",
                   "arrays");
    if (doc) {
        r = npe_toml_root(doc);
        const npe_toml_value *a = get(r, "a", NPE_TOML_ARRAY);
        if (a && a->u.arr.n == 7) {
            static const npe_toml_kind kinds[7] = {NPE_TOML_INT,   NPE_TOML_STRING,
                                                   NPE_TOML_FLOAT, NPE_TOML_ARRAY,
                                                   NPE_TOML_TABLE, NPE_TOML_BOOL,
                                                   NPE_TOML_DATETIME};
            for (int i = 0; i < 7; i++)
                CHECK(a->u.arr.items[i]->kind == kinds[i]);
            const npe_toml_value *n = a->u.arr.items[3];
            CHECK(n->u.arr.n == 2 && n->u.arr.items[1]->kind == NPE_TOML_ARRAY &&
                  n->u.arr.items[1]->u.arr.items[0]->u.i == 5);
            check_int(a->u.arr.items[4], "six", 6);
            check_pos(a->u.arr.items[4], 1, 32);
        } else {
            CHECK_MSG(0, "a should hold 7 values");
        }
        const npe_toml_value *b = get(r, "b", NPE_TOML_ARRAY);
        CHECK(b && b->u.arr.n == 2 && b->u.arr.items[1]->u.i == 2);
        if (b && b->u.arr.n == 2)
            check_pos(b->u.arr.items[1], 6, 3);
        const npe_toml_value *c = get(r, "c", NPE_TOML_ARRAY);
        CHECK(c && c->u.arr.n == 0);
        const npe_toml_value *d = get(r, "d", NPE_TOML_ARRAY);
        CHECK(d && d->u.arr.n == 2 && d->u.arr.items[1]->u.arr.n == 1);
        const npe_toml_value *e = get(r, "e", NPE_TOML_TABLE);
        CHECK(e && e->u.tab.n == 0);
        const npe_toml_value *f = get(r, "f", NPE_TOML_TABLE);
        check_int(get(f, "x", NPE_TOML_TABLE), "y", 1);
        const npe_toml_value *w = get(get(f, "z", NPE_TOML_TABLE), "w", NPE_TOML_ARRAY);
        CHECK(w && w->u.arr.n == 2);
        if (w && w->u.arr.n == 2)
            check_int(w->u.arr.items[1], "q", 2);
        const npe_toml_value *gab = get(get(r, "g", NPE_TOML_TABLE), "a", NPE_TOML_TABLE);
        check_int(gab, "b", 1);
        check_int(gab, "c", 2);
        npe_toml_free(doc);
    }

    /* CRLF line endings, a byte-order mark, tabs, and a text without a final newline */
    doc = parse_ok("\xef\xbb\xbf[a]\r\nx\t=\t1 # c\r\ny = \"\"\"l1\r\nl2\"\"\"\r\n[b]\r\nz = 2",
                   "crlf");
    if (doc) {
        r = npe_toml_root(doc);
        const npe_toml_value *a = get(r, "a", NPE_TOML_TABLE);
        check_int(a, "x", 1);
        check_str(a, "y", "l1\nl2");
        check_key(a, 0, "x", 2, 1);
        check_pos(npe_toml_get(a, "x"), 2, 5);
        check_int(get(r, "b", NPE_TOML_TABLE), "z", 2);
        check_pos(npe_toml_get(r, "b"), 5, 1);
        npe_toml_free(doc);
    }
    /* columns count characters, not bytes */
    doc = parse_ok("\"\xc3\xa9t\xc3\xa9\" = 1\n", "columns");
    if (doc) {
        check_pos(npe_toml_get(npe_toml_root(doc), "\xc3\xa9t\xc3\xa9"), 1, 9);
        npe_toml_free(doc);
    }
    /* nesting up to the limit is fine */
    char deep[600];
    int n = snprintf(deep, sizeof(deep), "a = ");
    for (int i = 0; i < 127; i++)
        deep[n++] = '[';
    for (int i = 0; i < 127; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    doc = parse_ok(deep, "deep");
    npe_toml_free(doc);

    CHECK_STR(npe_toml_kind_name(NPE_TOML_STRING), "string");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_INT), "integer");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_FLOAT), "float");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_BOOL), "boolean");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_DATETIME), "datetime");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_ARRAY), "array");
    CHECK_STR(npe_toml_kind_name(NPE_TOML_TABLE), "table");
}

/* Thousands of keys in one table (looked up through the parser's hash index), and a duplicate
 * among them still found. */
static void test_many_keys(void)
{
    enum { N = 5000 };
    char *text = malloc((size_t)N * 24 + 64);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "k%d = %d\n", i, i * 7);
    npe_toml_doc *doc = parse_ok(text, "many keys");
    if (doc) {
        const npe_toml_value *r = npe_toml_root(doc);
        CHECK_EQ_INT(r->u.tab.n, N);
        int ok = 1;
        char key[16];
        for (int i = 0; i < N; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            const npe_toml_value *v = npe_toml_get(r, key);
            ok &= v && v->kind == NPE_TOML_INT && v->u.i == i * 7 && v->line == i + 1;
        }
        CHECK_MSG(ok, "lookups in a table of %d keys", N);
        CHECK(npe_toml_get(r, "k5000") == NULL);
        npe_toml_free(doc);
    }
    sprintf(text + len, "k4321 = 1\n");
    expect_error(text, NPE_EFORMAT,
                 "t.toml:5001:1: expected a key not defined before, found 'k4321' already "
                 "defined at 4322:1 as an integer");
    free(text);
}

/* Invalid documents in the manner of toml-test: each must be refused (the message is checked
 * only for its file:line:col: prefix). */
static void test_invalid(void)
{
    static const char *const bad[] = {
        /* numbers */
        "a = 1.", "a = .1", "a = 1e", "a = 1.e5", "a = 1e_5", "a = 0X1", "a = 1_", "a = _1",
        "a = 0b2", "a = 0o8", "a = 0xG", "a = 0x", "a = 0x_1", "a = 00", "a = -01", "a = 01.5",
        "a = +-1", "a = 1__0", "a = 0.1_", "a = 1.2.3", "a = infinity", "a = nan1", "a = -+inf",
        "a = Inf", "a = NaN", "a = 1,", "a = 1e1.5", "a = 0o", "a = 1_e5",
        /* booleans and bare words */
        "a = TRUE", "a = tru", "a = truee", "a = yes",
        /* strings */
        "a = \"\\e\"", "a = \"\\x41\"", "a = \"\\u00\"", "a = \"\\U0011FFFF\"", "a = \"\\uDFFF\"",
        "a = \"x\ny\"", "a = 'x\ny'", "a = \"\"\"\"\"\"\"\"\"", "a = '''a''''''", "a = \"\x7f\"",
        "a = \"\"\"\\ x\"\"\"", "a = 'a\bb'", "a = \"abc", "a = \"\"\"abc\"\"",
        /* dates */
        "a = 1979-13-01", "a = 1979-00-10", "a = 1979-01-32", "a = 1979-02-29", "a = 1900-02-29",
        "a = 07:60:00", "a = 24:00:00", "a = 07:00:61", "a = 1979-05-27T07:32",
        "a = 1979-05-27T07:32:00+25:00", "a = 1979-05-27T07:32:00.", "a = 1979-5-27",
        "a = 1979-05-27X07:32:00", "a = 07:32:00Z", "a = 1979-05-27T07:32:00+07",
        /* keys and structure */
        "= 1", "a", "a =", "a b = 1", "a = 1 = 2", "a.=1", ".a = 1", "a..b = 1", "[a]b = 1",
        "[[a]", "[a]]", "[ [a] ]", "[a.]", "[]", "[[]]", "a = 1\na = 2", "a = {b = 1}\na.c = 2",
        "a = [ {b=1} ]\n[[a]]", "a = 1\n[a]", "[a]\n[a]", "[a.b]\n[a]\n[a]", "a.b = 1\na.b.c = 2",
        "a.b = 1\n[a.b]", "'''a''' = 1", "\"a\nb\" = 1", "a = {b = 1, b = 2}", "a = {b = 1,}",
        "a = {b = 1\n}", "a = {\nb = 1}", "a = {b = 1 c = 2}", "a = {,}", "[[a]]\n[a]",
        "[a]\n[[a]]", "a = [1\n2]", "a = [,]", "a = [1,,2]", "a = [", "a = ]", "a = }",
        "a = {b = [1, 2]} # ok\nb = {a.b = 1}\nb.a.c = 2", "\"\\u0000\" = 1",
        /* text */
        "a = 1\r", "a\r= 1", "# \x01", "a = \"\xff\"", "a = \"\xc0\xaf\"", "a = 1 # \x1b",
        "\xef\xbb\xbf\xef\xbb\xbf a = 1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        npe_toml_doc *doc = NULL;
        npe_error err = {0};
        int rc = npe_toml_parse(bad[i], strlen(bad[i]), "t.toml", &doc, &err);
        if (getenv("NPE_TEST_VERBOSE")) /* to review why each case was refused */
            printf("%-36s -> %s\n", bad[i], err.msg);
        CHECK_MSG(rc == NPE_EFORMAT && doc == NULL, "accepted or wrong code %d: %s", rc, bad[i]);
        CHECK_MSG(strncmp(err.msg, "t.toml:", 7) == 0 && strstr(err.msg, ": expected ") &&
                      strstr(err.msg, ", found "),
                  "message '%s' for %s", err.msg, bad[i]);
        if (!rc)
            npe_toml_free(doc);
    }
}

/* The same configuration read from a file: npe_toml_load and the file name in messages. */
static void test_load(const char *datadir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/toml/lbprune.toml", datadir);
    npe_toml_doc *doc = NULL;
    npe_error err = {0};
    int rc = npe_toml_load(path, &doc, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_STR(npe_toml_filename(doc), path);
    const npe_toml_value *prune = npe_toml_get(npe_toml_root(doc), "prune");
    const npe_toml_value *cl = npe_toml_get(prune, "config_list");
    CHECK(cl && cl->kind == NPE_TOML_ARRAY && cl->u.arr.n == 2);
    if (cl && cl->kind == NPE_TOML_ARRAY && cl->u.arr.n == 2)
        check_float(cl->u.arr.items[1], "sparsity", 0.25);
    check_pos(npe_toml_get(npe_toml_get(npe_toml_root(doc), "run"), "started"), 52, 11);
    npe_toml_free(doc);

    snprintf(path, sizeof(path), "%s/toml/bad_redefinition.toml", datadir);
    rc = npe_toml_load(path, &doc, &err);
    CHECK_EQ_INT(rc, NPE_EFORMAT);
    char want[1200];
    snprintf(want, sizeof(want), "%s:7:1: expected a key not defined before, found 'sparsity' "
             "already defined at 5:1 as a float", path);
    CHECK_STR(err.msg, want);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <tests/data dir>\n", argv[0]);
        return 2;
    }
    test_config();
    test_load(argv[1]);
    test_errors();
    test_valid();
    test_many_keys();
    test_invalid();
    npe_toml_free(NULL);
    CHECK(npe_toml_root(NULL) == NULL);
    return tu_finish("test_toml");
}
