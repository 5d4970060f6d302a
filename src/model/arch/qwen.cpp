// The Qwen family: Qwen2/2.5 (q/k/v biases), Qwen3 (per-head RMS q/k norms), Qwen2-MoE (routed experts plus a
// shared expert behind a sigmoid gate) and Qwen3-MoE (routed experts, q/k norms). Sliding windows per layer from
// layer_types, or use_sliding_window with max_window_layers as older configs say.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

void qwen_windows(const io::ModelConfig& c, ModelSpec& m) {
  const io::ConfigReader r(c.raw, c.source);
  const bool use = r.get_bool("use_sliding_window", false);
  const int64_t window = c.sliding_window.value_or(0);
  const int64_t max_window_layers = r.get_int("max_window_layers", c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const bool sliding = layer_is_sliding(c, i, [&](int64_t l) { return use && window > 0 && l >= max_window_layers; });
    if (sliding) {
      EXL_CHECK(window > 0, kInvalidArgument, "{}: layer {} is a sliding-window layer but sliding_window is not set",
                c.source, i);
      m.layers[i].attn.sliding_window = window;
    }
  }
}

void qkv_bias(const io::ModelConfig& c, ModelSpec& m, bool dflt) {
  const bool bias = io::ConfigReader(c.raw, c.source).get_bool("qkv_bias", dflt);
  for (auto& l : m.layers) l.attn.q.bias = l.attn.k.bias = l.attn.v.bias = bias;
}

void qk_norms(const io::ModelConfig& c, ModelSpec& m) {
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    m.layers[i].attn.q_norm = rms_norm(p + "self_attn.q_norm", c.head_dim, c.rms_norm_eps);
    m.layers[i].attn.k_norm = rms_norm(p + "self_attn.k_norm", c.head_dim, c.rms_norm_eps);
  }
}

// Routed experts on the layers that have them: not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0.
void qwen_moe(const io::ModelConfig& c, ModelSpec& m, bool shared) {
  const io::ConfigReader r(c.raw, c.source);
  // transformers 5 writes num_local_experts; older Qwen MoE configs say num_experts.
  const int64_t E = r.has("num_experts") ? r.get_int("num_experts") : r.get_int("num_local_experts");
  const int64_t k = r.get_int("num_experts_per_tok");
  const int64_t I = r.get_int("moe_intermediate_size");
  const int64_t step = r.get_int("decoder_sparse_step", 1);
  EXL_CHECK(step >= 1, kInvalidArgument, "{}: decoder_sparse_step must be >= 1, found {}", c.source, step);
  std::vector<int64_t> dense_layers;
  if (r.has("mlp_only_layers")) {
    EXL_CHECK(r.json()["mlp_only_layers"].is_array(), kInvalidArgument, "{}: field 'mlp_only_layers': expected a list",
              c.source);
    for (const auto& v : r.json()["mlp_only_layers"]) dense_layers.push_back(v.get<int64_t>());
  }
  const bool norm_topk = r.get_bool("norm_topk_prob", !shared);
  const int64_t H = c.hidden_size;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    bool dense = (i + 1) % step != 0 || E == 0;
    for (int64_t d : dense_layers) dense = dense || d == i;
    if (dense) continue;
    const std::string p = layer_prefix(i) + "mlp.";
    MlpSpec mlp;
    mlp.type = MlpType::kMoe;
    mlp.act = parse_activation(c);
    MoeSpec& moe = mlp.moe;
    moe.num_experts = E;
    moe.top_k = k;
    moe.router_type = RouterType::kSoftmaxTopK;
    moe.renormalize = norm_topk;
    check_moe(c, moe, r.has("num_experts") ? "num_experts" : "num_local_experts", "num_experts_per_tok");
    moe.router = linear(p + "gate", H, E, false);
    add_experts(moe, p, H, I, "gate_proj", "up_proj", "down_proj");
    if (shared) {
      const int64_t SI = r.get_int("shared_expert_intermediate_size");
      moe.shared_expert = true;
      moe.shared.gate = linear(p + "shared_expert.gate_proj", H, SI, false);
      moe.shared.up = linear(p + "shared_expert.up_proj", H, SI, false);
      moe.shared.down = linear(p + "shared_expert.down_proj", SI, H, false);
      moe.shared_gate = linear(p + "shared_expert_gate", H, 1, false);
    }
    m.layers[i].mlp = std::move(mlp);
  }
}

ModelSpec build_qwen2(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "qwen";
  qkv_bias(c, m, true);
  qwen_windows(c, m);
  return m;
}

ModelSpec build_qwen3(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "qwen";
  qk_norms(c, m);
  qwen_windows(c, m);
  return m;
}

ModelSpec build_qwen2_moe(const io::ModelConfig& c) {
  ModelSpec m = build_qwen2(c);
  qwen_moe(c, m, true);
  return m;
}

ModelSpec build_qwen3_moe(const io::ModelConfig& c) {
  ModelSpec m = build_qwen3(c);
  qwen_moe(c, m, false);
  return m;
}

}  // namespace

void register_qwen(Registry& r) {
  r.add("Qwen2ForCausalLM", build_qwen2);
  r.add("Qwen3ForCausalLM", build_qwen3);
  r.add("Qwen2MoeForCausalLM", build_qwen2_moe);
  r.add("Qwen3MoeForCausalLM", build_qwen3_moe);
}

}  // namespace exl::model::arch
