// The Llama family and the architectures that are Llama with a twist: Llama 1-3.x, Mistral (sliding window on every
// layer), Yi (norms named ln1/ln2), Orion (LayerNorm with bias), Index (unit-norm head rows), MiniCPM (embedding,
// residual and logit scales), Granite (four multipliers), InternLM2 (renamed keys, fused grouped wqkv).
#include <cmath>

#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec build_llama(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "llama";
  return m;
}

ModelSpec build_mistral(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "llama";
  const int64_t window = c.sliding_window.value_or(0);
  for (int64_t i = 0; i < c.num_layers; ++i)
    if (layer_is_sliding(c, i, [&](int64_t) { return window > 0; })) m.layers[i].attn.sliding_window = window;
  return m;
}

ModelSpec build_yi(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "llama";
  m.key_aliases = {{".input_layernorm", ".ln1"}, {".post_attention_layernorm", ".ln2"}};
  return m;
}

ModelSpec build_orion(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "llama";
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    m.layers[i].attn_norm = layer_norm(p + "input_layernorm", c.hidden_size, c.rms_norm_eps, true);
    m.layers[i].mlp_norm = layer_norm(p + "post_attention_layernorm", c.hidden_size, c.rms_norm_eps, true);
  }
  m.final_norm = layer_norm("model.norm", c.hidden_size, c.rms_norm_eps, true);
  return m;
}

ModelSpec build_index(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "llama";
  m.head_normalize = io::ConfigReader(c.raw, c.source).get_bool("norm_head", false);
  return m;
}

ModelSpec build_minicpm(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  m.family = "llama";
  m.embed_scale = static_cast<float>(r.get_double("scale_emb", 1.0));
  const double depth = r.get_double("scale_depth", 1.0);
  const float residual = static_cast<float>(depth / std::sqrt(static_cast<double>(c.num_layers)));
  for (auto& l : m.layers) l.residual_scale = residual;
  const double base = r.get_double("dim_model_base", static_cast<double>(c.hidden_size));
  EXL_CHECK(base > 0, kInvalidArgument, "{}: dim_model_base must be positive, found {}", c.source, base);
  m.logit_scale = static_cast<float>(base / static_cast<double>(c.hidden_size));
  return m;
}

ModelSpec build_granite(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "granite";
  apply_granite_multipliers(c, m);
  return m;
}

ModelSpec build_internlm2(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  const bool bias = r.get_bool("bias", false);
  ModelSpec m = llama_like(c);
  m.family = "llama";
  m.embed_key = "model.tok_embeddings";
  m.head = linear("output", c.hidden_size, c.vocab_size, false);
  if (m.tied) m.head.sources.push_back(TensorSource{m.embed_key});
  const int64_t H = c.hidden_size, D = c.head_dim, NKV = c.num_kv_heads, G = c.num_heads / c.num_kv_heads;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_norm = rms_norm(p + "attention_norm", H, c.rms_norm_eps);
    l.mlp_norm = rms_norm(p + "ffn_norm", H, c.rms_norm_eps);
    // wqkv: per KV head, its G query heads, then its key head, then its value head.
    std::vector<ColumnRange> q, k, v;
    for (int64_t h = 0; h < NKV; ++h) {
      const int64_t base = h * (G + 2) * D;
      q.push_back({base, G * D});
      k.push_back({base + G * D, D});
      v.push_back({base + (G + 1) * D, D});
    }
    const int64_t fused_out = NKV * (G + 2) * D;
    const std::string wqkv = p + "attention.wqkv";
    l.attn.q = LinearSpec{H, c.num_heads * D, bias, {}};
    l.attn.k = LinearSpec{H, NKV * D, bias, {}};
    l.attn.v = LinearSpec{H, NKV * D, bias, {}};
    add_fused_source(l.attn.q, wqkv, fused_out, q);
    add_fused_source(l.attn.k, wqkv, fused_out, k);
    add_fused_source(l.attn.v, wqkv, fused_out, v);
    l.attn.o = linear(p + "attention.wo", c.num_heads * D, H, bias);
    l.mlp.gate = linear(p + "feed_forward.w1", H, c.intermediate_size, false);
    l.mlp.up = linear(p + "feed_forward.w3", H, c.intermediate_size, false);
    l.mlp.down = linear(p + "feed_forward.w2", c.intermediate_size, H, false);
  }
  return m;
}

}  // namespace

void register_llama(Registry& r) {
  r.add("LlamaForCausalLM", build_llama);
  r.add("MistralForCausalLM", build_mistral);
  r.add("YiForCausalLM", build_yi);
  r.add("OrionForCausalLM", build_orion);
  r.add("IndexForCausalLM", build_index);
  r.add("MiniCPMForCausalLM", build_minicpm);
  r.add("GraniteForCausalLM", build_granite);
  r.add("InternLM2ForCausalLM", build_internlm2);
}

}  // namespace exl::model::arch
