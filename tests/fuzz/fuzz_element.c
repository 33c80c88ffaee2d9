/* fuzz_element.c - vlmdescribe's caps and buffer path through GstHarness:
 * random caps (any of the sink formats, sizes, framerates, interlacing),
 * then a random sequence of buffers (exact, short or long, with valid,
 * missing or backward timestamps), caps changes, segments, gaps, flushes,
 * describe requests and property changes, and EOS. Whatever happens, the
 * element must not crash, leak or log a critical, and its stats must add
 * up: frames-sampled = captions + dropped + cancelled + errors + pending
 * + ready, with nothing pending once EOS went through. The element is
 * compiled in (no plugin loading); one element in READY keeps the fixture
 * model loaded, as a long-lived application would. */
#include "fuzz.h"
#include "gstvlmdescribe.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#define MAX_OPS 24
#define MODEL_DIR VLM_TEST_DATA_DIR "/paligemma-tiny/pg-f32"

static const char *const formats[] = {
    "RGB", "BGR", "RGBA", "BGRA", "ARGB", "ABGR", "RGBx", "BGRx", "xRGB",
    "xBGR", "I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "YUY2", "UYVY",
    "GRAY8",
};
static const char *const interlace_modes[] = { "progressive", "interleaved",
                                               "mixed" };
static const gint framerates[][2] = { { 30, 1 }, { 0, 1 }, { 30000, 1001 },
                                      { 1, 1 }, { 1000, 1 } };
static const guint64 intervals[] = { 0, GST_SECOND / 30, GST_SECOND,
                                     GST_CLOCK_TIME_NONE };
static const gdouble thresholds[] = { 0.0, 0.01, 0.3 };
static const gdouble rates[] = { 1.0, 2.0, 0.5, -1.0 };

static GstElement *keeper;

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    /* Only our element, no registry scan of the system's plugins. */
    g_autofree char *registry =
        g_build_filename (vlm_fuzz_tmpdir (), "registry.bin", NULL);
    g_setenv ("GST_REGISTRY", registry, TRUE);
    g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", "", TRUE);
    g_setenv ("GST_PLUGIN_PATH_1_0", "", TRUE);
    g_setenv ("GST_REGISTRY_FORK", "no", TRUE);
    gst_init (argc, argv);
    if (!GST_ELEMENT_REGISTER (vlmdescribe, NULL))
        g_error ("fuzz: cannot register vlmdescribe");
    keeper = gst_element_factory_make ("vlmdescribe", NULL);
    g_object_set (keeper, "model", MODEL_DIR, NULL);
    if (gst_element_set_state (keeper, GST_STATE_READY) != GST_STATE_CHANGE_SUCCESS)
        g_error ("fuzz: cannot load %s", MODEL_DIR);
    return 0;
}

static GstCaps *caps_new (VlmFuzzInput *in, GstVideoInfo *info)
{
    const gint *fps = framerates[vlm_fuzz_u8 (in) % G_N_ELEMENTS (framerates)];
    GstCaps *caps = gst_caps_new_simple ("video/x-raw",
        "format", G_TYPE_STRING, formats[vlm_fuzz_u8 (in) % G_N_ELEMENTS (formats)],
        "width", G_TYPE_INT, 1 + vlm_fuzz_u8 (in),
        "height", G_TYPE_INT, 1 + vlm_fuzz_u8 (in),
        "framerate", GST_TYPE_FRACTION, fps[0], fps[1],
        "pixel-aspect-ratio", GST_TYPE_FRACTION, 1 + vlm_fuzz_u8 (in) % 4, 1,
        "interlace-mode", G_TYPE_STRING,
        interlace_modes[vlm_fuzz_u8 (in) % G_N_ELEMENTS (interlace_modes)], NULL);
    if (!gst_video_info_from_caps (info, caps))
        g_error ("fuzz: caps the element accepts must parse: %" GST_PTR_FORMAT, caps);
    return caps;
}

/* A frame of the caps' size, or a bit shorter or longer, filled with the
 * input's bytes. */
static GstBuffer *buffer_new (VlmFuzzInput *in, const GstVideoInfo *info,
                              guint64 *index)
{
    guint8 mode = vlm_fuzz_u8 (in);
    gsize size = GST_VIDEO_INFO_SIZE (info);
    if (mode % 8 == 1)
        size = size * (mode >> 3) / 32;
    else if (mode % 8 == 2)
        size += mode >> 3;
    GstBuffer *buffer = gst_buffer_new_allocate (NULL, size, NULL);
    GstMapInfo map;
    gst_buffer_map (buffer, &map, GST_MAP_WRITE);
    for (gsize i = 0; i < size; i++)
        map.data[i] = in->size ? in->data[i % in->size] : (guint8) i;
    gst_buffer_unmap (buffer, &map);

    guint8 times = vlm_fuzz_u8 (in);
    if (times % 4 == 1 && *index > 0)
        *index -= 1 + times / 4 % *index; /* backwards */
    else if (times % 4 == 2)
        *index += times / 4; /* a jump */
    if (times % 8 != 3)
        GST_BUFFER_PTS (buffer) = *index * GST_SECOND / 30;
    if (times % 8 != 4)
        GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
    (*index)++;
    return buffer;
}

static GstEvent *segment_new (VlmFuzzInput *in)
{
    GstSegment segment;
    gst_segment_init (&segment, GST_FORMAT_TIME);
    segment.rate = rates[vlm_fuzz_u8 (in) % G_N_ELEMENTS (rates)];
    segment.start = vlm_fuzz_u8 (in) * GST_SECOND / 30;
    segment.base = vlm_fuzz_u8 (in) * GST_SECOND;
    if (vlm_fuzz_u8 (in) % 2)
        segment.stop = segment.start + vlm_fuzz_u8 (in) * GST_SECOND / 10;
    if (segment.rate < 0 && !GST_CLOCK_TIME_IS_VALID (segment.stop))
        segment.stop = segment.start + 10 * GST_SECOND;
    segment.position = segment.rate < 0 ? segment.stop : segment.start;
    return gst_event_new_segment (&segment);
}

static void set_properties (GstElement *e, VlmFuzzInput *in)
{
    guint8 a = vlm_fuzz_u8 (in), b = vlm_fuzz_u8 (in);
    g_object_set (e, "leaky", a % 3,
                  "interval", intervals[a / 3 % G_N_ELEMENTS (intervals)],
                  "max-pending", 1 + b % 4,
                  "scene-threshold", thresholds[b / 4 % G_N_ELEMENTS (thresholds)],
                  "max-new-tokens", 1 + b / 12 % 3,
                  "emit-partial", (gboolean) (a / 12 % 2),
                  "drain-timeout", a / 24 % 2 ? (guint64) 0 : GST_CLOCK_TIME_NONE,
                  NULL);
}

/* The invariant of the stats; at rest, nothing in flight either. */
static void check_stats (GstElement *e, gboolean at_rest)
{
    GstStructure *s;
    guint64 sampled, captions, dropped, cancelled, errors;
    guint pending, ready;
    g_object_get (e, "stats", &s, NULL);
    if (!gst_structure_get (s, "frames-sampled", G_TYPE_UINT64, &sampled,
                            "captions", G_TYPE_UINT64, &captions,
                            "dropped", G_TYPE_UINT64, &dropped,
                            "cancelled", G_TYPE_UINT64, &cancelled,
                            "errors", G_TYPE_UINT64, &errors,
                            "pending", G_TYPE_UINT, &pending,
                            "ready", G_TYPE_UINT, &ready, NULL))
        g_error ("fuzz: incomplete stats %" GST_PTR_FORMAT, s);
    if (sampled != captions + dropped + cancelled + errors + pending + ready ||
        (at_rest && pending + ready > 0))
        g_error ("fuzz: stats do not add up: %" GST_PTR_FORMAT, s);
    gst_structure_free (s);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    VlmFuzzInput in = { data, size };
    GstVideoInfo info;
    guint64 index = 0;

    GstElement *e = gst_element_factory_make ("vlmdescribe", NULL);
    GstBus *bus = gst_bus_new ();
    g_object_set (e, "model", MODEL_DIR, "threads", 1, NULL);
    gst_element_set_bus (e, bus);
    set_properties (e, &in);
    GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
    GstHarness *th = gst_harness_new_with_element (e, NULL, "text_src");
    GstCaps *caps = caps_new (&in, &info);
    gst_harness_set_src_caps (h, caps);

    for (int op = 0; op < MAX_OPS && in.size > 0; op++) {
        guint8 what = vlm_fuzz_u8 (&in);
        switch (what % 10) {
        case 5:
            /* drains; buffers after it are refused until a flush */
            gst_harness_push_event (h, gst_event_new_eos ());
            break;
        case 6:
            gst_harness_push_event (h, gst_event_new_flush_start ());
            gst_harness_push_event (h, gst_event_new_flush_stop (what / 10 % 2));
            gst_harness_push_event (h, segment_new (&in));
            break;
        case 7:
            caps = caps_new (&in, &info);
            gst_harness_push_event (h, gst_event_new_caps (caps));
            gst_caps_unref (caps);
            break;
        case 8:
            if (what / 10 % 2)
                gst_harness_push_event (h, segment_new (&in));
            else
                gst_harness_push_event (h, gst_event_new_gap (
                    index * GST_SECOND / 30, vlm_fuzz_u8 (&in) % 2 ?
                    GST_SECOND / 30 : GST_CLOCK_TIME_NONE));
            break;
        case 9:
            if (what / 10 % 2) {
                guint64 id;
                g_signal_emit_by_name (e, "describe",
                                       what / 20 % 2 ? NULL : "answer en what?", &id);
            } else {
                set_properties (e, &in);
            }
            break;
        default:
            gst_harness_push (h, buffer_new (&in, &info, &index));
            break;
        }
        check_stats (e, FALSE);
    }
    /* EOS drains: nothing is left in flight once it went through. */
    gboolean drained = gst_harness_push_event (h, gst_event_new_eos ());
    check_stats (e, drained);

    gst_harness_teardown (th);
    gst_harness_teardown (h);
    check_stats (e, TRUE);
    gst_bus_set_flushing (bus, TRUE);
    gst_object_unref (bus);
    gst_object_unref (e);
    return 0;
}
