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

/* gstvlmtextstream.c owns the timing of text_src: where each caption buffer
 * starts and ends, and the GAP events for video that no caption covers. It
 * keeps two promises that make it safe in front of textoverlay and muxers:
 * text never overlaps (a caption starts no earlier than the previous one
 * ends), and a caption is pushed only once the video has reached its start
 * (so a consumer holding the previous caption can always let go of it).
 * A caption waiting for its start is superseded by a newer one, so the wait
 * list stays bounded. It knows nothing about the model or the queue. */

#include <string.h>

#include "gstvlmtextstream.h"

GST_DEBUG_CATEGORY_EXTERN (gst_vlm_describe_debug);
#define GST_CAT_DEFAULT gst_vlm_describe_debug

void
gst_vlm_text_stream_init (GstVlmTextStream * ts, GstPad * pad)
{
  ts->pad = pad;
  ts->end = GST_CLOCK_TIME_NONE;
  g_queue_init (&ts->pending);
}

/* After a flush or at a new segment: forget the old timeline. */
void
gst_vlm_text_stream_clear (GstVlmTextStream * ts)
{
  g_queue_clear_full (&ts->pending, (GDestroyNotify) gst_buffer_unref);
  ts->end = GST_CLOCK_TIME_NONE;
}

static GstClockTime
buffer_end (GstBuffer * buffer)
{
  GstClockTime start = GST_BUFFER_PTS (buffer);

  if (!GST_CLOCK_TIME_IS_VALID (start))
    return GST_CLOCK_TIME_NONE;
  return GST_BUFFER_DURATION_IS_VALID (buffer) ?
      start + GST_BUFFER_DURATION (buffer) : start;
}

/* Where the last placed caption ends (or the last pushed text). */
static GstClockTime
placed_end (GstVlmTextStream * ts)
{
  GstBuffer *last = g_queue_peek_tail (&ts->pending);

  return last ? buffer_end (last) : ts->end;
}

/**
 * gst_vlm_text_stream_place:
 * @text: the caption
 * @pts: the video position it is ready at
 * @span: how long it applies, or GST_CLOCK_TIME_NONE
 *
 * Queues a caption buffer starting at @pts, or where the previous caption
 * ends if that is later. A caption still waiting to start after @pts is
 * superseded by this newer one (its message was delivered), so at most
 * one caption waits beyond the video.
 */
void
gst_vlm_text_stream_place (GstVlmTextStream * ts, const gchar * text,
    GstClockTime pts, GstClockTime span)
{
  GstBuffer *buffer, *last;
  GstClockTime start = pts, end;

  while (GST_CLOCK_TIME_IS_VALID (pts)
      && (last = g_queue_peek_tail (&ts->pending))
      && GST_CLOCK_TIME_IS_VALID (GST_BUFFER_PTS (last))
      && GST_BUFFER_PTS (last) > pts) {
    GST_DEBUG ("caption waiting for %" GST_TIME_FORMAT " superseded",
        GST_TIME_ARGS (GST_BUFFER_PTS (last)));
    gst_buffer_unref (g_queue_pop_tail (&ts->pending));
  }

  end = placed_end (ts);
  if (GST_CLOCK_TIME_IS_VALID (start) && GST_CLOCK_TIME_IS_VALID (end)
      && end > start)
    start = end;

  /* an empty caption (the model stopped at once) is an empty buffer */
  buffer = *text ? gst_buffer_new_memdup (text, strlen (text)) :
      gst_buffer_new ();
  GST_BUFFER_PTS (buffer) = start;
  GST_BUFFER_DURATION (buffer) = span;
  GST_LOG ("caption placed at %" GST_TIME_FORMAT " for %" GST_TIME_FORMAT,
      GST_TIME_ARGS (start), GST_TIME_ARGS (span));
  g_queue_push_tail (&ts->pending, buffer);
}

/* Pushes the pending captions that start at or before @position. */
static GstFlowReturn
push_due (GstVlmTextStream * ts, GstClockTime position)
{
  GstFlowReturn ret = GST_FLOW_OK;
  GstBuffer *head;

  while ((head = g_queue_peek_head (&ts->pending))) {
    GstClockTime start = GST_BUFFER_PTS (head);

    if (GST_CLOCK_TIME_IS_VALID (start) && GST_CLOCK_TIME_IS_VALID (position)
        && start > position)
      break;
    if (GST_CLOCK_TIME_IS_VALID (start))
      ts->end = buffer_end (head);
    ret = gst_pad_push (ts->pad, g_queue_pop_head (&ts->pending));
  }
  return ret;
}

/**
 * gst_vlm_text_stream_advance:
 * @pts: PTS of the video frame about to leave
 * @duration: its duration, or GST_CLOCK_TIME_NONE
 *
 * Brings text_src up to this frame before it leaves: pushes the captions
 * that start by then, and a GAP for the part of the frame no caption covers.
 *
 * Returns: the flow of the last caption pushed.
 */
GstFlowReturn
gst_vlm_text_stream_advance (GstVlmTextStream * ts, GstClockTime pts,
    GstClockTime duration)
{
  GstFlowReturn ret = push_due (ts, pts);
  GstClockTime frame_end, gap_start;

  /* a pending caption covers from the previous one's end: no hole */
  if (!GST_CLOCK_TIME_IS_VALID (pts) || !g_queue_is_empty (&ts->pending))
    return ret;

  frame_end = GST_CLOCK_TIME_IS_VALID (duration) ? pts + duration : pts;
  if (GST_CLOCK_TIME_IS_VALID (ts->end) && ts->end > pts
      && ts->end >= frame_end)
    return ret;

  gap_start = GST_CLOCK_TIME_IS_VALID (ts->end) && ts->end > pts ?
      ts->end : pts;
  gst_pad_push_event (ts->pad, gst_event_new_gap (gap_start,
          GST_CLOCK_TIME_IS_VALID (duration) ? frame_end - gap_start :
          GST_CLOCK_TIME_NONE));
  ts->end = frame_end;
  return ret;
}

/**
 * gst_vlm_text_stream_finish:
 * @end: where the video ended
 *
 * At EOS or a new segment: pushes the captions that start within the
 * video; the ones placed after its end lie outside the stream and are
 * dropped (their message and signal were delivered).
 *
 * Returns: the flow of the last caption pushed.
 */
GstFlowReturn
gst_vlm_text_stream_finish (GstVlmTextStream * ts, GstClockTime end)
{
  GstFlowReturn ret = push_due (ts, end);

  if (!g_queue_is_empty (&ts->pending))
    GST_DEBUG ("%u caption(s) start after the end of the video, not pushed",
        g_queue_get_length (&ts->pending));
  gst_vlm_text_stream_clear (ts);
  return ret;
}
