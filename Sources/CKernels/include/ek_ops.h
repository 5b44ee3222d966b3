#pragma once
// ek_ops.h — float helpers for the transformer forward pass (RMSNorm, RoPE, softmax,
// SwiGLU, attention) and the thread-pool tasks the decode path runs.
//
// Every function picks its implementation once (AVX-512 / AVX2+FMA / portable C) through
// __builtin_cpu_supports; the SIMD versions are compiled with __attribute__((target)).
// Callers must pass valid pointers and sizes: these are internal building blocks, the Swift
// layer validates everything derived from input files before calling them.
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Name of the implementation the ops dispatch chose: "avx512" | "avx2" | "scalar".
const char *ek_ops_impl_name(void);
/// Forces an implementation (tests): 0 = scalar, 1 = avx2, 2 = avx512. Returns 0 on success,
/// -1 when the CPU lacks it (nothing changes then). Not thread-safe with concurrent ops calls.
int ek_ops_force_impl(int level);

// ---- elementwise / reductions on float rows ---------------------------------------------
/// out[i] = x[i] * w[i] / sqrt(mean(x^2) + eps)   (sum of squares accumulated in double).
void ek_rmsnorm_f32(float *out, const float *x, const float *w, int64_t n, float eps);
/// sum(a[i] * b[i])
float ek_dot_f32(const float *a, const float *b, int64_t n);
/// y[i] += a * x[i]
void ek_axpy_f32(float *y, float a, const float *x, int64_t n);
/// y[i] += x[i]
void ek_add_f32(float *y, const float *x, int64_t n);
/// x[i] *= s
void ek_scale_f32(float *x, float s, int64_t n);
/// y[i] = exp(x[i])   (vectorized, about 2 ulp)
void ek_exp_f32(float *y, const float *x, int64_t n);
/// x = softmax(x * scale) in place; returns nothing. n >= 1.
void ek_softmax_f32(float *x, int64_t n, float scale);
/// out[i] = silu(gate[i]) * up[i]  with silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void ek_silu_mul_f32(float *out, const float *gate, const float *up, int64_t n);
/// Convert halves to float.
void ek_f16_to_f32_row(const uint16_t *x, float *y, int64_t n);

// ---- rotary embedding ------------------------------------------------------------------
/// Fills the rotation table for one position: cs[0..<n_dims] holds cos(theta_{j/2}) and
/// cs[n_dims..<2*n_dims] holds -sin(theta_{j/2}) at even j and +sin(theta_{j/2}) at odd j, with
/// theta_i = pos * freq_scale * base^(-2i/n_dims) / (freq_factors ? freq_factors[i] : 1),
/// computed like ggml (theta_scale = powf(base, -2/n_dims), repeated products in float).
void ek_rope_cache(float *cs, int64_t pos, int64_t n_dims, float base, float freq_scale,
                   const float *freq_factors);
/// "Normal" RoPE (rotates adjacent pairs (x[2i], x[2i+1])) on n_heads heads, heads
/// head_stride floats apart; only the first n_dims (even) floats of each head are rotated:
/// x'[j] = x[j]*cs[j] + x[j^1]*cs[n_dims+j].
void ek_rope_normal(float *x, int64_t n_heads, int64_t head_stride, int64_t n_dims,
                    const float *cs);

// ---- Q8_0 matrix-vector product with llama.cpp's rounding ---------------------------------
/// y[r] = dot(row r of w, xq) for r in [row0, row1), computed exactly as ggml's x86 backend does
/// (8 int32 lanes per block, fma(d_w*d_x, lane, acc) block by block, fixed 8-lane sum), so
/// results equal llama.cpp's bit for bit. Layout as ek_matvec_q8_0 (row r at w + r*ncols/32*34).
void ek_matvec_q8_0_ggml(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                         const void *xq, float *y);
void ek_matvec_q8_0_ggml_scalar(const void *w, int64_t ncols, int64_t row0, int64_t row1,
                                const void *xq, float *y);
/// "avx512vnni" | "avx2" | "scalar"
const char *ek_matvec_ggml_impl_name(void);
/// Forces 0 = scalar, 1 = avx2, 2 = avx512vnni (tests); -1 if the CPU lacks it.
int ek_matvec_ggml_force(int level);

// ---- int8-path thread-pool tasks (ek_task_fn signature: fn(ctx, ith, nth)) --------------
// These run n_tok >= 1 tokens at once: one token for decode, a short batch for small prompts.
// Every thread owns a range of output rows for all tokens, so each weight row is read from
// memory once per call and reused from cache for the other tokens.

/// How attention rounds, reproducing one of llama.cpp's CPU paths bit for bit.
typedef enum {
    /// ggml mul_mat + soft_max for a single-token batch (llama.cpp with flash attention off,
    /// llama-cpp-python's default): q -> f16, K·q by ggml_vec_dot_f16, softmax with its
    /// vectorized exp and a double sum, probabilities -> f16, P·V by ggml_vec_dot_f16.
    EK_ATTN_GGML_VEC = 0,
    /// the same for batches of 2 or more tokens, where both products go through llamafile's
    /// tinyBLAS (16-lane fma chains) instead of ggml_vec_dot_f16.
    EK_ATTN_GGML_TINYBLAS = 1,
    /// ggml's flash-attention kernel for short batches (llama.cpp with flash attention on):
    /// online softmax with expf and an f16 output accumulator.
    EK_ATTN_GGML_FLASH = 2,
} ek_attn_mode;

/// Causal attention over an F16 KV cache for n_tok query rows. Token t (position pos0 + t)
/// attends to positions 0...pos0+t. Work items (token, head) are split between threads.
/// Grouped-query: head h reads KV head h / (n_head / n_head_kv). head_dim must be a multiple
/// of 32, at most 512. If out_q8 != NULL each item also writes its head's output as Q8_0.
/// K is stored [kv head][position][head_dim]; V transposed, [kv head][head_dim][position]
/// (as llama.cpp stores it without flash attention), both with row length kv_len positions.
typedef struct {
    const float *q;        // token t, head h at q[t*q_stride + h*head_dim]
    int64_t q_stride;
    const uint16_t *k;     // kv head g, position p at k[g*kv_len*head_dim + p*head_dim]
    const uint16_t *vt;    // kv head g, dim d, position p at vt[g*head_dim*kv_len + d*kv_len + p]
    int64_t kv_len;        // positions per row (the cache capacity)
    float *out;            // token t, head h at out[t*out_stride + h*head_dim]
    int64_t out_stride;
    void *out_q8;          // optional: token t at out_q8 + t*out_q8_stride bytes
    int64_t out_q8_stride;
    float *scratch;        // per thread: scratch + ith*scratch_stride, at least 3*kv_len + 256 floats
    int64_t scratch_stride;
    int64_t n_tok, pos0;
    int64_t n_head, n_head_kv, head_dim;
    float scale;
    int32_t mode;          // ek_attn_mode
    int64_t window;        // > 0: token at position p attends only to p-window+1 ... p (sliding window)
    float softcap;         // > 0: scores s become softcap*tanh(s/softcap) before the softmax
} ek_attn_task;

/// Several attention tasks (the sequences of one continuous-batching step) as one pool task:
/// their work items are split between the threads together, each item computed as by
/// ek_attn_task_run (same bits). Every task's scratch must be the same per-thread buffers.
typedef struct {
    const ek_attn_task *tasks;
    int64_t n_tasks;
} ek_attn_multi_task;
void ek_attn_task_run(void *ctx, int ith, int nth);
void ek_attn_multi_task_run(void *ctx, int ith, int nth);

/// One query row of the above (single-threaded): out[0..<hd] = attention of q over positions
/// 0..<n_pos of one KV head (k: [kv_len][hd], vt: [hd][kv_len]); scratch as in ek_attn_task.
void ek_attn_row(const float *q, const uint16_t *k, const uint16_t *vt, int64_t kv_len,
                 int64_t n_pos, int64_t head_dim, float scale, int32_t mode, float *scratch,
                 float *out);

/// ek_attn_row over positions first..<n_pos only (a sliding window), with optional score
/// softcapping (softcap > 0: s -> softcap*tanh(s/softcap) after scaling, as gemma2 does).
/// Test hook: 1 = the VEC attention row always uses the one-dot-at-a-time code (the batched
/// AVX-512 version must give the same bits).
void ek_attn_force_rowwise(int on);
void ek_attn_row_ext(const float *q, const uint16_t *k, const uint16_t *vt, int64_t kv_len,
                     int64_t first, int64_t n_pos, int64_t head_dim, float scale, float softcap,
                     int32_t mode, float *scratch, float *out);

/// NEOX RoPE (rotates the halves (x[i], x[i + n_dims/2]) of each head), same table and
/// arithmetic as ek_rope_normal.
void ek_rope_neox(float *x, int64_t n_heads, int64_t head_stride, int64_t n_dims, const float *cs);

/// out[i] = gelu(gate[i]) * up[i] with ggml's GELU: tanh form looked up in a table of halves
/// (input rounded to a half; 0 below -10, identity above 10). out may alias gate or up.
void ek_gelu_mul_f32(float *out, const float *gate, const float *up, int64_t n);

/// Round floats to IEEE halves (round to nearest even).
void ek_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);
/// y[i*stride] = half(x[i]) (a row scattered into a column, e.g. V into the transposed cache).
void ek_f32_to_f16_strided(const float *x, uint16_t *y, int64_t n, int64_t stride);
/// x[i] = float(half(x[i])) in place.
void ek_round_f16_f32(float *x, int64_t n);

/// Parallel dequantization of several tensors into float (prefill weights); each part's
/// blocks are split between threads. type uses ggml numbers; every type with a to_float in
/// ek_type_traits_of (ek_types.h) is supported (others: the part is left untouched - callers
/// validate types first).
typedef struct {
    int32_t nparts;
    int32_t type[8];
    const void *src[8];
    float *dst[8];
    int64_t count[8];      // elements, multiple of the type's block size
} ek_dequant_task;
void ek_dequant_task_run(void *ctx, int ith, int nth);

#ifdef __cplusplus
}
#endif
