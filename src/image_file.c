/* image_file.c - still image decoding for vlm-run through GStreamer. */
#include "image_file.h"

#include "vlm.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

gboolean vlm_image_file_load (const char *path, VlmImageFile *out, GError **error)
{
    if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND, "%s: no such file",
                     path);
        return FALSE;
    }
    gst_init (NULL, NULL);
    GError *perr = NULL;
    GstElement *pipe = gst_parse_launch (
        "filesrc name=src ! decodebin ! videoconvert ! "
        "video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=1",
        &perr);
    if (!pipe) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
                     "%s: cannot build a decoding pipeline: %s", path,
                     perr->message);
        g_error_free (perr);
        return FALSE;
    }
    GstElement *src = gst_bin_get_by_name (GST_BIN (pipe), "src");
    g_object_set (src, "location", path, NULL);
    gst_object_unref (src);
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
    gst_element_set_state (pipe, GST_STATE_PAUSED);

    /* Prerolled (ASYNC_DONE) means the first picture waits in the sink. */
    GstBus *bus = gst_element_get_bus (pipe);
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, GST_CLOCK_TIME_NONE,
        GST_MESSAGE_ERROR | GST_MESSAGE_ASYNC_DONE | GST_MESSAGE_EOS);
    GstSample *sample = NULL;
    if (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ASYNC_DONE)
        sample = gst_app_sink_try_pull_preroll (GST_APP_SINK (sink), 0);
    gboolean ok = FALSE;
    if (!sample) {
        GError *gerr = NULL;
        if (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
            gst_message_parse_error (msg, &gerr, NULL);
        g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
                     "%s: not a decodable image: %s", path,
                     gerr ? gerr->message : "no picture in the file");
        g_clear_error (&gerr);
    } else {
        GstVideoInfo info;
        GstVideoFrame frame;
        GstBuffer *buf = gst_sample_get_buffer (sample);
        if (gst_video_info_from_caps (&info, gst_sample_get_caps (sample)) &&
            gst_video_frame_map (&frame, &info, buf, GST_MAP_READ)) {
            out->width = GST_VIDEO_FRAME_WIDTH (&frame);
            out->height = GST_VIDEO_FRAME_HEIGHT (&frame);
            out->stride = (gsize) out->width * 3;
            out->data = g_malloc (out->stride * out->height);
            const guint8 *p = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
            gsize sstride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
            for (guint y = 0; y < out->height; y++)
                memcpy (out->data + y * out->stride, p + y * sstride, out->stride);
            gst_video_frame_unmap (&frame);
            ok = TRUE;
        } else {
            g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT,
                         "%s: cannot map the decoded picture", path);
        }
        gst_sample_unref (sample);
    }
    if (msg)
        gst_message_unref (msg);
    gst_object_unref (bus);
    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (sink);
    gst_object_unref (pipe);
    return ok;
}

void vlm_image_file_clear (VlmImageFile *img)
{
    g_clear_pointer (&img->data, g_free);
}
