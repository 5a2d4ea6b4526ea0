/* Compute kernels: plain functions on float32 buffers with explicit shapes, one table of function
 * pointers per backend. kernels/ref holds the plain C reference of every op, kernels/cpu the
 * optimised versions (OpenBLAS, threads); a table starts from the reference and is upgraded.
 * Kernels know nothing of files, graphs or models. All tensors are row-major (NCHW for images)
 * and contiguous unless a signature takes strides. Outputs never alias inputs unless stated. */
#ifndef NPE_KERNELS_KERNELS_H
#define NPE_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define NPE_KMAX_DIMS 8

/* ---- Execution context: threads and scratch ---------------------------------------------------
 * Kernels that run in parallel split their work with ex->parallel_for; a NULL ex (or nthreads 1)
 * runs serially. The pool never runs OpenBLAS calls concurrently with OpenBLAS's own threads:
 * kernels that call sgemm from parallel_for workers make OpenBLAS single-threaded for that call
 * (see kernels/cpu/blas.h). */
typedef void (*npe_kfor_fn)(void *arg, int64_t begin, int64_t end, int thread);
typedef struct npe_kexec {
    int nthreads;
    /* Run fn over [0, n) split into at most nthreads contiguous chunks; returns when all are done.
     * thread is the worker index in [0, nthreads). NULL: run fn(arg, 0, n, 0). */
    void (*parallel_for)(const struct npe_kexec *ex, int64_t n, npe_kfor_fn fn, void *arg);
    void *pool;      /* owned by whoever built the npe_kexec */
    void *scratch;   /* at least scratch_size bytes, 64-byte aligned, for the kernel's private use */
    size_t scratch_size;
} npe_kexec;

/* ---- Parameters ------------------------------------------------------------------------------ */
typedef struct npe_conv2d_params {
    int n, c_in, h_in, w_in;   /* input  (N, Cin, H, W) */
    int c_out, h_out, w_out;   /* output (N, Cout, Ho, Wo), computed by npe_conv2d_out_size */
    int kh, kw;                /* kernel */
    int sh, sw;                /* stride */
    int ph, pw;                /* zero padding, both sides */
    int dh, dw;                /* dilation */
    int groups;
    int transposed;            /* 1: conv_transpose2d; weight is (Cin, Cout/groups, kh, kw) */
    int oph, opw;              /* output_padding (transposed only) */
} npe_conv2d_params;

/* Fill h_out/w_out from the rest; returns 0, or -1 if the output would be empty/negative. */
int npe_conv2d_out_size(npe_conv2d_params *p);

typedef struct npe_pool2d_params {
    int n, c, h_in, w_in, h_out, w_out;
    int kh, kw, sh, sw, ph, pw, dh, dw; /* dilation: max pool only (avg: 1) */
    int ceil_mode;
    int count_include_pad;     /* avg only */
    int divisor_override;      /* avg only; 0 = none */
} npe_pool2d_params;

/* PyTorch's pooling output size rule (incl. ceil_mode's "last window must start inside the
 * input or left padding"); returns 0, or -1 when invalid (pad > kernel/2, empty output). */
int npe_pool2d_out_size(npe_pool2d_params *p);

typedef enum npe_unary_op {
    NPE_UNARY_RELU = 0,
    NPE_UNARY_HARDTANH,    /* clamp(x, alpha, beta): ReLU6 is (0, 6) */
    NPE_UNARY_LEAKY_RELU,  /* x >= 0 ? x : alpha * x */
    NPE_UNARY_SILU,        /* x * sigmoid(x) */
    NPE_UNARY_SIGMOID,
    NPE_UNARY_HARDSWISH,   /* x * relu6(x + 3) / 6 */
    NPE_UNARY_HARDSIGMOID, /* relu6(x + 3) / 6 */
    NPE_UNARY_TANH,
    NPE_UNARY_GELU,        /* erf form */
    NPE_UNARY_ELU,         /* x > 0 ? x : alpha * (exp(x) - 1) */
    NPE_UNARY_MUL_SCALAR,  /* x * alpha + beta (affine by constants) */
    NPE_UNARY_EXP,
    NPE_UNARY_SQRT,
    NPE_UNARY_NEG,
    NPE_UNARY_COUNT
} npe_unary_op;

typedef enum npe_binary_op {
    NPE_BINARY_ADD = 0,    /* a + alpha * b */
    NPE_BINARY_SUB,        /* a - alpha * b */
    NPE_BINARY_MUL,
    NPE_BINARY_DIV,
    NPE_BINARY_MAX,
    NPE_BINARY_MIN,
    NPE_BINARY_POW,
    NPE_BINARY_COUNT
} npe_binary_op;

/* What conv2d_ep applies to each output after the bias, in this order, each step rounded to
 * float as the separate ops round: y = y * scale[oc] + shift[oc] (a batch norm in eval, as
 * channel_affine; scale and shift both NULL: none), then y = unary(act - 1, y, alpha, beta)
 * (act 0: none). Applied while the output is still in cache, it replaces the passes over
 * memory that the separate ops cost. */
typedef struct npe_conv_epilogue {
    const float *scale, *shift; /* (Cout) each, or both NULL */
    int act;                    /* an npe_unary_op + 1; 0 for none */
    float alpha, beta;          /* of the unary op */
} npe_conv_epilogue;

typedef enum npe_reduce_op { NPE_REDUCE_MEAN = 0, NPE_REDUCE_SUM, NPE_REDUCE_MAX, NPE_REDUCE_COUNT } npe_reduce_op;

/* ---- The table ----------------------------------------------------------------------------------
 * Every entry is filled (reference first). Shapes in elements, strides in elements. */
typedef struct npe_kernels {
    const char *name; /* "ref", "cpu" */

    /* Scratch bytes conv2d needs for p (im2col buffers etc.); the caller provides them in ex. */
    size_t (*conv2d_scratch)(const npe_conv2d_params *p, int nthreads);
    /* y = conv2d(x, w) + b (or conv_transpose2d when p->transposed). x is (N,Cin,H,W); w is
     * (Cout, Cin/g, kh, kw) or, transposed, (Cin, Cout/g, kh, kw); b (Cout) may be NULL;
     * y is (N, Cout, Ho, Wo). */
    void (*conv2d)(const npe_kexec *ex, const npe_conv2d_params *p, const float *x, const float *w,
                   const float *b, float *y);

    /* conv2d followed by the epilogue ep (NULL: exactly conv2d); same scratch as conv2d. prep is
     * NULL or what conv2d_prep made of w for a p with the same channels and kernel: the call then
     * skips that work (w is still passed, for the paths that do not use prep). Same results
     * with and without prep. */
    void (*conv2d_ep)(const npe_kexec *ex, const npe_conv2d_params *p, const float *x,
                      const float *w, const void *prep, const float *b,
                      const npe_conv_epilogue *ep, float *y);

    /* Weights prepared once for any number of conv2d_ep calls (Winograd's transformed filters,
     * which a call otherwise recomputes from w): the bytes of the preparation when a call with
     * p on nthreads threads uses one, else 0. The preparation depends on the weights and on p's
     * channels, kernel, stride, dilation and groups only: once made, it serves calls of every
     * batch and image size (those that do not use it ignore it). */
    size_t (*conv2d_prep_bytes)(const npe_conv2d_params *p, int nthreads);
    /* Write the preparation of w to prep (conv2d_prep_bytes(p) bytes, 64-byte aligned). */
    void (*conv2d_prep)(const npe_kexec *ex, const npe_conv2d_params *p, const float *w,
                        void *prep);

    /* y (M, N) = x (M, K) @ w(N, K)^T + b (N, may be NULL). */
    void (*linear)(const npe_kexec *ex, int64_t m, int64_t k, int64_t n, const float *x,
                   const float *w, const float *b, float *y);

    /* Per-channel affine (batch norm in eval, folded): x is (N, C, inner);
     * y[n,c,i] = x[n,c,i] * scale[c] + shift[c]. y may equal x. */
    void (*channel_affine)(const npe_kexec *ex, int64_t n, int64_t c, int64_t inner,
                           const float *x, const float *scale, const float *shift, float *y);

    /* y[i] = op(x[i]) for i < count; alpha/beta as documented per op. y may equal x. */
    void (*unary)(const npe_kexec *ex, npe_unary_op op, int64_t count, const float *x, float *y,
                  float alpha, float beta);

    /* y = a op b with broadcasting: shape is the output shape (ndim dims); as/bs are the
     * element strides of a and b for each output dim (0 where broadcast). y is contiguous.
     * alpha applies to ADD/SUB only. y may equal a when a is contiguous with y's shape. */
    void (*binary)(const npe_kexec *ex, npe_binary_op op, int ndim, const int64_t *shape,
                   const float *a, const int64_t *as, const float *b, const int64_t *bs,
                   float *y, float alpha);

    /* y = copy of x viewed with shape/strides (gather into contiguous y). Serves permute,
     * transpose, contiguous, slice, chunk/split, expand, pixel_shuffle (as a view), and cat/stack
     * (one call per input, writing into a slice of y: ys are y's strides, y points at the slice). */
    void (*copy_strided)(const npe_kexec *ex, int ndim, const int64_t *shape, const float *x,
                         const int64_t *xs, float *y, const int64_t *ys);

    void (*max_pool2d)(const npe_kexec *ex, const npe_pool2d_params *p, const float *x, float *y);
    void (*avg_pool2d)(const npe_kexec *ex, const npe_pool2d_params *p, const float *x, float *y);
    /* Adaptive pooling: PyTorch's bins start = floor(i*In/Out), end = ceil((i+1)*In/Out). */
    void (*adaptive_avg_pool2d)(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                const float *x, float *y);
    void (*adaptive_max_pool2d)(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                const float *x, float *y);

    /* Nearest: src = min(floor(dst * scale), in - 1) per axis, where scale is in/out, or
     * 1/scale_factor when the model gave a scale factor (a scale <= 0 stands for in/out).
     * PyTorch's "nearest" (not nearest-exact). */
    void (*upsample_nearest2d)(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                               float scale_h, float scale_w, const float *x, float *y);
    /* Bilinear: align_corners: src = dst * (in-1)/(out-1) (0 when out == 1); else
     * src = max(0, (dst + 0.5) * scale - 0.5) with scale as for nearest. */
    void (*upsample_bilinear2d)(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                int align_corners, float scale_h, float scale_w, const float *x,
                                float *y);

    /* Constant pad of the last two dims of (outer, h, w): left/right/top/bottom may be negative
     * (crop). y is (outer, h+top+bottom, w+left+right). */
    void (*pad2d)(const npe_kexec *ex, int64_t outer, int h, int w, int left, int right, int top,
                  int bottom, float value, const float *x, float *y);

    /* Reduce x viewed as (outer, r, inner) over r: y is (outer, inner). Any set of reduced dims
     * maps to a sequence of such calls. */
    void (*reduce)(const npe_kexec *ex, npe_reduce_op op, int64_t outer, int64_t r, int64_t inner,
                   const float *x, float *y);

    /* Softmax (log=0) or log-softmax (log=1) of x viewed as (outer, d, inner) over d. */
    void (*softmax)(const npe_kexec *ex, int log, int64_t outer, int64_t d, int64_t inner,
                    const float *x, float *y);
} npe_kernels;

/* Reference table: plain C, single-threaded, the meaning of every op. */
void npe_kernels_init_ref(npe_kernels *k);

/* Optimised CPU table: starts from the reference and upgrades entries. flags masks features
 * (NPE_KCPU_*), so tests can run every level; the env var NPE_CPU_MASK (hex) masks more. */
enum {
    NPE_KCPU_BLAS = 1 << 0,    /* OpenBLAS sgemm for conv/linear */
    NPE_KCPU_SIMD = 1 << 1,    /* vectorised elementwise / depthwise */
    NPE_KCPU_THREADS = 1 << 2, /* parallel_for splitting */
    NPE_KCPU_AVX2 = 1 << 3,    /* with SIMD: x86-64 AVX2+FMA variants, where the CPU has them */
    NPE_KCPU_ALL = 0xff,
};
void npe_kernels_init_cpu(npe_kernels *k, unsigned flags);

#endif
