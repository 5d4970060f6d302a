// Host sampler: greedy, temperature, top-k, top-p over one row of logits. The reference for device sampling.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "model/runner.h"

namespace exl::sampling {

// Index of the largest logit (the first one on ties).
int32_t argmax(std::span<const float> logits);

class HostSampler {
 public:
  explicit HostSampler(const model::SamplingParams& params) : params_(params), rng_(params.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  model::SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace exl::sampling
