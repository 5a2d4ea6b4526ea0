/* Reference fully connected layer and per-channel affine (folded batch norm). */
#include "ref.h"

void npe_ref_linear(const npe_kexec *ex, int64_t m, int64_t k, int64_t n, const float *x,
                    const float *w, const float *b, float *y)
{
    (void)ex;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = b ? b[j] : 0.0;
            for (int64_t t = 0; t < k; t++)
                acc += (double)x[i * k + t] * w[j * k + t];
            y[i * n + j] = (float)acc;
        }
}

void npe_ref_channel_affine(const npe_kexec *ex, int64_t n, int64_t c, int64_t inner,
                            const float *x, const float *scale, const float *shift, float *y)
{
    (void)ex;
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            const int64_t base = (i * c + ch) * inner;
            for (int64_t t = 0; t < inner; t++)
                y[base + t] = (float)((double)x[base + t] * scale[ch] + shift[ch]);
        }
}
