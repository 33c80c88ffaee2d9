/* weights.h - binding checkpoint tensors to a model's weight pointers.
 *
 * A binder looks a tensor up by name, checks its shape against what the
 * config implies (the error names the tensor and both shapes), and hands out
 * float32 data: the mapped bytes themselves for aligned F32, a widened copy
 * for BF16/F16. Knows the tensor store, not any model. */
#ifndef VLM_WEIGHTS_H
#define VLM_WEIGHTS_H

#include "safetensors.h"

typedef struct _VlmWeights VlmWeights;

VlmWeights *vlm_weights_open (const char *dir, GError **error);
void vlm_weights_free (VlmWeights *w);
VlmTensorStore *vlm_weights_store (VlmWeights *w);

/* The float32 data of tensor name, whose shape must be dims[0..ndim). */
const float *vlm_weights_get (VlmWeights *w, const char *name, int ndim,
                              const gint64 *dims, GError **error);
/* The same, with the name built by printf. */
const float *vlm_weights_getf (VlmWeights *w, GError **error, int ndim,
                               const gint64 *dims, const char *fmt, ...)
    G_GNUC_PRINTF (5, 6);
gboolean vlm_weights_has (VlmWeights *w, const char *name);
/* Mark a tensor as known but unused (e.g. a tied lm_head copy). */
void vlm_weights_ignore (VlmWeights *w, const char *name);
/* Error naming the first tensor nobody asked for. */
gboolean vlm_weights_check_all_used (VlmWeights *w, GError **error);
/* Parameter count and the dtype of the stored weights ("F32", "BF16", mixed). */
guint64 vlm_weights_n_params (VlmWeights *w);
const char *vlm_weights_dtype (VlmWeights *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmWeights, vlm_weights_free)

#endif
