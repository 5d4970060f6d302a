#include "model/model_spec.h"

#include "core/error.h"
#include "model/arch/registry.h"
#include "model/rope.h"

namespace exl::model {
namespace {

const arch::Registry& registry() {
  static const arch::Registry r = [] {
    arch::Registry reg;
    arch::register_llama(reg);
    arch::register_qwen(reg);
    arch::register_mixtral(reg);
    arch::register_gemma(reg);
    arch::register_phi(reg);
    arch::register_cohere(reg);
    arch::register_gpt2(reg);
    arch::register_starcoder2(reg);
    arch::register_dbrx(reg);
    arch::register_granite_moe(reg);
    arch::register_glm(reg);
    return reg;
  }();
  return r;
}

void check_spec(const ModelSpec& m, const std::string& source) {
  EXL_CHECK(static_cast<int64_t>(m.layers.size()) == m.num_layers, kInternal, "{}: the spec has {} layers, not {}",
            source, m.layers.size(), m.num_layers);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const AttentionSpec& a = m.layers[i].attn;
    EXL_CHECK(a.num_heads > 0 && a.num_kv_heads > 0 && a.head_dim > 0 && a.num_heads % a.num_kv_heads == 0,
              kInvalidArgument, "{}: layer {}: {} attention heads over {} KV heads of head_dim {} is not a valid shape",
              source, i, a.num_heads, a.num_kv_heads, a.head_dim);
    EXL_CHECK(a.rope_table >= 0 && a.rope_table < static_cast<int>(m.ropes.size()), kInternal,
              "{}: layer {} uses rope table {} of {}", source, i, a.rope_table, m.ropes.size());
    EXL_CHECK(a.sliding_window >= 0, kInvalidArgument, "{}: layer {}: sliding window {} is negative", source, i,
              a.sliding_window);
    if (a.rope != RopeStyle::kNone) {
      const int64_t rot = m.ropes[static_cast<size_t>(a.rope_table)].rotary_dim();
      EXL_CHECK(rot >= 2 && rot % 2 == 0 && rot <= a.head_dim, kInvalidArgument,
                "{}: layer {}: rotary dimension {} must be even and in [2, head_dim {}]", source, i, rot, a.head_dim);
    }
  }
}

}  // namespace

std::string_view norm_type_name(NormType type) {
  switch (type) {
    case NormType::kNone: return "none";
    case NormType::kRms: return "rms";
    case NormType::kLayer: return "layer";
  }
  return "?";
}

std::string_view rope_style_name(RopeStyle style) {
  switch (style) {
    case RopeStyle::kNone: return "none";
    case RopeStyle::kNeox: return "neox";
    case RopeStyle::kGptj: return "gptj";
  }
  return "?";
}

std::string_view activation_name(Activation act) {
  switch (act) {
    case Activation::kSilu: return "silu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kGelu: return "gelu";
  }
  return "?";
}

std::string_view router_type_name(RouterType type) {
  switch (type) {
    case RouterType::kSoftmaxTopK: return "softmax_topk";
    case RouterType::kTopKSoftmax: return "topk_softmax";
    case RouterType::kSparseMixer: return "sparsemixer";
  }
  return "?";
}

bool ModelSpec::has_moe() const {
  for (const auto& l : layers)
    if (l.mlp.type == MlpType::kMoe) return true;
  return false;
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& e : registry().entries()) names.push_back(e.architecture);
  return names;
}

ModelSpec build_model_spec(const io::ModelConfig& config, const ModelOverrides& overrides) {
  const arch::Registry::Entry* entry = nullptr;
  for (const auto& e : registry().entries())
    if (e.architecture == config.architecture) entry = &e;
  if (entry == nullptr) {
    std::string list;
    for (const auto& e : registry().entries()) list += (list.empty() ? "" : ", ") + e.architecture;
    fail(ErrorKind::kUnsupported, "{}: architecture '{}' is not supported (supported: {})", config.source,
         config.architecture, list);
  }
  ModelSpec m = entry->build(config);
  m.architecture = config.architecture;
  if (overrides.max_seq_len > 0) m.max_seq_len = overrides.max_seq_len;
  EXL_CHECK(overrides.rope_scale >= 0 && overrides.rope_alpha >= 0, kInvalidArgument,
            "model overrides: rope scale ({}) and rope alpha ({}) must not be negative", overrides.rope_scale,
            overrides.rope_alpha);
  for (RopeSpec& r : m.ropes) {
    if (overrides.rope_scale > 0) r.params.position_scale = overrides.rope_scale;
    if (overrides.rope_alpha > 0) r.params.ntk_alpha = overrides.rope_alpha;
  }
  if (m.pos_embed_key.empty() == false)
    EXL_CHECK(m.max_seq_len <= m.max_positions, kInvalidArgument,
              "{}: max_seq_len {} exceeds the {} learned positions of {}", config.source, m.max_seq_len,
              m.max_positions, config.architecture);
  check_spec(m, config.source);
  return m;
}

}  // namespace exl::model
