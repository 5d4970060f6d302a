// One linear layer on the GPU in any stored format (FP16/BF16/FP32 -> FP16, EXL2, GPTQ), repacked at load into
// the layout its kernels want. Few tokens: fused dequantize-and-multiply GEMV; many: dequantize into a scratch
// FP16 matrix + cuBLAS tensor-core GEMM.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "quant/linear_weight.h"

namespace exl::cuda {

struct LinearContext {
  cudaStream_t stream = nullptr;
  void* cublas = nullptr;           // cublasHandle_t
  __half* scratch = nullptr;        // >= max_scratch_elements() halves, for dequantized weights
  int64_t scratch_elements = 0;
};

class CudaLinear {
 public:
  CudaLinear();
  ~CudaLinear();
  CudaLinear(CudaLinear&&) noexcept;
  CudaLinear& operator=(CudaLinear&&) noexcept;
  static CudaLinear create(const quant::LinearWeight& weight);  // uploads (and repacks) the weights

  int64_t in_features() const;
  int64_t out_features() const;
  size_t device_bytes() const;
  int64_t scratch_elements_needed() const;  // for the dequantize + GEMM path

  // y [num_tokens, out_features] = x [num_tokens, in_features] . W (+ bias); fp16 in and out, fp32 accumulate.
  // Captured into CUDA graphs: no allocation, no synchronization, no host work that depends on data.
  void forward(const __half* x, __half* y, int64_t num_tokens, const LinearContext& ctx) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace exl::cuda
