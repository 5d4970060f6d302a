// clamp: x[i] = half(v < -l ? -l : (l < v ? l : v)), v = float(x[i]) (std::clamp's comparisons: NaN passes).
// logits_transform: x[r, c] = half(softcap(float(x[r, c]) * col_scale[c] * scale)), softcap(v) = cap tanh(v / cap),
// each step optional, in fp32 with one rounding, in the order of the CPU runner.
// Shapes: clamp fp16 [n]; logits fp16 rows of vocab halves, row_stride apart; col_scale fp32 [vocab].
// Threads: grid-stride loops of 256-thread blocks over the elements (logits: over rows * vocab, 64-bit indices).
// Every thread waits for the previous kernel (pdl_wait) before its first load.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/elementwise.cuh"
#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

__global__ void clamp_kernel(__half* x, int64_t n, float limit) {
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = __half2float(x[i]);
    x[i] = __float2half_rn(v < -limit ? -limit : (limit < v ? limit : v));
  }
}

__global__ void logits_transform_kernel(LogitsTransformArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = a.rows * a.vocab;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / a.vocab, c = e - r * a.vocab;
    __half* p = a.logits + r * a.row_stride + c;
    float v = __half2float(*p);
    if (a.col_scale) v = __fmul_rn(v, a.col_scale[c]);
    v = __fmul_rn(v, a.scale);
    if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
    *p = __float2half_rn(v);
  }
}

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

}  // namespace

void launch_clamp(__half* x, int64_t n, float limit, cudaStream_t stream) {
  if (n < 0 || !(limit > 0.0f))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "clamp: %lld elements, limit %g (must be > 0)",
                        static_cast<long long>(n), static_cast<double>(limit));
  if (n == 0) return;
  launch_pdl("clamp", clamp_kernel, dim3(grid_for(n)), dim3(kThreads), 0, stream, x, n, limit);
}

void launch_logits_transform(const LogitsTransformArgs& args, cudaStream_t stream) {
  LogitsTransformArgs a = args;
  if (a.row_stride == 0) a.row_stride = a.vocab;
  if (a.rows < 0 || a.vocab < 0 || a.row_stride < a.vocab || !(a.softcap >= 0.0f) || !std::isfinite(a.scale))
    raise_kernel_errorf(
        KernelErrorKind::kInvalidArgument, "logits_transform: %lld rows of %lld (stride %lld), scale %g, softcap %g",
        static_cast<long long>(a.rows), static_cast<long long>(a.vocab), static_cast<long long>(a.row_stride),
        static_cast<double>(a.scale), static_cast<double>(a.softcap));
  if (a.rows == 0 || a.vocab == 0) return;
  if (a.col_scale == nullptr && a.scale == 1.0f && a.softcap == 0.0f) return;
  launch_pdl("logits_transform", logits_transform_kernel, dim3(grid_for(a.rows * a.vocab)), dim3(kThreads), 0, stream,
             a);
}

}  // namespace exl::kernels
