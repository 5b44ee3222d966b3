#pragma once
// EdgeAI CPU kernels: half/bfloat conversions, ggml-compatible block
// (de)quantization, and the int8 (Q8_0 x Q8_0) dot products used for decode.
//
// Block formats (packed, little-endian, no padding):
//   Q8_0 = { uint16_t d (IEEE half); int8_t  qs[32]; }             34 bytes
//   Q4_0 = { uint16_t d;              uint8_t qs[16]; }             18 bytes
//   Q4_1 = { uint16_t d; uint16_t m;  uint8_t qs[16]; }             20 bytes
// In Q4_x blocks, the low nibble of qs[j] is element j and the high nibble is
// element j + 16 (j = 0..15).
//
// SIMD paths are selected once at run time (AVX-512 VNNI, AVX2+FMA+F16C, or
// portable C) with __builtin_cpu_supports; every dispatched function also
// exists under an explicit name (_scalar, _avx2, _avx512) for testing. Call the
// explicit SIMD variants only when the matching ek_cpu_has_* returns 1.
//
// Element counts `n` / `ncols` must be multiples of the block size (32); the
// functions do not check (callers validate shapes once, at load time).
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EK_QK8_0 32
#define EK_QK4_0 32
#define EK_QK4_1 32
#define EK_Q8_0_BLOCK_BYTES 34
#define EK_Q4_0_BLOCK_BYTES 18
#define EK_Q4_1_BLOCK_BYTES 20

// ---- dispatch -------------------------------------------------------------

/// Picks the kernel set once (idempotent, thread-safe). Every dispatched
/// function calls it lazily, so calling it explicitly is optional.
void ek_init(void);
/// "avx512vnni" | "avx2" | "scalar"
const char *ek_kernel_name(void);
/// 1 if the CPU (and OS) support the AVX2+FMA+F16C path.
int ek_cpu_has_avx2(void);
/// 1 if the CPU (and OS) support the AVX-512 F/BW/VL/VNNI path (+ AVX2 set).
int ek_cpu_has_avx512vnni(void);
/// Forces a kernel set by name ("avx512vnni", "avx2", "scalar") for
/// benchmarking. Returns 0 on success, -1 if the name is unknown or the CPU
/// cannot run it (the current choice is then kept). Not synchronized with
/// kernels running on other threads: call it while no kernel is running.
int ek_force_kernel(const char *name);

// ---- scalar conversions ----------------------------------------------------

/// IEEE binary16 -> binary32 (exact; subnormals, inf and NaN preserved).
float ek_fp16_to_fp32(uint16_t h);
/// binary32 -> binary16, round to nearest even; overflow -> inf; NaN -> 0x7E00 | sign.
uint16_t ek_fp32_to_fp16(float f);
/// bfloat16 -> binary32 (exact).
float ek_bf16_to_fp32(uint16_t h);

// ---- quantization ------------------------------------------------------------

/// ggml's reference quantizer (quantize_row_q8_0_ref), byte-exact:
/// amax = max|x|, d = amax/127, id = d ? 1/d : 0, block.d = fp16(d),
/// q = roundf(x*id) (halves away from zero). Use for weights.
void ek_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);

/// Activation quantizer for the decode dot products. Byte-exact with
/// llama.cpp's x86 CPU backend (ggml-cpu quantize_row_q8_0, AVX2 path):
/// d = amax/127, id = amax != 0 ? 127/amax : 0, q = round-half-even(x*id).
/// For finite x the codes lie within [-127, 127] and all variants agree byte
/// for byte (inf/NaN in x: unspecified codes, -128 like ggml for inf). Only
/// difference from ggml, where its result is meaningless anyway: when 127/amax
/// overflows (amax < ~3.7e-37, so fp16(d) == 0) the codes are 0, not -128.
void ek_quantize_row_q8_0(const float *x, void *y, int64_t n);
void ek_quantize_row_q8_0_scalar(const float *x, void *y, int64_t n);
void ek_quantize_row_q8_0_avx2(const float *x, void *y, int64_t n);
void ek_quantize_row_q8_0_avx512(const float *x, void *y, int64_t n);

// ---- dequantization (dispatched; every variant byte-exact with ggml's reference) ----

void ek_dequantize_row_q8_0(const void *x, float *y, int64_t n);  // y = q*d
void ek_dequantize_row_q4_0(const void *x, float *y, int64_t n);  // y = (q-8)*d
void ek_dequantize_row_q4_1(const void *x, float *y, int64_t n);  // y = q*d + m (two roundings, no fma)
void ek_dequantize_row_f16(const void *x, float *y, int64_t n);
void ek_dequantize_row_bf16(const void *x, float *y, int64_t n);

void ek_dequantize_row_q8_0_scalar(const void *x, float *y, int64_t n);
void ek_dequantize_row_q4_0_scalar(const void *x, float *y, int64_t n);
void ek_dequantize_row_q4_1_scalar(const void *x, float *y, int64_t n);
void ek_dequantize_row_f16_scalar(const void *x, float *y, int64_t n);
void ek_dequantize_row_bf16_scalar(const void *x, float *y, int64_t n);
void ek_dequantize_row_q8_0_avx2(const void *x, float *y, int64_t n);
void ek_dequantize_row_q4_0_avx2(const void *x, float *y, int64_t n);
void ek_dequantize_row_q4_1_avx2(const void *x, float *y, int64_t n);
void ek_dequantize_row_f16_avx2(const void *x, float *y, int64_t n);
void ek_dequantize_row_bf16_avx2(const void *x, float *y, int64_t n);

// ---- Q8_0 x Q8_0 dot products -------------------------------------------------
//
// Arithmetic, identical in every variant (scalar, AVX2, AVX-512 VNNI, dot and
// matvec) and in llama.cpp's x86 ggml_vec_dot_q8_0_q8_0: per block, 8 int32
// lanes (lane l = exact sum of the 4 products of bytes 4l..4l+3), each lane
// accumulated over the blocks in order as acc[l] = fma(float(lane), dw*dx,
// acc[l]) with dw*dx = fp16(w.d)*fp16(x.d) rounded to float; finally
// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). So all paths return the same bits,
// and with activations from ek_quantize_row_q8_0 they match llama.cpp.
// Weights (x / w) may hold any int8; activations (y / xq) must lie in
// [-127, 127] (as ek_quantize_row_q8_0* produce): the SIMD paths, like ggml's,
// apply w's sign to x, and -128 there gives a wrong result (never a crash).
//
// Speed (AMD EPYC Zen 4 VM, 2 cores): a decode matvec streams its weights
// from DRAM and is memory-bound. ek_matvec_q8_0 reads 4 rows at a time and
// software-prefetches the 4-row span >= 4 KiB ahead (the hardware prefetcher
// alone gave ~7 GB/s on this pattern). Measured: one thread ~22-29 GB/s, about
// 85-90% of a plain read loop over the same memory (the upper figures with
// weights in ek_alloc_huge memory); all SmolLM2-135M matrices of one token
// (143 MB) in 2.99-3.7 ms with 2 threads and huge pages (39-48 GB/s) on a
// quiet moment of a shared machine. In L2 the kernel runs ~30 GB/s per core.
// A repacked layout (aligned quants, separate scales) was not built: with the
// kernel this close to raw read bandwidth it cannot gain much, and it would
// double the weight memory or need a file rewrite.

float ek_vec_dot_q8_0(int64_t n, const void *x, const void *y);            // dispatched
float ek_vec_dot_q8_0_scalar(int64_t n, const void *x, const void *y);
float ek_vec_dot_q8_0_avx2(int64_t n, const void *x, const void *y);
float ek_vec_dot_q8_0_avx512vnni(int64_t n, const void *x, const void *y);

/// y[r] = dot(row r of w, xq) for r in [row0, row1). w is row-major Q8_0 with
/// ncols/32 blocks per row (row r starts at w + r*(ncols/32)*34); xq holds
/// ncols/32 blocks; y is indexed by absolute row (y[row0] is the first written).
void ek_matvec_q8_0(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                    const void *xq, float *y);                              // dispatched
void ek_matvec_q8_0_scalar(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y);
void ek_matvec_q8_0_avx2(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y);
void ek_matvec_q8_0_avx512vnni(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y);

// ---- float helpers ----------------------------------------------------------------

/// sum x[i]*y[i] (dispatched; SIMD variants use FMA and a different order).
float ek_vec_dot_f32(int64_t n, const float *x, const float *y);
float ek_vec_dot_f32_scalar(int64_t n, const float *x, const float *y);
float ek_vec_dot_f32_avx2(int64_t n, const float *x, const float *y);
float ek_vec_dot_f32_avx512(int64_t n, const float *x, const float *y);

// ---- memory -------------------------------------------------------------------------

/// Zero-filled anonymous memory, 2 MiB aligned, with transparent huge pages
/// requested (Linux madvise(MADV_HUGEPAGE)) - for the weight matrices the model
/// copies out of the file at load (Transformer's WeightArena). Streaming Q8_0 weights from
/// such memory measured ~10% faster than from 4 KiB pages (fewer TLB misses).
/// Returns NULL if bytes == 0 or the mapping fails. Free with ek_free_huge
/// passing the same size.
void *ek_alloc_huge(size_t bytes);
void ek_free_huge(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
