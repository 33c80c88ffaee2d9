/* test_kernels.c - every SIMD kernel set this CPU runs agrees with the
 * portable C kernels on every weight format, over ragged sizes; quantized
 * weights dequantize within half a step; rows widened for GEMM panels are
 * the portable ones; the GEMM paths agree with float64 and with the GEMV
 * path. */
#include "kernels.h"
#include "matrix.h"
#include "ops.h"
#include "threadpool.h"

#include <math.h>
#include <string.h>

static guint64 rng = 88172645463325252ULL;

static float rnd (void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 40) / 8388608.0f - 1.0f;
}

/* A Q8/Q4 matrix with groups of 64 (MLX's default; ours are 32). */
static VlmMatrix make_group64 (VlmMatType type, const float *w, int rows, int cols,
                               gpointer *keep)
{
    int n_groups = (cols + 63) / 64, bits = type == VLM_MAT_Q8 ? 8 : 4;
    gsize row_bytes = (gsize) n_groups * 64 * bits / 8;
    guint8 *block = g_malloc0 (row_bytes * rows + (gsize) rows * n_groups * 4);
    guint16 *scales = (guint16 *) (block + row_bytes * rows);
    VlmMatrix m = { .type = type, .rows = rows, .cols = cols, .data = block,
                    .row_bytes = row_bytes, .group = 64, .n_groups = n_groups,
                    .scales = scales, .biases = scales + (gsize) rows * n_groups };
    vlm_matrix_quantize_rows (&m, 0, rows, w);
    *keep = block;
    return m;
}

/* A matrix of the given type holding (a rounding of) w; owned storage in
 * *keep. Type 5 and 6 stand for Q8 and Q4 with groups of 64. */
static VlmMatrix make (int type, const float *w, int rows, int cols, gpointer *keep)
{
    if (type > VLM_MAT_Q4)
        return make_group64 (type - 2, w, rows, cols, keep);
    VlmMatrix m = { .type = type, .rows = rows, .cols = cols };
    if (type == VLM_MAT_Q8 || type == VLM_MAT_Q4) {
        *keep = vlm_matrix_quantized_new (rows, cols, type, &m);
        vlm_matrix_quantize_rows (&m, 0, rows, w);
        return m;
    }
    gsize elem = type == VLM_MAT_F32 ? 4 : 2;
    guint8 *d = g_malloc ((gsize) rows * cols * elem);
    for (gsize i = 0; i < (gsize) rows * cols; i++) {
        if (type == VLM_MAT_F32) {
            memcpy (d + 4 * i, &w[i], 4);
        } else {
            guint16 h;
            if (type == VLM_MAT_F16) {
                h = vlm_f32_to_f16 (w[i]);
            } else {
                guint32 u;
                memcpy (&u, &w[i], 4);
                h = u >> 16;
            }
            memcpy (d + 2 * i, &h, 2);
        }
    }
    m.data = d;
    m.row_bytes = cols * elem;
    *keep = d;
    return m;
}

static gboolean cpu_runs (const VlmKernels *k)
{
    if (k == &vlm_kernels_avx512_vnni)
        return cpu_runs (&vlm_kernels_avx512) && __builtin_cpu_supports ("avx512vnni");
    if (k == &vlm_kernels_avx512)
        return __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw") &&
               __builtin_cpu_supports ("avx512vl") && __builtin_cpu_supports ("fma") &&
               __builtin_cpu_supports ("f16c");
    if (k == &vlm_kernels_avx2)
        return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
               __builtin_cpu_supports ("f16c");
    return TRUE;
}

static void test_sets_agree (void)
{
    const VlmKernels *sets[] = { &vlm_kernels_generic, &vlm_kernels_avx2, &vlm_kernels_avx512,
                                 &vlm_kernels_avx512_vnni };
    /* rows over VLM_SHORT_ROW (4304, 4100, 4112, 4120) are read four at a
     * time; 48 and 120 leave 16 (AVX-512) and 8 or 24 (AVX2) columns after
     * the 32-wide steps of shorter rows */
    const int sizes[][2] = { { 1, 32 }, { 5, 64 }, { 37, 100 }, { 9, 4304 }, { 3, 33 },
                             { 17, 7 }, { 4, 1152 }, { 6, 2048 }, { 3, 544 }, { 11, 4100 },
                             { 5, 48 }, { 3, 120 }, { 2, 4112 }, { 5, 4120 } };
    int checked = 0;
    for (guint s = 0; s < G_N_ELEMENTS (sets); s++) {
        if (!cpu_runs (sets[s])) {
            g_test_message ("%s: not run by this CPU", sets[s]->name);
            continue;
        }
        for (int t = VLM_MAT_F32; t <= VLM_MAT_Q4 + 2; t++)
            for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
                int rows = sizes[z][0], cols = sizes[z][1];
                float *w = g_new (float, (gsize) rows * cols);
                for (gsize i = 0; i < (gsize) rows * cols; i++)
                    w[i] = rnd ();
                gpointer keep;
                VlmMatrix whole = make (t, w, rows, cols, &keep);
                /* kernels see one piece of a matrix kept in pieces at a time */
                for (int piece = 0; piece < vlm_matrix_n_pieces (&whole); piece++) {
                    VlmMatrix m = vlm_matrix_piece (&whole, piece);
                    int cols = m.cols;
                    gboolean quant = m.type == VLM_MAT_Q8 || m.type == VLM_MAT_Q4;
                    int n = quant ? m.n_groups * m.group : cols;
                    float *x = g_new0 (float, n), *xg = g_new0 (float, MAX (m.n_groups, 1));
                    for (int j = 0; j < cols; j++)
                        x[j] = rnd ();
                    for (int k = 0; k < m.n_groups; k++)
                        for (int j = 0; j < m.group; j++)
                            xg[k] += x[k * m.group + j];
                    float *want = g_new (float, rows), *got = g_new (float, rows);
                    vlm_kernels_generic.rows[m.type] (&m, x, xg, NULL, want, 0, rows);
                    gpointer prep = sets[s]->prepare[m.type] ? sets[s]->prepare[m.type] (&m, x) : NULL;
                    sets[s]->rows[m.type] (&m, x, xg, prep, got, 0, rows);
                    g_free (prep);
                    for (int r = 0; r < rows; r++) {
                        /* float32 reassociation: relative to sum |w x| ~ sqrt(cols) */
                        double tol = 1e-5 * (cols + 8);
                        if (fabs (got[r] - want[r]) > tol)
                            g_error ("%s %s %dx%d row %d: %g vs %g", sets[s]->name,
                                     vlm_mat_type_name (m.type), rows, cols, r, got[r], want[r]);
                    }
                    /* GEMM panels: the widened rows are the portable ones (a
                     * fused multiply-add may round the dequantization once less) */
                    float *row = g_new (float, cols), *ref = g_new (float, cols);
                    for (int r = 0; r < rows; r++) {
                        int j0 = cols > 48 ? 16 : 0, j1 = cols - (cols > 48); /* a part too */
                        sets[s]->widen[m.type] (&m, r, j0, j1, row);
                        vlm_kernels_generic.widen[m.type] (&m, r, 0, cols, ref);
                        for (int j = j0; j < j1; j++)
                            if (fabsf (row[j - j0] - ref[j]) > 1e-6f * (1 + fabsf (ref[j])))
                                g_error ("%s %s %dx%d widened [%d, %d]: %g vs %g", sets[s]->name,
                                         vlm_mat_type_name (m.type), rows, cols, r, j, row[j - j0],
                                         ref[j]);
                    }
                    g_free (row);
                    g_free (ref);
                    g_free (x);
                    g_free (xg);
                    g_free (want);
                    g_free (got);
                }
                checked++;
                g_free (keep);
                g_free (w);
            }
    }
    /* gelu through libmvec's tanhf (<= 4 ulp) against libm's */
    for (guint s = 0; s < G_N_ELEMENTS (sets); s++) {
        if (!cpu_runs (sets[s]))
            continue;
        float x[301], y[301], mul[301];
        for (int i = 0; i < 301; i++) {
            x[i] = y[i] = (i - 150) * 0.05f;
            mul[i] = rnd ();
        }
        vlm_gelu_generic (x, mul, 301);
        sets[s]->gelu (y, mul, 301);
        for (int i = 0; i < 301; i++)
            g_assert_cmpfloat (fabsf (x[i] - y[i]), <=, 1e-6f * (1 + fabsf (x[i])));
        checked++;
    }
    /* softmax: vector max and libmvec's expf against scalar code and
     * libm's; lengths that leave a tail for the scalar loops, the largest
     * value in the tail or in the vectors */
    for (guint s = 0; s < G_N_ELEMENTS (sets); s++) {
        if (!cpu_runs (sets[s]))
            continue;
        for (int top = 0; top < 2; top++)
            for (int n = 1; n <= 301; n += 25) {
                float x[301], y[301];
                for (int i = 0; i < n; i++)
                    x[i] = y[i] = (i - 250) * 0.1f * (top ? -1 : 1);
                vlm_softmax_generic (x, n);
                sets[s]->softmax (y, n);
                for (int i = 0; i < n; i++)
                    g_assert_cmpfloat (fabsf (x[i] - y[i]), <=, 1e-6f * x[i] + 1e-30f);
                checked++;
            }
    }
    g_test_message ("%d kernel/format/size combinations agree", checked);
}

/* Every set quantizes a group as the generic code does: the same codes,
 * scales and offsets (an offset of -0 and one of +0 are the same), for
 * groups of 32 and 64, a ragged last group, constant groups (scale 0),
 * tiny and large ranges, zeros of both signs. */
static void test_quantize_sets_agree (void)
{
    const VlmKernels *sets[] = { &vlm_kernels_avx2, &vlm_kernels_avx512,
                                 &vlm_kernels_avx512_vnni };
    const int lengths[] = { 32, 64, 7, 31, 33, 48 };
    const float scales[] = { 1.0f, 1e-6f, 3e4f, 0.0f };
    int checked = 0;
    for (guint s = 0; s < G_N_ELEMENTS (sets); s++) {
        if (!cpu_runs (sets[s]))
            continue;
        for (int trial = 0; trial < 400; trial++) {
            int n = lengths[trial % G_N_ELEMENTS (lengths)], bits = trial % 2 ? 4 : 8;
            float x[64], scale = scales[trial / 2 % G_N_ELEMENTS (scales)];
            for (int j = 0; j < n; j++)
                x[j] = scale == 0 ? (trial % 3 ? 0.5f : (j % 2 ? -0.0f : 0.0f))
                                  : rnd () * scale + (trial % 5 ? 0 : 2 * scale);
            guint8 want[64] = { 0 }, got[64] = { 0 };
            guint16 ws, wo, gs, go;
            vlm_quantize_generic (x, n, bits, want, &ws, &wo);
            sets[s]->quantize (x, n, bits, got, &gs, &go);
            if (memcmp (want, got, sizeof want) || ws != gs ||
                vlm_f16_to_f32 (wo) != vlm_f16_to_f32 (go))
                g_error ("%s: %d weights to %d bits (trial %d): codes, scale or offset differ "
                         "from the generic set's", sets[s]->name, n, bits, trial);
            checked++;
        }
    }
    g_test_message ("%d groups checked", checked);
}

static void test_quantize_roundtrip (void)
{
    int rows = 7, cols = 4304; /* SigLIP's MLP width: not a multiple of 32 */
    float *w = g_new (float, rows * cols), *row = g_new (float, cols);
    for (int i = 0; i < rows * cols; i++)
        w[i] = rnd () * 0.05f;
    for (int t = VLM_MAT_Q8; t <= VLM_MAT_Q4; t++) {
        VlmMatrix m;
        gpointer keep = vlm_matrix_quantized_new (rows, cols, t, &m);
        vlm_matrix_quantize_rows (&m, 0, rows, w);
        g_assert_cmpint (m.n_groups, ==, 135);
        g_assert_cmpint (vlm_matrix_n_pieces (&m), ==, (cols + VLM_PIECE_COLS - 1) / VLM_PIECE_COLS);
        VlmMatrix whole; /* rows up to VLM_PIECE_AFTER stay whole (PaliGemma 2's 2304) */
        g_free (vlm_matrix_quantized_new (2, 2304, t, &whole));
        g_assert_cmpint (vlm_matrix_n_pieces (&whole), ==, 1);
        for (int r = 0; r < rows; r++) {
            vlm_matrix_get_row (&m, r, row);
            for (int j = 0; j < cols; j++) {
                /* kept in pieces, the last 4304 % VLM_PIECE_COLS wide */
                VlmMatrix v = vlm_matrix_piece (&m, j / VLM_PIECE_COLS);
                float s = vlm_f16_to_f32 (v.scales[r * v.n_groups + j % VLM_PIECE_COLS / 32]);
                /* half a step, plus the f16 rounding of the offset */
                g_assert_cmpfloat (fabsf (row[j] - w[r * cols + j]), <=, s * 0.5f + 1e-4f);
            }
        }
        g_free (keep);
    }
    g_free (w);
    g_free (row);
}

/* The GEMM path (float32 panels and cblas_sgemm, or the CPU's GEMM for the
 * stored type) against a float64 product with the matrix as stored, and
 * against the GEMV path, over tile and block edges and an odd width. */
static void gemm_matches_gemv (void);

/* The offset of the group of W[r, j] (quantized W, in pieces or not). */
static double offset_at (const VlmMatrix *w, int r, int j)
{
    VlmMatrix v = vlm_matrix_piece (w, w->piece_cols ? j / w->piece_cols : 0);
    int jj = w->piece_cols ? j % w->piece_cols : j;
    return vlm_f16_to_f32 (v.biases[(gsize) r * v.n_groups + jj / v.group]);
}

/* x[0 .. cols) as an integer GEMM takes it: per subgroup of 32 columns
 * the codes rint (x * (range / max|x|)) times the step max|x| / range, in
 * float32 as the kernels compute them; amax[j] the subgroup's max|x|.
 * With gemv, as the row kernels' one part takes it (vlm_int_x_new):
 * rint (x / step), which rounds a few halves the other way. */
static void quantize_like (const float *x, int cols, int range, gboolean gemv, double *xq,
                           float *amax)
{
    for (int k = 0; k < cols; k += 32) {
        int n = MIN (32, cols - k);
        float m = 0;
        for (int j = 0; j < n; j++)
            m = MAX (m, fabsf (x[k + j]));
        float sc = m > 0 ? (float) range / m : 0.0f, dx = m / (float) range;
        for (int j = 0; j < n; j++) {
            float c = CLAMP (rintf (gemv ? x[k + j] / (m > 0 ? dx : 1.0f) : x[k + j] * sc),
                             -range, range);
            xq[k + j] = (double) dx * c;
            amax[k + j] = m;
        }
    }
}

/* Both ways of each choice made by the CPU's model (vlm_tuning): the
 * other way runs on other machines. */
static void test_gemm_matches_gemv (void)
{
    vlm_kernels_get (); /* sets vlm_tuning */
    VlmTuning chosen = vlm_tuning;
    for (int way = 0; way < 2; way++) {
        vlm_tuning = (VlmTuning) { .float_rows_prefetch = way, .q8_rows_vnni = way };
        gemm_matches_gemv ();
    }
    vlm_tuning = chosen;
}

static void gemm_matches_gemv (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    const int shapes[][3] = { { 5, 300, 1024 }, { 37, 301, 1000 }, { 33, 130, 588 },
                              { 2, 70, 33 }, { 23, 40, 200 }, { 50, 500, 1000 },
                              { 3, 40, 9000 }, { 46, 70, 1000 }, { 48, 70, 560 },
                              { 64, 50, 1050 } };
    /* M, rows, cols: tiles of 32 tokens, whole and partial, and tails of up
     * to 16 tokens past the last whole tile (two groups of them for 46 and
     * 48); more than one row block per thread; an odd width, and last column
     * blocks leaving 16 and 26 columns after whole steps of 32; quantized
     * GEMV rows read in three pieces, the last one padded */
    for (guint z = 0; z < G_N_ELEMENTS (shapes); z++) {
        int M = shapes[z][0], rows = shapes[z][1], cols = shapes[z][2];
        float *w = g_new (float, rows * cols), *x = g_new (float, M * cols),
              *b = g_new (float, rows), *y = g_new (float, M * rows), *y1 = g_new (float, M * rows),
              *wr = g_new (float, cols), *amax = g_new (float, M * cols);
        double *xq = g_new (double, M * cols), *xq1 = g_new (double, M * cols),
               *wo = g_new (double, cols);
        for (int i = 0; i < rows * cols; i++)
            w[i] = rnd ();
        for (int i = 0; i < M * cols; i++)
            x[i] = rnd ();
        for (int i = 0; i < rows; i++)
            b[i] = rnd ();
        /* types 7 and 8: Q8 and Q4 with fast_dot (integer x) */
        for (int t = VLM_MAT_F32; t <= VLM_MAT_Q4 + 4; t++) {
            gpointer keep;
            VlmMatrix m = make (t > VLM_MAT_Q4 + 2 ? t - 4 : t, w, rows, cols, &keep);
            m.fast_dot = t > VLM_MAT_Q4 + 2;
            vlm_matrix_mul (pool, &m, x, M, b, y);
            for (int i = 0; i < M; i++) /* GEMV, token by token */
                vlm_matrix_mul (pool, &m, x + i * cols, 1, b, y1 + i * rows);
            /* Integer x meets only s q = w - o of a weight (the offset
             * meets the exact sum of x): an integer GEMM's x is off by at
             * most half a step, max |x| / (2 x_range) of its subgroup; the
             * GEMV's x as one int8 part (Q4) by half a step of 127, as
             * two (Q8) by a 512th of a step, max |x| / 32512 where the
             * residual is clamped (Q8 rows of int16 x: half a step of
             * 32767). */
            const VlmGemm *fd = m.fast_dot ? vlm_gemm_fast_dot (&m) : NULL;
            int x_range = fd ? fd->x_range : 0;
            /* Q4's GEMV takes one int8 part where the set has integer rows */
            gboolean one_part = fd && m.type == VLM_MAT_Q4;
            for (int i = 0; i < M; i++) {
                quantize_like (x + i * cols, cols, x_range ? x_range : 127, FALSE, xq + i * cols,
                               amax + i * cols);
                quantize_like (x + i * cols, cols, 127, TRUE, xq1 + i * cols, amax + i * cols);
            }
            gboolean quant = m.type == VLM_MAT_Q8 || m.type == VLM_MAT_Q4;
            double moved = 0; /* from the float32 products */
            for (int r = 0; r < rows; r++) {
                vlm_matrix_get_row (&m, r, wr);
                for (int j = 0; j < cols; j++)
                    wo[j] = quant ? wr[j] - offset_at (&m, r, j) : wr[j];
                for (int i = 0; i < M; i++) {
                    const float *xi = x + i * cols, *ai = amax + i * cols;
                    double ref = b[r], mag = fabs (b[r]), x_err = 0, x_err1 = 0, x_err8 = 0;
                    /* x as the integer GEMM and the one-part GEMV take it */
                    double refq = b[r], magq = fabs (b[r]), refq1 = b[r], magq1 = fabs (b[r]);
                    for (int j = 0; j < cols; j++) {
                        ref += (double) wr[j] * xi[j];
                        mag += fabs ((double) wr[j] * xi[j]);
                        x_err += fabs (wo[j]) * ai[j] / (2.0 * MAX (x_range, 1));
                        x_err1 += fabs (wo[j]) * ai[j] / 32512;
                        x_err8 += fabs (wo[j]) * ai[j] / 254;
                        double o = wr[j] - wo[j];
                        refq += wo[j] * xq[i * cols + j] + o * xi[j];
                        magq += fabs (wo[j] * xq[i * cols + j]) + fabs (o * xi[j]);
                        refq1 += wo[j] * xq1[i * cols + j] + o * xi[j];
                        magq1 += fabs (wo[j] * xq1[i * cols + j]) + fabs (o * xi[j]);
                    }
                    /* float32 accumulation: observed <= 1.3e-7 */
                    double tol = 5e-7 * mag + (x_range ? x_err : 0);
                    if (fabs (y[i * rows + r] - ref) > tol)
                        g_error ("%s%s %dx%dx%d y[%d, %d] = %.9g, float64 %.9g (of %g)",
                                 vlm_mat_type_name (m.type), m.fast_dot ? " fast_dot" : "", M,
                                 rows, cols, i, r, y[i * rows + r], ref, mag);
                    /* and to float32 rounding from the product of x as
                     * quantized: an error in any one subgroup shows */
                    if (x_range && M > 1 && fabs (y[i * rows + r] - refq) > 5e-7 * magq)
                        g_error ("%s fast_dot %dx%dx%d y[%d, %d] = %.9g, float64 of x as "
                                 "quantized %.9g (of %g)",
                                 vlm_mat_type_name (m.type), M, rows, cols, i, r, y[i * rows + r],
                                 refq, magq);
                    moved = MAX (moved, fabs (y[i * rows + r] - ref) / mag);
                    /* GEMV: without fast_dot integer products take x in
                     * three parts, seen within 8e-7; float32 within tol */
                    double tol1 = 5e-7 * mag +
                                  (!m.fast_dot ? 0 : m.type == VLM_MAT_Q4 ? x_err8 : x_err1);
                    if (fabs (y1[i * rows + r] - ref) > (quant && !m.fast_dot ? 1e-6 * mag : tol1))
                        g_error ("%s%s GEMV %dx%d y[%d] = %.9g, float64 %.9g (of %g)",
                                 vlm_mat_type_name (m.type), m.fast_dot ? " fast_dot" : "", rows,
                                 cols, r, y1[i * rows + r], ref, mag);
                    if (one_part && fabs (y1[i * rows + r] - refq1) > 5e-7 * magq1)
                        g_error ("Q4 fast_dot GEMV %dx%d y[%d] = %.9g, float64 of x as "
                                 "quantized %.9g (of %g)",
                                 rows, cols, r, y1[i * rows + r], refq1, magq1);
                }
            }
            /* the integer products did run where the CPU has them */
            if (m.fast_dot && M > 1 && vlm_gemm_fast_dot (&m))
                g_assert_cmpfloat (moved, >, 2e-7); /* float32: <= 1.3e-7 */
            g_free (keep);
        }
        g_free (w);
        g_free (x);
        g_free (b);
        g_free (y);
        g_free (y1);
        g_free (wr);
        g_free (amax);
        g_free (xq);
        g_free (xq1);
        g_free (wo);
    }
    g_test_message ("GEMM with %s kernels", vlm_kernels_get ()->name);
    vlm_thread_pool_free (pool);
}

/* Several products of one x in one hand-off (q, k, v) give what each gives
 * alone: the threads' shares cross from one matrix to the next; bias, GEMV
 * and GEMM; rows short and kept in pieces; one product of another format
 * (F32 among Q8, plain BF16 among bf16-dot) is done apart. */
static void mul_many_case (VlmThreadPool *pool, int cols)
{
    const int rows[3] = { 300, 37, 130 }, Ms[] = { 1, 23 };
    float *x = g_new (float, 23 * cols), *w[3], *b[3], *y[3], *want = g_new (float, 23 * 300);
    for (int i = 0; i < 23 * cols; i++)
        x[i] = rnd ();
    for (int k = 0; k < 3; k++) {
        w[k] = g_new (float, rows[k] * cols);
        b[k] = g_new (float, rows[k]);
        y[k] = g_new (float, 23 * rows[k]);
        for (int i = 0; i < rows[k] * cols; i++)
            w[k][i] = rnd ();
        for (int i = 0; i < rows[k]; i++)
            b[k][i] = rnd ();
    }
    for (int t = VLM_MAT_F32; t <= VLM_MAT_Q4 + 2; t++)
        for (guint mi = 0; mi < G_N_ELEMENTS (Ms); mi++) {
            int M = Ms[mi];
            gpointer keep[3];
            VlmMatrix m[3];
            VlmProduct p[3];
            for (int k = 0; k < 3; k++) {
                m[k] = make (k == 2 && t == VLM_MAT_Q8 ? VLM_MAT_F32 : t, w[k], rows[k], cols,
                             &keep[k]);
                m[k].fast_dot = t == VLM_MAT_BF16 && k != 1;
                p[k] = (VlmProduct) { &m[k], k == 1 ? NULL : b[k], y[k] };
            }
            vlm_matrix_mul_many (pool, p, 3, x, M);
            for (int k = 0; k < 3; k++) {
                vlm_matrix_mul (pool, &m[k], x, M, p[k].b, want);
                /* sums of cols terms ~1: cblas blocks by the panel's rows */
                for (int i = 0; i < M * rows[k]; i++)
                    g_assert_cmpfloat (fabsf (y[k][i] - want[i]), <=, 1e-6f * (96 + fabsf (want[i])));
                g_free (keep[k]);
            }
        }
    for (int k = 0; k < 3; k++) {
        g_free (w[k]);
        g_free (b[k]);
        g_free (y[k]);
    }
    g_free (x);
    g_free (want);
}

static void test_mul_many (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    mul_many_case (pool, 1000);
    mul_many_case (pool, 9000);
    vlm_thread_pool_free (pool);
}

/* A matrix stored whole with long rows (as MLX checkpoints are), copied
 * into pieces: the same rows and the same products. */
static void test_to_pieces (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    int rows = 70, cols = 2 * VLM_PIECE_COLS + 64, M = 3; /* two full pieces and one of 64 */
    float *w = g_new (float, rows * cols), *x = g_new (float, M * cols);
    float *a = g_new (float, cols), *b = g_new (float, cols);
    float *ya = g_new (float, M * rows), *yb = g_new (float, M * rows);
    for (int i = 0; i < rows * cols; i++)
        w[i] = rnd ();
    for (int i = 0; i < M * cols; i++)
        x[i] = rnd ();
    for (int t = VLM_MAT_Q8; t <= VLM_MAT_Q4; t++) {
        gpointer keep;
        VlmMatrix whole = make_group64 (t, w, rows, cols, &keep), pieces;
        gpointer copy = vlm_matrix_to_pieces (&whole, &pieces);
        g_assert_nonnull (copy);
        g_assert_cmpint (vlm_matrix_n_pieces (&pieces), ==, 3);
        g_assert_cmpuint (vlm_matrix_bytes (&pieces), ==, vlm_matrix_bytes (&whole));
        for (int r = 0; r < rows; r++) {
            vlm_matrix_get_row (&whole, r, a);
            vlm_matrix_get_row (&pieces, r, b);
            g_assert_cmpmem (a, cols * sizeof (float), b, cols * sizeof (float));
        }
        for (int m = 1; m <= M; m += M - 1) { /* GEMV and GEMM */
            vlm_matrix_mul (pool, &whole, x, m, NULL, ya);
            vlm_matrix_mul (pool, &pieces, x, m, NULL, yb);
            for (int i = 0; i < m * rows; i++)
                g_assert_cmpfloat (fabsf (ya[i] - yb[i]), <=, 1e-6f * (64 + fabsf (ya[i])));
        }
        g_free (copy);
        g_free (keep);
    }
    g_free (w);
    g_free (x);
    g_free (a);
    g_free (b);
    g_free (ya);
    g_free (yb);
    vlm_thread_pool_free (pool);
}

/* x rounded to bf16, nearest even (what vcvtne2ps2bf16 does). */
static float round_bf16 (float v)
{
    guint32 u;
    memcpy (&u, &v, 4);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy (&v, &u, 4);
    return v;
}

/* The bf16 dot-product GEMM (VLM_WEIGHTS_BF16_DOT) against float64 with
 * the activations rounded to bf16: products of bf16 are exact, so only the
 * float32 sums differ. Over tile and block edges, several row blocks. */
static void test_bf16_dot_gemm (void)
{
    if (!vlm_gemm_bf16_dot ()) {
        g_test_skip ("no AVX-512 BF16 here");
        return;
    }
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    const int shapes[][3] = { { 5, 300, 1024 }, { 37, 301, 1000 }, { 33, 130, 588 },
                              { 17, 500, 1040 }, { 46, 130, 588 }, { 48, 60, 560 },
                              { 64, 40, 1050 } };
    for (guint z = 0; z < G_N_ELEMENTS (shapes); z++) {
        int M = shapes[z][0], rows = shapes[z][1], cols = shapes[z][2];
        guint16 *w = g_new (guint16, rows * cols);
        float *x = g_new (float, M * cols), *y = g_new (float, M * rows);
        for (int i = 0; i < rows * cols; i++) {
            float f = rnd ();
            guint32 u;
            memcpy (&u, &f, 4);
            w[i] = u >> 16;
        }
        for (int i = 0; i < M * cols; i++)
            x[i] = rnd ();
        VlmMatrix m = { .type = VLM_MAT_BF16, .rows = rows, .cols = cols, .data = w,
                        .row_bytes = cols * 2, .fast_dot = TRUE };
        vlm_matrix_mul (pool, &m, x, M, NULL, y);
        for (int i = 0; i < M; i++)
            for (int r = 0; r < rows; r++) {
                double ref = 0, mag = 0;
                for (int j = 0; j < cols; j++) {
                    double p = (double) vlm_bf16_to_f32 (w[r * cols + j]) * round_bf16 (x[i * cols + j]);
                    ref += p;
                    mag += fabs (p);
                }
                if (fabs (y[i * rows + r] - ref) > 5e-7 * mag)
                    g_error ("bf16-dot %dx%dx%d y[%d, %d] = %.9g, float64 %.9g (of %g)", M, rows,
                             cols, i, r, y[i * rows + r], ref, mag);
            }
        g_free (w);
        g_free (x);
        g_free (y);
    }
    vlm_thread_pool_free (pool);
}

/* The norms on two threads (rows split) against float64, at a size large
 * enough for the pool to be used. */
static void test_norms (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    int M = 37, D = 1001;
    float *x = g_new (float, M * D), *y = g_new (float, M * D), w[1001], b[1001];
    for (int i = 0; i < M * D; i++)
        x[i] = rnd () * 3 + 1;
    for (int j = 0; j < D; j++) {
        w[j] = rnd ();
        b[j] = rnd ();
    }
    for (int rms = 0; rms < 2; rms++) {
        if (rms)
            vlm_ops_rmsnorm (pool, y, x, w, M, D, 1e-6f);
        else
            vlm_ops_layernorm (pool, y, x, w, b, M, D, 1e-6f);
        for (int i = 0; i < M; i++) {
            const float *r = x + i * D;
            double mean = 0, var = 0;
            for (int j = 0; j < D; j++)
                mean += rms ? 0 : r[j];
            mean /= D;
            for (int j = 0; j < D; j++)
                var += (r[j] - mean) * (r[j] - mean);
            double inv = 1 / sqrt (var / D + 1e-6);
            for (int j = 0; j < D; j++) {
                double want = rms ? r[j] * inv * (1.0 + w[j]) : (r[j] - mean) * inv * w[j] + b[j];
                g_assert_cmpfloat (fabs (y[i * D + j] - want), <=, 1e-6 * (1 + fabs (want)));
            }
        }
    }
    g_free (x);
    g_free (y);
    vlm_thread_pool_free (pool);
}

/* Attention against float64: grouped kv heads, soft-capping, query rows
 * over tile and tail edges, keys over several column blocks, rows with
 * fewer keys in reach or none, and one query row (a decode step). */
static void test_attention (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    const int cases[][6] = { /* T, S, heads, kv heads, head size, soft cap */
                             { 1, 40, 4, 2, 16, 0 }, { 5, 5, 4, 4, 72, 0 },
                             { 20, 600, 4, 1, 32, 1 }, { 37, 37, 2, 2, 72, 0 },
                             { 48, 70, 4, 2, 24, 1 } };
    for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
        int T = cases[c][0], S = cases[c][1], H = cases[c][2], KV = cases[c][3], d = cases[c][4];
        float cap = cases[c][5] ? 2.0f : 0.0f, scale = 1.0f / sqrtf ((float) d);
        int qs = H * d, ks = KV * d;
        float *q = g_new (float, T * qs), *k = g_new (float, S * ks), *v = g_new (float, S * ks),
              *out = g_new (float, T * qs);
        int *lo = g_new (int, T), *hi = g_new (int, T);
        for (int i = 0; i < T * qs; i++)
            q[i] = rnd () * 2;
        for (int i = 0; i < S * ks; i++) {
            k[i] = rnd () * 2;
            v[i] = rnd ();
        }
        for (int t = 0; t < T; t++) {
            lo[t] = T == 1 ? 3 : t % 5;
            hi[t] = t % 7 == 3 ? lo[t] : S - t % 3; /* none in reach, or fewer */
        }
        vlm_ops_attention (pool, out, q, k, v, T, S, H, KV, d, scale, cap, lo, hi);
        double *p = g_new (double, S);
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *qh = q + t * qs + h * d;
                int g = h / (H / KV);
                double max = -INFINITY, sum = 0;
                for (int s = lo[t]; s < hi[t]; s++) {
                    double a = 0;
                    for (int i = 0; i < d; i++)
                        a += (double) qh[i] * k[s * ks + g * d + i];
                    a *= scale;
                    p[s] = cap > 0 ? tanh (a / cap) * cap : a;
                    max = MAX (max, p[s]);
                }
                for (int s = lo[t]; s < hi[t]; s++)
                    sum += p[s] = exp (p[s] - max);
                for (int i = 0; i < d; i++) {
                    double want = 0;
                    for (int s = lo[t]; s < hi[t]; s++)
                        want += p[s] / sum * v[s * ks + g * d + i];
                    float got = out[t * qs + h * d + i];
                    if (fabs (got - want) > 2e-6)
                        g_error ("attention T=%d S=%d heads %d/%d d=%d: out[%d, %d, %d] = %.9g, "
                                 "float64 %.9g", T, S, H, KV, d, t, h, i, got, want);
                }
            }
        g_free (p);
        g_free (q);
        g_free (k);
        g_free (v);
        g_free (out);
        g_free (lo);
        g_free (hi);
    }
    vlm_thread_pool_free (pool);
}

static void test_f16_conversion (void)
{
    /* Every half round-trips; rounding is to nearest even. */
    for (guint32 h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads */
        g_assert_cmpuint (vlm_f32_to_f16 (vlm_f16_to_f32 (h)), ==, h);
    }
    g_assert_cmpuint (vlm_f32_to_f16 (1.0f + 1.0f / 2048), ==, 0x3c00); /* tie to even */
    g_assert_cmpuint (vlm_f32_to_f16 (1.0f + 3.0f / 2048), ==, 0x3c02);
    g_assert_cmpuint (vlm_f32_to_f16 (1e6f), ==, 0x7c00);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    g_test_add_func ("/kernels/sets-agree", test_sets_agree);
    g_test_add_func ("/kernels/quantize-roundtrip", test_quantize_roundtrip);
    g_test_add_func ("/kernels/quantize-sets-agree", test_quantize_sets_agree);
    g_test_add_func ("/kernels/gemm-matches-gemv", test_gemm_matches_gemv);
    g_test_add_func ("/kernels/f16-conversion", test_f16_conversion);
    g_test_add_func ("/kernels/norms", test_norms);
    g_test_add_func ("/kernels/attention", test_attention);
    g_test_add_func ("/kernels/mul-many", test_mul_many);
    g_test_add_func ("/kernels/to-pieces", test_to_pieces);
    g_test_add_func ("/kernels/bf16-dot-gemm", test_bf16_dot_gemm);
    return g_test_run ();
}
