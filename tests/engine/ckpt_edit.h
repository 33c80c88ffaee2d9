/* ckpt_edit.h - making altered copies of a checkpoint directory for tests:
 * renamed, dropped, reshaped or resharded tensors, edited config.json. */
#ifndef VLM_TEST_CKPT_EDIT_H
#define VLM_TEST_CKPT_EDIT_H

#include "safetensors.h"

/* A tensor to write: name, dtype name, shape and bytes (not owned). */
typedef struct {
    char *name;
    const char *dtype;
    int ndim;
    gint64 shape[VLM_MAX_DIMS];
    const guint8 *data;
    gsize nbytes;
} VlmTestTensor;

/* Write a safetensors file of the tensors (GPtrArray of VlmTestTensor*). */
void vlm_test_write_safetensors (const char *path, GPtrArray *tensors);
/* The tensors of dir/model.safetensors (bytes point into *store). */
GPtrArray *vlm_test_read_tensors (const char *dir, VlmTensorStore **store);
/* A fresh temporary copy of a checkpoint directory. g_free the result;
 * vlm_test_rmdir removes it. */
char *vlm_test_copy_checkpoint (const char *src);
void vlm_test_rmdir (const char *dir);
/* Replace "old" by "new" once in dir/file (text files); asserts it occurs. */
void vlm_test_edit_file (const char *dir, const char *file, const char *old,
                         const char *new_text);

#endif
