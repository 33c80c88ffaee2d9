/* test_head_screen.c - the head's screen gives the token the whole product
 * gives (vlm_matrix_mul, soft-capped, vlm_sampler_argmax), bit for bit,
 * with the chosen kernel set (the suite runs it under each): float heads
 * of every type, rows of up to and over VLM_SHORT_ROW columns and ragged
 * sizes, with and without soft-capping; near-ties the 8-bit copy cannot
 * order (rows a thousandth apart), exact ties (the first row wins), NaN
 * activations. And it does screen: most products read few rows. */
#include "head_screen.h"
#include "kernels.h"
#include "ops.h"
#include "sampler.h"

#include <math.h>
#include <string.h>

static guint64 rng = 0x9e3779b97f4a7c15ULL;

static float rnd (void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 40) / 8388608.0f - 1.0f;
}

static VlmMatrix make (VlmMatType type, const float *w, int rows, int cols, gpointer *keep)
{
    gsize elem = type == VLM_MAT_F32 ? 4 : 2, n = (gsize) rows * cols;
    guint8 *d = g_malloc (n * elem);
    for (gsize i = 0; i < n; i++) {
        guint32 u;
        memcpy (&u, &w[i], 4);
        guint16 h = type == VLM_MAT_F16 ? vlm_f32_to_f16 (w[i]) : u >> 16;
        memcpy (d + elem * i, type == VLM_MAT_F32 ? (void *) &w[i] : (void *) &h, elem);
    }
    *keep = d;
    return (VlmMatrix) { .type = type, .rows = rows, .cols = cols, .data = d,
                         .row_bytes = cols * elem };
}

static guint32 whole (const VlmMatrix *w, VlmThreadPool *pool, const float *x, float cap)
{
    float *y = g_new (float, w->rows);
    vlm_matrix_mul (pool, w, x, 1, NULL, y);
    if (cap > 0)
        vlm_ops_softcap (y, w->rows, cap);
    guint32 best = vlm_sampler_argmax (y, w->rows);
    g_free (y);
    return best;
}

static void check_shape (VlmThreadPool *pool, int V, int K)
{
    /* Rows of norm about 1; rows 16 .. 79 are row 5 moved by a thousandth
     * of its size, row V - 7 is row 100 again (a tie the first row wins). */
    float *w = g_new (float, (gsize) V * K);
    float scale = sqrtf (3.0f / K);
    for (gsize i = 0; i < (gsize) V * K; i++)
        w[i] = rnd () * scale;
    for (int r = 16; r < 80; r++)
        for (int k = 0; k < K; k++)
            w[(gsize) r * K + k] = w[(gsize) 5 * K + k] * (1 + 1e-3f * rnd ());
    memcpy (w + (gsize) (V - 7) * K, w + (gsize) 100 * K, K * sizeof (float));

    float *x = g_new (float, K);
    for (VlmMatType type = VLM_MAT_F32; type <= VLM_MAT_F16; type++) {
        gpointer keep;
        VlmMatrix m = make (type, w, V, K, &keep);
        VlmHeadScreen *s = vlm_head_screen_new (&m, pool);
        g_assert_nonnull (s);
        int trials = 0, screened = 0;
        for (int t = 0; t < 24; t++) {
            /* x along row 5 (logits about 20 there), or anywhere */
            float along = t % 2 ? 20.0f : 0.0f;
            for (int k = 0; k < K; k++)
                x[k] = along * w[(gsize) 5 * K + k] + rnd () * 4 * scale;
            for (int c = 0; c < 2; c++) {
                float cap = c ? 30.0f : 0.0f;
                int n_exact;
                guint32 got = vlm_head_screen_argmax (s, &m, pool, x, cap, &n_exact);
                guint32 want = whole (&m, pool, x, cap);
                if (got != want)
                    g_error ("%s %dx%d, trial %d, cap %g: screen chose row %u, the whole "
                             "product %u", vlm_mat_type_name (type), V, K, t, cap, got, want);
                trials++;
                screened += n_exact < V;
            }
        }
        g_assert_cmpint (screened, >=, trials * 3 / 4);

        /* an exact tie between rows 100 and V - 7 */
        for (int k = 0; k < K; k++)
            x[k] = 20.0f * w[(gsize) 100 * K + k];
        g_assert_cmpuint (vlm_head_screen_argmax (s, &m, pool, x, 0, NULL), ==, 100);
        g_assert_cmpuint (whole (&m, pool, x, 0), ==, 100);

        x[K / 2] = NAN;
        g_assert_cmpuint (vlm_head_screen_argmax (s, &m, pool, x, 0, NULL), ==,
                          whole (&m, pool, x, 0));
        vlm_head_screen_free (s);
        g_free (keep);
    }
    g_free (x);
    g_free (w);
}

static void test_matches_whole (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    check_shape (pool, 4096, 2048);
    check_shape (pool, 4099, 4608); /* rows read four at a time */
    check_shape (pool, 3001, 100);  /* ragged groups and blocks */
    vlm_thread_pool_free (pool);
}

/* The bound holds where it is tightest: x along a row's own quantization
 * error, either way, and close to it (so a bound 20% smaller fails). */
static void check_bound (VlmThreadPool *pool, int V, int K)
{
    float *w = g_new (float, (gsize) V * K), *x = g_new (float, K), *q = g_new (float, K);
    float *a = g_new (float, V), *e = g_new (float, V);
    for (gsize i = 0; i < (gsize) V * K; i++)
        w[i] = rnd () * (i % 7 ? 1.0f : 5.0f);
    for (VlmMatType type = VLM_MAT_F32; type <= VLM_MAT_F16; type++) {
        gpointer keep;
        VlmMatrix m = make (type, w, V, K, &keep);
        VlmHeadScreen *s = vlm_head_screen_new (&m, pool);
        double worst = 0;
        for (int r = 0; r < V; r++)
            for (int sign = -1; sign <= 1; sign += 2) {
                vlm_matrix_get_row (&m, r, x);
                vlm_matrix_get_row (vlm_head_screen_copy (s), r, q);
                double xx = 0;
                for (int k = 0; k < K; k++) {
                    x[k] = sign * 3 * (x[k] - q[k]);
                    xx += (double) x[k] * x[k];
                }
                vlm_matrix_mul (pool, vlm_head_screen_copy (s), x, 1, NULL, a);
                vlm_matrix_mul (pool, &m, x, 1, NULL, e);
                double ratio = fabs ((double) a[r] - e[r]) /
                               (vlm_head_screen_bound (s, r) * sqrt (xx));
                if (ratio > 1)
                    g_error ("%s %dx%d row %d: the copy's product is %g from the head's, "
                             "beyond its bound %g", vlm_mat_type_name (type), V, K, r,
                             fabs ((double) a[r] - e[r]), vlm_head_screen_bound (s, r) * sqrt (xx));
                worst = MAX (worst, ratio);
            }
        g_assert_cmpfloat (worst, >, 0.8);
        vlm_head_screen_free (s);
        g_free (keep);
    }
    g_free (w);
    g_free (x);
    g_free (q);
    g_free (a);
    g_free (e);
}

static void test_bound (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    check_bound (pool, 64, 2048);
    check_bound (pool, 64, 4608);
    check_bound (pool, 67, 100);
    vlm_thread_pool_free (pool);
}

static void test_quantized_heads_have_none (void)
{
    VlmMatrix q;
    gpointer keep = vlm_matrix_quantized_new (64, 64, VLM_MAT_Q8, &q);
    g_assert_null (vlm_head_screen_new (&q, NULL));
    g_free (keep);
}

static void test_non_finite_weights_have_none (void)
{
    float w[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        w[i] = rnd ();
    w[100] = INFINITY;
    gpointer keep;
    VlmMatrix m = make (VLM_MAT_F32, w, 64, 64, &keep);
    g_assert_null (vlm_head_screen_new (&m, NULL));
    g_free (keep);
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    g_test_add_func ("/head-screen/bound", test_bound);
    g_test_add_func ("/head-screen/matches-whole", test_matches_whole);
    g_test_add_func ("/head-screen/quantized-heads-have-none", test_quantized_heads_have_none);
    g_test_add_func ("/head-screen/non-finite-weights-have-none",
                     test_non_finite_weights_have_none);
    return g_test_run ();
}
