/* kernels_generic.c - portable C row kernels: the reference the SIMD sets
 * are tested against, and the fallback on CPUs without AVX2. */
#include "kernels.h"

#include <math.h>
#include <string.h>

float vlm_f16_to_f32 (guint16 h)
{
    guint32 sign = (guint32) (h & 0x8000) << 16;
    guint32 exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000 | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy (&f, &u, 4);
    return f;
}

/* Round to nearest even, with subnormals, infinities and NaN. */
guint16 vlm_f32_to_f16 (float f)
{
    guint32 u;
    memcpy (&u, &f, 4);
    guint32 sign = (u >> 16) & 0x8000;
    guint32 abs = u & 0x7fffffff;
    if (abs >= 0x7f800000) /* inf or nan */
        return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
    if (abs >= 0x477ff000) /* rounds to >= 65520: overflow */
        return sign | 0x7c00;
    if (abs < 0x38800000) { /* subnormal half (or zero) */
        float a;
        memcpy (&a, &abs, 4);
        /* a * 2^24 rounded to an integer is the subnormal mantissa */
        float m = a * 16777216.0f;
        guint32 q = (guint32) m;
        float frac = m - q;
        if (frac > 0.5f || (frac == 0.5f && (q & 1)))
            q++;
        return sign | q;
    }
    guint32 mant = abs & 0x7fffff, exp = (abs >> 23) - 127 + 15;
    guint32 h = (exp << 10) | (mant >> 13);
    guint32 rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return sign | h;
}

static void rows_f32 (const VlmMatrix *w, const float *x, const float *xg,
                      const void *prep, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        const float *row = (const float *) ((const guint8 *) w->data + r * w->row_bytes);
        float acc = 0;
        for (int j = 0; j < w->cols; j++)
            acc += row[j] * x[j];
        y[r] = acc;
    }
}

static void rows_bf16 (const VlmMatrix *w, const float *x, const float *xg,
                       const void *prep, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        const guint16 *row = (const guint16 *) ((const guint8 *) w->data + r * w->row_bytes);
        float acc = 0;
        for (int j = 0; j < w->cols; j++)
            acc += vlm_bf16_to_f32 (row[j]) * x[j];
        y[r] = acc;
    }
}

static void rows_f16 (const VlmMatrix *w, const float *x, const float *xg,
                      const void *prep, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        const guint16 *row = (const guint16 *) ((const guint8 *) w->data + r * w->row_bytes);
        float acc = 0;
        for (int j = 0; j < w->cols; j++)
            acc += vlm_f16_to_f32 (row[j]) * x[j];
        y[r] = acc;
    }
}

/* sum_g s_g * sum_{j in g} q_j x_j + b_g * xg_g; x is zero past cols. */
static void rows_quant (const VlmMatrix *w, const float *x, const float *xg,
                        const void *prep, float *y, int r0, int r1)
{
    int g = w->group;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = (const guint8 *) w->data + r * w->row_bytes;
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        const guint16 *b = w->biases + (gsize) r * w->n_groups;
        float acc = 0;
        for (int k = 0; k < w->n_groups; k++) {
            float dot = 0;
            for (int j = 0; j < g; j++) {
                int idx = k * g + j;
                int q = w->type == VLM_MAT_Q8 ? row[idx]
                                              : (row[idx / 2] >> (4 * (idx & 1))) & 15;
                dot += q * x[idx];
            }
            acc += vlm_f16_to_f32 (s[k]) * dot + vlm_f16_to_f32 (b[k]) * xg[k];
        }
        y[r] = acc;
    }
}

void vlm_quantize_generic (const float *x, int n, int bits, guint8 *q, guint16 *s, guint16 *o)
{
    int levels = (1 << bits) - 1;
    float lo = x[0], hi = x[0];
    for (int j = 0; j < n; j++) { /* not fminf: a libm call per weight */
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    /* Codes are computed against the rounded f16 scale and offset, so
     * that dequantization reproduces them exactly. */
    *s = vlm_f32_to_f16 ((hi - lo) / levels);
    *o = vlm_f32_to_f16 (lo);
    float step = vlm_f16_to_f32 (*s), off = vlm_f16_to_f32 (*o);
    for (int j = 0; j < n; j++) {
        int c = step > 0 ? (int) lrintf ((x[j] - off) / step) : 0;
        c = CLAMP (c, 0, levels);
        if (bits == 8)
            q[j] = c;
        else
            q[j / 2] |= c << (4 * (j & 1));
    }
}

void vlm_gelu_generic (float *x, const float *mul, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        float v = 0.5f * x[i] * (1.0f + tanhf (vlm_gelu_inner (x[i])));
        x[i] = mul ? v * mul[i] : v;
    }
}

/* Sums in double, four at a time (one running sum would wait on each
 * addition). */
static double sum_d (const float *r, int D)
{
    double s[4] = { 0, 0, 0, 0 };
    int j = 0;
    for (; j + 4 <= D; j += 4)
        for (int k = 0; k < 4; k++)
            s[k] += r[j + k];
    for (; j < D; j++)
        s[0] += r[j];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static double sum_sq_d (const float *r, int D, double centre)
{
    double s[4] = { 0, 0, 0, 0 };
    int j = 0;
    for (; j + 4 <= D; j += 4)
        for (int k = 0; k < 4; k++)
            s[k] += (r[j + k] - centre) * (r[j + k] - centre);
    for (; j < D; j++)
        s[0] += (r[j] - centre) * (r[j] - centre);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

void vlm_norm_generic (float *o, const float *r, const float *w, const float *b, int D,
                       float eps)
{
    if (b) {
        double mean = sum_d (r, D) / D;
        float inv = (float) (1.0 / sqrt (sum_sq_d (r, D, mean) / D + eps));
        float m = (float) mean;
        for (int k = 0; k < D; k++)
            o[k] = (r[k] - m) * inv * w[k] + b[k];
    } else {
        float inv = (float) (1.0 / sqrt (sum_sq_d (r, D, 0) / D + eps));
        for (int k = 0; k < D; k++)
            o[k] = (r[k] * inv) * (1.0f + w[k]);
    }
}

float vlm_max_generic (const float *x, gsize n, float max)
{
    for (gsize i = 0; i < n; i++) /* not fmaxf: a libm call per value */
        max = x[i] > max ? x[i] : max;
    return max;
}

void vlm_softmax_generic (float *x, gsize n)
{
    float inv = (float) (1.0 / vlm_exp_sum_generic (x, n, vlm_max_generic (x, n, -INFINITY)));
    for (gsize i = 0; i < n; i++)
        x[i] *= inv;
}

double vlm_exp_sum_generic (float *x, gsize n, float shift)
{
    double sum = 0;
    for (gsize i = 0; i < n; i++) {
        x[i] = expf (x[i] - shift);
        sum += x[i];
    }
    return sum;
}

VlmIntX *vlm_int_x_new (const VlmMatrix *w, const float *x, int range,
                        float residual, int q4_block, int parts)
{
    if (w->group != 32 && w->group != 64)
        return NULL;
    int nsub = w->n_groups * w->group / 32, blocks = q4_block > 1 ? nsub / q4_block : 0;
    VlmIntX *p = g_malloc (sizeof (VlmIntX) + (gsize) nsub * (64 + 32 + 16 + 32) + 64);
    p->nsub = nsub;
    p->dx = (float *) (p + 1);
    p->dx4 = p->dx + (gsize) nsub * 8;
    p->xh = (gint8 *) (p->dx4 + (gsize) nsub * 4);
    p->xl = parts > 1 ? p->xh + (gsize) nsub * 32 : NULL;
    p->xll = parts > 2 ? p->xl + (gsize) nsub * 32 : NULL;
    for (int s = 0; s < nsub; s++) {
        float m = 0;
        for (int i = 0; i < 32; i++)
            m = MAX (m, fabsf (x[s * 32 + i]));
        float dx = m >= VLM_X_TINY ? m / range : 1.0f;
        /* where element i of subgroup s goes: Q4 subgroups in blocks of
         * B (B = q4_block for whole blocks, else 1) as the B subgroups'
         * even elements, then their odd ones */
        int b = blocks && s < blocks * q4_block ? q4_block : 1, s0 = s / b * b;
        for (int i = 0; i < 32; i++) {
            int at = w->type == VLM_MAT_Q4 ? s0 * 32 + (i & 1) * 16 * b + (s - s0) * 16 + i / 2
                                           : s * 32 + i;
            float t = x[s * 32 + i] / dx, h = rintf (t);
            float r = (t - h) * residual, l = CLAMP (rintf (r), -range, range);
            p->xh[at] = (gint8) h;
            if (p->xl)
                p->xl[at] = (gint8) l;
            if (p->xll)
                p->xll[at] = (gint8) CLAMP (rintf ((r - l) * residual), -range, range);
        }
        for (int i = 0; i < 8; i++)
            p->dx[s * 8 + i] = dx;
        for (int i = 0; i < 4; i++)
            p->dx4[s * 4 + i] = dx;
    }
    return p;
}

int vlm_int_x_parts (const VlmMatrix *w)
{
    return !w->fast_dot ? 3 : w->type == VLM_MAT_Q4 ? 1 : 2;
}

/* The type is decided once per row piece, a quantized group's scale and
 * offset once per group. */
static void widen_any (const VlmMatrix *w, int r, int j0, int j1, float *out)
{
    const guint8 *row = (const guint8 *) w->data + (gsize) r * w->row_bytes;
    switch (w->type) {
    case VLM_MAT_F32:
        memcpy (out, (const float *) row + j0, (gsize) (j1 - j0) * sizeof (float));
        break;
    case VLM_MAT_BF16:
        for (int j = j0; j < j1; j++)
            out[j - j0] = vlm_bf16_to_f32 (((const guint16 *) row)[j]);
        break;
    case VLM_MAT_F16:
        for (int j = j0; j < j1; j++)
            out[j - j0] = vlm_f16_to_f32 (((const guint16 *) row)[j]);
        break;
    case VLM_MAT_Q8:
    case VLM_MAT_Q4: {
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        const guint16 *b = w->biases + (gsize) r * w->n_groups;
        for (int k = j0 / w->group; k * w->group < j1; k++) {
            float sk = vlm_f16_to_f32 (s[k]), bk = vlm_f16_to_f32 (b[k]);
            int a = MAX (j0, k * w->group), e = MIN (j1, (k + 1) * w->group);
            if (w->type == VLM_MAT_Q8)
                for (int j = a; j < e; j++)
                    out[j - j0] = sk * row[j] + bk;
            else
                for (int j = a; j < e; j++)
                    out[j - j0] = sk * ((row[j / 2] >> (4 * (j & 1))) & 15) + bk;
        }
        break;
    }
    }
}

const VlmKernels vlm_kernels_generic = {
    .name = "generic",
    .rows = { rows_f32, rows_bf16, rows_f16, rows_quant, rows_quant },
    .widen = { widen_any, widen_any, widen_any, widen_any, widen_any },
    .gelu = vlm_gelu_generic,
    .softmax = vlm_softmax_generic,
    .norm = vlm_norm_generic,
    .quantize = vlm_quantize_generic,
};
