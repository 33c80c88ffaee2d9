/* kernels.h - the innermost loops, one set per instruction set, chosen at
 * run time by CPU detection (runtime.c). Every kernel computes, for rows
 * [r0, r1) of W, y[r] = dot(W[r], x) with float32 activations and float32
 * accumulation, so all sets agree to float32 rounding.
 * For quantized W, xg holds the per-group sums of x (the offset term). */
#ifndef VLM_KERNELS_H
#define VLM_KERNELS_H

#include "matrix.h"

typedef void (*VlmRowsFunc) (const VlmMatrix *w, const float *x,
                             const float *xg, const void *prep, float *y,
                             int r0, int r1);
/* Once per product, before the rows: x rearranged for a kernel (or NULL). */
typedef gpointer (*VlmPrepareFunc) (const VlmMatrix *w, const float *x);
/* W[r, j0 .. j1) as float32 (the panels of a GEMM). j0 a multiple of 16
 * (quantized rows are read 16 or 8 codes at a time, never across a group:
 * groups are multiples of 32). */
typedef void (*VlmWidenFunc) (const VlmMatrix *w, int r, int j0, int j1, float *out);

/* The engine's own GEMM: x [M, K] is packed once per product (its part by
 * each thread, x read until free), then each thread computes y[:, r0 .. r1)
 * with the weights as stored. */
typedef struct {
    gpointer (*pack_new) (const float *x, int M, int K);
    void (*pack_part) (gpointer packed, int ith, int nth);   /* NULL: nothing to do */
    void (*rows) (const VlmMatrix *w, gconstpointer packed, float *y, int r0, int r1);
    void (*free) (gpointer packed);
    /* Float32 only, NULL where not had (attention's products, no copies):
     * x's rows ldx apart, or x given transposed (x[m, k] at x[k * ldx + m]);
     * rows writing y^T (y[m, r] at yt[r * ldy + m]). */
    gpointer (*pack_new_strided) (const float *x, int M, int K, gsize ldx, gboolean transposed);
    void (*rows_t) (const VlmMatrix *w, gconstpointer packed, float *yt, gsize ldy, int r0,
                    int r1);
    /* Integer products: x quantized per token and subgroup of 32 columns
     * to codes within +-x_range (0: x as float32 or bf16) */
    int x_range;
} VlmGemm;

/* One group of n weights x (n <= the group size, 32 or 64) quantized to
 * bits (8 or 4) as matrix.h's Q8/Q4: its f16 scale to *s and offset to
 * *o, the codes to q (Q4: two to a byte, low nibble first; q zeroed
 * before). Every set gives the same codes, scales and offsets. */
typedef void (*VlmQuantizeFunc) (const float *x, int n, int bits, guint8 *q, guint16 *s,
                                 guint16 *o);

typedef struct {
    const char *name;              /* "avx512-vnni", "avx512", "avx2", "generic" */
    VlmRowsFunc rows[5];           /* by VlmMatType */
    VlmPrepareFunc prepare[5];     /* NULL: none */
    VlmWidenFunc widen[5];
    const VlmGemm *gemm[5];        /* NULL (generic): float32 panels and cblas_sgemm (matrix.c) */
    /* x[i] = gelu_tanh (x[i]) (* mul[i] if mul) for i < n */
    void (*gelu) (float *x, const float *mul, gsize n);
    /* x[i] = exp (x[i] - max) / sum for i < n > 0: a softmax (NaNs left
     * out of the max), the sum in double */
    void (*softmax) (float *x, gsize n);
    /* One row of D values: a layer norm, (x - mean) / sd * w + b, or with
     * b NULL Gemma's RMS norm, x / rms * (1 + w); the sums in double. */
    void (*norm) (float *out, const float *x, const float *w, const float *b, int D,
                  float eps);
    VlmQuantizeFunc quantize;      /* load-time quantization (matrix.c) */
} VlmKernels;

extern const VlmKernels vlm_kernels_generic;
extern const VlmKernels vlm_kernels_avx2;
extern const VlmKernels vlm_kernels_avx512;
extern const VlmKernels vlm_kernels_avx512_vnni;
extern const VlmGemm vlm_gemm_avx512;
extern const VlmGemm vlm_gemm_avx512bf16;
extern const VlmGemm vlm_gemm_avx512int16;
extern const VlmGemm vlm_gemm_avx512int8;
extern const VlmGemm vlm_gemm_avx2;
extern const VlmGemm vlm_gemm_avx2int16;
extern const VlmGemm vlm_gemm_avx2int8;

/* The best set this CPU runs (VLM_KERNELS=generic|avx2|avx512|avx512-vnni
 * overrides, within what the CPU supports). */
const VlmKernels *vlm_kernels_get (void);
/* The GEMM with bf16 dot products for BF16 weights, if this CPU has
 * AVX-512 BF16 and the chosen set is an AVX-512 one; else NULL. */
const VlmGemm *vlm_gemm_bf16_dot (void);
/* The GEMM for w with fast_dot: bf16 dot products for BF16 (an even
 * number of columns: the kernel reads pairs); integer ones for Q8/Q4,
 * 16-bit x for Q8 and 8-bit for Q4 (gemm_avx2.c says why): with the
 * avx512-vnni set vpdpwssd and vpdpbusd, with the avx2 set vpmaddwd and
 * vpmaddubsw; NULL where the CPU has none. */
const VlmGemm *vlm_gemm_fast_dot (const VlmMatrix *w);

/* Matrix-vector products read rows in order; asking for the bytes ahead
 * of the reading was worth up to 25% of one thread's read rate here. Rows
 * of up to VLM_SHORT_ROW columns are read one at a time as one stream,
 * VLM_STREAM_AHEAD bytes ahead. A prefetch never faults, past the end
 * included. */
#define VLM_SHORT_ROW 4096
#define VLM_STREAM_AHEAD 8192
/* Choices made by the CPU's model where measurements differ, set with
 * the kernel set (runtime.c). On AMD's family 19h (Zen 3, Zen 4; TRUE
 * elsewhere, FALSE there):
 * - float_rows_prefetch: whether the float row kernels ask for the bytes
 *   ahead themselves. The hardware's prefetch alone read faster there:
 *   BF16, two threads, AVX2 30-34 -> 35-38 GB/s for rows of 2048 and
 *   25-26 -> 30-33 for rows of 16384 (one thread 21-24 -> 22-27 and
 *   14-15 -> 19-20), AVX-512 30.4 -> 43.1 and 29.7 -> 33.7; on a Zen 5 it
 *   was the faster way. Quantized rows ask on every CPU (three streams:
 *   without, Zen 4 Q4 99 -> 87 GFLOP/s, Q8 72 -> 69).
 * - q8_rows_vnni: whether the avx512-vnni set multiplies Q8 made at load
 *   with x's two int8 parts (vpdpbusd), or takes the avx2 set's rows of
 *   int16 x (Zen 4, whose 512-bit operations take two passes: two threads
 *   54.5 -> 69.1 GFLOP/s, one thread 30.4 -> 45.2).
 * Measured on a Zen 4 (model 17h); Zen 3 shares the family and is taken
 * to be alike. Set once, before any kernel runs, so that a product's
 * prepare and rows functions make the same choice. */
typedef struct {
    gboolean float_rows_prefetch;
    gboolean q8_rows_vnni;
} VlmTuning;
extern VlmTuning vlm_tuning;
static inline void vlm_prefetch_ahead (const void *p, gsize ahead)
{
    __builtin_prefetch ((const char *) p + ahead, 0, 3);
}

/* n cache lines one after another, from p + ahead on. */
static inline void vlm_prefetch_lines (const void *p, gsize ahead, int n)
{
    for (int l = 0; l < n; l++)
        vlm_prefetch_ahead (p, ahead + 64 * (gsize) l);
}

/* The group scales and offsets of quantized row r + 4. */
static inline void vlm_prefetch_params_ahead (const VlmMatrix *w, int r)
{
    gsize row = (gsize) r * w->n_groups, ahead = 4 * (gsize) w->n_groups * sizeof (guint16);
    for (int k = 0; k < w->n_groups; k += 32) {
        vlm_prefetch_ahead (w->scales + row + k, ahead);
        vlm_prefetch_ahead (w->biases + row + k, ahead);
    }
}

/* Scalar helpers shared by the sets. */
static inline float vlm_bf16_to_f32 (guint16 h)
{
    union { guint32 u; float f; } v = { (guint32) h << 16 };
    return v.f;
}
float vlm_f16_to_f32 (guint16 h);
/* 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) given the tanh. */
static inline float vlm_gelu_inner (float v)
{
    return 0.7978845608028654f * (v + 0.044715f * v * v * v);
}
void vlm_gelu_generic (float *x, const float *mul, gsize n);
void vlm_quantize_generic (const float *x, int n, int bits, guint8 *q, guint16 *s, guint16 *o);
void vlm_softmax_generic (float *x, gsize n);
void vlm_norm_generic (float *out, const float *x, const float *w, const float *b, int D,
                       float eps);
/* The larger of max and x[i] for i < n, NaNs left out (the sets' tails). */
float vlm_max_generic (const float *x, gsize n, float max);
/* x[i] = exp (x[i] - shift) for i < n; returns their sum (the sets' tails). */
double vlm_exp_sum_generic (float *x, gsize n, float shift);

/* x for integer dot products with Q8/Q4 codes: in subgroups of 32, x ~
 * dx xh with int8 xh in [-range, range] (one part: Q4 with fast_dot, as
 * its GEMMs take x, gemm_avx2.c says why), or dx (xh + xl / residual)
 * (xl the rounding residual of xh: about 16 bits of precision for
 * 127/256; Q8 with fast_dot), or
 * with a third part, dx (xh + (xl + xll / residual) / residual), about 24
 * bits: matrices without fast_dot (MLX checkpoints, exact to their
 * weights), where 16 bits moved the fixtures' step logits by up to 5.7e-4
 * of their largest (float32: 4e-6; the bar 1e-3).
 * Q4 subgroups come in blocks of q4_block (the last few, and every one
 * when q4_block is 1, in blocks of 1): the block's 16 even elements of
 * each subgroup, then their 16 odd ones — the order a row's nibbles
 * unpack to, 16 bytes per subgroup. */
typedef struct {
    int nsub;
    gint8 *xh;       /* [nsub * 32] */
    gint8 *xl;       /* [nsub * 32], or NULL: one part */
    gint8 *xll;      /* [nsub * 32], or NULL: one or two parts */
    float *dx;       /* [nsub * 8]: each subgroup's step, 8 times */
    float *dx4;      /* [nsub * 4]: each subgroup's step, 4 times */
} VlmIntX;

/* A row kernel over prepared integer x (kernels_avx2.c, kernels_avx512.c):
 * NAME##_groups with the group size (32 or 64: the compiler turns the
 * divisions by it into shifts) and x's parts as constants: three, or else
 * FEW (vlm_int_x_parts: 1 for Q4, 2 for Q8); FALLBACK when x was not
 * prepared. */
#define VLM_INT_ROWS_BY_GROUP(ATTR, NAME, FALLBACK, FEW)                        \
    ATTR static void NAME (const VlmMatrix *w, const float *x, const float *xg, \
                           const void *prep, float *y, int r0, int r1)          \
    {                                                                           \
        const VlmIntX *p = prep;                                                \
        if (!p)                                                                 \
            FALLBACK (w, x, xg, NULL, y, r0, r1);                               \
        else if (w->group == 32 && p->xll)                                      \
            NAME##_groups (w, xg, p, y, r0, r1, 32, 3);                         \
        else if (w->group == 32)                                                \
            NAME##_groups (w, xg, p, y, r0, r1, 32, FEW);                       \
        else if (p->xll)                                                        \
            NAME##_groups (w, xg, p, y, r0, r1, 64, 3);                         \
        else                                                                    \
            NAME##_groups (w, xg, p, y, r0, r1, 64, FEW);                       \
    }

/* The residual scale of x's parts: 256 with two (xl resolves xh's
 * rounding residual to 1/512 of a step, clamped to 127/256 at a residual
 * of half a step, about as fine); 254 with three, so that no part is
 * clamped (256 lost the third part's 8 bits at such residuals: 1e-6 of
 * the products' magnitudes, against 5e-8 with 254). */
#define VLM_INT_RESIDUAL(third) ((third) ? 254.0f : 256.0f)

/* Subgroups of x whose largest magnitude is below this are taken as zero
 * by the integer products (codes 0; their exact sums still go to the
 * offset term): a scale of range / max overflows from about 1e-34 down. */
#define VLM_X_TINY 1e-30f

/* x[0 .. K) as codes (int16 or int8) q[Kp] (zero past K; Kp a multiple
 * of 32): per subgroup g of 32 columns x ~ step * code with codes within
 * +-32767 or +-127, the step to dx[stride g] and the exact sum to
 * xs[stride g] (xs may be NULL). A NaN or infinity reaches y through the
 * sum. AVX2 (gemm_avx2.c): the GEMM's activations and the Q8 GEMV's. */
void vlm_avx2_x_codes (const float *x, int K, int Kp, gboolean int8, void *q, float *dx,
                       float *xs, gsize stride);
/* The codes of quantized W[r, k0 .. k0 + kc) for the integer GEMMs, Q4 as
 * bytes (int8) or Q8 as int16 (k0 and kc multiples of 32, within one
 * piece), and each subgroup's scale and offset as float32 to s[kc / 32],
 * o[kc / 32]. AVX2 (gemm_avx2.c), also serving gemm_avx512.c. */
void vlm_avx2_codes_row (const VlmMatrix *w, int r, int k0, int kc, gboolean int8, guint8 *out,
                         float *s, float *o);

/* The AVX2 set's VlmQuantizeFunc, also the AVX-512 sets': groups of a
 * multiple of 32 eight weights at a time (vlm_quantize_generic's codes:
 * the same division, rounded to nearest even), others as the generic. */
void vlm_avx2_quantize (const float *x, int n, int bits, guint8 *q, guint16 *s, guint16 *o);

/* dst[c, r] = src[r, c], 4-byte values, for r < rows, c < cols (rows lds
 * and ldd values apart), 8 x 8 at a time through registers: one value at
 * a time, packing x and writing y from y^T read or wrote a line per
 * value. AVX2 (gemm_avx2.c), also serving gemm_avx512.c (its own 16 x 16
 * at a time ran alike: Zen 4, two threads, 266x2048x16384 BF16 201.1
 * against 201.5 GFLOP/s, 256x4304x1152 Q4 461.8 against 468.3). */
void vlm_avx2_transpose (const void *src, gsize lds, int rows, int cols, void *dst, gsize ldd);

/* NULL (use float kernels) unless the groups are 32 or 64 wide. */
VlmIntX *vlm_int_x_new (const VlmMatrix *w, const float *x, int range,
                        float residual, int q4_block, int parts);
/* x's parts for w's integer row kernels: three without fast_dot, else
 * one for Q4 and two for Q8. */
int vlm_int_x_parts (const VlmMatrix *w);
guint16 vlm_f32_to_f16 (float f);

#endif
