/* ops.c - float32 kernels on top of cblas. Reductions accumulate in double
 * so that results stay within float32 noise of the reference. */
#include "ops.h"

#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct {
    float *out;
    const float *x, *w, *b;   /* b NULL: RMSNorm */
    int M, D;
    float eps;
} NormJob;

static void norm_part (int ith, int nth, gpointer data)
{
    const NormJob *j = data;
    const VlmKernels *kern = vlm_kernels_get ();
    int a, e;
    vlm_split (j->M, ith, nth, 1, &a, &e);
    for (int i = a; i < e; i++)
        kern->norm (j->out + (gsize) i * j->D, j->x + (gsize) i * j->D, j->w, j->b, j->D, j->eps);
}

static void run_norm (VlmThreadPool *pool, const NormJob *job)
{
    /* A decode step's row or a small model's rows are not worth waking the
     * workers for. */
    vlm_thread_pool_run (job->M > 1 && (gsize) job->M * job->D >= 16384 ? pool : NULL,
                         norm_part, (gpointer) job);
}

void vlm_ops_layernorm (VlmThreadPool *pool, float *out, const float *x, const float *w,
                        const float *b, int M, int D, float eps)
{
    NormJob job = { out, x, w, b, M, D, eps };
    run_norm (pool, &job);
}

void vlm_ops_rmsnorm (VlmThreadPool *pool, float *out, const float *x, const float *w,
                      int M, int D, float eps)
{
    NormJob job = { out, x, w, NULL, M, D, eps };
    run_norm (pool, &job);
}

typedef struct {
    float *x;
    const float *mul;
    gsize n;
} GeluJob;

static void gelu_part (int ith, int nth, gpointer data)
{
    const GeluJob *j = data;
    gsize a = j->n * ith / nth, b = j->n * (ith + 1) / nth;
    vlm_kernels_get ()->gelu (j->x + a, j->mul ? j->mul + a : NULL, b - a);
}

void vlm_ops_gelu_tanh (VlmThreadPool *pool, float *x, const float *mul, gsize n)
{
    GeluJob job = { x, mul, n };
    /* Small vectors are not worth waking the workers for. */
    vlm_thread_pool_run (n >= 16384 ? pool : NULL, gelu_part, &job);
}

void vlm_ops_softcap (float *x, gsize n, float cap)
{
    for (gsize i = 0; i < n; i++)
        x[i] = tanhf (x[i] / cap) * cap;
}

void vlm_ops_add (float *y, const float *x, gsize n)
{
    /* OpenBLAS's vector kernel: 3.5-6x the plain loop (biases, residuals) */
    for (gsize i = 0; i < n; i += G_MAXINT)
        cblas_saxpy ((int) MIN (n - i, (gsize) G_MAXINT), 1.0f, x + i, 1, y + i, 1);
}

float *vlm_ops_rope_angles (int T, int head_dim, const int *pos, float theta)
{
    int half = head_dim / 2;
    float *cs = g_new (float, (gsize) 2 * T * half);
    for (int i = 0; i < half; i++) {
        double inv_freq = 1.0 / pow (theta, (double) (2 * i) / head_dim);
        for (int t = 0; t < T; t++) {
            double angle = pos[t] * inv_freq;
            cs[(gsize) t * half + i] = (float) cos (angle);
            cs[(gsize) (T + t) * half + i] = (float) sin (angle);
        }
    }
    return cs;
}

void vlm_ops_rope (float *x, int T, int n_heads, int head_dim, const float *cos_sin)
{
    int half = head_dim / 2;
    for (int t = 0; t < T; t++) {
        const float *c = cos_sin + (gsize) t * half, *s = cos_sin + (gsize) (T + t) * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((gsize) t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

static void softmax_row (const VlmKernels *kern, float *x, int lo, int hi, int n)
{
    if (lo < hi)
        kern->softmax (x + lo, hi - lo);
    for (int j = 0; j < lo; j++)
        x[j] = 0.0f;
    for (int j = MAX (hi, lo); j < n; j++)
        x[j] = 0.0f;
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int T, S, n_heads, n_kv, d;
    float scale, softcap;
    const int *lo, *hi;
} AttentionJob;

/* yt[r, m] (rows ldy apart) = W row r . x row m for W [n, K] (float32,
 * rows ldw apart) and x [M, K] given with rows ldx apart or transposed,
 * on this thread with the CPU's own GEMM kernel (AVX-512: at the vision
 * encoder's head size of 72, OpenBLAS's Haswell sgemm ran at half its
 * rate). Packed x is kept for the heads that share it. */
static void gemm_t (const VlmGemm *gemm, gconstpointer packed, const float *w, int n, int K,
                    int ldw, float *yt, gsize ldy)
{
    VlmMatrix wm = { .type = VLM_MAT_F32, .rows = n, .cols = K, .data = w,
                     .row_bytes = (gsize) ldw * sizeof (float) };
    gemm->rows_t (&wm, packed, yt, ldy, 0, n);
}

static gpointer pack (const VlmGemm *gemm, const float *x, int M, int K, gsize ldx,
                      gboolean transposed)
{
    gpointer packed = gemm->pack_new_strided (x, M, K, ldx, transposed);
    if (gemm->pack_part)
        gemm->pack_part (packed, 0, 1);
    return packed;
}

/* Heads [h0, h1): sgemv for one query row (a decode step); for several,
 * the scores and the weighted values by the CPU's GEMM kernel where it has
 * one (the keys, and the values' columns, as its tokens: the results come
 * out row by row where they go), or else by sgemm. */
static void attention_part (int ith, int nth, gpointer data)
{
    const AttentionJob *j = data;
    int T = j->T, S = j->S, d = j->d, group = j->n_heads / j->n_kv;
    int qs = j->n_heads * d, ks = j->n_kv * d, h0, h1;
    vlm_split (j->n_heads, ith, nth, 1, &h0, &h1);
    if (h0 >= h1)
        return;
    const VlmKernels *kern = vlm_kernels_get ();
    const VlmGemm *gemm = T > 1 ? kern->gemm[VLM_MAT_F32] : NULL;
    if (gemm && !gemm->rows_t)
        gemm = NULL;
    float *scores = g_new (float, (gsize) T * S);
    float *qh = gemm ? g_new (float, (gsize) T * d) : NULL; /* the head's scaled queries */
    gpointer keys = NULL, values = NULL; /* packed, of kv head `packed_head` */
    int packed_head = -1;
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        const float *q = j->q + h * d, *kg = j->k + g * d, *vg = j->v + g * d;
        float *out = j->out + h * d;
        if (T == 1) {
            int lo = j->lo[0], n = j->hi[0] - j->lo[0]; /* the keys in reach */
            if (n <= 0) { /* nothing to attend to (sgemv would leave out as it was) */
                for (int i = 0; i < d; i++)
                    out[i] = 0;
                continue;
            }
            cblas_sgemv (CblasRowMajor, CblasNoTrans, n, d, j->scale, kg + (gsize) lo * ks, ks,
                         q, 1, 0.0f, scores + lo, 1);
            if (j->softcap > 0)
                vlm_ops_softcap (scores + lo, n, j->softcap);
            softmax_row (kern, scores, lo, j->hi[0], S);
            cblas_sgemv (CblasRowMajor, CblasTrans, n, d, 1.0f, vg + (gsize) lo * ks, ks,
                         scores + lo, 1, 0.0f, out, 1);
            continue;
        }
        if (gemm && g != packed_head) {
            if (keys) {
                gemm->free (keys);
                gemm->free (values);
            }
            keys = pack (gemm, kg, S, d, ks, FALSE);
            values = pack (gemm, vg, d, S, ks, TRUE); /* V^T: its rows are V's columns */
            packed_head = g;
        }
        if (gemm) {
            for (int t = 0; t < T; t++)
                for (int i = 0; i < d; i++)
                    qh[(gsize) t * d + i] = q[(gsize) t * qs + i] * j->scale;
            gemm_t (gemm, keys, qh, T, d, d, scores, S);
        } else {
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, S, d, j->scale, q, qs, kg,
                         ks, 0.0f, scores, S);
        }
        if (j->softcap > 0)
            vlm_ops_softcap (scores, (gsize) T * S, j->softcap);
        for (int t = 0; t < T; t++)
            softmax_row (kern, scores + (gsize) t * S, j->lo[t], j->hi[t], S);
        if (gemm)
            gemm_t (gemm, values, scores, T, S, S, out, qs);
        else
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, S, 1.0f, scores, S, vg,
                         ks, 0.0f, out, qs);
    }
    if (keys) {
        gemm->free (keys);
        gemm->free (values);
    }
    g_free (scores);
    g_free (qh);
}

void vlm_ops_attention (VlmThreadPool *pool, float *out, const float *q,
                        const float *k, const float *v, int T, int S,
                        int n_heads, int n_kv, int d, float scale,
                        float softcap, const int *key_lo, const int *key_hi)
{
    AttentionJob job = { out, q, k, v, T, S, n_heads, n_kv, d, scale, softcap,
                         key_lo, key_hi };
    /* A decode step over a short cache is not worth waking the workers. */
    vlm_thread_pool_run ((gsize) T * S * d * n_heads >= (1 << 18) ? pool : NULL,
                         attention_part, &job);
}
