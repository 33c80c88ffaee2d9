/* weights.h - binding checkpoint tensors to a model's weight pointers.
 *
 * A binder looks a tensor up by name, checks its shape against what the
 * config implies (the error names the tensor and both shapes), and hands out
 * float32 data: the mapped bytes themselves for aligned F32, a widened copy
 * for BF16/F16. Knows the tensor store, not any model. */
#ifndef VLM_WEIGHTS_H
#define VLM_WEIGHTS_H

#include "matrix.h"
#include "safetensors.h"

typedef struct _VlmWeights VlmWeights;

VlmWeights *vlm_weights_open (const char *dir, GError **error);
void vlm_weights_free (VlmWeights *w);
VlmTensorStore *vlm_weights_store (VlmWeights *w);

/* How matrices are kept: as stored (F32), or quantized at load to Q8/Q4;
 * bf16_dot marks BF16 ones for bf16 dot products (VlmMatrix.fast_dot, which
 * matrices quantized here always have).
 * mlx_bits/mlx_group: the checkpoint's MLX "quantization" (0 = none). */
void vlm_weights_set_format (VlmWeights *w, VlmMatType quantize_to, gboolean bf16_dot,
                             int mlx_group, int mlx_bits);

/* The matrix tensor name ("....weight") of shape [rows, cols], kept as
 * vlm_weights_set_format says; MLX-quantized modules (a ".scales" tensor
 * beside the weight) are used as they are. */
gboolean vlm_weights_get_matrix (VlmWeights *w, const char *name, gint64 rows,
                                 gint64 cols, VlmMatrix *out, GError **error);

/* The float32 data of tensor name, whose shape must be dims[0..ndim)
 * (an MLX-quantized tensor is dequantized). */
const float *vlm_weights_get (VlmWeights *w, const char *name, int ndim,
                              const gint64 *dims, GError **error);
/* The same, with the name built by printf. */
const float *vlm_weights_getf (VlmWeights *w, GError **error, int ndim,
                               const gint64 *dims, const char *fmt, ...)
    G_GNUC_PRINTF (5, 6);
gboolean vlm_weights_has (VlmWeights *w, const char *name);
/* The shape of a tensor (NULL if absent), to tell layouts apart. */
const VlmTensorInfo *vlm_weights_info (VlmWeights *w, const char *name);
/* n floats owned by the weights (for rearranged copies). */
float *vlm_weights_alloc (VlmWeights *w, gsize n);
/* Drop the pages of bytes [p, p + n) from the resident set if they are
 * mapped from the checkpoint (read again from the page cache when used;
 * copies of ours are left alone). */
void vlm_weights_release (VlmWeights *w, const void *p, gsize n);
/* Mark a tensor as known but unused (e.g. a tied lm_head copy). */
void vlm_weights_ignore (VlmWeights *w, const char *name);
/* Error naming the first tensor nobody asked for. */
gboolean vlm_weights_check_all_used (VlmWeights *w, GError **error);
/* Parameter count and the dtype of the stored weights ("F32", "BF16", mixed). */
guint64 vlm_weights_n_params (VlmWeights *w);
const char *vlm_weights_dtype (VlmWeights *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmWeights, vlm_weights_free)

#endif
