// GLM-4 (Glm4ForCausalLM, the 0414 models): four norms per layer (input, post-self-attention, post-attention as the
// MLP's pre-norm, post-MLP), fused gate_up_proj, GPT-J interleaved RoPE on the first partial_rotary_factor of each
// head, q/k/v biases from attention_bias (o_proj has none), head falling back to the embedding.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec build_glm4(const io::ModelConfig& c) {
  ModelSpec m = llama_like(c);
  m.family = "glm";
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerSpec& l = m.layers[i];
    l.attn_post_norm = rms_norm(p + "post_self_attn_layernorm", H, c.rms_norm_eps);
    l.mlp_post_norm = rms_norm(p + "post_mlp_layernorm", H, c.rms_norm_eps);
    l.attn.rope = RopeStyle::kGptj;
    l.attn.o.bias = false;
    add_fused_source(l.mlp.gate, p + "mlp.gate_up_proj", 2 * I, {{0, I}});
    add_fused_source(l.mlp.up, p + "mlp.gate_up_proj", 2 * I, {{I, I}});
  }
  if (!m.tied) m.head.sources.push_back(TensorSource{m.embed_key});
  return m;
}

}  // namespace

void register_glm(Registry& r) { r.add("Glm4ForCausalLM", build_glm4); }

}  // namespace exl::model::arch
