// Private helpers shared by quants*.c and types.c (not part of the API).
#pragma once
#include <stdint.h>
#include "include/ek_types.h"

void ek_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]);
void ek_k3_scales(const uint8_t *q, int8_t sc[16]);
float ek_hsum16_ggml(const float v[16]);
float ek_f32_tail_ggml(const float *w, const float *a, int64_t i, int64_t n, float sumf);
