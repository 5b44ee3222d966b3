// Batched products (several tokens at once) with AVX-512 VNNI, giving for every (row, token)
// exactly the bits of the table's vec_dot for that row and token, i.e. of ggml's x86 vec_dot.
// That makes a token's result independent of the batch it is computed in (decode alone, a
// chunk of 7, a 512-token prefill: same bits), and keeps llama.cpp's arithmetic.
//
// ggml's dot for the 32-element types (Q8_0, Q5_0, Q4_0 against Q8_0 activations) keeps 8
// float lanes per output: lane l accumulates, block after block, fma(d_w * d_a, float(isum_l),
// acc_l), where isum_l is the exact int32 sum of the 4 products of bytes 4l..4l+3; the lanes
// are summed at the end as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). Q6_K (against Q8_K) keeps 8
// int32 lanes per 256-element super-block, lane l = sum over the 8 chunks of 32 of the chunk's
// 16-element scale times its 4-product sum at bytes 4l..4l+3, minus 32 * (the Q8_K bsums times
// the scales, pairwise), then one fma per super-block with d_w * d_a.
//
// Here a zmm holds the 8 lanes of two tokens (a "pair": token 2p in the low half, 2p+1 in the
// high half), so each instruction serves two outputs. Per call and token block the activations
// are repacked by pair (bytes, the correction for the weights' unsigned offset, the scale
// broadcast); per row block the weights are unpacked once into unsigned bytes plus a float
// scale. Tiles of 4 rows x 4 pairs (32 outputs) run over all blocks of a row with the
// accumulators in registers. Batches of EK_T32_MIN tokens or more of the 32-element types turn
// this around (gemm32t): a zmm holds one lane of 16 rows for one token.
#pragma STDC FP_CONTRACT OFF

#include <immintrin.h>
#include <stdlib.h>

#include "ek_internal.h"
#include "ek_quants.h"
#include "ek_reduce16.h"
#include "include/ek_kernels.h"
#include "include/ek_types.h"

#define T5 EK_TARGET_AVX512

#define TB 64    // tokens per activation pack (32 pairs)
#define RB 32    // rows per weight unpack
#define TR 4     // rows per register tile
#define TP 4     // pairs per register tile
#define EK_T32_MIN 48   // 32-element types, batches of at least this many tokens: 16-row tiles (gemm32t);
                       // smaller batches: Q8_0 the small-batch kernel, Q5_0/Q4_0 tiles of 4 rows x 4 pairs

// Per-thread buffers, grown on demand (the pool's threads live as long as the process).
static _Thread_local uint8_t *g_buf[2];
static _Thread_local size_t g_cap[2];
static uint8_t *scratch(int k, size_t bytes) {
    if (g_cap[k] < bytes) {
        free(g_buf[k]);
        const size_t cap = (bytes + 4095) & ~(size_t)4095;
        g_buf[k] = (uint8_t *)aligned_alloc(64, cap);
        g_cap[k] = g_buf[k] ? cap : 0;
    }
    return g_buf[k];
}

// fp16 -> fp32 with F16C (exact, as ek_fp16_to_fp32; a call per block was 10% of a small batch)
T5 static inline float f16f(const uint8_t *p) { return _cvtsh_ss(ek_load_u16(p)); }

T5 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// [a x8 | b x8]
T5 static inline __m512 pair_ps(float a, float b) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)), _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

// Writes (or adds) the two tokens' results of a pair accumulator.
T5 static inline void store_pair(__m512 a, int64_t r, int64_t t, int has2, float *y, float *acc, int64_t ys) {
    const float v0 = hsum8(_mm512_castps512_ps256(a));
    if (acc) acc[t * ys + r] += v0; else y[t * ys + r] = v0;
    if (has2) {
        const float v1 = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
        if (acc) acc[(t + 1) * ys + r] += v1; else y[(t + 1) * ys + r] = v1;
    }
}

// The 32 results of a full 4 x 4 tile of pair accumulators acc[i][j] (row i, tokens 2j, 2j+1),
// each hsum8 bit for bit, with shuffles serving 16 lanes at a time, token-major: out[4 t + i] is
// row i of token t.
T5 static inline void hsum8x32(const __m512 a[16], float out[32]) {
    __m512 z[8], c[4], r[2];
    for (int m = 0; m < 8; m++)   // quarter q of z[m]: the 4 sums s_l = x_{4+l} + x_l of 8-lane vector 4m + q
        z[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0xDD), _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0x88));
    for (int i = 0; i < 4; i++)   // s0 + s2, s1 + s3
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int n = 0; n < 2; n++)   // (s0 + s2) + (s1 + s3): lane L of r holds half (v & 1) of
        r[n] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * n], c[2 * n + 1], _MM_SHUFFLE(2, 0, 2, 0)),   // acc[k / 4][k % 4],
                             _mm512_shuffle_ps(c[2 * n], c[2 * n + 1], _MM_SHUFFLE(3, 1, 3, 1)));  // k = v / 2, v = 16 (L / 16) + 4 (L % 4) + (L % 16) / 4
    const __m512i lo = _mm512_setr_epi32(0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30);
    const __m512i hi = _mm512_setr_epi32(1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31);
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(r[0], lo, r[1]));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(r[0], hi, r[1]));
}

// ---- 32-element types: Q8_0, Q5_0, Q4_0 ------------------------------------------------------

// Activation pack for one pair and block: bytes of both tokens, -bias * (4-byte sums), scales.
typedef struct { __m512i x, c; __m512 d; } pk32;
// Weight unpack for one row and block: unsigned bytes (value + bias) and the float scale.
typedef struct { uint8_t u[32]; float d; uint8_t pad[28]; } wk32;

// A row's block b as unsigned bytes (value + bias), and its scale.
T5 static inline __m256i row_u32(int32_t type, const uint8_t *w, int64_t b, float *d) {
    switch (type) {
    case EK_TYPE_Q8_0: {
        const uint8_t *p = w + 34 * b;
        *d = f16f(p);
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_set1_epi8((char)0x80));
    }
    case EK_TYPE_Q5_0: {
        const uint8_t *p = w + 22 * b;
        *d = f16f(p);
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + 6));
        const __m256i nb4 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
        uint32_t bits;
        memcpy(&bits, p + 2, 4);
        return _mm256_mask_add_epi8(nb4, (__mmask32)bits, nb4, _mm256_set1_epi8(0x10));
    }
    default: {   // Q4_0
        const uint8_t *p = w + 18 * b;
        *d = f16f(p);
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + 2));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
    }
    }
}

T5 static void unpack32(int32_t type, const uint8_t *w, int64_t nb, wk32 *o) {
    for (int64_t b = 0; b < nb; b++, o++) _mm256_store_si256((__m256i *)o->u, row_u32(type, w, b, &o->d));
}

T5 static void pack32(const uint8_t *A, int64_t as, int64_t t0, int64_t nt, int64_t nb, int bias, pk32 *o) {
    const __m256i vb = _mm256_set1_epi8((char)bias);
    for (int64_t p = 0; p < (nt + 1) / 2; p++) {
        const uint8_t *a0 = A + (t0 + 2 * p) * as;
        const int has2 = 2 * p + 1 < nt;
        const uint8_t *a1 = has2 ? a0 + as : a0;   // an odd last token is paired with itself
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *p0 = a0 + 34 * b, *p1 = a1 + 34 * b;
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(p0 + 2));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(p1 + 2));
            const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
            pk32 *q = o + p * nb + b;
            q->x = x;
            q->c = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_broadcast_i64x4(vb), x));
            q->d = pair_ps(f16f(p0), f16f(p1));
        }
    }
}

// Outputs for rows [r, r + nr) and pairs [p, p + np) of the pack, nr <= TR, np <= TP.
T5 static inline void tile32(const wk32 *W, const pk32 *P, int64_t nb, int nr, int np, __m512 acc[TR][TP]) {
    for (int i = 0; i < TR; i++)
        for (int j = 0; j < TP; j++) acc[i][j] = _mm512_setzero_ps();
    if (nr == TR && np == TP) {
        for (int64_t b = 0; b < nb; b++) {
            __m512i u[TR];
            for (int i = 0; i < TR; i++) u[i] = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)W[i * nb + b].u));
            for (int j = 0; j < TP; j++) {
                const pk32 *q = P + j * nb + b;
                const __m512i x = _mm512_load_si512(&q->x), c = _mm512_load_si512(&q->c);
                const __m512 dx = _mm512_load_ps(&q->d);
                for (int i = 0; i < TR; i++) {
                    const __m512 d = _mm512_mul_ps(_mm512_set1_ps(W[i * nb + b].d), dx);
                    acc[i][j] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c, u[i], x)), acc[i][j]);
                }
            }
        }
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        for (int j = 0; j < np; j++) {
            const pk32 *q = P + j * nb + b;
            for (int i = 0; i < nr; i++) {
                const __m512i u = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)W[i * nb + b].u));
                const __m512 d = _mm512_mul_ps(_mm512_set1_ps(W[i * nb + b].d), q->d);
                acc[i][j] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(q->c, u, q->x)), acc[i][j]);
            }
        }
    }
}

// Writes (or adds to) the results of one tile: rows row..row+nr-1, the np pairs from token t;
// tokens at or past tend are not written. A full tile goes through one transposing reduction.
T5 static inline void store_tile32(__m512 acc[TR][TP], int nr, int np, int64_t row, int64_t t, int64_t tend,
                                   float *y, float *accum, int64_t ys) {
    if (nr == TR && np == TP && t + 2 * TP <= tend) {
        float v[32];
        hsum8x32(&acc[0][0], v);
        for (int k = 0; k < 2 * TP; k++) {   // token t + k: rows row..row+3 are adjacent
            float *o = (accum ? accum : y) + (t + k) * ys + row;
            const __m128 x = _mm_loadu_ps(v + 4 * k);
            _mm_storeu_ps(o, accum ? _mm_add_ps(_mm_loadu_ps(o), x) : x);
        }
        return;
    }
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < np; j++) store_pair(acc[i][j], row + i, t + 2 * j, t + 2 * j + 1 < tend, y, accum, ys);
}

T5 static void gemm32(int32_t type, const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                      const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nb = ncols / 32;
    const int bias = type == EK_TYPE_Q8_0 ? 128 : type == EK_TYPE_Q5_0 ? 16 : 8;
    pk32 *P = (pk32 *)scratch(0, sizeof(pk32) * (size_t)(TB / 2) * (size_t)nb);
    wk32 *W = (wk32 *)scratch(1, sizeof(wk32) * (size_t)RB * (size_t)nb);
    if (!P || !W) return;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB, npairs = (nt + 1) / 2;
        pack32(A, as, t0, nt, nb, bias, P);
        for (int64_t rb = r0; rb < r1; rb += RB) {
            const int64_t nrb = r1 - rb < RB ? r1 - rb : RB;
            for (int64_t i = 0; i < nrb; i++) unpack32(type, Wt + (size_t)(rb + i) * rs, nb, W + i * nb);
            for (int64_t p = 0; p < npairs; p += TP) {
                const int np = (int)(npairs - p < TP ? npairs - p : TP);
                for (int64_t r = 0; r < nrb; r += TR) {
                    const int nr = (int)(nrb - r < TR ? nrb - r : TR);
                    __m512 acc[TR][TP];
                    tile32(W + r * nb, P + p * nb, nb, nr, np, acc);
                    store_tile32(acc, nr, np, rb + r, t0 + 2 * p, t0 + nt, y, accum, ys);
                }
            }
        }
    }
}

// Larger batches of the 32-element types: 16 rows per register. Per row block the weights of 16
// rows are unpacked block by block into 8 zmm, lane r of zmm l holding row r's 4 unsigned bytes
// 4l..4l+3, and a zmm of the 16 scales; per call and token block each token's block keeps its 32
// signed bytes (read 4 at a time as broadcasts), the 8 corrections -bias * (sum of those 4 bytes)
// and its scale. One vpdpbusd then gives lane l of 16 rows for one token, and the product
// d_w * d_a takes one multiply per 16 rows, token and block instead of one per row, pair and
// block as in tile32. Each (row, token, lane) has the same int32 sum, the same fma with the same
// scale, block after block; the lanes' end sum becomes 7 vertical adds. Same bits as tile32.
typedef struct { __m512i u[8]; __m512 d; } wt32;                      // 16 rows, one block
typedef struct { int32_t x[8], c[8]; float d; float pad[3]; } at32;  // one token, one block
#define NT32 3   // tokens per register tile (24 float accumulators)

// nr (<= 16) rows from w (row stride rs), all nb blocks; missing rows are zero weights.
T5 static void unpack32t(int32_t type, const uint8_t *w, size_t rs, int nr, int64_t nb, int bias, wt32 *o) {
    const __m512i ia = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), ib = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const __m256i zero = _mm256_set1_epi8((char)bias);   // a zero weight, biased
    for (int64_t b = 0; b < nb; b++, o++) {
        float d[16] __attribute__((aligned(64)));
        __m512i z[8], t[8], u[8];
        for (int k = 0; k < 8; k++) {   // z[k] = rows k | k + 8, dword l at lanes l | 8 + l
            d[k] = d[k + 8] = 0.0f;
            const __m256i lo = k < nr ? row_u32(type, w + (size_t)k * rs, b, &d[k]) : zero;
            const __m256i hi = k + 8 < nr ? row_u32(type, w + (size_t)(k + 8) * rs, b, &d[k + 8]) : zero;
            z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        for (int k = 0; k < 8; k += 4) {   // 4 x 4 transposes of dwords within each 128-bit lane
            t[k] = _mm512_unpacklo_epi32(z[k], z[k + 1]);
            t[k + 1] = _mm512_unpackhi_epi32(z[k], z[k + 1]);
            t[k + 2] = _mm512_unpacklo_epi32(z[k + 2], z[k + 3]);
            t[k + 3] = _mm512_unpackhi_epi32(z[k + 2], z[k + 3]);
            u[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]);
            u[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
            u[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]);
            u[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
        }
        for (int m = 0; m < 4; m++) {   // u[m]: dword m (lanes 0, 2) and 4 + m (lanes 1, 3) of rows 0-3 | 8-11
            o->u[m] = _mm512_permutex2var_epi64(u[m], ia, u[m + 4]);
            o->u[m + 4] = _mm512_permutex2var_epi64(u[m], ib, u[m + 4]);
        }
        o->d = _mm512_load_ps(d);
    }
}

T5 static void pack32t(const uint8_t *A, int64_t as, int64_t t0, int64_t nt, int64_t nb, int bias, at32 *o) {
    const __m256i vb = _mm256_set1_epi8((char)bias);
    for (int64_t t = 0; t < nt; t++) {
        const uint8_t *a = A + (t0 + t) * as;
        for (int64_t b = 0; b < nb; b++, o++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(a + 34 * b + 2));
            _mm256_storeu_si256((__m256i *)o->x, x);
            _mm256_storeu_si256((__m256i *)o->c, _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), vb, x)));
            o->d = f16f(a + 34 * b);
        }
    }
}

// 16 rows x NT tokens (token k's pack at P + k * nb): out[k] = the 16 rows' results. The rows'
// blocks at W, one every 576 bytes as wt32, or (X16) every 544 bytes as ek_repack_q8_0_x16 lays
// them out (f16 scales). At block b, the cache lines b * pq .. b * pq + pq - 1 of pf below pn
// are prefetched (pq = 0: none).
T5 static inline __attribute__((always_inline)) void tile32t(const uint8_t *W, const int X16, const at32 *P, int64_t nb,
                                                            const int NT, const char *pf, int pq, int pn, __m512 out[NT32]) {
    const size_t stride = X16 ? 544 : sizeof(wt32);
    __m512 acc[NT32][8];
    for (int k = 0; k < NT; k++)
        for (int l = 0; l < 8; l++) acc[k][l] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *w = W + (size_t)b * stride;
        for (int c = 0; c < pq; c++)
            if ((int)b * pq + c < pn) _mm_prefetch(pf + 64 * ((int)b * pq + c), _MM_HINT_T0);
        const __m512 dw = X16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 512))) : _mm512_load_ps((const float *)(w + 512));
        __m512 d[NT32];
#pragma unroll
        for (int k = 0; k < NT; k++) d[k] = _mm512_mul_ps(dw, _mm512_set1_ps(P[k * nb + b].d));
#pragma unroll
        for (int l = 0; l < 8; l++) {
            const __m512i u = _mm512_loadu_si512(w + 64 * l);
#pragma unroll
            for (int k = 0; k < NT; k++) {
                const at32 *a = P + k * nb + b;
                const __m512i s = _mm512_dpbusd_epi32(_mm512_set1_epi32(a->c[l]), u, _mm512_set1_epi32(a->x[l]));
                acc[k][l] = _mm512_fmadd_ps(d[k], _mm512_cvtepi32_ps(s), acc[k][l]);
            }
        }
    }
    for (int k = 0; k < NT; k++)
        out[k] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[k][0], acc[k][4]), _mm512_add_ps(acc[k][2], acc[k][6])),
                               _mm512_add_ps(_mm512_add_ps(acc[k][1], acc[k][5]), _mm512_add_ps(acc[k][3], acc[k][7])));
}

// The nt tokens of a pack against one block of 16 rows at W, in tiles of NT32 tokens; the results
// of the nr valid rows stored (or added) at dst. next (bytes, 0: none): where the following
// block of rows starts, which the tiles prefetch between them, each a share of its cache lines in
// proportion to its tokens, spread over its blocks, so the stream keeps flowing while the later
// tiles read W from L1 (8 sequences 1.19x over prefetching 4 KiB ahead in the first tile only;
// 4 and 16 sequences 0.99x and 1.14x). A batch of one tile keeps that 4 KiB distance (with the
// next block's lines instead: 2 sequences 0.89x).
T5 static inline __attribute__((always_inline)) void rows16(const uint8_t *W, const int X16, const at32 *P, int64_t nb, int64_t nt,
                                                           size_t next, int nr, int64_t row, int64_t t0, float *dst, int add, int64_t ys) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1u);
    const int lines = next ? (int)(nb * (X16 ? 544 : (int64_t)sizeof(wt32)) / 64) : 0;
    for (int64_t t = 0; t < nt; t += NT32) {
        const int n = (int)(nt - t < NT32 ? nt - t : NT32);
        int lo = (int)(lines * t / nt), cnt = (int)(lines * (t + n) / nt) - lo;
        int pq = cnt ? (int)((cnt + nb - 1) / nb) : 0;
        const char *pf = (const char *)W + next + 64 * (size_t)lo;
        if (next && nt <= NT32) { pf = (const char *)W + 4096; pq = 9; cnt = 9 * (int)nb; }
        __m512 out[NT32];
        if (n == 3) tile32t(W, X16, P + t * nb, nb, 3, pf, pq, cnt, out);
        else if (n == 2) tile32t(W, X16, P + t * nb, nb, 2, pf, pq, cnt, out);
        else tile32t(W, X16, P + t * nb, nb, 1, pf, pq, cnt, out);
        for (int k = 0; k < n; k++) {
            float *o = dst + (t0 + t + k) * ys + row;
            _mm512_mask_storeu_ps(o, m, add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), out[k]) : out[k]);
        }
    }
}

T5 static void gemm32t(int32_t type, const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                       const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nb = ncols / 32;
    const int bias = type == EK_TYPE_Q8_0 ? 128 : type == EK_TYPE_Q5_0 ? 16 : 8;
    at32 *P = (at32 *)scratch(0, sizeof(at32) * (size_t)TB * (size_t)nb);
    wt32 *W = (wt32 *)scratch(1, sizeof(wt32) * (size_t)nb);
    if (!P || !W) return;
    float *dst = accum ? accum : y;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB;
        pack32t(A, as, t0, nt, nb, bias, P);
        for (int64_t rb = r0; rb < r1; rb += 16) {
            const int nr = (int)(r1 - rb < 16 ? r1 - rb : 16);
            unpack32t(type, Wt + (size_t)rb * rs, rs, nr, nb, bias, W);
            rows16((const uint8_t *)W, 0, P, nb, nt, 0, nr, rb, t0, dst, accum != NULL, ys);
        }
    }
}

// Q8_0 repacked by ek_repack_q8_0_x16: the same tiles without the unpack, for any batch (decode
// too: one token is a tile of 16 rows x 1). Each thread reads one sequential stream. Batches
// prefetch the next 16 rows while they work on these (rows16); decode leaves the stream to the
// hardware prefetcher (with a software prefetch 2-8 KiB ahead: 0.94x).
T5 int ek_gemm_q8_x16_avx512(const void *rp, int64_t r0, int64_t r1, int64_t ncols, const void *A, int64_t as,
                             int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nb = ncols / 32;
    at32 *P = (at32 *)scratch(0, sizeof(at32) * (size_t)TB * (size_t)nb);
    if (!P) return 0;
    if (r0 >= r1) return 1;
    const size_t gs = (size_t)nb * 544;   // bytes per 16 rows
    const uint8_t *R = (const uint8_t *)rp + (size_t)(r0 / 16) * gs;
    float *dst = accum ? accum : y;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB;
        pack32t((const uint8_t *)A, as, t0, nt, nb, 128, P);
        for (int64_t g = r0; g < r1; g += 16) {
            const uint8_t *wg = R + (size_t)((g - r0) / 16) * gs;
            const size_t next = nt > 1 && g + 16 < r1 ? gs : 0;
            rows16(wg, 1, P, nb, nt, next, 16, g, t0, dst, accum != NULL, ys);
        }
    }
    return 1;
}

// Small batches of Q8_0 (2 to EK_T32_MIN - 1 tokens). Unpacking every weight block into a
// buffer for so few tokens cost as much as the products, so here the weights are read once in
// the file's layout and biased in registers, 4 rows at a time, each row block serving up to TP
// pairs (further tiles of pairs re-read the 4 rows from L1); the weight stream is prefetched ahead as in the decode kernel. Per lane
// the same arithmetic as tile32 (exact int32 lanes, fma with d_w * d_a in block order): the
// same bits as decode.
T5 static inline __attribute__((always_inline)) void small_tile_q8(const uint8_t *p, size_t rs, int64_t nb,
                                                                  const pk32 *P, const int NR, const int NP,
                                                                  size_t dist, __m512 acc[TR][TP]) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = p + 34 * b;
        if (dist) {   // the row group `dist` bytes ahead, 4 * 34 bytes per block step
            const char *f = (const char *)(p + dist + 4 * 34 * b);
            _mm_prefetch(f, _MM_HINT_T0);
            _mm_prefetch(f + 64, _MM_HINT_T0);
            _mm_prefetch(f + 128, _MM_HINT_T0);
        }
        __m512i u[TR];
        __m512 dw[TR];
        for (int i = 0; i < NR; i++) {
            u[i] = _mm512_broadcast_i64x4(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + i * rs + 2)), bias));
            dw[i] = _mm512_set1_ps(f16f(q + i * rs));
        }
        for (int j = 0; j < NP; j++) {
            const pk32 *k = P + j * nb + b;
            const __m512i x = _mm512_load_si512(&k->x), c = _mm512_load_si512(&k->c);
            const __m512 dx = _mm512_load_ps(&k->d);
            for (int i = 0; i < NR; i++)
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(dw[i], dx), _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c, u[i], x)), acc[i][j]);
        }
    }
}

// One group of nr rows (4, or 1 for a tail) against all pairs, in tiles of up to TP pairs (the
// group's weights stay in L1 for the next tile); pf, the prefetch distance, with the first tile.
#define SMALL_TILE(NR) switch (np) {                                        \
    case 4: small_tile_q8(w, rs, nb, Pp, NR, 4, pf, acc); break;             \
    case 3: small_tile_q8(w, rs, nb, Pp, NR, 3, pf, acc); break;             \
    case 2: small_tile_q8(w, rs, nb, Pp, NR, 2, pf, acc); break;             \
    default: small_tile_q8(w, rs, nb, Pp, NR, 1, pf, acc); break; }
T5 static void small_q8_group(const uint8_t *w, size_t rs, int64_t row, int nr, int64_t nb, const pk32 *P,
                              int64_t ntok, size_t pf, float *y, float *accum, int64_t ys) {
    const int64_t npairs = (ntok + 1) / 2;
    for (int64_t pg = 0; pg < npairs; pg += TP, pf = 0) {
        const int np = (int)(npairs - pg < TP ? npairs - pg : TP);
        const pk32 *Pp = P + pg * nb;
        __m512 acc[TR][TP];
        if (nr == 4) { SMALL_TILE(4) } else { SMALL_TILE(1) }
        store_tile32(acc, nr, np, row, 2 * pg, ntok, y, accum, ys);
    }
}
#undef SMALL_TILE

// Rows [r0, r1): groups of 4, then a tail of 1-3 rows one at a time.
T5 static void small_q8_rows(const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t nb, const pk32 *P,
                             int64_t ntok, float *y, float *accum, int64_t ys) {
    const size_t group = 4 * rs, dist = group * ((4096 + group - 1) / group);
    const size_t span = (size_t)(r1 - r0) * rs;
    for (size_t o = 0; o < dist && o < span; o += 64) _mm_prefetch((const char *)(Wt + (size_t)r0 * rs + o), _MM_HINT_T0);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const size_t pf = (size_t)(r1 - r) * rs > dist + group ? dist : 0;   // the next groups, if there are any
        small_q8_group(Wt + (size_t)r * rs, rs, r, 4, nb, P, ntok, pf, y, accum, ys);
    }
    for (; r < r1; r++) small_q8_group(Wt + (size_t)r * rs, rs, r, 1, nb, P, ntok, 0, y, accum, ys);
}

T5 static void gemm_q8_small(const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                             const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nb = ncols / 32;
    pk32 *P = (pk32 *)scratch(0, sizeof(pk32) * (size_t)(TB / 2) * (size_t)nb);
    if (!P) return;
    pack32(A, as, 0, ntok, nb, 128, P);
    small_q8_rows(Wt, rs, r0, r1, nb, P, ntok, y, accum, ys);
}

// ---- Q6_K ------------------------------------------------------------------------------------

// Activation pack for one pair and super-block: 8 chunks of both tokens' 32 bytes, both
// tokens' 16 bsums, the scales broadcast.
typedef struct { __m512i x[8]; __m512i bs; __m512 d; } pk6;
// Weight unpack for one row and super-block: 256 unsigned values (0..63), per chunk the int16
// scales of its two 16-element halves as dpwssd wants them (both halves of the zmm), the 16
// scales as int16 twice (for the bsums term), the float scale.
// (Q3_K and Q2_K use the same unpack, see below; dmin is Q2_K's.)
typedef struct { uint8_t u[256]; __m512i sc[8]; __m512i scs; float d, dmin; uint8_t pad[56]; } wk6;

T5 static void unpack6(const uint8_t *w, int64_t nsb, wk6 *o) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    for (int64_t s = 0; s < nsb; s++, o++) {
        const uint8_t *p = w + 210 * s;
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512(p + 64 * h);
            const __m256i qh256 = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), _mm256_srli_epi16(qh256, 2), 1);
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(qh, m3), 4));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 4), m3), 4));
            _mm512_storeu_si512(o->u + 128 * h, lo);        // elements 128h + 0..63
            _mm512_storeu_si512(o->u + 128 * h + 64, hi);   // elements 128h + 64..127
        }
        const int8_t *sc = (const int8_t *)(p + 192);
        for (int c = 0; c < 8; c++) {
            int16_t v[32];
            for (int k = 0; k < 32; k++) v[k] = sc[2 * c + ((k & 15) >= 8)];
            o->sc[c] = _mm512_loadu_si512(v);
        }
        int16_t v[32];
        for (int k = 0; k < 32; k++) v[k] = sc[k & 15];
        o->scs = _mm512_loadu_si512(v);
        o->d = f16f(p + 208);
    }
}

T5 static void pack6(const uint8_t *A, int64_t as, int64_t t0, int64_t nt, int64_t nsb, pk6 *o) {
    for (int64_t p = 0; p < (nt + 1) / 2; p++) {
        const uint8_t *a0 = A + (t0 + 2 * p) * as;
        const uint8_t *a1 = 2 * p + 1 < nt ? a0 + as : a0;
        for (int64_t s = 0; s < nsb; s++) {
            const uint8_t *p0 = a0 + 292 * s, *p1 = a1 + 292 * s;
            pk6 *q = o + p * nsb + s;
            for (int c = 0; c < 8; c++)
                q->x[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p0 + 4 + 32 * c))),
                                             _mm256_loadu_si256((const __m256i *)(p1 + 4 + 32 * c)), 1);
            q->bs = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p0 + 260))),
                                       _mm256_loadu_si256((const __m256i *)(p1 + 260)), 1);
            float d0, d1;
            memcpy(&d0, p0, 4);
            memcpy(&d1, p1, 4);
            q->d = pair_ps(d0, d1);
        }
    }
}

#define TP6 2   // pairs per Q6_K register tile (4 rows x 2 pairs: 8 float + 8 int accumulators)

T5 static inline void tile6(const wk6 *W, const pk6 *P, int64_t nsb, int nr, int np, __m512 acc[TR][TP6]) {
    for (int i = 0; i < TR; i++)
        for (int j = 0; j < TP6; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m512i sumi[TR][TP6];
        for (int i = 0; i < TR; i++)
            for (int j = 0; j < TP6; j++) sumi[i][j] = _mm512_setzero_si512();
        if (nr == TR && np == TP6) {
            for (int c = 0; c < 8; c++) {
                const __m512i x0 = _mm512_load_si512(&P[s].x[c]), x1 = _mm512_load_si512(&P[nsb + s].x[c]);
                for (int i = 0; i < TR; i++) {
                    const wk6 *w = W + i * nsb + s;
                    const __m512i u = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(w->u + 32 * c)));
                    const __m512i sc = _mm512_load_si512(&w->sc[c]);
                    sumi[i][0] = _mm512_dpwssd_epi32(sumi[i][0], _mm512_maddubs_epi16(u, x0), sc);
                    sumi[i][1] = _mm512_dpwssd_epi32(sumi[i][1], _mm512_maddubs_epi16(u, x1), sc);
                }
            }
        } else {
            for (int c = 0; c < 8; c++)
                for (int j = 0; j < np; j++)
                    for (int i = 0; i < nr; i++) {
                        const wk6 *w = W + i * nsb + s;
                        const __m512i u = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(w->u + 32 * c)));
                        sumi[i][j] = _mm512_dpwssd_epi32(sumi[i][j], _mm512_maddubs_epi16(u, P[j * nsb + s].x[c]), w->sc[c]);
                    }
        }
        for (int j = 0; j < np; j++) {
            const pk6 *q = P + j * nsb + s;
            for (int i = 0; i < nr; i++) {
                const wk6 *w = W + i * nsb + s;
                const __m512i sub = _mm512_slli_epi32(_mm512_madd_epi16(q->bs, w->scs), 5);
                const __m512 d = _mm512_mul_ps(_mm512_set1_ps(w->d), q->d);
                acc[i][j] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(sumi[i][j], sub)), acc[i][j]);
            }
        }
    }
}

T5 static inline __m512 negate_ps(__m512 x) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

// ---- Q3_K and Q2_K (against Q8_K) ------------------------------------------------------------
// ggml_vec_dot_q3_K_q8_K and _q2_K_q8_K (AVX2) keep 8 int32 lanes per super-block like Q6_K:
// lane l = sum over the 8 chunks of 32 of the chunk's 16-element scale (int16 pairs) times the
// chunk's int16 sums of 2 products at bytes 4l..4l+3. Q3_K's values are q = ql - qh in -4..3,
// its int16 sums maddubs(ql, a) - maddubs(qh, a); here u = q + 4 in 0..7 is unpacked and the
// sums are maddubs(u, a) - maddubs(4, a), the same int16 numbers. Then acc = fma(d_a * d,
// float(lanes), acc). Q2_K's values are 0..3 with unsigned scales, and before that each
// super-block adds its mins: acc = fma(-(d_a * dmin), float(madd(mins, bsums)), acc), 8 lanes
// as well. The result is hsum8(acc), as Q6_K's. The unpack is wk6 (scs holds Q2_K's mins as
// int16, twice), the activation pack pk6.

// Chunk c's int16 scales as dpwssd wants them: lanes 0..7 s[2c], 8..15 s[2c+1], both halves.
T5 static inline __m512i chunk_scales(__m128i s, int c) {
    const __m128i idx = _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm_set1_epi8((char)(2 * c)));
    return _mm512_broadcast_i64x4(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, idx)));
}

T5 static void unpack_k23(int32_t type, const uint8_t *w, int64_t nsb, wk6 *o) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t s = 0; s < nsb; s++, o++) {
        __m128i sc;
        const uint8_t *qs;
        __m256i hm = _mm256_setzero_si256();
        if (type == EK_TYPE_Q3_K) {
            const uint8_t *p = w + 110 * s;
            qs = p + 32;
            hm = _mm256_loadu_si256((const __m256i *)p);
            int8_t s8[16];
            ek_k3_scales(p + 96, s8);
            sc = _mm_loadu_si128((const __m128i *)s8);
            o->d = f16f(p + 108);
            o->dmin = 0;
            o->scs = _mm512_setzero_si512();
        } else {   // Q2_K
            const uint8_t *p = w + 84 * s;
            qs = p + 16;
            const __m128i raw = _mm_loadu_si128((const __m128i *)p);
            sc = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
            o->scs = _mm512_broadcast_i64x4(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f))));
            o->d = f16f(p + 80);
            o->dmin = f16f(p + 82);
        }
        for (int c = 0; c < 8; c++) {
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(qs + 32 * (c >> 2))), 2 * (c & 3)), m3);
            __m256i u = q;
            if (type == EK_TYPE_Q3_K) u = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, c), one), 2));
            _mm256_store_si256((__m256i *)(o->u + 32 * c), u);
            o->sc[c] = chunk_scales(sc, c);
        }
    }
}

// Rows [0, nr) x pairs [0, np) of the tile, nr <= TR, np <= TP6; Q3 selects Q3_K (else Q2_K).
T5 static inline __attribute__((always_inline)) void tile_k23(const int Q3, const wk6 *W, const pk6 *P, int64_t nsb,
                                                             int nr, int np, __m512 acc[TR][TP6]) {
    const __m512i four = _mm512_set1_epi8(4);
    for (int i = 0; i < TR; i++)
        for (int j = 0; j < TP6; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        if (!Q3)
            for (int j = 0; j < np; j++) {
                const pk6 *q = P + j * nsb + s;
                for (int i = 0; i < nr; i++) {
                    const wk6 *w = W + i * nsb + s;
                    const __m512 dm = negate_ps(_mm512_mul_ps(_mm512_set1_ps(w->dmin), q->d));
                    acc[i][j] = _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(_mm512_madd_epi16(w->scs, q->bs)), acc[i][j]);
                }
            }
        __m512i sumi[TR][TP6];
        for (int i = 0; i < TR; i++)
            for (int j = 0; j < TP6; j++) sumi[i][j] = _mm512_setzero_si512();
        for (int c = 0; c < 8; c++) {
            __m512i x[TP6], x4[TP6];
            for (int j = 0; j < np; j++) {
                x[j] = _mm512_load_si512(&P[j * nsb + s].x[c]);
                x4[j] = Q3 ? _mm512_maddubs_epi16(four, x[j]) : _mm512_setzero_si512();
            }
            for (int i = 0; i < nr; i++) {
                const wk6 *w = W + i * nsb + s;
                const __m512i u = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(w->u + 32 * c)));
                const __m512i sc = _mm512_load_si512(&w->sc[c]);
                for (int j = 0; j < np; j++) {
                    __m512i m = _mm512_maddubs_epi16(u, x[j]);
                    if (Q3) m = _mm512_sub_epi16(m, x4[j]);
                    sumi[i][j] = _mm512_dpwssd_epi32(sumi[i][j], m, sc);
                }
            }
        }
        for (int j = 0; j < np; j++) {
            const pk6 *q = P + j * nsb + s;
            for (int i = 0; i < nr; i++) {
                const wk6 *w = W + i * nsb + s;
                const __m512 d = _mm512_mul_ps(_mm512_set1_ps(w->d), q->d);
                acc[i][j] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi[i][j]), acc[i][j]);
            }
        }
    }
}

// Q6_K, Q3_K and Q2_K: the same activation pack, rows unpacked into wk6, tiles of 4 rows x 2 pairs.
T5 static void gemm6(int32_t type, const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nsb = ncols / 256;
    pk6 *P = (pk6 *)scratch(0, sizeof(pk6) * (size_t)(TB / 2) * (size_t)nsb);
    wk6 *W = (wk6 *)scratch(1, sizeof(wk6) * (size_t)RB * (size_t)nsb);
    if (!P || !W) return;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB, npairs = (nt + 1) / 2;
        pack6(A, as, t0, nt, nsb, P);
        for (int64_t rb = r0; rb < r1; rb += RB) {
            const int64_t nrb = r1 - rb < RB ? r1 - rb : RB;
            for (int64_t i = 0; i < nrb; i++) {
                if (type == EK_TYPE_Q6_K) unpack6(Wt + (size_t)(rb + i) * rs, nsb, W + i * nsb);
                else unpack_k23(type, Wt + (size_t)(rb + i) * rs, nsb, W + i * nsb);
            }
            for (int64_t p = 0; p < npairs; p += TP6) {
                const int np = (int)(npairs - p < TP6 ? npairs - p : TP6);
                for (int64_t r = 0; r < nrb; r += TR) {
                    const int nr = (int)(nrb - r < TR ? nrb - r : TR);
                    const wk6 *w = W + r * nsb;
                    const pk6 *q = P + p * nsb;
                    __m512 acc[TR][TP6];
                    // (Q3_K/Q2_K: the full tile with constant sizes: unrolled, the accumulators in registers)
                    const int full = nr == TR && np == TP6;
                    if (type == EK_TYPE_Q6_K) tile6(w, q, nsb, nr, np, acc);
                    else if (type == EK_TYPE_Q3_K) {
                        if (full) tile_k23(1, w, q, nsb, TR, TP6, acc);
                        else tile_k23(1, w, q, nsb, nr, np, acc);
                    } else {
                        if (full) tile_k23(0, w, q, nsb, TR, TP6, acc);
                        else tile_k23(0, w, q, nsb, nr, np, acc);
                    }
                    for (int i = 0; i < nr; i++)
                        for (int j = 0; j < np; j++) {
                            const int64_t t = t0 + 2 * (p + j);
                            store_pair(acc[i][j], rb + r + i, t, t + 1 < t0 + nt, y, accum, ys);
                        }
                }
            }
        }
    }
}

// ---- Q4_K in llama.cpp's repacked gemv order -------------------------------------------------
// Per super-block the exact integers I = sum_j sc_j * (sum of q*a over sub-block j) and
// M = sum_j mn_j * (bsum_2j + bsum_2j+1), then acc = fma(float(I), d*d_a, acc) and
// accm = fma(float(M), dmin*d_a, accm); the result is acc - accm (ek_vec_dot_q4_K_q8_K_rp).
// Here the 16 lanes of a zmm are 16 tokens: the activations are transposed per 4-byte group,
// each weight group of 4 nibbles is broadcast, and vpdpbusd accumulates a sub-block's sums.

typedef struct { __m512i a[64]; __m512i b[8]; __m512 d; } pk4;                // 16 tokens, one super-block
typedef struct { uint32_t u[64]; int32_t sc[8], mn[8]; float d, dmin; uint8_t pad[56]; } wk4;   // one row, one super-block

T5 static void unpack4(const uint8_t *w, int64_t nsb, wk4 *o) {
    for (int64_t s = 0; s < nsb; s++, o++) {
        const uint8_t *p = w + 144 * s;
        uint8_t v[256];
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                v[64 * j + l] = p[16 + 32 * j + l] & 0x0f;
                v[64 * j + 32 + l] = p[16 + 32 * j + l] >> 4;
            }
        memcpy(o->u, v, 256);
        uint32_t sm[3], u[4];
        memcpy(sm, p + 4, 12);
        u[0] = sm[0] & 0x3f3f3f3fu;
        u[1] = (sm[2] & 0x0f0f0f0fu) | (((sm[0] >> 6) & 0x03030303u) << 4);
        u[2] = sm[1] & 0x3f3f3f3fu;
        u[3] = ((sm[2] >> 4) & 0x0f0f0f0fu) | (((sm[1] >> 6) & 0x03030303u) << 4);
        const uint8_t *b = (const uint8_t *)u;   // scales b[0..7], mins b[8..15]
        for (int j = 0; j < 8; j++) { o->sc[j] = b[j]; o->mn[j] = b[8 + j]; }
        o->d = f16f(p);
        o->dmin = f16f(p + 2);
    }
}

T5 static void pack4(const uint8_t *A, int64_t as, int64_t t0, int64_t nt, int64_t nsb, pk4 *o) {
    // lanes past the last token repeat it (their results are not stored)
    int32_t off[16];
    for (int l = 0; l < 16; l++) off[l] = (int32_t)((l < nt ? l : nt - 1) * as);
    const __m512i vo = _mm512_loadu_si512(off);
    const uint8_t *base = A + t0 * as;
    for (int64_t s = 0; s < nsb; s++) {
        const uint8_t *b = base + 292 * s;
        pk4 *q = o + s;
        for (int g = 0; g < 64; g++) q->a[g] = _mm512_i32gather_epi32(vo, (const void *)(b + 4 + 4 * g), 1);
        q->d = _mm512_i32gather_ps(vo, (const void *)b, 1);
        for (int j = 0; j < 8; j++) {
            int32_t v[16];
            for (int l = 0; l < 16; l++) {
                int16_t b0, b1;
                const uint8_t *t = b + off[l] + 260 + 4 * j;
                memcpy(&b0, t, 2);
                memcpy(&b1, t + 2, 2);
                v[l] = (int32_t)b0 + (int32_t)b1;
            }
            q->b[j] = _mm512_loadu_si512(v);
        }
    }
}

// rows r, r+1 (nr of them) x token blocks P, P+nsb (np of them)
T5 static inline void tile4k(const wk4 *W, const pk4 *P, int64_t nsb, int nr, int np, __m512 out[2][2]) {
    __m512 acc[2][2], accm[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) acc[i][j] = accm[i][j] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m512i I[2][2];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) I[i][j] = _mm512_setzero_si512();
        const wk4 *w0 = W + s, *w1 = W + (nr > 1 ? nsb : 0) + s;
        const pk4 *p0 = P + s, *p1 = P + (np > 1 ? nsb : 0) + s;
        for (int sb = 0; sb < 8; sb++) {
            __m512i S00 = _mm512_setzero_si512(), S01 = S00, S10 = S00, S11 = S00;
            for (int g = 8 * sb; g < 8 * sb + 8; g++) {
                const __m512i x0 = _mm512_load_si512(&p0->a[g]), x1 = _mm512_load_si512(&p1->a[g]);
                const __m512i u0 = _mm512_set1_epi32((int)w0->u[g]), u1 = _mm512_set1_epi32((int)w1->u[g]);
                S00 = _mm512_dpbusd_epi32(S00, u0, x0);
                S01 = _mm512_dpbusd_epi32(S01, u0, x1);
                S10 = _mm512_dpbusd_epi32(S10, u1, x0);
                S11 = _mm512_dpbusd_epi32(S11, u1, x1);
            }
            const __m512i c0 = _mm512_set1_epi32(w0->sc[sb]), c1 = _mm512_set1_epi32(w1->sc[sb]);
            I[0][0] = _mm512_add_epi32(I[0][0], _mm512_mullo_epi32(S00, c0));
            I[0][1] = _mm512_add_epi32(I[0][1], _mm512_mullo_epi32(S01, c0));
            I[1][0] = _mm512_add_epi32(I[1][0], _mm512_mullo_epi32(S10, c1));
            I[1][1] = _mm512_add_epi32(I[1][1], _mm512_mullo_epi32(S11, c1));
        }
        for (int i = 0; i < 2; i++) {
            const wk4 *w = i == 0 ? w0 : w1;
            for (int j = 0; j < 2; j++) {
                const pk4 *p = j == 0 ? p0 : p1;
                __m512i M = _mm512_setzero_si512();
                for (int sb = 0; sb < 8; sb++) M = _mm512_add_epi32(M, _mm512_mullo_epi32(_mm512_set1_epi32(w->mn[sb]), p->b[sb]));
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i][j]), _mm512_mul_ps(_mm512_set1_ps(w->d), p->d), acc[i][j]);
                accm[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M), _mm512_mul_ps(_mm512_set1_ps(w->dmin), p->d), accm[i][j]);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) out[i][j] = _mm512_sub_ps(acc[i][j], accm[i][j]);
}

#define TB4 128   // tokens per Q4_K activation pack (8 blocks of 16)

T5 static void gemm4k(const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                      const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nsb = ncols / 256;
    pk4 *P = (pk4 *)scratch(0, sizeof(pk4) * (size_t)(TB4 / 16) * (size_t)nsb);
    wk4 *W = (wk4 *)scratch(1, sizeof(wk4) * (size_t)RB * (size_t)nsb);
    if (!P || !W) return;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB4) {
        const int64_t nt = ntok - t0 < TB4 ? ntok - t0 : TB4, nblk = (nt + 15) / 16;
        for (int64_t k = 0; k < nblk; k++) {
            const int64_t bt = nt - 16 * k < 16 ? nt - 16 * k : 16;
            pack4(A, as, t0 + 16 * k, bt, nsb, P + k * nsb);
        }
        for (int64_t rb = r0; rb < r1; rb += RB) {
            const int64_t nrb = r1 - rb < RB ? r1 - rb : RB;
            for (int64_t i = 0; i < nrb; i++) unpack4(Wt + (size_t)(rb + i) * rs, nsb, W + i * nsb);
            for (int64_t k = 0; k < nblk; k += 2) {
                const int np = nblk - k < 2 ? 1 : 2;
                for (int64_t r = 0; r < nrb; r += 2) {
                    const int nr = nrb - r < 2 ? 1 : 2;
                    __m512 out[2][2];
                    tile4k(W + r * nsb, P + k * nsb, nsb, nr, np, out);
                    for (int i = 0; i < nr; i++)
                        for (int j = 0; j < np; j++) {
                            float v[16];
                            _mm512_storeu_ps(v, out[i][j]);
                            const int64_t tb = t0 + 16 * (k + j), cnt = nt - 16 * (k + j) < 16 ? nt - 16 * (k + j) : 16;
                            const int64_t row = rb + r + i;
                            for (int64_t l = 0; l < cnt; l++) {
                                if (accum) accum[(tb + l) * ys + row] += v[l];
                                else y[(tb + l) * ys + row] = v[l];
                            }
                        }
                }
            }
        }
    }
}


// ---- Q5_K ------------------------------------------------------------------------------------
// ggml_vec_dot_q5_K_q8_K (AVX2): per super-block 8 int32 lanes, lane l = sum over the 8 chunks of
// 32 of the chunk's scale times its 4-product sum at bytes 4l..4l+3 (values 0..31), then
// acc = fma(d_a * d, float(lanes), acc); the mins as one integer M = sum_j mn_j * (bsum_2j +
// bsum_2j+1) per super-block, summs = fma(-(d_a * dmin), float(M), summs); result
// hsum8(acc) + summs. Same pairs-of-tokens layout as Q6_K (the activation pack is pk6).

typedef struct { uint8_t u[256]; __m512i mins; float d, dmin; uint8_t pad[56]; int16_t sc[8]; } wk5;

T5 static void unpack5(const uint8_t *w, int64_t nsb, wk5 *o) {
    for (int64_t s = 0; s < nsb; s++, o++) {
        const uint8_t *p = w + 176 * s, *qh = p + 16, *qs = p + 48;
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                o->u[64 * j + l] = (uint8_t)((qs[32 * j + l] & 0x0f) | (((qh[l] >> (2 * j)) & 1) << 4));
                o->u[64 * j + 32 + l] = (uint8_t)((qs[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4));
            }
        uint32_t sm[3], u[4];
        memcpy(sm, p + 4, 12);
        u[0] = sm[0] & 0x3f3f3f3fu;
        u[1] = (sm[2] & 0x0f0f0f0fu) | (((sm[0] >> 6) & 0x03030303u) << 4);
        u[2] = sm[1] & 0x3f3f3f3fu;
        u[3] = ((sm[2] >> 4) & 0x0f0f0f0fu) | (((sm[1] >> 6) & 0x03030303u) << 4);
        const uint8_t *b = (const uint8_t *)u;   // scales b[0..7], mins b[8..15]
        int16_t mv[32];
        for (int k = 0; k < 32; k++) mv[k] = b[8 + (k & 15) / 2];
        o->mins = _mm512_loadu_si512(mv);
        for (int j = 0; j < 8; j++) o->sc[j] = b[j];
        o->d = f16f(p);
        o->dmin = f16f(p + 2);
    }
}


T5 static inline __attribute__((always_inline)) void tile5(const wk5 *W, const pk6 *P, int64_t nsb, int nr, int np, __m512 acc[TR][TP6], __m512 sm[TR][TP6]) {
    for (int i = 0; i < TR; i++)
        for (int j = 0; j < TP6; j++) acc[i][j] = sm[i][j] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m512i sumi[TR][TP6];
        for (int i = 0; i < TR; i++)
            for (int j = 0; j < TP6; j++) sumi[i][j] = _mm512_setzero_si512();
        for (int c = 0; c < 8; c++)
            for (int j = 0; j < np; j++) {
                const __m512i x = _mm512_load_si512(&P[j * nsb + s].x[c]);
                for (int i = 0; i < nr; i++) {
                    const wk5 *w = W + i * nsb + s;
                    const __m512i u = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->u + 32 * c)));
                    sumi[i][j] = _mm512_dpwssd_epi32(sumi[i][j], _mm512_maddubs_epi16(u, x), _mm512_set1_epi16(w->sc[c]));
                }
            }
        for (int j = 0; j < np; j++) {
            const pk6 *q = P + j * nsb + s;
            for (int i = 0; i < nr; i++) {
                const wk5 *w = W + i * nsb + s;
                __m512i m = _mm512_madd_epi16(q->bs, w->mins);                  // lane k: mn * B per half
                m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_CDAB));
                m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_BADC));
                m = _mm512_add_epi32(m, _mm512_shuffle_i32x4(m, m, _MM_SHUFFLE(2, 3, 0, 1)));   // M of each half
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(q->d, _mm512_set1_ps(w->d)), _mm512_cvtepi32_ps(sumi[i][j]), acc[i][j]);
                sm[i][j] = _mm512_fmadd_ps(negate_ps(_mm512_mul_ps(q->d, _mm512_set1_ps(w->dmin))), _mm512_cvtepi32_ps(m), sm[i][j]);
            }
        }
    }
}

T5 static void gemm5(const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nsb = ncols / 256;
    pk6 *P = (pk6 *)scratch(0, sizeof(pk6) * (size_t)(TB / 2) * (size_t)nsb);
    wk5 *W = (wk5 *)scratch(1, sizeof(wk5) * (size_t)RB * (size_t)nsb);
    if (!P || !W) return;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB, npairs = (nt + 1) / 2;
        pack6(A, as, t0, nt, nsb, P);
        for (int64_t rb = r0; rb < r1; rb += RB) {
            const int64_t nrb = r1 - rb < RB ? r1 - rb : RB;
            for (int64_t i = 0; i < nrb; i++) unpack5(Wt + (size_t)(rb + i) * rs, nsb, W + i * nsb);
            for (int64_t p = 0; p < npairs; p += TP6) {
                const int np = (int)(npairs - p < TP6 ? npairs - p : TP6);
                for (int64_t r = 0; r < nrb; r += TR) {
                    const int nr = (int)(nrb - r < TR ? nrb - r : TR);
                    __m512 acc[TR][TP6], sm[TR][TP6];
                    if (nr == TR && np == TP6) tile5(W + r * nsb, P + p * nsb, nsb, TR, TP6, acc, sm);   // unrolled
                    else tile5(W + r * nsb, P + p * nsb, nsb, nr, np, acc, sm);
                    for (int i = 0; i < nr; i++)
                        for (int j = 0; j < np; j++) {
                            const int64_t t = t0 + 2 * (p + j), row = rb + r + i;
                            float smv[16];
                            _mm512_storeu_ps(smv, sm[i][j]);
                            const float v0 = hsum8(_mm512_castps512_ps256(acc[i][j])) + smv[0];
                            if (accum) accum[t * ys + row] += v0; else y[t * ys + row] = v0;
                            if (t + 1 < t0 + nt) {
                                const float v1 = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][j]), 1))) + smv[8];
                                if (accum) accum[(t + 1) * ys + row] += v1; else y[(t + 1) * ys + row] = v1;
                            }
                        }
                }
            }
        }
    }
}


// ---- Q4_1, Q5_1 (against Q8_1) ---------------------------------------------------------------
// ggml: acc = fma(d_w * d_a, float(lanes of sum(q * a), q unsigned), acc) and
// summs = fma(m_w, s_a, summs) per block; result hsum8(acc) + summs.

typedef struct { __m512i x; __m512 d, s; } pk32m;
typedef struct { uint8_t u[32]; float d, m; uint8_t pad[24]; } wk32m;

T5 static void unpack32m(int32_t type, const uint8_t *w, int64_t nb, wk32m *o) {
    for (int64_t b = 0; b < nb; b++, o++) {
        __m256i u;
        if (type == EK_TYPE_Q4_1) {
            const uint8_t *p = w + 20 * b;
            o->d = f16f(p);
            o->m = f16f(p + 2);
            const __m128i v = _mm_loadu_si128((const __m128i *)(p + 4));
            u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
        } else {   // Q5_1
            const uint8_t *p = w + 24 * b;
            o->d = f16f(p);
            o->m = f16f(p + 2);
            const __m128i v = _mm_loadu_si128((const __m128i *)(p + 8));
            const __m256i nb4 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
            uint32_t bits;
            memcpy(&bits, p + 4, 4);
            u = _mm256_mask_add_epi8(nb4, (__mmask32)bits, nb4, _mm256_set1_epi8(0x10));
        }
        _mm256_store_si256((__m256i *)o->u, u);
    }
}

T5 static void pack32m(const uint8_t *A, int64_t as, int64_t t0, int64_t nt, int64_t nb, pk32m *o) {
    for (int64_t p = 0; p < (nt + 1) / 2; p++) {
        const uint8_t *a0 = A + (t0 + 2 * p) * as;
        const uint8_t *a1 = 2 * p + 1 < nt ? a0 + as : a0;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *p0 = a0 + 36 * b, *p1 = a1 + 36 * b;
            pk32m *q = o + p * nb + b;
            q->x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p0 + 4))),
                                      _mm256_loadu_si256((const __m256i *)(p1 + 4)), 1);
            q->d = pair_ps(f16f(p0), f16f(p1));
            q->s = pair_ps(f16f(p0 + 2), f16f(p1 + 2));
        }
    }
}

T5 static inline __attribute__((always_inline)) void tile32m(const wk32m *W, const pk32m *P, int64_t nb, int nr, int np, __m512 acc[TR][TP6], __m512 sm[TR][TP6]) {
    for (int i = 0; i < TR; i++)
        for (int j = 0; j < TP6; j++) acc[i][j] = sm[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++)
        for (int j = 0; j < np; j++) {
            const pk32m *q = P + j * nb + b;
            const __m512i x = _mm512_load_si512(&q->x);
            const __m512 dx = _mm512_load_ps(&q->d), sx = _mm512_load_ps(&q->s);
            for (int i = 0; i < nr; i++) {
                const wk32m *w = W + i * nb + b;
                const __m512i u = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)w->u));
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(w->d), dx),
                                            _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x)), acc[i][j]);
                sm[i][j] = _mm512_fmadd_ps(_mm512_set1_ps(w->m), sx, sm[i][j]);
            }
        }
}

T5 static void gemm32m(int32_t type, const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                       const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nb = ncols / 32;
    pk32m *P = (pk32m *)scratch(0, sizeof(pk32m) * (size_t)(TB / 2) * (size_t)nb);
    wk32m *W = (wk32m *)scratch(1, sizeof(wk32m) * (size_t)RB * (size_t)nb);
    if (!P || !W) return;
    for (int64_t t0 = 0; t0 < ntok; t0 += TB) {
        const int64_t nt = ntok - t0 < TB ? ntok - t0 : TB, npairs = (nt + 1) / 2;
        pack32m(A, as, t0, nt, nb, P);
        for (int64_t rb = r0; rb < r1; rb += RB) {
            const int64_t nrb = r1 - rb < RB ? r1 - rb : RB;
            for (int64_t i = 0; i < nrb; i++) unpack32m(type, Wt + (size_t)(rb + i) * rs, nb, W + i * nb);
            for (int64_t p = 0; p < npairs; p += TP6) {
                const int np = (int)(npairs - p < TP6 ? npairs - p : TP6);
                for (int64_t r = 0; r < nrb; r += TR) {
                    const int nr = (int)(nrb - r < TR ? nrb - r : TR);
                    __m512 acc[TR][TP6], sm[TR][TP6];
                    if (nr == TR && np == TP6) tile32m(W + r * nb, P + p * nb, nb, TR, TP6, acc, sm);   // unrolled
                    else tile32m(W + r * nb, P + p * nb, nb, nr, np, acc, sm);
                    for (int i = 0; i < nr; i++)
                        for (int j = 0; j < np; j++) {
                            const int64_t t = t0 + 2 * (p + j), row = rb + r + i;
                            float smv[16];
                            _mm512_storeu_ps(smv, sm[i][j]);
                            const float v0 = hsum8(_mm512_castps512_ps256(acc[i][j])) + smv[0];
                            if (accum) accum[t * ys + row] += v0; else y[t * ys + row] = v0;
                            if (t + 1 < t0 + nt) {
                                const float v1 = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][j]), 1))) + smv[8];
                                if (accum) accum[(t + 1) * ys + row] += v1; else y[(t + 1) * ys + row] = v1;
                            }
                        }
                }
            }
        }
    }
}

// ---- F16 and F32 ------------------------------------------------------------------------------

// Float weights (activations as F16 for F16 matrices, F32 for F32 ones): the type's vec_dot per
// (row, token) - four 16-lane accumulators over steps of 64 elements, (s0 + s2) + (s1 + s3), then
// the horizontal sum - in tiles of 4 rows x 4 tokens. Each of the four accumulators only ever
// sees lanes 16c..16c+15 of every step, so they are computed one c at a time (16 live
// accumulators, one per (row, token)); a weight chunk is converted once for 4 tokens instead of
// once per token, and the activations once per call. Needs ncols % 64 == 0 (no tail).
#define TF 4   // rows and tokens per float tile
T5 static inline __m512 ldf(int32_t type, const uint8_t *row, int64_t i) {
    return type == EK_TYPE_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * i)))
                               : _mm512_loadu_ps((const float *)(row + 4 * i));
}

T5 static void gemmf(int32_t type, const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                     const uint8_t *A, int64_t as, int64_t ntok, float *X, float *y, float *accum, int64_t ys) {
    for (int64_t t = 0; t < ntok; t++) {   // activations as floats (exact), token-major
        for (int64_t i = 0; i < ncols; i += 16) _mm512_storeu_ps(X + t * ncols + i, ldf(type, A + t * as, i));
    }
    for (int64_t r = r0; r < r1; r += TF) {
        const int nr = r1 - r < TF ? (int)(r1 - r) : TF;
        const uint8_t *w[TF];
        for (int i = 0; i < TF; i++) w[i] = Wt + (size_t)(r + (i < nr ? i : 0)) * rs;   // spare rows repeat row r
        for (int64_t t0 = 0; t0 < ntok; t0 += TF) {
            const int nt = ntok - t0 < TF ? (int)(ntok - t0) : TF;
            const float *x[TF];
            for (int j = 0; j < TF; j++) x[j] = X + (t0 + (j < nt ? j : 0)) * ncols;
            __m512 part[4][TF * TF];
            for (int c = 0; c < 4; c++) {
                __m512 acc[TF * TF];
                for (int k = 0; k < TF * TF; k++) acc[k] = _mm512_setzero_ps();
                for (int64_t i = 16 * c; i < ncols; i += 64) {
                    __m512 wv[TF];
                    for (int ri = 0; ri < TF; ri++) wv[ri] = ldf(type, w[ri], i);
                    for (int tj = 0; tj < TF; tj++) {
                        const __m512 xv = _mm512_loadu_ps(x[tj] + i);
                        for (int ri = 0; ri < TF; ri++) acc[4 * tj + ri] = _mm512_fmadd_ps(wv[ri], xv, acc[4 * tj + ri]);
                    }
                }
                for (int k = 0; k < TF * TF; k++) part[c][k] = acc[k];
            }
            __m512 v[TF * TF];
            for (int k = 0; k < TF * TF; k++)
                v[k] = _mm512_add_ps(_mm512_add_ps(part[0][k], part[2][k]), _mm512_add_ps(part[1][k], part[3][k]));
            float out[TF * TF];   // out[4 tj + ri]: row r + ri, token t0 + tj
            _mm512_storeu_ps(out, ek_reduce16x16_avx512(v));
            for (int tj = 0; tj < nt; tj++)
                for (int ri = 0; ri < nr; ri++) {
                    const int64_t o = (t0 + tj) * ys + r + ri;
                    if (accum) accum[o] += out[4 * tj + ri]; else y[o] = out[4 * tj + ri];
                }
        }
    }
}

// BF16 weights against BF16 activations, on CPUs with AVX512_BF16 (elsewhere the table's vec_dot
// is the scalar one and this kernel is not used): vec_dot keeps two accumulators, vdpbf16ps over
// elements i..i+31 and i+32..i+63 of every step of 64, then sums hsum16 of each in double, then
// the tail. Here each accumulator is one pass over the row (16 live, one per (row, token) of a
// 4 x 4 tile), reduced 16 at a time by the same tree.
#define T5BF __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")))
T5BF static void gemmbf(const uint8_t *Wt, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                        const uint8_t *A, int64_t as, int64_t ntok, float *y, float *accum, int64_t ys) {
    const int64_t nfull = ncols & ~(int64_t)63;
    for (int64_t r = r0; r < r1; r += TF) {
        const int nr = r1 - r < TF ? (int)(r1 - r) : TF;
        const uint16_t *w[TF];
        for (int i = 0; i < TF; i++) w[i] = (const uint16_t *)(Wt + (size_t)(r + (i < nr ? i : 0)) * rs);
        for (int64_t t0 = 0; t0 < ntok; t0 += TF) {
            const int nt = ntok - t0 < TF ? (int)(ntok - t0) : TF;
            const uint16_t *x[TF];
            for (int j = 0; j < TF; j++) x[j] = (const uint16_t *)(A + (t0 + (j < nt ? j : 0)) * as);
            float h[2][TF * TF];   // h[c][4 tj + ri]
            for (int c = 0; c < 2; c++) {
                __m512 acc[TF * TF];
                for (int k = 0; k < TF * TF; k++) acc[k] = _mm512_setzero_ps();
                for (int64_t i = 32 * c; i < nfull; i += 64) {
                    __m512i wv[TF];
                    for (int ri = 0; ri < TF; ri++) wv[ri] = _mm512_loadu_si512(w[ri] + i);
                    for (int tj = 0; tj < TF; tj++) {
                        const __m512i xv = _mm512_loadu_si512(x[tj] + i);
                        for (int ri = 0; ri < TF; ri++)
                            acc[4 * tj + ri] = _mm512_dpbf16_ps(acc[4 * tj + ri], (__m512bh)wv[ri], (__m512bh)xv);
                    }
                }
                _mm512_storeu_ps(h[c], ek_reduce16x16_avx512(acc));
            }
            for (int tj = 0; tj < nt; tj++)
                for (int ri = 0; ri < nr; ri++) {
                    double sum = 0;
                    sum += (double)h[0][4 * tj + ri];
                    sum += (double)h[1][4 * tj + ri];
                    for (int64_t i = nfull; i < ncols; i++) sum += (double)(ek_bf16_to_fp32(w[ri][i]) * ek_bf16_to_fp32(x[tj][i]));
                    const int64_t o = (t0 + tj) * ys + r + ri;
                    if (accum) accum[o] += (float)sum; else y[o] = (float)sum;
                }
        }
    }
}
#undef TF

// ---- entry -----------------------------------------------------------------------------------

int ek_gemm_supported_avx512(int32_t type) {
    return type == EK_TYPE_Q8_0 || type == EK_TYPE_Q5_0 || type == EK_TYPE_Q4_0 || type == EK_TYPE_Q6_K ||
           type == EK_TYPE_Q4_K || type == EK_TYPE_Q5_K || type == EK_TYPE_Q4_1 || type == EK_TYPE_Q5_1 ||
           type == EK_TYPE_Q3_K || type == EK_TYPE_Q2_K;
}

T5 int ek_gemm_avx512(int32_t type, const void *W, size_t rs, int64_t r0, int64_t r1, int64_t ncols,
                      const void *A, int64_t as, int64_t ntok, float *y, float *acc, int64_t ys, int64_t rows) {
    if ((type == EK_TYPE_F16 || type == EK_TYPE_F32) && ntok > 1 && r0 < r1 && ncols % 64 == 0) {
        float *X = (float *)scratch(0, sizeof(float) * (size_t)ntok * (size_t)ncols);
        if (!X) return 0;
        gemmf(type, (const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, X, y, acc, ys);
        return 1;
    }
    if (type == EK_TYPE_BF16 && ntok > 1 && r0 < r1) {
        if (!ek_cpu_has_avx512bf16()) return 0;   // (as the table's vec_dot: native BF16 products or none)
        gemmbf((const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
        return 1;
    }
    if (!ek_gemm_supported_avx512(type) || ntok < 1 || r0 >= r1) return 0;
    if (type == EK_TYPE_Q4_K) {
        // only matrices llama.cpp repacks (rows % 8 == 0: the gemv order); others keep vec_dot
        if (rows % 8 != 0 || (as % 4) != 0) return 0;
        if (!scratch(0, sizeof(pk4) * (TB4 / 16) * (size_t)(ncols / 256)) || !scratch(1, sizeof(wk4) * RB * (size_t)(ncols / 256))) return 0;
        gemm4k((const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
        return 1;
    }
    // Allocation failure of the (small) per-thread buffers: report "not done", the caller
    // falls back to vec_dot.
    if (type == EK_TYPE_Q4_1 || type == EK_TYPE_Q5_1) {
        if (!scratch(0, sizeof(pk32m) * (TB / 2) * (size_t)(ncols / 32)) || !scratch(1, sizeof(wk32m) * RB * (size_t)(ncols / 32))) return 0;
        gemm32m(type, (const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
        return 1;
    }
    if (type == EK_TYPE_Q5_K) {
        if (!scratch(0, sizeof(pk6) * (TB / 2) * (size_t)(ncols / 256)) || !scratch(1, sizeof(wk5) * RB * (size_t)(ncols / 256))) return 0;
        gemm5((const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
        return 1;
    }
    if (type == EK_TYPE_Q8_0 && ntok < EK_T32_MIN) {
        if (!scratch(0, sizeof(pk32) * (TB / 2) * (size_t)(ncols / 32))) return 0;
        gemm_q8_small((const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
        return 1;
    }
    if (type == EK_TYPE_Q6_K || type == EK_TYPE_Q3_K || type == EK_TYPE_Q2_K) {
        if (!scratch(0, sizeof(pk6) * (TB / 2) * (size_t)(ncols / 256)) || !scratch(1, sizeof(wk6) * RB * (size_t)(ncols / 256))) return 0;
        gemm6(type, (const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
    } else if (ntok >= EK_T32_MIN) {
        if (!scratch(0, sizeof(at32) * TB * (size_t)(ncols / 32)) || !scratch(1, sizeof(wt32) * (size_t)(ncols / 32))) return 0;
        gemm32t(type, (const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
    } else {
        if (!scratch(0, sizeof(pk32) * (TB / 2) * (size_t)(ncols / 32)) || !scratch(1, sizeof(wk32) * RB * (size_t)(ncols / 32))) return 0;
        gemm32(type, (const uint8_t *)W, rs, r0, r1, ncols, (const uint8_t *)A, as, ntok, y, acc, ys);
    }
    return 1;
}
