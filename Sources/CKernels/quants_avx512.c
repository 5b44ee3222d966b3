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

// (not _cvtsh_ss: clang merges it into a stale register, which chained every block's scale
// onto the previous block's accumulator - a false dependency that cost ~3x)
T5 static inline float h2f(const uint8_t *p) {
    __m128i v;
    __asm__("vmovd %1, %0" : "=x"(v) : "r"((uint32_t)ek_load_u16(p)));   // zeroes the rest
    return _mm_cvtss_f32(_mm_cvtph_ps(v));
}

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

// lanes = sum(nibble*a) - 8*sum(a): the exact integers of ggml's (nibble-8)*a sign trick
T5 static inline void q4_0_step(const uint8_t *w, const uint8_t *a, __m256 *acc) {
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16((short)ek_load_u16(w))), _mm256_set1_ps(h2f(a)));
    const __m256i av = _mm256_loadu_si256((const __m256i *)(a + 2));
    const __m256i negcorr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), av));
    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(negcorr, nibbles32(w + 2), av)), *acc);
}

T5 float ek_vec_dot_q4_0_q8_0_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) q4_0_step(w + 18 * i, a + 34 * i, &acc);
    return hsum8_512(acc);
}

// Lanes as sum((q+16)*a) - 16*sum(a) with q+16 = nibble | hbit<<4 unsigned: the same exact
// integers as ggml's sign trick, and the activation term is shared by the 4-row kernel's rows.
T5 static inline void q5_0_step(const uint8_t *w, const uint8_t *a, __m256 *acc) {
    // d_w * d_a computed in every lane (the same float product as the scalar one)
    const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16((short)ek_load_u16(w)));
    const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(h2f(a)));
    const __m256i nb = nibbles32(w + 6);
    const __m256i u = _mm256_mask_add_epi8(nb, bits_mask(w + 2), nb, _mm256_set1_epi8(0x10));
    const __m256i av = _mm256_loadu_si256((const __m256i *)(a + 2));
    const __m256i negcorr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(16), av));
    const __m256i lanes = _mm256_dpbusd_epi32(negcorr, u, av);
    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), *acc);
}

T5 float ek_vec_dot_q5_0_q8_0_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) q5_0_step(w + 22 * i, a + 34 * i, &acc);
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
float ek_vec_dot_q5_K_q8_K_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q5_K_q8_K_avx2(n, w, a); }

// ---- Q4_K / Q6_K / Q5_0 block steps, shared by the dot products and the 4-row kernels -------
// Integer lanes with 512-bit vectors: a zmm holds two 32-byte chunks; lane L and L+8 of the
// 16 int32 lanes belong to ggml's lane L of the two chunks, so the 8 ggml lanes are
// low half + high half (exact integers), and the float steps are ggml's.

static inline float q8k_d(const uint8_t *a) { float d; memcpy(&d, a, 4); return d; }

// Q4_K/Q5_K 6-bit scales (bytes 0..7) and mins (bytes 8..15)
static inline void k4_unpack(const uint8_t *q, uint32_t u[4]) {
    uint32_t s[3];
    memcpy(s, q, 12);
    u[0] = s[0] & 0x3f3f3f3fu;
    u[1] = (s[2] & 0x0f0f0f0fu) | (((s[0] >> 6) & 0x03030303u) << 4);
    u[2] = s[1] & 0x3f3f3f3fu;
    u[3] = ((s[2] >> 4) & 0x0f0f0f0fu) | (((s[1] >> 6) & 0x03030303u) << 4);
}

T5 static inline __m256i fold_lanes(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// int16 scale vector: 16 x s0 then 16 x s1
T5 static inline __m512i scale_pair16(int s0, int s1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)s0)), _mm256_set1_epi16((short)s1), 1);
}

// one Q4_K block (w) against one Q8_K block (a)
T5 static inline void q4k_step(const uint8_t *w, const uint8_t *a, __m256 *acc, __m128 *accm) {
    const float ad = q8k_d(a);
    const float d = ad * h2f(w), dmin = -ad * h2f(w + 2);
    uint32_t u[4];
    k4_unpack(w + 4, u);
    const uint8_t *sc = (const uint8_t *)u;
    const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
    *accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs)), *accm);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i sumi = _mm512_setzero_si512();
    for (int j = 0; j < 4; j++) {
        // bytes 0..31: low nibbles (chunk 2j), 32..63: high nibbles (chunk 2j+1)
        const __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
        const __m512i q4 = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), m4);
        const __m512i p = _mm512_maddubs_epi16(q4, _mm512_loadu_si512(a + 4 + 64 * j));
        sumi = _mm512_dpwssd_epi32(sumi, p, scale_pair16(sc[2 * j], sc[2 * j + 1]));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold_lanes(sumi)), *acc);
}

// the same with 256-bit vectors (measured faster for Q4_K: less work per block)
T5 static inline void q4k_step256(const uint8_t *w, const uint8_t *a, __m256 *acc, __m128 *accm) {
    const float ad = q8k_d(a);
    const float d = ad * h2f(w), dmin = -ad * h2f(w + 2);
    uint32_t u[4];
    k4_unpack(w + 4, u);
    const uint8_t *sc = (const uint8_t *)u;
    const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
    *accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs)), *accm);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
        const __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(q4, m4), _mm256_loadu_si256((const __m256i *)(a + 4 + 64 * j)));
        const __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), _mm256_loadu_si256((const __m256i *)(a + 36 + 64 * j)));
        sumi = _mm256_dpwssd_epi32(sumi, pl, _mm256_set1_epi16((short)sc[2 * j]));
        sumi = _mm256_dpwssd_epi32(sumi, ph, _mm256_set1_epi16((short)sc[2 * j + 1]));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
}

#ifndef Q4K_STEPFN
#define Q4K_STEPFN q4k_step256
#endif
T5 static inline float q4k_finish(__m256 acc, __m128 accm) {
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return hsum8_512(acc) + _mm_cvtss_f32(accm);
}

T5 float ek_vec_dot_q4_K_q8_K_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++) Q4K_STEPFN(w + 144 * i, a + 292 * i, &acc, &accm);
    return q4k_finish(acc, accm);
}

// int16 scales for a zmm of chunks (c, c+1): 8 x s[2c], 8 x s[2c+1], 8 x s[2c+2], 8 x s[2c+3]
T5 static inline __m512i q6_scales(__m128i s, int c) {
    const __m128i idx = _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm_set1_epi8((char)(2 * c)));
    const __m256i pair = _mm256_set_m128i(_mm_shuffle_epi8(s, _mm_add_epi8(idx, _mm_set1_epi8(2))), _mm_shuffle_epi8(s, idx));
    return _mm512_cvtepi8_epi16(pair);
}

T5 static inline void q6k_step(const uint8_t *w, const uint8_t *a, __m256 *acc) {
    const float d = q8k_d(a) * h2f(w + 208);
    const __m128i sc = _mm_loadu_si128((const __m128i *)(w + 192));
    const __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + 260)), _mm256_cvtepi8_epi16(sc)), 5);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        // chunks 4h, 4h+1 use ql[64h .. 64h+63] low nibbles and qh bits 0-1 / 2-3;
        // chunks 4h+2, 4h+3 the high nibbles and qh bits 4-5 / 6-7
        const __m512i ql = _mm512_loadu_si512(w + 64 * h);
        const __m256i qh256 = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
        const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), _mm256_srli_epi16(qh256, 2), 1);
        const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(qh, m3), 4));
        const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 4), m3), 4));
        const __m512i p0 = _mm512_maddubs_epi16(lo, _mm512_loadu_si512(a + 4 + 128 * h));
        const __m512i p1 = _mm512_maddubs_epi16(hi, _mm512_loadu_si512(a + 68 + 128 * h));
        sumi = _mm512_dpwssd_epi32(sumi, p0, q6_scales(sc, 4 * h));
        sumi = _mm512_dpwssd_epi32(sumi, p1, q6_scales(sc, 4 * h + 2));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(fold_lanes(sumi), sub)), *acc);
}

T5 float ek_vec_dot_q6_K_q8_K_avx512(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++) q6k_step(w + 210 * i, a + 292 * i, &acc);
    return hsum8_512(acc);
}

// ---- 4 rows at a time with software prefetch (decode: weights stream from DRAM) ------------
// Rows r..r+3 are one contiguous span; each block step consumes 4*bb bytes of it, and we
// prefetch the same amount `dist` bytes further on (the Q8_0 matvec's scheme).

static inline void pf_lines(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
}

#define EK_ROWS4(NAME, BB, QK, ACCDECL, STEP, FINISH)                                                      \
    T5 void NAME(const void *vw, size_t rs, int64_t nrows, int64_t ncols, const void *va, float *out,       \
                 size_t dist) {                                                                             \
        const uint8_t *W = (const uint8_t *)vw, *A = (const uint8_t *)va;                                   \
        const int64_t nb = ncols / (QK);                                                                    \
        int64_t r = 0;                                                                                      \
        for (; r + 4 <= nrows; r += 4) {                                                                    \
            const uint8_t *p0 = W + (size_t)r * rs;                                                         \
            ACCDECL;                                                                                        \
            for (int64_t b = 0; b < nb; b++) {                                                              \
                const size_t o = (size_t)b * (BB);                                                          \
                pf_lines(p0 + dist + 4 * o, 4 * (BB));                                                      \
                const uint8_t *ab = A + (size_t)b * 292 * ((QK) / 256) + (size_t)b * 34 * ((QK) == 32);    \
                STEP(p0 + o, ab, 0); STEP(p0 + rs + o, ab, 1); STEP(p0 + 2 * rs + o, ab, 2);               \
                STEP(p0 + 3 * rs + o, ab, 3);                                                               \
            }                                                                                               \
            FINISH(r, 0); FINISH(r + 1, 1); FINISH(r + 2, 2); FINISH(r + 3, 3);                             \
        }                                                                                                   \
        for (; r < nrows; r++) {                                                                            \
            const uint8_t *p0 = W + (size_t)r * rs;                                                         \
            ACCDECL;                                                                                        \
            for (int64_t b = 0; b < nb; b++) {                                                              \
                const size_t o = (size_t)b * (BB);                                                          \
                const uint8_t *ab = A + (size_t)b * 292 * ((QK) / 256) + (size_t)b * 34 * ((QK) == 32);    \
                STEP(p0 + o, ab, 0);                                                                        \
            }                                                                                               \
            FINISH(r, 0);                                                                                   \
        }                                                                                                   \
    }

#define Q4K_ACC __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
                __m128 accm[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()}
#define Q4K_STEP(P, AB, K) Q4K_STEPFN((P), (AB), &acc[K], &accm[K])
#define Q4K_FIN(R, K) out[R] = q4k_finish(acc[K], accm[K])
EK_ROWS4(ek_rows_q4_K_avx512, 144, 256, Q4K_ACC, Q4K_STEP, Q4K_FIN)

// ---- Q4_K as llama.cpp's repacked path computes it (see quants.c / quants_avx2.c) ---------

static inline uint32_t ek_load_u32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

float ek_vec_dot_q4_K_q8_K_rp_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q4_K_q8_K_rp_avx2(n, w, a); }
float ek_vec_dot_q4_K_q8_K_rp4_avx512(int64_t n, const void *w, const void *a) { return ek_vec_dot_q4_K_q8_K_rp4_avx2(n, w, a); }

// per-row sums of one block: I = sum_j sc_j*S_j and M = sum_j mn_j*B_j, in 8 int32 lanes each
// (lanes still to be added; exact integers)
T5 static inline void q4k_rp_block(const uint8_t *w, const uint8_t *a, __m256i *I, __m128i *M) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    uint32_t u[4];
    k4_unpack(w + 4, u);
    const uint8_t *sc = (const uint8_t *)u;
    const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
    *M = _mm_madd_epi16(mins, bs);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
        const __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(q4, m4), _mm256_loadu_si256((const __m256i *)(a + 4 + 64 * j)));
        const __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), _mm256_loadu_si256((const __m256i *)(a + 36 + 64 * j)));
        sumi = _mm256_dpwssd_epi32(sumi, pl, _mm256_set1_epi16((short)sc[2 * j]));
        sumi = _mm256_dpwssd_epi32(sumi, ph, _mm256_set1_epi16((short)sc[2 * j + 1]));
    }
    *I = sumi;
}

// 4 int32 lanes of x -> 1 (x = per-row partial sums; returns lane totals of rows 0..3)
T5 static inline __m128i hsum4x4(__m128i a, __m128i b, __m128i c, __m128i d) {
    return _mm_hadd_epi32(_mm_hadd_epi32(a, b), _mm_hadd_epi32(c, d));
}
T5 static inline __m128i fold8(__m256i v) { return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)); }

// decode: 4 rows at a time (gemv order: one fma per superblock for I*d and one for M*dmin,
// result acc - accm), prefetching `dist` bytes ahead like EK_ROWS4
T5 void ek_rows_q4_K_rp_avx512(const void *vw, size_t rs, int64_t nrows, int64_t ncols, const void *va, float *out,
                               size_t dist) {
    const uint8_t *W = (const uint8_t *)vw, *A = (const uint8_t *)va;
    const int64_t nb = ncols / 256;
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const uint8_t *p0 = W + (size_t)r * rs;
        __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const size_t o = (size_t)b * 144;
            pf_lines(p0 + dist + 4 * o, 4 * 144);
            const uint8_t *ab = A + (size_t)b * 292;
            __m256i I0, I1, I2, I3;
            __m128i M0, M1, M2, M3;
            q4k_rp_block(p0 + o, ab, &I0, &M0);
            q4k_rp_block(p0 + rs + o, ab, &I1, &M1);
            q4k_rp_block(p0 + 2 * rs + o, ab, &I2, &M2);
            q4k_rp_block(p0 + 3 * rs + o, ab, &I3, &M3);
            const __m128i I = fold8(_mm256_hadd_epi32(_mm256_hadd_epi32(I0, I1), _mm256_hadd_epi32(I2, I3)));
            const __m128i M = hsum4x4(M0, M1, M2, M3);
            // d and dmin of the 4 rows: (d0, dmin0, d1, dmin1, ...) -> fp32
            const __m256 dm = _mm256_cvtph_ps(_mm_set_epi32((int)ek_load_u32(p0 + 3 * rs + o), (int)ek_load_u32(p0 + 2 * rs + o),
                                                            (int)ek_load_u32(p0 + rs + o), (int)ek_load_u32(p0 + o)));
            const __m256 da = _mm256_mul_ps(dm, _mm256_set1_ps(q8k_d(ab)));
            // even lanes: d*da, odd lanes: dmin*da
            const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            const __m256 sep = _mm256_permutevar8x32_ps(da, even);
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(I), _mm256_castps256_ps128(sep), acc);
            accm = _mm_fmadd_ps(_mm_cvtepi32_ps(M), _mm256_extractf128_ps(sep, 1), accm);
        }
        _mm_storeu_ps(out + r, _mm_sub_ps(acc, accm));
    }
    for (; r < nrows; r++) out[r] = ek_vec_dot_q4_K_q8_K_rp_avx2(ncols, W + (size_t)r * rs, A);
}

#define ACC8 __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}
#define Q6K_STEP(P, AB, K) q6k_step((P), (AB), &acc[K])
#define FIN8(R, K) out[R] = hsum8_512(acc[K])
EK_ROWS4(ek_rows_q6_K_avx512, 210, 256, ACC8, Q6K_STEP, FIN8)

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
    for (int64_t i = np; i < n; i++) sumf += (double)(h2f((const uint8_t *)(w + i)) * h2f((const uint8_t *)(a + i)));
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

int ek_cpu_has_avx512bf16(void) {   // detected once (the BF16 vec_dot and batch kernel ask per call)
    static int has = -1;
    int h = __atomic_load_n(&has, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = ek_cpu_has_avx512vnni() && __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&has, h, __ATOMIC_RELAXED);
    }
    return h;
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
    if (ek_cpu_has_avx512bf16()) return dot_bf16_native(n, (const uint16_t *)w, (const uint16_t *)a);
    return ek_vec_dot_bf16_bf16_scalar(n, w, a);
}

#define Q50_STEP(P, AB, K) q5_0_step((P), (AB), &acc[K])
EK_ROWS4(ek_rows_q5_0_avx512, 22, 32, ACC8, Q50_STEP, FIN8)

#define Q40_STEP(P, AB, K) q4_0_step((P), (AB), &acc[K])
EK_ROWS4(ek_rows_q4_0_avx512, 18, 32, ACC8, Q40_STEP, FIN8)
