#include "generator/runner_step.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "sampling/sampler.h"

namespace exl::generator {

namespace {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

void fill_logprobs(std::span<const double> distribution, int32_t token, int n, SampleOutput* out) {
  out->has_logprobs = true;
  out->logprob = std::log(distribution[static_cast<size_t>(token)]);
  out->top = top_logprobs(distribution, n);
}

}  // namespace

uint64_t sample_seed(uint64_t seed, uint64_t sample_index) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (sample_index * 0xd6e8feb86659fd93ULL + 0x2545f4914f6cdd1dULL));
}

std::vector<double> host_distribution(const model::SamplingParams& params, std::span<const float> logits) {
  std::vector<double> p(logits.size(), 0.0);
  if (params.temperature <= 0.0f || params.top_k == 1) {
    p[static_cast<size_t>(sampling::argmax(logits))] = 1.0;
    return p;
  }
  // The same candidates, order and arithmetic as HostSampler::sample.
  const int64_t n = static_cast<int64_t>(logits.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = params.top_k > 0 ? std::min<int64_t>(params.top_k, n) : n;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(static_cast<size_t>(keep));
  std::vector<double> probs(order.size());
  const double mx = logits[order[0]];
  double sum = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp((logits[order[i]] - mx) / params.temperature);
    sum += probs[i];
  }
  if (params.top_p < 1.0f) {
    double cum = 0.0;
    size_t cut = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      cum += probs[i] / sum;
      if (cum >= params.top_p) {
        cut = i + 1;
        break;
      }
    }
    order.resize(cut);
    probs.resize(cut);
    sum = std::accumulate(probs.begin(), probs.end(), 0.0);
  }
  for (size_t i = 0; i < order.size(); ++i) p[static_cast<size_t>(order[i])] = probs[i] / sum;
  return p;
}

std::vector<TokenLogprob> top_logprobs(std::span<const double> distribution, int n) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < distribution.size(); ++i)
    if (distribution[i] > 0.0) ids.push_back(static_cast<int32_t>(i));
  const size_t keep = std::min(ids.size(), static_cast<size_t>(std::max(n, 0)));
  const auto by_probability = [&](int32_t a, int32_t b) {
    const double pa = distribution[static_cast<size_t>(a)], pb = distribution[static_cast<size_t>(b)];
    return pa > pb || (pa == pb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<int64_t>(keep), ids.end(), by_probability);
  std::vector<TokenLogprob> top(keep);
  for (size_t i = 0; i < keep; ++i) top[i] = {ids[i], std::log(distribution[static_cast<size_t>(ids[i])])};
  return top;
}

RunnerStepRunner::RunnerStepRunner(model::Runner& runner, const RunnerStepOptions& options)
    : runner_(runner),
      max_seq_len_(options.max_seq_len > 0 ? options.max_seq_len : runner.config().max_position_embeddings) {
  EXL_CHECK(max_seq_len_ > 0, kInvalidArgument,
            "RunnerStepRunner: expected a positive max_seq_len, found {} (config max_position_embeddings {})",
            max_seq_len_, runner.config().max_position_embeddings);
}

void RunnerStepRunner::step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) {
  sampled->clear();
  if (seqs.empty()) return;
  steps_.clear();
  for (const auto& s : seqs) steps_.push_back(model::SequenceStep{s.tokens, s.start_pos, s.pages});
  runner_.forward(steps_, model::LogitsFor::kLastToken, &logits_);
  const size_t rows = seqs.size();
  EXL_CHECK(!logits_.empty() && logits_.size() % rows == 0, kInternal,
            "RunnerStepRunner: expected logits of {} rows from the {} runner, found {} values", rows,
            runner_.backend_name(), logits_.size());
  const size_t row_size = logits_.size() / rows;
  for (size_t i = 0; i < rows; ++i) {
    if (!seqs[i].sample) continue;
    const std::span<const float> row(logits_.data() + i * row_size, row_size);
    int32_t token = -1;
    try {
      token = sample_row(seqs[i], row);
    } catch (const std::exception& e) {
      if (seqs[i].output == nullptr) throw;
      seqs[i].output->error = e.what();  // this sequence's job fails, the others go on
    }
    sampled->push_back(token);
  }
}

int32_t RunnerStepRunner::sample_row(const StepSequence& s, std::span<const float> row) {
  const int64_t n = static_cast<int64_t>(row.size());
  for (const int32_t t : s.blocked)
    EXL_CHECK(t >= 0 && t < n, kInvalidArgument, "RunnerStepRunner: blocked token {} is outside the logits row [0, {})",
              t, n);
  const bool logprobs = s.top_logprobs > 0 && s.output != nullptr;
  if (s.sampler != nullptr) {
    if (!logprobs) return s.sampler->sample(row, s.context, s.sample_index, s.blocked);
    // distribution() first: sample() moves the mirostat state on.
    const std::vector<double> distribution = s.sampler->distribution(row, s.context, s.blocked);
    const int32_t token = s.sampler->sample(row, s.context, s.sample_index, s.blocked);
    fill_logprobs(distribution, token, s.top_logprobs, s.output);
    return token;
  }
  std::span<const float> logits = row;
  if (!s.blocked.empty()) {
    masked_.assign(row.begin(), row.end());
    for (const int32_t t : s.blocked) masked_[static_cast<size_t>(t)] = -std::numeric_limits<float>::infinity();
    logits = masked_;
  }
  model::SamplingParams params = s.sampling;
  params.seed = sample_seed(params.seed, s.sample_index);
  sampling::HostSampler sampler(params);
  int32_t token = sampler.sample(logits);
  const bool blocked = std::ranges::find(s.blocked, token) != s.blocked.end();
  if (!logprobs && !blocked) return token;
  const std::vector<double> distribution = host_distribution(s.sampling, logits);
  if (blocked) {
    // HostSampler's draw can run past the last positive probability by rounding and return a kept token of
    // probability 0; take the last positive one in its order instead (the least probable, the higher id on ties).
    token = -1;
    for (size_t i = 0; i < distribution.size(); ++i) {
      const double p = distribution[i];
      if (p > 0.0 && (token < 0 || p <= distribution[static_cast<size_t>(token)])) token = static_cast<int32_t>(i);
    }
    EXL_CHECK(token >= 0 && std::ranges::find(s.blocked, token) == s.blocked.end(), kInvalidArgument,
              "RunnerStepRunner: no token is left to sample: the {} blocked tokens hold all the probability",
              s.blocked.size());
  }
  if (logprobs) fill_logprobs(distribution, token, s.top_logprobs, s.output);
  return token;
}

}  // namespace exl::generator
