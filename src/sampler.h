/* sampler.h - picking the next token from logits: greedy, or temperature
 * with top-k / top-p, from a seeded RNG owned by the caller. */
#ifndef VLM_SAMPLER_H
#define VLM_SAMPLER_H

#include <glib.h>

typedef struct {
    float temperature;  /* <= 0: greedy */
    guint top_k;        /* 0: off */
    float top_p;        /* >= 1: off */
    guint64 rng;        /* xorshift64* state, never 0 */
} VlmSampler;

void vlm_sampler_init (VlmSampler *s, float temperature, guint top_k,
                       float top_p, guint64 seed);
/* Index of the largest logit (the first on ties). */
guint32 vlm_sampler_argmax (const float *logits, guint n);
/* scratch: n floats + n guint32 worth of space, provided by the caller. */
guint32 vlm_sampler_sample (VlmSampler *s, const float *logits, guint n,
                            float *prob_scratch, guint32 *index_scratch);

#endif
