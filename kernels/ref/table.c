/* The reference kernel table: every entry points at the plain C version, which defines what
 * the op means; optimised tables start from a copy of it. */
#include "ref.h"

/* The reference uses w as given: nothing to prepare. */
static void conv2d_ep_entry(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                            const float *w, const void *prep, const float *b,
                            const npe_conv_epilogue *ep, float *y)
{
    (void)prep;
    npe_ref_conv2d_ep(ex, p, x, w, b, ep, y);
}

static size_t conv2d_prep_bytes(const npe_conv2d_params *p, int nthreads)
{
    (void)p, (void)nthreads;
    return 0;
}

static void conv2d_prep(const npe_kexec *ex, const npe_conv2d_params *p, const float *w,
                        void *prep)
{
    (void)ex, (void)p, (void)w, (void)prep;
}

void npe_kernels_init_ref(npe_kernels *k)
{
    *k = (npe_kernels){0};
    k->name = "ref";
    k->conv2d_scratch = npe_ref_conv2d_scratch;
    k->conv2d = npe_ref_conv2d;
    k->conv2d_ep = conv2d_ep_entry;
    k->conv2d_prep_bytes = conv2d_prep_bytes;
    k->conv2d_prep = conv2d_prep;
    k->linear = npe_ref_linear;
    k->channel_affine = npe_ref_channel_affine;
    k->unary = npe_ref_unary;
    k->binary = npe_ref_binary;
    k->copy_strided = npe_ref_copy_strided;
    k->max_pool2d = npe_ref_max_pool2d;
    k->avg_pool2d = npe_ref_avg_pool2d;
    k->adaptive_avg_pool2d = npe_ref_adaptive_avg_pool2d;
    k->adaptive_max_pool2d = npe_ref_adaptive_max_pool2d;
    k->upsample_nearest2d = npe_ref_upsample_nearest2d;
    k->upsample_bilinear2d = npe_ref_upsample_bilinear2d;
    k->pad2d = npe_ref_pad2d;
    k->reduce = npe_ref_reduce;
    k->softmax = npe_ref_softmax;
}
