/* matrix.c - products with weight matrices in their stored format, on the
 * session's threads: GEMV with the CPU's row kernels, GEMM with the CPU's
 * GEMM kernel or through cblas on float32 panels; load-time quantization. */
#include "matrix.h"

#include "kernels.h"
#include "ops.h"
#include "threadpool.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

const char *vlm_mat_type_name (VlmMatType t)
{
    static const char *const names[] = { "F32", "BF16", "F16", "Q8", "Q4" };
    return names[t];
}

/* Bytes of the codes of n_groups groups (a quantized row, padding included). */
static gsize code_bytes (VlmMatType type, int n_groups, int group)
{
    return (gsize) n_groups * group * (type == VLM_MAT_Q8 ? 8 : 4) / 8;
}

gsize vlm_matrix_bytes (const VlmMatrix *m)
{
    if (m->type != VLM_MAT_Q8 && m->type != VLM_MAT_Q4)
        return m->row_bytes * m->rows;
    return (code_bytes (m->type, m->n_groups, m->group) + m->n_groups * 2 * sizeof (guint16)) *
           m->rows;
}

int vlm_matrix_n_pieces (const VlmMatrix *w)
{
    return w->piece_cols ? (w->cols + w->piece_cols - 1) / w->piece_cols : 1;
}

VlmMatrix vlm_matrix_piece (const VlmMatrix *w, int p)
{
    if (!w->piece_cols)
        return *w;
    VlmMatrix v = *w;
    v.cols = MIN (w->piece_cols, w->cols - p * w->piece_cols);
    v.n_groups = (v.cols + w->group - 1) / w->group;
    v.row_bytes = code_bytes (w->type, v.n_groups, w->group);
    gsize before = (gsize) p * w->rows; /* rows of the full pieces before */
    v.data = (const guint8 *) w->data + before * w->row_bytes;
    v.scales += before * (w->piece_cols / w->group);
    v.biases += before * (w->piece_cols / w->group);
    v.piece_cols = 0;
    return v;
}

void vlm_matrix_widen (const VlmMatrix *w, int r, int j0, int j1, float *out)
{
    VlmWidenFunc widen = vlm_kernels_get ()->widen[w->type];
    if (!w->piece_cols) {
        widen (w, r, j0, j1, out);
        return;
    }
    while (j0 < j1) {
        int p = j0 / w->piece_cols, c0 = p * w->piece_cols, e = MIN (j1, c0 + w->piece_cols);
        VlmMatrix v = vlm_matrix_piece (w, p);
        widen (&v, r, j0 - c0, e - c0, out);
        out += e - j0;
        j0 = e;
    }
}

void vlm_matrix_widen_rows (const VlmMatrix *w, int r0, int n, int j0, int j1, float *out)
{
    gboolean half = w->type == VLM_MAT_BF16 || w->type == VLM_MAT_F16;
    for (int i = 0; i < n; i++) {
        /* 16-bit rows come from memory: ask for the row 4 ahead (the
         * widening waited on its loads: 2-4% of an AVX-512 vision
         * product; AVX2 BF16 two threads 195-198 -> 199-203 GFLOP/s) */
        if (half && i + 4 < n)
            vlm_prefetch_lines ((const guint8 *) w->data + (gsize) (r0 + i + 4) * w->row_bytes +
                                    2 * (gsize) j0,
                                0, (j1 - j0) * 2 / 64);
        vlm_matrix_widen (w, r0 + i, j0, j1, out + (gsize) i * (j1 - j0));
    }
}

float vlm_matrix_get_element (const VlmMatrix *w, int r, int j)
{
    if (w->piece_cols) {
        VlmMatrix v = vlm_matrix_piece (w, j / w->piece_cols);
        return vlm_matrix_get_element (&v, r, j % w->piece_cols);
    }
    const guint8 *row = (const guint8 *) w->data + (gsize) r * w->row_bytes;
    switch (w->type) {
    case VLM_MAT_F32:
        return ((const float *) row)[j];
    case VLM_MAT_BF16:
        return vlm_bf16_to_f32 (((const guint16 *) row)[j]);
    case VLM_MAT_F16:
        return vlm_f16_to_f32 (((const guint16 *) row)[j]);
    default: {
        int k = j / w->group;
        int q = w->type == VLM_MAT_Q8 ? row[j] : (row[j / 2] >> (4 * (j & 1))) & 15;
        return vlm_f16_to_f32 (w->scales[(gsize) r * w->n_groups + k]) * q +
               vlm_f16_to_f32 (w->biases[(gsize) r * w->n_groups + k]);
    }
    }
}

void vlm_matrix_get_row (const VlmMatrix *w, int r, float *out)
{
    vlm_matrix_widen (w, r, 0, w->cols, out);
}

/* Calls f on each product's part of this thread's share of the rows of all
 * products, taken one after another; then adds that part's bias. */
typedef void (*ShareFunc) (gconstpointer job, const VlmProduct *p, int r0, int r1);

static void for_each_share (const VlmProduct *p, int n, int M, int ith, int nth, int align,
                            ShareFunc f, gconstpointer job)
{
    int total = 0, a, b;
    for (int i = 0; i < n; i++)
        total += p[i].w->rows;
    vlm_split (total, ith, nth, align, &a, &b);
    for (int i = 0, base = 0; i < n && base < b; base += p[i].w->rows, i++) {
        int N = p[i].w->rows, r0 = MAX (a - base, 0), r1 = MIN (b - base, N);
        if (r0 >= r1)
            continue;
        f (job, &p[i], r0, r1);
        if (p[i].b) /* each thread its own columns, while they are in cache */
            for (int t = 0; t < M; t++)
                vlm_ops_add (p[i].y + (gsize) t * N + r0, p[i].b + r0, r1 - r0);
    }
}

/* x made ready for w's row kernels: quantized W reads whole groups, so x
 * is zero past cols, with its per-group sums; each piece's x prepared by
 * the kernel set. */
typedef struct {
    const float *x, *xg;
    float *xpad, *xg_own;
    int n_pieces;
    gpointer *prep;   /* [n_pieces] */
    VlmRowsFunc rows;
} GemvX;

static void gemv_x_init (GemvX *g, const VlmMatrix *w, const float *x)
{
    const VlmKernels *k = vlm_kernels_get ();
    *g = (GemvX) { .x = x, .n_pieces = vlm_matrix_n_pieces (w), .rows = k->rows[w->type] };
    if (w->type == VLM_MAT_Q8 || w->type == VLM_MAT_Q4) {
        int padded = w->n_groups * w->group;
        if (padded != w->cols) {
            g->xpad = g_new0 (float, padded);
            memcpy (g->xpad, x, w->cols * sizeof (float));
            g->x = g->xpad;
        }
        g->xg = g->xg_own = g_new (float, w->n_groups);
        for (int c = 0; c < w->n_groups; c++) {
            float s = 0;
            for (int i = 0; i < w->group; i++)
                s += g->x[c * w->group + i];
            g->xg_own[c] = s;
        }
    }
    g->prep = g_new0 (gpointer, g->n_pieces);
    for (int c = 0; c < g->n_pieces && k->prepare[w->type]; c++) {
        VlmMatrix v = vlm_matrix_piece (w, c);
        g->prep[c] = k->prepare[w->type] (&v, g->x + c * w->piece_cols);
    }
}

static void gemv_x_clear (GemvX *g)
{
    for (int c = 0; c < g->n_pieces; c++)
        g_free (g->prep[c]);
    g_free (g->prep);
    g_free (g->xpad);
    g_free (g->xg_own);
}

/* y[r0 .. r1) of W x, piece after piece. */
static void gemv_rows (const GemvX *g, const VlmMatrix *w, float *y, int r0, int r1)
{
    if (g->n_pieces == 1) {
        g->rows (w, g->x, g->xg, g->prep[0], y, r0, r1);
        return;
    }
    float *part = g_new (float, r1);
    for (int c = 0; c < g->n_pieces; c++) {
        int c0 = c * w->piece_cols;
        VlmMatrix v = vlm_matrix_piece (w, c);
        g->rows (&v, g->x + c0, g->xg + c0 / v.group, g->prep[c], c ? part : y, r0, r1);
        if (c)
            vlm_ops_add (y + r0, part + r0, r1 - r0);
    }
    g_free (part);
}

typedef struct {
    const VlmProduct *p;
    int n;
    GemvX x;
} GemvJob;

static void gemv_share (gconstpointer job, const VlmProduct *p, int r0, int r1)
{
    gemv_rows (&((const GemvJob *) job)->x, p->w, p->y, r0, r1);
}

static void gemv_part (int ith, int nth, gpointer data)
{
    const GemvJob *j = data;
    for_each_share (j->p, j->n, 1, ith, nth, VLM_GEMV_ALIGN, gemv_share, j);
}

/* x is prepared once for all products (they share type, group and cols). */
static void gemv (VlmThreadPool *pool, const VlmProduct *p, int n, gsize size, const float *x)
{
    GemvJob job = { p, n };
    gemv_x_init (&job.x, p[0].w, x);
    /* Waking the workers costs more than a small matrix. */
    vlm_thread_pool_run (size >= (1 << 16) ? pool : NULL, gemv_part, &job);
    gemv_x_clear (&job.x);
}

void vlm_matrix_mul_rows (const VlmMatrix *w, const float *x, float *y, int r0, int r1)
{
    GemvX g;
    gemv_x_init (&g, w, x);
    gemv_rows (&g, w, y, r0, r1);
    gemv_x_clear (&g);
}

/* The GEMM where the CPU has no kernel of ours: x as it is, and each
 * thread's rows of W as float32 panels (converted unless W is float32)
 * times x by a single-threaded cblas_sgemm. */
typedef struct {
    const float *x;
    int M, K;
} BlasX;

static gpointer blas_pack_new (const float *x, int M, int K)
{
    BlasX *p = g_new (BlasX, 1);
    *p = (BlasX) { x, M, K };
    return p;
}

static void blas_rows (const VlmMatrix *w, gconstpointer packed, float *y, int a, int b)
{
    const BlasX *p = packed;
    int N = w->rows, K = w->cols;
    if (w->type == VLM_MAT_F32) {
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, p->M, b - a, K, 1.0f, p->x, K,
                     (const float *) ((const guint8 *) w->data + (gsize) a * w->row_bytes),
                     w->row_bytes / sizeof (float), 0.0f, y + a, N);
        return;
    }
    /* Panels of ~1M floats (4 MB, cache-friendly), in multiples of 16 rows. */
    int R = MIN (b - a, MAX (16, (1 << 20) / K / 16 * 16));
    float *panel = g_new (float, (gsize) R * K);
    for (int r0 = a; r0 < b; r0 += R) {
        int n = MIN (R, b - r0);
        for (int i = 0; i < n; i++)
            vlm_matrix_widen (w, r0 + i, 0, K, panel + (gsize) i * K);
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, p->M, n, K, 1.0f, p->x, K,
                     panel, K, 0.0f, y + r0, N);
    }
    g_free (panel);
}

static const VlmGemm blas_gemm = { blas_pack_new, NULL, blas_rows, g_free };

typedef struct {
    const VlmProduct *p;
    int n, M;
    const VlmGemm *gemm;
    gpointer packed;
} GemmJob;

static void pack_part (int ith, int nth, gpointer data)
{
    const GemmJob *j = data;
    j->gemm->pack_part (j->packed, ith, nth);
}

static void gemm_share (gconstpointer job, const VlmProduct *p, int r0, int r1)
{
    const GemmJob *j = job;
    j->gemm->rows (p->w, j->packed, p->y, r0, r1);
}

static void gemm_part (int ith, int nth, gpointer data)
{
    const GemmJob *j = data;
    for_each_share (j->p, j->n, j->M, ith, nth, 64, gemm_share, j);
}

void vlm_matrix_mul_many (VlmThreadPool *pool, const VlmProduct *p, int n,
                          const float *x, int M)
{
    const VlmMatrix *w = p[0].w;
    gsize size = 0;
    for (int i = 0; i < n; i++) {
        g_return_if_fail (p[i].w->cols == w->cols);
        if (p[i].w->type != w->type || p[i].w->group != w->group ||
            p[i].w->piece_cols != w->piece_cols || p[i].w->fast_dot != w->fast_dot) {
            for (int k = 0; k < n; k++) /* formats differ: one at a time */
                vlm_matrix_mul_many (pool, &p[k], 1, x, M);
            return;
        }
        size += (gsize) p[i].w->rows * w->cols;
    }
    if (M == 1) {
        gemv (pool, p, n, size, x);
        return;
    }
    const VlmGemm *gemm = w->fast_dot ? vlm_gemm_fast_dot (w) : NULL;
    if (!gemm)
        gemm = vlm_kernels_get ()->gemm[w->type];
    if (!gemm)
        gemm = &blas_gemm;
    GemmJob job = { p, n, M, gemm, gemm->pack_new (x, M, w->cols) };
    VlmThreadPool *tp = size * M >= (1 << 18) ? pool : NULL;
    if (gemm->pack_part)
        vlm_thread_pool_run (tp, pack_part, &job);
    vlm_thread_pool_run (tp, gemm_part, &job);
    gemm->free (job.packed);
}

void vlm_matrix_mul (VlmThreadPool *pool, const VlmMatrix *w, const float *x,
                     int M, const float *b, float *y)
{
    VlmProduct p = { w, b, y };
    vlm_matrix_mul_many (pool, &p, 1, x, M);
}

typedef struct {
    const float *w;         /* rows r0 .. r0 + n as float32, or NULL: */
    const VlmMatrix *src;   /* rows r0 .. r0 + n widened by the thread quantizing them */
    const VlmMatrix *m;
    int r0, n;
} QuantJob;

static void quantize_part (int ith, int nth, gpointer data)
{
    const QuantJob *j = data;
    const VlmMatrix *m = j->m;
    VlmQuantizeFunc quantize = vlm_kernels_get ()->quantize;
    int bits = m->type == VLM_MAT_Q8 ? 8 : 4, g = m->group, a, b;
    float *widened = j->w ? NULL : g_new (float, m->cols);
    vlm_split (j->n, ith, nth, 1, &a, &b);
    for (int r = j->r0 + a; r < j->r0 + b; r++) {
        const float *row = j->w ? j->w + (gsize) (r - j->r0) * m->cols : widened;
        if (!j->w)
            vlm_matrix_widen (j->src, r, 0, m->cols, widened);
        for (int p = 0; p < vlm_matrix_n_pieces (m); p++) {
            VlmMatrix v = vlm_matrix_piece (m, p);
            const float *x = row + p * m->piece_cols;
            guint8 *q = (guint8 *) v.data + r * v.row_bytes;
            guint16 *rs = (guint16 *) v.scales + (gsize) r * v.n_groups;
            guint16 *rb = (guint16 *) v.biases + (gsize) r * v.n_groups;
            for (int k = 0; k < v.n_groups; k++)
                quantize (x + k * g, MIN (g, v.cols - k * g), bits,
                          q + code_bytes (m->type, k, g), rs + k, rb + k);
        }
    }
    g_free (widened);
}

/* Zeroed storage for a quantized matrix [rows, cols] in groups of group,
 * kept in pieces when its rows are longer than VLM_PIECE_AFTER; *m
 * describes it. */
static gpointer layout_new (VlmMatType type, int rows, int cols, int group, VlmMatrix *m)
{
    int n_groups = (cols + group - 1) / group;
    int piece_cols = cols > VLM_PIECE_AFTER ? VLM_PIECE_COLS : 0;
    gsize codes = code_bytes (type, n_groups, group) * rows, params = (gsize) rows * n_groups;
    guint8 *block = g_malloc0 (codes + 2 * params * sizeof (guint16));
    guint16 *scales = (guint16 *) (block + codes);
    *m = (VlmMatrix) { .type = type, .rows = rows, .cols = cols, .data = block,
                       .row_bytes = piece_cols ? code_bytes (type, piece_cols / group, group)
                                               : code_bytes (type, n_groups, group),
                       .group = group, .n_groups = n_groups, .piece_cols = piece_cols,
                       .scales = scales, .biases = scales + params };
    return block;
}

gpointer vlm_matrix_to_pieces (const VlmMatrix *src, VlmMatrix *dst)
{
    if (src->piece_cols || src->cols <= VLM_PIECE_AFTER || VLM_PIECE_COLS % src->group)
        return NULL;
    VlmMatrix m;
    gpointer block = layout_new (src->type, src->rows, src->cols, src->group, &m);
    for (int p = 0; p < vlm_matrix_n_pieces (&m); p++) {
        VlmMatrix v = vlm_matrix_piece (&m, p);
        int g0 = p * VLM_PIECE_COLS / src->group;
        for (int r = 0; r < src->rows; r++) {
            memcpy ((guint8 *) v.data + r * v.row_bytes,
                    (const guint8 *) src->data + r * src->row_bytes +
                        code_bytes (src->type, g0, src->group),
                    v.row_bytes);
            memcpy ((guint16 *) v.scales + (gsize) r * v.n_groups,
                    src->scales + (gsize) r * src->n_groups + g0, v.n_groups * sizeof (guint16));
            memcpy ((guint16 *) v.biases + (gsize) r * v.n_groups,
                    src->biases + (gsize) r * src->n_groups + g0, v.n_groups * sizeof (guint16));
        }
    }
    *dst = m;
    return block;
}

gpointer vlm_matrix_quantized_new (int rows, int cols, VlmMatType type,
                                   VlmMatrix *m)
{
    return layout_new (type, rows, cols, 32, m);
}

/* Loading a 3B model quantizes billions of weights: every core for the
 * large slices. */
static void quantize_job (QuantJob *job)
{
    VlmThreadPool *pool = (gsize) job->n * job->m->cols >= (1 << 20)
                              ? vlm_thread_pool_new (g_get_num_processors ()) : NULL;
    vlm_thread_pool_run (pool, quantize_part, job);
    vlm_thread_pool_free (pool);
}

void vlm_matrix_quantize_rows (VlmMatrix *m, int r0, int n, const float *src)
{
    QuantJob job = { src, NULL, m, r0, n };
    quantize_job (&job);
}

void vlm_matrix_quantize_from (VlmMatrix *m, int r0, int n, const VlmMatrix *src)
{
    QuantJob job = { NULL, src, m, r0, n };
    quantize_job (&job);
}
