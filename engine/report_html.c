/* The self-contained HTML report of `lbprune run`: the summary numbers and, per group, an SVG plot
 * of its sensitivity curve with the threshold line and the chosen sparsity. No scripts, no
 * external files: it opens anywhere. */
#include "report_html.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/fileio.h"

typedef struct buf {
    char *s;
    size_t n, cap;
    int oom;
} buf;

static void bprintf(buf *b, const char *fmt, ...) NPE_PRINTF(2, 3);
static void bprintf(buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 8192;
        while (cap - b->n <= (size_t)k)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
}

/* Text with HTML's special characters escaped. */
static void esc(buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': bprintf(b, "&lt;"); break;
        case '>': bprintf(b, "&gt;"); break;
        case '&': bprintf(b, "&amp;"); break;
        case '"': bprintf(b, "&quot;"); break;
        default: bprintf(b, "%c", *s);
        }
    }
}

/* One group's curve: x = sparsity in [0, max], y = metric; the allowed limit as a dashed line,
 * the baseline as a thin line, the chosen sparsity as a filled marker. */
static void plot(buf *b, const npe_sens_group *g, const npe_html_report *r, double chosen)
{
    const int W = 360, H = 200, L = 48, R = 12, T = 12, B = 30;
    double limit = r->higher_is_better ? r->baseline - r->thres : r->baseline + r->thres;
    double ymin = fmin(r->baseline, limit), ymax = fmax(r->baseline, limit);
    double xmax = 0;
    for (size_t i = 0; i < g->n_sparsities; i++) {
        xmax = fmax(xmax, g->sparsities[i]);
        if (g->measured[i] && isfinite(g->values[i])) {
            ymin = fmin(ymin, g->values[i]);
            ymax = fmax(ymax, g->values[i]);
        }
    }
    if (xmax <= 0)
        xmax = 1;
    if (!(ymax > ymin))
        ymax = ymin + 1;
    double pad = (ymax - ymin) * 0.08;
    ymin -= pad;
    ymax += pad;
#define PX(x) (L + (x) / xmax * (W - L - R))
#define PY(y) (T + (ymax - (y)) / (ymax - ymin) * (H - T - B))
    bprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">", W, H, W, H);
    bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" "
               "stroke=\"#ccc\"/>", L, T, W - L - R, H - T - B);
    for (int k = 0; k <= 4; k++) { /* y ticks */
        double y = ymin + (ymax - ymin) * k / 4;
        bprintf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.4g</text>",
                L - 4, PY(y) + 3, y);
    }
    for (size_t i = 0; i < g->n_sparsities; i++)
        bprintf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.2g</text>",
                PX(g->sparsities[i]), H - B + 14, g->sparsities[i]);
    bprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">sparsity</text>",
            (L + W - R) / 2, H - 4);
    bprintf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>", L, W - R,
            PY(r->baseline), PY(r->baseline));
    bprintf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" "
               "stroke-dasharray=\"4 3\"><title>threshold %.5g</title></line>", L, W - R,
            PY(limit), PY(limit), limit);
    bprintf(b, "<polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"2\" points=\"%.1f,%.1f",
            PX(0.0), PY(r->baseline));
    for (size_t i = 0; i < g->n_sparsities; i++)
        if (g->measured[i] && isfinite(g->values[i]))
            bprintf(b, " %.1f,%.1f", PX(g->sparsities[i]), PY(g->values[i]));
    bprintf(b, "\"/>");
    for (size_t i = 0; i < g->n_sparsities; i++) {
        if (!g->measured[i] || !isfinite(g->values[i]))
            continue;
        int is_chosen = chosen > 0 && fabs(g->sparsities[i] - chosen) < 1e-12;
        bprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>s=%.3g: %.5g"
                   "</title></circle>", PX(g->sparsities[i]), PY(g->values[i]),
                is_chosen ? 6 : 3, is_chosen ? "#2a2" : "#36c", g->sparsities[i], g->values[i]);
    }
    bprintf(b, "</svg>");
#undef PX
#undef PY
}

int npe_html_report_write(const char *path, const npe_html_report *r, npe_error *err)
{
    buf b = {0};
    bprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lbprune report: ");
    esc(&b, r->model);
    bprintf(&b, "</title><style>body{font-family:sans-serif;margin:2em;max-width:72em}"
                "table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid "
                "#ddd;text-align:right}td:first-child,th:first-child{text-align:left}"
                ".g{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top}"
                ".g h3{font-size:1em;margin:.2em 0}</style></head><body>\n<h1>lbprune: ");
    esc(&b, r->model);
    bprintf(&b, "</h1>\n<table><tr><th></th><th>before</th><th>after</th><th>change</th></tr>");
    bprintf(&b, "<tr><td>");
    esc(&b, r->metric);
    bprintf(&b, "</td><td>%.5f</td><td>%.5f</td><td>%+.5f</td></tr>", r->metric_before,
            r->metric_after, r->metric_after - r->metric_before);
    bprintf(&b, "<tr><td>parameters</td><td>%lld</td><td>%lld</td><td>%+.1f%%</td></tr>",
            (long long)r->params_before, (long long)r->params_after,
            r->params_before ? 100.0 * (double)(r->params_after - r->params_before) /
                                   (double)r->params_before : 0.0);
    bprintf(&b, "<tr><td>MACs per image</td><td>%lld</td><td>%lld</td><td>%+.1f%%</td></tr>"
                "</table>\n", (long long)r->macs_before, (long long)r->macs_after,
            r->macs_before ? 100.0 * (double)(r->macs_after - r->macs_before) /
                                 (double)r->macs_before : 0.0);
    bprintf(&b, "<p>Baseline %.5g, metric_thres %.5g (%s is better). Each plot: the metric with "
                "only that group pruned; dashed red: the allowed limit; green: the chosen "
                "sparsity.</p>\n", r->baseline, r->thres, r->higher_is_better ? "higher" : "lower");
    const npe_sens_table *t = r->table;
    for (size_t gi = 0; t && gi < t->n_groups; gi++) {
        const npe_sens_group *g = &t->groups[gi];
        double chosen = gi < r->n_chosen ? r->chosen[gi] : 0;
        bprintf(&b, "<div class=\"g\"><h3>");
        esc(&b, g->name);
        if (g->channels > 0)
            bprintf(&b, " (%lld channels)", (long long)g->channels);
        bprintf(&b, "</h3>");
        if (g->skip_reason) {
            bprintf(&b, "<p>not analysed: ");
            esc(&b, g->skip_reason);
            bprintf(&b, "</p>");
        } else {
            bprintf(&b, "<p>chosen sparsity %.3g</p>", chosen);
            plot(&b, g, r, chosen);
        }
        bprintf(&b, "</div>\n");
    }
    bprintf(&b, "</body></html>\n");
    if (b.oom) {
        free(b.s);
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", path);
    }
    npe_afile af;
    int rc = npe_afile_open(&af, path, err);
    if (!rc) {
        rc = npe_afile_write(&af, b.s, b.n, err);
        if (rc)
            npe_afile_abort(&af);
        else
            rc = npe_afile_commit(&af, err); /* removes the temporary file on failure */
    }
    free(b.s);
    return rc;
}
