/* fuzz_safetensors.c - a safetensors file image from bytes: the 8-byte
 * header length, the JSON header, dtypes, shapes and data offsets. Every
 * tensor the parser accepts must lie inside the data, which this reads
 * end to end (the sanitizers see an overread). */
#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    vlm_fuzz_abort_on_critical ();
    return 0;
}

/* Keeps the compiler from dropping the reads. */
static volatile guint sink;

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    g_autoptr (VlmTensorStore) store = vlm_tensor_store_new ();
    g_autoptr (GError) error = NULL;
    if (!vlm_safetensors_parse (store, data, size, "fuzz.safetensors", &error)) {
        g_assert (error != NULL && error->message[0] != '\0');
        return 0;
    }
    GPtrArray *tensors = vlm_tensor_store_tensors (store);
    guint sum = 0;
    for (guint i = 0; i < tensors->len; i++) {
        const VlmTensorInfo *t = tensors->pdata[i];
        g_assert (t->data >= data && t->data + t->nbytes <= data + size);
        g_assert (t->nbytes == (gsize) t->n_elements * vlm_dtype_size (t->dtype));
        g_assert (vlm_tensor_store_find (store, t->name) == t);
        for (gsize k = 0; k < t->nbytes; k++)
            sum += t->data[k];
        g_free (vlm_shape_to_string (t->ndim, t->shape));
    }
    vlm_tensor_store_metadata (store, "format");
    sink = sum;
    return 0;
}
