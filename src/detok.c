/* detok.c - streaming-safe detokenization on top of the sentencepiece shim:
 * byte-fallback pieces of a multi-byte character are held back until the
 * character is complete, so text shown while generating is never broken. */
#include "tokenizer.h"

/* Length of the UTF-8 sequence a lead byte starts, 0 if not a lead byte. */
static int utf8_len (int b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

char *vlm_tokenizer_decode_stable (const VlmTokenizer *tok, const guint32 *ids,
                                   guint n_ids)
{
    /* Find the trailing run of byte pieces (at most 3 can be pending). */
    guint start = n_ids;
    while (start > 0 && n_ids - start < 4 &&
           vlm_tokenizer_byte_value (tok, ids[start - 1]) >= 0)
        start--;
    /* Walk the run: if it ends inside a character, hold that character back. */
    guint hold = n_ids;
    for (guint i = start; i < n_ids;) {
        int len = utf8_len (vlm_tokenizer_byte_value (tok, ids[i]));
        if (len == 0) {
            i++;
            continue;
        }
        guint j = i + 1;
        while (j < n_ids && j < i + len &&
               (vlm_tokenizer_byte_value (tok, ids[j]) & 0xc0) == 0x80)
            j++;
        if (j == n_ids && j < i + len) {
            hold = i;
            break;
        }
        i = j;
    }
    return vlm_tokenizer_decode (tok, ids, hold);
}
