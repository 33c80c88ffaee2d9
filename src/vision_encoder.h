/* vision_encoder.h - a generic pre-norm ViT (SigLIP options from config). */
#ifndef VLM_VISION_ENCODER_H
#define VLM_VISION_ENCODER_H

#include "model.h"
#include "threadpool.h"
#include "trace.h"

/* pixels [3, S, S] CHW -> out [n_patches, hidden]. */
void vlm_vision_encode (const VlmVisionConfig *c, const VlmVisionWeights *w,
                        VlmThreadPool *pool, const float *pixels, float *out,
                        const VlmTrace *trace);

#endif
