// A fragment-ordered input (one token): x of one quantized matrix, already gathered through the matrix's row
// permutation into the order its one-token GEMV (gemv_one) feeds the mma B operand (quant::frag_half_index of the
// padded row), pad rows 0. The kernel that produces x (add_rms_norm, attention_decode's combine, gemv_one's paired
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
};

inline constexpr int kMaxFragTargets = 3;

}  // namespace exl::kernels
