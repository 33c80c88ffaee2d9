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

#ifndef __GST_VLM_DESCRIBE_H__
#define __GST_VLM_DESCRIBE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/**
 * GstVlmDescribeLeaky:
 * @GST_VLM_DESCRIBE_LEAKY_NO: the streaming thread waits for each caption
 * @GST_VLM_DESCRIBE_LEAKY_UPSTREAM: drop the new request when full
 * @GST_VLM_DESCRIBE_LEAKY_DOWNSTREAM: drop the oldest waiting request
 *
 * What happens to a sampled frame when the worker is busy.
 *
 * Since: 0.1
 */
typedef enum
{
  GST_VLM_DESCRIBE_LEAKY_NO,
  GST_VLM_DESCRIBE_LEAKY_UPSTREAM,
  GST_VLM_DESCRIBE_LEAKY_DOWNSTREAM,
} GstVlmDescribeLeaky;

#define GST_TYPE_VLM_DESCRIBE_LEAKY (gst_vlm_describe_leaky_get_type ())
GType gst_vlm_describe_leaky_get_type (void);

#define GST_TYPE_VLM_DESCRIBE (gst_vlm_describe_get_type ())
G_DECLARE_FINAL_TYPE (GstVlmDescribe, gst_vlm_describe, GST, VLM_DESCRIBE,
    GstElement);

GST_ELEMENT_REGISTER_DECLARE (vlmdescribe);

G_END_DECLS

#endif /* __GST_VLM_DESCRIBE_H__ */
