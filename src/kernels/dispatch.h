// Turning runtime sizes into template parameters: one list of supported head_dim values, whose text also forms the
// kUnsupported message. Host-only; included by the kernel .cu files.
#pragma once

#include <cstdint>
#include <utility>

#include "kernels/kernel_check.h"

namespace exl::kernels {

inline constexpr const char* kSupportedHeadDims = "32, 64, 80, 96, 128, 256";

// Calls fn(std::integral_constant<int, D>{}) for the supported head_dim D; kUnsupported naming `op` otherwise.
template <typename Fn>
void dispatch_head_dim(int64_t head_dim, const char* op, Fn&& fn) {
  switch (head_dim) {
    case 32: fn(std::integral_constant<int, 32>{}); return;
    case 64: fn(std::integral_constant<int, 64>{}); return;
    case 80: fn(std::integral_constant<int, 80>{}); return;
    case 96: fn(std::integral_constant<int, 96>{}); return;
    case 128: fn(std::integral_constant<int, 128>{}); return;
    case 256: fn(std::integral_constant<int, 256>{}); return;
    default:
      raise_kernel_errorf(KernelErrorKind::kUnsupported, "%s: head_dim %lld is not supported (supported: %s)", op,
                          static_cast<long long>(head_dim), kSupportedHeadDims);
  }
}

inline bool head_dim_supported(int64_t head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128 || head_dim == 256;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace exl::kernels
