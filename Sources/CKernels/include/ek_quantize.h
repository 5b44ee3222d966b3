#ifndef EK_QUANTIZE_H
#define EK_QUANTIZE_H
// Reference weight quantizers: byte-identical to ggml's no-imatrix
// quantize_row_*_ref functions (what llama-quantize runs without an
// importance matrix). Scalar and deterministic: every block depends only on
// its own 32 or 256 input floats, so rows can be split across threads freely.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Whether ekw_quantize_rows supports ggml type number `type`:
/// Q4_0 (2), Q4_1 (3), Q5_0 (6), Q5_1 (7), Q8_0 (8), Q2_K (10), Q3_K (11),
/// Q4_K (12), Q5_K (13), Q6_K (14).
int ekw_quantize_supported(int type);

/// Quantizes `nrows` rows of `n_per_row` floats (a multiple of the type's block
/// size: 32, or 256 for the K types) from `x` into `y` as ggml type `type`.
/// Returns the number of bytes written, or 0 when the type is unsupported or
/// `n_per_row` is not a multiple of the block size.
size_t ekw_quantize_rows(int type, const float *x, void *y, int64_t nrows, int64_t n_per_row);

#ifdef __cplusplus
}
#endif
#endif
