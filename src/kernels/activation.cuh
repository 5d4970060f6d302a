// Gated activation of the MLP: out = silu(gate) * up.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

struct SiluMulArgs {
  const __half* gate = nullptr;  // [n]
  const __half* up = nullptr;    // [n]
  __half* out = nullptr;         // [n]
  int64_t n = 0;
};

void launch_silu_mul(const SiluMulArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
