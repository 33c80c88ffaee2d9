/* fixture.c - fixture reading for tests. expected.safetensors is read with
 * libvlm's own parser, which its own tests cover separately. */
#include "fixture.h"

#include "safetensors.h"

#include <math.h>
#include <string.h>

const char *vlm_test_data_dir (void)
{
    return VLM_TEST_DATA_DIR;
}

static gint by_name (gconstpointer a, gconstpointer b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

GPtrArray *vlm_fixture_list_cases (const char *root)
{
    g_autofree char *dir = g_build_filename (root, "cases", NULL);
    GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
    GDir *d = g_dir_open (dir, 0, NULL);
    g_assert_nonnull (d);
    const char *n;
    while ((n = g_dir_read_name (d)))
        g_ptr_array_add (names, g_strdup (n));
    g_dir_close (d);
    g_ptr_array_sort (names, by_name);
    return names;
}

static GArray *ids_of (JsonObject *o, const char *key)
{
    JsonArray *a = json_object_get_array_member (o, key);
    GArray *ids = g_array_new (FALSE, FALSE, sizeof (guint32));
    for (guint i = 0; i < json_array_get_length (a); i++) {
        guint32 v = json_array_get_int_element (a, i);
        g_array_append_val (ids, v);
    }
    return ids;
}

VlmFixtureCase *vlm_fixture_case_load (const char *root, const char *name)
{
    VlmFixtureCase *c = g_new0 (VlmFixtureCase, 1);
    c->name = g_strdup (name);
    c->root = g_strdup (root);
    g_autofree char *json = g_build_filename (root, "cases", name, "expected.json", NULL);
    g_autoptr (JsonParser) p = json_parser_new ();
    g_assert_true (json_parser_load_from_file (p, json, NULL));
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    c->model_dir = g_build_filename (root, json_object_get_string_member (o, "model"), NULL);
    c->image_path = g_build_filename (root, json_object_get_string_member (o, "image"), NULL);
    c->prompt = g_strdup (json_object_get_string_member (o, "prompt"));
    c->text = g_strdup (json_object_get_string_member (o, "text"));
    c->input_ids = ids_of (o, "input_ids");
    c->generated_ids = ids_of (o, "generated_ids");

    g_autofree char *st = g_build_filename (root, "cases", name, "expected.safetensors", NULL);
    c->mapping = g_mapped_file_new (st, FALSE, NULL);
    g_assert_nonnull (c->mapping);
    g_autoptr (VlmTensorStore) store = vlm_tensor_store_new ();
    g_assert_true (vlm_safetensors_parse (
        store, (const guint8 *) g_mapped_file_get_contents (c->mapping),
        g_mapped_file_get_length (c->mapping), st, NULL));
    c->tensors = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) g_array_unref);
    GPtrArray *all = vlm_tensor_store_tensors (store);
    for (guint i = 0; i < all->len; i++) {
        VlmTensorInfo *t = all->pdata[i];
        if (t->dtype != VLM_DTYPE_F32)
            continue;
        GArray *a = g_array_sized_new (FALSE, FALSE, sizeof (float), t->n_elements);
        g_array_append_vals (a, t->data, t->n_elements);
        g_hash_table_insert (c->tensors, g_strdup (t->name), a);
    }
    return c;
}

void vlm_fixture_case_free (VlmFixtureCase *c)
{
    g_free (c->name);
    g_free (c->root);
    g_free (c->model_dir);
    g_free (c->image_path);
    g_free (c->prompt);
    g_free (c->text);
    g_array_unref (c->input_ids);
    g_array_unref (c->generated_ids);
    g_hash_table_unref (c->tensors);
    g_mapped_file_unref (c->mapping);
    g_free (c);
}

GArray *vlm_fixture_tensor (VlmFixtureCase *c, const char *name)
{
    return g_hash_table_lookup (c->tensors, name);
}

double vlm_max_abs_diff (const float *a, const float *b, gsize n)
{
    double m = 0;
    for (gsize i = 0; i < n; i++)
        m = fmax (m, fabs ((double) a[i] - b[i]));
    return m;
}

double vlm_max_abs (const float *a, gsize n)
{
    double m = 0;
    for (gsize i = 0; i < n; i++)
        m = fmax (m, fabs ((double) a[i]));
    return m;
}
