/* Reference reductions over the middle axis of (outer, r, inner): mean/sum/max, and the
 * numerically stable softmax and log-softmax. */
#include "ref.h"

#include <math.h>

void npe_ref_reduce(const npe_kexec *ex, npe_reduce_op op, int64_t outer, int64_t r,
                    int64_t inner, const float *x, float *y)
{
    (void)ex;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xp = x + o * r * inner + i;
            double acc;
            if (op == NPE_REDUCE_MAX) {
                /* amax of an empty range is an error in PyTorch; -inf is the identity. */
                acc = -INFINITY;
                for (int64_t t = 0; t < r; t++) {
                    const double v = xp[t * inner];
                    if (v > acc || isnan(v))
                        acc = v;
                    if (isnan(acc))
                        break;
                }
            } else {
                acc = 0.0;
                for (int64_t t = 0; t < r; t++)
                    acc += xp[t * inner];
                if (op == NPE_REDUCE_MEAN)
                    acc = r > 0 ? acc / (double)r : NAN; /* mean of nothing is NaN in PyTorch */
            }
            y[o * inner + i] = (float)acc;
        }
}

/* softmax = exp(x - max) / sum exp(x - max); log_softmax = x - max - log(sum exp(x - max)).
 * Subtracting the max keeps exp from overflowing; sums are in double. */
void npe_ref_softmax(const npe_kexec *ex, int want_log, int64_t outer, int64_t d, int64_t inner,
                     const float *x, float *y)
{
    (void)ex;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xp = x + o * d * inner + i;
            float *yp = y + o * d * inner + i;
            double m = -INFINITY;
            for (int64_t t = 0; t < d; t++)
                if (xp[t * inner] > m || isnan(xp[t * inner]))
                    m = xp[t * inner];
            double sum = 0.0;
            for (int64_t t = 0; t < d; t++)
                sum += exp((double)xp[t * inner] - m);
            const double lse = m + log(sum);
            for (int64_t t = 0; t < d; t++) {
                const double v = xp[t * inner];
                yp[t * inner] = (float)(want_log ? v - lse : exp(v - m) / sum);
            }
        }
}
