/* fuzz_safetensors_index.c - model.safetensors.index.json from bytes, over
 * a directory with two small shards (a.safetensors: tensors x and y,
 * b.safetensors: z): the weight_map's names, file names (which must not
 * leave the directory), and its agreement with the shards. */
#include "fuzz.h"
#include "safetensors.h"

#include <string.h>

static const char *dir;

/* A safetensors file: 8-byte little-endian header length, header, data. */
static void write_shard (const char *name, const char *header, gsize n_data)
{
    gsize n = strlen (header);
    g_autofree guint8 *file = g_malloc0 (8 + n + n_data);
    for (int i = 0; i < 8; i++)
        file[i] = (guint8) ((guint64) n >> (8 * i));
    memcpy (file + 8, header, n);
    vlm_fuzz_write (dir, name, file, 8 + n + n_data);
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    dir = vlm_fuzz_tmpdir ();
    write_shard ("a.safetensors",
                 "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                 "\"y\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}",
                 22);
    write_shard ("b.safetensors",
                 "{\"__metadata__\":{\"format\":\"pt\"},"
                 "\"z\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", 1);
    return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    vlm_fuzz_write (dir, "model.safetensors.index.json", data, size);
    g_autoptr (GError) error = NULL;
    g_autoptr (VlmTensorStore) store = vlm_tensor_store_open_dir (dir, &error);
    g_assert ((store != NULL) != (error != NULL));
    if (!store)
        return 0;
    /* Accepted: the map named exactly the tensors of the shards it used. */
    GPtrArray *tensors = vlm_tensor_store_tensors (store);
    for (guint i = 0; i < tensors->len; i++) {
        const VlmTensorInfo *t = tensors->pdata[i];
        g_assert (strcmp (t->file, "a.safetensors") == 0 ||
                  strcmp (t->file, "b.safetensors") == 0);
    }
    return 0;
}
