/* fuzz_tokenizer.c - the sentencepiece shim. The first byte picks:
 * even: the rest is text and token ids for the fixture's tokenizer
 *   (encode arbitrary bytes, decode them back, decode arbitrary ids
 *   whole and as a stream with vlm_tokenizer_decode_stable);
 * odd: the rest is a serialized tokenizer model (load from bytes; one that
 *   loads then encodes and decodes a fixed text and every id around its
 *   vocabulary). */
#include "fuzz.h"
#include "tokenizer.h"

#include <string.h>

static VlmTokenizer *fixture;

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    g_autoptr (GError) error = NULL;
    fixture = vlm_tokenizer_load (VLM_TEST_DATA_DIR
                                  "/paligemma-tiny/pg-f32/tokenizer.model", &error);
    if (!fixture)
        g_error ("fuzz: %s", error->message);
    return 0;
}

/* Decoding never fails: whole, and as the last prefixes while generating
 * (a UTF-8 character spans at most 4 byte pieces). */
static void decode_all (VlmTokenizer *tok, const guint32 *ids, guint n)
{
    g_free (vlm_tokenizer_decode (tok, ids, n));
    for (guint i = n > 8 ? n - 8 : 0; i <= n; i++) {
        g_autofree char *text = vlm_tokenizer_decode_stable (tok, ids, i);
        g_assert (text != NULL);
    }
    for (guint i = 0; i < n; i++) {
        int b = vlm_tokenizer_byte_value (tok, ids[i]);
        g_assert (b >= -1 && b <= 255);
    }
}

static void text_and_ids (VlmTokenizer *tok, const uint8_t *data, size_t size)
{
    g_autofree char *text = g_strndup ((const char *) data, size);
    guint n = 0;
    g_autofree guint32 *ids = vlm_tokenizer_encode (tok, text, &n);
    for (guint i = 0; i < n; i++)
        g_assert (ids[i] < vlm_tokenizer_n_pieces (tok));
    decode_all (tok, ids, n);

    /* The same bytes as arbitrary ids, in range or not. */
    guint n_raw = size / 4;
    g_autofree guint32 *raw = g_new (guint32, n_raw + 1);
    memcpy (raw, data, n_raw * 4);
    decode_all (tok, raw, n_raw);
}

static void model_bytes (const uint8_t *data, size_t size)
{
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmTokenizer) tok = vlm_tokenizer_load_from_bytes (data, size,
                                                                  &error);
    if (!tok) {
        g_assert (error != NULL);
        return;
    }
    static const char text[] = "caption en\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac 42";
    text_and_ids (tok, (const uint8_t *) text, sizeof text - 1);
    guint n_pieces = vlm_tokenizer_n_pieces (tok);
    guint32 ids[] = { 0, 1, 2, 3, n_pieces - 1, n_pieces, n_pieces + 1,
                      G_MAXINT32, (guint32) G_MAXINT32 + 1, G_MAXUINT32 };
    decode_all (tok, ids, G_N_ELEMENTS (ids));
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    VlmFuzzInput in = { data, size };
    if (vlm_fuzz_u8 (&in) % 2 == 0)
        text_and_ids (fixture, in.data, in.size);
    else
        model_bytes (in.data, in.size);
    return 0;
}
