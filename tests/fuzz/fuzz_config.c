/* fuzz_config.c - a checkpoint's JSON from bytes: config.json,
 * preprocessor_config.json and generation_config.json (the input's first
 * byte picks the fixture whose weights and tokenizer go with them:
 * PaliGemma F32, PaliGemma 2 F32 or MLX 4-bit; then the three files,
 * separated by 0 bytes, a missing one absent). The checkpoint is loaded
 * through the public API, so this covers the JSON getters, the family
 * registry, each family's config parsing and the binding of the weights
 * the config describes; a model that loads describes a small picture. */
#include "fuzz.h"
#include "vlm.h"

#include <glib/gstdio.h>

static const char *const fixtures[] = {
    "paligemma-tiny/pg-f32",
    "paligemma2-tiny/pg2-f32",
    "paligemma-tiny-mlx/pg-mlx-q4",
};
static const char *const json_files[] = {
    "config.json", "preprocessor_config.json", "generation_config.json",
};
static const char *dir;

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    dir = vlm_fuzz_tmpdir ();
    return 0;
}

static void describe (VlmModel *model)
{
    static const guint8 pixels[4 * 4 * 3] = { 0, 50, 100, 150, 200, 250 };
    VlmImage image = { pixels, 4, 4, 4 * 3 };
    VlmDescribeParams params;
    vlm_describe_params_init (&params);
    params.max_new_tokens = 2;
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmSession) session = vlm_session_new (model, 1, &error);
    g_autoptr (VlmResult) result =
        vlm_session_describe (session, &image, &params, &error);
    g_assert (result && result->text && g_utf8_validate (result->text, -1, NULL));
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    VlmFuzzInput in = { data, size };
    g_autofree char *fixture = g_build_filename (
        VLM_TEST_DATA_DIR, fixtures[vlm_fuzz_u8 (&in) % G_N_ELEMENTS (fixtures)],
        NULL);
    g_autofree char *weights = g_build_filename (fixture, "model.safetensors", NULL);
    g_autofree char *tokenizer = g_build_filename (fixture, "tokenizer.model", NULL);
    vlm_fuzz_link (dir, "model.safetensors", weights);
    vlm_fuzz_link (dir, "tokenizer.model", tokenizer);
    for (guint i = 0; i < G_N_ELEMENTS (json_files); i++) {
        if (in.size == 0) {
            g_autofree char *path = g_build_filename (dir, json_files[i], NULL);
            g_unlink (path);
            continue;
        }
        size_t len;
        const uint8_t *piece = vlm_fuzz_split (&in, &len);
        vlm_fuzz_write (dir, json_files[i], piece, len);
    }

    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) model = vlm_model_load (dir, &error);
    if (!model) {
        g_assert (error != NULL && error->message[0] != '\0');
        return 0;
    }
    describe (model);
    return 0;
}
