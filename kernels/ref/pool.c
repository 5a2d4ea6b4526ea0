/* Reference pooling: max/avg with PyTorch's padding, ceil_mode, dilation and divisor rules, and
 * adaptive pooling with PyTorch's bin edges. */
#include "ref.h"

#include <math.h>

/* Windows of PyTorch's max_pool2d: start at o*s - p, taps every d, padding never wins (taps
 * outside the input are skipped) and NaN beats every number. */
void npe_ref_max_pool2d(const npe_kexec *ex, const npe_pool2d_params *p, const float *x, float *y)
{
    (void)ex;
    const int64_t planes = (int64_t)p->n * p->c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * p->h_in * p->w_in;
        float *yp = y + pl * p->h_out * p->w_out;
        for (int64_t oh = 0; oh < p->h_out; oh++)
            for (int64_t ow = 0; ow < p->w_out; ow++) {
                float m = -INFINITY;
                for (int64_t ki = 0; ki < p->kh; ki++) {
                    const int64_t ih = oh * p->sh - p->ph + ki * p->dh;
                    if (ih < 0 || ih >= p->h_in)
                        continue;
                    for (int64_t kj = 0; kj < p->kw; kj++) {
                        const int64_t iw = ow * p->sw - p->pw + kj * p->dw;
                        if (iw < 0 || iw >= p->w_in)
                            continue;
                        const float v = xp[ih * p->w_in + iw];
                        if (v > m || isnan(v))
                            m = v;
                    }
                }
                yp[oh * p->w_out + ow] = m;
            }
    }
}

/* PyTorch's avg_pool2d: the window is clipped to the padded input (that size is the divisor with
 * count_include_pad), then to the input itself (the divisor without it); divisor_override
 * replaces both. A window with no input element gives 0. */
void npe_ref_avg_pool2d(const npe_kexec *ex, const npe_pool2d_params *p, const float *x, float *y)
{
    (void)ex;
    const int64_t planes = (int64_t)p->n * p->c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * p->h_in * p->w_in;
        float *yp = y + pl * p->h_out * p->w_out;
        for (int64_t oh = 0; oh < p->h_out; oh++)
            for (int64_t ow = 0; ow < p->w_out; ow++) {
                int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;
                int64_t h1 = h0 + p->kh, w1 = w0 + p->kw;
                if (h1 > (int64_t)p->h_in + p->ph)
                    h1 = (int64_t)p->h_in + p->ph;
                if (w1 > (int64_t)p->w_in + p->pw)
                    w1 = (int64_t)p->w_in + p->pw;
                const int64_t padded_size = (h1 - h0) * (w1 - w0);
                if (h0 < 0)
                    h0 = 0;
                if (w0 < 0)
                    w0 = 0;
                if (h1 > p->h_in)
                    h1 = p->h_in;
                if (w1 > p->w_in)
                    w1 = p->w_in;
                if (h0 >= h1 || w0 >= w1) {
                    yp[oh * p->w_out + ow] = 0.0f;
                    continue;
                }
                double sum = 0.0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        sum += xp[ih * p->w_in + iw];
                int64_t divisor;
                if (p->divisor_override)
                    divisor = p->divisor_override;
                else if (p->count_include_pad)
                    divisor = padded_size;
                else
                    divisor = (h1 - h0) * (w1 - w0);
                yp[oh * p->w_out + ow] = (float)(sum / (double)divisor);
            }
    }
}

/* Bin i of out over in elements: [floor(i*in/out), ceil((i+1)*in/out)). */
static int64_t bin_start(int64_t i, int64_t in, int64_t out)
{
    return i * in / out;
}

static int64_t bin_end(int64_t i, int64_t in, int64_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

void npe_ref_adaptive_avg_pool2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 const float *x, float *y)
{
    (void)ex;
    const int64_t planes = (int64_t)n * c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            const int64_t h0 = bin_start(i, h, oh), h1 = bin_end(i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                const int64_t w0 = bin_start(j, w, ow), w1 = bin_end(j, w, ow);
                double sum = 0.0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        sum += xp[ih * w + iw];
                yp[i * ow + j] = (float)(sum / (double)((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

void npe_ref_adaptive_max_pool2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 const float *x, float *y)
{
    (void)ex;
    const int64_t planes = (int64_t)n * c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            const int64_t h0 = bin_start(i, h, oh), h1 = bin_end(i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                const int64_t w0 = bin_start(j, w, ow), w1 = bin_end(j, w, ow);
                float m = -INFINITY;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        const float v = xp[ih * w + iw];
                        if (v > m || isnan(v))
                            m = v;
                    }
                yp[i * ow + j] = m;
            }
        }
    }
}
