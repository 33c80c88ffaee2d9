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

/* gstvlmsampling.c owns the decision of which frames get described: the
 * interval rule in running time, the scene-change rule on a small luma
 * thumbnail, and how long a caption applies. Pure functions: no element
 * state, no locks, no engine. */

#include "gstvlmsampling.h"

/* Points averaged per thumbnail cell along each axis. */
#define CELL_TAPS 4

/**
 * gst_vlm_sampling_decide:
 * @last_running_time: running time of the last sampled frame, or
 *     GST_CLOCK_TIME_NONE if none was sampled yet
 * @running_time: running time of this frame (may be GST_CLOCK_TIME_NONE)
 * @interval: minimum running time between two interval samples, 0 = every
 *     frame, GST_CLOCK_TIME_NONE = never by interval
 * @scene_diff: difference to the last sampled frame, 0..1
 * @scene_threshold: sample when @scene_diff exceeds it; 0 = off
 *
 * Returns: why this frame is sampled, or GST_VLM_SAMPLE_SKIP.
 */
GstVlmSampleReason
gst_vlm_sampling_decide (GstClockTime last_running_time,
    GstClockTime running_time, GstClockTime interval, gdouble scene_diff,
    gdouble scene_threshold)
{
  if (!GST_CLOCK_TIME_IS_VALID (last_running_time))
    return GST_VLM_SAMPLE_FIRST;
  if (interval == 0)
    return GST_VLM_SAMPLE_INTERVAL;
  if (GST_CLOCK_TIME_IS_VALID (running_time)
      && GST_CLOCK_TIME_IS_VALID (interval)) {
    /* time going backwards means a new timeline: start over */
    if (running_time < last_running_time
        || running_time - last_running_time >= interval)
      return GST_VLM_SAMPLE_INTERVAL;
  }
  if (scene_threshold > 0.0 && scene_diff > scene_threshold)
    return GST_VLM_SAMPLE_SCENE;
  return GST_VLM_SAMPLE_SKIP;
}

/**
 * gst_vlm_sampling_span:
 * @interval: the sampling interval
 * @fps_n: framerate numerator, 0 if unknown or variable
 * @fps_d: framerate denominator
 * @frame_duration: duration of this frame, or GST_CLOCK_TIME_NONE
 *
 * How long a caption applies when nothing else is known: until the next
 * interval sample is due. With a known framerate that is the interval
 * rounded up to whole frames, on the same grid as the frames' timestamps
 * (the first frame at or after the deadline is the next sampled one); with
 * interval 0, one frame.
 *
 * Returns: the span, or GST_CLOCK_TIME_NONE if unknown.
 */
GstClockTime
gst_vlm_sampling_span (GstClockTime interval, gint fps_n, gint fps_d,
    GstClockTime frame_duration)
{
  guint64 n_frames;

  if (interval == 0)
    return frame_duration;
  if (!GST_CLOCK_TIME_IS_VALID (interval) || interval > G_MAXUINT64 / 4)
    return GST_CLOCK_TIME_NONE;
  if (fps_n <= 0 || fps_d <= 0)
    return interval;
  n_frames = gst_util_uint64_scale_ceil (interval, fps_n,
      (guint64) fps_d * GST_SECOND);
  return gst_util_uint64_scale (n_frames, (guint64) fps_d * GST_SECOND,
      fps_n);
}

static inline guint
comp_at (const GstVideoFrame * frame, guint comp, guint x, guint y)
{
  const guint8 *row = GST_VIDEO_FRAME_COMP_DATA (frame, comp)
      + y * GST_VIDEO_FRAME_COMP_STRIDE (frame, comp);

  return row[x * GST_VIDEO_FRAME_COMP_PSTRIDE (frame, comp)];
}

static inline guint
luma_at (const GstVideoFrame * frame, guint x, guint y)
{
  /* YUV and GRAY: component 0 is luma, never subsampled */
  if (!GST_VIDEO_FORMAT_INFO_IS_RGB (frame->info.finfo))
    return comp_at (frame, 0, x, y);

  /* BT.601 weights in 8-bit fixed point */
  return (77 * comp_at (frame, 0, x, y) + 150 * comp_at (frame, 1, x, y)
      + 29 * comp_at (frame, 2, x, y)) >> 8;
}

/**
 * gst_vlm_thumbnail_from_frame:
 * @thumbnail: (out caller-allocates): the thumbnail
 * @frame: a mapped 8-bit RGB, YUV or GRAY frame
 *
 * Averages CELL_TAPS x CELL_TAPS luma samples in each of the
 * GST_VLM_THUMBNAIL_SIZE x GST_VLM_THUMBNAIL_SIZE cells: a few thousand
 * reads per frame, whatever its size.
 */
void
gst_vlm_thumbnail_from_frame (GstVlmThumbnail * thumbnail,
    const GstVideoFrame * frame)
{
  guint width = GST_VIDEO_FRAME_WIDTH (frame);
  guint height = GST_VIDEO_FRAME_HEIGHT (frame);
  guint n = GST_VLM_THUMBNAIL_SIZE * CELL_TAPS;
  guint cy, cx, ty, tx;

  for (cy = 0; cy < GST_VLM_THUMBNAIL_SIZE; cy++) {
    for (cx = 0; cx < GST_VLM_THUMBNAIL_SIZE; cx++) {
      guint sum = 0;

      for (ty = 0; ty < CELL_TAPS; ty++) {
        /* centre of sub-cell (cy * CELL_TAPS + ty) of n along y */
        guint y = (guint) (((guint64) (cy * CELL_TAPS + ty) * 2 + 1) *
            height / (2 * n));
        for (tx = 0; tx < CELL_TAPS; tx++) {
          guint x = (guint) (((guint64) (cx * CELL_TAPS + tx) * 2 + 1) *
              width / (2 * n));
          sum += luma_at (frame, x, y);
        }
      }
      thumbnail->luma[cy * GST_VLM_THUMBNAIL_SIZE + cx] =
          (guint8) ((sum + CELL_TAPS * CELL_TAPS / 2) /
          (CELL_TAPS * CELL_TAPS));
    }
  }
}

/**
 * gst_vlm_thumbnail_diff:
 *
 * Returns: the mean absolute luma difference, 0 (same) .. 1 (black/white).
 */
gdouble
gst_vlm_thumbnail_diff (const GstVlmThumbnail * a, const GstVlmThumbnail * b)
{
  guint64 sum = 0;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (a->luma); i++)
    sum += ABS ((gint) a->luma[i] - (gint) b->luma[i]);
  return (gdouble) sum / (255.0 * G_N_ELEMENTS (a->luma));
}
