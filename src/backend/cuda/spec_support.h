// Which ModelSpecs the CUDA runner executes, and which of those take its fused one-token fast path. Pure functions of
// the spec (no CUDA types), header-only so that CPU-only builds and their tests can check the decisions too; the
// runner (cuda_runner.cpp) calls them before touching the device.
//
// The general path runs every dense option of model/model_spec.h step by step, as the CPU runner does: RMSNorm or
// LayerNorm (with or without weight, with bias) anywhere, post-norms, parallel blocks, residual / embedding / logit
// scales, learned positions, q/k norms, q/k/v clipping, NeoX / GPT-J / no rope from any number of tables (partial
// rotary), attention and final soft-capping, gated or plain MLPs with SiLU / GELU-tanh / GELU, linear biases, a
// row-normalized head, mixture-of-experts MLPs (up to 256 experts, top-k up to 32, any router, shared expert).
// Refused (kUnsupported, naming the option): attention shapes that differ between layers, more than 16 query heads per KV head, hidden sizes over 16384, RoPE tables whose attention
// factor changes with the sequence length (Phi-3.5-MoE's short/long mscale: the factor is a launch argument of the
// captured decode graph). (Head dims outside the kernels' list are refused by the runner itself, which knows that
// list: kernels/dispatch.h.)
#pragma once

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "model/model_spec.h"
#include "model/rope.h"

namespace exl::cuda {

inline constexpr int64_t kMaxQueryHeadsPerKvHead = 16;  // the decode attention kernel's largest group
inline constexpr int64_t kMaxNormHidden = 16384;         // kernels::launch_residual_norm
inline constexpr int64_t kMaxExperts = 256;              // kernels::launch_moe_route
inline constexpr int64_t kMaxTopK = 32;

// Throws kUnsupported naming the first option of `m` that the CUDA runner has no kernel for (source: the model's
// directory, for the message).
inline void check_supported(const model::ModelSpec& m, const std::string& source) {
  auto refuse = [&](const std::string& what) {
    fail(ErrorKind::kUnsupported, "cuda runner: {} ({}): {} is not supported by the CUDA backend yet (the CPU backend "
         "runs it: --backend cpu)", source, m.architecture, what);
  };
  if (m.hidden_size > kMaxNormHidden) refuse(fmt::format("a hidden size of {} (at most {})", m.hidden_size,
                                                         kMaxNormHidden));
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const model::LayerSpec& l = m.layers[i];
    const std::string at = fmt::format("layer {}: ", i);
    if (l.mlp.type == model::MlpType::kMoe && (l.mlp.moe.num_experts > kMaxExperts || l.mlp.moe.top_k > kMaxTopK))
      refuse(at + fmt::format("a mixture of {} experts with top-{} routing (at most {} experts, top-{})",
                              l.mlp.moe.num_experts, l.mlp.moe.top_k, kMaxExperts, kMaxTopK));
    const model::AttentionSpec& a = l.attn;
    const model::AttentionSpec& a0 = m.layers[0].attn;
    if (a.num_heads != a0.num_heads || a.num_kv_heads != a0.num_kv_heads || a.head_dim != a0.head_dim)
      refuse(at + "attention shapes that differ between layers");
    if (a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0 &&
        a.num_heads / a.num_kv_heads > kMaxQueryHeadsPerKvHead)
      refuse(at + fmt::format("{} query heads per KV head (at most {})", a.num_heads / a.num_kv_heads,
                              kMaxQueryHeadsPerKvHead));
  }
  for (const model::RopeSpec& r : m.ropes) {
    if (!model::rope_depends_on_length(r)) continue;
    const int64_t longest = std::max<int64_t>({m.max_seq_len, r.max_position_embeddings, 1});
    if (model::compute_rope(r, 1).attention_factor != model::compute_rope(r, longest).attention_factor)
      refuse("a RoPE attention factor that changes with the sequence length");
  }
}

namespace spec_detail {
// A norm the fused path's RMSNorm epilogues compute: RMS, one weight row, no bias.
inline bool plain_rms(const model::NormSpec& n) {
  return n.type == model::NormType::kRms && n.weight && !n.bias && n.weight_rows == 1;
}
}  // namespace spec_detail

// Why `m` cannot take the fused one-token fast path (empty: it can, as far as the spec goes; the runner also needs
// every layer EXL2/GPTQ). The fast path is the Llama pattern: RMS pre-norms with weight and one eps, no post-norms,
// sequential blocks, residual scale 1, NeoX rope (full or partial) from one table, no soft-capping or clipping, gated
// SiLU MLPs, and no embedding / logit scale, learned positions or normalized head. Linear biases (Qwen2's q/k/v,
// Llama's attention_bias / mlp_bias) are added in the GEMV epilogues; per-head q/k norms (Qwen3) run as one
// head_norm launch each between the q/k/v GEMV and the attention.
inline std::string fast_path_refusal(const model::ModelSpec& m) {
  using spec_detail::plain_rms;
  if (m.embed_scale != 1.0f) return "an embedding scale";
  if (!m.pos_embed_key.empty()) return "learned position embeddings";
  if (m.head_normalize) return "a row-normalized head";
  if (m.logit_scale != 1.0f) return "a logit scale";
  if (m.final_softcap != 0.0f) return "final logit soft-capping";
  if (m.ropes.size() != 1) return "several RoPE tables";
  if (!plain_rms(m.final_norm)) return "a final norm other than RMSNorm with weight";
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const model::LayerSpec& l = m.layers[i];
    const std::string at = fmt::format("layer {}: ", i);
    if (!plain_rms(l.attn_norm) || !plain_rms(l.mlp_norm)) return at + "a norm other than RMSNorm with weight";
    if (l.attn_norm.eps != m.final_norm.eps || l.mlp_norm.eps != m.final_norm.eps) return at + "norm eps that differ";
    if (l.attn_post_norm.present() || l.mlp_post_norm.present()) return at + "post-norms";
    if (l.parallel) return at + "a parallel attention/MLP block";
    if (l.residual_scale != 1.0f) return at + "a residual scale";
    const model::AttentionSpec& a = l.attn;
    if (a.softcap != 0.0f) return at + "attention soft-capping";
    if (a.clip_qkv != 0.0f) return at + "q/k/v clipping";
    if (a.rope != model::RopeStyle::kNeox || a.rope_table != 0) return at + "a RoPE style other than NeoX";
    if (l.mlp.type != model::MlpType::kGated || l.mlp.act != model::Activation::kSilu)
      return at + "an MLP other than gated SiLU";
  }
  return {};
}

inline bool fast_path_ok(const model::ModelSpec& m) { return fast_path_refusal(m).empty(); }

}  // namespace exl::cuda
