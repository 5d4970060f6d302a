#include "backend/cpu/cpu_runner.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "model/rope.h"
#include "sampling/sampler.h"

namespace exl::cpu {

CpuRunner::Linear CpuRunner::make_linear(const quant::LinearWeight& lw) {
  return {lw.to_f32_nk(), lw.bias, lw.in_features, lw.out_features};
}

CpuRunner::CpuRunner(const model::ModelWeights& weights, const CpuRunnerOptions& options)
    : config_(weights.config), pool_(options.num_threads), page_size_(options.page_size) {
  EXL_CHECK(page_size_ > 0 && options.cache_tokens > 0, kInvalidArgument,
            "cpu runner: page_size ({}) and cache_tokens ({}) must be positive", page_size_, options.cache_tokens);
  num_pages_ = (options.cache_tokens + page_size_ - 1) / page_size_;
  const io::ModelConfig& c = config_;
  embedding_ = model::to_f32(weights.embedding);
  final_norm_ = model::to_f32(weights.final_norm);
  head_ = make_linear(weights.head);
  const size_t page_floats = static_cast<size_t>(num_pages_ * page_size_ * c.num_kv_heads * c.head_dim);
  for (const auto& lw : weights.layers) {
    Layer l;
    l.attn_norm = model::to_f32(lw.attn_norm);
    l.mlp_norm = model::to_f32(lw.mlp_norm);
    l.q = make_linear(lw.q_proj);
    l.k = make_linear(lw.k_proj);
    l.v = make_linear(lw.v_proj);
    l.o = make_linear(lw.o_proj);
    l.gate = make_linear(lw.gate_proj);
    l.up = make_linear(lw.up_proj);
    l.down = make_linear(lw.down_proj);
    l.k_pages.assign(page_floats, 0.0f);
    l.v_pages.assign(page_floats, 0.0f);
    layers_.push_back(std::move(l));
  }
}

void CpuRunner::run_linear(const Linear& l, const float* x, float* y, int64_t num_tokens) {
  linear(pool_, x, l.w.data(), l.bias.empty() ? nullptr : l.bias.data(), y, num_tokens, l.in, l.out);
}

void CpuRunner::forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
                        std::vector<float>* logits) {
  const io::ModelConfig& c = config_;
  const int64_t H = c.hidden_size, D = c.head_dim, NH = c.num_heads, NKV = c.num_kv_heads, I = c.intermediate_size;
  std::vector<int32_t> ids, positions, query_start{0}, context_len, block_table;
  int64_t max_pages = 1, max_len = 0;
  for (const auto& s : seqs) max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(s.pages.size()));
  for (const auto& s : seqs) {
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    EXL_CHECK(!s.tokens.empty(), kInvalidArgument, "forward: a sequence has no new tokens");
    EXL_CHECK(end <= static_cast<int64_t>(s.pages.size()) * page_size_, kInvalidArgument,
              "forward: sequence length {} needs {} pages, its block table has {}", end,
              (end + page_size_ - 1) / page_size_, s.pages.size());
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
  const model::RopeTable rope_table = model::compute_rope(c, max_len);
  AttentionParams ap{NH, NKV, D, 1.0f / std::sqrt(static_cast<float>(D)), c.sliding_window.value_or(0)};

  std::vector<float> x(T * H), xn(T * H), q(T * NH * D), k(T * NKV * D), v(T * NKV * D), attn(T * NH * D),
      o(T * H), gate(T * I), up(T * I), act(T * I);
  embedding(embedding_.data(), c.vocab_size, H, ids, x.data());
  for (auto& l : layers_) {
    rms_norm(x.data(), l.attn_norm.data(), xn.data(), T, H, static_cast<float>(c.rms_norm_eps));
    run_linear(l.q, xn.data(), q.data(), T);
    run_linear(l.k, xn.data(), k.data(), T);
    run_linear(l.v, xn.data(), v.data(), T);
    rope(q.data(), positions, NH, D, rope_table.inv_freq, rope_table.attention_factor);
    rope(k.data(), positions, NKV, D, rope_table.inv_freq, rope_table.attention_factor);
    PagedKv kv{l.k_pages.data(), l.v_pages.data(), num_pages_, page_size_, NKV, D};
    write_kv(kv, batch, k.data(), v.data());
    attention(pool_, ap, batch, kv, q.data(), attn.data());
    run_linear(l.o, attn.data(), o.data(), T);
    add_inplace(x.data(), o.data(), T * H);
    rms_norm(x.data(), l.mlp_norm.data(), xn.data(), T, H, static_cast<float>(c.rms_norm_eps));
    run_linear(l.gate, xn.data(), gate.data(), T);
    run_linear(l.up, xn.data(), up.data(), T);
    silu_mul(gate.data(), up.data(), act.data(), T * I);
    run_linear(l.down, act.data(), o.data(), T);
    add_inplace(x.data(), o.data(), T * H);
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
  rms_norm(rows.data(), final_norm_.data(), normed.data(), num_rows, H, static_cast<float>(c.rms_norm_eps));
  logits->resize(static_cast<size_t>(num_rows * c.vocab_size));
  run_linear(head_, normed.data(), logits->data(), num_rows);
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
