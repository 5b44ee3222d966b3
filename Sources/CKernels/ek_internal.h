// Private declarations shared by the CKernels C files (not part of the API).
#pragma once
#include <stdint.h>
#include <string.h>
#include "include/ek_kernels.h"

#define EK_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define EK_TARGET_AVX512 \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

static inline uint16_t ek_load_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t ek_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ek_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
