/* vlmdescribe
 * Copyright (C) 2025 vlmdescribe authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Library General Public License for more details.
 */

/**
 * SECTION:element-vlmdescribe
 * @title: vlmdescribe
 *
 * Describes video frames in words with a vision-language model, on a worker
 * thread, while the video passes through untouched.
 *
 * Frames are sampled every #GstVlmDescribe:interval of running time (the
 * first frame always), and as soon as the picture changes by more than
 * #GstVlmDescribe:scene-threshold. Only sampled frames are converted to RGB
 * and handed to the model. Each caption comes out four ways, all built from
 * one structure: an element message `vlm-caption` on the bus, a text buffer
 * on the `text_src` pad, a `VlmCaptionMeta` (a #GstCustomMeta) on a video
 * buffer, and the #GstVlmDescribe::caption signal.
 *
 * ## Timestamps
 *
 * With `leaky=no` (files, offline work) the streaming thread waits for the
 * caption of each sampled frame: the meta is on that frame, and the text
 * buffer starts at its PTS and lasts until the next interval sample is due
 * (the interval rounded up to whole frames).
 *
 * With `leaky=upstream` or `leaky=downstream` (live) the video never waits:
 * a caption is stamped when it is ready, with the PTS of the next video
 * buffer that leaves the element, which also carries the meta. The text
 * buffer lasts one interval (one frame with interval=0).
 *
 * In both modes text buffers never overlap: a caption ready before the
 * previous one ends starts where it ends (and gives way on `text_src` to a
 * newer caption ready before then). Video that no caption covers gets a GAP
 * event on `text_src`, so a textoverlay or a muxer never waits on the
 * model.
 *
 * ## The vlm-caption structure
 *
 * * `text` (string): the caption.
 * * `prompt` (string): the prompt it answers.
 * * `model` (string): canonical directory of the model.
 * * `pts`, `running-time`, `stream-time` (guint64): the described frame.
 * * `duration` (guint64): how long the caption applies on `text_src`.
 * * `frame-number` (guint64): index of the described frame since the
 *   element started.
 * * `request-id` (guint64): 0 for sampled frames, the id returned by the
 *   #GstVlmDescribe::describe action otherwise.
 * * `ready-pts`, `ready-running-time` (guint64): the video position at which
 *   the caption was ready (the described frame itself with `leaky=no`).
 * * `finish-reason` (string): "eos", "length" or "cancelled".
 * * `tokens-image`, `tokens-prompt`, `tokens-generated` (guint).
 * * `latency-ms` (gdouble): from the frame's arrival to the caption.
 * * `preprocess-ms`, `vision-ms`, `prefill-ms`, `decode-ms` (gdouble).
 *
 * With #GstVlmDescribe:emit-partial, `vlm-caption-partial` messages carry
 * the frame fields above and the `text` generated so far, once per token.
 *
 * Dropped requests are counted in #GstVlmDescribe:stats and announced with
 * a QoS message.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     vlmdescribe name=d leaky=no ! textoverlay name=o ! autovideosink \
 *     d.text_src ! o.text_sink
 * ]| Renders each caption over the frames it describes.
 *
 * Since: 0.1
 */

#include <gst/base/base.h>
#include <gst/video/video.h>

#include "gstvlmdescribe.h"
#include "gstvlmcaptionmeta.h"
#include "gstvlmmodelcache.h"
#include "gstvlmrequest.h"
#include "gstvlmsampling.h"
#include "gstvlmtextstream.h"
#include "vlm.h"

GST_DEBUG_CATEGORY (gst_vlm_describe_debug);
#define GST_CAT_DEFAULT gst_vlm_describe_debug
GST_DEBUG_CATEGORY_STATIC (vlm_engine_debug);

#define DEFAULT_MODEL_NAME "vlmdescribe-tiny"
#define DEFAULT_MAX_NEW_TOKENS 32
#define DEFAULT_TEMPERATURE 0.0f
#define DEFAULT_TOP_K 0
#define DEFAULT_TOP_P 1.0f
#define DEFAULT_SEED 0
#define DEFAULT_THREADS 0
#define DEFAULT_INTERVAL GST_SECOND
#define DEFAULT_SCENE_THRESHOLD 0.0
#define DEFAULT_MAX_PENDING 1
#define DEFAULT_LEAKY GST_VLM_DESCRIBE_LEAKY_DOWNSTREAM
#define DEFAULT_EMIT_PARTIAL FALSE
#define DEFAULT_DRAIN_TIMEOUT GST_CLOCK_TIME_NONE
#define DEFAULT_WEIGHTS GST_VLM_DESCRIBE_WEIGHTS_AS_STORED

#define GST_VLM_DESCRIBE_LOCK(self) g_mutex_lock (&(self)->lock)
#define GST_VLM_DESCRIBE_UNLOCK(self) g_mutex_unlock (&(self)->lock)
#define GST_VLM_DESCRIBE_WAIT(self) g_cond_wait (&(self)->cond, &(self)->lock)
#define GST_VLM_DESCRIBE_SIGNAL(self) g_cond_broadcast (&(self)->cond)

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_PROMPT,
  PROP_MAX_NEW_TOKENS,
  PROP_TEMPERATURE,
  PROP_TOP_K,
  PROP_TOP_P,
  PROP_SEED,
  PROP_THREADS,
  PROP_WEIGHTS,
  PROP_INTERVAL,
  PROP_SCENE_THRESHOLD,
  PROP_MAX_PENDING,
  PROP_LEAKY,
  PROP_EMIT_PARTIAL,
  PROP_DRAIN_TIMEOUT,
  PROP_MODEL_INFO,
  PROP_STATS,
};

enum
{
  SIGNAL_CAPTION,
  SIGNAL_DESCRIBE,
  LAST_SIGNAL
};

static guint gst_vlm_describe_signals[LAST_SIGNAL];

#define VIDEO_CAPS GST_VIDEO_CAPS_MAKE ("{ RGB, BGR, RGBA, BGRA, ARGB, ABGR, " \
    "RGBx, BGRx, xRGB, xBGR, I420, YV12, NV12, NV21, Y42B, Y444, YUY2, " \
    "UYVY, GRAY8 }")
#define TEXT_CAPS "text/x-raw, format = (string) utf8"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));
static GstStaticPadTemplate text_src_template =
GST_STATIC_PAD_TEMPLATE ("text_src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (TEXT_CAPS));

/* A question from the describe action, waiting for the next frame. */
typedef struct
{
  guint64 request_id;
  gchar *prompt;
} GstVlmAsk;

/* What the streaming thread reads from the properties once per buffer. */
typedef struct
{
  GstClockTime interval;
  gdouble scene_threshold;
  guint max_pending;
  GstVlmDescribeLeaky leaky;
  gchar *prompt;
  VlmDescribeParams params;
} GstVlmDescribeSettings;

/* What the engine's token callback needs. */
typedef struct
{
  GstVlmDescribe *self;
  GstVlmRequest *request;
  gboolean emit_partial;
} GstVlmTokenContext;

struct _GstVlmDescribe
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;
  GstPad *text_srcpad;

  /* the last seek sent upstream and its result, GST_OBJECT_LOCK */
  guint32 seek_seqnum;
  gboolean seek_result;

  /* properties, GST_OBJECT_LOCK */
  gchar *model_location;
  gchar *prompt;
  guint max_new_tokens;
  gfloat temperature;
  guint top_k;
  gfloat top_p;
  guint64 seed;
  guint threads;
  GstVlmDescribeWeights weights;
  GstClockTime interval;
  gdouble scene_threshold;
  guint max_pending;
  GstVlmDescribeLeaky leaky;
  gboolean emit_partial;
  GstClockTime drain_timeout;

  /* GST_OBJECT_LOCK when written and for readers other than the streaming
   * thread and the worker: set in change_state, stable while they run */
  VlmModel *model;
  gchar *model_loaded_location;
  GstVlmDescribeWeights model_loaded_weights;

  /* streaming thread (sink pad stream lock) */
  GstSegment segment;
  GstVideoInfo in_info;
  GstVideoInfo rgb_info;
  GstVideoConverter *converter;
  GstClockTime last_sampled_running_time;
  GstVlmThumbnail last_thumbnail;
  gboolean have_thumbnail;
  guint64 n_frames;
  GstClockTime video_end;       /* end of the last frame that left */
  GstVlmTextStream text;
  GstFlowCombiner *flow_combiner;

  /* worker state and statistics, lock */
  GMutex lock;
  GCond cond;
  VlmSession *session;          /* set while PAUSED or PLAYING */
  GQueue requests;              /* GstVlmRequest waiting for the worker */
  GQueue ready;                 /* GstVlmRequest described, not yet stamped */
  GQueue asked;                 /* GstVlmAsk waiting for the next frame */
  gboolean busy;                /* the worker is describing */
  gboolean flushing;
  gint epoch;                   /* + atomic reads: bumped at each flush */
  guint64 next_request_id;
  /* Every request is counted in frames_sampled in the same locked section
   * that queues it or disposes of it, and leaves the queues in the section
   * that counts its fate, so that at every moment frames_sampled =
   * captions + dropped + cancelled + errors + pending + ready. */
  guint64 frames_seen;
  guint64 frames_sampled;
  guint64 captions;             /* delivered (message, signal, text) */
  guint64 dropped;              /* by the leaky policy or drain-timeout */
  guint64 cancelled;            /* discarded by a flush or a stop */
  guint64 errors;
  gdouble latency_sum_ms;
  gdouble latency_max_ms;
};

static void gst_vlm_describe_finalize (GObject * object);
static void gst_vlm_describe_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_vlm_describe_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_vlm_describe_change_state (GstElement *
    element, GstStateChange transition);
static GstFlowReturn gst_vlm_describe_sink_chain (GstPad * pad,
    GstObject * parent, GstBuffer * buffer);
static gboolean gst_vlm_describe_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event);
static gboolean gst_vlm_describe_src_event (GstPad * pad,
    GstObject * parent, GstEvent * event);
static gboolean gst_vlm_describe_text_src_activate_mode (GstPad * pad,
    GstObject * parent, GstPadMode mode, gboolean active);
static GstIterator *gst_vlm_describe_iterate_internal_links (GstPad * pad,
    GstObject * parent);
static guint64 gst_vlm_describe_describe (GstVlmDescribe * self,
    const gchar * prompt);
static void gst_vlm_describe_worker_loop (gpointer user_data);

#define gst_vlm_describe_parent_class parent_class
G_DEFINE_TYPE (GstVlmDescribe, gst_vlm_describe, GST_TYPE_ELEMENT);

static void
gst_vlm_describe_engine_log (VlmLogLevel level, const char *message,
    gpointer user_data)
{
  static const GstDebugLevel levels[] = {
    [VLM_LOG_ERROR] = GST_LEVEL_ERROR,
    [VLM_LOG_WARNING] = GST_LEVEL_WARNING,
    [VLM_LOG_INFO] = GST_LEVEL_INFO,
    [VLM_LOG_DEBUG] = GST_LEVEL_DEBUG,
  };

  GST_CAT_LEVEL_LOG (vlm_engine_debug, levels[level], NULL, "%s", message);
}

static void
gst_vlm_describe_element_init_once (void)
{
  GST_DEBUG_CATEGORY_INIT (gst_vlm_describe_debug, "vlmdescribe", 0,
      "vlmdescribe element");
  GST_DEBUG_CATEGORY_INIT (vlm_engine_debug, "vlmengine", 0,
      "libvlm inference engine");
  gst_vlm_caption_meta_get_info ();
  vlm_set_log_func (gst_vlm_describe_engine_log, NULL);
}

GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (vlmdescribe, "vlmdescribe",
    GST_RANK_NONE, GST_TYPE_VLM_DESCRIBE,
    gst_vlm_describe_element_init_once ());

GType
gst_vlm_describe_weights_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VLM_DESCRIBE_WEIGHTS_AS_STORED,
        "As the checkpoint stores them (F32, BF16, F16 or MLX-quantized)",
        "as-stored"},
    {GST_VLM_DESCRIBE_WEIGHTS_Q8, "Quantized to 8 bits at load", "q8"},
    {GST_VLM_DESCRIBE_WEIGHTS_Q4, "Quantized to 4 bits at load", "q4"},
    {GST_VLM_DESCRIBE_WEIGHTS_BF16_DOT,
        "As stored; BF16 weights with bf16 dot products (faster, activations "
          "rounded to bfloat16)", "bf16-dot"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVlmDescribeWeights", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_vlm_describe_leaky_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VLM_DESCRIBE_LEAKY_NO,
        "Not leaky: the streaming thread waits for each caption", "no"},
    {GST_VLM_DESCRIBE_LEAKY_UPSTREAM,
        "Leaky on upstream: drop the new request", "upstream"},
    {GST_VLM_DESCRIBE_LEAKY_DOWNSTREAM,
        "Leaky on downstream: drop the oldest waiting request", "downstream"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVlmDescribeLeaky", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* The model shipped in models/: the source tree's when running uninstalled,
 * else the installed one. */
static const gchar *
gst_vlm_describe_default_model (void)
{
  static gchar *path = NULL;

  if (g_once_init_enter (&path)) {
    gchar *p = g_build_filename (VLM_MODELS_SOURCE_DIR, DEFAULT_MODEL_NAME,
        NULL);

    if (!g_file_test (p, G_FILE_TEST_IS_DIR)) {
      g_free (p);
      p = g_build_filename (VLM_MODELS_INSTALL_DIR, DEFAULT_MODEL_NAME, NULL);
    }
    g_once_init_leave (&path, p);
  }
  return path;
}

static void
gst_vlm_describe_class_init (GstVlmDescribeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_vlm_describe_finalize;
  gobject_class->set_property = gst_vlm_describe_set_property;
  gobject_class->get_property = gst_vlm_describe_get_property;

  /**
   * GstVlmDescribe:model:
   *
   * A checkpoint directory, or a Hugging Face repo id (such as
   * google/paligemma-3b-mix-224) looked up in the local Hugging Face cache.
   * Elements with the same checkpoint share one copy of the weights.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Checkpoint directory or Hugging Face repo id in the local cache",
          gst_vlm_describe_default_model (),
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstVlmDescribe:prompt:
   *
   * The question asked about every sampled frame; NULL for the model's
   * default ("caption en" for PaliGemma).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "Prompt for sampled frames (NULL = the model's default)", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:max-new-tokens:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_uint ("max-new-tokens", "Max new tokens",
          "Most tokens generated per caption", 1, 4096,
          DEFAULT_MAX_NEW_TOKENS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:temperature:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_TEMPERATURE,
      g_param_spec_float ("temperature", "Temperature",
          "Sampling temperature (0 = greedy)", 0.0f, 100.0f,
          DEFAULT_TEMPERATURE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:top-k:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
          "Sample among the k most likely tokens (0 = off)", 0, G_MAXUINT,
          DEFAULT_TOP_K,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:top-p:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_TOP_P,
      g_param_spec_float ("top-p", "Top p",
          "Nucleus sampling probability mass (1 = off)", 0.0f, 1.0f,
          DEFAULT_TOP_P,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:seed:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed", "Sampler random seed", 0,
          G_MAXUINT64, DEFAULT_SEED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:threads:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_uint ("threads", "Threads",
          "Threads the engine computes with (0 = all cores)", 0, 1024,
          DEFAULT_THREADS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstVlmDescribe:weights:
   *
   * How the weight matrices are kept in memory: as stored, or quantized at
   * load to 8 or 4 bits (less memory, faster decoding, small changes in
   * the captions), or as stored with bf16 dot products for BF16 weights
   * where the CPU has AVX-512 BF16 (about twice as fast for the image and
   * the prompt, activations rounded to bfloat16, 8 significant bits). Elements sharing a
   * checkpoint share it per format.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_WEIGHTS,
      g_param_spec_enum ("weights", "Weights",
          "How the weight matrices are kept in memory",
          GST_TYPE_VLM_DESCRIBE_WEIGHTS, DEFAULT_WEIGHTS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstVlmDescribe:interval:
   *
   * Running time between two sampled frames; 0 samples every frame,
   * GST_CLOCK_TIME_NONE samples only the first frame and scene changes.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint64 ("interval", "Interval",
          "Running time between sampled frames in ns (0 = every frame)", 0,
          G_MAXUINT64, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:scene-threshold:
   *
   * Also sample a frame as soon as its luma thumbnail differs from the last
   * sampled frame's by more than this mean absolute difference (0..1).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SCENE_THRESHOLD,
      g_param_spec_double ("scene-threshold", "Scene threshold",
          "Sample on a picture change larger than this (0 = off)", 0.0, 1.0,
          DEFAULT_SCENE_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:max-pending:
   *
   * Sampled frames that may wait while the worker is busy, with a leaky
   * #GstVlmDescribe:leaky. Requests from the describe action are never
   * dropped and not counted here.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint ("max-pending", "Max pending",
          "Sampled frames waiting for the worker at most", 1, G_MAXINT,
          DEFAULT_MAX_PENDING,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:leaky:
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_LEAKY,
      g_param_spec_enum ("leaky", "Leaky",
          "Where to drop requests when max-pending are waiting, or wait",
          GST_TYPE_VLM_DESCRIBE_LEAKY, DEFAULT_LEAKY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:emit-partial:
   *
   * Post a vlm-caption-partial message after each generated token.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_EMIT_PARTIAL,
      g_param_spec_boolean ("emit-partial", "Emit partial",
          "Post vlm-caption-partial messages as tokens are generated",
          DEFAULT_EMIT_PARTIAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:drain-timeout:
   *
   * How long EOS waits for pending captions; then the running caption is
   * stopped (finish-reason "cancelled") and the waiting ones are dropped.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_DRAIN_TIMEOUT,
      g_param_spec_uint64 ("drain-timeout", "Drain timeout",
          "How long EOS waits for pending captions in ns "
          "(GST_CLOCK_TIME_NONE = as long as it takes)", 0, G_MAXUINT64,
          DEFAULT_DRAIN_TIMEOUT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVlmDescribe:model-info:
   *
   * The loaded model (READY and above), as a vlm-model-info structure:
   * family, variant, path (strings), image-width, image-height,
   * image-tokens, vocab-size (guint), params (guint64), dtype,
   * capabilities, default-prompt (strings). NULL before loading.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MODEL_INFO,
      g_param_spec_boxed ("model-info", "Model info",
          "Description of the loaded model", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstVlmDescribe:stats:
   *
   * Counters since the last start, as a vlm-stats structure: frames-seen,
   * frames-sampled (frames handed to the model: sampled ones, and one per
   * answered #GstVlmDescribe::describe request; a question no frame came
   * for before a stop counts as sampled and cancelled), captions (delivered),
   * dropped (by #GstVlmDescribe:leaky or #GstVlmDescribe:drain-timeout),
   * cancelled (discarded by a flush or a stop, never delivered), errors
   * (guint64), pending (guint: waiting for the worker or being described),
   * ready (guint: described, waiting for the next video buffer),
   * mean-latency-ms, max-latency-ms (gdouble). At every moment
   * frames-sampled = captions + dropped + cancelled + errors + pending +
   * ready.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Frames seen and sampled, captions, drops, cancellations, errors, "
          "latency",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstVlmDescribe::caption:
   * @vlmdescribe: the element
   * @caption: the vlm-caption structure (copy it to keep it)
   *
   * Emitted from the streaming thread for every caption, with the fields
   * of the vlm-caption message.
   *
   * Since: 0.1
   */
  gst_vlm_describe_signals[SIGNAL_CAPTION] =
      g_signal_new ("caption", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
      0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * GstVlmDescribe::describe:
   * @vlmdescribe: the element
   * @prompt: (nullable): the question, NULL for the model's default
   *
   * Asks @prompt about the next frame, once. Its caption carries the
   * returned request-id.
   *
   * Returns: the request id (never 0).
   *
   * Since: 0.1
   */
  gst_vlm_describe_signals[SIGNAL_DESCRIBE] =
      g_signal_new_class_handler ("describe", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_vlm_describe_describe), NULL, NULL, NULL,
      G_TYPE_UINT64, 1, G_TYPE_STRING);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_pad_template (element_class,
      &text_src_template);
  gst_element_class_set_static_metadata (element_class,
      "Vision-language describer", "Filter/Analyzer/Video",
      "Describes sampled video frames in words with a vision-language "
      "model on a worker thread; captions as text, meta and messages",
      "vlmdescribe authors");

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_vlm_describe_change_state);

  gst_type_mark_as_plugin_api (GST_TYPE_VLM_DESCRIBE_LEAKY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_VLM_DESCRIBE_WEIGHTS, 0);
}

static void
gst_vlm_describe_init (GstVlmDescribe * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_sink_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_sink_event));
  gst_pad_set_iterate_internal_links_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_iterate_internal_links));
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->sinkpad);
  GST_PAD_SET_PROXY_SCHEDULING (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_src_event));
  gst_pad_set_iterate_internal_links_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_iterate_internal_links));
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  GST_PAD_SET_PROXY_SCHEDULING (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->text_srcpad = gst_pad_new_from_static_template (&text_src_template,
      "text_src");
  gst_pad_set_event_function (self->text_srcpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_src_event));
  gst_pad_set_activatemode_function (self->text_srcpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_text_src_activate_mode));
  gst_pad_set_iterate_internal_links_function (self->text_srcpad,
      GST_DEBUG_FUNCPTR (gst_vlm_describe_iterate_internal_links));
  gst_pad_use_fixed_caps (self->text_srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->text_srcpad);

  self->flow_combiner = gst_flow_combiner_new ();
  gst_flow_combiner_add_pad (self->flow_combiner, self->srcpad);
  gst_flow_combiner_add_pad (self->flow_combiner, self->text_srcpad);

  self->model_location = g_strdup (gst_vlm_describe_default_model ());
  self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
  self->temperature = DEFAULT_TEMPERATURE;
  self->top_k = DEFAULT_TOP_K;
  self->top_p = DEFAULT_TOP_P;
  self->seed = DEFAULT_SEED;
  self->threads = DEFAULT_THREADS;
  self->weights = DEFAULT_WEIGHTS;
  self->interval = DEFAULT_INTERVAL;
  self->scene_threshold = DEFAULT_SCENE_THRESHOLD;
  self->max_pending = DEFAULT_MAX_PENDING;
  self->leaky = DEFAULT_LEAKY;
  self->emit_partial = DEFAULT_EMIT_PARTIAL;
  self->drain_timeout = DEFAULT_DRAIN_TIMEOUT;

  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  gst_vlm_text_stream_init (&self->text, self->text_srcpad);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->requests);
  g_queue_init (&self->ready);
  g_queue_init (&self->asked);
  self->flushing = TRUE;
}

static void
gst_vlm_ask_free (GstVlmAsk * ask)
{
  g_free (ask->prompt);
  g_free (ask);
}

static void
gst_vlm_describe_finalize (GObject * object)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (object);

  g_queue_clear_full (&self->asked, (GDestroyNotify) gst_vlm_ask_free);
  gst_flow_combiner_free (self->flow_combiner);
  g_free (self->model_location);
  g_free (self->prompt);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vlm_describe_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_location);
      self->model_location = g_value_dup_string (value);
      break;
    case PROP_PROMPT:
      g_free (self->prompt);
      self->prompt = g_value_dup_string (value);
      break;
    case PROP_MAX_NEW_TOKENS:
      self->max_new_tokens = g_value_get_uint (value);
      break;
    case PROP_TEMPERATURE:
      self->temperature = g_value_get_float (value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_uint (value);
      break;
    case PROP_TOP_P:
      self->top_p = g_value_get_float (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_THREADS:
      self->threads = g_value_get_uint (value);
      break;
    case PROP_WEIGHTS:
      self->weights = g_value_get_enum (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint64 (value);
      break;
    case PROP_SCENE_THRESHOLD:
      self->scene_threshold = g_value_get_double (value);
      break;
    case PROP_MAX_PENDING:
      self->max_pending = g_value_get_uint (value);
      break;
    case PROP_LEAKY:
      self->leaky = g_value_get_enum (value);
      break;
    case PROP_EMIT_PARTIAL:
      self->emit_partial = g_value_get_boolean (value);
      break;
    case PROP_DRAIN_TIMEOUT:
      self->drain_timeout = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Call with GST_OBJECT_LOCK. */
static GstStructure *
gst_vlm_describe_model_info_new (GstVlmDescribe * self)
{
  const VlmModelInfo *info;

  if (!self->model)
    return NULL;
  info = vlm_model_get_info (self->model);
  return gst_structure_new ("vlm-model-info",
      "family", G_TYPE_STRING, info->family,
      "variant", G_TYPE_STRING, info->variant,
      "path", G_TYPE_STRING, info->path,
      "image-width", G_TYPE_UINT, info->image_width,
      "image-height", G_TYPE_UINT, info->image_height,
      "image-tokens", G_TYPE_UINT, info->n_image_tokens,
      "vocab-size", G_TYPE_UINT, info->vocab_size,
      "params", G_TYPE_UINT64, info->n_params,
      "dtype", G_TYPE_STRING, info->dtype,
      "capabilities", G_TYPE_STRING, info->capabilities,
      "default-prompt", G_TYPE_STRING, info->default_prompt, NULL);
}

static GstStructure *
gst_vlm_describe_stats_new (GstVlmDescribe * self)
{
  GstStructure *s;

  GST_VLM_DESCRIBE_LOCK (self);
  s = gst_structure_new ("vlm-stats",
      "frames-seen", G_TYPE_UINT64, self->frames_seen,
      "frames-sampled", G_TYPE_UINT64, self->frames_sampled,
      "captions", G_TYPE_UINT64, self->captions,
      "dropped", G_TYPE_UINT64, self->dropped,
      "cancelled", G_TYPE_UINT64, self->cancelled,
      "errors", G_TYPE_UINT64, self->errors,
      "pending", G_TYPE_UINT, g_queue_get_length (&self->requests) +
      (self->busy ? 1 : 0),
      "ready", G_TYPE_UINT, g_queue_get_length (&self->ready),
      "mean-latency-ms", G_TYPE_DOUBLE, self->captions ?
      self->latency_sum_ms / self->captions : 0.0,
      "max-latency-ms", G_TYPE_DOUBLE, self->latency_max_ms, NULL);
  GST_VLM_DESCRIBE_UNLOCK (self);
  return s;
}

static void
gst_vlm_describe_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, gst_vlm_describe_stats_new (self));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_location);
      break;
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_MAX_NEW_TOKENS:
      g_value_set_uint (value, self->max_new_tokens);
      break;
    case PROP_TEMPERATURE:
      g_value_set_float (value, self->temperature);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->top_k);
      break;
    case PROP_TOP_P:
      g_value_set_float (value, self->top_p);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_THREADS:
      g_value_set_uint (value, self->threads);
      break;
    case PROP_WEIGHTS:
      g_value_set_enum (value, self->weights);
      break;
    case PROP_INTERVAL:
      g_value_set_uint64 (value, self->interval);
      break;
    case PROP_SCENE_THRESHOLD:
      g_value_set_double (value, self->scene_threshold);
      break;
    case PROP_MAX_PENDING:
      g_value_set_uint (value, self->max_pending);
      break;
    case PROP_LEAKY:
      g_value_set_enum (value, self->leaky);
      break;
    case PROP_EMIT_PARTIAL:
      g_value_set_boolean (value, self->emit_partial);
      break;
    case PROP_DRAIN_TIMEOUT:
      g_value_set_uint64 (value, self->drain_timeout);
      break;
    case PROP_MODEL_INFO:
      g_value_take_boxed (value, gst_vlm_describe_model_info_new (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vlm_describe_read_settings (GstVlmDescribe * self,
    GstVlmDescribeSettings * settings)
{
  vlm_describe_params_init (&settings->params);

  GST_OBJECT_LOCK (self);
  settings->interval = self->interval;
  settings->scene_threshold = self->scene_threshold;
  settings->max_pending = self->max_pending;
  settings->leaky = self->leaky;
  settings->prompt = g_strdup (self->prompt);
  settings->params.max_new_tokens = self->max_new_tokens;
  settings->params.temperature = self->temperature;
  settings->params.top_k = self->top_k;
  settings->params.top_p = self->top_p;
  settings->params.seed = self->seed;
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------------------ */
/* Worker                                                                   */

static gboolean
gst_vlm_describe_on_token (guint32 token, const char *text_so_far,
    gpointer user_data)
{
  GstVlmTokenContext *ctx = user_data;
  GstVlmDescribe *self = ctx->self;
  GstStructure *s;

  /* a flush happened: stop now, the caption would be stale */
  if ((guint) g_atomic_int_get (&self->epoch) != ctx->request->epoch)
    return FALSE;

  if (ctx->emit_partial) {
    s = gst_vlm_describe_partial_structure_new (ctx->request,
        vlm_model_get_info (self->model), text_so_far);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), s));
  }
  return TRUE;
}

/* The GstTask on text_src: describes one request per iteration. It never
 * pushes: the streaming thread stamps and emits what it finishes. */
static void
gst_vlm_describe_worker_loop (gpointer user_data)
{
  GstVlmDescribe *self = user_data;
  GstVlmTokenContext ctx = { self, NULL, FALSE };
  GstVlmRequest *request;
  VlmSession *session;
  gboolean failed = FALSE;

  GST_VLM_DESCRIBE_LOCK (self);
  while (!self->flushing && g_queue_is_empty (&self->requests))
    GST_VLM_DESCRIBE_WAIT (self);
  if (self->flushing) {
    GST_VLM_DESCRIBE_UNLOCK (self);
    gst_pad_pause_task (self->text_srcpad);
    return;
  }
  request = g_queue_pop_head (&self->requests);
  self->busy = TRUE;
  session = self->session;
  /* under the lock, so a cancel from a flush after this point is kept */
  vlm_session_reset_cancel (session);
  GST_VLM_DESCRIBE_UNLOCK (self);

  GST_OBJECT_LOCK (self);
  ctx.emit_partial = self->emit_partial;
  GST_OBJECT_UNLOCK (self);
  ctx.request = request;

  GST_DEBUG_OBJECT (self, "describing frame %" G_GUINT64_FORMAT " (request %"
      G_GUINT64_FORMAT ", prompt '%s')", request->frame.frame_number,
      request->request_id, request->prompt ? request->prompt :
      vlm_model_get_info (self->model)->default_prompt);
  gst_vlm_request_describe (request, session, gst_vlm_describe_on_token,
      &ctx);

  GST_VLM_DESCRIBE_LOCK (self);
  self->busy = FALSE;
  if (request->epoch != (guint) self->epoch || self->flushing
      || g_error_matches (request->error, VLM_ERROR, VLM_ERROR_CANCELLED)) {
    /* flushed while described: never delivered late */
    GST_DEBUG_OBJECT (self, "caption of frame %" G_GUINT64_FORMAT
        " cancelled", request->frame.frame_number);
    self->cancelled++;
  } else if (request->result) {
    g_queue_push_tail (&self->ready, request);
    request = NULL;
  } else {
    self->errors++;
    failed = TRUE;
  }
  GST_VLM_DESCRIBE_SIGNAL (self);
  GST_VLM_DESCRIBE_UNLOCK (self);

  if (failed)
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("Could not describe frame %" G_GUINT64_FORMAT ": %s",
            request->frame.frame_number, request->error->message),
        ("%s", request->error->message));
  gst_vlm_request_free (request);
}

/* Call with lock. Stops the running caption within one token. */
static void
gst_vlm_describe_cancel_locked (GstVlmDescribe * self)
{
  if (self->session)
    vlm_session_cancel (self->session);
}

/* Stops the worker's current caption and wakes every waiter; results of
 * requests made before this are discarded. */
static void
gst_vlm_describe_flush_start (GstVlmDescribe * self)
{
  GST_VLM_DESCRIBE_LOCK (self);
  self->flushing = TRUE;
  g_atomic_int_inc (&self->epoch);
  gst_vlm_describe_cancel_locked (self);
  GST_VLM_DESCRIBE_SIGNAL (self);
  GST_VLM_DESCRIBE_UNLOCK (self);
}

static gboolean
gst_vlm_describe_text_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;

  if (active) {
    GST_VLM_DESCRIBE_LOCK (self);
    self->flushing = FALSE;
    GST_VLM_DESCRIBE_UNLOCK (self);
    return gst_pad_start_task (pad, gst_vlm_describe_worker_loop, self, NULL);
  }
  gst_vlm_describe_flush_start (self);
  return gst_pad_stop_task (pad);
}

/* ------------------------------------------------------------------------ */
/* Streaming thread                                                         */

static guint
gst_vlm_describe_n_waiting_sampled (GstVlmDescribe * self)
{
  guint n = 0;
  GList *l;

  for (l = self->requests.head; l; l = l->next)
    n += ((GstVlmRequest *) l->data)->request_id == 0;
  return n;
}

/* Call with lock. Drops the oldest waiting sampled request. */
static void
gst_vlm_describe_drop_oldest_sampled (GstVlmDescribe * self)
{
  GList *l;

  for (l = self->requests.head; l; l = l->next) {
    GstVlmRequest *request = l->data;

    if (request->request_id == 0) {
      g_queue_delete_link (&self->requests, l);
      gst_vlm_request_free (request);
      return;
    }
  }
}

/* Call with lock. Waits until the worker has finished every request, or
 * @timeout (GST_CLOCK_TIME_NONE = forever); then stops the running caption
 * and drops the waiting ones. Returns how many were dropped. */
static guint
gst_vlm_describe_wait_drained (GstVlmDescribe * self, GstClockTime timeout)
{
  gint64 deadline = G_MAXINT64;
  guint n_dropped = 0;

  if (GST_CLOCK_TIME_IS_VALID (timeout))
    deadline = g_get_monotonic_time () + timeout / GST_USECOND;

  while (!self->flushing && (self->busy
          || !g_queue_is_empty (&self->requests))) {
    if (deadline == G_MAXINT64) {
      GST_VLM_DESCRIBE_WAIT (self);
    } else if (!g_cond_wait_until (&self->cond, &self->lock, deadline)) {
      n_dropped = g_queue_get_length (&self->requests);
      self->dropped += n_dropped;
      g_queue_clear_full (&self->requests,
          (GDestroyNotify) gst_vlm_request_free);
      gst_vlm_describe_cancel_locked (self);
      deadline = G_MAXINT64;
    }
  }
  return n_dropped;
}

/* Call with lock. Moves the described requests to @ready, to be emitted
 * at once: they count as captions from here. */
static void
gst_vlm_describe_take_ready (GstVlmDescribe * self, GQueue * ready)
{
  GstVlmRequest *request;

  while ((request = g_queue_pop_head (&self->ready))) {
    gdouble latency_ms = gst_vlm_request_latency_ms (request);

    self->captions++;
    self->latency_sum_ms += latency_ms;
    self->latency_max_ms = MAX (self->latency_max_ms, latency_ms);
    g_queue_push_tail (ready, request);
  }
}

static void
gst_vlm_describe_post_qos (GstVlmDescribe * self,
    const GstVlmFrameTimes * frame)
{
  GstMessage *msg;
  guint64 processed, dropped;

  GST_VLM_DESCRIBE_LOCK (self);
  processed = self->frames_sampled - self->dropped;
  dropped = self->dropped;
  GST_VLM_DESCRIBE_UNLOCK (self);

  msg = gst_message_new_qos (GST_OBJECT (self), FALSE, frame->running_time,
      frame->stream_time, frame->pts, frame->duration);
  gst_message_set_qos_stats (msg, GST_FORMAT_BUFFERS, processed, dropped);
  gst_element_post_message (GST_ELEMENT (self), msg);
}

/* Hands @requests to the worker following the leaky policy; with
 * leaky=no, waits until they are described. Moves the captions ready so
 * far to @ready and returns how many requests were dropped in *n_dropped. */
static GstFlowReturn
gst_vlm_describe_submit (GstVlmDescribe * self, GQueue * requests,
    const GstVlmDescribeSettings * settings, GQueue * ready,
    guint * n_dropped)
{
  GstVlmRequest *request;

  *n_dropped = 0;
  GST_VLM_DESCRIBE_LOCK (self);
  self->frames_sampled += g_queue_get_length (requests);
  if (self->flushing) {
    self->cancelled += g_queue_get_length (requests);
    GST_VLM_DESCRIBE_UNLOCK (self);
    g_queue_clear_full (requests, (GDestroyNotify) gst_vlm_request_free);
    return GST_FLOW_FLUSHING;
  }

  while ((request = g_queue_pop_head (requests))) {
    request->epoch = self->epoch;
    if (request->request_id == 0 && settings->leaky != GST_VLM_DESCRIBE_LEAKY_NO
        && gst_vlm_describe_n_waiting_sampled (self) >= settings->max_pending) {
      (*n_dropped)++;
      if (settings->leaky == GST_VLM_DESCRIBE_LEAKY_UPSTREAM) {
        gst_vlm_request_free (request);
        continue;
      }
      gst_vlm_describe_drop_oldest_sampled (self);
    }
    g_queue_push_tail (&self->requests, request);
  }
  self->dropped += *n_dropped;
  GST_VLM_DESCRIBE_SIGNAL (self);

  if (settings->leaky == GST_VLM_DESCRIBE_LEAKY_NO)
    gst_vlm_describe_wait_drained (self, GST_CLOCK_TIME_NONE);

  if (self->flushing) {
    GST_VLM_DESCRIBE_UNLOCK (self);
    return GST_FLOW_FLUSHING;
  }
  gst_vlm_describe_take_ready (self, ready);
  GST_VLM_DESCRIBE_UNLOCK (self);
  return GST_FLOW_OK;
}

static GstVlmSampleReason
gst_vlm_describe_decide (GstVlmDescribe * self, GstBuffer * buffer,
    const GstVlmFrameTimes * frame, const GstVlmDescribeSettings * settings)
{
  GstVlmThumbnail thumbnail;
  gboolean have_thumbnail = FALSE;
  gdouble diff = 0.0;
  GstVlmSampleReason reason;

  if (settings->scene_threshold > 0.0) {
    GstVideoFrame vframe;

    if (gst_video_frame_map (&vframe, &self->in_info, buffer, GST_MAP_READ)) {
      gst_vlm_thumbnail_from_frame (&thumbnail, &vframe);
      gst_video_frame_unmap (&vframe);
      have_thumbnail = TRUE;
      if (self->have_thumbnail)
        diff = gst_vlm_thumbnail_diff (&thumbnail, &self->last_thumbnail);
    }
  }

  if (have_thumbnail)
    GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": scene diff %.3f "
        "(threshold %.3f)", frame->frame_number, diff,
        settings->scene_threshold);
  reason = gst_vlm_sampling_decide (self->last_sampled_running_time,
      frame->running_time, settings->interval, diff,
      settings->scene_threshold);
  if (reason == GST_VLM_SAMPLE_SKIP)
    return reason;

  GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT " at %" GST_TIME_FORMAT
      " sampled: %s", frame->frame_number, GST_TIME_ARGS (frame->running_time),
      reason == GST_VLM_SAMPLE_FIRST ? "first frame" :
      reason == GST_VLM_SAMPLE_SCENE ? "scene change" : "interval");
  self->last_sampled_running_time =
      GST_CLOCK_TIME_IS_VALID (frame->running_time) ? frame->running_time : 0;
  self->have_thumbnail = have_thumbnail;
  if (have_thumbnail)
    self->last_thumbnail = thumbnail;
  return reason;
}

static GstBuffer *
gst_vlm_describe_convert (GstVlmDescribe * self, GstBuffer * buffer)
{
  GstVideoFrame in_frame, out_frame;
  GstBuffer *rgb;

  if (!gst_video_frame_map (&in_frame, &self->in_info, buffer, GST_MAP_READ))
    return NULL;
  rgb = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&self->rgb_info),
      NULL);
  if (!gst_video_frame_map (&out_frame, &self->rgb_info, rgb, GST_MAP_WRITE)) {
    gst_video_frame_unmap (&in_frame);
    gst_buffer_unref (rgb);
    return NULL;
  }
  gst_video_converter_frame (self->converter, &in_frame, &out_frame);
  gst_video_frame_unmap (&out_frame);
  gst_video_frame_unmap (&in_frame);
  return rgb;
}

/* Samples the frame, converts it if it is sampled or asked about, and
 * hands the requests to the worker. */
static GstFlowReturn
gst_vlm_describe_handle_frame (GstVlmDescribe * self, GstBuffer * buffer,
    const GstVlmFrameTimes * frame, const GstVlmDescribeSettings * settings,
    GQueue * ready)
{
  GstVlmSampleReason reason;
  GQueue asked, requests = G_QUEUE_INIT;
  GstFlowReturn ret;
  GstVlmAsk *ask;
  GstBuffer *rgb;
  guint n_dropped;

  reason = gst_vlm_describe_decide (self, buffer, frame, settings);

  GST_VLM_DESCRIBE_LOCK (self);
  self->frames_seen++;
  asked = self->asked;
  g_queue_init (&self->asked);
  GST_VLM_DESCRIBE_UNLOCK (self);

  if (reason != GST_VLM_SAMPLE_SKIP || !g_queue_is_empty (&asked)) {
    guint width = GST_VIDEO_INFO_WIDTH (&self->rgb_info);
    guint height = GST_VIDEO_INFO_HEIGHT (&self->rgb_info);
    gsize stride = GST_VIDEO_INFO_PLANE_STRIDE (&self->rgb_info, 0);

    rgb = gst_vlm_describe_convert (self, buffer);
    if (!rgb) {
      guint n_lost = (reason != GST_VLM_SAMPLE_SKIP) +
          g_queue_get_length (&asked);

      GST_VLM_DESCRIBE_LOCK (self);
      self->frames_sampled += n_lost;
      self->errors += n_lost;
      GST_VLM_DESCRIBE_UNLOCK (self);
      g_queue_clear_full (&asked, (GDestroyNotify) gst_vlm_ask_free);
      GST_ELEMENT_ERROR (self, STREAM, FORMAT,
          ("Could not read video frame %" G_GUINT64_FORMAT ": a buffer of %"
              G_GSIZE_FORMAT " bytes is no %ux%u %s frame (%" G_GSIZE_FORMAT
              " bytes)", frame->frame_number, gst_buffer_get_size (buffer),
              GST_VIDEO_INFO_WIDTH (&self->in_info),
              GST_VIDEO_INFO_HEIGHT (&self->in_info),
              GST_VIDEO_INFO_NAME (&self->in_info),
              GST_VIDEO_INFO_SIZE (&self->in_info)), (NULL));
      return GST_FLOW_ERROR;
    }
    if (reason != GST_VLM_SAMPLE_SKIP)
      g_queue_push_tail (&requests, gst_vlm_request_new (rgb, width, height,
              stride, frame, 0, settings->prompt, &settings->params));
    while ((ask = g_queue_pop_head (&asked))) {
      g_queue_push_tail (&requests, gst_vlm_request_new (rgb, width, height,
              stride, frame, ask->request_id, ask->prompt,
              &settings->params));
      gst_vlm_ask_free (ask);
    }
    gst_buffer_unref (rgb);
  }

  ret = gst_vlm_describe_submit (self, &requests, settings, ready,
      &n_dropped);
  if (n_dropped > 0) {
    GST_DEBUG_OBJECT (self, "worker busy: dropped %u sampled frame(s) "
        "(leaky=%s, max-pending=%u)", n_dropped, settings->leaky ==
        GST_VLM_DESCRIBE_LEAKY_UPSTREAM ? "upstream" : "downstream",
        settings->max_pending);
    gst_vlm_describe_post_qos (self, frame);
  }
  return ret;
}

/* Stamps the described requests in @ready at the video position @pts and
 * emits each caption: text on text_src, message, signal, and the meta on
 * @video if there is one. Returns @video, made writable if it got metas. */
static GstBuffer *
gst_vlm_describe_emit (GstVlmDescribe * self, GQueue * ready,
    GstBuffer * video, GstClockTime pts, GstClockTime running_time,
    GstClockTime span)
{
  const VlmModelInfo *info = vlm_model_get_info (self->model);
  GstVlmRequest *request;

  while ((request = g_queue_pop_head (ready))) {
    GstStructure *s;

    gst_vlm_text_stream_place (&self->text, request->result->text, pts, span);
    s = gst_vlm_describe_caption_structure_new (request, info, pts,
        running_time, span);
    if (video) {
      video = gst_buffer_make_writable (video);
      gst_vlm_caption_meta_add (video, s);
    }

    GST_DEBUG_OBJECT (self, "caption for frame %" G_GUINT64_FORMAT " at %"
        GST_TIME_FORMAT ", out at %" GST_TIME_FORMAT " (latency %.1f ms, %u "
        "tokens, %s): %s", request->frame.frame_number,
        GST_TIME_ARGS (request->frame.pts), GST_TIME_ARGS (pts),
        gst_vlm_request_latency_ms (request),
        request->result->stats.n_tokens_generated,
        vlm_finish_reason_to_string (request->result->finish_reason),
        request->result->text);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), gst_structure_copy (s)));
    g_signal_emit (self, gst_vlm_describe_signals[SIGNAL_CAPTION], 0, s);
    gst_structure_free (s);
    gst_vlm_request_free (request);
  }
  return video;
}

static void
gst_vlm_describe_frame_times (GstVlmDescribe * self, GstBuffer * buffer,
    GstVlmFrameTimes * frame)
{
  frame->pts = GST_BUFFER_PTS (buffer);
  frame->duration = GST_BUFFER_DURATION (buffer);
  if (!GST_CLOCK_TIME_IS_VALID (frame->duration)
      && GST_VIDEO_INFO_FPS_N (&self->in_info) > 0)
    frame->duration = gst_util_uint64_scale_int (GST_SECOND,
        GST_VIDEO_INFO_FPS_D (&self->in_info),
        GST_VIDEO_INFO_FPS_N (&self->in_info));
  frame->running_time = gst_segment_to_running_time (&self->segment,
      GST_FORMAT_TIME, frame->pts);
  frame->stream_time = gst_segment_to_stream_time (&self->segment,
      GST_FORMAT_TIME, frame->pts);
  frame->frame_number = self->n_frames++;
}

static GstClockTime
gst_vlm_describe_span (GstVlmDescribe * self, GstClockTime interval,
    GstClockTime frame_duration)
{
  return gst_vlm_sampling_span (interval,
      GST_VIDEO_INFO_FPS_N (&self->in_info),
      GST_VIDEO_INFO_FPS_D (&self->in_info), frame_duration);
}

static GstFlowReturn
gst_vlm_describe_sink_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buffer)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (parent);
  GstVlmDescribeSettings settings;
  GstVlmFrameTimes frame;
  GQueue ready = G_QUEUE_INIT;
  GstFlowReturn ret, text_ret;

  if (!self->converter) {
    gst_buffer_unref (buffer);
    return GST_FLOW_NOT_NEGOTIATED;
  }

  gst_vlm_describe_read_settings (self, &settings);
  gst_vlm_describe_frame_times (self, buffer, &frame);

  ret = gst_vlm_describe_handle_frame (self, buffer, &frame, &settings,
      &ready);
  g_free (settings.prompt);
  if (ret != GST_FLOW_OK) {
    g_queue_clear_full (&ready, (GDestroyNotify) gst_vlm_request_free);
    gst_buffer_unref (buffer);
    return ret;
  }

  buffer = gst_vlm_describe_emit (self, &ready, buffer, frame.pts,
      frame.running_time, gst_vlm_describe_span (self, settings.interval,
          frame.duration));
  text_ret = gst_vlm_text_stream_advance (&self->text, frame.pts,
      frame.duration);
  if (GST_CLOCK_TIME_IS_VALID (frame.pts))
    self->video_end = GST_CLOCK_TIME_IS_VALID (frame.duration) ?
        frame.pts + frame.duration : frame.pts;

  ret = gst_pad_push (self->srcpad, buffer);
  gst_flow_combiner_update_pad_flow (self->flow_combiner, self->text_srcpad,
      text_ret);
  return gst_flow_combiner_update_pad_flow (self->flow_combiner, self->srcpad,
      ret);
}

/* EOS: finish the pending captions (within drain-timeout), stamp them at
 * the end of the video, then EOS on both source pads. */
static gboolean
gst_vlm_describe_drain (GstVlmDescribe * self, GstEvent * event)
{
  GQueue ready = G_QUEUE_INIT;
  GstClockTime timeout, interval, end_running_time;
  GstStructure *stats;
  guint n_dropped;

  GST_OBJECT_LOCK (self);
  timeout = self->drain_timeout;
  interval = self->interval;
  GST_OBJECT_UNLOCK (self);

  GST_VLM_DESCRIBE_LOCK (self);
  n_dropped = gst_vlm_describe_wait_drained (self, timeout);
  gst_vlm_describe_take_ready (self, &ready);
  GST_VLM_DESCRIBE_UNLOCK (self);

  if (n_dropped > 0)
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("Captions were still pending at the end of the stream: %u dropped "
            "and the running one stopped (raise drain-timeout to wait for "
            "them)", n_dropped),
        ("drain-timeout expired: stopped the running caption, dropped %u "
            "waiting request(s)", n_dropped));

  end_running_time = gst_segment_to_running_time (&self->segment,
      GST_FORMAT_TIME, self->video_end);
  gst_vlm_describe_emit (self, &ready, NULL, self->video_end,
      end_running_time, gst_vlm_describe_span (self, interval,
          GST_CLOCK_TIME_NONE));
  gst_vlm_text_stream_finish (&self->text, self->video_end);

  stats = gst_vlm_describe_stats_new (self);
  GST_INFO_OBJECT (self, "end of stream: %" GST_PTR_FORMAT, stats);
  gst_structure_free (stats);

  gst_pad_push_event (self->text_srcpad, gst_event_ref (event));
  return gst_pad_push_event (self->srcpad, event);
}

/* Forget the timeline: the next frame is sampled as the first one. */
static void
gst_vlm_describe_reset_timeline (GstVlmDescribe * self)
{
  self->last_sampled_running_time = GST_CLOCK_TIME_NONE;
  self->have_thumbnail = FALSE;
  self->video_end = GST_CLOCK_TIME_NONE;
  gst_vlm_text_stream_clear (&self->text);
  gst_flow_combiner_reset (self->flow_combiner);
}

/* Call with lock. At a flush or a stop: what waits for the worker or for
 * the next video buffer is cancelled. */
static void
gst_vlm_describe_clear_requests_locked (GstVlmDescribe * self)
{
  self->cancelled += g_queue_get_length (&self->requests) +
      g_queue_get_length (&self->ready);
  g_queue_clear_full (&self->requests, (GDestroyNotify) gst_vlm_request_free);
  g_queue_clear_full (&self->ready, (GDestroyNotify) gst_vlm_request_free);
}

static void
gst_vlm_describe_flush_stop (GstVlmDescribe * self)
{
  GST_VLM_DESCRIBE_LOCK (self);
  gst_vlm_describe_clear_requests_locked (self);
  self->flushing = FALSE;
  GST_VLM_DESCRIBE_UNLOCK (self);

  gst_vlm_describe_reset_timeline (self);
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  gst_pad_start_task (self->text_srcpad, gst_vlm_describe_worker_loop, self,
      NULL);
}

static gboolean
gst_vlm_describe_set_caps (GstVlmDescribe * self, GstCaps * caps)
{
  GstVideoInfo info;

  if (!gst_video_info_from_caps (&info, caps))
    return FALSE;

  if (self->converter)
    gst_video_converter_free (self->converter);
  gst_video_info_set_interlaced_format (&self->rgb_info,
      GST_VIDEO_FORMAT_RGB, GST_VIDEO_INFO_INTERLACE_MODE (&info),
      GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info));
  /* the converter only changes the format */
  GST_VIDEO_INFO_FPS_N (&self->rgb_info) = GST_VIDEO_INFO_FPS_N (&info);
  GST_VIDEO_INFO_FPS_D (&self->rgb_info) = GST_VIDEO_INFO_FPS_D (&info);
  GST_VIDEO_INFO_PAR_N (&self->rgb_info) = GST_VIDEO_INFO_PAR_N (&info);
  GST_VIDEO_INFO_PAR_D (&self->rgb_info) = GST_VIDEO_INFO_PAR_D (&info);
  self->converter = gst_video_converter_new (&info, &self->rgb_info, NULL);
  self->in_info = info;
  return self->converter != NULL;
}

static void
gst_vlm_describe_start_text_stream (GstVlmDescribe * self, GstEvent * event)
{
  const gchar *upstream_id = NULL;
  gchar *stream_id;
  GstEvent *start;
  guint group_id;

  gst_event_parse_stream_start (event, &upstream_id);
  stream_id = g_strconcat (upstream_id ? upstream_id : "", "/vlm-text", NULL);
  start = gst_event_new_stream_start (stream_id);
  g_free (stream_id);
  if (gst_event_parse_group_id (event, &group_id))
    gst_event_set_group_id (start, group_id);
  gst_event_set_stream_flags (start, GST_STREAM_FLAG_SPARSE);

  gst_pad_push_event (self->text_srcpad, start);
  gst_pad_push_event (self->text_srcpad,
      gst_event_new_caps (gst_static_pad_template_get_caps
          (&text_src_template)));
}

static gboolean
gst_vlm_describe_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (parent);
  GstClockTime pts, duration;
  GstCaps *caps;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      gst_vlm_describe_start_text_stream (self, event);
      break;
    case GST_EVENT_CAPS:
      gst_event_parse_caps (event, &caps);
      if (!gst_vlm_describe_set_caps (self, caps)) {
        gst_event_unref (event);
        return FALSE;
      }
      break;
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->segment);
      if (self->segment.format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
            ("segment format %s, expected time",
                gst_format_get_name (self->segment.format)));
        gst_event_unref (event);
        return FALSE;
      }
      /* captions of the previous segment end with it */
      gst_vlm_text_stream_finish (&self->text, self->video_end);
      self->video_end = GST_CLOCK_TIME_NONE;
      gst_pad_push_event (self->text_srcpad, gst_event_ref (event));
      break;
    case GST_EVENT_GAP:
      gst_event_parse_gap (event, &pts, &duration);
      gst_vlm_text_stream_advance (&self->text, pts, duration);
      break;
    case GST_EVENT_EOS:
      return gst_vlm_describe_drain (self, event);
    case GST_EVENT_FLUSH_START:
      gst_vlm_describe_flush_start (self);
      gst_pad_push_event (self->text_srcpad, gst_event_ref (event));
      gst_pad_push_event (self->srcpad, event);
      gst_pad_pause_task (self->text_srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_vlm_describe_flush_stop (self);
      gst_pad_push_event (self->text_srcpad, gst_event_ref (event));
      break;
    default:
      break;
  }
  return gst_pad_push_event (self->srcpad, event);
}

/* A pipeline sends its seek to every sink, so one seek (one seqnum) comes
 * up both src and text_src: the first goes upstream, the second gets its
 * result (as demuxers do), so that the seek succeeds once, whichever
 * branches are linked. */
static gboolean
gst_vlm_describe_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (parent);
  guint32 seqnum = gst_event_get_seqnum (event);
  gboolean res;

  if (GST_EVENT_TYPE (event) != GST_EVENT_SEEK)
    return gst_pad_event_default (pad, parent, event);

  GST_OBJECT_LOCK (self);
  if (seqnum == self->seek_seqnum) {
    res = self->seek_result;
    GST_OBJECT_UNLOCK (self);
    GST_DEBUG_OBJECT (pad, "seek %u already sent upstream", seqnum);
    gst_event_unref (event);
    return res;
  }
  GST_OBJECT_UNLOCK (self);

  res = gst_pad_push_event (self->sinkpad, event);
  GST_OBJECT_LOCK (self);
  self->seek_seqnum = seqnum;
  self->seek_result = res;
  GST_OBJECT_UNLOCK (self);
  return res;
}

static GstIterator *
gst_vlm_describe_iterate_internal_links (GstPad * pad, GstObject * parent)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (parent);
  GValue value = G_VALUE_INIT;
  GstIterator *it;

  /* video passes sink <-> src; text_src's queries go upstream */
  g_value_init (&value, GST_TYPE_PAD);
  g_value_set_object (&value, pad == self->sinkpad ? self->srcpad :
      self->sinkpad);
  it = gst_iterator_new_single (GST_TYPE_PAD, &value);
  g_value_unset (&value);
  return it;
}

/* ------------------------------------------------------------------------ */
/* Application thread                                                       */

static guint64
gst_vlm_describe_describe (GstVlmDescribe * self, const gchar * prompt)
{
  GstVlmAsk *ask = g_new0 (GstVlmAsk, 1);
  guint64 request_id;

  ask->prompt = g_strdup (prompt);
  GST_VLM_DESCRIBE_LOCK (self);
  request_id = ask->request_id = ++self->next_request_id;
  g_queue_push_tail (&self->asked, ask);
  GST_VLM_DESCRIBE_UNLOCK (self);

  GST_DEBUG_OBJECT (self, "request %" G_GUINT64_FORMAT ": '%s' about the "
      "next frame", request_id, GST_STR_NULL (prompt));
  return request_id;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static gboolean
gst_vlm_describe_load_model (GstVlmDescribe * self)
{
  g_autoptr (GError) error = NULL;
  gchar *location;
  VlmModel *model, *old;
  const VlmModelInfo *info;
  GstVlmDescribeWeights weights;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->model_location);
  weights = self->weights;
  if (self->model && g_strcmp0 (location, self->model_loaded_location) == 0
      && weights == self->model_loaded_weights) {
    GST_OBJECT_UNLOCK (self);
    g_free (location);
    return TRUE;
  }
  GST_OBJECT_UNLOCK (self);

  if (!location) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No model set: set the "
            "model property to a checkpoint directory or a Hugging Face "
            "repo id"), (NULL));
    return FALSE;
  }

  model = gst_vlm_model_cache_acquire (location, (VlmWeightFormat) weights,
      &error);
  if (!model) {
    /* one line for gst-launch: the engine's message names what is missing
     * or wrong; for a missing model, say what to do */
    const gchar *what_to_do =
        g_strcmp0 (location, gst_vlm_describe_default_model ()) == 0 ?
        "the default model is not installed: install it with meson install, "
        "or set the model property to a checkpoint directory or a Hugging "
        "Face repo id" : "the model property takes a checkpoint directory or "
        "a Hugging Face repo id in the local cache";

    if (g_error_matches (error, VLM_ERROR, VLM_ERROR_NOT_FOUND))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Could not load model '%s': %s (%s)", location, error->message,
              what_to_do), ("%s", error->message));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not load model '%s': %s", location, error->message),
          ("%s", error->message));
    g_free (location);
    return FALSE;
  }

  info = vlm_model_get_info (model);
  GST_INFO_OBJECT (self, "using %s (%s, %s, default prompt '%s') from %s",
      info->variant, info->family, info->dtype, info->default_prompt,
      info->path);
  GST_OBJECT_LOCK (self);
  old = self->model;
  self->model = model;
  g_free (self->model_loaded_location);
  self->model_loaded_location = location;
  self->model_loaded_weights = weights;
  GST_OBJECT_UNLOCK (self);
  if (old)
    gst_vlm_model_cache_release (old);
  return TRUE;
}

static void
gst_vlm_describe_release_model (GstVlmDescribe * self)
{
  VlmModel *model;

  GST_OBJECT_LOCK (self);
  model = self->model;
  self->model = NULL;
  g_clear_pointer (&self->model_loaded_location, g_free);
  GST_OBJECT_UNLOCK (self);
  if (model)
    gst_vlm_model_cache_release (model);
}

static gboolean
gst_vlm_describe_start (GstVlmDescribe * self)
{
  g_autoptr (GError) error = NULL;
  VlmSession *session;
  guint threads;

  GST_OBJECT_LOCK (self);
  threads = self->threads;
  GST_OBJECT_UNLOCK (self);

  session = vlm_session_new (self->model, threads, &error);
  if (!session) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not start describing with the model"), ("%s",
            error->message));
    return FALSE;
  }

  GST_INFO_OBJECT (self, "describing on %u thread(s)", threads ? threads :
      g_get_num_processors ());
  GST_VLM_DESCRIBE_LOCK (self);
  self->session = session;
  self->frames_seen = self->frames_sampled = self->captions = 0;
  self->dropped = self->cancelled = self->errors = 0;
  self->latency_sum_ms = self->latency_max_ms = 0.0;
  GST_VLM_DESCRIBE_UNLOCK (self);

  self->n_frames = 0;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  gst_vlm_describe_reset_timeline (self);
  return TRUE;
}

/* After the pads are deactivated: the worker and the streaming thread are
 * stopped. */
static void
gst_vlm_describe_stop (GstVlmDescribe * self)
{
  VlmSession *session;

  GST_VLM_DESCRIBE_LOCK (self);
  gst_vlm_describe_clear_requests_locked (self);
  /* questions no frame came for: sampled and cancelled, like the rest */
  if (!g_queue_is_empty (&self->asked)) {
    guint n = g_queue_get_length (&self->asked);

    GST_INFO_OBJECT (self, "%u describe request(s) cancelled: no frame came "
        "after them", n);
    self->frames_sampled += n;
    self->cancelled += n;
    g_queue_clear_full (&self->asked, (GDestroyNotify) gst_vlm_ask_free);
  }
  session = self->session;
  self->session = NULL;
  GST_VLM_DESCRIBE_UNLOCK (self);

  if (session)
    vlm_session_free (session);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  gst_vlm_describe_reset_timeline (self);
}

static GstStateChangeReturn
gst_vlm_describe_change_state (GstElement * element,
    GstStateChange transition)
{
  GstVlmDescribe *self = GST_VLM_DESCRIBE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!gst_vlm_describe_load_model (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      /* the model may have changed while READY */
      if (!gst_vlm_describe_load_model (self)
          || !gst_vlm_describe_start (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* wake the streaming thread and stop the running caption */
      gst_vlm_describe_flush_start (self);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (ret == GST_STATE_CHANGE_FAILURE)
        gst_vlm_describe_stop (self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_vlm_describe_stop (self);
      break;
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (ret == GST_STATE_CHANGE_FAILURE)
        gst_vlm_describe_release_model (self);
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      gst_vlm_describe_release_model (self);
      break;
    default:
      break;
  }
  return ret;
}
