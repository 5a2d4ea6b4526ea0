/* Reference elementwise ops: unary activations and broadcast binary arithmetic. Values are
 * computed in double and rounded once, so the reference is at least as accurate as PyTorch. */
#include "ref.h"

#include <math.h>

#define SQRT_HALF 0.70710678118654752440

static double unary_one(npe_unary_op op, double x, double alpha, double beta)
{
    switch (op) {
    case NPE_UNARY_RELU:
        return x < 0 ? 0.0 : x; /* NaN passes through, as in torch.relu */
    case NPE_UNARY_HARDTANH:
        if (isnan(x))
            return x;
        return x < alpha ? alpha : (x > beta ? beta : x);
    case NPE_UNARY_LEAKY_RELU:
        return x >= 0 ? x : alpha * x;
    case NPE_UNARY_SILU:
        return x / (1.0 + exp(-x));
    case NPE_UNARY_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case NPE_UNARY_HARDSWISH:
        return x * fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0;
    case NPE_UNARY_HARDSIGMOID:
        return fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0;
    case NPE_UNARY_TANH:
        return tanh(x);
    case NPE_UNARY_GELU:
        return 0.5 * x * (1.0 + erf(x * SQRT_HALF));
    case NPE_UNARY_ELU:
        return x > 0 ? x : alpha * expm1(x);
    case NPE_UNARY_MUL_SCALAR:
        return x * alpha + beta;
    case NPE_UNARY_EXP:
        return exp(x);
    case NPE_UNARY_SQRT:
        return sqrt(x);
    case NPE_UNARY_NEG:
        return -x;
    case NPE_UNARY_COUNT:
        break;
    }
    return NAN; /* unknown op: make the mistake visible in the output */
}

void npe_ref_unary(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x, float *y,
                   float alpha, float beta)
{
    (void)ex;
    for (int64_t i = 0; i < count; i++)
        y[i] = (float)unary_one(op, x[i], alpha, beta);
}

static double binary_one(npe_binary_op op, double a, double b, double alpha)
{
    switch (op) {
    case NPE_BINARY_ADD:
        return a + alpha * b;
    case NPE_BINARY_SUB:
        return a - alpha * b;
    case NPE_BINARY_MUL:
        return a * b;
    case NPE_BINARY_DIV:
        return a / b;
    /* torch.maximum / torch.minimum propagate NaN from either side. */
    case NPE_BINARY_MAX:
        return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
    case NPE_BINARY_MIN:
        return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
    case NPE_BINARY_POW:
        return pow(a, b);
    case NPE_BINARY_COUNT:
        break;
    }
    return NAN;
}

void npe_ref_binary(const npe_kexec *ex, npe_binary_op op, int ndim, const int64_t *shape,
                    const float *a, const int64_t *as, const float *b, const int64_t *bs,
                    float *y, float alpha)
{
    (void)ex;
    int64_t total = 1;
    for (int d = 0; d < ndim; d++)
        total *= shape[d];
    /* An odometer over the output index; offsets into a and b follow their own strides. */
    int64_t idx[NPE_KMAX_DIMS] = {0};
    int64_t ao = 0, bo = 0;
    for (int64_t i = 0; i < total; i++) {
        y[i] = (float)binary_one(op, a[ao], b[bo], alpha);
        for (int d = ndim - 1; d >= 0; d--) {
            idx[d]++;
            ao += as[d];
            bo += bs[d];
            if (idx[d] < shape[d])
                break;
            ao -= as[d] * shape[d];
            bo -= bs[d] * shape[d];
            idx[d] = 0;
        }
    }
}
