/* vlmdescribe element tests (GstHarness), on the tiny fixture checkpoint.
 *
 * The fixture has random weights: captions are garbage text, but real
 * engine output, deterministic, and a few ms per frame. Nothing here
 * asserts a timing; where a test needs the worker busy it blocks the
 * worker itself (a bus sync handler on a vlm-caption-partial message).
 */

#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#define MODEL_DIR VLM_TEST_DATA_DIR "/paligemma-tiny/pg-f32"
#define FRAME_DURATION (GST_SECOND / 30)
#define CAPS_30FPS(fmt) "video/x-raw,format=" fmt ",width=64,height=48," \
    "framerate=30/1"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

typedef struct
{
  GstElement *element;
  GstHarness *h;                /* sink -> src: video */
  GstHarness *th;               /* text_src */
  GstBus *bus;
} Fixture;

static GstElement *
describer_new (void)
{
  GstElement *e = gst_element_factory_make ("vlmdescribe", NULL);

  fail_unless (e != NULL, "vlmdescribe not found: check GST_PLUGIN_PATH");
  g_object_set (e, "model", MODEL_DIR, "threads", 1, NULL);
  return e;
}

/* Takes ownership of @element. */
static void
fixture_start (Fixture * f, GstElement * element, const gchar * caps)
{
  f->element = element;
  f->bus = gst_bus_new ();
  gst_element_set_bus (element, f->bus);
  f->h = gst_harness_new_with_element (element, "sink", "src");
  f->th = gst_harness_new_with_element (element, NULL, "text_src");
  gst_harness_set_src_caps_str (f->h, caps);
}

static void
fixture_stop (Fixture * f)
{
  gst_harness_teardown (f->th);
  gst_harness_teardown (f->h);
  gst_bus_set_flushing (f->bus, TRUE);
  gst_object_unref (f->bus);
  gst_object_unref (f->element);
}

static GstBuffer *
frame_new (const gchar * format, guint width, guint height, guint64 index,
    guint8 fill)
{
  GstVideoInfo info;
  GstBuffer *buffer;

  gst_video_info_set_format (&info, gst_video_format_from_string (format),
      width, height);
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (buffer, 0, fill, GST_VIDEO_INFO_SIZE (&info));
  GST_BUFFER_PTS (buffer) = gst_util_uint64_scale (index, GST_SECOND, 30);
  GST_BUFFER_DURATION (buffer) = FRAME_DURATION;
  return buffer;
}

/* An RGB frame whose content varies with @seed. */
static GstBuffer *
frame_new_pattern (guint64 index, guint seed)
{
  GstBuffer *buffer = frame_new ("RGB", 64, 48, index, 0);
  GstMapInfo map;
  gsize i;

  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  for (i = 0; i < map.size; i++)
    map.data[i] = (guint8) ((i * (seed + 3) + seed * 17) & 0xff);
  gst_buffer_unmap (buffer, &map);
  return buffer;
}

static GstFlowReturn
push_frames (Fixture * f, guint64 first, guint n)
{
  GstFlowReturn ret = GST_FLOW_OK;
  guint64 i;

  for (i = first; i < first + n && ret == GST_FLOW_OK; i++)
    ret = gst_harness_push (f->h, frame_new_pattern (i, (guint) i / 10));
  return ret;
}

/* Returns the structures of the element messages named @name, oldest
 * first, popping every message from the bus (other types are lost). */
static GPtrArray *
pop_messages (GstBus * bus, const gchar * name)
{
  GPtrArray *out =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    if (gst_message_has_name (msg, name))
      g_ptr_array_add (out,
          gst_structure_copy (gst_message_get_structure (msg)));
    gst_message_unref (msg);
  }
  return out;
}

static guint64
get_u64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v),
      "no guint64 field %s in %" GST_PTR_FORMAT, field, s);
  return v;
}

static guint64
stat_u64 (GstElement * e, const gchar * field)
{
  GstStructure *stats;
  guint64 v;

  g_object_get (e, "stats", &stats, NULL);
  v = get_u64 (stats, field);
  gst_structure_free (stats);
  return v;
}

/* Waits until the worker has nothing left to describe. */
static void
wait_idle (GstElement * e)
{
  for (;;) {
    GstStructure *stats;
    guint pending = 1;

    g_object_get (e, "stats", &stats, NULL);
    gst_structure_get_uint (stats, "pending", &pending);
    gst_structure_free (stats);
    if (pending == 0)
      return;
    g_usleep (1000);
  }
}

/* The stats add up at every moment: frames-sampled = captions + dropped +
 * cancelled + errors + pending + ready. Returns the structure. */
static GstStructure *
stats_checked (GstElement * e)
{
  GstStructure *s;
  guint pending = 0, ready = 0;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (gst_structure_get_uint (s, "pending", &pending));
  fail_unless (gst_structure_get_uint (s, "ready", &ready));
  fail_unless_equals_uint64 (get_u64 (s, "frames-sampled"),
      get_u64 (s, "captions") + get_u64 (s, "dropped") +
      get_u64 (s, "cancelled") + get_u64 (s, "errors") + pending + ready);
  return s;
}

/* Checks that the stats add up and that nothing is left in flight. */
static void
assert_stats_settled (GstElement * e)
{
  GstStructure *s = stats_checked (e);
  guint pending = 1, ready = 1;

  gst_structure_get_uint (s, "pending", &pending);
  gst_structure_get_uint (s, "ready", &ready);
  fail_unless_equals_int (pending, 0);
  fail_unless_equals_int (ready, 0);
  gst_structure_free (s);
}

static guint
count_metas (GstBuffer * buffer)
{
  const GstMetaInfo *info = gst_meta_get_info ("VlmCaptionMeta");
  gpointer state = NULL;
  guint n = 0;

  fail_unless (info != NULL);
  while (gst_buffer_iterate_meta_filtered (buffer, &state, info->api))
    n++;
  return n;
}

static const GstStructure *
meta_structure (GstBuffer * buffer)
{
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buffer, "VlmCaptionMeta");

  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

static gboolean
field_in (GQuark field, const GValue * value, gpointer user_data)
{
  const GValue *other = gst_structure_id_get_value (user_data, field);

  return other && gst_value_compare (value, other) == GST_VALUE_EQUAL;
}

/* Same fields with the same values (names may differ). */
static gboolean
same_fields (const GstStructure * a, const GstStructure * b)
{
  return gst_structure_n_fields (a) == gst_structure_n_fields (b)
      && gst_structure_foreach (a, field_in, (gpointer) b);
}

/* Blocks the worker inside a generated token until released. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean blocked;
  gboolean released;
  Fixture *fixture;
} WorkerGate;

static GstBusSyncReply
gate_sync_handler (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  WorkerGate *gate = user_data;

  if (gst_message_has_name (msg, "vlm-caption-partial")) {
    g_mutex_lock (&gate->lock);
    gate->blocked = TRUE;
    g_cond_broadcast (&gate->cond);
    while (!gate->released)
      g_cond_wait (&gate->cond, &gate->lock);
    g_mutex_unlock (&gate->lock);
  }
  return GST_BUS_PASS;
}

static void
gate_init (WorkerGate * gate, Fixture * f)
{
  g_mutex_init (&gate->lock);
  g_cond_init (&gate->cond);
  gate->blocked = gate->released = FALSE;
  gate->fixture = f;
  g_object_set (f->element, "emit-partial", TRUE, NULL);
  gst_bus_set_sync_handler (f->bus, gate_sync_handler, gate, NULL);
}

static void
gate_wait_blocked (WorkerGate * gate)
{
  g_mutex_lock (&gate->lock);
  while (!gate->blocked)
    g_cond_wait (&gate->cond, &gate->lock);
  g_mutex_unlock (&gate->lock);
}

/* Lets the worker go on. */
static void
gate_open (WorkerGate * gate)
{
  g_mutex_lock (&gate->lock);
  gate->released = TRUE;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

/* Stops partial messages for later requests and lets the worker go on. */
static void
gate_release (WorkerGate * gate)
{
  g_object_set (gate->fixture->element, "emit-partial", FALSE, NULL);
  gate_open (gate);
}

static void
gate_clear (WorkerGate * gate)
{
  gst_bus_set_sync_handler (gate->fixture->bus, NULL, NULL, NULL);
  g_mutex_clear (&gate->lock);
  g_cond_clear (&gate->cond);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

/* Every tested format is accepted, described and passed through: the same
 * memory comes out, with the caps unchanged; framerate 0/1 (a still image)
 * works too. */
GST_START_TEST (test_caps_formats)
{
  static const gchar *formats[] = { "RGB", "BGR", "RGBA", "BGRx", "xRGB",
    "I420", "NV12", "YUY2", "GRAY8"
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    Fixture f;
    gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=96,"
        "height=54,framerate=0/1", formats[i]);
    GstBuffer *in = frame_new (formats[i], 96, 54, 0, 128);
    GstMemory *mem = gst_buffer_peek_memory (in, 0);
    GstBuffer *out;
    GstCaps *out_caps, *in_caps;
    GPtrArray *captions;
    const gchar *text;

    GST_INFO ("format %s", formats[i]);
    fixture_start (&f, describer_new (), caps);
    g_object_set (f.element, "leaky", 0, NULL);
    fail_unless_equals_int (gst_harness_push (f.h, in), GST_FLOW_OK);
    out = gst_harness_pull (f.h);
    fail_unless (gst_buffer_peek_memory (out, 0) == mem,
        "%s: the video was copied", formats[i]);
    out_caps = gst_pad_get_current_caps (f.h->sinkpad);
    in_caps = gst_caps_from_string (caps);
    fail_unless (gst_caps_is_equal (out_caps, in_caps));

    captions = pop_messages (f.bus, "vlm-caption");
    fail_unless_equals_int (captions->len, 1);
    text = gst_structure_get_string (g_ptr_array_index (captions, 0), "text");
    fail_unless (text != NULL && *text != '\0', "%s: empty caption",
        formats[i]);

    g_ptr_array_unref (captions);
    gst_caps_unref (in_caps);
    gst_caps_unref (out_caps);
    gst_buffer_unref (out);
    fixture_stop (&f);
    g_free (caps);
  }
}

GST_END_TEST;

/* leaky=no: 90 frames at 30/1 with interval 1 s give exactly three
 * captions, for frames 0, 30 and 60; each is a text buffer starting at the
 * frame and lasting until the next sampled frame, with no GAP, and the meta
 * sits on the described frame itself. */
GST_START_TEST (test_interval_frame_accurate)
{
  Fixture f;
  GPtrArray *captions;
  guint i, n_text = 0;
  GstEvent *event;
  GstBuffer *text;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "interval", GST_SECOND, NULL);

  for (i = 0; i < 90; i++) {
    GstBuffer *out;

    fail_unless_equals_int (push_frames (&f, i, 1), GST_FLOW_OK);
    out = gst_harness_pull (f.h);
    fail_unless_equals_int (count_metas (out), i % 30 == 0 ? 1 : 0);
    if (i % 30 == 0)
      fail_unless_equals_uint64 (get_u64 (meta_structure (out),
              "frame-number"), i);
    gst_buffer_unref (out);
  }

  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 3);
  for (i = 0; i < 3; i++) {
    const GstStructure *s = g_ptr_array_index (captions, i);

    fail_unless_equals_uint64 (get_u64 (s, "frame-number"), i * 30);
    fail_unless_equals_uint64 (get_u64 (s, "pts"), i * GST_SECOND);
    fail_unless_equals_uint64 (get_u64 (s, "ready-pts"), i * GST_SECOND);
    fail_unless_equals_uint64 (get_u64 (s, "duration"), GST_SECOND);
  }

  while ((event = gst_harness_try_pull_event (f.th))) {
    fail_if (GST_EVENT_TYPE (event) == GST_EVENT_GAP,
        "frame-accurate captions cover every frame, no GAP expected");
    gst_event_unref (event);
  }
  while ((text = gst_harness_try_pull (f.th))) {
    const gchar *expected = gst_structure_get_string (g_ptr_array_index
        (captions, n_text), "text");

    fail_unless_equals_uint64 (GST_BUFFER_PTS (text), n_text * GST_SECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (text), GST_SECOND);
    fail_unless_equals_int (gst_buffer_get_size (text), strlen (expected));
    fail_unless (gst_buffer_memcmp (text, 0, expected, strlen (expected)) ==
        0);
    gst_buffer_unref (text);
    n_text++;
  }
  fail_unless_equals_int (n_text, 3);

  fail_unless_equals_uint64 (stat_u64 (f.element, "frames-seen"), 90);
  fail_unless_equals_uint64 (stat_u64 (f.element, "frames-sampled"), 3);
  fail_unless_equals_uint64 (stat_u64 (f.element, "captions"), 3);
  fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 0);

  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* scene-threshold samples the cut from dark to white at once, whatever the
 * interval, and ignores a slow drift; without it only the first frame is
 * sampled. */
GST_START_TEST (test_scene_cut)
{
  static const gdouble thresholds[] = { 0.3, 0.0 };
  guint t;

  for (t = 0; t < G_N_ELEMENTS (thresholds); t++) {
    Fixture f;
    GPtrArray *captions;
    guint i;

    fixture_start (&f, describer_new (), CAPS_30FPS ("GRAY8"));
    g_object_set (f.element, "leaky", 0, "interval", 100 * GST_SECOND,
        "scene-threshold", thresholds[t], "max-new-tokens", 4, NULL);
    for (i = 0; i < 40; i++) {
      guint8 level = i < 20 ? 20 + i : 250;

      fail_unless_equals_int (gst_harness_push (f.h, frame_new ("GRAY8", 64,
                  48, i, level)), GST_FLOW_OK);
    }
    captions = pop_messages (f.bus, "vlm-caption");
    if (thresholds[t] > 0.0) {
      fail_unless_equals_int (captions->len, 2);
      fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 1),
              "frame-number"), 20);
    } else {
      fail_unless_equals_int (captions->len, 1);
    }
    fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
            "frame-number"), 0);
    g_ptr_array_unref (captions);
    fixture_stop (&f);
  }
}

GST_END_TEST;

static void
on_caption (GstElement * e, const GstStructure * s, gpointer user_data)
{
  g_ptr_array_add (user_data, gst_structure_copy (s));
}

/* The message carries every documented field with its type; the signal and
 * the meta carry exactly the same fields and values. */
GST_START_TEST (test_caption_fields)
{
  Fixture f;
  GPtrArray *captions, *signalled =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  const GstStructure *s;
  GstStructure *info;
  GstBuffer *out;
  guint tokens_image, tokens_prompt, tokens_generated;
  gdouble latency, vision, prefill, decode, preprocess;
  const gchar *reason, *path;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "max-new-tokens", 5, NULL);
  g_signal_connect (f.element, "caption", G_CALLBACK (on_caption), signalled);
  fail_unless_equals_int (gst_harness_push (f.h, frame_new_pattern (0, 1)),
      GST_FLOW_OK);
  out = gst_harness_pull (f.h);

  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 1);
  s = g_ptr_array_index (captions, 0);

  g_object_get (f.element, "model-info", &info, NULL);
  path = gst_structure_get_string (info, "path");
  fail_unless (g_str_has_suffix (path, "paligemma-tiny/pg-f32"));
  fail_unless_equals_string (gst_structure_get_string (s, "model"), path);
  fail_unless_equals_string (gst_structure_get_string (s, "prompt"),
      gst_structure_get_string (info, "default-prompt"));
  fail_unless (gst_structure_get_string (s, "text") != NULL);

  fail_unless_equals_uint64 (get_u64 (s, "pts"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "running-time"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "stream-time"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "duration"), GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "frame-number"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "request-id"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "ready-pts"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "ready-running-time"), 0);

  reason = gst_structure_get_string (s, "finish-reason");
  fail_unless (reason != NULL);
  fail_unless (g_str_equal (reason, "eos") || g_str_equal (reason, "length"));

  fail_unless (gst_structure_get_uint (s, "tokens-image", &tokens_image));
  fail_unless (gst_structure_get_uint (s, "tokens-prompt", &tokens_prompt));
  fail_unless (gst_structure_get_uint (s, "tokens-generated",
          &tokens_generated));
  fail_unless_equals_int (tokens_image, 16);
  /* <bos> "caption en" "\n" */
  fail_unless (tokens_prompt >= 3);
  fail_unless (tokens_generated >= 1 && tokens_generated <= 5);
  if (g_str_equal (reason, "length"))
    fail_unless_equals_int (tokens_generated, 5);

  fail_unless (gst_structure_get_double (s, "latency-ms", &latency));
  fail_unless (gst_structure_get_double (s, "preprocess-ms", &preprocess));
  fail_unless (gst_structure_get_double (s, "vision-ms", &vision));
  fail_unless (gst_structure_get_double (s, "prefill-ms", &prefill));
  fail_unless (gst_structure_get_double (s, "decode-ms", &decode));
  fail_unless (vision > 0.0 && prefill > 0.0 && decode >= 0.0);
  fail_unless (latency >= preprocess + vision + prefill);

  fail_unless_equals_int (signalled->len, 1);
  fail_unless (gst_structure_is_equal (s, g_ptr_array_index (signalled, 0)));
  fail_unless (meta_structure (out) != NULL);
  fail_unless (same_fields (s, meta_structure (out)));

  gst_structure_free (info);
  gst_buffer_unref (out);
  g_ptr_array_unref (signalled);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* model-info describes the loaded checkpoint. */
GST_START_TEST (test_model_info)
{
  GstElement *e = describer_new ();
  GstStructure *info;
  guint width = 0, tokens = 0;
  guint64 params = 0;

  g_object_get (e, "model-info", &info, NULL);
  fail_unless (info == NULL, "no model before READY");

  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
      GST_STATE_CHANGE_SUCCESS);
  g_object_get (e, "model-info", &info, NULL);
  fail_unless (info != NULL);
  fail_unless_equals_string (gst_structure_get_string (info, "family"),
      "paligemma");
  fail_unless_equals_string (gst_structure_get_string (info, "capabilities"),
      "text,vision-understanding");
  fail_unless_equals_string (gst_structure_get_string (info, "dtype"), "F32");
  fail_unless (gst_structure_get_uint (info, "image-width", &width));
  fail_unless (gst_structure_get_uint (info, "image-tokens", &tokens));
  fail_unless (gst_structure_get_uint64 (info, "params", &params));
  fail_unless_equals_int (width, 64);
  fail_unless_equals_int (tokens, 16);
  fail_unless (params > 0);

  gst_structure_free (info);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

GST_END_TEST;

/* A Hugging Face repo id is looked up in the local hub cache
 * (HF_HUB_CACHE); it names the same canonical checkpoint as its directory,
 * so both elements share one model. */
GST_START_TEST (test_repo_id)
{
  gchar *hub = g_dir_make_tmp ("vlm-hub-XXXXXX", NULL);
  gchar *snapshots = g_build_filename (hub, "models--vlm--tiny", "snapshots",
      NULL);
  gchar *snapshot = g_build_filename (snapshots, "r1", NULL);
  GstElement *by_id = describer_new (), *by_dir = describer_new ();
  GstStructure *info_id, *info_dir;

  fail_unless (g_mkdir_with_parents (snapshots, 0755) == 0);
  fail_unless (symlink (MODEL_DIR, snapshot) == 0);
  g_setenv ("HF_HUB_CACHE", hub, TRUE);

  g_object_set (by_id, "model", "vlm/tiny", NULL);
  fail_unless_equals_int (gst_element_set_state (by_id, GST_STATE_READY),
      GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (gst_element_set_state (by_dir, GST_STATE_READY),
      GST_STATE_CHANGE_SUCCESS);
  g_object_get (by_id, "model-info", &info_id, NULL);
  g_object_get (by_dir, "model-info", &info_dir, NULL);
  fail_unless_equals_string (gst_structure_get_string (info_id, "path"),
      gst_structure_get_string (info_dir, "path"));

  gst_structure_free (info_id);
  gst_structure_free (info_dir);
  gst_element_set_state (by_id, GST_STATE_NULL);
  gst_element_set_state (by_dir, GST_STATE_NULL);
  gst_object_unref (by_id);
  gst_object_unref (by_dir);
  g_unsetenv ("HF_HUB_CACHE");
  g_unlink (snapshot);
  g_rmdir (snapshots);
  g_free (snapshots);
  snapshots = g_build_filename (hub, "models--vlm--tiny", NULL);
  g_rmdir (snapshots);
  g_rmdir (hub);
  g_free (snapshots);
  g_free (snapshot);
  g_free (hub);
}

GST_END_TEST;

/* Live mode: a caption is stamped with the next video buffer that leaves
 * after it is ready, which carries the meta; the frame before it gets a GAP
 * on text_src, the frames the caption covers get none. */
GST_START_TEST (test_live_stamping)
{
  Fixture f;
  GstBuffer *out, *text;
  GstEvent *event;
  GPtrArray *captions;
  const GstStructure *s;
  guint n_gaps = 0;
  GstClockTime gap_ts = GST_CLOCK_TIME_NONE, gap_dur = GST_CLOCK_TIME_NONE;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "interval", 10 * GST_SECOND, NULL);

  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
  out = gst_harness_pull (f.h);
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);

  wait_idle (f.element);
  fail_unless_equals_int (push_frames (&f, 1, 2), GST_FLOW_OK);
  out = gst_harness_pull (f.h);
  fail_unless_equals_int (count_metas (out), 1);
  fail_unless_equals_uint64 (get_u64 (meta_structure (out), "frame-number"),
      0);
  gst_buffer_unref (out);
  out = gst_harness_pull (f.h);
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);

  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 1);
  s = g_ptr_array_index (captions, 0);
  fail_unless_equals_uint64 (get_u64 (s, "pts"), 0);
  fail_unless_equals_uint64 (get_u64 (s, "ready-pts"), FRAME_DURATION);

  while ((event = gst_harness_try_pull_event (f.th))) {
    if (GST_EVENT_TYPE (event) == GST_EVENT_GAP) {
      gst_event_parse_gap (event, &gap_ts, &gap_dur);
      n_gaps++;
    }
    gst_event_unref (event);
  }
  fail_unless_equals_int (n_gaps, 1);
  fail_unless_equals_uint64 (gap_ts, 0);
  fail_unless_equals_uint64 (gap_dur, FRAME_DURATION);

  text = gst_harness_pull (f.th);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (text), FRAME_DURATION);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (text), 10 * GST_SECOND);
  fail_unless (gst_harness_try_pull (f.th) == NULL);

  gst_buffer_unref (text);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* EOS waits for every pending caption and posts them before EOS goes
 * downstream, on both source pads. */
GST_START_TEST (test_eos_drain)
{
  Fixture f;
  GPtrArray *captions;
  GstEvent *event;
  gboolean text_eos = FALSE;
  guint i;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "max-pending", 100, "interval",
      (guint64) 0, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 12), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));

  /* EOS has left on src: every caption is already on the bus */
  for (;;) {
    event = gst_harness_pull_event (f.h);
    if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
      gst_event_unref (event);
      break;
    }
    gst_event_unref (event);
  }
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 12);
  assert_stats_settled (f.element);
  for (i = 0; i < 12; i++)
    fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, i),
            "frame-number"), i);
  fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 0);

  while ((event = gst_harness_try_pull_event (f.th))) {
    text_eos |= GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    gst_event_unref (event);
  }
  fail_unless (text_eos, "EOS on text_src");

  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

static gpointer
release_after_drops (gpointer data)
{
  WorkerGate *gate = data;

  while (stat_u64 (gate->fixture->element, "dropped") < 4)
    g_usleep (1000);
  gate_release (gate);
  return NULL;
}

/* drain-timeout=0: EOS stops the running caption (finish-reason
 * "cancelled"), drops and counts the waiting ones, and warns. */
GST_START_TEST (test_eos_drain_timeout)
{
  Fixture f;
  WorkerGate gate;
  GPtrArray *captions;
  GstMessage *warning;
  GThread *release;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "max-pending", 100, "interval",
      (guint64) 0, "drain-timeout", (guint64) 0, NULL);
  gate_init (&gate, &f);
  fail_unless_equals_int (push_frames (&f, 0, 5), GST_FLOW_OK);
  gate_wait_blocked (&gate);

  /* EOS times out at once: it drops the 4 waiting, cancels the running
   * one and waits for it to stop, which it does once the gate opens */
  release = g_thread_new ("release", release_after_drops, &gate);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));
  g_thread_join (release);
  gate_clear (&gate);

  /* the warning is posted before the caption (popping it discards the
   * partial message before it) */
  warning = gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING);
  fail_unless (warning != NULL);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 1);
  fail_unless_equals_string (gst_structure_get_string (g_ptr_array_index
          (captions, 0), "finish-reason"), "cancelled");
  fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
          "frame-number"), 0);
  fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 4);
  assert_stats_settled (f.element);

  gst_message_unref (warning);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

static gpointer
open_when_flushing (gpointer data)
{
  WorkerGate *gate = data;
  GstPad *src = gst_element_get_static_pad (gate->fixture->element, "src");

  /* the element forwards FLUSH_START on src after cancelling */
  while (!GST_PAD_IS_FLUSHING (src))
    g_usleep (1000);
  gst_object_unref (src);
  gate_open (gate);
  return NULL;
}

/* FLUSH_START stops the running caption before its next token (one token
 * out of up to 4096 is generated), and no caption of a frame from before
 * the flush comes out; the first frame after the flush is sampled and
 * described. */
GST_START_TEST (test_flush)
{
  Fixture f;
  WorkerGate gate;
  GPtrArray *captions, *partials;
  GThread *opener;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "max-new-tokens", 4096,
      "interval", 100 * GST_SECOND, NULL);
  gate_init (&gate, &f);
  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
  /* the worker is inside token 1, emit-partial still on */
  gate_wait_blocked (&gate);

  /* FLUSH_START returns once the worker has stopped */
  opener = g_thread_new ("opener", open_when_flushing, &gate);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_start ()));
  g_thread_join (opener);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_stop (TRUE)));
  gate_clear (&gate);

  partials = pop_messages (f.bus, "vlm-caption-partial");
  fail_unless_equals_int (partials->len, 1);
  g_ptr_array_unref (partials);
  fail_unless_equals_uint64 (stat_u64 (f.element, "captions"), 0);
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 1);
  assert_stats_settled (f.element);

  g_object_set (f.element, "emit-partial", FALSE, "max-new-tokens", 4,
      "leaky", 0, NULL);
  gst_harness_set_src_caps_str (f.h, CAPS_30FPS ("RGB"));
  fail_unless_equals_int (push_frames (&f, 1, 1), GST_FLOW_OK);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 1);
  fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
          "frame-number"), 1);

  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* Two captions ready at once (a sampled frame and a describe request on
 * the same frame, live mode): the second starts where the first ends, and
 * is not pushed before the video gets there (nor at all if the stream
 * ends first); both messages are delivered. */
GST_START_TEST (test_text_no_overlap)
{
  Fixture f;
  GPtrArray *captions;
  GstBuffer *text;
  guint64 id;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "interval", GST_SECOND,
      "max-new-tokens", 3, NULL);
  g_signal_emit_by_name (f.element, "describe", NULL, &id);
  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
  wait_idle (f.element);
  /* both are stamped at frame 1 */
  fail_unless_equals_int (push_frames (&f, 1, 1), GST_FLOW_OK);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 2);

  text = gst_harness_pull (f.th);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (text), FRAME_DURATION);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (text), GST_SECOND);
  gst_buffer_unref (text);
  fail_unless (gst_harness_try_pull (f.th) == NULL,
      "the second caption must wait for the video to reach its start");

  /* frames 2..30 stay before 1 s + 1 frame; frame 31 reaches it (frame
   * 30 is sampled again: wait for it, so its caption is stamped at 31) */
  fail_unless_equals_int (push_frames (&f, 2, 29), GST_FLOW_OK);
  fail_unless (gst_harness_try_pull (f.th) == NULL);
  wait_idle (f.element);
  fail_unless_equals_int (push_frames (&f, 31, 1), GST_FLOW_OK);
  text = gst_harness_pull (f.th);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (text), FRAME_DURATION +
      GST_SECOND);
  gst_buffer_unref (text);

  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* With the worker held busy on frame 0, frames 1..3 arrive:
 * leaky=upstream keeps frame 1 and drops 2 and 3; leaky=downstream keeps
 * the newest (3) and drops 1 and 2. Drops are counted and announced. */
GST_START_TEST (test_leaky_drops)
{
  static const struct
  {
    gint leaky;
    guint64 kept;
  } cases[] = { {1, 1}, {2, 3} };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    Fixture f;
    WorkerGate gate;
    GPtrArray *captions;
    GstMessage *qos;
    guint64 processed, dropped;
    GstFormat format;

    fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
    g_object_set (f.element, "leaky", cases[c].leaky, "interval",
        (guint64) 0, "max-new-tokens", 3, NULL);
    gate_init (&gate, &f);
    fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
    gate_wait_blocked (&gate);
    fail_unless_equals_int (push_frames (&f, 1, 3), GST_FLOW_OK);
    fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 2);
    gate_release (&gate);
    wait_idle (f.element);
    gate_clear (&gate);
    fail_unless_equals_int (push_frames (&f, 4, 1), GST_FLOW_OK);
    fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));

    /* QoS for the drop at frame 2, before any caption (popping it
     * discards the partial message before it) */
    qos = gst_bus_pop_filtered (f.bus, GST_MESSAGE_QOS);
    fail_unless (qos != NULL, "drops are announced with a QoS message");
    gst_message_parse_qos_stats (qos, &format, &processed, &dropped);
    fail_unless_equals_int (format, GST_FORMAT_BUFFERS);
    fail_unless_equals_uint64 (dropped, 1);
    gst_message_unref (qos);

    captions = pop_messages (f.bus, "vlm-caption");
    fail_unless_equals_int (captions->len, 3);
    fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
            "frame-number"), 0);
    fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 1),
            "frame-number"), cases[c].kept);
    fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 2),
            "frame-number"), 4);
    fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 2);
    assert_stats_settled (f.element);

    g_ptr_array_unref (captions);
    fixture_stop (&f);
  }
}

GST_END_TEST;

/* leaky=no never drops: every sampled frame is captioned. */
GST_START_TEST (test_leaky_no_keeps_all)
{
  Fixture f;
  GPtrArray *captions;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "interval", (guint64) 0,
      "max-new-tokens", 3, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 20), GST_FLOW_OK);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 20);
  fail_unless_equals_uint64 (stat_u64 (f.element, "dropped"), 0);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* The describe action asks a question about the next frame, once; its
 * caption carries the request id and the prompt. */
GST_START_TEST (test_describe_action)
{
  Fixture f;
  GPtrArray *captions;
  guint64 id = 0;
  const GstStructure *answer;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "interval", 100 * GST_SECOND,
      "max-new-tokens", 4, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 2), GST_FLOW_OK);
  g_signal_emit_by_name (f.element, "describe", "answer en what is this?",
      &id);
  fail_unless (id != 0);
  fail_unless_equals_int (push_frames (&f, 2, 3), GST_FLOW_OK);

  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 2);
  answer = g_ptr_array_index (captions, 1);
  fail_unless_equals_uint64 (get_u64 (answer, "request-id"), id);
  fail_unless_equals_uint64 (get_u64 (answer, "frame-number"), 2);
  fail_unless_equals_string (gst_structure_get_string (answer, "prompt"),
      "answer en what is this?");
  fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
          "request-id"), 0);

  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* emit-partial: one vlm-caption-partial per token, all before the caption;
 * the final text extends the last partial one (which holds back a partial
 * UTF-8 character). */
GST_START_TEST (test_emit_partial)
{
  Fixture f;
  GPtrArray *captions, *partials;
  GstMessage *msg;
  guint tokens = 0;
  const gchar *last;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "emit-partial", TRUE,
      "max-new-tokens", 6, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);

  captions =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  partials =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  while ((msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_ELEMENT))) {
    GPtrArray *to = gst_message_has_name (msg, "vlm-caption") ? captions :
        partials;

    fail_if (to == partials && captions->len > 0, "partial after caption");
    g_ptr_array_add (to, gst_structure_copy (gst_message_get_structure (msg)));
    gst_message_unref (msg);
  }
  fail_unless_equals_int (captions->len, 1);
  gst_structure_get_uint (g_ptr_array_index (captions, 0), "tokens-generated",
      &tokens);
  fail_unless_equals_int (partials->len, tokens);
  last = gst_structure_get_string (g_ptr_array_index (partials,
          partials->len - 1), "text");
  fail_unless (g_str_has_prefix (gst_structure_get_string (g_ptr_array_index
              (captions, 0), "text"), last));

  g_ptr_array_unref (partials);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* Returns the error message posted while going to READY with @model. */
static GstMessage *
load_error (const gchar * model)
{
  GstElement *e = gst_element_factory_make ("vlmdescribe", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;

  gst_element_set_bus (e, bus);
  g_object_set (e, "model", model, NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message for %s", model);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (e);
  return msg;
}

/* A missing model fails NULL->READY with a RESOURCE NOT_FOUND error naming
 * the path; a text-only checkpoint fails with the engine's reason. */
GST_START_TEST (test_bad_models)
{
  static const gchar *files[] = { "model.safetensors", "tokenizer.model",
    "preprocessor_config.json", "tokenizer_config.json",
    "special_tokens_map.json", "generation_config.json"
  };
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL, *dir, *config;
  guint i;

  msg = load_error ("/nonexistent/vlm-model");
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (g_error_matches (error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NOT_FOUND));
  fail_unless (strstr (error->message, "/nonexistent/vlm-model") != NULL);
  fail_unless (debug != NULL && *debug != '\0');
  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);

  dir = g_dir_make_tmp ("vlm-text-only-XXXXXX", NULL);
  for (i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *target = g_build_filename (MODEL_DIR, files[i], NULL);
    gchar *link = g_build_filename (dir, files[i], NULL);

    fail_unless (symlink (target, link) == 0);
    g_free (target);
    g_free (link);
  }
  config = g_build_filename (dir, "config.json", NULL);
  fail_unless (g_file_set_contents (config, "{\"model_type\": \"gemma\", "
          "\"hidden_size\": 64, \"vocab_size\": 1024}", -1, NULL));

  msg = load_error (dir);
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (error->domain == GST_RESOURCE_ERROR);
  fail_unless (strstr (error->message, dir) != NULL);
  fail_unless (strstr (debug, "cannot describe images") != NULL,
      "debug: %s", debug);
  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);

  for (i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *link = g_build_filename (dir, files[i], NULL);

    g_unlink (link);
    g_free (link);
  }
  g_unlink (config);
  g_rmdir (dir);
  g_free (config);
  g_free (dir);
}

GST_END_TEST;

/* 100 state cycles, the last ones with data flowing; under valgrind or
 * ASan this is the leak check of start and stop. */
GST_START_TEST (test_state_cycles)
{
  GstElement *e = describer_new ();
  guint i;

  for (i = 0; i < 95; i++) {
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PLAYING),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (e, i % 2 ? GST_STATE_NULL :
            GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  }
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);

  for (i = 0; i < 5; i++) {
    Fixture f;

    fixture_start (&f, describer_new (), CAPS_30FPS ("I420"));
    g_object_set (f.element, "max-pending", 3, "interval", (guint64) 0,
        NULL);
    fail_unless_equals_int (push_frames (&f, 0, 10), GST_FLOW_OK);
    fixture_stop (&f);
  }
}

GST_END_TEST;

/* Pushes frames from another thread (leaky=no blocks in the chain). */
typedef struct
{
  Fixture *fixture;
  guint64 first;
  guint n;
  GstFlowReturn ret;
} PushJob;

static gpointer
push_job_run (gpointer data)
{
  PushJob *job = data;

  job->ret = push_frames (job->fixture, job->first, job->n);
  return NULL;
}

/* Sends FLUSH_START while the worker is held in a token (it returns once
 * the worker has stopped), then FLUSH_STOP once @pusher (if any) has
 * left the chain, and sets the caps again. */
static void
flush_held_worker (Fixture * f, WorkerGate * gate, GThread * pusher)
{
  GThread *opener;

  gate_wait_blocked (gate);
  opener = g_thread_new ("opener", open_when_flushing, gate);
  fail_unless (gst_harness_push_event (f->h, gst_event_new_flush_start ()));
  g_thread_join (opener);
  if (pusher)
    g_thread_join (pusher);
  fail_unless (gst_harness_push_event (f->h, gst_event_new_flush_stop (TRUE)));
  gate_clear (gate);
  g_object_set (f->element, "emit-partial", FALSE, NULL);
  gst_harness_set_src_caps_str (f->h, CAPS_30FPS ("RGB"));
}

/* Frame numbers of the captions of sampled frames, in order, and checks
 * each comes once. */
static GArray *
sampled_frame_numbers (GPtrArray * captions)
{
  GArray *numbers = g_array_new (FALSE, FALSE, sizeof (guint64));
  guint i, k;

  for (i = 0; i < captions->len; i++) {
    const GstStructure *s = g_ptr_array_index (captions, i);
    guint64 n = get_u64 (s, "frame-number");

    if (get_u64 (s, "request-id") != 0)
      continue;
    for (k = 0; k < numbers->len; k++)
      fail_if (g_array_index (numbers, guint64, k) == n,
          "two captions for frame %" G_GUINT64_FORMAT, n);
    g_array_append_val (numbers, n);
  }
  return numbers;
}

/* leaky=no: every sampled frame gets exactly one caption, and every
 * describe request its answer, all delivered before EOS leaves; the stats
 * add up to the frames sampled. */
GST_START_TEST (test_nothing_lost_at_eos)
{
  Fixture f;
  GPtrArray *captions;
  GArray *numbers;
  guint64 ids[2];
  guint i;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "interval", (guint64) 0,
      "max-new-tokens", 3, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 5), GST_FLOW_OK);
  g_signal_emit_by_name (f.element, "describe", "answer en what?", &ids[0]);
  fail_unless_equals_int (push_frames (&f, 5, 7), GST_FLOW_OK);
  g_signal_emit_by_name (f.element, "describe", NULL, &ids[1]);
  fail_unless_equals_int (push_frames (&f, 12, 8), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));

  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 22);
  numbers = sampled_frame_numbers (captions);
  fail_unless_equals_int (numbers->len, 20);
  for (i = 0; i < numbers->len; i++)
    fail_unless_equals_uint64 (g_array_index (numbers, guint64, i), i);
  for (i = 0; i < 2; i++) {
    guint k, n_answers = 0;

    for (k = 0; k < captions->len; k++)
      n_answers += get_u64 (g_ptr_array_index (captions, k), "request-id") ==
          ids[i];
    fail_unless_equals_int (n_answers, 1);
  }
  fail_unless_equals_uint64 (stat_u64 (f.element, "frames-sampled"), 22);
  fail_unless_equals_uint64 (stat_u64 (f.element, "captions"), 22);
  assert_stats_settled (f.element);

  g_array_unref (numbers);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* leaky=no across a flush: the frame being described when FLUSH_START
 * arrives is cancelled (counted, its caption never delivered, then or
 * later), the streaming thread waiting for it returns FLUSHING, and every
 * other sampled frame, before and after, gets exactly one caption. */
GST_START_TEST (test_nothing_lost_across_flush)
{
  Fixture f;
  WorkerGate gate;
  PushJob job;
  GThread *pusher;
  GPtrArray *captions;
  GArray *numbers;
  guint i;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 0, "interval", (guint64) 0,
      "max-new-tokens", 3, NULL);
  fail_unless_equals_int (push_frames (&f, 0, 3), GST_FLOW_OK);

  /* frame 3: the worker is held inside its first token */
  gate_init (&gate, &f);
  job = (PushJob) { &f, 3, 1, GST_FLOW_OK };
  pusher = g_thread_new ("pusher", push_job_run, &job);
  flush_held_worker (&f, &gate, pusher);
  fail_unless_equals_int (job.ret, GST_FLOW_FLUSHING);
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 1);
  assert_stats_settled (f.element);

  fail_unless_equals_int (push_frames (&f, 4, 6), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_eos ()));

  captions = pop_messages (f.bus, "vlm-caption");
  numbers = sampled_frame_numbers (captions);
  fail_unless_equals_int (numbers->len, 9);
  for (i = 0; i < numbers->len; i++)
    fail_unless_equals_uint64 (g_array_index (numbers, guint64, i),
        i < 3 ? i : i + 1);
  fail_unless_equals_uint64 (stat_u64 (f.element, "frames-sampled"), 10);
  fail_unless_equals_uint64 (stat_u64 (f.element, "captions"), 9);
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 1);
  assert_stats_settled (f.element);

  g_array_unref (numbers);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* Live mode: a flush cancels the caption described but not yet stamped
 * (ready), the one being described and those waiting; none of them comes
 * out after the flush. A stop cancels what is ready too, and a describe
 * question no frame came for. The stats add up at each step. */
GST_START_TEST (test_flush_and_stop_cancel)
{
  Fixture f;
  WorkerGate gate;
  GstStructure *stats;
  GPtrArray *captions;
  guint ready = 0;
  guint64 id;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  g_object_set (f.element, "leaky", 2, "interval", (guint64) 0,
      "max-pending", 2, "max-new-tokens", 3, NULL);

  /* described, waiting for the next video buffer */
  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
  wait_idle (f.element);
  stats = stats_checked (f.element);
  fail_unless (gst_structure_get_uint (stats, "ready", &ready));
  fail_unless_equals_int (ready, 1);
  gst_structure_free (stats);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_stop (TRUE)));
  gst_harness_set_src_caps_str (f.h, CAPS_30FPS ("RGB"));
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 1);
  assert_stats_settled (f.element);

  /* one being described (frame 1), two waiting (2 and 3) */
  gate_init (&gate, &f);
  fail_unless_equals_int (push_frames (&f, 1, 1), GST_FLOW_OK);
  gate_wait_blocked (&gate);
  fail_unless_equals_int (push_frames (&f, 2, 2), GST_FLOW_OK);
  gst_structure_free (stats_checked (f.element));
  flush_held_worker (&f, &gate, NULL);
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 4);
  assert_stats_settled (f.element);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 0);
  g_ptr_array_unref (captions);

  /* after the flush: frame 4 is described and stamped on frame 5 */
  fail_unless_equals_int (push_frames (&f, 4, 1), GST_FLOW_OK);
  wait_idle (f.element);
  fail_unless_equals_int (push_frames (&f, 5, 1), GST_FLOW_OK);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 1);
  fail_unless_equals_uint64 (get_u64 (g_ptr_array_index (captions, 0),
          "frame-number"), 4);
  g_ptr_array_unref (captions);

  /* frame 5's caption is ready when the element stops, and a question
   * asked after it never gets a frame */
  wait_idle (f.element);
  g_signal_emit_by_name (f.element, "describe", "answer en what?", &id);
  fail_unless_equals_int (gst_element_set_state (f.element, GST_STATE_READY),
      GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_uint64 (stat_u64 (f.element, "frames-sampled"), 7);
  fail_unless_equals_uint64 (stat_u64 (f.element, "captions"), 1);
  fail_unless_equals_uint64 (stat_u64 (f.element, "cancelled"), 6);
  assert_stats_settled (f.element);
  captions = pop_messages (f.bus, "vlm-caption");
  fail_unless_equals_int (captions->len, 0);
  g_ptr_array_unref (captions);
  fixture_stop (&f);
}

GST_END_TEST;

/* A buffer too small for its caps is an error that says which frame and
 * what was wrong, counted in errors; the stats add up. */
GST_START_TEST (test_short_buffer)
{
  Fixture f;
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 100, NULL);
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  GST_BUFFER_PTS (buffer) = 0;
  fail_unless_equals_int (gst_harness_push (f.h, buffer), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (g_error_matches (error, GST_STREAM_ERROR,
          GST_STREAM_ERROR_FORMAT));
  fail_unless_equals_string (error->message, "Could not read video frame 0: "
      "a buffer of 100 bytes is no 64x48 RGB frame (9216 bytes)");
  fail_unless_equals_uint64 (stat_u64 (f.element, "errors"), 1);
  assert_stats_settled (f.element);

  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);
  fixture_stop (&f);
}

GST_END_TEST;

/* A pipeline sends its seek to the sinks of both branches: the element
 * sends it upstream once and answers TRUE on both pads (it used to refuse
 * it on text_src, so a pipeline with a sink on text_src could not seek);
 * a new seek goes upstream again. */
GST_START_TEST (test_seek_from_both_branches)
{
  Fixture f;
  GstEvent *seek;
  guint n;

  fixture_start (&f, describer_new (), CAPS_30FPS ("RGB"));
  fail_unless_equals_int (push_frames (&f, 0, 1), GST_FLOW_OK);
  n = gst_harness_upstream_events_received (f.h);

  seek = gst_event_new_seek (1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH,
      GST_SEEK_TYPE_SET, GST_SECOND, GST_SEEK_TYPE_NONE, 0);
  fail_unless (gst_harness_push_upstream_event (f.th, gst_event_ref (seek)));
  fail_unless (gst_harness_push_upstream_event (f.h, seek));
  fail_unless_equals_int (gst_harness_upstream_events_received (f.h), n + 1);

  seek = gst_event_new_seek (1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH,
      GST_SEEK_TYPE_SET, 2 * GST_SECOND, GST_SEEK_TYPE_NONE, 0);
  fail_unless (gst_harness_push_upstream_event (f.h, gst_event_ref (seek)));
  fail_unless (gst_harness_push_upstream_event (f.th, seek));
  fail_unless_equals_int (gst_harness_upstream_events_received (f.h), n + 2);
  fixture_stop (&f);
}

GST_END_TEST;

static Suite *
vlmdescribe_suite (void)
{
  Suite *s = suite_create ("vlmdescribe");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_caps_formats);
  tcase_add_test (tc, test_interval_frame_accurate);
  tcase_add_test (tc, test_scene_cut);
  tcase_add_test (tc, test_caption_fields);
  tcase_add_test (tc, test_model_info);
  tcase_add_test (tc, test_repo_id);
  tcase_add_test (tc, test_live_stamping);
  tcase_add_test (tc, test_eos_drain);
  tcase_add_test (tc, test_eos_drain_timeout);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_text_no_overlap);
  tcase_add_test (tc, test_leaky_drops);
  tcase_add_test (tc, test_leaky_no_keeps_all);
  tcase_add_test (tc, test_describe_action);
  tcase_add_test (tc, test_emit_partial);
  tcase_add_test (tc, test_bad_models);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_nothing_lost_at_eos);
  tcase_add_test (tc, test_nothing_lost_across_flush);
  tcase_add_test (tc, test_flush_and_stop_cancel);
  tcase_add_test (tc, test_short_buffer);
  tcase_add_test (tc, test_seek_from_both_branches);
  return s;
}

GST_CHECK_MAIN (vlmdescribe);
