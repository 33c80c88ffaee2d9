/* weights.c - tensor lookup, shape checks and float32 widening. */
#include "weights.h"

#include "vlm.h"

#include <string.h>

struct _VlmWeights {
    VlmTensorStore *store;
    GPtrArray *copies;       /* widened float32 buffers we own */
    guint64 n_params;
    GHashTable *dtypes;      /* dtype names seen in bound tensors */
    char *dtype;
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

static float bf16_to_f32 (guint16 h)
{
    guint32 u = (guint32) h << 16;
    float f;
    memcpy (&f, &u, 4);
    return f;
}

static float f16_to_f32 (guint16 h)
{
    guint32 sign = (guint32) (h & 0x8000) << 16;
    guint32 exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000 | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy (&f, &u, 4);
    return f;
}

static const float *widen (VlmWeights *w, VlmTensorInfo *t, GError **error)
{
    const guint8 *src = t->data;
    if (t->dtype == VLM_DTYPE_F32 && ((guintptr) src % sizeof (float)) == 0)
        return (const float *) src;
    float *dst = g_try_new (float, MAX (t->n_elements, 1));
    if (!dst) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: tensor '%s': out of memory for %" G_GINT64_FORMAT
                     " values", t->file, t->name, t->n_elements);
        return NULL;
    }
    for (gint64 i = 0; i < t->n_elements; i++) {
        guint16 h;
        switch (t->dtype) {
        case VLM_DTYPE_F32:
            memcpy (&dst[i], src + 4 * i, 4);
            break;
        case VLM_DTYPE_BF16:
            memcpy (&h, src + 2 * i, 2);
            dst[i] = bf16_to_f32 (h);
            break;
        case VLM_DTYPE_F16:
            memcpy (&h, src + 2 * i, 2);
            dst[i] = f16_to_f32 (h);
            break;
        default:
            g_free (dst);
            g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                         "%s: tensor '%s': dtype %s is not a supported weight "
                         "dtype (F32, F16, BF16)", t->file, t->name,
                         vlm_dtype_name (t->dtype));
            return NULL;
        }
    }
    g_ptr_array_add (w->copies, dst);
    return dst;
}

const float *vlm_weights_get (VlmWeights *w, const char *name, int ndim,
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
    const float *data = widen (w, t, error);
    if (!data)
        return NULL;
    t->used = TRUE;
    w->n_params += t->n_elements;
    g_hash_table_add (w->dtypes, (char *) vlm_dtype_name (t->dtype));
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
        g_autofree const char **names =
            (const char **) g_hash_table_get_keys_as_array (w->dtypes, NULL);
        w->dtype = g_strjoinv ("+", (char **) names);
    }
    return w->dtype;
}
