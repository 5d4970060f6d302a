// The Gemma family. Gemma: RMSNorm with (1 + w), embeddings scaled by sqrt(hidden), GELU-tanh gated MLP, tied
// head. Gemma 2 adds post-attention and post-MLP norms, attention scale query_pre_attn_scalar^-0.5, attention and
// final logit soft-capping, and sliding windows on alternate layers. Gemma 3 adds (1 + w) RMS q/k norms and two
// RoPE tables: rope_local_base_freq on sliding layers, rope_theta (with its scaling) on global ones. The text model
// of Gemma3ForConditionalGeneration sits under model.language_model. (transformers 5) or language_model.model.
// (older checkpoints).
#include <cmath>

#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

Activation gemma_activation(const io::ModelConfig& c) {
  io::ModelConfig tmp = c;
  tmp.hidden_act = io::ConfigReader(c.raw, c.source).get_string("hidden_activation", c.hidden_act);
  return parse_activation(tmp);
}

ModelSpec gemma_base(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "gemma";
  m.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  const Activation act = gemma_activation(c);
  for (auto& l : m.layers) {
    l.attn_norm.weight_offset = 1.0f;
    l.mlp_norm.weight_offset = 1.0f;
    l.mlp.act = act;
  }
  m.final_norm.weight_offset = 1.0f;
  if (!m.tied) {
    // Gemma checkpoints have no lm_head even when the config omits tie_word_embeddings.
    m.head.sources.push_back(TensorSource{m.embed_key});
  }
  return m;
}

ModelSpec build_gemma(const io::ModelConfig& c) { return gemma_base(c); }

// Gemma 2/3: four norms per layer, query_pre_attn_scalar, soft-capping, sliding windows.
ModelSpec gemma2_base(const io::ModelConfig& c, int64_t default_pattern) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = gemma_base(c);
  const double scalar = r.get_double("query_pre_attn_scalar", static_cast<double>(c.head_dim));
  EXL_CHECK(scalar > 0, kInvalidArgument, "{}: query_pre_attn_scalar must be positive, found {}", c.source, scalar);
  const float softcap = static_cast<float>(r.get_double("attn_logit_softcapping", 0.0));
  m.final_softcap = static_cast<float>(r.get_double("final_logit_softcapping", 0.0));
  const int64_t window = c.sliding_window.value_or(0);
  const int64_t pattern = r.get_int("sliding_window_pattern", default_pattern);
  EXL_CHECK(pattern >= 1, kInvalidArgument, "{}: sliding_window_pattern must be >= 1, found {}", c.source, pattern);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_post_norm = rms_norm(p + "post_attention_layernorm", c.hidden_size, c.rms_norm_eps, 1.0f);
    l.mlp_norm = rms_norm(p + "pre_feedforward_layernorm", c.hidden_size, c.rms_norm_eps, 1.0f);
    l.mlp_post_norm = rms_norm(p + "post_feedforward_layernorm", c.hidden_size, c.rms_norm_eps, 1.0f);
    l.attn.scale = static_cast<float>(1.0 / std::sqrt(scalar));
    l.attn.softcap = softcap;
    if (layer_is_sliding(c, i, [&](int64_t layer) { return (layer + 1) % pattern != 0; })) {
      EXL_CHECK(window > 0, kInvalidArgument, "{}: layer {} is a sliding-window layer but sliding_window is not set",
                c.source, i);
      l.attn.sliding_window = window;
    }
  }
  return m;
}

ModelSpec build_gemma2(const io::ModelConfig& c) { return gemma2_base(c, 2); }

ModelSpec build_gemma3(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = gemma2_base(c, 6);
  // Two tables: [0] global (rope_theta and its scaling), [1] local (rope_local_base_freq, no scaling). transformers
  // 5 writes rope_parameters keyed by layer type.
  io::RopeParameters local;
  if (r.has("rope_parameters") && r.json()["rope_parameters"].contains("sliding_attention")) {
    local = io::parse_rope_parameters(r.json()["rope_parameters"]["sliding_attention"], nlohmann::json::object(),
                                      c.source + ": rope_parameters.sliding_attention");
  } else {
    local.theta = r.get_double("rope_local_base_freq", 10000.0);
  }
  m.ropes.push_back(RopeSpec{local, c.head_dim, c.max_position_embeddings});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn.q_norm = rms_norm(p + "self_attn.q_norm", c.head_dim, c.rms_norm_eps, 1.0f);
    l.attn.k_norm = rms_norm(p + "self_attn.k_norm", c.head_dim, c.rms_norm_eps, 1.0f);
    l.attn.rope_table = l.attn.sliding_window > 0 ? 1 : 0;
  }
  return m;
}

ModelSpec build_gemma3_mm(const io::ModelConfig& c) {
  ModelSpec m = build_gemma3(c);
  m.key_aliases = {{"model.", "model.language_model."}, {"model.", "language_model.model."},
                   {"lm_head", "language_model.lm_head"}};
  return m;
}

}  // namespace

void register_gemma(Registry& r) {
  r.add("GemmaForCausalLM", build_gemma);
  r.add("Gemma2ForCausalLM", build_gemma2);
  r.add("Gemma3ForCausalLM", build_gemma3);
  r.add("Gemma3ForConditionalGeneration", build_gemma3_mm);
}

}  // namespace exl::model::arch
