// GPT-2 and GPTBigCode (StarCoder 1, SantaCoder): learned absolute positions (wpe), no RoPE, LayerNorm with bias,
// fused c_attn, non-gated GELU MLP c_fc/c_proj with biases, tied head. GPT-2 stores Conv1D weights input-major
// [in, out]; BigCode uses nn.Linear and multi-query attention (one KV head) when multi_query is set. Checkpoints
// with or without the transformer. prefix load.
#include <cmath>

#include "core/error.h"
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace exl::model::arch {
namespace {

ModelSpec gpt_base(const io::ModelConfig& c, bool conv1d, bool multi_query) {
  const io::ConfigReader r(c.raw, c.source);
  ModelSpec m;
  m.architecture = c.architecture;
  m.family = "gpt2";
  const int64_t H = c.hidden_size, NH = c.num_heads, D = H / NH, NKV = multi_query ? 1 : NH;
  EXL_CHECK(H % NH == 0, kInvalidArgument, "{}: n_embd {} is not a multiple of n_head {}", c.source, H, NH);
  m.hidden_size = H;
  m.vocab_size = c.vocab_size;
  m.num_layers = c.num_layers;
  m.max_seq_len = c.max_position_embeddings;
  m.embed_key = "transformer.wte";
  m.pos_embed_key = "transformer.wpe";
  m.max_positions = c.max_position_embeddings;
  const double eps = r.get_double("layer_norm_epsilon", 1e-5);
  const Activation act = parse_activation(c);
  EXL_CHECK(!r.get_bool("scale_attn_by_inverse_layer_idx", false), kUnsupported,
            "{}: scale_attn_by_inverse_layer_idx = true is not supported", c.source);
  const bool scale_attn = r.get_bool("scale_attn_weights", true);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    LayerSpec l;
    l.attn_norm = layer_norm(p + "ln_1", H, eps, true);
    l.mlp_norm = layer_norm(p + "ln_2", H, eps, true);
    AttentionSpec& a = l.attn;
    a.num_heads = NH;
    a.num_kv_heads = NKV;
    a.head_dim = D;
    a.rope = RopeStyle::kNone;
    a.scale = scale_attn ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))) : 1.0f;
    const int64_t fused = H + 2 * NKV * D;
    a.q = LinearSpec{H, H, true, {}};
    a.k = LinearSpec{H, NKV * D, true, {}};
    a.v = LinearSpec{H, NKV * D, true, {}};
    add_fused_source(a.q, p + "attn.c_attn", fused, {{0, H}});
    add_fused_source(a.k, p + "attn.c_attn", fused, {{H, NKV * D}});
    add_fused_source(a.v, p + "attn.c_attn", fused, {{H + NKV * D, NKV * D}});
    a.o = linear(p + "attn.c_proj", H, H, true);
    l.mlp.type = MlpType::kPlain;
    l.mlp.act = act;
    l.mlp.up = linear(p + "mlp.c_fc", H, c.intermediate_size, true);
    l.mlp.down = linear(p + "mlp.c_proj", c.intermediate_size, H, true);
    if (conv1d)
      for (LinearSpec* s : {&a.q, &a.k, &a.v, &a.o, &l.mlp.up, &l.mlp.down})
        for (TensorSource& src : s->sources) src.stored_kn = true;
    m.layers.push_back(std::move(l));
  }
  m.final_norm = layer_norm("transformer.ln_f", H, eps, true);
  m.head = linear("lm_head", H, c.vocab_size, false);
  m.tied = r.get_bool("tie_word_embeddings", true);
  if (m.tied) m.head.sources.push_back(TensorSource{m.embed_key});
  m.ropes.push_back(RopeSpec{c.rope, D, c.max_position_embeddings});  // unused (no layer rotates)
  m.key_aliases = {{"transformer.", ""}};
  return m;
}

ModelSpec build_gpt2(const io::ModelConfig& c) { return gpt_base(c, true, false); }

ModelSpec build_bigcode(const io::ModelConfig& c) {
  const bool mq = io::ConfigReader(c.raw, c.source).get_bool("multi_query", true);
  return gpt_base(c, false, mq);
}

}  // namespace

void register_gpt2(Registry& r) {
  r.add("GPT2LMHeadModel", build_gpt2);
  r.add("GPTBigCodeForCausalLM", build_bigcode);
}

}  // namespace exl::model::arch
