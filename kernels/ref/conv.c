/* Reference 2-D convolution and transposed convolution: direct loops with double
 * accumulators, written to read like the PyTorch definitions rather than to be fast. */
#include "ref.h"

size_t npe_ref_conv2d_scratch(const npe_conv2d_params *p, int nthreads)
{
    (void)p;
    (void)nthreads;
    return 0;
}

/* y[n, oc, oh, ow] = b[oc] + sum over ic in oc's group, ki, kj of
 *   x[n, ic, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw] * w[oc, ic - group start, ki, kj]. */
static void conv_forward(const npe_conv2d_params *p, const float *x, const float *w,
                         const float *b, float *y)
{
    const int64_t cin_g = p->c_in / p->groups, cout_g = p->c_out / p->groups;
    const int64_t hw_in = (int64_t)p->h_in * p->w_in, hw_out = (int64_t)p->h_out * p->w_out;
    const int64_t kk = (int64_t)p->kh * p->kw;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oc = 0; oc < p->c_out; oc++) {
            const int64_t g = oc / cout_g;
            const float *wo = w + oc * cin_g * kk;
            float *yo = y + (n * p->c_out + oc) * hw_out;
            for (int64_t oh = 0; oh < p->h_out; oh++)
                for (int64_t ow = 0; ow < p->w_out; ow++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int64_t ic = 0; ic < cin_g; ic++) {
                        const float *xc = x + (n * p->c_in + g * cin_g + ic) * hw_in;
                        const float *wc = wo + ic * kk;
                        for (int64_t ki = 0; ki < p->kh; ki++) {
                            const int64_t ih = oh * p->sh - p->ph + ki * p->dh;
                            if (ih < 0 || ih >= p->h_in)
                                continue;
                            for (int64_t kj = 0; kj < p->kw; kj++) {
                                const int64_t iw = ow * p->sw - p->pw + kj * p->dw;
                                if (iw < 0 || iw >= p->w_in)
                                    continue;
                                acc += (double)xc[ih * p->w_in + iw] * wc[ki * p->kw + kj];
                            }
                        }
                    }
                    yo[oh * p->w_out + ow] = (float)acc;
                }
        }
}

/* The transposed convolution is the adjoint of the forward one: input pixel (ih, iw) reaches
 * output (ih*sh - ph + ki*dh, iw*sw - pw + kj*dw). Gathering per output pixel keeps one
 * accumulator per output and needs no scratch. w is (Cin, Cout/g, kh, kw). */
static void conv_transposed(const npe_conv2d_params *p, const float *x, const float *w,
                            const float *b, float *y)
{
    const int64_t cin_g = p->c_in / p->groups, cout_g = p->c_out / p->groups;
    const int64_t hw_in = (int64_t)p->h_in * p->w_in, hw_out = (int64_t)p->h_out * p->w_out;
    const int64_t kk = (int64_t)p->kh * p->kw;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oc = 0; oc < p->c_out; oc++) {
            const int64_t g = oc / cout_g, ocg = oc - g * cout_g;
            float *yo = y + (n * p->c_out + oc) * hw_out;
            for (int64_t oh = 0; oh < p->h_out; oh++)
                for (int64_t ow = 0; ow < p->w_out; ow++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int64_t ic = g * cin_g; ic < (g + 1) * cin_g; ic++) {
                        const float *xc = x + (n * p->c_in + ic) * hw_in;
                        const float *wc = w + (ic * cout_g + ocg) * kk;
                        for (int64_t ki = 0; ki < p->kh; ki++) {
                            const int64_t th = oh + p->ph - ki * p->dh;
                            if (th < 0 || th % p->sh != 0 || th / p->sh >= p->h_in)
                                continue;
                            const int64_t ih = th / p->sh;
                            for (int64_t kj = 0; kj < p->kw; kj++) {
                                const int64_t tw = ow + p->pw - kj * p->dw;
                                if (tw < 0 || tw % p->sw != 0 || tw / p->sw >= p->w_in)
                                    continue;
                                acc += (double)xc[ih * p->w_in + tw / p->sw] * wc[ki * p->kw + kj];
                            }
                        }
                    }
                    yo[oh * p->w_out + ow] = (float)acc;
                }
        }
}

void npe_ref_conv2d(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                    const float *w, const float *b, float *y)
{
    (void)ex;
    if (p->transposed)
        conv_transposed(p, x, w, b, y);
    else
        conv_forward(p, x, w, b, y);
}

void npe_ref_conv_epilogue(const npe_conv_epilogue *ep, int64_t oc, float *y, int64_t len)
{
    if (ep->scale && ep->shift)
        npe_ref_channel_affine(NULL, 1, 1, len, y, ep->scale + oc, ep->shift + oc, y);
    if (ep->act > 0) /* an unknown op gives NaN, as npe_ref_unary */
        npe_ref_unary(NULL, (npe_unary_op)(ep->act - 1), len, y, y, ep->alpha, ep->beta);
}

/* The definition of the fused op: the convolution, then the epilogue on every output plane. */
void npe_ref_conv2d_ep(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                       const float *w, const float *b, const npe_conv_epilogue *ep, float *y)
{
    npe_ref_conv2d(ex, p, x, w, b, y);
    if (!ep)
        return;
    const int64_t hw = (int64_t)p->h_out * p->w_out;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oc = 0; oc < p->c_out; oc++)
            npe_ref_conv_epilogue(ep, oc, y + (n * p->c_out + oc) * hw, hw);
}
