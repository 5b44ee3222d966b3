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

// ---- batches of Q8_0 -----------------------------------------------------------------

// One tile of NR rows (4 or 1) x NT tokens (2 or 1): each weight block is loaded once for the
// tile's tokens and each activation block once for its rows. Per row and token the arithmetic
// of ek_vec_dot_q8_0_avx2 (exact int32 lanes, one fma per block with d_w * d_a, the same
// horizontal sum), so a token's results do not depend on its batch.
EK_TARGET_AVX2 static inline __attribute__((always_inline)) void q8_0_tile_avx2(
    const uint8_t *w, size_t rs, const uint8_t *a, int64_t as, int64_t nb, const int NR, const int NT, float out[4][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
        __m256i yv[2];
        float dy[2];
        for (int j = 0; j < NT; j++) {
            yv[j] = _mm256_loadu_si256((const __m256i *)(a + j * as + o + 2));
            dy[j] = _cvtsh_ss(ek_load_u16(a + j * as + o));
        }
        for (int i = 0; i < NR; i++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + i * rs + o + 2));
            const __m256i aw = _mm256_sign_epi8(wv, wv);
            const float dw = _cvtsh_ss(ek_load_u16(w + i * rs + o));
            for (int j = 0; j < NT; j++) {
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(yv[j], wv)), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dy[j]), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = ek_hsum_ps_avx2(acc[i][j]);
}

// Rows [r0, r1) x ntok tokens (activations `as` bytes apart, results y[tok * ys + row], or
// added to acc): chunks of 32 tokens (their activations stay in L1) against the rows in tiles.
EK_TARGET_AVX2 void ek_gemm_q8_0_avx2(const void *vw, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                                      const void *va, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    const uint8_t *W = (const uint8_t *)vw, *A = (const uint8_t *)va;
    const int64_t nb = ncols / EK_QK8_0;
    for (int64_t t0 = 0; t0 < ntok; t0 += 32) {
        const int64_t t1 = ntok - t0 < 32 ? ntok : t0 + 32;
        for (int64_t r = r0; r < r1; r += 4) {
            const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            for (int64_t t = t0; t < t1; t += 2) {
                const int nt = t1 - t < 2 ? 1 : 2;
                const uint8_t *a = A + t * as;
                float v[4][2];
                if (nr == 4) {
                    if (nt == 2) q8_0_tile_avx2(W + (size_t)r * rs, rs, a, as, nb, 4, 2, v);
                    else q8_0_tile_avx2(W + (size_t)r * rs, rs, a, as, nb, 4, 1, v);
                } else {   // a tail of 1-3 rows, one at a time
                    for (int i = 0; i < nr; i++) {
                        float u[4][2];
                        if (nt == 2) q8_0_tile_avx2(W + (size_t)(r + i) * rs, rs, a, as, nb, 1, 2, u);
                        else q8_0_tile_avx2(W + (size_t)(r + i) * rs, rs, a, as, nb, 1, 1, u);
                        v[i][0] = u[0][0];
                        v[i][1] = u[0][1];
                    }
                }
                for (int i = 0; i < nr; i++)
                    for (int j = 0; j < nt; j++) {
                        const int64_t k = (t + j) * ys + r + i;
                        if (acc) acc[k] += v[i][j]; else y[k] = v[i][j];
                    }
            }
        }
    }
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
