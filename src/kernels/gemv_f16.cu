// gemv_f16 (gemv_f16.cuh). A warp per output row at a time (rows strided over all warps of a grid sized to the
// resident capacity); a lane reads 16-byte chunks k = 8 * (lane + 32 j) of the row, kBatch of them in flight, and
// multiplies them with x from shared memory in fp32; lane sums by shuffles in a fixed order (deterministic).
// Before the PDL wait (weights only): each warp's first batch of its first row. After it: x into shared memory.
#include "kernels/gemv_f16.cuh"

#include <algorithm>
#include <atomic>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// 16-byte loads in flight per lane (GemvF16Args::tuning, kBatch): 16 by default (8 KB per warp; the fp16 Llama-3 head
// alone at 3.10 TB/s against 2.93 with 4 and cuBLAS's 2.78 on H100), or 4 or 8.

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __half2* wh = reinterpret_cast<const __half2*>(&w);
  const __half2* xh = reinterpret_cast<const __half2*>(&x);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = __half22float2(wh[i]), b = __half22float2(xh[i]);
    s = fmaf(a.x, b.x, s);
    s = fmaf(a.y, b.y, s);
  }
  return s;
}

template <int kBatch>
__global__ void __launch_bounds__(kThreads, kBatch <= 8 ? 4 : 2) gemv_f16_kernel(GemvF16Args a) {
  extern __shared__ uint4 x_s[];  // [k / 8]
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  const int64_t warp0 = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int chunks = static_cast<int>(a.k / 8);  // 16-byte chunks per row
  const uint4* w = reinterpret_cast<const uint4*>(a.w);

  // The first batch of the first row, before the wait (weights are not written by any kernel of the step).
  uint4 buf[kBatch];
  int64_t row = warp0;
  if (row < a.n) {
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      const int c = lane + 32 * j;
      if (c < chunks) buf[j] = __ldcs(w + row * chunks + c);
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  const uint4* x = reinterpret_cast<const uint4*>(a.x);
  for (int c = threadIdx.x; c < chunks; c += kThreads) x_s[c] = x[c];
  __syncthreads();

  for (; row < a.n; row += warps) {
    const uint4* wr = w + row * chunks;
    float s = 0.0f;
    for (int c0 = 0; c0 < chunks; c0 += 32 * kBatch) {
      if (c0 > 0) {
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
          const int c = c0 + lane + 32 * j;
          if (c < chunks) buf[j] = __ldcs(wr + c);
        }
      }
#pragma unroll
      for (int j = 0; j < kBatch; ++j) {
        const int c = c0 + lane + 32 * j;
        if (c < chunks) s += dot8(buf[j], x_s[c]);
      }
    }
    // The next row's first batch flies during this row's reduction.
    const int64_t next = row + warps;
    if (next < a.n) {
#pragma unroll
      for (int j = 0; j < kBatch; ++j) {
        const int c = lane + 32 * j;
        if (c < chunks) buf[j] = __ldcs(w + next * chunks + c);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) {
      if (a.bias != nullptr) s += __half2float(a.bias[row]);
      a.y[row] = __float2half_rn(s);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool gemv_f16_supported(const GemvF16Args& a) {
  return a.k >= 8 && a.k <= kGemvF16MaxK && a.k % 8 == 0 && a.n >= 1 && aligned16(a.w) && aligned16(a.x);
}

void launch_gemv_f16(const GemvF16Args& a, cudaStream_t stream) {
  if (!gemv_f16_supported(a) || a.y == nullptr)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "gemv_f16: needs 8 <= k <= %lld with k %% 8 == 0, n >= 1, 16-byte aligned weight and input, "
                        "an output (n %lld, k %lld)",
                        static_cast<long long>(kGemvF16MaxK), static_cast<long long>(a.n),
                        static_cast<long long>(a.k));
  const int batch = a.tuning.batch;
  if (batch != 4 && batch != 8 && batch != 16)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_f16: %d loads in flight per lane (4, 8 or 16)",
                        static_cast<int>(batch));
  auto kernel = batch == 4 ? gemv_f16_kernel<4> : batch == 16 ? gemv_f16_kernel<16> : gemv_f16_kernel<8>;
  // Blocks per SM x SMs at the largest shared memory, per process (one kind of GPU) and batch, computed once.
  static std::atomic<int> cached[3];  // batch 4, 8, 16; 0: not computed yet
  std::atomic<int>& slot = cached[batch == 4 ? 0 : batch == 8 ? 1 : 2];
  int resident = slot.load(std::memory_order_relaxed);
  if (resident == 0) {
    int device = 0, sms = 0, per_sm = 0;
    check_cuda(cudaGetDevice(&device), "gemv_f16: cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "gemv_f16: SM count");
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads,
                                                             static_cast<size_t>(kGemvF16MaxK) * 2),
               "gemv_f16: occupancy");
    resident = std::max(1, per_sm) * std::max(1, sms);
    slot.store(resident, std::memory_order_relaxed);
  }
  const int64_t want = (a.n + kWarps - 1) / kWarps;
  const int blocks = static_cast<int>(std::min<int64_t>(want, resident));
  launch_pdl("gemv_f16", kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads),
             static_cast<size_t>(a.k) * 2, stream, a);
}

}  // namespace exl::kernels
