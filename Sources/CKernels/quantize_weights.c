// Reference weight quantizers for model conversion (gguf quantize).
//
// Each function reproduces the bytes of ggml's no-imatrix reference quantizer
// of the same type (ggml-quants.c, llama.cpp 0.3.36 / ggml 0.25), so float
// operations are written in the same order with the same intermediate types,
// and nothing may be contracted into fma or reassociated.
#pragma STDC FP_CONTRACT OFF

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ek_kernels.h"
#include "ek_quantize.h"

// ---- block layouts (ggml-common.h), local to this file ---------------------------
enum {
    W_QK = 32,        // block size of the 32-element types
    W_QK_K = 256,     // super-block size of the K types
    W_Q4_0_BYTES = 18,   // half d; u8 qs[16]
    W_Q4_1_BYTES = 20,   // half d, m; u8 qs[16]
    W_Q5_0_BYTES = 22,   // half d; u8 qh[4]; u8 qs[16]
    W_Q5_1_BYTES = 24,   // half d, m; u8 qh[4]; u8 qs[16]
    W_Q8_0_BYTES = 34,   // half d; i8 qs[32]
    W_Q2_K_BYTES = 84,   // u8 scales[16]; u8 qs[64]; half d, dmin
    W_Q3_K_BYTES = 110,  // u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d
    W_Q4_K_BYTES = 144,  // half d, dmin; u8 scales[12]; u8 qs[128]
    W_Q5_K_BYTES = 176,  // half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
    W_Q6_K_BYTES = 210,  // u8 ql[128]; u8 qh[64]; i8 scales[16]; half d
};

#define W_EPS 1e-15f      // ggml's GROUP_MAX_EPS

static inline int w_min(int a, int b) { return a < b ? a : b; }
static inline int w_max(int a, int b) { return a > b ? a : b; }

static inline void w_put_half(uint8_t *p, float f) {
    const uint16_t h = ek_fp32_to_fp16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static inline float w_get_half(const uint8_t *p) {
    return ek_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

// Round to nearest (ties to even) for |v| < 2^22: adding 1.5 * 2^23 puts the
// integer part in the low mantissa bits.
static inline int w_round(float v) {
    const float t = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

// ---- helpers of the K types -------------------------------------------------------------

// Codes in [-nmax, nmax-1] refined coordinate-wise (ggml make_q3_quants with do_rmse).
static float w_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float vmax = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; vmax = x[i]; }
    }
    if (amax < W_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / vmax;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = w_round(iscale * x[i]);
        l = w_max(-nmax, w_min(nmax - 1, l));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = w_round(x[i] * sl2 / slx);
                nl = w_max(-nmax, w_min(nmax - 1, nl));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// 6-bit scale and min of sub-block j in the 12-byte K-quant scale array.
static inline void w_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// ---- lane-parallel scale searches ---------------------------------------------------
//
// ggml searches each sub-block's scale independently, one sub-block after the
// other. Here lane j of an 8-wide vector runs sub-block j's search: every lane
// executes exactly the scalar sequence of IEEE operations (same order, same
// rounding, no fma: FP_CONTRACT is off), and data-dependent branches become
// per-lane selects, so the results are bit-identical while 8 sub-blocks
// proceed at once.

// The 32-byte vectors are only passed between always_inline functions, so the
// baseline-ISA ABI note clang gives for them does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float w_v8f __attribute__((vector_size(32)));
typedef int32_t w_v8i __attribute__((vector_size(32)));

#define W_INLINE static inline __attribute__((always_inline))

W_INLINE w_v8f w_splat(float v) { return (w_v8f){v, v, v, v, v, v, v, v}; }
W_INLINE w_v8i w_splati(int v) { return (w_v8i){v, v, v, v, v, v, v, v}; }
W_INLINE w_v8f w_sel(w_v8i m, w_v8f a, w_v8f b) { return (w_v8f)(((w_v8i)a & m) | ((w_v8i)b & ~m)); }
W_INLINE w_v8i w_seli(w_v8i m, w_v8i a, w_v8i b) { return (a & m) | (b & ~m); }
W_INLINE w_v8f w_abs(w_v8f v) { return (w_v8f)((w_v8i)v & w_splati(0x7fffffff)); }
W_INLINE w_v8i w_vround(w_v8f v) {               // nearest_int, per lane
    const w_v8i bits = (w_v8i)(v + w_splat(12582912.f));
    return (bits & w_splati(0x007fffff)) - w_splati(0x00400000);
}
W_INLINE w_v8i w_clamp(w_v8i l, int lo, int hi) {
    l = w_seli(l < w_splati(hi), l, w_splati(hi));
    return w_seli(l > w_splati(lo), l, w_splati(lo));
}
W_INLINE w_v8f w_tof(w_v8i v) { return __builtin_convertvector(v, w_v8f); }

W_INLINE w_v8i w_min8(w_v8i v, int hi) { return w_seli(v < w_splati(hi), v, w_splati(hi)); }
// Inf or NaN in a block: ggml's scalar code (and its undefined float->int
// conversions) is reproduced by the scalar path instead.
W_INLINE int w_has_nonfinite(const float *x) {
    int bad = 0;
    for (int j = 0; j < W_QK; j++) {
        uint32_t b;
        memcpy(&b, &x[j], 4);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

// make_qkx2_quants for 8 sub-blocks of n (<= 32) values: X[i] holds value i
// of every sub-block, W[i] its weight. Writes codes to L[lane * n + i] and
// the (negated) mins; returns the scales.
W_INLINE w_v8f w_qkx2_v8(int n, int nmax, const w_v8f *X, const w_v8f *W, uint8_t *L, w_v8f *the_min,
                         float rmin, float rdelta, int nstep, int use_mad) {
    w_v8i Lv[32], Laux[32];
    w_v8f lo = X[0], hi = X[0];
    w_v8f sum_w = W[0];
    w_v8f sum_x = sum_w * X[0];
    for (int i = 1; i < n; ++i) {
        lo = w_sel(X[i] < lo, X[i], lo);
        hi = w_sel(X[i] > hi, X[i], hi);
        sum_w += W[i];
        sum_x += W[i] * X[i];
    }
    lo = w_sel(lo > w_splat(0), w_splat(0), lo);
    const w_v8i flat = hi == lo;
    const w_v8f flat_min = -lo;
    w_v8f iscale = w_splat((float)nmax) / (hi - lo);
    w_v8f scale = w_splat(1) / iscale;
    w_v8f best_error = w_splat(0);
    for (int i = 0; i < n; ++i) {
        Lv[i] = w_clamp(w_vround(iscale * (X[i] - lo)), 0, nmax);
        w_v8f diff = scale * w_tof(Lv[i]) + lo - X[i];
        diff = use_mad ? w_abs(diff) : diff * diff;
        best_error += W[i] * diff;
    }
    if (nstep >= 1) {
        for (int is = 0; is <= nstep; ++is) {
            const float num = rmin + rdelta * is + nmax;
            iscale = w_splat(num) / (hi - lo);
            w_v8f sum_l = w_splat(0), sum_l2 = w_splat(0), sum_xl = w_splat(0);
            for (int i = 0; i < n; ++i) {
                Laux[i] = w_clamp(w_vround(iscale * (X[i] - lo)), 0, nmax);
                const w_v8f l = w_tof(Laux[i]);
                sum_l += W[i] * l;
                sum_l2 += W[i] * l * l;
                sum_xl += W[i] * l * X[i];
            }
            const w_v8f D = sum_w * sum_l2 - sum_l * sum_l;
            const w_v8i ok = D > w_splat(0);
            if (!(ok[0] | ok[1] | ok[2] | ok[3] | ok[4] | ok[5] | ok[6] | ok[7])) continue;
            w_v8f this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            w_v8f this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            const w_v8i pos = this_min > w_splat(0);
            this_scale = w_sel(pos, sum_xl / sum_l2, this_scale);
            this_min = w_sel(pos, w_splat(0), this_min);
            w_v8f cur_error = w_splat(0);
            for (int i = 0; i < n; ++i) {
                w_v8f diff = this_scale * w_tof(Laux[i]) + this_min - X[i];
                diff = use_mad ? w_abs(diff) : diff * diff;
                cur_error += W[i] * diff;
            }
            const w_v8i better = ok & (cur_error < best_error);
            for (int i = 0; i < n; ++i) Lv[i] = w_seli(better, Laux[i], Lv[i]);
            best_error = w_sel(better, cur_error, best_error);
            scale = w_sel(better, this_scale, scale);
            lo = w_sel(better, this_min, lo);
        }
    }
    for (int i = 0; i < n; ++i) Lv[i] = w_seli(flat, w_splati(0), Lv[i]);
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < n; ++i) L[j * n + i] = (uint8_t)Lv[i][j];
    *the_min = w_sel(flat, flat_min, -lo);
    return w_sel(flat, w_splat(0), scale);
}

// make_qx_quants (rmse_type 1, no importance weights) for 8 groups of n
// (<= 16) values, codes in [-nmax, nmax-1] stored +nmax at L[lane * n + i].
W_INLINE w_v8f w_qx_v8(int n, int nmax, const w_v8f *X, int8_t *L) {
    w_v8i Lv[16];
    w_v8f vmax = w_splat(0), amax = w_splat(0);
    for (int i = 0; i < n; ++i) {
        const w_v8f ax = w_abs(X[i]);
        const w_v8i m = ax > amax;
        amax = w_sel(m, ax, amax);
        vmax = w_sel(m, X[i], vmax);
    }
    const w_v8i zero = amax < w_splat(W_EPS);
    w_v8f iscale = w_splat((float)-nmax) / vmax;
    w_v8f sumlx = w_splat(0), suml2 = w_splat(0);
    for (int i = 0; i < n; ++i) {
        const w_v8i l = w_clamp(w_vround(iscale * X[i]), -nmax, nmax - 1);
        Lv[i] = l + w_splati(nmax);
        const w_v8f w = X[i] * X[i];
        const w_v8f lf = w_tof(l);
        sumlx += w * X[i] * lf;
        suml2 += w * lf * lf;
    }
    w_v8f scale = w_sel(suml2 != w_splat(0), sumlx / suml2, w_splat(0));
    w_v8f best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float num = -(nmax + 0.1f * is);
        iscale = w_splat(num) / vmax;
        sumlx = suml2 = w_splat(0);
        w_v8i Lt[16];
        for (int i = 0; i < n; ++i) {
            const w_v8i l = w_clamp(w_vround(iscale * X[i]), -nmax, nmax - 1);
            Lt[i] = l;
            const w_v8f w = X[i] * X[i];
            const w_v8f lf = w_tof(l);
            sumlx += w * X[i] * lf;
            suml2 += w * lf * lf;
        }
        const w_v8i better = (suml2 > w_splat(0)) & (sumlx * sumlx > best * suml2);
        for (int i = 0; i < n; ++i) Lv[i] = w_seli(better, Lt[i] + w_splati(nmax), Lv[i]);
        scale = w_sel(better, sumlx / suml2, scale);
        best = w_sel(better, scale * sumlx, best);
    }
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < n; ++i) L[j * n + i] = (int8_t)(zero[j] ? 0 : Lv[i][j]);
    return w_sel(zero, w_splat(0), scale);
}

// Q4_K and Q5_K share the scale search: 8 sub-blocks of 32 with a 6-bit scale
// and min each. Fills L (codes 0..nmax) and the d, dmin, scales[12] fields.
W_INLINE void w_k_scales_mins(const float *x, int nmax, float rmin, int nstep,
                              uint8_t *y_d, uint8_t *y_dmin, uint8_t *y_scales, uint8_t *L) {
    float mins[8], scales[8];
    w_v8f X[32], Wt[32];
    float av[8];
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        av[j] = sqrtf(sum_x2 / 32);
    }
    for (int l = 0; l < 32; ++l) {
        for (int j = 0; j < 8; ++j) {
            X[l][j] = x[32 * j + l];
            Wt[l][j] = av[j] + fabsf(x[32 * j + l]);
        }
    }
    w_v8f vmin;
    const w_v8f vsc = w_qkx2_v8(32, nmax, X, Wt, L, &vmin, rmin, 0.1f, nstep, 0);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        scales[j] = vsc[j];
        mins[j] = vmin[j];
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < W_QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)w_round(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)w_round(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            y_scales[j] = ls;
            y_scales[j + 4] = lm;
        } else {
            y_scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            y_scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            y_scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    w_put_half(y_d, max_scale / 63.f);
    w_put_half(y_dmin, max_min / 63.f);
    const float dd = w_get_half(y_d), dmn = w_get_half(y_dmin);
    for (int j = 0; j < W_QK_K / 32; ++j) {
        uint8_t sc, m;
        w_scale_min_k4(j, y_scales, &sc, &m);
        const float d = dd * sc;
        if (!d) continue;
        const float dm = dmn * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = w_round((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)w_max(0, w_min(nmax, l));
        }
    }
}

// ---- 32-element types ---------------------------------------------------------------

// Symmetric 4/5-bit blocks: the value of largest magnitude maps to -2^(bits-1).
static void w_q4_0_scalar(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q4_0_BYTES) {
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < W_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); vmax = x[j]; }
        }
        const float d = vmax / -8;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        for (int j = 0; j < W_QK / 2; j++) {
            const float a = x[j] * id;
            const float b = x[j + W_QK / 2] * id;
            const uint8_t qa = (uint8_t)w_min(15, (int8_t)(a + 8.5f));
            const uint8_t qb = (uint8_t)w_min(15, (int8_t)(b + 8.5f));
            y[2 + j] = (uint8_t)(qa | (qb << 4));
        }
    }
}

static void w_q4_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q4_1_BYTES) {
        float lo = 3.40282347e38f, hi = -3.40282347e38f;
        for (int j = 0; j < W_QK; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        w_put_half(y + 2, lo);
        for (int j = 0; j < W_QK / 2; j++) {
            const float a = (x[j] - lo) * id;
            const float b = (x[j + W_QK / 2] - lo) * id;
            const uint8_t qa = (uint8_t)w_min(15, (int8_t)(a + 0.5f));
            const uint8_t qb = (uint8_t)w_min(15, (int8_t)(b + 0.5f));
            y[4 + j] = (uint8_t)(qa | (qb << 4));
        }
    }
}

static void w_q5_0_scalar(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q5_0_BYTES) {
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < W_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); vmax = x[j]; }
        }
        const float d = vmax / -16;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        uint32_t qh = 0;
        for (int j = 0; j < W_QK / 2; j++) {
            const float a = x[j] * id;
            const float b = x[j + W_QK / 2] * id;
            const uint8_t qa = (uint8_t)w_min(31, (int8_t)(a + 16.5f));
            const uint8_t qb = (uint8_t)w_min(31, (int8_t)(b + 16.5f));
            y[6 + j] = (uint8_t)((qa & 0x0f) | ((qb & 0x0f) << 4));
            qh |= ((uint32_t)(qa & 0x10u) >> 4) << j;
            qh |= ((uint32_t)(qb & 0x10u) >> 4) << (j + W_QK / 2);
        }
        for (int k = 0; k < 4; k++) y[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

static void w_q5_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q5_1_BYTES) {
        float lo = 3.40282347e38f, hi = -3.40282347e38f;
        for (int j = 0; j < W_QK; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        w_put_half(y + 2, lo);
        uint32_t qh = 0;
        for (int j = 0; j < W_QK / 2; j++) {
            const float a = (x[j] - lo) * id;
            const float b = (x[j + W_QK / 2] - lo) * id;
            const uint8_t qa = (uint8_t)(a + 0.5f);
            const uint8_t qb = (uint8_t)(b + 0.5f);
            y[8 + j] = (uint8_t)((qa & 0x0f) | ((qb & 0x0f) << 4));
            qh |= ((uint32_t)(qa & 0x10u) >> 4) << j;
            qh |= ((uint32_t)(qb & 0x10u) >> 4) << (j + W_QK / 2);
        }
        for (int k = 0; k < 4; k++) y[4 + k] = (uint8_t)(qh >> (8 * k));
    }
}

// ---- 32-element types, 8 elements per vector step ---------------------------------------
//
// Q4_0 / Q5_0 / Q8_0: the per-element work is independent, so lanes take
// neighbouring elements; the block maximum is found exactly (max is
// order-independent) and then the first element of that magnitude supplies
// the sign, as ggml's sequential scan does.

W_INLINE w_v8f w_load8(const float *p) { w_v8f v; memcpy(&v, p, sizeof v); return v; }

// ggml's "first x with the largest |x|" (0 when the block is all zeros).
W_INLINE float w_signed_absmax(const float *x) {
    w_v8f m = w_abs(w_load8(x));
    for (int k = 8; k < W_QK; k += 8) {
        const w_v8f a = w_abs(w_load8(x + k));
        m = w_sel(a > m, a, m);
    }
    float amax = 0.0f;
    for (int j = 0; j < 8; j++) amax = m[j] > amax ? m[j] : amax;
    if (!(amax > 0.0f)) return 0.0f;
    for (int j = 0; j < W_QK; j++) if (fabsf(x[j]) == amax) return x[j];
    return 0.0f;
}

// Symmetric 4/5-bit: d = max / -2^(bits-1), q = min(2^bits - 1, (int8)(x*id + 2^(bits-1) + 0.5)).
W_INLINE void w_q4_0_body(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q4_0_BYTES) {
        if (w_has_nonfinite(x)) { w_q4_0_scalar(x, y, 1); continue; }
        const float vmax = w_signed_absmax(x);
        const float d = vmax / -8;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        for (int k = 0; k < W_QK / 2; k += 8) {
            const w_v8i qa = w_min8(__builtin_convertvector(w_load8(x + k) * w_splat(id) + w_splat(8.5f), w_v8i), 15);
            const w_v8i qb = w_min8(__builtin_convertvector(w_load8(x + k + 16) * w_splat(id) + w_splat(8.5f), w_v8i), 15);
            const w_v8i q = (qa & w_splati(0xff)) | ((qb & w_splati(0xff)) << 4);
            for (int j = 0; j < 8; j++) y[2 + k + j] = (uint8_t)q[j];
        }
    }
}

W_INLINE void w_q5_0_body(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q5_0_BYTES) {
        if (w_has_nonfinite(x)) { w_q5_0_scalar(x, y, 1); continue; }
        const float vmax = w_signed_absmax(x);
        const float d = vmax / -16;
        const float id = d ? 1.0f / d : 0.0f;
        w_put_half(y, d);
        uint32_t qh = 0;
        for (int k = 0; k < W_QK / 2; k += 8) {
            const w_v8i qa = w_min8(__builtin_convertvector(w_load8(x + k) * w_splat(id) + w_splat(16.5f), w_v8i), 31);
            const w_v8i qb = w_min8(__builtin_convertvector(w_load8(x + k + 16) * w_splat(id) + w_splat(16.5f), w_v8i), 31);
            for (int j = 0; j < 8; j++) {
                const uint32_t a = (uint32_t)qa[j] & 0xffu, b = (uint32_t)qb[j] & 0xffu;
                y[6 + k + j] = (uint8_t)((a & 0x0f) | ((b & 0x0f) << 4));
                qh |= ((a & 0x10u) >> 4) << (k + j);
                qh |= ((b & 0x10u) >> 4) << (k + j + W_QK / 2);
            }
        }
        for (int k = 0; k < 4; k++) y[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

// Q8_0: amax = max |x|, d = amax / 127, q = roundf(x * id) (halves away from zero).
W_INLINE void w_q8_0_body(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += W_QK, y += W_Q8_0_BYTES) {
        if (w_has_nonfinite(x)) { ek_quantize_row_q8_0_ref(x, y, W_QK); continue; }
        w_v8f m = w_abs(w_load8(x));
        for (int k = 8; k < W_QK; k += 8) {
            const w_v8f a = w_abs(w_load8(x + k));
            m = w_sel(a > m, a, m);
        }
        float amax = 0.0f;
        for (int j = 0; j < 8; j++) amax = m[j] > amax ? m[j] : amax;
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        if (!(id <= 3.40282347e38f)) { ek_quantize_row_q8_0_ref(x, y, W_QK); continue; }
        w_put_half(y, d);
        for (int k = 0; k < W_QK; k += 8) {
            const w_v8f v = w_load8(x + k) * w_splat(id);
            // roundf: truncate, then step away from zero when the dropped part is >= 1/2
            // (v - trunc(v) is exact for |v| < 2^23).
            const w_v8i t = __builtin_convertvector(v, w_v8i);
            const w_v8f frac = v - w_tof(t);
            const w_v8i up = frac >= w_splat(0.5f);
            const w_v8i down = frac <= w_splat(-0.5f);
            const w_v8i q = t - up + down;          // masks are -1 where true
            for (int j = 0; j < 8; j++) y[2 + k + j] = (uint8_t)(int8_t)q[j];
        }
    }
}

// ---- K types ----------------------------------------------------------------------------

W_INLINE void w_q4_K_body(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[W_QK_K];
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q4_K_BYTES) {
        memset(y + 4, 0, 12);
        w_k_scales_mins(x, 15, -1.f, 20, y, y + 2, y + 4, L);
        uint8_t *q = y + 16;
        for (int j = 0; j < W_QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

W_INLINE void w_q5_K_body(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[W_QK_K];
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q5_K_BYTES) {
        memset(y + 4, 0, 12);
        w_k_scales_mins(x, 31, -0.5f, 15, y, y + 2, y + 4, L);
        uint8_t *qh = y + 16;
        uint8_t *ql = y + 48;
        memset(qh, 0, W_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < W_QK_K; n += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
            ql += 32;
        }
    }
}

W_INLINE void w_q6_K_body(const float *x, uint8_t *y, int64_t nb) {
    int8_t L[W_QK_K];
    float scales[W_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q6_K_BYTES) {
        uint8_t *ql = y, *qh = y + 128;
        int8_t *sc = (int8_t *)(y + 192);
        uint8_t *yd = y + 208;
        float max_scale = 0, max_abs_scale = 0;
        for (int half = 0; half < 2; ++half) {
            w_v8f X[16];
            for (int i = 0; i < 16; ++i)
                for (int j = 0; j < 8; ++j) X[i][j] = x[16 * (8 * half + j) + i];
            const w_v8f sc8 = w_qx_v8(16, 32, X, L + 128 * half);
            for (int j = 0; j < 8; ++j) scales[8 * half + j] = sc8[j];
        }
        for (int ib = 0; ib < W_QK_K / 16; ++ib) {
            const float scale = scales[ib];
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scale; }
        }
        if (max_abs_scale < W_EPS) {
            memset(y, 0, W_Q6_K_BYTES);
            w_put_half(yd, 0.f);
            continue;
        }
        const float iscale = -128.f / max_scale;
        w_put_half(yd, 1 / iscale);
        for (int ib = 0; ib < W_QK_K / 16; ++ib) sc[ib] = (int8_t)w_min(127, w_round(iscale * scales[ib]));
        const float dd = w_get_half(yd);
        for (int j = 0; j < W_QK_K / 16; ++j) {
            const float d = dd * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = w_round(x[16 * j + ii] / d);
                l = w_max(-32, w_min(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        for (int j = 0; j < W_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

W_INLINE void w_q2_K_body(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[W_QK_K];
    float mins[W_QK_K / 16], scales[W_QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q2_K_BYTES) {
        uint8_t *ysc = y, *qs = y + 16, *yd = y + 80, *ydmin = y + 82;
        float max_scale = 0, max_min = 0;
        for (int half = 0; half < 2; ++half) {
            w_v8f X[16], Wt[16], vmin;
            for (int i = 0; i < 16; ++i)
                for (int j = 0; j < 8; ++j) {
                    X[i][j] = x[16 * (8 * half + j) + i];
                    Wt[i][j] = fabsf(X[i][j]);
                }
            const w_v8f sc8 = w_qkx2_v8(16, 3, X, Wt, L + 128 * half, &vmin, -0.5f, 0.1f, 15, 1);
            for (int j = 0; j < 8; ++j) {
                scales[8 * half + j] = sc8[j];
                mins[8 * half + j] = vmin[j];
            }
        }
        for (int j = 0; j < W_QK_K / 16; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < W_QK_K / 16; ++j) ysc[j] = (uint8_t)w_round(iscale * scales[j]);
            w_put_half(yd, max_scale / q4scale);
        } else {
            for (int j = 0; j < W_QK_K / 16; ++j) ysc[j] = 0;
            w_put_half(yd, 0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < W_QK_K / 16; ++j) ysc[j] |= (uint8_t)(w_round(iscale * mins[j]) << 4);
            w_put_half(ydmin, max_min / q4scale);
        } else {
            w_put_half(ydmin, 0.f);
        }
        const float dd = w_get_half(yd), dmn = w_get_half(ydmin);
        for (int j = 0; j < W_QK_K / 16; ++j) {
            const float d = dd * (ysc[j] & 0xF);
            if (!d) continue;
            const float dm = dmn * (ysc[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                const int l = w_round((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)w_max(0, w_min(3, l));
            }
        }
        for (int j = 0; j < W_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }
}

static void w_q3_K(const float *x, uint8_t *y, int64_t nb) {
    int8_t L[W_QK_K];
    float scales[W_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q3_K_BYTES) {
        uint8_t *hmask = y, *qs = y + 32, *ysc = y + 96, *yd = y + 108;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < W_QK_K / 16; ++j) {
            scales[j] = w_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float scale = fabsf(scales[j]);
            if (scale > amax) { amax = scale; max_scale = scales[j]; }
        }
        memset(ysc, 0, 12);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < W_QK_K / 16; ++j) {
                int8_t l = (int8_t)w_round(iscale * scales[j]);
                l = (int8_t)(w_max(-32, w_min(31, l)) + 32);
                if (j < 8) {
                    ysc[j] = (uint8_t)(l & 0xF);
                } else {
                    ysc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                }
                l >>= 4;
                ysc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            w_put_half(yd, 1 / iscale);
        } else {
            w_put_half(yd, 0.f);
        }
        const float dd = w_get_half(yd);
        for (int j = 0; j < W_QK_K / 16; ++j) {
            int8_t sc = (int8_t)(j < 8 ? ysc[j] & 0xF : ysc[j - 8] >> 4);
            sc = (int8_t)((sc | (((ysc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
            const float d = dd * sc;
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = w_round(x[16 * j + ii] / d);
                l = w_max(-4, w_min(3, l));
                L[16 * j + ii] = (int8_t)(l + 4);
            }
        }
        memset(hmask, 0, W_QK_K / 8);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < W_QK_K; ++j) {
            if (L[j] > 3) {
                hmask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == W_QK_K / 8) { m = 0; hm <<= 1; }
        }
        for (int j = 0; j < W_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }
}

// Each vectorized quantizer is compiled twice: for the baseline ISA and with AVX2
// (wider lanes; still no fma). Both give the same bytes.
#define W_VARIANTS(name)                                                                   \
    static void name##_base(const float *x, uint8_t *y, int64_t nb) { name##_body(x, y, nb); } \
    __attribute__((target("avx2"))) static void name##_avx2(const float *x, uint8_t *y, int64_t nb) { \
        name##_body(x, y, nb);                                                              \
    }                                                                                       \
    static void name(const float *x, uint8_t *y, int64_t nb) {                              \
        if (w_has_avx2()) name##_avx2(x, y, nb); else name##_base(x, y, nb);               \
    }

static int w_has_avx2(void) {
#if (defined(__x86_64__) || defined(__i386__)) && !defined(EKW_FORCE_BASELINE)
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
#else
    return 0;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
W_VARIANTS(w_q4_0)
W_VARIANTS(w_q5_0)
W_VARIANTS(w_q8_0)
W_VARIANTS(w_q2_K)
W_VARIANTS(w_q4_K)
W_VARIANTS(w_q5_K)
W_VARIANTS(w_q6_K)
#else
static void w_q4_0(const float *x, uint8_t *y, int64_t nb) { w_q4_0_body(x, y, nb); }
static void w_q5_0(const float *x, uint8_t *y, int64_t nb) { w_q5_0_body(x, y, nb); }
static void w_q8_0(const float *x, uint8_t *y, int64_t nb) { w_q8_0_body(x, y, nb); }
static void w_q2_K(const float *x, uint8_t *y, int64_t nb) { w_q2_K_body(x, y, nb); }
static void w_q4_K(const float *x, uint8_t *y, int64_t nb) { w_q4_K_body(x, y, nb); }
static void w_q5_K(const float *x, uint8_t *y, int64_t nb) { w_q5_K_body(x, y, nb); }
static void w_q6_K(const float *x, uint8_t *y, int64_t nb) { w_q6_K_body(x, y, nb); }
#endif

// ---- entry points -------------------------------------------------------------------------

typedef void (*w_row_fn)(const float *x, uint8_t *y, int64_t nb);


static int w_lookup(int type, w_row_fn *fn, int *block, int *bytes) {
    switch (type) {
    case 2: *fn = w_q4_0; *block = W_QK; *bytes = W_Q4_0_BYTES; return 1;
    case 3: *fn = w_q4_1; *block = W_QK; *bytes = W_Q4_1_BYTES; return 1;
    case 6: *fn = w_q5_0; *block = W_QK; *bytes = W_Q5_0_BYTES; return 1;
    case 7: *fn = w_q5_1; *block = W_QK; *bytes = W_Q5_1_BYTES; return 1;
    case 8: *fn = w_q8_0; *block = W_QK; *bytes = W_Q8_0_BYTES; return 1;
    case 10: *fn = w_q2_K; *block = W_QK_K; *bytes = W_Q2_K_BYTES; return 1;
    case 11: *fn = w_q3_K; *block = W_QK_K; *bytes = W_Q3_K_BYTES; return 1;
    case 12: *fn = w_q4_K; *block = W_QK_K; *bytes = W_Q4_K_BYTES; return 1;
    case 13: *fn = w_q5_K; *block = W_QK_K; *bytes = W_Q5_K_BYTES; return 1;
    case 14: *fn = w_q6_K; *block = W_QK_K; *bytes = W_Q6_K_BYTES; return 1;
    default: return 0;
    }
}

int ekw_quantize_supported(int type) {
    w_row_fn fn;
    int block, bytes;
    return w_lookup(type, &fn, &block, &bytes);
}

size_t ekw_quantize_rows(int type, const float *x, void *y, int64_t nrows, int64_t n_per_row) {
    w_row_fn fn;
    int block, bytes;
    if (!w_lookup(type, &fn, &block, &bytes) || nrows < 0 || n_per_row < 0 || n_per_row % block != 0) return 0;
    const int64_t nb = n_per_row / block;
    uint8_t *out = (uint8_t *)y;
    for (int64_t r = 0; r < nrows; r++) fn(x + r * n_per_row, out + r * nb * bytes, nb);
    return (size_t)(nrows * nb * bytes);
}
