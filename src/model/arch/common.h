// Building blocks of the architecture builders (model/arch/<family>.cpp): the Llama-shaped defaults most families
// start from, and small constructors of norm, linear and fused-slice specs. Nothing here knows an architecture.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "model/model_spec.h"

namespace exl::model::arch {

NormSpec rms_norm(const std::string& key, int64_t size, double eps, float weight_offset = 0.0f);
NormSpec layer_norm(const std::string& key, int64_t size, double eps, bool bias);
LinearSpec linear(const std::string& key, int64_t in, int64_t out, bool bias);
// Adds a fallback source: columns `ranges` of the fused tensor `fused_key` (stored_out output columns in all).
void add_fused_source(LinearSpec& spec, const std::string& fused_key, int64_t stored_out,
                      std::vector<ColumnRange> ranges);

// Per-layer attention kind from config.json's `layer_types` (transformers 5 writes it: "sliding_attention" /
// "full_attention"); when absent, `fallback(layer)`. Any other value is a kUnsupported error naming it.
bool layer_is_sliding(const io::ModelConfig& c, int64_t layer, const std::function<bool(int64_t)>& fallback);

// A Llama-shaped model: model.embed_tokens, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
// post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head (or the tied embedding), RMSNorm,
// NeoX rope from config.rope over head_dim, scale head_dim^-0.5, q/k/v/o biases from attention_bias, MLP biases
// from mlp_bias, SiLU (or hidden_act gelu_pytorch_tanh), no sliding window.
ModelSpec llama_like(const io::ModelConfig& c);
LayerSpec llama_layer(const io::ModelConfig& c, int64_t layer);
// The gated MLP gate/up/down at `prefix` (".mlp.") with keys gate_proj/up_proj/down_proj.
MlpSpec gated_mlp(const std::string& prefix, int64_t hidden, int64_t intermediate, Activation act, bool bias);
Activation parse_activation(const io::ModelConfig& c);

// Routed experts at `prefix` (e.g. "model.layers.3.mlp."): per-expert keys experts.E.<gate>/<up>/<down>, falling
// back to transformers 5's stacked experts.gate_up_proj [E, 2I, H] and experts.down_proj [E, H, I].
void add_experts(MoeSpec& moe, const std::string& prefix, int64_t hidden, int64_t intermediate,
                 const std::string& gate, const std::string& up, const std::string& down);

// Checks shared by MoE builders: top_k in [1, num_experts].
void check_moe(const io::ModelConfig& c, const MoeSpec& moe, const std::string& experts_key,
               const std::string& top_k_key);

std::string layer_prefix(int64_t layer);  // "model.layers.N."

// Granite's four multipliers (embedding_multiplier, residual_multiplier, attention_multiplier as the attention
// scale, logits divided by logits_scaling), shared by Granite and Granite-MoE.
void apply_granite_multipliers(const io::ModelConfig& c, ModelSpec& m);

}  // namespace exl::model::arch
