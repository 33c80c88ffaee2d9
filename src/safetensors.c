/* safetensors.c - safetensors parsing, bounds checking and shard indexes.
 *
 * Every offset in a header is checked against the file before a tensor is
 * exposed, so no tensor can point outside its mapping. */
#include "safetensors.h"

#include "vlm.h"

#include <json-glib/json-glib.h>
#include <string.h>

struct _VlmTensorStore {
    GHashTable *tensors;      /* name -> VlmTensorInfo* */
    GPtrArray *order;         /* VlmTensorInfo*, in file order, for stable messages */
    GPtrArray *mappings;      /* GMappedFile* */
    GHashTable *metadata;     /* key -> value ("format" -> "pt") */
};

static const struct {
    const char *name;
    VlmDtype dtype;
    gsize size;
} dtypes[] = {
    { "F32", VLM_DTYPE_F32, 4 },  { "F16", VLM_DTYPE_F16, 2 },
    { "BF16", VLM_DTYPE_BF16, 2 }, { "F64", VLM_DTYPE_F64, 8 },
    { "I64", VLM_DTYPE_I64, 8 },  { "I32", VLM_DTYPE_I32, 4 },
    { "I16", VLM_DTYPE_I16, 2 },  { "I8", VLM_DTYPE_I8, 1 },
    { "U32", VLM_DTYPE_U32, 4 },  { "U16", VLM_DTYPE_U16, 2 },
    { "U8", VLM_DTYPE_U8, 1 },    { "BOOL", VLM_DTYPE_BOOL, 1 },
};

const char *vlm_dtype_name (VlmDtype dtype)
{
    for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return "?";
}

gsize vlm_dtype_size (VlmDtype dtype)
{
    for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    return 0;
}

char *vlm_shape_to_string (int ndim, const gint64 *shape)
{
    GString *s = g_string_new ("[");
    for (int i = 0; i < ndim; i++)
        g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                                shape[i]);
    g_string_append_c (s, ']');
    return g_string_free (s, FALSE);
}

static void tensor_info_free (gpointer p)
{
    VlmTensorInfo *t = p;
    g_free ((char *) t->name);
    g_free ((char *) t->file);
    g_free (t);
}

VlmTensorStore *vlm_tensor_store_new (void)
{
    VlmTensorStore *store = g_new0 (VlmTensorStore, 1);
    store->tensors = g_hash_table_new (g_str_hash, g_str_equal);
    store->order = g_ptr_array_new_with_free_func (tensor_info_free);
    store->mappings =
        g_ptr_array_new_with_free_func ((GDestroyNotify) g_mapped_file_unref);
    store->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                             g_free);
    return store;
}

void vlm_tensor_store_free (VlmTensorStore *store)
{
    if (!store)
        return;
    g_hash_table_unref (store->tensors);
    g_ptr_array_unref (store->order);
    g_ptr_array_unref (store->mappings);
    g_hash_table_unref (store->metadata);
    g_free (store);
}

static gboolean invalid (GError **error, const char *file, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);

static gboolean invalid (GError **error, const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *msg = g_strdup_vprintf (fmt, ap);
    va_end (ap);
    g_set_error (error, VLM_ERROR, VLM_ERROR_INVALID_MODEL, "%s: %s", file, msg);
    g_free (msg);
    return FALSE;
}

/* One header entry: {"dtype": "F32", "shape": [..], "data_offsets": [a, b]}. */
static gboolean parse_entry (VlmTensorStore *store, const char *name,
                             JsonNode *node, const guint8 *data,
                             gsize data_size, const char *file, GError **error)
{
    if (!JSON_NODE_HOLDS_OBJECT (node))
        return invalid (error, file, "tensor '%s': header entry is not an object",
                        name);
    JsonObject *o = json_node_get_object (node);
    JsonNode *dt = json_object_get_member (o, "dtype");
    JsonNode *sh = json_object_get_member (o, "shape");
    JsonNode *off = json_object_get_member (o, "data_offsets");
    if (!dt || json_node_get_value_type (dt) != G_TYPE_STRING || !sh ||
        !JSON_NODE_HOLDS_ARRAY (sh) || !off || !JSON_NODE_HOLDS_ARRAY (off))
        return invalid (error, file,
                        "tensor '%s': header entry needs dtype, shape and "
                        "data_offsets", name);

    const char *dtype_name = json_node_get_string (dt);
    gsize elem = 0;
    VlmDtype dtype = VLM_DTYPE_F32;
    for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
        if (strcmp (dtypes[i].name, dtype_name) == 0) {
            dtype = dtypes[i].dtype;
            elem = dtypes[i].size;
        }
    if (!elem) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_UNSUPPORTED,
                     "%s: tensor '%s': unknown dtype '%s'", file, name,
                     dtype_name);
        return FALSE;
    }

    JsonArray *shape = json_node_get_array (sh);
    guint ndim = json_array_get_length (shape);
    if (ndim > VLM_MAX_DIMS)
        return invalid (error, file, "tensor '%s': %u dimensions (at most %d)",
                        name, ndim, VLM_MAX_DIMS);
    VlmTensorInfo *t = g_new0 (VlmTensorInfo, 1);
    t->ndim = ndim;
    t->dtype = dtype;
    t->n_elements = 1;
    for (guint i = 0; i < ndim; i++) {
        JsonNode *d = json_array_get_element (shape, i);
        gint64 v = json_node_get_value_type (d) == G_TYPE_INT64
                       ? json_node_get_int (d) : -1;
        /* 2^40 elements per dimension is far beyond any real tensor and keeps
         * the product below 2^63 for up to 4 dims only if checked, so check. */
        if (v < 0 || v > ((gint64) 1 << 40) ||
            (v && t->n_elements > G_MAXINT64 / 16 / v)) {
            g_free (t);
            return invalid (error, file, "tensor '%s': bad shape entry %u", name,
                            i);
        }
        t->shape[i] = v;
        t->n_elements *= v;
    }
    JsonArray *offsets = json_node_get_array (off);
    if (json_array_get_length (offsets) != 2 ||
        json_node_get_value_type (json_array_get_element (offsets, 0)) !=
            G_TYPE_INT64 ||
        json_node_get_value_type (json_array_get_element (offsets, 1)) !=
            G_TYPE_INT64) {
        g_free (t);
        return invalid (error, file, "tensor '%s': data_offsets must be two integers",
                        name);
    }
    gint64 begin = json_array_get_int_element (offsets, 0);
    gint64 end = json_array_get_int_element (offsets, 1);
    if (begin < 0 || end < begin || (guint64) end > data_size) {
        g_free (t);
        return invalid (error, file,
                        "tensor '%s': data_offsets [%" G_GINT64_FORMAT
                        ", %" G_GINT64_FORMAT "] outside the %" G_GSIZE_FORMAT
                        " data bytes", name, begin, end, data_size);
    }
    if ((guint64) (end - begin) != (guint64) t->n_elements * elem) {
        char *s = vlm_shape_to_string (t->ndim, t->shape);
        invalid (error, file,
                 "tensor '%s': %s %s needs %" G_GUINT64_FORMAT
                 " bytes, data_offsets give %" G_GINT64_FORMAT, name,
                 dtype_name, s, (guint64) t->n_elements * elem, end - begin);
        g_free (s);
        g_free (t);
        return FALSE;
    }
    if (g_hash_table_contains (store->tensors, name)) {
        g_free (t);
        return invalid (error, file, "tensor '%s' appears twice", name);
    }
    t->name = g_strdup (name);
    t->file = g_strdup (file);
    t->data = data + begin;
    t->nbytes = end - begin;
    g_hash_table_insert (store->tensors, (char *) t->name, t);
    g_ptr_array_add (store->order, t);
    return TRUE;
}

gboolean vlm_safetensors_parse (VlmTensorStore *store, const guint8 *data,
                                gsize size, const char *name, GError **error)
{
    if (size < 8)
        return invalid (error, name, "file of %" G_GSIZE_FORMAT
                        " bytes is too short for a safetensors header", size);
    guint64 n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | data[i];
    if (n > size - 8)
        return invalid (error, name,
                        "header length %" G_GUINT64_FORMAT
                        " runs past the end of the file (%" G_GSIZE_FORMAT
                        " bytes)", n, size);

    g_autoptr (JsonParser) parser = json_parser_new_immutable ();
    GError *json_error = NULL;
    if (!json_parser_load_from_data (parser, (const char *) data + 8, n,
                                     &json_error)) {
        invalid (error, name, "header is not valid JSON: %s",
                 json_error->message);
        g_error_free (json_error);
        return FALSE;
    }
    JsonNode *root = json_parser_get_root (parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT (root))
        return invalid (error, name, "header is not a JSON object");

    const guint8 *payload = data + 8 + n;
    gsize payload_size = size - 8 - n;
    JsonObject *obj = json_node_get_object (root);
    g_autoptr (GList) members = json_object_get_members (obj);
    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *node = json_object_get_member (obj, key);
        if (strcmp (key, "__metadata__") == 0) {
            if (!JSON_NODE_HOLDS_OBJECT (node))
                continue;
            JsonObject *meta = json_node_get_object (node);
            g_autoptr (GList) keys = json_object_get_members (meta);
            for (GList *k = keys; k; k = k->next) {
                JsonNode *v = json_object_get_member (meta, k->data);
                if (json_node_get_value_type (v) == G_TYPE_STRING)
                    g_hash_table_replace (store->metadata, g_strdup (k->data),
                                          g_strdup (json_node_get_string (v)));
            }
            continue;
        }
        if (!parse_entry (store, key, node, payload, payload_size, name, error))
            return FALSE;
    }
    return TRUE;
}

gboolean vlm_tensor_store_maps (VlmTensorStore *store, const void *p, gsize n)
{
    for (guint i = 0; i < store->mappings->len; i++) {
        GMappedFile *mf = g_ptr_array_index (store->mappings, i);
        guintptr a = (guintptr) g_mapped_file_get_contents (mf), at = (guintptr) p;
        if (a && at >= a && at - a <= g_mapped_file_get_length (mf) &&
            n <= g_mapped_file_get_length (mf) - (at - a))
            return TRUE;
    }
    return FALSE;
}

static gboolean add_file (VlmTensorStore *store, const char *dir,
                          const char *file, GError **error)
{
    g_autofree char *path = g_build_filename (dir, file, NULL);
    GError *map_error = NULL;
    GMappedFile *mf = g_mapped_file_new (path, FALSE, &map_error);
    if (!mf) {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND, "%s", map_error->message);
        g_error_free (map_error);
        return FALSE;
    }
    g_ptr_array_add (store->mappings, mf);
    return vlm_safetensors_parse (store,
                                  (const guint8 *) g_mapped_file_get_contents (mf),
                                  g_mapped_file_get_length (mf), file, error);
}

/* model.safetensors.index.json: {"weight_map": {tensor: file}}. Every file
 * named is loaded and must hold exactly the tensors the map gives it. */
static gboolean open_index (VlmTensorStore *store, const char *dir,
                            const char *index_path, GError **error)
{
    const char *index = "model.safetensors.index.json";
    g_autoptr (JsonParser) parser = json_parser_new ();
    GError *json_error = NULL;
    if (!json_parser_load_from_file (parser, index_path, &json_error)) {
        invalid (error, index, "%s", json_error->message);
        g_error_free (json_error);
        return FALSE;
    }
    JsonNode *root = json_parser_get_root (parser);
    JsonNode *map = root && JSON_NODE_HOLDS_OBJECT (root)
                        ? json_object_get_member (json_node_get_object (root),
                                                  "weight_map") : NULL;
    if (!map || !JSON_NODE_HOLDS_OBJECT (map))
        return invalid (error, index, "no \"weight_map\" object");

    JsonObject *wm = json_node_get_object (map);
    g_autoptr (GList) names = json_object_get_members (wm);
    g_autoptr (GHashTable) files = g_hash_table_new (g_str_hash, g_str_equal);
    GPtrArray *file_order = g_ptr_array_new ();
    for (GList *l = names; l; l = l->next) {
        JsonNode *f = json_object_get_member (wm, l->data);
        if (json_node_get_value_type (f) != G_TYPE_STRING) {
            g_ptr_array_unref (file_order);
            return invalid (error, index, "weight_map['%s'] is not a file name",
                            (char *) l->data);
        }
        const char *fname = json_node_get_string (f);
        if (strchr (fname, '/') || strcmp (fname, "..") == 0) {
            g_ptr_array_unref (file_order);
            return invalid (error, index, "shard name '%s' leaves the directory",
                            fname);
        }
        if (g_hash_table_add (files, (char *) fname))
            g_ptr_array_add (file_order, (char *) fname);
    }
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < file_order->len; i++)
        ok = add_file (store, dir, file_order->pdata[i], error);
    g_ptr_array_unref (file_order);
    if (!ok)
        return FALSE;

    for (GList *l = names; l; l = l->next) {
        VlmTensorInfo *t = vlm_tensor_store_find (store, l->data);
        const char *fname = json_object_get_string_member (wm, l->data);
        if (!t)
            return invalid (error, index, "tensor '%s' is mapped to %s but not in it",
                            (char *) l->data, fname);
        if (strcmp (t->file, fname) != 0)
            return invalid (error, index, "tensor '%s' is mapped to %s but found in %s",
                            (char *) l->data, fname, t->file);
    }
    if (g_hash_table_size (store->tensors) != g_list_length (names))
        return invalid (error, index,
                        "the shards hold %u tensors, the weight_map names %u",
                        g_hash_table_size (store->tensors), g_list_length (names));
    return TRUE;
}

VlmTensorStore *vlm_tensor_store_open_dir (const char *dir, GError **error)
{
    g_autoptr (VlmTensorStore) store = vlm_tensor_store_new ();
    g_autofree char *single = g_build_filename (dir, "model.safetensors", NULL);
    g_autofree char *index =
        g_build_filename (dir, "model.safetensors.index.json", NULL);
    if (g_file_test (single, G_FILE_TEST_EXISTS)) {
        if (!add_file (store, dir, "model.safetensors", error))
            return NULL;
    } else if (g_file_test (index, G_FILE_TEST_EXISTS)) {
        if (!open_index (store, dir, index, error))
            return NULL;
    } else {
        g_set_error (error, VLM_ERROR, VLM_ERROR_NOT_FOUND,
                     "%s: no model.safetensors or model.safetensors.index.json",
                     dir);
        return NULL;
    }
    return g_steal_pointer (&store);
}

GPtrArray *vlm_tensor_store_tensors (VlmTensorStore *store)
{
    return store->order;
}

VlmTensorInfo *vlm_tensor_store_find (VlmTensorStore *store, const char *name)
{
    return g_hash_table_lookup (store->tensors, name);
}

gboolean vlm_tensor_store_has_prefix (VlmTensorStore *store, const char *prefix)
{
    for (guint i = 0; i < store->order->len; i++) {
        VlmTensorInfo *t = store->order->pdata[i];
        if (g_str_has_prefix (t->name, prefix))
            return TRUE;
    }
    return FALSE;
}

VlmTensorInfo *vlm_tensor_store_first_unused (VlmTensorStore *store)
{
    for (guint i = 0; i < store->order->len; i++) {
        VlmTensorInfo *t = store->order->pdata[i];
        if (!t->used)
            return t;
    }
    return NULL;
}

const char *vlm_tensor_store_metadata (VlmTensorStore *store, const char *key)
{
    return g_hash_table_lookup (store->metadata, key);
}
