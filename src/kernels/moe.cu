// MoE row movement, the FP16 expert GEMV and the weighted combine (moe.cuh).
// Threads: gather/scatter and combine are grid-stride loops of 256-thread blocks over the elements; moe_gemv_f16 runs
// one warp per output column (8 per block, grid.y = slot): each lane reads 16-byte runs of the expert's row and of
// x, accumulates in fp32, and the warp sums with shuffles (fixed order: the same bits every run).
#include <algorithm>
#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/moe.cuh"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;
constexpr int kGemvWarps = 8;

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks)));
}

template <bool kScatter>
__global__ void move_rows_kernel(const __half* src, const int32_t* rows, int64_t num_rows, int64_t width,
                                 __half* dst) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = num_rows * width;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / width, c = e - i * width;
    const int64_t r = rows[i];
    if (kScatter)
      dst[r * width + c] = src[e];
    else
      dst[e] = src[r * width + c];
  }
}

__global__ void __launch_bounds__(kGemvWarps * 32) moe_gemv_f16_kernel(MoeGemvF16Args a) {
  pdl_wait();
  pdl_launch_dependents();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t s = blockIdx.y;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
  if (n >= a.n) return;
  const int32_t e = a.ids[s];
  const uint4* w = reinterpret_cast<const uint4*>(a.weights[e] + n * a.k);
  const uint4* x = reinterpret_cast<const uint4*>(a.x + (s / a.x_div) * a.k);
  float acc = 0.0f;
  for (int64_t i = lane; i < a.k / 8; i += 32) {
    const uint4 wv = __ldg(w + i), xv = x[i];
    const __half2* wh = reinterpret_cast<const __half2*>(&wv);
    const __half2* xh = reinterpret_cast<const __half2*>(&xv);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 wf = __half22float2(wh[j]), xf = __half22float2(xh[j]);
      acc = fmaf(wf.x, xf.x, acc);
      acc = fmaf(wf.y, xf.y, acc);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) {
    if (a.biases != nullptr && a.biases[e] != nullptr) acc += __half2float(a.biases[e][n]);
    a.y[s * a.n + n] = __float2half_rn(acc);
  }
}

__global__ void combine_kernel(MoeCombineArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = a.num_tokens * a.hidden;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / a.hidden, c = e - t * a.hidden;
    float v = 0.0f;
    for (int64_t j = 0; j < a.top_k; ++j) {
      const int64_t slot = t * a.top_k + j;
      v = fmaf(a.weights[slot], __half2float(a.expert_out[slot * a.hidden + c]), v);
    }
    if (a.shared != nullptr) {
      float g = 1.0f;
      if (a.shared_gate != nullptr) g = 1.0f / (1.0f + expf(-__half2float(a.shared_gate[t])));
      v = fmaf(g, __half2float(a.shared[e]), v);
    }
    a.out[e] = __float2half_rn(v);
  }
}

void check_rows(const char* op, const __half* src, const int32_t* rows, int64_t num_rows, int64_t width,
                const __half* dst) {
  if (num_rows < 0 || width < 0 || ((num_rows > 0 && width > 0) && (src == nullptr || rows == nullptr || dst == nullptr)))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %lld rows of %lld halves (null pointers?)", op,
                        static_cast<long long>(num_rows), static_cast<long long>(width));
}

}  // namespace

void launch_gather_rows(const __half* src, const int32_t* rows, int64_t num_rows, int64_t width, __half* dst,
                        cudaStream_t stream) {
  check_rows("gather_rows", src, rows, num_rows, width, dst);
  if (num_rows == 0 || width == 0) return;
  launch_pdl("gather_rows", move_rows_kernel<false>, dim3(grid_for(num_rows * width)), dim3(kThreads), 0, stream, src,
             rows, num_rows, width, dst);
}

void launch_scatter_rows(const __half* src, const int32_t* rows, int64_t num_rows, int64_t width, __half* dst,
                         cudaStream_t stream) {
  check_rows("scatter_rows", src, rows, num_rows, width, dst);
  if (num_rows == 0 || width == 0) return;
  launch_pdl("scatter_rows", move_rows_kernel<true>, dim3(grid_for(num_rows * width)), dim3(kThreads), 0, stream, src,
             rows, num_rows, width, dst);
}

void launch_moe_gemv_f16(const MoeGemvF16Args& a, cudaStream_t stream) {
  if (a.weights == nullptr || a.ids == nullptr || a.x == nullptr || a.y == nullptr || a.num_slots < 0 ||
      a.num_slots > 65535 || a.n < 1 || a.k < 8 || a.k % 8 != 0 || a.x_div < 1 ||
      reinterpret_cast<uintptr_t>(a.x) % 16 != 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "moe_gemv_f16: %lld slots of %lld x %lld (x_div %lld): needs k %% 8 == 0, 16-byte aligned "
                        "x, at most 65535 slots and every pointer",
                        static_cast<long long>(a.num_slots), static_cast<long long>(a.k), static_cast<long long>(a.n),
                        static_cast<long long>(a.x_div));
  if (a.num_slots == 0) return;
  const dim3 grid(static_cast<unsigned>((a.n + kGemvWarps - 1) / kGemvWarps), static_cast<unsigned>(a.num_slots));
  launch_pdl("moe_gemv_f16", moe_gemv_f16_kernel, grid, dim3(kGemvWarps * 32), 0, stream, a);
}

void launch_moe_combine(const MoeCombineArgs& a, cudaStream_t stream) {
  if (a.num_tokens < 0 || a.top_k < 0 || a.hidden < 0 || a.out == nullptr ||
      (a.top_k > 0 && (a.expert_out == nullptr || a.weights == nullptr)))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "moe_combine: %lld tokens x %lld experts x %lld (null "
                        "pointers?)", static_cast<long long>(a.num_tokens), static_cast<long long>(a.top_k),
                        static_cast<long long>(a.hidden));
  if (a.num_tokens == 0 || a.hidden == 0) return;
  launch_pdl("moe_combine", combine_kernel, dim3(grid_for(a.num_tokens * a.hidden)), dim3(kThreads), 0, stream, a);
}

}  // namespace exl::kernels
