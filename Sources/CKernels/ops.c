// Float helpers and decode-path pool tasks for the llama forward pass (see ek_ops.h).
//
// Three implementations per hot function: portable C, AVX2+FMA, AVX-512F. The SIMD ones are
// compiled for their instruction set with __attribute__((target)) and chosen at run time
// (__builtin_cpu_supports) — never called unless the CPU has the instructions.
#include "ek_ops.h"
#include "ek_kernels.h"

#include <math.h>
#include <string.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "ek_reduce16.h"
#define EK_X86 1
#else
#define EK_X86 0
#endif

// ---------------------------------------------------------------------------------------
// dispatch

enum { LVL_SCALAR = 0, LVL_AVX2 = 1, LVL_AVX512 = 2 };
static int ops_level = -1;   // chosen once; benign race (every thread computes the same)

static int ops_detect(void) {
#if EK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2"))
        return LVL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return LVL_AVX2;
#endif
    return LVL_SCALAR;
}

static inline int level(void) {
    int l = __atomic_load_n(&ops_level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = ops_detect();
        __atomic_store_n(&ops_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

const char *ek_ops_impl_name(void) {
    switch (level()) {
    case LVL_AVX512: return "avx512";
    case LVL_AVX2: return "avx2";
    default: return "scalar";
    }
}

int ek_ops_force_impl(int lvl) {
    if (lvl < LVL_SCALAR || lvl > LVL_AVX512) return -1;
    if (lvl > ops_detect()) return -1;
    __atomic_store_n(&ops_level, lvl, __ATOMIC_RELAXED);
    return 0;
}

// ---------------------------------------------------------------------------------------
// exp, the way llama.cpp's CPU backend computes it in SiLU (its vectorized expf, built on Arm's
// optimized-routines scheme): n = round(x / ln2) via the 1.5*2^23 shift, b = x - n*ln2 in two
// parts, e^b by a degree-5 polynomial evaluated as ((c5 b + c4) b^2 + (c3 b + c2)) b^2 +
// (c1 b + 1), times 2^n (|n| > 192: 0 or inf). Same constants and operation order in every
// variant below, so SwiGLU outputs match llama.cpp bit for bit (a 1-ulp difference there flips
// Q8_0 roundings of the next matrix product).
#define EXP_SHIFT 0x1.8p23f
#define EXP_LOG2E 0x1.715476p+0f
#define EXP_LN2_HI 0x1.62e4p-1f
#define EXP_LN2_LO 0x1.7f7d1cp-20f
#define EXP_C5 0x1.0e4020p-7f
#define EXP_C4 0x1.573e2ep-5f
#define EXP_C3 0x1.555e66p-3f
#define EXP_C2 0x1.fffdb6p-2f
#define EXP_C1 0x1.ffffecp-1f

static inline float exp_scalar1(float x) {
    if (x != x) return x;
    const float z = fmaf(x, EXP_LOG2E, EXP_SHIFT);
    const float n = z - EXP_SHIFT;
    const float b = fmaf(-n, EXP_LN2_LO, fmaf(-n, EXP_LN2_HI, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(EXP_C5, b, EXP_C4), u, fmaf(EXP_C3, b, EXP_C2)), u, fmaf(EXP_C1, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    return ldexpf(j, (int)n);
}

// ---------------------------------------------------------------------------------------
// portable C

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static double sumsq_scalar(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(x[i] * x[i]);
    return s;
}

static void exp_scalar(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = exp_scalar1(x[i]);
}

static float max_scalar(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// y = exp((x - m) * s), returns sum(y)
static float expsum_scalar(float *x, int64_t n, float m, float s) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = exp_scalar1((x[i] - m) * s);
        x[i] = e;
        sum += e;
    }
    return (float)sum;
}

static void silu_mul_scalar(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        out[i] = (x / (1.0f + exp_scalar1(0.0f - x))) * u[i];
    }
}

static void axpy_scalar(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// Rotation of one pair, rounded as ggml's CPU rope (as GCC compiles it, with FMA):
// x0' = fma(x0, cos, -(x1*sin)),  x1' = fma(x0, sin, x1*cos).
static void rope_scalar(float *x, int64_t j0, int64_t n_dims, const float *cs) {
    for (int64_t j = j0; j < n_dims; j += 2) {
        const float x0 = x[j], x1 = x[j + 1], c = cs[j], s = cs[n_dims + j + 1];
        const float t0 = x1 * s, t1 = x1 * c;
        x[j] = fmaf(x0, c, -t0);
        x[j + 1] = fmaf(x0, s, t1);
    }
}

#if EK_X86
// ---------------------------------------------------------------------------------------
// AVX2 + FMA

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))

T_AVX2 static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// exp on 8 lanes, same scheme and rounding as exp_scalar1. 2^n is built in the exponent field
// when every |n| <= 126 (exact); otherwise the lanes go through exp_scalar1 (ldexpf rounds
// like AVX-512's vscalefps, including subnormal results).
T_AVX2 static inline __m256 exp256(__m256 x) {
    const __m256 shift = _mm256_set1_ps(EXP_SHIFT);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(EXP_C5), b, _mm256_set1_ps(EXP_C4)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(EXP_C3), b, _mm256_set1_ps(EXP_C2))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(EXP_C1), b, _mm256_set1_ps(1.0f)));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    if (_mm256_movemask_ps(_mm256_or_ps(big, nan)) == 0) {
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    }
    float xs[8], r[8];
    _mm256_storeu_ps(xs, x);
    for (int i = 0; i < 8; i++) r[i] = exp_scalar1(xs[i]);
    return _mm256_loadu_ps(r);
}

T_AVX2 static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

T_AVX2 static double sumsq_avx2(const float *x, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        v = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    s0 = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
    double s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) s += (double)(x[i] * x[i]);
    return s;
}

T_AVX2 static void exp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = exp_scalar1(x[i]);
}

T_AVX2 static float max_avx2(const float *x, int64_t n) {
    int64_t i = 0;
    float m = x[0];
    if (n >= 8) {
        __m256 v = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i));
        __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        a = _mm_max_ps(a, _mm_movehl_ps(a, a));
        a = _mm_max_ss(a, _mm_movehdup_ps(a));
        m = _mm_cvtss_f32(a);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

T_AVX2 static float expsum_avx2(float *x, int64_t n, float m, float s) {
    __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(s), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vs));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum256(acc);
    for (; i < n; i++) {
        float e = exp_scalar1((x[i] - m) * s);
        x[i] = e;
        sum += e;
    }
    return sum;
}

T_AVX2 static void silu_mul_avx2(float *out, const float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vg = _mm256_loadu_ps(g + i);
        __m256 e = exp256(_mm256_sub_ps(zero, vg));
        __m256 r = _mm256_div_ps(vg, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(r, _mm256_loadu_ps(u + i)));
    }
    if (i < n) silu_mul_scalar(out + i, g + i, u + i, n - i);
}

T_AVX2 static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

T_AVX2 static void rope_avx2(float *x, int64_t n_dims, const float *cs) {
    // lanes j even: fma(x0, c, x1*(-s)); odd: fma(x0, s, x1*c) — see rope_scalar
    int64_t j = 0;
    for (; j + 8 <= n_dims; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        const __m256 sw = _mm256_permute_ps(v, 0xB1);          // swap adjacent pairs
        const __m256 c = _mm256_loadu_ps(cs + j), sg = _mm256_loadu_ps(cs + n_dims + j);
        const __m256 even = _mm256_fmadd_ps(v, c, _mm256_mul_ps(sw, sg));
        const __m256 odd = _mm256_fmadd_ps(sw, sg, _mm256_mul_ps(v, c));
        _mm256_storeu_ps(x + j, _mm256_blend_ps(even, odd, 0xAA));
    }
    if (j < n_dims) rope_scalar(x, j, n_dims, cs);
}

// ---------------------------------------------------------------------------------------
// AVX-512F (the element-wise loops that matter for prefill: exp, softmax, SwiGLU)

T_AVX512 static inline __m512 exp512(__m512 x) {
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(EXP_C5), b, _mm512_set1_ps(EXP_C4)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(EXP_C3), b, _mm512_set1_ps(EXP_C2))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(EXP_C1), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (big == 0) return res;
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, alt);
}

T_AVX512 static void exp_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, exp512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

T_AVX512 static float max_avx512(const float *x, int64_t n) {
    __m512 v = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) v = _mm512_max_ps(v, _mm512_loadu_ps(x + i));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        v = _mm512_mask_max_ps(v, k, v, _mm512_maskz_loadu_ps(k, x + i));
    }
    return _mm512_reduce_max_ps(v);
}

T_AVX512 static float expsum_avx512(float *x, int64_t n, float m, float s) {
    __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(s), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vs));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vs));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

T_AVX512 static void silu_mul_avx512(float *out, const float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 vg = _mm512_loadu_ps(g + i);
        __m512 e = exp512(_mm512_sub_ps(zero, vg));
        __m512 r = _mm512_div_ps(vg, _mm512_add_ps(one, e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(r, _mm512_loadu_ps(u + i)));
    }
    if (i < n) silu_mul_scalar(out + i, g + i, u + i, n - i);
}

T_AVX512 static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

T_AVX512 static void axpy_avx512(float *y, float a, const float *x, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif // EK_X86

// ---------------------------------------------------------------------------------------
// public entry points

float ek_dot_f32(const float *a, const float *b, int64_t n) {
#if EK_X86
    switch (level()) {
    case LVL_AVX512: return dot_avx512(a, b, n);
    case LVL_AVX2: return dot_avx2(a, b, n);
    }
#endif
    return dot_scalar(a, b, n);
}

void ek_rmsnorm_f32(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss;
#if EK_X86
    if (level() >= LVL_AVX2) ss = sumsq_avx2(x, n); else
#endif
    ss = sumsq_scalar(x, n);
    const float mean = (float)(ss / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

void ek_axpy_f32(float *y, float a, const float *x, int64_t n) {
#if EK_X86
    switch (level()) {
    case LVL_AVX512: axpy_avx512(y, a, x, n); return;
    case LVL_AVX2: axpy_avx2(y, a, x, n); return;
    }
#endif
    axpy_scalar(y, a, x, n);
}

void ek_add_f32(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void ek_scale_f32(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void ek_exp_f32(float *y, const float *x, int64_t n) {
#if EK_X86
    switch (level()) {
    case LVL_AVX512: exp_avx512(y, x, n); return;
    case LVL_AVX2: exp_avx2(y, x, n); return;
    }
#endif
    exp_scalar(y, x, n);
}

void ek_softmax_f32(float *x, int64_t n, float scale) {
    if (n <= 0) return;
    float m, sum;
#if EK_X86
    int l = level();
    if (l == LVL_AVX512) {
        m = max_avx512(x, n);
        sum = expsum_avx512(x, n, m, scale);
    } else if (l == LVL_AVX2) {
        m = max_avx2(x, n);
        sum = expsum_avx2(x, n, m, scale);
    } else
#endif
    {
        m = max_scalar(x, n);
        sum = expsum_scalar(x, n, m, scale);
    }
    // scale > 0, so max(x*scale) = max(x)*scale; the max term contributes exp(0) = 1: sum >= 1.
    ek_scale_f32(x, 1.0f / sum, n);
}

void ek_silu_mul_f32(float *out, const float *gate, const float *up, int64_t n) {
#if EK_X86
    switch (level()) {
    case LVL_AVX512: silu_mul_avx512(out, gate, up, n); return;
    case LVL_AVX2: silu_mul_avx2(out, gate, up, n); return;
    }
#endif
    silu_mul_scalar(out, gate, up, n);
}

void ek_rope_cache(float *cs, int64_t pos, int64_t n_dims, float base, float freq_scale,
                   const float *freq_factors) {
    const float theta_scale = powf(base, -2.0f / (float)n_dims);
    float theta_base = (float)pos;
    for (int64_t i = 0; i < n_dims / 2; i++) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float theta = freq_scale * (theta_base / ff);
        const float c = cosf(theta), s = sinf(theta);
        cs[2 * i] = c;
        cs[2 * i + 1] = c;
        cs[n_dims + 2 * i] = -s;
        cs[n_dims + 2 * i + 1] = s;
        theta_base *= theta_scale;
    }
}

void ek_rope_normal(float *x, int64_t n_heads, int64_t head_stride, int64_t n_dims,
                    const float *cs) {
#if EK_X86
    if (level() >= LVL_AVX2) {
        for (int64_t h = 0; h < n_heads; h++) rope_avx2(x + h * head_stride, n_dims, cs);
        return;
    }
#endif
    for (int64_t h = 0; h < n_heads; h++) rope_scalar(x + h * head_stride, 0, n_dims, cs);
}

// ---------------------------------------------------------------------------------------
// f16 helpers and the llama.cpp-compatible attention
//
// Three f16 dot products, each reproducing one ggml routine's grouping of the float sums
// (products of two halves are exact in float, so only the grouping of the sums matters):
//  - "vec": ggml_vec_dot_f16 on AVX-512: 4 accumulators of 16 lanes over steps of 64 (fma),
//    combined (a0+a2)+(a1+a3), then 16 lanes -> 8 -> 4 -> (0+2)+(1+3); elements past the last
//    multiple of 64 are added in double (pad = 0) or, for rows ggml pads with zeros (the
//    probability row of a 256-cell cache view), go through one more zero-padded step (pad = 1).
//  - "seq": llamafile tinyBLAS (batches of 2+ tokens): one 16-lane fma chain over chunks of
//    16 (last chunk zero-padded), then the same 16-lane tree.
// reduce16 is GCC's _mm512_reduce_add_ps: hi8+lo8, hi4+lo4, (0+2)+(1+3).

static inline float h2f(uint16_t h) { return ek_fp16_to_fp32(h); }
static inline uint16_t f2h(float f) { return ek_fp32_to_fp16(f); }

static inline float reduce16_scalar(const float a[16]) {
    float t3[8], t6[4];
    for (int l = 0; l < 8; l++) t3[l] = a[l + 8] + a[l];
    for (int l = 0; l < 4; l++) t6[l] = t3[l + 4] + t3[l];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

static float dotv_f16_scalar(const uint16_t *x, const uint16_t *y, int64_t n, int pad) {
    float lane[4][16];
    memset(lane, 0, sizeof(lane));
    const int64_t np = pad ? n : (n & ~(int64_t)63);
    for (int64_t i = 0; i < np; i++)
        lane[(i & 63) >> 4][i & 15] = fmaf(h2f(x[i]), h2f(y[i]), lane[(i & 63) >> 4][i & 15]);
    float a[16];
    for (int l = 0; l < 16; l++) a[l] = (lane[0][l] + lane[2][l]) + (lane[1][l] + lane[3][l]);
    double sum = (double)reduce16_scalar(a);
    for (int64_t i = np; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

static float dots_f16_scalar(const uint16_t *x, const uint16_t *y, int64_t n) {
    float acc[16];
    memset(acc, 0, sizeof(acc));
    for (int64_t i = 0; i < n; i++) acc[i & 15] = fmaf(h2f(x[i]), h2f(y[i]), acc[i & 15]);
    return reduce16_scalar(acc);
}

// y = f16(fma(x, v, y)) element-wise
static void mad_f16_scalar(uint16_t *y, const uint16_t *x, float v, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f2h(fmaf(h2f(x[i]), v, h2f(y[i])));
}

static void scale_f16_scalar(uint16_t *y, float v, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f2h(h2f(y[i]) * v);
}

static void f32_to_f16_scalar(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f2h(x[i]);
}

// Softmax over scores s[0..<n] (already scaled) the way ggml_compute_forward_soft_max_f32 does
// it on AVX-512: e = exp(s - max) with the vectorized exp, the sum in double of per-16-block
// float reductions (masked cells contribute exact zeros), then e * (float)(1/sum), rounded to
// halves into p[0..<roundup(n,16)] (zeros past n).
static void softmax_f16_scalar(float *s, int64_t n, uint16_t *p) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = s[i] > m ? s[i] : m;
    const int64_t n16 = (n + 15) & ~(int64_t)15;
    float e[16];
    double sum = 0;
    // two passes: the sum first, then (recomputing the same e) scale and round
    for (int64_t b = 0; b < n16; b += 16) {
        for (int l = 0; l < 16; l++) e[l] = b + l < n ? exp_scalar1(s[b + l] - m) : 0.0f;
        sum += (double)reduce16_scalar(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n16; i++) p[i] = i < n ? f2h(exp_scalar1(s[i] - m) * inv) : 0;
}

#if EK_X86
#define LDH512(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

T_AVX512 static inline float reduce16_avx512(__m512 v) {
    __m256 t3 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    __m128 t8 = _mm_add_ps(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

T_AVX512 static inline __m512 ldh512_part(const uint16_t *p, int64_t n) {   // n in 0..16
    const __mmask16 k = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
}

T_AVX512 static float dotv_f16_avx512(const uint16_t *x, const uint16_t *y, int64_t n, int pad) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64) {
        s0 = _mm512_fmadd_ps(LDH512(x + i), LDH512(y + i), s0);
        s1 = _mm512_fmadd_ps(LDH512(x + i + 16), LDH512(y + i + 16), s1);
        s2 = _mm512_fmadd_ps(LDH512(x + i + 32), LDH512(y + i + 32), s2);
        s3 = _mm512_fmadd_ps(LDH512(x + i + 48), LDH512(y + i + 48), s3);
    }
    int64_t done = np;
    if (pad && np < n) {
        const int64_t r = n - np;
        s0 = _mm512_fmadd_ps(ldh512_part(x + np, r), ldh512_part(y + np, r), s0);
        if (r > 16) s1 = _mm512_fmadd_ps(ldh512_part(x + np + 16, r - 16), ldh512_part(y + np + 16, r - 16), s1);
        if (r > 32) s2 = _mm512_fmadd_ps(ldh512_part(x + np + 32, r - 32), ldh512_part(y + np + 32, r - 32), s2);
        if (r > 48) s3 = _mm512_fmadd_ps(ldh512_part(x + np + 48, r - 48), ldh512_part(y + np + 48, r - 48), s3);
        done = n;
    }
    double sum = (double)reduce16_avx512(_mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
    for (int64_t i = done; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

T_AVX512 static float dots_f16_avx512(const uint16_t *x, const uint16_t *y, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(LDH512(x + i), LDH512(y + i), acc);
    if (i < n) acc = _mm512_fmadd_ps(ldh512_part(x + i, n - i), ldh512_part(y + i, n - i), acc);
    return reduce16_avx512(acc);
}

T_AVX512 static void softmax_f16_avx512(float *s, int64_t n, uint16_t *p);
#define softmax_f16_avx512_fwd softmax_f16_avx512

// The llama.cpp attention (EK_ATTN_GGML_VEC: dotv_f16_avx512; seq, i.e. EK_ATTN_GGML_TINYBLAS:
// dots_f16_avx512; then softmax_f16_avx512) of the G query heads that share one KV head, for one
// token, as ek_attn_row_ext computes each head one dot at a time, bit for bit: 16 scores and 16
// output dimensions at a time, each K/V chunk converted once for the G heads. Needs hd % 64 == 0
// and hd <= 256. Scratch per head (EK_ATTN_GROUP_SCRATCH(kv_len) floats): n_pos + 64 floats of
// scores, roundup(n_pos, 64) halves of probabilities, roundup(n_pos, 64) floats of them.
#define EK_ATTN_HEAD_SCRATCH(kv_len) (3 * (kv_len) + 256)
static inline __attribute__((always_inline)) void attn_group_body(
    const float *q, int64_t q_head_stride, const uint16_t *k, const uint16_t *vt, int64_t kv_len, int64_t n_pos,
    int64_t hd, float scale, float softcap, int seq, float *scratch, float *out, int64_t out_head_stride, const int G);

T_AVX512 static inline __attribute__((always_inline)) void attn_group_body(
    const float *q, int64_t q_head_stride, const uint16_t *k, const uint16_t *vt, int64_t kv_len, int64_t n_pos,
    int64_t hd, float scale, float softcap, int seq, float *scratch, float *out, int64_t out_head_stride, const int G) {
    const int64_t hs = EK_ATTN_HEAD_SCRATCH(kv_len);
    float qf[8][256] __attribute__((aligned(64)));   // q rounded to halves, as floats
    for (int g = 0; g < G; g++) {
        uint16_t qh[256];
        ek_f32_to_f16_row(q + g * q_head_stride, qh, hd);
        for (int64_t c = 0; c < hd; c += 16) _mm512_store_ps(&qf[g][c], LDH512(qh + c));
    }
    __m512 V[8][16];
    // scores
    for (int64_t j0 = 0; j0 < n_pos; j0 += 16) {
        const int64_t m = n_pos - j0 < 16 ? n_pos - j0 : 16;
        for (int64_t kk = 0; kk < 16; kk++) {
            if (kk >= m) {
                for (int g = 0; g < G; g++) V[g][kk] = _mm512_setzero_ps();
                continue;
            }
            const uint16_t *x = k + (j0 + kk) * hd;
            __m512 a[8][4];
            for (int g = 0; g < G; g++)
                for (int c = 0; c < 4; c++) a[g][c] = _mm512_setzero_ps();
            if (seq) {
                for (int64_t i = 0; i < hd; i += 16) {
                    const __m512 kc = LDH512(x + i);
                    for (int g = 0; g < G; g++) a[g][0] = _mm512_fmadd_ps(kc, _mm512_load_ps(&qf[g][i]), a[g][0]);
                }
                for (int g = 0; g < G; g++) V[g][kk] = a[g][0];
            } else {
                for (int64_t i = 0; i < hd; i += 64)
                    for (int c = 0; c < 4; c++) {
                        const __m512 kc = LDH512(x + i + 16 * c);
                        for (int g = 0; g < G; g++) a[g][c] = _mm512_fmadd_ps(kc, _mm512_load_ps(&qf[g][i + 16 * c]), a[g][c]);
                    }
                for (int g = 0; g < G; g++) V[g][kk] = _mm512_add_ps(_mm512_add_ps(a[g][0], a[g][2]), _mm512_add_ps(a[g][1], a[g][3]));
            }
        }
        for (int g = 0; g < G; g++) {
            const __m512 r = _mm512_mul_ps(ek_reduce16x16_avx512(V[g]), _mm512_set1_ps(scale));
            _mm512_mask_storeu_ps(scratch + g * hs + j0, (__mmask16)((1u << m) - 1u), r);
        }
    }
    const int64_t n64 = (n_pos + 63) & ~(int64_t)63;
    for (int g = 0; g < G; g++) {
        float *sc = scratch + g * hs;
        uint16_t *ph = (uint16_t *)(sc + kv_len + 64);
        float *pf = sc + kv_len + 64 + (kv_len + 64) / 2 + 32;
        if (softcap > 0.0f) {
            const float inv_cap = 1.0f / softcap;
            for (int64_t i = 0; i < n_pos; i++) sc[i] = softcap * tanhf(sc[i] * inv_cap);
        }
        softmax_f16_avx512(sc, n_pos, ph);
        for (int64_t i = 0; i < n64; i += 16) {   // probabilities as floats (exact), zero up to the next 64
            const int64_t r = n_pos - i;
            _mm512_storeu_ps(pf + i, r > 0 ? ldh512_part(ph + i, r) : _mm512_setzero_ps());
        }
    }
    // out[d] = dotv(vt_d, p, n_pos, 1) (seq: dots(vt_d, p, n_pos))
    const int64_t np = n_pos & ~(int64_t)63, rem = n_pos - np;
    const float *pf0 = scratch + kv_len + 64 + (kv_len + 64) / 2 + 32;
    for (int64_t d0 = 0; d0 < hd; d0 += 16) {
        for (int64_t dd = 0; dd < 16; dd++) {
            const uint16_t *x = vt + (d0 + dd) * kv_len;
            __m512 a[8][4];
            for (int g = 0; g < G; g++)
                for (int c = 0; c < 4; c++) a[g][c] = _mm512_setzero_ps();
            if (seq) {
                int64_t i = 0;
                for (; i + 16 <= n_pos; i += 16) {
                    const __m512 vc = LDH512(x + i);
                    for (int g = 0; g < G; g++) a[g][0] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(pf0 + g * hs + i), a[g][0]);
                }
                if (i < n_pos) {
                    const __m512 vc = ldh512_part(x + i, n_pos - i);
                    for (int g = 0; g < G; g++) a[g][0] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(pf0 + g * hs + i), a[g][0]);
                }
                for (int g = 0; g < G; g++) V[g][dd] = a[g][0];
                continue;
            }
            for (int64_t i = 0; i < np; i += 64)
                for (int c = 0; c < 4; c++) {
                    const __m512 vc = LDH512(x + i + 16 * c);
                    for (int g = 0; g < G; g++) a[g][c] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(pf0 + g * hs + i + 16 * c), a[g][c]);
                }
            for (int c = 0; c < 4 && rem > 16 * c; c++) {
                const __m512 vc = ldh512_part(x + np + 16 * c, rem - 16 * c);
                for (int g = 0; g < G; g++) a[g][c] = _mm512_fmadd_ps(vc, _mm512_loadu_ps(pf0 + g * hs + np + 16 * c), a[g][c]);
            }
            for (int g = 0; g < G; g++) V[g][dd] = _mm512_add_ps(_mm512_add_ps(a[g][0], a[g][2]), _mm512_add_ps(a[g][1], a[g][3]));
        }
        for (int g = 0; g < G; g++) _mm512_storeu_ps(out + g * out_head_stride + d0, ek_reduce16x16_avx512(V[g]));
    }
}

#define EK_ATTN_GROUP_FN(G)                                                                                        \
    T_AVX512 static void attn_group##G(const float *q, int64_t qs, const uint16_t *k, const uint16_t *vt,           \
                                       int64_t kv_len, int64_t n_pos, int64_t hd, float scale, float softcap,      \
                                       int seq, float *scratch, float *out, int64_t os) {                          \
        attn_group_body(q, qs, k, vt, kv_len, n_pos, hd, scale, softcap, seq, scratch, out, os, G);               \
    }
EK_ATTN_GROUP_FN(1)
EK_ATTN_GROUP_FN(2)
EK_ATTN_GROUP_FN(3)
EK_ATTN_GROUP_FN(4)
EK_ATTN_GROUP_FN(5)
EK_ATTN_GROUP_FN(6)
EK_ATTN_GROUP_FN(7)
EK_ATTN_GROUP_FN(8)

// G (1..8) heads sharing a KV head; 0 if G is out of range.
T_AVX512 static int attn_group_avx512(int G, const float *q, int64_t qs, const uint16_t *k, const uint16_t *vt,
                                      int64_t kv_len, int64_t n_pos, int64_t hd, float scale, float softcap, int seq,
                                      float *scratch, float *out, int64_t os) {
    typedef void (*fn)(const float *, int64_t, const uint16_t *, const uint16_t *, int64_t, int64_t, int64_t, float,
                       float, int, float *, float *, int64_t);
    static const fn fns[8] = {attn_group1, attn_group2, attn_group3, attn_group4,
                              attn_group5, attn_group6, attn_group7, attn_group8};
    if (G < 1 || G > 8) return 0;
    fns[G - 1](q, qs, k, vt, kv_len, n_pos, hd, scale, softcap, seq, scratch, out, os);
    return 1;
}

// The scores s are overwritten by their exponentials (the sum needs them all before the scaling).
T_AVX512 static void softmax_f16_avx512(float *s, int64_t n, uint16_t *p) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + i));
    float m = _mm512_reduce_max_ps(vm);
    for (; i < n; i++) m = s[i] > m ? s[i] : m;
    const __m512 mv = _mm512_set1_ps(m);
    double sum = 0;
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), mv)));
        _mm512_mask_storeu_ps(s + i, k, e);
        sum += (double)reduce16_avx512(e);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 e = _mm512_maskz_loadu_ps(k, s + i);
        _mm256_storeu_si256((__m256i *)(p + i), _mm512_cvtps_ph(_mm512_mul_ps(e, inv), _MM_FROUND_TO_NEAREST_INT));
    }
}

T_AVX512 static void mad_f16_avx512(uint16_t *y, const uint16_t *x, float v, int64_t n) {
    const __m512 vv = _mm512_set1_ps(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_fmadd_ps(LDH512(x + i), vv, LDH512(y + i)), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(fmaf(h2f(x[i]), v, h2f(y[i])));
}

T_AVX512 static void scale_f16_avx512(uint16_t *y, float v, int64_t n) {
    const __m512 vv = _mm512_set1_ps(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_mul_ps(LDH512(y + i), vv), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(h2f(y[i]) * v);
}

// AVX2 versions: a 16-lane vector is a pair of 8-lane halves (lo = lanes 0-7, hi = 8-15).
#define LDH256(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

T_AVX2 static inline float reduce16_avx2(__m256 lo, __m256 hi) {
    __m256 t3 = _mm256_add_ps(hi, lo);
    __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    __m128 t8 = _mm_add_ps(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

T_AVX2 static float dotv_f16_avx2(const uint16_t *x, const uint16_t *y, int64_t n, int pad) {
    __m256 s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 8; j++) s[j] = _mm256_fmadd_ps(LDH256(x + i + 8 * j), LDH256(y + i + 8 * j), s[j]);
    int64_t done = np;
    if (pad && np < n) {
        uint16_t tx[64], ty[64];
        memset(tx, 0, sizeof(tx));
        memset(ty, 0, sizeof(ty));
        memcpy(tx, x + np, (size_t)(n - np) * 2);
        memcpy(ty, y + np, (size_t)(n - np) * 2);
        for (int j = 0; j < 8; j++) s[j] = _mm256_fmadd_ps(LDH256(tx + 8 * j), LDH256(ty + 8 * j), s[j]);
        done = n;
    }
    // accumulator j (16 lanes) = s[2j] | s[2j+1]
    __m256 lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
    __m256 hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
    double sum = (double)reduce16_avx2(lo, hi);
    for (int64_t i = done; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

T_AVX2 static float dots_f16_avx2(const uint16_t *x, const uint16_t *y, int64_t n) {
    __m256 lo = _mm256_setzero_ps(), hi = lo;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_fmadd_ps(LDH256(x + i), LDH256(y + i), lo);
        hi = _mm256_fmadd_ps(LDH256(x + i + 8), LDH256(y + i + 8), hi);
    }
    if (i < n) {
        uint16_t tx[16], ty[16];
        memset(tx, 0, sizeof(tx));
        memset(ty, 0, sizeof(ty));
        memcpy(tx, x + i, (size_t)(n - i) * 2);
        memcpy(ty, y + i, (size_t)(n - i) * 2);
        lo = _mm256_fmadd_ps(LDH256(tx), LDH256(ty), lo);
        hi = _mm256_fmadd_ps(LDH256(tx + 8), LDH256(ty + 8), hi);
    }
    return reduce16_avx2(lo, hi);
}

T_AVX2 static void softmax_f16_avx2(float *s, int64_t n, uint16_t *p) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = s[i] > m ? s[i] : m;
    const __m256 mv = _mm256_set1_ps(m);
    const int64_t n16 = (n + 15) & ~(int64_t)15;
    double sum = 0;
    float buf[16];
    for (int64_t b = 0; b < n16; b += 16) {
        for (int l = 0; l < 16; l++) buf[l] = b + l < n ? s[b + l] : -INFINITY;
        const __m256 lo = exp256(_mm256_sub_ps(_mm256_loadu_ps(buf), mv));
        const __m256 hi = exp256(_mm256_sub_ps(_mm256_loadu_ps(buf + 8), mv));
        sum += (double)reduce16_avx2(lo, hi);
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (int64_t b = 0; b < n16; b += 16) {
        for (int l = 0; l < 16; l++) buf[l] = b + l < n ? s[b + l] : -INFINITY;
        const __m256 lo = exp256(_mm256_sub_ps(_mm256_loadu_ps(buf), mv));
        const __m256 hi = exp256(_mm256_sub_ps(_mm256_loadu_ps(buf + 8), mv));
        _mm_storeu_si128((__m128i *)(p + b), _mm256_cvtps_ph(_mm256_mul_ps(lo, inv), _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(p + b + 8), _mm256_cvtps_ph(_mm256_mul_ps(hi, inv), _MM_FROUND_TO_NEAREST_INT));
    }
}

T_AVX2 static void mad_f16_avx2(uint16_t *y, const uint16_t *x, float v, int64_t n) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_fmadd_ps(LDH256(x + i), vv, LDH256(y + i)), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(fmaf(h2f(x[i]), v, h2f(y[i])));
}

T_AVX2 static void scale_f16_avx2(uint16_t *y, float v, int64_t n) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_mul_ps(LDH256(y + i), vv), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(h2f(y[i]) * v);
}

T_AVX2 static void f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(x[i]);
}

T_AVX2 static void f16_to_f32_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, LDH256(x + i));
    for (; i < n; i++) y[i] = h2f(x[i]);
}
#endif

void ek_f32_to_f16_row(const float *x, uint16_t *y, int64_t n) {
#if EK_X86
    if (level() >= LVL_AVX2) { f32_to_f16_avx2(x, y, n); return; }
#endif
    f32_to_f16_scalar(x, y, n);
}

void ek_f16_to_f32_row(const uint16_t *x, float *y, int64_t n) {
#if EK_X86
    if (level() >= LVL_AVX2) { f16_to_f32_avx2(x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = h2f(x[i]);
}

void ek_f32_to_f16_strided(const float *x, uint16_t *y, int64_t n, int64_t stride) {
    uint16_t tmp[256];
    for (int64_t i = 0; i < n; i += 256) {
        const int64_t m = n - i < 256 ? n - i : 256;
        ek_f32_to_f16_row(x + i, tmp, m);
        for (int64_t j = 0; j < m; j++) y[(i + j) * stride] = tmp[j];
    }
}

void ek_round_f16_f32(float *x, int64_t n) {
    uint16_t tmp[256];
    for (int64_t i = 0; i < n; i += 256) {
        const int64_t m = n - i < 256 ? n - i : 256;
        ek_f32_to_f16_row(x + i, tmp, m);
        ek_f16_to_f32_row(tmp, x + i, m);
    }
}

typedef struct {
    float (*dotv)(const uint16_t *, const uint16_t *, int64_t, int);
    float (*dots)(const uint16_t *, const uint16_t *, int64_t);
    void (*softmax)(float *, int64_t, uint16_t *);   // overwrites the scores
    void (*mad)(uint16_t *, const uint16_t *, float, int64_t);
    void (*scale)(uint16_t *, float, int64_t);
} f16_ops;

static f16_ops f16_ops_get(void) {
    f16_ops o = {dotv_f16_scalar, dots_f16_scalar, softmax_f16_scalar, mad_f16_scalar, scale_f16_scalar};
#if EK_X86
    switch (level()) {
    case LVL_AVX512: o = (f16_ops){dotv_f16_avx512, dots_f16_avx512, softmax_f16_avx512, mad_f16_avx512, scale_f16_avx512}; break;
    case LVL_AVX2: o = (f16_ops){dotv_f16_avx2, dots_f16_avx2, softmax_f16_avx2, mad_f16_avx2, scale_f16_avx2}; break;
    }
#endif
    return o;
}

void ek_attn_row(const float *q, const uint16_t *k, const uint16_t *vt, int64_t kv_len,
                 int64_t n_pos, int64_t hd, float scale, int32_t mode, float *scratch, float *out) {
    ek_attn_row_ext(q, k, vt, kv_len, 0, n_pos, hd, scale, 0.0f, mode, scratch, out);
}

// Test hook: 1 = never use the grouped AVX-512 attention (compare it with the one-dot-at-a-time code).
static int ek_attn_slow;
void ek_attn_force_rowwise(int on) { ek_attn_slow = on; }

void ek_attn_row_ext(const float *q, const uint16_t *k, const uint16_t *vt, int64_t kv_len,
                     int64_t first, int64_t n_pos, int64_t hd, float scale, float softcap,
                     int32_t mode, float *scratch, float *out) {
    const f16_ops o = f16_ops_get();
    uint16_t qh[512];
    ek_f32_to_f16_row(q, qh, hd);
    // Positions first..<n_pos: shift the views so that index 0 is position `first`.
    k += first * hd;
    vt += first;
    n_pos -= first;
    const float inv_cap = softcap > 0.0f ? 1.0f / softcap : 0.0f;
    if (mode == EK_ATTN_GGML_FLASH) {
        // online softmax over positions in order, f16 accumulator (ggml flash-attn one_chunk)
        uint16_t acc[512];
        memset(acc, 0, sizeof(uint16_t) * (size_t)hd);
        float M = -INFINITY, S = 0.0f;
        uint16_t *vrow = (uint16_t *)scratch;   // V of one position, gathered from the transposed cache
        for (int64_t p = 0; p < n_pos; p++) {
            float s = o.dotv(k + p * hd, qh, hd, 0) * scale;
            if (softcap > 0.0f) s = softcap * tanhf(s * inv_cap);
            float ms = 1.0f, vs = 1.0f;
            if (s > M) {
                const float Mold = M;
                M = s;
                ms = expf(Mold - M);
                o.scale(acc, ms, hd);
            } else {
                vs = expf(s - M);
            }
            for (int64_t d = 0; d < hd; d++) vrow[d] = vt[d * kv_len + p];
            o.mad(acc, vrow, vs, hd);
            S = fmaf(S, ms, vs);
        }
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (int64_t i = 0; i < hd; i++) out[i] = h2f(acc[i]) * inv;
        return;
    }
    // soft_max path: scores, softmax rounded to halves, then P·V over the transposed V rows.
#if EK_X86
    if ((mode == EK_ATTN_GGML_VEC || mode == EK_ATTN_GGML_TINYBLAS) && level() == LVL_AVX512 && hd % 64 == 0 &&
        hd <= 256 && !ek_attn_slow) {
        attn_group_avx512(1, q, hd, k, vt, kv_len, n_pos, hd, scale, softcap, mode == EK_ATTN_GGML_TINYBLAS, scratch, out, hd);
        return;
    }
#endif
    float *s = scratch;                                 // n_pos (+ padding) floats
    uint16_t *p = (uint16_t *)(scratch + kv_len + 64);  // roundup(n_pos, 64) halves
    const int seq = mode == EK_ATTN_GGML_TINYBLAS;
    for (int64_t i = 0; i < n_pos; i++)
        s[i] = (seq ? o.dots(k + i * hd, qh, hd) : o.dotv(k + i * hd, qh, hd, 0)) * scale;
    if (softcap > 0.0f)   // ggml: scale(1/c), tanh, scale(c), then the softmax
        for (int64_t i = 0; i < n_pos; i++) s[i] = tanhf(s[i] * inv_cap) * softcap;
    o.softmax(s, n_pos, p);
    for (int64_t d = 0; d < hd; d++)
        out[d] = seq ? o.dots(vt + d * kv_len, p, n_pos) : o.dotv(vt + d * kv_len, p, n_pos, 1);
}

// ---------------------------------------------------------------------------------------
// attention pool task (the weight products run through ek_mm_task, types.c)

// Whether a task takes the grouped AVX-512 path: its work items are (token, KV head) pairs,
// otherwise (token, head) pairs.
static int attn_grouped(const ek_attn_task *t) {
#if EK_X86
    const int64_t hd = t->head_dim, group = t->n_head / t->n_head_kv;
    return (t->mode == EK_ATTN_GGML_VEC || t->mode == EK_ATTN_GGML_TINYBLAS) && level() == LVL_AVX512 && hd % 64 == 0 &&
           hd <= 256 && group <= 8 && !ek_attn_slow && t->out_q8 == NULL &&
           t->scratch_stride >= group * EK_ATTN_HEAD_SCRATCH(t->kv_len);
#else
    (void)t;
    return 0;
#endif
}

// Grouped tasks with fewer (token, KV head) items than make an even share per thread split
// each group's heads into `parts` runs of consecutive heads (items (token, KV head, part)): one
// token of SmolLM2 (3 groups of 3 heads) on 2 threads shares 5:4 heads instead of 6:3, one of
// Gemma 3 270M (1 group of 4) 2:2 instead of 4:0. Each head computes as in its whole group.
static int attn_parts(const ek_attn_task *t, int64_t grouped_items, int nth) {
    if (!attn_grouped(t) || nth <= 1 || grouped_items % nth == 0 || grouped_items >= 4 * nth) return 1;
    const int64_t group = t->n_head / t->n_head_kv;
    int64_t a = grouped_items, b = nth;   // parts = nth / gcd(items, nth), at most the group
    while (b) { const int64_t r = a % b; a = b; b = r; }
    const int64_t parts = nth / a;
    return (int)(parts < group ? parts : group);
}

static int64_t attn_items(const ek_attn_task *t, int parts) {
    return t->n_tok * (attn_grouped(t) ? t->n_head_kv * parts : t->n_head);
}

// Work items [i0, i1) of a task, with thread ith's scratch.
static void attn_run_items(const ek_attn_task *t, int parts, int64_t i0, int64_t i1, int ith) {
    const int64_t hd = t->head_dim;
    const int64_t group = t->n_head / t->n_head_kv;
    float *scratch = t->scratch + (int64_t)ith * t->scratch_stride;
#if EK_X86
    // the heads of a KV group (or of a part of one) together (K/V converted once for them), same bits per head
    if (attn_grouped(t)) {
        for (int64_t it = i0; it < i1; it++) {
            const int64_t tok = it / (t->n_head_kv * parts), g = it / parts % t->n_head_kv, p = it % parts;
            const int64_t h0 = g * group + group * p / parts, nh = group * (p + 1) / parts - group * p / parts;
            const int64_t pos = t->pos0 + tok;
            const int64_t first = t->window > 0 && pos + 1 > t->window ? pos + 1 - t->window : 0;
            attn_group_avx512((int)nh, t->q + tok * t->q_stride + h0 * hd, hd,
                              t->k + g * t->kv_len * hd + first * hd, t->vt + g * hd * t->kv_len + first, t->kv_len,
                              pos + 1 - first, hd, t->scale, t->softcap, t->mode == EK_ATTN_GGML_TINYBLAS, scratch,
                              t->out + tok * t->out_stride + h0 * hd, hd);
        }
        return;
    }
#endif
    for (int64_t it = i0; it < i1; it++) {
        const int64_t tok = it / t->n_head, h = it % t->n_head, g = h / group;
        float *o = t->out + tok * t->out_stride + h * hd;
        const int64_t pos = t->pos0 + tok;
        const int64_t first = t->window > 0 && pos + 1 > t->window ? pos + 1 - t->window : 0;
        ek_attn_row_ext(t->q + tok * t->q_stride + h * hd, t->k + g * t->kv_len * hd, t->vt + g * hd * t->kv_len,
                        t->kv_len, first, pos + 1, hd, t->scale, t->softcap, t->mode, scratch, o);
        if (t->out_q8)
            ek_quantize_row_q8_0(o, (uint8_t *)t->out_q8 + tok * t->out_q8_stride + h * (hd / 32) * EK_Q8_0_BLOCK_BYTES, hd);
    }
}

void ek_attn_task_run(void *ctx, int ith, int nth) {
    const ek_attn_task *t = (const ek_attn_task *)ctx;
    const int parts = attn_parts(t, attn_items(t, 1), nth);
    const int64_t items = attn_items(t, parts);
    attn_run_items(t, parts, items * ith / nth, items * (ith + 1) / nth, ith);
}

void ek_attn_multi_task_run(void *ctx, int ith, int nth) {
    const ek_attn_multi_task *m = (const ek_attn_multi_task *)ctx;
    int64_t grouped = 0;
    for (int64_t k = 0; k < m->n_tasks; k++) grouped += attn_items(&m->tasks[k], 1);
    int64_t total = 0;
    for (int64_t k = 0; k < m->n_tasks; k++) total += attn_items(&m->tasks[k], attn_parts(&m->tasks[k], grouped, nth));
    const int64_t g0 = total * ith / nth, g1 = total * (ith + 1) / nth;
    int64_t base = 0;
    for (int64_t k = 0; k < m->n_tasks && base < g1; k++) {
        const int parts = attn_parts(&m->tasks[k], grouped, nth);
        const int64_t n = attn_items(&m->tasks[k], parts);
        const int64_t lo = g0 > base ? g0 - base : 0, hi = g1 - base < n ? g1 - base : n;
        if (lo < hi) attn_run_items(&m->tasks[k], parts, lo, hi, ith);
        base += n;
    }
}

// ek_dequant_task_run lives in types.c (it uses the per-type table).

// ---------------------------------------------------------------------------------------
// NEOX rotary embedding and GeGLU

void ek_rope_neox(float *x, int64_t n_heads, int64_t head_stride, int64_t n_dims, const float *cs) {
    const int64_t half = n_dims / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_stride;
        for (int64_t i = 0; i < half; i++) {
            const float x0 = v[i], x1 = v[i + half], c = cs[2 * i], s = cs[n_dims + 2 * i + 1];
            const float t0 = x1 * s, t1 = x1 * c;
            v[i] = fmaf(x0, c, -t0);
            v[i + half] = fmaf(x0, s, t1);
        }
    }
}

// ggml computes GELU (tanh form) through a table indexed by the input rounded to a half, whose
// entries are the halves of gelu(that half): built once, on first use.
static uint16_t gelu_table[(1 << 16) + 2];   // +2: the AVX-512 gather reads 4 bytes per entry
static atomic_int gelu_table_state;   // 0 = not built, 1 = building, 2 = ready

static void gelu_table_build(void) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&gelu_table_state, &expected, 1)) {
        for (uint32_t i = 0; i < (1u << 16); i++) {
            const float f = ek_fp16_to_fp32((uint16_t)i);
            const float g = 0.5f * f * (1.0f + tanhf(0.79788456080286535587989211986876f * f * (1.0f + 0.044715f * f * f)));
            gelu_table[i] = ek_fp32_to_fp16(g);
        }
        atomic_store(&gelu_table_state, 2);
    }
    while (atomic_load(&gelu_table_state) != 2) { }
}

#if EK_X86
// 16 at a time: the input rounded to a half (vcvtps2ph, round to nearest even, as
// ek_fp32_to_fp16), the table entry gathered, widened exactly; the same bits as the scalar loop.
T_AVX512 static int64_t gelu_mul_avx512(float *out, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    const __m512 lo = _mm512_set1_ps(-10.0f), hi = _mm512_set1_ps(10.0f);
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(gate + i), u = _mm512_loadu_ps(up + i);
        const __m512i idx = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m512i g = _mm512_i32gather_epi32(idx, (const void *)gelu_table, 2);
        __m512 r = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)), u);
        r = _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, hi, _CMP_GE_OQ), x, u);
        r = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ), r);
        _mm512_storeu_ps(out + i, r);
    }
    return i;
}
#endif

void ek_gelu_mul_f32(float *out, const float *gate, const float *up, int64_t n) {
    if (atomic_load_explicit(&gelu_table_state, memory_order_acquire) != 2) gelu_table_build();
    int64_t i0 = 0;
#if EK_X86
    if (level() == LVL_AVX512) i0 = gelu_mul_avx512(out, gate, up, n);
#endif
    for (int64_t i = i0; i < n; i++) {
        const float x = gate[i];
        if (x <= -10.0f) out[i] = 0.0f;
        else if (x >= 10.0f) out[i] = x * up[i];
        else out[i] = ek_fp16_to_fp32(gelu_table[ek_fp32_to_fp16(x)]) * up[i];
    }
}
