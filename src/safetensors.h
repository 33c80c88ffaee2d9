/* safetensors.h - the safetensors file format and sharded checkpoints.
 *
 * Knows the format (8-byte little-endian header length, JSON header, raw
 * data), dtypes and bounds; knows nothing of any model. Files are mapped
 * with GMappedFile and tensors point into the mapping. */
#ifndef VLM_SAFETENSORS_H
#define VLM_SAFETENSORS_H

#include <glib.h>

typedef enum {
    VLM_DTYPE_F32,
    VLM_DTYPE_F16,
    VLM_DTYPE_BF16,
    VLM_DTYPE_F64,
    VLM_DTYPE_I64,
    VLM_DTYPE_I32,
    VLM_DTYPE_I16,
    VLM_DTYPE_I8,
    VLM_DTYPE_U32,
    VLM_DTYPE_U16,
    VLM_DTYPE_U8,
    VLM_DTYPE_BOOL,
} VlmDtype;

#define VLM_MAX_DIMS 4

typedef struct {
    const char *name;       /* owned by the store */
    const char *file;       /* basename of the file holding it */
    VlmDtype dtype;
    int ndim;
    gint64 shape[VLM_MAX_DIMS];
    gint64 n_elements;
    const guint8 *data;     /* inside the mapping, nbytes long */
    gsize nbytes;
    gboolean used;          /* set by the binder, to find extra tensors */
} VlmTensorInfo;

typedef struct _VlmTensorStore VlmTensorStore;

const char *vlm_dtype_name (VlmDtype dtype);
gsize vlm_dtype_size (VlmDtype dtype);

/* Parse one safetensors file image held in memory (data stays owned by the
 * caller and must outlive the store). name is used in error messages. */
gboolean vlm_safetensors_parse (VlmTensorStore *store, const guint8 *data,
                                gsize size, const char *name, GError **error);

/* A checkpoint directory: model.safetensors, or the shards named by
 * model.safetensors.index.json. */
VlmTensorStore *vlm_tensor_store_open_dir (const char *dir, GError **error);
VlmTensorStore *vlm_tensor_store_new (void);
void vlm_tensor_store_free (VlmTensorStore *store);
/* Whether bytes [p, p + n) lie within one of the store's mapped files. */
gboolean vlm_tensor_store_maps (VlmTensorStore *store, const void *p, gsize n);

/* Every tensor (VlmTensorInfo *), in file order. */
GPtrArray *vlm_tensor_store_tensors (VlmTensorStore *store);
VlmTensorInfo *vlm_tensor_store_find (VlmTensorStore *store, const char *name);
gboolean vlm_tensor_store_has_prefix (VlmTensorStore *store, const char *prefix);
/* The first tensor not marked used, or NULL. */
VlmTensorInfo *vlm_tensor_store_first_unused (VlmTensorStore *store);
const char *vlm_tensor_store_metadata (VlmTensorStore *store, const char *key);

/* "[64, 3, 16, 16]" */
char *vlm_shape_to_string (int ndim, const gint64 *shape);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmTensorStore, vlm_tensor_store_free)

#endif
