/* image.h - model input preprocessing: packed RGB8 of any size and stride
 * -> resized exactly as Pillow's bicubic -> rescaled, normalized CHW float.
 * Knows no model, only the numbers of a preprocessor config. */
#ifndef VLM_IMAGE_H
#define VLM_IMAGE_H

#include <glib.h>

/* Resize packed RGB8 (src_stride bytes per row) to dst_w x dst_h packed RGB8
 * (dst_w * 3 bytes per row), bit-exact with Pillow's Image.resize(BICUBIC)
 * (horizontal pass first, as Pillow <= 12.1). */
void vlm_image_resize_bicubic (const guint8 *src, int src_w, int src_h,
                               gsize src_stride, guint8 *dst, int dst_w,
                               int dst_h);

/* out[3, h, w] = (float(px * rescale) - float(mean)) / float(std), with
 * px * rescale computed in double then rounded, as numpy does in HF. */
void vlm_image_normalize (const guint8 *rgb, int w, int h, double rescale,
                          const double mean[3], const double std[3],
                          float *out);

#endif
