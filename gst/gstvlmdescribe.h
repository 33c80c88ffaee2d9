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

#include "vlm.h"

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

/**
 * GstVlmDescribeWeights:
 * @GST_VLM_DESCRIBE_WEIGHTS_AS_STORED: as the checkpoint stores them
 * @GST_VLM_DESCRIBE_WEIGHTS_Q8: quantized to 8 bits at load
 * @GST_VLM_DESCRIBE_WEIGHTS_Q4: quantized to 4 bits at load
 *
 * How the model's weight matrices are kept in memory.
 *
 * Since: 0.1
 */
typedef enum
{
  GST_VLM_DESCRIBE_WEIGHTS_AS_STORED = VLM_WEIGHTS_AS_STORED,
  GST_VLM_DESCRIBE_WEIGHTS_Q8 = VLM_WEIGHTS_Q8,
  GST_VLM_DESCRIBE_WEIGHTS_Q4 = VLM_WEIGHTS_Q4,
  GST_VLM_DESCRIBE_WEIGHTS_BF16_DOT = VLM_WEIGHTS_BF16_DOT,
} GstVlmDescribeWeights;

#define GST_TYPE_VLM_DESCRIBE_WEIGHTS (gst_vlm_describe_weights_get_type ())
GType gst_vlm_describe_weights_get_type (void);

#define GST_TYPE_VLM_DESCRIBE (gst_vlm_describe_get_type ())
G_DECLARE_FINAL_TYPE (GstVlmDescribe, gst_vlm_describe, GST, VLM_DESCRIBE,
    GstElement);

GST_ELEMENT_REGISTER_DECLARE (vlmdescribe);

G_END_DECLS

#endif /* __GST_VLM_DESCRIBE_H__ */
