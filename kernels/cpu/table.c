/* The optimised CPU table: a copy of the reference with the entries each flag level improves,
 * so a masked table (tests, NPE_CPU_MASK) still computes every op. */
#include <stdlib.h>

#include "cpu.h"

int npe_kcpu_fine_grain;

int npe_kcpu_have_avx2(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* What each flag upgrades (everything else stays the reference):
 *   BLAS     conv2d (im2col + sgemm, 1x1 as one sgemm, transposed as sgemm + col2im), linear
 *   SIMD     conv2d with one input channel per group (depthwise, direct), unary, binary,
 *            channel_affine, copy_strided, pad2d, max_pool2d, upsample_nearest2d
 *   AVX2     (with SIMD, on x86-64 CPUs with AVX2 and FMA) depthwise conv2d in 8-float vectors
 *   THREADS  splits all of the above over ex->parallel_for, and runs avg/adaptive pooling (and
 *            max pooling without SIMD), bilinear upsampling, reduce and softmax as the
 *            reference on chunks of planes/rows */
void npe_kernels_init_cpu(npe_kernels *k, unsigned flags)
{
    npe_kernels_init_ref(k);
    k->name = "cpu";
    /* NPE_CPU_MASK=hex clears features for debugging and benchmarking; junk is ignored. */
    const char *mask = getenv("NPE_CPU_MASK");
    if (mask && *mask) {
        char *end;
        const unsigned long m = strtoul(mask, &end, 16);
        if (*end == '\0')
            flags &= (unsigned)m;
    }
    if (!npe_kcpu_have_avx2())
        flags &= ~(unsigned)NPE_KCPU_AVX2;
    npe_kcpu_init_conv(k, flags);
    npe_kcpu_init_linear(k, flags);
    npe_kcpu_init_elementwise(k, flags);
    npe_kcpu_init_pool(k, flags);
    npe_kcpu_init_data(k, flags);
}
