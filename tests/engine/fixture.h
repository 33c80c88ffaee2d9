/* fixture.h - reading the reference fixtures (expected.json and
 * expected.safetensors) for the fidelity tests. */
#ifndef VLM_TEST_FIXTURE_H
#define VLM_TEST_FIXTURE_H

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct {
    char *name;            /* case directory name */
    char *root;            /* fixture set root */
    char *model_dir;
    char *image_path;
    char *prompt;
    GArray *input_ids;     /* guint32 */
    GArray *generated_ids; /* guint32 */
    char *text;
    GHashTable *tensors;   /* name -> GArray of float (F32 tensors only) */
    GMappedFile *mapping;
} VlmFixtureCase;

/* Every case directory under root/cases, sorted. */
GPtrArray *vlm_fixture_list_cases (const char *root);
VlmFixtureCase *vlm_fixture_case_load (const char *root, const char *name);
void vlm_fixture_case_free (VlmFixtureCase *c);
/* The expected float tensor or NULL. */
GArray *vlm_fixture_tensor (VlmFixtureCase *c, const char *name);

/* max |a - b| over n values */
double vlm_max_abs_diff (const float *a, const float *b, gsize n);
double vlm_max_abs (const float *a, gsize n);

/* Build-time paths. */
const char *vlm_test_data_dir (void);

#endif
