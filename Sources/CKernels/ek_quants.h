// Private helpers shared by quants*.c and types.c (not part of the API).
#pragma once
#include <stdint.h>
#include "include/ek_types.h"

void ek_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]);
void ek_k3_scales(const uint8_t *q, int8_t sc[16]);
float ek_hsum16_ggml(const float v[16]);
float ek_f32_tail_ggml(const float *w, const float *a, int64_t i, int64_t n, float sumf);

// 4-row kernels (rows of `rs` bytes, out[r] for r in [0, nrows)); dist = prefetch distance in
// bytes, a multiple of 4*rs; the caller primes the first `dist` bytes.
typedef void (*ek_rows_fn)(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
void ek_rows_q4_K_avx512(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
// Batched products (gemm_avx512.c): for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K and Q4_K (rows % 8 == 0),
// and F16, F32, BF16, rows [r0, r1) x ntok tokens with every result equal to the table's vec_dot
// bits. Returns 0 (nothing done) for other types or when its per-thread buffers cannot be allocated.
int ek_gemm_supported_avx512(int32_t type);
int ek_gemm_avx512(int32_t type, const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                   const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys, int64_t rows);
// Q8_0 rows repacked by ek_repack_q8_0_x16, rows [r0, r1) (multiples of 16) x ntok >= 1 tokens, same
// contract (0: per-thread buffer not allocated).
int ek_gemm_q8_x16_avx512(const void *rp, int64_t r0, int64_t r1, int64_t ncols, const void *A, int64_t as,
                          int64_t ntok, float *y, float *acc, int64_t ys);
// Batches on AVX2 (quants_avx2.c), same contract: every result equals the type's AVX2 vec_dot;
// each returns 0 (nothing done) for other types or when its buffer cannot be allocated.
// Q8_0, Q5_0, Q4_0, Q4_1 and Q5_1:
int ek_gemm32_avx2(int32_t type, const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                   const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys);
// Q4_K matrices with rows % 8 == 0 (the gemv order of ek_vec_dot_q4_K_q8_K_rp_avx2):
int ek_gemm_q4k_avx2(const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys);
// Q6_K (the lanes of ek_vec_dot_q6_K_q8_K_avx2):
int ek_gemm_q6k_avx2(const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys);
// Q5_K (the lanes of ek_vec_dot_q5_K_q8_K_avx2):
int ek_gemm_q5k_avx2(const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys);
// Q3_K and Q2_K (their vec_dot's lanes):
int ek_gemm_k23_avx2(int32_t type, const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys);
void ek_rows_q6_K_avx512(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
void ek_rows_q5_0_avx512(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
void ek_rows_q4_0_avx512(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
void ek_rows_q4_K_rp_avx512(const void *w, size_t rs, int64_t nrows, int64_t ncols, const void *a, float *out, size_t dist);
