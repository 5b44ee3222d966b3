// AVX-512 (F/BW/VL) + VNNI dot products for the ggml block types. Same bits as quants.c /
// quants_avx2.c: vpdpbusd yields exactly the int32 lanes maddubs+madd do (ggml's own
// AVX512-VNNI build uses it the same way), float steps in the same order.
#pragma STDC FP_CONTRACT OFF

#include <immintrin.h>
#include <math.h>

#include "ek_internal.h"
#include "ek_quants.h"

#define T5 EK_TARGET_AVX512
#define T5BF __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")))

T5 static inline float hsum8_512(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ggml's _mm512_reduce_add_ps order (see ek_hsum16_ggml)
T5 static inline float hsum16_512(__m512 v) {
    const __m256 t3 = _mm256_add_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)), _mm512_castps512_ps256(v));
    const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    const __m128 t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));
    return _mm_cvtss_f32(_mm_add_ss(t8, _mm_movehdup_ps(t8)));
}

T5 static inline float h2f(const uint8_t *p) { return _cvtsh_ss(ek_load_u16(p)); }

T5 static inline __m256i nibbles32(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

// 32 bits -> mask register
static inline __mmask32 bits_mask(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    return (__mmask32)u;
}

T5 static inline __m256 lanes_ss(__m256i w, __m256i a) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)));
}
T5 static inline __m256 lanes_us(__m256i w, __m256i a) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a));
}

T5 float ek_vec_dot_q4_0_q8_0_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, w += 18, a += 34) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        const __m256i q = _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, lanes_ss(q, _mm256_loadu_si256((const __m256i *)(a + 2))), acc);
    }
    return hsum8_512(acc);
}

T5 float ek_vec_dot_q5_0_q8_0_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, w += 22, a += 34) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        // nibble where the high bit is set, nibble - 16 (= nibble | 0xF0) where not
        const __m256i nb = nibbles32(w + 6);
        const __m256i q = _mm256_mask_blend_epi8(bits_mask(w + 2), _mm256_or_si256(nb, _mm256_set1_epi8((char)0xF0)), nb);
        acc = _mm256_fmadd_ps(d, lanes_ss(q, _mm256_loadu_si256((const __m256i *)(a + 2))), acc);
    }
    return hsum8_512(acc);
}

T5 float ek_vec_dot_q4_1_q8_1_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 20, a += 36) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);
        acc = _mm256_fmadd_ps(d, lanes_us(nibbles32(w + 4), _mm256_loadu_si256((const __m256i *)(a + 4))), acc);
    }
    return hsum8_512(acc) + summs;
}

T5 float ek_vec_dot_q5_1_q8_1_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 24, a += 36) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);
        const __m256i nb = nibbles32(w + 8);
        const __m256i q = _mm256_mask_blend_epi8(bits_mask(w + 4), nb, _mm256_or_si256(nb, _mm256_set1_epi8(0x10)));
        acc = _mm256_fmadd_ps(d, lanes_us(q, _mm256_loadu_si256((const __m256i *)(a + 4))), acc);
    }
    return hsum8_512(acc) + summs;
}

// K-quants: the AVX2 code (maddubs + madd with the sub-block scale) is already exact;
// these entry points use it (ggml's AVX-512 build runs the same AVX2 code).
float ek_vec_dot_q2_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q2_K_q8_K_avx2(n, w, a); }
float ek_vec_dot_q3_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q3_K_q8_K_avx2(n, w, a); }
float ek_vec_dot_q4_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q4_K_q8_K_avx2(n, w, a); }
float ek_vec_dot_q5_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q5_K_q8_K_avx2(n, w, a); }
float ek_vec_dot_q6_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q6_K_q8_K_avx2(n, w, a); }

T5 float ek_vec_dot_f16_f16_avx512(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw, *a = (const uint16_t *)va;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
#define LD(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
    for (int64_t i = 0; i < np; i += 64) {
        s0 = _mm512_fmadd_ps(LD(w + i), LD(a + i), s0);
        s1 = _mm512_fmadd_ps(LD(w + i + 16), LD(a + i + 16), s1);
        s2 = _mm512_fmadd_ps(LD(w + i + 32), LD(a + i + 32), s2);
        s3 = _mm512_fmadd_ps(LD(w + i + 48), LD(a + i + 48), s3);
    }
#undef LD
    s0 = _mm512_add_ps(s0, s2);
    s1 = _mm512_add_ps(s1, s3);
    s0 = _mm512_add_ps(s0, s1);
    double sumf = (double)hsum16_512(s0);
    for (int64_t i = np; i < n; i++) sumf += (double)(_cvtsh_ss(w[i]) * _cvtsh_ss(a[i]));
    return (float)sumf;
}

T5 float ek_vec_dot_f32_f32_avx512(int64_t n, const void *vw, const void *va) {
    const float *w = (const float *)vw, *a = (const float *)va;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(a + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(a + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(a + i + 48), s3);
    }
    s0 = _mm512_add_ps(s0, s2);
    s1 = _mm512_add_ps(s1, s3);
    s0 = _mm512_add_ps(s0, s1);
    return ek_f32_tail_ggml(w, a, np, n, hsum16_512(s0));
}

int ek_cpu_has_avx512bf16(void) {
    __builtin_cpu_init();
    return ek_cpu_has_avx512vnni() && __builtin_cpu_supports("avx512bf16");
}

T5BF static float dot_bf16_native(int64_t n, const uint16_t *w, const uint16_t *a) {
    __m512 c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_loadu_si512(w + i), (__m512bh)_mm512_loadu_si512(a + i));
        c2 = _mm512_dpbf16_ps(c2, (__m512bh)_mm512_loadu_si512(w + i + 32), (__m512bh)_mm512_loadu_si512(a + i + 32));
    }
    double sumf = 0;
    sumf += (double)hsum16_512(c1);
    sumf += (double)hsum16_512(c2);
    for (; i < n; i++) sumf += (double)(ek_bf16_to_fp32(w[i]) * ek_bf16_to_fp32(a[i]));
    return (float)sumf;
}

float ek_vec_dot_bf16_bf16_avx512(int64_t n, const void *w, const void *a) {
    static int has = -1;
    int h = __atomic_load_n(&has, __ATOMIC_RELAXED);
    if (h < 0) {
        h = ek_cpu_has_avx512bf16();
        __atomic_store_n(&has, h, __ATOMIC_RELAXED);
    }
    if (h) return dot_bf16_native(n, (const uint16_t *)w, (const uint16_t *)a);
    return ek_vec_dot_bf16_bf16_scalar(n, w, a);
}
