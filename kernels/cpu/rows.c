/* Padded, stride-phased copies of input rows for the sliding-window kernels (see cpu.h). */
#include <string.h>

#include "cpu.h"
#include "vec.h"

static void fill_run(float *p, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
}

void npe_kcpu_phase_rows(const float *xp, int64_t h_in, int64_t w_in, int64_t ph, int64_t pw,
                         int64_t sw, int64_t lq, int64_t r0, int64_t r1, float fill, float *dst)
{
    for (int64_t i = r0; i < r1; i++) {
        float *row = dst + (i - r0) * sw * lq;
        const int64_t ih = i - ph;
        if (ih < 0 || ih >= h_in) {
            fill_run(row, sw * lq, fill);
            continue;
        }
        const float *xr = xp + ih * w_in;
        for (int64_t q = 0; q < sw; q++) {
            float *run = row + q * lq;
            /* element j is input column j*sw + q - pw: inside for j in [j0, j1) */
            int64_t j0 = pw - q > 0 ? (pw - q + sw - 1) / sw : 0;
            int64_t j1 = w_in + pw - q > 0 ? (w_in + pw - q + sw - 1) / sw : 0;
            if (j1 > lq)
                j1 = lq;
            if (j0 > j1)
                j0 = j1;
            fill_run(run, j0, fill);
            int64_t j = j0;
            if (sw == 1) {
                memcpy(run + j0, xr + j0 - pw, (size_t)(j1 - j0) * sizeof(float));
                j = j1;
            } else if (sw == 2) {
                /* vectors while their two loads stay inside the row */
                for (; j + KV_N <= j1 && (j + KV_N) * 2 + q - pw <= w_in; j += KV_N)
                    kv_store(run + j, kv_even(xr + j * 2 + q - pw));
            }
            for (; j < j1; j++)
                run[j] = xr[j * sw + q - pw];
            fill_run(run + j1, lq - j1, fill);
        }
    }
}
