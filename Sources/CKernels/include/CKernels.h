#ifndef CKERNELS_H
#define CKERNELS_H
#include "ek_kernels.h"
#include "ek_pool.h"
#include "ek_ops.h"
#include "ek_types.h"
#include "ek_quantize.h"
#endif
