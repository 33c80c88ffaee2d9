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

const VlmFamily *vlm_family_find (JsonObject *config, GError **error)
{
    for (int i = 0; families[i]; i++)
        if (families[i]->matches (config))
            return families[i];

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
    for (int i = 0; families[i]; i++)
        g_string_append_printf (names, "%s%s", i ? ", " : "", families[i]->name);
    g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                 "config.json: unsupported model_type '%s' (supported: %s)",
                 type, names->str);
    g_string_free (names, TRUE);
    return NULL;
}
