/* head_screen.c - implements head_screen.h.
 *
 * The bound. For row r of the head W, let w = W[r], q the copy's row as
 * the real numbers s_g c + o_g it stands for (f16 scale and offset of each
 * group of 32, 8-bit code c), and x the activations, ||.|| the 2-norm,
 * u = 2^-24, K the columns. The two products the screen compares are
 * floats:
 * - e_r, W's row kernel: |e_r - w.x| <= gamma N ||x||, N = ||w||, with
 *   gamma = 2 K u (twice the dot product's worst case in any order of
 *   summation, with or without FMA);
 * - a_r, the copy's row kernel. Every set's Q8 rows compute
 *   sum_g s_g sum_j c_j xq_j + o_g xg_g, xg_g the float sum of x over
 *   group g and xq x as the kernel takes it: float32 kernels x itself,
 *   integer ones (fast_dot) each x_j within 1.01 m / (127 * 256) of it, m
 *   the largest |x| of its subgroup of 32 (two int8 parts: a residual of
 *   at most 1/256 of a step m / 127, l clamped to 127 for r up to 128,
 *   the 1% for rounding x / dx; int16 codes: half a step m / 32767;
 *   kernels.h), so ||xq - x|| <= X ||x||, X = 1.01 sqrt (32) / (127 *
 *   256). The real value of that sum is q.x + sum s_g c_j (xq_j - x_j),
 *   within D X ||x|| of q.x, D = the 2-norm of (s_g c_j) over the row.
 *   Its rounding: the c xq sums are exact in integers, or float over at
 *   most 64 terms, then s_g times that plus o_g xg_g accumulate over the
 *   groups: at most K / 32 + 70 roundings deep, so within gamma' A ||x||
 *   (1 + X), gamma' = 2 (K / 32 + 70) u, A = the 2-norm of (255 |s_g| +
 *   |o_g|) over the row's columns, which bounds |s_g c| + |o_g|.
 * Then |a_r - e_r| <= |a_r - q.x| + |q.x - w.x| + |w.x - e_r|
 *   <= ||x|| (gamma' A (1 + X) + D X + E + gamma N) = C_r ||x||,
 * E = ||w - q||, with D and E computed from q widened to floats (each
 * within 2 u (|s_g c| + |o_g|) of its real value: 2 u A more each). C_r is
 * rounded up and kept per row. x with ||x|| < 1e-20 takes the whole
 * product: the integer products take subgroups below VLM_X_TINY (1e-30)
 * as zero, an error below sqrt (K) 1e-30 that the 1% in X covers only
 * above that, and underflow's absolute errors stay negligible there too.
 * The screen. With lo_r = a_r - C_r ||x|| and hi_r = a_r + C_r ||x||, the
 * largest e_r is at a row with hi_r >= L = max lo_r (L <= the e_r of L's row
 * <= the largest e_r <= the hi_r of the largest's row). Those rows' blocks
 * of VLM_GEMV_ALIGN rows are multiplied by W's own kernel as the whole
 * product would multiply them, and the first largest among them is the
 * answer. Soft-capping is monotone, but its floats can tie or (by tanhf's
 * last-bit errors) swap values closer than delta = c 2^-19 / (1 -
 * tanh^2 (3)) while |y| <= 3 c (an error of at most 16 c u in y, slope at
 * least 1 - tanh^2 (3)): rows down to L - delta are kept, and beyond 3 c
 * the whole product is made. */
#include "head_screen.h"

#include "kernels.h"
#include "ops.h"
#include "sampler.h"

#include <math.h>

struct _VlmHeadScreen {
    VlmMatrix q;         /* the 8-bit copy */
    gpointer storage;
    float *bound;        /* [rows] C_r */
};

/* The scale s[G] and offset o[G] of each group G of row r of quantized m,
 * across its pieces. */
static void row_params (const VlmMatrix *m, int r, float *s, float *o)
{
    for (int p = 0, G = 0; p < vlm_matrix_n_pieces (m); p++) {
        VlmMatrix v = vlm_matrix_piece (m, p);
        for (int k = 0; k < v.n_groups; k++, G++) {
            s[G] = vlm_f16_to_f32 (v.scales[(gsize) r * v.n_groups + k]);
            o[G] = vlm_f16_to_f32 (v.biases[(gsize) r * v.n_groups + k]);
        }
    }
}

typedef struct {
    VlmHeadScreen *s;
    const VlmMatrix *w;
    gboolean finite;     /* cleared by any thread finding a bound that is not */
} BuildJob;

static void build_part (int ith, int nth, gpointer data)
{
    BuildJob *j = data;
    VlmHeadScreen *s = j->s;
    int K = j->w->cols, a, b;
    int chunk = MAX (1, (1 << 18) / K); /* quantized here, not on a pool of its own */
    int G = s->q.n_groups, g = s->q.group;
    float *wrows = g_new (float, (gsize) chunk * K), *qrow = g_new (float, K);
    float *sc = g_new (float, G), *of = g_new (float, G);
    const double u = 1.0 / (1 << 24), gamma = 2.0 * K * u, gamma_q = 2.0 * (K / 32 + 70) * u,
                 X = 1.01 * sqrt (32.0) / (127 * 256);
    vlm_split (j->w->rows, ith, nth, 1, &a, &b);
    for (int r0 = a; r0 < b; r0 += chunk) {
        int n = MIN (chunk, b - r0);
        vlm_matrix_widen_rows (j->w, r0, n, 0, K, wrows);
        vlm_matrix_quantize_rows (&s->q, r0, n, wrows);
        for (int i = 0; i < n; i++) {
            const float *w = wrows + (gsize) i * K;
            vlm_matrix_widen (&s->q, r0 + i, 0, K, qrow);
            row_params (&s->q, r0 + i, sc, of);
            double ww = 0, ee = 0, dd = 0, aa = 0;
            for (int k = 0; k < G; k++) {
                double t = 255 * fabs (sc[k]) + fabs (of[k]);
                /* four running sums each: one would wait on each addition */
                double sw[4] = { 0 }, se[4] = { 0 }, sd[4] = { 0 };
                int j1 = MIN (K, (k + 1) * g);
                for (int c = k * g; c < j1; c++) {
                    double e = (double) w[c] - qrow[c], d = (double) qrow[c] - of[k];
                    sw[c & 3] += (double) w[c] * w[c];
                    se[c & 3] += e * e;
                    sd[c & 3] += d * d;
                }
                ww += sw[0] + sw[1] + sw[2] + sw[3];
                ee += se[0] + se[1] + se[2] + se[3];
                dd += sd[0] + sd[1] + sd[2] + sd[3];
                aa += t * t * (j1 - k * g);
            }
            double N = sqrt (ww), A = sqrt (aa);
            double E = sqrt (ee) + 2 * u * A, D = sqrt (dd) + 2 * u * A;
            double C = gamma_q * A * (1 + X) + D * X + E + gamma * N;
            s->bound[r0 + i] = (float) (C * (1 + 1.0 / (1 << 20)));
            if (!isfinite (s->bound[r0 + i]))
                j->finite = FALSE;
        }
    }
    g_free (sc);
    g_free (of);
    g_free (wrows);
    g_free (qrow);
}

static gboolean screens (const VlmMatrix *w)
{
    return w->type == VLM_MAT_F32 || w->type == VLM_MAT_BF16 || w->type == VLM_MAT_F16;
}

VlmHeadScreen *vlm_head_screen_new (const VlmMatrix *w, VlmThreadPool *pool)
{
    if (!screens (w))
        return NULL;
    VlmHeadScreen *s = g_new0 (VlmHeadScreen, 1);
    s->storage = vlm_matrix_quantized_new (w->rows, w->cols, VLM_MAT_Q8, &s->q);
    s->q.fast_dot = TRUE;
    s->bound = g_new (float, w->rows);
    BuildJob job = { s, w, TRUE };
    vlm_thread_pool_run (pool, build_part, &job);
    if (!job.finite) { /* NaN or infinite weights: always the whole product */
        vlm_head_screen_free (s);
        return NULL;
    }
    return s;
}

void vlm_head_screen_free (VlmHeadScreen *s)
{
    if (!s)
        return;
    g_free (s->storage);
    g_free (s->bound);
    g_free (s);
}

gsize vlm_head_screen_bytes (const VlmMatrix *w)
{
    if (!screens (w))
        return 0;
    VlmMatrix q; /* the copy as vlm_head_screen_new lays it out, without storage */
    g_free (vlm_matrix_quantized_new (1, w->cols, VLM_MAT_Q8, &q));
    return vlm_matrix_bytes (&q) * w->rows + w->rows * sizeof (float);
}

const VlmMatrix *vlm_head_screen_copy (const VlmHeadScreen *s)
{
    return &s->q;
}

float vlm_head_screen_bound (const VlmHeadScreen *s, int r)
{
    return s->bound[r];
}

/* The whole product's answer. */
static guint32 argmax_whole (const VlmMatrix *w, VlmThreadPool *pool, const float *x,
                             float softcap, int *n_exact)
{
    float *y = g_new (float, w->rows);
    vlm_matrix_mul (pool, w, x, 1, NULL, y);
    if (softcap > 0)
        vlm_ops_softcap (y, w->rows, softcap);
    guint32 best = vlm_sampler_argmax (y, w->rows);
    g_free (y);
    if (n_exact)
        *n_exact = w->rows;
    return best;
}

guint32 vlm_head_screen_argmax (const VlmHeadScreen *s, const VlmMatrix *w, VlmThreadPool *pool,
                                const float *x, float softcap, int *n_exact)
{
    if (!s)
        return argmax_whole (w, pool, x, softcap, n_exact);
    int V = w->rows, K = w->cols;
    double xx = 0;
    for (int k = 0; k < K; k++)
        xx += (double) x[k] * x[k];
    double xn = sqrt (xx) * (1 + 1e-9);
    if (!isfinite (xn) || xn < 1e-20)
        return argmax_whole (w, pool, x, softcap, n_exact);

    float *a = g_new (float, V);
    vlm_matrix_mul (pool, &s->q, x, 1, NULL, a);
    double L = -INFINITY, top = -INFINITY;
    gboolean finite = TRUE;
    for (int r = 0; r < V; r++) {
        finite &= isfinite (a[r]);
        L = MAX (L, a[r] - s->bound[r] * xn);
        top = MAX (top, a[r] + s->bound[r] * xn);
    }
    double delta = 0;
    if (softcap > 0) {
        double t = tanh (3.0);
        delta = softcap * ldexp (1.0, -19) / (1 - t * t);
        finite &= top <= 3.0 * softcap && L - delta >= -3.0 * softcap;
    }
    /* the blocks holding a row that can be the largest */
    int n_blocks = (V + VLM_GEMV_ALIGN - 1) / VLM_GEMV_ALIGN, n_kept = 0;
    int *kept = g_new (int, n_blocks);
    for (int blk = 0; finite && blk < n_blocks; blk++) {
        int r1 = MIN (V, (blk + 1) * VLM_GEMV_ALIGN);
        for (int r = blk * VLM_GEMV_ALIGN; r < r1; r++)
            if (a[r] + s->bound[r] * xn >= L - delta) {
                kept[n_kept++] = blk;
                break;
            }
    }
    /* Beyond a quarter of the rows the whole product is as cheap. */
    if (!finite || n_kept * VLM_GEMV_ALIGN > V / 4) {
        g_free (a);
        g_free (kept);
        return argmax_whole (w, pool, x, softcap, n_exact);
    }
    guint32 best = 0;
    int n_rows = 0;
    for (int i = 0; i < n_kept; i++) {
        int r0 = kept[i] * VLM_GEMV_ALIGN, r1 = MIN (V, r0 + VLM_GEMV_ALIGN);
        vlm_matrix_mul_rows (w, x, a, r0, r1); /* the exact values over the copy's */
        n_rows += r1 - r0;
        if (softcap > 0)
            vlm_ops_softcap (a + r0, r1 - r0, softcap);
        for (int r = r0; r < r1; r++)
            if ((i == 0 && r == r0) || a[r] > a[best])
                best = r;
    }
    if (n_exact)
        *n_exact = n_rows;
    g_free (a);
    g_free (kept);
    return best;
}
