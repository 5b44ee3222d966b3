// AVX-512 (F/BW/VL) + VNNI kernels. Only called when ek_cpu_has_avx512vnni().
//
// The Q8_0 integer dots use vpdpbusd, which multiplies UNSIGNED bytes by
// signed bytes: we feed it |w| and x with w's sign applied (x in [-127, 127],
// as our quantizer produces, so the sign flip cannot overflow), the same trick
// ggml uses. Each int32 lane (4 byte pairs) then holds exactly the integer
// ggml's AVX2/AVX-512 code has in it, and the float steps follow ggml's order,
// so results are bit-identical to llama.cpp's x86 build (and to our scalar and
// AVX2 paths).
//
// (Tried and measured slower streaming from DRAM on Zen 4, ~8-10%: feeding
// w XOR 0x80 with a per-lane -128*sum(x) correction as the accumulator start.
// It has fewer instructions and is faster with the weights in L2, but decode
// streams every weight from DRAM.)
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

EK_TARGET_AVX512 static inline __m256i ek_dot_lanes_vnni(__m256i w, __m256i x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

EK_TARGET_AVX512 float ek_vec_dot_q8_0_avx512vnni(int64_t n, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const uint8_t *y = (const uint8_t *)vy;
    const int64_t nb = n / EK_QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = x + i * EK_Q8_0_BLOCK_BYTES;
        const uint8_t *by = y + i * EK_Q8_0_BLOCK_BYTES;
        const __m256i w = _mm256_loadu_si256((const __m256i *)(bx + 2));
        const __m256i a = _mm256_loadu_si256((const __m256i *)(by + 2));
        const float d = _cvtsh_ss(ek_load_u16(bx)) * _cvtsh_ss(ek_load_u16(by));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ek_dot_lanes_vnni(w, a)), _mm256_set1_ps(d), acc);
    }
    return ek_hsum_ps256(acc);
}

// Activation blocks prepared once per call on the stack (ncols <= 8192);
// longer rows take a path that derives them block by block.
#define EK_MV_PREP_MAX 256
#define EK_PF_MIN 4096  // minimum prefetch distance in bytes

// One (row, block) step: exact int32 lanes, to float, fma with dw*dx broadcast.
// (A 64K-entry fp16->fp32 table for dw was tried: faster with weights in L2,
// but ~30% slower streaming real-looking weights from DRAM - the dependent
// table load misses once the weight stream has flushed the caches.)
#define EK_VNNI_STEP(P, A)                                                                      \
    do {                                                                                        \
        const __m256i w_ = _mm256_loadu_si256((const __m256i *)((P) + o + 2));                  \
        const __m256 f_ = _mm256_cvtepi32_ps(ek_dot_lanes_vnni(w_, xv));                       \
        A = _mm256_fmadd_ps(f_, _mm256_set1_ps(_cvtsh_ss(ek_load_u16((P) + o)) * d), A);         \
    } while (0)

static inline void ek_prefetch_addr(uintptr_t a) { _mm_prefetch((const char *)a, _MM_HINT_T0); }

// Rows longer than EK_MV_PREP_MAX blocks: activation block data derived on the fly.
EK_TARGET_AVX512 static void ek_matvec_vnni_long(const uint8_t *W, size_t rs, int64_t nb, int64_t row0,
                                                 int64_t row1, const uint8_t *X, float *y) {
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) {
        const uint8_t *p0 = W + (size_t)r * rs, *p1 = p0 + rs, *p2 = p1 + rs, *p3 = p2 + rs;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
            if ((b & 1) == 0) {   // one sequential stream per row
                ek_prefetch_addr((uintptr_t)p0 + o + 2048);
                ek_prefetch_addr((uintptr_t)p1 + o + 2048);
                ek_prefetch_addr((uintptr_t)p2 + o + 2048);
                ek_prefetch_addr((uintptr_t)p3 + o + 2048);
            }
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(X + o + 2));
            const float d = _cvtsh_ss(ek_load_u16(X + o));
            EK_VNNI_STEP(p0, a0);
            EK_VNNI_STEP(p1, a1);
            EK_VNNI_STEP(p2, a2);
            EK_VNNI_STEP(p3, a3);
        }
        y[r] = ek_hsum_ps256(a0);
        y[r + 1] = ek_hsum_ps256(a1);
        y[r + 2] = ek_hsum_ps256(a2);
        y[r + 3] = ek_hsum_ps256(a3);
    }
    for (; r < row1; r++) {
        const uint8_t *p0 = W + (size_t)r * rs;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(X + o + 2));
            const float d = _cvtsh_ss(ek_load_u16(X + o));
            EK_VNNI_STEP(p0, a0);
        }
        y[r] = ek_hsum_ps256(a0);
    }
}

EK_TARGET_AVX512 void ek_matvec_q8_0_avx512vnni(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                                                const void *xq, float *y) {
    const int64_t nb = ncols / EK_QK8_0;
    const size_t rs = (size_t)nb * EK_Q8_0_BLOCK_BYTES;
    const uint8_t *W = (const uint8_t *)w;
    const uint8_t *X = (const uint8_t *)xq;
    if (row1 <= row0) return;
    if (nb <= 0) {   // empty rows: every dot product is 0
        for (int64_t r = row0; r < row1; r++) y[r] = 0.0f;
        return;
    }
    if (nb > EK_MV_PREP_MAX) {
        ek_matvec_vnni_long(W, rs, nb, row0, row1, X, y);
        return;
    }

    _Alignas(32) __m256i xs[EK_MV_PREP_MAX];
    float dx[EK_MV_PREP_MAX];
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = X + (size_t)b * EK_Q8_0_BLOCK_BYTES;
        xs[b] = _mm256_loadu_si256((const __m256i *)(blk + 2));
        dx[b] = _cvtsh_ss(ek_load_u16(blk));
    }

    // Software prefetch. A group of 4 rows is one contiguous span that the loop
    // consumes 4*34 bytes per step, so we prefetch the same amount `dist` bytes
    // further on (whole groups, at least 4 KiB), and the first `dist` bytes up
    // front. This keeps ~20 cache lines in flight, which the hardware prefetcher
    // alone does not do for this pattern (one core streaming from DRAM measured
    // ~7 GB/s without, ~25 GB/s with).
    const size_t group = 4 * rs;
    const size_t dist = group * ((EK_PF_MIN + group - 1) / group);
    {
        const size_t span = (size_t)(row1 - row0) * rs;
        const uintptr_t start = (uintptr_t)(W + (size_t)row0 * rs);
        for (size_t off = 0; off < dist && off < span; off += 64) ek_prefetch_addr(start + off);
    }

    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) {
        const uint8_t *p0 = W + (size_t)r * rs, *p1 = p0 + rs, *p2 = p1 + rs, *p3 = p2 + rs;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        const uintptr_t pf0 = (uintptr_t)p0 + dist;
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
            const uintptr_t pf = pf0 + 4 * o;
            ek_prefetch_addr(pf);
            ek_prefetch_addr(pf + 64);
            ek_prefetch_addr(pf + 128);
            const __m256i xv = _mm256_load_si256(&xs[b]);
            const float d = dx[b];
            EK_VNNI_STEP(p0, a0);
            EK_VNNI_STEP(p1, a1);
            EK_VNNI_STEP(p2, a2);
            EK_VNNI_STEP(p3, a3);
        }
        y[r] = ek_hsum_ps256(a0);
        y[r + 1] = ek_hsum_ps256(a1);
        y[r + 2] = ek_hsum_ps256(a2);
        y[r + 3] = ek_hsum_ps256(a3);
    }
    for (; r < row1; r++) {
        const uint8_t *p0 = W + (size_t)r * rs;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * EK_Q8_0_BLOCK_BYTES;
            const __m256i xv = _mm256_load_si256(&xs[b]);
            const float d = dx[b];
            EK_VNNI_STEP(p0, a0);
        }
        y[r] = ek_hsum_ps256(a0);
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

