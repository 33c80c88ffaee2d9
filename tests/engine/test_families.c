/* test_families.c - the family registry from outside: a toy family defined
 * here, in the test tree only, is found through the registry for its own
 * model_type and reuses the PaliGemma loader - no shared code changes. Also
 * Gemma 2 options that the fixtures cannot reach (sliding window) and F16
 * weights. */
#include "ckpt_edit.h"
#include "families/paligemma.h"
#include "fixture.h"

#include <string.h>

static gboolean toy_matches (JsonObject *config)
{
    return g_strcmp0 (json_object_get_string_member_with_default (
                          config, "model_type", ""), "toyvlm") == 0;
}

static gboolean toy_load (VlmModel *m, VlmCheckpoint *ckpt, GError **error)
{
    return vlm_paligemma_load (m, ckpt, NULL, error);
}

static const VlmFamily toy_family = {
    .name = "toyvlm",
    .default_prompt = "describe",
    .matches = toy_matches,
    .load = toy_load,
    .build_prompt = vlm_paligemma_build_prompt,
};

static char *fixture_model (const char *set, const char *name)
{
    return g_build_filename (vlm_test_data_dir (), set, name, NULL);
}

static VlmResult *describe (VlmModel *m, guint max_new)
{
    guint8 px[32 * 24 * 3];
    for (guint i = 0; i < sizeof px; i++)
        px[i] = (i * 31) & 0xff;
    VlmImage img = { px, 32, 24, 32 * 3 };
    g_autoptr (VlmSession) s = vlm_session_new (m, 0, NULL);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.max_new_tokens = max_new;
    p.want_logits = TRUE;
    return vlm_session_describe (s, &img, &p, NULL);
}

static void test_toy_family (void)
{
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_autofree char *dir = vlm_test_copy_checkpoint (src);
    vlm_test_edit_file (dir, "config.json", "\"model_type\": \"paligemma\"",
                        "\"model_type\": \"toyvlm\"");
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) none = vlm_model_load (dir, &error);
    g_assert_null (none);
    g_assert_nonnull (strstr (error->message, "unsupported model_type 'toyvlm'"));
    g_clear_error (&error);

    vlm_family_register (&toy_family);
    g_autoptr (VlmModel) toy = vlm_model_load (dir, &error);
    g_assert_no_error (error);
    const VlmModelInfo *info = vlm_model_get_info (toy);
    g_assert_cmpstr (info->family, ==, "toyvlm");
    g_assert_cmpstr (info->variant, ==, "toyvlm-64");
    g_assert_cmpstr (info->default_prompt, ==, "describe");

    /* Same weights, same architecture: same answers for the same prompt. */
    g_autoptr (VlmModel) pg = vlm_model_load (src, &error);
    g_autoptr (VlmSession) s1 = vlm_session_new (toy, 0, NULL);
    g_autoptr (VlmSession) s2 = vlm_session_new (pg, 0, NULL);
    guint8 px[16 * 16 * 3] = { 0 };
    VlmImage img = { px, 16, 16, 48 };
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.prompt = "describe";
    g_autoptr (VlmResult) a = vlm_session_describe (s1, &img, &p, NULL);
    g_autoptr (VlmResult) b = vlm_session_describe (s2, &img, &p, NULL);
    g_assert_cmpmem (a->tokens, a->n_tokens * 4, b->tokens, b->n_tokens * 4);
    vlm_test_rmdir (dir);
}

/* Gemma 2's sliding window: a window longer than the sequence changes
 * nothing; a window shorter than the generated part changes the later
 * tokens only (the prompt stays one bidirectional block). */
static void test_sliding_window (void)
{
    g_autofree char *src = fixture_model ("paligemma2-tiny", "pg2-f32");
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) ref = vlm_model_load (src, &error);
    g_assert_no_error (error);
    g_autoptr (VlmResult) want = describe (ref, 24);

    const char *windows[] = { "64", "24" };
    VlmResult *got[2];
    for (int i = 0; i < 2; i++) {
        g_autofree char *dir = vlm_test_copy_checkpoint (src);
        g_autofree char *w = g_strdup_printf ("\"sliding_window\": %s,", windows[i]);
        vlm_test_edit_file (dir, "config.json", "\"sliding_window\": 4096,", w);
        g_autoptr (VlmModel) m = vlm_model_load (dir, &error);
        g_assert_no_error (error);
        got[i] = describe (m, 24);
        vlm_test_rmdir (dir);
    }
    /* 21 prompt positions + 24 generated < 64: identical. */
    g_assert_cmpmem (got[0]->tokens, got[0]->n_tokens * 4, want->tokens, want->n_tokens * 4);
    /* Window 24: the prefill (21 positions, one block) is untouched... */
    g_assert_cmpmem (got[1]->prefill_logits, got[1]->n_logits * 4, want->prefill_logits,
                     want->n_logits * 4);
    g_assert_cmpmem (got[1]->tokens, 4 * 4, want->tokens, 4 * 4);
    /* ...but from position 24 on the even layers see less: tokens change. */
    g_assert_true (memcmp (got[1]->tokens, want->tokens, 24 * 4) != 0);
    vlm_result_free (got[0]);
    vlm_result_free (got[1]);
}

/* F16 weights widen exactly: a checkpoint stored as F16 answers as the F32
 * checkpoint holding the same (F16-representable) values. */
static void test_f16 (void)
{
    g_autofree char *src = fixture_model ("paligemma-tiny", "pg-f32");
    g_autofree char *d16 = vlm_test_copy_checkpoint (src);
    g_autofree char *d32 = vlm_test_copy_checkpoint (src);
    VlmTensorStore *store;
    g_autoptr (GPtrArray) all = vlm_test_read_tensors (src, &store);
    g_autoptr (GPtrArray) halves = g_ptr_array_new_with_free_func (g_free);
    g_autoptr (GPtrArray) rounded = g_ptr_array_new_with_free_func (g_free);
    GPtrArray *t16 = g_ptr_array_new (), *t32 = g_ptr_array_new ();
    for (guint i = 0; i < all->len; i++) {
        VlmTestTensor *t = all->pdata[i];
        gsize n = t->nbytes / 4;
        _Float16 *h = g_new (_Float16, n);
        float *r = g_new (float, n);
        for (gsize k = 0; k < n; k++) {
            float v;
            memcpy (&v, t->data + 4 * k, 4);
            h[k] = (_Float16) v;
            r[k] = (float) h[k];
        }
        g_ptr_array_add (halves, h);
        g_ptr_array_add (rounded, r);
        VlmTestTensor *a = g_memdup2 (t, sizeof *t), *b = g_memdup2 (t, sizeof *t);
        a->dtype = "F16";
        a->data = (guint8 *) h;
        a->nbytes = n * 2;
        b->data = (guint8 *) r;
        g_ptr_array_add (t16, a);
        g_ptr_array_add (t32, b);
    }
    g_autofree char *p16 = g_build_filename (d16, "model.safetensors", NULL);
    g_autofree char *p32 = g_build_filename (d32, "model.safetensors", NULL);
    vlm_test_write_safetensors (p16, t16);
    vlm_test_write_safetensors (p32, t32);
    g_ptr_array_set_free_func (t16, g_free);
    g_ptr_array_set_free_func (t32, g_free);
    g_ptr_array_unref (t16);
    g_ptr_array_unref (t32);
    vlm_tensor_store_free (store);

    g_autoptr (GError) error = NULL;
    g_autoptr (VlmModel) m16 = vlm_model_load (d16, &error);
    g_assert_no_error (error);
    g_autoptr (VlmModel) m32 = vlm_model_load (d32, &error);
    g_assert_cmpstr (vlm_model_get_info (m16)->dtype, ==, "F16");
    g_autoptr (VlmResult) a = describe (m16, 8);
    g_autoptr (VlmResult) b = describe (m32, 8);
    g_assert_cmpmem (a->prefill_logits, a->n_logits * 4, b->prefill_logits, b->n_logits * 4);
    g_assert_cmpmem (a->tokens, a->n_tokens * 4, b->tokens, b->n_tokens * 4);
    vlm_test_rmdir (d16);
    vlm_test_rmdir (d32);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    g_test_add_func ("/families/toy-family", test_toy_family);
    g_test_add_func ("/families/gemma2-sliding-window", test_sliding_window);
    g_test_add_func ("/families/f16-weights", test_f16);
    return g_test_run ();
}
