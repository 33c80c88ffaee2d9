/* docs/element.md against the element itself: every property, enum value,
 * signal and pad template of vlmdescribe must be named in the document (as
 * `name`; an enum value also as `property=value`), so that nothing ships
 * undocumented. Fails listing everything missing. */

#include <string.h>
#include <gst/gst.h>

static gchar *doc;

static gboolean
mentions (const gchar * name)
{
  gchar *quoted = g_strdup_printf ("`%s`", name);
  gboolean found = strstr (doc, quoted) != NULL;

  g_free (quoted);
  return found;
}

/* Adds "what `name`" to @missing unless the document mentions one of the
 * names (NULL-terminated). */
static void
check (GString * missing, const gchar * what, const gchar * name, ...)
{
  const gchar *alternative = name;
  va_list args;

  va_start (args, name);
  while (alternative && !mentions (alternative))
    alternative = va_arg (args, const gchar *);
  va_end (args);

  if (alternative)
    g_test_message ("%s `%s`: documented", what, alternative);
  else
    g_string_append_printf (missing, "\n  %s `%s`", what, name);
}

static void
check_properties (GString * missing, GType type)
{
  GObjectClass *klass = g_type_class_ref (type);
  GParamSpec **specs;
  guint n_specs, i, j;

  specs = g_object_class_list_properties (klass, &n_specs);
  for (i = 0; i < n_specs; i++) {
    GEnumClass *enum_class;

    /* name and parent come from GstObject */
    if (specs[i]->owner_type != type)
      continue;
    check (missing, "property", specs[i]->name, NULL);
    if (!G_IS_PARAM_SPEC_ENUM (specs[i]))
      continue;
    enum_class = G_PARAM_SPEC_ENUM (specs[i])->enum_class;
    for (j = 0; j < enum_class->n_values; j++) {
      gchar *assignment = g_strdup_printf ("%s=%s", specs[i]->name,
          enum_class->values[j].value_nick);

      check (missing, "value", enum_class->values[j].value_nick, assignment,
          NULL);
      g_free (assignment);
    }
  }
  g_free (specs);
  g_type_class_unref (klass);
}

static void
check_signals (GString * missing, GType type)
{
  guint *ids, n_ids, i;

  ids = g_signal_list_ids (type, &n_ids);
  for (i = 0; i < n_ids; i++)
    check (missing, "signal", g_signal_name (ids[i]), NULL);
  g_free (ids);
}

static void
check_pads (GString * missing, GstElementFactory * factory)
{
  const GList *l;

  for (l = gst_element_factory_get_static_pad_templates (factory); l;
      l = l->next)
    check (missing, "pad", ((GstStaticPadTemplate *) l->data)->name_template,
        NULL);
}

static void
test_everything_documented (void)
{
  GstElementFactory *factory = gst_element_factory_find ("vlmdescribe");
  GstPluginFeature *loaded;
  GString *missing = g_string_new (NULL);
  GType type;

  g_assert_nonnull (factory);
  loaded = gst_plugin_feature_load (GST_PLUGIN_FEATURE (factory));
  g_assert_nonnull (loaded);
  type = gst_element_factory_get_element_type (GST_ELEMENT_FACTORY (loaded));

  check_properties (missing, type);
  check_signals (missing, type);
  check_pads (missing, GST_ELEMENT_FACTORY (loaded));
  if (missing->len > 0)
    g_test_fail_printf ("not in %s:%s", VLM_ELEMENT_DOC, missing->str);

  g_string_free (missing, TRUE);
  gst_object_unref (loaded);
  gst_object_unref (factory);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int ret;

  gst_init (NULL, NULL);
  g_test_init (&argc, &argv, NULL);
  if (!g_file_get_contents (VLM_ELEMENT_DOC, &doc, NULL, &error))
    g_error ("%s", error->message);

  g_test_add_func ("/element-doc/everything-documented",
      test_everything_documented);
  ret = g_test_run ();

  g_free (doc);
  gst_deinit ();
  return ret;
}
