// The CPU reference model: the generic interpreter of a ModelSpec (model/model_spec.h) in fp32 over weights
// dequantized from their stored values, with a paged fp32 KV cache. It runs every architecture and is the oracle the
// CUDA backend is tested against. With a quantized kv_format the page storage stays fp32 (memory is not the CPU's
// concern; the numbers are): every key and value goes through its format's round trip (cache/kv_format.h) before it
// is written, so attention reads exactly what a store of that format gives back.
#pragma once

#include <memory>
#include <vector>

#include "backend/cpu/ops.h"
#include "cache/kv_format.h"
#include "core/thread_pool.h"
#include "model/model_weights.h"
#include "model/runner.h"

namespace exl::cpu {

struct CpuRunnerOptions {
  int64_t cache_tokens = 8192;  // KV capacity, rounded up to whole pages
  int64_t page_size = 256;
  unsigned num_threads = 0;     // 0: all cores
  // What the cache gives back: kFp32 stores the exact values; the others round keys and values as that format's
  // store would (new tokens too, before attention reads them).
  cache::KvFormat kv_format = cache::KvFormat::kFp32;
};

class CpuRunner final : public model::Runner {
 public:
  CpuRunner(const model::ModelWeights& weights, const CpuRunnerOptions& options);
  const io::ModelConfig& config() const override { return config_; }
  std::string backend_name() const override { return "cpu"; }
  int64_t page_size() const override { return page_size_; }
  int64_t num_pages() const override { return num_pages_; }
  cache::KvFormat kv_format() const { return kv_format_; }
  void forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
               std::vector<float>* logits) override;
  model::DecodeStats decode(const model::DecodeRequest& request, const model::TokenCallback& on_token) override;

 private:
  struct Linear {
    std::vector<float> w;  // [N, K]
    std::vector<float> bias;
    int64_t in = 0, out = 0;
  };
  struct Expert {
    Linear gate, up, down;
  };
  struct Layer {
    model::NormWeights attn_norm, attn_post_norm, mlp_norm, mlp_post_norm, q_norm, k_norm;
    Linear q, k, v, o, gate, up, down, router, shared_gate;
    std::vector<Expert> experts;
    Expert shared;
    std::vector<float> k_pages, v_pages;
  };
  static Linear make_linear(const quant::LinearWeight& lw);
  void run_linear(const Linear& l, const float* x, float* y, int64_t num_tokens);
  void run_norm(const model::NormSpec& spec, const model::NormWeights& w, const float* x, float* out, int64_t rows);
  // y [T, hidden] = the layer's MLP of h [T, hidden].
  void run_mlp(const model::MlpSpec& spec, const Layer& l, const float* h, float* y, int64_t num_tokens);
  void run_dense(model::MlpType type, model::Activation act, const Linear& gate, const Linear& up, const Linear& down,
                 const float* h, float* y, int64_t num_tokens);

  io::ModelConfig config_;
  model::ModelSpec spec_;
  ThreadPool pool_;
  int64_t page_size_;
  int64_t num_pages_;
  cache::KvFormat kv_format_;
  std::vector<float> embedding_, pos_embedding_;
  std::vector<Layer> layers_;
  model::NormWeights final_norm_;
  Linear head_;
  std::vector<float> head_row_scale_;
};

}  // namespace exl::cpu
