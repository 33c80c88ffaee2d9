/* registry.c - the list of model families. Add a line to add a family. */
#include "family.h"

#include "../vlm.h"

extern const VlmFamily vlm_family_paligemma;
extern const VlmFamily vlm_family_paligemma2;

static const VlmFamily *const families[] = {
    &vlm_family_paligemma,
    &vlm_family_paligemma2,
    NULL,
};

static GPtrArray *extra; /* registered at run time; guarded by extra_lock */
G_LOCK_DEFINE_STATIC (extra);

void vlm_family_register (const VlmFamily *family)
{
    G_LOCK (extra);
    if (!extra)
        extra = g_ptr_array_new ();
    g_ptr_array_add (extra, (gpointer) family);
    G_UNLOCK (extra);
}

/* Built-in families, then registered ones; index past the end gives NULL. */
static const VlmFamily *family_at (guint i)
{
    if (i < G_N_ELEMENTS (families) - 1)
        return families[i];
    i -= G_N_ELEMENTS (families) - 1;
    G_LOCK (extra);
    const VlmFamily *f = extra && i < extra->len ? extra->pdata[i] : NULL;
    G_UNLOCK (extra);
    return f;
}

const VlmFamily *vlm_family_find (JsonObject *config, GError **error)
{
    const VlmFamily *f;
    for (guint i = 0; (f = family_at (i)); i++)
        if (f->matches (config))
            return f;

    const char *type =
        vlm_json_string (config, "config.json", NULL, "model_type", FALSE, NULL);
    if (!type)
        type = "(none)";
    if (!json_object_has_member (config, "vision_config")) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                     "config.json: model_type '%s' is a text-only model with "
                     "no vision tower: it cannot describe images", type);
        return NULL;
    }
    GString *names = g_string_new (NULL);
    for (guint i = 0; (f = family_at (i)); i++)
        g_string_append_printf (names, "%s%s", i ? ", " : "", f->name);
    g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                 "config.json: unsupported model_type '%s' (supported: %s)",
                 type, names->str);
    g_string_free (names, TRUE);
    return NULL;
}
