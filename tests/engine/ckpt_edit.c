/* ckpt_edit.c - checkpoint surgery for the loader tests. */
#include "ckpt_edit.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

void vlm_test_write_safetensors (const char *path, GPtrArray *tensors)
{
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "__metadata__");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "format");
    json_builder_add_string_value (b, "pt");
    json_builder_end_object (b);
    gsize off = 0;
    for (guint i = 0; i < tensors->len; i++) {
        VlmTestTensor *t = tensors->pdata[i];
        json_builder_set_member_name (b, t->name);
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "dtype");
        json_builder_add_string_value (b, t->dtype);
        json_builder_set_member_name (b, "shape");
        json_builder_begin_array (b);
        for (int d = 0; d < t->ndim; d++)
            json_builder_add_int_value (b, t->shape[d]);
        json_builder_end_array (b);
        json_builder_set_member_name (b, "data_offsets");
        json_builder_begin_array (b);
        json_builder_add_int_value (b, off);
        json_builder_add_int_value (b, off + t->nbytes);
        json_builder_end_array (b);
        json_builder_end_object (b);
        off += t->nbytes;
    }
    json_builder_end_object (b);
    g_autoptr (JsonGenerator) gen = json_generator_new ();
    g_autoptr (JsonNode) root = json_builder_get_root (b);
    json_generator_set_root (gen, root);
    gsize hlen;
    g_autofree char *header = json_generator_to_data (gen, &hlen);
    gsize padded = (hlen + 7) / 8 * 8; /* as HF: pad the header with spaces */
    GByteArray *out = g_byte_array_new ();
    guint8 len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (padded >> (8 * i)) & 0xff;
    g_byte_array_append (out, len, 8);
    g_byte_array_append (out, (guint8 *) header, hlen);
    for (gsize i = hlen; i < padded; i++)
        g_byte_array_append (out, (const guint8 *) " ", 1);
    for (guint i = 0; i < tensors->len; i++) {
        VlmTestTensor *t = tensors->pdata[i];
        g_byte_array_append (out, t->data, t->nbytes);
    }
    g_assert_true (g_file_set_contents (path, (char *) out->data, out->len, NULL));
    g_byte_array_unref (out);
}

static void test_tensor_free (gpointer p)
{
    VlmTestTensor *t = p;
    g_free (t->name);
    g_free (t);
}

GPtrArray *vlm_test_read_tensors (const char *dir, VlmTensorStore **store)
{
    g_autoptr (GError) error = NULL;
    *store = vlm_tensor_store_open_dir (dir, &error);
    g_assert_no_error (error);
    GPtrArray *all = vlm_tensor_store_tensors (*store);
    GPtrArray *out = g_ptr_array_new_with_free_func (test_tensor_free);
    for (guint i = 0; i < all->len; i++) {
        VlmTensorInfo *info = all->pdata[i];
        VlmTestTensor *t = g_new0 (VlmTestTensor, 1);
        t->name = g_strdup (info->name);
        t->dtype = vlm_dtype_name (info->dtype);
        t->ndim = info->ndim;
        memcpy (t->shape, info->shape, sizeof t->shape);
        t->data = info->data;
        t->nbytes = info->nbytes;
        g_ptr_array_add (out, t);
    }
    return out;
}

char *vlm_test_copy_checkpoint (const char *src)
{
    char *dir = g_dir_make_tmp ("vlm-test-XXXXXX", NULL);
    g_assert_nonnull (dir);
    GDir *d = g_dir_open (src, 0, NULL);
    g_assert_nonnull (d);
    const char *name;
    while ((name = g_dir_read_name (d))) {
        g_autofree char *from = g_build_filename (src, name, NULL);
        g_autofree char *to = g_build_filename (dir, name, NULL);
        g_autofree char *data = NULL;
        gsize len;
        g_assert_true (g_file_get_contents (from, &data, &len, NULL));
        g_assert_true (g_file_set_contents (to, data, len, NULL));
    }
    g_dir_close (d);
    return dir;
}

void vlm_test_rmdir (const char *dir)
{
    GDir *d = g_dir_open (dir, 0, NULL);
    if (!d)
        return;
    const char *name;
    while ((name = g_dir_read_name (d))) {
        g_autofree char *p = g_build_filename (dir, name, NULL);
        g_unlink (p);
    }
    g_dir_close (d);
    g_rmdir (dir);
}

void vlm_test_edit_file (const char *dir, const char *file, const char *old,
                         const char *new_text)
{
    g_autofree char *path = g_build_filename (dir, file, NULL);
    g_autofree char *text = NULL;
    g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
    char *at = strstr (text, old);
    g_assert_nonnull (at);
    *at = '\0';
    g_autofree char *edited = g_strconcat (text, new_text, at + strlen (old), NULL);
    g_assert_true (g_file_set_contents (path, edited, -1, NULL));
}
