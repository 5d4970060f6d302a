// out[t, i] = float(table[ids[t], i])
// Shapes: table [vocab_size, hidden_size] fp16, ids [num_tokens] int32, out [num_tokens, hidden_size] fp32.
// Threads: one block per token, each thread copies 8 halves (16 bytes) at a time when hidden_size % 8 == 0,
// else one element at a time. Ids outside [0, vocab_size) write NaN rows (callers check ids on the host first).
// Launched with programmatic dependent launch (pdl.cuh): the ids may come from the previous step's sampler, so
// every thread waits for the previous kernel first.
#include "kernels/embedding.cuh"

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

__global__ void embedding_kernel(EmbeddingArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int32_t id = a.ids[t];
  float* out = a.out + t * a.hidden_size;
  if (id < 0 || id >= a.vocab_size) {
    for (int64_t i = threadIdx.x; i < a.hidden_size; i += blockDim.x) out[i] = __int_as_float(0x7fc00000);
    return;
  }
  const __half* row = a.table + static_cast<int64_t>(id) * a.hidden_size;
  if (a.hidden_size % 8 == 0) {
    for (int64_t c = threadIdx.x; c < a.hidden_size / 8; c += blockDim.x) {
      const uint4 raw = reinterpret_cast<const uint4*>(row)[c];
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
      float4 lo, hi;
      lo.x = __low2float(h[0]); lo.y = __high2float(h[0]); lo.z = __low2float(h[1]); lo.w = __high2float(h[1]);
      hi.x = __low2float(h[2]); hi.y = __high2float(h[2]); hi.z = __low2float(h[3]); hi.w = __high2float(h[3]);
      reinterpret_cast<float4*>(out)[2 * c] = lo;
      reinterpret_cast<float4*>(out)[2 * c + 1] = hi;
    }
  } else {
    for (int64_t i = threadIdx.x; i < a.hidden_size; i += blockDim.x) out[i] = __half2float(row[i]);
  }
}

}  // namespace

void launch_embedding(const EmbeddingArgs& args, cudaStream_t stream) {
  if (args.num_tokens == 0) return;
  launch_pdl("embedding", embedding_kernel, dim3(static_cast<unsigned>(args.num_tokens)), dim3(256), 0, stream, args);
}

}  // namespace exl::kernels
