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

#ifndef __GST_VLM_MODEL_CACHE_H__
#define __GST_VLM_MODEL_CACHE_H__

#include <glib.h>
#include "vlm.h"

G_BEGIN_DECLS

VlmModel *gst_vlm_model_cache_acquire (const gchar * path_or_repo_id,
    VlmWeightFormat format, GError ** error);

void gst_vlm_model_cache_release (VlmModel * model);

G_END_DECLS

#endif /* __GST_VLM_MODEL_CACHE_H__ */
