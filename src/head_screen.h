/* head_screen.h - the greedy next token without reading the whole output
 * head. Decoding reads every weight once per token, and PaliGemma's head
 * (257216 x 2048, tied to the embeddings) is a fifth of that in BF16.
 * A screen keeps an 8-bit copy of a float head and, per row, a bound on
 * how far that copy's product can be from the head's own: the copy's
 * logits, widened by their bounds, leave a few rows that can still be the
 * largest, and only those rows of the head are multiplied. The token is
 * the one the whole product and vlm_sampler_argmax would give, bit for
 * bit: the bounds are rigorous (head_screen.c derives them), the rows
 * left are multiplied exactly as vlm_matrix_mul multiplies them, and
 * whenever the screen cannot decide cheaply the whole product is made. */
#ifndef VLM_HEAD_SCREEN_H
#define VLM_HEAD_SCREEN_H

#include "matrix.h"
#include "threadpool.h"

typedef struct _VlmHeadScreen VlmHeadScreen;

/* A screen for head w [vocab, hidden]; NULL unless w is a float matrix
 * (quantized heads are already about as small as the copy) with finite
 * weights. Built on the threads of pool (may be NULL); w's rows are all
 * read. */
VlmHeadScreen *vlm_head_screen_new (const VlmMatrix *w, VlmThreadPool *pool);
void vlm_head_screen_free (VlmHeadScreen *s);
/* Bytes one screening of head w reads (the copy and its bounds); 0 for a
 * head that gets no screen by its type. */
gsize vlm_head_screen_bytes (const VlmMatrix *w);

/* The 8-bit copy, and its bound for row r: its row kernel's product with
 * any finite x is within bound * ||x||_2 of W's (tests check it). */
const VlmMatrix *vlm_head_screen_copy (const VlmHeadScreen *s);
float vlm_head_screen_bound (const VlmHeadScreen *s, int r);

/* The first r with the largest y[r] of y = W x, soft-capped by
 * softcap (c tanh (y / c); 0: none) as vlm_ops_softcap does; s may be
 * NULL (no screen: the whole product). If n_exact
 * is given, the number of rows multiplied exactly goes there (all of
 * them when the screen fell back to the whole product). */
guint32 vlm_head_screen_argmax (const VlmHeadScreen *s, const VlmMatrix *w, VlmThreadPool *pool,
                                const float *x, float softcap, int *n_exact);

#endif
