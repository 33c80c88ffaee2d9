/* vlmdescribe
 * Copyright (C) 2025 vlmdescribe authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Library General Public License for more details.
 */

/* gstvlmmodelcache.c owns the process-wide table of loaded models, keyed by
 * canonical checkpoint directory, so that any number of elements describing
 * with the same checkpoint share one copy of the weights. It knows nothing
 * about elements or GStreamer; it only counts users. */

#include "gstvlmmodelcache.h"

typedef struct
{
  VlmModel *model;              /* the cache's own reference */
  guint n_users;
} CacheEntry;

static GMutex cache_lock;
static GHashTable *cache;       /* "format:canonical path" -> CacheEntry, cache_lock */

static void
cache_entry_free (gpointer data)
{
  CacheEntry *entry = data;

  vlm_model_unref (entry->model);
  g_free (entry);
}

/**
 * gst_vlm_model_cache_acquire:
 * @path_or_repo_id: a checkpoint directory or a Hugging Face repo id
 * @format: how the weights are kept in memory
 *
 * Loads the model, or shares the one already loaded from the same canonical
 * directory in the same weight format. Loads are serialised: eight elements
 * starting at once with one checkpoint load it once.
 *
 * Returns: (transfer full): a model reference to give back with
 *     gst_vlm_model_cache_release(), or %NULL with @error set.
 */
VlmModel *
gst_vlm_model_cache_acquire (const gchar * path_or_repo_id,
    VlmWeightFormat format, GError ** error)
{
  g_autofree gchar *canonical = NULL;
  g_autofree gchar *key = NULL;
  CacheEntry *entry;
  VlmModel *model = NULL;

  canonical = vlm_model_resolve_path (path_or_repo_id, error);
  if (!canonical)
    return NULL;
  key = g_strdup_printf ("%s:%s", vlm_weight_format_to_string (format),
      canonical);

  g_mutex_lock (&cache_lock);
  if (!cache)
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        cache_entry_free);

  entry = g_hash_table_lookup (cache, key);
  if (!entry) {
    VlmModel *loaded = vlm_model_load_with_format (canonical, format, error);

    if (!loaded)
      goto out;
    entry = g_new0 (CacheEntry, 1);
    entry->model = loaded;
    g_hash_table_insert (cache, g_steal_pointer (&key), entry);
  }
  entry->n_users++;
  model = vlm_model_ref (entry->model);

out:
  g_mutex_unlock (&cache_lock);
  return model;
}

/**
 * gst_vlm_model_cache_release:
 * @model: (transfer full): a model from gst_vlm_model_cache_acquire()
 *
 * Gives the reference back; the weights are unmapped when the last user of
 * the checkpoint releases it.
 */
void
gst_vlm_model_cache_release (VlmModel * model)
{
  GHashTableIter iter;
  gpointer key, value;

  g_return_if_fail (model != NULL);

  g_mutex_lock (&cache_lock);
  g_hash_table_iter_init (&iter, cache);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    CacheEntry *entry = value;

    if (entry->model == model) {
      if (--entry->n_users == 0)
        g_hash_table_iter_remove (&iter);
      break;
    }
  }
  g_mutex_unlock (&cache_lock);

  vlm_model_unref (model);
}
