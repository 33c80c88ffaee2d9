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

#ifndef __GST_VLM_REQUEST_H__
#define __GST_VLM_REQUEST_H__

#include <gst/gst.h>
#include "vlm.h"

G_BEGIN_DECLS

/* Where a frame sits on the timeline. */
typedef struct
{
  GstClockTime pts;
  GstClockTime duration;
  GstClockTime running_time;
  GstClockTime stream_time;
  guint64 frame_number;
} GstVlmFrameTimes;

/* One frame to describe, and, once the worker is done, its result.
 * Owned by one thread at a time: the chain creates it, the request queue
 * and the ready list hold it under the element lock, the worker owns it
 * while describing. */
typedef struct
{
  guint64 request_id;           /* 0 = sampled, else from the describe action */
  gchar *prompt;                /* NULL = the model's default prompt */
  VlmDescribeParams params;     /* sampling settings; prompt set at run */
  GstBuffer *rgb;               /* packed RGB8 copy of the frame */
  guint width, height;
  gsize stride;
  GstVlmFrameTimes frame;
  guint epoch;                  /* flush generation it belongs to */
  gint64 arrival_us;            /* monotonic time the frame arrived */
  gint64 ready_us;              /* monotonic time the caption was ready */
  VlmResult *result;            /* NULL if describing failed */
  GError *error;
} GstVlmRequest;

GstVlmRequest *gst_vlm_request_new (GstBuffer * rgb, guint width,
    guint height, gsize stride, const GstVlmFrameTimes * frame,
    guint64 request_id, const gchar * prompt,
    const VlmDescribeParams * params);

void gst_vlm_request_free (GstVlmRequest * request);

void gst_vlm_request_describe (GstVlmRequest * request, VlmSession * session,
    VlmTokenFunc on_token, gpointer user_data);

gdouble gst_vlm_request_latency_ms (const GstVlmRequest * request);

GstStructure *gst_vlm_describe_caption_structure_new (const GstVlmRequest *
    request, const VlmModelInfo * model, GstClockTime ready_pts,
    GstClockTime ready_running_time, GstClockTime text_duration);

GstStructure *gst_vlm_describe_partial_structure_new (const GstVlmRequest *
    request, const VlmModelInfo * model, const gchar * text_so_far);

G_END_DECLS

#endif /* __GST_VLM_REQUEST_H__ */
