/* driver.c - main() for the fuzz targets when they are not built with
 * libFuzzer: runs LLVMFuzzerTestOneInput once on each file named on the
 * command line, or on each file of a directory named there (the seed
 * corpus, in the fuzz-smoke suite; a crash reproducer, by hand). A target
 * that crashes or trips a sanitizer fails the run. */
#include "fuzz.h"

#include <stdio.h>

static int compare_paths (gconstpointer a, gconstpointer b)
{
    return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

static int replay_file (const char *path)
{
    g_autofree char *contents = NULL;
    gsize size;
    g_autoptr (GError) error = NULL;
    if (!g_file_get_contents (path, &contents, &size, &error)) {
        fprintf (stderr, "%s\n", error->message);
        return 1;
    }
    /* An exact-size copy, so that the sanitizers see any overread. */
    g_autofree guint8 *data = g_memdup2 (contents, size);
    printf ("%s (%" G_GSIZE_FORMAT " bytes)\n", path, size);
    fflush (stdout);
    LLVMFuzzerTestOneInput (data, size);
    return 0;
}

int main (int argc, char **argv)
{
    int n = 0, failed = 0;
    LLVMFuzzerInitialize (&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR)) {
            failed |= replay_file (argv[i]);
            n++;
            continue;
        }
        g_autoptr (GError) error = NULL;
        g_autoptr (GDir) dir = g_dir_open (argv[i], 0, &error);
        if (!dir) {
            fprintf (stderr, "%s\n", error->message);
            return 1;
        }
        /* Sorted, so runs are reproducible. */
        g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
        const char *name;
        while ((name = g_dir_read_name (dir)))
            g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
        g_ptr_array_sort (names, compare_paths);
        for (guint k = 0; k < names->len; k++, n++)
            failed |= replay_file (names->pdata[k]);
    }
    if (n == 0) {
        fprintf (stderr, "usage: %s FILE|DIR...: no input replayed\n", argv[0]);
        return 1;
    }
    printf ("%d inputs replayed\n", n);
    return failed;
}
