/* image_file.h - decode a PNG/JPEG/... file to packed RGB8 through
 * GStreamer (filesrc ! decodebin ! videoconvert ! appsink). Used by vlm-run
 * only; the engine itself never touches GStreamer. */
#ifndef VLM_IMAGE_FILE_H
#define VLM_IMAGE_FILE_H

#include <glib.h>

typedef struct {
    guint8 *data;       /* packed RGB8, stride bytes per row */
    guint width, height;
    gsize stride;
} VlmImageFile;

gboolean vlm_image_file_load (const char *path, VlmImageFile *out, GError **error);
void vlm_image_file_clear (VlmImageFile *img);

#endif
