/* vlm.c - implements vlm.h: model loading and sharing, sessions, the
 * describe loop (preprocess, vision, projector, prefill, decode), stats,
 * cancellation and the log hook. */
#include "vlm.h"

#include "checkpoint.h"
#include "families/family.h"
#include "head_screen.h"
#include "image.h"
#include "language_decoder.h"
#include "model.h"
#include "sampler.h"
#include "session.h"
#include "kernels.h"
#include "tokenizer.h"
#include "vision_encoder.h"

#include <cblas.h>
#include <string.h>

G_DEFINE_QUARK (vlm-error-quark, vlm_error)

static VlmLogFunc log_func;
static gpointer log_data;
G_LOCK_DEFINE_STATIC (log);

void vlm_set_log_func (VlmLogFunc func, gpointer user_data)
{
    G_LOCK (log);
    log_func = func;
    log_data = user_data;
    G_UNLOCK (log);
}

static void vlm_log (VlmLogLevel level, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void vlm_log (VlmLogLevel level, const char *fmt, ...)
{
    G_LOCK (log);
    VlmLogFunc f = log_func;
    gpointer d = log_data;
    G_UNLOCK (log);
    if (!f)
        return;
    va_list ap;
    va_start (ap, fmt);
    g_autofree char *msg = g_strdup_vprintf (fmt, ap);
    va_end (ap);
    f (level, msg, d);
}

const char *vlm_finish_reason_to_string (VlmFinishReason reason)
{
    switch (reason) {
    case VLM_FINISH_EOS:
        return "eos";
    case VLM_FINISH_LENGTH:
        return "length";
    case VLM_FINISH_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

const char *vlm_kernels_name (void)
{
    return vlm_kernels_get ()->name;
}

void vlm_describe_params_init (VlmDescribeParams *p)
{
    memset (p, 0, sizeof *p);
    p->max_new_tokens = 32;
    p->top_p = 1.0f;
}

char *vlm_model_resolve_path (const char *path_or_repo_id, GError **error)
{
    return vlm_checkpoint_resolve (path_or_repo_id, error);
}

static void model_free (VlmModel *m)
{
    if (m->tokenizer)
        vlm_tokenizer_free (m->tokenizer);
    vlm_head_screen_free (m->decoder.head_screen);
    vlm_weights_free (m->weights);
    g_free (m->vision.layers);
    g_free (m->decoder.layers);
    g_free (m->path);
    g_free (m->variant);
    g_free (m->dtype);
    g_free (m);
}

const char *vlm_weight_format_to_string (VlmWeightFormat format)
{
    switch (format) {
    case VLM_WEIGHTS_AS_STORED:
        return "as-stored";
    case VLM_WEIGHTS_Q8:
        return "q8";
    case VLM_WEIGHTS_Q4:
        return "q4";
    case VLM_WEIGHTS_BF16_DOT:
        return "bf16-dot";
    }
    return "unknown";
}

gboolean vlm_weight_format_from_string (const char *name, VlmWeightFormat *format)
{
    for (VlmWeightFormat f = VLM_WEIGHTS_AS_STORED; f <= VLM_WEIGHTS_BF16_DOT; f++)
        if (g_strcmp0 (name, vlm_weight_format_to_string (f)) == 0) {
            *format = f;
            return TRUE;
        }
    return FALSE;
}

VlmModel *vlm_model_load (const char *path_or_repo_id, GError **error)
{
    return vlm_model_load_with_format (path_or_repo_id, VLM_WEIGHTS_AS_STORED, error);
}

/* config.json "quantization": {"group_size", "bits"} of MLX conversions. */
static gboolean mlx_quantization (JsonObject *config, int *group, int *bits,
                                  GError **error)
{
    JsonObject *q;
    gint64 g, b;
    if (!vlm_json_object (config, "config.json", NULL, "quantization", FALSE, &q, error) ||
        !vlm_json_int (q, "config.json", "quantization", "group_size", q != NULL, 0, &g, error) ||
        !vlm_json_int (q, "config.json", "quantization", "bits", q != NULL, 0, &b, error))
        return FALSE;
    /* Found by fuzzing: group_size 0 divided by zero when binding. */
    if (q && (g <= 0 || g > (1 << 20) || b <= 0 || b > 32)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL,
                     "config.json: quantization: group_size %" G_GINT64_FORMAT
                     " / bits %" G_GINT64_FORMAT " out of range", g, b);
        return FALSE;
    }
    *group = g;
    *bits = b;
    return TRUE;
}

/* The head's screen, made by the first greedy description (any session's,
 * on its threads): sampling needs the whole head, which the screen's copy
 * would then only add to. Once it is made, the head's own pages leave the
 * resident set (the page cache keeps them) but for the rows the screen
 * leaves and embedding lookups read again. */
static void screen_head (VlmModel *m, VlmThreadPool *pool)
{
    if (!g_once_init_enter (&m->screen_made))
        return;
    gint64 t0 = g_get_monotonic_time ();
    m->decoder.head_screen = vlm_head_screen_new (&m->decoder.lm_head, pool);
    if (m->decoder.head_screen) {
        vlm_weights_release (m->weights, m->decoder.lm_head.data,
                             vlm_matrix_bytes (&m->decoder.lm_head));
        vlm_log (VLM_LOG_INFO, "made the output head's 8-bit screen for greedy decoding "
                 "(%.1f MB) in %.1f ms", vlm_head_screen_bytes (&m->decoder.lm_head) / 1e6,
                 (g_get_monotonic_time () - t0) / 1000.0);
    }
    g_once_init_leave (&m->screen_made, 1);
}

/* Sizes behind the performance figures: matrix bytes in memory, bytes
 * streamed per generated token, operations per image and per prompt token. */
static void model_costs (const VlmModel *m, VlmModelInfo *info)
{
    const VlmVisionConfig *vc = &m->vision_cfg;
    guint64 vision = 0, decoder = 0, vision_params = 0, decoder_params = 0, tail_params = 0;
    for (int i = 0; i < vc->n_layers; i++) {
        const VlmMatrix *ms[] = { &m->vision.layers[i].wq, &m->vision.layers[i].wk,
                                  &m->vision.layers[i].wv, &m->vision.layers[i].wo,
                                  &m->vision.layers[i].fc1, &m->vision.layers[i].fc2 };
        for (guint k = 0; k < G_N_ELEMENTS (ms); k++) {
            vision += vlm_matrix_bytes (ms[k]);
            vision_params += (guint64) ms[k]->rows * ms[k]->cols;
        }
    }
    for (int i = 0; i < m->decoder_cfg.n_layers; i++) {
        const VlmDecoderLayer *L = &m->decoder.layers[i];
        const VlmMatrix *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down };
        for (guint k = 0; k < G_N_ELEMENTS (ms); k++) {
            guint64 params = (guint64) ms[k]->rows * ms[k]->cols;
            decoder += vlm_matrix_bytes (ms[k]);
            decoder_params += params;
            if (i == m->decoder_cfg.n_layers - 1 && k >= 3) /* the last layer from wo on */
                tail_params += params;
        }
    }
    guint64 head = vlm_matrix_bytes (&m->decoder.lm_head);
    info->weight_bytes = vision + decoder + head + vlm_matrix_bytes (&m->projector.w) +
                         (m->decoder.lm_head.data != m->decoder.embed.data
                              ? vlm_matrix_bytes (&m->decoder.embed) : 0);
    gsize screen = vlm_head_screen_bytes (&m->decoder.lm_head);
    info->decode_bytes = decoder + (screen ? screen : head);
    guint64 N = vc->n_patches, D = vc->hidden;
    info->vision_flops = 2 * N * vision_params +
                         (guint64) vc->n_layers * 4 * N * N * D +   /* scores and mix */
                         2 * N * D * 3 * vc->patch_size * vc->patch_size;
    info->prefill_flops = 2 * decoder_params;
    info->prefill_tail_flops = 2 * tail_params;
}

VlmModel *vlm_model_load_with_format (const char *path_or_repo_id,
                                      VlmWeightFormat format, GError **error)
{
    gint64 t0 = g_get_monotonic_time ();
    g_autoptr (VlmCheckpoint) ckpt = vlm_checkpoint_open (path_or_repo_id, error);
    if (!ckpt)
        return NULL;
    const VlmFamily *family = vlm_family_find (ckpt->config, error);
    if (!family)
        return NULL;

    VlmModel *m = g_new0 (VlmModel, 1);
    m->ref_count = 1;
    m->family = family;
    m->path = g_strdup (ckpt->dir);
    g_autofree char *tok_path = g_build_filename (ckpt->dir, "tokenizer.model", NULL);
    int mlx_group = 0, mlx_bits = 0;
    VlmMatType to = format == VLM_WEIGHTS_Q8 ? VLM_MAT_Q8
                    : format == VLM_WEIGHTS_Q4 ? VLM_MAT_Q4 : VLM_MAT_F32;
    if (!mlx_quantization (ckpt->config, &mlx_group, &mlx_bits, error) ||
        !(m->tokenizer = vlm_tokenizer_load (tok_path, error)) ||
        !(m->weights = vlm_weights_open (ckpt->dir, error)) ||
        (vlm_weights_set_format (m->weights, to, format == VLM_WEIGHTS_BF16_DOT, mlx_group,
                                 mlx_bits), FALSE) ||
        !family->load (m, ckpt, error) ||
        !vlm_weights_check_all_used (m->weights, error)) {
        /* Say which checkpoint, unless the message already does. */
        if (error && *error && !g_str_has_prefix ((*error)->message, ckpt->dir))
            g_prefix_error (error, "%s: ", ckpt->dir);
        model_free (m);
        return NULL;
    }
    m->dtype = g_strdup (vlm_weights_dtype (m->weights));

    VlmModelInfo *i = &m->info;
    i->family = family->name;
    i->variant = m->variant;
    i->path = m->path;
    i->image_width = m->image.width;
    i->image_height = m->image.height;
    i->n_image_tokens = m->vision_cfg.n_patches;
    i->vocab_size = m->decoder_cfg.vocab_rows;
    i->n_params = vlm_weights_n_params (m->weights);
    i->dtype = m->dtype;
    model_costs (m, i);
    i->capabilities = "text,vision-understanding";
    i->default_prompt = family->default_prompt;
    vlm_log (VLM_LOG_INFO,
             "loaded %s (%s, %s, %.1fM parameters, %.1f MB of matrices, %s "
             "kernels, %ux%u input, %u image tokens, vocabulary %u) from %s "
             "in %.1f ms", i->variant, i->family, i->dtype, i->n_params / 1e6,
             i->weight_bytes / 1e6, vlm_kernels_get ()->name,
             i->image_width, i->image_height,
             i->n_image_tokens, i->vocab_size, m->path,
             (g_get_monotonic_time () - t0) / 1000.0);
    return m;
}

VlmModel *vlm_model_ref (VlmModel *m)
{
    g_return_val_if_fail (m != NULL, NULL);
    g_atomic_int_inc (&m->ref_count);
    return m;
}

void vlm_model_unref (VlmModel *m)
{
    if (m && g_atomic_int_dec_and_test (&m->ref_count))
        model_free (m);
}

const VlmModelInfo *vlm_model_get_info (const VlmModel *m)
{
    g_return_val_if_fail (m != NULL, NULL);
    return &m->info;
}

/* Images are limited to 2^16 pixels a side: far beyond any camera, and it
 * keeps every size computation far from overflow. */
#define VLM_MAX_IMAGE_SIDE 65536

float *vlm_model_preprocess (const VlmModel *m, const VlmImage *img,
                             gsize *n_values, GError **error)
{
    if (!img || !img->data || img->width == 0 || img->height == 0 ||
        img->width > VLM_MAX_IMAGE_SIDE || img->height > VLM_MAX_IMAGE_SIDE ||
        img->stride < (gsize) img->width * 3) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
                     "invalid image: %ux%u with stride %" G_GSIZE_FORMAT
                     " (need 1..%d pixels a side and stride >= 3 * width)",
                     img ? img->width : 0, img ? img->height : 0,
                     img ? img->stride : 0, VLM_MAX_IMAGE_SIDE);
        return NULL;
    }
    int w = m->image.width, h = m->image.height;
    guint8 *rgb = g_malloc ((gsize) w * h * 3);
    vlm_image_resize_bicubic (img->data, img->width, img->height, img->stride,
                              rgb, w, h);
    float *out = g_new (float, (gsize) 3 * w * h);
    vlm_image_normalize (rgb, w, h, m->image.rescale_factor, m->image.mean,
                         m->image.std, out);
    g_free (rgb);
    if (n_values)
        *n_values = (gsize) 3 * w * h;
    return out;
}

VlmSession *vlm_session_new (VlmModel *model, guint n_threads, GError **error)
{
    g_return_val_if_fail (model != NULL, NULL);
    VlmSession *s = g_new0 (VlmSession, 1);
    s->model = vlm_model_ref (model);
    s->n_threads = n_threads ? n_threads : g_get_num_processors ();
    s->pool = vlm_thread_pool_new (s->n_threads);
    /* Our threads split every product; OpenBLAS's own would only compete
     * with them (and spin between calls). */
    openblas_set_num_threads (1);
    return s;
}

void vlm_session_free (VlmSession *s)
{
    if (!s)
        return;
    vlm_kv_cache_clear (&s->cache);
    vlm_thread_pool_free (s->pool);
    vlm_model_unref (s->model);
    g_free (s);
}

void vlm_session_cancel (VlmSession *s)
{
    g_atomic_int_set (&s->cancelled, 1);
}

void vlm_session_reset_cancel (VlmSession *s)
{
    g_atomic_int_set (&s->cancelled, 0);
}

void vlm_result_free (VlmResult *r)
{
    if (!r)
        return;
    g_free (r->text);
    g_free (r->tokens);
    g_free (r->input_ids);
    g_free (r->prefill_logits);
    g_free (r);
}

static double ms_since (gint64 t0)
{
    return (g_get_monotonic_time () - t0) / 1000.0;
}

static gboolean is_eos (const VlmModel *m, guint32 id)
{
    for (guint i = 0; i < m->n_eos_tokens; i++)
        if (m->eos_tokens[i] == id)
            return TRUE;
    return FALSE;
}

/* Embedding rows of ids scaled by the decoder's normalizer; the image
 * token positions take the projected image features in order. */
static gboolean embed (const VlmModel *m, const guint32 *ids, guint n,
                       const float *image_features, float *x, GError **error)
{
    const VlmDecoderConfig *c = &m->decoder_cfg;
    guint k = 0;
    for (guint i = 0; i < n; i++) {
        float *row = x + (gsize) i * c->hidden;
        if (image_features && ids[i] == m->image_token) {
            memcpy (row, image_features + (gsize) k++ * c->hidden,
                    c->hidden * sizeof (float));
        } else if (ids[i] < (guint32) c->vocab_rows) {
            vlm_matrix_get_row (&m->decoder.embed, ids[i], row);
        } else {
            g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
                         "token id %u is outside the %d embedding rows", ids[i],
                         c->vocab_rows);
            return FALSE;
        }
        for (int j = 0; j < c->hidden; j++)
            row[j] *= c->embed_scale;
    }
    return TRUE;
}

VlmResult *vlm_session_describe_traced (VlmSession *s, const VlmImage *image,
                                        const VlmDescribeParams *params,
                                        const VlmTrace *trace, GError **error)
{
    VlmModel *m = s->model;
    const VlmDecoderConfig *dc = &m->decoder_cfg;
    VlmDescribeParams defaults;
    if (!params) {
        vlm_describe_params_init (&defaults);
        params = &defaults;
    }
    const char *prompt = params->prompt ? params->prompt : m->family->default_prompt;
    g_autoptr (VlmResult) r = g_new0 (VlmResult, 1);
    r->finish_reason = VLM_FINISH_CANCELLED;

    gint64 t = g_get_monotonic_time ();
    g_autofree float *pixels = vlm_model_preprocess (m, image, NULL, error);
    if (!pixels)
        return NULL;
    vlm_trace (trace, "pixel_values", pixels, 3 * m->image.height, m->image.width);
    r->stats.preprocess_ms = ms_since (t);

    r->input_ids = m->family->build_prompt (m, prompt, &r->n_input_ids);
    guint L = r->n_input_ids;
    r->stats.n_tokens_image = m->vision_cfg.n_patches;
    r->stats.n_tokens_prompt = L - m->vision_cfg.n_patches;
    if (g_atomic_int_get (&s->cancelled)) {
        r->text = g_strdup (""); /* a result always has its text */
        return g_steal_pointer (&r);
    }

    /* Vision tower and projector. */
    t = g_get_monotonic_time ();
    int N = m->vision_cfg.n_patches, H = dc->hidden;
    g_autofree float *vis = g_new (float, (gsize) N * m->vision_cfg.hidden);
    vlm_vision_encode (&m->vision_cfg, &m->vision, s->pool, pixels, vis, trace);
    g_autofree float *feat = g_new (float, (gsize) N * H);
    vlm_matrix_mul (s->pool, &m->projector.w, vis, N, m->projector.b, feat);
    for (gsize i = 0; i < (gsize) N * H; i++)
        feat[i] /= m->projector.divisor;
    vlm_trace (trace, "projected", feat, N, H);
    r->stats.vision_ms = ms_since (t);

    guint max_new = params->max_new_tokens;
    gboolean greedy = params->temperature <= 0.0f && !trace;
    if (greedy && max_new > 0)
        screen_head (m, s->pool); /* once, in no stage's time (it logs its own) */

    /* Prefill the whole prompt as one bidirectional block. */
    t = g_get_monotonic_time ();
    vlm_kv_cache_reset (&s->cache, dc, L + MAX (max_new, 1));
    g_autofree float *x = g_new (float, (gsize) L * H);
    if (!embed (m, r->input_ids, L, feat, x, error))
        return NULL;
    vlm_trace (trace, "decoder_input", x, L, H);
    g_autofree float *out = g_new (float, H);
    vlm_decoder_forward (dc, &m->decoder, s->pool, &s->cache, x, L, TRUE, out, trace);
    /* Greedy decoding needs the logits only when someone reads them. */
    g_autofree float *logits = greedy && !params->want_logits
                                   ? NULL : g_new (float, dc->vocab_rows);
    if (logits)
        vlm_decoder_logits (dc, &m->decoder, s->pool, out, logits);
    if (params->want_logits) {
        r->prefill_logits = g_memdup2 (logits, dc->vocab_rows * sizeof (float));
        r->n_logits = dc->vocab_rows;
    }
    guint32 first = 0;
    if (greedy && params->max_new_tokens > 0)
        first = logits ? vlm_sampler_argmax (logits, dc->vocab_rows)
                       : vlm_decoder_greedy (dc, &m->decoder, s->pool, out);
    r->stats.prefill_ms = ms_since (t);

    /* Decode. */
    t = g_get_monotonic_time ();
    VlmSampler sampler;
    vlm_sampler_init (&sampler, params->temperature, params->top_k,
                      params->top_p, params->seed);
    g_autofree float *probs = greedy ? NULL : g_new (float, dc->vocab_rows);
    g_autofree guint32 *order = greedy ? NULL : g_new (guint32, dc->vocab_rows);
    r->tokens = g_new (guint32, MAX (max_new, 1));
    r->finish_reason = VLM_FINISH_LENGTH;
    while (r->n_tokens < max_new) {
        if (g_atomic_int_get (&s->cancelled)) {
            r->finish_reason = VLM_FINISH_CANCELLED;
            break;
        }
        if (r->n_tokens > 0) {
            guint32 prev = r->tokens[r->n_tokens - 1];
            if (!embed (m, &prev, 1, NULL, x, error))
                return NULL;
            vlm_decoder_forward (dc, &m->decoder, s->pool, &s->cache, x, 1,
                                 FALSE, out, NULL);
            if (!greedy)
                vlm_decoder_logits (dc, &m->decoder, s->pool, out, logits);
        }
        guint32 id;
        if (greedy) {
            id = r->n_tokens > 0 ? vlm_decoder_greedy (dc, &m->decoder, s->pool, out) : first;
        } else {
            id = vlm_sampler_sample (&sampler, logits, dc->vocab_rows, probs, order);
            vlm_trace (trace, "step_logits", logits, 1, dc->vocab_rows);
        }
        r->tokens[r->n_tokens++] = id;
        if (params->on_token) {
            g_autofree char *so_far =
                vlm_tokenizer_decode_stable (m->tokenizer, r->tokens, r->n_tokens);
            if (!params->on_token (id, so_far, params->user_data)) {
                r->finish_reason = VLM_FINISH_CANCELLED;
                break;
            }
        }
        if (is_eos (m, id)) {
            r->finish_reason = VLM_FINISH_EOS;
            break;
        }
    }
    r->stats.decode_ms = ms_since (t);
    r->stats.n_tokens_generated = r->n_tokens;
    r->text = vlm_tokenizer_decode (m->tokenizer, r->tokens, r->n_tokens);
    vlm_log (VLM_LOG_DEBUG,
             "described %ux%u image: %u image + %u prompt tokens, %u generated "
             "(%s); preprocess %.1f ms, vision %.1f ms, prefill %.1f ms, "
             "decode %.1f ms", image->width, image->height,
             r->stats.n_tokens_image, r->stats.n_tokens_prompt, r->n_tokens,
             vlm_finish_reason_to_string (r->finish_reason),
             r->stats.preprocess_ms, r->stats.vision_ms, r->stats.prefill_ms,
             r->stats.decode_ms);
    return g_steal_pointer (&r);
}

VlmResult *vlm_session_describe (VlmSession *s, const VlmImage *image,
                                 const VlmDescribeParams *params, GError **error)
{
    g_return_val_if_fail (s != NULL, NULL);
    return vlm_session_describe_traced (s, image, params, NULL, error);
}
