/* matrix.h - weight matrices in the format they are kept in memory, and
 * the products with them. A VlmMatrix is [rows, cols] = [out, in]; y = W x.
 *
 * Float formats (F32, BF16, F16) point straight into the mapped checkpoint.
 * Quantized formats (Q8, Q4) are MLX's affine group quantization: per row,
 * groups of `group` consecutive weights share a scale s and an offset b,
 * w = s * q + b, q unsigned 8 or 4 bits (Q4: byte k of a row holds code 2k
 * in its low nibble and 2k+1 in its high one). A row holds
 * n_groups * group codes; codes past cols are zero padding.
 * Quantized at load, rows longer than VLM_PIECE_AFTER columns are kept in
 * pieces of VLM_PIECE_COLS columns, each piece a row-major matrix of its
 * own (codes one piece after another, then scales, then offsets,
 * likewise): a matrix-vector product goes through the pieces in turn,
 * reading memory in order while the piece of x it needs stays in the L1
 * cache. */
#ifndef VLM_MATRIX_H
#define VLM_MATRIX_H

#include <glib.h>

typedef struct _VlmThreadPool VlmThreadPool;

typedef enum {
    VLM_MAT_F32,
    VLM_MAT_BF16,
    VLM_MAT_F16,
    VLM_MAT_Q8,
    VLM_MAT_Q4,
} VlmMatType;

typedef struct {
    VlmMatType type;
    int rows, cols;
    const void *data;         /* values, or codes */
    gsize row_bytes;          /* bytes from one row to the next (in a piece) */
    /* quantized only */
    int group, n_groups;      /* group is a multiple of 32 */
    int piece_cols;           /* 0: not in pieces; else VLM_PIECE_COLS */
    /* Products of several tokens may use the CPU's faster dot products at
     * lower precision of the activations: bf16 (8 significant bits) for
     * BF16 weights with VLM_WEIGHTS_BF16_DOT; 16-bit integers for Q8/Q4
     * weights quantized at load, whose own quantization error is some 100
     * times larger (MLX checkpoints, exact to their weights, keep float32) */
    gboolean fast_dot;
    const guint16 *scales;    /* f16 [rows, n_groups] (in a piece) */
    const guint16 *biases;    /* f16 [rows, n_groups] (in a piece) */
} VlmMatrix;

/* Pieces of 2048: rows of exactly 4096 bytes (Q8 pieces of 4096) read
 * slower. Rows up to 4096 columns stay whole (PaliGemma 2's 2304, say). */
#define VLM_PIECE_COLS 2048
#define VLM_PIECE_AFTER 4096

const char *vlm_mat_type_name (VlmMatType t);
/* Bytes the matrix occupies in memory. */
gsize vlm_matrix_bytes (const VlmMatrix *m);

/* y[M, rows] = x[M, cols] . W^T (+ b), the rows of W split among the
 * pool's threads. M = 1 runs the row kernels (GEMV); M > 1 runs the CPU's
 * GEMM kernel on the weights as stored where it has one (AVX-512; with
 * fast_dot, the CPU's faster dot products: vlm_gemm_fast_dot), else single-threaded
 * cblas_sgemm on float32 panels of each thread's rows. One threading
 * layer: OpenBLAS is kept to one thread (vlm_session_new). */
void vlm_matrix_mul (VlmThreadPool *pool, const VlmMatrix *w, const float *x,
                     int M, const float *b, float *y);
/* The threads of a matrix-vector product (M = 1) split the rows in
 * multiples of this. */
#define VLM_GEMV_ALIGN 16
/* y[r0 .. r1) of W x on this thread, each y[r] the same float as
 * vlm_matrix_mul's M = 1 gives when r0 is a multiple of VLM_GEMV_ALIGN and
 * r1 is one too or rows (row kernels may take rows a few at a time). */
void vlm_matrix_mul_rows (const VlmMatrix *w, const float *x, float *y, int r0, int r1);
/* One product y[M, w->rows] = x . W^T (+ b). */
typedef struct {
    const VlmMatrix *w;
    const float *b;   /* bias or NULL */
    float *y;
} VlmProduct;

/* Several products of the same x [M, cols] (q, k and v; gate and up): x is
 * packed or prepared once, and the threads split the rows of all of them in
 * one hand-off. Matrices of different formats are done one at a time. */
void vlm_matrix_mul_many (VlmThreadPool *pool, const VlmProduct *p, int n,
                          const float *x, int M);
/* How many pieces W is kept in (1 if not in pieces), and piece p: columns
 * [p * piece_cols, ...) as a matrix of its own (W itself if not in pieces). */
int vlm_matrix_n_pieces (const VlmMatrix *w);
VlmMatrix vlm_matrix_piece (const VlmMatrix *w, int p);
/* W[r, j0 .. j1) as float32 by the CPU's widening kernel (j0 a multiple of
 * 16), across pieces. */
void vlm_matrix_widen (const VlmMatrix *w, int r, int j0, int j1, float *out);
/* Rows [r0, r0 + n) of W, columns [j0, j1), as float32 to out (rows j1 - j0
 * apart): a GEMM's panel. */
void vlm_matrix_widen_rows (const VlmMatrix *w, int r0, int n, int j0, int j1, float *out);
/* One row of W as float32 (an embedding lookup), by the CPU's widening
 * kernel. */
void vlm_matrix_get_row (const VlmMatrix *w, int row, float *out);
/* W[row, col] as float32. */
float vlm_matrix_get_element (const VlmMatrix *w, int row, int col);

/* A Q8/Q4 matrix [rows, cols] with groups of 32, to be filled by
 * vlm_matrix_quantize_rows. Returns storage the caller frees with g_free
 * (codes, scales, biases in one block); *m describes it. */
gpointer vlm_matrix_quantized_new (int rows, int cols, VlmMatType type,
                                   VlmMatrix *m);
/* A copy in pieces of quantized src if its rows are longer than
 * VLM_PIECE_AFTER (src as it is stored, e.g. an MLX checkpoint): storage the
 * caller frees with g_free, *dst describing it; else NULL. */
gpointer vlm_matrix_to_pieces (const VlmMatrix *src, VlmMatrix *dst);
/* Quantize float32 rows src[n, cols] into rows r0 .. r0 + n of m. */
void vlm_matrix_quantize_rows (VlmMatrix *m, int r0, int n, const float *src);
/* The same from rows r0 .. r0 + n of float matrix src, widened a row at a
 * time by the threads that quantize them. */
void vlm_matrix_quantize_from (VlmMatrix *m, int r0, int n, const VlmMatrix *src);

#endif
