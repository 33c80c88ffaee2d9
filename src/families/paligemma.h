/* paligemma.h - the PaliGemma loader shared by the families built on it
 * (PaliGemma 1 with Gemma, PaliGemma 2 with Gemma 2). */
#ifndef VLM_PALIGEMMA_H
#define VLM_PALIGEMMA_H

#include "family.h"

/* Adjusts the Gemma decoder options for another text model type. */
typedef gboolean (*VlmTextConfigFunc) (VlmDecoderConfig *d, JsonObject *tc,
                                       GError **error);

/* config.json is PaliGemma with text_config.model_type == text_type. */
gboolean vlm_paligemma_matches (JsonObject *config, const char *text_type);
gboolean vlm_paligemma_load (VlmModel *m, VlmCheckpoint *ckpt,
                             VlmTextConfigFunc parse_text, GError **error);
guint32 *vlm_paligemma_build_prompt (const VlmModel *m, const char *prompt,
                                     guint *n_ids);

#endif
