// Phi-3 / Phi-3.5 / Phi-4-mini: Llama layout with fused qkv_proj and gate_up_proj (ExLlamaV2 writes them split:
// both are accepted), longrope scaling, partial rotary, a sliding window on every layer when set. Phi-3.5-MoE
// (PhimoeForCausalLM): LayerNorms with bias, attention and head biases, sparsemixer top-2 routing.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

void sliding_all(const io::ModelConfig& c, ModelSpec& m) {
  const int64_t window = c.sliding_window.value_or(0);
  for (int64_t i = 0; i < c.num_layers; ++i)
    if (layer_is_sliding(c, i, [&](int64_t) { return window > 0; })) m.layers[i].attn.sliding_window = window;
}

ModelSpec build_phi3(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "phi";
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t nq = c.num_heads * D, nkv = c.num_kv_heads * D;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    add_fused_source(l.attn.q, p + "self_attn.qkv_proj", nq + 2 * nkv, {{0, nq}});
    add_fused_source(l.attn.k, p + "self_attn.qkv_proj", nq + 2 * nkv, {{nq, nkv}});
    add_fused_source(l.attn.v, p + "self_attn.qkv_proj", nq + 2 * nkv, {{nq + nkv, nkv}});
    add_fused_source(l.mlp.gate, p + "mlp.gate_up_proj", 2 * I, {{0, I}});
    add_fused_source(l.mlp.up, p + "mlp.gate_up_proj", 2 * I, {{I, I}});
    (void)H;
  }
  sliding_all(c, m);
  return m;
}

ModelSpec build_phimoe(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  m.family = "phi";
  const int64_t H = c.hidden_size;
  const int64_t E = r.get_int("num_local_experts"), k = r.get_int("num_experts_per_tok");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_norm = layer_norm(p + "input_layernorm", H, c.rms_norm_eps, true);
    l.mlp_norm = layer_norm(p + "post_attention_layernorm", H, c.rms_norm_eps, true);
    MlpSpec mlp;
    mlp.type = MlpType::kMoe;
    mlp.act = parse_activation(c);
    mlp.moe.num_experts = E;
    mlp.moe.top_k = k;
    mlp.moe.router_type = RouterType::kSparseMixer;
    mlp.moe.jitter_eps = static_cast<float>(r.get_double("router_jitter_noise", 0.01));
    check_moe(c, mlp.moe, "num_local_experts", "num_experts_per_tok");
    EXL_CHECK(k == 2, kUnsupported, "{}: num_experts_per_tok = {}: sparsemixer routing (PhimoeForCausalLM) is defined "
              "for 2 experts per token only", c.source, k);
    mlp.moe.router = linear(p + "block_sparse_moe.gate", H, E, false);
    add_experts(mlp.moe, p + "block_sparse_moe.", H, c.intermediate_size, "w1", "w3", "w2");
    l.mlp = std::move(mlp);
  }
  m.key_aliases = {{".block_sparse_moe.", ".mlp."}};
  m.final_norm = layer_norm("model.norm", H, c.rms_norm_eps, true);
  m.head.bias = r.get_bool("lm_head_bias", false);
  sliding_all(c, m);
  return m;
}

}  // namespace

void register_phi(Registry& r) {
  r.add("Phi3ForCausalLM", build_phi3);
  r.add("PhimoeForCausalLM", build_phimoe);
}

}  // namespace exl::model::arch
