// Mixtral: Mistral attention (sliding window when the config sets one) with a sparse MoE MLP: router
// block_sparse_moe.gate, softmax over the experts, top-k, renormalized; experts w1 (gate), w3 (up), w2 (down).
// transformers 5 names the block mlp. and may store the experts stacked: both are accepted.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec build_mixtral(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  m.family = "mixtral";
  m.key_aliases = {{".block_sparse_moe.experts.gate_up_proj", ".mlp.experts.gate_up_proj"},
                   {".block_sparse_moe.experts.down_proj", ".mlp.experts.down_proj"},
                   {".block_sparse_moe.", ".mlp."}};
  const int64_t window = c.sliding_window.value_or(0);
  const int64_t E = r.get_int("num_local_experts"), k = r.get_int("num_experts_per_tok");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    if (layer_is_sliding(c, i, [&](int64_t) { return window > 0; })) m.layers[i].attn.sliding_window = window;
    const std::string p = layer_prefix(i) + "block_sparse_moe.";
    MlpSpec mlp;
    mlp.type = MlpType::kMoe;
    mlp.act = parse_activation(c);
    mlp.moe.num_experts = E;
    mlp.moe.top_k = k;
    mlp.moe.router_type = RouterType::kSoftmaxTopK;
    mlp.moe.renormalize = true;
    check_moe(c, mlp.moe, "num_local_experts", "num_experts_per_tok");
    mlp.moe.router = linear(p + "gate", c.hidden_size, E, false);
    add_experts(mlp.moe, p, c.hidden_size, c.intermediate_size, "w1", "w3", "w2");
    // transformers 5 per-expert spelling (mlp.experts.E.gate_proj) as a further fallback.
    for (int64_t e = 0; e < E; ++e) {
      const std::string ep = layer_prefix(i) + "mlp.experts." + std::to_string(e) + ".";
      mlp.moe.experts[e].gate.sources.push_back(TensorSource{ep + "gate_proj"});
      mlp.moe.experts[e].up.sources.push_back(TensorSource{ep + "up_proj"});
      mlp.moe.experts[e].down.sources.push_back(TensorSource{ep + "down_proj"});
    }
    m.layers[i].mlp = std::move(mlp);
  }
  return m;
}

}  // namespace

void register_mixtral(Registry& r) { r.add("MixtralForCausalLM", build_mixtral); }

}  // namespace exl::model::arch
