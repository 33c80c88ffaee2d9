/* gemm_avx2.c - y = x . W^T with AVX2, for CPUs without AVX-512, in
 * float32 or integer arithmetic sharing one blocking. Built with -mavx2
 * -mfma -mf16c, called only when the CPU has them (runtime.c).
 *
 * float32 (vlm_gemm_avx2), for weights of any stored type: each thread
 * widens a block of its weight rows, a block of columns at a time, to a
 * float32 panel in L2 (float32 weights are used in place), and the kernel
 * broadcasts one weight against a tile's 16 tokens: 6 rows x 2 vectors of
 * FMA sums. Through cblas_sgemm instead, the weights went through memory
 * as a 4 MB float32 panel and were packed again, and x was packed again
 * for every panel.
 *
 * Integer, for Q8/Q4 weights quantized at load (fast_dot): x is quantized per token and subgroup of 32 columns, the codes summed
 * exactly in integers per subgroup, then y += s dx sum + o sum(x) in
 * float32 (s, o the weights' group scale and offset, dx x's step):
 *
 * - Q8 (vlm_gemm_avx2int16): x to int16 (16 bits, as the AVX-512 GEMM and
 *   the row kernels), the codes widened to int16, vpmaddwd: two products
 *   per int32 lane and an add.
 * - Q4 (vlm_gemm_avx2int8): x to int8, the codes widened to bytes,
 *   vpmaddubsw: two products per int16 lane, a subgroup's eight steps of
 *   four columns summed in int16 (at most 8 x 2 x 15 x 127 = 30480), then
 *   into int32 by one vpmaddwd. x's rounding error (a step of max|x| / 127
 *   per subgroup, about 0.6% of a value rms) is a thirteenth of what 4-bit
 *   codes put into every weight (a step of a 32-weight range / 15, about
 *   8%): on the fixtures' random nets it moves the prefill logits by
 *   2.6e-2 to 1.7e-1 of their largest against the Q4 weights' own 0.38 to
 *   1.06, and the greedy tokens kept are the same as with float32
 *   products. 8-bit weights' own error (0.45%) is below x's, hence int16
 *   there.
 *
 * Float32 FMAs do 16 products a cycle here; these kernels' integer sums
 * 24 (int16) and up to 32 (int8), with one float32 update per subgroup.
 *
 * Tiles of 16 tokens (two vectors of 8), packed once per product as a
 * token's 4 bytes per step (a float32 value, int16 pairs or int8 quads),
 * [steps][16]; each thread widens a block of its rows' codes and the
 * integer kernel broadcasts 4 bytes of a row against the tile's 16
 * tokens: 3 rows x 2 vectors of integer sums, and as many float32 sums of
 * y^T updated once a subgroup, all in registers (with 4 rows and the
 * float sums in the block buffer: int8 one thread 185-189 against 198-215
 * GFLOP/s). */
#include "avx2_inline.h"
#include "kernels.h"
#include "threadpool.h"

#include <immintrin.h>
#include <string.h>

#define TILE 16        /* tokens per tile: two vectors of 8 */
#define NR 3           /* weight rows per integer kernel call */
#define NR_F32 6       /* weight rows per float32 kernel call */
#define ROW_BLOCK 240  /* weight rows per y^T block (a multiple of NR and NR_F32) */
#define COL_BLOCK 512  /* columns per panel: 240 rows x 2 KB (float32) in L2 */

_Static_assert (ROW_BLOCK % NR == 0 && ROW_BLOCK % NR_F32 == 0, "a row block is whole kernel calls");
_Static_assert (COL_BLOCK % 32 == 0, "a column block is whole subgroups");

typedef enum { ARITH_F32, ARITH_INT16, ARITH_INT8 } Arith;

typedef struct {
    const float *x;         /* x[m, k] at x[m * ldx + k], or x[k * ldx + m] if xt */
    gsize ldx;
    gboolean xt;            /* float32 only */
    int M, K, Kp, n_tiles;  /* Kp: K in whole subgroups of 32 (integers), or K */
    Arith arith;
    int per_step;           /* columns per 4 bytes: 1 (float32), 2 (int16) or 4 (int8) */
    guint32 *data;          /* tile t from t * TILE * Kp / per_step: [Kp / per_step][TILE] */
    float *dx, *xs;         /* integers: tile t from t * TILE * Kp / 32: [Kp / 32][TILE] */
} PackedX;

static gpointer packed_new (const float *x, int M, int K, gsize ldx, gboolean xt, Arith arith)
{
    PackedX *p = g_new0 (PackedX, 1);
    gboolean integer = arith != ARITH_F32;
    int Kp = integer ? (K + 31) / 32 * 32 : K, n_tiles = (M + TILE - 1) / TILE;
    int per_step = arith == ARITH_F32 ? 1 : arith == ARITH_INT16 ? 2 : 4;
    *p = (PackedX) { x, ldx, xt, M, K, Kp, n_tiles, arith, per_step };
    /* zero: the lanes past M are multiplied but never stored */
    p->data = g_malloc0 (sizeof (guint32) * TILE * Kp / per_step * n_tiles);
    if (integer) {
        p->dx = g_malloc0 (sizeof (float) * TILE * Kp / 32 * n_tiles);
        p->xs = g_malloc0 (sizeof (float) * TILE * Kp / 32 * n_tiles);
    }
    return p;
}

static gpointer pack_new_f32 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_F32);
}

static gpointer pack_new_strided (const float *x, int M, int K, gsize ldx, gboolean transposed)
{
    return packed_new (x, M, K, ldx, transposed, ARITH_F32);
}

static gpointer pack_new_int16 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_INT16);
}

static gpointer pack_new_int8 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_INT8);
}

void vlm_avx2_x_codes (const float *row, int K, int Kp, gboolean int8, void *q, float *dx,
                       float *xs, gsize stride)
{
    const __m256 abs_mask = _mm256_castsi256_ps (_mm256_set1_epi32 (0x7fffffff));
    float range = int8 ? 127.0f : 32767.0f;
    for (int k = 0; k < Kp; k += 32) {
        float part[32];
        const float *src = row + k;
        if (k + 32 > K) { /* the last, partial subgroup */
            memset (part, 0, sizeof part);
            memcpy (part, row + k, sizeof (float) * (K - k));
            src = part;
        }
        __m256 v[4], amax = _mm256_setzero_ps (), sum = _mm256_setzero_ps ();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps (src + 8 * i);
            amax = _mm256_max_ps (amax, _mm256_and_ps (v[i], abs_mask));
            sum = _mm256_add_ps (sum, v[i]);
        }
        float m = vlm_avx2_hmax (amax);
        __m256 sc = _mm256_set1_ps (m >= VLM_X_TINY ? range / m : 0.0f);
        __m256i c[4];
        for (int i = 0; i < 4; i++)
            c[i] = _mm256_cvtps_epi32 (_mm256_mul_ps (v[i], sc));
        /* packs work within 128-bit lanes: the permutes put them in order */
        __m256i ab = _mm256_packs_epi32 (c[0], c[1]), cd = _mm256_packs_epi32 (c[2], c[3]);
        if (int8) {
            __m256i all = _mm256_packs_epi16 (ab, cd);
            _mm256_storeu_si256 ((__m256i *) ((gint8 *) q + k),
                                 _mm256_permutevar8x32_epi32 (all, _mm256_setr_epi32 (0, 4, 1, 5, 2, 6, 3, 7)));
        } else {
            _mm256_storeu_si256 ((__m256i *) ((gint16 *) q + k), _mm256_permute4x64_epi64 (ab, 0xd8));
            _mm256_storeu_si256 ((__m256i *) ((gint16 *) q + k + 16), _mm256_permute4x64_epi64 (cd, 0xd8));
        }
        dx[stride * (k / 32)] = m / range;
        if (xs)
            xs[stride * (k / 32)] = vlm_avx2_hsum (sum);
    }
}

/* 8 x 8 floats, r[i] row i, transposed in place through registers. */
static inline void transpose8 (__m256 r[8])
{
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps (r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps (r[i], r[i + 1]);
    }
    for (int b = 0; b < 8; b += 4) { /* columns b / 4 .. + 3 of 4 rows, in halves */
        r[b] = _mm256_shuffle_ps (t[b], t[b + 2], 0x44);
        r[b + 1] = _mm256_shuffle_ps (t[b], t[b + 2], 0xee);
        r[b + 2] = _mm256_shuffle_ps (t[b + 1], t[b + 3], 0x44);
        r[b + 3] = _mm256_shuffle_ps (t[b + 1], t[b + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm256_permute2f128_ps (r[j], r[j + 4], 0x20);
        t[j + 4] = _mm256_permute2f128_ps (r[j], r[j + 4], 0x31);
    }
    for (int j = 0; j < 8; j++)
        r[j] = t[j];
}

void vlm_avx2_transpose (const void *src, gsize lds, int rows, int cols, void *dst, gsize ldd)
{
    const float *s = src;
    float *d = dst;
    int r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8) {
        int c0 = 0;
        for (; c0 + 8 <= cols; c0 += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = _mm256_loadu_ps (s + (r0 + i) * lds + c0);
            transpose8 (v);
            for (int c = 0; c < 8; c++)
                _mm256_storeu_ps (d + (c0 + c) * ldd + r0, v[c]);
        }
        for (int c = c0; c < cols; c++)
            for (int r = r0; r < r0 + 8; r++)
                memcpy (d + c * ldd + r, s + r * lds + c, 4);
    }
    for (int c = 0; c < cols; c++)
        for (int r = r0; r < rows; r++)
            memcpy (d + c * ldd + r, s + r * lds + c, 4);
}

/* Tiles [t0, t1) of x for this thread: a tile's rows (float32 values, or
 * their codes) transposed, tokens side by side step by step. */
static void pack_part (gpointer packed, int ith, int nth)
{
    PackedX *p = packed;
    int t0, t1, S = p->Kp / p->per_step; /* steps of 4 bytes a token */
    gboolean integer = p->arith != ARITH_F32;
    guint32 *steps = integer ? g_new (guint32, (gsize) TILE * S) : NULL;
    vlm_split (p->n_tiles, ith, nth, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        int n = MIN (p->M - TILE * t, TILE);
        gsize params = (gsize) t * TILE * p->Kp / 32;
        const float *x = p->x + (gsize) TILE * t * (p->xt ? 1 : p->ldx);
        guint32 *d = p->data + (gsize) t * TILE * S;
        if (p->xt) { /* x^T's rows are the tile's columns already */
            for (int k = 0; k < p->K; k++)
                memcpy (d + (gsize) k * TILE, x + (gsize) k * p->ldx, sizeof (float) * n);
            continue;
        }
        for (int m = 0; integer && m < n; m++)
            vlm_avx2_x_codes (x + (gsize) m * p->ldx, p->K, p->Kp, p->arith == ARITH_INT8,
                              steps + (gsize) m * S, p->dx + params + m, p->xs + params + m, TILE);
        if (integer)
            vlm_avx2_transpose (steps, S, n, S, d, TILE);
        else
            vlm_avx2_transpose (x, p->ldx, n, S, d, TILE);
    }
    g_free (steps);
}

static void packed_free (gpointer packed)
{
    PackedX *p = packed;
    g_free (p->data);
    g_free (p->dx);
    g_free (p->xs);
    g_free (p);
}

/* yt += panel rows (float32, ldw apart) . x over kc columns, for nr
 * rows and the tile's first nv token vectors. Specialised by the compiler
 * for each nr and nv. */
static inline __attribute__ ((always_inline)) void
tile_kernel_f32 (const float *a, const float *w, gsize ldw, int kc, float *yt, int ld,
                 const int nr, const int nv)
{
    __m256 acc[NR_F32][2];
#pragma GCC unroll 6
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < nv; h++)
            acc[i][h] = _mm256_loadu_ps (yt + (gsize) i * ld + 8 * h);
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m256 x[2] = { _mm256_loadu_ps (a) };
        if (nv == 2)
            x[1] = _mm256_loadu_ps (a + 8);
#pragma GCC unroll 6
        for (int i = 0; i < nr; i++) {
            __m256 wb = _mm256_broadcast_ss (w + (gsize) i * ldw + k);
#pragma GCC unroll 2
            for (int h = 0; h < nv; h++)
                acc[i][h] = _mm256_fmadd_ps (x[h], wb, acc[i][h]);
        }
        a += TILE;
    }
#pragma GCC unroll 6
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < nv; h++)
            _mm256_storeu_ps (yt + (gsize) i * ld + 8 * h, acc[i][h]);
}

static void tile_any_f32 (const float *a, const float *w, gsize ldw, int kc, float *yt, int ld,
                          int nr, int nv)
{
#define CASE_F32(N, V)                                                         \
    case N * 2 + V - 1: tile_kernel_f32 (a, w, ldw, kc, yt, ld, N, V); break;
    switch (nr * 2 + nv - 1) {
    CASE_F32 (1, 1) CASE_F32 (2, 1) CASE_F32 (3, 1) CASE_F32 (4, 1) CASE_F32 (5, 1) CASE_F32 (6, 1)
    CASE_F32 (1, 2) CASE_F32 (2, 2) CASE_F32 (3, 2) CASE_F32 (4, 2) CASE_F32 (5, 2) CASE_F32 (6, 2)
    }
#undef CASE_F32
}

/* yt += panel rows (codes, int16 or bytes, ldw bytes apart; each
 * subgroup's scale and offset in s and o, lds apart) . x steps a over kc
 * columns, dx and xs the tile's steps and sums of its subgroups, for nr
 * rows and the tile's first nv token vectors. Specialised by the compiler
 * for each arithmetic, nr and nv. */
static inline __attribute__ ((always_inline)) void
tile_kernel (const guint32 *a, const guint8 *w, gsize ldw, int kc, const float *s, const float *o,
             int lds, const float *dx, const float *xs, float *yt, int ld, const int nr,
             const int nv, const gboolean int8)
{
    const int steps = int8 ? 8 : 16; /* a subgroup's steps of 4 bytes */
    __m256 acc[NR][2];
#pragma GCC unroll 3
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < nv; h++)
            acc[i][h] = _mm256_loadu_ps (yt + (gsize) i * ld + 8 * h);
    for (int g = 0; g < kc / 32; g++) {
        __m256i ia[NR][2];
#pragma GCC unroll 3
        for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
            for (int h = 0; h < nv; h++)
                ia[i][h] = _mm256_setzero_si256 ();
#pragma GCC unroll 4
        for (int q = 0; q < steps; q++) {
            __m256i x[2] = { _mm256_loadu_si256 ((const __m256i *) a) };
            if (nv == 2)
                x[1] = _mm256_loadu_si256 ((const __m256i *) (a + 8));
#pragma GCC unroll 3
            for (int i = 0; i < nr; i++) {
                guint32 four;
                memcpy (&four, w + (gsize) i * ldw + 4 * (gsize) (steps * g + q), 4);
                __m256i wb = _mm256_set1_epi32 ((int) four);
#pragma GCC unroll 2
                for (int h = 0; h < nv; h++)
                    ia[i][h] = int8 ? _mm256_add_epi16 (ia[i][h], _mm256_maddubs_epi16 (wb, x[h]))
                                    : _mm256_add_epi32 (ia[i][h], _mm256_madd_epi16 (x[h], wb));
            }
            a += TILE;
        }
#pragma GCC unroll 3
        for (int i = 0; i < nr; i++) {
            __m256 si = _mm256_set1_ps (s[(gsize) i * lds + g]);
            __m256 oi = _mm256_set1_ps (o[(gsize) i * lds + g]);
#pragma GCC unroll 2
            for (int h = 0; h < nv; h++) {
                __m256i sum = int8 ? _mm256_madd_epi16 (ia[i][h], _mm256_set1_epi16 (1)) : ia[i][h];
                __m256 d = _mm256_mul_ps (_mm256_loadu_ps (dx + TILE * g + 8 * h), si);
                acc[i][h] = _mm256_fmadd_ps (_mm256_cvtepi32_ps (sum), d, acc[i][h]);
                acc[i][h] = _mm256_fmadd_ps (_mm256_loadu_ps (xs + TILE * g + 8 * h), oi, acc[i][h]);
            }
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
        for (int h = 0; h < nv; h++)
            _mm256_storeu_ps (yt + (gsize) i * ld + 8 * h, acc[i][h]);
}

/* nv token vectors: 2, or 1 for a last tile of up to 8 tokens */
#define TILE_ANY(NAME, INT8)                                                   \
    static void NAME (const guint32 *a, const guint8 *w, gsize ldw, int kc,    \
                      const float *s, const float *o, int lds, const float *dx, \
                      const float *xs, float *yt, int ld, int nr, int nv)      \
    {                                                                          \
        switch (nr * 2 + nv - 1) {                                             \
        CASE (1, 1, INT8) CASE (2, 1, INT8) CASE (3, 1, INT8)                   \
        CASE (1, 2, INT8) CASE (2, 2, INT8) CASE (3, 2, INT8)                   \
        }                                                                      \
    }
#define CASE(N, V, INT8)                                                       \
    case N * 2 + V - 1:                                                        \
        tile_kernel (a, w, ldw, kc, s, o, lds, dx, xs, yt, ld, N, V, INT8);    \
        break;

TILE_ANY (tile_any_int16, FALSE)
TILE_ANY (tile_any_int8, TRUE)

void vlm_avx2_codes_row (const VlmMatrix *w, int r, int k0, int kc, gboolean int8, guint8 *out,
                         float *s, float *o)
{
    int pc = w->piece_cols, j0 = pc ? k0 % pc : k0;
    VlmMatrix v = vlm_matrix_piece (w, pc ? k0 / pc : 0);
    const guint8 *row = (const guint8 *) v.data + (gsize) r * v.row_bytes;
    const guint16 *vs = v.scales + (gsize) r * v.n_groups, *vo = v.biases + (gsize) r * v.n_groups;
    for (int j = 0; j < kc; j += 32) {
        if (int8) { /* Q4, byte k: code 2k low, 2k + 1 high */
            __m128i b = _mm_loadu_si128 ((const __m128i *) (row + (j0 + j) / 2));
            __m128i lo = _mm_and_si128 (b, _mm_set1_epi8 (15));
            __m128i hi = _mm_and_si128 (_mm_srli_epi16 (b, 4), _mm_set1_epi8 (15));
            _mm_storeu_si128 ((__m128i *) (out + j), _mm_unpacklo_epi8 (lo, hi));
            _mm_storeu_si128 ((__m128i *) (out + j + 16), _mm_unpackhi_epi8 (lo, hi));
        } else { /* Q8, to int16 */
            for (int h = 0; h < 32; h += 16)
                _mm256_storeu_si256 ((__m256i *) (out + 2 * (j + h)),
                                     _mm256_cvtepu8_epi16 (_mm_loadu_si128 (
                                         (const __m128i *) (row + j0 + j + h))));
        }
        int g = (j0 + j) / v.group;
        s[j / 32] = _cvtsh_ss (vs[g]);
        o[j / 32] = _cvtsh_ss (vo[g]);
    }
}

/* y[m, r] (rows ldy apart) for rows [r0, r1), or y^T[r, m] if yt_out: a
 * block of rows at a time, its weights widened (or its codes) a block of
 * columns at a time, y^T built in yt and written at the end. */
static void rows_into (const VlmMatrix *w, gconstpointer packed, float *y, gsize ldy,
                       gboolean yt_out, int r0, int r1)
{
    const PackedX *p = packed;
    gboolean integer = p->arith != ARITH_F32, int8 = p->arith == ARITH_INT8;
    int M = p->M, K = p->Kp, ld = TILE * p->n_tiles, S = K / p->per_step;
    int max_rows = MIN (ROW_BLOCK, r1 - r0), max_cols = MIN (COL_BLOCK, K);
    /* float32 weights are used where they are */
    gsize panel_size = !integer ? (w->type == VLM_MAT_F32 ? 0 : 4) : int8 ? 1 : 2;
    float *yt = g_malloc (sizeof (float) * max_rows * ld);
    guint8 *panel = g_malloc (panel_size * max_rows * max_cols);
    float *so = integer ? g_malloc (sizeof (float) * max_rows * max_cols / 16) : NULL;
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * nb * ld);
        for (int k0 = 0; k0 < K; k0 += COL_BLOCK) {
            int kc = MIN (COL_BLOCK, K - k0);
            const guint32 *a = p->data + (gsize) k0 / p->per_step * TILE; /* tile 0's */
            if (!integer) {
                const float *wp = (const float *) panel;
                gsize ldw = kc;
                if (w->type == VLM_MAT_F32) {
                    ldw = w->row_bytes / sizeof (float);
                    wp = (const float *) w->data + (gsize) b0 * ldw + k0;
                } else
                    vlm_matrix_widen_rows (w, b0, nb, k0, k0 + kc, (float *) panel);
                for (int t = 0; t < p->n_tiles; t++)
                    for (int i = 0; i < nb; i += NR_F32)
                        tile_any_f32 ((const float *) (a + (gsize) t * TILE * S), wp + (gsize) i * ldw,
                                      ldw, kc, yt + (gsize) i * ld + TILE * t, ld,
                                      MIN (NR_F32, nb - i), M - TILE * t > 8 ? 2 : 1);
                continue;
            }
            int lds = kc / 32;
            gsize ldw = panel_size * kc;
            float *s = so, *o = so + (gsize) nb * lds; /* scales [nb][lds], then offsets */
            for (int i = 0; i < nb; i++)
                vlm_avx2_codes_row (w, b0 + i, k0, kc, int8, panel + (gsize) i * ldw,
                                    s + (gsize) i * lds, o + (gsize) i * lds);
            for (int t = 0; t < p->n_tiles; t++) {
                gsize params = (gsize) t * TILE * K / 32 + (gsize) k0 / 32 * TILE;
                int nv = M - TILE * t > 8 ? 2 : 1;
                for (int i = 0; i < nb; i += NR)
                    (int8 ? tile_any_int8 : tile_any_int16) (
                        a + (gsize) t * TILE * S, panel + (gsize) i * ldw, ldw, kc,
                        s + (gsize) i * lds, o + (gsize) i * lds, lds, p->dx + params,
                        p->xs + params, yt + (gsize) i * ld + TILE * t, ld, MIN (NR, nb - i), nv);
            }
        }
        if (yt_out)
            for (int i = 0; i < nb; i++)
                memcpy (y + (gsize) (b0 + i) * ldy, yt + (gsize) i * ld, sizeof (float) * M);
        else
            vlm_avx2_transpose (yt, ld, nb, M, y + b0, ldy);
    }
    g_free (panel);
    g_free (so);
    g_free (yt);
}

static void rows (const VlmMatrix *w, gconstpointer packed, float *y, int r0, int r1)
{
    rows_into (w, packed, y, w->rows, FALSE, r0, r1);
}

static void rows_t (const VlmMatrix *w, gconstpointer packed, float *yt, gsize ldy, int r0,
                    int r1)
{
    rows_into (w, packed, yt, ldy, TRUE, r0, r1);
}

const VlmGemm vlm_gemm_avx2 = { pack_new_f32, pack_part, rows, packed_free, pack_new_strided,
                                rows_t };
const VlmGemm vlm_gemm_avx2int16 = { pack_new_int16, pack_part, rows, packed_free, .x_range = 32767 };
const VlmGemm vlm_gemm_avx2int8 = { pack_new_int8, pack_part, rows, packed_free, .x_range = 127 };
