/* family.h - what a model family provides: config parsing, tensor names,
 * prompt format. Adding a family is one file in families/ plus one line in
 * registry.c; the shared encoder and decoder only take options. */
#ifndef VLM_FAMILY_H
#define VLM_FAMILY_H

#include "../checkpoint.h"
#include "../model.h"

struct _VlmFamily {
    const char *name;            /* "paligemma" */
    const char *default_prompt;  /* "caption en" */
    /* TRUE if config.json describes a checkpoint of this family. */
    gboolean (*matches) (JsonObject *config);
    /* Fill the model's configs, weights, special tokens and variant from the
     * checkpoint; model->weights and model->tokenizer are already open. */
    gboolean (*load) (VlmModel *model, VlmCheckpoint *ckpt, GError **error);
    /* The decoder's input ids for a prompt (image tokens included). */
    guint32 *(*build_prompt) (const VlmModel *model, const char *prompt,
                              guint *n_ids);
};

/* The family for a config.json, or an error naming model_type and listing
 * the supported families (or saying a text-only model cannot see). */
const VlmFamily *vlm_family_find (JsonObject *config, GError **error);

/* Add a family at run time, after the built-in ones (for tests and for
 * programs embedding libvlm with their own family module). */
void vlm_family_register (const VlmFamily *family);

#endif
