// config.json (+ generation_config.json) -> a typed ModelConfig with the fields every architecture has (read under
// their aliases: hidden_size / n_embd / d_model, ...), plus the raw JSON that the architecture builders
// (model/arch/) read their own keys from. A multimodal config's text_config is merged over the top level. Accepts
// old top-level rope_theta/rope_scaling/torch_dtype and transformers-5 rope_parameters/dtype.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace exl::io {

enum class RopeType { kDefault, kLinear, kDynamic, kYarn, kLlama3, kLongrope };
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
  std::vector<double> short_factor, long_factor;  // longrope (Phi-3 "su"): per-frequency divisors
  std::optional<double> short_mscale, long_mscale; // longrope (Phi-3.5-MoE): attention factor per regime
  double ntk_alpha = 1.0;                          // load-time override: base * alpha^(d / (d - 2))
  double position_scale = 1.0;                     // load-time override: positions / scale (linear), on top
};

// Rope parameters from one rope parameter object (transformers 5 `rope_parameters`, or the old `rope_scaling`,
// possibly null/empty) with `config` supplying the top-level fallbacks (rope_theta, partial_rotary_factor,
// original_max_position_embeddings). `source` names the file in errors.
RopeParameters parse_rope_parameters(const nlohmann::json& params, const nlohmann::json& config,
                                     const std::string& source);

// Typed reads of config keys with errors naming the file and key (for the architecture builders).
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}
  bool has(const std::string& key) const;  // present and not null
  int64_t get_int(const std::string& key) const;  // required
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_double(const std::string& key, double dflt) const;
  bool get_bool(const std::string& key, bool dflt) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
  std::vector<std::string> get_strings(const std::string& key) const;  // list of strings (absent: empty)
  ConfigReader sub(const std::string& key) const;                  // an object (absent/null: empty)
  const nlohmann::json& json() const { return j_; }
  const std::string& source() const { return source_; }
  [[noreturn]] void unsupported(const std::string& key, const std::string& found, const std::string& supported) const;

 private:
  nlohmann::json j_;
  std::string source_;
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
  double rms_norm_eps = 1e-6;  // the norms' eps: rms_norm_eps / layer_norm_eps / layer_norm_epsilon
  RopeParameters rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";  // hidden_act / hidden_activation / activation_function
  DType dtype = DType::kF16;  // torch_dtype / dtype
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json and generation_config.json, merged, in order
  std::optional<int64_t> pad_token_id;
  std::string quant_method;             // quantization_config.quant_method (informational)
  std::string gptq_checkpoint_format;   // quantization_config.checkpoint_format ("gptq_v2" changes zeros)
  std::string source;                   // the config file, for errors
  nlohmann::json raw;                   // config.json with text_config merged over the top level
};

// Parses a config.json object; `source` names the file in errors.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source);
// Reads DIR/config.json and DIR/generation_config.json (optional).
ModelConfig load_model_config(const std::filesystem::path& dir);

}  // namespace exl::io
