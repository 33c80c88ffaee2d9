/* gemm_avx512.c - y = x . W^T for weights of any stored type, float32
 * arithmetic with 16-wide FMAs. Built with -mavx512f..., called only when
 * the CPU has them (runtime.c).
 *
 * The activations are packed once per product: per tile of 16 or 32
 * tokens, per column, the tile's values (one or two vectors). Each thread
 * widens a block of its weight rows, a block of columns at a time, to a
 * float32 panel (in L2), and the kernel broadcasts one weight against the
 * tile's 32 tokens: 12 rows x 2 vectors of accumulators. Results build up
 * as y^T (a row's outputs for a tile's tokens are one vector) in a block
 * buffer, written to y at the end. Float32 weights are used in place. */
#include "kernels.h"
#include "threadpool.h"

#include <immintrin.h>
#include <string.h>

#define NR 12          /* weight rows per kernel call */
#define ROW_BLOCK 240  /* weight rows per y^T block (a multiple of NR) */
#define COL_BLOCK 512  /* columns per panel: 240 rows x 2 KB (float32) in L2 */

typedef struct {
    const float *x;
    int M, K, n_tiles;
    float *data; /* tile t: [K][32] from t * 32 * K (the tail tile [K][16] when M allows) */
} PackedX;

static int tile_halves (const PackedX *p, int t)
{
    return p->M - 32 * t > 16 ? 2 : 1;
}

static gpointer pack_new (const float *x, int M, int K)
{
    PackedX *p = g_new (PackedX, 1);
    p->x = x;
    p->M = M;
    p->K = K;
    p->n_tiles = (M + 31) / 32;
    p->data = g_malloc0 (sizeof (float) * 32 * K * p->n_tiles);
    return p;
}

static void pack_part (gpointer packed, int ith, int nth)
{
    PackedX *p = packed;
    int t0, t1, K = p->K;
    vlm_split (p->n_tiles, ith, nth, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        int width = 16 * tile_halves (p, t);
        float *d = p->data + (gsize) t * 32 * K;
        for (int m = 32 * t; m < MIN (p->M, 32 * t + 32); m++) {
            const float *row = p->x + (gsize) m * K;
            for (int k = 0; k < K; k++)
                d[(gsize) k * width + m - 32 * t] = row[k];
        }
    }
}

static void packed_free (gpointer packed)
{
    PackedX *p = packed;
    g_free (p->data);
    g_free (p);
}

/* yt rows i < nr, token vectors h < halves += panel rows . x over kc
 * columns. Specialised by the compiler for each (nr, halves). */
static inline __attribute__ ((always_inline)) void
tile_kernel (const float *a, const float *w, gsize ldw, int kc, float *yt, int ld,
             const int nr, const int halves)
{
    __m512 acc[NR][2];
#pragma GCC unroll 12
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++)
            acc[i][h] = _mm512_loadu_ps (yt + (gsize) i * ld + 16 * h);
    for (int k = 0; k < kc; k++) {
        __m512 x0 = _mm512_loadu_ps (a), x1 = x0;
        if (halves == 2)
            x1 = _mm512_loadu_ps (a + 16);
#pragma GCC unroll 12
        for (int i = 0; i < nr; i++) {
            __m512 wb = _mm512_set1_ps (w[(gsize) i * ldw + k]);
            acc[i][0] = _mm512_fmadd_ps (x0, wb, acc[i][0]);
            if (halves == 2)
                acc[i][1] = _mm512_fmadd_ps (x1, wb, acc[i][1]);
        }
        a += 16 * halves;
    }
#pragma GCC unroll 12
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++)
            _mm512_storeu_ps (yt + (gsize) i * ld + 16 * h, acc[i][h]);
}

static void tile_any (const float *a, const float *w, gsize ldw, int kc, float *yt, int ld,
                      int nr, int halves)
{
#define CASE(N)                                                                \
    case N:                                                                    \
        if (halves == 2)                                                       \
            tile_kernel (a, w, ldw, kc, yt, ld, N, 2);                         \
        else                                                                   \
            tile_kernel (a, w, ldw, kc, yt, ld, N, 1);                         \
        break;
    switch (nr) {
    CASE (1) CASE (2) CASE (3) CASE (4) CASE (5) CASE (6)
    CASE (7) CASE (8) CASE (9) CASE (10) CASE (11) CASE (12)
    }
#undef CASE
}

static void rows (const VlmMatrix *w, gconstpointer packed, float *y, int r0, int r1)
{
    const PackedX *p = packed;
    int M = p->M, K = p->K, N = w->rows, ld = 32 * p->n_tiles;
    int max_rows = MIN (ROW_BLOCK, r1 - r0), max_cols = MIN (COL_BLOCK, K);
    float *yt = g_malloc (sizeof (float) * max_rows * ld);
    float *panel = w->type == VLM_MAT_F32 ? NULL : g_malloc (sizeof (float) * max_rows * max_cols);
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * nb * ld);
        for (int k0 = 0; k0 < K; k0 += COL_BLOCK) {
            int kc = MIN (COL_BLOCK, K - k0);
            const float *wp;
            gsize ldw;
            if (panel) {
                for (int i = 0; i < nb; i++)
                    vlm_matrix_widen (w, b0 + i, k0, k0 + kc, panel + (gsize) i * kc);
                wp = panel;
                ldw = kc;
            } else {
                ldw = w->row_bytes / sizeof (float);
                wp = (const float *) w->data + (gsize) b0 * ldw + k0;
            }
            for (int t = 0; t < p->n_tiles; t++) {
                int halves = tile_halves (p, t);
                const float *a = p->data + (gsize) t * 32 * K + (gsize) k0 * 16 * halves;
                for (int i = 0; i < nb; i += NR)
                    tile_any (a, wp + (gsize) i * ldw, ldw, kc, yt + (gsize) i * ld + 32 * t, ld,
                              MIN (NR, nb - i), halves);
            }
        }
        for (int m = 0; m < M; m++)
            for (int i = 0; i < nb; i++)
                y[(gsize) m * N + b0 + i] = yt[(gsize) i * ld + m];
    }
    g_free (panel);
    g_free (yt);
}

const VlmGemm vlm_gemm_avx512 = { pack_new, pack_part, rows, packed_free };
