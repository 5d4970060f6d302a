// The CPU reference backend: plain, readable fp32 implementations of every op. They are the oracle that the
// CUDA kernels are tested against. Layouts are row-major; names follow the glossary in docs/glossary.md.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"

namespace exl::cpu {

// out[t, :] = table[ids[t], :]; ids are checked against vocab_size (kInvalidArgument naming the id).
void embedding(const float* table, int64_t vocab_size, int64_t hidden_size, std::span<const int32_t> ids,
               float* out);

// out[t, i] = x[t, i] / sqrt(mean(x[t, :]^2) + eps) * weight[i]
void rms_norm(const float* x, const float* weight, float* out, int64_t num_tokens, int64_t hidden_size, float eps);

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]); w is [N, K] (torch nn.Linear layout).
void linear(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y, int64_t num_tokens,
            int64_t in_features, int64_t out_features);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// RMSNorm: out = x / sqrt(mean(x^2) + eps) * w; LayerNorm: out = (x - mean) / sqrt(var + eps) * w + b (biased
// variance, as torch). Over `size` elements per row; w (may be null: 1) has weight_rows rows of `size`, row r of x
// uses weight row r % weight_rows (per-head norms with one weight per head); b may be null.
enum class NormKind { kRms, kLayer };
struct NormParams {
  NormKind kind = NormKind::kRms;
  float eps = 1e-6f;
  const float* weight = nullptr;
  int64_t weight_rows = 1;
  const float* bias = nullptr;
};
void norm(const NormParams& p, const float* x, float* out, int64_t rows, int64_t size);

// Activations: SiLU, GELU with the tanh approximation (gelu_pytorch_tanh), exact GELU (erf).
enum class ActKind { kSilu, kGeluTanh, kGelu };
float activation(ActKind kind, float x);
// out[i] = act(gate[i]) * up[i]
void act_mul(ActKind kind, const float* gate, const float* up, float* out, int64_t n);
// x[i] = act(x[i])
void act_inplace(ActKind kind, float* x, int64_t n);

// x[i] = cap * tanh(x[i] / cap)
void softcap_inplace(float* x, int64_t n, float cap);
// x[i] = clamp(x[i], -limit, limit)
void clamp_inplace(float* x, int64_t n, float limit);
// x[i] *= s
void scale_inplace(float* x, int64_t n, float s);
// x[i] += s * y[i]
void add_scaled_inplace(float* x, const float* y, int64_t n, float s);

// MoE routing of one token's router logits [num_experts] to top_k (expert id, weight) pairs.
enum class RouterKind { kSoftmaxTopK, kTopKSoftmax, kSparseMixer };
struct RouteParams {
  RouterKind kind = RouterKind::kSoftmaxTopK;
  int64_t num_experts = 0, top_k = 0;
  bool renormalize = false;   // kSoftmaxTopK: weights / ||weights||_p
  float renormalize_p = 1.0f;
  float jitter_eps = 0.0f;    // kSparseMixer
};
void route(const RouteParams& p, const float* logits, int32_t* ids, float* weights);

// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);

// Rotary embedding, "rotate half" (NeoX / HF Llama) convention, in place on x [num_tokens, num_heads, head_dim]:
// for i < rot/2: (a, b) = (x[i], x[i + rot/2]); x[i] = a*cos - b*sin; x[i + rot/2] = b*cos + a*sin, with
// angle = positions[t] * inv_freq[i], cos/sin scaled by attention_factor. rot = 2 * inv_freq.size() <= head_dim.
// interleaved (GPT-J / Cohere / GLM): the pairs are (x[2i], x[2i + 1]) instead.
void rope(float* x, std::span<const int32_t> positions, int64_t num_heads, int64_t head_dim,
          std::span<const float> inv_freq, float attention_factor, bool interleaved = false);

// Paged KV cache layout per layer: [num_pages, page_size, num_kv_heads, head_dim].
struct PagedKv {
  float* k_pages = nullptr;
  float* v_pages = nullptr;
  int64_t num_pages = 0;
  int64_t page_size = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// One batch of sequences; tokens of sequence s are rows [query_start[s], query_start[s+1]) of the activations,
// they sit at positions context_len[s] - n_s ... context_len[s] - 1, and their pages are
// block_table[s * max_pages_per_seq ...].
struct AttentionBatch {
  int64_t num_seqs = 0;
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_len = nullptr;   // [num_seqs], cached tokens including the new ones
  const int32_t* block_table = nullptr;   // [num_seqs, max_pages_per_seq]
  int64_t max_pages_per_seq = 0;
};

// Writes k, v [num_tokens, num_kv_heads, head_dim] into the pages at the new tokens' positions.
void write_kv(const PagedKv& cache, const AttentionBatch& batch, const float* k, const float* v);

struct AttentionParams {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;            // usually 1/sqrt(head_dim)
  int64_t sliding_window = 0;    // 0: none; else a query at p sees keys in (p - window, p]
  float softcap = 0.0f;          // > 0: scores = softcap * tanh(scale * q.k / softcap)
};

// Causal GQA attention of q [num_tokens, num_heads, head_dim] over the paged cache; out has q's shape.
// Query head h reads KV head h / (num_heads / num_kv_heads).
void attention(ThreadPool& pool, const AttentionParams& params, const AttentionBatch& batch, const PagedKv& cache,
               const float* q, float* out);

}  // namespace exl::cpu
