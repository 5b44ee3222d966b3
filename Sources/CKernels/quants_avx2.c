// AVX2 + FMA + F16C dot products and quantizers for the ggml block types (same bits as the
// portable versions in quants.c and as ggml's x86 build; see ek_types.h).
//
// Integer parts: maddubs (unsigned x signed bytes -> int16 pairs) never saturates here (weights
// are at most 6 bits, or sign-moved 5 bits), so each int32 lane is the exact sum ggml has.
#pragma STDC FP_CONTRACT OFF

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "ek_internal.h"
#include "ek_quants.h"

#define T2 EK_TARGET_AVX2

T2 static inline float hsum8_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// (not _cvtsh_ss: clang merges it into a stale register, which chained every block's scale
// onto the previous block's accumulator - a false dependency that cost ~3x)
T2 static inline float h2f(const uint8_t *p) {
    __m128i v;
    __asm__("vmovd %1, %0" : "=x"(v) : "r"((uint32_t)ek_load_u16(p)));   // zeroes the rest
    return _mm_cvtss_f32(_mm_cvtph_ps(v));
}

// 32 nibbles -> bytes: 0..15 the low nibbles of p[0..15], 16..31 the high nibbles
T2 static inline __m256i nibbles32(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

// byte j = 0xFF if bit j of the 32-bit word at p is set, else 0
T2 static inline __m256i bits32(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, sel), sel);
}

// exact int32 lanes of signed x signed bytes (|w| <= 16 or activations in [-127, 127])
T2 static inline __m256 lanes_ss(__m256i w, __m256i a) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
// unsigned weights x signed activations
T2 static inline __m256 lanes_us(__m256i w, __m256i a) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1)));
}

// ---- 32-element blocks -------------------------------------------------------------------

T2 float ek_vec_dot_q4_0_q8_0_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, w += 18, a += 34) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        const __m256i q = _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, lanes_ss(q, _mm256_loadu_si256((const __m256i *)(a + 2))), acc);
    }
    return hsum8_avx2(acc);
}

T2 float ek_vec_dot_q5_0_q8_0_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, w += 22, a += 34) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        // (nibble | hbit << 4) - 16 == hbit ? nibble : nibble | 0xF0 (as int8)
        const __m256i q = _mm256_or_si256(nibbles32(w + 6), _mm256_andnot_si256(bits32(w + 2), _mm256_set1_epi8((char)0xF0)));
        acc = _mm256_fmadd_ps(d, lanes_ss(q, _mm256_loadu_si256((const __m256i *)(a + 2))), acc);
    }
    return hsum8_avx2(acc);
}

// ---- batches of Q8_0, Q5_0, Q4_0 -------------------------------------------------------

// Block b of a row as signed bytes (the dot products above decode it the same way).
T2 static inline __attribute__((always_inline)) __m256i q_block(const int32_t type, const uint8_t *w) {
    switch (type) {
    case EK_TYPE_Q5_0: return _mm256_or_si256(nibbles32(w + 6), _mm256_andnot_si256(bits32(w + 2), _mm256_set1_epi8((char)0xF0)));
    case EK_TYPE_Q4_0: return _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8));
    default: return _mm256_loadu_si256((const __m256i *)(w + 2));
    }
}

// One tile of NR rows (4 or 1) x NT tokens (2 or 1): each weight block is decoded once for the
// tile's tokens and each activation block loaded once for its rows. Per row and token the
// arithmetic of the type's vec_dot above (exact int32 lanes, one fma per block with d_w * d_a,
// the same horizontal sum), so a token's results do not depend on its batch.
T2 static inline __attribute__((always_inline)) void tile32_avx2(const int32_t type, const uint8_t *w, size_t rs,
                                                                const uint8_t *a, int64_t as, int64_t nb,
                                                                const int NR, const int NT, float out[4][2]) {
    const int64_t bb = type == EK_TYPE_Q5_0 ? 22 : type == EK_TYPE_Q4_0 ? 18 : 34;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i yv[2];
        float dy[2];
        for (int j = 0; j < NT; j++) {
            yv[j] = _mm256_loadu_si256((const __m256i *)(a + j * as + 34 * b + 2));
            dy[j] = _cvtsh_ss(ek_load_u16(a + j * as + 34 * b));
        }
        for (int i = 0; i < NR; i++) {
            const uint8_t *p = w + i * rs + bb * b;
            const __m256i q = q_block(type, p), aq = _mm256_sign_epi8(q, q);
            const float dw = _cvtsh_ss(ek_load_u16(p));
            for (int j = 0; j < NT; j++) {
                const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(yv[j], q)), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[j]), _mm256_cvtepi32_ps(s), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = hsum8_avx2(acc[i][j]);
}

// ---- batches of Q4_1, Q5_1 (against Q8_1) ---------------------------------------------------
// Their vec_dot per (row, token): per block acc = fma(d_w * d_a, lanes of maddubs(q, a), acc)
// with q unsigned, and summs = fmaf(m_w, s_a, summs); hsum8(acc) + summs. Tiles of 4 rows x 2
// tokens: each weight block decoded once for the tile's tokens.
T2 static inline __attribute__((always_inline)) __m256i q_block_1(const int32_t type, const uint8_t *w) {
    if (type == EK_TYPE_Q4_1) return nibbles32(w + 4);
    return _mm256_or_si256(nibbles32(w + 8), _mm256_and_si256(bits32(w + 4), _mm256_set1_epi8(0x10)));
}

T2 static inline __attribute__((always_inline)) void tile32m_avx2(const int32_t type, const uint8_t *w, size_t rs,
                                                                 const uint8_t *a, int64_t as, int64_t nb,
                                                                 const int NR, const int NT, float out[4][2]) {
    const int64_t bb = type == EK_TYPE_Q4_1 ? 20 : 24;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
    float summs[4][2];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) { acc[i][j] = _mm256_setzero_ps(); summs[i][j] = 0; }
    for (int64_t b = 0; b < nb; b++) {
        __m256i yv[2];
        float dy[2], sy[2];
        for (int j = 0; j < NT; j++) {
            const uint8_t *ab = a + j * as + 36 * b;
            yv[j] = _mm256_loadu_si256((const __m256i *)(ab + 4));
            dy[j] = h2f(ab);
            sy[j] = h2f(ab + 2);
        }
        for (int i = 0; i < NR; i++) {
            const uint8_t *p = w + i * rs + bb * b;
            const __m256i q = q_block_1(type, p);
            const float dw = h2f(p), mw = h2f(p + 2);
            for (int j = 0; j < NT; j++) {
                summs[i][j] = fmaf(mw, sy[j], summs[i][j]);
                const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yv[j]), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[j]), _mm256_cvtepi32_ps(s), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = hsum8_avx2(acc[i][j]) + summs[i][j];
}

// (Q4_1 and Q5_1 take their own tile; the type is a constant in each instance)
#define TILE32(w, NR, NT, v) do {                                                                   \
        if (type == EK_TYPE_Q4_1 || type == EK_TYPE_Q5_1) tile32m_avx2(type, w, rs, a, as, nb, NR, NT, v); \
        else tile32_avx2(type, w, rs, a, as, nb, NR, NT, v);                                         \
    } while (0)
T2 static inline __attribute__((always_inline)) void gemm32_avx2(const int32_t type, const uint8_t *W, size_t rs,
                                                                int64_t r0, int64_t r1, int64_t nb, const uint8_t *A,
                                                                int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    for (int64_t t0 = 0; t0 < ntok; t0 += 32) {   // chunks of 32 tokens: their activations stay in L1
        const int64_t t1 = ntok - t0 < 32 ? ntok : t0 + 32;
        for (int64_t r = r0; r < r1; r += 4) {
            const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            for (int64_t t = t0; t < t1; t += 2) {
                const int nt = t1 - t < 2 ? 1 : 2;
                const uint8_t *a = A + t * as;
                float v[4][2];
                if (nr == 4) {
                    if (nt == 2) TILE32(W + (size_t)r * rs, 4, 2, v);
                    else TILE32(W + (size_t)r * rs, 4, 1, v);
                } else {   // a tail of 1-3 rows, one at a time
                    for (int i = 0; i < nr; i++) {
                        float u[4][2];
                        if (nt == 2) TILE32(W + (size_t)(r + i) * rs, 1, 2, u);
                        else TILE32(W + (size_t)(r + i) * rs, 1, 1, u);
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

T2 int ek_gemm32_avx2(int32_t type, const void *w, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                      const void *a, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    const uint8_t *W = (const uint8_t *)w, *A = (const uint8_t *)a;
    switch (type) {   // one instance per type, the decode inlined
    case EK_TYPE_Q8_0: gemm32_avx2(EK_TYPE_Q8_0, W, rs, r0, r1, ncols / 32, A, as, ntok, y, acc, ys); return 1;
    case EK_TYPE_Q5_0: gemm32_avx2(EK_TYPE_Q5_0, W, rs, r0, r1, ncols / 32, A, as, ntok, y, acc, ys); return 1;
    case EK_TYPE_Q4_0: gemm32_avx2(EK_TYPE_Q4_0, W, rs, r0, r1, ncols / 32, A, as, ntok, y, acc, ys); return 1;
    case EK_TYPE_Q4_1: gemm32_avx2(EK_TYPE_Q4_1, W, rs, r0, r1, ncols / 32, A, as, ntok, y, acc, ys); return 1;
    case EK_TYPE_Q5_1: gemm32_avx2(EK_TYPE_Q5_1, W, rs, r0, r1, ncols / 32, A, as, ntok, y, acc, ys); return 1;
    default: return 0;
    }
}

T2 float ek_vec_dot_q4_1_q8_1_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 20, a += 36) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);
        acc = _mm256_fmadd_ps(d, lanes_us(nibbles32(w + 4), _mm256_loadu_si256((const __m256i *)(a + 4))), acc);
    }
    return hsum8_avx2(acc) + summs;
}

T2 float ek_vec_dot_q5_1_q8_1_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 24, a += 36) {
        const __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);
        const __m256i q = _mm256_or_si256(nibbles32(w + 8), _mm256_and_si256(bits32(w + 4), _mm256_set1_epi8(0x10)));
        acc = _mm256_fmadd_ps(d, lanes_us(q, _mm256_loadu_si256((const __m256i *)(a + 4))), acc);
    }
    return hsum8_avx2(acc) + summs;
}

// ---- K-quants ---------------------------------------------------------------------------

static inline float q8k_d(const uint8_t *a) { float d; memcpy(&d, a, 4); return d; }

// Q4_K/Q5_K 6-bit scales (bytes 0..7) and mins (bytes 8..15) as 16 bytes
static inline void k4_unpack(const uint8_t *q, uint32_t u[4]) {
    uint32_t s[3];
    memcpy(s, q, 12);
    u[0] = s[0] & 0x3f3f3f3fu;
    u[1] = (s[2] & 0x0f0f0f0fu) | (((s[0] >> 6) & 0x03030303u) << 4);
    u[2] = s[1] & 0x3f3f3f3fu;
    u[3] = ((s[2] >> 4) & 0x0f0f0f0fu) | (((s[1] >> 6) & 0x03030303u) << 4);
}

T2 static inline __m256i bcast16(int v) { return _mm256_set1_epi16((short)v); }

T2 float ek_vec_dot_q4_K_q8_K_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w), dmin = -ad * h2f(w + 2);
        uint32_t u[4];
        k4_unpack(w + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
        const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs)), accm);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i pl = _mm256_madd_epi16(bcast16(sc[2 * j]), _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a + 4 + 64 * j))));
            const __m256i ph = _mm256_madd_epi16(bcast16(sc[2 * j + 1]), _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 36 + 64 * j))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return hsum8_avx2(acc) + _mm_cvtss_f32(accm);
}

// Q4_K as llama.cpp's repacked path computes it (see quants.c): I_k, M_k (k = 0..3) of one
// block as int32 lanes.
T2 static inline void q4k_rp_lanes(const uint8_t *w, const uint8_t *a, __m128i *I, __m128i *M) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    uint32_t u[4];
    k4_unpack(w + 4, u);
    const uint8_t *sc = (const uint8_t *)u;
    const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
    *M = _mm_madd_epi16(mins, bs);
    __m256i t[4];
    for (int j = 0; j < 4; j++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
        const __m256i lo = _mm256_and_si256(q4, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        const __m256i pl = _mm256_madd_epi16(bcast16(sc[2 * j]), _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a + 4 + 64 * j))));
        const __m256i ph = _mm256_madd_epi16(bcast16(sc[2 * j + 1]), _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 36 + 64 * j))));
        t[j] = _mm256_add_epi32(pl, ph);
    }
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    *I = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// [d_w * d_a, dmin_w * d_a, same, same]
T2 static inline __m128 q4k_rp_scales(const uint8_t *w, const uint8_t *a) {
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)ek_load_u16(w) | ((uint32_t)ek_load_u16(w + 2) << 16))));
    return _mm_mul_ps(_mm_movelh_ps(dm, dm), _mm_set1_ps(q8k_d(a)));
}

// gemv order: lane 0 = fma(I, d, acc), lane 1 = fma(M, dmin, accm) once per superblock
T2 float ek_vec_dot_q4_K_q8_K_rp_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        __m128i I, M;
        q4k_rp_lanes(w, a, &I, &M);
        const __m128i s = _mm_hadd_epi32(_mm_hadd_epi32(I, M), _mm_setzero_si128());   // [I, M, 0, 0]
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s), q4k_rp_scales(w, a), acc);
    }
    return _mm_cvtss_f32(acc) - _mm_cvtss_f32(_mm_movehdup_ps(acc));
}

// The driver of the K-quant kernels below (tiles of 2 rows x 2 tokens): per chunk of 32 tokens
// (their activations stay in L1/L2) and block of 16 rows, the rows unpacked once into a per-thread
// buffer of UT, then the tiles (tails of 1), written to y or added to acc. UNPACK(w, nsb, out)
// unpacks a row; TILE(w, a, NR, NT, v) is a tile with constant sizes. Returns 0 if the buffer
// cannot be allocated.
#define K_GEMM_AVX2(UT, UNPACK, TILE) do {                                                           \
    static _Thread_local UT *buf;                                                                     \
    static _Thread_local size_t cap;                                                                  \
    const uint8_t *W = (const uint8_t *)wv, *A = (const uint8_t *)av;                                 \
    const int64_t nsb = ncols / 256;                                                                  \
    if (cap < (size_t)16 * (size_t)nsb) {                                                             \
        free(buf);                                                                                    \
        buf = (UT *)aligned_alloc(64, (size_t)16 * (size_t)nsb * sizeof(UT));                         \
        cap = buf ? (size_t)16 * (size_t)nsb : 0;                                                     \
        if (!buf) return 0;                                                                           \
    }                                                                                                 \
    for (int64_t t0 = 0; t0 < ntok; t0 += 32) {                                                       \
        const int64_t t1 = ntok - t0 < 32 ? ntok : t0 + 32;                                           \
        for (int64_t rb = r0; rb < r1; rb += 16) {                                                    \
            const int64_t nrb = r1 - rb < 16 ? r1 - rb : 16;                                          \
            for (int64_t i = 0; i < nrb; i++) UNPACK(W + (size_t)(rb + i) * rs, nsb, buf + i * nsb);  \
            for (int64_t r = 0; r < nrb; r += 2) {                                                    \
                const int nr = nrb - r < 2 ? 1 : 2;                                                   \
                for (int64_t t = t0; t < t1; t += 2) {                                                \
                    const int nt = t1 - t < 2 ? 1 : 2;                                                \
                    float v[2][2];                                                                    \
                    const UT *w = buf + r * nsb;                                                      \
                    const uint8_t *a = A + t * as;                                                    \
                    if (nr == 2 && nt == 2) TILE(w, a, 2, 2, v);                                      \
                    else if (nr == 2) TILE(w, a, 2, 1, v);                                            \
                    else if (nt == 2) TILE(w, a, 1, 2, v);                                            \
                    else TILE(w, a, 1, 1, v);                                                         \
                    for (int i = 0; i < nr; i++)                                                      \
                        for (int j = 0; j < nt; j++) {                                                \
                            const int64_t k = (t + j) * ys + rb + r + i;                              \
                            if (acc) acc[k] += v[i][j]; else y[k] = v[i][j];                          \
                        }                                                                             \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
    return 1;                                                                                         \
} while (0)

// One super-block of Q4_K/Q5_K rows against Q8_K tokens: sumi[i][j] = the 8 int32 lanes, over
// the chunks c of 32, of scale c times maddubs(row i's values, token j's chunk c), as their
// vec_dot forms them (rows i < NR: values q[i], int16 scales sc[i]; tokens j < NT at x[j]).
T2 static inline __attribute__((always_inline)) void k45_scaled_sums(const uint8_t *const q[2], const int16_t *const sc[2],
                                                                    const uint8_t *const x[2], const int NR, const int NT,
                                                                    __m256i sumi[2][2]) {
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) sumi[i][j] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        __m256i xv[2];
        for (int j = 0; j < NT; j++) xv[j] = _mm256_loadu_si256((const __m256i *)(x[j] + 32 * c));
        for (int i = 0; i < NR; i++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(q[i] + 32 * c));
            const __m256i scv = _mm256_set1_epi16(sc[i][c]);
            for (int j = 0; j < NT; j++)
                sumi[i][j] = _mm256_add_epi32(sumi[i][j], _mm256_madd_epi16(scv, _mm256_maddubs_epi16(qv, xv[j])));
        }
    }
}

// ---- batches of Q4_K in the gemv order (matrices llama.cpp repacks: rows % 8 == 0) ----------
// Per row, token and super-block only the totals I and M of q4k_rp_lanes enter the floats (one
// fma each), so any exact integer order gives the bits of ek_vec_dot_q4_K_q8_K_rp_avx2. Rows are
// unpacked once per block of rows (nibbles as bytes, int16 scales, mins as int16 pairs) and
// multiplied in tiles of 2 rows x 2 tokens.
typedef struct { uint8_t q[256]; int16_t mn[16]; int16_t sc[8]; float d, dmin; uint8_t pad[8]; } q4k_unpacked;


T2 static void q4k_unpack_row(const uint8_t *w, int64_t nsb, q4k_unpacked *o) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t s = 0; s < nsb; s++, w += 144, o++) {
        for (int j = 0; j < 4; j++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
            _mm256_storeu_si256((__m256i *)(o->q + 64 * j), _mm256_and_si256(q4, m4));
            _mm256_storeu_si256((__m256i *)(o->q + 64 * j + 32), _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4));
        }
        uint32_t u[4];
        k4_unpack(w + 4, u);
        const uint8_t *b = (const uint8_t *)u;   // scales b[0..7], mins b[8..15]
        for (int j = 0; j < 8; j++) {
            o->sc[j] = b[j];
            o->mn[2 * j] = o->mn[2 * j + 1] = b[8 + j];
        }
        o->d = h2f(w);
        o->dmin = h2f(w + 2);
    }
}

T2 static inline int32_t hsum_epi32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

// Rows w[0..NR) x tokens a, a + as (NT of them): out[i][j] as the gemv order computes it.
T2 static inline __attribute__((always_inline)) void q4k_tile_avx2(const q4k_unpacked *w, int64_t nsb, const uint8_t *a,
                                                                  int64_t as, const int NR, const int NT, float out[2][2]) {
    float accI[2][2] = {{0, 0}, {0, 0}}, accM[2][2] = {{0, 0}, {0, 0}};
    for (int64_t s = 0; s < nsb; s++) {
        __m256i sumi[2][2];
        const uint8_t *const q[2] = {w[s].q, w[(NR - 1) * nsb + s].q}, *const x[2] = {a + 292 * s + 4, a + (NT - 1) * as + 292 * s + 4};
        const int16_t *const sc[2] = {w[s].sc, w[(NR - 1) * nsb + s].sc};
        k45_scaled_sums(q, sc, x, NR, NT, sumi);
        for (int j = 0; j < NT; j++) {
            const uint8_t *aj = a + j * as + 292 * s;
            const float ad = q8k_d(aj);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(aj + 260));
            for (int i = 0; i < NR; i++) {
                const q4k_unpacked *u = w + i * nsb + s;
                const int32_t I = hsum_epi32_avx2(sumi[i][j]);
                const int32_t M = hsum_epi32_avx2(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)u->mn), bs));
                accI[i][j] = fmaf((float)I, u->d * ad, accI[i][j]);
                accM[i][j] = fmaf((float)M, u->dmin * ad, accM[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = accI[i][j] - accM[i][j];
}

#define Q4K_TILE(w, a, NR, NT, v) q4k_tile_avx2(w, nsb, a, as, NR, NT, v)
T2 int ek_gemm_q4k_avx2(const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                        const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    K_GEMM_AVX2(q4k_unpacked, q4k_unpack_row, Q4K_TILE);
}

// gemm order: one fma per pair of sub-blocks
T2 float ek_vec_dot_q4_K_q8_K_rp4_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        __m128i I, M;
        q4k_rp_lanes(w, a, &I, &M);
        const __m128 sc = q4k_rp_scales(w, a);
        const __m128 lo = _mm_cvtepi32_ps(_mm_unpacklo_epi32(I, M)), hi = _mm_cvtepi32_ps(_mm_unpackhi_epi32(I, M));
        acc = _mm_fmadd_ps(lo, sc, acc);
        acc = _mm_fmadd_ps(_mm_movehl_ps(lo, lo), sc, acc);
        acc = _mm_fmadd_ps(hi, sc, acc);
        acc = _mm_fmadd_ps(_mm_movehl_ps(hi, hi), sc, acc);
    }
    return _mm_cvtss_f32(acc) - _mm_cvtss_f32(_mm_movehdup_ps(acc));
}

T2 float ek_vec_dot_q5_K_q8_K_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, w += 176, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w), dmin = -ad * h2f(w + 2);
        uint32_t u[4];
        k4_unpack(w + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
        const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(a + 260)), _mm_loadu_si128((const __m128i *)(a + 276)));
        __m128i pm = _mm_madd_epi16(mins, bs);
        pm = _mm_add_epi32(pm, _mm_unpackhi_epi64(pm, pm));
        pm = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 1));
        summs = fmaf(dmin, (float)_mm_cvtsi128_si32(pm), summs);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(w + 16));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q5 = _mm256_loadu_si256((const __m256i *)(w + 48 + 32 * j));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q5, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
            const __m256i pl = _mm256_madd_epi16(bcast16(sc[2 * j]), _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a + 4 + 64 * j))));
            const __m256i ph = _mm256_madd_epi16(bcast16(sc[2 * j + 1]), _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 36 + 64 * j))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8_avx2(acc) + summs;
}

// ---- batches of Q5_K ----------------------------------------------------------------------
// ek_vec_dot_q5_K_q8_K_avx2 per (row, token): per super-block 8 int32 lanes (chunk c's scale
// times maddubs of its values 0..31), acc = fma(d_a * d, float(lanes), acc), and the mins' exact
// total M with summs = fmaf(-d_a * dmin, M, summs); hsum8(acc) + summs. Rows unpacked once per
// block of rows, tiles of 2 rows x 2 tokens.
typedef struct { uint8_t q[256]; int16_t sc[8]; int16_t mn[8]; float d, dmin; uint8_t pad[24]; } q5k_unpacked;


T2 static void q5k_unpack_row(const uint8_t *w, int64_t nsb, q5k_unpacked *o) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t s = 0; s < nsb; s++, w += 176, o++) {
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(w + 16));
        for (int j = 0; j < 4; j++) {
            const __m256i q5 = _mm256_loadu_si256((const __m256i *)(w + 48 + 32 * j));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q5, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
            _mm256_storeu_si256((__m256i *)(o->q + 64 * j), lo);
            _mm256_storeu_si256((__m256i *)(o->q + 64 * j + 32), hi);
        }
        uint32_t u[4];
        k4_unpack(w + 4, u);
        const uint8_t *b = (const uint8_t *)u;   // scales b[0..7], mins b[8..15]
        for (int j = 0; j < 8; j++) {
            o->sc[j] = b[j];
            o->mn[j] = b[8 + j];
        }
        o->d = h2f(w);
        o->dmin = h2f(w + 2);
    }
}

T2 static inline __attribute__((always_inline)) void q5k_tile_avx2(const q5k_unpacked *w, int64_t nsb, const uint8_t *a,
                                                                  int64_t as, const int NR, const int NT, float out[2][2]) {
    __m256 acc[2][2];
    float summs[2][2] = {{0, 0}, {0, 0}};
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m256i sumi[2][2];
        const uint8_t *const q[2] = {w[s].q, w[(NR - 1) * nsb + s].q}, *const x[2] = {a + 292 * s + 4, a + (NT - 1) * as + 292 * s + 4};
        const int16_t *const sc[2] = {w[s].sc, w[(NR - 1) * nsb + s].sc};
        k45_scaled_sums(q, sc, x, NR, NT, sumi);
        for (int j = 0; j < NT; j++) {
            const uint8_t *aj = a + j * as + 292 * s;
            const float ad = q8k_d(aj);
            const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(aj + 260)), _mm_loadu_si128((const __m128i *)(aj + 276)));
            for (int i = 0; i < NR; i++) {
                const q5k_unpacked *u = w + i * nsb + s;
                __m128i pm = _mm_madd_epi16(_mm_loadu_si128((const __m128i *)u->mn), bs);
                pm = _mm_add_epi32(pm, _mm_unpackhi_epi64(pm, pm));
                pm = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 1));
                const float d = ad * u->d, dmin = -ad * u->dmin;
                summs[i][j] = fmaf(dmin, (float)_mm_cvtsi128_si32(pm), summs[i][j]);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[i][j]), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = hsum8_avx2(acc[i][j]) + summs[i][j];
}

#define Q5K_TILE(w, a, NR, NT, v) q5k_tile_avx2(w, nsb, a, as, NR, NT, v)
T2 int ek_gemm_q5k_avx2(const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                        const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    K_GEMM_AVX2(q5k_unpacked, q5k_unpack_row, Q5K_TILE);
}

// int16 scales: lanes 0..7 = s[2c], 8..15 = s[2c+1], from 16 signed bytes s
T2 static inline __m256i pair_scales(__m128i s, int c) {
    const __m128i idx = _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm_set1_epi8((char)(2 * c)));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, idx));
}

T2 float ek_vec_dot_q6_K_q8_K_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 210, a += 292) {
        const float d = q8k_d(a) * h2f(w + 208);
        const __m128i sc = _mm_loadu_si128((const __m128i *)(w + 192));
        const __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + 260)), _mm256_cvtepi8_epi16(sc)), 5);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            const uint8_t *a8 = a + 4 + 128 * h;
            const __m256i p0 = _mm256_madd_epi16(pair_scales(sc, 4 * h + 0), _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(a8))));
            const __m256i p1 = _mm256_madd_epi16(pair_scales(sc, 4 * h + 1), _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(a8 + 32))));
            const __m256i p2 = _mm256_madd_epi16(pair_scales(sc, 4 * h + 2), _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(a8 + 64))));
            const __m256i p3 = _mm256_madd_epi16(pair_scales(sc, 4 * h + 3), _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(a8 + 96))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, sub)), acc);
    }
    return hsum8_avx2(acc);
}

// ---- batches of Q6_K ----------------------------------------------------------------------
// ek_vec_dot_q6_K_q8_K_avx2 per (row, token): the same 8 int32 lanes per super-block (chunk c's
// pair scales times maddubs of its unsigned values, minus 32 * madd(bsums, scales)), one fma
// with d_a * d, hsum8 at the end. Rows are unpacked once per block of rows (values 0..63 in
// chunk order, the chunks' pair scales, the 16 scales as int16) and multiplied in tiles of
// 2 rows x 2 tokens.
typedef struct { uint8_t q[256]; int16_t ps[8][16]; int16_t sc[16]; float d; uint8_t pad[28]; } q6k_unpacked;


T2 static void q6k_unpack_row(const uint8_t *w, int64_t nsb, q6k_unpacked *o) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    for (int64_t s = 0; s < nsb; s++, w += 210, o++) {
        for (int h = 0; h < 2; h++) {
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)),
                _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4))};
            for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(o->q + 32 * (4 * h + k)), q[k]);
        }
        const __m128i sc = _mm_loadu_si128((const __m128i *)(w + 192));
        for (int c = 0; c < 8; c++) _mm256_storeu_si256((__m256i *)o->ps[c], pair_scales(sc, c));
        _mm256_storeu_si256((__m256i *)o->sc, _mm256_cvtepi8_epi16(sc));
        o->d = h2f(w + 208);
    }
}

T2 static inline __attribute__((always_inline)) void q6k_tile_avx2(const q6k_unpacked *w, int64_t nsb, const uint8_t *a,
                                                                  int64_t as, const int NR, const int NT, float out[2][2]) {
    __m256 acc[2][2];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m256i sumi[2][2];
        for (int i = 0; i < NR; i++)
            for (int j = 0; j < NT; j++) sumi[i][j] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i x[2];
            for (int j = 0; j < NT; j++) x[j] = _mm256_loadu_si256((const __m256i *)(a + j * as + 292 * s + 4 + 32 * c));
            for (int i = 0; i < NR; i++) {
                const q6k_unpacked *u = w + i * nsb + s;
                const __m256i q = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c));
                const __m256i ps = _mm256_loadu_si256((const __m256i *)u->ps[c]);
                for (int j = 0; j < NT; j++)
                    sumi[i][j] = _mm256_add_epi32(sumi[i][j], _mm256_madd_epi16(ps, _mm256_maddubs_epi16(q, x[j])));
            }
        }
        for (int j = 0; j < NT; j++) {
            const uint8_t *aj = a + j * as + 292 * s;
            const float ad = q8k_d(aj);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(aj + 260));
            for (int i = 0; i < NR; i++) {
                const q6k_unpacked *u = w + i * nsb + s;
                const __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(bs, _mm256_loadu_si256((const __m256i *)u->sc)), 5);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(ad * u->d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[i][j], sub)), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = hsum8_avx2(acc[i][j]);
}

#define Q6K_TILE(w, a, NR, NT, v) q6k_tile_avx2(w, nsb, a, as, NR, NT, v)
T2 int ek_gemm_q6k_avx2(const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                        const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    K_GEMM_AVX2(q6k_unpacked, q6k_unpack_row, Q6K_TILE);
}

// ---- batches of Q3_K and Q2_K --------------------------------------------------------------
// Their vec_dot per (row, token): per super-block 8 int32 lanes, chunk c's pair scales times its
// int16 sums (Q3_K: maddubs(ql, a) - maddubs(qh, a), here maddubs(q + 4, a) - maddubs(4, a), the
// same numbers; Q2_K: maddubs(q, a)), acc = fma(d_a * d, float(lanes), acc); Q2_K first adds
// acc = fma(-d_a * dmin, float(madd(mins, bsums)), acc). hsum8 at the end. Rows unpacked once
// per block of rows, tiles of 2 rows x 2 tokens.
typedef struct { uint8_t q[256]; int16_t ps[8][16]; int16_t mn[16]; float d, dmin; uint8_t pad[24]; } k23_unpacked;


T2 static void k23_unpack_row(const int Q3, const uint8_t *w, int64_t nsb, k23_unpacked *o) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t s = 0; s < nsb; s++, o++) {
        __m128i sc;
        const uint8_t *qs;
        __m256i hb = _mm256_setzero_si256();
        if (Q3) {
            const uint8_t *p = w + 110 * s;
            qs = p + 32;
            hb = _mm256_loadu_si256((const __m256i *)p);
            int8_t s8[16];
            ek_k3_scales(p + 96, s8);
            sc = _mm_loadu_si128((const __m128i *)s8);
            o->d = h2f(p + 108);
            o->dmin = 0;
        } else {
            const uint8_t *p = w + 84 * s;
            qs = p + 16;
            const __m128i raw = _mm_loadu_si128((const __m128i *)p);
            sc = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
            _mm256_storeu_si256((__m256i *)o->mn, _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f))));
            o->d = h2f(p + 80);
            o->dmin = h2f(p + 82);
        }
        for (int c = 0; c < 8; c++) {
            __m256i q = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(qs + 32 * (c >> 2))), 2 * (c & 3)), m3);
            if (Q3) q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, c), one), 2));
            _mm256_storeu_si256((__m256i *)(o->q + 32 * c), q);
            _mm256_storeu_si256((__m256i *)o->ps[c], pair_scales(sc, c));
        }
    }
}

T2 static inline __attribute__((always_inline)) void k23_tile_avx2(const int Q3, const k23_unpacked *w, int64_t nsb, const uint8_t *a,
                                                                  int64_t as, const int NR, const int NT, float out[2][2]) {
    const __m256i four = _mm256_set1_epi8(4);
    __m256 acc[2][2];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        if (!Q3)
            for (int j = 0; j < NT; j++) {
                const uint8_t *aj = a + j * as + 292 * s;
                const float ad = q8k_d(aj);
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(aj + 260));
                for (int i = 0; i < NR; i++) {
                    const k23_unpacked *u = w + i * nsb + s;
                    const float dmin = -ad * u->dmin;
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                                                _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)u->mn), bs)), acc[i][j]);
                }
            }
        __m256i sumi[2][2];
        for (int i = 0; i < NR; i++)
            for (int j = 0; j < NT; j++) sumi[i][j] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i x[2], x4[2];
            for (int j = 0; j < NT; j++) {
                x[j] = _mm256_loadu_si256((const __m256i *)(a + j * as + 292 * s + 4 + 32 * c));
                x4[j] = Q3 ? _mm256_maddubs_epi16(four, x[j]) : _mm256_setzero_si256();
            }
            for (int i = 0; i < NR; i++) {
                const k23_unpacked *u = w + i * nsb + s;
                const __m256i q = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c));
                const __m256i ps = _mm256_loadu_si256((const __m256i *)u->ps[c]);
                for (int j = 0; j < NT; j++) {
                    __m256i m = _mm256_maddubs_epi16(q, x[j]);
                    if (Q3) m = _mm256_sub_epi16(m, x4[j]);
                    sumi[i][j] = _mm256_add_epi32(sumi[i][j], _mm256_madd_epi16(ps, m));
                }
            }
        }
        for (int j = 0; j < NT; j++) {
            const float ad = q8k_d(a + j * as + 292 * s);
            for (int i = 0; i < NR; i++) {
                const k23_unpacked *u = w + i * nsb + s;
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(ad * u->d), _mm256_cvtepi32_ps(sumi[i][j]), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NT; j++) out[i][j] = hsum8_avx2(acc[i][j]);
}


T2 static void q3k_unpack_row(const uint8_t *w, int64_t nsb, k23_unpacked *o) { k23_unpack_row(1, w, nsb, o); }
T2 static void q2k_unpack_row(const uint8_t *w, int64_t nsb, k23_unpacked *o) { k23_unpack_row(0, w, nsb, o); }
#define Q3K_TILE(w, a, NR, NT, v) k23_tile_avx2(1, w, nsb, a, as, NR, NT, v)
#define Q2K_TILE(w, a, NR, NT, v) k23_tile_avx2(0, w, nsb, a, as, NR, NT, v)
T2 static int gemm_q3k_avx2(const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                            const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    K_GEMM_AVX2(k23_unpacked, q3k_unpack_row, Q3K_TILE);
}
T2 static int gemm_q2k_avx2(const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                            const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    K_GEMM_AVX2(k23_unpacked, q2k_unpack_row, Q2K_TILE);
}
T2 int ek_gemm_k23_avx2(int32_t type, const void *wv, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                        const void *av, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys) {
    if (type == EK_TYPE_Q3_K) return gemm_q3k_avx2(wv, rs, r0, r1, ncols, av, as, ntok, y, acc, ys);
    if (type == EK_TYPE_Q2_K) return gemm_q2k_avx2(wv, rs, r0, r1, ncols, av, as, ntok, y, acc, ys);
    return 0;
}

T2 float ek_vec_dot_q3_K_q8_K_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256();
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 110, a += 292) {
        const float d = q8k_d(a) * h2f(w + 108);
        int8_t s8[16];
        ek_k3_scales(w + 96, s8);
        const __m128i sc = _mm_loadu_si128((const __m128i *)s8);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)w);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            const __m256i qs = _mm256_loadu_si256((const __m256i *)(w + 32 + 32 * (c >> 2)));
            const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * (c & 3)), m3);
            const __m256i bit = _mm256_set1_epi8((char)(1u << c));
            const __m256i qh = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), zero), four);
            const __m256i a8 = _mm256_loadu_si256((const __m256i *)(a + 4 + 32 * c));
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(ql, a8), _mm256_maddubs_epi16(qh, a8));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pair_scales(sc, c), p));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8_avx2(acc);
}

T2 float ek_vec_dot_q2_K_q8_K_avx2(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, w += 84, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w + 80), dmin = -ad * h2f(w + 82);
        const __m128i raw = _mm_loadu_si128((const __m128i *)w);
        const __m128i sc = _mm_and_si128(raw, m4);
        const __m256i mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                              _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)(a + 260)))), acc);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            const __m256i qs = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * (c >> 2)));
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * (c & 3)), m3);
            const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(a + 4 + 32 * c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pair_scales(sc, c), p));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8_avx2(acc);
}

// ---- float rows (emulating ggml's AVX-512 loop with pairs of 8-lane vectors) -------------

T2 static float reduce_4x16(__m256 s[8]) {
    // s[2j] = lanes 0..7, s[2j+1] = lanes 8..15 of accumulator j
    float v[16];
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
    _mm256_storeu_ps(v, lo);
    _mm256_storeu_ps(v + 8, hi);
    return ek_hsum16_ggml(v);
}

T2 float ek_vec_dot_f16_f16_avx2(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = (const uint16_t *)vw, *a = (const uint16_t *)va;
    __m256 s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int k = 0; k < 8; k++)
            s[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8 * k))),
                                   _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8 * k))), s[k]);
    double sumf = (double)reduce_4x16(s);
    for (int64_t i = np; i < n; i++) sumf += (double)(h2f((const uint8_t *)(w + i)) * h2f((const uint8_t *)(a + i)));
    return (float)sumf;
}

T2 float ek_vec_dot_f32_f32_avx2(int64_t n, const void *vw, const void *va) {
    const float *w = (const float *)vw, *a = (const float *)va;
    __m256 s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int k = 0; k < 8; k++)
            s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8 * k), _mm256_loadu_ps(a + i + 8 * k), s[k]);
    return ek_f32_tail_ggml(w, a, np, n, reduce_4x16(s));
}

T2 float ek_vec_dot_bf16_bf16_avx2(int64_t n, const void *w, const void *a) {
    return ek_vec_dot_bf16_bf16_scalar(n, w, a);
}

// ---- quantizers ---------------------------------------------------------------------------

T2 void ek_from_float_f16_avx2(const float *x, void *vy, int64_t n) {
    uint16_t *y = (uint16_t *)vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

// ggml's x86 quantize_row_q8_1: like quantize_row_q8_0 (d = amax/127, q = RNE(x*127/amax)),
// plus s = fp16(d * sum(q)).
T2 void ek_from_float_q8_1_avx2(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / 32; i++, x += 32, y += 36) {
        __m256 v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (id > 3.4028235e38f) id = 0.0f;
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        const int32_t sum = _mm_cvtsi128_si32(s4);
        const uint16_t dh = ek_fp32_to_fp16(d), sh = ek_fp32_to_fp16(d * (float)sum);
        memcpy(y, &dh, 2);
        memcpy(y + 2, &sh, 2);
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(y + 4), p);
    }
}
