/* vlm-make-checkpoint - write a random-weight PaliGemma checkpoint in the
 * Hugging Face format libvlm loads, with the real dimensions of
 * google/paligemma-3b-mix-224 (or smaller ones for quick runs), for the
 * benchmark. Weights are streamed to disk, never all held in memory. */
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int image, patch, v_hidden, v_mlp, v_layers, v_heads;
    int hidden, mlp, layers, heads, kv_heads, head_dim, vocab;
} Dims;

/* SigLIP So400m/14 at 224 px + Gemma-2B, as in google/paligemma-3b-mix-224. */
static const Dims paligemma_3b = { 224, 14, 1152, 4304, 27, 16,
                                   2048, 16384, 18, 8, 1, 256, 257216 };
/* A quarter-size model for smoke runs of the benchmark itself. */
static const Dims small = { 224, 14, 384, 1536, 6, 6, 512, 2048, 4, 4, 1, 128, 32768 };

typedef struct {
    char *name;
    int ndim;
    gint64 shape[4];
    int kind; /* 0 random matrix, 1 zeros (RMSNorm offsets, biases), 2 ones (LayerNorm scale) */
} Tensor;

static void add (GPtrArray *t, int kind, gint64 a, gint64 b, gint64 c, gint64 d,
                 const char *fmt, ...) G_GNUC_PRINTF (7, 8);

static void add (GPtrArray *t, int kind, gint64 a, gint64 b, gint64 c, gint64 d,
                 const char *fmt, ...)
{
    Tensor *x = g_new0 (Tensor, 1);
    va_list ap;
    va_start (ap, fmt);
    x->name = g_strdup_vprintf (fmt, ap);
    va_end (ap);
    x->kind = kind;
    gint64 s[] = { a, b, c, d };
    for (int i = 0; i < 4 && s[i]; i++)
        x->shape[x->ndim++] = s[i];
    g_ptr_array_add (t, x);
}

static GPtrArray *tensors (const Dims *d)
{
    GPtrArray *t = g_ptr_array_new ();
    const char *v = "vision_tower.vision_model.";
    gint64 D = d->v_hidden, N = (d->image / d->patch) * (d->image / d->patch);
    add (t, 0, D, 3, d->patch, d->patch, "%sembeddings.patch_embedding.weight", v);
    add (t, 1, D, 0, 0, 0, "%sembeddings.patch_embedding.bias", v);
    add (t, 0, N, D, 0, 0, "%sembeddings.position_embedding.weight", v);
    for (int i = 0; i < d->v_layers; i++) {
        const char *p = "encoder.layers";
        add (t, 2, D, 0, 0, 0, "%s%s.%d.layer_norm1.weight", v, p, i);
        add (t, 1, D, 0, 0, 0, "%s%s.%d.layer_norm1.bias", v, p, i);
        const char *proj[] = { "q_proj", "k_proj", "v_proj", "out_proj" };
        for (int k = 0; k < 4; k++) {
            add (t, 0, D, D, 0, 0, "%s%s.%d.self_attn.%s.weight", v, p, i, proj[k]);
            add (t, 1, D, 0, 0, 0, "%s%s.%d.self_attn.%s.bias", v, p, i, proj[k]);
        }
        add (t, 2, D, 0, 0, 0, "%s%s.%d.layer_norm2.weight", v, p, i);
        add (t, 1, D, 0, 0, 0, "%s%s.%d.layer_norm2.bias", v, p, i);
        add (t, 0, d->v_mlp, D, 0, 0, "%s%s.%d.mlp.fc1.weight", v, p, i);
        add (t, 1, d->v_mlp, 0, 0, 0, "%s%s.%d.mlp.fc1.bias", v, p, i);
        add (t, 0, D, d->v_mlp, 0, 0, "%s%s.%d.mlp.fc2.weight", v, p, i);
        add (t, 1, D, 0, 0, 0, "%s%s.%d.mlp.fc2.bias", v, p, i);
    }
    add (t, 2, D, 0, 0, 0, "%spost_layernorm.weight", v);
    add (t, 1, D, 0, 0, 0, "%spost_layernorm.bias", v);
    add (t, 0, d->hidden, D, 0, 0, "multi_modal_projector.linear.weight");
    add (t, 1, d->hidden, 0, 0, 0, "multi_modal_projector.linear.bias");
    const char *l = "language_model.model.";
    gint64 H = d->hidden, Q = (gint64) d->heads * d->head_dim,
           KV = (gint64) d->kv_heads * d->head_dim;
    add (t, 0, d->vocab, H, 0, 0, "%sembed_tokens.weight", l);
    for (int i = 0; i < d->layers; i++) {
        add (t, 1, H, 0, 0, 0, "%slayers.%d.input_layernorm.weight", l, i);
        add (t, 0, Q, H, 0, 0, "%slayers.%d.self_attn.q_proj.weight", l, i);
        add (t, 0, KV, H, 0, 0, "%slayers.%d.self_attn.k_proj.weight", l, i);
        add (t, 0, KV, H, 0, 0, "%slayers.%d.self_attn.v_proj.weight", l, i);
        add (t, 0, H, Q, 0, 0, "%slayers.%d.self_attn.o_proj.weight", l, i);
        add (t, 1, H, 0, 0, 0, "%slayers.%d.post_attention_layernorm.weight", l, i);
        add (t, 0, d->mlp, H, 0, 0, "%slayers.%d.mlp.gate_proj.weight", l, i);
        add (t, 0, d->mlp, H, 0, 0, "%slayers.%d.mlp.up_proj.weight", l, i);
        add (t, 0, H, d->mlp, 0, 0, "%slayers.%d.mlp.down_proj.weight", l, i);
    }
    add (t, 1, H, 0, 0, 0, "%snorm.weight", l);
    return t;
}

static gint64 numel (const Tensor *x)
{
    gint64 n = 1;
    for (int i = 0; i < x->ndim; i++)
        n *= x->shape[i];
    return n;
}

static void write_text (const char *dir, const char *name, const char *text)
{
    g_autofree char *p = g_build_filename (dir, name, NULL);
    if (!g_file_set_contents (p, text, -1, NULL))
        g_error ("cannot write %s", p);
}

static void write_configs (const char *dir, const Dims *d, int image_token)
{
    int n = (d->image / d->patch) * (d->image / d->patch);
    g_autofree char *config = g_strdup_printf (
        "{\"model_type\": \"paligemma\", \"architectures\": [\"PaliGemmaForConditionalGeneration\"],\n"
        " \"bos_token_id\": 2, \"eos_token_id\": 1, \"pad_token_id\": 0, \"image_token_index\": %d,\n"
        " \"hidden_size\": %d, \"projection_dim\": %d,\n"
        " \"text_config\": {\"model_type\": \"gemma\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
        "   \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
        "   \"head_dim\": %d, \"num_image_tokens\": %d, \"vocab_size\": %d},\n"
        " \"vision_config\": {\"model_type\": \"siglip_vision_model\", \"hidden_size\": %d,\n"
        "   \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
        "   \"patch_size\": %d, \"image_size\": %d, \"num_image_tokens\": %d, \"vision_use_head\": false}}\n",
        image_token, d->hidden, d->hidden, d->hidden, d->mlp, d->layers, d->heads, d->kv_heads,
        d->head_dim, n, d->vocab, d->v_hidden, d->v_mlp, d->v_layers, d->v_heads, d->patch,
        d->image, n);
    write_text (dir, "config.json", config);
    g_autofree char *pp = g_strdup_printf (
        "{\"do_resize\": true, \"size\": {\"height\": %d, \"width\": %d}, \"resample\": 3,\n"
        " \"do_rescale\": true, \"rescale_factor\": 0.00392156862745098, \"do_normalize\": true,\n"
        " \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.5, 0.5, 0.5], \"image_seq_length\": %d}\n",
        d->image, d->image, n);
    write_text (dir, "preprocessor_config.json", pp);
}

/* bf16 of a float, rounded to nearest even. */
static guint16 to_bf16 (float f)
{
    guint32 u;
    memcpy (&u, &f, 4);
    return (u + 0x7fff + ((u >> 16) & 1)) >> 16;
}

int main (int argc, char **argv)
{
    char *out = NULL, *tokenizer = NULL, *dims_name = NULL;
    gboolean f32 = FALSE;
    GOptionEntry entries[] = {
        { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Checkpoint directory to write", "DIR" },
        { "tokenizer", 0, 0, G_OPTION_ARG_FILENAME, &tokenizer,
          "tokenizer.model to copy (any sentencepiece model)", "FILE" },
        { "dims", 0, 0, G_OPTION_ARG_STRING, &dims_name,
          "paligemma-3b-224 (default) or small", "NAME" },
        { "f32", 0, 0, G_OPTION_ARG_NONE, &f32, "Write F32 instead of BF16", NULL },
        { NULL },
    };
    g_autoptr (GOptionContext) ctx = g_option_context_new ("- write a random-weight checkpoint");
    g_option_context_add_main_entries (ctx, entries, NULL);
    g_autoptr (GError) error = NULL;
    if (!g_option_context_parse (ctx, &argc, &argv, &error) || !out || !tokenizer) {
        fprintf (stderr, "vlm-make-checkpoint: %s\n",
                 error ? error->message : "--out DIR and --tokenizer FILE are required");
        return 1;
    }
    const Dims *d = g_strcmp0 (dims_name, "small") == 0 ? &small : &paligemma_3b;
    g_mkdir_with_parents (out, 0755);
    g_autofree char *tok = NULL;
    gsize tok_len;
    if (!g_file_get_contents (tokenizer, &tok, &tok_len, &error)) {
        fprintf (stderr, "vlm-make-checkpoint: %s\n", error->message);
        return 1;
    }
    g_autofree char *tok_out = g_build_filename (out, "tokenizer.model", NULL);
    g_file_set_contents (tok_out, tok, tok_len, NULL);
    /* <image> right after the real PaliGemma vocabulary, as in the hub files. */
    write_configs (out, d, MIN (257152, d->vocab - 64));

    GPtrArray *t = tensors (d);
    gsize elem = f32 ? 4 : 2;
    GString *h = g_string_new ("{\"__metadata__\":{\"format\":\"pt\"}");
    gint64 off = 0;
    for (guint i = 0; i < t->len; i++) {
        Tensor *x = t->pdata[i];
        g_string_append_printf (h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", x->name,
                                f32 ? "F32" : "BF16");
        for (int k = 0; k < x->ndim; k++)
            g_string_append_printf (h, "%s%" G_GINT64_FORMAT, k ? "," : "", x->shape[k]);
        gint64 n = numel (x) * elem;
        g_string_append_printf (h, "],\"data_offsets\":[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "]}",
                                off, off + n);
        off += n;
    }
    g_string_append_c (h, '}');
    while (h->len % 8)
        g_string_append_c (h, ' ');
    g_autofree char *path = g_build_filename (out, "model.safetensors", NULL);
    FILE *f = fopen (path, "wb");
    if (!f) {
        fprintf (stderr, "vlm-make-checkpoint: cannot write %s\n", path);
        return 1;
    }
    guint8 len[8];
    for (int i = 0; i < 8; i++)
        len[i] = ((guint64) h->len >> (8 * i)) & 0xff;
    fwrite (len, 1, 8, f);
    fwrite (h->str, 1, h->len, f);

    /* Uniform weights of standard deviation 1/sqrt(fan in): activations stay
     * in a sane range through every layer. */
    guint64 rng = 0x9e3779b97f4a7c15ULL;
    gsize chunk = 1 << 20;
    guint8 *buf = g_malloc (chunk * elem);
    for (guint i = 0; i < t->len; i++) {
        Tensor *x = t->pdata[i];
        gint64 n = numel (x);
        float scale = x->ndim >= 2 ? sqrtf (3.0f / (n / x->shape[0])) : 0.0f;
        for (gint64 done = 0; done < n;) {
            gsize m = MIN ((gint64) chunk, n - done);
            for (gsize k = 0; k < m; k++) {
                float v = x->kind == 2 ? 1.0f : 0.0f;
                if (x->kind == 0) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    v = ((rng >> 40) / 8388608.0f - 1.0f) * scale;
                }
                if (f32)
                    memcpy (buf + 4 * k, &v, 4);
                else {
                    guint16 b = to_bf16 (v);
                    memcpy (buf + 2 * k, &b, 2);
                }
            }
            fwrite (buf, elem, m, f);
            done += m;
        }
    }
    g_free (buf);
    if (fclose (f) != 0) {
        fprintf (stderr, "vlm-make-checkpoint: writing %s failed\n", path);
        return 1;
    }
    printf ("wrote %s: %u tensors, %.2f GB\n", out, t->len, off / 1e9);
    return 0;
}
