// x[r] += residual[r] (optional); out[r, i] = half(x[r, i] / sqrt(mean(x[r, :]^2) + eps) * weight[i])
// Shapes: x fp32 [*, hidden_size] (row r of the output reads row row_index[r] of x, or r), residual fp16 like x,
// weight fp32 [hidden_size], out fp16 [num_rows, hidden_size].
// Threads: one block of 1024 per output row (batch-1 decode has one row: the whole GPU waits on this block, so it
// is wide); each thread keeps up to kMaxPerThread elements in registers between the sum of squares and the
// scaling, so x is read once. Constraint: hidden_size <= 1024 * kMaxPerThread.
#include "kernels/rms_norm.cuh"

#include "kernels/kernel_check.h"

namespace exl::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kMaxPerThread = 16;  // hidden_size up to 16384

__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += shared[w];
  return total;
}

__global__ void __launch_bounds__(kThreads) add_rms_norm_kernel(AddRmsNormArgs a) {
  __shared__ float partial[kThreads / 32];
  const int64_t r = blockIdx.x;
  const int64_t src = a.row_index ? a.row_index[r] : r;
  float* x = a.x + src * a.hidden_size;
  const __half* res = a.residual ? a.residual + src * a.hidden_size : nullptr;
  const int n = static_cast<int>(a.hidden_size);
  float v[kMaxPerThread];
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxPerThread; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < n) {
      float xi = x[i];
      if (res) {
        xi += __half2float(res[i]);
        x[i] = xi;
      }
      v[j] = xi;
      ss += xi * xi;
    }
  }
  const float total = block_sum(ss, partial);
  const float inv = 1.0f / sqrtf(total / static_cast<float>(n) + a.eps);
  __half* out = a.out + r * a.hidden_size;
#pragma unroll
  for (int j = 0; j < kMaxPerThread; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < n) out[i] = __float2half_rn(v[j] * inv * a.weight[i]);
  }
}

}  // namespace

void launch_add_rms_norm(const AddRmsNormArgs& args, cudaStream_t stream) {
  if (args.hidden_size <= 0 || args.hidden_size > kThreads * kMaxPerThread)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "rms_norm: hidden_size %lld is outside [1, %d]",
                        static_cast<long long>(args.hidden_size), kThreads * kMaxPerThread);
  if (args.num_rows == 0) return;
  add_rms_norm_kernel<<<static_cast<unsigned>(args.num_rows), kThreads, 0, stream>>>(args);
  check_launch("add_rms_norm");
}

}  // namespace exl::kernels
