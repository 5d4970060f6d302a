// A fragment-ordered input (one token): x of one quantized matrix, already gathered through the matrix's row
// permutation into the order its one-token GEMV (gemv_one) feeds the mma B operand (quant::frag_half_index of the
// padded row), pad rows 0. The kernel that produces x (add_rms_norm, attention_decode's merge, gemv_one's paired
// SwiGLU epilogue) writes input feature n at dest[n] and 0 at every pads[i]; the GEMV then stages its slice with
// 16-byte copies instead of a dependent gather through perm in every block. The targets (dest, pads) belong to the
// consuming matrix (CudaLinear::frag_target); out is a buffer of at least that matrix's padded rows.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace exl::kernels {

struct FragTarget {
  __half* out = nullptr;          // [padded_rows]
  const int32_t* dest = nullptr;  // [in_features]: half index of input feature n
  const int32_t* pads = nullptr;  // [num_pads]: half indices of pad rows (written as 0)
  int32_t num_pads = 0;
  // The inverse map, for a producer that holds the whole row (add_rms_norm, one block): src[p] is the input feature
  // at half p, or -1 for a pad, p < num_out (the padded rows). With it the producer gathers from shared memory and
  // writes out with coalesced 16-byte stores instead of one scattered 2-byte store per feature. Optional (null: the
  // producer scatters through dest).
  const int32_t* src = nullptr;
  int32_t num_out = 0;
};

inline constexpr int kMaxFragTargets = 3;

// The fp32 form, for an input that still needs its RMSNorm scale: out[dest[n]] = x[n] * norm_weight[n].
struct FragTarget32 {
  float* out = nullptr;           // [padded_rows]
  const int32_t* dest = nullptr;  // [in_features]
  const int32_t* pads = nullptr;  // [num_pads]
  int32_t num_pads = 0;
};

// RMSNorm fused across a GEMV pair (one token), replacing the add_rms_norm launch between them:
//  * the producer (a one-token GEMV whose output is added to the fp32 residual stream x) ends with, per column n:
//    x[n] += half(y[n]); targets[t].out[dest[n]] = x[n] * weight[n]; and per block b the sum of x[n]^2 over its
//    columns in partials[b] (FragResidual);
//  * the consumer (the next GEMV) sums partials[0 .. count) in a fixed order, so the result is deterministic, and
//    stages its input as half(x_frag32 * rsqrt(sum / hidden + eps)) (FragNorm).
struct FragResidual {
  float* x = nullptr;             // [hidden] residual stream, updated in place
  const float* weight = nullptr;  // [hidden] the norm's weight
  float* partials = nullptr;      // [producer blocks]
  FragTarget32 targets[kMaxFragTargets];
  int32_t num_targets = 0;
};
struct FragNorm {
  const float* partials = nullptr;
  int32_t count = 0;   // producer blocks
  int32_t hidden = 0;
  float eps = 1e-6f;
};

}  // namespace exl::kernels
