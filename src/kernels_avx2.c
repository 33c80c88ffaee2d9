/* kernels_avx2.c - AVX2 + FMA + F16C row kernels (for CPUs without
 * AVX-512). Built with -mavx2 -mfma -mf16c, called only when the CPU has
 * them (runtime.c). Same arithmetic as kernels_avx512.c, 8 lanes wide. */
#include "avx2_inline.h"
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ROW(w, r) ((const guint8 *) (w)->data + (gsize) (r) * (w)->row_bytes)

static inline __m256 load_bf16 (const guint16 *p)
{
    __m256i v = _mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) p));
    return _mm256_castsi256_ps (_mm256_slli_epi32 (v, 16));
}

static inline __m256 load_f16 (const guint16 *p)
{
    return _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) p));
}

static inline __m256 load_f32 (const float *p)
{
    return _mm256_loadu_ps (p);
}

static inline float scalar_bf16 (guint16 v) { return vlm_bf16_to_f32 (v); }
static inline float scalar_f16 (guint16 v) { return vlm_f16_to_f32 (v); }
static inline float scalar_f32 (float v) { return v; }

/* Rows read as in kernels_avx512.c: short ones one at a time as one
 * stream, long ones four at a time (AVX2 bf16 on a Zen 5: 31 -> 40 GB/s
 * one thread on rows of 2048); the software prefetch where it helps
 * (vlm_tuning.float_rows_prefetch). */
#define FLOAT_ROWS(NAME, T, LOAD, SCALAR)                                      \
    static void NAME (const VlmMatrix *w, const float *x, const float *xg,    \
                      const void *prep, float *y, int r0, int r1)         \
    {                                                                          \
        int K = w->cols, K8 = K & ~7;                                          \
        const gboolean prefetch = vlm_tuning.float_rows_prefetch;              \
        int r = r0;                                                            \
        for (; K > VLM_SHORT_ROW && r + 4 <= r1; r += 4) {                     \
            const T *a = (const T *) ROW (w, r), *b = (const T *) ROW (w, r + 1), \
                    *c = (const T *) ROW (w, r + 2), *d = (const T *) ROW (w, r + 3); \
            const guint8 *ahead = ROW (w, r + 8);                              \
            __m256 s0 = _mm256_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;        \
            for (int j = 0; j < K8; j += 8) {                                  \
                if (prefetch && (j * sizeof (T)) % 64 == 0) { /* a line of each row read */ \
                    vlm_prefetch_lines (ahead, 0, 4);                          \
                    ahead += 256;                                              \
                }                                                              \
                __m256 xv = _mm256_loadu_ps (x + j);                           \
                s0 = _mm256_fmadd_ps (LOAD (a + j), xv, s0);                   \
                s1 = _mm256_fmadd_ps (LOAD (b + j), xv, s1);                   \
                s2 = _mm256_fmadd_ps (LOAD (c + j), xv, s2);                   \
                s3 = _mm256_fmadd_ps (LOAD (d + j), xv, s3);                   \
            }                                                                  \
            float t0 = vlm_avx2_hsum (s0), t1 = vlm_avx2_hsum (s1), t2 = vlm_avx2_hsum (s2), t3 = vlm_avx2_hsum (s3); \
            for (int j = K8; j < K; j++) {                                     \
                t0 += SCALAR (a[j]) * x[j];                                    \
                t1 += SCALAR (b[j]) * x[j];                                    \
                t2 += SCALAR (c[j]) * x[j];                                    \
                t3 += SCALAR (d[j]) * x[j];                                    \
            }                                                                  \
            y[r] = t0;                                                         \
            y[r + 1] = t1;                                                     \
            y[r + 2] = t2;                                                     \
            y[r + 3] = t3;                                                     \
        }                                                                      \
        for (; r < r1; r++) {                                                  \
            const T *a = (const T *) ROW (w, r);                               \
            __m256 s0 = _mm256_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;        \
            int j = 0;                                                         \
            for (; j + 32 <= K8; j += 32) {                                    \
                if (prefetch) /* the lines of these 32 values, 8 KB on */      \
                    vlm_prefetch_lines (a + j, VLM_STREAM_AHEAD, sizeof (T) / 2); \
                s0 = _mm256_fmadd_ps (LOAD (a + j), _mm256_loadu_ps (x + j), s0); \
                s1 = _mm256_fmadd_ps (LOAD (a + j + 8), _mm256_loadu_ps (x + j + 8), s1); \
                s2 = _mm256_fmadd_ps (LOAD (a + j + 16), _mm256_loadu_ps (x + j + 16), s2); \
                s3 = _mm256_fmadd_ps (LOAD (a + j + 24), _mm256_loadu_ps (x + j + 24), s3); \
            }                                                                  \
            for (; j < K8; j += 8)                                             \
                s0 = _mm256_fmadd_ps (LOAD (a + j), _mm256_loadu_ps (x + j), s0); \
            float t0 = vlm_avx2_hsum (_mm256_add_ps (_mm256_add_ps (s0, s1), _mm256_add_ps (s2, s3))); \
            for (int j = K8; j < K; j++)                                       \
                t0 += SCALAR (a[j]) * x[j];                                    \
            y[r] = t0;                                                         \
        }                                                                      \
    }

FLOAT_ROWS (rows_f32, float, load_f32, scalar_f32)
FLOAT_ROWS (rows_bf16, guint16, load_bf16, scalar_bf16)
FLOAT_ROWS (rows_f16, guint16, load_f16, scalar_f16)

static inline __m256 u8x8 (__m128i v)
{
    return _mm256_cvtepi32_ps (_mm256_cvtepu8_epi32 (v));
}

static inline float offset_term (const guint16 *b, const float *xg, int n)
{
    __m256 acc = _mm256_setzero_ps ();
    int k = 0;
    for (; k + 8 <= n; k += 8)
        acc = _mm256_fmadd_ps (load_f16 (b + k), _mm256_loadu_ps (xg + k), acc);
    float t = vlm_avx2_hsum (acc);
    for (; k < n; k++)
        t += vlm_f16_to_f32 (b[k]) * xg[k];
    return t;
}

static void rows_q8 (const VlmMatrix *w, const float *x, const float *xg,
                     const void *prep, float *y, int r0, int r1)
{
    int g = w->group;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        __m256 acc = _mm256_setzero_ps ();
        for (int k = 0; k < w->n_groups; k++) {
            const guint8 *q = row + (gsize) k * g;
            const float *xk = x + (gsize) k * g;
            __m256 d0 = _mm256_setzero_ps (), d1 = d0;
            for (int j = 0; j < g; j += 16) {
                __m128i v = _mm_loadu_si128 ((const __m128i *) (q + j));
                d0 = _mm256_fmadd_ps (u8x8 (v), _mm256_loadu_ps (xk + j), d0);
                d1 = _mm256_fmadd_ps (u8x8 (_mm_srli_si128 (v, 8)),
                                      _mm256_loadu_ps (xk + j + 8), d1);
            }
            acc = _mm256_fmadd_ps (_mm256_add_ps (d0, d1),
                                   _mm256_set1_ps (_cvtsh_ss (s[k])), acc);
        }
        y[r] = vlm_avx2_hsum (acc) + offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
}

/* Rows widened to float32 for the GEMM panels, 8 at a time; the last few
 * (quantized rows can end mid-group) by the portable code. */
#define FLOAT_WIDEN(NAME, T, LOAD)                                             \
    static void NAME (const VlmMatrix *w, int r, int j0, int j1, float *out)   \
    {                                                                          \
        const T *a = (const T *) ROW (w, r);                                   \
        int j = j0;                                                            \
        for (; j + 8 <= j1; j += 8)                                            \
            _mm256_storeu_ps (out + j - j0, LOAD (a + j));                     \
        for (; j < j1; j++)                                                    \
            out[j - j0] = vlm_matrix_get_element (w, r, j);                    \
    }

FLOAT_WIDEN (widen_f32, float, load_f32)
FLOAT_WIDEN (widen_bf16, guint16, load_bf16)
FLOAT_WIDEN (widen_f16, guint16, load_f16)

/* 8 codes at j of a row (j a multiple of 8; Q4: low nibble first). */
static inline __m128i codes8_q8 (const guint8 *row, int j)
{
    return _mm_loadu_si64 (row + j);
}

static inline __m128i codes8_q4 (const guint8 *row, int j)
{
    gint32 four;
    memcpy (&four, row + j / 2, 4);
    __m128i v = _mm_cvtsi32_si128 (four), low = _mm_set1_epi8 (15);
    return _mm_unpacklo_epi8 (_mm_and_si128 (v, low), _mm_and_si128 (_mm_srli_epi16 (v, 4), low));
}

/* j0 a multiple of 8 (codes are read 8 at a time). */
#define QUANT_WIDEN(NAME, CODES)                                               \
    static void NAME (const VlmMatrix *w, int r, int j0, int j1, float *out)   \
    {                                                                          \
        const guint8 *row = ROW (w, r);                                        \
        const guint16 *s = w->scales + (gsize) r * w->n_groups;                \
        const guint16 *b = w->biases + (gsize) r * w->n_groups;                \
        int j = j0;                                                            \
        for (; j + 8 <= j1; j += 8) {                                          \
            int k = j / w->group;                                              \
            _mm256_storeu_ps (out + j - j0,                                    \
                              _mm256_fmadd_ps (u8x8 (CODES (row, j)),          \
                                               _mm256_set1_ps (_cvtsh_ss (s[k])), \
                                               _mm256_set1_ps (_cvtsh_ss (b[k])))); \
        }                                                                      \
        for (; j < j1; j++)                                                    \
            out[j - j0] = vlm_matrix_get_element (w, r, j);                    \
    }

QUANT_WIDEN (widen_q8, codes8_q8)
QUANT_WIDEN (widen_q4, codes8_q4)

/* See kernels_avx512.c: x split into even and odd elements per 32. */
static void rows_q4 (const VlmMatrix *w, const float *x, const float *xg,
                     const void *prep, float *y, int r0, int r1)
{
    int g = w->group, n = w->n_groups * g;
    float *xs = g_malloc (n * sizeof (float));
    for (int j = 0; j < n; j += 32)
        for (int i = 0; i < 16; i++) {
            xs[j + i] = x[j + 2 * i];
            xs[j + 16 + i] = x[j + 2 * i + 1];
        }
    const __m128i low = _mm_set1_epi8 (15);
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        __m256 acc = _mm256_setzero_ps ();
        for (int k = 0; k < w->n_groups; k++) {
            const guint8 *q = row + (gsize) k * g / 2;
            const float *xk = xs + (gsize) k * g;
            __m256 d0 = _mm256_setzero_ps (), d1 = d0;
            for (int j = 0; j < g; j += 32) {
                __m128i v = _mm_loadu_si128 ((const __m128i *) (q + j / 2));
                __m128i lo = _mm_and_si128 (v, low);
                __m128i hi = _mm_and_si128 (_mm_srli_epi16 (v, 4), low);
                d0 = _mm256_fmadd_ps (u8x8 (lo), _mm256_loadu_ps (xk + j), d0);
                d1 = _mm256_fmadd_ps (u8x8 (_mm_srli_si128 (lo, 8)), _mm256_loadu_ps (xk + j + 8), d1);
                d0 = _mm256_fmadd_ps (u8x8 (hi), _mm256_loadu_ps (xk + j + 16), d0);
                d1 = _mm256_fmadd_ps (u8x8 (_mm_srli_si128 (hi, 8)), _mm256_loadu_ps (xk + j + 24), d1);
            }
            acc = _mm256_fmadd_ps (_mm256_add_ps (d0, d1),
                                   _mm256_set1_ps (_cvtsh_ss (s[k])), acc);
        }
        y[r] = vlm_avx2_hsum (acc) + offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
    g_free (xs);
}

/* glibc's vector tanhf (libmvec, <= 4 ulp) for WIDTH lanes at a time. */
__m256 _ZGVdN8v_tanhf (__m256 x);

static void gelu (float *x, const float *mul, gsize n)
{
    const __m256 half = _mm256_set1_ps (0.5f), one = _mm256_set1_ps (1.0f);
    const __m256 k = _mm256_set1_ps (0.7978845608028654f), c = _mm256_set1_ps (0.044715f);
    gsize i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps (x + i);
        __m256 inner = _mm256_mul_ps (k, _mm256_fmadd_ps (_mm256_mul_ps (c, v), _mm256_mul_ps (v, v), v));
        __m256 y = _mm256_mul_ps (_mm256_mul_ps (half, v), _mm256_add_ps (one, _ZGVdN8v_tanhf (inner)));
        if (mul)
            y = _mm256_mul_ps (y, _mm256_loadu_ps (mul + i));
        _mm256_storeu_ps (x + i, y);
    }
    vlm_gelu_generic (x + i, mul ? mul + i : NULL, n - i);
}

/* glibc's vector expf (libmvec); lanes summed in double. */
__m256 _ZGVdN8v_expf (__m256 x);

static double exp_sum (float *x, gsize n, float shift)
{
    const __m256 s = _mm256_set1_ps (shift);
    __m256d sum = _mm256_setzero_pd ();
    gsize i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = _ZGVdN8v_expf (_mm256_sub_ps (_mm256_loadu_ps (x + i), s));
        _mm256_storeu_ps (x + i, e);
        sum = _mm256_add_pd (sum, _mm256_add_pd (_mm256_cvtps_pd (_mm256_castps256_ps128 (e)),
                                                 _mm256_cvtps_pd (_mm256_extractf128_ps (e, 1))));
    }
    double lanes[4];
    _mm256_storeu_pd (lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + vlm_exp_sum_generic (x + i, n - i, shift);
}

static void softmax (float *x, gsize n)
{
    __m256 m = _mm256_set1_ps (-INFINITY);
    gsize i = 0;
    for (; i + 8 <= n; i += 8) /* a NaN in x gives the second operand */
        m = _mm256_max_ps (_mm256_loadu_ps (x + i), m);
    float lanes[8];
    _mm256_storeu_ps (lanes, m);
    float inv = (float) (1.0 / exp_sum (x, n, vlm_max_generic (x + i, n - i,
                                                               vlm_max_generic (lanes, 8, -INFINITY))));
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps (x + i, _mm256_mul_ps (_mm256_loadu_ps (x + i), _mm256_set1_ps (inv)));
    for (; i < n; i++)
        x[i] *= inv;
}

/* The sum of r[k] - centre (or of its squares) in double, 8 values a step
 * in two vectors of 4. */
static double sum_about (const float *r, int D, double centre, gboolean square)
{
    const __m256d c = _mm256_set1_pd (centre);
    __m256d s0 = _mm256_setzero_pd (), s1 = s0;
    int k = 0;
    for (; k + 8 <= D; k += 8) {
        __m256 v = _mm256_loadu_ps (r + k);
        __m256d a = _mm256_sub_pd (_mm256_cvtps_pd (_mm256_castps256_ps128 (v)), c);
        __m256d b = _mm256_sub_pd (_mm256_cvtps_pd (_mm256_extractf128_ps (v, 1)), c);
        s0 = square ? _mm256_fmadd_pd (a, a, s0) : _mm256_add_pd (s0, a);
        s1 = square ? _mm256_fmadd_pd (b, b, s1) : _mm256_add_pd (s1, b);
    }
    double lanes[4];
    _mm256_storeu_pd (lanes, _mm256_add_pd (s0, s1));
    double t = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; k < D; k++)
        t += square ? (r[k] - centre) * (r[k] - centre) : r[k] - centre;
    return t;
}

static void norm (float *o, const float *r, const float *w, const float *b, int D, float eps)
{
    double mean = b ? sum_about (r, D, 0, FALSE) / D : 0;
    float inv = (float) (1.0 / sqrt (sum_about (r, D, mean, TRUE) / D + eps));
    const __m256 iv = _mm256_set1_ps (inv), m = _mm256_set1_ps ((float) mean),
                 one = _mm256_set1_ps (1.0f);
    int k = 0;
    for (; k + 8 <= D; k += 8) {
        __m256 v = _mm256_loadu_ps (r + k), wv = _mm256_loadu_ps (w + k);
        v = b ? _mm256_fmadd_ps (_mm256_mul_ps (_mm256_sub_ps (v, m), iv), wv,
                                 _mm256_loadu_ps (b + k))
              : _mm256_mul_ps (_mm256_mul_ps (v, iv), _mm256_add_ps (one, wv));
        _mm256_storeu_ps (o + k, v);
    }
    for (; k < D; k++)
        o[k] = b ? (r[k] - (float) mean) * inv * w[k] + b[k] : (r[k] * inv) * (1.0f + w[k]);
}

/* ---- integer dot products for Q8/Q4 ----
 * vpmaddubsw multiplies unsigned bytes with signed ones in pairs, summed
 * into int16 with saturation. x comes in one int8 part for Q4 with
 * fast_dot (as its GEMM takes x; with two, 16 bits of precision, the
 * kernel was compute bound: PaliGemma-3B decode, Zen 4, two threads,
 * 18.0-18.1 -> 19.1-22.3 tok/s), two for Q8 (vlm_int_x_new), else three
 * (24 bits); Q8 with fast_dot and groups of 32 takes x as int16 instead
 * (prepare_q8). Q4 codes (<= 15) go in as they are; Q8 codes are
 * recentred, q - 128, and multiplied through the sign trick (|q - 128| with
 * x's signs flipped where q < 128) so that no pair can saturate; the 128 q
 * part moves into the offset term. */
static gpointer prepare_int (const VlmMatrix *w, const float *x)
{
    return vlm_int_x_new (w, x, 127, VLM_INT_RESIDUAL (!w->fast_dot), 2, vlm_int_x_parts (w));
}

/* Q8 with fast_dot: x as int16 codes (16 bits, as the two int8 parts)
 * multiplied with the codes widened to int16 by vpmaddwd, 16 products a
 * step and no recentring: half the operations of the two parts' sign
 * trick, which left the Q8 kernel compute bound (two threads of a Zen 4
 * read 27 GB/s of codes where memory gives 32-37). */
typedef struct {
    int nsub;
    float *dx;   /* [nsub] */
    gint16 *x;   /* [nsub * 32] */
} IntX16;

static gpointer prepare_q8 (const VlmMatrix *w, const float *x)
{
    if (!w->fast_dot || w->group != 32)
        return prepare_int (w, x);
    int nsub = w->n_groups;
    IntX16 *p = g_malloc (sizeof (IntX16) + (gsize) nsub * (sizeof (float) + 64));
    p->nsub = nsub;
    p->dx = (float *) (p + 1);
    p->x = (gint16 *) (p->dx + nsub);
    /* x is zero past cols already (matrix.c pads it to whole groups) */
    vlm_avx2_x_codes (x, nsub * 32, nsub * 32, FALSE, p->x, p->dx, NULL, 1);
    return p;
}

static inline __m256i madd_pairs (__m256i u, const gint8 *x)
{
    return _mm256_madd_epi16 (_mm256_maddubs_epi16 (u, _mm256_loadu_si256 ((const __m256i *) x)),
                              _mm256_set1_epi16 (1));
}

/* sum over 32 codes of q x (x's parts xh, xl and xll, 32 bytes apart
 * subgroup by subgroup: offsets from xh) */
static inline __attribute__ ((always_inline)) __m256
dot_q4 (const guint8 *row, int sb, const gint8 *xh, gsize to_l, gsize to_ll, const int parts)
{
    const __m128i low = _mm_set1_epi8 (15);
    __m128i v = _mm_loadu_si128 ((const __m128i *) (row + (gsize) sb * 16));
    __m256i c = _mm256_set_m128i (_mm_and_si128 (_mm_srli_epi16 (v, 4), low), _mm_and_si128 (v, low));
    const __m256i zero = _mm256_setzero_si256 ();
    return vlm_avx2_combine_parts (madd_pairs (c, xh), parts > 1 ? madd_pairs (c, xh + to_l) : zero,
                    parts > 2 ? madd_pairs (c, xh + to_ll) : zero, parts);
}

/* sum over 32 codes of (q - 128) x */
static inline __attribute__ ((always_inline)) __m256
dot_q8 (const guint8 *row, int sb, const gint8 *xh, gsize to_l, gsize to_ll, const int parts)
{
    __m256i c = _mm256_xor_si256 (_mm256_loadu_si256 ((const __m256i *) (row + (gsize) sb * 32)),
                                  _mm256_set1_epi8 ((char) 0x80));
    __m256i u = _mm256_abs_epi8 (c);
    const __m256i ones = _mm256_set1_epi16 (1);
#define SIGNED_PART(P)                                                          \
    _mm256_madd_epi16 (_mm256_maddubs_epi16 (                                   \
        u, _mm256_sign_epi8 (_mm256_loadu_si256 ((const __m256i *) (P)), c)), ones)
    return vlm_avx2_combine_parts (SIGNED_PART (xh), SIGNED_PART (xh + to_l),
                    parts > 2 ? SIGNED_PART (xh + to_ll) : _mm256_setzero_si256 (), parts);
#undef SIGNED_PART
}

/* Q8 a subgroup (32 codes) a step; the group size a constant for the
 * compiler, as in kernels_avx512.c. */
static inline __attribute__ ((always_inline)) void
rows_q8_parts_groups (const VlmMatrix *w, const float *xg, const VlmIntX *p, float *y, int r0,
                    int r1, const int group, const int parts)
{
    gsize to_l = p->xl - p->xh, to_ll = parts > 2 ? (gsize) (p->xll - p->xh) : 0;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        __m256 acc = _mm256_setzero_ps ();
        vlm_prefetch_params_ahead (w, r);
        for (int sb = 0; sb < p->nsub; sb++) {
            if (sb % 2 == 0)
                vlm_prefetch_ahead (row + (gsize) sb * 32, 4 * w->row_bytes);
            __m256 f = dot_q8 (row, sb, p->xh + (gsize) sb * 32, to_l, to_ll, parts);
            float scale = _cvtsh_ss (s[sb * 32 / group]) * p->dx[(gsize) sb * 8];
            acc = _mm256_fmadd_ps (f, _mm256_set1_ps (scale), acc);
        }
        /* the codes went in recentred: q = (q - 128) + 128 */
        y[r] = vlm_avx2_hsum (acc) + offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups) +
               128.0f * offset_term (s, xg, w->n_groups);
    }
}
VLM_INT_ROWS_BY_GROUP (, rows_q8_parts, rows_q8, 2)

/* sum over 32 codes of q x16 (int32 lanes) */
static inline __m256i dot_q8_x16 (const guint8 *row, const gint16 *x)
{
    __m256i c0 = _mm256_cvtepu8_epi16 (_mm_loadu_si128 ((const __m128i *) row));
    __m256i c1 = _mm256_cvtepu8_epi16 (_mm_loadu_si128 ((const __m128i *) (row + 16)));
    return _mm256_add_epi32 (_mm256_madd_epi16 (c0, _mm256_loadu_si256 ((const __m256i *) x)),
                             _mm256_madd_epi16 (c1, _mm256_loadu_si256 ((const __m256i *) (x + 16))));
}

/* Q8 groups of 32 against IntX16, two subgroups a step into two chains
 * of sums. */
static void rows_q8_x16 (const VlmMatrix *w, const float *xg, const IntX16 *p, float *y, int r0,
                         int r1)
{
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        __m256 acc0 = _mm256_setzero_ps (), acc1 = acc0;
        vlm_prefetch_params_ahead (w, r);
        int sb = 0;
        for (; sb + 2 <= p->nsub; sb += 2) {
            vlm_prefetch_ahead (row + (gsize) sb * 32, 4 * w->row_bytes);
            __m256i d0 = dot_q8_x16 (row + (gsize) sb * 32, p->x + (gsize) sb * 32);
            __m256i d1 = dot_q8_x16 (row + (gsize) sb * 32 + 32, p->x + (gsize) sb * 32 + 32);
            acc0 = _mm256_fmadd_ps (_mm256_cvtepi32_ps (d0), _mm256_set1_ps (_cvtsh_ss (s[sb]) * p->dx[sb]),
                                    acc0);
            acc1 = _mm256_fmadd_ps (_mm256_cvtepi32_ps (d1),
                                    _mm256_set1_ps (_cvtsh_ss (s[sb + 1]) * p->dx[sb + 1]), acc1);
        }
        if (sb < p->nsub)
            acc0 = _mm256_fmadd_ps (_mm256_cvtepi32_ps (dot_q8_x16 (row + (gsize) sb * 32,
                                                                    p->x + (gsize) sb * 32)),
                                    _mm256_set1_ps (_cvtsh_ss (s[sb]) * p->dx[sb]), acc0);
        y[r] = vlm_avx2_hsum (_mm256_add_ps (acc0, acc1)) +
               offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
}

static void rows_q8_int (const VlmMatrix *w, const float *x, const float *xg, const void *prep,
                         float *y, int r0, int r1)
{
    if (prep && w->fast_dot && w->group == 32)
        rows_q8_x16 (w, xg, prep, y, r0, r1);
    else
        rows_q8_parts (w, x, xg, prep, y, r0, r1);
}

/* One part of x against Q4 codes of two subgroups: the even and the odd
 * elements' pair products summed in int16 lanes (at most 2 x 2 x 15 x 127
 * = 7620), which a vpmaddwd then sums into int32 lanes: 0-3 the first
 * subgroup, 4-7 the second. */
static inline __m256i q4_pair_part (__m256i even, __m256i odd, const gint8 *x)
{
    __m256i e = _mm256_maddubs_epi16 (even, _mm256_loadu_si256 ((const __m256i *) x));
    __m256i o = _mm256_maddubs_epi16 (odd, _mm256_loadu_si256 ((const __m256i *) (x + 32)));
    return _mm256_add_epi16 (e, o);
}

/* Each lane's group scale for subgroups sb and sb + 1 (lanes 0-3, 4-7). */
static inline __m256 pair_scales (const guint16 *s, int sb, const int group)
{
    if (group == 64) /* sb is even: one group */
        return _mm256_set1_ps (_cvtsh_ss (s[sb / 2]));
    gint32 two;
    memcpy (&two, s + sb, 4);
    return _mm256_permutevar8x32_ps (_mm256_castps128_ps256 (_mm_cvtph_ps (_mm_cvtsi32_si128 (two))),
                                     _mm256_set_epi32 (1, 1, 1, 1, 0, 0, 0, 0));
}

/* acc + the products of subgroups sb and sb + 1 of a Q4 row (32 bytes of
 * codes: the low nibbles are both subgroups' even elements and the high
 * ones their odd elements, the order x is prepared in, blocks of two).
 * x has one part (Q4 with fast_dot) or three (vlm_avx2_combine_parts); Q4 never gets
 * two (vlm_int_x_parts). */
static inline __attribute__ ((always_inline)) __m256
q4_pair (const guint8 *row, int sb, const VlmIntX *p, const guint16 *s, gsize to_l, gsize to_ll,
         const int group, const int parts, __m256 acc)
{
    const __m256i low = _mm256_set1_epi8 (15), ones = _mm256_set1_epi16 (1);
    __m256i v = _mm256_loadu_si256 ((const __m256i *) (row + (gsize) sb * 16));
    __m256i even = _mm256_and_si256 (v, low);
    __m256i odd = _mm256_and_si256 (_mm256_srli_epi16 (v, 4), low);
    const gint8 *xh = p->xh + (gsize) sb * 32;
    __m256i h = _mm256_madd_epi16 (q4_pair_part (even, odd, xh), ones);
    __m256 f = parts == 3
        ? vlm_avx2_combine_parts (h, _mm256_madd_epi16 (q4_pair_part (even, odd, xh + to_l), ones),
                   _mm256_madd_epi16 (q4_pair_part (even, odd, xh + to_ll), ones), 3)
        : _mm256_cvtepi32_ps (h);
    __m256 scale = _mm256_mul_ps (_mm256_loadu_ps (p->dx4 + (gsize) sb * 4), pair_scales (s, sb, group));
    return _mm256_fmadd_ps (f, scale, acc);
}

/* Q4 two subgroups a step, four into two chains of sums (one FMA's
 * latency a step held one chain back); an odd last subgroup alone. Half
 * the vector operations per code of one subgroup a step, which needs a
 * lane insert and twice the products and conversions: the AVX2 Q4 kernel
 * was compute bound (two threads 16-18 tok/s where the read rate allows
 * 33). */
static inline __attribute__ ((always_inline)) void
rows_q4_int_groups (const VlmMatrix *w, const float *xg, const VlmIntX *p, float *y, int r0,
                    int r1, const int group, const int parts)
{
    gsize to_l = parts > 1 ? (gsize) (p->xl - p->xh) : 0;
    gsize to_ll = parts > 2 ? (gsize) (p->xll - p->xh) : 0;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
        __m256 acc0 = _mm256_setzero_ps (), acc1 = acc0;
        int sb = 0;
        vlm_prefetch_params_ahead (w, r);
        for (; sb + 4 <= p->nsub; sb += 4) {
            vlm_prefetch_ahead (row + (gsize) sb * 16, 4 * w->row_bytes);
            acc0 = q4_pair (row, sb, p, s, to_l, to_ll, group, parts, acc0);
            acc1 = q4_pair (row, sb + 2, p, s, to_l, to_ll, group, parts, acc1);
        }
        if (sb + 2 <= p->nsub) {
            acc0 = q4_pair (row, sb, p, s, to_l, to_ll, group, parts, acc0);
            sb += 2;
        }
        float t = vlm_avx2_hsum (_mm256_add_ps (acc0, acc1));
        if (sb < p->nsub) {
            __m256 f = dot_q4 (row, sb, p->xh + (gsize) sb * 32, to_l, to_ll, parts);
            t += vlm_avx2_hsum (f) * (_cvtsh_ss (s[sb * 32 / group]) * p->dx[(gsize) sb * 8]);
        }
        y[r] = t + offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
}
VLM_INT_ROWS_BY_GROUP (, rows_q4_int, rows_q4, 1)

/* Codes 0 .. 255 of 32 weights, in order. */
static inline __m256i codes32 (const float *x, __m256 off, __m256 step, int levels)
{
    const __m256i zero = _mm256_setzero_si256 (), top = _mm256_set1_epi32 (levels);
    __m256i c[4];
    for (int i = 0; i < 4; i++) {
        __m256 t = _mm256_div_ps (_mm256_sub_ps (_mm256_loadu_ps (x + 8 * i), off), step);
        c[i] = _mm256_min_epi32 (_mm256_max_epi32 (_mm256_cvtps_epi32 (t), zero), top);
    }
    /* packs work within 128-bit lanes: the permute puts them in order */
    __m256i all = _mm256_packus_epi16 (_mm256_packus_epi32 (c[0], c[1]),
                                       _mm256_packus_epi32 (c[2], c[3]));
    return _mm256_permutevar8x32_epi32 (all, _mm256_setr_epi32 (0, 4, 1, 5, 2, 6, 3, 7));
}

void vlm_avx2_quantize (const float *x, int n, int bits, guint8 *q, guint16 *s, guint16 *o)
{
    if (n % 32) {
        vlm_quantize_generic (x, n, bits, q, s, o);
        return;
    }
    int levels = (1 << bits) - 1;
    __m256 lo = _mm256_loadu_ps (x), hi = lo;
    for (int j = 8; j < n; j += 8) {
        __m256 v = _mm256_loadu_ps (x + j);
        lo = _mm256_min_ps (v, lo);
        hi = _mm256_max_ps (v, hi);
    }
    float l = vlm_avx2_hmin (lo), h = vlm_avx2_hmax (hi);
    *s = vlm_f32_to_f16 ((h - l) / levels);
    *o = vlm_f32_to_f16 (l);
    float step = vlm_f16_to_f32 (*s);
    if (!(step > 0)) /* q is zeroed: all codes 0 */
        return;
    __m256 off = _mm256_set1_ps (vlm_f16_to_f32 (*o)), st = _mm256_set1_ps (step);
    for (int j = 0; j < n; j += 32) {
        __m256i c = codes32 (x + j, off, st, levels);
        if (bits == 8) {
            _mm256_storeu_si256 ((__m256i *) (q + j), c);
        } else { /* byte pairs as 16-bit words: low code | high code << 4 */
            __m256i nib = _mm256_or_si256 (_mm256_and_si256 (c, _mm256_set1_epi16 (0x0f)),
                                           _mm256_and_si256 (_mm256_srli_epi16 (c, 4),
                                                             _mm256_set1_epi16 (0xf0)));
            __m256i packed = _mm256_permute4x64_epi64 (_mm256_packus_epi16 (nib, nib), 0x08);
            _mm_storeu_si128 ((__m128i *) (q + j / 2), _mm256_castsi256_si128 (packed));
        }
    }
}

const VlmKernels vlm_kernels_avx2 = {
    .name = "avx2",
    .rows = { rows_f32, rows_bf16, rows_f16, rows_q8_int, rows_q4_int },
    .prepare = { NULL, NULL, NULL, prepare_q8, prepare_int },
    .widen = { widen_f32, widen_bf16, widen_f16, widen_q8, widen_q4 },
    .gemm = { &vlm_gemm_avx2, &vlm_gemm_avx2, &vlm_gemm_avx2, &vlm_gemm_avx2, &vlm_gemm_avx2 },
    .gelu = gelu,
    .softmax = softmax,
    .norm = norm,
    .quantize = vlm_avx2_quantize,
};
