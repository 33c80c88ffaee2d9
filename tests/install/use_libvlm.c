/* A program built against the installed libvlm (vlm.h and vlm.pc only):
 * loads the checkpoint given on the command line and prints its family. */
#include <stdio.h>
#include <vlm.h>

int main (int argc, char **argv)
{
    GError *error = NULL;
    VlmModel *model = argc == 2 ? vlm_model_load (argv[1], &error) : NULL;
    if (!model) {
        fprintf (stderr, "use_libvlm: %s\n",
                 error ? error->message : "usage: use_libvlm DIR");
        return 1;
    }
    printf ("%s\n", vlm_model_get_info (model)->family);
    vlm_model_unref (model);
    return 0;
}
