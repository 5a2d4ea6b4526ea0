/* Reference data movement: strided gather (permute, slice, expand, cat) and constant 2-D pad
 * with crop for negative pads. */
#include "ref.h"

void npe_ref_copy_strided(const npe_kexec *ex, int ndim, const int64_t *shape, const float *x,
                          const int64_t *xs, float *y, const int64_t *ys)
{
    (void)ex;
    int64_t total = 1;
    for (int d = 0; d < ndim; d++)
        total *= shape[d];
    int64_t idx[NPE_KMAX_DIMS] = {0};
    int64_t xo = 0, yo = 0;
    for (int64_t i = 0; i < total; i++) {
        y[yo] = x[xo];
        for (int d = ndim - 1; d >= 0; d--) {
            idx[d]++;
            xo += xs[d];
            yo += ys[d];
            if (idx[d] < shape[d])
                break;
            xo -= xs[d] * shape[d];
            yo -= ys[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/* y[o, i, j] = x[o, i - top, j - left] where that lies inside x, else value. */
void npe_ref_pad2d(const npe_kexec *ex, int64_t outer, int h, int w, int left, int right, int top,
                   int bottom, float value, const float *x, float *y)
{
    (void)ex;
    const int64_t oh = (int64_t)h + top + bottom, ow = (int64_t)w + left + right;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                const int64_t si = i - top, sj = j - left;
                const int inside = si >= 0 && si < h && sj >= 0 && sj < w;
                y[(o * oh + i) * ow + j] = inside ? x[(o * h + si) * w + sj] : value;
            }
}
