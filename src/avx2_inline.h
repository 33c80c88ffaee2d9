/* avx2_inline.h - small AVX2 helpers inlined into every file built with
 * -mavx2 (kernels_avx2.c, gemm_avx2.c, kernels_avx512.c's 256-bit tails). */
#ifndef VLM_AVX2_INLINE_H
#define VLM_AVX2_INLINE_H

#include "kernels.h"

#include <immintrin.h>

static inline float vlm_avx2_hsum (__m256 v)
{
    __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
    s = _mm_add_ps (s, _mm_movehl_ps (s, s));
    return _mm_cvtss_f32 (_mm_add_ss (s, _mm_movehdup_ps (s)));
}

static inline float vlm_avx2_hmax (__m256 v)
{
    __m128 m = _mm_max_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
    m = _mm_max_ps (m, _mm_movehl_ps (m, m));
    return _mm_cvtss_f32 (_mm_max_ss (m, _mm_movehdup_ps (m)));
}

static inline float vlm_avx2_hmin (__m256 v)
{
    __m128 m = _mm_min_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
    m = _mm_min_ps (m, _mm_movehl_ps (m, m));
    return _mm_cvtss_f32 (_mm_min_ss (m, _mm_movehdup_ps (m)));
}

/* h + (l (+ ll / R with a third part)) / R of x's parts' integer sums, R =
 * VLM_INT_RESIDUAL; h alone with one part. */
static inline __m256 vlm_avx2_combine_parts (__m256i h, __m256i l, __m256i ll, const int parts)
{
    if (parts == 1)
        return _mm256_cvtepi32_ps (h);
    const __m256 inv = _mm256_set1_ps (1.0f / VLM_INT_RESIDUAL (parts == 3));
    __m256 lo = _mm256_cvtepi32_ps (l);
    if (parts == 3)
        lo = _mm256_fmadd_ps (_mm256_cvtepi32_ps (ll), inv, lo);
    return _mm256_fmadd_ps (lo, inv, _mm256_cvtepi32_ps (h));
}

#endif
