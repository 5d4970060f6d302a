// Command-R (Cohere) and Command R7B (Cohere 2): a parallel block (one LayerNorm without bias feeds attention and
// MLP, both added to the residual), GPT-J interleaved RoPE, logits times logit_scale, tied head; optional per-head
// LayerNorm q/k norms with one weight row per head (use_qk_norm). Cohere 2 adds sliding windows on local layers and
// leaves the global layers without RoPE.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec cohere_base(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  m.family = "cohere";
  const double eps = r.get_double("layer_norm_eps", 1e-5);
  const bool qk_norm = r.get_bool("use_qk_norm", false);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_norm = layer_norm(p + "input_layernorm", c.hidden_size, eps, false);
    l.mlp_norm = NormSpec{};
    l.parallel = true;
    l.attn.rope = RopeStyle::kGptj;
    if (qk_norm) {
      l.attn.q_norm = layer_norm(p + "self_attn.q_norm", c.head_dim, eps, false);
      l.attn.q_norm.weight_rows = c.num_heads;
      l.attn.k_norm = layer_norm(p + "self_attn.k_norm", c.head_dim, eps, false);
      l.attn.k_norm.weight_rows = c.num_kv_heads;
    }
  }
  m.final_norm = layer_norm("model.norm", c.hidden_size, eps, false);
  m.logit_scale = static_cast<float>(r.get_double("logit_scale", 1.0));
  if (!m.tied) m.head.sources.push_back(TensorSource{m.embed_key});  // Cohere checkpoints store no lm_head
  return m;
}

ModelSpec build_cohere(const io::ModelConfig& c) { return cohere_base(c); }

ModelSpec build_cohere2(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = cohere_base(c);
  const int64_t window = c.sliding_window.value_or(0);
  const int64_t pattern = r.get_int("sliding_window_pattern", 4);
  EXL_CHECK(pattern >= 1, kInvalidArgument, "{}: sliding_window_pattern must be >= 1, found {}", c.source, pattern);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    AttentionSpec& a = m.layers[i].attn;
    if (layer_is_sliding(c, i, [&](int64_t l) { return (l + 1) % pattern != 0; })) {
      EXL_CHECK(window > 0, kInvalidArgument, "{}: layer {} is a sliding-window layer but sliding_window is not set",
                c.source, i);
      a.sliding_window = window;
    } else {
      a.rope = RopeStyle::kNone;  // global layers: no positional encoding
    }
  }
  return m;
}

}  // namespace

void register_cohere(Registry& r) {
  r.add("CohereForCausalLM", build_cohere);
  r.add("Cohere2ForCausalLM", build_cohere2);
}

}  // namespace exl::model::arch
