// Token embedding lookup into the fp32 residual stream, optionally scaled (Gemma, MiniCPM, Granite) and plus a learned
// position embedding (GPT-2).
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
  float scale = 1.0f;             // out = scale * table[id] (+ pos_table[positions[t]])
  const __half* pos_table = nullptr;  // [num_positions, hidden_size], or null: no position embedding
  const int32_t* positions = nullptr; // [num_tokens], device; required with pos_table
  int64_t num_positions = 0;          // rows of pos_table; positions outside [0, num_positions) write NaN rows
};

void launch_embedding(const EmbeddingArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
