// A whole model's weights as stored (float tensors, EXL2 / GPTQ tensor sets), loaded as the model's ModelSpec says
// and validated against it: key aliases resolved, fused tensors split into column slices, experts sliced out of
// stacked tensors, norm weights in fp32 with their offset folded in. Backends build their own layouts from this.
#pragma once

#include <filesystem>
#include <vector>

#include "core/log.h"
#include "io/model_config.h"
#include "model/model_spec.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace exl::model {

struct NormWeights {
  std::vector<float> weight;  // [rows * size] with the spec's weight_offset added (empty: unit weight)
  std::vector<float> bias;    // [size] (LayerNorm with bias), else empty
  size_t nbytes() const { return (weight.size() + bias.size()) * sizeof(float); }
};

struct ExpertWeights {
  quant::LinearWeight gate_proj, up_proj, down_proj;
};

struct LayerWeights {
  NormWeights attn_norm, attn_post_norm, mlp_norm, mlp_post_norm, q_norm, k_norm;
  quant::LinearWeight q_proj, k_proj, v_proj, o_proj;
  quant::LinearWeight gate_proj, up_proj, down_proj;  // dense MLP (non-gated: up_proj and down_proj only)
  quant::LinearWeight router;                         // MoE
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;                               // Qwen2-MoE shared expert (spec.mlp.moe.shared_expert)
  quant::LinearWeight shared_gate;
  // Every linear of the layer that is present (format kFloat with no weight means absent), for sizes and listings.
  std::vector<const quant::LinearWeight*> linears() const;
  size_t nbytes() const;
};

struct ModelWeights {
  io::ModelConfig config;
  ModelSpec spec;
  Tensor embedding;      // [vocab_size, hidden_size], float dtype as stored
  Tensor pos_embedding;  // [max_positions, hidden_size] learned positions (GPT-2), else empty
  std::vector<LayerWeights> layers;
  NormWeights final_norm;
  quant::LinearWeight head;
  std::vector<float> head_row_scale;  // spec.head_normalize: 1 / ||row n of the head||, applied to the logits

  size_t total_bytes() const;
  static ModelWeights load(const std::filesystem::path& dir, const ProgressSink& progress = {},
                           const ModelOverrides& overrides = {});
};

// Float vector of a float tensor (F32/F16/BF16).
std::vector<float> to_f32(const Tensor& t);

}  // namespace exl::model
