// config.json (+ generation_config.json) -> a typed ModelConfig for the Llama family (Llama 1/2/3/3.1/3.2,
// Mistral). Accepts old top-level rope_theta/rope_scaling/torch_dtype and transformers-5 rope_parameters/dtype.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace exl::io {

enum class RopeType { kDefault, kLinear, kDynamic, kYarn, kLlama3 };
std::string_view rope_type_name(RopeType type);

struct RopeParameters {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                             // linear, dynamic, yarn, llama3
  double low_freq_factor = 1.0;                    // llama3
  double high_freq_factor = 4.0;                   // llama3
  int64_t original_max_position_embeddings = 0;   // llama3, yarn, dynamic (0: use max_position_embeddings)
  double beta_fast = 32.0;                         // yarn
  double beta_slow = 1.0;                          // yarn
  std::optional<double> attention_factor;          // yarn (mscale override)
  std::optional<double> mscale, mscale_all_dim;    // yarn (DeepSeek style)
  bool truncate = true;                            // yarn: truncate the correction range to integers
  double partial_rotary_factor = 1.0;
};

struct ModelConfig {
  std::filesystem::path dir;
  std::string architecture;  // HF architecture string, e.g. "LlamaForCausalLM"
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  RopeParameters rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";
  DType dtype = DType::kF16;  // torch_dtype / dtype
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json and generation_config.json, merged, in order
  std::optional<int64_t> pad_token_id;
  std::string quant_method;             // quantization_config.quant_method (informational)
  std::string gptq_checkpoint_format;   // quantization_config.checkpoint_format ("gptq_v2" changes zeros)
};

// Parses a config.json object; `source` names the file in errors.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source);
// Reads DIR/config.json and DIR/generation_config.json (optional).
ModelConfig load_model_config(const std::filesystem::path& dir);

}  // namespace exl::io
