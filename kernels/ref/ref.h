/* Private declarations of the plain C reference kernels (the .c files of kernels/ref), gathered
 * into the table by npe_kernels_init_ref; the signatures are those of npe_kernels in kernels.h. */
#ifndef NPE_KERNELS_REF_REF_H
#define NPE_KERNELS_REF_REF_H

#include "../kernels.h"

size_t npe_ref_conv2d_scratch(const npe_conv2d_params *p, int nthreads);
void npe_ref_conv2d(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                    const float *w, const float *b, float *y);
void npe_ref_conv2d_ep(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                       const float *w, const float *b, const npe_conv_epilogue *ep, float *y);
/* The epilogue alone, in place, on len outputs of output channel oc starting at y. */
void npe_ref_conv_epilogue(const npe_conv_epilogue *ep, int64_t oc, float *y, int64_t len);

void npe_ref_linear(const npe_kexec *ex, int64_t m, int64_t k, int64_t n, const float *x,
                    const float *w, const float *b, float *y);
void npe_ref_channel_affine(const npe_kexec *ex, int64_t n, int64_t c, int64_t inner,
                            const float *x, const float *scale, const float *shift, float *y);

void npe_ref_unary(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x, float *y,
                   float alpha, float beta);
void npe_ref_binary(const npe_kexec *ex, npe_binary_op op, int ndim, const int64_t *shape,
                    const float *a, const int64_t *as, const float *b, const int64_t *bs,
                    float *y, float alpha);

void npe_ref_copy_strided(const npe_kexec *ex, int ndim, const int64_t *shape, const float *x,
                          const int64_t *xs, float *y, const int64_t *ys);
void npe_ref_pad2d(const npe_kexec *ex, int64_t outer, int h, int w, int left, int right, int top,
                   int bottom, float value, const float *x, float *y);

void npe_ref_max_pool2d(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                        float *y);
void npe_ref_avg_pool2d(const npe_kexec *ex, const npe_pool2d_params *p, const float *x,
                        float *y);
void npe_ref_adaptive_avg_pool2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 const float *x, float *y);
void npe_ref_adaptive_max_pool2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 const float *x, float *y);

void npe_ref_upsample_nearest2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                float scale_h, float scale_w, const float *x, float *y);
void npe_ref_upsample_bilinear2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 int align_corners, float scale_h, float scale_w, const float *x,
                                 float *y);

void npe_ref_reduce(const npe_kexec *ex, npe_reduce_op op, int64_t outer, int64_t r,
                    int64_t inner, const float *x, float *y);
void npe_ref_softmax(const npe_kexec *ex, int log, int64_t outer, int64_t d, int64_t inner,
                     const float *x, float *y);

#endif
