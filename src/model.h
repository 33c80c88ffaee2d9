/* model.h - the loaded model: configuration and weights of the generic
 * vision encoder and language decoder, filled in by a family module.
 * Internal to libvlm. */
#ifndef VLM_MODEL_H
#define VLM_MODEL_H

#include "vlm.h"
#include "weights.h"

/* Image preprocessing, as the checkpoint's preprocessor_config.json says. */
typedef struct {
    int width, height;      /* model input size */
    double rescale_factor;  /* 1/255 */
    double mean[3], std[3];
} VlmImageConfig;

/* A pre-norm ViT (SigLIP): patch conv, learned positions, no CLS, no mask. */
typedef struct {
    int image_size, patch_size, n_patches;   /* n_patches = (image/patch)^2 */
    int hidden, intermediate, n_layers, n_heads, head_dim;
    float ln_eps;
} VlmVisionConfig;

typedef struct {
    const float *ln1_w, *ln1_b;      /* [D] */
    VlmMatrix wq, wk, wv, wo;        /* [D, D] */
    const float *bq, *bk, *bv, *bo;  /* [D] */
    const float *ln2_w, *ln2_b;      /* [D] */
    VlmMatrix fc1;                   /* [I, D] */
    const float *fc1_b;              /* [I] */
    VlmMatrix fc2;                   /* [D, I] */
    const float *fc2_b;              /* [D] */
} VlmVisionLayer;

typedef struct {
    VlmMatrix patch;                 /* [D, 3 * P * P] (OIHW flattened), F32 */
    const float *patch_b;            /* [D] */
    const float *pos;                /* [N, D] */
    VlmVisionLayer *layers;          /* [n_layers] */
    const float *post_ln_w, *post_ln_b; /* [D] */
} VlmVisionWeights;

/* A decoder-only transformer (Gemma, Gemma 2): options, never family tests. */
typedef struct {
    int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim;
    int vocab_rows;           /* embedding rows = logits per step */
    float rms_eps, rope_theta;
    float attn_scale;         /* multiplies q.k */
    float attn_softcap;       /* 0 = off, else tanh(s/c)*c before the mask */
    float final_softcap;      /* 0 = off, on the logits */
    int sliding_window;       /* 0 = off; applies to layers with i % 2 == 0 */
    gboolean sandwich_norms;  /* post-attention and pre/post-MLP norms (Gemma 2) */
    float embed_scale;        /* embeddings are multiplied by this (sqrt hidden) */
} VlmDecoderConfig;

typedef struct {
    const float *in_norm;             /* [H] */
    VlmMatrix wq, wk, wv;             /* [h*d, H], [kv*d, H], [kv*d, H] */
    VlmMatrix wo;                     /* [H, h*d] */
    const float *post_attn_norm;      /* [H] (Gemma: the MLP input norm) */
    const float *pre_ffw_norm, *post_ffw_norm; /* [H], sandwich_norms only */
    VlmMatrix gate, up;               /* [F, H] */
    VlmMatrix down;                   /* [H, F] */
} VlmDecoderLayer;

typedef struct {
    VlmMatrix embed;                  /* [V, H] */
    VlmDecoderLayer *layers;          /* [n_layers] */
    const float *final_norm;          /* [H] */
    VlmMatrix lm_head;                /* [V, H], == embed when tied */
    struct _VlmHeadScreen *head_screen; /* for greedy tokens, or NULL (head_screen.h) */
} VlmDecoderWeights;

/* Vision features -> decoder embedding space: y = (x W^T + b) / divisor. */
typedef struct {
    VlmMatrix w;                      /* [H, D] */
    const float *b;                   /* [H] */
    float divisor;                    /* sqrt(text hidden) for PaliGemma */
} VlmProjector;

typedef struct _VlmTokenizer VlmTokenizer;
typedef struct _VlmFamily VlmFamily;

#define VLM_MAX_EOS 4

struct _VlmModel {
    gint ref_count;
    const VlmFamily *family;
    VlmModelInfo info;
    char *path;
    char *variant;
    char *dtype;

    VlmImageConfig image;
    VlmVisionConfig vision_cfg;
    VlmDecoderConfig decoder_cfg;
    VlmVisionWeights vision;
    VlmProjector projector;
    VlmDecoderWeights decoder;

    VlmTokenizer *tokenizer;
    guint32 image_token, bos_token;
    guint32 eos_tokens[VLM_MAX_EOS];
    guint n_eos_tokens;

    VlmWeights *weights;              /* owns widened copies and mappings */
    gsize screen_made;                /* g_once: decoder.head_screen is set */
};

#endif
