// OpenBLAS core selection (see ek_pool.h).
#define _GNU_SOURCE
// OpenBLAS core selection
//
// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not recognize some recent x86 CPUs and falls
// back to its SSE3 "Prescott" kernels (sgemm ~40 GFLOP/s instead of ~210 on 2 AVX-512 cores).
// When that happened and the user did not choose a core (OPENBLAS_CORETYPE unset), re-run
// OpenBLAS's own core selection with the core this CPU supports. Everything is looked up with
// dlsym, so other OpenBLAS builds (or none) are left alone.
#include <dlfcn.h>
#include "include/ek_pool.h"
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

static int ob_result;
static pthread_once_t ob_once = PTHREAD_ONCE_INIT;

static void ob_select(void) {
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    if (!corename || !init || !quit || getenv("OPENBLAS_CORETYPE") != NULL) return;
    const char *now = corename();
    if (now == NULL || strcasecmp(now, "prescott") != 0) return;
    const char *want = NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
#endif
    if (want == NULL) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    now = corename();
    ob_result = now != NULL && strcasecmp(now, want) == 0;
}

int ek_openblas_prefer_native_core(void) {
    pthread_once(&ob_once, ob_select);
    return ob_result;
}
