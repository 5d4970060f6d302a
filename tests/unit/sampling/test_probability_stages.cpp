// The probability stages of the sampler chain, each alone on a small distribution with hand-computed results.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sampling/sampler_chain.h"
#include "sampling/stages.h"
#include "sampling_test_util.h"

namespace exl::sampling {
namespace {

using test::distribution_of;
using test::expect_probs;
using test::logits_of;
using test::normalized;

TEST(SamplerTemperature, DividesLogitsBeforeSoftmax) {
  SamplerSettings s;
  s.temperature = 2.0f;
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.0f};
  expect_probs(distribution_of(s, logits), normalized({std::exp(0.5), std::exp(1.0), std::exp(1.5), std::exp(0.0)}));
  s.temperature = 0.5f;
  expect_probs(distribution_of(s, logits), normalized({std::exp(2.0), std::exp(4.0), std::exp(6.0), 1.0}));
}

TEST(SamplerTemperature, LastAppliesPowerAfterTruncation) {
  // p = {.5, .3, .15, .05}; min_p .2 drops p < .1. Temperature last: truncate first, then p^(1/2).
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplerSettings s;
  s.temperature = 2.0f;
  s.min_p = 0.2f;
  s.temperature_last = true;
  expect_probs(distribution_of(s, logits), normalized({std::sqrt(0.5), std::sqrt(0.3), std::sqrt(0.15), 0.0}));
  // Temperature first: sqrt-flattened p = {.379, .294, .208, .120} all clear .2 * .379, so all four survive.
  s.temperature_last = false;
  expect_probs(distribution_of(s, logits),
               normalized({std::sqrt(0.5), std::sqrt(0.3), std::sqrt(0.15), std::sqrt(0.05)}));
}

TEST(SamplerTemperature, LastWithoutTruncationEqualsFirst) {
  const std::vector<float> logits = {0.3f, -1.0f, 2.0f, 0.7f, 1.1f};
  SamplerSettings first;
  first.temperature = 0.7f;
  SamplerSettings last = first;
  last.temperature_last = true;
  expect_probs(distribution_of(last, logits), distribution_of(first, logits), 1e-12);
}

TEST(SamplerDynamicTemperature, EntropyPicksTemperature) {
  // p = {.5, .25, .25}: H = .5 ln 2 + .5 ln 4, Hmax = ln 3, T = .5 + (1.5 - .5) * H / Hmax ≈ 1.4464.
  const std::vector<double> p = {0.5, 0.25, 0.25};
  const double h = 0.5 * std::log(2.0) + 0.5 * std::log(4.0);
  const double t = 0.5 + 1.0 * h / std::log(3.0);
  EXPECT_NEAR(t, 1.44639, 1e-5);
  SamplerSettings s;
  s.min_temp = 0.5f;
  s.max_temp = 1.5f;
  expect_probs(distribution_of(s, logits_of(p)),
               normalized({std::pow(0.5, 1 / t), std::pow(0.25, 1 / t), std::pow(0.25, 1 / t)}));
  // Exponent 2: T = .5 + (H / Hmax)^2.
  s.temp_exponent = 2.0f;
  const double t2 = 0.5 + std::pow(h / std::log(3.0), 2.0);
  expect_probs(distribution_of(s, logits_of(p)),
               normalized({std::pow(0.5, 1 / t2), std::pow(0.25, 1 / t2), std::pow(0.25, 1 / t2)}));
}

TEST(SamplerDynamicTemperature, ReplacesStaticTemperatureAndSeesOnlySurvivors) {
  const std::vector<double> p = {0.6, 0.3, 0.08, 0.02};
  SamplerSettings s;
  s.min_temp = 0.2f;
  s.max_temp = 2.0f;
  s.min_p = 0.1f;  // drops .02: three candidates {.6, .3, .08} / .98
  const std::vector<double> kept = normalized({0.6, 0.3, 0.08});
  double h = 0.0;
  for (double q : kept) h -= q * std::log(q);
  const double t = 0.2 + 1.8 * h / std::log(3.0);
  const std::vector<double> expected =
      normalized({std::pow(kept[0], 1 / t), std::pow(kept[1], 1 / t), std::pow(kept[2], 1 / t), 0.0});
  expect_probs(distribution_of(s, logits_of(p)), expected);
  s.temperature = 0.5f;  // ignored while dynamic temperature is on (it only decides greedy)
  expect_probs(distribution_of(s, logits_of(p)), expected);
  s.temperature_last = true;
  expect_probs(distribution_of(s, logits_of(p)), expected);
}

TEST(SamplerDynamicTemperature, LowEntropyGetsNearMinTemp) {
  std::vector<double> p(8, 1e-4);
  p[3] = 1.0 - 7e-4;
  const double t = stages::dynamic_temperature(p, 0.25, 3.0, 1.0);
  EXPECT_GT(t, 0.25);
  EXPECT_LT(t, 0.3);
  EXPECT_NEAR(stages::dynamic_temperature(std::vector<double>(4, 0.25), 0.25, 3.0, 1.0), 3.0, 1e-12);
}

TEST(SamplerSmoothing, QuadraticAroundTheTopLogit) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f};
  SamplerSettings s;
  s.smoothing_factor = 0.5f;
  expect_probs(distribution_of(s, logits), normalized({1.0, std::exp(-0.5), std::exp(-2.0), std::exp(-4.5)}));
  s.temperature = 2.0f;  // divides the exponent
  expect_probs(distribution_of(s, logits), normalized({1.0, std::exp(-0.25), std::exp(-1.0), std::exp(-2.25)}));
  s.temperature = 1.0f;
  s.smoothing_factor = 50.0f;  // large: nearly greedy
  EXPECT_GT(distribution_of(s, logits)[0], 1.0 - 1e-9);
}

TEST(SamplerTopK, KeepsTheKMostProbable) {
  SamplerSettings s;
  s.top_k = 2;
  expect_probs(distribution_of(s, logits_of({0.1, 0.4, 0.2, 0.3})), {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7});
  s.top_k = 4;  // the whole vocabulary: no-op
  expect_probs(distribution_of(s, logits_of({0.1, 0.4, 0.2, 0.3})), {0.1, 0.4, 0.2, 0.3});
  s.top_k = 2;  // ties at the cut go to the lower ids
  expect_probs(distribution_of(s, logits_of({0.1, 0.3, 0.3, 0.3})), {0.0, 0.5, 0.5, 0.0});
}

TEST(SamplerTopP, SmallestSetReachingTheMass) {
  const std::vector<float> logits = logits_of({0.1, 0.4, 0.2, 0.3});
  SamplerSettings s;
  s.top_p = 0.6f;  // .4 < .6, .4 + .3 >= .6
  expect_probs(distribution_of(s, logits), {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7});
  s.top_p = 0.75f;  // .7 < .75, .9 >= .75
  expect_probs(distribution_of(s, logits), {0.0, 0.4 / 0.9, 0.2 / 0.9, 0.3 / 0.9});
  s.top_p = 0.3f;  // the top token alone
  expect_probs(distribution_of(s, logits), {0.0, 1.0, 0.0, 0.0});
}

TEST(SamplerTopA, DropsBelowAPmaxSquared) {
  SamplerSettings s;
  s.top_a = 0.5f;  // threshold .5 * .5^2 = .125
  expect_probs(distribution_of(s, logits_of({0.05, 0.5, 0.15, 0.3})), {0.0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95});
}

TEST(SamplerMinP, DropsBelowMinPTimesPmax) {
  SamplerSettings s;
  s.min_p = 0.35f;  // threshold .35 * .5 = .175
  expect_probs(distribution_of(s, logits_of({0.15, 0.5, 0.05, 0.3})), {0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8});
  s.min_p = 1.0f;  // only the top
  expect_probs(distribution_of(s, logits_of({0.15, 0.5, 0.05, 0.3})), {0.0, 1.0, 0.0, 0.0});
}

TEST(SamplerTailFree, CutsWhereTheCurvatureMassExceedsTfs) {
  // Sorted p = {.5, .25, .15, .07, .03}: |second differences| = {.15, .02, .04}, normalised {.714, .095, .190};
  // cumulative {.714, .810, 1}. Ids are shuffled: p by id = {.07, .5, .03, .25, .15}.
  const std::vector<float> logits = logits_of({0.07, 0.5, 0.03, 0.25, 0.15});
  SamplerSettings s;
  s.tfs = 0.8f;  // one curvature fits (.714 <= .8), keep 1 + 1 tokens
  expect_probs(distribution_of(s, logits), {0.0, 0.5 / 0.75, 0.0, 0.25 / 0.75, 0.0});
  s.tfs = 0.9f;  // two fit, keep three
  expect_probs(distribution_of(s, logits), {0.0, 0.5 / 0.9, 0.0, 0.25 / 0.9, 0.15 / 0.9});
  s.tfs = 0.5f;  // none fits, keep the top token
  expect_probs(distribution_of(s, logits), {0.0, 1.0, 0.0, 0.0, 0.0});
  // A linear distribution (exact in binary) has no curvature: no-op.
  std::vector<double> linear = {7.0 / 16, 5.0 / 16, 3.0 / 16, 1.0 / 16};
  stages::tail_free(linear, 0.5);
  expect_probs(linear, {7.0 / 16, 5.0 / 16, 3.0 / 16, 1.0 / 16});
}

TEST(SamplerTypical, OrdersBySurpriseDistanceFromEntropy) {
  // p = {.5, .25, .15, .1}: H = 1.20797 nats; |-ln p - H| = {.5148, .1783, .6891, 1.0946}, so the order is
  // .25, .5, .15, .1 (ids 1, 0, 2, 3).
  const std::vector<double> p = {0.5, 0.25, 0.15, 0.1};
  double h = 0.0;
  for (double q : p) h -= q * std::log(q);
  EXPECT_NEAR(h, 1.20797, 1e-5);
  SamplerSettings s;
  s.typical = 0.5f;  // .25 < .5, .75 >= .5
  expect_probs(distribution_of(s, logits_of(p)), {0.5 / 0.75, 0.25 / 0.75, 0.0, 0.0});
  s.typical = 0.8f;  // .75 < .8, .9 >= .8
  expect_probs(distribution_of(s, logits_of(p)), {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0});
  s.typical = 0.2f;  // the most typical token alone
  expect_probs(distribution_of(s, logits_of(p)), {0.0, 1.0, 0.0, 0.0});
}

TEST(SamplerSkew, WarpsTheDrawPointOverSortedCandidates) {
  const std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  // No skew: id order, cumulative {.1, .5, .7, 1}.
  EXPECT_EQ(stages::draw(p, 0.45, 0.0), 1);
  EXPECT_EQ(stages::draw(p, 0.05, 0.0), 0);
  EXPECT_EQ(stages::draw(p, 0.99, 0.0), 3);
  // Skew 1: u' = .45^exp(-1) = .7455 over sorted {.4 (id 1), .3 (id 3), .2 (id 2), .1 (id 0)}: cumulative .4, .7, .9.
  EXPECT_NEAR(std::pow(0.45, std::exp(-1.0)), 0.745459, 1e-6);
  EXPECT_EQ(stages::draw(p, 0.45, 1.0), 2);
  // Skew -1: u' = .45^e = .1141: the top token.
  EXPECT_EQ(stages::draw(p, 0.45, -1.0), 1);
  // Skew leaves the distribution itself alone.
  SamplerSettings s;
  s.skew = 2.0f;
  expect_probs(distribution_of(s, logits_of(p)), p);
}

TEST(SamplerXtc, ExpectationOfExcludingTopChoices) {
  const std::vector<float> logits = logits_of({0.4, 0.3, 0.2, 0.1});
  SamplerSettings s;
  s.xtc_probability = 0.5f;
  s.xtc_threshold = 0.25f;  // top choices .4, .3; .3 (the least likely) stays; x = .4
  const double up = 1.0 + 0.5 * 0.4 / 0.6;
  expect_probs(distribution_of(s, logits), {0.4 * 0.5, 0.3 * up, 0.2 * up, 0.1 * up});
  s.xtc_threshold = 0.15f;  // top choices .4, .3, .2; x = .7
  const double up2 = 1.0 + 0.5 * 0.7 / 0.3;
  expect_probs(distribution_of(s, logits), {0.4 * 0.5, 0.3 * 0.5, 0.2 * up2, 0.1 * up2});
  s.xtc_probability = 1.0f;  // certain exclusion: only .2 and .1 remain
  expect_probs(distribution_of(s, logits), {0.0, 0.0, 0.2 / 0.3, 0.1 / 0.3});
}

TEST(SamplerXtc, NeedsTwoTopChoicesAndHonoursIgnoredTokens) {
  const std::vector<float> logits = logits_of({0.4, 0.3, 0.2, 0.1});
  SamplerSettings s;
  s.xtc_probability = 0.5f;
  s.xtc_threshold = 0.35f;  // one token above: no-op
  expect_probs(distribution_of(s, logits), {0.4, 0.3, 0.2, 0.1});
  s.xtc_threshold = 0.25f;
  s.xtc_ignore_tokens = {0};  // .4 is ignored: only .3 counts, no-op
  expect_probs(distribution_of(s, logits), {0.4, 0.3, 0.2, 0.1});
  s.xtc_threshold = 0.15f;
  s.xtc_ignore_tokens = {1};  // top choices .4, .2; .2 stays; x = .4; the ignored .3 scales up with the rest
  const double up = 1.0 + 0.5 * 0.4 / 0.6;
  expect_probs(distribution_of(s, logits), {0.4 * 0.5, 0.3 * up, 0.2 * up, 0.1 * up});
}

}  // namespace
}  // namespace exl::sampling
