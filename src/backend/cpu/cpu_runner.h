// The CPU reference model: fp32 compute over weights dequantized from their stored values, paged fp32 KV cache.
#pragma once

#include <memory>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/thread_pool.h"
#include "model/model_weights.h"
#include "model/runner.h"

namespace exl::cpu {

struct CpuRunnerOptions {
  int64_t cache_tokens = 8192;  // KV capacity, rounded up to whole pages
  int64_t page_size = 256;
  unsigned num_threads = 0;     // 0: all cores
};

class CpuRunner final : public model::Runner {
 public:
  CpuRunner(const model::ModelWeights& weights, const CpuRunnerOptions& options);
  const io::ModelConfig& config() const override { return config_; }
  std::string backend_name() const override { return "cpu"; }
  int64_t page_size() const override { return page_size_; }
  int64_t num_pages() const override { return num_pages_; }
  void forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
               std::vector<float>* logits) override;
  model::DecodeStats decode(const model::DecodeRequest& request, const model::TokenCallback& on_token) override;

 private:
  struct Linear {
    std::vector<float> w;  // [N, K]
    std::vector<float> bias;
    int64_t in = 0, out = 0;
  };
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;
    Linear q, k, v, o, gate, up, down;
    std::vector<float> k_pages, v_pages;
  };
  static Linear make_linear(const quant::LinearWeight& lw);
  void run_linear(const Linear& l, const float* x, float* y, int64_t num_tokens);

  io::ModelConfig config_;
  ThreadPool pool_;
  int64_t page_size_;
  int64_t num_pages_;
  std::vector<float> embedding_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  Linear head_;
};

}  // namespace exl::cpu
