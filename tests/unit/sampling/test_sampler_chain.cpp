// The chain as a whole: neutral defaults, greedy, the order of the stages, Mirostat over several steps, and the
// random stream (seeded, batch invariant).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "sampling/sampler_chain.h"
#include "sampling/stages.h"
#include "sampling_test_util.h"

namespace exl::sampling {
namespace {

using test::distribution_of;
using test::expect_probs;
using test::inverse_cdf;
using test::logits_of;
using test::normalized;

const std::vector<float> kLogits = {0.3f, -1.2f, 2.5f, 0.0f, 1.7f, -0.4f, 0.9f, -3.0f, 1.1f, 0.2f};

std::vector<double> plain_softmax(const std::vector<float>& logits) {
  std::vector<double> e;
  for (float l : logits) e.push_back(std::exp(static_cast<double>(l)));
  return normalized(e);
}

TEST(SamplerChain, NeutralDefaultsGiveThePlainSoftmax) {
  const SamplerSettings defaults;
  Sampler sampler(defaults);
  const std::vector<int32_t> context = {2, 2, 4, 2, 9, 2, 4};
  const std::vector<double> softmax = plain_softmax(kLogits);
  expect_probs(sampler.distribution(kLogits, context), softmax, 1e-12);
  expect_probs(sampler.adjusted_logits(kLogits, context), std::vector<double>(kLogits.begin(), kLogits.end()), 0.0);
  for (uint64_t index = 0; index < 50; ++index) {
    const SampleResult r = sampler.sample_with_probability(kLogits, context, index);
    EXPECT_EQ(r.token, inverse_cdf(softmax, uniform_draw(0, index))) << "sample " << index;
    EXPECT_NEAR(r.probability, softmax[r.token], 1e-12);
  }
}

TEST(SamplerChain, GreedyBelowTemperatureThresholdAfterPenalties) {
  SamplerSettings s;
  s.temperature = 0.0f;
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  Sampler plain(s);
  EXPECT_EQ(plain.sample(logits, {}, 0), 1);
  expect_probs(plain.distribution(logits, {}), {0.0, 1.0, 0.0});
  s.repetition_penalty = 2.0f;  // 3 / 2 = 1.5 < 2: the penalised token loses
  Sampler penalised(s);
  expect_probs(penalised.distribution(logits, std::vector<int32_t>{1}), {0.0, 0.0, 1.0});
  for (uint64_t index = 0; index < 8; ++index) EXPECT_EQ(penalised.sample(logits, std::vector<int32_t>{1}, index), 2);
  s.repetition_penalty = 1.0f;
  s.temperature = 0.009f;
  s.temperature_last = true;  // still greedy
  s.logit_bias = {{0, 5.0f}};
  expect_probs(Sampler(s).distribution(logits, {}), {1.0, 0.0, 0.0});
  s.logit_bias.clear();
  expect_probs(Sampler(s).distribution(std::vector<float>{2.0f, 2.0f, 1.0f}, {}), {1.0, 0.0, 0.0});  // ties: the first
}

TEST(SamplerChain, TopKRunsBeforeTopP) {
  // {.4, .3, .2, .1}: top-k 3 renormalises to {.444, .333, .222}; top-p .75 then keeps two (.444 + .333 >= .75).
  // In the other order top-p would keep three.
  SamplerSettings s;
  s.top_k = 3;
  s.top_p = 0.75f;
  expect_probs(distribution_of(s, logits_of({0.4, 0.3, 0.2, 0.1})), {4.0 / 7, 3.0 / 7, 0.0, 0.0});
}

TEST(SamplerChain, TemperatureChangesWhatMinPKeepsUnlessLast) {
  // T = 3 first flattens {.7, .2, .1} to ∝ {.888, .585, .464}: min-p .6 keeps two. Last: min-p sees .7 and keeps
  // only the top.
  const std::vector<double> p = {0.7, 0.2, 0.1};
  SamplerSettings s;
  s.temperature = 3.0f;
  s.min_p = 0.6f;
  const double a = std::pow(0.7, 1.0 / 3), b = std::pow(0.2, 1.0 / 3);
  expect_probs(distribution_of(s, logits_of(p)), {a / (a + b), b / (a + b), 0.0});
  s.temperature_last = true;
  expect_probs(distribution_of(s, logits_of(p)), {1.0, 0.0, 0.0});
}

TEST(SamplerChain, XtcRunsAfterLateTemperature) {
  // Temperature last 0.5 squares {.5, .3, .2} to ∝ {.25, .09, .04}: {.658, .237, .105}. XTC (threshold .2,
  // probability 1) then removes .658, leaving .237 and .105. Before the temperature it would have removed .5.
  SamplerSettings s;
  s.temperature = 0.5f;
  s.temperature_last = true;
  s.xtc_probability = 1.0f;
  s.xtc_threshold = 0.2f;
  expect_probs(distribution_of(s, logits_of({0.5, 0.3, 0.2})), {0.0, 0.09 / 0.13, 0.04 / 0.13});
}

// Mirostat v2 by hand: keep the top candidate and every p >= 2^-mu, renormalise; mu += eta (tau - surprise).
std::vector<double> mirostat_v2_expected(const std::vector<double>& sorted_p, double mu) {
  std::vector<double> out(sorted_p.size(), 0.0);
  out[0] = sorted_p[0];
  for (size_t i = 1; i < sorted_p.size(); ++i) {
    if (sorted_p[i] >= std::exp2(-mu)) out[i] = sorted_p[i];
  }
  return normalized(out);
}

TEST(SamplerMirostat, V2TruncatesBySurpriseAndUpdatesMu) {
  const std::vector<double> p = {0.5, 0.25, 0.15, 0.1};
  SamplerSettings s;
  s.mirostat_mode = 2;
  s.mirostat_tau = 1.5f;
  s.mirostat_eta = 1.0f;
  s.seed = 7;
  Sampler sampler(s);
  EXPECT_DOUBLE_EQ(sampler.mirostat_mu(), 3.0);  // 2 tau
  // Step 0 by hand: mu 3, 2^-3 = .125 keeps {.5, .25, .15}.
  expect_probs(sampler.distribution(logits_of(p), {}), {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0});
  double mu = 3.0;
  std::set<size_t> kept_sizes;
  for (uint64_t step = 0; step < 12; ++step) {
    const std::vector<double> expected = mirostat_v2_expected(p, mu);
    size_t kept = 0;
    for (double q : expected) kept += q > 0.0 ? 1 : 0;
    kept_sizes.insert(kept);
    expect_probs(sampler.distribution(logits_of(p), {}), expected);
    const int32_t token = sampler.sample(logits_of(p), {}, step);
    ASSERT_EQ(token, inverse_cdf(expected, uniform_draw(7, step))) << "step " << step;
    mu += 1.0 * (1.5 + std::log2(expected[token]));
    EXPECT_NEAR(sampler.mirostat_mu(), mu, 1e-6) << "step " << step;
  }
  EXPECT_GE(kept_sizes.size(), 2u) << "mu never moved the cut";
}

TEST(SamplerMirostat, V1EstimatesZipfExponent) {
  // p_i ∝ i^-1.2 over a vocabulary of 6: the estimate is exactly s = 1.2, eps = .2, and with mu = 3
  // k = (.2 * 8 / (1 - 6^-.2))^(1 / 1.2) = 4.02 -> 4.
  std::vector<double> zipf;
  for (int i = 1; i <= 6; ++i) zipf.push_back(std::pow(static_cast<double>(i), -1.2));
  zipf = normalized(zipf);
  const double k_exact = std::pow(0.2 * 8.0 / (1.0 - std::pow(6.0, -0.2)), 1.0 / 1.2);
  EXPECT_NEAR(k_exact, 4.02, 0.01);
  EXPECT_EQ(stages::mirostat_v1_k(zipf, 3.0), 4);

  SamplerSettings s;
  s.mirostat_mode = 1;
  s.mirostat_tau = 1.5f;
  s.mirostat_eta = 0.5f;
  s.seed = 11;
  Sampler sampler(s);
  std::vector<float> logits;
  for (double q : zipf) logits.push_back(static_cast<float>(std::log(q)));
  double mu = 3.0;
  for (uint64_t step = 0; step < 6; ++step) {
    const double ratio = 0.2 * std::exp2(mu) / (1.0 - std::pow(6.0, -0.2));
    const int64_t k = std::clamp<int64_t>(std::llround(std::pow(ratio, 1.0 / 1.2)), 1, 6);
    std::vector<double> expected(6, 0.0);
    for (int64_t i = 0; i < k; ++i) expected[i] = zipf[i];
    expected = normalized(expected);
    expect_probs(sampler.distribution(logits, {}), expected);
    const int32_t token = sampler.sample(logits, {}, step);
    ASSERT_EQ(token, inverse_cdf(expected, uniform_draw(11, step))) << "step " << step;
    mu += 0.5 * (1.5 + std::log2(expected[token]));
    EXPECT_NEAR(sampler.mirostat_mu(), mu, 1e-6) << "step " << step;
  }
}

TEST(SamplerMirostat, StartingMuAndGreedyUpdate) {
  SamplerSettings s;
  s.mirostat_mode = 2;
  s.mirostat_mu = 1.0f;  // 2^-1 = .5: only the top survives
  s.mirostat_eta = 0.25f;
  Sampler sampler(s);
  expect_probs(sampler.distribution(logits_of({0.3, 0.45, 0.25}), {}), {0.0, 1.0, 0.0});
  // Greedy still moves mu, with surprise 0: mu += eta * tau.
  s.temperature = 0.0f;
  Sampler greedy(s);
  greedy.sample(logits_of({0.3, 0.45, 0.25}), {}, 0);
  EXPECT_NEAR(greedy.mirostat_mu(), 1.0 + 0.25 * 1.5, 1e-9);
  greedy.set_mirostat_mu(4.0);
  EXPECT_DOUBLE_EQ(greedy.mirostat_mu(), 4.0);
}

TEST(SamplerRandom, StreamIsSplitMix64) {
  // SplitMix64 seeded with 0 (fmix64(0) = 0) first outputs 0xE220A8397B1DCDAF.
  EXPECT_EQ(draw_bits(0, 0), 0xE220A8397B1DCDAFULL);
  for (uint64_t seed : {0ULL, 1ULL, 42ULL, ~0ULL}) {
    for (uint64_t index = 0; index < 100; ++index) {
      const double u = uniform_draw(seed, index);
      EXPECT_GE(u, 0.0);
      EXPECT_LT(u, 1.0);
      EXPECT_EQ(u, static_cast<double>(draw_bits(seed, index) >> 11) * 0x1.0p-53);
    }
  }
  EXPECT_NE(uniform_draw(1, 0), uniform_draw(2, 0));
  EXPECT_NE(uniform_draw(1, 0), uniform_draw(1, 1));
}

TEST(SamplerRandom, SameSeedAndIndexGiveTheSameTokenWhateverCameBefore) {
  const std::vector<float> flat(8, 0.0f);
  SamplerSettings s;
  s.seed = 1234;
  s.top_k = 6;
  Sampler fresh(s);
  const int32_t expected = fresh.sample(flat, {}, 17);
  Sampler busy(s);
  for (uint64_t index = 0; index < 40; ++index) busy.sample(kLogits, std::vector<int32_t>{1, 2, 3}, index);
  EXPECT_EQ(busy.sample(flat, {}, 17), expected);
  EXPECT_EQ(fresh.sample(flat, {}, 17), expected);
  // Different indices do draw differently.
  std::set<int32_t> seen;
  for (uint64_t index = 0; index < 64; ++index) seen.insert(fresh.sample(flat, {}, index));
  EXPECT_GE(seen.size(), 5u);
  for (int32_t t : seen) EXPECT_LT(t, 6);  // top-k 6 of a flat row keeps ids 0..5
}

}  // namespace
}  // namespace exl::sampling
