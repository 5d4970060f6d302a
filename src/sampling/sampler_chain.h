// Sampler: the full sampler chain of one job, in ExLlamaV2's order, computed on the host in double precision.
// The reference (oracle) for any device sampler. Order, formulas and the decisions where we differ from ExLlamaV2:
// docs/sampling.md.
//
//   logits -> repetition/frequency/presence penalties -> logit bias, banned/allowed tokens -> DRY
//          -> greedy (temperature < 0.01: one-hot argmax, nothing below applies)
//          -> softmax (temperature unless temperature_last or dynamic temperature; quadratic smoothing)
//          -> top-k -> top-p -> top-a -> min-p -> tail-free -> typical -> mirostat
//          -> temperature_last temperature, or dynamic temperature -> XTC          = distribution()
//          -> draw: inverse CDF at u = uniform_draw(seed, sample_index) (skew warps u)
//          -> mirostat mu update from the drawn token's final probability
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/settings.h"

namespace exl::sampling {

// The random stream: one 64-bit value per (seed, sample_index), independent of anything else (other jobs, the
// batch, earlier calls), so a job's tokens do not depend on how it was batched:
//   bits = fmix64(fmix64(seed) + (sample_index + 1) * 0x9E3779B97F4A7C15)   (arithmetic mod 2^64)
// with fmix64 SplitMix64's finaliser (z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
// z ^= z >> 31), i.e. output sample_index + 1 of a SplitMix64 generator whose state starts at fmix64(seed).
uint64_t draw_bits(uint64_t seed, uint64_t sample_index);
// (draw_bits >> 11) * 2^-53: a double in [0, 1).
double uniform_draw(uint64_t seed, uint64_t sample_index);

struct SampleResult {
  int32_t token = -1;
  double probability = 0.0;  // the token's probability in the final distribution
};

class Sampler {
 public:
  // Validates the settings (exl::Error kInvalidArgument naming the setting).
  explicit Sampler(SamplerSettings settings);

  const SamplerSettings& settings() const { return settings_; }

  // Logits after the logit stages (penalties, bias, bans, DRY). `context` is the job's whole token sequence so far
  // (prompt and generated tokens), every id in [0, logits.size()). `blocked` bans tokens for this call only (stop
  // tokens before min_new_tokens, tokens already tried at a rewind point), like banned_tokens.
  std::vector<double> adjusted_logits(std::span<const float> logits, std::span<const int32_t> context,
                                      std::span<const int32_t> blocked = {}) const;

  // The final distribution over the vocabulary, just before the random draw (removed tokens have 0). Uses the
  // current mirostat mu without changing it.
  std::vector<double> distribution(std::span<const float> logits, std::span<const int32_t> context,
                                   std::span<const int32_t> blocked = {}) const;

  // Draws draw number `sample_index` of this job (0 for its first generated token, then 1, 2, ...) and updates
  // mirostat mu. The token depends only on the logits, the context, the settings, mu and (seed, sample_index).
  SampleResult sample_with_probability(std::span<const float> logits, std::span<const int32_t> context,
                                       uint64_t sample_index, std::span<const int32_t> blocked = {});
  int32_t sample(std::span<const float> logits, std::span<const int32_t> context, uint64_t sample_index,
                 std::span<const int32_t> blocked = {}) {
    return sample_with_probability(logits, context, sample_index, blocked).token;
  }

  // Mirostat state: starts at settings.mirostat_mu or 2 * tau; set it back when a job rewinds.
  double mirostat_mu() const { return mu_; }
  void set_mirostat_mu(double mu) { mu_ = mu; }

 private:
  SamplerSettings settings_;
  double mu_ = 0.0;
};

}  // namespace exl::sampling
