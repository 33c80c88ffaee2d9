/* kernels_avx512.c - AVX-512 (F, BW, VL) row kernels. Built with
 * -mavx512f -mavx512bw -mavx512vl -mf16c -mfma, called only when the CPU
 * has them (runtime.c). Weights are widened to float32 in registers and
 * multiplied with float32 activations: memory bandwidth is the limit. */
#include "kernels.h"

#include <immintrin.h>

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

/* Four rows at a time share each load of x. */
#define FLOAT_ROWS(NAME, T, LOAD, LOAD_TAIL)                                   \
    static void NAME (const VlmMatrix *w, const float *x, const float *xg,    \
                      float *y, int r0, int r1)                                \
    {                                                                          \
        int K = w->cols, K16 = K & ~15;                                        \
        __mmask16 tail = (__mmask16) ((1u << (K - K16)) - 1);                  \
        int r = r0;                                                            \
        for (; r + 4 <= r1; r += 4) {                                          \
            const T *a = (const T *) ROW (w, r), *b = (const T *) ROW (w, r + 1), \
                    *c = (const T *) ROW (w, r + 2), *d = (const T *) ROW (w, r + 3); \
            __m512 s0 = _mm512_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;        \
            for (int j = 0; j < K16; j += 16) {                                \
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
            __m512 s0 = _mm512_setzero_ps ();                                  \
            for (int j = 0; j < K16; j += 16)                                  \
                s0 = _mm512_fmadd_ps (LOAD (a + j), _mm512_loadu_ps (x + j), s0); \
            if (tail)                                                          \
                s0 = _mm512_fmadd_ps (LOAD_TAIL (a + K16, tail),               \
                                      _mm512_maskz_loadu_ps (tail, x + K16), s0); \
            y[r] = _mm512_reduce_add_ps (s0);                                  \
        }                                                                      \
    }

FLOAT_ROWS (rows_f32, float, load_f32, load_f32_tail)
FLOAT_ROWS (rows_bf16, guint16, load_bf16, load_bf16_tail)
FLOAT_ROWS (rows_f16, guint16, load_f16, load_f16_tail)

static inline __m512 u8x16 (__m128i v)
{
    return _mm512_cvtepi32_ps (_mm512_cvtepu8_epi32 (v));
}

static inline float group_scale (const guint16 *s, int k)
{
    return _mm_cvtss_f32 (_mm_cvtph_ps (_mm_cvtsi32_si128 (s[k])));
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

static void rows_q8 (const VlmMatrix *w, const float *x, const float *xg,
                     float *y, int r0, int r1)
{
    int g = w->group;
    for (int r = r0; r < r1; r++) {
        const guint8 *row = ROW (w, r);
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
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
            acc = _mm512_fmadd_ps (_mm512_add_ps (d0, d1), _mm512_set1_ps (group_scale (s, k)), acc);
        }
        y[r] = _mm512_reduce_add_ps (acc) +
               offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
}

/* Q4 byte k holds codes 2k (low nibble) and 2k+1 (high): x is split into
 * its even and odd elements per 32 once, so that nibbles need no shuffle. */
static void rows_q4 (const VlmMatrix *w, const float *x, const float *xg,
                     float *y, int r0, int r1)
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
        const guint16 *s = w->scales + (gsize) r * w->n_groups;
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
            acc = _mm512_fmadd_ps (_mm512_add_ps (d0, d1), _mm512_set1_ps (group_scale (s, k)), acc);
        }
        y[r] = _mm512_reduce_add_ps (acc) +
               offset_term (w->biases + (gsize) r * w->n_groups, xg, w->n_groups);
    }
    g_free (xs);
}

const VlmKernels vlm_kernels_avx512 = {
    .name = "avx512",
    .rows = { rows_f32, rows_bf16, rows_f16, rows_q8, rows_q4 },
};
