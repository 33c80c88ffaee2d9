/* ops.h - float32 tensor operations shared by the encoder and the decoder.
 * Row-major everywhere; matrix products go through OpenBLAS. */
#ifndef VLM_OPS_H
#define VLM_OPS_H

#include "threadpool.h"

#include <glib.h>

/* LayerNorm over rows of D with biased variance: out may equal x. Rows
 * split among the pool's threads. */
void vlm_ops_layernorm (VlmThreadPool *pool, float *out, const float *x, const float *w,
                        const float *b, int M, int D, float eps);
/* Gemma RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w). out may equal x. */
void vlm_ops_rmsnorm (VlmThreadPool *pool, float *out, const float *x, const float *w,
                      int M, int D, float eps);
/* x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) [* mul], in place,
 * on the pool's threads (mul may be NULL). */
void vlm_ops_gelu_tanh (VlmThreadPool *pool, float *x, const float *mul, gsize n);
/* x[i] = tanh(x[i] / cap) * cap, in place. */
void vlm_ops_softcap (float *x, gsize n, float cap);
void vlm_ops_add (float *y, const float *x, gsize n);
/* Rotary embedding, half-split ("rotate_half") convention, on T rows of
 * n_heads * head_dim values, with the angles' cosines and sines from
 * vlm_ops_rope_angles (computed once for every layer). */
void vlm_ops_rope (float *x, int T, int n_heads, int head_dim, const float *cos_sin);
/* For T rows at positions pos[t]: [T][head_dim / 2] cosines, then as many
 * sines; g_free it. */
float *vlm_ops_rope_angles (int T, int head_dim, const int *pos, float theta);

/* Multi-head attention with grouped kv heads, heads split among the
 * pool's threads.
 * q: [T, n_heads * d] (row stride n_heads * d), k, v: [S, n_kv * d].
 * Query row t sees keys [key_lo[t], key_hi[t]); scores are scaled by scale,
 * soft-capped when softcap > 0, softmaxed in float32.
 * out: [T, n_heads * d]. */
void vlm_ops_attention (VlmThreadPool *pool, float *out, const float *q,
                        const float *k, const float *v, int T, int S,
                        int n_heads, int n_kv, int d, float scale,
                        float softcap, const int *key_lo, const int *key_hi);

#endif
