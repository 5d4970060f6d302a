// Causal GQA attention over the paged FP16 KV cache: a tensor-core (mma.sync m16n8k16) flash-attention kernel for
// prefill and mixed steps, and a split-sequence (flash-decoding) kernel whose splits merge inside it for one new
// token per sequence. Semantics match cpu::attention (sliding window, query head h reads KV head h / (num_heads /
// num_kv_heads)).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/frag.cuh"

namespace exl::kernels {

struct AttentionArgs {
  const __half* q = nullptr;  // [num_tokens, num_heads, head_dim]
  __half* out = nullptr;      // [num_tokens, num_heads, head_dim]
  const __half* k_pages = nullptr;  // [num_pages, page_size, num_kv_heads, head_dim]
  const __half* v_pages = nullptr;
  int64_t num_pages = 0;
  int64_t page_size = 0;
  int64_t num_seqs = 0;
  const int32_t* query_start = nullptr;  // [num_seqs + 1], device
  const int32_t* context_len = nullptr;  // [num_seqs], device: cached tokens including the new ones
  const int32_t* block_table = nullptr;  // [num_seqs, max_pages_per_seq], device
  int64_t max_pages_per_seq = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;
  int64_t sliding_window = 0;  // 0: none
  float softcap = 0.0f;        // > 0: each scaled score s becomes softcap * tanh(s / softcap) (Gemma 2); 0: off
  // Decode with one sequence only: the output row also goes, in fragment order, to the o projection's input
  // (frag.cuh). Ignored by prefill.
  FragTarget out_frag;
  // Decode only: RoPE and the KV-cache write of the new token fused into the attention kernel (k_new non-null).
  // q is then the unrotated query; the block whose key range holds the new token (pos = context_len - 1) rotates
  // k_new and writes it and v_new into the cache slot of pos before reading its keys; every block rotates its
  // group's q. Same arithmetic and fp16 roundings as launch_rope followed by the unfused kernel.
  struct FusedRope {
    const __half* k_new = nullptr;  // [num_seqs, num_kv_heads, head_dim], unrotated
    const __half* v_new = nullptr;
    __half* k_cache = nullptr;      // the same pools as k_pages / v_pages, written
    __half* v_cache = nullptr;
    const float* inv_freq = nullptr;  // [rotary_half]
    int32_t rotary_half = 0;
    float attention_factor = 1.0f;
  } rope;
};

// Any number of new tokens per sequence; max_query_len (host) bounds the new tokens of every sequence.
void launch_attention_prefill(const AttentionArgs& args, int64_t max_query_len, cudaStream_t stream);

// Exactly one new token per sequence (query row s belongs to sequence s; query_start is not read). The sequence
// is split into num_splits ranges whose partial results go to workspace; the blocks of each (sequence, KV head)
// then meet at a barrier and merge them in the same kernel. (A second combine kernel instead measured 1.3-1.5%
// slower in decode: bench/results/2026-11-24b-attention-merge.md.) context_len may change between launches (graph
// replays): num_splits is fixed, the ranges follow the length.
inline constexpr int kMaxDecodeSplits = 64;
struct DecodeSplit {
  int num_splits = 1;          // 1 .. kMaxDecodeSplits
  float* workspace = nullptr;  // decode_attention_workspace_floats(...) floats
  // [2 * num_seqs * num_kv_heads] uint32 (the first of each group's two words is its barrier), zeroed once by the
  // owner; every launch leaves the arrival counts at 0. One launch at a time may use them. Required.
  uint32_t* counters = nullptr;
};
int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits);
// A split count that fills the GPU for `num_seqs * num_kv_heads` blocks of work over up to max_context tokens.
int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context, int num_sms);
void launch_attention_decode(const AttentionArgs& args, const DecodeSplit& split, cudaStream_t stream);

}  // namespace exl::kernels
