#pragma once
// STAND-IN (lead's local copy until the kquants branch lands): per-type table and generic matmul task.
#include <stdint.h>
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct {
    int32_t type;
    const char *name;
    int64_t block_size;
    int64_t block_bytes;
    int32_t vec_dot_type;
    void  (*to_float)(const void *x, float *y, int64_t n);
    void  (*from_float)(const float *x, void *y, int64_t n);
    float (*vec_dot)(int64_t n, const void *w, const void *a);
} ek_type_traits;
const ek_type_traits *ek_type_traits_of(int32_t ggml_type);
int64_t ek_row_bytes(int32_t ggml_type, int64_t n);
typedef struct {
    int64_t ncols;
    int64_t n_tok;
    int64_t y_stride;
    int32_t nparts;
    int32_t type[3];
    const void *w[3];
    const void *a[3];
    int64_t a_stride[3];
    float *y[3];
    float *acc[3];
    int64_t rows[3];
} ek_mm_task;
void ek_mm_task_run(void *ctx, int ith, int nth);
#ifdef __cplusplus
}
#endif
