/* Reference 2-D upsampling, nearest and bilinear, reproducing PyTorch's float index arithmetic
 * (CPU kernels of torch 1.13), so every output pixel reads the same source pixels. */
#include "ref.h"

#include <math.h>

/* The source-per-destination scale: the caller's (1/scale_factor) when it gave one, else
 * in/out in float as PyTorch's compute_scales_value does. */
static float src_scale(float given, int64_t in, int64_t out)
{
    return given > 0.0f ? given : (float)in / (float)out;
}

/* floor(dst * scale) in float, clamped to the last input pixel: torch 1.13's generic NCHW
 * kernel. Its channels-last kernel (which 1.13 also picks when N*C == 1) and every kernel of
 * torch 2 (seen with 2.x) copy when out == in and halve when out == 2*in, whatever the scale; a
 * caller wanting that passes scale 0 (in/out) in those two cases, which gives the same pixels. */
static int64_t nearest_src(int64_t dst, int64_t in, float scale)
{
    const int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void npe_ref_upsample_nearest2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                float scale_h, float scale_w, const float *x, float *y)
{
    (void)ex;
    const float sh = src_scale(scale_h, h, oh), sw = src_scale(scale_w, w, ow);
    const int64_t planes = (int64_t)n * c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            const int64_t si = nearest_src(i, h, sh);
            for (int64_t j = 0; j < ow; j++)
                yp[i * ow + j] = xp[si * w + nearest_src(j, w, sw)];
        }
    }
}

/* One axis of bilinear interpolation: the two source taps and their weights. */
typedef struct lerp_tap {
    int64_t i0, i1;
    float l0, l1;
} lerp_tap;

/* PyTorch's area_pixel_compute_scale + compute_source_index_and_lambda. The half-pixel form
 * is evaluated in double (float scale times a double offset) and rounded to float, as there. */
static lerp_tap bilinear_tap(int64_t dst, int64_t in, int64_t out, int align_corners,
                             float given)
{
    lerp_tap t;
    if (out == in) {
        t.i0 = t.i1 = dst;
        t.l0 = 1.0f;
        t.l1 = 0.0f;
        return t;
    }
    float src;
    if (align_corners) {
        const float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        src = scale * (float)dst;
    } else {
        const float scale = src_scale(given, in, out);
        src = (float)((double)scale * ((double)dst + 0.5) - 0.5);
        if (src < 0.0f)
            src = 0.0f;
    }
    t.i0 = (int64_t)src;
    if (t.i0 > in - 1)
        t.i0 = in - 1; /* cannot happen for valid scales; keeps reads inside x regardless */
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    float l1 = src - (float)t.i0;
    t.l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
    t.l0 = 1.0f - t.l1;
    return t;
}

void npe_ref_upsample_bilinear2d(const npe_kexec *ex, int n, int c, int h, int w, int oh, int ow,
                                 int align_corners, float scale_h, float scale_w, const float *x,
                                 float *y)
{
    (void)ex;
    const int64_t planes = (int64_t)n * c;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            const lerp_tap th = bilinear_tap(i, h, oh, align_corners, scale_h);
            for (int64_t j = 0; j < ow; j++) {
                const lerp_tap tw = bilinear_tap(j, w, ow, align_corners, scale_w);
                const double top = (double)tw.l0 * xp[th.i0 * w + tw.i0] +
                                   (double)tw.l1 * xp[th.i0 * w + tw.i1];
                const double bot = (double)tw.l0 * xp[th.i1 * w + tw.i0] +
                                   (double)tw.l1 * xp[th.i1 * w + tw.i1];
                yp[i * ow + j] = (float)(th.l0 * top + th.l1 * bot);
            }
        }
    }
}
