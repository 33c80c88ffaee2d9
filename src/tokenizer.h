/* tokenizer.h - C API of the sentencepiece shim (tokenizer_spm.cc), plus
 * incremental detokenization that never splits a UTF-8 character. */
#ifndef VLM_TOKENIZER_H
#define VLM_TOKENIZER_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VlmTokenizer VlmTokenizer;

VlmTokenizer *vlm_tokenizer_load (const char *path, GError **error);
/* From a serialized model held in memory (for fuzzing and tests). */
VlmTokenizer *vlm_tokenizer_load_from_bytes (const void *data, gsize size,
                                             GError **error);
void vlm_tokenizer_free (VlmTokenizer *tok);
guint vlm_tokenizer_n_pieces (const VlmTokenizer *tok);
/* ids of text, as sp.EncodeAsIds (no bos/eos added). g_free the result. */
guint32 *vlm_tokenizer_encode (const VlmTokenizer *tok, const char *text,
                               guint *n_ids);
/* Text of ids: ids outside the vocabulary and control pieces are dropped,
 * the rest decoded as sp.DecodeIds. g_free the result. */
char *vlm_tokenizer_decode (const VlmTokenizer *tok, const guint32 *ids,
                            guint n_ids);
/* 0..255 if id is a byte-fallback piece <0xNN>, else -1. */
int vlm_tokenizer_byte_value (const VlmTokenizer *tok, guint32 id);

/* Text of ids that is safe to show while generating: the decoded text minus
 * a trailing run of byte pieces that is still an incomplete UTF-8 prefix. */
char *vlm_tokenizer_decode_stable (const VlmTokenizer *tok, const guint32 *ids,
                                   guint n_ids);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmTokenizer, vlm_tokenizer_free)

G_END_DECLS

#endif
