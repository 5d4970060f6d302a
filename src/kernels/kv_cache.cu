// cache[page(seq, pos), pos % page_size, h, :] = new[t, h, :] for K and V, page = block_table[seq][pos / page_size]
// Shapes: k, v fp16 [num_tokens, num_kv_heads, head_dim]; pages fp16 [num_pages, page_size, num_kv_heads, head_dim].
// Threads: one block per token copying its num_kv_heads * head_dim row for K and V, 16 bytes per thread when the
// row is a multiple of 8 halves. Slots outside the block table or the pool are skipped (checked on the host).
// Launched with programmatic dependent launch (pdl.cuh): every thread waits for the previous kernel first.
#include "kernels/kv_cache.cuh"

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

__global__ void write_kv_kernel(WriteKvArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int64_t pos = a.slots.positions[t];
  const int64_t seq = a.slots.token_seq ? a.slots.token_seq[t] : 0;
  const int64_t page_index = pos / a.cache.page_size;
  if (pos < 0 || page_index >= a.cache.max_pages_per_seq) return;
  const int32_t page = a.cache.block_table[seq * a.cache.max_pages_per_seq + page_index];
  if (page < 0 || page >= a.cache.num_pages) return;
  const int64_t row = a.num_kv_heads * a.head_dim;
  const int64_t slot = static_cast<int64_t>(page) * a.cache.page_size + pos % a.cache.page_size;
  if (row % 8 == 0) {
    const uint4* ks = reinterpret_cast<const uint4*>(a.k + t * row);
    const uint4* vs = reinterpret_cast<const uint4*>(a.v + t * row);
    uint4* kd = reinterpret_cast<uint4*>(a.cache.k_pages + slot * row);
    uint4* vd = reinterpret_cast<uint4*>(a.cache.v_pages + slot * row);
    for (int64_t i = threadIdx.x; i < row / 8; i += blockDim.x) {
      kd[i] = ks[i];
      vd[i] = vs[i];
    }
  } else {
    for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
      a.cache.k_pages[slot * row + i] = a.k[t * row + i];
      a.cache.v_pages[slot * row + i] = a.v[t * row + i];
    }
  }
}

}  // namespace

void launch_write_kv(const WriteKvArgs& args, cudaStream_t stream) {
  if (args.num_tokens == 0) return;
  launch_pdl("write_kv", write_kv_kernel, dim3(static_cast<unsigned>(args.num_tokens)), dim3(128), 0, stream, args);
}

}  // namespace exl::kernels
