/* Stress tests of the vlmdescribe element (suite "stress"; not in the
 * default run: meson test --suite stress). Each is one check test, run by
 * meson as its own test (GST_CHECKS=<name>), on the tiny fixture
 * checkpoint, in pipelines with the system's videotestsrc and fakesink:
 *
 * - 1000 NULL -> PLAYING -> NULL cycles with data flowing;
 * - 200 flushing seeks while a caption is being generated: the captions of
 *   flushed frames are cancelled, never delivered after the seek;
 * - 10,000 frames of 1920x1080 with interval 0 and leaky=downstream:
 *   resident memory stays flat after warm-up (the figures are printed);
 * - 8 elements in one process sharing one model, concurrently, each
 *   getting all its captions;
 * - the model directory renamed, then deleted, while playing: the element
 *   keeps running on the mapped weights, and the next start fails with an
 *   error naming the directory.
 *
 * Everywhere the stats must add up: frames-sampled = captions + dropped +
 * cancelled + errors + pending + ready.
 */

#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#define MODEL_DIR VLM_TEST_DATA_DIR "/paligemma-tiny/pg-f32"
#define MB (1024.0 * 1024.0)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Under AddressSanitizer freed memory waits in a quarantine, so resident
 * memory says nothing about leaks there (LeakSanitizer checks them): the
 * figures are printed, not judged. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_JUDGED FALSE
#else
#define RSS_JUDGED TRUE
#endif

static gdouble
rss_mb (void)
{
  gchar *statm = NULL;
  guint64 size = 0, resident = 0;

  fail_unless (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL));
  fail_unless (sscanf (statm, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
          &size, &resident) == 2);
  g_free (statm);
  return resident * sysconf (_SC_PAGESIZE) / MB;
}

static guint64
stat_u64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v),
      "no %s in %" GST_PTR_FORMAT, field, s);
  return v;
}

/* Checks the stats of @e add up (and, @settled, that nothing is in
 * flight); returns them. */
static GstStructure *
stats_checked (GstElement * e, gboolean settled)
{
  GstStructure *s;
  guint pending = 0, ready = 0;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (gst_structure_get_uint (s, "pending", &pending));
  fail_unless (gst_structure_get_uint (s, "ready", &ready));
  fail_unless_equals_uint64 (stat_u64 (s, "frames-sampled"),
      stat_u64 (s, "captions") + stat_u64 (s, "dropped") +
      stat_u64 (s, "cancelled") + stat_u64 (s, "errors") + pending + ready);
  if (settled)
    fail_unless (pending == 0 && ready == 0, "in flight: %" GST_PTR_FORMAT,
        s);
  return s;
}

static GstElement *
pipeline_new (const gchar * description)
{
  GError *error = NULL;
  GstElement *p = gst_parse_launch (description, &error);

  fail_unless (p != NULL && error == NULL, "%s: %s", description,
      error ? error->message : "?");
  return p;
}

static GstElement *
describer (GstElement * pipeline)
{
  GstElement *d = gst_bin_get_by_name (GST_BIN (pipeline), "d");

  fail_unless (d != NULL);
  gst_object_unref (d);         /* the pipeline keeps it */
  return d;
}

/* Waits for EOS, failing on an error message. */
static void
wait_eos (GstElement * pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

  fail_unless (msg != NULL, "no EOS in 120 s");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *error = NULL;
    gchar *debug = NULL;

    gst_message_parse_error (msg, &error, &debug);
    fail ("error: %s (%s)", error->message, debug);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}

/* Captions seen by a caption signal handler, under a lock. */
typedef struct
{
  GMutex lock;
  GCond cond;
  guint n;
  GstClockTime last_pts;
  GstClockTime min_pts;         /* no caption may come for a frame before */
  guint late;                   /* captions that broke min_pts */
} Captions;

static void
captions_init (Captions * c)
{
  memset (c, 0, sizeof *c);
  g_mutex_init (&c->lock);
  g_cond_init (&c->cond);
  c->last_pts = GST_CLOCK_TIME_NONE;
}

static void
captions_clear (Captions * c)
{
  g_mutex_clear (&c->lock);
  g_cond_clear (&c->cond);
}

static void
on_caption (GstElement * e, const GstStructure * s, Captions * c)
{
  guint64 pts = 0;

  gst_structure_get_uint64 (s, "pts", &pts);
  g_mutex_lock (&c->lock);
  c->n++;
  c->last_pts = pts;
  if (pts < c->min_pts)
    c->late++;
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
}

static guint
captions_count (Captions * c)
{
  guint n;

  g_mutex_lock (&c->lock);
  n = c->n;
  g_mutex_unlock (&c->lock);
  return n;
}

/* Waits until @n captions were seen, the last at or after @min_pts. */
static void
captions_wait (Captions * c, guint n, GstClockTime min_pts)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;

  g_mutex_lock (&c->lock);
  while (c->n < n || !GST_CLOCK_TIME_IS_VALID (c->last_pts)
      || c->last_pts < min_pts)
    fail_unless (g_cond_wait_until (&c->cond, &c->lock, deadline),
        "no caption in 60 s (%u of %u)", c->n, n);
  g_mutex_unlock (&c->lock);
}

/* Holds the worker inside a generated token (a bus sync handler on its
 * vlm-caption-partial message) until the element starts flushing, so that
 * a seek is sure to land in the middle of a caption. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean armed;               /* hold the next token */
  gboolean held;                /* the worker is held */
  GstPad *src;                  /* the element's src: flushing = release */
} TokenGate;

static GstBusSyncReply
token_gate_sync (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  TokenGate *g = user_data;

  if (!gst_message_has_name (msg, "vlm-caption-partial"))
    return GST_BUS_PASS;
  g_mutex_lock (&g->lock);
  if (g->armed) {
    g->held = TRUE;
    g_cond_broadcast (&g->cond);
    while (g->armed)
      g_cond_wait (&g->cond, &g->lock);
  }
  g_mutex_unlock (&g->lock);
  return GST_BUS_DROP;
}

/* Returns once the worker is held inside a caption. */
static void
token_gate_hold (TokenGate * g)
{
  g_mutex_lock (&g->lock);
  g->armed = TRUE;
  g->held = FALSE;
  while (!g->held)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
}

/* Thread: lets the worker go once the flush has reached the element (it
 * waits for the worker before the flush completes). */
static gpointer
token_gate_release_at_flush (gpointer user_data)
{
  TokenGate *g = user_data;

  while (!GST_PAD_IS_FLUSHING (g->src))
    g_usleep (100);
  g_mutex_lock (&g->lock);
  g->armed = FALSE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

/* 1000 NULL -> PLAYING -> NULL cycles, each prerolling (so the first
 * frame's caption is done: leaky=no), then torn down with the model
 * unloaded; memory does not grow from cycle 100 to cycle 1000. */
GST_START_TEST (test_state_cycles)
{
  GstElement *p = pipeline_new ("videotestsrc ! video/x-raw,width=64,"
      "height=48 ! vlmdescribe name=d model=" MODEL_DIR " threads=1 "
      "leaky=no interval=0 max-new-tokens=4 ! fakesink");
  GstElement *d = describer (p);
  gdouble rss_100 = 0.0, rss_1000;
  guint i;

  for (i = 1; i <= 1000; i++) {
    GstStructure *stats;

    fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
    fail_unless_equals_int (gst_element_get_state (p, NULL, NULL,
            60 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    stats = stats_checked (d, TRUE);
    fail_unless (stat_u64 (stats, "captions") >= 1);
    gst_structure_free (stats);
    if (i == 100)
      rss_100 = rss_mb ();
  }
  rss_1000 = rss_mb ();
  g_print ("state cycles: resident %.1f MB after 100 cycles, %.1f MB after "
      "1000 (%+.1f MB)\n", rss_100, rss_1000, rss_1000 - rss_100);
  fail_unless (!RSS_JUDGED || rss_1000 - rss_100 < 8.0,
      "memory grows with state cycles");
  gst_object_unref (p);
}

GST_END_TEST;

/* 200 flushing seeks, each while a caption is being generated (the worker
 * is held inside a token until the flush reaches the element): that
 * caption is cancelled, no caption of a frame from before a
 * seek comes out after it, and the element goes on describing after every
 * seek. */
GST_START_TEST (test_flushing_seeks)
{
  GstElement *p = pipeline_new ("videotestsrc ! video/x-raw,width=64,"
      "height=48,framerate=30/1 ! vlmdescribe name=d model=" MODEL_DIR
      " threads=1 leaky=no interval=0 max-new-tokens=64 ! queue ! fakesink "
      "d.text_src ! queue ! fakesink");
  GstElement *d = describer (p);
  GstBus *bus = gst_element_get_bus (p);
  TokenGate gate = { 0 };
  GstStructure *stats;
  Captions c;
  guint i;

  g_mutex_init (&gate.lock);
  g_cond_init (&gate.cond);
  gate.src = gst_element_get_static_pad (d, "src");
  g_object_set (d, "emit-partial", TRUE, NULL);
  gst_bus_set_sync_handler (bus, token_gate_sync, &gate, NULL);
  captions_init (&c);
  g_signal_connect (d, "caption", G_CALLBACK (on_caption), &c);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  captions_wait (&c, 1, 0);

  for (i = 1; i <= 200; i++) {
    GstClockTime target = i * 100 * GST_SECOND;
    GThread *releaser;
    guint n;

    token_gate_hold (&gate);
    releaser = g_thread_new ("release", token_gate_release_at_flush, &gate);
    fail_unless (gst_element_seek_simple (p, GST_FORMAT_TIME,
            GST_SEEK_FLAG_FLUSH, target));
    g_thread_join (releaser);
    g_mutex_lock (&c.lock);
    c.min_pts = target;
    n = c.n;
    g_mutex_unlock (&c.lock);
    /* one caption after the seek: the next one is being generated */
    captions_wait (&c, n + 1, target);
  }
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  stats = stats_checked (d, TRUE);
  g_print ("flushing seeks: %u captions, %" G_GUINT64_FORMAT " cancelled, "
      "%u late\n", c.n, stat_u64 (stats, "cancelled"), c.late);
  fail_unless_equals_int (c.late, 0);
  /* every seek cancels the caption in progress; the stop may cancel one
   * more */
  fail_unless (stat_u64 (stats, "cancelled") >= 200,
      "only %" G_GUINT64_FORMAT " seeks cancelled a caption",
      stat_u64 (stats, "cancelled"));
  fail_unless_equals_uint64 (stat_u64 (stats, "errors"), 0);
  gst_structure_free (stats);
  captions_clear (&c);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (gate.src);
  g_mutex_clear (&gate.lock);
  g_cond_clear (&gate.cond);
  gst_object_unref (p);
}

GST_END_TEST;

/* 10,000 frames of 1920x1080, interval 0 (every frame sampled and
 * converted), leaky=downstream: most are dropped while the worker is
 * busy, and resident memory is flat after warm-up. */
GST_START_TEST (test_full_hd_flat_memory)
{
  const guint n_frames = 10000, warm_up = 1000, window = 1000;
  GstElement *e = gst_element_factory_make ("vlmdescribe", NULL);
  GstHarness *h, *th;
  GstVideoInfo info;
  GstBuffer *frame;
  GstStructure *stats;
  gdouble warm_max = 0.0, end_max = 0.0, peak = 0.0;
  guint i;

  g_object_set (e, "model", MODEL_DIR, "threads", 1, "interval",
      (guint64) 0, "leaky", 2, "max-new-tokens", 8, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  th = gst_harness_new_with_element (e, NULL, "text_src");
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=1920,"
      "height=1080,framerate=30/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 1920, 1080);
  frame = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (frame, 0, 0x5a, GST_VIDEO_INFO_SIZE (&info));

  for (i = 0; i < n_frames; i++) {
    GstBuffer *b = gst_buffer_copy (frame);     /* shares the memory */
    gdouble rss;

    GST_BUFFER_PTS (b) = gst_util_uint64_scale (i, GST_SECOND, 30);
    GST_BUFFER_DURATION (b) = GST_SECOND / 30;
    fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
    /* captions and GAPs on text_src: let them go */
    while ((b = gst_harness_try_pull (th)))
      gst_buffer_unref (b);
    while (gst_harness_events_in_queue (th) > 0)
      gst_event_unref (gst_harness_pull_event (th));
    if (i % 100 != 0)
      continue;
    rss = rss_mb ();
    peak = MAX (peak, rss);
    if (i >= warm_up && i < warm_up + window)
      warm_max = MAX (warm_max, rss);
    if (i >= n_frames - window)
      end_max = MAX (end_max, rss);
  }
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  stats = stats_checked (h->element, TRUE);
  g_print ("1920x1080 x %u: resident %.1f MB (max over frames %u-%u), "
      "%.1f MB (max over the last %u), %+.1f MB; peak %.1f MB; %"
      G_GUINT64_FORMAT " captions, %" G_GUINT64_FORMAT " dropped\n",
      n_frames, warm_max, warm_up, warm_up + window, end_max, window,
      end_max - warm_max, peak, stat_u64 (stats, "captions"),
      stat_u64 (stats, "dropped"));
  fail_unless_equals_uint64 (stat_u64 (stats, "frames-sampled"), n_frames);
  /* less than one frame's worth of growth (a frame is 5.9 MB) */
  fail_unless (!RSS_JUDGED || end_max - warm_max < 4.0,
      "resident memory grows");

  gst_structure_free (stats);
  gst_buffer_unref (frame);
  gst_harness_teardown (th);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

static guint n_loads;

static void
count_loads (GstDebugCategory * category, GstDebugLevel level,
    const gchar * file, const gchar * function, gint line, GObject * object,
    GstDebugMessage * message, gpointer user_data)
{
  if (g_str_equal (gst_debug_category_get_name (category), "vlmengine")
      && g_str_has_prefix (gst_debug_message_get (message), "loaded "))
    g_atomic_int_inc (&n_loads);
}

#define N_INSTANCES 8
#define N_INSTANCE_FRAMES 40

/* 8 pipelines in one process, each with its own vlmdescribe on the same
 * checkpoint, run at once: the model is loaded once and shared, and each
 * element describes every one of its frames (leaky=no). */
GST_START_TEST (test_instances_share_model)
{
  GstElement *pipelines[N_INSTANCES];
  Captions c[N_INSTANCES];
  gchar *paths[N_INSTANCES];
  guint i;

  gst_debug_set_threshold_for_name ("vlmengine", GST_LEVEL_INFO);
  gst_debug_add_log_function (count_loads, NULL, NULL);

  for (i = 0; i < N_INSTANCES; i++) {
    gchar *description = g_strdup_printf ("videotestsrc num-buffers=%d "
        "pattern=%u ! video/x-raw,width=%u,height=48 ! vlmdescribe name=d "
        "model=" MODEL_DIR " threads=1 leaky=no interval=0 "
        "max-new-tokens=8 ! fakesink", N_INSTANCE_FRAMES, i, 32 + 8 * i);

    pipelines[i] = pipeline_new (description);
    g_free (description);
    captions_init (&c[i]);
    g_signal_connect (describer (pipelines[i]), "caption",
        G_CALLBACK (on_caption), &c[i]);
  }
  for (i = 0; i < N_INSTANCES; i++)
    fail_unless (gst_element_set_state (pipelines[i], GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
  for (i = 0; i < N_INSTANCES; i++)
    wait_eos (pipelines[i]);

  for (i = 0; i < N_INSTANCES; i++) {
    GstElement *d = describer (pipelines[i]);
    GstStructure *stats = stats_checked (d, TRUE), *info;

    fail_unless_equals_int (c[i].n, N_INSTANCE_FRAMES);
    fail_unless_equals_uint64 (stat_u64 (stats, "captions"),
        N_INSTANCE_FRAMES);
    g_object_get (d, "model-info", &info, NULL);
    paths[i] = g_strdup (gst_structure_get_string (info, "path"));
    fail_unless_equals_string (paths[i], paths[0]);
    gst_structure_free (info);
    gst_structure_free (stats);
  }
  g_print ("%d instances: %u captions each, model loaded %u time(s)\n",
      N_INSTANCES, c[0].n, g_atomic_int_get (&n_loads));
  fail_unless_equals_int (g_atomic_int_get (&n_loads), 1);

  for (i = 0; i < N_INSTANCES; i++) {
    gst_element_set_state (pipelines[i], GST_STATE_NULL);
    gst_object_unref (pipelines[i]);
    captions_clear (&c[i]);
    g_free (paths[i]);
  }
  gst_debug_remove_log_function (count_loads);
}

GST_END_TEST;

/* A private copy of the fixture checkpoint. */
static gchar *
copy_model (void)
{
  gchar *dir = g_dir_make_tmp ("vlm-stress-model-XXXXXX", NULL);
  GDir *src = g_dir_open (MODEL_DIR, 0, NULL);
  const gchar *name;

  fail_unless (dir != NULL && src != NULL);
  while ((name = g_dir_read_name (src))) {
    gchar *from = g_build_filename (MODEL_DIR, name, NULL);
    gchar *to = g_build_filename (dir, name, NULL);
    gchar *contents;
    gsize len;

    fail_unless (g_file_get_contents (from, &contents, &len, NULL));
    fail_unless (g_file_set_contents (to, contents, len, NULL));
    g_free (contents);
    g_free (from);
    g_free (to);
  }
  g_dir_close (src);
  return dir;
}

static void
remove_dir (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    gchar *path = g_build_filename (dir, name, NULL);

    fail_unless (g_unlink (path) == 0);
    g_free (path);
  }
  if (d)
    g_dir_close (d);
  fail_unless (g_rmdir (dir) == 0);
}

/* The model directory is renamed, then deleted, while playing: the
 * element keeps describing with the mapped weights; once stopped, it
 * cannot start again, and says why. */
GST_START_TEST (test_model_pulled_away)
{
  gchar *dir = copy_model ();
  gchar *moved = g_strconcat (dir, "-moved", NULL);
  gchar *description = g_strdup_printf ("videotestsrc ! video/x-raw,"
      "width=64,height=48 ! vlmdescribe name=d model=%s threads=1 leaky=no "
      "interval=0 max-new-tokens=8 ! fakesink", dir);
  GstElement *p = pipeline_new (description);
  GstElement *d = describer (p);
  GstStructure *stats;
  GstBus *bus;
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;
  Captions c;
  guint n_before;

  captions_init (&c);
  g_signal_connect (d, "caption", G_CALLBACK (on_caption), &c);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  captions_wait (&c, 5, 0);

  n_before = captions_count (&c);
  fail_unless (g_rename (dir, moved) == 0);
  captions_wait (&c, captions_count (&c) + 20, 0);
  remove_dir (moved);
  captions_wait (&c, captions_count (&c) + 20, 0);
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  stats = stats_checked (d, TRUE);
  fail_unless_equals_uint64 (stat_u64 (stats, "errors"), 0);
  gst_structure_free (stats);

  /* gone: the next start fails, naming the model and the reason */
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  bus = gst_element_get_bus (p);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &error, &debug);
  g_print ("model pulled away: %u captions after the directory was renamed "
      "and deleted; then: %s\n", c.n - n_before, error->message);
  fail_unless (g_error_matches (error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NOT_FOUND));
  fail_unless (strstr (error->message, dir) != NULL);
  fail_unless (strstr (debug, "no such directory") != NULL, "%s", debug);

  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  captions_clear (&c);
  g_free (description);
  g_free (moved);
  g_free (dir);
}

GST_END_TEST;

static Suite *
stress_suite (void)
{
  Suite *s = suite_create ("stress");
  TCase *tc = tcase_create ("stress");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_flushing_seeks);
  tcase_add_test (tc, test_full_hd_flat_memory);
  tcase_add_test (tc, test_instances_share_model);
  tcase_add_test (tc, test_model_pulled_away);
  return s;
}

GST_CHECK_MAIN (stress);
