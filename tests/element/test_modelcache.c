/* Unit tests of gst/gstvlmmodelcache.c: one model per canonical path,
 * shared, and released with its last user. */

#include <glib.h>

#include "gstvlmmodelcache.h"

#define MODEL_DIR VLM_TEST_DATA_DIR "/paligemma-tiny/pg-f32"

static void
test_shared (void)
{
  g_autoptr (GError) error = NULL;
  VlmModel *a, *b, *c;

  a = gst_vlm_model_cache_acquire (MODEL_DIR, VLM_WEIGHTS_AS_STORED, &error);
  g_assert_no_error (error);
  /* another spelling of the same directory */
  b = gst_vlm_model_cache_acquire (VLM_TEST_DATA_DIR
      "/paligemma-tiny/../paligemma-tiny/pg-f32/", VLM_WEIGHTS_AS_STORED, &error);
  g_assert_no_error (error);
  g_assert_true (a == b);

  /* a different checkpoint is a different model */
  c = gst_vlm_model_cache_acquire (VLM_TEST_DATA_DIR
      "/paligemma-tiny/pg-bf16", VLM_WEIGHTS_AS_STORED, &error);
  g_assert_no_error (error);
  g_assert_true (c != a);

  /* the same checkpoint quantized at load is another model too */
  VlmModel *d = gst_vlm_model_cache_acquire (MODEL_DIR, VLM_WEIGHTS_Q8, &error);
  g_assert_no_error (error);
  g_assert_true (d != a);
  g_assert_cmpstr (vlm_model_get_info (d)->dtype, ==, "Q8");
  gst_vlm_model_cache_release (d);

  gst_vlm_model_cache_release (a);
  gst_vlm_model_cache_release (b);
  gst_vlm_model_cache_release (c);
}

static void
test_missing (void)
{
  g_autoptr (GError) error = NULL;
  VlmModel *m = gst_vlm_model_cache_acquire ("/nonexistent/model",
      VLM_WEIGHTS_AS_STORED, &error);

  g_assert_null (m);
  g_assert_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND);
}

static gpointer
acquire_thread (gpointer data)
{
  return gst_vlm_model_cache_acquire (MODEL_DIR, VLM_WEIGHTS_AS_STORED, NULL);
}

/* Eight elements starting at once share one load. */
static void
test_threads (void)
{
  GThread *threads[8];
  VlmModel *models[8];
  guint i;

  for (i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("acquire", acquire_thread, NULL);
  for (i = 0; i < G_N_ELEMENTS (threads); i++) {
    models[i] = g_thread_join (threads[i]);
    g_assert_nonnull (models[i]);
    g_assert_true (models[i] == models[0]);
  }
  for (i = 0; i < G_N_ELEMENTS (threads); i++)
    gst_vlm_model_cache_release (models[i]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/model-cache/shared", test_shared);
  g_test_add_func ("/model-cache/missing", test_missing);
  g_test_add_func ("/model-cache/threads", test_threads);
  return g_test_run ();
}
