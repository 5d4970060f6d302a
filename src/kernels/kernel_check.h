// Error reporting for kernel launch code without fmt (nvcc's front end cannot compile fmt's format-string
// checks): messages are formatted with snprintf and thrown as exl::Error by functions defined in backend/cuda.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

namespace exl::kernels {

enum class KernelErrorKind { kInvalidArgument, kUnsupported };

[[noreturn]] void raise_launch_error(cudaError_t err, const char* op);  // exl::Error kCuda (kOutOfMemory)
[[noreturn]] void raise_kernel_error(KernelErrorKind kind, const char* message);

template <typename... Args>
[[noreturn]] void raise_kernel_errorf(KernelErrorKind kind, const char* format, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), format, args...);
  raise_kernel_error(kind, buf);
}

// After a launch: configuration errors become exl::Error naming the op.
inline void check_launch(const char* op) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) raise_launch_error(err, op);
}

inline void check_cuda(cudaError_t err, const char* op) {
  if (err != cudaSuccess) raise_launch_error(err, op);
}

}  // namespace exl::kernels
