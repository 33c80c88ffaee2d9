/* vision_encoder.c - SigLIP-style encoder: patch conv (as im2col + GEMM),
 * learned positions, pre-LN layers (MHA with biases, no mask; gelu-tanh MLP),
 * post LayerNorm. No family knowledge here. */
#include "vision_encoder.h"

#include "ops.h"

#include <math.h>
#include <stdio.h>

/* patches[N, 3*P*P] in (channel, y, x) order, matching OIHW conv weights. */
static void im2col (const float *px, int S, int P, float *patches)
{
    int g = S / P;
    gsize plane = (gsize) S * S;
    for (int py = 0; py < g; py++)
        for (int pxi = 0; pxi < g; pxi++) {
            float *dst = patches + ((gsize) py * g + pxi) * 3 * P * P;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++)
                        *dst++ = px[c * plane + (gsize) (py * P + y) * S +
                                    pxi * P + x];
        }
}

void vlm_vision_encode (const VlmVisionConfig *c, const VlmVisionWeights *w,
                        VlmThreadPool *pool, const float *pixels, float *h,
                        const VlmTrace *trace)
{
    int N = c->n_patches, D = c->hidden, I = c->intermediate, P = c->patch_size;
    int K = 3 * P * P;
    gsize nd = (gsize) N * D;
    float *patches = g_new (float, (gsize) N * K);
    float *x = g_new (float, nd);          /* [N, D] normed input */
    float *q = g_new (float, nd), *k = g_new (float, nd), *v = g_new (float, nd);
    float *att = g_new (float, nd);
    float *mlp = g_new (float, (gsize) N * MAX (I, D));
    int *lo = g_new0 (int, N), *hi = g_new (int, N);
    for (int i = 0; i < N; i++)
        hi[i] = N;

    im2col (pixels, c->image_size, P, patches);
    vlm_matrix_mul (pool, &w->patch, patches, N, w->patch_b, h);
    vlm_ops_add (h, w->pos, nd);
    vlm_trace (trace, "vision_embeddings", h, N, D);

    float scale = 1.0f / sqrtf ((float) c->head_dim);
    for (int l = 0; l < c->n_layers; l++) {
        const VlmVisionLayer *L = &w->layers[l];
        vlm_ops_layernorm (pool, x, h, L->ln1_w, L->ln1_b, N, D, c->ln_eps);
        const VlmProduct qkv[] = { { &L->wq, L->bq, q }, { &L->wk, L->bk, k },
                                   { &L->wv, L->bv, v } };
        vlm_matrix_mul_many (pool, qkv, 3, x, N);
        vlm_ops_attention (pool, att, q, k, v, N, N, c->n_heads, c->n_heads,
                           c->head_dim, scale, 0.0f, lo, hi);
        vlm_matrix_mul (pool, &L->wo, att, N, L->bo, x);
        vlm_ops_add (h, x, nd);

        vlm_ops_layernorm (pool, x, h, L->ln2_w, L->ln2_b, N, D, c->ln_eps);
        vlm_matrix_mul (pool, &L->fc1, x, N, L->fc1_b, mlp);
        vlm_ops_gelu_tanh (pool, mlp, NULL, (gsize) N * I);
        vlm_matrix_mul (pool, &L->fc2, mlp, N, L->fc2_b, x);
        vlm_ops_add (h, x, nd);
        char name[32];
        snprintf (name, sizeof name, "vision_hidden.%d", l);
        vlm_trace (trace, name, h, N, D);
    }
    vlm_ops_layernorm (pool, h, h, w->post_ln_w, w->post_ln_b, N, D, c->ln_eps);
    vlm_trace (trace, "vision_out", h, N, D);

    g_free (patches);
    g_free (x);
    g_free (q);
    g_free (k);
    g_free (v);
    g_free (att);
    g_free (mlp);
    g_free (lo);
    g_free (hi);
}
