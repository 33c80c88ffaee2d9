/* gemm_avx512.c - y = x . W^T with AVX-512, in two arithmetics sharing one
 * blocking. Built with -mavx512f..., called only when the CPU has them
 * (runtime.c); the bf16 functions carry their own target attribute and run
 * only where the CPU has AVX-512 BF16.
 *
 * float32 (vlm_gemm_avx512), for weights of any stored type: the
 * activations are packed once per product, per tile of 32 tokens, per
 * column, the tile's values (two vectors). Each thread widens a
 * block of its weight rows, a block of columns at a time, to a float32
 * panel (in L2), and the kernel broadcasts one weight against the tile's
 * 32 tokens with 16-wide FMAs: 12 rows x 2 vectors of accumulators.
 * Float32 weights are used in place.
 *
 * bf16 dot products (vlm_gemm_avx512bf16, the "bf16-dot" weight format),
 * for BF16 weights as stored: the activations are rounded to bf16 and
 * packed per tile, per pair of columns, the tile's pairs; the kernel
 * broadcasts a pair of weights (4 bytes of a row, read where it is
 * stored) against them with vdpbf16ps (two products per float32 lane,
 * float32 sums): about twice the float32 rate, at bfloat16's precision (8
 * significant bits) for the activations, as llama.cpp's bf16 path.
 *
 * Both build up y^T (a row's outputs for a tile's tokens are two vectors)
 * in a block buffer, written to y at the end. Up to 16 tokens past the
 * last whole tile go to tail kernels (TAIL_MAX). */
#include "kernels.h"
#include "threadpool.h"

#include <immintrin.h>
#include <string.h>

#define NR 12          /* weight rows per kernel call */
#define ROW_BLOCK 240  /* weight rows per y^T block (a multiple of NR) */
#define COL_BLOCK 512  /* columns per panel: 240 rows x 2 KB (float32) in L2 */
#define BF16 __attribute__ ((target ("avx512bf16")))
#define VNNI __attribute__ ((target ("avx512vnni")))

/* Tokens past the last whole tile, up to 16 of them (a prompt's few
 * after 256 image tokens), are not a tile: a tile of one vector ran at
 * 0.77 of a whole tile's time for at most half its work (it waits on
 * loads). The tail kernels take them a row at a time instead, the row's
 * weights in the vectors: one thread, 260 tokens, 2048 x 16384 in bf16
 * pairs 379-396 -> 418-422 GFLOP/s, float32 197-200 -> 204-206. */
#define TAIL_MAX 16
/* The tail's chunks of 16 columns (or pairs) start at column blocks. */
_Static_assert (COL_BLOCK % 32 == 0, "a column block is whole chunks of bf16 pairs");

typedef enum { ARITH_F32, ARITH_BF16, ARITH_INT16, ARITH_INT8 } Arith;

typedef struct {
    const float *x;       /* x[m, k] at x[m * ldx + k], or x[k * ldx + m] if xt */
    gsize ldx;
    gboolean xt;
    int M, K, n_tiles;
    int tail;             /* tokens [M - tail, M) for the tail kernels */
    Arith arith;
    /* tile t from t * 32 * K4: [K][32] floats, or [K4][32] bf16 or int16
     * pairs or int8 quads (a last tile of 17 to 31 tokens, or any for
     * integers, is padded) */
    guint32 *data;
    /* integers: the columns in subgroups of 32 (Kp of them, zero past K);
     * each tile's steps and sums of its tokens' subgroups, [Kp / 32][32] */
    int Kp;
    float *dx, *xs;
    /* the tail's x (float32 values or bf16 pairs; K4 of them a token) in
     * chunks of 16: [(K4 + 15) / 16][tail][16], zero-padded. Rows of x are K
     * apart, a multiple of 4 KB here: the tokens' values at one column
     * fell in one L1 set, which held 12 of them. */
    guint32 *tail_x;
    int K4;
} PackedX;

static gpointer packed_new (const float *x, int M, int K, gsize ldx, gboolean xt,
                            Arith arith)
{
    PackedX *p = g_new0 (PackedX, 1);
    gboolean integer = arith == ARITH_INT16 || arith == ARITH_INT8;
    int tail = M % 32 <= TAIL_MAX && !integer ? M % 32 : 0;
    *p = (PackedX) { x, ldx, xt, M, K, (M - tail + 31) / 32, tail, arith };
    p->Kp = (K + 31) / 32 * 32;
    p->K4 = arith == ARITH_F32 ? K : arith == ARITH_BF16 ? K / 2
            : arith == ARITH_INT16 ? p->Kp / 2 : p->Kp / 4;
    gsize tile = (gsize) 32 * p->K4;
    p->data = g_malloc (sizeof (guint32) * tile * MAX (p->n_tiles, 1));
    if (M % 32 && !tail) /* the lanes past M, multiplied but never stored: not NaN */
        memset (p->data + tile * (p->n_tiles - 1), 0, sizeof (guint32) * tile);
    if (integer) {
        p->dx = g_new0 (float, (gsize) p->n_tiles * p->Kp);
        p->xs = g_new0 (float, (gsize) p->n_tiles * p->Kp);
    }
    if (tail)
        p->tail_x = g_new0 (guint32, (gsize) (p->K4 + 15) / 16 * 16 * tail);
    return p;
}

static gpointer pack_new (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_F32);
}

static gpointer pack_new_strided (const float *x, int M, int K, gsize ldx, gboolean transposed)
{
    return packed_new (x, M, K, ldx, transposed, ARITH_F32);
}

static gpointer pack_new_bf16 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_BF16);
}

static gpointer pack_new_int16 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_INT16);
}

static gpointer pack_new_int8 (const float *x, int M, int K)
{
    return packed_new (x, M, K, K, FALSE, ARITH_INT8);
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

/* Row m of x as bf16 pairs, in column order. */
BF16 static void row_to_pairs (const float *row, int K, guint32 *pairs)
{
    int k = 0;
    for (; k + 32 <= K; k += 32) /* the second argument's 16 in the low half */
        _mm512_storeu_si512 (pairs + k / 2, (__m512i) _mm512_cvtne2ps_pbh (
            _mm512_loadu_ps (row + k + 16), _mm512_loadu_ps (row + k)));
    for (; k < K; k += 2)
        pairs[k / 2] = bf16_bits (row[k]) | bf16_bits (row[k + 1]) << 16;
}

/* Row m of x as int16 pairs or int8 quads, in subgroups of 32 columns
 * (zero past K): x ~ step * code with codes within +-32767 (16 bits of
 * precision, as the row kernels' two int8 parts) or +-127, each
 * subgroup's step and exact sum to dx[32 g], xs[32 g] (a tile's tokens
 * side by side). A NaN or infinity reaches y through the sum. */
static void row_to_int (const float *row, int K, int Kp, gboolean int8, guint32 *codes,
                        float *dx, float *xs)
{
    float range = int8 ? 127.0f : 32767.0f;
    for (int k = 0; k < Kp; k += 32) {
        __mmask16 m0 = K - k >= 16 ? 0xffff : K > k ? (__mmask16) ((1u << (K - k)) - 1) : 0;
        __mmask16 m1 = K - k >= 32 ? 0xffff
                       : K > k + 16 ? (__mmask16) ((1u << (K - k - 16)) - 1) : 0;
        __m512 a = _mm512_maskz_loadu_ps (m0, row + k), b = _mm512_maskz_loadu_ps (m1, row + k + 16);
        float amax = _mm512_reduce_max_ps (_mm512_max_ps (_mm512_abs_ps (a), _mm512_abs_ps (b)));
        __m512 sc = _mm512_set1_ps (amax >= VLM_X_TINY ? range / amax : 0.0f);
        __m512i ia = _mm512_cvtps_epi32 (_mm512_mul_ps (a, sc));
        __m512i ib = _mm512_cvtps_epi32 (_mm512_mul_ps (b, sc));
        if (int8)
            _mm256_storeu_si256 ((__m256i *) (codes + k / 4),
                                 _mm256_set_m128i (_mm512_cvtsepi32_epi8 (ib), _mm512_cvtsepi32_epi8 (ia)));
        else
            _mm512_storeu_si512 (codes + k / 2,
                                 _mm512_inserti64x4 (_mm512_castsi256_si512 (_mm512_cvtsepi32_epi16 (ia)),
                                                     _mm512_cvtsepi32_epi16 (ib), 1));
        dx[k] = amax / range;
        xs[k] = _mm512_reduce_add_ps (_mm512_add_ps (a, b));
    }
}

static void pack_part (gpointer packed, int ith, int nth)
{
    PackedX *p = packed;
    int t0, t1, K = p->K, P = p->K4;
    /* bf16 and integers: a tile's rows as 4-byte pairs or quads,
     * transposed like float32 values */
    guint32 *pairs = p->arith != ARITH_F32 ? g_new (guint32, (gsize) 32 * P) : NULL;
    for (int m = 0; ith == 0 && m < p->tail; m++) {
        int mm = p->M - p->tail + m;
        guint32 *dst = p->tail_x + (gsize) m * 16;
        if (p->xt) { /* token mm is column mm of x^T (float32 only) */
            for (int e = 0; e < K; e++)
                memcpy (dst + ((gsize) e / 16 * p->tail) * 16 + e % 16,
                        p->x + (gsize) e * p->ldx + mm, 4);
            continue;
        }
        const float *row = p->x + (gsize) mm * p->ldx;
        const guint32 *src = (const guint32 *) row;
        if (p->arith == ARITH_BF16) {
            src = pairs;
            row_to_pairs (row, K, pairs);
        }
        for (int e = 0; e < p->K4; e++)
            memcpy (dst + ((gsize) e / 16 * p->tail) * 16 + e % 16, src + e, 4);
    }
    vlm_split (p->n_tiles, ith, nth, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        int n = MIN (p->M - 32 * t, 32);
        const float *x = p->x + (gsize) 32 * t * (p->xt ? 1 : p->ldx);
        guint32 *d = p->data + (gsize) t * 32 * P;
        if (p->xt) { /* x^T's rows are the tile's columns already */
            for (int k = 0; k < K; k++)
                memcpy (d + (gsize) k * 32, x + (gsize) k * p->ldx, sizeof (float) * n);
            continue;
        }
        if (p->arith == ARITH_F32) {
            vlm_avx2_transpose (x, p->ldx, n, K, d, 32);
            continue;
        }
        for (int m = 0; m < n; m++)
            if (p->arith == ARITH_BF16)
                row_to_pairs (x + (gsize) m * p->ldx, K, pairs + (gsize) m * P);
            else
                row_to_int (x + (gsize) m * p->ldx, K, p->Kp, p->arith == ARITH_INT8,
                            pairs + (gsize) m * P, p->dx + (gsize) t * p->Kp + m,
                            p->xs + (gsize) t * p->Kp + m);
        vlm_avx2_transpose (pairs, P, n, P, d, 32);
    }
    g_free (pairs);
}

static void packed_free (gpointer packed)
{
    PackedX *p = packed;
    g_free (p->data);
    g_free (p->tail_x);
    g_free (p->dx);
    g_free (p->xs);
    g_free (p);
}

/* yt rows i < nr, the tile's first NV token vectors h (of two), loaded
 * and stored around a kernel's loop. */
#define LOAD_ACC(NV)                                                           \
    __m512 acc[NR][2];                                                         \
    _Pragma ("GCC unroll 12") for (int i = 0; i < nr; i++)                     \
        _Pragma ("GCC unroll 2") for (int h = 0; h < (NV); h++)                \
            acc[i][h] = _mm512_loadu_ps (yt + (gsize) i * ld + 16 * h);
#define STORE_ACC(NV)                                                          \
    _Pragma ("GCC unroll 12") for (int i = 0; i < nr; i++)                     \
        _Pragma ("GCC unroll 2") for (int h = 0; h < (NV); h++)                \
            _mm512_storeu_ps (yt + (gsize) i * ld + 16 * h, acc[i][h]);

/* yt += panel rows . x over kc columns (float32). Specialised by the
 * compiler for each nr. */
static inline __attribute__ ((always_inline)) void
tile_kernel (const guint32 *a32, const void *w32, gsize ldw, int kc, float *yt, int ld,
             const int nr)
{
    const float *a = (const float *) a32, *w = w32;
    LOAD_ACC (2)
    for (int k = 0; k < kc; k++) {
        __m512 x0 = _mm512_loadu_ps (a), x1 = _mm512_loadu_ps (a + 16);
#pragma GCC unroll 12
        for (int i = 0; i < nr; i++) {
            __m512 wb = _mm512_set1_ps (w[(gsize) i * ldw + k]);
            acc[i][0] = _mm512_fmadd_ps (x0, wb, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps (x1, wb, acc[i][1]);
        }
        a += 32;
    }
    STORE_ACC (2)
}

/* yt += W rows (bf16, row_bytes apart) . x pairs over kc columns. */
BF16 static inline __attribute__ ((always_inline)) void
tile_kernel_bf16 (const guint32 *a, const void *w, gsize row_bytes, int kc, float *yt, int ld,
                  const int nr)
{
    LOAD_ACC (2)
    for (int q = 0; q < kc / 2; q++) {
        __m512bh x0 = (__m512bh) _mm512_loadu_si512 (a);
        __m512bh x1 = (__m512bh) _mm512_loadu_si512 (a + 16);
#pragma GCC unroll 12
        for (int i = 0; i < nr; i++) {
            guint32 pair;
            memcpy (&pair, (const guint8 *) w + (gsize) i * row_bytes + 4 * (gsize) q, 4);
            __m512bh wb = (__m512bh) _mm512_set1_epi32 ((int) pair);
            acc[i][0] = _mm512_dpbf16_ps (acc[i][0], x0, wb);
            acc[i][1] = _mm512_dpbf16_ps (acc[i][1], x1, wb);
        }
        a += 32;
    }
    STORE_ACC (2)
}

typedef void (*TileFunc) (const guint32 *a, const void *w, gsize ldw, int kc, float *yt,
                          int ld, int nr);

#define TILE_ANY(NAME, KERNEL, ATTR)                                           \
    ATTR static void NAME (const guint32 *a, const void *w, gsize ldw, int kc, \
                           float *yt, int ld, int nr)                          \
    {                                                                          \
        switch (nr) {                                                          \
        CASE (KERNEL, 1) CASE (KERNEL, 2) CASE (KERNEL, 3) CASE (KERNEL, 4)    \
        CASE (KERNEL, 5) CASE (KERNEL, 6) CASE (KERNEL, 7) CASE (KERNEL, 8)    \
        CASE (KERNEL, 9) CASE (KERNEL, 10) CASE (KERNEL, 11) CASE (KERNEL, 12) \
        }                                                                      \
    }
#define CASE(KERNEL, N)                                                        \
    case N: KERNEL (a, w, ldw, kc, yt, ld, N); break;

TILE_ANY (tile_any, tile_kernel, )
TILE_ANY (tile_any_bf16, tile_kernel_bf16, BF16)

/* yt += panel rows (codes, int16 or bytes, ldw bytes apart; each
 * subgroup's scale and offset in s and o, lds apart) . x steps a over kc
 * columns, dx and xs the tile's steps and sums of its subgroups. Per
 * subgroup of 32 columns the products are summed exactly in int32:
 * int16 x and codes in pairs by vpdpwssd (codes below 2^8, x within 2^15:
 * at most 2^28), or 8-bit x and Q4 codes in quads by vpdpbusd (at most 32
 * x 15 x 127); then scaled into the float32 sums: y += s dx sum + o xs.
 * Twice (int16) or four times (int8) the products of a float32 FMA each,
 * at 4 float32 operations a subgroup (24 accumulators: 6 rows). */
#define NR_INT 6
_Static_assert (ROW_BLOCK % NR_INT == 0, "a row block is whole integer kernel calls");

VNNI static inline __attribute__ ((always_inline)) void
tile_kernel_int (const guint32 *a, const guint8 *w, gsize ldw, int kc, const float *s,
                 const float *o, int lds, const float *dx, const float *xs, float *yt, int ld,
                 const int nr, const int nv, const gboolean int8)
{
    const int steps = int8 ? 8 : 16; /* a subgroup's steps of 4 bytes */
    LOAD_ACC (nv)
    for (int g = 0; g < kc / 32; g++) {
        __m512i ia[NR_INT][2];
#pragma GCC unroll 6
        for (int i = 0; i < nr; i++)
#pragma GCC unroll 2
            for (int h = 0; h < nv; h++)
                ia[i][h] = _mm512_setzero_si512 ();
#pragma GCC unroll 16
        for (int q = 0; q < steps; q++) {
            __m512i x[2] = { _mm512_loadu_si512 (a) };
            if (nv == 2)
                x[1] = _mm512_loadu_si512 (a + 16);
#pragma GCC unroll 6
            for (int i = 0; i < nr; i++) {
                guint32 four;
                memcpy (&four, w + (gsize) i * ldw + 4 * (gsize) (steps * g + q), 4);
                __m512i wb = _mm512_set1_epi32 ((int) four);
#pragma GCC unroll 2
                for (int h = 0; h < nv; h++)
                    ia[i][h] = int8 ? _mm512_dpbusd_epi32 (ia[i][h], wb, x[h])
                                    : _mm512_dpwssd_epi32 (ia[i][h], x[h], wb);
            }
            a += 32;
        }
#pragma GCC unroll 6
        for (int i = 0; i < nr; i++) {
            __m512 si = _mm512_set1_ps (s[(gsize) i * lds + g]);
            __m512 oi = _mm512_set1_ps (o[(gsize) i * lds + g]);
#pragma GCC unroll 2
            for (int h = 0; h < nv; h++) {
                __m512 d = _mm512_loadu_ps (dx + 32 * g + 16 * h);
                acc[i][h] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (ia[i][h]), _mm512_mul_ps (d, si),
                                             acc[i][h]);
                acc[i][h] = _mm512_fmadd_ps (_mm512_loadu_ps (xs + 32 * g + 16 * h), oi, acc[i][h]);
            }
        }
    }
    STORE_ACC (nv)
}

/* nv token vectors: 2, or 1 for a last tile of up to 16 tokens (the
 * prompt's few after 256 image tokens: 0.6 of a whole tile's time) */
typedef void (*IntTileFunc) (const guint32 *a, const guint8 *w, gsize ldw, int kc,
                             const float *s, const float *o, int lds, const float *dx,
                             const float *xs, float *yt, int ld, int nr, int nv);
#define TILE_ANY_INT(NAME, INT8)                                                \
    VNNI static void NAME (const guint32 *a, const guint8 *w, gsize ldw, int kc, \
                           const float *s, const float *o, int lds, const float *dx, \
                           const float *xs, float *yt, int ld, int nr, int nv)  \
    {                                                                           \
        switch (nr * 2 + nv - 1) {                                              \
        CASE_INT (1, 1, INT8) CASE_INT (2, 1, INT8) CASE_INT (3, 1, INT8)       \
        CASE_INT (4, 1, INT8) CASE_INT (5, 1, INT8) CASE_INT (6, 1, INT8)       \
        CASE_INT (1, 2, INT8) CASE_INT (2, 2, INT8) CASE_INT (3, 2, INT8)       \
        CASE_INT (4, 2, INT8) CASE_INT (5, 2, INT8) CASE_INT (6, 2, INT8)       \
        }                                                                       \
    }
#define CASE_INT(N, V, INT8)                                                    \
    case N * 2 + V - 1:                                                         \
        tile_kernel_int (a, w, ldw, kc, s, o, lds, dx, xs, yt, ld, N, V, INT8); \
        break;

TILE_ANY_INT (tile_any_int16, FALSE)
TILE_ANY_INT (tile_any_int8, TRUE)

/* yt[i, j] += W row i . x_j over kc columns for rows i < nb and tokens
 * j < n: float32 (rows ldw floats apart), and bf16 pairs (rows ldw bytes
 * apart, read where they are stored, kc pairs); x in chunks of 16
 * (PackedX.tail_x), chunks cs apart.
 * Up to eight tokens share each load of the row, two chains of products
 * each. */
#define TAIL_GROUP 8

static inline __attribute__ ((always_inline)) void
tail_row_f32 (const float *wi, int kc, const float *x, gsize cs, float *yt, const int nj)
{
    __m512 acc[TAIL_GROUP][2];
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++)
        acc[j][0] = acc[j][1] = _mm512_setzero_ps ();
    int k = 0;
    for (; k + 32 <= kc; k += 32) {
        const float *xc = x + k / 16 * cs;
        __m512 w0 = _mm512_loadu_ps (wi + k), w1 = _mm512_loadu_ps (wi + k + 16);
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++) {
            acc[j][0] = _mm512_fmadd_ps (w0, _mm512_loadu_ps (xc + j * 16), acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps (w1, _mm512_loadu_ps (xc + cs + j * 16), acc[j][1]);
        }
    }
    for (; k < kc; k += 16) {
        __mmask16 m = kc - k >= 16 ? 0xffff : (__mmask16) ((1u << (kc - k)) - 1);
        const float *xc = x + k / 16 * cs;
        __m512 w0 = _mm512_maskz_loadu_ps (m, wi + k);
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            acc[j][0] = _mm512_fmadd_ps (w0, _mm512_maskz_loadu_ps (m, xc + j * 16), acc[j][0]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++)
        yt[j] += _mm512_reduce_add_ps (_mm512_add_ps (acc[j][0], acc[j][1]));
}

BF16 static inline __attribute__ ((always_inline)) void
tail_row_bf16 (const guint8 *wi, int np, const guint32 *x, gsize cs, float *yt, const int nj)
{
    __m512 acc[TAIL_GROUP][2];
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++)
        acc[j][0] = acc[j][1] = _mm512_setzero_ps ();
    int q = 0;
    for (; q + 32 <= np; q += 32) {
        const guint32 *xc = x + q / 16 * cs;
        __m512bh w0 = (__m512bh) _mm512_loadu_si512 (wi + 4 * (gsize) q);
        __m512bh w1 = (__m512bh) _mm512_loadu_si512 (wi + 4 * (gsize) (q + 16));
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++) {
            acc[j][0] = _mm512_dpbf16_ps (acc[j][0], w0,
                                          (__m512bh) _mm512_loadu_si512 (xc + j * 16));
            acc[j][1] = _mm512_dpbf16_ps (acc[j][1], w1,
                                          (__m512bh) _mm512_loadu_si512 (xc + cs + j * 16));
        }
    }
    for (; q < np; q += 16) {
        __mmask16 m = np - q >= 16 ? 0xffff : (__mmask16) ((1u << (np - q)) - 1);
        const guint32 *xc = x + q / 16 * cs;
        __m512bh w0 = (__m512bh) _mm512_maskz_loadu_epi32 (m, wi + 4 * (gsize) q);
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            acc[j][0] = _mm512_dpbf16_ps (acc[j][0], w0,
                                          (__m512bh) _mm512_maskz_loadu_epi32 (m, xc + j * 16));
    }
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++)
        yt[j] += _mm512_reduce_add_ps (_mm512_add_ps (acc[j][0], acc[j][1]));
}

/* Each row's groups of tokens, the group size a constant for the compiler. */
#define TAIL_ANY(NAME, ROW, WT, XT, ATTR)                                        \
    ATTR static void NAME (const WT *w, gsize ldw, int nb, int kc, const XT *x,  \
                           int n, float *yt, int ld)                             \
    {                                                                           \
        gsize cs = (gsize) n * 16; /* x's chunks apart */                       \
        for (int i = 0; i < nb; i++)                                            \
            for (int j0 = 0; j0 < n; j0 += TAIL_GROUP) {                         \
                const WT *wi = w + (gsize) i * ldw;                             \
                const XT *xj = x + (gsize) j0 * 16;                             \
                float *yi = yt + (gsize) i * ld + j0;                           \
                switch (MIN (TAIL_GROUP, n - j0)) {                             \
                case 1: ROW (wi, kc, xj, cs, yi, 1); break;                     \
                case 2: ROW (wi, kc, xj, cs, yi, 2); break;                     \
                case 3: ROW (wi, kc, xj, cs, yi, 3); break;                     \
                case 4: ROW (wi, kc, xj, cs, yi, 4); break;                     \
                case 5: ROW (wi, kc, xj, cs, yi, 5); break;                     \
                case 6: ROW (wi, kc, xj, cs, yi, 6); break;                     \
                case 7: ROW (wi, kc, xj, cs, yi, 7); break;                     \
                default: ROW (wi, kc, xj, cs, yi, 8);                           \
                }                                                               \
            }                                                                   \
    }

TAIL_ANY (tail_f32, tail_row_f32, float, float, )
TAIL_ANY (tail_bf16, tail_row_bf16, guint8, guint32, BF16)

/* y[m, r] (rows ldy apart) for rows [r0, r1), or y^T[r, m] if yt. */
static void rows_into (const VlmMatrix *w, gconstpointer packed, float *y, gsize ldy,
                       gboolean yt_out, int r0, int r1)
{
    const PackedX *p = packed;
    gboolean int8 = p->arith == ARITH_INT8, integer = int8 || p->arith == ARITH_INT16;
    gboolean bf16 = p->arith == ARITH_BF16;
    int M = p->M, K = integer ? p->Kp : p->K, ld = 32 * ((M + 31) / 32);
    int max_rows = MIN (ROW_BLOCK, r1 - r0), max_cols = MIN (COL_BLOCK, K);
    float *yt = g_malloc (sizeof (float) * max_rows * ld);
    /* float32 from other types: widened panels; integers: codes, scales
     * and offsets; bf16 pairs and float32: the weights where they are */
    gboolean widen = p->arith == ARITH_F32 && w->type != VLM_MAT_F32;
    float *panel = widen ? g_malloc (sizeof (float) * max_rows * max_cols) : NULL;
    gsize code_size = int8 ? 1 : 2;
    guint8 *codes = integer ? g_malloc (code_size * max_rows * max_cols) : NULL;
    float *so = integer ? g_malloc (sizeof (float) * max_rows * max_cols / 16) : NULL;
    IntTileFunc int_tile = int8 ? tile_any_int8 : tile_any_int16;
    TileFunc tile = bf16 ? tile_any_bf16 : tile_any;
    for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
        int nb = MIN (ROW_BLOCK, r1 - b0);
        memset (yt, 0, sizeof (float) * nb * ld);
        for (int k0 = 0; k0 < K; k0 += COL_BLOCK) {
            int kc = MIN (COL_BLOCK, K - k0);
            if (integer) { /* scales [nb][lds], then offsets */
                int lds = kc / 32;
                gsize ldw = code_size * kc;
                float *s = so, *o = so + (gsize) nb * lds;
                for (int i = 0; i < nb; i++) /* the AVX2 function: every AVX-512 CPU has AVX2 */
                    vlm_avx2_codes_row (w, b0 + i, k0, kc, int8, codes + (gsize) i * ldw,
                                        s + (gsize) i * lds, o + (gsize) i * lds);
                for (int t = 0; t < p->n_tiles; t++) {
                    const guint32 *a = p->data + (gsize) t * 32 * p->K4 +
                                       (gsize) k0 / (int8 ? 4 : 2) * 32;
                    const float *dx = p->dx + (gsize) t * p->Kp + k0, *xs = p->xs + (gsize) t * p->Kp + k0;
                    int nv = M - 32 * t > 16 ? 2 : 1;
                    for (int i = 0; i < nb; i += NR_INT)
                        int_tile (a, codes + (gsize) i * ldw, ldw, kc, s + (gsize) i * lds,
                                  o + (gsize) i * lds, lds, dx, xs, yt + (gsize) i * ld + 32 * t, ld,
                                  MIN (NR_INT, nb - i), nv);
                }
                continue;
            }
            const guint8 *wp;
            gsize ldw; /* rows apart: floats (float32 kernel) or bytes (bf16) */
            if (widen) {
                vlm_matrix_widen_rows (w, b0, nb, k0, k0 + kc, panel);
                wp = (const guint8 *) panel;
                ldw = kc;
            } else {
                wp = (const guint8 *) w->data + (gsize) b0 * w->row_bytes +
                     (gsize) k0 * (bf16 ? 2 : 4);
                ldw = bf16 ? w->row_bytes : w->row_bytes / sizeof (float);
            }
            gsize row_step = bf16 ? ldw : ldw * sizeof (float);
            for (int t = 0; t < p->n_tiles; t++) {
                const guint32 *a = p->data + (gsize) t * 32 * p->K4 + (gsize) k0 * 32 / (bf16 ? 2 : 1);
                for (int i = 0; i < nb; i += NR)
                    tile (a, wp + (gsize) i * row_step, ldw, kc, yt + (gsize) i * ld + 32 * t,
                          ld, MIN (NR, nb - i));
            }
            if (p->tail) { /* its chunks from column k0 (pair k0 / 2) */
                const guint32 *tx = p->tail_x + (gsize) k0 / (bf16 ? 32 : 16) * 16 * p->tail;
                int m0 = M - p->tail;
                if (bf16) /* kc / 2 pairs, rows ldw bytes apart */
                    tail_bf16 (wp, ldw, nb, kc / 2, tx, p->tail, yt + m0, ld);
                else
                    tail_f32 ((const float *) wp, ldw, nb, kc, (const float *) tx, p->tail,
                              yt + m0, ld);
            }
        }
        if (yt_out)
            for (int i = 0; i < nb; i++)
                memcpy (y + (gsize) (b0 + i) * ldy, yt + (gsize) i * ld, sizeof (float) * M);
        else
            vlm_avx2_transpose (yt, ld, nb, M, y + b0, ldy); /* every AVX-512 CPU has AVX2 */
    }
    g_free (panel);
    g_free (codes);
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

const VlmGemm vlm_gemm_avx512 = { pack_new, pack_part, rows, packed_free, pack_new_strided,
                                  rows_t };
const VlmGemm vlm_gemm_avx512bf16 = { pack_new_bf16, pack_part, rows, packed_free };
const VlmGemm vlm_gemm_avx512int16 = { pack_new_int16, pack_part, rows, packed_free,
                                       .x_range = 32767 };
const VlmGemm vlm_gemm_avx512int8 = { pack_new_int8, pack_part, rows, packed_free,
                                      .x_range = 127 };
