// Helpers for the sampler tests: logits from chosen probabilities, and comparisons of whole distributions.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "sampling/sampler_chain.h"

namespace exl::sampling::test {

inline constexpr double kTol = 1e-6;

// Logits whose softmax is `probs` (which must sum to 1; 0 gives -inf).
inline std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(p > 0.0 ? static_cast<float>(std::log(p)) : -INFINITY);
  return logits;
}

// `values` divided by their sum.
inline std::vector<double> normalized(std::vector<double> values) {
  double sum = 0.0;
  for (double v : values) sum += v;
  for (double& v : values) v /= sum;
  return values;
}

inline void expect_probs(const std::vector<double>& actual, const std::vector<double>& expected, double tol = kTol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], tol) << "token " << i;
}

inline std::vector<double> distribution_of(const SamplerSettings& settings, const std::vector<float>& logits,
                                           const std::vector<int32_t>& context = {}) {
  return Sampler(settings).distribution(logits, context);
}

// Inverse CDF in token id order: the first token whose cumulative probability exceeds u.
inline int32_t inverse_cdf(const std::vector<double>& probs, double u) {
  double total = 0.0;
  for (double p : probs) total += p;
  double cumulative = 0.0;
  int32_t last = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0) continue;
    last = static_cast<int32_t>(i);
    cumulative += probs[i];
    if (cumulative > u * total) return last;
  }
  return last;
}

// Runs `fn`, expecting an exl::Error of kind kInvalidArgument whose message contains `needle`.
template <typename Fn>
void expect_invalid(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an exl::Error mentioning '" << needle << "'";
  } catch (const exl::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace exl::sampling::test
