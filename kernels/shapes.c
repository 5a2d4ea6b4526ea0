/* Output-size rules of convolution and pooling, written exactly as PyTorch computes them, so
 * every backend and the graph builder agree on shapes. */
#include "kernels.h"

#include <limits.h>

/* Floor division (C's / truncates toward zero); PyTorch's div_rtn for a possibly negative
 * numerator and a positive divisor. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && (a < 0))
        q--;
    return q;
}

/* Every argument is a C int, so the int64 intermediates below cannot overflow. */
static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t num = in + 2 * p - d * (k - 1) - 1;
    if (num < 0)
        return -1; /* the dilated kernel does not fit in the padded input */
    return num / s + 1;
}

static int64_t conv_t_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t op)
{
    return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
}

int npe_conv2d_out_size(npe_conv2d_params *p)
{
    if (p->n < 1 || p->c_in < 1 || p->c_out < 1 || p->h_in < 1 || p->w_in < 1 || p->kh < 1 ||
        p->kw < 1 || p->sh < 1 || p->sw < 1 || p->ph < 0 || p->pw < 0 || p->dh < 1 ||
        p->dw < 1 || p->groups < 1)
        return -1;
    if (p->c_in % p->groups != 0 || p->c_out % p->groups != 0)
        return -1;
    int64_t ho, wo;
    if (p->transposed) {
        /* PyTorch: output padding must be smaller than either stride or dilation. */
        if (p->oph < 0 || p->opw < 0 || (p->oph >= p->sh && p->oph >= p->dh) ||
            (p->opw >= p->sw && p->opw >= p->dw))
            return -1;
        ho = conv_t_out(p->h_in, p->kh, p->sh, p->ph, p->dh, p->oph);
        wo = conv_t_out(p->w_in, p->kw, p->sw, p->pw, p->dw, p->opw);
    } else {
        ho = conv_out(p->h_in, p->kh, p->sh, p->ph, p->dh);
        wo = conv_out(p->w_in, p->kw, p->sw, p->pw, p->dw);
    }
    if (ho < 1 || wo < 1 || ho > INT_MAX || wo > INT_MAX)
        return -1;
    p->h_out = (int)ho;
    p->w_out = (int)wo;
    return 0;
}

/* PyTorch's pooling_output_shape: with ceil_mode the division rounds up, but a last window
 * that would start in the right padding (past in + pad) is dropped. */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int ceil_mode)
{
    int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t out = floor_div(num, s) + 1;
    if (ceil_mode && (out - 1) * s >= in + p)
        out--;
    return out;
}

int npe_pool2d_out_size(npe_pool2d_params *p)
{
    if (p->n < 1 || p->c < 1 || p->h_in < 1 || p->w_in < 1 || p->kh < 1 || p->kw < 1 ||
        p->sh < 1 || p->sw < 1 || p->ph < 0 || p->pw < 0 || p->dh < 1 || p->dw < 1)
        return -1;
    /* PyTorch rejects padding past half the (undilated) kernel. */
    if (p->ph > p->kh / 2 || p->pw > p->kw / 2)
        return -1;
    int64_t ho = pool_out(p->h_in, p->kh, p->sh, p->ph, p->dh, p->ceil_mode);
    int64_t wo = pool_out(p->w_in, p->kw, p->sw, p->pw, p->dw, p->ceil_mode);
    if (ho < 1 || wo < 1 || ho > INT_MAX || wo > INT_MAX)
        return -1;
    p->h_out = (int)ho;
    p->w_out = (int)wo;
    return 0;
}
