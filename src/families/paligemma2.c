/* paligemma2.c - PaliGemma 2: the PaliGemma vision side with a Gemma 2
 * decoder (spec §8): query_pre_attn_scalar attention scale, attention and
 * final logit soft-capping, sliding-window layers, four norms per layer. */
#include "paligemma.h"

#include "../vlm.h"

#include <math.h>

/* Gemma2Config: a missing key takes the default, an explicit null turns
 * the feature off. */
static gboolean optional_float (JsonObject *tc, const char *key, double def,
                                float *out, GError **error)
{
    JsonNode *n = json_object_get_member (tc, key);
    if (n && JSON_NODE_HOLDS_NULL (n)) {
        *out = 0.0f;
        return TRUE;
    }
    double v;
    if (!vlm_json_double (tc, "config.json", "text_config", key, FALSE, def, &v,
                          error))
        return FALSE;
    if (v < 0) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "config.json: text_config.%s: %g is negative", key, v);
        return FALSE;
    }
    *out = (float) v;
    return TRUE;
}

static gboolean parse_gemma2 (VlmDecoderConfig *d, JsonObject *tc, GError **error)
{
    float scalar, window;
    if (!optional_float (tc, "query_pre_attn_scalar", 256, &scalar, error) ||
        !optional_float (tc, "attn_logit_softcapping", 50, &d->attn_softcap, error) ||
        !optional_float (tc, "final_logit_softcapping", 30, &d->final_softcap, error) ||
        !optional_float (tc, "sliding_window", 4096, &window, error))
        return FALSE;
    if (scalar <= 0) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "config.json: text_config.query_pre_attn_scalar must be > 0");
        return FALSE;
    }
    d->attn_scale = 1.0f / sqrtf (scalar);
    d->sliding_window = (int) window;
    d->sandwich_norms = TRUE;
    return TRUE;
}

static gboolean paligemma2_matches (JsonObject *config)
{
    return vlm_paligemma_matches (config, "gemma2");
}

static gboolean paligemma2_load (VlmModel *m, VlmCheckpoint *ckpt, GError **error)
{
    return vlm_paligemma_load (m, ckpt, parse_gemma2, error);
}

const VlmFamily vlm_family_paligemma2 = {
    .name = "paligemma2",
    .default_prompt = "caption en",
    .matches = paligemma2_matches,
    .load = paligemma2_load,
    .build_prompt = vlm_paligemma_build_prompt,
};
