// Mixture-of-experts data movement and the FP16 expert GEMV (the quantized one is gemv_one_experts in
// quant_linear.cuh). A "slot" is one (token, chosen expert) pair: slot s = t * top_k + j holds token t's j-th choice
// (kernels::launch_moe_route writes ids and weights in that order).
//   gather_rows:  dst[i, :] = src[rows[i], :]          (the tokens routed to one expert, prefill)
//   scatter_rows: dst[rows[i], :] = src[i, :]           (that expert's outputs back to their slots)
//   moe_gemv_f16: y[s, n] = half(sum_k x[s / x_div, k] * W_ids[s][n, k] (+ b_ids[s][n])) for fp16 [N, K] experts,
//                 fp32 accumulation, one rounding (as a CudaLinear on FP16 weights).
//   moe_combine:  out[t, :] = half(sum_j w[t, j] * y[t * top_k + j, :] + sigmoid(g[t]) * shared[t, :]) in fp32, one
//                 rounding (shared: optional; its gate g optional, weight 1 without it).
// Every kernel waits for the previous one (pdl_wait) before its first load: ids come from the router kernel.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

void launch_gather_rows(const __half* src, const int32_t* rows, int64_t num_rows, int64_t width, __half* dst,
                        cudaStream_t stream);
void launch_scatter_rows(const __half* src, const int32_t* rows, int64_t num_rows, int64_t width, __half* dst,
                         cudaStream_t stream);

struct MoeGemvF16Args {
  const __half* const* weights = nullptr;  // device array [num_experts] of fp16 [n, k], 16-byte aligned
  const __half* const* biases = nullptr;   // device array [num_experts] (entries may be null), or null
  const int32_t* ids = nullptr;            // [num_slots] expert of each slot, in [0, num_experts)
  const __half* x = nullptr;               // rows of k halves, 16-byte aligned; slot s reads row s / x_div
  int64_t x_div = 1;
  __half* y = nullptr;  // [num_slots, n]
  int64_t num_slots = 0, n = 0, k = 0;  // k % 8 == 0
};
void launch_moe_gemv_f16(const MoeGemvF16Args& args, cudaStream_t stream);

struct MoeCombineArgs {
  const __half* expert_out = nullptr;   // [num_tokens * top_k, hidden]
  const float* weights = nullptr;       // [num_tokens * top_k]
  int64_t num_tokens = 0, top_k = 0, hidden = 0;
  const __half* shared = nullptr;       // [num_tokens, hidden] or null
  const __half* shared_gate = nullptr;  // [num_tokens] gate logits or null
  __half* out = nullptr;                // [num_tokens, hidden]
};
void launch_moe_combine(const MoeCombineArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
