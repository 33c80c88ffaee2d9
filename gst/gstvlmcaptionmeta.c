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

/* gstvlmcaptionmeta.c owns the VlmCaptionMeta registration: a GstCustomMeta
 * whose structure holds the fields of one vlm-caption. It does not know how
 * captions are made. Readers use gst_buffer_get_custom_meta (buffer,
 * "VlmCaptionMeta") and gst_custom_meta_get_structure(). */

#include "gstvlmcaptionmeta.h"

/**
 * gst_vlm_caption_meta_get_info:
 *
 * Registers VlmCaptionMeta once. It has no tags, so elements that transform
 * video (scale, convert, encode) keep it on the frame.
 *
 * Returns: the meta info.
 */
const GstMetaInfo *
gst_vlm_caption_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    const gchar *tags[] = { NULL };
    const GstMetaInfo *registered;

    registered = gst_meta_register_custom (GST_VLM_CAPTION_META_NAME, tags,
        NULL, NULL, NULL);
    g_once_init_leave (&info, registered);
  }
  return info;
}

static gboolean
copy_field (GQuark field_id, const GValue * value, gpointer user_data)
{
  gst_structure_id_set_value (user_data, field_id, value);
  return TRUE;
}

/**
 * gst_vlm_caption_meta_add:
 * @buffer: a writable buffer
 * @caption: a vlm-caption structure; its fields are copied
 *
 * Returns: (transfer none): the new meta.
 */
GstCustomMeta *
gst_vlm_caption_meta_add (GstBuffer * buffer, const GstStructure * caption)
{
  GstCustomMeta *meta;

  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);

  meta = gst_buffer_add_custom_meta (buffer, GST_VLM_CAPTION_META_NAME);
  gst_structure_foreach (caption, copy_field,
      gst_custom_meta_get_structure (meta));
  return meta;
}
