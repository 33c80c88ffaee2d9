/* test_head_screen.c - the head's screen gives the token the whole product
 * gives (vlm_matrix_mul, soft-capped, vlm_sampler_argmax), bit for bit,
 * with the chosen kernel set (the suite runs it under each): float heads
 * of every type, rows of up to and over VLM_SHORT_ROW columns and ragged
 * sizes, with and without soft-capping; near-ties the 8-bit copy cannot
 * order (rows a thousandth apart), exact ties (the first row wins), NaN
 * activations; where the bound is tight (x along a row's quantization
 * error, or rounded by the integer products all one way), with both
 * choices of the VNNI set's Q8 rows. And it does screen: most products
 * read few rows. */
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
                g_assert_cmpuint (vlm_head_screen_argmax (NULL, &m, pool, x, cap, NULL), ==, want);
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

/* x against row r of m and its copy (vlm_head_screen_copy) where the
 * bound is tightest: along the row's quantization error w - q (kind 0,
 * times sign), or where the integer products' rounding of x adds up: in
 * each subgroup of 32 one x of 1 and the rest just under half a step of
 * the int16 codes (kind 1) or of two int8 parts (kind 2), all rounded
 * down, against rows whose codes s c are all large. */
static void adversarial_x (const VlmMatrix *m, const VlmMatrix *copy, int r, int kind, int sign,
                           float *x, float *q)
{
    int K = m->cols;
    if (kind == 0) {
        vlm_matrix_get_row (m, r, x);
        vlm_matrix_get_row (copy, r, q);
        for (int k = 0; k < K; k++)
            x[k] = sign * 3 * (x[k] - q[k]);
        return;
    }
    float frac = kind == 1 ? 0.4999f / 32767 : 0.4999f / 127;
    for (int k = 0; k < K; k++)
        x[k] = k % 32 ? frac : -1.0f;
}

/* Rows 0 .. V / 2 random; the rest a negative weight leading each group
 * of zeros, so that every zero has the largest code (s c = -o). */
static float *bound_rows (int V, int K)
{
    float *w = g_new0 (float, (gsize) V * K);
    for (int r = 0; r < V; r++)
        for (int k = 0; k < K; k++)
            w[(gsize) r * K + k] = r < V / 2 ? rnd () * (k % 7 ? 1.0f : 5.0f)
                                 : k % 32 ? 0.0f : -0.5f - 0.25f * (rnd () + 1);
    return w;
}

/* The bound holds where it is tightest, and is close to what the products
 * reach there (so a bound 20% smaller fails): returns the largest ratio
 * of the products' difference to the bound. */
static double check_bound (VlmThreadPool *pool, int V, int K)
{
    float *w = bound_rows (V, K), *x = g_new (float, K), *q = g_new (float, K);
    float *a = g_new (float, V), *e = g_new (float, V);
    double worst = 0;
    for (VlmMatType type = VLM_MAT_F32; type <= VLM_MAT_F16; type++) {
        gpointer keep;
        VlmMatrix m = make (type, w, V, K, &keep);
        VlmHeadScreen *s = vlm_head_screen_new (&m, pool);
        const VlmMatrix *copy = vlm_head_screen_copy (s);
        for (int r = 0; r < V; r++)
            for (int kind = 0; kind < 3; kind++)
                for (int sign = -1; sign <= 1; sign += 2) {
                    adversarial_x (&m, copy, r, kind, sign, x, q);
                    double xx = 0;
                    for (int k = 0; k < K; k++)
                        xx += (double) x[k] * x[k];
                    vlm_matrix_mul (pool, copy, x, 1, NULL, a);
                    vlm_matrix_mul (pool, &m, x, 1, NULL, e);
                    double diff = fabs ((double) a[r] - e[r]);
                    double bound = vlm_head_screen_bound (s, r) * sqrt (xx);
                    if (diff > bound)
                        g_error ("%s %dx%d row %d, x of kind %d: the copy's product is %g "
                                 "from the head's, beyond its bound %g",
                                 vlm_mat_type_name (type), V, K, r, kind, diff, bound);
                    worst = MAX (worst, diff / bound);
                }
        vlm_head_screen_free (s);
        g_free (keep);
    }
    g_free (w);
    g_free (x);
    g_free (q);
    g_free (a);
    g_free (e);
    return worst;
}

static void test_bound (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    const int shapes[][2] = { { 64, 2048 }, { 64, 4608 }, { 67, 100 } };
    for (guint i = 0; i < G_N_ELEMENTS (shapes); i++) {
        double worst = check_bound (pool, shapes[i][0], shapes[i][1]);
        g_test_message ("%dx%d: the products come within %.3f of the bound",
                        shapes[i][0], shapes[i][1], worst);
        g_assert_cmpfloat (worst, >, 0.8);
    }
    vlm_thread_pool_free (pool);
}

/* Where the bound is tight the screen still gives the whole product's
 * token. Row 0 leads a group of zeros with -255/256: its copy's product
 * falls below its own by the integer rounding of x (kinds 1 and 2 above).
 * Against it, either every other row slightly negative on x (row 16
 * least), or row 16 likewise made in the next group, 1e-4 below row 0 on
 * x but its copy's product above its own by as much as row 0's is below
 * (so the rows left must reach down to the largest lower bound, not the
 * largest copy's product). */
static void test_tight_rows (void)
{
    int V = 128, K = 64;
    float w[128 * 64], x[64];
    for (int c = 0; c < 2; c++)
        for (VlmMatType type = VLM_MAT_F32; type <= VLM_MAT_F16; type++) {
            memset (w, 0, sizeof w);
            for (int r = 1; r < V && c == 0; r++)
                w[r * K + 1] = r == 16 ? -1e-6f : -1e-3f;
            w[0] = -255.0f / 256;
            if (c == 1)
                w[16 * K + 32] = -255.0f / 256;
            gpointer keep;
            VlmMatrix m = make (type, w, V, K, &keep);
            VlmHeadScreen *s = vlm_head_screen_new (&m, NULL);
            for (int kind = 1; kind < 3; kind++) {
                float frac = kind == 1 ? 0.4999f / 32767 : 0.4999f / 127, m1 = 1 - 1e-4f;
                for (int k = 0; k < 32; k++)
                    x[k] = c == 0 ? (k == 1 ? 1 : k ? frac : 0) : (k ? frac : -1);
                for (int k = 32; k < K; k++)
                    x[k] = c == 0 ? 0 : (k > 32 ? -frac * m1 : -m1);
                g_assert_cmpuint (whole (&m, NULL, x, 0), ==, 0);
                g_assert_cmpuint (vlm_head_screen_argmax (s, &m, NULL, x, 0, NULL), ==, 0);
            }
            vlm_head_screen_free (s);
            g_free (keep);
        }
}

/* x so small that the integer products' scales would overflow, or its
 * norm below what the bound covers: the whole product's token. */
static void test_tiny_x (void)
{
    int V = 256, K = 64;
    float *w = bound_rows (V, K), x[64];
    gpointer keep;
    VlmMatrix m = make (VLM_MAT_BF16, w, V, K, &keep);
    VlmHeadScreen *s = vlm_head_screen_new (&m, NULL);
    for (int t = 0; t < 20; t++) {
        float scale = t % 2 ? 1e-35f : 1e-21f;
        for (int k = 0; k < K; k++)
            x[k] = w[(gsize) (t * 7 % V) * K + k] * scale * (1 + 0.01f * rnd ());
        int n_exact;
        g_assert_cmpuint (vlm_head_screen_argmax (s, &m, NULL, x, 0, &n_exact), ==,
                          whole (&m, NULL, x, 0));
    }
    vlm_head_screen_free (s);
    g_free (keep);
    g_free (w);
}

/* vlm_matrix_mul_rows on an aligned block gives the same floats as the
 * whole product, rows taken four at a time (over VLM_SHORT_ROW) included. */
static void test_mul_rows_bitwise (void)
{
    VlmThreadPool *pool = vlm_thread_pool_new (2);
    const int shapes[][2] = { { 333, 4101 }, { 1000, 2048 }, { 77, 100 } };
    for (guint i = 0; i < G_N_ELEMENTS (shapes); i++) {
        int V = shapes[i][0], K = shapes[i][1];
        float *w = g_new (float, (gsize) V * K), *x = g_new (float, K);
        float *y = g_new (float, V), *z = g_new (float, V);
        for (gsize k = 0; k < (gsize) V * K; k++)
            w[k] = rnd ();
        for (int k = 0; k < K; k++)
            x[k] = rnd ();
        for (VlmMatType type = VLM_MAT_F32; type <= VLM_MAT_F16; type++) {
            gpointer keep;
            VlmMatrix m = make (type, w, V, K, &keep);
            vlm_matrix_mul (pool, &m, x, 1, NULL, y);
            for (int r0 = 0; r0 < V; r0 += VLM_GEMV_ALIGN)
                vlm_matrix_mul_rows (&m, x, z, r0, MIN (V, r0 + VLM_GEMV_ALIGN));
            g_assert_cmpmem (y, V * sizeof (float), z, V * sizeof (float));
            g_free (keep);
        }
        g_free (w);
        g_free (x);
        g_free (y);
        g_free (z);
    }
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

/* Each test again with the other choice of the VNNI set's Q8 rows
 * (vlm_tuning.q8_rows_vnni: two int8 parts of x, or int16 codes), which
 * the CPU's model makes. */
static void with_other_q8_rows (gconstpointer test)
{
    vlm_tuning.q8_rows_vnni = !vlm_tuning.q8_rows_vnni;
    ((void (*) (void)) test) ();
    vlm_tuning.q8_rows_vnni = !vlm_tuning.q8_rows_vnni;
}

int main (int argc, char **argv)
{
    g_test_init (&argc, &argv, NULL);
    vlm_kernels_get (); /* the tuning is set with the kernels, then flipped per test */
    const struct {
        const char *name;
        void (*func) (void);
    } tests[] = {
        { "bound", test_bound },
        { "tight-rows", test_tight_rows },
        { "tiny-x", test_tiny_x },
        { "mul-rows-bitwise", test_mul_rows_bitwise },
        { "matches-whole", test_matches_whole },
    };
    for (guint i = 0; i < G_N_ELEMENTS (tests); i++) {
        g_autofree char *path = g_strdup_printf ("/head-screen/%s", tests[i].name);
        g_autofree char *other = g_strdup_printf ("/head-screen/%s/other-q8-rows", tests[i].name);
        g_test_add_func (path, tests[i].func);
        g_test_add_data_func (other, (gconstpointer) tests[i].func, with_other_q8_rows);
    }
    g_test_add_func ("/head-screen/quantized-heads-have-none", test_quantized_heads_have_none);
    g_test_add_func ("/head-screen/non-finite-weights-have-none",
                     test_non_finite_weights_have_none);
    return g_test_run ();
}
