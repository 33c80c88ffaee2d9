/* language_decoder.c - Gemma-style decoder: RMSNorm (1 + w), RoPE at
 * 1-indexed positions, grouped-query attention over the KV cache with
 * optional soft-capping and sliding window, gated gelu-tanh MLP, optional
 * Gemma 2 sandwich norms, final norm; the head's logits or the greedy
 * token of the last position only. */
#include "language_decoder.h"

#include "head_screen.h"
#include "ops.h"

#include <stdio.h>
#include <string.h>

void vlm_kv_cache_reset (VlmKvCache *cache, const VlmDecoderConfig *c,
                         int capacity)
{
    int row = c->n_kv_heads * c->head_dim;
    if (cache->capacity < capacity || cache->row != row ||
        cache->n_layers != c->n_layers) {
        vlm_kv_cache_clear (cache);
        gsize n = (gsize) c->n_layers * capacity * row;
        cache->k = g_new (float, n);
        cache->v = g_new (float, n);
        cache->capacity = capacity;
        cache->row = row;
        cache->n_layers = c->n_layers;
    }
    cache->n = 0;
}

void vlm_kv_cache_clear (VlmKvCache *cache)
{
    g_free (cache->k);
    g_free (cache->v);
    memset (cache, 0, sizeof *cache);
}

/* One forward's buffers, [T, ...] each, and each position's keys in reach. */
typedef struct {
    float *x, *q, *att, *gate, *up;
    int *lo, *hi, *lo_sliding;
} Scratch;

/* Rows [r, r + n) of layer l from its attention on: the queries (in s->q)
 * attend to the S cached positions, then the output projection, the MLP and
 * both residual adds update h. */
static void layer_rows (const VlmDecoderConfig *c, const VlmDecoderLayer *L, int l,
                        VlmThreadPool *pool, const VlmKvCache *cache, int S,
                        const Scratch *s, float *h, int r, int n)
{
    int H = c->hidden, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const float *kc = cache->k + (gsize) l * cache->capacity * kvd;
    const float *vc = cache->v + (gsize) l * cache->capacity * kvd;
    gboolean sliding = c->sliding_window > 0 && l % 2 == 0;
    float *att = s->att + (gsize) r * qd, *x = s->x;
    h += (gsize) r * H;

    vlm_ops_attention (pool, att, s->q + (gsize) r * qd, kc, vc, n, S, c->n_heads,
                       c->n_kv_heads, hd, c->attn_scale, c->attn_softcap,
                       (sliding ? s->lo_sliding : s->lo) + r, s->hi + r);
    vlm_matrix_mul (pool, &L->wo, att, n, NULL, x);
    if (c->sandwich_norms)
        vlm_ops_rmsnorm (pool, x, x, L->post_attn_norm, n, H, c->rms_eps);
    vlm_ops_add (h, x, (gsize) n * H);

    vlm_ops_rmsnorm (pool, x, h, c->sandwich_norms ? L->pre_ffw_norm : L->post_attn_norm,
                     n, H, c->rms_eps);
    const VlmProduct gate_up[] = { { &L->gate, NULL, s->gate }, { &L->up, NULL, s->up } };
    vlm_matrix_mul_many (pool, gate_up, 2, x, n);
    vlm_ops_gelu_tanh (pool, s->gate, s->up, (gsize) n * c->intermediate);
    vlm_matrix_mul (pool, &L->down, s->gate, n, NULL, x);
    if (c->sandwich_norms)
        vlm_ops_rmsnorm (pool, x, x, L->post_ffw_norm, n, H, c->rms_eps);
    vlm_ops_add (h, x, (gsize) n * H);
}

void vlm_decoder_forward (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                          VlmThreadPool *pool, VlmKvCache *cache, float *h,
                          int T, gboolean prefix, float *out,
                          const VlmTrace *trace)
{
    int H = c->hidden, F = c->intermediate, hd = c->head_dim;
    int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int start = cache->n, S = start + T;
    g_assert (S <= cache->capacity);

    Scratch s = {
        .x = g_new (float, (gsize) T * MAX (H, qd)),
        .q = g_new (float, (gsize) T * qd),
        .att = g_new (float, (gsize) T * qd),
        .gate = g_new (float, (gsize) T * F),
        .up = g_new (float, (gsize) T * F),
        .lo = g_new (int, T),
        .hi = g_new (int, T),
        .lo_sliding = g_new (int, T),
    };
    int *pos = g_new (int, T);
    for (int t = 0; t < T; t++) {
        int p = start + t;
        pos[t] = p + 1; /* HF feeds 1-indexed positions to RoPE */
        s.lo[t] = 0;
        s.hi[t] = prefix ? S : p + 1;
        /* A prefix block sees itself whole even beyond the window. */
        s.lo_sliding[t] = (prefix || !c->sliding_window)
                              ? 0 : MAX (0, p - c->sliding_window + 1);
    }

    float *angles = vlm_ops_rope_angles (T, hd, pos, c->rope_theta);

    for (int l = 0; l < c->n_layers; l++) {
        const VlmDecoderLayer *L = &w->layers[l];
        float *kc = cache->k + ((gsize) l * cache->capacity + start) * kvd;
        float *vc = cache->v + ((gsize) l * cache->capacity + start) * kvd;

        vlm_ops_rmsnorm (pool, s.x, h, L->in_norm, T, H, c->rms_eps);
        const VlmProduct qkv[] = { { &L->wq, NULL, s.q }, { &L->wk, NULL, kc },
                                   { &L->wv, NULL, vc } };
        vlm_matrix_mul_many (pool, qkv, 3, s.x, T);
        vlm_ops_rope (s.q, T, c->n_heads, hd, angles);
        vlm_ops_rope (kc, T, c->n_kv_heads, hd, angles);
        /* The last layer's outputs reach nothing but the head, which reads the
         * last position: the others need only the keys and values cached
         * above. A trace still gets them all, the last position computed
         * apart as untraced, so that tracing changes no result. */
        if (l < c->n_layers - 1) {
            layer_rows (c, L, l, pool, cache, S, &s, h, 0, T);
        } else {
            if (vlm_tracing (trace) && T > 1)
                layer_rows (c, L, l, pool, cache, S, &s, h, 0, T - 1);
            layer_rows (c, L, l, pool, cache, S, &s, h, T - 1, 1);
        }
        char name[32];
        snprintf (name, sizeof name, "text_hidden.%d", l);
        vlm_trace (trace, name, h, T, H);
    }
    cache->n = S;

    vlm_ops_rmsnorm (pool, out, h + (gsize) (T - 1) * H, w->final_norm, 1, H, c->rms_eps);

    g_free (s.x);
    g_free (s.q);
    g_free (s.att);
    g_free (s.gate);
    g_free (s.up);
    g_free (s.lo);
    g_free (s.hi);
    g_free (s.lo_sliding);
    g_free (pos);
    g_free (angles);
}

void vlm_decoder_logits (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                         VlmThreadPool *pool, const float *out, float *logits)
{
    vlm_matrix_mul (pool, &w->lm_head, out, 1, NULL, logits);
    if (c->final_softcap > 0)
        vlm_ops_softcap (logits, c->vocab_rows, c->final_softcap);
}

guint32 vlm_decoder_greedy (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                            VlmThreadPool *pool, const float *out)
{
    return vlm_head_screen_argmax (w->head_screen, &w->lm_head, pool, out, c->final_softcap,
                                   NULL);
}
