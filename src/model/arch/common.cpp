#include "model/arch/common.h"

#include <cmath>

#include "core/error.h"

namespace exl::model::arch {

NormSpec rms_norm(const std::string& key, int64_t size, double eps, float weight_offset) {
  NormSpec n;
  n.type = NormType::kRms;
  n.key = key;
  n.size = size;
  n.eps = static_cast<float>(eps);
  n.weight_offset = weight_offset;
  return n;
}

NormSpec layer_norm(const std::string& key, int64_t size, double eps, bool bias) {
  NormSpec n;
  n.type = NormType::kLayer;
  n.key = key;
  n.size = size;
  n.eps = static_cast<float>(eps);
  n.bias = bias;
  return n;
}

LinearSpec linear(const std::string& key, int64_t in, int64_t out, bool bias) {
  LinearSpec l;
  l.in = in;
  l.out = out;
  l.bias = bias;
  l.sources.push_back(TensorSource{key});
  return l;
}

void add_fused_source(LinearSpec& spec, const std::string& fused_key, int64_t stored_out,
                      std::vector<ColumnRange> ranges) {
  TensorSource s;
  s.key = fused_key;
  s.columns = std::move(ranges);
  s.stored_out = stored_out;
  spec.sources.push_back(std::move(s));
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

bool layer_is_sliding(const io::ModelConfig& c, int64_t layer, const std::function<bool(int64_t)>& fallback) {
  const io::ConfigReader r(c.raw, c.source);
  const std::vector<std::string> types = r.get_strings("layer_types");
  if (types.empty()) return fallback(layer);
  EXL_CHECK(static_cast<int64_t>(types.size()) == c.num_layers, kInvalidArgument,
            "{}: field 'layer_types' has {} entries, num_hidden_layers is {}", c.source, types.size(), c.num_layers);
  const std::string& t = types[static_cast<size_t>(layer)];
  if (t == "sliding_attention") return true;
  if (t == "full_attention") return false;
  r.unsupported("layer_types[" + std::to_string(layer) + "]", "\"" + t + "\"", "sliding_attention, full_attention");
}

Activation parse_activation(const io::ModelConfig& c) {
  const std::string& a = c.hidden_act;
  if (a == "silu" || a == "swish") return Activation::kSilu;
  if (a == "gelu_pytorch_tanh" || a == "gelu_new" || a == "gelu_fast" || a == "gelu_tanh") return Activation::kGeluTanh;
  if (a == "gelu") return Activation::kGelu;
  fail(ErrorKind::kUnsupported, "{}: activation '{}' is not supported for {} (supported: silu, gelu, gelu_pytorch_tanh, "
       "gelu_new, gelu_fast)", c.source, a, c.architecture);
}

MlpSpec gated_mlp(const std::string& prefix, int64_t hidden, int64_t intermediate, Activation act, bool bias) {
  MlpSpec m;
  m.type = MlpType::kGated;
  m.act = act;
  m.gate = linear(prefix + "gate_proj", hidden, intermediate, bias);
  m.up = linear(prefix + "up_proj", hidden, intermediate, bias);
  m.down = linear(prefix + "down_proj", intermediate, hidden, bias);
  return m;
}

LayerSpec llama_layer(const io::ModelConfig& c, int64_t i) {
  const std::string p = layer_prefix(i);
  const int64_t H = c.hidden_size, D = c.head_dim;
  LayerSpec l;
  l.attn_norm = rms_norm(p + "input_layernorm", H, c.rms_norm_eps);
  l.mlp_norm = rms_norm(p + "post_attention_layernorm", H, c.rms_norm_eps);
  AttentionSpec& a = l.attn;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = D;
  a.q = linear(p + "self_attn.q_proj", H, c.num_heads * D, c.attention_bias);
  a.k = linear(p + "self_attn.k_proj", H, c.num_kv_heads * D, c.attention_bias);
  a.v = linear(p + "self_attn.v_proj", H, c.num_kv_heads * D, c.attention_bias);
  a.o = linear(p + "self_attn.o_proj", c.num_heads * D, H, c.attention_bias);
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  a.rope = RopeStyle::kNeox;
  l.mlp = gated_mlp(p + "mlp.", H, c.intermediate_size, parse_activation(c), c.mlp_bias);
  return l;
}

ModelSpec llama_like(const io::ModelConfig& c) {
  ModelSpec m;
  m.architecture = c.architecture;
  m.hidden_size = c.hidden_size;
  m.vocab_size = c.vocab_size;
  m.num_layers = c.num_layers;
  m.max_seq_len = c.max_position_embeddings;
  // Dynamic NTK exists to run past max_position_embeddings (its original context): allow factor times that.
  if (c.rope.type == io::RopeType::kDynamic && c.rope.factor > 1.0)
    m.max_seq_len = static_cast<int64_t>(static_cast<double>(c.max_position_embeddings) * c.rope.factor);
  m.embed_key = "model.embed_tokens";
  m.ropes.push_back(RopeSpec{c.rope, c.head_dim, c.max_position_embeddings});
  for (int64_t i = 0; i < c.num_layers; ++i) m.layers.push_back(llama_layer(c, i));
  m.final_norm = rms_norm("model.norm", c.hidden_size, c.rms_norm_eps);
  m.head = linear("lm_head", c.hidden_size, c.vocab_size, false);
  m.tied = c.tie_word_embeddings;
  if (m.tied) m.head.sources.push_back(TensorSource{m.embed_key});
  return m;
}

void add_experts(MoeSpec& moe, const std::string& prefix, int64_t hidden, int64_t intermediate,
                 const std::string& gate, const std::string& up, const std::string& down) {
  const int64_t E = moe.num_experts, I = intermediate;
  for (int64_t e = 0; e < E; ++e) {
    const std::string ep = prefix + "experts." + std::to_string(e) + ".";
    ExpertSpec x;
    x.gate = linear(ep + gate, hidden, I, false);
    x.up = linear(ep + up, hidden, I, false);
    x.down = linear(ep + down, I, hidden, false);
    TensorSource gu;
    gu.key = prefix + "experts.gate_up_proj";
    gu.expert = e;
    gu.num_experts = E;
    gu.stored_out = 2 * I;
    gu.columns = {ColumnRange{0, I}};
    x.gate.sources.push_back(gu);
    gu.columns = {ColumnRange{I, I}};
    x.up.sources.push_back(gu);
    TensorSource d;
    d.key = prefix + "experts.down_proj";
    d.expert = e;
    d.num_experts = E;
    x.down.sources.push_back(d);
    moe.experts.push_back(std::move(x));
  }
}

void apply_granite_multipliers(const io::ModelConfig& c, ModelSpec& m) {
  const io::ConfigReader r(c.raw, c.source);
  m.embed_scale = static_cast<float>(r.get_double("embedding_multiplier", 1.0));
  const float residual = static_cast<float>(r.get_double("residual_multiplier", 1.0));
  const float attn_scale = static_cast<float>(r.get_double("attention_multiplier", 1.0));
  for (auto& l : m.layers) {
    l.residual_scale = residual;
    l.attn.scale = attn_scale;
  }
  const double logits_scaling = r.get_double("logits_scaling", 1.0);
  EXL_CHECK(logits_scaling != 0, kInvalidArgument, "{}: logits_scaling must not be 0", c.source);
  m.logit_scale = static_cast<float>(1.0 / logits_scaling);
}

void check_moe(const io::ModelConfig& c, const MoeSpec& moe, const std::string& experts_key,
               const std::string& top_k_key) {
  EXL_CHECK(moe.num_experts > 0, kInvalidArgument, "{}: '{}' must be positive, found {}", c.source, experts_key,
            moe.num_experts);
  EXL_CHECK(moe.top_k >= 1 && moe.top_k <= moe.num_experts, kInvalidArgument,
            "{}: '{}' = {} must be between 1 and '{}' = {}", c.source, top_k_key, moe.top_k, experts_key,
            moe.num_experts);
}

}  // namespace exl::model::arch
