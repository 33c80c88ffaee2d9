/* kernels_avx512.c - AVX-512 (F, BW, VL) row kernels. Built with
 * -mavx512f -mavx512bw -mavx512vl -mf16c -mfma, called only when the CPU
 * has them (runtime.c). Weights are widened to float32 in registers and
 * multiplied with float32 activations: memory bandwidth is the limit. */
#include "avx2_inline.h"
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define ROW(w, r) ((const guint8 *) (w)->data + (gsize) (r) * (w)->row_bytes)

static inline __m512 load_bf16 (const guint16 *p)
{
    __m512i v = _mm512_cvtepu16_epi32 (_mm256_loadu_si256 ((const __m256i *) p));
    return _mm512_castsi512_ps (_mm512_slli_epi32 (v, 16));
}

static inline __m512 load_bf16_tail (const guint16 *p, __mmask16 m)
{
    __m512i v = _mm512_cvtepu16_epi32 (_mm256_maskz_loadu_epi16 (m, p));
    return _mm512_castsi512_ps (_mm512_slli_epi32 (v, 16));
}

static inline __m512 load_f16 (const guint16 *p)
{
    return _mm512_cvtph_ps (_mm256_loadu_si256 ((const __m256i *) p));
}

static inline __m512 load_f16_tail (const guint16 *p, __mmask16 m)
{
    return _mm512_cvtph_ps (_mm256_maskz_loadu_epi16 (m, p));
}

static inline __m512 load_f32 (const float *p)
{
    return _mm512_loadu_ps (p);
}

static inline __m512 load_f32_tail (const float *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps (m, p);
}

/* How the rows are read decides the rate (bf16, this machine, one thread):
 * rows of up to VLM_SHORT_ROW columns one at a time, x staying in L1, as
 * one stream of weights asked for 8 KB ahead: 38 GB/s against 30 for four
 * rows at a time. Longer rows four at a time, sharing each load of x (which
 * no longer fits L1), the four as one stream asked for eight rows ahead:
 * 33 GB/s against 30 with a stream per row, 26 one row at a time. */
#define FLOAT_ROWS(NAME, T, LOAD, LOAD_TAIL)                                   \
    static void NAME (const VlmMatrix *w, const float *x, const float *xg,    \
                      const void *prep, float *y, int r0, int r1)         \
    {                                                                          \
        int K = w->cols, K16 = K & ~15;                                        \
        __mmask16 tail = (__mmask16) ((1u << (K - K16)) - 1);                  \
        const gboolean prefetch = vlm_tuning.float_rows_prefetch;              \
        int r = r0;                                                            \
        for (; K > VLM_SHORT_ROW && r + 4 <= r1; r += 4) {                     \
            const T *a = (const T *) ROW (w, r), *b = (const T *) ROW (w, r + 1), \
                    *c = (const T *) ROW (w, r + 2), *d = (const T *) ROW (w, r + 3); \
            const guint8 *ahead = ROW (w, r + 8);                              \
            __m512 s0 = _mm512_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;        \
            for (int j = 0; j < K16; j += 16) {                                \
                if (prefetch && (j * sizeof (T)) % 64 == 0) { /* a line of each row read */ \
                    vlm_prefetch_lines (ahead, 0, 4);                          \
                    ahead += 256;                                              \
                }                                                              \
                __m512 xv = _mm512_loadu_ps (x + j);                           \
                s0 = _mm512_fmadd_ps (LOAD (a + j), xv, s0);                   \
                s1 = _mm512_fmadd_ps (LOAD (b + j), xv, s1);                   \
                s2 = _mm512_fmadd_ps (LOAD (c + j), xv, s2);                   \
                s3 = _mm512_fmadd_ps (LOAD (d + j), xv, s3);                   \
            }                                                                  \
            if (tail) {                                                        \
                __m512 xv = _mm512_maskz_loadu_ps (tail, x + K16);             \
                s0 = _mm512_fmadd_ps (LOAD_TAIL (a + K16, tail), xv, s0);      \
                s1 = _mm512_fmadd_ps (LOAD_TAIL (b + K16, tail), xv, s1);      \
                s2 = _mm512_fmadd_ps (LOAD_TAIL (c + K16, tail), xv, s2);      \
                s3 = _mm512_fmadd_ps (LOAD_TAIL (d + K16, tail), xv, s3);      \
            }                                                                  \
            y[r] = _mm512_reduce_add_ps (s0);                                  \
            y[r + 1] = _mm512_reduce_add_ps (s1);                              \
            y[r + 2] = _mm512_reduce_add_ps (s2);                              \
            y[r + 3] = _mm512_reduce_add_ps (s3);                              \
        }                                                                      \
        for (; r < r1; r++) {                                                  \
            const T *a = (const T *) ROW (w, r);                               \
            __m512 s0 = _mm512_setzero_ps (), s1 = s0;                         \
            int j = 0;                                                         \
            for (; j + 32 <= K16; j += 32) {                                   \
                if (prefetch) /* the lines of these 32 values, 8 KB on */      \
                    vlm_prefetch_lines (a + j, VLM_STREAM_AHEAD, sizeof (T) / 2); \
                s0 = _mm512_fmadd_ps (LOAD (a + j), _mm512_loadu_ps (x + j), s0); \
                s1 = _mm512_fmadd_ps (LOAD (a + j + 16), _mm512_loadu_ps (x + j + 16), s1); \
            }                                                                  \
            if (j < K16)                                                       \
                s0 = _mm512_fmadd_ps (LOAD (a + j), _mm512_loadu_ps (x + j), s0); \
            if (tail)                                                          \
                s1 = _mm512_fmadd_ps (LOAD_TAIL (a + K16, tail),               \
                                      _mm512_maskz_loadu_ps (tail, x + K16), s1); \
            y[r] = _mm512_reduce_add_ps (_mm512_add_ps (s0, s1));              \
        }                                                                      \
    }

FLOAT_ROWS (rows_f32, float, load_f32, load_f32_tail)
FLOAT_ROWS (rows_bf16, guint16, load_bf16, load_bf16_tail)
FLOAT_ROWS (rows_f16, guint16, load_f16, load_f16_tail)

static inline __m512 u8x16 (__m128i v)
{
    return _mm512_cvtepi32_ps (_mm512_cvtepu8_epi32 (v));
}

/* Offsets: sum_k b_k * xg_k over a row's groups. */
static inline float offset_term (const guint16 *b, const float *xg, int n)
{
    __m512 acc = _mm512_setzero_ps ();
    int k = 0;
    for (; k + 16 <= n; k += 16)
        acc = _mm512_fmadd_ps (load_f16 (b + k), _mm512_loadu_ps (xg + k), acc);
    if (k < n) {
        __mmask16 m = (__mmask16) ((1u << (n - k)) - 1);
        acc = _mm512_fmadd_ps (load_f16_tail (b + k, m), _mm512_maskz_loadu_ps (m, xg + k), acc);
    }
    return _mm512_reduce_add_ps (acc);
}

/* The row's group scales, 16 at a time, broadcast lane k of a vector
 * (cheaper than converting one f16 per group). */
typedef struct {
    const guint16 *s;
    int n;
    __m512 v;
    __m512i idx;
} Scales;

static inline __m512 next_scale (Scales *sc, int k)
{
    if ((k & 15) == 0) {
        sc->v = sc->n - k >= 16 ? load_f16 (sc->s + k)
                                : load_f16_tail (sc->s + k, (__mmask16) ((1u << (sc->n - k)) - 1));
        sc->idx = _mm512_setzero_si512 ();
    } else {
        sc->idx = _mm512_add_epi32 (sc->idx, _mm512_set1_epi32 (1));
    }
    return _mm512_permutexvar_ps (sc->idx, sc->v);
}

static void rows_q8 (const VlmMatrix *w, const float *x, const float *xg,
                     const void *prep, float *y, int r0, int r1)
{
    int g = w->group;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        Scales sc = { w->scales + (gsize) r * w->n_groups, w->n_groups };
        __m512 acc = _mm512_setzero_ps ();
        for (int k = 0; k < w->n_groups; k++) {
            const guint8 *q = row + (gsize) k * g;
            const float *xk = x + (gsize) k * g;
            __m512 d0 = _mm512_setzero_ps (), d1 = d0;
            for (int j = 0; j < g; j += 32) {
                d0 = _mm512_fmadd_ps (u8x16 (_mm_loadu_si128 ((const __m128i *) (q + j))),
                                      _mm512_loadu_ps (xk + j), d0);
                d1 = _mm512_fmadd_ps (u8x16 (_mm_loadu_si128 ((const __m128i *) (q + j + 16))),
                                      _mm512_loadu_ps (xk + j + 16), d1);
            }
            acc = _mm512_fmadd_ps (_mm512_add_ps (d0, d1), next_scale (&sc, k), acc);
        }
        y[r] = _mm512_reduce_add_ps (acc) +
               offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
}

/* Q4 byte k holds codes 2k (low nibble) and 2k+1 (high): x is split into
 * its even and odd elements per 32 once, so that nibbles need no shuffle. */
static void rows_q4 (const VlmMatrix *w, const float *x, const float *xg,
                     const void *prep, float *y, int r0, int r1)
{
    int g = w->group, n = w->n_groups * g;
    float *xs = g_malloc (n * sizeof (float));
    const __m512i even = _mm512_set_epi32 (30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32 (31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int j = 0; j < n; j += 32) {
        __m512 a = _mm512_loadu_ps (x + j), b = _mm512_loadu_ps (x + j + 16);
        _mm512_storeu_ps (xs + j, _mm512_permutex2var_ps (a, even, b));
        _mm512_storeu_ps (xs + j + 16, _mm512_permutex2var_ps (a, odd, b));
    }
    const __m128i low = _mm_set1_epi8 (15);
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        Scales sc = { w->scales + (gsize) r * w->n_groups, w->n_groups };
        __m512 acc = _mm512_setzero_ps ();
        for (int k = 0; k < w->n_groups; k++) {
            const guint8 *q = row + (gsize) k * g / 2;
            const float *xk = xs + (gsize) k * g;
            __m512 d0 = _mm512_setzero_ps (), d1 = d0;
            for (int j = 0; j < g; j += 32) {
                __m128i v = _mm_loadu_si128 ((const __m128i *) (q + j / 2));
                d0 = _mm512_fmadd_ps (u8x16 (_mm_and_si128 (v, low)), _mm512_loadu_ps (xk + j), d0);
                d1 = _mm512_fmadd_ps (u8x16 (_mm_and_si128 (_mm_srli_epi16 (v, 4), low)),
                                      _mm512_loadu_ps (xk + j + 16), d1);
            }
            acc = _mm512_fmadd_ps (_mm512_add_ps (d0, d1), next_scale (&sc, k), acc);
        }
        y[r] = _mm512_reduce_add_ps (acc) +
               offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
    g_free (xs);
}

/* Rows widened to float32 for the GEMM panels: 16 at a time, the tail
 * masked (quantized rows end mid-group when cols is not a multiple). */
static inline __mmask16 first_n (int n)
{
    return n >= 16 ? 0xffff : (__mmask16) ((1u << n) - 1);
}

#define FLOAT_WIDEN(NAME, T, LOAD, LOAD_TAIL)                                  \
    static void NAME (const VlmMatrix *w, int r, int j0, int j1, float *out)   \
    {                                                                          \
        const T *a = (const T *) ROW (w, r);                                   \
        int j = j0;                                                            \
        for (; j + 16 <= j1; j += 16) /* unmasked: masked stores are slow */   \
            _mm512_storeu_ps (out + j - j0, LOAD (a + j));                     \
        if (j < j1)                                                            \
            _mm512_mask_storeu_ps (out + j - j0, first_n (j1 - j),             \
                                   LOAD_TAIL (a + j, first_n (j1 - j)));       \
    }

FLOAT_WIDEN (widen_f32, float, load_f32, load_f32_tail)
FLOAT_WIDEN (widen_bf16, guint16, load_bf16, load_bf16_tail)
FLOAT_WIDEN (widen_f16, guint16, load_f16, load_f16_tail)

/* 16 codes at j of a row (Q4: low nibble first, as stored). */
static inline __m128i codes16_q8 (const guint8 *row, int j)
{
    return _mm_loadu_si128 ((const __m128i *) (row + j));
}

static inline __m128i codes16_q4 (const guint8 *row, int j)
{
    __m128i v = _mm_loadu_si64 (row + j / 2), low = _mm_set1_epi8 (15);
    return _mm_unpacklo_epi8 (_mm_and_si128 (v, low), _mm_and_si128 (_mm_srli_epi16 (v, 4), low));
}

/* j0 a multiple of 16 (codes are read 16 at a time from whole groups). */
#define QUANT_WIDEN(NAME, CODES)                                               \
    static void NAME (const VlmMatrix *w, int r, int j0, int j1, float *out)   \
    {                                                                          \
        const guint8 *row = ROW (w, r);                                        \
        const guint16 *s = w->scales + (gsize) r * w->n_groups;                \
        const guint16 *b = w->biases + (gsize) r * w->n_groups;                \
        for (int j = j0; j < j1; j += 16) {                                    \
            int k = j / w->group;                                              \
            __m512 v = _mm512_fmadd_ps (u8x16 (CODES (row, j)),                \
                                        _mm512_set1_ps (_cvtsh_ss (s[k])),     \
                                        _mm512_set1_ps (_cvtsh_ss (b[k])));    \
            if (j + 16 <= j1)                                                  \
                _mm512_storeu_ps (out + j - j0, v);                            \
            else                                                               \
                _mm512_mask_storeu_ps (out + j - j0, first_n (j1 - j), v);     \
        }                                                                      \
    }

QUANT_WIDEN (widen_q8, codes16_q8)
QUANT_WIDEN (widen_q4, codes16_q4)

/* glibc's vector tanhf (libmvec, <= 4 ulp) for WIDTH lanes at a time. */
__m512 _ZGVeN16v_tanhf (__m512 x);

static void gelu (float *x, const float *mul, gsize n)
{
    const __m512 half = _mm512_set1_ps (0.5f), one = _mm512_set1_ps (1.0f);
    const __m512 k = _mm512_set1_ps (0.7978845608028654f), c = _mm512_set1_ps (0.044715f);
    gsize i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps (x + i);
        __m512 inner = _mm512_mul_ps (k, _mm512_fmadd_ps (_mm512_mul_ps (c, v), _mm512_mul_ps (v, v), v));
        __m512 y = _mm512_mul_ps (_mm512_mul_ps (half, v), _mm512_add_ps (one, _ZGVeN16v_tanhf (inner)));
        if (mul)
            y = _mm512_mul_ps (y, _mm512_loadu_ps (mul + i));
        _mm512_storeu_ps (x + i, y);
    }
    vlm_gelu_generic (x + i, mul ? mul + i : NULL, n - i);
}

/* glibc's vector expf (libmvec); lanes summed in double. */
__m512 _ZGVeN16v_expf (__m512 x);

static double exp_sum (float *x, gsize n, float shift)
{
    const __m512 s = _mm512_set1_ps (shift);
    __m512d sum = _mm512_setzero_pd ();
    gsize i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = _ZGVeN16v_expf (_mm512_sub_ps (_mm512_loadu_ps (x + i), s));
        _mm512_storeu_ps (x + i, e);
        __m256 hi = _mm256_castpd_ps (_mm512_extractf64x4_pd (_mm512_castps_pd (e), 1));
        sum = _mm512_add_pd (sum, _mm512_add_pd (_mm512_cvtps_pd (_mm512_castps512_ps256 (e)),
                                                 _mm512_cvtps_pd (hi)));
    }
    return _mm512_reduce_add_pd (sum) + vlm_exp_sum_generic (x + i, n - i, shift);
}

static void softmax (float *x, gsize n)
{
    __m512 m = _mm512_set1_ps (-INFINITY);
    gsize i = 0;
    for (; i + 16 <= n; i += 16) /* a NaN in x gives the second operand */
        m = _mm512_max_ps (_mm512_loadu_ps (x + i), m);
    float inv = (float) (1.0 / exp_sum (x, n, vlm_max_generic (x + i, n - i,
                                                               _mm512_reduce_max_ps (m))));
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps (x + i, _mm512_mul_ps (_mm512_loadu_ps (x + i), _mm512_set1_ps (inv)));
    for (; i < n; i++)
        x[i] *= inv;
}

/* The sum of r[k] - centre (or of its squares) in double, 16 values a
 * step in two vectors of 8. */
static double sum_about (const float *r, int D, double centre, gboolean square)
{
    const __m512d c = _mm512_set1_pd (centre);
    __m512d s0 = _mm512_setzero_pd (), s1 = s0;
    int k = 0;
    for (; k + 16 <= D; k += 16) {
        __m512 v = _mm512_loadu_ps (r + k);
        __m512d a = _mm512_sub_pd (_mm512_cvtps_pd (_mm512_castps512_ps256 (v)), c);
        __m512d b = _mm512_sub_pd (_mm512_cvtps_pd (_mm256_castpd_ps (
                                       _mm512_extractf64x4_pd (_mm512_castps_pd (v), 1))), c);
        s0 = square ? _mm512_fmadd_pd (a, a, s0) : _mm512_add_pd (s0, a);
        s1 = square ? _mm512_fmadd_pd (b, b, s1) : _mm512_add_pd (s1, b);
    }
    double t = _mm512_reduce_add_pd (_mm512_add_pd (s0, s1));
    for (; k < D; k++)
        t += square ? (r[k] - centre) * (r[k] - centre) : r[k] - centre;
    return t;
}

static void norm (float *o, const float *r, const float *w, const float *b, int D, float eps)
{
    double mean = b ? sum_about (r, D, 0, FALSE) / D : 0;
    const __m512 inv = _mm512_set1_ps ((float) (1.0 / sqrt (sum_about (r, D, mean, TRUE) / D + eps)));
    const __m512 m = _mm512_set1_ps ((float) mean), one = _mm512_set1_ps (1.0f);
    for (int k = 0; k < D; k += 16) {
        __mmask16 n = first_n (D - k);
        __m512 v = _mm512_maskz_loadu_ps (n, r + k), wv = _mm512_maskz_loadu_ps (n, w + k);
        v = b ? _mm512_fmadd_ps (_mm512_mul_ps (_mm512_sub_ps (v, m), inv), wv,
                                 _mm512_maskz_loadu_ps (n, b + k))
              : _mm512_mul_ps (_mm512_mul_ps (v, inv), _mm512_add_ps (one, wv));
        _mm512_mask_storeu_ps (o + k, n, v);
    }
}

const VlmKernels vlm_kernels_avx512 = {
    .name = "avx512",
    .rows = { rows_f32, rows_bf16, rows_f16, rows_q8, rows_q4 },
    .widen = { widen_f32, widen_bf16, widen_f16, widen_q8, widen_q4 },
    .gemm = { &vlm_gemm_avx512, &vlm_gemm_avx512, &vlm_gemm_avx512, &vlm_gemm_avx512,
              &vlm_gemm_avx512 },
    .gelu = gelu,
    .softmax = softmax,
    .norm = norm,
    .quantize = vlm_avx2_quantize,
};

/* ---- AVX-512 VNNI: integer dot products for Q8/Q4 ----
 * x is quantized once per product to int8 parts (vlm_int_x_new): for
 * matrices with fast_dot one for Q4 (as its GEMM takes x: with two, the
 * PaliGemma-3B decode on a Zen 4 ran 15.6 tok/s, with one 19.8-22.5) and
 * two for Q8 (16 bits of precision), three (24 bits, within float32-like
 * error of the exact path) for the others; vpdpbusd
 * multiplies the unsigned codes with them, 64 at a time. Groups of 32 and 64 (our quantizer's, and MLX's default); others
 * use the float kernels above. */

#define VNNI __attribute__ ((target ("avx512vnni")))

/* Without fast_dot, Q8 goes through the float kernel: as exact, and
 * quicker than three parts (two threads from memory 49 against 43-46
 * GB/s; two parts 66-70). */
static gpointer prepare_vnni (const VlmMatrix *w, const float *x)
{
    if (w->type == VLM_MAT_Q8 && !w->fast_dot)
        return NULL;
    return vlm_int_x_new (w, x, 127, VLM_INT_RESIDUAL (!w->fast_dot), 4, vlm_int_x_parts (w));
}

/* 64 codes (two subgroups) as bytes in the order the prepared x has. */
static inline __m512i codes_q8 (const guint8 *row, int sb)
{
    return _mm512_loadu_si512 (row + (gsize) sb * 32);
}

static inline __m512i codes_q4 (const guint8 *row, int sb)
{
    const __m256i low = _mm256_set1_epi8 (15);
    __m256i v = _mm256_loadu_si256 ((const __m256i *) (row + (gsize) sb * 16));
    __m256i lo = _mm256_and_si256 (v, low);
    __m256i hi = _mm256_and_si256 (_mm256_srli_epi16 (v, 4), low);
    __m256i a = _mm256_permute2x128_si256 (lo, hi, 0x20);
    __m256i b = _mm256_permute2x128_si256 (lo, hi, 0x31);
    return _mm512_inserti64x4 (_mm512_castsi256_si512 (a), b, 1);
}

/* The last, unpaired subgroup. */
static inline __m256i codes_q8_one (const guint8 *row, int sb)
{
    return _mm256_loadu_si256 ((const __m256i *) (row + (gsize) sb * 32));
}

static inline __m256i codes_q4_one (const guint8 *row, int sb)
{
    const __m128i low = _mm_set1_epi8 (15);
    __m128i v = _mm_loadu_si128 ((const __m128i *) (row + (gsize) sb * 16));
    return _mm256_set_m128i (_mm_and_si128 (_mm_srli_epi16 (v, 4), low), _mm_and_si128 (v, low));
}

/* The row's group scales, 16 groups at a time, and the lanes of the
 * group each int32 lane of a product belongs to. */
typedef struct {
    const guint16 *s;
    int n_groups, chunk;
    __m512 v;
} ScaleChunk;

static inline __m512 scales_at (ScaleChunk *c, unsigned grp, __m512i lanes)
{
    if (grp / 16 != c->chunk) {
        c->chunk = grp / 16;
        int left = c->n_groups - 16 * c->chunk;
        c->v = left >= 16 ? load_f16 (c->s + 16 * c->chunk)
                          : load_f16_tail (c->s + 16 * c->chunk, (__mmask16) ((1u << left) - 1));
    }
    return _mm512_permutexvar_ps (_mm512_add_epi32 (lanes, _mm512_set1_epi32 (grp % 16)), c->v);
}

/* f = h + (l (+ ll / R with a third part)) / R of the parts' integer
 * sums, R = VLM_INT_RESIDUAL; h alone with one part. */
static inline __m512 combine_parts (__m512i h, __m512i l, __m512i ll, const int parts)
{
    if (parts == 1)
        return _mm512_cvtepi32_ps (h);
    const __m512 inv = _mm512_set1_ps (1.0f / VLM_INT_RESIDUAL (parts == 3));
    __m512 lo = _mm512_cvtepi32_ps (l);
    if (parts == 3)
        lo = _mm512_fmadd_ps (_mm512_cvtepi32_ps (ll), inv, lo);
    return _mm512_fmadd_ps (lo, inv, _mm512_cvtepi32_ps (h));
}

/* Q4, four subgroups (64 bytes of codes) at once: the low nibbles are the
 * subgroups' even elements, the high ones their odd elements, which the
 * prepared x has in the same order; int32 lane i sums subgroup i / 4. The
 * block's x (both parts of the even and the odd elements, and the steps)
 * is loaded once for the rows that share it. */
typedef struct {
    __m512i h0, h1, l0, l1, ll0, ll1;
    __m512 dx4;
} XBlock4;

static inline __attribute__ ((always_inline)) XBlock4
x_block4 (const VlmIntX *p, int sb, const int parts)
{
    const gint8 *xh = p->xh + (gsize) sb * 32;
    const __m512i zero = _mm512_setzero_si512 ();
    XBlock4 b = { _mm512_loadu_si512 (xh), _mm512_loadu_si512 (xh + 64), zero, zero, zero, zero,
                  _mm512_loadu_ps (p->dx4 + (gsize) sb * 4) };
    if (parts > 1) {
        b.l0 = _mm512_loadu_si512 (p->xl + (gsize) sb * 32);
        b.l1 = _mm512_loadu_si512 (p->xl + (gsize) sb * 32 + 64);
    }
    if (parts > 2) {
        b.ll0 = _mm512_loadu_si512 (p->xll + (gsize) sb * 32);
        b.ll1 = _mm512_loadu_si512 (p->xll + (gsize) sb * 32 + 64);
    }
    return b;
}

VNNI static inline __attribute__ ((always_inline)) __m512
q4_block4 (const guint8 *row, int sb, const XBlock4 *x, __m512 scales, const int parts)
{
    const __m512i low = _mm512_set1_epi8 (15);
    __m512i v = _mm512_loadu_si512 (row + (gsize) sb * 16);
    __m512i even = _mm512_and_si512 (v, low);
    __m512i odd = _mm512_and_si512 (_mm512_srli_epi16 (v, 4), low);
    __m512i h = _mm512_dpbusd_epi32 (_mm512_setzero_si512 (), even, x->h0);
    h = _mm512_dpbusd_epi32 (h, odd, x->h1);
    __m512i l = _mm512_setzero_si512 (), ll = l;
    if (parts > 1)
        l = _mm512_dpbusd_epi32 (_mm512_dpbusd_epi32 (l, even, x->l0), odd, x->l1);
    if (parts > 2)
        ll = _mm512_dpbusd_epi32 (_mm512_dpbusd_epi32 (ll, even, x->ll0), odd, x->ll1);
    return _mm512_mul_ps (combine_parts (h, l, ll, parts), _mm512_mul_ps (x->dx4, scales));
}

/* The group size a constant for the compiler (a division by a variable
 * per step took a fifth of the Q8 kernel's time). */
#define VNNI_ROWS(NAME, CODES, CODES_ONE, FALLBACK, BLOCK4)                     \
    VNNI static inline __attribute__ ((always_inline)) void                     \
    NAME##_groups (const VlmMatrix *w, const float *xg, const VlmIntX *p,       \
                   float *y, int r0, int r1, const int group, const int parts) \
    {                                                                           \
        /* int32 lane -> group, relative to the first group of the step */      \
        const __m512i pair_lanes = group == 32                                  \
            ? _mm512_set_epi32 (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0) \
            : _mm512_setzero_si512 ();                                          \
        const __m512i block_lanes = group == 32                                 \
            ? _mm512_set_epi32 (3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0) \
            : _mm512_set_epi32 (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0); \
        int r = r0;                                                             \
        /* Q4 rows of whole blocks two at a time, sharing each block's x and  \
         * asking for the two rows eight ahead as one stream (one thread, rows \
         * of 2048: 34 -> 47 GB/s in cache, 25 -> 37 from memory) */            \
        for (; BLOCK4 && p->nsub % 4 == 0 && r + 2 <= r1; r += 2) {             \
            const guint8 *ra = ROW (w, r), *rb = ROW (w, r + 1), *ahead = ROW (w, r + 8); \
            ScaleChunk sc_a = { w->scales + (gsize) r * w->n_groups, w->n_groups, -1 }; \
            ScaleChunk sc_b = { w->scales + (gsize) (r + 1) * w->n_groups, w->n_groups, -1 }; \
            __m512 acca = _mm512_setzero_ps (), accb = acca;                    \
            vlm_prefetch_params_ahead (w, r);                                   \
            vlm_prefetch_params_ahead (w, r + 1);                               \
            for (int sb = 0; sb < p->nsub; sb += 4) {                           \
                /* the two rows eight ahead, as one stream */                    \
                vlm_prefetch_lines (ahead + (gsize) sb * 32, 0, 2);             \
                XBlock4 xb = x_block4 (p, sb, parts);                           \
                acca = _mm512_add_ps (acca, q4_block4 (ra, sb, &xb,             \
                    scales_at (&sc_a, sb * 32 / group, block_lanes), parts));   \
                accb = _mm512_add_ps (accb, q4_block4 (rb, sb, &xb,             \
                    scales_at (&sc_b, sb * 32 / group, block_lanes), parts));   \
            }                                                                   \
            y[r] = _mm512_reduce_add_ps (acca) +                                \
                   offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups); \
            y[r + 1] = _mm512_reduce_add_ps (accb) +                            \
                       offset_term (w->biases + (gsize) (r + 1) * w->n_groups, xg, w->n_groups); \
        }                                                                       \
        for (; r < r1; r++) {                                                   \
            const guint8 *row = ROW (w, r);                                     \
            const guint16 *s = w->scales + (gsize) r * w->n_groups;             \
            ScaleChunk sc = { s, w->n_groups, -1 };                             \
            __m512 acc = _mm512_setzero_ps ();                                  \
            int sb = 0;                                                         \
            vlm_prefetch_params_ahead (w, r);                                   \
            if (BLOCK4)                                                         \
                for (; sb + 4 <= p->nsub; sb += 4) {                            \
                    vlm_prefetch_ahead (row + (gsize) sb * 16, 4 * w->row_bytes);   \
                    XBlock4 xb = x_block4 (p, sb, parts);                       \
                    acc = _mm512_add_ps (acc, q4_block4 (row, sb, &xb,          \
                        scales_at (&sc, sb * 32 / group, block_lanes), parts)); \
                }                                                               \
            for (; sb + 2 <= p->nsub; sb += 2) {                                \
                vlm_prefetch_ahead (row + (gsize) sb * (BLOCK4 ? 16 : 32), 4 * w->row_bytes); \
                __m512i c = CODES (row, sb);                                    \
                __m512i h = _mm512_dpbusd_epi32 (_mm512_setzero_si512 (), c,    \
                                                 _mm512_loadu_si512 (p->xh + (gsize) sb * 32)); \
                __m512i l = parts > 1 ? _mm512_dpbusd_epi32 (_mm512_setzero_si512 (), c, \
                                            _mm512_loadu_si512 (p->xl + (gsize) sb * 32)) \
                                      : _mm512_setzero_si512 ();                \
                __m512i ll = parts > 2 ? _mm512_dpbusd_epi32 (_mm512_setzero_si512 (), c, \
                                             _mm512_loadu_si512 (p->xll + (gsize) sb * 32)) \
                                       : _mm512_setzero_si512 ();               \
                __m512 scale = _mm512_mul_ps (_mm512_loadu_ps (p->dx + (gsize) sb * 8), \
                                              scales_at (&sc, sb * 32 / group, pair_lanes)); \
                acc = _mm512_fmadd_ps (combine_parts (h, l, ll, parts), scale, acc); \
            }                                                                   \
            float t = _mm512_reduce_add_ps (acc);                               \
            if (sb < p->nsub) {                                                 \
                __m256i c = CODES_ONE (row, sb);                                \
                const __m256i z = _mm256_setzero_si256 ();                      \
                __m256i h = _mm256_dpbusd_epi32 (z, c,                          \
                    _mm256_loadu_si256 ((const __m256i *) (p->xh + (gsize) sb * 32))); \
                __m256i l = parts > 1 ? _mm256_dpbusd_epi32 (z, c,              \
                    _mm256_loadu_si256 ((const __m256i *) (p->xl + (gsize) sb * 32))) : z; \
                __m256i ll = parts > 2 ? _mm256_dpbusd_epi32 (z, c,             \
                    _mm256_loadu_si256 ((const __m256i *) (p->xll + (gsize) sb * 32))) : z; \
                t += vlm_avx2_hsum (vlm_avx2_combine_parts (h, l, ll, parts)) * \
                     p->dx[(gsize) sb * 8] * vlm_f16_to_f32 (s[sb * 32 / group]); \
            }                                                                   \
            y[r] = t + offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups); \
        }                                                                       \
    }                                                                           \
    VLM_INT_ROWS_BY_GROUP (VNNI, NAME, FALLBACK, (BLOCK4) ? 1 : 2) /* Q4 : Q8 */

VNNI_ROWS (rows_q8_vnni, codes_q8, codes_q8_one, rows_q8, FALSE)
VNNI_ROWS (rows_q4_vnni, codes_q4, codes_q4_one, rows_q4, TRUE)

/* Q8 made at load through the avx2 set's rows of int16 x where those
 * read faster (vlm_tuning.q8_rows_vnni, set before any kernel runs: the
 * two functions choose alike). */
static gpointer prepare_q8_tuned (const VlmMatrix *w, const float *x)
{
    if (w->fast_dot && !vlm_tuning.q8_rows_vnni)
        return vlm_kernels_avx2.prepare[VLM_MAT_Q8] (w, x);
    return prepare_vnni (w, x);
}

static void rows_q8_tuned (const VlmMatrix *w, const float *x, const float *xg, const void *prep,
                           float *y, int r0, int r1)
{
    if (w->fast_dot && !vlm_tuning.q8_rows_vnni)
        vlm_kernels_avx2.rows[VLM_MAT_Q8] (w, x, xg, prep, y, r0, r1);
    else
        rows_q8_vnni (w, x, xg, prep, y, r0, r1);
}

const VlmKernels vlm_kernels_avx512_vnni = {
    .name = "avx512-vnni",
    .rows = { rows_f32, rows_bf16, rows_f16, rows_q8_tuned, rows_q4_vnni },
    .prepare = { NULL, NULL, NULL, prepare_q8_tuned, prepare_vnni },
    .widen = { widen_f32, widen_bf16, widen_f16, widen_q8, widen_q4 },
    .gemm = { &vlm_gemm_avx512, &vlm_gemm_avx512, &vlm_gemm_avx512, &vlm_gemm_avx512,
              &vlm_gemm_avx512 },
    .gelu = gelu,
    .softmax = softmax,
    .norm = norm,
    .quantize = vlm_avx2_quantize,
};
