// tokenizer_spm.cc - the only C++ in libvlm: an extern "C" shim over
// sentencepiece::SentencePieceProcessor (as gemma.cpp does).
#include "tokenizer.h"

#include "vlm.h"

#include <sentencepiece_processor.h>

#include <string>
#include <vector>

struct _VlmTokenizer {
    sentencepiece::SentencePieceProcessor sp;
};

static VlmTokenizer *finish (VlmTokenizer *tok, const sentencepiece::util::Status &st,
                             const char *what, GError **error)
{
    if (!st.ok ()) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: not a sentencepiece model: %s", what, st.ToString ().c_str ());
        delete tok;
        return nullptr;
    }
    return tok;
}

extern "C" VlmTokenizer *vlm_tokenizer_load (const char *path, GError **error)
{
    if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                     "%s: missing (the sentencepiece tokenizer of the checkpoint)",
                     path);
        return nullptr;
    }
    VlmTokenizer *tok = new VlmTokenizer;
    return finish (tok, tok->sp.Load (path), path, error);
}

extern "C" VlmTokenizer *vlm_tokenizer_load_from_bytes (const void *data, gsize size,
                                                        GError **error)
{
    VlmTokenizer *tok = new VlmTokenizer;
    std::string bytes (static_cast<const char *> (data), size);
    return finish (tok, tok->sp.LoadFromSerializedProto (bytes), "tokenizer", error);
}

extern "C" void vlm_tokenizer_free (VlmTokenizer *tok)
{
    delete tok;
}

extern "C" guint vlm_tokenizer_n_pieces (const VlmTokenizer *tok)
{
    return tok->sp.GetPieceSize ();
}

extern "C" guint32 *vlm_tokenizer_encode (const VlmTokenizer *tok, const char *text,
                                          guint *n_ids)
{
    std::vector<int> ids;
    tok->sp.Encode (text, &ids).IgnoreError ();
    guint32 *out = g_new (guint32, ids.size () + 1);
    for (size_t i = 0; i < ids.size (); i++)
        out[i] = ids[i];
    *n_ids = ids.size ();
    return out;
}

extern "C" char *vlm_tokenizer_decode (const VlmTokenizer *tok, const guint32 *ids,
                                       guint n_ids)
{
    std::vector<int> keep;
    guint32 n = tok->sp.GetPieceSize ();
    /* Compared unsigned: an id of 2^31 or more is no negative index. */
    for (guint i = 0; i < n_ids; i++)
        if (ids[i] < n && !tok->sp.IsControl (ids[i]))
            keep.push_back (ids[i]);
    std::string text;
    tok->sp.Decode (keep, &text).IgnoreError ();
    return g_strdup (text.c_str ());
}

extern "C" int vlm_tokenizer_byte_value (const VlmTokenizer *tok, guint32 id)
{
    if (id >= (guint32) tok->sp.GetPieceSize () || !tok->sp.IsByte (id))
        return -1;
    const std::string &piece = tok->sp.IdToPiece (id); // "<0xAB>"
    if (piece.size () != 6)
        return -1;
    return (int) g_ascii_strtoull (piece.c_str () + 3, nullptr, 16);
}
