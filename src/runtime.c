/* runtime.c - process-wide choices made once: which kernel set this CPU
 * runs. Nothing here depends on the machine the library was built on. */
#include "kernels.h"

#include <cpuid.h>
#include <string.h>

/* CPUID leaf 1, ECX bit 29: clang's __builtin_cpu_supports has no "f16c". */
static gboolean has_f16c (void)
{
    unsigned int a, b, c, d;
    return __get_cpuid (1, &a, &b, &c, &d) && (c & bit_F16C);
}

VlmTuning vlm_tuning = { TRUE, TRUE };

/* AMD family 19h: Zen 3 and Zen 4. */
static gboolean amd_family_19h (void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid (0, &a, &b, &c, &d) || b != signature_AMD_ebx || !__get_cpuid (1, &a, &b, &c, &d))
        return FALSE;
    unsigned int family = (a >> 8) & 0xf;
    return family == 0xf && family + ((a >> 20) & 0xff) == 0x19;
}

static const VlmKernels *choose (void)
{
    __builtin_cpu_init ();
    gboolean family_19h = amd_family_19h ();
    vlm_tuning = (VlmTuning) { .float_rows_prefetch = !family_19h, .q8_rows_vnni = !family_19h };
    gboolean avx2 = __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
                    has_f16c ();
    gboolean avx512 = avx2 && __builtin_cpu_supports ("avx512f") &&
                      __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl");
    gboolean vnni = avx512 && __builtin_cpu_supports ("avx512vnni");
    const char *want = g_getenv ("VLM_KERNELS");
    /* A request for a set the CPU lacks falls back to the best it has. */
    if (want && strcmp (want, "generic") == 0)
        return &vlm_kernels_generic;
    if (want && strcmp (want, "avx2") == 0 && avx2)
        return &vlm_kernels_avx2;
    if (want && strcmp (want, "avx512") == 0 && avx512)
        return &vlm_kernels_avx512;
    if (vnni)
        return &vlm_kernels_avx512_vnni;
    if (avx512)
        return &vlm_kernels_avx512;
    if (avx2)
        return &vlm_kernels_avx2;
    return &vlm_kernels_generic;
}

const VlmGemm *vlm_gemm_bf16_dot (void)
{
    static gsize chosen;
    if (g_once_init_enter (&chosen)) {
        const char *set = vlm_kernels_get ()->name;
        gboolean ok = g_str_has_prefix (set, "avx512") && __builtin_cpu_supports ("avx512bf16");
        g_once_init_leave (&chosen, ok ? (gsize) &vlm_gemm_avx512bf16 : 1);
    }
    return chosen == 1 ? NULL : (const VlmGemm *) chosen;
}

const VlmGemm *vlm_gemm_fast_dot (const VlmMatrix *w)
{
    if (w->type == VLM_MAT_BF16)
        return w->cols % 2 == 0 ? vlm_gemm_bf16_dot () : NULL;
    if (w->type == VLM_MAT_Q8 || w->type == VLM_MAT_Q4) {
        const VlmKernels *k = vlm_kernels_get ();
        if (k == &vlm_kernels_avx512_vnni)
            return w->type == VLM_MAT_Q8 ? &vlm_gemm_avx512int16 : &vlm_gemm_avx512int8;
        if (k == &vlm_kernels_avx2)
            return w->type == VLM_MAT_Q8 ? &vlm_gemm_avx2int16 : &vlm_gemm_avx2int8;
        return NULL;
    }
    return NULL;
}

const VlmKernels *vlm_kernels_get (void)
{
    static gsize chosen;
    if (g_once_init_enter (&chosen))
        g_once_init_leave (&chosen, (gsize) choose ());
    return (const VlmKernels *) chosen;
}
