// The norms of the model spec (model/model_spec.h) on the GPU: RMSNorm and LayerNorm with optional weight (rows per
// head) and bias, as cpu::norm. launch_residual_norm adds a layer's branch outputs into the fp32 residual stream
// (optionally post-normed first) and norms the stream to fp16; launch_head_norm norms fp16 rows in place (per-head
// q/k norms).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

inline constexpr int kNormNone = -1;  // identity
inline constexpr int kNormRms = 0;    // x / sqrt(mean(x^2) + eps) * w
inline constexpr int kNormLayer = 1;  // (x - mean) / sqrt(var + eps) * w + b (biased variance)

// cpu::NormParams on the device. Row r of a norm uses weight row r % weight_rows of `size` floats.
struct NormParamsDev {
  int kind = kNormRms;  // kNormRms, kNormLayer or kNormNone
  float eps = 1e-6f;
  const float* weight = nullptr;  // [weight_rows, size] fp32, or null: 1
  int64_t weight_rows = 1;
  const float* bias = nullptr;  // [size] fp32, or null: 0 (either kind)
};

// For t < num_tokens (only when a branch is set):
//   x[t] += residual_scale * (post(branch0[t]) + branch1[t])     post = branch0_norm (kNormNone: identity)
// then for r < num_rows (only when out is set):
//   out[r] = half(out_norm(x[row_index ? row_index[r] : r]))      out_norm kNormNone: half(x)
// Weight rows: branch0_norm's row t, out_norm's row r (of the output, after the gather).
// The post-norm is computed in fp32 from the fp16 branch values and is not rounded before the add.
// One launch, except with row_index and a branch: then the update and the gathered norm are two launches (a
// gathered row may be one that another block updates).
struct ResidualNormArgs {
  float* x = nullptr;                     // [rows of the stream, hidden_size] fp32 residual stream
  const __half* branch0 = nullptr;        // [num_tokens, hidden_size] or null (attention / MLP output)
  NormParamsDev branch0_norm{kNormNone};  // post-norm of branch0 (Gemma 2/3 post-attention / post-MLP norms)
  const __half* branch1 = nullptr;        // [num_tokens, hidden_size] or null: added unnormed (parallel blocks)
  float residual_scale = 1.0f;
  int64_t num_tokens = 0;  // rows updated: 0 .. num_tokens - 1
  NormParamsDev out_norm{kNormRms};
  __half* out = nullptr;               // [num_rows, hidden_size], or null: update only
  const int32_t* row_index = nullptr;  // [num_rows] gather, or null: row r
  int64_t num_rows = 0;
  int64_t hidden_size = 0;  // 1 .. 16384
};

void launch_residual_norm(const ResidualNormArgs& args, cudaStream_t stream);

// x[r] = half(norm(x[r])) in place for r < rows, rows of `size` halves (per-head q/k norm: rows = tokens * heads,
// size = head_dim, weight_rows = heads or 1). size 1 .. 512; p.kind kNormRms or kNormLayer.
void launch_head_norm(__half* x, int64_t rows, int64_t size, const NormParamsDev& p, cudaStream_t stream);

}  // namespace exl::kernels
