/* vlm-run - describe one image with a checkpoint from the command line.
 * Uses only vlm.h (and image_file.h to decode the picture). */
#include "image_file.h"
#include "vlm.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>

static char *opt_model, *opt_image, *opt_prompt, *opt_logits, *opt_pixels,
    *opt_weights;
static int opt_max_new = 32, opt_top_k = 0, opt_threads = 0;
static double opt_temperature = 0.0, opt_top_p = 1.0;
static gint64 opt_seed = 0;
static gboolean opt_json, opt_verbose;

static GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
      "Checkpoint directory or Hugging Face repo id", "DIR" },
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &opt_image,
      "Image file (PNG, JPEG, ...)", "FILE" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &opt_prompt,
      "Prompt (default: the family's, e.g. \"caption en\")", "TEXT" },
    { "max-new-tokens", 'n', 0, G_OPTION_ARG_INT, &opt_max_new,
      "Tokens to generate at most (default 32)", "N" },
    { "temperature", 0, 0, G_OPTION_ARG_DOUBLE, &opt_temperature,
      "Sampling temperature, 0 = greedy (default)", "T" },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &opt_top_k,
      "Sample among the K most likely tokens (0 = off)", "K" },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_top_p,
      "Sample within probability mass P (1 = off)", "P" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Sampler seed", "S" },
    { "weights", 'w', 0, G_OPTION_ARG_STRING, &opt_weights,
      "Weights in memory: as-stored (default), q8 or q4 (quantized at load), "
      "bf16-dot (as stored, bf16 dot products for BF16 weights)",
      "FORMAT" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads,
      "Compute threads (0 = all cores)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json,
      "Print one JSON object: text, tokens, input_ids, stats", NULL },
    { "dump-logits", 0, 0, G_OPTION_ARG_FILENAME, &opt_logits,
      "Write the last prefill position's logits (float32 LE)", "FILE" },
    { "dump-pixels", 0, 0, G_OPTION_ARG_FILENAME, &opt_pixels,
      "Write the preprocessed pixels (CHW float32 LE)", "FILE" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
      "Log model loading and timings to stderr", NULL },
    { NULL },
};

static int fail (const char *msg)
{
    fprintf (stderr, "vlm-run: %s\n", msg);
    return 1;
}

static gboolean write_floats (const char *path, const float *v, gsize n,
                              GError **error)
{
    /* x86 and every target we build for are little-endian. */
    return g_file_set_contents (path, (const char *) v, n * sizeof (float), error);
}

static void log_to_stderr (VlmLogLevel level, const char *message, gpointer data)
{
    fprintf (stderr, "vlm: %s\n", message);
}

static void add_ids (JsonBuilder *b, const char *name, const guint32 *ids, guint n)
{
    json_builder_set_member_name (b, name);
    json_builder_begin_array (b);
    for (guint i = 0; i < n; i++)
        json_builder_add_int_value (b, ids[i]);
    json_builder_end_array (b);
}

static void print_json (const VlmResult *r, const VlmModelInfo *info)
{
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "text");
    json_builder_add_string_value (b, r->text);
    add_ids (b, "tokens", r->tokens, r->n_tokens);
    add_ids (b, "input_ids", r->input_ids, r->n_input_ids);
    json_builder_set_member_name (b, "finish_reason");
    json_builder_add_string_value (b, vlm_finish_reason_to_string (r->finish_reason));
    json_builder_set_member_name (b, "model");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "family");
    json_builder_add_string_value (b, info->family);
    json_builder_set_member_name (b, "variant");
    json_builder_add_string_value (b, info->variant);
    json_builder_set_member_name (b, "image_size");
    json_builder_add_int_value (b, info->image_width);
    json_builder_set_member_name (b, "parameters");
    json_builder_add_int_value (b, info->n_params);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, info->dtype);
    json_builder_end_object (b);
    json_builder_set_member_name (b, "stats");
    json_builder_begin_object (b);
    const struct { const char *k; guint v; } counts[] = {
        { "tokens_image", r->stats.n_tokens_image },
        { "tokens_prompt", r->stats.n_tokens_prompt },
        { "tokens_generated", r->stats.n_tokens_generated },
    };
    for (guint i = 0; i < G_N_ELEMENTS (counts); i++) {
        json_builder_set_member_name (b, counts[i].k);
        json_builder_add_int_value (b, counts[i].v);
    }
    const struct { const char *k; double v; } st[] = {
        { "preprocess_ms", r->stats.preprocess_ms },
        { "vision_ms", r->stats.vision_ms },
        { "prefill_ms", r->stats.prefill_ms },
        { "decode_ms", r->stats.decode_ms },
    };
    for (guint i = 0; i < G_N_ELEMENTS (st); i++) {
        json_builder_set_member_name (b, st[i].k);
        json_builder_add_double_value (b, st[i].v);
    }
    json_builder_end_object (b);
    json_builder_end_object (b);
    g_autoptr (JsonGenerator) gen = json_generator_new ();
    g_autoptr (JsonNode) root = json_builder_get_root (b);
    json_generator_set_root (gen, root);
    g_autofree char *s = json_generator_to_data (gen, NULL);
    printf ("%s\n", s);
}

int main (int argc, char **argv)
{
    g_autoptr (GOptionContext) ctx =
        g_option_context_new ("- describe an image with a vision-language model");
    g_option_context_add_main_entries (ctx, entries, NULL);
    g_autoptr (GError) error = NULL;
    if (!g_option_context_parse (ctx, &argc, &argv, &error))
        return fail (error->message);
    if (!opt_model || !opt_image)
        return fail ("--model DIR and --image FILE are required (see --help)");
    if (opt_max_new < 0 || opt_top_k < 0 || opt_threads < 0 ||
        opt_temperature < 0 || opt_top_p <= 0 || opt_top_p > 1)
        return fail ("--max-new-tokens, --top-k, --threads and --temperature "
                     "must be >= 0, --top-p in (0, 1]");
    VlmWeightFormat format = VLM_WEIGHTS_AS_STORED;
    if (opt_weights && !vlm_weight_format_from_string (opt_weights, &format))
        return fail ("--weights must be as-stored, q8, q4 or bf16-dot");
    if (opt_verbose)
        vlm_set_log_func (log_to_stderr, NULL);

    VlmImageFile file = { 0 };
    if (!vlm_image_file_load (opt_image, &file, &error))
        return fail (error->message);
    VlmImage image = { file.data, file.width, file.height, file.stride };

    g_autoptr (VlmModel) model = vlm_model_load_with_format (opt_model, format, &error);
    if (!model) {
        vlm_image_file_clear (&file);
        return fail (error->message);
    }
    int rc = 0;
    if (opt_pixels) {
        gsize n = 0;
        g_autofree float *px = vlm_model_preprocess (model, &image, &n, &error);
        if (!px || !write_floats (opt_pixels, px, n, &error))
            rc = fail (error->message);
    }
    g_autoptr (VlmSession) session = rc ? NULL
                                        : vlm_session_new (model, opt_threads, &error);
    if (!rc && !session)
        rc = fail (error->message);
    if (!rc) {
        VlmDescribeParams params;
        vlm_describe_params_init (&params);
        params.prompt = opt_prompt;
        params.max_new_tokens = opt_max_new;
        params.temperature = opt_temperature;
        params.top_k = opt_top_k;
        params.top_p = opt_top_p;
        params.seed = opt_seed;
        params.want_logits = opt_logits != NULL;
        g_autoptr (VlmResult) r =
            vlm_session_describe (session, &image, &params, &error);
        if (!r)
            rc = fail (error->message);
        else if (opt_logits &&
                 !write_floats (opt_logits, r->prefill_logits, r->n_logits, &error))
            rc = fail (error->message);
        else if (opt_json)
            print_json (r, vlm_model_get_info (model));
        else
            printf ("%s\n", r->text);
    }
    vlm_image_file_clear (&file);
    return rc;
}
