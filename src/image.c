/* image.c - Pillow-exact bicubic resampling (Resample.c: separable
 * convolution, support widened by the scale when downscaling, 22-bit fixed
 * point coefficients, uint8 rounding and clamping between the passes) and
 * SigLIP's rescale/normalize. Any other bicubic moves logits by ~2e-2. */
#include "image.h"

#include <math.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic (double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis:
 * bounds[2*i] = first input index, bounds[2*i+1] = count; kk[i*ksize + k]
 * fixed-point weights. Returns ksize. */
static int coeffs (int in_size, int out_size, int **bounds_out, gint32 **kk_out)
{
    double scale = (double) in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int) ceil (support) * 2 + 1;
    double *pre = g_new0 (double, (gsize) out_size * ksize);
    int *bounds = g_new (int, (gsize) out_size * 2);
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int) (center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int) (center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = pre + (gsize) xx * ksize;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic ((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    gint32 *kk = g_new (gint32, (gsize) out_size * ksize);
    for (gsize i = 0; i < (gsize) out_size * ksize; i++)
        kk[i] = pre[i] < 0 ? (gint32) (-0.5 + pre[i] * (1 << PRECISION_BITS))
                           : (gint32) (0.5 + pre[i] * (1 << PRECISION_BITS));
    g_free (pre);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline guint8 clip8 (gint32 in)
{
    if (in >= (1 << PRECISION_BITS << 8))
        return 255;
    if (in <= 0)
        return 0;
    return (guint8) (in >> PRECISION_BITS);
}

/* One pass: out[i] = sum_k in[(bounds[2i] + k) * step] * kk[i][k], for each
 * of n_lines lines; in lines are in_line apart, out lines out_line apart,
 * out samples out_step apart. Channels are the innermost 3 bytes. */
static void pass (const guint8 *in, gsize in_line, gsize in_step, guint8 *out,
                  gsize out_line, gsize out_step, int n_lines, int out_size,
                  const int *bounds, const gint32 *kk, int ksize)
{
    for (int line = 0; line < n_lines; line++) {
        const guint8 *src = in + (gsize) line * in_line;
        guint8 *dst = out + (gsize) line * out_line;
        for (int i = 0; i < out_size; i++) {
            const gint32 *k = kk + (gsize) i * ksize;
            int xmin = bounds[2 * i], xmax = bounds[2 * i + 1];
            for (int c = 0; c < 3; c++) {
                gint32 ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++)
                    ss += src[(gsize) (x + xmin) * in_step + c] * k[x];
                dst[(gsize) i * out_step + c] = clip8 (ss);
            }
        }
    }
}

void vlm_image_resize_bicubic (const guint8 *src, int src_w, int src_h,
                               gsize src_stride, guint8 *dst, int dst_w,
                               int dst_h)
{
    gboolean need_h = dst_w != src_w, need_v = dst_h != src_h;
    int *bh = NULL, *bv = NULL;
    gint32 *kh = NULL, *kv = NULL;
    int ksh = coeffs (src_w, dst_w, &bh, &kh);
    int ksv = coeffs (src_h, dst_h, &bv, &kv);

    /* The horizontal pass only covers the source rows the vertical pass reads. */
    int ybox_first = bv[0];
    int ybox_last = bv[dst_h * 2 - 2] + bv[dst_h * 2 - 1];
    const guint8 *vin = src;
    gsize vin_stride = src_stride;
    guint8 *tmp = NULL;
    if (need_h) {
        for (int i = 0; i < dst_h; i++)
            bv[i * 2] -= ybox_first;
        int rows = ybox_last - ybox_first;
        tmp = g_malloc ((gsize) dst_w * 3 * MAX (rows, 1));
        pass (src + (gsize) ybox_first * src_stride, src_stride, 3, tmp,
              (gsize) dst_w * 3, 3, rows, dst_w, bh, kh, ksh);
        vin = tmp;
        vin_stride = (gsize) dst_w * 3;
    }
    if (need_v) {
        /* Columns are the lines, rows the samples. */
        pass (vin, 3, vin_stride, dst, 3, (gsize) dst_w * 3, dst_w, dst_h, bv,
              kv, ksv);
    } else {
        for (int y = 0; y < dst_h; y++)
            memcpy (dst + (gsize) y * dst_w * 3, vin + (gsize) y * vin_stride,
                    (gsize) dst_w * 3);
    }
    g_free (tmp);
    g_free (bh);
    g_free (bv);
    g_free (kh);
    g_free (kv);
}

void vlm_image_normalize (const guint8 *rgb, int w, int h, double rescale,
                          const double mean[3], const double std[3],
                          float *out)
{
    gsize plane = (gsize) w * h;
    for (int c = 0; c < 3; c++) {
        float m = (float) mean[c], s = (float) std[c];
        for (gsize i = 0; i < plane; i++) {
            float v = (float) (rgb[i * 3 + c] * rescale);
            out[c * plane + i] = (v - m) / s;
        }
    }
}
