#include "backend/cuda/cuda_check.h"

#include <filesystem>

namespace exl::cuda {

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  const std::string where = std::filesystem::path(file).filename().string() + ":" + std::to_string(line);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free allocation error
    fail(ErrorKind::kOutOfMemory, "CUDA out of memory in {} ({})", what, where);
  }
  fail(ErrorKind::kCuda, "CUDA error in {}: {} ({}) at {}", what, cudaGetErrorString(err), cudaGetErrorName(err), where);
}

void throw_cublas_error(cublasStatus_t status, const char* what, const char* file, int line) {
  const std::string where = std::filesystem::path(file).filename().string() + ":" + std::to_string(line);
  fail(status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorKind::kOutOfMemory : ErrorKind::kCuda,
       "cuBLAS error in {}: {} ({}) at {}", what, cublasGetStatusName(status), cublasGetStatusString(status), where);
}

}  // namespace exl::cuda
