/* gemm_avx512bf16.c - y = x . W^T for BF16 weights as stored with
 * activations rounded to bf16: AVX-512 BF16 dot products (vdpbf16ps, two
 * bf16 products per float32 lane, float32 sums). The weight format
 * "bf16-dot" asks for it (vlm.h): about twice the float32 GEMM's rate, at
 * bfloat16's precision (8 significant bits) for the activations, as
 * llama.cpp's bf16 path.
 * Built with -mavx512bf16, called only when the CPU has it (runtime.c).
 *
 * The activations are packed once per product: per tile of 16 or 32
 * tokens, per pair of columns, the tile's bf16 pairs (one or two vectors).
 * The kernel broadcasts a pair of weights (4 bytes of a row, read where it
 * is stored) against them: 12 rows x 2 vectors of accumulators. Results
 * build up as y^T in a block buffer, written to y at the end. */
#include "kernels.h"
#include "threadpool.h"

#include <immintrin.h>
#include <string.h>

#define NR 12          /* weight rows per kernel call */
#define ROW_BLOCK 240  /* weight rows per y^T block (a multiple of NR) */
#define PAIR_BLOCK 256 /* column pairs per pass: 12 rows x 1 KB in L1 */

typedef struct {
    const float *x;
    int M, K, n_tiles;
    guint32 *data; /* tile t: [K/2][32] pairs from t * 16 * K */
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
    p->data = g_malloc0 (sizeof (guint32) * 16 * K * p->n_tiles);
    return p;
}

/* Rounds to nearest even, as vcvtne2ps2bf16 (which keeps NaNs NaN). */
static guint32 bf16_bits (float v)
{
    guint32 u;
    memcpy (&u, &v, 4);
    if ((u & 0x7fffffff) > 0x7f800000)
        return (u >> 16) | 0x40;
    return (u + 0x7fff + ((u >> 16) & 1)) >> 16;
}

static void pack_part (gpointer packed, int ith, int nth)
{
    PackedX *p = packed;
    int t0, t1, K = p->K, P = K / 2;
    guint32 *pairs = g_new (guint32, P + 16);
    vlm_split (p->n_tiles, ith, nth, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        int width = 16 * tile_halves (p, t);
        guint32 *d = p->data + (gsize) t * 16 * K;
        for (int m = 32 * t; m < MIN (p->M, 32 * t + 32); m++) {
            const float *row = p->x + (gsize) m * K;
            int k = 0;
            for (; k + 32 <= K; k += 32) /* a's 16 in the low half: pairs in order */
                _mm512_storeu_si512 (pairs + k / 2, (__m512i) _mm512_cvtne2ps_pbh (
                    _mm512_loadu_ps (row + k + 16), _mm512_loadu_ps (row + k)));
            for (; k < K; k += 2)
                pairs[k / 2] = bf16_bits (row[k]) | bf16_bits (row[k + 1]) << 16;
            for (int q = 0; q < P; q++)
                d[(gsize) q * width + m - 32 * t] = pairs[q];
        }
    }
    g_free (pairs);
}

static void packed_free (gpointer packed)
{
    PackedX *p = packed;
    g_free (p->data);
    g_free (p);
}

/* yt rows i < nr, token vectors h < halves += W rows . x pairs [0, np).
 * Specialised by the compiler for each (nr, halves). */
static inline __attribute__ ((always_inline)) void
tile_kernel (const guint32 *a, const guint8 *w, gsize row_bytes, int np, float *yt, int ld,
             const int nr, const int halves)
{
    __m512 acc[NR][2];
#pragma GCC unroll 12
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++)
            acc[i][h] = _mm512_loadu_ps (yt + (gsize) i * ld + 16 * h);
    for (int q = 0; q < np; q++) {
        __m512bh x0 = (__m512bh) _mm512_loadu_si512 (a), x1 = x0;
        if (halves == 2)
            x1 = (__m512bh) _mm512_loadu_si512 (a + 16);
#pragma GCC unroll 12
        for (int i = 0; i < nr; i++) {
            guint32 pair;
            memcpy (&pair, w + (gsize) i * row_bytes + 4 * (gsize) q, 4);
            __m512bh wb = (__m512bh) _mm512_set1_epi32 ((int) pair);
            acc[i][0] = _mm512_dpbf16_ps (acc[i][0], x0, wb);
            if (halves == 2)
                acc[i][1] = _mm512_dpbf16_ps (acc[i][1], x1, wb);
        }
        a += 16 * halves;
    }
#pragma GCC unroll 12
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++)
            _mm512_storeu_ps (yt + (gsize) i * ld + 16 * h, acc[i][h]);
}

static void tile_any (const guint32 *a, const guint8 *w, gsize row_bytes, int np, float *yt,
                      int ld, int nr, int halves)
{
#define CASE(N)                                                                \
    case N:                                                                    \
        if (halves == 2)                                                       \
            tile_kernel (a, w, row_bytes, np, yt, ld, N, 2);                   \
        else                                                                   \
            tile_kernel (a, w, row_bytes, np, yt, ld, N, 1);                   \
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
    int M = p->M, P = p->K / 2, N = w->rows, ld = 32 * p->n_tiles;
    float *yt = g_malloc (sizeof (float) * MIN (ROW_BLOCK, r1 - r0) * ld);
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * nb * ld);
        for (int q0 = 0; q0 < P; q0 += PAIR_BLOCK) {
            int np = MIN (PAIR_BLOCK, P - q0);
            for (int t = 0; t < p->n_tiles; t++) {
                int halves = tile_halves (p, t);
                const guint32 *a = p->data + (gsize) t * 16 * p->K + (gsize) q0 * 16 * halves;
                for (int i = 0; i < nb; i += NR)
                    tile_any (a, (const guint8 *) w->data + (gsize) (b0 + i) * w->row_bytes +
                                     4 * (gsize) q0,
                              w->row_bytes, np, yt + (gsize) i * ld + 32 * t, ld,
                              MIN (NR, nb - i), halves);
            }
        }
        for (int m = 0; m < M; m++)
            for (int i = 0; i < nb; i++)
                y[(gsize) m * N + b0 + i] = yt[(gsize) i * ld + m];
    }
    g_free (yt);
}

const VlmGemm vlm_gemm_avx512bf16 = { pack_new, pack_part, rows, packed_free };
