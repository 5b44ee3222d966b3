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

// ---- 32-element types ---------------------------------------------------------------

// Symmetric 4/5-bit blocks: the value of largest magnitude maps to -2^(bits-1).
static void w_q4_0(const float *x, uint8_t *y, int64_t nb) {
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

static void w_q5_0(const float *x, uint8_t *y, int64_t nb) {
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

// ---- helpers of the K types -------------------------------------------------------------

// Symmetric codes in [-nmax, nmax-1] (stored +nmax) with a weighted
// least-squares scale, trying 19 scales around -nmax/max (ggml make_qx_quants,
// weights x^2 as rmse_type 1, no importance weights).
static float w_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float vmax = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; vmax = x[i]; }
    }
    if (amax < W_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / vmax;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = w_round(iscale * x[i]);
        l = w_max(-nmax, w_min(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / vmax;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = w_round(iscale * x[i]);
            l = w_max(-nmax, w_min(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = w_round(iscale * x[i]);
                L[i] = (int8_t)(nmax + w_max(-nmax, w_min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

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

// Asymmetric codes in [0, nmax] with scale and min fitted by weighted least
// squares over nstep+1 candidate scales (ggml make_qkx2_quants).
static float w_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                           float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float lo = x[0], hi = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -lo;
        return 0.f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = w_round(iscale * (x[i] - lo));
        L[i] = (uint8_t)w_max(0, w_min(nmax, l));
        float diff = scale * L[i] + lo - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -lo;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = w_round(iscale * (x[i] - lo));
            l = w_max(0, w_min(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                lo = this_min;
            }
        }
    }
    *the_min = -lo;
    return scale;
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

// Q4_K and Q5_K share the scale search: 8 sub-blocks of 32 with a 6-bit scale
// and min each. Fills L (codes 0..nmax) and the d, dmin, scales[12] fields.
static void w_k_scales_mins(const float *x, int nmax, float rmin, int nstep,
                            uint8_t *y_d, uint8_t *y_dmin, uint8_t *y_scales, uint8_t *L) {
    float mins[W_QK_K / 32], scales[W_QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < W_QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = w_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
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

// ---- K types ----------------------------------------------------------------------------

static void w_q4_K(const float *x, uint8_t *y, int64_t nb) {
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

static void w_q5_K(const float *x, uint8_t *y, int64_t nb) {
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

static void w_q6_K(const float *x, uint8_t *y, int64_t nb) {
    int8_t L[W_QK_K];
    float scales[W_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q6_K_BYTES) {
        uint8_t *ql = y, *qh = y + 128;
        int8_t *sc = (int8_t *)(y + 192);
        uint8_t *yd = y + 208;
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < W_QK_K / 16; ++ib) {
            const float scale = w_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
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

static void w_q2_K(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[W_QK_K], Laux[16];
    float weights[16], mins[W_QK_K / 16], scales[W_QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += W_QK_K, y += W_Q2_K_BYTES) {
        uint8_t *ysc = y, *qs = y + 16, *yd = y + 80, *ydmin = y + 82;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < W_QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = w_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
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

// ---- entry points -------------------------------------------------------------------------

typedef void (*w_row_fn)(const float *x, uint8_t *y, int64_t nb);

static void w_q8_0(const float *x, uint8_t *y, int64_t nb) { ek_quantize_row_q8_0_ref(x, y, nb * W_QK); }

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
