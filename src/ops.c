/* ops.c - float32 kernels on top of cblas. Reductions accumulate in double
 * so that results stay within float32 noise of the reference. */
#include "ops.h"

#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void vlm_ops_linear (float *y, const float *x, const float *w, const float *b,
                     int M, int K, int N)
{
    if (M == 1)
        cblas_sgemv (CblasRowMajor, CblasNoTrans, N, K, 1.0f, w, K, x, 1, 0.0f,
                     y, 1);
    else
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x,
                     K, w, K, 0.0f, y, N);
    if (b)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                y[(gsize) i * N + j] += b[j];
}

void vlm_ops_layernorm (float *out, const float *x, const float *w,
                        const float *b, int M, int D, float eps)
{
    for (int i = 0; i < M; i++) {
        const float *r = x + (gsize) i * D;
        float *o = out + (gsize) i * D;
        double mean = 0, var = 0;
        for (int j = 0; j < D; j++)
            mean += r[j];
        mean /= D;
        for (int j = 0; j < D; j++)
            var += (r[j] - mean) * (r[j] - mean);
        var /= D;
        float inv = (float) (1.0 / sqrt (var + eps));
        float m = (float) mean;
        for (int j = 0; j < D; j++)
            o[j] = (r[j] - m) * inv * w[j] + b[j];
    }
}

void vlm_ops_rmsnorm (float *out, const float *x, const float *w, int M, int D,
                      float eps)
{
    for (int i = 0; i < M; i++) {
        const float *r = x + (gsize) i * D;
        float *o = out + (gsize) i * D;
        double ss = 0;
        for (int j = 0; j < D; j++)
            ss += (double) r[j] * r[j];
        float inv = (float) (1.0 / sqrt (ss / D + eps));
        for (int j = 0; j < D; j++)
            o[j] = (r[j] * inv) * (1.0f + w[j]);
    }
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
    for (gsize i = 0; i < n; i++)
        y[i] += x[i];
}

void vlm_ops_rope (float *x, int T, int n_heads, int head_dim, const int *pos,
                   float theta)
{
    int half = head_dim / 2;
    double inv_freq[half];
    for (int i = 0; i < half; i++)
        inv_freq[i] = 1.0 / pow (theta, (double) (2 * i) / head_dim);
    for (int t = 0; t < T; t++) {
        float c[half], s[half];
        for (int i = 0; i < half; i++) {
            double angle = pos[t] * inv_freq[i];
            c[i] = (float) cos (angle);
            s[i] = (float) sin (angle);
        }
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

static void softmax_row (float *x, int lo, int hi, int n)
{
    float max = -INFINITY;
    for (int j = lo; j < hi; j++)
        max = fmaxf (max, x[j]);
    double sum = 0;
    for (int j = lo; j < hi; j++) {
        x[j] = expf (x[j] - max);
        sum += x[j];
    }
    float inv = (float) (1.0 / sum);
    for (int j = 0; j < n; j++)
        x[j] = (j >= lo && j < hi) ? x[j] * inv : 0.0f;
}

/* One query row (a decode step): plain loops, so that OpenBLAS's threads
 * are not woken for a few thousand operations per head. */
static void attention_row (float *out, const float *q, const float *k,
                           const float *v, int S, int n_heads, int n_kv, int d,
                           float scale, float softcap, int lo, int hi,
                           float *scores)
{
    int group = n_heads / n_kv, ks = n_kv * d;
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + h * d;
        int g = h / group;
        for (int s = lo; s < hi; s++) {
            const float *kr = k + (gsize) s * ks + g * d;
            float acc = 0;
            for (int i = 0; i < d; i++)
                acc += qh[i] * kr[i];
            scores[s] = acc * scale;
        }
        if (softcap > 0)
            vlm_ops_softcap (scores + lo, hi - lo, softcap);
        softmax_row (scores, lo, hi, S);
        float *oh = out + h * d;
        memset (oh, 0, d * sizeof (float));
        for (int s = lo; s < hi; s++) {
            const float *vr = v + (gsize) s * ks + g * d;
            for (int i = 0; i < d; i++)
                oh[i] += scores[s] * vr[i];
        }
    }
}

void vlm_ops_attention (float *out, const float *q, const float *k,
                        const float *v, int T, int S, int n_heads, int n_kv,
                        int d, float scale, float softcap, const int *key_lo,
                        const int *key_hi, float *scratch)
{
    if (T == 1) {
        attention_row (out, q, k, v, S, n_heads, n_kv, d, scale, softcap,
                       key_lo[0], key_hi[0], scratch);
        return;
    }
    int group = n_heads / n_kv;
    int qs = n_heads * d, ks = n_kv * d;
    for (int h = 0; h < n_heads; h++) {
        int g = h / group;
        /* scores[T, S] = q_h . k_g^T * scale */
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, S, d, scale,
                     q + h * d, qs, k + g * d, ks, 0.0f, scratch, S);
        if (softcap > 0)
            vlm_ops_softcap (scratch, (gsize) T * S, softcap);
        for (int t = 0; t < T; t++)
            softmax_row (scratch + (gsize) t * S, key_lo[t], key_hi[t], S);
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, S, 1.0f,
                     scratch, S, v + g * d, ks, 0.0f, out + h * d, qs);
    }
}
