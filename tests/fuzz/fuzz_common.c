/* fuzz_common.c - helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *tmpdir;

static void log_abort (const gchar *domain, GLogLevelFlags level,
                       const gchar *message, gpointer user_data)
{
    g_log_default_handler (domain, level, message, user_data);
    if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
        abort ();
}

void vlm_fuzz_abort_on_critical (void)
{
    g_log_set_default_handler (log_abort, NULL);
}

static void remove_tmpdir (void)
{
    GDir *d = g_dir_open (tmpdir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d))) {
        g_autofree char *path = g_build_filename (tmpdir, name, NULL);
        g_unlink (path);
    }
    if (d)
        g_dir_close (d);
    g_rmdir (tmpdir);
}

const char *vlm_fuzz_tmpdir (void)
{
    if (!tmpdir) {
        g_autoptr (GError) error = NULL;
        tmpdir = g_dir_make_tmp ("vlm-fuzz-XXXXXX", &error);
        if (!tmpdir)
            g_error ("fuzz: cannot make a temporary directory: %s",
                     error->message);
        atexit (remove_tmpdir);
    }
    return tmpdir;
}

void vlm_fuzz_write (const char *dir, const char *name, const void *data,
                     gsize size)
{
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_autoptr (GError) error = NULL;
    if (!g_file_set_contents (path, data, size, &error))
        g_error ("fuzz: cannot write %s: %s", path, error->message);
}

void vlm_fuzz_link (const char *dir, const char *name, const char *target)
{
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_unlink (path);
    if (symlink (target, path) != 0)
        g_error ("fuzz: cannot link %s to %s: %s", path, target,
                 g_strerror (errno));
}

guint8 vlm_fuzz_u8 (VlmFuzzInput *in)
{
    if (in->size == 0)
        return 0;
    in->size--;
    return *in->data++;
}

guint32 vlm_fuzz_u32 (VlmFuzzInput *in)
{
    guint32 v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | vlm_fuzz_u8 (in);
    return v;
}

const uint8_t *vlm_fuzz_split (VlmFuzzInput *in, size_t *len)
{
    const uint8_t *start = in->data;
    const uint8_t *nul = in->size ? memchr (in->data, 0, in->size) : NULL;
    *len = nul ? (size_t) (nul - in->data) : in->size;
    in->data += *len + (nul != NULL);
    in->size -= *len + (nul != NULL);
    return start;
}
