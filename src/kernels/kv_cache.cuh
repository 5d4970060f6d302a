// Writing new tokens' K and V into the paged FP16 cache.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

// One layer's paged cache: [num_pages, page_size, num_kv_heads, head_dim] for K and for V.
struct PagedKvArgs {
  __half* k_pages = nullptr;
  __half* v_pages = nullptr;
  int64_t num_pages = 0;
  int64_t page_size = 0;
  const int32_t* block_table = nullptr;  // [num_seqs, max_pages_per_seq], device
  int64_t max_pages_per_seq = 0;
};

// Where each new token goes: sequence token_seq[t] (null: all sequence 0) at position positions[t].
struct TokenSlots {
  const int32_t* positions = nullptr;  // [num_tokens], device
  const int32_t* token_seq = nullptr;  // [num_tokens], device, or null
};

struct WriteKvArgs {
  const __half* k = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  const __half* v = nullptr;
  int64_t num_tokens = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  TokenSlots slots;
  PagedKvArgs cache;
};

void launch_write_kv(const WriteKvArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
