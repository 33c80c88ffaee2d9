/* Unit tests of gst/gstvlmtextstream.c that need no model: the text
 * buffers and GAPs it pushes on a pad. */

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include "gstvlmtextstream.h"

GST_DEBUG_CATEGORY (gst_vlm_describe_debug);

#define FRAME (GST_SECOND / 30)

typedef struct
{
  GstPad *pad;
  GstHarness *h;
  GstVlmTextStream ts;
} Stream;

static void
stream_start (Stream * s)
{
  GstCaps *caps = gst_caps_from_string ("text/x-raw, format=utf8");
  GstSegment segment;

  gst_segment_init (&segment, GST_FORMAT_TIME);
  s->pad = gst_pad_new ("text_src", GST_PAD_SRC);
  s->h = gst_harness_new_empty ();
  gst_harness_add_element_src_pad (s->h, s->pad);
  gst_pad_set_active (s->pad, TRUE);
  gst_pad_push_event (s->pad, gst_event_new_stream_start ("text"));
  gst_pad_push_event (s->pad, gst_event_new_caps (caps));
  gst_caps_unref (caps);
  gst_pad_push_event (s->pad, gst_event_new_segment (&segment));
  gst_vlm_text_stream_init (&s->ts, s->pad);
}

static void
stream_stop (Stream * s)
{
  gst_vlm_text_stream_clear (&s->ts);
  gst_harness_teardown (s->h);
  gst_object_unref (s->pad);
}

/* A caption with no text (the model stopped at once, or was cancelled
 * before its first token) is an empty buffer with its timing, like any
 * other caption. */
GST_START_TEST (test_empty_caption)
{
  Stream s;
  GstBuffer *text;

  stream_start (&s);
  gst_vlm_text_stream_place (&s.ts, "", 0, GST_SECOND);
  fail_unless_equals_int (gst_vlm_text_stream_advance (&s.ts, 0, FRAME),
      GST_FLOW_OK);
  text = gst_harness_pull (s.h);
  fail_unless_equals_int (gst_buffer_get_size (text), 0);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (text), 0);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (text), GST_SECOND);
  gst_buffer_unref (text);

  gst_vlm_text_stream_place (&s.ts, "two words", GST_SECOND, GST_SECOND);
  gst_vlm_text_stream_advance (&s.ts, GST_SECOND, FRAME);
  text = gst_harness_pull (s.h);
  fail_unless (gst_buffer_memcmp (text, 0, "two words", 9) == 0);
  gst_buffer_unref (text);
  stream_stop (&s);
}

GST_END_TEST;

static Suite *
textstream_suite (void)
{
  Suite *s = suite_create ("textstream");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_empty_caption);
  return s;
}

GST_CHECK_MAIN (textstream);
