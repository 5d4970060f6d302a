// A whole model's weights as stored (float tensors, EXL2 / GPTQ tensor sets), loaded and validated against the
// config. Backends build their own layouts from this.
#pragma once

#include <filesystem>
#include <vector>

#include "core/log.h"
#include "io/model_config.h"
#include "model/architecture.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace exl::model {

struct LayerWeights {
  Tensor attn_norm;  // [hidden_size]
  Tensor mlp_norm;   // [hidden_size]
  quant::LinearWeight q_proj, k_proj, v_proj, o_proj;
  quant::LinearWeight gate_proj, up_proj, down_proj;
};

struct ModelWeights {
  io::ModelConfig config;
  const ArchitectureSpec* arch = nullptr;
  Tensor embedding;  // [vocab_size, hidden_size], float dtype as stored
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [hidden_size]
  quant::LinearWeight head;

  size_t total_bytes() const;
  static ModelWeights load(const std::filesystem::path& dir, const ProgressSink& progress = {});
};

// Float vector of a float tensor (F32/F16/BF16).
std::vector<float> to_f32(const Tensor& t);

}  // namespace exl::model
