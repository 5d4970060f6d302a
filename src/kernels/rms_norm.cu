// x[r] += residual[r] (optional); out[r, i] = half(x[r, i] / sqrt(mean(x[r, :]^2) + eps) * weight[i])
// Shapes: x fp32 [*, hidden_size] (row r of the output reads row row_index[r] of x, or r), residual fp16 like x,
// weight fp32 [hidden_size], out fp16 [num_rows, hidden_size].
// Threads: one block of 512 per output row (batch-1 decode has one row: the whole GPU waits on this block, so the
// dependent chain is kept short). Vector path (hidden_size % 8 == 0, 16-byte aligned pointers): thread t owns the
// 8 consecutive elements [8 (k * 512 + t), +8) for k < 4, loaded as two float4 of x / weight and one uint4 of the
// residual, stored as one uint4 of out; scalar path otherwise (element k * 512 + t, k < 32). The thread's weights
// are loaded before pdl_wait (programmatic dependent launch, pdl.cuh), x and the residual right after it, all
// loads in flight at once; x stays in registers between the sum of squares and the scaling. Block sum: warp
// shuffles, one shared-memory slot per warp, then every warp reduces the 16 slots with shuffles (one barrier).
// One row only: the normalized values also go to up to 3 fragment-ordered targets (frag.cuh), each target's pads
// zeroed. With every target's inverse map (FragTarget::src; the vector path) the row is staged in shared memory and
// each thread writes 8 consecutive halves of a target with one 16-byte store, gathering through src (its first
// 8 entries per target loaded before the wait); otherwise each value is stored at dest[n] (2-byte scattered stores:
// one transaction each, from one SM). Constraint: hidden_size <= 16384.
#include "kernels/rms_norm.cuh"

#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHidden = 16384;

__device__ __forceinline__ float block_sum(float v, float* shared) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  // Lanes l and l + 16 both read slot l % 16: the xor steps below stay within 16 lanes, so every lane ends with
  // the sum of all slots.
  float total = shared[lane % kWarps];
  static_assert(kWarps == 16, "reduction below assumes 16 warps");
#pragma unroll
  for (int o = kWarps / 2; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  return total;
}

// W elements per thread per step (8: vectors; 1: scalars), kSteps steps of kThreads * W elements. kGather: the
// fragment-ordered outputs are gathered through src from a shared-memory copy of the row (W == 8 only).
template <int W, int kSteps, bool kGather>
__global__ void __launch_bounds__(kThreads) add_rms_norm_kernel(AddRmsNormArgs a) {
  static_assert(W == 1 || W == 8, "element width");
  static_assert(!kGather || W == 8, "the gather path is vectorized");
  static_assert(kThreads * W * kSteps >= kMaxHidden, "steps cover the largest row");
  __shared__ float partial[kWarps];
  __shared__ __align__(16) __half row_s[kGather ? kMaxHidden : 8];
  const int n = static_cast<int>(a.hidden_size);
  const int tid = threadIdx.x;

  // Constant weights first (before the wait): they do not depend on the previous kernel.
  float w[kSteps][W];
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    const int i0 = (k * kThreads + tid) * W;
    if (i0 < n) {
      if constexpr (W == 8) {
        const float4 w0 = *reinterpret_cast<const float4*>(a.weight + i0);
        const float4 w1 = *reinterpret_cast<const float4*>(a.weight + i0 + 4);
        w[k][0] = w0.x, w[k][1] = w0.y, w[k][2] = w0.z, w[k][3] = w0.w;
        w[k][4] = w1.x, w[k][5] = w1.y, w[k][6] = w1.z, w[k][7] = w1.w;
      } else {
        w[k][0] = a.weight[i0];
      }
    }
  }

  // Gather path: the thread's first 8 source indices of each target (constants), before the wait too.
  int4 pre[kGather ? kMaxFragTargets : 1][2];
  if constexpr (kGather) {
#pragma unroll
    for (int f = 0; f < kMaxFragTargets; ++f) {
      if (f < a.num_frag && tid * 8 < a.frag[f].num_out) {
        pre[f][0] = *reinterpret_cast<const int4*>(a.frag[f].src + tid * 8);
        pre[f][1] = *reinterpret_cast<const int4*>(a.frag[f].src + tid * 8 + 4);
      }
    }
  }

  pdl_wait();
  pdl_launch_dependents();

  const int64_t r = blockIdx.x;
  const int64_t src = a.row_index ? a.row_index[r] : r;
  float* x = a.x + src * a.hidden_size;
  const __half* res = a.residual ? a.residual + src * a.hidden_size : nullptr;
  float v[kSteps][W];
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    const int i0 = (k * kThreads + tid) * W;
    if (i0 < n) {
      if constexpr (W == 8) {
        const float4 x0 = *reinterpret_cast<const float4*>(x + i0);
        const float4 x1 = *reinterpret_cast<const float4*>(x + i0 + 4);
        v[k][0] = x0.x, v[k][1] = x0.y, v[k][2] = x0.z, v[k][3] = x0.w;
        v[k][4] = x1.x, v[k][5] = x1.y, v[k][6] = x1.z, v[k][7] = x1.w;
      } else {
        v[k][0] = x[i0];
      }
    }
  }
  if (res) {
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      const int i0 = (k * kThreads + tid) * W;
      if (i0 < n) {
        if constexpr (W == 8) {
          const uint4 raw = *reinterpret_cast<const uint4*>(res + i0);
          const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 f = __half22float2(h[e]);
            v[k][2 * e] += f.x;
            v[k][2 * e + 1] += f.y;
          }
          *reinterpret_cast<float4*>(x + i0) = make_float4(v[k][0], v[k][1], v[k][2], v[k][3]);
          *reinterpret_cast<float4*>(x + i0 + 4) = make_float4(v[k][4], v[k][5], v[k][6], v[k][7]);
        } else {
          v[k][0] += __half2float(res[i0]);
          x[i0] = v[k][0];
        }
      }
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    const int i0 = (k * kThreads + tid) * W;
    if (i0 < n) {
#pragma unroll
      for (int e = 0; e < W; ++e) ss += v[k][e] * v[k][e];
    }
  }
  const float total = block_sum(ss, partial);
  const float inv = 1.0f / sqrtf(total / static_cast<float>(n) + a.eps);
  __half* out = a.out + r * a.hidden_size;
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    const int i0 = (k * kThreads + tid) * W;
    if (i0 < n) {
      if constexpr (W == 8) {
        uint4 o;
        __half2* oh = reinterpret_cast<__half2*>(&o);
#pragma unroll
        for (int e = 0; e < 4; ++e)
          oh[e] = __halves2half2(__float2half_rn(v[k][2 * e] * inv * w[k][2 * e]),
                                 __float2half_rn(v[k][2 * e + 1] * inv * w[k][2 * e + 1]));
        *reinterpret_cast<uint4*>(out + i0) = o;
        if constexpr (kGather) *reinterpret_cast<uint4*>(row_s + i0) = o;
      } else {
        out[i0] = __float2half_rn(v[k][0] * inv * w[k][0]);
      }
    }
  }
  if constexpr (kGather) {
    // Fragment-ordered copies gathered from the staged row: 8 consecutive halves per thread and step.
    __syncthreads();
#pragma unroll
    for (int f = 0; f < kMaxFragTargets; ++f) {
      if (f >= a.num_frag) break;
      const FragTarget& ft = a.frag[f];
      for (int p0 = tid * 8; p0 < ft.num_out; p0 += kThreads * 8) {
        int4 s0, s1;
        if (p0 == tid * 8) {
          s0 = pre[f][0], s1 = pre[f][1];
        } else {
          s0 = *reinterpret_cast<const int4*>(ft.src + p0);
          s1 = *reinterpret_cast<const int4*>(ft.src + p0 + 4);
        }
        const int sidx[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
        uint4 o;
        __half* oh = reinterpret_cast<__half*>(&o);
#pragma unroll
        for (int e = 0; e < 8; ++e) oh[e] = sidx[e] >= 0 ? row_s[sidx[e]] : __ushort_as_half(0);
        *reinterpret_cast<uint4*>(ft.out + p0) = o;
      }
    }
  } else {
    // Fragment-ordered copies (one row): the same fp16 values, scattered to each target's dest, pads zeroed.
    for (int f = 0; f < a.num_frag; ++f) {
      const FragTarget& ft = a.frag[f];
#pragma unroll
      for (int k = 0; k < kSteps; ++k) {
        const int i0 = (k * kThreads + tid) * W;
        if (i0 < n) {
#pragma unroll
          for (int e = 0; e < W; ++e) ft.out[ft.dest[i0 + e]] = __float2half_rn(v[k][e] * inv * w[k][e]);
        }
      }
      for (int i = tid; i < ft.num_pads; i += kThreads) ft.out[ft.pads[i]] = __ushort_as_half(0);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_add_rms_norm(const AddRmsNormArgs& args, cudaStream_t stream) {
  if (args.hidden_size <= 0 || args.hidden_size > kMaxHidden)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "rms_norm: hidden_size %lld is outside [1, %d]",
                        static_cast<long long>(args.hidden_size), kMaxHidden);
  if (args.num_rows == 0) return;
  if (args.num_frag < 0 || args.num_frag > kMaxFragTargets || (args.num_frag > 0 && args.num_rows != 1))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "rms_norm: %d fragment-ordered outputs for %lld rows (at most %d, one row only)",
                        static_cast<int>(args.num_frag), static_cast<long long>(args.num_rows), kMaxFragTargets);
  for (int f = 0; f < args.num_frag; ++f)
    if (args.frag[f].out == nullptr || args.frag[f].dest == nullptr ||
        (args.frag[f].num_pads > 0 && args.frag[f].pads == nullptr))
      raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "rms_norm: fragment-ordered output %d is incomplete", f);
  const dim3 grid(static_cast<unsigned>(args.num_rows));
  const bool vec = args.hidden_size % 8 == 0 && aligned16(args.x) && aligned16(args.weight) &&
                   aligned16(args.out) && (args.residual == nullptr || aligned16(args.residual));
  bool gather = vec && args.num_frag > 0;
  for (int f = 0; f < args.num_frag; ++f) {
    const FragTarget& t = args.frag[f];
    if (t.src == nullptr) {
      gather = false;
      continue;
    }
    if (t.num_out < args.hidden_size || t.num_out % 8 != 0 || !aligned16(t.src) || !aligned16(t.out))
      raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                          "rms_norm: fragment-ordered output %d has an inverse map of %d halves for a row of %lld "
                          "(needs at least the row, a multiple of 8, 16-byte aligned map and output)",
                          f, static_cast<int>(t.num_out), static_cast<long long>(args.hidden_size));
  }
  if (gather)
    launch_pdl("add_rms_norm", add_rms_norm_kernel<8, kMaxHidden / (8 * kThreads), true>, grid, dim3(kThreads), 0,
               stream, args);
  else if (vec)
    launch_pdl("add_rms_norm", add_rms_norm_kernel<8, kMaxHidden / (8 * kThreads), false>, grid, dim3(kThreads), 0,
               stream, args);
  else
    launch_pdl("add_rms_norm", add_rms_norm_kernel<1, kMaxHidden / kThreads, false>, grid, dim3(kThreads), 0, stream,
               args);
}

}  // namespace exl::kernels
