/* gemm_avx2.c - y = x . W^T for Q8/Q4 weights quantized at load (fast_dot)
 * with AVX2 integer dot products, for CPUs without AVX-512. Built with
 * -mavx2 -mfma -mf16c, called only when the CPU has them (runtime.c).
 *
 * x is quantized per token and subgroup of 32 columns, the codes summed
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
 * token's 4 bytes per step (int16 pairs or int8 quads), [steps][16]; each
 * thread widens a block of its rows' codes and the kernel broadcasts 4
 * bytes of a row against the tile's 16 tokens: 3 rows x 2 vectors of
 * integer sums, and as many float32 sums of y^T updated once a subgroup,
 * all in registers (with 4 rows and the float sums in the block buffer:
 * int8 one thread 185-189 against 198-215 GFLOP/s). */
#include "kernels.h"
#include "threadpool.h"

#include <immintrin.h>
#include <string.h>

#define TILE 16        /* tokens per tile: two vectors of 8 */
#define NR 3           /* weight rows per kernel call */
#define ROW_BLOCK 240  /* weight rows per y^T block (a multiple of NR) */
#define COL_BLOCK 512  /* columns per panel: 240 rows x 1 KB of int16 codes in L2 */

_Static_assert (ROW_BLOCK % NR == 0, "a row block is whole kernel calls");
_Static_assert (COL_BLOCK % 32 == 0, "a column block is whole subgroups");

typedef struct {
    const float *x;
    int M, K, Kp, n_tiles;  /* Kp: K in whole subgroups of 32 */
    gboolean int8;
    int per_step;           /* columns per 4 bytes: 2 (int16) or 4 (int8) */
    guint32 *data;          /* tile t from t * TILE * Kp / per_step: [Kp / per_step][TILE] */
    float *dx, *xs;         /* tile t from t * TILE * Kp / 32: [Kp / 32][TILE] */
} PackedX;

static gpointer packed_new (const float *x, int M, int K, gboolean int8)
{
    PackedX *p = g_new0 (PackedX, 1);
    int Kp = (K + 31) / 32 * 32, n_tiles = (M + TILE - 1) / TILE, per_step = int8 ? 4 : 2;
    *p = (PackedX) { x, M, K, Kp, n_tiles, int8, per_step };
    /* zero: the lanes past M are multiplied but never stored */
    p->data = g_malloc0 (sizeof (guint32) * TILE * Kp / per_step * n_tiles);
    p->dx = g_malloc0 (sizeof (float) * TILE * Kp / 32 * n_tiles);
    p->xs = g_malloc0 (sizeof (float) * TILE * Kp / 32 * n_tiles);
    return p;
}

static gpointer pack_new_int16 (const float *x, int M, int K)
{
    return packed_new (x, M, K, FALSE);
}

static gpointer pack_new_int8 (const float *x, int M, int K)
{
    return packed_new (x, M, K, TRUE);
}

static inline float hmax (__m256 v)
{
    __m128 m = _mm_max_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
    m = _mm_max_ps (m, _mm_movehl_ps (m, m));
    return _mm_cvtss_f32 (_mm_max_ss (m, _mm_movehdup_ps (m)));
}

static inline float hsum (__m256 v)
{
    __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
    s = _mm_add_ps (s, _mm_movehl_ps (s, s));
    return _mm_cvtss_f32 (_mm_add_ss (s, _mm_movehdup_ps (s)));
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
        float m = hmax (amax);
        __m256 sc = _mm256_set1_ps (m > 0 ? range / m : 0.0f);
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
            xs[stride * (k / 32)] = hsum (sum);
    }
}

/* Tiles [t0, t1) of x for this thread. */
static void pack_part (gpointer packed, int ith, int nth)
{
    PackedX *p = packed;
    int t0, t1, S = p->Kp / p->per_step; /* steps of 4 bytes a token */
    guint32 *steps = g_new (guint32, (gsize) TILE * S);
    vlm_split (p->n_tiles, ith, nth, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        int n = MIN (p->M - TILE * t, TILE);
        gsize params = (gsize) t * TILE * p->Kp / 32;
        for (int m = 0; m < n; m++)
            vlm_avx2_x_codes (p->x + (gsize) (TILE * t + m) * p->K, p->K, p->Kp, p->int8,
                              steps + (gsize) m * S, p->dx + params + m, p->xs + params + m, TILE);
        guint32 *d = p->data + (gsize) t * TILE * S;
        for (int c = 0; c < S; c++) /* tokens side by side, step by step */
            for (int m = 0; m < n; m++)
                d[(gsize) c * TILE + m] = steps[(gsize) m * S + c];
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

/* y[m, r] for rows [r0, r1): a block of rows at a time, its codes widened
 * a block of columns at a time, y^T built in yt and written at the end. */
static void rows (const VlmMatrix *w, gconstpointer packed, float *y, int r0, int r1)
{
    const PackedX *p = packed;
    int M = p->M, K = p->Kp, ld = TILE * p->n_tiles, S = K / p->per_step;
    int max_rows = MIN (ROW_BLOCK, r1 - r0), max_cols = MIN (COL_BLOCK, K);
    gsize code_size = p->int8 ? 1 : 2;
    float *yt = g_malloc (sizeof (float) * max_rows * ld);
    guint8 *codes = g_malloc (code_size * max_rows * max_cols);
    float *so = g_malloc (sizeof (float) * max_rows * max_cols / 16);
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * nb * ld);
        for (int k0 = 0; k0 < K; k0 += COL_BLOCK) {
            int kc = MIN (COL_BLOCK, K - k0), lds = kc / 32;
            gsize ldw = code_size * kc;
            float *s = so, *o = so + (gsize) nb * lds; /* scales [nb][lds], then offsets */
            for (int i = 0; i < nb; i++)
                vlm_avx2_codes_row (w, b0 + i, k0, kc, p->int8, codes + (gsize) i * ldw,
                           s + (gsize) i * lds, o + (gsize) i * lds);
            for (int t = 0; t < p->n_tiles; t++) {
                const guint32 *a = p->data + (gsize) t * TILE * S + (gsize) k0 / p->per_step * TILE;
                gsize params = (gsize) t * TILE * K / 32 + (gsize) k0 / 32 * TILE;
                int nv = M - TILE * t > 8 ? 2 : 1;
                for (int i = 0; i < nb; i += NR)
                    (p->int8 ? tile_any_int8 : tile_any_int16) (
                        a, codes + (gsize) i * ldw, ldw, kc, s + (gsize) i * lds,
                        o + (gsize) i * lds, lds, p->dx + params, p->xs + params,
                        yt + (gsize) i * ld + TILE * t, ld, MIN (NR, nb - i), nv);
            }
        }
        for (int m = 0; m < M; m++) /* y from y^T */
            for (int i = 0; i < nb; i++)
                y[(gsize) m * w->rows + b0 + i] = yt[(gsize) i * ld + m];
    }
    g_free (codes);
    g_free (so);
    g_free (yt);
}

const VlmGemm vlm_gemm_avx2int16 = { pack_new_int16, pack_part, rows, packed_free, .x_range = 32767 };
const VlmGemm vlm_gemm_avx2int8 = { pack_new_int8, pack_part, rows, packed_free, .x_range = 127 };
