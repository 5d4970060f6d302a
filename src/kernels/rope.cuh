// Rotary position embedding (every rope type via precomputed inverse frequencies; "rotate half" NeoX pairs or
// interleaved GPT-J pairs; partial rotary), in place on q and k, optionally writing the rotated k and v straight
// into the paged cache. With rotate = false only the cache write runs (layers without positional encoding).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/kv_cache.cuh"

namespace exl::kernels {

struct RopeArgs {
  __half* q = nullptr;          // [num_tokens, num_heads, head_dim], rotated in place (may be null)
  __half* k = nullptr;          // [num_tokens, num_kv_heads, head_dim], rotated in place
  const __half* v = nullptr;    // [num_tokens, num_kv_heads, head_dim]: copied to the cache with write_cache
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  const float* inv_freq = nullptr;  // [rotary_half], device (unused without rotation)
  int64_t rotary_half = 0;          // rotary_dim / 2 <= head_dim / 2; dims [2 * rotary_half, head_dim) untouched
  float attention_factor = 1.0f;
  TokenSlots slots;                 // positions (and sequences, for the cache write)
  PagedKvArgs cache;                // k_pages null: no cache write
  bool interleaved = false;         // pairs (2i, 2i + 1) (GPT-J, Cohere, GLM) instead of (i, i + rotary_half)
  bool rotate = true;               // false: q and k unchanged; only the cache write of k and v (no launch without it)
};

void launch_rope(const RopeArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
