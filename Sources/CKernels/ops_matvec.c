// Q8_0 x Q8_0 matrix-vector product with llama.cpp's arithmetic, bit for bit.
//
// ggml's x86 CPU backend (ggml_vec_dot_q8_0_q8_0 and llamafile's tinyBLAS_Q0_AVX, which agree)
// computes each output as: 8 int32 lanes per block, lane l = sum of the 4 products of bytes
// 4l..4l+3; acc[l] = fma(d_w * d_x, float(lane l), acc[l]) over the blocks in order; then the
// 8 lanes summed as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). Reproducing exactly this keeps our
// logits equal to llama.cpp's on the same file (a different rounding order changes later Q8_0
// activation roundings and, through 30 layers, moves logits by tenths). All three variants
// below produce the same bits.
#include "ek_ops.h"
#include "ek_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EK_X86 1
#else
#define EK_X86 0
#endif

static inline uint16_t ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline float hsum8_scalar(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

static void matvec_ggml_scalar(const uint8_t *W, int64_t ncols, int64_t r0, int64_t r1,
                               const uint8_t *X, float *y) {
    const int64_t nb = ncols / 32, rs = nb * 34;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = W + r * rs;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *wb = w + b * 34, *xb = X + b * 34;
            const float d = ek_fp16_to_fp32(ld16(wb)) * ek_fp16_to_fp32(ld16(xb));
            const int8_t *qw = (const int8_t *)(wb + 2), *qx = (const int8_t *)(xb + 2);
            for (int l = 0; l < 8; l++) {
                int32_t s = 0;
                for (int k = 0; k < 4; k++) s += (int32_t)qw[4 * l + k] * (int32_t)qx[4 * l + k];
                acc[l] = fmaf(d, (float)s, acc[l]);
            }
        }
        y[r] = hsum8_scalar(acc);
    }
}

#if EK_X86
#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

T_AVX2 static inline float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

#define EK_MAXB 512   // activation blocks prepared per pass (ncols up to 16384 in one pass)

// AVX2: lane sums via maddubs(|w|, sign(x, w)) + madd(1) — exact for weights in [-127, 127]
// (the int16 pair sums stay below 2*127*127). Rows in groups of 4 for instruction parallelism.
T_AVX2 static void matvec_ggml_avx2(const uint8_t *W, int64_t ncols, int64_t r0, int64_t r1,
                                    const uint8_t *X, float *y) {
    const int64_t nb = ncols / 32, rs = nb * 34;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t c0 = 0; c0 < nb; c0 += EK_MAXB) {
        // ncols > EK_MAXB*32 never happens with validated models (checked by the caller);
        // keep the loop for safety: later chunks add onto y.
        const int64_t cn = nb - c0 < EK_MAXB ? nb - c0 : EK_MAXB;
        float dx[EK_MAXB];
        for (int64_t b = 0; b < cn; b++) dx[b] = _cvtsh_ss(ld16(X + (c0 + b) * 34));
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = W + r * rs + c0 * 34;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t b = 0; b < cn; b++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(X + (c0 + b) * 34 + 2));
#define STEP(K, A)                                                                                \
    do {                                                                                          \
        const uint8_t *wb = p + (K) * rs + b * 34;                                                \
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 2));                         \
        const __m256i dot = _mm256_madd_epi16(ones, _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), \
                                                                         _mm256_sign_epi8(xv, wv))); \
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ld16(wb)) * dx[b]);                             \
        A = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), A);                                       \
    } while (0)
                STEP(0, a0); STEP(1, a1); STEP(2, a2); STEP(3, a3);
#undef STEP
            }
            const float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
            if (c0 == 0) { y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3; }
            else { y[r] += s0; y[r + 1] += s1; y[r + 2] += s2; y[r + 3] += s3; }
        }
        for (; r < r1; r++) {
            const uint8_t *p = W + r * rs + c0 * 34;
            __m256 a0 = _mm256_setzero_ps();
            for (int64_t b = 0; b < cn; b++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(X + (c0 + b) * 34 + 2));
                const uint8_t *wb = p + b * 34;
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 2));
                const __m256i dot = _mm256_madd_epi16(ones, _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv)));
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(ld16(wb)) * dx[b]), _mm256_cvtepi32_ps(dot), a0);
            }
            const float s0 = hsum8(a0);
            y[r] = c0 == 0 ? s0 : y[r] + s0;
        }
    }
}

// fp16 -> fp32 for every half (256 KiB), so a weight block's scale is one broadcast load.
static float *h2f_table;
static void build_h2f_table(void) {
    float *t = (float *)malloc(sizeof(float) * 65536);
    if (!t) return;
    for (uint32_t h = 0; h < 65536; h++) t[h] = ek_fp16_to_fp32((uint16_t)h);
    float *expected = NULL;
    if (!__atomic_compare_exchange_n(&h2f_table, &expected, t, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) free(t);
}
static inline const float *h2f_tab(void) {
    const float *t = __atomic_load_n(&h2f_table, __ATOMIC_ACQUIRE);
    if (!t) {
        build_h2f_table();
        t = __atomic_load_n(&h2f_table, __ATOMIC_ACQUIRE);
    }
    return t;
}

// AVX-512 VNNI on 256-bit vectors: vpdpbusd multiplies unsigned by signed bytes, so the weights
// go in as w ^ 0x80 = w + 128 and each lane's accumulator starts at -128 * (sum of that lane's
// 4 activation bytes): the lane ends at exactly sum(w*x) of its 4 bytes, as in ggml.
// d = d_w * d_x is the same float product as ggml's (both broadcast, multiplied in a vector).
// Four rows at a time; the weight stream is prefetched a few KiB ahead, a little each step.
T_VNNI static void matvec_ggml_vnni(const uint8_t *W, int64_t ncols, int64_t r0, int64_t r1,
                                    const uint8_t *X, float *y) {
    const float *tab = h2f_tab();
    if (!tab) { matvec_ggml_avx2(W, ncols, r0, r1, X, y); return; }
    const int64_t nb = ncols / 32, rs = nb * 34;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t c0 = 0; c0 < nb; c0 += EK_MAXB) {
        const int64_t cn = nb - c0 < EK_MAXB ? nb - c0 : EK_MAXB;
        __m256i xs[EK_MAXB] __attribute__((aligned(32)));
        __m256i cor[EK_MAXB] __attribute__((aligned(32)));
        __m256 dxv[EK_MAXB] __attribute__((aligned(32)));
        for (int64_t b = 0; b < cn; b++) {
            const uint8_t *xb = X + (c0 + b) * 34;
            xs[b] = _mm256_loadu_si256((const __m256i *)(xb + 2));
            cor[b] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, xs[b]));
            dxv[b] = _mm256_set1_ps(tab[ld16(xb)]);
        }
        const int whole = cn == nb;
        const size_t group = (size_t)4 * (size_t)rs;
        const size_t dist = group * ((4096 + group - 1) / group);
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = W + r * rs + c0 * 34;
            const uint8_t *pf = p + dist;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t b = 0; b < cn; b++) {
                if (whole) {
                    const uint8_t *q = pf + 4 * 34 * b;
                    _mm_prefetch((const char *)q, _MM_HINT_T0);
                    _mm_prefetch((const char *)(q + 64), _MM_HINT_T0);
                    _mm_prefetch((const char *)(q + 128), _MM_HINT_T0);
                }
                const __m256i xv = _mm256_load_si256(&xs[b]);
                const __m256i cv = _mm256_load_si256(&cor[b]);
                const __m256 dx = _mm256_load_ps((const float *)&dxv[b]);
#define STEP(K, A)                                                                                \
    do {                                                                                          \
        const uint8_t *wb = p + (K) * rs + b * 34;                                                \
        const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(wb + 2)), bias);  \
        const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&tab[ld16(wb)]), dx);                  \
        A = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(cv, u, xv)), A);           \
    } while (0)
                STEP(0, a0); STEP(1, a1); STEP(2, a2); STEP(3, a3);
#undef STEP
            }
            const float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
            if (c0 == 0) { y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3; }
            else { y[r] += s0; y[r + 1] += s1; y[r + 2] += s2; y[r + 3] += s3; }
        }
        for (; r < r1; r++) {
            const uint8_t *p = W + r * rs + c0 * 34;
            __m256 a0 = _mm256_setzero_ps();
            for (int64_t b = 0; b < cn; b++) {
                const uint8_t *wb = p + b * 34;
                const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(wb + 2)), bias);
                const __m256i dot = _mm256_dpbusd_epi32(_mm256_load_si256(&cor[b]), u, _mm256_load_si256(&xs[b]));
                const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&tab[ld16(wb)]), _mm256_load_ps((const float *)&dxv[b]));
                a0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), a0);
            }
            const float s0 = hsum8(a0);
            y[r] = c0 == 0 ? s0 : y[r] + s0;
        }
    }
}
#endif

enum { MV_UNSET = -1, MV_SCALAR = 0, MV_AVX2 = 1, MV_VNNI = 2 };
static int mv_level = MV_UNSET;

static int mv_detect(void) {
#if EK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return MV_VNNI;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return MV_AVX2;
#endif
    return MV_SCALAR;
}

static inline int mv_get(void) {
    int l = __atomic_load_n(&mv_level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = mv_detect();
        __atomic_store_n(&mv_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

const char *ek_matvec_ggml_impl_name(void) {
    switch (mv_get()) {
    case MV_VNNI: return "avx512vnni";
    case MV_AVX2: return "avx2";
    default: return "scalar";
    }
}

int ek_matvec_ggml_force(int level) {
    if (level < MV_SCALAR || level > MV_VNNI || level > mv_detect()) return -1;
    __atomic_store_n(&mv_level, level, __ATOMIC_RELAXED);
    return 0;
}

void ek_matvec_q8_0_ggml(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y) {
#if EK_X86
    switch (mv_get()) {
    case MV_VNNI: matvec_ggml_vnni((const uint8_t *)w, ncols, row0, row1, (const uint8_t *)xq, y); return;
    case MV_AVX2: matvec_ggml_avx2((const uint8_t *)w, ncols, row0, row1, (const uint8_t *)xq, y); return;
    }
#endif
    matvec_ggml_scalar((const uint8_t *)w, ncols, row0, row1, (const uint8_t *)xq, y);
}

void ek_matvec_q8_0_ggml_scalar(const void *w, int64_t ncols, int64_t row0, int64_t row1, const void *xq, float *y) {
    matvec_ggml_scalar((const uint8_t *)w, ncols, row0, row1, (const uint8_t *)xq, y);
}
