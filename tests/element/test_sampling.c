/* Unit tests of gst/gstvlmsampling.c: which frames are sampled, how long a
 * caption applies, and the luma thumbnail difference. */

#include <gst/gst.h>
#include <gst/video/video.h>

#include "gstvlmsampling.h"

#define MS (GST_MSECOND)

static void
test_decide_interval (void)
{
  /* the first frame is always sampled */
  g_assert_cmpint (gst_vlm_sampling_decide (GST_CLOCK_TIME_NONE, 5 * MS,
          GST_SECOND, 0.0, 0.0), ==, GST_VLM_SAMPLE_FIRST);
  g_assert_cmpint (gst_vlm_sampling_decide (GST_CLOCK_TIME_NONE,
          GST_CLOCK_TIME_NONE, GST_SECOND, 0.0, 0.0), ==,
      GST_VLM_SAMPLE_FIRST);
  /* due exactly at last + interval, not a nanosecond before */
  g_assert_cmpint (gst_vlm_sampling_decide (0, GST_SECOND - 1, GST_SECOND,
          0.0, 0.0), ==, GST_VLM_SAMPLE_SKIP);
  g_assert_cmpint (gst_vlm_sampling_decide (0, GST_SECOND, GST_SECOND, 0.0,
          0.0), ==, GST_VLM_SAMPLE_INTERVAL);
  /* interval 0: every frame; NONE: never by interval */
  g_assert_cmpint (gst_vlm_sampling_decide (40 * MS, 40 * MS, 0, 0.0, 0.0),
      ==, GST_VLM_SAMPLE_INTERVAL);
  g_assert_cmpint (gst_vlm_sampling_decide (0, 3600 * GST_SECOND,
          GST_CLOCK_TIME_NONE, 0.0, 0.0), ==, GST_VLM_SAMPLE_SKIP);
  /* running time going back (a new timeline) samples again */
  g_assert_cmpint (gst_vlm_sampling_decide (5 * GST_SECOND, GST_SECOND,
          10 * GST_SECOND, 0.0, 0.0), ==, GST_VLM_SAMPLE_INTERVAL);
  /* no timestamp: only the first frame */
  g_assert_cmpint (gst_vlm_sampling_decide (0, GST_CLOCK_TIME_NONE,
          GST_SECOND, 0.0, 0.0), ==, GST_VLM_SAMPLE_SKIP);
}

static void
test_decide_scene (void)
{
  /* above the threshold: sampled however short the interval */
  g_assert_cmpint (gst_vlm_sampling_decide (0, 10 * MS, GST_SECOND, 0.31,
          0.3), ==, GST_VLM_SAMPLE_SCENE);
  g_assert_cmpint (gst_vlm_sampling_decide (0, 10 * MS, GST_SECOND, 0.3,
          0.3), ==, GST_VLM_SAMPLE_SKIP);
  /* threshold 0 is off, even for a total change */
  g_assert_cmpint (gst_vlm_sampling_decide (0, 10 * MS, GST_SECOND, 1.0,
          0.0), ==, GST_VLM_SAMPLE_SKIP);
}

static void
test_span (void)
{
  /* 30/1: one second is exactly 30 frames, on the timestamps' grid */
  g_assert_cmpuint (gst_vlm_sampling_span (GST_SECOND, 30, 1, GST_SECOND /
          30), ==, GST_SECOND);
  /* 30000/1001: 1 s rounds up to 30 frames = 1.001 s */
  g_assert_cmpuint (gst_vlm_sampling_span (GST_SECOND, 30000, 1001,
          GST_CLOCK_TIME_NONE), ==, 1001 * MS);
  /* 25/1, 100 ms: 2.5 frames -> 3 frames */
  g_assert_cmpuint (gst_vlm_sampling_span (100 * MS, 25, 1,
          GST_CLOCK_TIME_NONE), ==, 120 * MS);
  /* unknown framerate: the interval itself */
  g_assert_cmpuint (gst_vlm_sampling_span (GST_SECOND, 0, 1,
          GST_CLOCK_TIME_NONE), ==, GST_SECOND);
  /* every frame: one frame; never by interval: unknown */
  g_assert_cmpuint (gst_vlm_sampling_span (0, 30, 1, 33 * MS), ==, 33 * MS);
  g_assert_cmpuint (gst_vlm_sampling_span (GST_CLOCK_TIME_NONE, 30, 1,
          33 * MS), ==, GST_CLOCK_TIME_NONE);
}

/* The thumbnail of an 80x60 frame of @format showing the RGB colour
 * (r, g, b), converted with GstVideoConverter. */
static void
thumbnail_of_colour (GstVideoFormat format, guint8 r, guint8 g, guint8 b,
    GstVlmThumbnail * thumbnail)
{
  GstVideoInfo rgb_info, info;
  GstVideoFrame rgb_frame, frame;
  GstBuffer *rgb, *buffer;
  GstVideoConverter *conv;
  guint x, y;

  gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, 80, 60);
  gst_video_info_set_format (&info, format, 80, 60);
  rgb = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&rgb_info), NULL);
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_video_frame_map (&rgb_frame, &rgb_info, rgb, GST_MAP_WRITE);
  for (y = 0; y < 60; y++) {
    guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&rgb_frame, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&rgb_frame, 0);

    for (x = 0; x < 80; x++) {
      row[3 * x] = r;
      row[3 * x + 1] = g;
      row[3 * x + 2] = b;
    }
  }
  gst_video_frame_map (&frame, &info, buffer, GST_MAP_WRITE);
  conv = gst_video_converter_new (&rgb_info, &info, NULL);
  gst_video_converter_frame (conv, &rgb_frame, &frame);
  gst_video_converter_free (conv);
  gst_vlm_thumbnail_from_frame (thumbnail, &frame);
  gst_video_frame_unmap (&frame);
  gst_video_frame_unmap (&rgb_frame);
  gst_buffer_unref (buffer);
  gst_buffer_unref (rgb);
}

static void
test_thumbnail (void)
{
  static const GstVideoFormat formats[] = { GST_VIDEO_FORMAT_RGB,
    GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_I420,
    GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_YUY2, GST_VIDEO_FORMAT_UYVY,
    GST_VIDEO_FORMAT_GRAY8
  };
  GstVlmThumbnail black, white, grey, red, other;
  guint i;

  thumbnail_of_colour (GST_VIDEO_FORMAT_RGB, 0, 0, 0, &black);
  thumbnail_of_colour (GST_VIDEO_FORMAT_RGB, 255, 255, 255, &white);
  g_assert_cmpfloat (gst_vlm_thumbnail_diff (&black, &black), ==, 0.0);
  g_assert_cmpfloat (gst_vlm_thumbnail_diff (&black, &white), ==, 1.0);
  g_assert_cmpfloat (gst_vlm_thumbnail_diff (&white, &black), ==, 1.0);

  /* the same mid grey in every format gives the same luma, within the
   * YUV video-range rounding */
  thumbnail_of_colour (GST_VIDEO_FORMAT_RGB, 128, 128, 128, &grey);
  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    thumbnail_of_colour (formats[i], 128, 128, 128, &other);
    g_assert_cmpfloat (gst_vlm_thumbnail_diff (&grey, &other), <, 0.05);
  }
  /* red is darker than green in luma, whatever the format */
  thumbnail_of_colour (GST_VIDEO_FORMAT_BGRx, 255, 0, 0, &red);
  thumbnail_of_colour (GST_VIDEO_FORMAT_I420, 0, 255, 0, &other);
  g_assert_cmpuint (red.luma[0], <, other.luma[0]);
}

int
main (int argc, char **argv)
{
  gst_init (NULL, NULL);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sampling/decide-interval", test_decide_interval);
  g_test_add_func ("/sampling/decide-scene", test_decide_scene);
  g_test_add_func ("/sampling/span", test_span);
  g_test_add_func ("/sampling/thumbnail", test_thumbnail);
  return g_test_run ();
}
