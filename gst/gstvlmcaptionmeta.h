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

#ifndef __GST_VLM_CAPTION_META_H__
#define __GST_VLM_CAPTION_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_VLM_CAPTION_META_NAME "VlmCaptionMeta"

const GstMetaInfo *gst_vlm_caption_meta_get_info (void);

GstCustomMeta *gst_vlm_caption_meta_add (GstBuffer * buffer,
    const GstStructure * caption);

G_END_DECLS

#endif /* __GST_VLM_CAPTION_META_H__ */
