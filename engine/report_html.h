/* The HTML report of `lbprune run` (engine/report_html.c). */
#ifndef NPE_ENGINE_REPORT_HTML_H
#define NPE_ENGINE_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>

#include "../formats/error.h"
#include "sens_table.h"

typedef struct npe_html_report {
    const char *model, *metric;
    int higher_is_better;
    double baseline, thres;
    double metric_before, metric_after;
    int64_t params_before, params_after, macs_before, macs_after;
    const npe_sens_table *table; /* NULL when the analysis was skipped (config_list) */
    const double *chosen;        /* per table group: the chosen sparsity */
    size_t n_chosen;
} npe_html_report;

/* Write the report to path atomically. */
int npe_html_report_write(const char *path, const npe_html_report *r, npe_error *err);

#endif
