#include "sampling/sampler_chain.h"

#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"
#include "sampling/stages.h"

namespace exl::sampling {
namespace {

uint64_t fmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void check_inputs(const SamplerSettings& settings, std::span<const float> logits, std::span<const int32_t> context,
                  std::span<const int32_t> blocked) {
  const int64_t vocab_size = static_cast<int64_t>(logits.size());
  settings.validate_for_vocab(vocab_size);
  for (size_t i = 0; i < logits.size(); ++i) {
    EXL_CHECK(!std::isnan(logits[i]) && logits[i] != std::numeric_limits<float>::infinity(), kInvalidArgument,
              "sampler: expected logits that are finite or -inf, found logits[{}] = {}", i, logits[i]);
  }
  for (size_t i = 0; i < context.size(); ++i) {
    EXL_CHECK(context[i] >= 0 && context[i] < vocab_size, kInvalidArgument,
              "sampler: expected context token ids in [0, {}) (the logits' vocabulary), found context[{}] = {}",
              vocab_size, i, context[i]);
  }
  for (size_t i = 0; i < blocked.size(); ++i) {
    EXL_CHECK(blocked[i] >= 0 && blocked[i] < vocab_size, kInvalidArgument,
              "sampler: expected blocked token ids in [0, {}), found blocked[{}] = {}", vocab_size, i, blocked[i]);
  }
}

}  // namespace

uint64_t draw_bits(uint64_t seed, uint64_t sample_index) {
  return fmix64(fmix64(seed) + (sample_index + 1) * 0x9E3779B97F4A7C15ULL);
}

double uniform_draw(uint64_t seed, uint64_t sample_index) {
  return static_cast<double>(draw_bits(seed, sample_index) >> 11) * 0x1.0p-53;
}

Sampler::Sampler(SamplerSettings settings) : settings_(std::move(settings)) {
  settings_.validate();
  mu_ = settings_.mirostat_mu ? static_cast<double>(*settings_.mirostat_mu) : 2.0 * settings_.mirostat_tau;
}

std::vector<double> Sampler::adjusted_logits(std::span<const float> logits, std::span<const int32_t> context,
                                             std::span<const int32_t> blocked) const {
  check_inputs(settings_, logits, context, blocked);
  const SamplerSettings& s = settings_;
  std::vector<double> work(logits.begin(), logits.end());
  stages::apply_penalties(work, context,
                          stages::PenaltyParams{s.repetition_penalty, s.frequency_penalty, s.presence_penalty,
                                                s.penalty_range, s.repetition_decay});
  stages::apply_bias_and_bans(work, s.logit_bias, s.banned_tokens, s.allowed_tokens);
  stages::apply_bias_and_bans(work, {}, blocked, {});
  stages::apply_dry(work, context,
                    stages::DryParams{s.dry_multiplier, s.dry_base, s.dry_allowed_length, s.dry_max_ngram, s.dry_range,
                                      s.dry_sequence_breakers});
  bool any = false;
  for (double l : work) any = any || l > -std::numeric_limits<double>::infinity();
  EXL_CHECK(any, kInvalidArgument,
            "sampler: expected at least one token left to sample, found all {} logits -inf after banned_tokens, "
            "allowed_tokens, logit_bias and blocked tokens ({} banned, {} allowed, {} biased, {} blocked)",
            work.size(), s.banned_tokens.size(), s.allowed_tokens.size(), s.logit_bias.size(), blocked.size());
  return work;
}

std::vector<double> Sampler::distribution(std::span<const float> logits, std::span<const int32_t> context,
                                          std::span<const int32_t> blocked) const {
  const SamplerSettings& s = settings_;
  const std::vector<double> adjusted = adjusted_logits(logits, context, blocked);
  if (s.greedy()) {
    size_t best = 0;
    for (size_t i = 1; i < adjusted.size(); ++i) {
      if (adjusted[i] > adjusted[best]) best = i;
    }
    std::vector<double> one_hot(adjusted.size(), 0.0);
    one_hot[best] = 1.0;
    return one_hot;
  }
  const bool late_temperature = s.temperature_last || s.dynamic_temperature();
  std::vector<double> probs = stages::softmax(adjusted, late_temperature ? 1.0 : s.temperature, s.smoothing_factor);
  stages::top_k(probs, s.top_k);
  stages::top_p(probs, s.top_p);
  stages::top_a(probs, s.top_a);
  stages::min_p(probs, s.min_p);
  stages::tail_free(probs, s.tfs);
  stages::typical(probs, s.typical);
  if (s.mirostat_mode == 1) stages::mirostat_v1(probs, mu_);
  if (s.mirostat_mode == 2) stages::mirostat_v2(probs, mu_);
  if (s.dynamic_temperature()) {
    stages::power_temperature(probs, stages::dynamic_temperature(probs, s.min_temp, s.max_temp, s.temp_exponent));
  } else if (s.temperature_last) {
    stages::power_temperature(probs, s.temperature);
  }
  stages::xtc(probs, s.xtc_probability, s.xtc_threshold, s.xtc_ignore_tokens);
  return probs;
}

SampleResult Sampler::sample_with_probability(std::span<const float> logits, std::span<const int32_t> context,
                                              uint64_t sample_index, std::span<const int32_t> blocked) {
  const std::vector<double> probs = distribution(logits, context, blocked);
  SampleResult result;
  result.token = stages::draw(probs, uniform_draw(settings_.seed, sample_index), settings_.skew);
  result.probability = probs[result.token];
  if (settings_.mirostat_mode != 0) {
    const double surprise = -std::log2(result.probability);
    mu_ += settings_.mirostat_eta * (settings_.mirostat_tau - surprise);
  }
  return result;
}

}  // namespace exl::sampling
