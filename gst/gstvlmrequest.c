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

/* gstvlmrequest.c owns one describe request: the RGB copy of a frame with
 * its timestamps, running it through the engine, and turning the result
 * into the vlm-caption structure. That single builder feeds the bus message,
 * the VlmCaptionMeta and the caption signal, so they cannot drift apart.
 * It knows nothing about pads, queues or locks. */

#include "gstvlmrequest.h"

GstVlmRequest *
gst_vlm_request_new (GstBuffer * rgb, guint width, guint height, gsize stride,
    const GstVlmFrameTimes * frame, guint64 request_id, const gchar * prompt,
    const VlmDescribeParams * params)
{
  GstVlmRequest *request = g_new0 (GstVlmRequest, 1);

  request->request_id = request_id;
  request->prompt = g_strdup (prompt);
  request->params = *params;
  request->rgb = gst_buffer_ref (rgb);
  request->width = width;
  request->height = height;
  request->stride = stride;
  request->frame = *frame;
  request->arrival_us = g_get_monotonic_time ();
  return request;
}

void
gst_vlm_request_free (GstVlmRequest * request)
{
  if (!request)
    return;
  g_free (request->prompt);
  gst_buffer_unref (request->rgb);
  if (request->result)
    vlm_result_free (request->result);
  g_clear_error (&request->error);
  g_free (request);
}

/**
 * gst_vlm_request_describe:
 *
 * Runs the engine on the request's frame; fills result or error and
 * ready_us. Blocks for as long as the model takes: call with no lock held.
 */
void
gst_vlm_request_describe (GstVlmRequest * request, VlmSession * session,
    VlmTokenFunc on_token, gpointer user_data)
{
  VlmDescribeParams params = request->params;
  GstMapInfo map;
  VlmImage image;

  if (!gst_buffer_map (request->rgb, &map, GST_MAP_READ)) {
    g_set_error (&request->error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
        "could not map the converted frame");
    return;
  }
  image.data = map.data;
  image.width = request->width;
  image.height = request->height;
  image.stride = request->stride;

  params.prompt = request->prompt;
  params.on_token = on_token;
  params.user_data = user_data;

  request->result = vlm_session_describe (session, &image, &params,
      &request->error);
  request->ready_us = g_get_monotonic_time ();
  gst_buffer_unmap (request->rgb, &map);
}

gdouble
gst_vlm_request_latency_ms (const GstVlmRequest * request)
{
  return (request->ready_us - request->arrival_us) / 1000.0;
}

static GstStructure *
structure_new_for_frame (const gchar * name, const GstVlmRequest * request,
    const VlmModelInfo * model)
{
  const gchar *prompt = request->prompt ? request->prompt :
      model->default_prompt;

  return gst_structure_new (name,
      "prompt", G_TYPE_STRING, prompt,
      "model", G_TYPE_STRING, model->path,
      "pts", G_TYPE_UINT64, request->frame.pts,
      "running-time", G_TYPE_UINT64, request->frame.running_time,
      "stream-time", G_TYPE_UINT64, request->frame.stream_time,
      "frame-number", G_TYPE_UINT64, request->frame.frame_number,
      "request-id", G_TYPE_UINT64, request->request_id, NULL);
}

/**
 * gst_vlm_describe_caption_structure_new:
 * @request: a request the engine described successfully
 * @model: the model that described it
 * @ready_pts: PTS of the video position where the caption was ready
 * @ready_running_time: its running time
 * @text_duration: how long the caption applies on text_src
 *
 * Builds the vlm-caption structure; the fields are documented in the
 * element's SECTION block.
 *
 * Returns: (transfer full): the structure.
 */
GstStructure *
gst_vlm_describe_caption_structure_new (const GstVlmRequest * request,
    const VlmModelInfo * model, GstClockTime ready_pts,
    GstClockTime ready_running_time, GstClockTime text_duration)
{
  const VlmResult *result = request->result;
  GstStructure *s = structure_new_for_frame ("vlm-caption", request, model);

  gst_structure_set (s,
      "text", G_TYPE_STRING, result->text,
      "duration", G_TYPE_UINT64, text_duration,
      "ready-pts", G_TYPE_UINT64, ready_pts,
      "ready-running-time", G_TYPE_UINT64, ready_running_time,
      "finish-reason", G_TYPE_STRING,
      vlm_finish_reason_to_string (result->finish_reason),
      "tokens-image", G_TYPE_UINT, result->stats.n_tokens_image,
      "tokens-prompt", G_TYPE_UINT, result->stats.n_tokens_prompt,
      "tokens-generated", G_TYPE_UINT, result->stats.n_tokens_generated,
      "latency-ms", G_TYPE_DOUBLE, gst_vlm_request_latency_ms (request),
      "preprocess-ms", G_TYPE_DOUBLE, result->stats.preprocess_ms,
      "vision-ms", G_TYPE_DOUBLE, result->stats.vision_ms,
      "prefill-ms", G_TYPE_DOUBLE, result->stats.prefill_ms,
      "decode-ms", G_TYPE_DOUBLE, result->stats.decode_ms, NULL);
  return s;
}

/**
 * gst_vlm_describe_partial_structure_new:
 *
 * Builds a vlm-caption-partial structure: the frame fields of vlm-caption
 * plus the text generated so far.
 *
 * Returns: (transfer full): the structure.
 */
GstStructure *
gst_vlm_describe_partial_structure_new (const GstVlmRequest * request,
    const VlmModelInfo * model, const gchar * text_so_far)
{
  GstStructure *s = structure_new_for_frame ("vlm-caption-partial", request,
      model);

  gst_structure_set (s, "text", G_TYPE_STRING, text_so_far, NULL);
  return s;
}
