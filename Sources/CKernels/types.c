// The per-type table (the only place that switches on ggml type ids) and the generic
// matrix x activations task. See ek_types.h.
#include <string.h>

#include "ek_internal.h"
#include "ek_quants.h"
#include "include/ek_ops.h"

#define EK_NTYPES 31   // ids 0..30

typedef struct {
    int32_t type;
    const char *name;
    int64_t bs, bb;
    int32_t vdt;
    ek_to_float_fn to_float[3];
    ek_from_float_fn from_float[3];
    ek_vec_dot_fn vec_dot[3];
} type_row;

#define L3(f) {f, f, f}
#define SIMD(s, a2, a5) {s, a2, a5}
#define DOTS(name) {ek_vec_dot_##name##_scalar, ek_vec_dot_##name##_avx2, ek_vec_dot_##name##_avx512}

static const type_row k_rows[] = {
    {EK_TYPE_F32, "f32", 1, 4, EK_TYPE_F32, L3(ek_to_float_f32), L3(ek_from_float_f32), DOTS(f32_f32)},
    {EK_TYPE_F16, "f16", 1, 2, EK_TYPE_F16,
     SIMD(ek_dequantize_row_f16_scalar, ek_dequantize_row_f16_avx2, ek_dequantize_row_f16_avx2),
     SIMD(ek_from_float_f16_scalar, ek_from_float_f16_avx2, ek_from_float_f16_avx2), DOTS(f16_f16)},
    {EK_TYPE_Q4_0, "q4_0", 32, 18, EK_TYPE_Q8_0,
     SIMD(ek_dequantize_row_q4_0_scalar, ek_dequantize_row_q4_0_avx2, ek_dequantize_row_q4_0_avx2),
     L3(NULL), DOTS(q4_0_q8_0)},
    {EK_TYPE_Q4_1, "q4_1", 32, 20, EK_TYPE_Q8_1,
     SIMD(ek_dequantize_row_q4_1_scalar, ek_dequantize_row_q4_1_avx2, ek_dequantize_row_q4_1_avx2),
     L3(NULL), DOTS(q4_1_q8_1)},
    {EK_TYPE_Q5_0, "q5_0", 32, 22, EK_TYPE_Q8_0, L3(ek_to_float_q5_0), L3(NULL), DOTS(q5_0_q8_0)},
    {EK_TYPE_Q5_1, "q5_1", 32, 24, EK_TYPE_Q8_1, L3(ek_to_float_q5_1), L3(NULL), DOTS(q5_1_q8_1)},
    {EK_TYPE_Q8_0, "q8_0", 32, 34, EK_TYPE_Q8_0,
     SIMD(ek_dequantize_row_q8_0_scalar, ek_dequantize_row_q8_0_avx2, ek_dequantize_row_q8_0_avx2),
     SIMD(ek_quantize_row_q8_0_scalar, ek_quantize_row_q8_0_avx2, ek_quantize_row_q8_0_avx512),
     SIMD(ek_vec_dot_q8_0_scalar, ek_vec_dot_q8_0_avx2, ek_vec_dot_q8_0_avx512vnni)},
    {EK_TYPE_Q8_1, "q8_1", 32, 36, EK_TYPE_Q8_1, L3(ek_to_float_q8_1),
     SIMD(ek_from_float_q8_1_scalar, ek_from_float_q8_1_avx2, ek_from_float_q8_1_avx2), L3(NULL)},
    {EK_TYPE_Q2_K, "q2_K", 256, 84, EK_TYPE_Q8_K, L3(ek_to_float_q2_K), L3(NULL), DOTS(q2_K_q8_K)},
    {EK_TYPE_Q3_K, "q3_K", 256, 110, EK_TYPE_Q8_K, L3(ek_to_float_q3_K), L3(NULL), DOTS(q3_K_q8_K)},
    {EK_TYPE_Q4_K, "q4_K", 256, 144, EK_TYPE_Q8_K, L3(ek_to_float_q4_K), L3(NULL), DOTS(q4_K_q8_K_rp)},
    {EK_TYPE_Q5_K, "q5_K", 256, 176, EK_TYPE_Q8_K, L3(ek_to_float_q5_K), L3(NULL), DOTS(q5_K_q8_K)},
    {EK_TYPE_Q6_K, "q6_K", 256, 210, EK_TYPE_Q8_K, L3(ek_to_float_q6_K), L3(NULL), DOTS(q6_K_q8_K)},
    {EK_TYPE_Q8_K, "q8_K", 256, 292, EK_TYPE_Q8_K, L3(ek_to_float_q8_K), L3(ek_from_float_q8_K), L3(NULL)},
    {EK_TYPE_BF16, "bf16", 1, 2, EK_TYPE_BF16,
     SIMD(ek_dequantize_row_bf16_scalar, ek_dequantize_row_bf16_avx2, ek_dequantize_row_bf16_avx2),
     L3(ek_from_float_bf16), DOTS(bf16_bf16)},
};
#define EK_NROWS ((int)(sizeof k_rows / sizeof k_rows[0]))

static ek_type_traits g_traits[3][EK_NTYPES];
static int g_built = 0;   // 0 no, 1 being built, 2 done

static void build_tables(void) {
    int st = __atomic_load_n(&g_built, __ATOMIC_ACQUIRE);
    if (st == 2) return;
    int expected = 0;
    if (__atomic_compare_exchange_n(&g_built, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        for (int lv = 0; lv < 3; lv++)
            for (int i = 0; i < EK_NROWS; i++) {
                const type_row *r = &k_rows[i];
                g_traits[lv][r->type] = (ek_type_traits){r->type, r->name, r->bs, r->bb, r->vdt,
                                                         r->to_float[lv], r->from_float[lv], r->vec_dot[lv]};
            }
        __atomic_store_n(&g_built, 2, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&g_built, __ATOMIC_ACQUIRE) != 2) { }
}

static int level_avail(int level) {
    switch (level) {
    case 0: return 1;
    case 1: return ek_cpu_has_avx2();
    case 2: return ek_cpu_has_avx512vnni();
    default: return 0;
    }
}

const ek_type_traits *ek_type_traits_level(int32_t type, int level) {
    if (type < 0 || type >= EK_NTYPES || !level_avail(level)) return NULL;
    build_tables();
    const ek_type_traits *t = &g_traits[level][type];
    return t->name ? t : NULL;
}

static inline int current_level(void) {
    const char *k = ek_kernel_name();   // follows ek_init / ek_force_kernel
    if (k[0] == 's') return 0;
    return k[3] == '5' ? 2 : 1;         // "avx512vnni" | "avx2"
}

const ek_type_traits *ek_type_traits_of(int32_t type) {
    if (type < 0 || type >= EK_NTYPES) return NULL;
    build_tables();
    const ek_type_traits *t = &g_traits[current_level()][type];
    return t->name ? t : NULL;
}

int64_t ek_row_bytes(int32_t type, int64_t n) {
    const ek_type_traits *t = ek_type_traits_of(type);
    if (t == NULL || n < 0 || n % t->block_size != 0) return -1;
    return n / t->block_size * t->block_bytes;
}

// ---- dequantization task -------------------------------------------------------------------

void ek_dequant_task_run(void *ctx, int ith, int nth) {
    const ek_dequant_task *t = (const ek_dequant_task *)ctx;
    for (int p = 0; p < t->nparts; p++) {
        const ek_type_traits *tr = ek_type_traits_of(t->type[p]);
        if (tr == NULL || tr->to_float == NULL) continue;
        const int64_t blocks = t->count[p] / tr->block_size;
        const int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
        if (b0 < b1)
            tr->to_float((const uint8_t *)t->src[p] + b0 * tr->block_bytes, t->dst[p] + b0 * tr->block_size,
                         (b1 - b0) * tr->block_size);
    }
}

// ---- matrix x activations ----------------------------------------------------------------

#define EK_PF_DIST 4096

static const ek_vec_dot_fn k_q4K_ggml[3] = DOTS(q4_K_q8_K);

/// Batches of up to this many tokens use the decode kernels token by token over blocks of 64
/// rows (each block's weights are read from memory once and stay in cache for the other tokens):
/// for the few tokens of a decode step of several sequences this beats the tiled kernels, which
/// unpack every weight block for as few as two tokens. Not for Q8_0 on AVX-512 VNNI, whose
/// small-batch kernel reads the weights once for all tokens.
static int g_small_batch = 4;

void ek_set_small_batch(int n) { g_small_batch = n < 1 ? 1 : n; }
int ek_small_batch(void) { return g_small_batch; }

static void mm_part(const ek_mm_task *t, int p, int64_t r0, int64_t r1) {
    const ek_type_traits *tr = ek_type_traits_of(t->type[p]);
    if (tr == NULL || tr->vec_dot == NULL) return;
    const int64_t ncols = t->ncols, ntok = t->n_tok, ys = t->y_stride;
    const size_t rs = (size_t)(ncols / tr->block_size * tr->block_bytes);
    const uint8_t *A = (const uint8_t *)t->a[p];
    const int64_t as = t->a_stride[p];
    float *acc = t->acc[p], *y = t->y[p];

    // AVX-512: Q8_0 repacked in groups of 16 rows, any number of tokens
    if (t->rp[p] && current_level() == 2 && r0 % 16 == 0 && r1 % 16 == 0 &&
        ek_gemm_q8_x16_avx512(t->rp[p], r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    // AVX2: Q8_0, Q5_0, Q4_0, Q4_1 and Q5_1 batches in tiles of 4 rows x 2 tokens
    if (ntok > 1 && current_level() == 1 && ek_gemm32_avx2(t->type[p], t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    // AVX2: Q4_K matrices llama.cpp repacks (the gemv order), Q6_K and Q5_K, in tiles of 2 rows x 2 tokens
    if (ntok > 1 && current_level() == 1 && t->type[p] == EK_TYPE_Q4_K && t->rows[p] % 8 == 0 &&
        ek_gemm_q4k_avx2(t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    if (ntok > 1 && current_level() == 1 && t->type[p] == EK_TYPE_Q6_K &&
        ek_gemm_q6k_avx2(t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    if (ntok > 1 && current_level() == 1 && t->type[p] == EK_TYPE_Q5_K &&
        ek_gemm_q5k_avx2(t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    if (ntok > 1 && current_level() == 1 && ek_gemm_k23_avx2(t->type[p], t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys))
        return;
    // (Q8_0 on AVX-512 VNNI has its own small-batch kernel, ek_gemm_avx512: weights read once for
    // up to 64 tokens, without the unpack of the tiled path.)
    const int q8_small = t->type[p] == EK_TYPE_Q8_0 && current_level() == 2;
    if (ntok > 1 && ntok <= g_small_batch && !q8_small) {   // a few tokens: decode kernels, block by block
        ek_mm_task one = *t;
        one.n_tok = 1;
        for (int64_t r = r0; r < r1; r += 64) {
            const int64_t m = r1 - r < 64 ? r1 - r : 64;
            for (int64_t k = 0; k < ntok; k++) {
                one.a[p] = A + k * as;
                one.y[p] = y ? y + k * ys : NULL;
                one.acc[p] = acc ? acc + k * ys : NULL;
                mm_part(&one, p, r, r + m);
            }
        }
        return;
    }

    if (t->type[p] == EK_TYPE_Q8_0 && ntok == 1) {   // the tuned Q8_0 path
        if (acc == NULL) {
            ek_matvec_q8_0(t->w[p], ncols, r0, r1, A, y);
        } else {
            float tmp[64];   // indexed by absolute row: shift the base so tmp[k] is row r + k
            for (int64_t r = r0; r < r1; r += 64) {
                const int64_t m = r1 - r < 64 ? r1 - r : 64;
                ek_matvec_q8_0(t->w[p], ncols, r, r + m, A, tmp - r);
                for (int64_t k = 0; k < m; k++) acc[r + k] += tmp[k];
            }
        }
        return;
    }
    // Batches on AVX-512 VNNI: the tiled kernels (same bits as vec_dot per row and token).
    if (ntok > 1 && current_level() == 2 &&
        ek_gemm_avx512(t->type[p], t->w[p], rs, r0, r1, ncols, A, as, ntok, y, acc, ys, t->rows[p]))
        return;
    // Q4_K: llama.cpp repacks matrices with rows % 8 == 0 (q4_K_8x8_q8_K) and multiplies them
    // with its gemv for single tokens (the table's vec_dot) and its gemm for groups of 4 tokens
    // (a different float order). Every token here uses the gemv order, whatever its batch, so
    // a token's result does not depend on the batch (decode matches llama.cpp bit for bit;
    // batches differ from llama.cpp's gemm in the last bits). Other Q4_K matrices go through
    // ggml_vec_dot_q4_K_q8_K.
    ek_vec_dot_fn dot = tr->vec_dot;
    const int q4k_plain = t->type[p] == EK_TYPE_Q4_K && t->rows[p] % 8 != 0;
    if (q4k_plain) dot = k_q4K_ggml[current_level()];
    ek_rows_fn rows4 = NULL;
    if (ntok == 1 && current_level() == 2) {
        switch (t->type[p]) {
        case EK_TYPE_Q4_K: rows4 = q4k_plain ? ek_rows_q4_K_avx512 : ek_rows_q4_K_rp_avx512; break;
        case EK_TYPE_Q6_K: rows4 = ek_rows_q6_K_avx512; break;
        case EK_TYPE_Q5_0: rows4 = ek_rows_q5_0_avx512; break;
        case EK_TYPE_Q4_0: rows4 = ek_rows_q4_0_avx512; break;
        default: break;
        }
    }
    if (rows4) {   // decode: 4 rows at a time, prefetch interleaved with the blocks
        const uint8_t *W = (const uint8_t *)t->w[p];
        const size_t group = 4 * rs;
        const size_t dist = group * ((EK_PF_DIST + group - 1) / group);
        const size_t span = (size_t)(r1 - r0) * rs;
        for (size_t o = 0; o < dist && o < span; o += 64) __builtin_prefetch(W + (size_t)r0 * rs + o, 0, 3);
        if (acc == NULL) {
            rows4(W + (size_t)r0 * rs, rs, r1 - r0, ncols, A, y + r0, dist);
        } else {
            float tmp[64];
            for (int64_t r = r0; r < r1; r += 64) {
                const int64_t m = r1 - r < 64 ? r1 - r : 64;
                rows4(W + (size_t)r * rs, rs, m, ncols, A, tmp, dist);
                for (int64_t k = 0; k < m; k++) acc[r + k] += tmp[k];
            }
        }
        return;
    }
    const uint8_t *W = (const uint8_t *)t->w[p] + (size_t)r0 * rs;
    const size_t span = (size_t)(r1 - r0) * rs;
    const size_t dist = rs > EK_PF_DIST ? rs : EK_PF_DIST;
    size_t pf = 0;
    for (; pf < dist && pf < span; pf += 64) __builtin_prefetch(W + pf, 0, 3);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = W + (size_t)(r - r0) * rs;
        size_t want = (size_t)(r - r0 + 1) * rs + dist;
        if (want > span) want = span;
        for (; pf < want; pf += 64) __builtin_prefetch(W + pf, 0, 3);
        for (int64_t k = 0; k < ntok; k++) {
            const float v = dot(ncols, row, A + k * as);
            if (acc) acc[k * ys + r] += v;
            else y[k * ys + r] = v;
        }
    }
}

void ek_repack_q8_0_x16(const void *w, int64_t rows, int64_t ncols, void *out) {
    const int64_t nb = ncols / EK_QK8_0;
    const size_t rs = (size_t)nb * EK_Q8_0_BLOCK_BYTES;
    const uint8_t *W = (const uint8_t *)w;
    uint8_t *o = (uint8_t *)out;
    for (int64_t g = 0; g + 16 <= rows; g += 16)
        for (int64_t b = 0; b < nb; b++, o += 16 * EK_Q8_0_BLOCK_BYTES) {
            for (int r = 0; r < 16; r++) {
                const uint8_t *blk = W + (size_t)(g + r) * rs + (size_t)b * EK_Q8_0_BLOCK_BYTES;
                for (int l = 0; l < 8; l++) {
                    uint32_t v;
                    memcpy(&v, blk + 2 + 4 * l, 4);
                    v ^= 0x80808080u;
                    memcpy(o + 64 * l + 4 * r, &v, 4);
                }
                memcpy(o + 512 + 2 * r, blk, 2);
            }
        }
}

void ek_row_q8_0_x16(const void *rp, int64_t row, int64_t ncols, float *y) {
    const int64_t nb = ncols / EK_QK8_0;
    const uint8_t *g = (const uint8_t *)rp + (size_t)(row / 16) * (size_t)nb * (16 * EK_Q8_0_BLOCK_BYTES);
    const int r = (int)(row % 16);
    for (int64_t b = 0; b < nb; b++, g += 16 * EK_Q8_0_BLOCK_BYTES) {
        const float d = ek_fp16_to_fp32(ek_load_u16(g + 512 + 2 * r));
        for (int l = 0; l < 8; l++)
            for (int k = 0; k < 4; k++) y[b * EK_QK8_0 + 4 * l + k] = (float)(int8_t)(g[64 * l + 4 * r + k] ^ 0x80) * d;
    }
}

int ek_mm_uses_q8_0_x16(void) { return current_level() == 2; }

int ek_mm_has_batched_kernel(int32_t type) {
    if (current_level() == 1)
        return type == EK_TYPE_Q8_0 || type == EK_TYPE_Q5_0 || type == EK_TYPE_Q4_0 || type == EK_TYPE_Q4_K || type == EK_TYPE_Q6_K ||
               type == EK_TYPE_Q5_K || type == EK_TYPE_Q4_1 || type == EK_TYPE_Q5_1 || type == EK_TYPE_Q3_K || type == EK_TYPE_Q2_K;
    return current_level() == 2 && ek_gemm_supported_avx512(type);
}

void ek_mm_task_run(void *ctx, int ith, int nth) {
    const ek_mm_task *t = (const ek_mm_task *)ctx;
    int64_t total = 0;
    for (int p = 0; p < t->nparts; p++) total += t->rows[p];
    const int64_t nchunks = (total + 15) / 16;
    const int64_t g0 = nchunks * ith / nth * 16;
    int64_t g1 = nchunks * (ith + 1) / nth * 16;
    if (g1 > total) g1 = total;
    int64_t base = 0;
    for (int p = 0; p < t->nparts; p++) {
        int64_t r0 = g0 - base, r1 = g1 - base;
        if (r0 < 0) r0 = 0;
        if (r1 > t->rows[p]) r1 = t->rows[p];
        if (r0 < r1) mm_part(t, p, r0, r1);
        base += t->rows[p];
    }
}
