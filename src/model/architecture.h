// The architecture registry: HF architecture string -> how the model is assembled (tensor keys, options).
// One file per family under model/arch/. An unknown architecture is kUnsupported listing the known ones.
#pragma once

#include <string>
#include <vector>

namespace exl::model {

enum class NormKind { kRmsNorm };
enum class MlpKind { kGatedSilu };

struct ArchitectureSpec {
  std::string name;    // e.g. "LlamaForCausalLM"
  std::string family;  // e.g. "llama"
  std::string embed_key = "model.embed_tokens";
  std::string layer_prefix = "model.layers.";
  std::string final_norm_key = "model.norm";
  std::string head_key = "lm_head";
  std::string attn_norm = "input_layernorm";
  std::string mlp_norm = "post_attention_layernorm";
  std::string q_proj = "self_attn.q_proj", k_proj = "self_attn.k_proj", v_proj = "self_attn.v_proj",
              o_proj = "self_attn.o_proj";
  std::string gate_proj = "mlp.gate_proj", up_proj = "mlp.up_proj", down_proj = "mlp.down_proj";
  NormKind norm = NormKind::kRmsNorm;
  MlpKind mlp = MlpKind::kGatedSilu;
  bool supports_sliding_window = false;
};

const ArchitectureSpec& find_architecture(const std::string& name);
std::vector<std::string> supported_architectures();

// Per-family lists (model/arch/<family>.cpp).
std::vector<ArchitectureSpec> llama_family_architectures();

}  // namespace exl::model
