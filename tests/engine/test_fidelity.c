/* test_fidelity.c - every fixture case, stage by stage (llm.c style): the
 * engine's pixels, vision activations, projector output, decoder input,
 * hidden states, logits and greedy tokens against the reference's. */
#include "fixture.h"
#include "image_file.h"
#include "kernels.h"
#include "session.h"

#include <math.h>
#include <string.h>

/* Tolerances from the fixtures' README (float32 noise is ~100x smaller). */
#define TOL_PIXELS 1e-6
#define TOL_ACTIVATIONS 1e-4
#define TOL_LOGITS_REL 1e-3
/* Decoder hidden states reach |x| ~ 160 on these random weights, where one
 * float32 ulp is 1.5e-5: the README's 1e-4 absolute is under 10 ulp there,
 * so they are held to 1e-5 of their magnitude instead (100x below the
 * logits bar, ~10x above the float32 noise seen). */
#define TOL_HIDDEN_REL 1e-5
/* VLM_WEIGHTS_BF16_DOT rounds activations to bf16 (8 bits): on the BF16
 * checkpoints the prefill logits were seen 3e-3 to 2.6e-2 from the
 * reference (docs/performance.md). */
#define TOL_BF16_DOT_LOGITS_REL 5e-2

typedef struct {
    GHashTable *seen;   /* stage -> GArray of float (step_logits: all rows) */
} Trace;

static void on_stage (const char *stage, const float *data, int rows, int cols,
                      void *user_data)
{
    Trace *t = user_data;
    GArray *a = g_hash_table_lookup (t->seen, stage);
    if (!a) {
        a = g_array_new (FALSE, FALSE, sizeof (float));
        g_hash_table_insert (t->seen, g_strdup (stage), a);
    }
    g_array_append_vals (a, data, (gsize) rows * cols);
}

static GHashTable *models; /* model dir -> VlmModel */

static VlmModel *model_for (const char *dir, VlmWeightFormat format)
{
    g_autofree char *key = g_strdup_printf ("%s#%d", dir, format);
    VlmModel *m = g_hash_table_lookup (models, key);
    if (!m) {
        g_autoptr (GError) error = NULL;
        m = vlm_model_load_with_format (dir, format, &error);
        g_assert_no_error (error);
        g_hash_table_insert (models, g_steal_pointer (&key), m);
    }
    return m;
}

/* Compare one stage; rel scales the tolerance by max |expected|. */
static void check_stage (VlmFixtureCase *c, Trace *t, const char *stage,
                         double tol, gboolean rel)
{
    GArray *want = vlm_fixture_tensor (c, stage);
    GArray *got = g_hash_table_lookup (t->seen, stage);
    if (!want)
        return; /* stage not in this fixture */
    g_assert_nonnull (got);
    g_assert_cmpuint (got->len, ==, want->len);
    double diff = vlm_max_abs_diff ((float *) got->data, (float *) want->data, want->len);
    double scale = rel ? vlm_max_abs ((float *) want->data, want->len) : 1.0;
    g_test_message ("%-20s first %+.6f (want %+.6f)  max abs diff %.3g%s",
                    stage, g_array_index (got, float, 0),
                    g_array_index (want, float, 0), diff,
                    rel ? " (relative below)" : "");
    if (rel)
        g_test_message ("%-20s relative %.3g", stage, diff / scale);
    g_assert_cmpfloat (diff / scale, <=, tol);
}

static void check_layers (VlmFixtureCase *c, Trace *t, const char *fmt,
                          double tol, gboolean rel)
{
    for (int i = 0;; i++) {
        g_autofree char *name = g_strdup_printf (fmt, i);
        if (!vlm_fixture_tensor (c, name))
            break;
        check_stage (c, t, name, tol, rel);
    }
}

/* The case's picture and prompt through m: max_new tokens, logits kept,
 * every stage shown to trace (or NULL). */
static VlmResult *describe_case (const VlmFixtureCase *c, VlmModel *m, int max_new,
                                 const VlmTrace *trace)
{
    VlmImageFile file = { 0 };
    g_autoptr (GError) error = NULL;
    g_assert_true (vlm_image_file_load (c->image_path, &file, &error));
    VlmImage image = { file.data, file.width, file.height, file.stride };
    g_autoptr (VlmSession) s = vlm_session_new (m, 0, &error);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.prompt = c->prompt;
    p.max_new_tokens = max_new;
    p.want_logits = TRUE;
    VlmResult *r = vlm_session_describe_traced (s, &image, &p, trace, &error);
    g_assert_no_error (error);
    vlm_image_file_clear (&file);
    return r;
}

/* max |mine - expected| / max |expected| of the prefill logits. */
static double prefill_logits_error (VlmFixtureCase *c, const VlmResult *r)
{
    GArray *want = vlm_fixture_tensor (c, "prefill_logits");
    g_assert_cmpuint (r->n_logits, ==, want->len);
    return vlm_max_abs_diff (r->prefill_logits, (float *) want->data, want->len) /
           vlm_max_abs ((float *) want->data, want->len);
}

static void test_case (gconstpointer data)
{
    const char *const *arg = data; /* { root, case name } */
    VlmFixtureCase *c = vlm_fixture_case_load (arg[0], arg[1]);
    VlmModel *m = model_for (c->model_dir, VLM_WEIGHTS_AS_STORED);
    Trace t = { g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) g_array_unref) };
    VlmTrace trace = { on_stage, &t };
    g_autoptr (VlmResult) r = describe_case (c, m, c->generated_ids->len, &trace);

    check_stage (c, &t, "pixel_values", TOL_PIXELS, FALSE);
    check_stage (c, &t, "vision_embeddings", TOL_ACTIVATIONS, FALSE);
    check_layers (c, &t, "vision_hidden.%d", TOL_ACTIVATIONS, FALSE);
    check_stage (c, &t, "vision_out", TOL_ACTIVATIONS, FALSE);
    check_stage (c, &t, "projected", TOL_ACTIVATIONS, FALSE);
    check_stage (c, &t, "decoder_input", TOL_ACTIVATIONS, FALSE);
    check_layers (c, &t, "text_hidden.%d", TOL_HIDDEN_REL, TRUE);
    check_stage (c, &t, "step_logits", TOL_LOGITS_REL, TRUE);

    double rel = prefill_logits_error (c, r);
    g_test_message ("prefill_logits relative error %.3g", rel);
    g_assert_cmpfloat (rel, <=, TOL_LOGITS_REL);

    g_assert_cmpmem (r->input_ids, r->n_input_ids * 4, c->input_ids->data,
                     c->input_ids->len * 4);
    g_assert_cmpmem (r->tokens, r->n_tokens * 4, c->generated_ids->data,
                     c->generated_ids->len * 4);
    g_assert_cmpstr (r->text, ==, c->text);

    /* Tracing changes no result (the decoder's last layer computes the
     * other positions only for the trace). */
    g_autoptr (VlmResult) plain = describe_case (c, m, c->generated_ids->len, NULL);
    g_assert_cmpmem (plain->prefill_logits, plain->n_logits * 4, r->prefill_logits,
                     r->n_logits * 4);
    g_assert_cmpmem (plain->tokens, plain->n_tokens * 4, r->tokens, r->n_tokens * 4);

    g_hash_table_unref (t.seen);
    vlm_fixture_case_free (c);
}

/* A BF16 checkpoint with bf16 dot products: the image and the prompt go
 * through them where the CPU has AVX-512 BF16 (the logits then move, within
 * the documented error), else through the exact path. */
static void test_bf16_dot (gconstpointer data)
{
    const char *const *arg = data;
    VlmFixtureCase *c = vlm_fixture_case_load (arg[0], arg[1]);
    g_autoptr (VlmResult) r = describe_case (c, model_for (c->model_dir, VLM_WEIGHTS_BF16_DOT),
                                             1, NULL);
    double rel = prefill_logits_error (c, r);
    g_test_message ("bf16-dot prefill_logits relative error %.3g (%s)", rel,
                    vlm_gemm_bf16_dot () ? "bf16 dot products" : "no AVX-512 BF16: exact");
    if (vlm_gemm_bf16_dot ())
        g_assert_cmpfloat (rel, >, 1e-5); /* the bf16 path did run */
    g_assert_cmpfloat (rel, <=, vlm_gemm_bf16_dot () ? TOL_BF16_DOT_LOGITS_REL : TOL_LOGITS_REL);
    vlm_fixture_case_free (c);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    models = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify) vlm_model_unref);
    const char *sets[] = { "paligemma-tiny", "paligemma2-tiny", "paligemma-tiny-mlx", NULL };
    GPtrArray *keep = g_ptr_array_new_with_free_func (g_free);
    GPtrArray *lists = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
    for (int s = 0; sets[s]; s++) {
        char *root = g_build_filename (vlm_test_data_dir (), sets[s], NULL);
        g_ptr_array_add (keep, root);
        GPtrArray *cases = vlm_fixture_list_cases (root);
        for (guint i = 0; i < cases->len; i++) {
            const char **arg = g_new (const char *, 2);
            arg[0] = root;
            arg[1] = cases->pdata[i];
            g_autofree char *path = g_strdup_printf ("/fidelity/%s/%s", sets[s],
                                                     (char *) cases->pdata[i]);
            g_test_add_data_func_full (path, arg, test_case, g_free);
            if (strstr (arg[1], "bf16__")) {
                const char **again = g_memdup2 (arg, 2 * sizeof (char *));
                g_autofree char *p2 = g_strdup_printf ("/fidelity-bf16-dot/%s/%s", sets[s],
                                                       (char *) cases->pdata[i]);
                g_test_add_data_func_full (p2, again, test_bf16_dot, g_free);
            }
        }
        g_ptr_array_add (lists, cases);
    }
    int rc = g_test_run ();
    g_hash_table_unref (models);
    g_ptr_array_unref (lists);
    g_ptr_array_unref (keep);
    return rc;
}
