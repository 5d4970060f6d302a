// The logit stages: repetition / frequency / presence penalties (range, decay), logit bias, banned and allowed
// tokens, DRY. Checked on adjusted_logits() with hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "sampling/sampler_chain.h"
#include "sampling_test_util.h"

namespace exl::sampling {
namespace {

using test::expect_probs;
using test::normalized;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> adjusted(const SamplerSettings& s, const std::vector<float>& logits,
                             const std::vector<int32_t>& context) {
  return Sampler(s).adjusted_logits(logits, context);
}

const std::vector<float> kPenaltyLogits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
const std::vector<int32_t> kPenaltyContext = {0, 1, 0, 3, 0};  // token 0 three times, 1 and 3 once

TEST(SamplerPenalties, RepetitionDividesPositiveMultipliesNegativeOncePerToken) {
  SamplerSettings s;
  s.repetition_penalty = 1.5f;
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext), {2.0 / 1.5, -1.5, 0.5, 2.0, -2.0, 1.0});
}

TEST(SamplerPenalties, FrequencyPerOccurrencePresencePerToken) {
  SamplerSettings s;
  s.frequency_penalty = 0.2f;
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext), {2.0 - 0.6, -1.2, 0.5, 2.8, -2.0, 1.0});
  s.frequency_penalty = 0.0f;
  s.presence_penalty = 0.3f;
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext), {1.7, -1.3, 0.5, 2.7, -2.0, 1.0});
  s.repetition_penalty = 1.5f;
  s.frequency_penalty = 0.2f;  // all three: multiplicative first, then the subtractions
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext),
               {2.0 / 1.5 - 0.3 - 0.6, -1.5 - 0.3 - 0.2, 0.5, 2.0 - 0.3 - 0.2, -2.0, 1.0});
}

TEST(SamplerPenalties, RangeCountsOnlyTheNewestTokens) {
  SamplerSettings s;
  s.repetition_penalty = 1.5f;
  s.frequency_penalty = 0.2f;
  s.presence_penalty = 0.3f;
  s.penalty_range = 2;  // only {3, 0}
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext), {2.0 / 1.5 - 0.5, -1.0, 0.5, 2.0 - 0.5, -2.0, 1.0});
  s.penalty_range = 0;  // nothing
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext), {2.0, -1.0, 0.5, 3.0, -2.0, 1.0});
}

TEST(SamplerPenalties, DecayFadesLinearlyBeyondTheRange) {
  SamplerSettings s;
  s.repetition_penalty = 1.5f;
  s.penalty_range = 1;
  s.repetition_decay = 2;
  // Context {3, 0, 1}: ages 1 (token 1) and 2 (token 0) at full strength, age 3 (token 3) at half: 1 + .5 * .5.
  expect_probs(adjusted(s, kPenaltyLogits, {3, 0, 1}), {2.0 / 1.5, -1.5, 0.5, 3.0 / 1.25, -2.0, 1.0});
  // With frequency and presence: context {0, 1, 0, 3, 0}; token 0 at ages 1 (full) and 3 (half), token 3 at age 2
  // (full), token 1 at age 4: outside range + decay.
  s.frequency_penalty = 0.2f;
  s.presence_penalty = 0.3f;
  expect_probs(adjusted(s, kPenaltyLogits, kPenaltyContext),
               {2.0 / 1.5 - 0.3 - 0.2 - 0.1, -1.0, 0.5, 2.0 - 0.3 - 0.2, -2.0, 1.0});
}

TEST(SamplerPenalties, DistributionIsSoftmaxOfPenalisedLogits) {
  SamplerSettings s;
  s.repetition_penalty = 2.0f;
  const std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.0f};
  expect_probs(Sampler(s).distribution(logits, std::vector<int32_t>{1, 2, 1}),
               normalized({std::exp(1.0), std::exp(1.0), std::exp(-2.0), std::exp(0.0)}));
}

TEST(SamplerBias, AddsBiasThenBansThenAllowList) {
  const std::vector<float> zeros(4, 0.0f);
  SamplerSettings s;
  s.logit_bias = {{1, static_cast<float>(std::log(3.0))}};
  expect_probs(Sampler(s).distribution(zeros, {}), {1.0 / 6, 3.0 / 6, 1.0 / 6, 1.0 / 6});
  s.banned_tokens = {2};
  expect_probs(Sampler(s).distribution(zeros, {}), {0.2, 0.6, 0.0, 0.2});
  s.allowed_tokens = {1, 2, 3};  // 2 stays banned
  expect_probs(Sampler(s).distribution(zeros, {}), {0.0, 0.75, 0.0, 0.25});
  s.logit_bias[3] = -INFINITY;  // -inf bias bans too
  expect_probs(Sampler(s).distribution(zeros, {}), {0.0, 1.0, 0.0, 0.0});
  const std::vector<double> l = Sampler(s).adjusted_logits(zeros, {});
  EXPECT_EQ(l[0], -kInf);
  EXPECT_EQ(l[2], -kInf);
}

TEST(SamplerBias, BlockedTokensApplyToOneCallOnly) {
  const std::vector<float> zeros(4, 0.0f);
  const std::vector<int32_t> blocked = {1, 3};
  SamplerSettings s;
  s.logit_bias = {{1, 10.0f}};  // a bias cannot lift a blocked token
  Sampler sampler(s);
  expect_probs(sampler.distribution(zeros, {}, blocked), {0.5, 0.0, 0.5, 0.0});
  for (uint64_t index = 0; index < 16; ++index) {
    const int32_t token = sampler.sample(zeros, {}, index, blocked);
    EXPECT_TRUE(token == 0 || token == 2) << token;
  }
  const double e = std::exp(10.0);
  expect_probs(sampler.distribution(zeros, {}), {1 / (e + 3), e / (e + 3), 1 / (e + 3), 1 / (e + 3)});
}

TEST(SamplerBias, AppliesAfterPenalties) {
  SamplerSettings s;
  s.repetition_penalty = 2.0f;
  s.logit_bias = {{0, 1.0f}};
  // Penalty then bias: 2 / 2 + 1 = 2 (bias then penalty would give 1.5).
  EXPECT_NEAR(adjusted(s, {2.0f, 0.0f}, {0})[0], 2.0, 1e-12);
}

// Vocabulary 10, all logits 0: the adjusted logits are minus the DRY penalties.
const std::vector<float> kZeros10(10, 0.0f);

SamplerSettings dry_settings() {
  SamplerSettings s;
  s.dry_multiplier = 0.8f;
  s.dry_base = 1.75f;
  s.dry_allowed_length = 2;
  return s;
}

std::vector<double> dry_penalties(const SamplerSettings& s, const std::vector<int32_t>& context) {
  std::vector<double> l = adjusted(s, kZeros10, context);
  for (double& x : l) x = -x;
  return l;
}

std::vector<double> only(int32_t token, double value) {
  std::vector<double> v(10, 0.0);
  v[token] = value;
  return v;
}

TEST(SamplerDry, PenalisesTheTokenThatExtendsARepeat) {
  SamplerSettings s = dry_settings();
  // "1 2 3 4 1 2 3": the suffix "1 2 3" (L = 3) was followed by 4: 0.8 * 1.75^(3 - 2).
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.8 * 1.75));
  s.dry_allowed_length = 3;
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.8));
  s.dry_allowed_length = 4;  // L = 3 is allowed
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
}

TEST(SamplerDry, LongestMatchPerTokenNotScaledByCount) {
  SamplerSettings s = dry_settings();
  // "7 3 4 8 2 3 5 7 3": after "7 3" came 4 (L = 2); after "3" alone came 5 (L = 1 < 2: no penalty).
  expect_probs(dry_penalties(s, {7, 3, 4, 8, 2, 3, 5, 7, 3}), only(4, 0.8));
  // "1 2 3 1 2 3 1 2": 3 followed "1 2" (L = 2) and "1 2 3 1 2" (L = 5): the longest counts, once.
  expect_probs(dry_penalties(s, {1, 2, 3, 1, 2, 3, 1, 2}), only(3, 0.8 * std::pow(1.75, 3)));
}

TEST(SamplerDry, SequenceBreakersStopMatches) {
  SamplerSettings s = dry_settings();
  s.dry_sequence_breakers = {2};  // inside the match: "3" alone, L = 1
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
  s.dry_sequence_breakers = {3};  // the last token is a breaker
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
  s.dry_sequence_breakers = {4};  // the continuation is a breaker
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
  s.dry_sequence_breakers = {9};  // unrelated
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.8 * 1.75));
}

TEST(SamplerDry, RangeAndMaxNgram) {
  SamplerSettings s = dry_settings();
  s.dry_range = 4;  // "4 1 2 3": no earlier 3
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
  s.dry_range = 5;  // "3 4 1 2 3": the earlier 3 matches with L = 1 only
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.0));
  s.dry_range = 6;  // "2 3 4 1 2 3": L = 2
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.8));
  s.dry_range = 0;
  s.dry_max_ngram = 2;  // L capped at 2
  expect_probs(dry_penalties(s, {1, 2, 3, 4, 1, 2, 3}), only(4, 0.8));
}

TEST(SamplerDry, OverlappingRepeatsOfOneToken) {
  SamplerSettings s = dry_settings();
  // "5 5 5 5": 5 followed "5 5 5" (the match ending at index 2, L = 3): 0.8 * 1.75.
  expect_probs(dry_penalties(s, {5, 5, 5, 5}), only(5, 0.8 * 1.75));
}

TEST(SamplerDry, RunsAfterBiasAndChangesTheDistribution) {
  SamplerSettings s = dry_settings();
  s.logit_bias = {{4, 1.0f}};
  const std::vector<double> l = adjusted(s, kZeros10, {1, 2, 3, 4, 1, 2, 3});
  EXPECT_NEAR(l[4], 1.0 - 0.8 * 1.75, 1e-6);
  std::vector<double> expected(10, 1.0);
  expected[4] = std::exp(1.0 - 0.8 * 1.75);
  expect_probs(Sampler(s).distribution(kZeros10, std::vector<int32_t>{1, 2, 3, 4, 1, 2, 3}), normalized(expected));
}

}  // namespace
}  // namespace exl::sampling
