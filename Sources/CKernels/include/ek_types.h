#pragma once
// ek_types.h — ggml tensor types on the CPU: block formats, row (de)quantization, the dot
// products of weight rows with activation rows, one per-type table, and the generic
// multi-part matrix x activations task used for decode and short batches.
//
// Everything here reproduces llama.cpp's x86 CPU backend (ggml 0.3.36 / llama-cpp-python,
// built natively with AVX-512 VNNI) bit for bit:
//   - to_float     = ggml's dequantize_row_* (ggml-base, compiled without FMA contraction);
//   - from_float   = ggml-cpu's activation quantizers (quantize_row_q8_K = the _ref version,
//                    quantize_row_q8_1 / q8_0 = the AVX2 versions, fp32->fp16 by F16C (RNE),
//                    fp32->bf16 by ggml's scalar rounding);
//   - vec_dot      = (Q4_K: see below) ggml-cpu's x86 ggml_vec_dot_<type>_<vec_dot_type>: the same exact int32
//                    lanes (the integer parts are exact, whichever instructions compute them),
//                    the same float operations in the same order, including the FMAs GCC
//                    contracted in ggml's build (e.g. summs += m*s is an fma there).
// Q4_K: llama.cpp repacks Q4_K matrices (q4_K_8x8_q8_K) and multiplies them with
// ggml_gemv/gemm_q4_K_8x8_q8_K. Per output (weight row, token), per superblock of 256 with
// exact integers S_j = sum over sub-block j of q4*q8, B_j = its Q8_K bsum (16+16),
// I_k = sc[2k]*S_2k + sc[2k+1]*S_2k+1, M_k = mn[2k]*B_2k + mn[2k+1]*B_2k+1 (k = 0..3):
//   gemv (1 token):  acc  = fma((float)(I_0+I_1+I_2+I_3), d_w*d_a, acc);
//                    accm = fma((float)(M_0+..+M_3), dmin_w*d_a, accm)
//   gemm (4 tokens): for k = 0..3: acc = fma((float)I_k, d_w*d_a, acc); accm = fma((float)M_k, dmin_w*d_a, accm)
//   result = acc - accm (d_w, dmin_w: fp16 -> fp32; d_a: the Q8_K block's float scale).
// The table's Q4_K vec_dot is the gemv order; ek_mm_task_run picks per matrix and token.
// Not reproduced (yet): for batches of >= 8 tokens, llama.cpp multiplies K-quant matrices that
// are NOT repacked (Q6_K, Q5_K, Q3_K, Q2_K, and Q4_K with rows % 8 != 0) with its "tiled" kernel
// (ggml-cpu/tiled/, on by default, GGML_CPU_TILED_MM=0 disables it), whose float order differs
// from vec_dot's; here they use vec_dot for every batch size.
// Every variant (_scalar, _avx2, _avx512) returns the same bits; the scalar ones are portable
// C emulating the x86 order. The table's pointers are the best variant for this CPU.
// Verified against llama-cpp-python's own libggml-cpu.so / libggml-base.so (type traits
// called directly) on random blocks of every type, all three levels: 0 differences.
// Notes: F16/F32 dots follow ggml's AVX-512 loop (4x16 fma lanes, its reduction, leftovers
// as GCC compiled them); BF16 follows vdpbf16ps (AVX512_BF16; the scalar/AVX2 emulation
// includes its denormal flushing), i.e. ggml built natively on a BF16-capable CPU; Q8_1 and
// Q8_K have no to_float in ggml - ours is q*d. NaN/inf activations are out of scope (as in
// ek_quantize_row_q8_0: codes for overflowing 127/amax are 0 where ggml's are -128).
//
// Block layouts (packed, little-endian; "half" = IEEE binary16):
//   Q4_0 (2)  { half d; u8 qs[16]; }                                         18 B / 32
//   Q4_1 (3)  { half d, m; u8 qs[16]; }                                      20 B / 32
//   Q5_0 (6)  { half d; u8 qh[4]; u8 qs[16]; }                               22 B / 32
//   Q5_1 (7)  { half d, m; u8 qh[4]; u8 qs[16]; }                            24 B / 32
//   Q8_0 (8)  { half d; i8 qs[32]; }                                         34 B / 32
//   Q8_1 (9)  { half d, s; i8 qs[32]; }  (s = d * sum(qs))                   36 B / 32
//   Q2_K (10) { u8 scales[16]; u8 qs[64]; half d, dmin; }                    84 B / 256
//   Q3_K (11) { u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d; }           110 B / 256
//   Q4_K (12) { half d, dmin; u8 scales[12]; u8 qs[128]; }                  144 B / 256
//   Q5_K (13) { half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }      176 B / 256
//   Q6_K (14) { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d; }             210 B / 256
//   Q8_K (15) { float d; i8 qs[256]; i16 bsums[16]; }                       292 B / 256
//   F32 (0), F16 (1), BF16 (30): plain arrays (block size 1).
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EK_TYPE_F32 = 0, EK_TYPE_F16 = 1, EK_TYPE_Q4_0 = 2, EK_TYPE_Q4_1 = 3,
    EK_TYPE_Q5_0 = 6, EK_TYPE_Q5_1 = 7, EK_TYPE_Q8_0 = 8, EK_TYPE_Q8_1 = 9,
    EK_TYPE_Q2_K = 10, EK_TYPE_Q3_K = 11, EK_TYPE_Q4_K = 12, EK_TYPE_Q5_K = 13,
    EK_TYPE_Q6_K = 14, EK_TYPE_Q8_K = 15, EK_TYPE_BF16 = 30,
};
#define EK_QK_K 256

typedef void (*ek_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*ek_from_float_fn)(const float *x, void *y, int64_t n);
typedef float (*ek_vec_dot_fn)(int64_t n, const void *w, const void *a);

typedef struct {
    int32_t type;            // ggml type id
    const char *name;        // ggml name, e.g. "q4_K"
    int64_t block_size;      // elements per block (1 for F32/F16/BF16)
    int64_t block_bytes;     // bytes per block
    int32_t vec_dot_type;    // ggml id of the activation format its dot product takes
    ek_to_float_fn to_float;     // n multiple of block_size
    ek_from_float_fn from_float; // activation quantizer; NULL where never an activation format
    ek_vec_dot_fn vec_dot;       // w: row of this type, a: row in vec_dot_type; NULL for Q8_K, Q8_1
} ek_type_traits;

/// Traits with the best implementation for this CPU (follows ek_force_kernel). NULL if unsupported.
const ek_type_traits *ek_type_traits_of(int32_t ggml_type);
/// Traits of one ISA level (0 scalar, 1 avx2, 2 avx512) for tests; NULL if unsupported type,
/// unknown level, or the CPU cannot run that level.
const ek_type_traits *ek_type_traits_level(int32_t ggml_type, int level);
/// Bytes of a row of n elements; -1 if unsupported or n not a multiple of the block size.
int64_t ek_row_bytes(int32_t ggml_type, int64_t n);

// ---- per-type entry points ------------------------------------------------------------------
// to_float (byte-exact with ggml's dequantize_row_*; one portable version each, plus the
// existing SIMD ones for Q8_0/Q4_0/Q4_1/F16/BF16 in ek_kernels.h)
void ek_to_float_q5_0(const void *x, float *y, int64_t n);
void ek_to_float_q5_1(const void *x, float *y, int64_t n);
void ek_to_float_q8_1(const void *x, float *y, int64_t n);   // q*d (ggml has none; s ignored)
void ek_to_float_q2_K(const void *x, float *y, int64_t n);
void ek_to_float_q3_K(const void *x, float *y, int64_t n);
void ek_to_float_q4_K(const void *x, float *y, int64_t n);
void ek_to_float_q5_K(const void *x, float *y, int64_t n);
void ek_to_float_q6_K(const void *x, float *y, int64_t n);
void ek_to_float_q8_K(const void *x, float *y, int64_t n);
void ek_to_float_f32(const void *x, float *y, int64_t n);

// from_float
void ek_from_float_q8_K(const float *x, void *y, int64_t n);          // = quantize_row_q8_K_ref
void ek_from_float_q8_1_scalar(const float *x, void *y, int64_t n);   // = x86 quantize_row_q8_1
void ek_from_float_q8_1_avx2(const float *x, void *y, int64_t n);
void ek_from_float_f16_scalar(const float *x, void *y, int64_t n);    // = F16C conversion (RNE)
void ek_from_float_f16_avx2(const float *x, void *y, int64_t n);
void ek_from_float_bf16(const float *x, void *y, int64_t n);          // ggml's scalar RNE
void ek_from_float_f32(const float *x, void *y, int64_t n);

// vec_dot: <w type> x <vec_dot_type>, n elements
#define EK_DECL_DOT(name) \
    float ek_vec_dot_##name##_scalar(int64_t n, const void *w, const void *a); \
    float ek_vec_dot_##name##_avx2(int64_t n, const void *w, const void *a);   \
    float ek_vec_dot_##name##_avx512(int64_t n, const void *w, const void *a);
EK_DECL_DOT(q4_0_q8_0)
EK_DECL_DOT(q4_1_q8_1)
EK_DECL_DOT(q5_0_q8_0)
EK_DECL_DOT(q5_1_q8_1)
EK_DECL_DOT(q2_K_q8_K)
EK_DECL_DOT(q3_K_q8_K)
EK_DECL_DOT(q4_K_q8_K)      // ggml_vec_dot_q4_K_q8_K (Q4_K matrices llama.cpp does not repack)
EK_DECL_DOT(q4_K_q8_K_rp)   // the table's Q4_K vec_dot: = ggml_gemv_q4_K_8x8_q8_K (repacked Q4_K)
EK_DECL_DOT(q4_K_q8_K_rp4)  // = ggml_gemm_q4_K_8x8_q8_K (repacked Q4_K, tokens in groups of 4)
EK_DECL_DOT(q5_K_q8_K)
EK_DECL_DOT(q6_K_q8_K)
EK_DECL_DOT(f16_f16)
EK_DECL_DOT(bf16_bf16)
EK_DECL_DOT(f32_f32)
#undef EK_DECL_DOT
/// 1 if the CPU has AVX512_BF16 (ek_vec_dot_bf16_bf16_avx512 then uses vdpbf16ps; otherwise it
/// emulates it - ggml's native build on such a CPU uses vdpbf16ps, which the scalar emulates).
int ek_cpu_has_avx512bf16(void);

// ---- generic matrix x activations task -------------------------------------------------------
typedef struct {
    int64_t ncols;           // multiple of the weight block size (and of 256 for K-quants)
    int64_t n_tok;           // tokens (activation rows), >= 1
    int64_t y_stride;        // floats between tokens' output rows (same for y and acc)
    int32_t nparts;          // 1..3
    int32_t type[3];         // weight type of each part
    const void *w[3];        // row-major rows of ncols elements in type[p]
    const void *a[3];        // activations for part p in vec_dot_type(type[p]); token t at (char*)a[p] + t*a_stride[p]
    int64_t a_stride[3];     // bytes
    float *y[3];             // output of part p, token t: y[p][t*y_stride + r]
    float *acc[3];           // optional: if non-NULL, acc[p][t*y_stride + r] += result instead of writing y
    int64_t rows[3];
    const void *rp[3];       // optional: part p's Q8_0 rows repacked by ek_repack_q8_0_x16 (used on the AVX-512 level)
} ek_mm_task;
/// Q8_0 rows (rows % 16 == 0, ncols % 32 == 0) regrouped for the AVX-512 kernels, in the same
/// number of bytes: per 16 rows and block, 8 x 64 bytes (lane r of vector l = row r's quants
/// 4l..4l+3, each + 128 as unsigned bytes), then the 16 rows' f16 scales. Every (row, token)
/// result from it is the table's vec_dot of the original row, bit for bit.
void ek_repack_q8_0_x16(const void *w, int64_t rows, int64_t ncols, void *out);
/// Row `row` of such a repacked matrix as floats, the bits of dequantizing the original row.
void ek_row_q8_0_x16(const void *rp, int64_t row, int64_t ncols, float *y);
/// 1 if the current kernel level uses ek_mm_task.rp (AVX-512 VNNI).
int ek_mm_uses_q8_0_x16(void);
/// ek_task_fn: the rows of all parts form one range split across threads in multiples of 16
/// rows; each weight row is read once per call and used for all n_tok tokens. Results equal
/// the table's vec_dot for every (row, token), bit for bit, except for Q4_K (see the end).
/// Q8_0 parts with rp on the AVX-512 level: tiles of 16 rows x 1-3 tokens on the repacked rows
/// for every n_tok (when the part's row range is split on multiples of 16; otherwise w is used).
/// Decode (n_tok == 1): Q8_0 parts without rp go through ek_matvec_q8_0; on the AVX-512 level Q4_K, Q6_K,
/// Q5_0 and Q4_0 go through 4-row kernels that software-prefetch the 4-row span >= 4 KiB ahead,
/// a few lines per block step; other types (and n_tok > 1) call vec_dot row by row with the
/// row stream prefetched >= 4 KiB ahead. Measured on one thread of the shared 2-core VM
/// (streaming 512 MiB, ratio to a plain AVX2 read loop over the same bytes, interleaved to
/// cancel the machine's load; quiet moment, raw ~14.3 GB/s): Q4_K 12.2 GB/s (86%), Q6_K 13.4
/// (94%), Q5_0 11.4 (80%), Q8_0 12.8 (89%); Q4_0 ~87%. The other types use the row-by-row
/// path (Q3_K 17%, Q4_1/Q5_1 ~35%, Q5_K/Q2_K ~60%, F16 ~77%, BF16 ~94%).
/// Q4_K follows llama.cpp's CPU repack (REPACK=1, AVX2+): a Q4_K matrix with rows % 8 == 0 is multiplied like
/// ggml_gemm_q4_K_8x8_q8_K (ek_vec_dot_q4_K_q8_K_rp4) for tokens [0, n_tok - n_tok % 4) and like
/// ggml_gemv_q4_K_8x8_q8_K (the table's vec_dot) for the others; other Q4_K matrices like
/// ggml_vec_dot_q4_K_q8_K (ek_vec_dot_q4_K_q8_K).
void ek_mm_task_run(void *ctx, int ith, int nth);
/// Batches of up to n tokens (default 4) use the single-token kernels over blocks of rows
/// (same results; faster for the few tokens of a multi-sequence decode step). For benchmarks.
void ek_set_small_batch(int n);
int ek_small_batch(void);
/// 1 if ek_mm_task_run has a tiled batched int8 kernel for this weight type on this CPU (AVX-512
/// VNNI: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K, and Q4_K matrices with rows % 8 ==
/// 0; AVX2: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K, and Q4_K matrices with rows % 8
/// == 0). On AVX-512, F16 and F32
/// batches (rows a multiple of 64 long) and BF16 ones (with AVX512_BF16) have tiled float kernels
/// (not counted here: the opt-in BLAS path still takes them); batches of other types call vec_dot
/// per row and token.
int ek_mm_has_batched_kernel(int32_t type);

#ifdef __cplusplus
}
#endif
