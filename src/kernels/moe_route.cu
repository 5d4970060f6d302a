// Per token t, from v = float(logits[t, :E]) (cpu::route, with its softmax: exp(v - max) summed in double, -inf -> 0):
//   softmax_topk: p = softmax(v); the k largest p (ties: lower expert first), optionally w / (sum w^P)^(1/P);
//   topk_softmax: the k largest v; w = softmax of those k;
//   sparsemixer:  k rounds: best = the largest v not yet taken (lower expert first); its weight is
//                 1 / sum(exp(v[e] - v[best])) over the untaken e with !((v[best] - v[e]) / max(|v[e]|, v[best]) >
//                 2 jitter_eps) (its softmax probability among the unmasked experts).
// Shapes: logits fp16 [T, row_stride] (the first E of each row); ids int32 and weights fp32 [T, k], best first.
// Threads: one warp per token, 8 tokens per 256-thread block; lane l holds experts j * 32 + l (j < 8) in registers.
// Each top-k round is a warp argmax on (value, -index) (NaN ranks as -inf, so ids are always distinct and valid);
// lane r keeps round r's id and weight and writes them. Sums of exponentials in double (warp shuffles).
// Every thread waits for the previous kernel (pdl_wait) first. Constraints: E <= 256, k <= min(E, 32).
#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/moe_route.cuh"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kMaxExperts = 256;
constexpr int kPer = kMaxExperts / 32;
constexpr int kMaxTopK = 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ bool ranks_before(float a, int ia, float b, int ib) {
  return a > b || (a == b && ia < ib);
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// The untaken expert ranking first by val (ties: lower index), its value (val[best], NaN included), and marks it
// taken. Every lane returns the same result.
__device__ __forceinline__ int take_best(const float (&val)[kPer], unsigned& taken, int E, int lane, float& value) {
  float bv = -INFINITY;
  int bi = 0x7fffffff;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = j * 32 + lane;
    const float x = isnan(val[j]) ? -INFINITY : val[j];
    if (e < E && !((taken >> j) & 1u) && ranks_before(x, e, bv, bi)) {
      bv = x;
      bi = e;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, bv, o);
    const int oi = __shfl_xor_sync(kFull, bi, o);
    if (ranks_before(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  // bi < E always: an untaken expert exists in every round (k <= E) and -inf ranks before the sentinel.
  const int owner = bi % 32, slot = bi / 32;
  float mine = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j)
    if (j == slot) mine = val[j];
  value = __shfl_sync(kFull, mine, owner);
  if (lane == owner) taken |= 1u << slot;
  return bi;
}

__device__ __forceinline__ float exp_or_zero(float x, float mx) {
  return (isinf(x) && x < 0.0f) ? 0.0f : expf(x - mx);
}

__global__ void __launch_bounds__(kWarpsPerBlock * 32) moe_route_kernel(MoeRouteArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int lane = threadIdx.x % 32;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (t >= a.num_tokens) return;  // whole warps
  const int E = static_cast<int>(a.num_experts), K = static_cast<int>(a.top_k);
  const __half* lg = a.logits + t * a.row_stride;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = j * 32 + lane;
    v[j] = e < E ? __half2float(lg[e]) : -INFINITY;
  }
  unsigned taken = 0;
  int my_id = 0;      // round `lane`'s expert
  float my_w = 0.0f;  // and weight
  if (a.kind == kRouteSoftmaxTopK) {
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kPer; ++j)
      if (j * 32 + lane < E) mx = fmaxf(mx, v[j]);
    mx = warp_max(mx);
    float ex[kPer];
    double s = 0.0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      ex[j] = j * 32 + lane < E ? exp_or_zero(v[j], mx) : 0.0f;
      s += ex[j];
    }
    s = warp_sum(s);
    float p[kPer];
#pragma unroll
    for (int j = 0; j < kPer; ++j) p[j] = static_cast<float>(static_cast<double>(ex[j]) / s);
    for (int r = 0; r < K; ++r) {
      float w;
      const int id = take_best(p, taken, E, lane, w);
      if (lane == r) {
        my_id = id;
        my_w = w;
      }
    }
    if (a.renormalize) {
      const double P = a.renormalize_p;
      const double norm = pow(warp_sum(lane < K ? pow(static_cast<double>(my_w), P) : 0.0), 1.0 / P);
      my_w = static_cast<float>(static_cast<double>(my_w) / norm);
    }
  } else if (a.kind == kRouteTopKSoftmax) {
    float sel = 0.0f;
    for (int r = 0; r < K; ++r) {
      float w;
      const int id = take_best(v, taken, E, lane, w);
      if (lane == r) {
        my_id = id;
        sel = w;
      }
    }
    const float mx = __shfl_sync(kFull, sel, 0);  // the first selected is the largest
    const float e = lane < K ? exp_or_zero(sel, mx) : 0.0f;
    my_w = static_cast<float>(static_cast<double>(e) / warp_sum(static_cast<double>(e)));
  } else {
    const float twice_eps = 2.0f * a.jitter_eps;
    for (int r = 0; r < K; ++r) {
      // taken holds the earlier rounds' experts: those are -inf in the CPU op's masked copy.
      const unsigned before = taken;
      float threshold;
      const int id = take_best(v, taken, E, lane, threshold);
      double s = 0.0;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        if (j * 32 + lane >= E || ((before >> j) & 1u)) continue;
        const float factor = fmaxf(fabsf(v[j]), threshold);
        if ((threshold - v[j]) / factor > twice_eps) continue;  // masked
        s += exp_or_zero(v[j], threshold);
      }
      s = warp_sum(s);
      // The best's own term is exp(0) = 1.
      if (lane == r) {
        my_id = id;
        my_w = static_cast<float>(1.0 / s);
      }
    }
  }
  if (lane < K) {
    a.ids[t * K + lane] = my_id;
    a.weights[t * K + lane] = my_w;
  }
}

}  // namespace

void launch_moe_route(const MoeRouteArgs& args, cudaStream_t stream) {
  MoeRouteArgs a = args;
  if (a.row_stride == 0) a.row_stride = a.num_experts;
  if (a.num_experts < 1 || a.num_experts > kMaxExperts || a.top_k < 1 || a.top_k > a.num_experts || a.top_k > kMaxTopK)
    raise_kernel_errorf(KernelErrorKind::kUnsupported,
                        "moe_route: %lld experts, top_k %lld (supported: up to %d experts, top_k up to %d)",
                        static_cast<long long>(a.num_experts), static_cast<long long>(a.top_k), kMaxExperts, kMaxTopK);
  if (a.kind != kRouteSoftmaxTopK && a.kind != kRouteTopKSoftmax && a.kind != kRouteSparseMixer)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "moe_route: router kind %d", a.kind);
  if (a.num_tokens < 0 || a.row_stride < a.num_experts ||
      (a.kind == kRouteSoftmaxTopK && a.renormalize && !(a.renormalize_p > 0.0f)))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "moe_route: %lld tokens, row stride %lld, p %g",
                        static_cast<long long>(a.num_tokens), static_cast<long long>(a.row_stride),
                        static_cast<double>(a.renormalize_p));
  if (a.num_tokens == 0) return;
  if (a.logits == nullptr || a.ids == nullptr || a.weights == nullptr)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "moe_route: missing logits or outputs");
  const int64_t blocks = (a.num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffff)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "moe_route: %lld tokens are too many",
                        static_cast<long long>(a.num_tokens));
  launch_pdl("moe_route", moe_route_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kWarpsPerBlock * 32), 0, stream,
             a);
}

}  // namespace exl::kernels
