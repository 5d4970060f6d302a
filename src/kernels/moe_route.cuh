// Mixture-of-experts routing: each token's router logits to top_k (expert id, weight) pairs, as cpu::route.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

inline constexpr int kRouteSoftmaxTopK = 0;  // softmax over all experts, top-k (optionally renormalized)
inline constexpr int kRouteTopKSoftmax = 1;  // top-k logits, softmax over those
inline constexpr int kRouteSparseMixer = 2;  // Phi-3.5-MoE sparsemixer (inference form)

struct MoeRouteArgs {
  const __half* logits = nullptr;  // [num_tokens, row_stride] router logits (the first num_experts of each row)
  int64_t num_tokens = 0, num_experts = 0, top_k = 0;  // num_experts 1 .. 256, top_k 1 .. min(num_experts, 32)
  int kind = kRouteSoftmaxTopK;
  bool renormalize = false;  // kRouteSoftmaxTopK: weights / ||weights||_p
  float renormalize_p = 1.0f;
  float jitter_eps = 0.0f;   // kRouteSparseMixer
  int32_t* ids = nullptr;    // [num_tokens, top_k], largest weight first (ties: lower expert id first)
  float* weights = nullptr;  // [num_tokens, top_k]
  int64_t row_stride = 0;    // halves between tokens' logits (0: num_experts)
};

void launch_moe_route(const MoeRouteArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
