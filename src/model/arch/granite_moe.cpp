// Granite-MoE: Granite (embedding, residual, attention and logit multipliers) with an MoE MLP whose experts are
// stored fused over experts: block_sparse_moe.input_linear [E, 2I, H] (gate rows, then up rows) and
// output_linear [E, H, I]; router block_sparse_moe.router.layer; top-k of the router logits, softmax over those.
#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {

namespace {

ModelSpec build_granite_moe(const io::ModelConfig& c) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m = llama_like(c);
  apply_granite_multipliers(c, m);
  m.family = "granite";
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t E = r.get_int("num_local_experts"), k = r.get_int("num_experts_per_tok");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i) + "block_sparse_moe.";
    MlpSpec mlp;
    mlp.type = MlpType::kMoe;
    mlp.act = parse_activation(c);
    mlp.moe.num_experts = E;
    mlp.moe.top_k = k;
    mlp.moe.router_type = RouterType::kTopKSoftmax;
    check_moe(c, mlp.moe, "num_local_experts", "num_experts_per_tok");
    mlp.moe.router = linear(p + "router.layer", H, E, false);
    for (int64_t e = 0; e < E; ++e) {
      ExpertSpec x;
      x.gate = LinearSpec{H, I, false, {}};
      x.up = LinearSpec{H, I, false, {}};
      x.down = LinearSpec{I, H, false, {}};
      TensorSource s;
      s.key = p + "input_linear";
      s.expert = e;
      s.num_experts = E;
      s.stored_out = 2 * I;
      s.columns = {{0, I}};
      x.gate.sources.push_back(s);
      s.columns = {{I, I}};
      x.up.sources.push_back(s);
      TensorSource d;
      d.key = p + "output_linear";
      d.expert = e;
      d.num_experts = E;
      x.down.sources.push_back(d);
      mlp.moe.experts.push_back(std::move(x));
    }
    m.layers[i].mlp = std::move(mlp);
  }
  return m;
}

}  // namespace

void register_granite_moe(Registry& r) { r.add("GraniteMoeForCausalLM", build_granite_moe); }

}  // namespace exl::model::arch
