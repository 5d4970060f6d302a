// DBRX: transformer.blocks.N with norm_attn_norm.{norm_1, attn.Wqkv, attn.out_proj, norm_2} (LayerNorms without
// bias, eps 1e-5), q/k/v clamped to +-clip_qkv, and an MoE ffn: router ffn.router.layer, softmax, top-k, weights
// divided by their p-norm (moe_normalize_expert_weights), experts stored fused over experts: w1 (gate) and v1 (up)
// [E * I, H], w2 [E * I, H] holding each expert's down projection transposed. Per-expert split tensors
// (ExLlamaV2's conversions) are accepted too.
#include <cmath>

#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec build_dbrx(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  const io::ConfigReader attn = r.sub("attn_config"), ffn = r.sub("ffn_config");
  ModelSpec m;
  m.architecture = c.architecture;
  m.family = "dbrx";
  const int64_t H = c.hidden_size, NH = c.num_heads, NKV = c.num_kv_heads, D = c.head_dim;
  const int64_t I = c.intermediate_size;
  m.hidden_size = H;
  m.vocab_size = c.vocab_size;
  m.num_layers = c.num_layers;
  m.max_seq_len = c.max_position_embeddings;
  m.embed_key = "transformer.wte";
  m.ropes.push_back(RopeSpec{c.rope, D, c.max_position_embeddings});
  const double eps = 1e-5;
  const float clip = static_cast<float>(attn.get_double("clip_qkv", 0.0));
  MoeSpec base;
  base.num_experts = ffn.get_int("moe_num_experts", 4);
  base.top_k = ffn.get_int("moe_top_k", 1);
  base.router_type = RouterType::kSoftmaxTopK;
  const double p_norm = ffn.get_double("moe_normalize_expert_weights", 1.0);
  base.renormalize = p_norm > 0;
  base.renormalize_p = static_cast<float>(p_norm);
  check_moe(c, base, "ffn_config.moe_num_experts", "ffn_config.moe_top_k");
  const std::string act_name = ffn.sub("ffn_act_fn").get_string("name", "silu");
  io::ModelConfig act_cfg = c;
  act_cfg.hidden_act = act_name;
  const Activation act = parse_activation(act_cfg);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "transformer.blocks." + std::to_string(i) + ".";
    LayerSpec l;
    l.attn_norm = layer_norm(p + "norm_attn_norm.norm_1", H, eps, false);
    l.mlp_norm = layer_norm(p + "norm_attn_norm.norm_2", H, eps, false);
    AttentionSpec& a = l.attn;
    a.num_heads = NH;
    a.num_kv_heads = NKV;
    a.head_dim = D;
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    a.clip_qkv = clip;
    const std::string wqkv = p + "norm_attn_norm.attn.Wqkv";
    const int64_t fused = NH * D + 2 * NKV * D;
    a.q = linear(p + "norm_attn_norm.attn.q_proj", H, NH * D, false);
    a.k = linear(p + "norm_attn_norm.attn.k_proj", H, NKV * D, false);
    a.v = linear(p + "norm_attn_norm.attn.v_proj", H, NKV * D, false);
    add_fused_source(a.q, wqkv, fused, {{0, NH * D}});
    add_fused_source(a.k, wqkv, fused, {{NH * D, NKV * D}});
    add_fused_source(a.v, wqkv, fused, {{NH * D + NKV * D, NKV * D}});
    a.o = linear(p + "norm_attn_norm.attn.out_proj", NH * D, H, false);
    l.mlp.type = MlpType::kMoe;
    l.mlp.act = act;
    l.mlp.moe = base;
    MoeSpec& moe = l.mlp.moe;
    moe.router = linear(p + "ffn.router.layer", H, moe.num_experts, false);
    for (int64_t e = 0; e < moe.num_experts; ++e) {
      const std::string ep = p + "ffn.experts.mlp." + std::to_string(e) + ".";
      ExpertSpec x;
      x.gate = linear(ep + "w1", H, I, false);
      x.up = linear(ep + "v1", H, I, false);
      x.down = linear(ep + "w2", I, H, false);
      TensorSource s;
      s.expert = e;
      s.num_experts = moe.num_experts;
      s.key = p + "ffn.experts.mlp.w1";
      x.gate.sources.push_back(s);
      s.key = p + "ffn.experts.mlp.v1";
      x.up.sources.push_back(s);
      s.key = p + "ffn.experts.mlp.w2";
      s.stored_kn = true;
      x.down.sources.push_back(s);
      moe.experts.push_back(std::move(x));
    }
    m.layers.push_back(std::move(l));
  }
  m.final_norm = layer_norm("transformer.norm_f", H, eps, false);
  m.head = linear("lm_head", H, c.vocab_size, false);
  m.tied = c.tie_word_embeddings;
  if (m.tied) m.head.sources.push_back(TensorSource{m.embed_key});
  return m;
}

}  // namespace

void register_dbrx(Registry& r) { r.add("DbrxForCausalLM", build_dbrx); }

}  // namespace exl::model::arch
