// RMSNorm of the fp32 residual stream, optionally adding a layer's fp16 output into it first.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/frag.cuh"

namespace exl::kernels {

struct AddRmsNormArgs {
  float* x = nullptr;               // [rows of the stream, hidden_size] residual stream, updated in place
  const __half* residual = nullptr; // same shape as x, or null: x += residual before the norm
  const float* weight = nullptr;    // [hidden_size]
  __half* out = nullptr;            // [num_rows, hidden_size]
  const int32_t* row_index = nullptr;  // [num_rows] rows of x to use (gather), or null: row r of x
  int64_t num_rows = 0;
  int64_t hidden_size = 0;
  float eps = 1e-6f;
  // One row only (num_rows == 1): the normalized row also goes, in fragment order, to each target (frag.cuh): the
  // inputs of the one-token GEMVs that read it.
  FragTarget frag[kMaxFragTargets];
  int32_t num_frag = 0;
};

void launch_add_rms_norm(const AddRmsNormArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
