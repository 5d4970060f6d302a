// One-token fp16 GEMV: y[n] = half(sum_k x[k] * W[n, k] (+ bias[n])) for W fp16 [N, K] row-major (the layout of an
// FP16 CudaLinear), fp32 accumulation, one rounding. Used by CudaLinear::forward for one token on fp16 weights
// (the GPTQ / FP16 models' head and FP16 layers in decode) instead of cuBLAS: it is launched with programmatic
// dependent launch, so its first weight loads are in flight before the previous kernel finishes.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/tuning.h"

namespace exl::kernels {

struct GemvF16Args {
  const __half* w = nullptr;     // [n, k], 16-byte aligned, k % 8 == 0
  const __half* x = nullptr;     // [k], 16-byte aligned
  const __half* bias = nullptr;  // [n] or null
  __half* y = nullptr;           // [n]
  int64_t n = 0, k = 0;
  GemvF16Tuning tuning;          // loads in flight per lane (CudaTuning f16_gemv_batch)
};

// Whether gemv_f16 takes these shapes (k % 8 == 0, 1 <= k <= kGemvF16MaxK, aligned pointers).
constexpr int64_t kGemvF16MaxK = 16384;
bool gemv_f16_supported(const GemvF16Args& args);
void launch_gemv_f16(const GemvF16Args& args, cudaStream_t stream);

}  // namespace exl::kernels
