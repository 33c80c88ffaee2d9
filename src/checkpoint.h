/* checkpoint.h - a checkpoint directory on disk: where it is and its JSON.
 *
 * Resolves Hugging Face repo ids in the local hub cache, reads
 * config.json / preprocessor_config.json / generation_config.json and offers
 * typed getters whose errors name the file and the key. Knows no family. */
#ifndef VLM_CHECKPOINT_H
#define VLM_CHECKPOINT_H

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct {
    char *dir;            /* canonical directory */
    JsonParser *config_parser;
    JsonObject *config;   /* config.json root */
    JsonParser *preproc_parser;
    JsonObject *preproc;  /* preprocessor_config.json root, or NULL if absent */
    JsonParser *gen_parser;
    JsonObject *gen;      /* generation_config.json root, or NULL if absent */
} VlmCheckpoint;

char *vlm_checkpoint_resolve (const char *path_or_repo_id, GError **error);
VlmCheckpoint *vlm_checkpoint_open (const char *path_or_repo_id, GError **error);
void vlm_checkpoint_free (VlmCheckpoint *ckpt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmCheckpoint, vlm_checkpoint_free)

/* Typed access to JSON objects. file and where ("text_config") only serve
 * error messages. A missing key gives def unless required; a key of the wrong
 * type is always an error. obj may be NULL (treated as empty). */
gboolean vlm_json_int (JsonObject *obj, const char *file, const char *where,
                       const char *key, gboolean required, gint64 def,
                       gint64 *out, GError **error);
gboolean vlm_json_double (JsonObject *obj, const char *file, const char *where,
                          const char *key, gboolean required, double def,
                          double *out, GError **error);
gboolean vlm_json_bool (JsonObject *obj, const char *file, const char *where,
                        const char *key, gboolean def, gboolean *out,
                        GError **error);
/* NULL when absent (an error only if required) or not a string (error). */
const char *vlm_json_string (JsonObject *obj, const char *file,
                             const char *where, const char *key,
                             gboolean required, GError **error);
/* *out = NULL when absent and not required. */
gboolean vlm_json_object (JsonObject *obj, const char *file, const char *where,
                          const char *key, gboolean required, JsonObject **out,
                          GError **error);
/* A JSON array of exactly n numbers. */
gboolean vlm_json_doubles (JsonObject *obj, const char *file, const char *where,
                           const char *key, guint n, double *out,
                           GError **error);

#endif
