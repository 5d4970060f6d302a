// Throwing side of kernels/kernel_check.h (kernel .cu files stay free of fmt).
#include "backend/cuda/cuda_check.h"
#include "kernels/kernel_check.h"

namespace exl::kernels {

void raise_launch_error(cudaError_t err, const char* op) { cuda::throw_cuda_error(err, op, "kernel launch", 0); }

void raise_kernel_error(KernelErrorKind kind, const char* message) {
  throw Error(kind == KernelErrorKind::kUnsupported ? ErrorKind::kUnsupported : ErrorKind::kInvalidArgument, message);
}

}  // namespace exl::kernels
