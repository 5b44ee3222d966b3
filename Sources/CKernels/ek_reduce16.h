// Private AVX-512 helper shared by ops.c (attention) and gemm_avx512.c (float matrices).
#pragma once
#include <immintrin.h>

// 16 horizontal sums at once: lane k of the result is the sum of the 16 lanes of v[k], bit for
// bit as the one-vector reductions (ops.c reduce16_avx512, quants_avx512.c hsum16_512): the same
// tree of additions per vector (halves, quarters, pairs, last pair), done across the 16 vectors
// with shuffles so that each addition serves 16 lanes.
__attribute__((target("avx512f"))) static inline __m512 ek_reduce16x16_avx512(const __m512 v[16]) {
    __m512 a[8], b[4], c[2];
    for (int m = 0; m < 8; m++)   // lanes 0-7: t3 of v[2m], 8-15: t3 of v[2m+1]
        a[m] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * m], v[2 * m + 1], 0xEE), _mm512_shuffle_f32x4(v[2 * m], v[2 * m + 1], 0x44));
    for (int j = 0; j < 4; j++)   // quarter q: t6 of v[4j + q]
        b[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * j], a[2 * j + 1], 0xDD), _mm512_shuffle_f32x4(a[2 * j], a[2 * j + 1], 0x88));
    for (int i = 0; i < 2; i++)   // quarter q: t8[0], t8[1] of b[2i]'s q, then of b[2i+1]'s q
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // lane 4q + j: the result of v[4j + q]
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, r);
}
