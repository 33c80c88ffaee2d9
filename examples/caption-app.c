/* caption-app: captions from a GStreamer application, as JSON lines.
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

/* The shape of a real integration: build a pipeline around vlmdescribe for
 * files, a camera or a test source, listen on the bus, and print one JSON
 * object per vlm-caption message (every field of the message, plus "file"
 * when describing files) on stdout:
 *
 *   caption-app clip.mp4 > clip.jsonl
 *   caption-app IMG_0001.jpg IMG_0002.png > photos.jsonl
 *   caption-app --camera /dev/video0 --prompt "describe en"
 *   caption-app --test 90 --model tests/data/paligemma-tiny/pg-f32
 *
 * Files are described one after another by the same pipeline, which goes
 * back to READY in between: the element keeps its model loaded in READY.
 * Files and the test source are described frame-accurately (leaky=no);
 * the camera never waits for the model (leaky=downstream, the default).
 * Ctrl-C sends EOS, so the captions being computed still come out.
 * Errors are one line on stderr; the exit status is 1 if any input failed,
 * 2 for bad usage. */

#include <stdio.h>
#include <stdlib.h>
#include <glib-unix.h>
#include <gst/gst.h>
#include <json-glib/json-glib.h>

typedef struct
{
  GstElement *pipeline;
  GstElement *filesrc;          /* NULL unless describing files */
  GMainLoop *loop;
  const gchar *file;            /* the file being described, or NULL */
  gboolean failed;
  gboolean interrupted;
} App;

/* A GStreamer element, or a one-line error naming what to install. */
static GstElement *
make_element (const gchar * factory, const gchar * name)
{
  GstElement *element = gst_element_factory_make (factory, name);

  if (!element) {
    g_printerr ("caption-app: no GStreamer element '%s' (vlmdescribe needs "
        "GST_PLUGIN_PATH when not installed; others come with "
        "gstreamer1.0-plugins-base/-good)\n", factory);
    exit (1);
  }
  return element;
}

/* One field of the caption as a JSON member: clock times that are not set
 * (GST_CLOCK_TIME_NONE) become null. */
static gboolean
add_field (GQuark field, const GValue * value, gpointer user_data)
{
  JsonBuilder *builder = user_data;

  json_builder_set_member_name (builder, g_quark_to_string (field));
  switch (G_VALUE_TYPE (value)) {
    case G_TYPE_STRING:
      json_builder_add_string_value (builder, g_value_get_string (value));
      break;
    case G_TYPE_UINT64:
      if (g_value_get_uint64 (value) > G_MAXINT64)
        json_builder_add_null_value (builder);
      else
        json_builder_add_int_value (builder, g_value_get_uint64 (value));
      break;
    case G_TYPE_UINT:
      json_builder_add_int_value (builder, g_value_get_uint (value));
      break;
    case G_TYPE_DOUBLE:
      json_builder_add_double_value (builder, g_value_get_double (value));
      break;
    default:{
      gchar *text = gst_value_serialize (value);

      json_builder_add_string_value (builder, text);
      g_free (text);
      break;
    }
  }
  return TRUE;
}

static void
print_caption (App * app, const GstStructure * caption)
{
  JsonBuilder *builder = json_builder_new ();
  JsonGenerator *generator = json_generator_new ();
  JsonNode *root;
  gchar *line;

  json_builder_begin_object (builder);
  if (app->file) {
    json_builder_set_member_name (builder, "file");
    json_builder_add_string_value (builder, app->file);
  }
  gst_structure_foreach (caption, add_field, builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  line = json_generator_to_data (generator, NULL);
  printf ("%s\n", line);
  fflush (stdout);

  g_free (line);
  json_node_unref (root);
  g_object_unref (generator);
  g_object_unref (builder);
}

/* One line: which file, and what went wrong (the element's message says
 * what to do about it). */
static void
report_error (App * app, GstMessage * message)
{
  GError *error = NULL;

  gst_message_parse_error (message, &error, NULL);
  g_printerr ("caption-app: %s%s%s\n", app->file ? app->file : "",
      app->file ? ": " : "", error->message);
  g_error_free (error);
  app->failed = TRUE;
}

static gboolean
on_bus_message (GstBus * bus, GstMessage * message, gpointer user_data)
{
  App *app = user_data;

  switch (GST_MESSAGE_TYPE (message)) {
    case GST_MESSAGE_ELEMENT:
      if (gst_message_has_name (message, "vlm-caption"))
        print_caption (app, gst_message_get_structure (message));
      break;
    case GST_MESSAGE_ERROR:
      report_error (app, message);
      g_main_loop_quit (app->loop);
      break;
    case GST_MESSAGE_EOS:
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

/* Ctrl-C: end the stream, so that pending captions are still delivered. */
static gboolean
on_interrupt (gpointer user_data)
{
  App *app = user_data;

  app->interrupted = TRUE;
  gst_element_send_event (app->pipeline, gst_event_new_eos ());
  return G_SOURCE_CONTINUE;
}

/* decodebin found a stream: link the first raw video pad. */
static void
on_pad_added (GstElement * decodebin, GstPad * pad, gpointer user_data)
{
  GstElement *convert = user_data;
  GstPad *sink = gst_element_get_static_pad (convert, "sink");
  GstCaps *caps = gst_pad_get_current_caps (pad);

  if (!gst_pad_is_linked (sink) && caps
      && g_str_has_prefix (gst_structure_get_name (gst_caps_get_structure
              (caps, 0)), "video/x-raw"))
    gst_pad_link (pad, sink);
  if (caps)
    gst_caps_unref (caps);
  gst_object_unref (sink);
}

/* Plays the pipeline until EOS or an error. */
static void
run (App * app, GstBus * bus)
{
  if (gst_element_set_state (app->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    /* the element that failed posted why (a missing model, a device...) */
    GstMessage *message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (message) {
      report_error (app, message);
      gst_message_unref (message);
    }
    app->failed = TRUE;
  } else {
    g_main_loop_run (app->loop);
  }
  gst_element_set_state (app->pipeline, GST_STATE_READY);
  /* what a failed input left on the bus must not end the next one */
  gst_bus_set_flushing (bus, TRUE);
  gst_bus_set_flushing (bus, FALSE);
}

int
main (int argc, char **argv)
{
  gchar *model = NULL, *prompt = NULL, *camera = NULL;
  gdouble interval = -1.0;
  gint test_frames = 0;
  gchar **files = NULL, **file;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
        "Checkpoint directory or Hugging Face repo id (default: the "
          "element's default model)", "DIR"},
    {"prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt,
        "Prompt (default: the model's, e.g. \"caption en\")", "TEXT"},
    {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
        "Seconds between described frames (default 1; 0 = every frame)",
        "SECONDS"},
    {"camera", 'c', 0, G_OPTION_ARG_FILENAME, &camera,
        "Describe a V4L2 camera, e.g. /dev/video0", "DEVICE"},
    {"test", 't', 0, G_OPTION_ARG_INT, &test_frames,
        "Describe N frames of a test pattern", "N"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &files, NULL,
        "FILE..."},
    {NULL},
  };
  GOptionContext *context;
  GError *error = NULL;
  GstElement *source, *decodebin = NULL, *convert, *describe, *sink;
  GstBus *bus;
  App app = { 0 };
  guint n_sources, interrupt_source;

  context = g_option_context_new ("[FILE...] - print captions as JSON lines");
  g_option_context_set_description (context, "Describes video files or "
      "images (one after another), a camera (--camera) or a test pattern "
      "(--test) with vlmdescribe, and prints one JSON object per caption.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("caption-app: %s\n", error->message);
    return 2;
  }
  g_option_context_free (context);

  n_sources = (files != NULL) + (camera != NULL) + (test_frames > 0);
  if (n_sources != 1) {
    g_printerr ("caption-app: give files, --camera DEVICE or --test N "
        "(exactly one; see --help)\n");
    return 2;
  }

  app.pipeline = gst_pipeline_new ("caption-app");
  convert = make_element ("videoconvert", NULL);
  describe = make_element ("vlmdescribe", "describe");
  sink = make_element ("fakesink", NULL);
  if (files) {
    source = app.filesrc = make_element ("filesrc", NULL);
    decodebin = make_element ("decodebin", NULL);
    g_signal_connect (decodebin, "pad-added", G_CALLBACK (on_pad_added),
        convert);
  } else if (camera) {
    source = make_element ("v4l2src", NULL);
    g_object_set (source, "device", camera, NULL);
  } else {
    source = make_element ("videotestsrc", NULL);
    g_object_set (source, "num-buffers", test_frames, NULL);
  }

  if (model)
    g_object_set (describe, "model", model, NULL);
  if (prompt)
    g_object_set (describe, "prompt", prompt, NULL);
  if (interval >= 0.0)
    g_object_set (describe, "interval", (guint64) (interval * GST_SECOND),
        NULL);
  /* offline inputs: describe every sampled frame, however long it takes */
  if (!camera)
    gst_util_set_object_arg (G_OBJECT (describe), "leaky", "no");

  gst_bin_add_many (GST_BIN (app.pipeline), source, convert, describe, sink,
      NULL);
  if (decodebin) {
    gst_bin_add (GST_BIN (app.pipeline), decodebin);
    gst_element_link (source, decodebin);
  } else {
    gst_element_link (source, convert);
  }
  gst_element_link_many (convert, describe, sink, NULL);

  app.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (app.pipeline);
  gst_bus_add_watch (bus, on_bus_message, &app);
  interrupt_source = g_unix_signal_add (SIGINT, on_interrupt, &app);

  if (files) {
    for (file = files; *file && !app.interrupted; file++) {
      app.file = *file;
      g_object_set (app.filesrc, "location", *file, NULL);
      run (&app, bus);
    }
  } else {
    run (&app, bus);
  }

  gst_element_set_state (app.pipeline, GST_STATE_NULL);
  g_source_remove (interrupt_source);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (app.pipeline);
  g_main_loop_unref (app.loop);
  g_strfreev (files);
  g_free (model);
  g_free (prompt);
  g_free (camera);
  return app.failed ? 1 : 0;
}
