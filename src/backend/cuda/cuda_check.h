// Checking every CUDA runtime and cuBLAS call: failures become exl::Error (kCuda, or kOutOfMemory) naming the op.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace exl::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* what, const char* file, int line);

}  // namespace exl::cuda

#define EXL_CUDA_CHECK(call)                                                       \
  do {                                                                             \
    cudaError_t exl_err_ = (call);                                                 \
    if (exl_err_ != cudaSuccess) ::exl::cuda::throw_cuda_error(exl_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors (and, with EXL_CUDA_SYNC_CHECK, execution errors).
#define EXL_CUDA_CHECK_LAUNCH(op_name)                                                               \
  do {                                                                                               \
    cudaError_t exl_err_ = cudaGetLastError();                                                       \
    if (exl_err_ != cudaSuccess) ::exl::cuda::throw_cuda_error(exl_err_, op_name, __FILE__, __LINE__); \
  } while (0)

#define EXL_CUBLAS_CHECK(call)                                                            \
  do {                                                                                    \
    cublasStatus_t exl_st_ = (call);                                                      \
    if (exl_st_ != CUBLAS_STATUS_SUCCESS) ::exl::cuda::throw_cublas_error(exl_st_, #call, __FILE__, __LINE__); \
  } while (0)
