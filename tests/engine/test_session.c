/* test_session.c - the describe loop as an API user sees it: streaming
 * callback text, stop and cancel, sampling options, bad images, and several
 * sessions sharing one model from several threads. */
#include "fixture.h"
#include "sampler.h"
#include "tokenizer.h"
#include "vlm.h"

#include <string.h>

static VlmModel *model;

static guint8 *picture (VlmImage *img, guint w, guint h, gsize pad, guint8 seed)
{
    gsize stride = w * 3 + pad;
    guint8 *px = g_malloc0 (stride * h);
    for (guint y = 0; y < h; y++)
        for (guint x = 0; x < w * 3; x++)
            px[y * stride + x] = (x * 7 + y * 13 + seed) & 0xff;
    *img = (VlmImage) { px, w, h, stride };
    return px;
}

static VlmResult *run (VlmSession *s, const VlmDescribeParams *p, GError **error)
{
    VlmImage img;
    g_autofree guint8 *px = picture (&img, 80, 60, 4, 0);
    return vlm_session_describe (s, &img, p, error);
}

typedef struct {
    VlmSession *session;
    guint calls, cancel_after;
    char *last_text;
} Stream;

static gboolean on_token (guint32 token, const char *text_so_far, gpointer data)
{
    Stream *st = data;
    st->calls++;
    g_assert_true (g_utf8_validate (text_so_far, -1, NULL));
    g_free (st->last_text);
    st->last_text = g_strdup (text_so_far);
    if (st->cancel_after && st->calls == st->cancel_after)
        vlm_session_cancel (st->session); /* honoured before the next token */
    return TRUE;
}

static gboolean stop_at_two (guint32 token, const char *text, gpointer data)
{
    return ++*(guint *) data < 2;
}

static void test_stream_and_cancel (void)
{
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmSession) s = vlm_session_new (model, 0, &error);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    g_assert_cmpuint (p.max_new_tokens, ==, 32);
    p.max_new_tokens = 12;
    Stream st = { s, 0, 0, NULL };
    p.on_token = on_token;
    p.user_data = &st;
    g_autoptr (VlmResult) full = run (s, &p, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (full->n_tokens, ==, 12);
    g_assert_cmpuint (st.calls, ==, 12);
    g_assert_cmpint (full->finish_reason, ==, VLM_FINISH_LENGTH);
    g_assert_cmpuint (full->stats.n_tokens_image, ==, 16);
    g_assert_cmpuint (full->stats.n_tokens_prompt, ==, full->n_input_ids - 16);
    g_assert_cmpstr (st.last_text, ==, full->text);
    g_free (st.last_text);

    /* Cancel from the callback: stops before the 4th token. */
    st = (Stream) { s, 0, 3, NULL };
    g_autoptr (VlmResult) cut = run (s, &p, &error);
    g_assert_no_error (error);
    g_assert_cmpint (cut->finish_reason, ==, VLM_FINISH_CANCELLED);
    g_assert_cmpuint (cut->n_tokens, ==, 3);
    g_assert_cmpmem (cut->tokens, 12, full->tokens, 12);
    g_free (st.last_text);

    /* Still cancelled until reset: no tokens at all. */
    st = (Stream) { s, 0, 0, NULL };
    g_autoptr (VlmResult) none = run (s, &p, &error);
    g_assert_cmpint (none->finish_reason, ==, VLM_FINISH_CANCELLED);
    g_assert_cmpuint (none->n_tokens, ==, 0);
    g_assert_cmpstr (none->text, ==, "");
    vlm_session_reset_cancel (s);
    g_autoptr (VlmResult) again = run (s, &p, &error);
    g_assert_cmpmem (again->tokens, again->n_tokens * 4, full->tokens, full->n_tokens * 4);
    g_free (st.last_text);

    /* A callback returning FALSE stops too. */
    guint n = 0;
    p.on_token = stop_at_two;
    p.user_data = &n;
    g_autoptr (VlmResult) two = run (s, &p, &error);
    g_assert_cmpuint (two->n_tokens, ==, 2);
    g_assert_cmpint (two->finish_reason, ==, VLM_FINISH_CANCELLED);
}

static void test_sampling (void)
{
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmSession) s = vlm_session_new (model, 1, &error);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.max_new_tokens = 10;
    g_autoptr (VlmResult) greedy = run (s, &p, &error);
    /* top-k 1 is greedy whatever the temperature. */
    p.temperature = 1.5f;
    p.top_k = 1;
    g_autoptr (VlmResult) k1 = run (s, &p, &error);
    g_assert_cmpmem (k1->tokens, 40, greedy->tokens, 40);
    /* Same seed, same tokens; the sampled text differs from greedy. */
    p.top_k = 0;
    p.seed = 42;
    g_autoptr (VlmResult) a = run (s, &p, &error);
    g_autoptr (VlmResult) b = run (s, &p, &error);
    g_assert_cmpmem (a->tokens, a->n_tokens * 4, b->tokens, b->n_tokens * 4);
    gboolean differs = a->n_tokens != greedy->n_tokens ||
                       memcmp (a->tokens, greedy->tokens, a->n_tokens * 4) != 0;
    g_assert_true (differs);
    p.top_p = 0.3f;
    g_autoptr (VlmResult) c = run (s, &p, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (c->n_tokens, >, 0);
}

static void test_sampler_unit (void)
{
    float logits[] = { 1.0f, 3.0f, 3.0f, -2.0f };
    g_assert_cmpuint (vlm_sampler_argmax (logits, 4), ==, 1); /* first of ties */
    VlmSampler s;
    float probs[4];
    guint32 idx[4];
    guint counts[4] = { 0 };
    vlm_sampler_init (&s, 1.0f, 0, 0.4f, 3);
    for (int i = 0; i < 2000; i++)
        counts[vlm_sampler_sample (&s, logits, 4, probs, idx)]++;
    /* Each top has p ~ 0.468: top-p 0.4 keeps only the first of them. */
    g_assert_cmpuint (counts[1], ==, 2000);
    vlm_sampler_init (&s, 1.0f, 0, 1.0f, 3);
    memset (counts, 0, sizeof counts);
    for (int i = 0; i < 4000; i++)
        counts[vlm_sampler_sample (&s, logits, 4, probs, idx)]++;
    /* p = e^3 / (e + 2 e^3 + e^-2) ~ 0.468 for each top. */
    g_assert_cmpuint (counts[1], >, 1600);
    g_assert_cmpuint (counts[2], >, 1600);
    g_assert_cmpuint (counts[0], >, 50);
}

static void test_detok (void)
{
    g_autofree char *path = g_build_filename (vlm_test_data_dir (), "paligemma-tiny",
                                              "tokenizer", "tokenizer.model", NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmTokenizer) tok = vlm_tokenizer_load (path, &error);
    g_assert_no_error (error);
    /* "€" is not a piece: byte fallback gives E2 82 AC. */
    guint n;
    g_autofree guint32 *ids = vlm_tokenizer_encode (tok, "a€", &n);
    g_assert_cmpuint (n, ==, 4);
    g_assert_cmpint (vlm_tokenizer_byte_value (tok, ids[1]), ==, 0xe2);
    g_assert_cmpint (vlm_tokenizer_byte_value (tok, ids[3]), ==, 0xac);
    g_assert_cmpint (vlm_tokenizer_byte_value (tok, ids[0]), ==, -1);
    const char *want[] = { "a", "a", "a", "a€" };
    for (guint i = 1; i <= n; i++) {
        g_autofree char *t = vlm_tokenizer_decode_stable (tok, ids, i);
        g_assert_cmpstr (t, ==, want[i - 1]);
    }
    /* A stray continuation byte is not held back (it can never complete). */
    guint32 stray[] = { ids[0], ids[2] };
    g_autofree char *s = vlm_tokenizer_decode_stable (tok, stray, 2);
    g_assert_cmpstr (s, ==, "a\xef\xbf\xbd");
    /* Special tokens and out-of-vocabulary ids are dropped from text. */
    guint32 special[] = { 2, ids[0], 1, 1000, 1023 };
    g_autofree char *d = vlm_tokenizer_decode (tok, special, 5);
    g_assert_cmpstr (d, ==, "a");
}

static void test_bad_images (void)
{
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmSession) s = vlm_session_new (model, 0, &error);
    guint8 px[12] = { 0 };
    VlmImage bad[] = {
        { NULL, 2, 2, 6 }, { px, 0, 2, 6 }, { px, 2, 0, 6 }, { px, 2, 2, 5 },
        { px, 100000, 1, 300000 },
    };
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
        g_autoptr (VlmResult) r = vlm_session_describe (s, &bad[i], NULL, &error);
        g_assert_null (r);
        g_assert_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT);
        g_assert_nonnull (strstr (error->message, "invalid image"));
        g_clear_error (&error);
    }
}

typedef struct {
    guint8 seed;
    VlmResult *result;
} Job;

static gpointer describe_thread (gpointer data)
{
    Job *job = data;
    g_autoptr (VlmSession) s = vlm_session_new (model, 1, NULL);
    VlmImage img;
    g_autofree guint8 *px = picture (&img, 120, 90, 0, job->seed);
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    p.max_new_tokens = 16;
    for (int i = 0; i < 3; i++) {
        vlm_result_free (job->result);
        job->result = vlm_session_describe (s, &img, &p, NULL);
    }
    return NULL;
}

/* Four threads, each its own session on one shared model, give exactly what
 * a lone session gives. */
static void test_threads (void)
{
    Job jobs[4] = { { 1 }, { 2 }, { 1 }, { 2 } };
    GThread *threads[4];
    for (int i = 0; i < 4; i++)
        threads[i] = g_thread_new ("describe", describe_thread, &jobs[i]);
    for (int i = 0; i < 4; i++)
        g_thread_join (threads[i]);
    Job lone[2] = { { 1 }, { 2 } };
    describe_thread (&lone[0]);
    describe_thread (&lone[1]);
    for (int i = 0; i < 4; i++) {
        VlmResult *want = lone[i % 2].result;
        g_assert_nonnull (jobs[i].result);
        g_assert_cmpmem (jobs[i].result->tokens, jobs[i].result->n_tokens * 4,
                         want->tokens, want->n_tokens * 4);
        vlm_result_free (jobs[i].result);
    }
    vlm_result_free (lone[0].result);
    vlm_result_free (lone[1].result);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    g_autofree char *dir = g_build_filename (vlm_test_data_dir (), "paligemma-tiny",
                                             "pg-f32", NULL);
    g_autoptr (GError) error = NULL;
    model = vlm_model_load (dir, &error);
    g_assert_no_error (error);
    g_test_add_func ("/session/stream-and-cancel", test_stream_and_cancel);
    g_test_add_func ("/session/sampling", test_sampling);
    g_test_add_func ("/session/sampler", test_sampler_unit);
    g_test_add_func ("/session/detok", test_detok);
    g_test_add_func ("/session/bad-images", test_bad_images);
    g_test_add_func ("/session/threads", test_threads);
    int rc = g_test_run ();
    vlm_model_unref (model);
    return rc;
}
