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

#ifndef __GST_VLM_SAMPLING_H__
#define __GST_VLM_SAMPLING_H__

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* Side of the square luma thumbnail the scene detector compares. */
#define GST_VLM_THUMBNAIL_SIZE 16

typedef struct
{
  guint8 luma[GST_VLM_THUMBNAIL_SIZE * GST_VLM_THUMBNAIL_SIZE];
} GstVlmThumbnail;

typedef enum
{
  GST_VLM_SAMPLE_SKIP,
  GST_VLM_SAMPLE_FIRST,
  GST_VLM_SAMPLE_INTERVAL,
  GST_VLM_SAMPLE_SCENE,
} GstVlmSampleReason;

GstVlmSampleReason gst_vlm_sampling_decide (GstClockTime last_running_time,
    GstClockTime running_time, GstClockTime interval, gdouble scene_diff,
    gdouble scene_threshold);

GstClockTime gst_vlm_sampling_span (GstClockTime interval, gint fps_n,
    gint fps_d, GstClockTime frame_duration);

void gst_vlm_thumbnail_from_frame (GstVlmThumbnail * thumbnail,
    const GstVideoFrame * frame);

gdouble gst_vlm_thumbnail_diff (const GstVlmThumbnail * a,
    const GstVlmThumbnail * b);

G_END_DECLS

#endif /* __GST_VLM_SAMPLING_H__ */
