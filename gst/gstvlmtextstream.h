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

#ifndef __GST_VLM_TEXT_STREAM_H__
#define __GST_VLM_TEXT_STREAM_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* The caption stream on text_src. Used only from the sink pad's streaming
 * thread, so it has no lock of its own. */
typedef struct
{
  GstPad *pad;                  /* text_src, not owned */
  GstClockTime end;             /* end of the captions and GAPs pushed */
  GQueue pending;               /* GstBuffer: placed, not pushed yet; at
                                 * most one starts after the video */
} GstVlmTextStream;

void gst_vlm_text_stream_init (GstVlmTextStream * ts, GstPad * pad);

void gst_vlm_text_stream_clear (GstVlmTextStream * ts);

void gst_vlm_text_stream_place (GstVlmTextStream * ts, const gchar * text,
    GstClockTime pts, GstClockTime span);

GstFlowReturn gst_vlm_text_stream_advance (GstVlmTextStream * ts,
    GstClockTime pts, GstClockTime duration);

GstFlowReturn gst_vlm_text_stream_finish (GstVlmTextStream * ts,
    GstClockTime end);

G_END_DECLS

#endif /* __GST_VLM_TEXT_STREAM_H__ */
