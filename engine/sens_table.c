/* Sensitivity table: number formatting as Python prints it, early stop, the sens.csv and JSON
 * writers and readers, durable recording and resume of a killed analysis. */
#define _POSIX_C_SOURCE 200809L

#include "sens_table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../formats/fileio.h"
#include "json_writer.h"

/* Inputs we read are our own outputs or a user's CSV. A real table has thousands of groups and tens
 * of sparsities (a few hundred KB); the limits keep a hostile file from costing gigabytes. */
#define MAX_FILE_SIZE ((size_t)16 << 20)
#define MAX_CSV_FIELDS 65536          /* per record */
#define MAX_CELLS ((size_t)1 << 24)   /* groups x sparsities held in memory */
#define JSON_MAX_DEPTH 32
#define JSON_MAX_NODES 1000000

/* ---- Number formatting ---------------------------------------------------------------------- */

/* Shortest decimal digits (no trailing zeros) and decimal point position of finite v > 0, such that
 * 0.<digits> x 10^decpt reads back as v; among equally short ones the closest to v, as Python's
 * repr. The correctly rounded p-digit string is tried first; near a power of two the interval that
 * reads back is lopsided, so one neighbour in the last digit can read back when it does not. */
static void shortest_digits(double v, char digits[24], int *decpt)
{
    char b[48];
    unsigned long long m = 0;
    int e = 0, p;
    for (p = 0; p <= 16; p++) {
        snprintf(b, sizeof(b), "%.*e", p, v);
        m = 0;
        const char *q = b;
        for (; *q && *q != 'e'; q++)
            if (*q >= '0' && *q <= '9')
                m = m * 10 + (unsigned long long)(*q - '0');
        e = atoi(q + 1) - p; /* v ~ m * 10^e */
        if (strtod(b, NULL) == v)
            break;
        int found = 0;
        for (int d = -1; d <= 1 && !found; d += 2) {
            unsigned long long mm = d < 0 ? m - 1 : m + 1;
            if (mm == 0)
                continue;
            snprintf(b, sizeof(b), "%llue%d", mm, e);
            if (strtod(b, NULL) == v) {
                m = mm;
                found = 1;
            }
        }
        if (found)
            break;
    }
    char t[24];
    int n = snprintf(t, sizeof(t), "%llu", m);
    *decpt = e + n;
    while (n > 1 && t[n - 1] == '0')
        n--;
    memcpy(digits, t, (size_t)n);
    digits[n] = '\0';
}

int npe_sens_format_shortest(double v, char *buf)
{
    if (isnan(v))
        return snprintf(buf, NPE_SENS_NUM_MAX, "nan");
    if (isinf(v))
        return snprintf(buf, NPE_SENS_NUM_MAX, v < 0 ? "-inf" : "inf");
    if (v == 0)
        return snprintf(buf, NPE_SENS_NUM_MAX, "0.0");
    char d[24];
    int decpt, o = 0;
    shortest_digits(fabs(v), d, &decpt);
    int nd = (int)strlen(d);
    if (v < 0)
        buf[o++] = '-';
    if (decpt <= -4 || decpt > 16) { /* Python's repr switches to exponent form here */
        buf[o++] = d[0];
        if (nd > 1) {
            buf[o++] = '.';
            memcpy(buf + o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        int x = decpt - 1;
        o += snprintf(buf + o, (size_t)(NPE_SENS_NUM_MAX - o), "e%c%02d", x < 0 ? '-' : '+', abs(x));
    } else if (decpt <= 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -decpt; i++)
            buf[o++] = '0';
        memcpy(buf + o, d, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(buf + o, d, (size_t)nd);
        o += nd;
        for (int i = nd; i < decpt; i++)
            buf[o++] = '0';
        buf[o++] = '.';
        buf[o++] = '0';
    } else {
        memcpy(buf + o, d, (size_t)decpt);
        o += decpt;
        buf[o++] = '.';
        memcpy(buf + o, d + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    buf[o] = '\0';
    return o;
}

int npe_sens_format_value(double v, char *buf)
{
    double r = v;
    /* Doubles from 2^53 up are integers, so rounding to 5 decimals leaves them alone (and %.5f of
     * 1e300 would not fit). Below, printf rounds the exact binary value with ties to even, as
     * Python's round does; reading the text back gives round()'s double. */
    if (isfinite(v) && fabs(v) < 1e16) {
        char b[48];
        snprintf(b, sizeof(b), "%.5f", v);
        r = strtod(b, NULL);
        if (r == 0)
            r = 0; /* no "-0.0" */
    }
    return npe_sens_format_shortest(r, buf);
}

/* ---- Early stop ----------------------------------------------------------------------------- */

const char *npe_early_stop_name(enum npe_early_stop mode)
{
    switch (mode) {
    case NPE_EARLY_STOP_DROPPED: return "dropped";
    case NPE_EARLY_STOP_RAISED: return "raised";
    default: return NULL;
    }
}

int npe_early_stop_parse(const char *name, enum npe_early_stop *mode, npe_error *err)
{
    if (!name || !*name || !strcmp(name, "none"))
        *mode = NPE_EARLY_STOP_NONE;
    else if (!strcmp(name, "dropped"))
        *mode = NPE_EARLY_STOP_DROPPED;
    else if (!strcmp(name, "raised"))
        *mode = NPE_EARLY_STOP_RAISED;
    else
        return npe_error_set(err, NPE_EINVAL,
                             "early_stop_mode: expected \"dropped\", \"raised\" or \"none\", found \"%s\"",
                             name);
    return 0;
}

int npe_early_stop_violates(enum npe_early_stop mode, double ori, double thres, double v)
{
    switch (mode) {
    case NPE_EARLY_STOP_DROPPED: return isnan(v) || v < ori - thres;
    case NPE_EARLY_STOP_RAISED: return isnan(v) || v > ori + thres;
    default: return 0;
    }
}

size_t npe_early_stop_row_len(enum npe_early_stop mode, double ori, double thres,
                              const double *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (npe_early_stop_violates(mode, ori, thres, values[i]))
            return i + 1;
    return n;
}

int npe_early_stop_done(enum npe_early_stop mode, double ori, double thres, const double *values,
                        size_t n, size_t n_total)
{
    if (n >= n_total)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (npe_early_stop_violates(mode, ori, thres, values[i]))
            return 1;
    return 0;
}

/* ---- The table ------------------------------------------------------------------------------ */

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

static void group_free(npe_sens_group *g)
{
    free(g->name);
    for (size_t i = 0; i < g->n_members; i++)
        free(g->members[i]);
    free(g->members);
    free(g->sparsities);
    free(g->values);
    free(g->measured);
    free(g->skip_reason);
    memset(g, 0, sizeof(*g));
}

int npe_sens_init(npe_sens_table *t, const npe_sens_config *cfg, npe_error *err)
{
    memset(t, 0, sizeof(*t));
    if (!cfg || !cfg->metric || !*cfg->metric)
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: no metric name given");
    if (!isfinite(cfg->baseline))
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: baseline metric is %g, not a number",
                             cfg->baseline);
    if (!isfinite(cfg->thres) || cfg->thres < 0)
        return npe_error_set(err, NPE_EINVAL, "metric_thres: expected a number >= 0, found %g",
                             cfg->thres);
    if (cfg->early_stop != NPE_EARLY_STOP_NONE && cfg->early_stop != NPE_EARLY_STOP_DROPPED &&
        cfg->early_stop != NPE_EARLY_STOP_RAISED)
        return npe_error_set(err, NPE_EINVAL, "early_stop_mode: unknown mode %d", (int)cfg->early_stop);
    t->metric = dupstr(cfg->metric);
    t->fingerprint = dupstr(cfg->fingerprint);
    if (!t->metric || !t->fingerprint) {
        npe_sens_finish(t);
        return npe_error_set(err, NPE_ENOMEM, "sensitivity table: out of memory");
    }
    t->higher_is_better = cfg->higher_is_better ? 1 : 0;
    t->baseline = cfg->baseline;
    t->thres = cfg->thres;
    t->early_stop = cfg->early_stop;
    return 0;
}

void npe_sens_finish(npe_sens_table *t)
{
    if (!t)
        return;
    for (size_t g = 0; g < t->n_groups; g++)
        group_free(&t->groups[g]);
    free(t->groups);
    free(t->metric);
    free(t->fingerprint);
    free(t->csv_path);
    free(t->json_path);
    memset(t, 0, sizeof(*t));
}

/* A table read from a file: no metric, baseline unknown. */
static int init_bare(npe_sens_table *t, npe_error *err)
{
    memset(t, 0, sizeof(*t));
    t->baseline = NAN;
    t->fingerprint = dupstr("");
    if (!t->fingerprint)
        return npe_error_set(err, NPE_ENOMEM, "sensitivity table: out of memory");
    return 0;
}

int npe_sens_find_group(const npe_sens_table *t, const char *name)
{
    for (size_t g = 0; g < t->n_groups; g++)
        if (!strcmp(t->groups[g].name, name))
            return (int)g;
    return NPE_ENOTFOUND;
}

static int check_sparsities(const double *s, size_t n, const char *name, npe_error *err)
{
    if (n == 0)
        return npe_error_set(err, NPE_EINVAL,
                             "group '%s': empty sparsity list (use exclude_layers to skip a group)", name);
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] >= 0 && s[i] <= 1))
            return npe_error_set(err, NPE_EINVAL, "group '%s': sparsity %g is outside [0, 1]", name, s[i]);
        if (i && !(s[i] > s[i - 1]))
            return npe_error_set(err, NPE_EINVAL,
                                 "group '%s': sparsities must be strictly increasing, found %g after %g",
                                 name, s[i], s[i - 1]);
    }
    return 0;
}

/* check_dup = 0 for the readers, which check all names at once (sorting) instead of each add. */
static int add_group(npe_sens_table *t, const npe_sens_group_spec *spec, int check_dup, npe_error *err)
{
    if (!spec || !spec->name || !*spec->name)
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: a group without a name");
    if (check_dup && npe_sens_find_group(t, spec->name) >= 0)
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: group '%s' added twice", spec->name);
    if (spec->channels == 0 || spec->channels < -1)
        return npe_error_set(err, NPE_EINVAL, "group '%s': %lld channels", spec->name,
                             (long long)spec->channels);
    if (spec->n_members && !spec->members)
        return npe_error_set(err, NPE_EINVAL, "group '%s': members missing", spec->name);
    for (size_t i = 0; i < spec->n_members; i++)
        if (!spec->members[i])
            return npe_error_set(err, NPE_EINVAL, "group '%s': member %zu has no name", spec->name, i);
    if (!spec->skip_reason) {
        if (!spec->sparsities && spec->n_sparsities)
            return npe_error_set(err, NPE_EINVAL, "group '%s': sparsities missing", spec->name);
        int rc = check_sparsities(spec->sparsities, spec->n_sparsities, spec->name, err);
        if (rc)
            return rc;
    }
    if (t->n_groups > (size_t)0x7fffffff - 1)
        return npe_error_set(err, NPE_ELIMIT, "sensitivity table: too many groups");
    if (t->n_groups == t->cap_groups) {
        size_t ncap = t->cap_groups ? t->cap_groups * 2 : 16;
        npe_sens_group *ng = realloc(t->groups, ncap * sizeof(*ng));
        if (!ng)
            return npe_error_set(err, NPE_ENOMEM, "sensitivity table: out of memory");
        t->groups = ng;
        t->cap_groups = ncap;
    }
    npe_sens_group *g = &t->groups[t->n_groups];
    memset(g, 0, sizeof(*g));
    size_t ns = spec->skip_reason ? 0 : spec->n_sparsities;
    g->name = dupstr(spec->name);
    g->channels = spec->channels;
    if (!g->name)
        goto out_nomem;
    if (spec->n_members) {
        g->members = calloc(spec->n_members, sizeof(char *));
        if (!g->members)
            goto out_nomem;
        for (size_t i = 0; i < spec->n_members; i++) {
            g->members[i] = dupstr(spec->members[i]);
            g->n_members = i + 1;
            if (!g->members[i])
                goto out_nomem;
        }
    }
    if (spec->skip_reason) {
        g->skip_reason = dupstr(spec->skip_reason);
        if (!g->skip_reason)
            goto out_nomem;
    } else {
        g->sparsities = malloc(ns * sizeof(double));
        g->values = malloc(ns * sizeof(double));
        g->measured = calloc(ns, 1);
        if (!g->sparsities || !g->values || !g->measured)
            goto out_nomem;
        memcpy(g->sparsities, spec->sparsities, ns * sizeof(double));
        for (size_t i = 0; i < ns; i++)
            g->values[i] = NAN;
        g->n_sparsities = ns;
    }
    return (int)t->n_groups++;

out_nomem:
    group_free(g);
    return npe_error_set(err, NPE_ENOMEM, "sensitivity table: out of memory");
}

int npe_sens_add_group(npe_sens_table *t, const npe_sens_group_spec *spec, npe_error *err)
{
    return add_group(t, spec, 1, err);
}

static size_t measured_prefix(const npe_sens_group *g)
{
    size_t k = 0;
    while (k < g->n_sparsities && g->measured[k])
        k++;
    return k;
}

size_t npe_sens_row_len(const npe_sens_table *t, size_t g)
{
    if (g >= t->n_groups || t->groups[g].skip_reason)
        return 0;
    const npe_sens_group *gr = &t->groups[g];
    return npe_early_stop_row_len(t->early_stop, t->baseline, t->thres, gr->values,
                                  measured_prefix(gr));
}

int npe_sens_pending(const npe_sens_table *t, size_t g, size_t i)
{
    if (g >= t->n_groups)
        return 0;
    const npe_sens_group *gr = &t->groups[g];
    if (gr->skip_reason || i >= gr->n_sparsities || gr->measured[i])
        return 0;
    for (size_t j = 0; j < i; j++)
        if (gr->measured[j] &&
            npe_early_stop_violates(t->early_stop, t->baseline, t->thres, gr->values[j]))
            return 0;
    return 1;
}

int npe_sens_group_done(const npe_sens_table *t, size_t g)
{
    if (g >= t->n_groups)
        return 1;
    for (size_t i = 0; i < t->groups[g].n_sparsities; i++)
        if (npe_sens_pending(t, g, i))
            return 0;
    return 1;
}

int npe_sens_next(const npe_sens_table *t, size_t *g, size_t *i)
{
    for (size_t a = 0; a < t->n_groups; a++)
        for (size_t b = 0; b < t->groups[a].n_sparsities; b++)
            if (npe_sens_pending(t, a, b)) {
                *g = a;
                *i = b;
                return 1;
            }
    return 0;
}

void npe_sens_progress(const npe_sens_table *t, size_t *done, size_t *total)
{
    size_t d = 0, p = 0;
    for (size_t a = 0; a < t->n_groups; a++)
        for (size_t b = 0; b < t->groups[a].n_sparsities; b++) {
            if (t->groups[a].measured[b])
                d++;
            else if (npe_sens_pending(t, a, b))
                p++;
        }
    *done = d;
    *total = d + p;
}

/* ---- Text buffer ---------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n >= b->cap - b->len || !b->p) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len <= n) {
            if (ncap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            ncap *= 2;
        }
        char *q = realloc(b->p, ncap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Python csv's QUOTE_MINIMAL: quote only fields holding the delimiter, the quote or a line end. */
static void sb_csv_field(sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        sb_puts(b, s);
        return;
    }
    sb_put(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"')
            sb_put(b, "\"", 1);
        sb_put(b, q, 1);
    }
    sb_put(b, "\"", 1);
}

/* ---- Writers -------------------------------------------------------------------------------- */

int npe_sens_csv_text(const npe_sens_table *t, char **out, size_t *len, npe_error *err)
{
    sbuf b = {0};
    char num[NPE_SENS_NUM_MAX];
    sb_put(&b, "", 0);
    for (size_t g = 0; g < t->n_groups; g++) {
        const npe_sens_group *gr = &t->groups[g];
        size_t k = npe_sens_row_len(t, g);
        if (!k)
            continue;
        sb_puts(&b, "layername");
        for (size_t i = 0; i < k; i++) {
            npe_sens_format_shortest(gr->sparsities[i], num);
            sb_put(&b, ",", 1);
            sb_puts(&b, num);
        }
        sb_put(&b, "\n", 1);
        sb_csv_field(&b, gr->name);
        for (size_t i = 0; i < k; i++) {
            npe_sens_format_value(gr->values[i], num);
            sb_put(&b, ",", 1);
            sb_puts(&b, num);
        }
        sb_put(&b, "\n", 1);
    }
    if (b.failed) {
        free(b.p);
        return npe_error_set(err, NPE_ENOMEM, "sens.csv: out of memory");
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

static void json_value(npe_json *j, double v)
{
    if (isnan(v))
        npe_json_str(j, "nan");
    else if (isinf(v))
        npe_json_str(j, v < 0 ? "-inf" : "inf");
    else
        npe_json_double(j, v);
}

int npe_sens_json_text(const npe_sens_table *t, char **out, size_t *len, npe_error *err)
{
    npe_json j;
    npe_json_init(&j, 1);
    npe_json_begin_object(&j, 0);
    npe_json_key(&j, "format");
    npe_json_str(&j, "lbprune-sensitivity");
    npe_json_key(&j, "version");
    npe_json_int(&j, 1);
    npe_json_key(&j, "metric");
    npe_json_str(&j, t->metric);
    npe_json_key(&j, "higher_is_better");
    npe_json_bool(&j, t->higher_is_better);
    npe_json_key(&j, "baseline");
    npe_json_double(&j, t->baseline);
    npe_json_key(&j, "metric_thres");
    npe_json_double(&j, t->thres);
    npe_json_key(&j, "early_stop_mode");
    npe_json_str(&j, npe_early_stop_name(t->early_stop));
    npe_json_key(&j, "fingerprint");
    npe_json_str(&j, t->fingerprint);
    npe_json_key(&j, "groups");
    npe_json_begin_array(&j, 0);
    for (size_t g = 0; g < t->n_groups; g++) {
        const npe_sens_group *gr = &t->groups[g];
        npe_json_begin_object(&j, 0);
        npe_json_key(&j, "name");
        npe_json_str(&j, gr->name);
        npe_json_key(&j, "members");
        npe_json_begin_array(&j, 1);
        for (size_t i = 0; i < gr->n_members; i++)
            npe_json_str(&j, gr->members[i]);
        npe_json_end_array(&j);
        npe_json_key(&j, "channels");
        if (gr->channels > 0)
            npe_json_int(&j, gr->channels);
        else
            npe_json_null(&j);
        if (gr->skip_reason) {
            npe_json_key(&j, "skipped");
            npe_json_str(&j, gr->skip_reason);
        } else {
            npe_json_key(&j, "sparsities");
            npe_json_begin_array(&j, 1);
            for (size_t i = 0; i < gr->n_sparsities; i++)
                npe_json_double(&j, gr->sparsities[i]);
            npe_json_end_array(&j);
            npe_json_key(&j, "values");
            npe_json_begin_array(&j, 1);
            for (size_t i = 0; i < gr->n_sparsities; i++) {
                if (gr->measured[i])
                    json_value(&j, gr->values[i]);
                else
                    npe_json_null(&j);
            }
            npe_json_end_array(&j);
            npe_json_key(&j, "row");
            npe_json_uint(&j, npe_sens_row_len(t, g));
            npe_json_key(&j, "done");
            npe_json_bool(&j, npe_sens_group_done(t, g));
        }
        npe_json_end_object(&j);
    }
    npe_json_end_array(&j);
    npe_json_end_object(&j);
    size_t n = 0;
    char *s = npe_json_finish(&j, &n);
    if (!s)
        return npe_error_set(err, NPE_ENOMEM, "sens.json: out of memory");
    /* End with a line end, so the file is a proper text file. */
    if (!n || s[n - 1] != '\n') {
        char *s2 = realloc(s, n + 2);
        if (!s2) {
            free(s);
            return npe_error_set(err, NPE_ENOMEM, "sens.json: out of memory");
        }
        s = s2;
        s[n++] = '\n';
        s[n] = '\0';
    }
    *out = s;
    if (len)
        *len = n;
    return 0;
}

/* Make a rename durable: the directory entry must reach the disk too, not only the file. File
 * systems that cannot sync a directory (EINVAL) keep what they have. */
static int sync_parent(const char *path, npe_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS && errno != EBADF)
            rc = npe_error_set(err, NPE_EIO, "%s: cannot sync directory: %s", dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

static int write_atomic(const char *path, const char *data, size_t len, npe_error *err)
{
    npe_afile af;
    int rc = npe_afile_open(&af, path, err);
    if (rc)
        return rc;
    rc = npe_afile_write(&af, data, len, err);
    if (rc) {
        npe_afile_abort(&af);
        return rc;
    }
    rc = npe_afile_commit(&af, err);
    if (rc)
        return rc;
    return sync_parent(path, err);
}

int npe_sens_write_csv(const npe_sens_table *t, const char *path, npe_error *err)
{
    char *s;
    size_t n;
    int rc = npe_sens_csv_text(t, &s, &n, err);
    if (rc)
        return rc;
    rc = write_atomic(path, s, n, err);
    free(s);
    return rc;
}

int npe_sens_write_json(const npe_sens_table *t, const char *path, npe_error *err)
{
    char *s;
    size_t n;
    int rc = npe_sens_json_text(t, &s, &n, err);
    if (rc)
        return rc;
    rc = write_atomic(path, s, n, err);
    free(s);
    return rc;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

int npe_sens_set_output(npe_sens_table *t, const char *dir, npe_error *err)
{
    if (!dir || !*dir)
        return npe_error_set(err, NPE_EINVAL, "sensitivity output: no directory given");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return npe_error_set(err, NPE_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return npe_error_set(err, NPE_EIO, "%s: exists and is not a directory", dir);
    char *c = join_path(dir, "sens.csv"), *j = join_path(dir, "sens.json");
    if (!c || !j) {
        free(c);
        free(j);
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", dir);
    }
    free(t->csv_path);
    free(t->json_path);
    t->csv_path = c;
    t->json_path = j;
    return 0;
}

int npe_sens_save(const npe_sens_table *t, npe_error *err)
{
    if (!t->json_path || !t->csv_path)
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: no output directory set");
    /* The JSON is the state a resumed run reads; the CSV is derived from it, so it goes second. */
    int rc = npe_sens_write_json(t, t->json_path, err);
    if (!rc)
        rc = npe_sens_write_csv(t, t->csv_path, err);
    return rc;
}

int npe_sens_record(npe_sens_table *t, size_t g, size_t i, double value, npe_error *err)
{
    if (g >= t->n_groups)
        return npe_error_set(err, NPE_EINVAL, "sensitivity table: group %zu of %zu", g, t->n_groups);
    npe_sens_group *gr = &t->groups[g];
    if (gr->skip_reason)
        return npe_error_set(err, NPE_EINVAL, "group '%s' is not analysed (%s)", gr->name,
                             gr->skip_reason);
    if (i >= gr->n_sparsities)
        return npe_error_set(err, NPE_EINVAL, "group '%s': sparsity index %zu of %zu", gr->name, i,
                             gr->n_sparsities);
    gr->values[i] = value;
    gr->measured[i] = 1;
    if (!t->json_path)
        return 0;
    return npe_sens_save(t, err);
}

/* ---- Duplicate names (readers) -------------------------------------------------------------- */

typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorted (name, index) pairs of the table's groups; NULL on allocation failure (n == 0 too). */
static name_ref *sorted_names(const npe_sens_table *t)
{
    name_ref *r = malloc((t->n_groups ? t->n_groups : 1) * sizeof(*r));
    if (!r)
        return NULL;
    for (size_t g = 0; g < t->n_groups; g++) {
        r[g].name = t->groups[g].name;
        r[g].index = g;
    }
    qsort(r, t->n_groups, sizeof(*r), cmp_name_ref);
    return r;
}

/* The first group whose name was already used: returns 1 and the two indices. */
static int find_dup(const npe_sens_table *t, size_t *first, size_t *second, int *oom)
{
    *oom = 0;
    name_ref *r = sorted_names(t);
    if (!r) {
        *oom = 1;
        return 0;
    }
    int found = 0;
    for (size_t k = 1; k < t->n_groups; k++)
        if (!strcmp(r[k - 1].name, r[k].name) && (!found || r[k].index < *second)) {
            *first = r[k - 1].index;
            *second = r[k].index;
            found = 1;
        }
    free(r);
    return found;
}

/* ---- CSV reader ----------------------------------------------------------------------------- */

typedef struct csv_rec {
    char **f;
    size_t n, cap;
} csv_rec;

static void rec_clear(csv_rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->f[i]);
    r->n = 0;
}

static int rec_push(csv_rec *r, sbuf *field)
{
    if (field->failed)
        return -1;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        char **nf = realloc(r->f, ncap * sizeof(char *));
        if (!nf)
            return -1;
        r->f = nf;
        r->cap = ncap;
    }
    r->f[r->n++] = field->p ? field->p : strdup("");
    memset(field, 0, sizeof(*field));
    return r->f[r->n - 1] ? 0 : -1;
}

/* One record from s[*pos..n): fields split at commas, Python-csv quoting ("" inside quotes; a
 * quoted field may span lines), ended by LF, CRLF or the end. *line advances over line ends. */
static int csv_record(const char *s, size_t n, size_t *pos, int *line, csv_rec *r, const char *path,
                      npe_error *err)
{
    size_t p = *pos;
    int start_line = *line;
    sbuf f = {0};
    rec_clear(r);
    for (;;) {
        if (p < n && s[p] == '"') {
            p++;
            for (;;) {
                if (p >= n) {
                    free(f.p);
                    return npe_error_set(err, NPE_EFORMAT, "%s:%d: quoted field not closed", path,
                                         start_line);
                }
                if (s[p] == '"') {
                    if (p + 1 < n && s[p + 1] == '"') {
                        sb_put(&f, "\"", 1);
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (s[p] == '\n')
                    (*line)++;
                sb_put(&f, s + p, 1);
                p++;
            }
        }
        /* Unquoted part (or what follows a closing quote, kept as Python does). */
        while (p < n && s[p] != ',' && s[p] != '\n') {
            if (s[p] == '\r' && (p + 1 == n || s[p + 1] == '\n')) {
                p++;
                continue;
            }
            sb_put(&f, s + p, 1);
            p++;
        }
        if (!f.p)
            sb_put(&f, "", 0);
        if (r->n >= MAX_CSV_FIELDS) {
            free(f.p);
            return npe_error_set(err, NPE_ELIMIT, "%s:%d: more than %d fields in one record", path,
                                 start_line, MAX_CSV_FIELDS);
        }
        if (rec_push(r, &f)) {
            free(f.p);
            return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
        }
        if (p < n && s[p] == ',') {
            p++;
            continue;
        }
        if (p < n) { /* '\n' */
            p++;
            (*line)++;
        }
        break;
    }
    *pos = p;
    return 0;
}

static int parse_num_field(const char *f, double *v)
{
    const char *a = f;
    while (*a == ' ' || *a == '\t')
        a++;
    if (!*a)
        return -1;
    char *end;
    double x = strtod(a, &end);
    if (end == a)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return -1;
    *v = x;
    return 0;
}

int npe_sens_read_csv(npe_sens_table *t, const char *path, npe_error *err)
{
    char *s = NULL;
    size_t n = 0;
    int rc = init_bare(t, err);
    if (rc)
        return rc;
    rc = npe_read_file(path, MAX_FILE_SIZE, &s, &n, err);
    if (rc) {
        npe_sens_finish(t);
        return rc;
    }
    csv_rec r = {0};
    double *hdr = NULL, *vals = NULL;
    size_t nh = 0, cells = 0;
    int *lines = NULL;
    size_t cap_lines = 0;
    int prev_header = 0, header_line = 0, line = 1;
    size_t pos = 0;
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        pos = 3;
    while (pos < n) {
        int this_line = line;
        rc = csv_record(s, n, &pos, &line, &r, path, err);
        if (rc)
            goto out;
        if (r.n == 1 && !r.f[0][0])
            continue; /* blank line */
        if (!strcmp(r.f[0], "layername") && !prev_header) {
            if (r.n < 2) {
                rc = npe_error_set(err, NPE_EFORMAT, "%s:%d: header lists no sparsities", path,
                                   this_line);
                goto out;
            }
            free(hdr);
            nh = r.n - 1;
            hdr = malloc(nh * sizeof(double));
            free(vals);
            vals = malloc(nh * sizeof(double));
            if (!hdr || !vals) {
                rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            for (size_t i = 0; i < nh; i++) {
                if (parse_num_field(r.f[i + 1], &hdr[i]) || !(hdr[i] >= 0 && hdr[i] <= 1)) {
                    rc = npe_error_set(err, NPE_EFORMAT,
                                       "%s:%d: field %zu: expected a sparsity in [0, 1], found '%.40s'",
                                       path, this_line, i + 2, r.f[i + 1]);
                    goto out;
                }
                if (i && !(hdr[i] > hdr[i - 1])) {
                    rc = npe_error_set(err, NPE_EFORMAT,
                                       "%s:%d: sparsities must be strictly increasing, found %s after %s",
                                       path, this_line, r.f[i + 1], r.f[i]);
                    goto out;
                }
            }
            header_line = this_line;
            prev_header = 1;
            continue;
        }
        prev_header = 0;
        if (!hdr) {
            rc = npe_error_set(err, NPE_EFORMAT,
                               "%s:%d: expected a header line starting with 'layername', found '%.60s'",
                               path, this_line, r.f[0]);
            goto out;
        }
        if (!r.f[0][0]) {
            rc = npe_error_set(err, NPE_EFORMAT, "%s:%d: row without a layer name", path, this_line);
            goto out;
        }
        size_t nv = r.n - 1;
        if (nv > nh) {
            rc = npe_error_set(err, NPE_EFORMAT,
                               "%s:%d: row '%.60s' has %zu values but the header on line %d lists %zu sparsities",
                               path, this_line, r.f[0], nv, header_line, nh);
            goto out;
        }
        for (size_t i = 0; i < nv; i++)
            if (parse_num_field(r.f[i + 1], &vals[i])) {
                rc = npe_error_set(err, NPE_EFORMAT,
                                   "%s:%d: row '%.60s', field %zu: expected a number, found '%.40s'",
                                   path, this_line, r.f[0], i + 2, r.f[i + 1]);
                goto out;
            }
        if (cells > MAX_CELLS - nh) {
            rc = npe_error_set(err, NPE_ELIMIT, "%s:%d: more than %zu values in the table", path,
                               this_line, MAX_CELLS);
            goto out;
        }
        cells += nh;
        npe_sens_group_spec spec = {.name = r.f[0], .channels = -1, .sparsities = hdr,
                                    .n_sparsities = nh};
        int gi = add_group(t, &spec, 0, err);
        if (gi < 0) {
            rc = gi;
            npe_error_prefix(err, "%s:%d", path, this_line);
            goto out;
        }
        npe_sens_group *gr = &t->groups[gi];
        for (size_t i = 0; i < nv; i++) {
            gr->values[i] = vals[i];
            gr->measured[i] = 1;
        }
        if ((size_t)gi >= cap_lines) {
            size_t nc = cap_lines ? cap_lines * 2 : 64;
            int *nl = realloc(lines, nc * sizeof(int));
            if (!nl) {
                rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            lines = nl;
            cap_lines = nc;
        }
        lines[gi] = this_line;
    }
    size_t a, b;
    int oom;
    if (find_dup(t, &a, &b, &oom)) {
        rc = npe_error_set(err, NPE_EFORMAT, "%s:%d: layer '%.60s' appears twice (first on line %d)",
                           path, lines[b], t->groups[b].name, lines[a]);
        goto out;
    }
    if (oom)
        rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);

out:
    rec_clear(&r);
    free(r.f);
    free(hdr);
    free(vals);
    free(lines);
    free(s);
    if (rc)
        npe_sens_finish(t);
    return rc;
}

/* ---- JSON reader ---------------------------------------------------------------------------- */
/* A small DOM parser for our own companion file: RFC 8259 values, nesting bounded, every error with
 * line and column. */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
    int type, line, col;
    int b;
    double num;
    char *str;
    struct jval *items;
    char **keys;
    size_t n, cap;
} jval;

typedef struct jparser {
    const char *s, *path;
    size_t n, p, line_start, nodes;
    int line, depth;
    npe_error *err;
} jparser;

static void jfree(jval *v)
{
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof(*v));
}

static int jcol(const jparser *jp)
{
    return (int)(jp->p - jp->line_start) + 1;
}

static int jerr(jparser *jp, const char *what)
{
    char found[16];
    if (jp->p >= jp->n)
        snprintf(found, sizeof(found), "the end");
    else if ((unsigned char)jp->s[jp->p] >= 0x20 && (unsigned char)jp->s[jp->p] < 0x7f)
        snprintf(found, sizeof(found), "'%c'", jp->s[jp->p]);
    else
        snprintf(found, sizeof(found), "byte 0x%02x", (unsigned char)jp->s[jp->p]);
    return npe_error_set(jp->err, NPE_EFORMAT, "%s:%d:%d: expected %s, found %s", jp->path, jp->line,
                         jcol(jp), what, found);
}

static void jws(jparser *jp)
{
    while (jp->p < jp->n) {
        char c = jp->s[jp->p];
        if (c == '\n') {
            jp->line++;
            jp->line_start = jp->p + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            break;
        }
        jp->p++;
    }
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int jstring(jparser *jp, char **out)
{
    sbuf b = {0};
    jp->p++; /* opening quote */
    sb_put(&b, "", 0);
    for (;;) {
        if (jp->p >= jp->n) {
            free(b.p);
            return jerr(jp, "'\"' closing the string");
        }
        unsigned char c = (unsigned char)jp->s[jp->p];
        if (c == '"') {
            jp->p++;
            break;
        }
        if (c < 0x20) {
            free(b.p);
            return jerr(jp, "a string character (control characters must be escaped)");
        }
        if (c != '\\') {
            sb_put(&b, jp->s + jp->p, 1);
            jp->p++;
            continue;
        }
        if (jp->p + 1 >= jp->n) {
            jp->p++;
            free(b.p);
            return jerr(jp, "an escape");
        }
        char e = jp->s[jp->p + 1];
        const char *rep = NULL;
        switch (e) {
        case '"': rep = "\""; break;
        case '\\': rep = "\\"; break;
        case '/': rep = "/"; break;
        case 'b': rep = "\b"; break;
        case 'f': rep = "\f"; break;
        case 'n': rep = "\n"; break;
        case 'r': rep = "\r"; break;
        case 't': rep = "\t"; break;
        case 'u': break;
        default:
            jp->p++;
            free(b.p);
            return jerr(jp, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
        if (rep) {
            sb_put(&b, rep, 1);
            jp->p += 2;
            continue;
        }
        unsigned u, lo;
        if (jp->p + 6 > jp->n || hex4(jp->s + jp->p + 2, &u)) {
            jp->p += 2;
            free(b.p);
            return jerr(jp, "four hex digits after \\u");
        }
        jp->p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (jp->p + 6 > jp->n || jp->s[jp->p] != '\\' || jp->s[jp->p + 1] != 'u' ||
                hex4(jp->s + jp->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                free(b.p);
                return jerr(jp, "a low surrogate \\uDC00-\\uDFFF after a high one");
            }
            jp->p += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            free(b.p);
            return jerr(jp, "a high surrogate before a low one");
        }
        if (u == 0) {
            free(b.p);
            return jerr(jp, "no NUL character (\\u0000) in a name");
        }
        char enc[4];
        size_t k;
        if (u < 0x80) {
            enc[0] = (char)u;
            k = 1;
        } else if (u < 0x800) {
            enc[0] = (char)(0xC0 | (u >> 6));
            enc[1] = (char)(0x80 | (u & 0x3F));
            k = 2;
        } else if (u < 0x10000) {
            enc[0] = (char)(0xE0 | (u >> 12));
            enc[1] = (char)(0x80 | ((u >> 6) & 0x3F));
            enc[2] = (char)(0x80 | (u & 0x3F));
            k = 3;
        } else {
            enc[0] = (char)(0xF0 | (u >> 18));
            enc[1] = (char)(0x80 | ((u >> 12) & 0x3F));
            enc[2] = (char)(0x80 | ((u >> 6) & 0x3F));
            enc[3] = (char)(0x80 | (u & 0x3F));
            k = 4;
        }
        sb_put(&b, enc, k);
    }
    if (b.failed) {
        free(b.p);
        return npe_error_set(jp->err, NPE_ENOMEM, "%s: out of memory", jp->path);
    }
    *out = b.p;
    return 0;
}

static int jnumber(jparser *jp, double *out)
{
    size_t a = jp->p, p = a;
    const char *s = jp->s;
    if (p < jp->n && s[p] == '-')
        p++;
    if (p < jp->n && s[p] == '0') {
        p++;
    } else if (p < jp->n && s[p] >= '1' && s[p] <= '9') {
        while (p < jp->n && s[p] >= '0' && s[p] <= '9')
            p++;
    } else {
        jp->p = p;
        return jerr(jp, "a digit");
    }
    if (p < jp->n && s[p] == '.') {
        p++;
        if (p >= jp->n || s[p] < '0' || s[p] > '9') {
            jp->p = p;
            return jerr(jp, "a digit after '.'");
        }
        while (p < jp->n && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    if (p < jp->n && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < jp->n && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= jp->n || s[p] < '0' || s[p] > '9') {
            jp->p = p;
            return jerr(jp, "a digit in the exponent");
        }
        while (p < jp->n && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    char b[64];
    if (p - a >= sizeof(b))
        return npe_error_set(jp->err, NPE_EFORMAT, "%s:%d:%d: number too long", jp->path, jp->line,
                             jcol(jp));
    memcpy(b, s + a, p - a);
    b[p - a] = '\0';
    double v = strtod(b, NULL);
    if (!isfinite(v))
        return npe_error_set(jp->err, NPE_EFORMAT, "%s:%d:%d: number %s out of range", jp->path,
                             jp->line, jcol(jp), b);
    *out = v;
    jp->p = p;
    return 0;
}

static int jvalue(jparser *jp, jval *v);

static int jpush(jparser *jp, jval *c, char *key)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        jval *ni = realloc(c->items, ncap * sizeof(jval));
        if (!ni)
            goto out_nomem;
        c->items = ni;
        if (c->type == J_OBJ) {
            char **nk = realloc(c->keys, ncap * sizeof(char *));
            if (!nk)
                goto out_nomem;
            c->keys = nk;
        }
        c->cap = ncap;
    }
    memset(&c->items[c->n], 0, sizeof(jval));
    if (c->type == J_OBJ)
        c->keys[c->n] = key;
    c->n++;
    return 0;
out_nomem:
    free(key);
    return npe_error_set(jp->err, NPE_ENOMEM, "%s: out of memory", jp->path);
}

static int jcontainer(jparser *jp, jval *v, int obj)
{
    char close = obj ? '}' : ']';
    v->type = obj ? J_OBJ : J_ARR;
    if (++jp->depth > JSON_MAX_DEPTH)
        return npe_error_set(jp->err, NPE_ELIMIT, "%s:%d:%d: nesting deeper than %d", jp->path,
                             jp->line, jcol(jp), JSON_MAX_DEPTH);
    jp->p++;
    jws(jp);
    if (jp->p < jp->n && jp->s[jp->p] == close) {
        jp->p++;
        jp->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        int rc;
        if (obj) {
            if (jp->p >= jp->n || jp->s[jp->p] != '"')
                return jerr(jp, "'\"' starting a key");
            if ((rc = jstring(jp, &key)))
                return rc;
            jws(jp);
            if (jp->p >= jp->n || jp->s[jp->p] != ':') {
                free(key);
                return jerr(jp, "':'");
            }
            jp->p++;
            jws(jp);
        }
        if ((rc = jpush(jp, v, key)))
            return rc;
        if ((rc = jvalue(jp, &v->items[v->n - 1])))
            return rc;
        jws(jp);
        if (jp->p < jp->n && jp->s[jp->p] == ',') {
            jp->p++;
            jws(jp);
            continue;
        }
        if (jp->p < jp->n && jp->s[jp->p] == close) {
            jp->p++;
            break;
        }
        return jerr(jp, obj ? "',' or '}'" : "',' or ']'");
    }
    jp->depth--;
    return 0;
}

static int jvalue(jparser *jp, jval *v)
{
    if (++jp->nodes > JSON_MAX_NODES)
        return npe_error_set(jp->err, NPE_ELIMIT, "%s:%d:%d: more than %d values", jp->path, jp->line,
                             jcol(jp), JSON_MAX_NODES);
    v->line = jp->line;
    v->col = jcol(jp);
    if (jp->p >= jp->n)
        return jerr(jp, "a value");
    char c = jp->s[jp->p];
    if (c == '{' || c == '[')
        return jcontainer(jp, v, c == '{');
    if (c == '"') {
        v->type = J_STR;
        return jstring(jp, &v->str);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        v->type = J_NUM;
        return jnumber(jp, &v->num);
    }
    static const struct { const char *word; int type, b; } words[] = {
        {"null", J_NULL, 0}, {"true", J_BOOL, 1}, {"false", J_BOOL, 0}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t k = strlen(words[i].word);
        if (jp->n - jp->p >= k && !memcmp(jp->s + jp->p, words[i].word, k)) {
            v->type = words[i].type;
            v->b = words[i].b;
            jp->p += k;
            return 0;
        }
    }
    return jerr(jp, "a value");
}

static int jparse(const char *s, size_t n, const char *path, jval *root, npe_error *err)
{
    jparser jp = {.s = s, .n = n, .path = path, .line = 1, .err = err};
    memset(root, 0, sizeof(*root));
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        jp.p = jp.line_start = 3;
    jws(&jp);
    int rc = jvalue(&jp, root);
    if (!rc) {
        jws(&jp);
        if (jp.p < n)
            rc = jerr(&jp, "the end of the file after the top-level value");
    }
    if (rc)
        jfree(root);
    return rc;
}

static const jval *jget(const jval *o, const char *key)
{
    if (o->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return &o->items[i];
    return NULL;
}

static const char *jtype_name(int t)
{
    static const char *names[] = {"null", "a boolean", "a number", "a string", "an array",
                                  "an object"};
    return names[t];
}

/* Fetch o[key] of the given type (J_NULL accepted too when nullable). */
static int jfield(const char *path, const jval *o, const char *where, const char *key, int type,
                  int nullable, const jval **out, npe_error *err)
{
    const jval *v = jget(o, key);
    if (!v)
        return npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: no \"%s\"", path, o->line, o->col, where,
                             key);
    if (v->type != type && !(nullable && v->type == J_NULL))
        return npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: \"%s\" must be %s, found %s", path,
                             v->line, v->col, where, key, jtype_name(type), jtype_name(v->type));
    *out = v;
    return 0;
}

static int json_group(npe_sens_table *t, const char *path, const jval *o, size_t idx, npe_error *err)
{
    char where[96];
    snprintf(where, sizeof(where), "group %zu", idx);
    if (o->type != J_OBJ)
        return npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s must be an object, found %s", path,
                             o->line, o->col, where, jtype_name(o->type));
    const jval *name, *members, *channels, *skipped = jget(o, "skipped"), *sp = NULL, *vals = NULL;
    int rc;
    if ((rc = jfield(path, o, where, "name", J_STR, 0, &name, err)))
        return rc;
    snprintf(where, sizeof(where), "group %zu ('%.60s')", idx, name->str);
    if ((rc = jfield(path, o, where, "members", J_ARR, 0, &members, err)) ||
        (rc = jfield(path, o, where, "channels", J_NUM, 1, &channels, err)))
        return rc;
    const char **mem = calloc(members->n ? members->n : 1, sizeof(char *));
    double *spars = NULL;
    if (!mem)
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < members->n; i++) {
        if (members->items[i].type != J_STR) {
            rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: members must be strings", path,
                               members->items[i].line, members->items[i].col, where);
            goto out;
        }
        mem[i] = members->items[i].str;
    }
    int64_t ch = -1;
    if (channels->type == J_NUM) {
        if (!(channels->num >= 1 && channels->num <= 9e15) || channels->num != floor(channels->num)) {
            rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: channels must be a positive integer",
                               path, channels->line, channels->col, where);
            goto out;
        }
        ch = (int64_t)channels->num;
    }
    npe_sens_group_spec spec = {.name = name->str, .members = mem, .n_members = members->n,
                                .channels = ch};
    if (skipped) {
        if (skipped->type != J_STR) {
            rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: \"skipped\" must be a string", path,
                               skipped->line, skipped->col, where);
            goto out;
        }
        spec.skip_reason = skipped->str;
    } else {
        if ((rc = jfield(path, o, where, "sparsities", J_ARR, 0, &sp, err)) ||
            (rc = jfield(path, o, where, "values", J_ARR, 0, &vals, err)))
            goto out;
        if (vals->n != sp->n) {
            rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: %zu values for %zu sparsities", path,
                               vals->line, vals->col, where, vals->n, sp->n);
            goto out;
        }
        spars = malloc((sp->n ? sp->n : 1) * sizeof(double));
        if (!spars) {
            rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (size_t i = 0; i < sp->n; i++) {
            if (sp->items[i].type != J_NUM) {
                rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: %s: sparsities must be numbers", path,
                                   sp->items[i].line, sp->items[i].col, where);
                goto out;
            }
            spars[i] = sp->items[i].num;
        }
        spec.sparsities = spars;
        spec.n_sparsities = sp->n;
    }
    int gi = add_group(t, &spec, 0, err);
    if (gi < 0) {
        rc = gi;
        npe_error_prefix(err, "%s:%d:%d", path, o->line, o->col);
        goto out;
    }
    for (size_t i = 0; vals && i < vals->n; i++) {
        const jval *x = &vals->items[i];
        double v;
        if (x->type == J_NULL)
            continue;
        if (x->type == J_NUM)
            v = x->num;
        else if (x->type == J_STR && !strcmp(x->str, "nan"))
            v = NAN;
        else if (x->type == J_STR && !strcmp(x->str, "inf"))
            v = INFINITY;
        else if (x->type == J_STR && !strcmp(x->str, "-inf"))
            v = -INFINITY;
        else {
            rc = npe_error_set(err, NPE_EFORMAT,
                               "%s:%d:%d: %s: a value must be a number, null, \"nan\", \"inf\" or \"-inf\"",
                               path, x->line, x->col, where);
            goto out;
        }
        t->groups[gi].values[i] = v;
        t->groups[gi].measured[i] = 1;
    }
    rc = 0;
out:
    free(mem);
    free(spars);
    return rc;
}

int npe_sens_read_json(npe_sens_table *t, const char *path, npe_error *err)
{
    char *s = NULL;
    size_t n = 0;
    jval root;
    memset(t, 0, sizeof(*t));
    int rc = npe_read_file(path, MAX_FILE_SIZE, &s, &n, err);
    if (rc)
        return rc;
    rc = jparse(s, n, path, &root, err);
    free(s);
    if (rc)
        return rc;
    const jval *fmt, *ver, *metric, *hib, *base, *thres, *mode, *fp, *groups;
    if (root.type != J_OBJ) {
        rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: expected an object at the top, found %s", path,
                           root.line, root.col, jtype_name(root.type));
        goto out;
    }
    if ((rc = jfield(path, &root, "top level", "format", J_STR, 0, &fmt, err)))
        goto out;
    if (strcmp(fmt->str, "lbprune-sensitivity")) {
        rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: format is \"%.60s\", not a sensitivity table",
                           path, fmt->line, fmt->col, fmt->str);
        goto out;
    }
    if ((rc = jfield(path, &root, "top level", "version", J_NUM, 0, &ver, err)))
        goto out;
    if (ver->num != 1) {
        rc = npe_error_set(err, NPE_EUNSUPPORTED, "%s:%d:%d: version %g (this build reads version 1)",
                           path, ver->line, ver->col, ver->num);
        goto out;
    }
    if ((rc = jfield(path, &root, "top level", "metric", J_STR, 0, &metric, err)) ||
        (rc = jfield(path, &root, "top level", "higher_is_better", J_BOOL, 0, &hib, err)) ||
        (rc = jfield(path, &root, "top level", "baseline", J_NUM, 0, &base, err)) ||
        (rc = jfield(path, &root, "top level", "metric_thres", J_NUM, 0, &thres, err)) ||
        (rc = jfield(path, &root, "top level", "early_stop_mode", J_STR, 1, &mode, err)) ||
        (rc = jfield(path, &root, "top level", "fingerprint", J_STR, 0, &fp, err)) ||
        (rc = jfield(path, &root, "top level", "groups", J_ARR, 0, &groups, err)))
        goto out;
    npe_sens_config cfg = {.metric = metric->str, .higher_is_better = hib->b, .baseline = base->num,
                           .thres = thres->num, .fingerprint = fp->str};
    if ((rc = npe_early_stop_parse(mode->type == J_STR ? mode->str : NULL, &cfg.early_stop, err)) ||
        (rc = npe_sens_init(t, &cfg, err))) {
        if (rc != NPE_ENOMEM)
            rc = NPE_EFORMAT;
        npe_error_prefix(err, "%s", path);
        goto out;
    }
    for (size_t i = 0; i < groups->n; i++)
        if ((rc = json_group(t, path, &groups->items[i], i, err)))
            goto out;
    size_t a, b;
    int oom;
    if (find_dup(t, &a, &b, &oom)) {
        const jval *g = &groups->items[b];
        rc = npe_error_set(err, NPE_EFORMAT, "%s:%d:%d: group '%.60s' appears twice (first on line %d)",
                           path, g->line, g->col, t->groups[b].name, groups->items[a].line);
        goto out;
    }
    if (oom)
        rc = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
out:
    jfree(&root);
    if (rc)
        npe_sens_finish(t);
    return rc;
}

/* ---- Resume --------------------------------------------------------------------------------- */

/* Temporary files npe_afile leaves when the process dies between open and rename. */
static int remove_stale_tmp(const char *json_path, size_t *count, npe_error *err)
{
    const char *slash = strrchr(json_path, '/');
    char *dir = slash ? strndup(json_path, (size_t)(slash - json_path) + (slash == json_path))
                      : strdup(".");
    if (!dir)
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        int rc = npe_error_set(err, NPE_EIO, "%s: cannot list: %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "sens.json.tmp.", 14) && strncmp(e->d_name, "sens.csv.tmp.", 13))
            continue;
        char *p = join_path(dir, e->d_name);
        if (p && unlink(p) == 0)
            (*count)++;
        free(p);
    }
    closedir(d);
    free(dir);
    return 0;
}

static int same_members(const npe_sens_group *a, const npe_sens_group *b)
{
    if (a->n_members != b->n_members || a->channels != b->channels)
        return 0;
    for (size_t i = 0; i < a->n_members; i++)
        if (strcmp(a->members[i], b->members[i]))
            return 0;
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int npe_sens_resume(npe_sens_table *t, npe_sens_resume_info *info, npe_error *err)
{
    npe_sens_resume_info dummy;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof(*info));
    if (!t->json_path || !t->metric)
        return npe_error_set(err, NPE_EINVAL,
                             "sensitivity resume: the table needs a metric and an output directory");
    int rc = remove_stale_tmp(t->json_path, &info->stale_tmp, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(t->json_path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return npe_error_set(err, NPE_EIO, "%s: %s", t->json_path, strerror(errno));
    }
    info->found = 1;
    npe_sens_table old;
    rc = npe_sens_read_json(&old, t->json_path, err);
    if (rc) {
        /* Written by rename only, so a damaged file was not left by a kill: do not guess. */
        npe_error_prefix(err, "cannot resume (remove the file to start afresh)");
        return rc;
    }
    const char *what = NULL;
    char there[96] = "", now[96] = "";
    if (strcmp(old.metric, t->metric)) {
        what = "metric";
        snprintf(there, sizeof(there), "'%.60s'", old.metric);
        snprintf(now, sizeof(now), "'%.60s'", t->metric);
    } else if (old.higher_is_better != t->higher_is_better) {
        what = "metric direction";
        snprintf(there, sizeof(there), "%s", old.higher_is_better ? "higher is better" : "lower is better");
        snprintf(now, sizeof(now), "%s", t->higher_is_better ? "higher is better" : "lower is better");
    } else if (!(fabs(old.baseline - t->baseline) <= 1e-9)) {
        what = "baseline metric";
        snprintf(there, sizeof(there), "%.17g", old.baseline);
        snprintf(now, sizeof(now), "%.17g", t->baseline);
    } else if (strcmp(old.fingerprint, t->fingerprint)) {
        what = "model/data fingerprint";
        snprintf(there, sizeof(there), "'%.80s'", old.fingerprint);
        snprintf(now, sizeof(now), "'%.80s'", t->fingerprint);
    }
    if (what) {
        rc = npe_error_set(err, NPE_EINVAL,
                           "%s holds measurements of another run (%s: %s there, %s now); remove it or "
                           "choose another output_dir to start afresh",
                           t->json_path, what, there, now);
        npe_sens_finish(&old);
        return rc;
    }
    name_ref *idx = sorted_names(t);
    if (!idx) {
        npe_sens_finish(&old);
        return npe_error_set(err, NPE_ENOMEM, "out of memory");
    }
    for (size_t a = 0; a < old.n_groups; a++) {
        const npe_sens_group *og = &old.groups[a];
        size_t nmeas = 0;
        for (size_t i = 0; i < og->n_sparsities; i++)
            nmeas += og->measured[i];
        if (!nmeas)
            continue;
        name_ref key = {og->name, 0};
        /* lower bound by name (index 0 sorts first among equal names) */
        size_t lo = 0, hi = t->n_groups;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cmp_name_ref(&idx[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        npe_sens_group *ng = NULL;
        if (lo < t->n_groups && !strcmp(idx[lo].name, og->name))
            ng = &t->groups[idx[lo].index];
        if (!ng || ng->skip_reason || !same_members(og, ng)) {
            info->discarded += nmeas;
            continue;
        }
        for (size_t i = 0; i < og->n_sparsities; i++) {
            if (!og->measured[i])
                continue;
            const double *hit = bsearch(&og->sparsities[i], ng->sparsities, ng->n_sparsities,
                                        sizeof(double), cmp_double);
            if (!hit) {
                info->discarded++;
                continue;
            }
            size_t k = (size_t)(hit - ng->sparsities);
            ng->values[k] = og->values[i];
            ng->measured[k] = 1;
            info->restored++;
        }
    }
    free(idx);
    npe_sens_finish(&old);
    return 0;
}

/* ---- Fingerprint ---------------------------------------------------------------------------- */

int npe_sens_file_fingerprint(const char *path, char *out, npe_error *err)
{
    npe_map m;
    int rc = npe_map_file(path, &m, err);
    if (rc)
        return rc;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < m.size;) {
        size_t chunk = m.size - off;
        if (chunk > ((size_t)1 << 30))
            chunk = (size_t)1 << 30;
        crc = crc32(crc, m.data + off, (uInt)chunk);
        off += chunk;
    }
    snprintf(out, 64, "size=%llu crc32=%08lx", (unsigned long long)m.size, (unsigned long)crc);
    npe_unmap_file(&m);
    return 0;
}
