/* fuzz.h - what every fuzz target provides and the helpers they share.
 *
 * A target is one file defining LLVMFuzzerInitialize and
 * LLVMFuzzerTestOneInput. With -Dfuzzing=enabled (clang) it links
 * libFuzzer's main; otherwise it links driver.c, whose main replays the
 * files it is given, which is how the fuzz-smoke suite runs the seed
 * corpus (tests/fuzz/corpus/<target>/) in every build. */
#ifndef VLM_FUZZ_H
#define VLM_FUZZ_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Criticals and errors abort (which libFuzzer reports with the input),
 * instead of GLib's breakpoint trap. Every target calls it first. */
void vlm_fuzz_abort_on_critical (void);

/* A private temporary directory for the process, removed with its files
 * (not subdirectories) at exit. */
const char *vlm_fuzz_tmpdir (void);
/* dir/name, holding exactly size bytes of data. */
void vlm_fuzz_write (const char *dir, const char *name, const void *data,
                     gsize size);
/* dir/name, a symbolic link to target. */
void vlm_fuzz_link (const char *dir, const char *name, const char *target);

/* Takes bytes off the front of the input: structured inputs read their
 * numbers with these, then use the rest as data. Past the end they give
 * zeros. */
typedef struct {
    const uint8_t *data;
    size_t size;
} VlmFuzzInput;

guint8 vlm_fuzz_u8 (VlmFuzzInput *in);
guint32 vlm_fuzz_u32 (VlmFuzzInput *in);
/* The next piece up to (not including) a 0 byte, or all that is left. */
const uint8_t *vlm_fuzz_split (VlmFuzzInput *in, size_t *len);

#endif
