// out[t, i] = scale * float(table[ids[t], i]) (+ float(pos_table[positions[t], i])), the product rounded before the
// sum (as the CPU runner: scale, then add).
// Shapes: table [vocab_size, hidden_size] fp16, ids [num_tokens] int32, out [num_tokens, hidden_size] fp32;
// pos_table [num_positions, hidden_size] fp16, positions [num_tokens] int32.
// Threads: one block per token, each thread converts 8 halves (16 bytes) at a time when hidden_size % 8 == 0 and the
// pointers are 16-byte aligned, else one element at a time. Ids outside [0, vocab_size) and positions outside
// [0, num_positions) write NaN rows (callers check them on the host first).
// Launched with programmatic dependent launch (pdl.cuh): the ids may come from the previous step's sampler, so
// every thread waits for the previous kernel first.
#include "kernels/embedding.cuh"

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

__device__ __forceinline__ float embed_value(float v, float scale, const __half* pos, int64_t i) {
  v = __fmul_rn(v, scale);
  if (pos) v = __fadd_rn(v, __half2float(pos[i]));
  return v;
}

__global__ void embedding_kernel(EmbeddingArgs a, int vec) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int32_t id = a.ids[t];
  float* out = a.out + t * a.hidden_size;
  const int32_t p = a.pos_table ? a.positions[t] : 0;
  if (id < 0 || id >= a.vocab_size || (a.pos_table && (p < 0 || p >= a.num_positions))) {
    for (int64_t i = threadIdx.x; i < a.hidden_size; i += blockDim.x) out[i] = __int_as_float(0x7fc00000);
    return;
  }
  const __half* row = a.table + static_cast<int64_t>(id) * a.hidden_size;
  const __half* pos = a.pos_table ? a.pos_table + static_cast<int64_t>(p) * a.hidden_size : nullptr;
  if (vec) {
    for (int64_t c = threadIdx.x; c < a.hidden_size / 8; c += blockDim.x) {
      const uint4 raw = reinterpret_cast<const uint4*>(row)[c];
      const __half* h = reinterpret_cast<const __half*>(&raw);
      float f[8];
      if (pos) {
        const uint4 praw = reinterpret_cast<const uint4*>(pos)[c];
        const __half* ph = reinterpret_cast<const __half*>(&praw);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = embed_value(__half2float(h[j]), a.scale, ph, j);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = embed_value(__half2float(h[j]), a.scale, nullptr, j);
      }
      reinterpret_cast<float4*>(out)[2 * c] = make_float4(f[0], f[1], f[2], f[3]);
      reinterpret_cast<float4*>(out)[2 * c + 1] = make_float4(f[4], f[5], f[6], f[7]);
    }
  } else {
    for (int64_t i = threadIdx.x; i < a.hidden_size; i += blockDim.x)
      out[i] = embed_value(__half2float(row[i]), a.scale, pos, i);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_embedding(const EmbeddingArgs& args, cudaStream_t stream) {
  if (args.pos_table && (args.positions == nullptr || args.num_positions <= 0))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "embedding: a position table needs positions and num_positions (%lld)",
                        static_cast<long long>(args.num_positions));
  if (args.num_tokens == 0) return;
  const bool vec = args.hidden_size % 8 == 0 && aligned16(args.table) && aligned16(args.out) &&
                   (args.pos_table == nullptr || aligned16(args.pos_table));
  launch_pdl("embedding", embedding_kernel, dim3(static_cast<unsigned>(args.num_tokens)), dim3(256), 0, stream, args,
             vec ? 1 : 0);
}

}  // namespace exl::kernels
