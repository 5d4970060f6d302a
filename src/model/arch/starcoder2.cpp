// StarCoder2: Llama layout with LayerNorm (with bias), q/k/v/o biases and a non-gated GELU MLP c_fc/c_proj with
// biases (use_bias), a sliding window on every layer when set, tied head.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec build_starcoder2(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  m.family = "starcoder2";
  const bool bias = r.get_bool("use_bias", true);
  const int64_t H = c.hidden_size, window = c.sliding_window.value_or(0);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_norm = layer_norm(p + "input_layernorm", H, c.rms_norm_eps, true);
    l.mlp_norm = layer_norm(p + "post_attention_layernorm", H, c.rms_norm_eps, true);
    for (LinearSpec* s : {&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.o}) s->bias = bias;
    l.mlp = MlpSpec{};
    l.mlp.type = MlpType::kPlain;
    l.mlp.act = parse_activation(c);
    l.mlp.up = linear(p + "mlp.c_fc", H, c.intermediate_size, bias);
    l.mlp.down = linear(p + "mlp.c_proj", c.intermediate_size, H, bias);
    if (layer_is_sliding(c, i, [&](int64_t) { return window > 0; })) l.attn.sliding_window = window;
  }
  m.final_norm = layer_norm("model.norm", H, c.rms_norm_eps, true);
  return m;
}

}  // namespace

void register_starcoder2(Registry& r) { r.add("Starcoder2ForCausalLM", build_starcoder2); }

}  // namespace exl::model::arch
