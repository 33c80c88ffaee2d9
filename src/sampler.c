/* sampler.c - greedy / temperature / top-k / top-p sampling (llama2.c style). */
#include "sampler.h"

#include <math.h>

void vlm_sampler_init (VlmSampler *s, float temperature, guint top_k,
                       float top_p, guint64 seed)
{
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    /* splitmix64 of the seed, so that seeds 0, 1, 2... give unrelated streams */
    guint64 z = seed + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    s->rng = (z ^ (z >> 31)) | 1;
}

static float random_f32 (VlmSampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return ((s->rng * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f; /* [0, 1) */
}

guint32 vlm_sampler_argmax (const float *logits, guint n)
{
    guint32 best = 0;
    for (guint i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static gint by_prob_desc (gconstpointer a, gconstpointer b, gpointer data)
{
    const float *probs = data;
    float pa = probs[*(const guint32 *) a], pb = probs[*(const guint32 *) b];
    if (pa != pb)
        return pa < pb ? 1 : -1;
    return (*(const guint32 *) a > *(const guint32 *) b) -
           (*(const guint32 *) a < *(const guint32 *) b);
}

guint32 vlm_sampler_sample (VlmSampler *s, const float *logits, guint n,
                            float *probs, guint32 *idx)
{
    if (s->temperature <= 0.0f)
        return vlm_sampler_argmax (logits, n);

    float max = logits[vlm_sampler_argmax (logits, n)];
    double sum = 0;
    for (guint i = 0; i < n; i++) {
        probs[i] = expf ((logits[i] - max) / s->temperature);
        sum += probs[i];
        idx[i] = i;
    }
    for (guint i = 0; i < n; i++)
        probs[i] = (float) (probs[i] / sum);

    guint keep = n;
    if (s->top_k > 0 || s->top_p < 1.0f) {
        g_qsort_with_data (idx, n, sizeof (guint32), by_prob_desc, probs);
        if (s->top_k > 0 && s->top_k < keep)
            keep = s->top_k;
        if (s->top_p < 1.0f) {
            double cum = 0;
            for (guint i = 0; i < keep; i++) {
                cum += probs[idx[i]];
                if (cum >= s->top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
    }
    double total = 0;
    for (guint i = 0; i < keep; i++)
        total += probs[idx[i]];
    double r = random_f32 (s) * total, cum = 0;
    for (guint i = 0; i < keep; i++) {
        cum += probs[idx[i]];
        if (r < cum)
            return idx[i];
    }
    return idx[keep - 1];
}
