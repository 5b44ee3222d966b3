// STAND-IN (lead's local copy until the kquants branch lands).
#include <string.h>
#include "include/ek_types.h"
#include "include/ek_kernels.h"
#include "include/ek_ops.h"
static void f32_copy(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
static void f32_from(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
static float f32_dot(int64_t n, const void *w, const void *a) { return ek_vec_dot_f32(n, (const float *)w, (const float *)a); }
static void f16_from(const float *x, void *y, int64_t n) { ek_f32_to_f16_row(x, (uint16_t *)y, n); }
static float f16_dot(int64_t n, const void *w, const void *a) {
    double s = 0; const uint16_t *x = w, *y = a;
    for (int64_t i = 0; i < n; i++) s += (double)ek_fp16_to_fp32(x[i]) * ek_fp16_to_fp32(y[i]);
    return (float)s;
}
static void bf16_from(const float *x, void *vy, int64_t n) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) { uint32_t u; memcpy(&u, &x[i], 4); u += 0x7fff + ((u >> 16) & 1); y[i] = (uint16_t)(u >> 16); }
}
static float bf16_dot(int64_t n, const void *w, const void *a) {
    double s = 0; const uint16_t *x = w, *y = a;
    for (int64_t i = 0; i < n; i++) s += (double)ek_bf16_to_fp32(x[i]) * ek_bf16_to_fp32(y[i]);
    return (float)s;
}
static float q8_dot(int64_t n, const void *w, const void *a) { return ek_vec_dot_q8_0(n, w, a); }
static float q4_0_dot(int64_t n, const void *w, const void *a) {
    float wf[32], af[32]; double s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        ek_dequantize_row_q4_0((const uint8_t *)w + b * 18, wf, 32);
        ek_dequantize_row_q8_0((const uint8_t *)a + b * 34, af, 32);
        for (int i = 0; i < 32; i++) s += (double)wf[i] * af[i];
    }
    return (float)s;
}
static float q4_1_dot(int64_t n, const void *w, const void *a) {
    float wf[32], af[32]; double s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        ek_dequantize_row_q4_1((const uint8_t *)w + b * 20, wf, 32);
        ek_dequantize_row_q8_0((const uint8_t *)a + b * 34, af, 32);
        for (int i = 0; i < 32; i++) s += (double)wf[i] * af[i];
    }
    return (float)s;
}
static const ek_type_traits table[] = {
    {0, "f32", 1, 4, 0, f32_copy, f32_from, f32_dot},
    {1, "f16", 1, 2, 1, ek_dequantize_row_f16, f16_from, f16_dot},
    {2, "q4_0", 32, 18, 8, ek_dequantize_row_q4_0, NULL, q4_0_dot},
    {3, "q4_1", 32, 20, 8, ek_dequantize_row_q4_1, NULL, q4_1_dot},
    {8, "q8_0", 32, 34, 8, ek_dequantize_row_q8_0, ek_quantize_row_q8_0, q8_dot},
    {30, "bf16", 1, 2, 30, ek_dequantize_row_bf16, bf16_from, bf16_dot},
};
const ek_type_traits *ek_type_traits_of(int32_t t) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) if (table[i].type == t) return &table[i];
    return NULL;
}
int64_t ek_row_bytes(int32_t t, int64_t n) {
    const ek_type_traits *tr = ek_type_traits_of(t);
    if (!tr || n % tr->block_size) return -1;
    return n / tr->block_size * tr->block_bytes;
}
void ek_mm_task_run(void *ctx, int ith, int nth) {
    const ek_mm_task *t = ctx;
    int64_t total = 0;
    for (int p = 0; p < t->nparts; p++) total += t->rows[p];
    const int64_t chunks = (total + 15) / 16;
    int64_t a = chunks * ith / nth * 16, b = chunks * (ith + 1) / nth * 16;
    if (b > total) b = total;
    int64_t off = 0;
    for (int p = 0; p < t->nparts; p++) {
        const ek_type_traits *tr = ek_type_traits_of(t->type[p]);
        const int64_t rb = ek_row_bytes(t->type[p], t->ncols);
        for (int64_t r = (a > off ? a - off : 0); r < t->rows[p] && r + off < b; r++)
            for (int64_t k = 0; k < t->n_tok; k++) {
                float v = tr->vec_dot(t->ncols, (const uint8_t *)t->w[p] + r * rb, (const uint8_t *)t->a[p] + k * t->a_stride[p]);
                if (t->acc[p]) t->acc[p][k * t->y_stride + r] += v; else t->y[p][k * t->y_stride + r] = v;
            }
        off += t->rows[p];
    }
}
