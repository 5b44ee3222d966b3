// AVX2 + FMA + F16C kernels (per-function target attributes; only called when
// ek_cpu_has_avx2() says the CPU can run them).
#pragma STDC FP_CONTRACT OFF

#include <immintrin.h>

#include "ek_internal.h"

// ---- quantization (same arithmetic as ek_quantize_row_q8_0_scalar) -----------------

EK_TARGET_AVX2 void ek_quantize_row_q8_0_avx2(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * EK_QK8_0;
        uint8_t *yb = y + i * EK_Q8_0_BLOCK_BYTES;
        __m256 v0 = _mm256_loadu_ps(xb);
        __m256 v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16);
        __m256 v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (id > 3.4028235e38f) id = 0.0f;   // as ek_quantize_row_q8_0_scalar
        const uint16_t dh = ek_fp32_to_fp16(d);
        memcpy(yb, &dh, 2);
        const __m256 mul = _mm256_set1_ps(id);
#define EK_RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), EK_RND));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), EK_RND));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), EK_RND));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), EK_RND));
        i0 = _mm256_packs_epi32(i0, i1);
        i2 = _mm256_packs_epi32(i2, i3);
        i0 = _mm256_packs_epi16(i0, i2);
        i0 = _mm256_permutevar8x32_epi32(i0, perm);
        _mm256_storeu_si256((__m256i *)(yb + 2), i0);
    }
}

// ---- dequantization (byte-exact with the scalar versions) ------------------------------

EK_TARGET_AVX2 static inline void ek_store_i8x32_scaled(float *o, __m256i q, __m256 d) {
    const __m128i lo = _mm256_castsi256_si128(q);
    const __m128i hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(o + 0, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
    _mm256_storeu_ps(o + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
    _mm256_storeu_ps(o + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
    _mm256_storeu_ps(o + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}

EK_TARGET_AVX2 void ek_dequantize_row_q8_0_avx2(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q8_0_BLOCK_BYTES;
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ek_load_u16(b)));
        ek_store_i8x32_scaled(y + i * EK_QK8_0, _mm256_loadu_si256((const __m256i *)(b + 2)), d);
    }
}

EK_TARGET_AVX2 void ek_dequantize_row_q4_0_avx2(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK4_0;
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q4_0_BLOCK_BYTES;
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ek_load_u16(b)));
        const __m128i raw = _mm_loadu_si128((const __m128i *)(b + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, mask), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), eight);
        ek_store_i8x32_scaled(y + i * EK_QK4_0, _mm256_set_m128i(hi, lo), d);
    }
}

EK_TARGET_AVX2 void ek_dequantize_row_q4_1_avx2(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / EK_QK4_1;
    const __m128i mask = _mm_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = x + i * EK_Q4_1_BLOCK_BYTES;
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ek_load_u16(b)));
        const __m256 m = _mm256_set1_ps(_cvtsh_ss(ek_load_u16(b + 2)));
        const __m128i raw = _mm_loadu_si128((const __m128i *)(b + 4));
        const __m128i lo = _mm_and_si128(raw, mask);
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
        float *o = y + i * EK_QK4_1;
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
            const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
            const __m256 qd = _mm256_mul_ps(q, d);   // two roundings, as ggml: q*d + m
            _mm256_storeu_ps(o + 8 * k, _mm256_add_ps(qd, m));
        }
    }
}

EK_TARGET_AVX2 void ek_dequantize_row_f16_avx2(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i))));
    for (; i < n; i++) y[i] = ek_fp16_to_fp32(ek_load_u16(x + 2 * i));
}

EK_TARGET_AVX2 void ek_dequantize_row_bf16_avx2(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + 2 * i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(h, 16));
    }
    for (; i < n; i++) y[i] = ek_bf16_to_fp32(ek_load_u16(x + 2 * i));
}

// ---- Q8_0 dot products ---------------------------------------------------------------
//
// Without VNNI: |w| (unsigned) times y with w's sign applied (signed), pairwise
// summed to int16 by maddubs (|w| <= 128, |y| <= 127, so pairs stay below
// 2^15), then to int32 by madd.

EK_TARGET_AVX2 static inline __m256 ek_dot_block_avx2(__m256i w, __m256i yv) {
    const __m256i aw = _mm256_sign_epi8(w, w);
    const __m256i sy = _mm256_sign_epi8(yv, w);
    const __m256i p16 = _mm256_maddubs_epi16(aw, sy);
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_cvtepi32_ps(p32);
}

EK_TARGET_AVX2 static inline float ek_hsum_ps_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EK_TARGET_AVX2 float ek_vec_dot_q8_0_avx2(int64_t n, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const uint8_t *y = (const uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = x + i * EK_Q8_0_BLOCK_BYTES;
        const uint8_t *by = y + i * EK_Q8_0_BLOCK_BYTES;
        const float d = _cvtsh_ss(ek_load_u16(bx)) * _cvtsh_ss(ek_load_u16(by));
        const __m256 f = ek_dot_block_avx2(_mm256_loadu_si256((const __m256i *)(bx + 2)),
                                           _mm256_loadu_si256((const __m256i *)(by + 2)));
        acc = _mm256_fmadd_ps(f, _mm256_set1_ps(d), acc);
    }
    return ek_hsum_ps_avx2(acc);
}

EK_TARGET_AVX2 void ek_matvec_q8_0_avx2(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                                        const void *xq, float *y) {
    const int64_t nb = ncols / EK_QK8_0;
    const size_t rs = (size_t)nb * EK_Q8_0_BLOCK_BYTES;
    const uint8_t *W = (const uint8_t *)w;
    const uint8_t *X = (const uint8_t *)xq;
    const size_t group = 4 * rs;
    const size_t dist = group * ((4096 + group - 1) / (group ? group : 1));
    if (row1 > row0) {   // the loop prefetches `dist` bytes ahead: start the stream now
        const size_t span = (size_t)(row1 - row0) * rs;
        const uintptr_t start = (uintptr_t)(W + (size_t)row0 * rs);
        for (size_t off = 0; off < dist && off < span; off += 64) _mm_prefetch((const char *)(start + off), _MM_HINT_T0);
    }
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) {
        const uint8_t *p0 = W + (size_t)r * rs;
        const uint8_t *p1 = p0 + rs;
        const uint8_t *p2 = p1 + rs;
        const uint8_t *p3 = p2 + rs;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        const uintptr_t pf0 = (uintptr_t)p0 + dist;
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
            // see ek_matvec_q8_0_avx512vnni: prefetch the 4-row span `dist` bytes ahead
            const uintptr_t pf = pf0 + 4 * o;
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 128), _MM_HINT_T0);
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(X + o + 2));
            const float dx = _cvtsh_ss(ek_load_u16(X + o));
            a0 = _mm256_fmadd_ps(ek_dot_block_avx2(_mm256_loadu_si256((const __m256i *)(p0 + o + 2)), xv),
                                 _mm256_set1_ps(dx * _cvtsh_ss(ek_load_u16(p0 + o))), a0);
            a1 = _mm256_fmadd_ps(ek_dot_block_avx2(_mm256_loadu_si256((const __m256i *)(p1 + o + 2)), xv),
                                 _mm256_set1_ps(dx * _cvtsh_ss(ek_load_u16(p1 + o))), a1);
            a2 = _mm256_fmadd_ps(ek_dot_block_avx2(_mm256_loadu_si256((const __m256i *)(p2 + o + 2)), xv),
                                 _mm256_set1_ps(dx * _cvtsh_ss(ek_load_u16(p2 + o))), a2);
            a3 = _mm256_fmadd_ps(ek_dot_block_avx2(_mm256_loadu_si256((const __m256i *)(p3 + o + 2)), xv),
                                 _mm256_set1_ps(dx * _cvtsh_ss(ek_load_u16(p3 + o))), a3);
        }
        y[r + 0] = ek_hsum_ps_avx2(a0);
        y[r + 1] = ek_hsum_ps_avx2(a1);
        y[r + 2] = ek_hsum_ps_avx2(a2);
        y[r + 3] = ek_hsum_ps_avx2(a3);
    }
    for (; r < row1; r++) y[r] = ek_vec_dot_q8_0_avx2(ncols, W + (size_t)r * rs, xq);
}

// ---- float dot -----------------------------------------------------------------------

EK_TARGET_AVX2 float ek_vec_dot_f32_avx2(int64_t n, const float *x, const float *y) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = ek_hsum_ps_avx2(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}
