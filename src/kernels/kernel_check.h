// Error reporting for kernel launch code without fmt (nvcc's front end cannot compile fmt's format-string
// checks): messages are formatted with snprintf and thrown as exl::Error by functions defined in backend/cuda.
// Also env_switch, the on/off switches of the kernels' A/B runs.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

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

// An on/off switch from the environment (A/B runs): unset gives `fallback`; a switch that is on by default is off
// only for "0", one that is off by default is on only for "1".
inline bool env_switch(const char* name, bool fallback) {
  const char* e = std::getenv(name);
  if (e == nullptr) return fallback;
  return fallback ? std::strcmp(e, "0") != 0 : std::strcmp(e, "1") == 0;
}

}  // namespace exl::kernels
