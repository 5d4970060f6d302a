// Token embedding lookup into the fp32 residual stream.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

struct EmbeddingArgs {
  const __half* table = nullptr;  // [vocab_size, hidden_size]
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  const int32_t* ids = nullptr;   // [num_tokens], device; the caller has range-checked them
  int64_t num_tokens = 0;
  float* out = nullptr;           // [num_tokens, hidden_size]
};

void launch_embedding(const EmbeddingArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
