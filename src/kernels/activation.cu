// out[i] = half(g / (1 + exp(-g)) * u) with g = float(gate[i]), u = float(up[i])
// Shapes: gate, up, out fp16 [n] (row-major [num_tokens, intermediate_size] flattened).
// Threads: grid-stride loop, 8 halves (16 bytes) per thread per step when n % 8 == 0 and pointers are 16-byte
// aligned, else one element per step. Launched with programmatic dependent launch (pdl.cuh): every thread waits
// for the previous kernel before its first load.
#include "kernels/activation.cuh"

#include <algorithm>
#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__global__ void silu_mul_vec8_kernel(const uint4* gate, const uint4* up, uint4* out, int64_t n8) {
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 g = gate[i], u = up[i];
    uint4 o;
    const __half2* gh = reinterpret_cast<const __half2*>(&g);
    const __half2* uh = reinterpret_cast<const __half2*>(&u);
    __half2* oh = reinterpret_cast<__half2*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 gf = __half22float2(gh[j]), uf = __half22float2(uh[j]);
      oh[j] = __floats2half2_rn(silu_times(gf.x, uf.x), silu_times(gf.y, uf.y));
    }
    out[i] = o;
  }
}

__global__ void silu_mul_scalar_kernel(const __half* gate, const __half* up, __half* out, int64_t n) {
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2half_rn(silu_times(__half2float(gate[i]), __half2float(up[i])));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_silu_mul(const SiluMulArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  constexpr int kThreads = 256;
  if (a.n % 8 == 0 && aligned16(a.gate) && aligned16(a.up) && aligned16(a.out)) {
    const int64_t n8 = a.n / 8;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n8 + kThreads - 1) / kThreads, 4096));
    launch_pdl("silu_mul", silu_mul_vec8_kernel, dim3(blocks), dim3(kThreads), 0, stream,
               reinterpret_cast<const uint4*>(a.gate), reinterpret_cast<const uint4*>(a.up),
               reinterpret_cast<uint4*>(a.out), n8);
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((a.n + kThreads - 1) / kThreads, 4096));
    launch_pdl("silu_mul", silu_mul_scalar_kernel, dim3(blocks), dim3(kThreads), 0, stream, a.gate, a.up, a.out,
               a.n);
  }
}

}  // namespace exl::kernels
