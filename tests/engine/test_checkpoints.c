/* test_checkpoints.c - loading checkpoints as published and as they go
 * wrong: sharded files, both tensor naming schemes, tied and separate heads,
 * and every kind of bad file, each with the error that names the problem. */
#include "ckpt_edit.h"
#include "fixture.h"
#include "vlm.h"

#include <glib/gstdio.h>
#include <string.h>

static char *fixture_model (const char *set, const char *name)
{
    return g_build_filename (vlm_test_data_dir (), set, name, NULL);
}

/* A deterministic 97x53 test picture with a padded stride. */
static guint8 *test_picture (VlmImage *img)
{
    guint w = 97, h = 53;
    gsize stride = w * 3 + 5;
    guint8 *px = g_malloc0 (stride * h);
    for (guint y = 0; y < h; y++)
        for (guint x = 0; x < w; x++) {
            guint8 *p = px + y * stride + x * 3;
            p[0] = (x * 255) / w;
            p[1] = (y * 255) / h;
            p[2] = ((x + y) * 37) & 0xff;
        }
    *img = (VlmImage) { px, w, h, stride };
    return px;
}

static VlmResult *describe (const char *dir, GError **error)
{
    g_autoptr (VlmModel) m = vlm_model_load (dir, error);
    if (!m)
        return NULL;
    g_autoptr (VlmSession) s = vlm_session_new (m, 0, error);
    VlmImage img;
    g_autofree guint8 *px = test_picture (&img);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.max_new_tokens = 8;
    p.want_logits = TRUE;
    return vlm_session_describe (s, &img, &p, error);
}

static void assert_same_result (const char *dir)
{
    g_autofree char *orig = fixture_model ("paligemma-tiny", "pg-f32");
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmResult) a = describe (orig, &error);
    g_assert_no_error (error);
    g_autoptr (VlmResult) b = describe (dir, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (a->tokens, a->n_tokens * 4, b->tokens, b->n_tokens * 4);
    g_assert_cmpmem (a->prefill_logits, a->n_logits * 4, b->prefill_logits,
                     b->n_logits * 4);
    g_assert_cmpstr (a->text, ==, b->text);
}

static void test_sharded (void)
{
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_autofree char *dir = vlm_test_copy_checkpoint (src);
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (src, &store);
    g_autoptr (GPtrArray) one = g_ptr_array_new ();
    g_autoptr (GPtrArray) two = g_ptr_array_new ();
    GString *index = g_string_new ("{\"metadata\": {}, \"weight_map\": {");
    for (guint i = 0; i < all->len; i++) {
        VlmTestTensor *t = all->pdata[i];
        gboolean first = i < all->len / 2;
        g_ptr_array_add (first ? one : two, t);
        g_string_append_printf (index, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                i ? ", " : "", t->name, first ? 1 : 2);
    }
    g_string_append (index, "}}");
    g_autofree char *p1 = g_build_filename (dir, "model-00001-of-00002.safetensors", NULL);
    g_autofree char *p2 = g_build_filename (dir, "model-00002-of-00002.safetensors", NULL);
    g_autofree char *pi = g_build_filename (dir, "model.safetensors.index.json", NULL);
    g_autofree char *single = g_build_filename (dir, "model.safetensors", NULL);
    vlm_test_write_safetensors (p1, one);
    vlm_test_write_safetensors (p2, two);
    g_assert_true (g_file_set_contents (pi, index->str, -1, NULL));
    g_string_free (index, TRUE);
    g_unlink (single);
    assert_same_result (dir);

    /* An index naming a shard that is not there. */
    g_unlink (p2);
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load (dir, &error);
    g_assert_null (m);
    g_assert_nonnull (strstr (error->message, "model-00002-of-00002.safetensors"));
    vlm_tensor_store_free (store);
    vlm_test_rmdir (dir);
}

/* newer transformers' names, with a stored (tied) lm_head. */
static void test_new_naming (void)
{
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_autofree char *dir = vlm_test_copy_checkpoint (src);
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (src, &store);
    const char *map[][2] = { { "vision_tower.", "model.vision_tower." },
                             { "multi_modal_projector.", "model.multi_modal_projector." },
                             { "language_model.model.", "model.language_model." } };
    VlmTestTensor head = { 0 };
    for (guint i = 0; i < all->len; i++) {
        VlmTestTensor *t = all->pdata[i];
        for (guint k = 0; k < G_N_ELEMENTS (map); k++)
            if (g_str_has_prefix (t->name, map[k][0])) {
                char *renamed = g_strconcat (map[k][1], t->name + strlen (map[k][0]), NULL);
                g_free (t->name);
                t->name = renamed;
                break;
            }
        if (strcmp (t->name, "model.language_model.embed_tokens.weight") == 0) {
            head = *t;
            head.name = g_strdup ("lm_head.weight");
        }
    }
    g_assert_nonnull (head.name);
    g_ptr_array_add (all, g_memdup2 (&head, sizeof head));
    g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
    vlm_test_write_safetensors (path, all);
    assert_same_result (dir);

    /* The same head declared separate (not tied) gives the same answers. */
    vlm_test_edit_file (dir, "config.json", "\"eos_token_id\": 1,",
                        "\"eos_token_id\": 1, \"tie_word_embeddings\": false,");
    assert_same_result (dir);
    vlm_tensor_store_free (store);
    vlm_test_rmdir (dir);
}

typedef struct {
    const char *what;
    void (*spoil) (const char *dir);
    const char *expect; /* substring of the error message */
} BadCase;

static void unlink_file (const char *dir, const char *name)
{
    g_autofree char *p = g_build_filename (dir, name, NULL);
    g_assert_cmpint (g_unlink (p), ==, 0);
}

static void rewrite (const char *dir, const char *name, const void *data, gsize n)
{
    g_autofree char *p = g_build_filename (dir, name, NULL);
    g_assert_true (g_file_set_contents (p, data, n, NULL));
}

static char *read_weights (const char *dir, gsize *len)
{
    g_autofree char *p = g_build_filename (dir, "model.safetensors", NULL);
    char *data;
    g_assert_true (g_file_get_contents (p, &data, len, NULL));
    return data;
}

static void no_config (const char *d) { unlink_file (d, "config.json"); }
static void no_tokenizer (const char *d) { unlink_file (d, "tokenizer.model"); }
static void no_weights (const char *d) { unlink_file (d, "model.safetensors"); }

static void truncated (const char *d)
{
    gsize len;
    g_autofree char *w = read_weights (d, &len);
    rewrite (d, "model.safetensors", w, len / 2);
}

static void header_past_end (const char *d)
{
    gsize len;
    g_autofree char *w = read_weights (d, &len);
    w[5] = 0x7f; /* header length ~ 2^47 */
    rewrite (d, "model.safetensors", w, len);
}

static void tiny_file (const char *d)
{
    rewrite (d, "model.safetensors", "abc", 3);
}

static void header_not_json (const char *d)
{
    gsize len;
    g_autofree char *w = read_weights (d, &len);
    w[8] = '[';
    w[9] = '!';
    rewrite (d, "model.safetensors", w, len);
}

/* Edit the JSON header in place, keeping its length. */
static void edit_header (const char *d, const char *old, const char *new_text)
{
    gsize len;
    g_autofree char *w = read_weights (d, &len);
    guint64 n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | (guint8) w[i];
    g_autofree char *header = g_strndup (w + 8, n);
    char *at = strstr (header, old);
    g_assert_nonnull (at);
    g_assert_cmpuint (strlen (old), ==, strlen (new_text));
    memcpy (w + 8 + (at - header), new_text, strlen (new_text));
    rewrite (d, "model.safetensors", w, len);
}

static void unknown_dtype (const char *d) { edit_header (d, "\"F32\"", "\"X32\""); }
static void out_of_bounds (const char *d)
{
    /* The last tensor ends exactly at the end: push an offset beyond. */
    gsize len;
    g_autofree char *w = read_weights (d, &len);
    guint64 n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | (guint8) w[i];
    g_autofree char *end = g_strdup_printf ("%" G_GUINT64_FORMAT "]", (guint64) (len - 8 - n));
    g_autofree char *beyond = g_strdup (end);
    memset (beyond, '9', strlen (end) - 1); /* same length, larger */
    edit_header (d, end, beyond);
}

static void reshape_tensor (const char *d)
{
    edit_header (d, "\"shape\":[64,3,16,16]", "\"shape\":[64,3,16,4] ");
}

/* Write tensors as d's model.safetensors (through a rename: they point into
 * the old file's mapping), then let the old store go. */
static void replace_weights (const char *d, GPtrArray *tensors, VlmTensorStore *store)
{
    g_autofree char *tmp = g_build_filename (d, "model.safetensors.new", NULL);
    vlm_test_write_safetensors (tmp, tensors);
    g_autofree char *p = g_build_filename (d, "model.safetensors", NULL);
    g_rename (tmp, p);
    vlm_tensor_store_free (store);
}

static void write_altered (const char *d, const char *drop, const char *add)
{
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (d, &store);
    VlmTestTensor extra = { 0 };
    for (guint i = 0; i < all->len; i++) {
        VlmTestTensor *t = all->pdata[i];
        if (drop && strcmp (t->name, drop) == 0) {
            g_ptr_array_remove_index (all, i);
            break;
        }
        if (add && !extra.name) {
            extra = *t;
            extra.name = g_strdup (add);
        }
    }
    if (extra.name)
        g_ptr_array_add (all, g_memdup2 (&extra, sizeof extra));
    replace_weights (d, all, store);
}

static void missing_tensor (const char *d)
{
    write_altered (d, "language_model.model.layers.1.mlp.up_proj.weight", NULL);
}

static void extra_tensor (const char *d)
{
    write_altered (d, NULL, "vision_tower.vision_model.head.probe.weight");
}

static void misshaped_tensor (const char *d)
{
    /* fc1 declared [128, 32] instead of [128, 64], data cut to fit. */
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (d, &store);
    for (guint i = 0; i < all->len; i++) {
        VlmTestTensor *t = all->pdata[i];
        if (strcmp (t->name, "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight") == 0) {
            t->shape[1] = 32;
            t->nbytes /= 2;
        }
    }
    replace_weights (d, all, store);
}

static void no_vision_tensors (const char *d)
{
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (d, &store);
    for (guint i = all->len; i-- > 0;) {
        VlmTestTensor *t = all->pdata[i];
        if (!g_str_has_prefix (t->name, "language_model."))
            g_ptr_array_remove_index (all, i);
    }
    replace_weights (d, all, store);
}

static void config_missing_key (const char *d)
{
    vlm_test_edit_file (d, "config.json", "\"intermediate_size\": 128,\n    \"model_type\": \"gemma\"",
                        "\"model_type\": \"gemma\"");
}

static void config_wrong_type (const char *d)
{
    vlm_test_edit_file (d, "config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": \"3\"");
}

/* Found by fuzzing: the layer arrays were allocated (4 GB here) before
 * the first missing layer was noticed. */
static void config_huge_layer_count (const char *d)
{
    vlm_test_edit_file (d, "config.json", "\"num_hidden_layers\": 3",
                        "\"num_hidden_layers\": 9999993");
}

static void config_not_json (const char *d)
{
    rewrite (d, "config.json", "{ \"model_type\": ", 16);
}

static void text_only_config (const char *d)
{
    rewrite (d, "config.json",
             "{\"model_type\": \"gemma\", \"hidden_size\": 64, \"vocab_size\": 1024}", -1);
}

static void unknown_family (const char *d)
{
    vlm_test_edit_file (d, "config.json", "\"model_type\": \"paligemma\"",
                        "\"model_type\": \"llava\"");
}

static void bad_tokenizer (const char *d)
{
    rewrite (d, "tokenizer.model", "this is not a protobuf", 22);
}

static void bad_preprocessor (const char *d)
{
    vlm_test_edit_file (d, "preprocessor_config.json", "\"height\": 64", "\"height\": 32");
}

static const BadCase bad_cases[] = {
    { "no-config", no_config, "missing config.json" },
    { "no-tokenizer", no_tokenizer, "tokenizer.model: missing" },
    { "no-weights", no_weights, "no model.safetensors" },
    { "tiny-file", tiny_file, "too short for a safetensors header" },
    { "truncated", truncated, "outside the" },
    { "header-past-end", header_past_end, "runs past the end of the file" },
    { "header-not-json", header_not_json, "header is not valid JSON" },
    { "unknown-dtype", unknown_dtype, "unknown dtype 'X32'" },
    { "out-of-bounds", out_of_bounds, "outside the" },
    { "mis-declared-shape", reshape_tensor, "F32 [64, 3, 16, 4] needs 49152 bytes, data_offsets give 196608" },
    { "missing-tensor", missing_tensor,
      "missing tensor 'language_model.model.layers.1.mlp.up_proj.weight' (expected shape [128, 64])" },
    { "extra-tensor", extra_tensor, "unexpected tensor 'vision_tower.vision_model.head.probe.weight'" },
    { "misshaped-tensor", misshaped_tensor,
      "tensor 'vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight': expected shape [128, 64], found [128, 32]" },
    { "no-vision-tensors", no_vision_tensors, "cannot describe images" },
    { "config-missing-key", config_missing_key, "missing key text_config.intermediate_size" },
    { "config-wrong-type", config_wrong_type,
      "text_config.num_hidden_layers: expected an integer, found a string" },
    { "config-huge-layer-count", config_huge_layer_count,
      "config.json: text_config.num_hidden_layers: 9999993 layers, but the weights "
      "hold only 68 tensors" },
    { "config-not-json", config_not_json, "config.json" },
    { "text-only", text_only_config, "cannot describe images" },
    { "unknown-family", unknown_family, "unsupported model_type 'llava' (supported: paligemma, paligemma2)" },
    { "bad-tokenizer", bad_tokenizer, "not a sentencepiece model" },
    { "bad-preprocessor", bad_preprocessor, "differs from the vision tower's image_size 64" },
};

static void test_bad (gconstpointer data)
{
    const BadCase *c = data;
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_autofree char *dir = vlm_test_copy_checkpoint (src);
    c->spoil (dir);
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load (dir, &error);
    g_assert_null (m);
    g_assert_nonnull (error);
    g_test_message ("%s: %s", c->what, error->message);
    if (!strstr (error->message, c->expect))
        g_error ("%s: error '%s' does not say '%s'", c->what, error->message, c->expect);
    vlm_test_rmdir (dir);
}

/* An MLX config whose quantization group is 0 is refused (found by
 * fuzzing: it divided by zero while binding the weights). */
static void test_mlx_group_zero (void)
{
    g_autofree char *src = fixture_model ("paligemma-tiny-mlx", "pg-mlx-q4");
    g_autofree char *dir = vlm_test_copy_checkpoint (src);
    vlm_test_edit_file (dir, "config.json", "\"group_size\": 32", "\"group_size\": 0");
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load (dir, &error);
    g_assert_null (m);
    g_assert_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL);
    g_test_message ("mlx-group-zero: %s", error->message);
    g_assert_nonnull (strstr (error->message,
                              "config.json: quantization: group_size 0 / bits 4 out of range"));
    vlm_test_rmdir (dir);
}

static void test_not_found (void)
{
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load ("/nonexistent/model/dir", &error);
    g_assert_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND);
    g_assert_nonnull (strstr (error->message, "/nonexistent/model/dir"));
    g_clear_error (&error);

    /* A repo id that is not in the cache says how to get it. */
    g_setenv ("HF_HUB_CACHE", "/nonexistent-cache", TRUE);
    m = vlm_model_load ("google/paligemma-3b-mix-224", &error);
    g_assert_null (m);
    g_assert_nonnull (strstr (error->message, "huggingface-cli download google/paligemma-3b-mix-224"));
    g_unsetenv ("HF_HUB_CACHE");
}

/* A repo id resolves through the Hugging Face cache layout. */
static void test_hub_cache (void)
{
    g_autofree char *cache = g_dir_make_tmp ("vlm-hub-XXXXXX", NULL);
    g_autofree char *repo = g_build_filename (cache, "models--acme--tiny", NULL);
    g_autofree char *snaps = g_build_filename (repo, "snapshots", NULL);
    g_autofree char *refs = g_build_filename (repo, "refs", NULL);
    g_autofree char *main_ref = g_build_filename (refs, "main", NULL);
    g_autofree char *snap = g_build_filename (snaps, "abc123", NULL);
    g_assert_cmpint (g_mkdir_with_parents (snaps, 0755), ==, 0);
    g_assert_cmpint (g_mkdir_with_parents (refs, 0755), ==, 0);
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_assert_cmpint (symlink (src, snap), ==, 0);
    g_assert_true (g_file_set_contents (main_ref, "abc123\n", -1, NULL));
    g_setenv ("HF_HUB_CACHE", cache, TRUE);
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load ("acme/tiny", &error);
    g_assert_no_error (error);
    g_assert_cmpstr (vlm_model_get_info (m)->family, ==, "paligemma");
    g_autofree char *real_src = vlm_model_resolve_path (src, NULL);
    g_assert_cmpstr (vlm_model_get_info (m)->path, ==, real_src);
    g_unsetenv ("HF_HUB_CACHE");
    g_unlink (snap);
    g_unlink (main_ref);
    g_rmdir (refs);
    g_rmdir (snaps);
    g_rmdir (repo);
    g_rmdir (cache);
}

static void test_info (void)
{
    g_autofree char *src = fixture_model ("paligemma2-tiny", "pg2-bf16");
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m = vlm_model_load (src, &error);
    g_assert_no_error (error);
    const VlmModelInfo *i = vlm_model_get_info (m);
    g_assert_cmpstr (i->family, ==, "paligemma2");
    g_assert_cmpstr (i->variant, ==, "paligemma2-64");
    g_assert_cmpstr (i->dtype, ==, "BF16");
    g_assert_cmpuint (i->n_image_tokens, ==, 16);
    g_assert_cmpuint (i->image_width, ==, 64);
    g_assert_cmpuint (i->vocab_size, ==, 1024);
    g_assert_cmpstr (i->capabilities, ==, "text,vision-understanding");
    g_assert_cmpstr (i->default_prompt, ==, "caption en");
    g_assert_cmpuint (i->n_params, >, 200000);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    g_test_add_func ("/checkpoint/sharded", test_sharded);
    g_test_add_func ("/checkpoint/new-naming", test_new_naming);
    g_test_add_func ("/checkpoint/not-found", test_not_found);
    g_test_add_func ("/checkpoint/hub-cache", test_hub_cache);
    g_test_add_func ("/checkpoint/info", test_info);
    g_test_add_func ("/checkpoint/mlx-group-zero", test_mlx_group_zero);
    for (guint i = 0; i < G_N_ELEMENTS (bad_cases); i++) {
        g_autofree char *path = g_strdup_printf ("/checkpoint/bad/%s", bad_cases[i].what);
        g_test_add_data_func (path, &bad_cases[i], test_bad);
    }
    return g_test_run ();
}
