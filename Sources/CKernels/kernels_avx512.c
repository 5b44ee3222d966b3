// AVX-512 (F/BW/VL) + VNNI kernels. Only called when ek_cpu_has_avx512vnni().
//
// The Q8_0 integer dots use vpdpbusd, which multiplies UNSIGNED bytes by
// signed bytes. We feed it w XOR 0x80 = w + 128 (unsigned) against the signed
// activation y, so each block yields  sum(w*y) + 128*sum(y);  the second term
// depends on the activation only and is removed by starting the accumulator at
// -128*sum(y) (spread as -16*sum(y) over the 8 lanes). Exact for every int8 w, y.
#pragma STDC FP_CONTRACT OFF

#include <immintrin.h>

#include "ek_internal.h"

EK_TARGET_AVX512 void ek_quantize_row_q8_0_avx512(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * EK_QK8_0;
        uint8_t *yb = y + i * EK_Q8_0_BLOCK_BYTES;
        const __m512 v0 = _mm512_loadu_ps(xb);
        const __m512 v1 = _mm512_loadu_ps(xb + 16);
        const __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (id > 3.4028235e38f) id = 0.0f;   // as ek_quantize_row_q8_0_scalar
        const uint16_t dh = ek_fp32_to_fp16(d);
        memcpy(yb, &dh, 2);
        const __m512 mul = _mm512_set1_ps(id);
#define EK_RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, mul), EK_RND));
        const __m512i i1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, mul), EK_RND));
        _mm_storeu_si128((__m128i *)(yb + 2), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(yb + 18), _mm512_cvtsepi32_epi8(i1));
    }
}

EK_TARGET_AVX512 static inline float ek_hsum_ps256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EK_TARGET_AVX512 static inline int32_t ek_hsum_epi32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

EK_TARGET_AVX512 float ek_vec_dot_q8_0_avx512vnni(int64_t n, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const uint8_t *y = (const uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = x + i * EK_Q8_0_BLOCK_BYTES;
        const uint8_t *by = y + i * EK_Q8_0_BLOCK_BYTES;
        const __m256i w = _mm256_loadu_si256((const __m256i *)(bx + 2));
        const __m256i a = _mm256_loadu_si256((const __m256i *)(by + 2));
        const __m256i t = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_xor_si256(w, bias), a);
        const __m256i c = _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, a);   // 128*sum(a)
        const float d = _cvtsh_ss(ek_load_u16(bx)) * _cvtsh_ss(ek_load_u16(by));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(t, c)), _mm256_set1_ps(d), acc);
    }
    return ek_hsum_ps256(acc);
}

// Blocks of the activation prepared once per call (per chunk of columns).
#define EK_MV_CHUNK 128
#define EK_MV_ROWS 4   // rows per step (8 was measured slower streaming from DRAM)

// One (row, block) step: integer dot via vpdpbusd (accumulator pre-loaded with
// the -128*sum(x) correction), to float, fma with dx*dw broadcast.
// (A 64K-entry fp16->fp32 table for dw was tried: faster with weights in L2,
// but ~30% slower streaming real-looking weights from DRAM - the dependent
// table load misses once the weight stream has flushed the caches.)
#define EK_VNNI_STEP(P, A)                                                                      \
    do {                                                                                        \
        const __m256i u_ = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)((P) + o + 2)), bias); \
        const __m256 f_ = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(cv, u_, xv));                 \
        A = _mm256_fmadd_ps(f_, _mm256_set1_ps(d * _cvtsh_ss(ek_load_u16((P) + o))), A);         \
    } while (0)

#define EK_PF_MIN 4096  // minimum prefetch distance in bytes
static inline void ek_prefetch_addr(uintptr_t a) { _mm_prefetch((const char *)a, _MM_HINT_T0); }

EK_TARGET_AVX512 void ek_matvec_q8_0_avx512vnni(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                                                const void *xq, float *y) {
    const int64_t nb = ncols / EK_QK8_0;
    const size_t rs = (size_t)nb * EK_Q8_0_BLOCK_BYTES;
    const uint8_t *W = (const uint8_t *)w;
    const uint8_t *X = (const uint8_t *)xq;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    if (nb <= 0) {   // empty rows: every dot product is 0
        for (int64_t r = row0; r < row1; r++) y[r] = 0.0f;
        return;
    }

    _Alignas(32) __m256i xs[EK_MV_CHUNK];
    int32_t cs[EK_MV_CHUNK];
    float dx[EK_MV_CHUNK];

    // Software prefetch. When a row fits in one chunk, a group of EK_MV_ROWS
    // rows is one contiguous span that the loop consumes EK_MV_ROWS*34 bytes
    // per step, so we prefetch the same amount, `dist` bytes further on (whole
    // groups, at least 4 KiB): this keeps ~20 cache lines in flight, which the
    // hardware prefetcher alone does not do for this access pattern (measured
    // ~7 GB/s without, ~26 GB/s with, one core streaming from DRAM).
    const size_t group = (size_t)EK_MV_ROWS * rs;
    const size_t dist = group * ((EK_PF_MIN + group - 1) / (group ? group : 1));

    if (nb <= EK_MV_CHUNK && row1 > row0) {
        // the loop below prefetches `dist` bytes ahead: start the stream now
        const size_t span = (size_t)(row1 - row0) * rs;
        const uintptr_t start = (uintptr_t)(W + (size_t)row0 * rs);
        for (size_t off = 0; off < dist && off < span; off += 64) ek_prefetch_addr(start + off);
    }

    for (int64_t c0 = 0; c0 < nb; c0 += EK_MV_CHUNK) {
        const int64_t cn = nb - c0 < EK_MV_CHUNK ? nb - c0 : EK_MV_CHUNK;
        const int first = c0 == 0;
        const int whole_rows = cn == nb;
        for (int64_t b = 0; b < cn; b++) {
            const uint8_t *blk = X + (size_t)(c0 + b) * EK_Q8_0_BLOCK_BYTES;
            const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 2));
            xs[b] = v;
            const int32_t s = ek_hsum_epi32_256(_mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, v));
            cs[b] = -(s / 8);   // s = 128*sum(x), a multiple of 8
            dx[b] = _cvtsh_ss(ek_load_u16(blk));
        }
        int64_t r = row0;
        for (; r + EK_MV_ROWS <= row1; r += EK_MV_ROWS) {
            const uint8_t *p0 = W + (size_t)r * rs + (size_t)c0 * EK_Q8_0_BLOCK_BYTES;
            const uint8_t *p1 = p0 + rs;
            const uint8_t *p2 = p1 + rs;
            const uint8_t *p3 = p2 + rs;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            const uintptr_t pf0 = (uintptr_t)p0 + dist;
            for (int64_t b = 0; b < cn; b++) {
                const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
                if (whole_rows) {
                    const uintptr_t pf = pf0 + (size_t)EK_MV_ROWS * o;
                    ek_prefetch_addr(pf);
                    ek_prefetch_addr(pf + 64);
                    ek_prefetch_addr(pf + 128);
                } else if ((b & 1) == 0) {
                    ek_prefetch_addr((uintptr_t)p0 + o + 2048);
                    ek_prefetch_addr((uintptr_t)p1 + o + 2048);
                    ek_prefetch_addr((uintptr_t)p2 + o + 2048);
                    ek_prefetch_addr((uintptr_t)p3 + o + 2048);
                }
                const __m256i xv = _mm256_load_si256(&xs[b]);
                const __m256i cv = _mm256_set1_epi32(cs[b]);
                const float d = dx[b];
                EK_VNNI_STEP(p0, a0);
                EK_VNNI_STEP(p1, a1);
                EK_VNNI_STEP(p2, a2);
                EK_VNNI_STEP(p3, a3);
            }
            const float s[4] = {ek_hsum_ps256(a0), ek_hsum_ps256(a1), ek_hsum_ps256(a2), ek_hsum_ps256(a3)};
            for (int k = 0; k < 4; k++) y[r + k] = first ? s[k] : y[r + k] + s[k];
        }
        for (; r < row1; r++) {
            const uint8_t *p0 = W + (size_t)r * rs + (size_t)c0 * EK_Q8_0_BLOCK_BYTES;
            __m256 a0 = _mm256_setzero_ps();
            for (int64_t b = 0; b < cn; b++) {
                const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
                const __m256i xv = _mm256_load_si256(&xs[b]);
                const __m256i cv = _mm256_set1_epi32(cs[b]);
                const float d = dx[b];
                EK_VNNI_STEP(p0, a0);
            }
            const float s0 = ek_hsum_ps256(a0);
            y[r] = first ? s0 : y[r] + s0;
        }
    }
}

EK_TARGET_AVX512 float ek_vec_dot_f32_avx512(int64_t n, const float *x, const float *y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    if (i < n) {   // masked tail: up to 31 elements
        const int64_t left = n - i;
        const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __mmask16 m1 = left > 16 ? (__mmask16)((1u << (left - 16)) - 1u) : (__mmask16)0;
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, x + i), _mm512_maskz_loadu_ps(m0, y + i), a0);
        if (m1) a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, x + i + 16), _mm512_maskz_loadu_ps(m1, y + i + 16), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
