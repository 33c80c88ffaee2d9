/* weights.c - tensor lookup, shape checks and float32 widening. */
#include "weights.h"

#include "kernels.h"
#include "vlm.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct _VlmWeights {
    VlmTensorStore *store;
    GPtrArray *copies;       /* widened float32 buffers we own */
    guint64 n_params;
    GHashTable *dtypes;      /* formats of the matrices as kept in memory */
    char *dtype;
    VlmMatType quantize_to;  /* VLM_MAT_F32: keep as stored */
    gboolean bf16_dot;
    int mlx_group, mlx_bits;
};

VlmWeights *vlm_weights_open (const char *dir, GError **error)
{
    VlmTensorStore *store = vlm_tensor_store_open_dir (dir, error);
    if (!store)
        return NULL;
    VlmWeights *w = g_new0 (VlmWeights, 1);
    w->store = store;
    w->copies = g_ptr_array_new_with_free_func (g_free);
    w->dtypes = g_hash_table_new (g_str_hash, g_str_equal);
    return w;
}

void vlm_weights_free (VlmWeights *w)
{
    if (!w)
        return;
    vlm_tensor_store_free (w->store);
    g_ptr_array_unref (w->copies);
    g_hash_table_unref (w->dtypes);
    g_free (w->dtype);
    g_free (w);
}

VlmTensorStore *vlm_weights_store (VlmWeights *w)
{
    return w->store;
}

static gboolean float_dtype (const VlmTensorInfo *t, GError **error)
{
    if (t->dtype == VLM_DTYPE_F32 || t->dtype == VLM_DTYPE_BF16 ||
        t->dtype == VLM_DTYPE_F16)
        return TRUE;
    g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': dtype %s is not a supported weight dtype "
                 "(F32, F16, BF16)", t->file, t->name, vlm_dtype_name (t->dtype));
    return FALSE;
}

/* Elements [first, first + n) of a float tensor as float32. */
static void convert (const VlmTensorInfo *t, gint64 first, gint64 n, float *dst)
{
    const guint8 *src = t->data;
    for (gint64 i = 0; i < n; i++) {
        guint16 h;
        switch (t->dtype) {
        case VLM_DTYPE_BF16:
            memcpy (&h, src + 2 * (first + i), 2);
            dst[i] = vlm_bf16_to_f32 (h);
            break;
        case VLM_DTYPE_F16:
            memcpy (&h, src + 2 * (first + i), 2);
            dst[i] = vlm_f16_to_f32 (h);
            break;
        default:
            memcpy (&dst[i], src + 4 * (first + i), 4);
        }
    }
}

static const float *widen (VlmWeights *w, VlmTensorInfo *t, GError **error)
{
    if (!float_dtype (t, error))
        return NULL;
    if (t->dtype == VLM_DTYPE_F32 && ((guintptr) t->data % sizeof (float)) == 0)
        return (const float *) t->data;
    float *dst = g_try_new (float, MAX (t->n_elements, 1));
    if (!dst) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: tensor '%s': out of memory for %" G_GINT64_FORMAT
                     " values", t->file, t->name, t->n_elements);
        return NULL;
    }
    convert (t, 0, t->n_elements, dst);
    g_ptr_array_add (w->copies, dst);
    return dst;
}

void vlm_weights_set_format (VlmWeights *w, VlmMatType quantize_to, gboolean bf16_dot,
                             int mlx_group, int mlx_bits)
{
    w->quantize_to = quantize_to;
    w->bf16_dot = bf16_dot;
    w->mlx_group = mlx_group;
    w->mlx_bits = mlx_bits;
}

/* The tensor name with exactly the shape dims, marked used; else an error
 * naming it with both shapes. */
static VlmTensorInfo *find_shaped (VlmWeights *w, const char *name, int ndim,
                                   const gint64 *dims, GError **error)
{
    VlmTensorInfo *t = vlm_tensor_store_find (w->store, name);
    g_autofree char *want = vlm_shape_to_string (ndim, dims);
    if (!t) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "missing tensor '%s' (expected shape %s)", name, want);
        return NULL;
    }
    gboolean same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == dims[i];
    if (!same) {
        g_autofree char *found = vlm_shape_to_string (t->ndim, t->shape);
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: tensor '%s': expected shape %s, found %s", t->file,
                     name, want, found);
        return NULL;
    }
    t->used = TRUE;
    return t;
}

/* Drop the mapped pages of bytes [p, p + n) we made our own copy of from
 * the resident set (the page cache keeps them). */
static void release_pages (const guint8 *p, gsize n)
{
    gsize page = sysconf (_SC_PAGESIZE);
    guintptr a = ((guintptr) p + page - 1) & ~(page - 1);
    guintptr b = ((guintptr) p + n) & ~(page - 1);
    if (b > a)
        madvise ((void *) a, b - a, MADV_DONTNEED);
}

void vlm_weights_release (VlmWeights *w, const void *p, gsize n)
{
    if (vlm_tensor_store_maps (w->store, p, n))
        release_pages (p, n);
}

/* f16 data of an MLX scales/biases tensor (widened formats are narrowed). */
static const guint16 *mlx_params (VlmWeights *w, VlmTensorInfo *t, GError **error)
{
    if (t->dtype == VLM_DTYPE_F16 && (guintptr) t->data % 2 == 0)
        return (const guint16 *) t->data;
    if (!float_dtype (t, error))
        return NULL;
    guint16 *h = g_new (guint16, t->n_elements);
    for (gint64 i = 0; i < t->n_elements; i++) {
        float f;
        convert (t, i, 1, &f);
        h[i] = vlm_f32_to_f16 (f);
    }
    g_ptr_array_add (w->copies, h);
    return h;
}

/* Scales or offsets p of tensor t, copied elsewhere: freed if they were a
 * copy of ours, else their mapped pages released. */
static void drop_params (VlmWeights *w, const VlmTensorInfo *t, const guint16 *p)
{
    if (!g_ptr_array_remove_fast (w->copies, (gpointer) p))
        release_pages (t->data, t->n_elements * sizeof (guint16));
}

/* An MLX module: name.weight U32 [rows, cols*bits/32], name.scales and
 * name.biases [rows, cols/group]. */
static gboolean get_mlx (VlmWeights *w, const char *name, gint64 rows,
                         gint64 cols, gboolean pieces, VlmMatrix *m, GError **error)
{
    int bits = w->mlx_bits, g = w->mlx_group;
    if ((bits != 4 && bits != 8) || g % 32 || cols % g) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                     "tensor '%s': MLX quantization with %d bits and group %d "
                     "over %" G_GINT64_FORMAT " columns is not supported (4 or "
                     "8 bits, groups a multiple of 32 dividing the columns)",
                     name, bits, g, cols);
        return FALSE;
    }
    g_autofree char *base = g_strndup (name, strlen (name) - strlen (".weight"));
    g_autofree char *sn = g_strconcat (base, ".scales", NULL);
    g_autofree char *bn = g_strconcat (base, ".biases", NULL);
    const gint64 wd[] = { rows, cols * bits / 32 }, sd[] = { rows, cols / g };
    VlmTensorInfo *wt = find_shaped (w, name, 2, wd, error);
    if (!wt)
        return FALSE;
    if (wt->dtype != VLM_DTYPE_U32) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: tensor '%s': MLX-quantized weights must be U32, found %s",
                     wt->file, name, vlm_dtype_name (wt->dtype));
        return FALSE;
    }
    VlmTensorInfo *st = find_shaped (w, sn, 2, sd, error);
    VlmTensorInfo *bt = st ? find_shaped (w, bn, 2, sd, error) : NULL;
    const guint16 *scales = bt ? mlx_params (w, st, error) : NULL;
    const guint16 *biases = scales ? mlx_params (w, bt, error) : NULL;
    if (!biases)
        return FALSE;
    *m = (VlmMatrix) { .type = bits == 8 ? VLM_MAT_Q8 : VLM_MAT_Q4,
                       .rows = rows, .cols = cols, .data = wt->data,
                       .row_bytes = cols * bits / 8, .group = g,
                       .n_groups = cols / g, .scales = scales, .biases = biases };
    gpointer copy = pieces ? vlm_matrix_to_pieces (m, m) : NULL;
    if (copy) { /* long rows: read in pieces (matrix.h), a copy of ours */
        g_ptr_array_add (w->copies, copy);
        release_pages (wt->data, rows * cols * bits / 8);
        drop_params (w, st, scales);
        drop_params (w, bt, biases);
    }
    return TRUE;
}

static gboolean is_mlx_quantized (VlmWeights *w, const char *name)
{
    if (!w->mlx_bits || !g_str_has_suffix (name, ".weight"))
        return FALSE;
    g_autofree char *base = g_strndup (name, strlen (name) - strlen (".weight"));
    g_autofree char *sn = g_strconcat (base, ".scales", NULL);
    return vlm_tensor_store_find (w->store, sn) != NULL;
}

/* The matrix type of a float tensor (float_dtype holds). */
static VlmMatType float_mat_type (const VlmTensorInfo *t)
{
    return t->dtype == VLM_DTYPE_F32 ? VLM_MAT_F32
           : t->dtype == VLM_DTYPE_BF16 ? VLM_MAT_BF16 : VLM_MAT_F16;
}

/* Quantize a float tensor a slice of rows at a time, each slice's mapped
 * pages released once done, so that loading never holds more than a
 * slice of the tensor beside the result. */
static void quantize (VlmWeights *w, const VlmTensorInfo *t, gint64 rows,
                      gint64 cols, VlmMatrix *m)
{
    g_ptr_array_add (w->copies, vlm_matrix_quantized_new (rows, cols, w->quantize_to, m));
    gint64 slice = MAX (1, (1 << 22) / cols);
    gsize elem = vlm_dtype_size (t->dtype);
    /* the tensor as stored, widened a row at a time by the CPU's kernel
     * (element by element, it took a fifth of a Q4 load) */
    VlmMatrix src = { .type = float_mat_type (t), .rows = rows, .cols = cols, .data = t->data,
                      .row_bytes = cols * elem };
    gboolean aligned = (guintptr) t->data % elem == 0;
    float *buf = aligned ? NULL : g_new (float, slice * cols);
    for (gint64 r = 0; r < rows; r += slice) {
        gint64 n = MIN (slice, rows - r);
        if (aligned) {
            vlm_matrix_quantize_from (m, r, n, &src);
        } else {
            convert (t, r * cols, n * cols, buf);
            vlm_matrix_quantize_rows (m, r, n, buf);
        }
        release_pages (t->data + r * cols * elem, n * cols * elem);
    }
    g_free (buf);
}

gboolean vlm_weights_get_matrix (VlmWeights *w, const char *name, gint64 rows,
                                 gint64 cols, VlmMatrix *m, GError **error)
{
    if (is_mlx_quantized (w, name)) {
        if (!get_mlx (w, name, rows, cols, TRUE, m, error))
            return FALSE;
    } else {
        const gint64 dims[] = { rows, cols };
        VlmTensorInfo *t = find_shaped (w, name, 2, dims, error);
        if (!t)
            return FALSE;
        gsize elem = vlm_dtype_size (t->dtype);
        if (!float_dtype (t, error))
            return FALSE;
        if (w->quantize_to != VLM_MAT_F32) {
            quantize (w, t, rows, cols, m);
            m->fast_dot = TRUE;
        } else if ((guintptr) t->data % elem) {
            /* Unaligned in the file: an aligned float32 copy. */
            const float *f = widen (w, t, error);
            if (!f)
                return FALSE;
            *m = (VlmMatrix) { .type = VLM_MAT_F32, .rows = rows, .cols = cols,
                               .data = f, .row_bytes = cols * sizeof (float) };
        } else {
            VlmMatType type = float_mat_type (t);
            *m = (VlmMatrix) { .type = type, .rows = rows, .cols = cols,
                               .data = t->data, .row_bytes = cols * elem,
                               .fast_dot = type == VLM_MAT_BF16 && w->bf16_dot };
        }
    }
    w->n_params += rows * cols;
    g_hash_table_add (w->dtypes, (char *) vlm_mat_type_name (m->type));
    return TRUE;
}

const float *vlm_weights_get (VlmWeights *w, const char *name, int ndim,
                              const gint64 *dims, GError **error)
{
    if (ndim == 2 && is_mlx_quantized (w, name)) {
        VlmMatrix m;
        if (!get_mlx (w, name, dims[0], dims[1], FALSE, &m, error))
            return NULL;
        float *f = g_new (float, dims[0] * dims[1]);
        for (gint64 r = 0; r < dims[0]; r++)
            vlm_matrix_get_row (&m, r, f + r * dims[1]);
        g_ptr_array_add (w->copies, f);
        w->n_params += dims[0] * dims[1];
        return f;
    }
    VlmTensorInfo *t = find_shaped (w, name, ndim, dims, error);
    const float *data = t ? widen (w, t, error) : NULL;
    if (data)
        w->n_params += t->n_elements;
    return data;
}

const float *vlm_weights_getf (VlmWeights *w, GError **error, int ndim,
                               const gint64 *dims, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    g_autofree char *name = g_strdup_vprintf (fmt, ap);
    va_end (ap);
    return vlm_weights_get (w, name, ndim, dims, error);
}

gboolean vlm_weights_has (VlmWeights *w, const char *name)
{
    return vlm_tensor_store_find (w->store, name) != NULL;
}

const VlmTensorInfo *vlm_weights_info (VlmWeights *w, const char *name)
{
    return vlm_tensor_store_find (w->store, name);
}

float *vlm_weights_alloc (VlmWeights *w, gsize n)
{
    float *p = g_new0 (float, n);
    g_ptr_array_add (w->copies, p);
    return p;
}

void vlm_weights_ignore (VlmWeights *w, const char *name)
{
    VlmTensorInfo *t = vlm_tensor_store_find (w->store, name);
    if (t)
        t->used = TRUE;
}

gboolean vlm_weights_check_all_used (VlmWeights *w, GError **error)
{
    VlmTensorInfo *t = vlm_tensor_store_first_unused (w->store);
    if (!t)
        return TRUE;
    g_autofree char *s = vlm_shape_to_string (t->ndim, t->shape);
    g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                 "%s: unexpected tensor '%s' %s: not part of this model's "
                 "architecture as its config.json describes it", t->file,
                 t->name, s);
    return FALSE;
}

guint64 vlm_weights_n_params (VlmWeights *w)
{
    return w->n_params;
}

const char *vlm_weights_dtype (VlmWeights *w)
{
    if (!w->dtype) {
        /* In a fixed order, so that the string does not depend on hashing. */
        GString *s = g_string_new (NULL);
        for (int t = VLM_MAT_F32; t <= VLM_MAT_Q4; t++)
            if (g_hash_table_contains (w->dtypes, vlm_mat_type_name (t)))
                g_string_append_printf (s, "%s%s", s->len ? "+" : "",
                                        vlm_mat_type_name (t));
        w->dtype = g_string_free (s, FALSE);
    }
    return w->dtype;
}
