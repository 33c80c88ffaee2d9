/* paligemma.c - the PaliGemma family (SigLIP + linear projector + Gemma):
 * config keys and Hugging Face defaults, tensor names in both the hub's and
 * newer transformers' naming, prompt format. Spec: model-spec.md §1-§7. */
#include "paligemma.h"

#include "../tokenizer.h"
#include "../vlm.h"

#include <math.h>
#include <string.h>

gboolean vlm_paligemma_matches (JsonObject *config, const char *text_type)
{
    const char *type = vlm_json_string (config, "config.json", NULL,
                                        "model_type", FALSE, NULL);
    if (!type || strcmp (type, "paligemma") != 0)
        return FALSE;
    JsonNode *tc = json_object_get_member (config, "text_config");
    JsonObject *t = tc && JSON_NODE_HOLDS_OBJECT (tc) ? json_node_get_object (tc) : NULL;
    const char *tt = vlm_json_string (t, "config.json", "text_config",
                                      "model_type", FALSE, NULL);
    /* PaliGemma 1 configs may omit the text model type: it is Gemma. */
    return g_strcmp0 (tt ? tt : "gemma", text_type) == 0;
}

static gboolean paligemma_matches (JsonObject *config)
{
    return vlm_paligemma_matches (config, "gemma");
}

#define CFG "config.json"
#define GET_INT(obj, where, key, req, def, dst)                               \
    G_STMT_START {                                                             \
        gint64 v_;                                                             \
        if (!vlm_json_int (obj, CFG, where, key, req, def, &v_, error))       \
            return FALSE;                                                      \
        if (v_ <= 0 || v_ > (1 << 24)) {                                       \
            g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,            \
                         CFG ": %s.%s: %" G_GINT64_FORMAT " is out of range",  \
                         where, key, v_);                                      \
            return FALSE;                                                      \
        }                                                                      \
        dst = (int) v_;                                                        \
    } G_STMT_END
#define GET_FLOAT(obj, where, key, def, dst)                                  \
    G_STMT_START {                                                             \
        double v_;                                                             \
        if (!vlm_json_double (obj, CFG, where, key, FALSE, def, &v_, error))  \
            return FALSE;                                                      \
        dst = (float) v_;                                                      \
    } G_STMT_END

static gboolean check_act (JsonObject *obj, const char *where, const char *key,
                           GError **error)
{
    JsonNode *n = json_object_get_member (obj, key);
    if (!n || JSON_NODE_HOLDS_NULL (n))
        return TRUE;
    const char *act = vlm_json_string (obj, CFG, where, key, FALSE, error);
    if (!act)
        return FALSE;
    /* All of these are the tanh approximation in HF's Gemma/SigLIP code. */
    static const char *const ok[] = { "gelu_pytorch_tanh", "gelu_fast",
                                      "gelu_new", "gelu", NULL };
    if (g_strv_contains (ok, act))
        return TRUE;
    g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                 CFG ": %s.%s: activation '%s' is not supported "
                 "(gelu_pytorch_tanh)", where, key, act);
    return FALSE;
}

static gboolean parse_vision (VlmVisionConfig *v, JsonObject *vc, GError **error)
{
    const char *w = "vision_config";
    GET_INT (vc, w, "hidden_size", TRUE, 0, v->hidden);
    GET_INT (vc, w, "intermediate_size", TRUE, 0, v->intermediate);
    GET_INT (vc, w, "num_hidden_layers", TRUE, 0, v->n_layers);
    GET_INT (vc, w, "num_attention_heads", TRUE, 0, v->n_heads);
    /* SiglipVisionConfig defaults (HF-checked, spec §1). */
    GET_INT (vc, w, "image_size", FALSE, 224, v->image_size);
    GET_INT (vc, w, "patch_size", FALSE, 16, v->patch_size);
    GET_FLOAT (vc, w, "layer_norm_eps", 1e-6, v->ln_eps);
    if (!check_act (vc, w, "hidden_act", error))
        return FALSE;
    gint64 channels;
    if (!vlm_json_int (vc, CFG, w, "num_channels", FALSE, 3, &channels, error))
        return FALSE;
    if (channels != 3 || v->image_size % v->patch_size ||
        v->hidden % v->n_heads) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     CFG ": vision_config: need 3 channels, image_size (%d) a "
                     "multiple of patch_size (%d), hidden_size (%d) a multiple "
                     "of num_attention_heads (%d)", v->image_size,
                     v->patch_size, v->hidden, v->n_heads);
        return FALSE;
    }
    int g = v->image_size / v->patch_size;
    v->n_patches = g * g;
    v->head_dim = v->hidden / v->n_heads;
    return TRUE;
}

static gboolean parse_gemma (VlmDecoderConfig *d, JsonObject *tc, GError **error)
{
    const char *w = "text_config";
    GET_INT (tc, w, "hidden_size", TRUE, 0, d->hidden);
    GET_INT (tc, w, "intermediate_size", TRUE, 0, d->intermediate);
    GET_INT (tc, w, "num_hidden_layers", TRUE, 0, d->n_layers);
    GET_INT (tc, w, "num_attention_heads", TRUE, 0, d->n_heads);
    GET_INT (tc, w, "vocab_size", TRUE, 0, d->vocab_rows);
    GET_INT (tc, w, "num_key_value_heads", FALSE, d->n_heads, d->n_kv_heads);
    /* GemmaConfig defaults: head_dim 256 (not hidden/heads), eps 1e-6,
     * theta 10000 (newest HF: rope_parameters.rope_theta). */
    GET_INT (tc, w, "head_dim", FALSE, 256, d->head_dim);
    GET_FLOAT (tc, w, "rms_norm_eps", 1e-6, d->rms_eps);
    JsonObject *rope;
    double theta;
    if (!vlm_json_object (tc, CFG, w, "rope_parameters", FALSE, &rope, error) ||
        !vlm_json_double (tc, CFG, w, "rope_theta", FALSE, 10000.0, &theta, error) ||
        !vlm_json_double (rope, CFG, "text_config.rope_parameters", "rope_theta",
                          FALSE, theta, &theta, error))
        return FALSE;
    d->rope_theta = (float) theta;
    if (!check_act (tc, w, "hidden_activation", error) ||
        !check_act (tc, w, "hidden_act", error))
        return FALSE;
    if (d->n_heads % d->n_kv_heads) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     CFG ": text_config: num_attention_heads (%d) is not a "
                     "multiple of num_key_value_heads (%d)", d->n_heads,
                     d->n_kv_heads);
        return FALSE;
    }
    d->attn_scale = 1.0f / sqrtf ((float) d->head_dim);
    d->embed_scale = (float) sqrt ((double) d->hidden);
    return TRUE;
}

static gboolean parse_image (VlmImageConfig *img, JsonObject *pp, int size,
                             GError **error)
{
    const char *f = "preprocessor_config.json";
    JsonObject *sz;
    gint64 h, w;
    if (!vlm_json_object (pp, f, NULL, "size", FALSE, &sz, error) ||
        !vlm_json_int (sz, f, "size", "height", FALSE, size, &h, error) ||
        !vlm_json_int (sz, f, "size", "width", FALSE, size, &w, error))
        return FALSE;
    if (h != size || w != size) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: size %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                     " differs from the vision tower's image_size %d", f, w, h,
                     size);
        return FALSE;
    }
    img->width = img->height = size;
    img->rescale_factor = 1.0 / 255.0;
    for (int c = 0; c < 3; c++) {
        img->mean[c] = 0.5;
        img->std[c] = 0.5;
    }
    gboolean do_rescale, do_normalize;
    if (!vlm_json_double (pp, f, NULL, "rescale_factor", FALSE, 1.0 / 255.0,
                          &img->rescale_factor, error) ||
        !vlm_json_doubles (pp, f, NULL, "image_mean", 3, img->mean, error) ||
        !vlm_json_doubles (pp, f, NULL, "image_std", 3, img->std, error) ||
        !vlm_json_bool (pp, f, NULL, "do_rescale", TRUE, &do_rescale, error) ||
        !vlm_json_bool (pp, f, NULL, "do_normalize", TRUE, &do_normalize, error))
        return FALSE;
    if (!do_rescale)
        img->rescale_factor = 1.0;
    if (!do_normalize)
        for (int c = 0; c < 3; c++) {
            img->mean[c] = 0.0;
            img->std[c] = 1.0;
        }
    for (int c = 0; c < 3; c++)
        if (img->std[c] == 0.0) {
            g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                         "%s: image_std[%d] is 0", f, c);
            return FALSE;
        }
    return TRUE;
}

/* eos ids: generation_config.json's eos_token_id (an id or a list), else
 * config.json's, else Gemma's 1. */
static gboolean parse_eos (VlmModel *m, VlmCheckpoint *ckpt, GError **error)
{
    JsonObject *srcs[] = { ckpt->gen, ckpt->config };
    const char *files[] = { "generation_config.json", CFG };
    m->eos_tokens[0] = 1;
    m->n_eos_tokens = 1;
    for (int s = 0; s < 2; s++) {
        JsonNode *n = srcs[s] ? json_object_get_member (srcs[s], "eos_token_id") : NULL;
        if (!n || JSON_NODE_HOLDS_NULL (n))
            continue;
        JsonArray *a = JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
        guint count = a ? json_array_get_length (a) : 1;
        if (count == 0 || count > VLM_MAX_EOS)
            goto bad;
        for (guint i = 0; i < count; i++) {
            JsonNode *e = a ? json_array_get_element (a, i) : n;
            if (!JSON_NODE_HOLDS_VALUE (e) ||
                json_node_get_value_type (e) != G_TYPE_INT64 ||
                json_node_get_int (e) < 0)
                goto bad;
            m->eos_tokens[i] = json_node_get_int (e);
        }
        m->n_eos_tokens = count;
        return TRUE;
    bad:
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "%s: eos_token_id: expected a token id or a list of at "
                     "most %d ids", files[s], VLM_MAX_EOS);
        return FALSE;
    }
    return TRUE;
}

/* Tensor name prefixes of the two naming schemes. */
typedef struct {
    const char *vision, *projector, *text, *lm_head;
} Names;

static const Names hub_names = { "vision_tower.vision_model.",
                                 "multi_modal_projector.",
                                 "language_model.model.",
                                 "language_model.lm_head.weight" };
static const Names new_names = { "model.vision_tower.vision_model.",
                                 "model.multi_modal_projector.",
                                 "model.language_model.", "lm_head.weight" };

/* Every layer has tensors of its own: a layer count beyond the
 * checkpoint's tensors is a bad config, refused before allocating for it. */
static gboolean check_n_layers (VlmWeights *ws, const char *where, int n_layers,
                                GError **error)
{
    guint n_tensors = vlm_tensor_store_tensors (vlm_weights_store (ws))->len;
    if ((guint) n_layers <= n_tensors)
        return TRUE;
    g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                 CFG ": %s.num_hidden_layers: %d layers, but the weights hold "
                 "only %u tensors", where, n_layers, n_tensors);
    return FALSE;
}

/* Bind dst to the tensor named by fmt, of shape SHAPE_<shape>, or fail;
 * M binds a matrix [rows, cols] kept in the chosen weight format. */
#define M(dst, rows, cols, fmt, ...)                                           \
    G_STMT_START {                                                             \
        g_autofree char *n_ = g_strdup_printf (fmt, __VA_ARGS__);              \
        if (!vlm_weights_get_matrix (ws, n_, rows, cols, &(dst), error))       \
            return FALSE;                                                      \
    } G_STMT_END
#define W(dst, shape, fmt, ...)                                                \
    G_STMT_START {                                                             \
        const gint64 d_[] = { SHAPE_##shape };                                 \
        if (!(dst = vlm_weights_getf (ws, error, G_N_ELEMENTS (d_), d_, fmt,   \
                                      __VA_ARGS__)))                           \
            return FALSE;                                                      \
    } G_STMT_END

static gboolean bind_vision (VlmModel *m, const Names *n, GError **error)
{
    VlmWeights *ws = m->weights;
    const VlmVisionConfig *c = &m->vision_cfg;
    VlmVisionWeights *v = &m->vision;
    const gint64 D = c->hidden, I = c->intermediate, P = c->patch_size,
                 N = c->n_patches;
    const char *p = n->vision;
#define SHAPE_D D
#define SHAPE_I I
#define SHAPE_CONV D, 3, P, P
#define SHAPE_CONV_OHWI D, P, P, 3
#define SHAPE_POS N, D
    /* MLX conversions store the patch conv OHWI [D, P, P, 3] (spec §2). */
    g_autofree char *conv = g_strdup_printf ("%sembeddings.patch_embedding.weight", p);
    const VlmTensorInfo *ci = vlm_weights_info (ws, conv);
    const float *patch;
    if (ci && ci->ndim == 4 && ci->shape[3] == 3 && ci->shape[1] != 3) {
        const float *ohwi;
        W (ohwi, CONV_OHWI, "%s", conv);
        float *oihw = vlm_weights_alloc (ws, D * 3 * P * P);
        for (gint64 o = 0; o < D; o++)
            for (gint64 y = 0; y < P; y++)
                for (gint64 x = 0; x < P; x++)
                    for (gint64 c = 0; c < 3; c++)
                        oihw[((o * 3 + c) * P + y) * P + x] = ohwi[((o * P + y) * P + x) * 3 + c];
        patch = oihw;
    } else {
        W (patch, CONV, "%s", conv);
    }
    v->patch = (VlmMatrix) { .type = VLM_MAT_F32, .rows = D, .cols = 3 * P * P,
                             .data = patch, .row_bytes = 3 * P * P * sizeof (float) };
    W (v->patch_b, D, "%sembeddings.patch_embedding.bias", p);
    W (v->pos, POS, "%sembeddings.position_embedding.weight", p);
    if (!check_n_layers (ws, "vision_config", c->n_layers, error))
        return FALSE;
    v->layers = g_new0 (VlmVisionLayer, c->n_layers);
    for (int i = 0; i < c->n_layers; i++) {
        VlmVisionLayer *L = &v->layers[i];
        const char *e = "encoder.layers";
        W (L->ln1_w, D, "%s%s.%d.layer_norm1.weight", p, e, i);
        W (L->ln1_b, D, "%s%s.%d.layer_norm1.bias", p, e, i);
        M (L->wq, D, D, "%s%s.%d.self_attn.q_proj.weight", p, e, i);
        W (L->bq, D, "%s%s.%d.self_attn.q_proj.bias", p, e, i);
        M (L->wk, D, D, "%s%s.%d.self_attn.k_proj.weight", p, e, i);
        W (L->bk, D, "%s%s.%d.self_attn.k_proj.bias", p, e, i);
        M (L->wv, D, D, "%s%s.%d.self_attn.v_proj.weight", p, e, i);
        W (L->bv, D, "%s%s.%d.self_attn.v_proj.bias", p, e, i);
        M (L->wo, D, D, "%s%s.%d.self_attn.out_proj.weight", p, e, i);
        W (L->bo, D, "%s%s.%d.self_attn.out_proj.bias", p, e, i);
        W (L->ln2_w, D, "%s%s.%d.layer_norm2.weight", p, e, i);
        W (L->ln2_b, D, "%s%s.%d.layer_norm2.bias", p, e, i);
        M (L->fc1, I, D, "%s%s.%d.mlp.fc1.weight", p, e, i);
        W (L->fc1_b, I, "%s%s.%d.mlp.fc1.bias", p, e, i);
        M (L->fc2, D, I, "%s%s.%d.mlp.fc2.weight", p, e, i);
        W (L->fc2_b, D, "%s%s.%d.mlp.fc2.bias", p, e, i);
    }
    W (v->post_ln_w, D, "%spost_layernorm.weight", p);
    W (v->post_ln_b, D, "%spost_layernorm.bias", p);

    const gint64 H = m->decoder_cfg.hidden;
#define SHAPE_H H
    M (m->projector.w, H, D, "%slinear.weight", n->projector);
    W (m->projector.b, H, "%slinear.bias", n->projector);
    return TRUE;
}

static gboolean bind_text (VlmModel *m, const Names *n, gboolean tied,
                           GError **error)
{
    VlmWeights *ws = m->weights;
    const VlmDecoderConfig *c = &m->decoder_cfg;
    VlmDecoderWeights *d = &m->decoder;
    const gint64 H = c->hidden, F = c->intermediate, V = c->vocab_rows,
                 Q = (gint64) c->n_heads * c->head_dim,
                 KV = (gint64) c->n_kv_heads * c->head_dim;
    const char *p = n->text;
    M (d->embed, V, H, "%sembed_tokens.weight", p);
    if (!check_n_layers (ws, "text_config", c->n_layers, error))
        return FALSE;
    d->layers = g_new0 (VlmDecoderLayer, c->n_layers);
    for (int i = 0; i < c->n_layers; i++) {
        VlmDecoderLayer *L = &d->layers[i];
        W (L->in_norm, H, "%slayers.%d.input_layernorm.weight", p, i);
        M (L->wq, Q, H, "%slayers.%d.self_attn.q_proj.weight", p, i);
        M (L->wk, KV, H, "%slayers.%d.self_attn.k_proj.weight", p, i);
        M (L->wv, KV, H, "%slayers.%d.self_attn.v_proj.weight", p, i);
        M (L->wo, H, Q, "%slayers.%d.self_attn.o_proj.weight", p, i);
        W (L->post_attn_norm, H, "%slayers.%d.post_attention_layernorm.weight", p, i);
        if (c->sandwich_norms) {
            W (L->pre_ffw_norm, H, "%slayers.%d.pre_feedforward_layernorm.weight", p, i);
            W (L->post_ffw_norm, H, "%slayers.%d.post_feedforward_layernorm.weight", p, i);
        }
        M (L->gate, F, H, "%slayers.%d.mlp.gate_proj.weight", p, i);
        M (L->up, F, H, "%slayers.%d.mlp.up_proj.weight", p, i);
        M (L->down, H, F, "%slayers.%d.mlp.down_proj.weight", p, i);
    }
    W (d->final_norm, H, "%snorm.weight", p);
    if (tied) {
        /* A stored copy of the tied head is redundant: embed_tokens is used. */
        vlm_weights_ignore (ws, n->lm_head);
        d->lm_head = d->embed;
    } else {
        M (d->lm_head, V, H, "%s", n->lm_head);
    }
    return TRUE;
}

gboolean vlm_paligemma_load (VlmModel *m, VlmCheckpoint *ckpt,
                             VlmTextConfigFunc parse_text, GError **error)
{
    JsonObject *cfg = ckpt->config;
    JsonObject *tc, *vc;
    if (!vlm_json_object (cfg, CFG, NULL, "text_config", TRUE, &tc, error) ||
        !vlm_json_object (cfg, CFG, NULL, "vision_config", FALSE, &vc, error))
        return FALSE;
    if (!vc) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                     CFG ": no vision_config: a text-only checkpoint cannot "
                     "describe images");
        return FALSE;
    }
    if (!parse_gemma (&m->decoder_cfg, tc, error) ||
        (parse_text && !parse_text (&m->decoder_cfg, tc, error)) ||
        !parse_vision (&m->vision_cfg, vc, error) ||
        !parse_image (&m->image, ckpt->preproc, m->vision_cfg.image_size, error) ||
        !parse_eos (m, ckpt, error))
        return FALSE;

    gint64 image_token, bos;
    if (!vlm_json_int (cfg, CFG, NULL, "image_token_index", FALSE, 256000,
                       &image_token, error) ||
        !vlm_json_int (cfg, CFG, NULL, "bos_token_id", FALSE, 2, &bos, error))
        return FALSE;
    if (image_token < 0 || bos < 0 || bos >= m->decoder_cfg.vocab_rows) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     CFG ": image_token_index %" G_GINT64_FORMAT
                     " / bos_token_id %" G_GINT64_FORMAT " out of range",
                     image_token, bos);
        return FALSE;
    }
    m->image_token = image_token;
    m->bos_token = bos;
    /* PaliGemma divides image features by sqrt(text hidden) (spec §6.2, §8). */
    m->projector.divisor = (float) sqrt ((double) m->decoder_cfg.hidden);

    gboolean tied;
    if (!vlm_json_bool (cfg, CFG, NULL, "tie_word_embeddings", TRUE, &tied, error) ||
        !vlm_json_bool (tc, CFG, "text_config", "tie_word_embeddings", tied,
                        &tied, error))
        return FALSE;
    VlmTensorStore *store = vlm_weights_store (m->weights);
    const Names *names =
        vlm_tensor_store_has_prefix (store, new_names.text) ? &new_names : &hub_names;
    if (!vlm_tensor_store_has_prefix (store, names->vision)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                     "%s: the weights have no vision tower (no '%s*' tensors): "
                     "a text-only checkpoint cannot describe images", m->path,
                     names->vision);
        return FALSE;
    }
    if (!bind_text (m, names, tied, error) || !bind_vision (m, names, error))
        return FALSE;

    m->variant = g_strdup_printf ("%s-%d", m->family->name,
                                  m->vision_cfg.image_size);
    return TRUE;
}

static gboolean paligemma_load (VlmModel *m, VlmCheckpoint *ckpt, GError **error)
{
    return vlm_paligemma_load (m, ckpt, NULL, error);
}

guint32 *vlm_paligemma_build_prompt (const VlmModel *m, const char *prompt,
                                        guint *n_ids)
{
    /* The processor drops <image> from the text, then builds
     * "<image>" * N + bos + prompt + "\n" (processing_paligemma.py). */
    g_autofree char *clean = NULL;
    {
        g_auto (GStrv) parts = g_strsplit (prompt, "<image>", -1);
        clean = g_strjoinv ("", parts);
    }
    g_autofree char *text = g_strconcat (clean, "\n", NULL);
    guint n_text = 0;
    g_autofree guint32 *ids = vlm_tokenizer_encode (m->tokenizer, text, &n_text);
    guint N = m->vision_cfg.n_patches;
    guint32 *out = g_new (guint32, N + 1 + n_text);
    for (guint i = 0; i < N; i++)
        out[i] = m->image_token;
    out[N] = m->bos_token;
    memcpy (out + N + 1, ids, n_text * sizeof (guint32));
    *n_ids = N + 1 + n_text;
    return out;
}

const VlmFamily vlm_family_paligemma = {
    .name = "paligemma",
    .default_prompt = "caption en",
    .matches = paligemma_matches,
    .load = paligemma_load,
    .build_prompt = vlm_paligemma_build_prompt,
};
