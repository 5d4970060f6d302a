// out[i] = half(act(float(gate[i])) * float(up[i])), or x[i] = half(act(float(x[i]))), with
// silu(g) = g / (1 + exp(-g)), gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))),
// gelu(g) = 0.5 g (1 + erf(g / sqrt(2))), the expressions of cpu::activation.
// Shapes: fp16 [n] (row-major [num_tokens, intermediate_size] flattened).
// Threads: grid-stride loop, 8 halves (16 bytes) per thread per step when n % 8 == 0 and pointers are 16-byte
// aligned, else one element per step. Each element is read and written by the same thread, so out may alias an
// input. Launched with programmatic dependent launch (pdl.cuh): every thread waits for the previous kernel before
// its first load.
#include "kernels/activation.cuh"

#include <algorithm>
#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

template <ActKindDev K>
__device__ __forceinline__ float act(float x) {
  if constexpr (K == ActKindDev::kSilu) {
    return x / (1.0f + expf(-x));
  } else if constexpr (K == ActKindDev::kGeluTanh) {
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
  } else {
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
  }
}

// kMul: out = act(in) * up; else out = act(in).
template <ActKindDev K, bool kMul>
__device__ __forceinline__ float apply(float g, float u) {
  if constexpr (kMul) return act<K>(g) * u;
  return act<K>(g);
}

template <ActKindDev K, bool kMul>
__global__ void act_vec8_kernel(const uint4* in, const uint4* up, uint4* out, int64_t n8) {
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 g = in[i];
    uint4 u = g;
    if constexpr (kMul) u = up[i];
    uint4 o;
    const __half2* gh = reinterpret_cast<const __half2*>(&g);
    const __half2* uh = reinterpret_cast<const __half2*>(&u);
    __half2* oh = reinterpret_cast<__half2*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 gf = __half22float2(gh[j]), uf = __half22float2(uh[j]);
      oh[j] = __floats2half2_rn(apply<K, kMul>(gf.x, uf.x), apply<K, kMul>(gf.y, uf.y));
    }
    out[i] = o;
  }
}

template <ActKindDev K, bool kMul>
__global__ void act_scalar_kernel(const __half* in, const __half* up, __half* out, int64_t n) {
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2half_rn(apply<K, kMul>(__half2float(in[i]), kMul ? __half2float(up[i]) : 0.0f));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <ActKindDev K, bool kMul>
void launch_kind(const char* op, const __half* in, const __half* up, __half* out, int64_t n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  if (n % 8 == 0 && aligned16(in) && (!kMul || aligned16(up)) && aligned16(out)) {
    const int64_t n8 = n / 8;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n8 + kThreads - 1) / kThreads, 4096));
    launch_pdl(op, act_vec8_kernel<K, kMul>, dim3(blocks), dim3(kThreads), 0, stream,
               reinterpret_cast<const uint4*>(in), reinterpret_cast<const uint4*>(up), reinterpret_cast<uint4*>(out),
               n8);
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
    launch_pdl(op, act_scalar_kernel<K, kMul>, dim3(blocks), dim3(kThreads), 0, stream, in, up, out, n);
  }
}

template <bool kMul>
void dispatch_kind(const char* op, ActKindDev kind, const __half* in, const __half* up, __half* out, int64_t n,
                   cudaStream_t stream) {
  if (n < 0) raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: n %lld", op, static_cast<long long>(n));
  if (n == 0) return;
  switch (kind) {
    case ActKindDev::kSilu: launch_kind<ActKindDev::kSilu, kMul>(op, in, up, out, n, stream); return;
    case ActKindDev::kGeluTanh: launch_kind<ActKindDev::kGeluTanh, kMul>(op, in, up, out, n, stream); return;
    case ActKindDev::kGelu: launch_kind<ActKindDev::kGelu, kMul>(op, in, up, out, n, stream); return;
  }
  raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "%s: activation kind %d is not supported", op,
                      static_cast<int>(kind));
}

}  // namespace

void launch_act_mul(const ActMulArgs& a, cudaStream_t stream) {
  dispatch_kind<true>("act_mul", a.kind, a.gate, a.up, a.out, a.n, stream);
}

void launch_act(const ActArgs& a, cudaStream_t stream) {
  dispatch_kind<false>("act", a.kind, a.x, nullptr, a.x, a.n, stream);
}

void launch_silu_mul(const SiluMulArgs& a, cudaStream_t stream) {
  dispatch_kind<true>("silu_mul", ActKindDev::kSilu, a.gate, a.up, a.out, a.n, stream);
}

}  // namespace exl::kernels
