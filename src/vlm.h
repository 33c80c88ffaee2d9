/* vlm.h - the public API of libvlm, the vision-language model engine.
 *
 * A VlmModel is a loaded checkpoint (weights mapped from disk, config,
 * tokenizer). A VlmSession holds everything one describing thread needs
 * (KV cache, activations, sampler state). Errors are GErrors in VLM_ERROR.
 *
 * Thread safety: a VlmModel is immutable after load and may be shared by any
 * number of threads and sessions; a VlmSession is used by one thread at a
 * time, except vlm_session_cancel(), which any thread may call.
 *
 * This header compiles as plain C and names no model family.
 */
#ifndef VLM_H
#define VLM_H

#include <glib.h>

G_BEGIN_DECLS

#define VLM_ERROR (vlm_error_quark ())
GQuark vlm_error_quark (void);

typedef enum {
    VLM_ERROR_NOT_FOUND,     /* directory, file, tokenizer.model, repo id not in cache */
    VLM_ERROR_INVALID_MODEL, /* bad config key/type, missing/extra/mis-shaped tensor */
    VLM_ERROR_UNSUPPORTED,   /* unknown model_type or dtype, text-only checkpoint */
    VLM_ERROR_INVALID_INPUT, /* bad image size/stride, prompt too long */
    VLM_ERROR_CANCELLED,
} VlmError;

typedef struct _VlmModel VlmModel;     /* weights + config + tokenizer; refcounted */
typedef struct _VlmSession VlmSession; /* KV cache, activations, sampler state */

/* Packed RGB8: width*3 bytes of pixels per row, rows stride bytes apart. */
typedef struct {
    const guint8 *data;
    guint width, height;
    gsize stride;
} VlmImage;

typedef enum {
    VLM_FINISH_EOS,
    VLM_FINISH_LENGTH,
    VLM_FINISH_CANCELLED,
} VlmFinishReason;

const char *vlm_finish_reason_to_string (VlmFinishReason reason);

/* Called once per generated token on the describing thread with the piece
 * text of this token and the whole text so far (always valid UTF-8: a
 * multi-byte character split over tokens appears once complete).
 * Return FALSE to stop generating (finish reason "cancelled"). */
typedef gboolean (*VlmTokenFunc) (guint32 token, const char *text_so_far,
                                  gpointer user_data);

typedef struct {
    const char *prompt;     /* NULL = the family's default ("caption en") */
    guint max_new_tokens;   /* default 32 */
    float temperature;      /* 0 = greedy (default) */
    guint top_k;            /* 0 = off (default) */
    float top_p;            /* 1 = off (default) */
    guint64 seed;           /* sampler seed, default 0 */
    VlmTokenFunc on_token;  /* optional */
    gpointer user_data;
    gboolean want_logits;   /* fill VlmResult.prefill_logits */
} VlmDescribeParams;

typedef struct {
    guint n_tokens_image, n_tokens_prompt, n_tokens_generated;
    double preprocess_ms, vision_ms, prefill_ms, decode_ms;
} VlmStats;

typedef struct {
    char *text;              /* UTF-8 of the generated tokens, special tokens dropped */
    guint32 *tokens;         /* generated ids (eos included when it stopped on eos) */
    guint n_tokens;
    guint32 *input_ids;      /* the prompt ids the decoder saw */
    guint n_input_ids;
    float *prefill_logits;   /* [vocab_size] at the last prompt position, or NULL */
    guint n_logits;
    VlmFinishReason finish_reason;
    VlmStats stats;
} VlmResult;

typedef struct {
    const char *family;       /* e.g. "paligemma" */
    const char *variant;      /* e.g. "paligemma-224" */
    const char *path;         /* canonical checkpoint directory */
    guint image_width, image_height;
    guint n_image_tokens;
    guint vocab_size;         /* logits per step */
    guint64 n_params;
    const char *dtype;        /* matrices as kept in memory: "F32", "BF16", "F16", "Q8", "Q4" */
    guint64 weight_bytes;     /* bytes of the matrices in that format */
    guint64 decode_bytes;     /* matrix bytes read per greedy token (greedy
                               * decoding reads an 8-bit copy of a float output
                               * head, and of the head itself only the few rows
                               * that copy cannot rule out) */
    guint64 vision_flops;     /* floating-point operations per image (encoder) */
    guint64 prefill_flops;    /* per prompt token, decoder layers (no attention) */
    guint64 prefill_tail_flops; /* of those, the last layer's output projection
                                 * and MLP, which a prompt runs for its last
                                 * token only */
    const char *capabilities; /* "text,vision-understanding" */
    const char *default_prompt;
} VlmModelInfo;

typedef enum {
    VLM_LOG_ERROR,
    VLM_LOG_WARNING,
    VLM_LOG_INFO,
    VLM_LOG_DEBUG,
} VlmLogLevel;

typedef void (*VlmLogFunc) (VlmLogLevel level, const char *message,
                            gpointer user_data);

/* Route the engine's log (model load summary, timings) to func; NULL = silent. */
void vlm_set_log_func (VlmLogFunc func, gpointer user_data);

void vlm_describe_params_init (VlmDescribeParams *params);

/* The instruction-set kernels chosen for this CPU at run time:
 * "avx512-vnni", "avx512", "avx2" or "generic" (VLM_KERNELS narrows it). */
const char *vlm_kernels_name (void);

/* How weight matrices are kept in memory: as the checkpoint stores them
 * (F32, BF16, F16, or MLX-quantized), or quantized at load time to 8 or 4
 * bits (affine, groups of 32). Products are exact to float32 rounding for
 * weights as stored (MLX-quantized included). Weights quantized at load
 * are an approximation already, and their products take the activations
 * to integers: 16 bits for 8-bit weights (about 100 times below the
 * weights' own error), 8 bits for 4-bit weights (a tenth of theirs); with
 * AVX-512 VNNI or AVX2 the image's and the prompt's products run 1.1 to
 * 2.3 times as fast as in float32, and decoding with 4-bit weights
 * reaches the memory's rate. VLM_WEIGHTS_BF16_DOT keeps the weights as stored, and the
 * vision encoder's and the prompt's products with BF16 weights round the
 * activations to bfloat16 (8 significant bits) for AVX-512 BF16 dot
 * products where the CPU has them (about twice as fast, like llama.cpp's
 * bf16 path); elsewhere the same as VLM_WEIGHTS_AS_STORED. */
typedef enum {
    VLM_WEIGHTS_AS_STORED,
    VLM_WEIGHTS_Q8,
    VLM_WEIGHTS_Q4,
    VLM_WEIGHTS_BF16_DOT,
} VlmWeightFormat;

const char *vlm_weight_format_to_string (VlmWeightFormat format);
/* The format named "as-stored", "q8", "q4" or "bf16-dot"; FALSE for others. */
gboolean vlm_weight_format_from_string (const char *name, VlmWeightFormat *format);

/* path_or_repo_id: a checkpoint directory, or a Hugging Face repo id
 * ("google/paligemma-3b-mix-224") found in the local Hugging Face cache. */
VlmModel *vlm_model_load (const char *path_or_repo_id, GError **error);
VlmModel *vlm_model_load_with_format (const char *path_or_repo_id,
                                      VlmWeightFormat format, GError **error);
VlmModel *vlm_model_ref (VlmModel *model);
void vlm_model_unref (VlmModel *model);
const VlmModelInfo *vlm_model_get_info (const VlmModel *model);

/* Resolve a directory or repo id to the canonical checkpoint directory
 * (what models are shared by); NULL with error if it does not exist. */
char *vlm_model_resolve_path (const char *path_or_repo_id, GError **error);

/* The preprocessed image exactly as the vision encoder sees it:
 * [3, image_height, image_width] float32, CHW. Free with g_free. */
float *vlm_model_preprocess (const VlmModel *model, const VlmImage *image,
                             gsize *n_values, GError **error);

/* n_threads 0 = all cores. The session's threads split every product and
 * call OpenBLAS single-threaded (a process-wide setting made here), so that
 * two threading layers never compete for the cores. */
VlmSession *vlm_session_new (VlmModel *model, guint n_threads, GError **error);
void vlm_session_free (VlmSession *session);
/* Any thread: the running or next describe call stops before its next token. */
void vlm_session_cancel (VlmSession *session);
/* Clear a cancel request so the session can describe again. */
void vlm_session_reset_cancel (VlmSession *session);

VlmResult *vlm_session_describe (VlmSession *session, const VlmImage *image,
                                 const VlmDescribeParams *params,
                                 GError **error);
void vlm_result_free (VlmResult *result);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmModel, vlm_model_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmSession, vlm_session_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VlmResult, vlm_result_free)

G_END_DECLS

#endif /* VLM_H */
