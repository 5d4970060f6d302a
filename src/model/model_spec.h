// The data-only description of a model: what every layer computes and where its tensors are stored. Built from
// config.json by one small builder per architecture family (model/arch/<family>.cpp), loaded by
// model::ModelWeights::load and executed by one generic interpreter per backend (backend/cpu, backend/cuda).
// Nothing here runs anything: a new architecture is a new builder, not a new forward pass.
//
// One layer, in the order the interpreters run it (x is the residual stream, fp32):
//   h = attn_norm(x)
//   a = attn_post_norm(o_proj(attention(rope(q_norm(q_proj h)), rope(k_norm(k_proj h)), v_proj h)))
//   parallel:   x = x + r * (a + mlp(h))                       (Cohere: one norm feeds both branches)
//   sequential: x = x + r * a;  x = x + r * mlp_post_norm(mlp(mlp_norm(x)))
// where r is the residual scale and a missing norm is the identity. The model: x = embed_scale * embed[ids]
// (+ learned position embeddings), the layers, final_norm, head, then logit_scale and final_softcap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace exl::model {

enum class NormType { kNone, kRms, kLayer };
std::string_view norm_type_name(NormType type);

// RMSNorm: y = x / sqrt(mean(x^2) + eps) * (offset + w). LayerNorm: y = (x - mean) / sqrt(var + eps) * (offset + w)
// (+ b). Applied over `size` elements: the hidden size, or head_dim for a per-head q/k norm.
struct NormSpec {
  NormType type = NormType::kNone;
  std::string key;             // tensors <key>.weight (and <key>.bias)
  int64_t size = 0;            // normalized elements
  int64_t weight_rows = 1;     // per-head norms with one weight row per head (Cohere q/k norm: num_heads)
  bool bias = false;           // LayerNorm bias stored
  bool weight = true;          // false: no weight tensor (unit weight)
  float eps = 1e-6f;
  float weight_offset = 0.0f;  // Gemma's (1 + w): folded into the weight at load
  bool present() const { return type != NormType::kNone; }
};

// Where a linear layer's weights are stored. The loader tries the sources in order and uses the first whose tensors
// exist (e.g. separate q_proj, else the q columns of a fused qkv_proj).
struct ColumnRange {
  int64_t start = 0, count = 0;
};
struct TensorSource {
  std::string key;                     // <key>.weight, <key>.q_weight (EXL2), <key>.qweight (GPTQ)
  std::vector<ColumnRange> columns;    // output columns taken, in order (empty: all); fused tensors
  int64_t stored_out = 0;              // output columns of the stored tensor when `columns` is set (0: out)
  int64_t expert = -1;                 // >= 0: slice of a float tensor stacked over experts [E, ...]
  int64_t num_experts = 0;             // the stacked tensor's leading size, with expert >= 0
  bool stored_kn = false;              // float stored input-major [K, N] (GPT-2 Conv1D, DBRX w2)
};

struct LinearSpec {
  int64_t in = 0, out = 0;
  bool bias = false;                   // a bias is required (it is loaded whenever stored)
  std::vector<TensorSource> sources;
  bool present() const { return !sources.empty(); }
  const std::string& key() const { return sources.front().key; }
};

enum class RopeStyle { kNone, kNeox, kGptj };  // NeoX/Llama rotate-half; GPT-J/Cohere/GLM interleaved pairs
std::string_view rope_style_name(RopeStyle style);

struct AttentionSpec {
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  LinearSpec q, k, v, o;
  NormSpec q_norm, k_norm;       // per head (size head_dim), applied before RoPE
  float scale = 1.0f;            // on q.k
  float softcap = 0.0f;          // attention logit soft-capping: s = cap * tanh(s / cap) (0: off)
  int64_t sliding_window = 0;    // 0: full causal; else a query at p sees keys in (p - window, p]
  RopeStyle rope = RopeStyle::kNeox;
  int rope_table = 0;            // index into ModelSpec::ropes
  float clip_qkv = 0.0f;         // DBRX: q, k, v clamped to [-clip, clip] (0: off)
};

enum class Activation { kSilu, kGeluTanh, kGelu };
std::string_view activation_name(Activation act);
enum class MlpType { kGated, kPlain, kMoe };  // act(gate) * up -> down; act(up) -> down; mixture of experts
enum class RouterType {
  kSoftmaxTopK,   // softmax over all experts, top-k, optionally renormalized (Mixtral, Qwen MoE, DBRX)
  kTopKSoftmax,   // top-k logits, softmax over those (Granite-MoE)
  kSparseMixer,   // Phi-3.5-MoE's sparsemixer (inference form): top-2 with masked softmaxes
};
std::string_view router_type_name(RouterType type);

struct ExpertSpec {
  LinearSpec gate, up, down;
};

struct MoeSpec {
  int64_t num_experts = 0, top_k = 0;
  RouterType router_type = RouterType::kSoftmaxTopK;
  bool renormalize = false;       // kSoftmaxTopK: divide the k weights by their p-norm
  float renormalize_p = 1.0f;     // DBRX moe_normalize_expert_weights (1: plain sum)
  float jitter_eps = 0.0f;        // kSparseMixer
  LinearSpec router;              // [hidden -> num_experts]
  std::vector<ExpertSpec> experts;
  bool shared_expert = false;     // Qwen2-MoE: an always-on expert scaled by sigmoid(shared_gate . h)
  ExpertSpec shared;
  LinearSpec shared_gate;         // [hidden -> 1]; absent: the shared expert is added unscaled
};

struct MlpSpec {
  MlpType type = MlpType::kGated;
  Activation act = Activation::kSilu;
  LinearSpec gate, up, down;  // kPlain: up and down only
  MoeSpec moe;
};

struct LayerSpec {
  NormSpec attn_norm, attn_post_norm, mlp_norm, mlp_post_norm;
  bool parallel = false;        // attention and MLP both read attn_norm(x) (no mlp_norm)
  float residual_scale = 1.0f;  // Granite residual_multiplier, MiniCPM scale_depth / sqrt(layers)
  AttentionSpec attn;
  MlpSpec mlp;
};

// One RoPE frequency table (Gemma 3 has a local and a global one).
struct RopeSpec {
  io::RopeParameters params;
  int64_t head_dim = 0;                 // rotary_dim = head_dim * params.partial_rotary_factor
  int64_t max_position_embeddings = 0;
  int64_t rotary_dim() const;
};

struct ModelSpec {
  std::string architecture, family;
  int64_t hidden_size = 0, vocab_size = 0, num_layers = 0;
  int64_t max_seq_len = 0;             // positions the model may be run at (config, or the load-time override)
  std::string embed_key;               // <key>.weight [vocab, hidden]
  float embed_scale = 1.0f;            // Gemma sqrt(hidden), MiniCPM scale_emb, Granite embedding_multiplier
  std::string pos_embed_key;           // learned absolute positions [max_positions, hidden] (GPT-2); empty: none
  int64_t max_positions = 0;
  std::vector<RopeSpec> ropes;
  std::vector<LayerSpec> layers;
  NormSpec final_norm;
  LinearSpec head;                     // tied: its sources include the embedding
  bool tied = false;
  bool head_normalize = false;         // Index norm_head: logits of unit-L2 head rows
  float logit_scale = 1.0f;            // logits * logit_scale (Cohere logit_scale, 1/Granite logits_scaling, ...)
  float final_softcap = 0.0f;          // logits = cap * tanh(logits / cap) (0: off)
  // Other spellings of tensor names: when a name is not stored, each (from, to) whose `from` occurs in it is tried
  // with that occurrence replaced (Yi's ln1/ln2, Gemma 3's old language_model.model. prefix, GPT-2 without
  // transformer.).
  std::vector<std::pair<std::string, std::string>> key_aliases;

  bool has_moe() const;
  // Distinct head dims / whether any layer uses sliding windows etc. are read off `layers` by the backends.
};

// Load-time overrides that ExLlamaV2 offers for running a model past its trained context.
struct ModelOverrides {
  int64_t max_seq_len = 0;     // 0: from the config
  double rope_scale = 0.0;     // > 0: linear position scaling (positions / scale), on top of the config's
  double rope_alpha = 0.0;     // > 0: NTK alpha: base * alpha^(d / (d - 2))
};

// Builds the spec of the model in `config` (config.json read by io::load_model_config; its raw JSON, with
// text_config merged, is config.raw). kUnsupported naming the architecture and listing the supported ones.
ModelSpec build_model_spec(const io::ModelConfig& config, const ModelOverrides& overrides = {});
std::vector<std::string> supported_architectures();

}  // namespace exl::model
