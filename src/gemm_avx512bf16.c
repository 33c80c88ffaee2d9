/* gemm_avx512bf16.c - y = x . W^T for BF16 weights as stored, with AVX-512
 * BF16 dot products (vdpbf16ps: two bf16 products per float32 lane).
 * Built with -mavx512bf16, called only when the CPU has it (runtime.c).
 *
 * Precision: each activation is split into three bf16 parts, x = hi + mid
 * + lo (24 bits of mantissa, float32's), each multiplied with the exact
 * weight; products of bf16 are exact in float32, and the hi products sum
 * in accumulators of their own, so results are as close to float64 as a
 * float32 GEMM's (two parts were measured 10x worse on the fixtures).
 * Three dot products per pair of weights still beat 8-wide float32 FMA.
 *
 * Layout: the weights are not repacked. The kernel broadcasts one pair of
 * weights (4 bytes of a row) against 16 tokens' pairs of activations, so
 * the activations are packed once per product: per tile of 16 or 32
 * tokens, per pair of columns, the hi parts then the lo parts of every
 * token. Results accumulate as y^T (a weight row's outputs for the tile's
 * tokens are one vector) in a block buffer, written to y at the end. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define NR 6          /* weight rows per kernel call: 6 x 2 halves x hi/lo accumulators */
#define ROW_BLOCK 128 /* weight rows accumulated in one y^T block */
#define PAIR_BLOCK 256 /* column pairs per pass: 128 rows x 1 KB of W in L2 */

typedef struct {
    int M, K, n_tiles;
    int *tile_m0, *tile_halves; /* tile t: tokens m0 .. m0 + 16 * halves */
    gsize *tile_offset;         /* in guint32, of tile t's pairs */
    guint32 *data;
} VlmPackedX;

static inline __m512i to_bf16_pairs (__m512 a, __m512 b)
{
    return (__m512i) _mm512_cvtne2ps_pbh (b, a); /* a's 16 in the low half */
}

/* The bf16 pairs of (a, b) rounded to nearest even; a and b become what is
 * left. */
static inline __m512i split_step (__m512 *a, __m512 *b)
{
    __m512i h = to_bf16_pairs (*a, *b);
    __m512 ha = _mm512_castsi512_ps (_mm512_slli_epi32 (_mm512_cvtepu16_epi32 (
        _mm512_castsi512_si256 (h)), 16));
    __m512 hb = _mm512_castsi512_ps (_mm512_slli_epi32 (_mm512_cvtepu16_epi32 (
        _mm512_extracti64x4_epi64 (h, 1)), 16));
    *a = _mm512_sub_ps (*a, ha);
    *b = _mm512_sub_ps (*b, hb);
    return h;
}

/* Rounds to nearest even, as _mm512_cvtne2ps_pbh. */
static inline float round_bf16 (float v)
{
    guint32 u;
    memcpy (&u, &v, 4);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy (&v, &u, 4);
    return v;
}

static gpointer pack (const float *x, int M, int K)
{
    VlmPackedX *p = g_new0 (VlmPackedX, 1);
    int P = K / 2;
    p->M = M;
    p->K = K;
    p->n_tiles = (M + 31) / 32;
    p->tile_m0 = g_new (int, p->n_tiles);
    p->tile_halves = g_new (int, p->n_tiles);
    p->tile_offset = g_new (gsize, p->n_tiles);
    gsize off = 0;
    for (int t = 0; t < p->n_tiles; t++) {
        p->tile_m0[t] = 32 * t;
        p->tile_halves[t] = M - 32 * t > 16 ? 2 : 1;
        p->tile_offset[t] = off;
        off += (gsize) P * 48 * p->tile_halves[t];
    }
    p->data = g_malloc0 (off * sizeof (guint32));
    guint32 *hi = g_new (guint32, P + 16), *mid = g_new (guint32, P + 16),
            *lo = g_new (guint32, P + 16);
    for (int m = 0; m < M; m++) {
        const float *row = x + (gsize) m * K;
        int k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512 a = _mm512_loadu_ps (row + k), b = _mm512_loadu_ps (row + k + 16);
            __m512i h = split_step (&a, &b), m = split_step (&a, &b);
            _mm512_storeu_si512 (hi + k / 2, h);
            _mm512_storeu_si512 (mid + k / 2, m);
            _mm512_storeu_si512 (lo + k / 2, to_bf16_pairs (a, b));
        }
        for (; k < K; k += 2) {
            guint32 *parts[3] = { hi, mid, lo };
            float v[2] = { row[k], row[k + 1] };
            for (int j = 0; j < 3; j++) {
                guint32 u[2];
                for (int i = 0; i < 2; i++) {
                    float r = round_bf16 (v[i]);
                    memcpy (&u[i], &r, 4);
                    v[i] -= r;
                }
                parts[j][k / 2] = (u[0] >> 16) | (u[1] & 0xffff0000u);
            }
        }
        int t = m / 32, lane = m % 32, halves = p->tile_halves[t];
        int h = lane / 16;
        guint32 *dst = p->data + p->tile_offset[t] + (gsize) h * 48 + lane % 16;
        gsize step = (gsize) 48 * halves;
        for (int q = 0; q < P; q++) {
            dst[q * step] = hi[q];
            dst[q * step + 16] = mid[q];
            dst[q * step + 32] = lo[q];
        }
    }
    g_free (hi);
    g_free (mid);
    g_free (lo);
    return p;
}

static void packed_free (gpointer packed)
{
    VlmPackedX *p = packed;
    g_free (p->tile_m0);
    g_free (p->tile_halves);
    g_free (p->tile_offset);
    g_free (p->data);
    g_free (p);
}

/* y^T rows i < nr, token halves h: += W rows . x pairs [0, np). The hi and
 * lo products go to separate accumulators (the lo sums then round 2^8
 * times finer), added at the end. Specialised by the compiler for each
 * (nr, halves). */
static inline __attribute__ ((always_inline)) void
tile_kernel (const guint32 *a, const guint8 *w, gsize row_bytes, int np, float *yt, int ld,
             const int nr, const int halves)
{
    __m512 acc_hi[NR][2], acc_lo[NR][2];
#pragma GCC unroll 6
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++) {
            acc_hi[i][h] = _mm512_loadu_ps (yt + (gsize) i * ld + 16 * h);
            acc_lo[i][h] = _mm512_setzero_ps ();
        }
    for (int q = 0; q < np; q++) {
        __m512bh xh0 = (__m512bh) _mm512_loadu_si512 (a),
                 xm0 = (__m512bh) _mm512_loadu_si512 (a + 16),
                 xl0 = (__m512bh) _mm512_loadu_si512 (a + 32);
        __m512bh xh1 = xh0, xm1 = xm0, xl1 = xl0;
        if (halves == 2) {
            xh1 = (__m512bh) _mm512_loadu_si512 (a + 48);
            xm1 = (__m512bh) _mm512_loadu_si512 (a + 64);
            xl1 = (__m512bh) _mm512_loadu_si512 (a + 80);
        }
#pragma GCC unroll 6
        for (int i = 0; i < nr; i++) {
            guint32 pair;
            memcpy (&pair, w + (gsize) i * row_bytes + 4 * (gsize) q, 4);
            __m512bh wb = (__m512bh) _mm512_set1_epi32 ((int) pair);
            acc_hi[i][0] = _mm512_dpbf16_ps (acc_hi[i][0], xh0, wb);
            acc_lo[i][0] = _mm512_dpbf16_ps (acc_lo[i][0], xm0, wb);
            acc_lo[i][0] = _mm512_dpbf16_ps (acc_lo[i][0], xl0, wb);
            if (halves == 2) {
                acc_hi[i][1] = _mm512_dpbf16_ps (acc_hi[i][1], xh1, wb);
                acc_lo[i][1] = _mm512_dpbf16_ps (acc_lo[i][1], xm1, wb);
                acc_lo[i][1] = _mm512_dpbf16_ps (acc_lo[i][1], xl1, wb);
            }
        }
        a += 48 * halves;
    }
#pragma GCC unroll 6
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++)
            _mm512_storeu_ps (yt + (gsize) i * ld + 16 * h,
                              _mm512_add_ps (acc_hi[i][h], acc_lo[i][h]));
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
    }
#undef CASE
}

static void rows (const VlmMatrix *w, gconstpointer packed, float *y, int r0, int r1)
{
    const VlmPackedX *p = packed;
    int M = p->M, P = p->K / 2, N = w->rows;
    int ld = 32 * p->n_tiles; /* y^T block: [ROW_BLOCK][ld] */
    float *yt = g_malloc (sizeof (float) * ROW_BLOCK * ld);
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * ROW_BLOCK * ld);
        for (int q0 = 0; q0 < P; q0 += PAIR_BLOCK) {
            int np = MIN (PAIR_BLOCK, P - q0);
            for (int t = 0; t < p->n_tiles; t++) {
                int halves = p->tile_halves[t];
                const guint32 *a = p->data + p->tile_offset[t] + (gsize) q0 * 48 * halves;
                for (int i = 0; i < nb; i += NR) {
                    const guint8 *wr = (const guint8 *) w->data +
                                       (gsize) (b0 + i) * w->row_bytes + 4 * (gsize) q0;
                    tile_any (a, wr, w->row_bytes, np, yt + (gsize) i * ld + 32 * t, ld,
                              MIN (NR, nb - i), halves);
                }
            }
        }
        for (int m = 0; m < M; m++)
            for (int i = 0; i < nb; i++)
                y[(gsize) m * N + b0 + i] = yt[(gsize) i * ld + m];
    }
    g_free (yt);
}

const VlmGemm vlm_gemm_bf16_avx512bf16 = { pack, rows, packed_free };
