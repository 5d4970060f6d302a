#include "backend/cpu/cpu_runner.h"

#include <chrono>
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/rope.h"
#include "sampling/sampler.h"

namespace exl::cpu {

CpuRunner::Linear CpuRunner::make_linear(const quant::LinearWeight& lw) {
  if (lw.in_features == 0) return {};
  return {lw.to_f32_nk(), lw.bias, lw.in_features, lw.out_features};
}

namespace {

NormKind norm_kind(model::NormType t) { return t == model::NormType::kLayer ? NormKind::kLayer : NormKind::kRms; }

ActKind act_kind(model::Activation a) {
  switch (a) {
    case model::Activation::kSilu: return ActKind::kSilu;
    case model::Activation::kGeluTanh: return ActKind::kGeluTanh;
    case model::Activation::kGelu: return ActKind::kGelu;
  }
  return ActKind::kSilu;
}

RouterKind router_kind(model::RouterType t) {
  switch (t) {
    case model::RouterType::kSoftmaxTopK: return RouterKind::kSoftmaxTopK;
    case model::RouterType::kTopKSoftmax: return RouterKind::kTopKSoftmax;
    case model::RouterType::kSparseMixer: return RouterKind::kSparseMixer;
  }
  return RouterKind::kSoftmaxTopK;
}

}  // namespace

CpuRunner::CpuRunner(const model::ModelWeights& weights, const CpuRunnerOptions& options)
    : config_(weights.config),
      spec_(weights.spec),
      pool_(options.num_threads),
      page_size_(options.page_size),
      kv_format_(options.kv_format) {
  EXL_CHECK(page_size_ > 0 && options.cache_tokens > 0, kInvalidArgument,
            "cpu runner: page_size ({}) and cache_tokens ({}) must be positive", page_size_, options.cache_tokens);
  num_pages_ = (options.cache_tokens + page_size_ - 1) / page_size_;
  embedding_ = model::to_f32(weights.embedding);
  if (weights.pos_embedding.ndim() > 0) pos_embedding_ = model::to_f32(weights.pos_embedding);
  final_norm_ = weights.final_norm;
  head_ = make_linear(weights.head);
  head_row_scale_ = weights.head_row_scale;
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const model::LayerWeights& lw = weights.layers[i];
    const model::AttentionSpec& a = spec_.layers[i].attn;
    cache::check_head_dim(kv_format_, a.head_dim);
    Layer l;
    l.attn_norm = lw.attn_norm;
    l.attn_post_norm = lw.attn_post_norm;
    l.mlp_norm = lw.mlp_norm;
    l.mlp_post_norm = lw.mlp_post_norm;
    l.q_norm = lw.q_norm;
    l.k_norm = lw.k_norm;
    l.q = make_linear(lw.q_proj);
    l.k = make_linear(lw.k_proj);
    l.v = make_linear(lw.v_proj);
    l.o = make_linear(lw.o_proj);
    l.gate = make_linear(lw.gate_proj);
    l.up = make_linear(lw.up_proj);
    l.down = make_linear(lw.down_proj);
    l.router = make_linear(lw.router);
    for (const auto& e : lw.experts)
      l.experts.push_back({make_linear(e.gate_proj), make_linear(e.up_proj), make_linear(e.down_proj)});
    l.shared = {make_linear(lw.shared.gate_proj), make_linear(lw.shared.up_proj), make_linear(lw.shared.down_proj)};
    l.shared_gate = make_linear(lw.shared_gate);
    const size_t page_floats = static_cast<size_t>(num_pages_ * page_size_ * a.num_kv_heads * a.head_dim);
    l.k_pages.assign(page_floats, 0.0f);
    l.v_pages.assign(page_floats, 0.0f);
    layers_.push_back(std::move(l));
  }
}

void CpuRunner::run_linear(const Linear& l, const float* x, float* y, int64_t num_tokens) {
  linear(pool_, x, l.w.data(), l.bias.empty() ? nullptr : l.bias.data(), y, num_tokens, l.in, l.out);
}

void CpuRunner::run_norm(const model::NormSpec& spec, const model::NormWeights& w, const float* x, float* out,
                         int64_t rows) {
  NormParams p;
  p.kind = norm_kind(spec.type);
  p.eps = spec.eps;
  p.weight = w.weight.empty() ? nullptr : w.weight.data();
  p.weight_rows = spec.weight_rows;
  p.bias = w.bias.empty() ? nullptr : w.bias.data();
  norm(p, x, out, rows, spec.size);
}

void CpuRunner::run_dense(model::MlpType type, model::Activation act, const Linear& gate, const Linear& up,
                          const Linear& down, const float* h, float* y, int64_t T) {
  const int64_t I = up.out;
  std::vector<float> u(static_cast<size_t>(T * I));
  run_linear(up, h, u.data(), T);
  if (type == model::MlpType::kGated) {
    std::vector<float> g(static_cast<size_t>(T * I));
    run_linear(gate, h, g.data(), T);
    act_mul(act_kind(act), g.data(), u.data(), u.data(), T * I);
  } else {
    act_inplace(act_kind(act), u.data(), T * I);
  }
  run_linear(down, u.data(), y, T);
}

void CpuRunner::run_mlp(const model::MlpSpec& spec, const Layer& l, const float* h, float* y, int64_t T) {
  const int64_t H = spec_.hidden_size;
  if (spec.type != model::MlpType::kMoe) {
    run_dense(spec.type, spec.act, l.gate, l.up, l.down, h, y, T);
    return;
  }
  const model::MoeSpec& moe = spec.moe;
  const int64_t E = moe.num_experts, K = moe.top_k;
  std::vector<float> logits(static_cast<size_t>(T * E));
  run_linear(l.router, h, logits.data(), T);
  RouteParams rp{router_kind(moe.router_type), E, K, moe.renormalize, moe.renormalize_p, moe.jitter_eps};
  std::vector<int32_t> ids(static_cast<size_t>(T * K));
  std::vector<float> weights(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) route(rp, logits.data() + t * E, ids.data() + t * K, weights.data() + t * K);
  std::fill(y, y + T * H, 0.0f);
  // Tokens grouped by expert: each expert runs once over its rows.
  std::vector<float> rows, out;
  for (int64_t e = 0; e < E; ++e) {
    std::vector<int64_t> slots;  // t * K + j
    for (int64_t i = 0; i < T * K; ++i)
      if (ids[static_cast<size_t>(i)] == e) slots.push_back(i);
    if (slots.empty()) continue;
    const int64_t n = static_cast<int64_t>(slots.size());
    rows.resize(static_cast<size_t>(n * H));
    out.resize(static_cast<size_t>(n * H));
    for (int64_t r = 0; r < n; ++r) std::copy_n(h + (slots[r] / K) * H, H, rows.begin() + r * H);
    const Expert& x = l.experts[static_cast<size_t>(e)];
    run_dense(model::MlpType::kGated, spec.act, x.gate, x.up, x.down, rows.data(), out.data(), n);
    for (int64_t r = 0; r < n; ++r)
      add_scaled_inplace(y + (slots[r] / K) * H, out.data() + r * H, H, weights[static_cast<size_t>(slots[r])]);
  }
  if (moe.shared_expert) {
    out.resize(static_cast<size_t>(T * H));
    run_dense(model::MlpType::kGated, spec.act, l.shared.gate, l.shared.up, l.shared.down, h, out.data(), T);
    std::vector<float> gate(static_cast<size_t>(T), 1.0f);
    if (l.shared_gate.out > 0) {
      run_linear(l.shared_gate, h, gate.data(), T);
      for (float& g : gate) g = 1.0f / (1.0f + std::exp(-g));
    }
    for (int64_t t = 0; t < T; ++t) add_scaled_inplace(y + t * H, out.data() + t * H, H, gate[static_cast<size_t>(t)]);
  }
}

void CpuRunner::forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
                        std::vector<float>* logits) {
  const model::ModelSpec& m = spec_;
  const int64_t H = m.hidden_size, V = m.vocab_size;
  std::vector<int32_t> ids, positions, query_start{0}, context_len, block_table;
  int64_t max_pages = 1, max_len = 0;
  for (const auto& s : seqs) max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(s.pages.size()));
  for (const auto& s : seqs) {
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    EXL_CHECK(!s.tokens.empty(), kInvalidArgument, "forward: a sequence has no new tokens");
    EXL_CHECK(end <= static_cast<int64_t>(s.pages.size()) * page_size_, kInvalidArgument,
              "forward: sequence length {} needs {} pages, its block table has {}", end,
              (end + page_size_ - 1) / page_size_, s.pages.size());
    EXL_CHECK(end <= m.max_seq_len, kInvalidArgument,
              "forward: sequence length {} exceeds the model's maximum sequence length {} (config "
              "max_position_embeddings; a longer one needs the max_seq_len override, --max-seq-len)", end,
              m.max_seq_len);
    if (!pos_embedding_.empty())
      EXL_CHECK(end <= m.max_positions, kInvalidArgument,
                "forward: sequence length {} exceeds the model's {} learned positions", end, m.max_positions);
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      ids.push_back(s.tokens[t]);
      positions.push_back(static_cast<int32_t>(s.start_pos + static_cast<int64_t>(t)));
    }
    query_start.push_back(static_cast<int32_t>(ids.size()));
    context_len.push_back(static_cast<int32_t>(end));
    max_len = std::max(max_len, end);
    for (int64_t p = 0; p < max_pages; ++p)
      block_table.push_back(p < static_cast<int64_t>(s.pages.size()) ? s.pages[p] : -1);
  }
  const int64_t T = static_cast<int64_t>(ids.size());
  AttentionBatch batch{static_cast<int64_t>(seqs.size()), query_start.data(), context_len.data(), block_table.data(),
                       max_pages};
  std::vector<model::RopeTable> ropes;
  for (const auto& r : m.ropes) ropes.push_back(model::compute_rope(r, max_len));

  std::vector<float> x(T * H), h(T * H), a(T * H), y(T * H);
  embedding(embedding_.data(), V, H, ids, x.data());
  if (m.embed_scale != 1.0f) scale_inplace(x.data(), T * H, m.embed_scale);
  if (!pos_embedding_.empty())
    for (int64_t t = 0; t < T; ++t) add_inplace(x.data() + t * H, pos_embedding_.data() + positions[t] * H, H);
  for (size_t li = 0; li < layers_.size(); ++li) {
    const model::LayerSpec& ls = m.layers[li];
    const model::AttentionSpec& as = ls.attn;
    Layer& l = layers_[li];
    const int64_t NH = as.num_heads, NKV = as.num_kv_heads, D = as.head_dim;
    if (ls.attn_norm.present())
      run_norm(ls.attn_norm, l.attn_norm, x.data(), h.data(), T);
    else
      h = x;
    // Attention.
    std::vector<float> q(T * NH * D), k(T * NKV * D), v(T * NKV * D), att(T * NH * D);
    run_linear(l.q, h.data(), q.data(), T);
    run_linear(l.k, h.data(), k.data(), T);
    run_linear(l.v, h.data(), v.data(), T);
    if (as.clip_qkv > 0)
      for (auto* t : {&q, &k, &v}) clamp_inplace(t->data(), static_cast<int64_t>(t->size()), as.clip_qkv);
    if (as.q_norm.present()) run_norm(as.q_norm, l.q_norm, q.data(), q.data(), T * NH);
    if (as.k_norm.present()) run_norm(as.k_norm, l.k_norm, k.data(), k.data(), T * NKV);
    if (as.rope != model::RopeStyle::kNone) {
      const model::RopeTable& rt = ropes[static_cast<size_t>(as.rope_table)];
      const bool inter = as.rope == model::RopeStyle::kGptj;
      rope(q.data(), positions, NH, D, rt.inv_freq, rt.attention_factor, inter);
      rope(k.data(), positions, NKV, D, rt.inv_freq, rt.attention_factor, inter);
    }
    if (kv_format_ != cache::KvFormat::kFp32) {
      // The pages stay fp32 (memory is not the CPU's concern); the values written are what the format's store gives
      // back. Each head's vector is D consecutive values (D % 32 == 0), so no 32-value group straddles two heads.
      cache::roundtrip(k.data(), T * NKV * D, cache::key_bits(kv_format_));
      cache::roundtrip(v.data(), T * NKV * D, cache::value_bits(kv_format_));
    }
    PagedKv kv{l.k_pages.data(), l.v_pages.data(), num_pages_, page_size_, NKV, D};
    write_kv(kv, batch, k.data(), v.data());
    AttentionParams ap{NH, NKV, D, as.scale, as.sliding_window, as.softcap};
    attention(pool_, ap, batch, kv, q.data(), att.data());
    run_linear(l.o, att.data(), a.data(), T);
    if (ls.attn_post_norm.present()) run_norm(ls.attn_post_norm, l.attn_post_norm, a.data(), a.data(), T);
    // MLP and residual.
    if (ls.parallel) {
      run_mlp(ls.mlp, l, h.data(), y.data(), T);
      add_inplace(a.data(), y.data(), T * H);
      add_scaled_inplace(x.data(), a.data(), T * H, ls.residual_scale);
    } else {
      add_scaled_inplace(x.data(), a.data(), T * H, ls.residual_scale);
      if (ls.mlp_norm.present())
        run_norm(ls.mlp_norm, l.mlp_norm, x.data(), h.data(), T);
      else
        h = x;
      run_mlp(ls.mlp, l, h.data(), y.data(), T);
      if (ls.mlp_post_norm.present()) run_norm(ls.mlp_post_norm, l.mlp_post_norm, y.data(), y.data(), T);
      add_scaled_inplace(x.data(), y.data(), T * H, ls.residual_scale);
    }
  }
  std::vector<float> rows;
  int64_t num_rows = T;
  if (which == model::LogitsFor::kLastToken) {
    num_rows = static_cast<int64_t>(seqs.size());
    rows.resize(num_rows * H);
    for (size_t s = 0; s < seqs.size(); ++s)
      std::copy_n(x.begin() + (query_start[s + 1] - 1) * H, H, rows.begin() + static_cast<int64_t>(s) * H);
  } else {
    rows = std::move(x);
  }
  std::vector<float> normed(rows.size());
  if (m.final_norm.present())
    run_norm(m.final_norm, final_norm_, rows.data(), normed.data(), num_rows);
  else
    normed = rows;
  logits->resize(static_cast<size_t>(num_rows * V));
  run_linear(head_, normed.data(), logits->data(), num_rows);
  float* lg = logits->data();
  if (!head_row_scale_.empty())
    for (int64_t r = 0; r < num_rows; ++r)
      for (int64_t n = 0; n < V; ++n) lg[r * V + n] *= head_row_scale_[static_cast<size_t>(n)];
  if (m.logit_scale != 1.0f) scale_inplace(lg, num_rows * V, m.logit_scale);
  if (m.final_softcap > 0) softcap_inplace(lg, num_rows * V, m.final_softcap);
}

model::DecodeStats CpuRunner::decode(const model::DecodeRequest& request, const model::TokenCallback& on_token) {
  EXL_CHECK(request.pages != nullptr, kInvalidArgument, "decode: no block table");
  const auto t0 = std::chrono::steady_clock::now();
  sampling::HostSampler sampler(request.sampling);
  model::DecodeStats stats;
  int32_t token = request.last_token;
  std::vector<float> logits;
  for (int64_t i = 0; i < request.max_new_tokens; ++i) {
    const int32_t one[1] = {token};
    const model::SequenceStep step{one, request.start_pos + i, *request.pages};
    forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    token = sampler.sample(logits);
    ++stats.tokens;
    const bool stop = std::find(request.stop_tokens.begin(), request.stop_tokens.end(), token) !=
                      request.stop_tokens.end();
    if (!on_token(token) || stop) break;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace exl::cpu
