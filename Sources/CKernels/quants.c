// Portable block formats: dequantization, activation quantizers and dot products that
// reproduce ggml's x86 (AVX2 / AVX-512 VNNI build) arithmetic exactly. See ek_types.h.
//
// Dot-product structure shared with the SIMD files: every block yields 8 exact int32 lanes
// (lane l = the products of the bytes 4l..4l+3 of each 32-byte chunk, times their sub-block
// scale), converted to float and accumulated per lane with fma; at the end the lanes are
// summed as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) (ggml's hsum_float_8).
#pragma STDC FP_CONTRACT OFF

#include <math.h>
#include <string.h>

#include "ek_internal.h"
#include "ek_quants.h"

// ---- helpers ---------------------------------------------------------------------------

static inline float h2f(const uint8_t *p) { return ek_fp16_to_fp32(ek_load_u16(p)); }

static inline float hsum8(const float a[8]) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

// 6-bit scales and mins of Q4_K / Q5_K (ggml's get_scale_min_k4 for j = 0..7)
void ek_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            mn[j] = q[j + 4] & 63;
        } else {
            sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }
}

// 6-bit signed scales of Q3_K (already minus 32)
void ek_k3_scales(const uint8_t *q, int8_t sc[16]) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (q[j] & 0xF) : (q[j - 8] >> 4);
        const int hi = (q[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        sc[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

// ---- to_float ------------------------------------------------------------------------------

void ek_to_float_f32(const void *x, float *y, int64_t n) { memcpy(y, x, sizeof(float) * (size_t)n); }

void ek_to_float_q5_0(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 32; i++, x += 22, y += 32) {
        const float d = h2f(x);
        uint32_t qh;
        memcpy(&qh, x + 2, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = ((x[6 + j] & 0xF) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((x[6 + j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
    }
}

void ek_to_float_q5_1(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 32; i++, x += 24, y += 32) {
        const float d = h2f(x), m = h2f(x + 2);
        uint32_t qh;
        memcpy(&qh, x + 4, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = (x[8 + j] & 0xF) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x[8 + j] >> 4) | ((qh >> (j + 12)) & 0x10);
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

void ek_to_float_q8_1(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 32; i++, x += 36, y += 32) {
        const float d = h2f(x);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)x[4 + j] * d;
    }
}

void ek_to_float_q8_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 292, y += 256) {
        float d;
        memcpy(&d, x, 4);
        for (int j = 0; j < 256; j++) y[j] = d * (float)(int8_t)x[4 + j];
    }
}

void ek_to_float_q2_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 84) {
        const uint8_t *sc = x, *q = x + 16;
        const float d = h2f(x + 80), min = h2f(x + 82);
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int j = 0; j < 4; j++) {
                for (int half = 0; half < 2; half++) {
                    const uint8_t s = sc[is++];
                    const float dl = d * (float)(s & 0xF), ml = min * (float)(s >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * half] >> (2 * j)) & 3) - ml;
                }
            }
        }
    }
}

void ek_to_float_q3_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 110) {
        const uint8_t *hm = x, *q = x + 32;
        int8_t sc[16];
        ek_k3_scales(x + 96, sc);
        const float d_all = h2f(x + 108);
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int j = 0; j < 4; j++) {
                const uint8_t m = (uint8_t)(1u << (4 * h + j));
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * (float)sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (float)(((q[l] >> (2 * j)) & 3) - ((hm[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

void ek_to_float_q4_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 144) {
        const float d = h2f(x), min = h2f(x + 2);
        uint8_t sc[8], mn[8];
        ek_k4_scales(x + 4, sc, mn);
        const uint8_t *q = x + 16;
        for (int j = 0; j < 4; j++, q += 32) {
            const float d1 = d * (float)sc[2 * j], m1 = min * (float)mn[2 * j];
            const float d2 = d * (float)sc[2 * j + 1], m2 = min * (float)mn[2 * j + 1];
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void ek_to_float_q5_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 176) {
        const float d = h2f(x), min = h2f(x + 2);
        uint8_t sc[8], mn[8];
        ek_k4_scales(x + 4, sc, mn);
        const uint8_t *qh = x + 16, *q = x + 48;
        for (int j = 0; j < 4; j++, q += 32) {
            const float d1 = d * (float)sc[2 * j], m1 = min * (float)mn[2 * j];
            const float d2 = d * (float)sc[2 * j + 1], m2 = min * (float)mn[2 * j + 1];
            const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void ek_to_float_q6_K(const void *vx, float *y, int64_t n) {
    const uint8_t *x = (const uint8_t *)vx;
    for (int64_t i = 0; i < n / 256; i++, x += 210) {
        const float d = h2f(x + 208);
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

// ---- from_float ------------------------------------------------------------------------------

void ek_from_float_f32(const float *x, void *y, int64_t n) { memcpy(y, x, sizeof(float) * (size_t)n); }

// F16C's vcvtps2ph with RNE: like ek_fp32_to_fp16 but NaN keeps its payload (quietened).
static inline uint16_t f2h_hw(float f) {
    const uint32_t u = ek_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
    return ek_fp32_to_fp16(f);
}

void ek_from_float_f16_scalar(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = f2h_hw(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

void ek_from_float_bf16(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = ek_f32_bits(x[i]);
        uint16_t h;
        if ((u & 0x7fffffffu) > 0x7f800000u) h = (uint16_t)((u >> 16) | 64);
        else h = (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
        memcpy(y + 2 * i, &h, 2);
    }
}

static inline int nearest_int_ggml(float f) {
    const float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

void ek_from_float_q8_K(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += 292) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0.0f) {
            memset(y, 0, 292);
            continue;
        }
        const float iscale = -127.f / max;
        int8_t *qs = (int8_t *)(y + 4);
        for (int j = 0; j < 256; j++) {
            const int v = nearest_int_ggml(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int k = 0; k < 16; k++) s += qs[16 * j + k];
            const int16_t s16 = (int16_t)s;
            memcpy(y + 260 + 2 * j, &s16, 2);
        }
        const float d = 1 / iscale;
        memcpy(y, &d, 4);
    }
}

void ek_from_float_q8_1_scalar(const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32, y += 36) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = fabsf(x[j]);
            amax = v > amax ? v : amax;
        }
        const float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (id > 3.4028235e38f) id = 0.0f;   // as ek_quantize_row_q8_0_scalar
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            const float v = nearbyintf(x[j] * id);
            const int32_t q = (v >= -127.0f && v <= 127.0f) ? (int32_t)v : -128;
            sum += q;
            y[4 + j] = (uint8_t)(int8_t)q;
        }
        const uint16_t dh = ek_fp32_to_fp16(d), sh = ek_fp32_to_fp16(d * (float)sum);
        memcpy(y, &dh, 2);
        memcpy(y + 2, &sh, 2);
    }
}

// ---- dot products ----------------------------------------------------------------------------

// lane sums of 32 (weight, activation) int pairs: lane l = sum over k in 4l..4l+3
static inline void lanes32(const int w[32], const int8_t *a, int32_t out[8]) {
    for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int k = 4 * l; k < 4 * l + 4; k++) s += w[k] * (int32_t)a[k];
        out[l] = s;
    }
}

float ek_vec_dot_q4_0_q8_0_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / 32; i++, w += 18, a += 34) {
        const float d = h2f(w) * h2f(a);
        int q[32];
        for (int j = 0; j < 16; j++) { q[j] = (w[2 + j] & 0xF) - 8; q[j + 16] = (w[2 + j] >> 4) - 8; }
        int32_t s[8];
        lanes32(q, (const int8_t *)(a + 2), s);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return hsum8(acc);
}

float ek_vec_dot_q5_0_q8_0_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / 32; i++, w += 22, a += 34) {
        const float d = h2f(w) * h2f(a);
        uint32_t qh;
        memcpy(&qh, w + 2, 4);
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = ((w[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
            q[j + 16] = ((w[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
        }
        int32_t s[8];
        lanes32(q, (const int8_t *)(a + 2), s);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return hsum8(acc);
}

float ek_vec_dot_q4_1_q8_1_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 20, a += 36) {
        const float d = h2f(w) * h2f(a);
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);   // GCC contracts summs += m*s in ggml
        int q[32];
        for (int j = 0; j < 16; j++) { q[j] = w[4 + j] & 0xF; q[j + 16] = w[4 + j] >> 4; }
        int32_t s[8];
        lanes32(q, (const int8_t *)(a + 4), s);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return hsum8(acc) + summs;
}

float ek_vec_dot_q5_1_q8_1_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, w += 24, a += 36) {
        const float d = h2f(w) * h2f(a);
        summs = fmaf(h2f(w + 2), h2f(a + 2), summs);
        uint32_t qh;
        memcpy(&qh, w + 4, 4);
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (w[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            q[j + 16] = (w[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        }
        int32_t s[8];
        lanes32(q, (const int8_t *)(a + 4), s);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return hsum8(acc) + summs;
}

static inline float q8k_d(const uint8_t *a) { float d; memcpy(&d, a, 4); return d; }
static inline int32_t q8k_bsum(const uint8_t *a, int j) { int16_t s; memcpy(&s, a + 260 + 2 * j, 2); return s; }

// Adds the lanes of chunk c (32 weights q[] with scales s_lo for bytes 0..15, s_hi for 16..31)
static inline void chunk_lanes(int32_t sumi[8], const int q[32], const int8_t *a, int s_lo, int s_hi) {
    int32_t s[8];
    lanes32(q, a, s);
    for (int l = 0; l < 8; l++) sumi[l] += s[l] * (l < 4 ? s_lo : s_hi);
}

float ek_vec_dot_q2_K_q8_K_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / 256; i++, w += 84, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w + 80);
        const float dmin = -ad * h2f(w + 82);
        const uint8_t *sc = w;
        for (int l = 0; l < 8; l++) {
            const int32_t p = (sc[2 * l] >> 4) * q8k_bsum(a, 2 * l) + (sc[2 * l + 1] >> 4) * q8k_bsum(a, 2 * l + 1);
            acc[l] = fmaf(dmin, (float)p, acc[l]);
        }
        int32_t sumi[8] = {0};
        for (int c = 0; c < 8; c++) {
            const int h = c >> 2, k = c & 3;
            int q[32];
            for (int b = 0; b < 32; b++) q[b] = (w[16 + 32 * h + b] >> (2 * k)) & 3;
            chunk_lanes(sumi, q, (const int8_t *)(a + 4 + 32 * c), sc[2 * c] & 0xF, sc[2 * c + 1] & 0xF);
        }
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    return hsum8(acc);
}

float ek_vec_dot_q3_K_q8_K_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / 256; i++, w += 110, a += 292) {
        const float d = q8k_d(a) * h2f(w + 108);
        int8_t sc[16];
        ek_k3_scales(w + 96, sc);
        int32_t sumi[8] = {0};
        for (int c = 0; c < 8; c++) {
            const int h = c >> 2, k = c & 3;
            int q[32];
            for (int b = 0; b < 32; b++)
                q[b] = ((w[32 + 32 * h + b] >> (2 * k)) & 3) - ((w[b] >> c) & 1 ? 0 : 4);
            chunk_lanes(sumi, q, (const int8_t *)(a + 4 + 32 * c), sc[2 * c], sc[2 * c + 1]);
        }
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    return hsum8(acc);
}

float ek_vec_dot_q4_K_q8_K_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0}, accm[4] = {0};
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w);
        const float dmin = -ad * h2f(w + 2);
        uint8_t sc[8], mn[8];
        ek_k4_scales(w + 4, sc, mn);
        for (int k = 0; k < 4; k++) {
            const int32_t s0 = q8k_bsum(a, 4 * k) + q8k_bsum(a, 4 * k + 1);
            const int32_t s1 = q8k_bsum(a, 4 * k + 2) + q8k_bsum(a, 4 * k + 3);
            accm[k] = fmaf(dmin, (float)(mn[2 * k] * s0 + mn[2 * k + 1] * s1), accm[k]);
        }
        int32_t sumi[8] = {0};
        for (int c = 0; c < 8; c++) {
            const uint8_t *q4 = w + 16 + 32 * (c >> 1);
            int q[32];
            for (int b = 0; b < 32; b++) q[b] = (c & 1) ? (q4[b] >> 4) : (q4[b] & 0xF);
            chunk_lanes(sumi, q, (const int8_t *)(a + 4 + 32 * c), sc[c], sc[c]);
        }
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

// Q4_K as llama.cpp multiplies it after repacking (q4_K_8x8_q8_K; see ek_types.h). Per
// superblock, exact integers: for sub-block j (32 values) S_j = sum q4*q8 and B_j = its bsum;
// per pair k of sub-blocks I_k = sc[2k]*S_2k + sc[2k+1]*S_2k+1, M_k = mn[2k]*B_2k + mn[2k+1]*B_2k+1.
static void q4k_rp_ints(const uint8_t *w, const uint8_t *a, int32_t I[4], int32_t M[4]) {
    uint8_t sc[8], mn[8];
    ek_k4_scales(w + 4, sc, mn);
    for (int k = 0; k < 4; k++) {
        const uint8_t *q4 = w + 16 + 32 * k;
        const int8_t *q8 = (const int8_t *)(a + 4 + 64 * k);
        int32_t s0 = 0, s1 = 0;
        for (int b = 0; b < 32; b++) {
            s0 += (q4[b] & 0xF) * q8[b];
            s1 += (q4[b] >> 4) * q8[32 + b];
        }
        I[k] = sc[2 * k] * s0 + sc[2 * k + 1] * s1;
        M[k] = mn[2 * k] * (q8k_bsum(a, 4 * k) + q8k_bsum(a, 4 * k + 1)) +
               mn[2 * k + 1] * (q8k_bsum(a, 4 * k + 2) + q8k_bsum(a, 4 * k + 3));
    }
}

// ggml_gemv_q4_K_8x8_q8_K: one fma per superblock for the scales and one for the mins
float ek_vec_dot_q4_K_q8_K_rp_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        const float ad = q8k_d(a);
        int32_t I[4], M[4];
        q4k_rp_ints(w, a, I, M);
        acc = fmaf((float)(I[0] + I[1] + I[2] + I[3]), h2f(w) * ad, acc);
        accm = fmaf((float)(M[0] + M[1] + M[2] + M[3]), h2f(w + 2) * ad, accm);
    }
    return acc - accm;
}

// ggml_gemm_q4_K_8x8_q8_K: one fma per pair of sub-blocks (4 per superblock), in order
float ek_vec_dot_q4_K_q8_K_rp4_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, w += 144, a += 292) {
        const float ad = q8k_d(a);
        const float dd = h2f(w) * ad, dm = h2f(w + 2) * ad;
        int32_t I[4], M[4];
        q4k_rp_ints(w, a, I, M);
        for (int k = 0; k < 4; k++) {
            acc = fmaf((float)I[k], dd, acc);
            accm = fmaf((float)M[k], dm, accm);
        }
    }
    return acc - accm;
}

float ek_vec_dot_q5_K_q8_K_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, w += 176, a += 292) {
        const float ad = q8k_d(a);
        const float d = ad * h2f(w);
        const float dmin = -ad * h2f(w + 2);
        uint8_t sc[8], mn[8];
        ek_k4_scales(w + 4, sc, mn);
        int32_t pm = 0;
        for (int j = 0; j < 8; j++) pm += mn[j] * (q8k_bsum(a, 2 * j) + q8k_bsum(a, 2 * j + 1));
        summs = fmaf(dmin, (float)pm, summs);   // contracted by GCC in ggml
        int32_t sumi[8] = {0};
        for (int c = 0; c < 8; c++) {
            const uint8_t *q5 = w + 48 + 32 * (c >> 1), *qh = w + 16;
            int q[32];
            for (int b = 0; b < 32; b++)
                q[b] = ((c & 1) ? (q5[b] >> 4) : (q5[b] & 0xF)) + (((qh[b] >> c) & 1) << 4);
            chunk_lanes(sumi, q, (const int8_t *)(a + 4 + 32 * c), sc[c], sc[c]);
        }
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    return hsum8(acc) + summs;
}

float ek_vec_dot_q6_K_q8_K_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / 256; i++, w += 210, a += 292) {
        const float d = q8k_d(a) * h2f(w + 208);
        const int8_t *sc = (const int8_t *)(w + 192);
        int32_t sumi[8] = {0};
        for (int c = 0; c < 8; c++) {
            const int h = c >> 2, k = c & 3;
            const uint8_t *ql = w + 64 * h + 32 * (k & 1), *qh = w + 128 + 32 * h;
            int q[32];
            for (int b = 0; b < 32; b++)
                q[b] = ((k < 2) ? (ql[b] & 0xF) : (ql[b] >> 4)) | (((qh[b] >> (2 * k)) & 3) << 4);
            chunk_lanes(sumi, q, (const int8_t *)(a + 4 + 32 * c), sc[2 * c], sc[2 * c + 1]);
        }
        for (int l = 0; l < 8; l++) {
            const int32_t sub = (q8k_bsum(a, 2 * l) * sc[2 * l] + q8k_bsum(a, 2 * l + 1) * sc[2 * l + 1]) * 32;
            acc[l] = fmaf(d, (float)(sumi[l] - sub), acc[l]);
        }
    }
    return hsum8(acc);
}

// ggml's _mm512_reduce_add_ps (GCC): halves, then quarters, then (0+2)+(1+3)
float ek_hsum16_ggml(const float v[16]) {
    float t3[8], t6[4];
    for (int k = 0; k < 8; k++) t3[k] = v[k + 8] + v[k];
    for (int k = 0; k < 4; k++) t6[k] = t3[k + 4] + t3[k];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// ggml_vec_dot_f16 / _f32 with AVX-512: 4 accumulators of 16 lanes over steps of 64,
// fma; sum[0]+=sum[2], sum[1]+=sum[3], sum[0]+=sum[1]; reduce; leftovers.
float ek_vec_dot_f16_f16_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float s[4][16] = {{0}};
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) {
                const int64_t e = i + 16 * j + l;
                s[j][l] = fmaf(h2f(w + 2 * e), h2f(a + 2 * e), s[j][l]);
            }
    for (int l = 0; l < 16; l++) {
        s[0][l] = s[0][l] + s[2][l];
        s[1][l] = s[1][l] + s[3][l];
        s[0][l] = s[0][l] + s[1][l];
    }
    double sumf = (double)ek_hsum16_ggml(s[0]);
    for (int64_t i = np; i < n; i++) sumf += (double)(h2f(w + 2 * i) * h2f(a + 2 * i));
    return (float)sumf;
}

float ek_vec_dot_f32_f32_scalar(int64_t n, const void *vw, const void *va) {
    const float *w = (const float *)vw, *a = (const float *)va;
    float s[4][16] = {{0}};
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) s[j][l] = fmaf(w[i + 16 * j + l], a[i + 16 * j + l], s[j][l]);
    for (int l = 0; l < 16; l++) {
        s[0][l] = s[0][l] + s[2][l];
        s[1][l] = s[1][l] + s[3][l];
        s[0][l] = s[0][l] + s[1][l];
    }
    return ek_f32_tail_ggml(w, a, np, n, ek_hsum16_ggml(s[0]));
}

// ggml's leftover loop `sumf += x[i]*y[i]` as GCC vectorized it: products of 16 and then 8
// at a time rounded separately and added in order, the last (n - np) % 8 as fma.
float ek_f32_tail_ggml(const float *w, const float *a, int64_t i, int64_t n, float sumf) {
    const int64_t rem = n - i;
    const int64_t plain = rem / 16 * 16 + ((rem % 16) >= 8 ? 8 : 0);
    for (const int64_t e = i + plain; i < e; i++) sumf = sumf + w[i] * a[i];
    for (; i < n; i++) sumf = fmaf(w[i], a[i], sumf);
    return sumf;
}

// vdpbf16ps, per lane: acc += x[2i+1]*y[2i+1], then acc += x[2i]*y[2i] (each product exact,
// each sum rounded to nearest even; denormal inputs/outputs flushed to zero).
static inline float ftz(float f) { return (ek_f32_bits(f) & 0x7f800000u) == 0 ? ek_bits_f32(ek_f32_bits(f) & 0x80000000u) : f; }
static inline float bf(const uint8_t *p) { return ftz(ek_bf16_to_fp32(ek_load_u16(p))); }

float ek_vec_dot_bf16_bf16_scalar(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = (const uint8_t *)vw, *a = (const uint8_t *)va;
    float c[2][16] = {{0}};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 16; l++) {
                const int64_t e = i + 32 * h + 2 * l;
                float acc = c[h][l];
                acc = ftz(acc + ftz(bf(w + 2 * (e + 1)) * bf(a + 2 * (e + 1))));
                acc = ftz(acc + ftz(bf(w + 2 * e) * bf(a + 2 * e)));
                c[h][l] = acc;
            }
    double sumf = 0;
    sumf += (double)ek_hsum16_ggml(c[0]);
    sumf += (double)ek_hsum16_ggml(c[1]);
    for (; i < n; i++)
        sumf += (double)(ek_bf16_to_fp32(ek_load_u16(w + 2 * i)) * ek_bf16_to_fp32(ek_load_u16(a + 2 * i)));
    return (float)sumf;
}
