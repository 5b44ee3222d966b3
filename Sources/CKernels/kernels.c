// Portable kernels, conversions and the run-time dispatch.
//
// Exactness: the quantize/dequantize functions here are the reference the SIMD
// variants and ggml are compared against, so no contraction of a*b+c into fma.
#pragma STDC FP_CONTRACT OFF

#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <string.h>

#include "ek_internal.h"

// ---- conversions ----------------------------------------------------------------

float ek_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return ek_bits_f32(sign);
        // subnormal: mant * 2^-24, exact in binary32
        const float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return ek_bits_f32(sign | 0x7f800000u | (mant << 13));
    return ek_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t ek_fp32_to_fp16(float f) {
    uint32_t x = ek_f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00u;      // NaN
    if (x >= 0x477ff000u) return sign | 0x7c00u;     // >= 65520 rounds to inf
    if (x < 0x38800000u) {                           // below 2^-14: subnormal or zero
        if (x <= 0x33000000u) return sign;           // <= 2^-25 rounds to zero (tie -> even 0)
        const uint32_t e = x >> 23;                  // 102..112
        const uint32_t m = (x & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;             // 14..24: value / 2^-24 = m >> shift
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r += 1u;
        return sign | (uint16_t)r;
    }
    // normal: rebias the exponent and round the mantissa to 10 bits (ties to even)
    x = x - (112u << 23);
    x = x + 0xfffu + ((x >> 13) & 1u);
    return sign | (uint16_t)(x >> 13);
}

float ek_bf16_to_fp32(uint16_t h) { return ek_bits_f32((uint32_t)h << 16); }

// ---- quantization -----------------------------------------------------------------

void ek_quantize_row_q8_0_ref(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * EK_QK8_0;
        uint8_t *yb = y + i * EK_Q8_0_BLOCK_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < EK_QK8_0; j++) {
            const float v = fabsf(xb[j]);
            amax = amax > v ? amax : v;   // ggml: MAX(amax, fabsf(v))
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = ek_fp32_to_fp16(d);
        memcpy(yb, &dh, 2);
        for (int j = 0; j < EK_QK8_0; j++) {
            const float v = roundf(xb[j] * id);
            // |v| <= 127 whenever 1/d is finite. When d is a float subnormal
            // (amax < ~3.7e-37) 1/d overflows and x*id is inf or NaN; C leaves
            // that conversion undefined, x86 cvttss2si yields 0x80000000, whose
            // low byte (what an int8 cast keeps) is 0 - we store 0 explicitly.
            yb[2 + j] = (v >= -128.0f && v <= 127.0f) ? (uint8_t)(int8_t)(int32_t)v : 0;
        }
    }
}

void ek_quantize_row_q8_0_scalar(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * EK_QK8_0;
        uint8_t *yb = y + i * EK_Q8_0_BLOCK_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < EK_QK8_0; j++) {
            const float v = fabsf(xb[j]);
            amax = v > amax ? v : amax;   // like maxps: a NaN element is skipped
        }
        const float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (id > 3.4028235e38f) id = 0.0f;   // amax < ~3.7e-37: fp16(d) is 0 anyway
        const uint16_t dh = ek_fp32_to_fp16(d);
        memcpy(yb, &dh, 2);
        for (int j = 0; j < EK_QK8_0; j++) {
            const float v = nearbyintf(xb[j] * id);  // default rounding: half to even
            // finite inputs always give |v| <= 127. Non-finite ones (inf/NaN in x) give
            // -128 like the SIMD paths (cvtps2dq returns 0x80000000, packs saturate).
            yb[2 + j] = (v >= -127.0f && v <= 127.0f) ? (uint8_t)(int8_t)(int32_t)v : 0x80;
        }
    }
}

// ---- dequantization ---------------------------------------------------------------

void ek_dequantize_row_q8_0_scalar(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q8_0_BLOCK_BYTES;
        const float d = ek_fp16_to_fp32(ek_load_u16(b));
        for (int j = 0; j < EK_QK8_0; j++) y[i * EK_QK8_0 + j] = (float)(int8_t)b[2 + j] * d;
    }
}

void ek_dequantize_row_q4_0_scalar(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q4_0_BLOCK_BYTES;
        const float d = ek_fp16_to_fp32(ek_load_u16(b));
        float *o = y + i * EK_QK4_0;
        for (int j = 0; j < 16; j++) {
            const int lo = (b[2 + j] & 0x0f) - 8;
            const int hi = (b[2 + j] >> 4) - 8;
            o[j] = (float)lo * d;
            o[j + 16] = (float)hi * d;
        }
    }
}

void ek_dequantize_row_q4_1_scalar(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q4_1_BLOCK_BYTES;
        const float d = ek_fp16_to_fp32(ek_load_u16(b));
        const float m = ek_fp16_to_fp32(ek_load_u16(b + 2));
        float *o = y + i * EK_QK4_1;
        for (int j = 0; j < 16; j++) {
            const float lo = (float)(b[4 + j] & 0x0f) * d;
            const float hi = (float)(b[4 + j] >> 4) * d;
            o[j] = lo + m;
            o[j + 16] = hi + m;
        }
    }
}

void ek_dequantize_row_f16_scalar(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n; i++) y[i] = ek_fp16_to_fp32(ek_load_u16(x + 2 * i));
}

void ek_dequantize_row_bf16_scalar(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n; i++) y[i] = ek_bf16_to_fp32(ek_load_u16(x + 2 * i));
}

// ---- dot products -------------------------------------------------------------------

// Same arithmetic as the SIMD paths and as ggml's x86 ggml_vec_dot_q8_0_q8_0:
// 8 int32 lanes per block (lane l = the 4 byte pairs 4l..4l+3), each lane
// accumulated over the blocks in order as acc[l] = fma(float(lane), dw*dx, acc[l]),
// then the lanes summed as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
float ek_vec_dot_q8_0_scalar(int64_t n, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const uint8_t *y = (const uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = x + i * EK_Q8_0_BLOCK_BYTES;
        const uint8_t *by = y + i * EK_Q8_0_BLOCK_BYTES;
        const float d = ek_fp16_to_fp32(ek_load_u16(bx)) * ek_fp16_to_fp32(ek_load_u16(by));
        for (int l = 0; l < 8; l++) {
            int32_t s = 0;
            for (int k = 4 * l; k < 4 * l + 4; k++) s += (int32_t)(int8_t)bx[2 + k] * (int32_t)(int8_t)by[2 + k];
            acc[l] = fmaf((float)s, d, acc[l]);
        }
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void ek_matvec_q8_0_scalar(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                           const void *xq, float *y) {
    const size_t rs = (size_t)(ncols / EK_QK8_0) * EK_Q8_0_BLOCK_BYTES;
    for (int64_t r = row0; r < row1; r++)
        y[r] = ek_vec_dot_q8_0_scalar(ncols, (const uint8_t *)w + (size_t)r * rs, xq);
}

float ek_vec_dot_f32_scalar(int64_t n, const float *x, const float *y) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

// ---- dispatch -------------------------------------------------------------------------

typedef struct ek_ktable {
    const char *name;
    void (*quantize_q8_0)(const float *, void *, int64_t);
    void (*deq_q8_0)(const void *, float *, int64_t);
    void (*deq_q4_0)(const void *, float *, int64_t);
    void (*deq_q4_1)(const void *, float *, int64_t);
    void (*deq_f16)(const void *, float *, int64_t);
    void (*deq_bf16)(const void *, float *, int64_t);
    float (*dot_q8_0)(int64_t, const void *, const void *);
    void (*matvec_q8_0)(const void *, int64_t, int64_t, int64_t, const void *, float *);
    float (*dot_f32)(int64_t, const float *, const float *);
} ek_ktable;

static const ek_ktable k_scalar = {
    "scalar",
    ek_quantize_row_q8_0_scalar,
    ek_dequantize_row_q8_0_scalar, ek_dequantize_row_q4_0_scalar, ek_dequantize_row_q4_1_scalar,
    ek_dequantize_row_f16_scalar, ek_dequantize_row_bf16_scalar,
    ek_vec_dot_q8_0_scalar, ek_matvec_q8_0_scalar, ek_vec_dot_f32_scalar,
};

static const ek_ktable k_avx2 = {
    "avx2",
    ek_quantize_row_q8_0_avx2,
    ek_dequantize_row_q8_0_avx2, ek_dequantize_row_q4_0_avx2, ek_dequantize_row_q4_1_avx2,
    ek_dequantize_row_f16_avx2, ek_dequantize_row_bf16_avx2,
    ek_vec_dot_q8_0_avx2, ek_matvec_q8_0_avx2, ek_vec_dot_f32_avx2,
};

static const ek_ktable k_avx512 = {
    "avx512vnni",
    ek_quantize_row_q8_0_avx512,
    ek_dequantize_row_q8_0_avx2, ek_dequantize_row_q4_0_avx2, ek_dequantize_row_q4_1_avx2,
    ek_dequantize_row_f16_avx2, ek_dequantize_row_bf16_avx2,
    ek_vec_dot_q8_0_avx512vnni, ek_matvec_q8_0_avx512vnni, ek_vec_dot_f32_avx512,
};

static _Atomic(const ek_ktable *) g_table = NULL;


int ek_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

int ek_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return ek_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

static const ek_ktable *ek_select(void) {
    if (ek_cpu_has_avx512vnni()) return &k_avx512;
    if (ek_cpu_has_avx2()) return &k_avx2;
    return &k_scalar;
}

static inline const ek_ktable *ek_table(void) {
    const ek_ktable *t = atomic_load_explicit(&g_table, memory_order_acquire);
    if (__builtin_expect(t != NULL, 1)) return t;
    // Every racing thread computes the same answer; the first store wins.
    const ek_ktable *want = ek_select();
    const ek_ktable *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&g_table, &expected, want, memory_order_acq_rel,
                                                memory_order_acquire))
        return want;
    return expected;
}

void ek_init(void) { (void)ek_table(); }

const char *ek_kernel_name(void) { return ek_table()->name; }

int ek_force_kernel(const char *name) {
    if (name == NULL) return -1;
    const ek_ktable *t = NULL;
    if (strcmp(name, "scalar") == 0) t = &k_scalar;
    else if (strcmp(name, "avx2") == 0 && ek_cpu_has_avx2()) t = &k_avx2;
    else if (strcmp(name, "avx512vnni") == 0 && ek_cpu_has_avx512vnni()) t = &k_avx512;
    if (t == NULL) return -1;
    atomic_store_explicit(&g_table, t, memory_order_release);
    return 0;
}

void ek_quantize_row_q8_0(const float *x, void *y, int64_t n) { ek_table()->quantize_q8_0(x, y, n); }
void ek_dequantize_row_q8_0(const void *x, float *y, int64_t n) { ek_table()->deq_q8_0(x, y, n); }
void ek_dequantize_row_q4_0(const void *x, float *y, int64_t n) { ek_table()->deq_q4_0(x, y, n); }
void ek_dequantize_row_q4_1(const void *x, float *y, int64_t n) { ek_table()->deq_q4_1(x, y, n); }
void ek_dequantize_row_f16(const void *x, float *y, int64_t n) { ek_table()->deq_f16(x, y, n); }
void ek_dequantize_row_bf16(const void *x, float *y, int64_t n) { ek_table()->deq_bf16(x, y, n); }
float ek_vec_dot_q8_0(int64_t n, const void *x, const void *y) { return ek_table()->dot_q8_0(n, x, y); }
void ek_matvec_q8_0(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y) {
    ek_table()->matvec_q8_0(w, ncols, row0, row1, xq, y);
}
float ek_vec_dot_f32(int64_t n, const float *x, const float *y) { return ek_table()->dot_f32(n, x, y); }

// ---- memory ------------------------------------------------------------------------------

#define EK_HUGE_ALIGN ((size_t)2 << 20)

void *ek_alloc_huge(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - 2 * EK_HUGE_ALIGN) return NULL;
    const size_t len = (bytes + EK_HUGE_ALIGN - 1) & ~(EK_HUGE_ALIGN - 1);
    // over-allocate by one huge page, then trim to a 2 MiB aligned start
    uint8_t *raw = mmap(NULL, len + EK_HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    const uintptr_t start = ((uintptr_t)raw + EK_HUGE_ALIGN - 1) & ~(uintptr_t)(EK_HUGE_ALIGN - 1);
    uint8_t *p = (uint8_t *)start;
    const size_t head = (size_t)(p - raw);
    const size_t tail = EK_HUGE_ALIGN - head;
    if (head) munmap(raw, head);
    if (tail) munmap(p + len, tail);
#if defined(MADV_HUGEPAGE)
    madvise(p, len, MADV_HUGEPAGE);   // advisory: failure only means small pages
#endif
    return p;
}

void ek_free_huge(void *p, size_t bytes) {
    if (p == NULL || bytes == 0) return;
    const size_t len = (bytes + EK_HUGE_ALIGN - 1) & ~(EK_HUGE_ALIGN - 1);
    munmap(p, len);
}
