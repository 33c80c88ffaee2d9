/* language_decoder.h - a generic decoder-only transformer with a KV cache
 * and the prefix-LM mask (Gemma / Gemma 2 options from config). */
#ifndef VLM_LANGUAGE_DECODER_H
#define VLM_LANGUAGE_DECODER_H

#include "model.h"
#include "threadpool.h"
#include "trace.h"

typedef struct {
    int capacity;       /* positions allocated */
    int n;              /* positions filled */
    int row;            /* n_kv_heads * head_dim */
    int n_layers;
    float *k, *v;       /* [n_layers][capacity, row] */
} VlmKvCache;

/* Make room for at least capacity positions and empty the cache. */
void vlm_kv_cache_reset (VlmKvCache *cache, const VlmDecoderConfig *c,
                         int capacity);
void vlm_kv_cache_clear (VlmKvCache *cache);

/* Run T new positions x [T, hidden] (embeddings, already scaled) through the
 * decoder, appending to the cache. With prefix, the T positions form one
 * bidirectional block (PaliGemma's prompt); otherwise they are causal.
 * Writes the last position's final-normed state, the head's input, to
 * out [hidden]. x is used as scratch. */
void vlm_decoder_forward (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                          VlmThreadPool *pool, VlmKvCache *cache, float *x,
                          int T, gboolean prefix, float *out,
                          const VlmTrace *trace);
/* The logits [vocab_rows] of out (soft-capped where the config says). */
void vlm_decoder_logits (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                         VlmThreadPool *pool, const float *out, float *logits);
/* The greedy token of out: vlm_sampler_argmax of its logits, through the
 * head's screen where it has one (head_screen.h). */
guint32 vlm_decoder_greedy (const VlmDecoderConfig *c, const VlmDecoderWeights *w,
                            VlmThreadPool *pool, const float *out);

#endif
