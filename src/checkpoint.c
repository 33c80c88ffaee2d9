/* checkpoint.c - checkpoint directories, the Hugging Face cache, JSON files. */
#include "checkpoint.h"

#include "vlm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
static char *hub_cache_dir (void)
{
    const char *v = g_getenv ("HF_HUB_CACHE");
    if (v && *v)
        return g_strdup (v);
    v = g_getenv ("HF_HOME");
    if (v && *v)
        return g_build_filename (v, "hub", NULL);
    return g_build_filename (g_get_home_dir (), ".cache", "huggingface", "hub",
                             NULL);
}

/* ORG/NAME -> <cache>/models--ORG--NAME/snapshots/<refs/main or the only one>. */
static char *resolve_repo_id (const char *repo_id, GError **error)
{
    g_autofree char *cache = hub_cache_dir ();
    g_auto (GStrv) parts = g_strsplit (repo_id, "/", -1);
    g_autofree char *folder = g_strconcat ("models--", parts[0], "--", parts[1], NULL);
    g_autofree char *repo = g_build_filename (cache, folder, NULL);
    g_autofree char *ref_path = g_build_filename (repo, "refs", "main", NULL);
    g_autofree char *rev = NULL;
    if (g_file_get_contents (ref_path, &rev, NULL, NULL)) {
        g_strstrip (rev);
        char *snap = g_build_filename (repo, "snapshots", rev, NULL);
        if (g_file_test (snap, G_FILE_TEST_IS_DIR))
            return snap;
        g_free (snap);
    }
    g_autofree char *snaps = g_build_filename (repo, "snapshots", NULL);
    GDir *d = g_dir_open (snaps, 0, NULL);
    char *found = NULL;
    if (d) {
        const char *name = g_dir_read_name (d);
        if (name)
            found = g_build_filename (snaps, name, NULL);
        g_dir_close (d);
    }
    if (!found)
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                     "'%s' is neither a directory nor a model in the Hugging "
                     "Face cache (%s); download it with: huggingface-cli "
                     "download %s", repo_id, repo, repo_id);
    return found;
}

char *vlm_checkpoint_resolve (const char *path_or_repo_id, GError **error)
{
    if (!path_or_repo_id || !*path_or_repo_id) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND, "no model path given");
        return NULL;
    }
    g_autofree char *dir = NULL;
    if (g_file_test (path_or_repo_id, G_FILE_TEST_EXISTS)) {
        dir = g_strdup (path_or_repo_id);
    } else {
        /* A repo id is exactly ORG/NAME, relative. */
        g_auto (GStrv) parts = g_strsplit (path_or_repo_id, "/", -1);
        if (g_strv_length (parts) != 2 || !*parts[0] || !*parts[1] ||
            path_or_repo_id[0] == '.') {
            g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                         "%s: no such directory", path_or_repo_id);
            return NULL;
        }
        dir = resolve_repo_id (path_or_repo_id, error);
        if (!dir)
            return NULL;
    }
    char *real = realpath (dir, NULL);
    if (!real) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND, "%s: %s", dir,
                     g_strerror (errno));
        return NULL;
    }
    if (!g_file_test (real, G_FILE_TEST_IS_DIR)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                     "%s: not a directory (a model is a checkpoint directory "
                     "with config.json)", real);
        free (real);
        return NULL;
    }
    char *out = g_strdup (real);
    free (real);
    return out;
}

static gboolean load_json (const char *dir, const char *name, gboolean required,
                           JsonParser **parser_out, JsonObject **obj_out,
                           GError **error)
{
    g_autofree char *path = g_build_filename (dir, name, NULL);
    if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
        if (required)
            g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                         "%s: missing %s", dir, name);
        return !required;
    }
    JsonParser *parser = json_parser_new ();
    GError *e = NULL;
    if (!json_parser_load_from_file (parser, path, &e)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL, "%s: %s", path,
                     e->message);
        g_error_free (e);
        g_object_unref (parser);
        return FALSE;
    }
    JsonNode *root = json_parser_get_root (parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: not a JSON object", path);
        g_object_unref (parser);
        return FALSE;
    }
    *parser_out = parser;
    *obj_out = json_node_get_object (root);
    return TRUE;
}

VlmCheckpoint *vlm_checkpoint_open (const char *path_or_repo_id, GError **error)
{
    g_autoptr (VlmCheckpoint) ckpt = g_new0 (VlmCheckpoint, 1);
    ckpt->dir = vlm_checkpoint_resolve (path_or_repo_id, error);
    if (!ckpt->dir ||
        !load_json (ckpt->dir, "config.json", TRUE, &ckpt->config_parser,
                    &ckpt->config, error) ||
        !load_json (ckpt->dir, "preprocessor_config.json", FALSE,
                    &ckpt->preproc_parser, &ckpt->preproc, error) ||
        !load_json (ckpt->dir, "generation_config.json", FALSE,
                    &ckpt->gen_parser, &ckpt->gen, error))
        return NULL;
    return g_steal_pointer (&ckpt);
}

void vlm_checkpoint_free (VlmCheckpoint *ckpt)
{
    if (!ckpt)
        return;
    g_free (ckpt->dir);
    g_clear_object (&ckpt->config_parser);
    g_clear_object (&ckpt->preproc_parser);
    g_clear_object (&ckpt->gen_parser);
    g_free (ckpt);
}

static const char *json_kind (JsonNode *n)
{
    if (JSON_NODE_HOLDS_OBJECT (n))
        return "an object";
    if (JSON_NODE_HOLDS_ARRAY (n))
        return "an array";
    if (JSON_NODE_HOLDS_NULL (n))
        return "null";
    GType t = json_node_get_value_type (n);
    if (t == G_TYPE_STRING)
        return "a string";
    if (t == G_TYPE_BOOLEAN)
        return "a boolean";
    if (t == G_TYPE_DOUBLE)
        return "a fraction";
    return "a number";
}

static JsonNode *member (JsonObject *obj, const char *file, const char *where,
                         const char *key, gboolean required, GError **error)
{
    JsonNode *n = obj ? json_object_get_member (obj, key) : NULL;
    if (n && JSON_NODE_HOLDS_NULL (n))
        n = NULL; /* HF writes null for "use the default" */
    if (!n && required)
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: missing key %s%s%s", file, where ? where : "",
                     where ? "." : "", key);
    return n;
}

static void wrong_type (GError **error, const char *file, const char *where,
                        const char *key, const char *want, JsonNode *n)
{
    g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                 "%s: %s%s%s: expected %s, found %s", file, where ? where : "",
                 where ? "." : "", key, want, json_kind (n));
}

gboolean vlm_json_int (JsonObject *obj, const char *file, const char *where,
                       const char *key, gboolean required, gint64 def,
                       gint64 *out, GError **error)
{
    JsonNode *n = member (obj, file, where, key, required, error);
    if (!n) {
        *out = def;
        return !required;
    }
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64) {
        wrong_type (error, file, where, key, "an integer", n);
        return FALSE;
    }
    *out = json_node_get_int (n);
    return TRUE;
}

gboolean vlm_json_double (JsonObject *obj, const char *file, const char *where,
                          const char *key, gboolean required, double def,
                          double *out, GError **error)
{
    JsonNode *n = member (obj, file, where, key, required, error);
    if (!n) {
        *out = def;
        return !required;
    }
    GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
    if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
        wrong_type (error, file, where, key, "a number", n);
        return FALSE;
    }
    *out = json_node_get_double (n);
    return TRUE;
}

gboolean vlm_json_bool (JsonObject *obj, const char *file, const char *where,
                        const char *key, gboolean def, gboolean *out,
                        GError **error)
{
    JsonNode *n = member (obj, file, where, key, FALSE, error);
    *out = def;
    if (!n)
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
        wrong_type (error, file, where, key, "true or false", n);
        return FALSE;
    }
    *out = json_node_get_boolean (n);
    return TRUE;
}

const char *vlm_json_string (JsonObject *obj, const char *file,
                             const char *where, const char *key,
                             gboolean required, GError **error)
{
    JsonNode *n = member (obj, file, where, key, required, error);
    if (!n)
        return NULL;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
        wrong_type (error, file, where, key, "a string", n);
        return NULL;
    }
    return json_node_get_string (n);
}

gboolean vlm_json_object (JsonObject *obj, const char *file, const char *where,
                          const char *key, gboolean required, JsonObject **out,
                          GError **error)
{
    *out = NULL;
    JsonNode *n = member (obj, file, where, key, required, error);
    if (!n)
        return !required;
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
        wrong_type (error, file, where, key, "an object", n);
        return FALSE;
    }
    *out = json_node_get_object (n);
    return TRUE;
}

gboolean vlm_json_doubles (JsonObject *obj, const char *file, const char *where,
                           const char *key, guint n, double *out,
                           GError **error)
{
    JsonNode *node = member (obj, file, where, key, FALSE, error);
    if (!node)
        return TRUE; /* keep the defaults in out */
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
    if (!a || json_array_get_length (a) != n) {
        g_autofree char *want = g_strdup_printf ("an array of %u numbers", n);
        wrong_type (error, file, where, key, want, node);
        return FALSE;
    }
    for (guint i = 0; i < n; i++) {
        JsonNode *e = json_array_get_element (a, i);
        GType t = JSON_NODE_HOLDS_VALUE (e) ? json_node_get_value_type (e) : G_TYPE_INVALID;
        if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
            g_autofree char *want = g_strdup_printf ("an array of %u numbers", n);
            wrong_type (error, file, where, key, want, node);
            return FALSE;
        }
        out[i] = json_node_get_double (e);
    }
    return TRUE;
}
