/* fuzz_image.c - image preprocessing with any size and stride: the
 * Pillow-exact bicubic resize from WxH (stride padded or not) to any
 * smaller or larger size, and vlm_model_preprocess() of the fixture model,
 * which must refuse bad sizes and strides with an error. The pixel buffers
 * are allocated to the exact byte, so any read or write outside them is
 * caught by the sanitizers. */
#include "fuzz.h"
#include "image.h"
#include "vlm.h"

#include <math.h>
#include <string.h>

static VlmModel *model;

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    g_autoptr (GError) error = NULL;
    model = vlm_model_load (VLM_TEST_DATA_DIR "/paligemma-tiny/pg-f32", &error);
    if (!model)
        g_error ("fuzz: %s", error->message);
    return 0;
}

/* Bytes of a packed RGB8 picture: the last row is not padded. */
static gsize image_bytes (guint w, guint h, gsize stride)
{
    return (gsize) (h - 1) * stride + (gsize) w * 3;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    VlmFuzzInput in = { data, size };
    guint src_w = 1 + vlm_fuzz_u32 (&in) % 4096;
    guint src_h = 1 + vlm_fuzz_u32 (&in) % 4096;
    gsize stride = (gsize) src_w * 3 + vlm_fuzz_u8 (&in) % 17;
    guint dst_w = 1 + vlm_fuzz_u32 (&in) % 128;
    guint dst_h = 1 + vlm_fuzz_u32 (&in) % 128;
    guint8 flags = vlm_fuzz_u8 (&in);
    /* Bounded work per input: at most 2^13 source pixels (sizes and
     * ratios matter here, not many pixels). */
    while ((guint64) src_w * src_h > (1u << 13))
        src_h = src_h / 2 + 1, src_w = src_w / 2 + 1, stride = (gsize) src_w * 3;

    gsize n_src = image_bytes (src_w, src_h, stride);
    g_autofree guint8 *src = g_malloc (n_src);
    for (gsize i = 0; i < n_src; i++)
        src[i] = in.size ? in.data[i % in.size] : (guint8) i;

    g_autofree guint8 *dst = g_malloc ((gsize) dst_w * dst_h * 3);
    vlm_image_resize_bicubic (src, src_w, src_h, stride, dst, dst_w, dst_h);
    if (dst_w == src_w && dst_h == src_h)
        for (guint y = 0; y < src_h; y++)
            g_assert (memcmp (dst + (gsize) y * dst_w * 3, src + y * stride,
                              (gsize) src_w * 3) == 0);

    /* The public entry point, with sizes and strides it must refuse. */
    VlmImage image = { src, src_w, src_h, stride };
    gboolean bad = FALSE;
    if (flags & 1)
        image.width = 0, bad = TRUE;
    if (flags & 2)
        image.height = 0, bad = TRUE;
    if (flags & 4 && src_w > 1)
        image.stride = (gsize) src_w * 3 - 1 - flags % 3, bad = TRUE;
    if (flags & 8)
        image.data = NULL, bad = TRUE;
    if (flags & 16 && !bad)
        image.width = src_w / 2 + 1; /* smaller than the buffer: fine */
    g_autoptr (GError) error = NULL;
    gsize n = 0;
    g_autofree float *pixels = vlm_model_preprocess (model, &image, &n, &error);
    const VlmModelInfo *info = vlm_model_get_info (model);
    if (bad) {
        g_assert (pixels == NULL);
        g_assert_error (error, VLM_ERROR, VLM_ERROR_INVALID_INPUT);
        return 0;
    }
    g_assert_no_error (error);
    g_assert (n == (gsize) 3 * info->image_width * info->image_height);
    for (gsize i = 0; i < n; i++)
        g_assert (isfinite (pixels[i]) && fabsf (pixels[i]) <= 1.0f + 1e-6f);
    return 0;
}
