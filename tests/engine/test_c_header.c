/* test_c_header.c - vlm.h compiles as strict C99 and its defaults hold. */
#include "vlm.h"

int main (void)
{
    VlmDescribeParams p;
    vlm_describe_params_init (&p);
    return !(p.max_new_tokens == 32 && p.temperature == 0.0f && p.top_p == 1.0f &&
             p.prompt == NULL);
}
