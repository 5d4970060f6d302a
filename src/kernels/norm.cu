// x[t] += s * (post(b0[t]) + b1[t]) (t < T); out[r] = half(norm(x[row_index[r] or r])), norm as cpu::norm:
// RMS: v / sqrt(mean(v^2) + eps) * w; LayerNorm: (v - mean(v)) / sqrt(mean((v - mean)^2) + eps) * w + b.
// Shapes: x fp32 [*, H]; b0, b1 fp16 [T, H]; out fp16 [num_rows, H]; weights fp32 [weight_rows, H]; bias [H].
// Head norm: x fp16 [rows, size] normed in place.
// Threads: residual_norm: one block of 512 per row (grid max(T, num_rows), or T then num_rows when a gathered norm
// follows an update); thread t owns elements k * 512 + t, k < S (S the smallest power of two with 512 S >= H),
// held in registers between the reductions; each block reads and writes only its own row of x. head_norm: one warp
// per row, lane l owns elements k * 32 + l, k < S (32 S >= size), 8 rows per block. Reductions in fp32 (warp
// shuffles, then one shared slot per warp summed in a fixed order: the same result in every thread); LayerNorm
// takes two passes (mean, then the squared deviations), as the CPU op. Every thread waits for the previous kernel
// (pdl_wait) before its first load. Constraints: H <= 16384, size <= 512.
#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/norm.cuh"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHidden = 16384;
constexpr int kHeadRowsPerBlock = 8;
constexpr int kMaxHeadSize = 512;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum over kThreads threads; every thread returns the same value. Ends with a barrier, so `shared` can
// be reused by the next call.
struct BlockSum {
  float* shared;  // [kWarps]
  __device__ float operator()(float v) const {
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += shared[w];
    __syncthreads();
    return total;
  }
};

struct WarpSum {
  __device__ float operator()(float v) const { return warp_sum(v); }
};

// v[k] holds element k * kStride + lane (valid when < n); normalized in place. `sum` reduces over the threads that
// share the row (all of them call it: no early exit between here and the caller's branch on the row).
template <int S, int kStride, typename Sum>
__device__ __forceinline__ void norm_regs(float (&v)[S], int n, int lane, const NormParamsDev& p, int64_t row,
                                          const Sum& sum) {
  float mean = 0.0f;
  if (p.kind == kNormLayer) {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < S; ++k)
      if (k * kStride + lane < n) s += v[k];
    mean = sum(s) / static_cast<float>(n);
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < S; ++k) {
    if (k * kStride + lane < n) {
      const float d = v[k] - mean;
      ss += d * d;
    }
  }
  const float inv = 1.0f / sqrtf(sum(ss) / static_cast<float>(n) + p.eps);
  const float* w = p.weight ? p.weight + (row % p.weight_rows) * n : nullptr;
#pragma unroll
  for (int k = 0; k < S; ++k) {
    const int i = k * kStride + lane;
    if (i < n) {
      float y = (v[k] - mean) * inv;
      if (w) y *= w[i];
      if (p.bias) y += p.bias[i];
      v[k] = y;
    }
  }
}

// update: rows r < num_tokens get the branch update; write_out: rows r < num_rows get their output (gathered through
// row_index only when !update, see launch_residual_norm).
template <int S>
__global__ void __launch_bounds__(kThreads) residual_norm_kernel(ResidualNormArgs a, int update, int write_out) {
  __shared__ float shared[kWarps];
  const BlockSum sum{shared};
  const int n = static_cast<int>(a.hidden_size);
  const int tid = threadIdx.x;
  const int64_t r = blockIdx.x;

  pdl_wait();
  pdl_launch_dependents();

  float v[S];
  bool have_row = false;  // v holds x[r] already (just updated)
  if (update && r < a.num_tokens) {
    float u[S];
    const __half* b0 = a.branch0 ? a.branch0 + r * n : nullptr;
    const __half* b1 = a.branch1 ? a.branch1 + r * n : nullptr;
#pragma unroll
    for (int k = 0; k < S; ++k) {
      const int i = k * kThreads + tid;
      u[k] = (b0 && i < n) ? __half2float(b0[i]) : 0.0f;
    }
    if (b0 && a.branch0_norm.kind != kNormNone) norm_regs<S, kThreads>(u, n, tid, a.branch0_norm, r, sum);
    float* x = a.x + r * n;
#pragma unroll
    for (int k = 0; k < S; ++k) {
      const int i = k * kThreads + tid;
      v[k] = 0.0f;
      if (i < n) {
        float s = u[k];
        if (b1) s += __half2float(b1[i]);
        v[k] = x[i] + a.residual_scale * s;
        x[i] = v[k];
      }
    }
    have_row = true;
  }
  if (!write_out || r >= a.num_rows) return;
  if (!have_row) {
    const int64_t src = a.row_index ? a.row_index[r] : r;
    const float* x = a.x + src * n;
#pragma unroll
    for (int k = 0; k < S; ++k) {
      const int i = k * kThreads + tid;
      v[k] = i < n ? x[i] : 0.0f;
    }
  }
  if (a.out_norm.kind != kNormNone) norm_regs<S, kThreads>(v, n, tid, a.out_norm, r, sum);
  __half* out = a.out + r * n;
#pragma unroll
  for (int k = 0; k < S; ++k) {
    const int i = k * kThreads + tid;
    if (i < n) out[i] = __float2half_rn(v[k]);
  }
}

template <int S>
__global__ void __launch_bounds__(kHeadRowsPerBlock * 32)
    head_norm_kernel(__half* x, int64_t rows, int n, NormParamsDev p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kHeadRowsPerBlock + threadIdx.x / 32;
  pdl_wait();
  pdl_launch_dependents();
  if (row >= rows) return;  // whole warps only
  __half* xr = x + row * n;
  float v[S];
#pragma unroll
  for (int k = 0; k < S; ++k) {
    const int i = k * 32 + lane;
    v[k] = i < n ? __half2float(xr[i]) : 0.0f;
  }
  norm_regs<S, 32>(v, n, lane, p, row, WarpSum{});
#pragma unroll
  for (int k = 0; k < S; ++k) {
    const int i = k * 32 + lane;
    if (i < n) xr[i] = __float2half_rn(v[k]);
  }
}

const char* kind_name(int kind) {
  return kind == kNormRms ? "rms" : kind == kNormLayer ? "layer" : kind == kNormNone ? "none" : "invalid";
}

void check_params(const NormParamsDev& p, bool allow_none, const char* op, const char* which) {
  if (p.kind != kNormRms && p.kind != kNormLayer && !(allow_none && p.kind == kNormNone))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %s norm kind %d is not supported (%s)", op, which,
                        p.kind, kind_name(p.kind));
  if (p.kind != kNormNone && (p.weight_rows < 1 || !(p.eps >= 0.0f)))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %s norm has weight_rows %lld and eps %g", op, which,
                        static_cast<long long>(p.weight_rows), static_cast<double>(p.eps));
}

void launch_residual(const ResidualNormArgs& a, int64_t blocks, int update, int write_out, cudaStream_t stream) {
  const char* op = "residual_norm";
  if (blocks > 0x7fffffff)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "%s: %lld rows are too many", op,
                        static_cast<long long>(blocks));
  const dim3 grid(static_cast<unsigned>(blocks)), block(kThreads);
  const int64_t per_thread = (a.hidden_size + kThreads - 1) / kThreads;
  if (per_thread <= 1)
    launch_pdl(op, residual_norm_kernel<1>, grid, block, 0, stream, a, update, write_out);
  else if (per_thread <= 2)
    launch_pdl(op, residual_norm_kernel<2>, grid, block, 0, stream, a, update, write_out);
  else if (per_thread <= 4)
    launch_pdl(op, residual_norm_kernel<4>, grid, block, 0, stream, a, update, write_out);
  else if (per_thread <= 8)
    launch_pdl(op, residual_norm_kernel<8>, grid, block, 0, stream, a, update, write_out);
  else if (per_thread <= 16)
    launch_pdl(op, residual_norm_kernel<16>, grid, block, 0, stream, a, update, write_out);
  else
    launch_pdl(op, residual_norm_kernel<32>, grid, block, 0, stream, a, update, write_out);
}

}  // namespace

void launch_residual_norm(const ResidualNormArgs& a, cudaStream_t stream) {
  const char* op = "residual_norm";
  static_assert(kThreads * 32 == kMaxHidden, "the largest instance covers the largest row");
  if (a.hidden_size < 1 || a.hidden_size > kMaxHidden)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "%s: hidden_size %lld is outside [1, %d]", op,
                        static_cast<long long>(a.hidden_size), kMaxHidden);
  if (a.num_tokens < 0 || a.num_rows < 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %lld tokens, %lld rows", op,
                        static_cast<long long>(a.num_tokens), static_cast<long long>(a.num_rows));
  check_params(a.branch0_norm, true, op, "branch0");
  check_params(a.out_norm, true, op, "output");
  if (a.branch0 == nullptr && a.branch0_norm.kind != kNormNone)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: a post-norm (%s) without branch0", op,
                        kind_name(a.branch0_norm.kind));
  const bool update = (a.branch0 != nullptr || a.branch1 != nullptr) && a.num_tokens > 0;
  const bool write_out = a.out != nullptr && a.num_rows > 0;
  if (a.out == nullptr && a.num_rows > 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %lld output rows without an output", op,
                        static_cast<long long>(a.num_rows));
  if (a.x == nullptr && (update || write_out))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: no residual stream", op);
  if (update && write_out && a.row_index != nullptr) {
    // A gathered row may be one that another block updates: update first, then norm.
    launch_residual(a, a.num_tokens, 1, 0, stream);
    launch_residual(a, a.num_rows, 0, 1, stream);
  } else if (update || write_out) {
    const int64_t blocks = update && write_out ? (a.num_tokens > a.num_rows ? a.num_tokens : a.num_rows)
                           : update            ? a.num_tokens
                                               : a.num_rows;
    launch_residual(a, blocks, update ? 1 : 0, write_out ? 1 : 0, stream);
  }
}

void launch_head_norm(__half* x, int64_t rows, int64_t size, const NormParamsDev& p, cudaStream_t stream) {
  const char* op = "head_norm";
  if (size < 1 || size > kMaxHeadSize)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "%s: size %lld is outside [1, %d]", op,
                        static_cast<long long>(size), kMaxHeadSize);
  check_params(p, false, op, "head");
  if (rows < 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: %lld rows", op, static_cast<long long>(rows));
  if (rows == 0) return;
  const int64_t blocks = (rows + kHeadRowsPerBlock - 1) / kHeadRowsPerBlock;
  if (blocks > 0x7fffffff)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "%s: %lld rows are too many", op, static_cast<long long>(rows));
  const dim3 grid(static_cast<unsigned>(blocks)), block(kHeadRowsPerBlock * 32);
  const int n = static_cast<int>(size);
  const int64_t per_lane = (size + 31) / 32;
  if (per_lane <= 1)
    launch_pdl(op, head_norm_kernel<1>, grid, block, 0, stream, x, rows, n, p);
  else if (per_lane <= 2)
    launch_pdl(op, head_norm_kernel<2>, grid, block, 0, stream, x, rows, n, p);
  else if (per_lane <= 4)
    launch_pdl(op, head_norm_kernel<4>, grid, block, 0, stream, x, rows, n, p);
  else if (per_lane <= 8)
    launch_pdl(op, head_norm_kernel<8>, grid, block, 0, stream, x, rows, n, p);
  else
    launch_pdl(op, head_norm_kernel<16>, grid, block, 0, stream, x, rows, n, p);
}

}  // namespace exl::kernels
