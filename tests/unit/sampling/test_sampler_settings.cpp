// SamplerSettings validation: every out-of-range setting is an kInvalidArgument error naming it; bad inputs at
// sample time (logits, context, ids past the vocabulary, nothing left to sample) likewise.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "sampling/sampler_chain.h"
#include "sampling/settings.h"
#include "sampling_test_util.h"

namespace exl::sampling {
namespace {

using test::expect_invalid;

struct BadSetting {
  std::string name;  // must appear in the message
  std::function<void(SamplerSettings&)> set;
};

TEST(SamplerSettingsValidate, DefaultsAreValidAndNeutral) {
  const SamplerSettings s;
  EXPECT_NO_THROW(s.validate());
  EXPECT_FALSE(s.greedy());
  EXPECT_FALSE(s.dynamic_temperature());
  EXPECT_EQ(s.temperature, 1.0f);
  EXPECT_EQ(s.top_k, 0);
  EXPECT_EQ(s.top_p, 1.0f);
  EXPECT_EQ(s.typical, 1.0f);
  EXPECT_EQ(s.tfs, 1.0f);
  EXPECT_EQ(s.repetition_penalty, 1.0f);
  EXPECT_EQ(s.mirostat_mode, 0);
  EXPECT_EQ(s.xtc_probability, 0.0f);
  EXPECT_EQ(s.dry_multiplier, 0.0f);
}

TEST(SamplerSettingsValidate, EdgeValuesAreAccepted) {
  SamplerSettings s;
  s.temperature = 0.0f;
  s.top_p = 1.0f;
  s.min_p = 1.0f;
  s.top_a = 1.0f;
  s.typical = 1.0f;
  s.tfs = 1.0f;
  s.xtc_probability = 1.0f;
  s.xtc_threshold = 0.0f;
  s.mirostat_mode = 1;
  s.skew = -3.0f;
  s.frequency_penalty = -2.0f;
  s.presence_penalty = -2.0f;
  s.min_temp = 2.0f;  // max_temp <= min_temp: dynamic temperature is simply off
  s.logit_bias = {{3, -INFINITY}};
  EXPECT_NO_THROW(s.validate());
  EXPECT_FALSE(s.dynamic_temperature());
}

TEST(SamplerSettingsValidate, OutOfRangeValuesNameTheSetting) {
  const std::vector<BadSetting> cases = {
      {"temperature", [](SamplerSettings& s) { s.temperature = -0.5f; }},
      {"temperature", [](SamplerSettings& s) { s.temperature = NAN; }},
      {"min_temp", [](SamplerSettings& s) { s.min_temp = -1.0f; }},
      {"max_temp", [](SamplerSettings& s) { s.max_temp = INFINITY; }},
      {"temp_exponent", [](SamplerSettings& s) { s.temp_exponent = 0.0f; }},
      {"smoothing_factor", [](SamplerSettings& s) { s.smoothing_factor = -0.1f; }},
      {"top_k", [](SamplerSettings& s) { s.top_k = -1; }},
      {"top_p", [](SamplerSettings& s) { s.top_p = 0.0f; }},
      {"top_p", [](SamplerSettings& s) { s.top_p = 1.5f; }},
      {"top_a", [](SamplerSettings& s) { s.top_a = 1.1f; }},
      {"min_p", [](SamplerSettings& s) { s.min_p = -0.1f; }},
      {"tfs", [](SamplerSettings& s) { s.tfs = 0.0f; }},
      {"typical", [](SamplerSettings& s) { s.typical = 0.0f; }},
      {"typical", [](SamplerSettings& s) { s.typical = 1.01f; }},
      {"skew", [](SamplerSettings& s) { s.skew = NAN; }},
      {"mirostat_mode", [](SamplerSettings& s) { s.mirostat_mode = 3; }},
      {"mirostat_mode", [](SamplerSettings& s) { s.mirostat_mode = -1; }},
      {"mirostat_tau", [](SamplerSettings& s) { s.mirostat_tau = -1.0f; }},
      {"mirostat_eta", [](SamplerSettings& s) { s.mirostat_eta = -0.1f; }},
      {"mirostat_mu", [](SamplerSettings& s) { s.mirostat_mu = NAN; }},
      {"xtc_probability", [](SamplerSettings& s) { s.xtc_probability = 1.5f; }},
      {"xtc_threshold", [](SamplerSettings& s) { s.xtc_threshold = -0.1f; }},
      {"dry_multiplier", [](SamplerSettings& s) { s.dry_multiplier = -1.0f; }},
      {"dry_base", [](SamplerSettings& s) { s.dry_base = 0.5f; }},
      {"dry_allowed_length", [](SamplerSettings& s) { s.dry_allowed_length = 0; }},
      {"dry_range", [](SamplerSettings& s) { s.dry_range = -1; }},
      {"dry_max_ngram", [](SamplerSettings& s) { s.dry_max_ngram = 0; }},
      {"repetition_penalty", [](SamplerSettings& s) { s.repetition_penalty = 0.0f; }},
      {"frequency_penalty", [](SamplerSettings& s) { s.frequency_penalty = INFINITY; }},
      {"presence_penalty", [](SamplerSettings& s) { s.presence_penalty = NAN; }},
      {"penalty_range", [](SamplerSettings& s) { s.penalty_range = -2; }},
      {"repetition_decay", [](SamplerSettings& s) { s.repetition_decay = -1; }},
      {"logit_bias",
       [](SamplerSettings& s) {
         s.logit_bias = {{-1, 1.0f}};
       }},
      {"logit_bias[2]",
       [](SamplerSettings& s) {
         s.logit_bias = {{2, INFINITY}};
       }},
      {"logit_bias[2]",
       [](SamplerSettings& s) {
         s.logit_bias = {{2, NAN}};
       }},
      {"banned_tokens[1]",
       [](SamplerSettings& s) {
         s.banned_tokens = {0, -5};
       }},
      {"allowed_tokens[0]", [](SamplerSettings& s) { s.allowed_tokens = {-1}; }},
      {"xtc_ignore_tokens[0]", [](SamplerSettings& s) { s.xtc_ignore_tokens = {-2}; }},
      {"dry_sequence_breakers[0]", [](SamplerSettings& s) { s.dry_sequence_breakers = {-3}; }},
  };
  for (const BadSetting& c : cases) {
    SCOPED_TRACE(c.name);
    SamplerSettings s;
    c.set(s);
    expect_invalid([&] { s.validate(); }, c.name);
    expect_invalid([&] { Sampler sampler(s); }, c.name);
  }
}

TEST(SamplerSettingsValidate, MessagesSayWhatWasExpectedAndFound) {
  SamplerSettings s;
  s.top_p = 1.5f;
  expect_invalid([&] { s.validate(); }, "sampler setting top_p: expected a value in (0, 1], found 1.5 (1 = off)");
  s = SamplerSettings{};
  s.mirostat_mode = 3;
  expect_invalid([&] { s.validate(); }, "expected 0 (off), 1 or 2, found 3");
}

TEST(SamplerInputs, RejectsBadLogitsContextAndIdsPastTheVocabulary) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  Sampler plain{SamplerSettings{}};
  expect_invalid([&] { plain.distribution({}, {}); }, "vocabulary of at least one token");
  expect_invalid([&] { plain.distribution(std::vector<float>{0.0f, NAN, 1.0f}, {}); }, "logits[1]");
  expect_invalid([&] { plain.distribution(std::vector<float>{0.0f, INFINITY}, {}); }, "logits[1]");
  expect_invalid([&] { plain.distribution(logits, std::vector<int32_t>{0, 3}); }, "context[1] = 3");
  expect_invalid([&] { plain.sample(logits, std::vector<int32_t>{-1}, 0); }, "context[0] = -1");
  expect_invalid([&] { plain.sample(logits, {}, 0, std::vector<int32_t>{0, 9}); }, "blocked[1] = 9");

  SamplerSettings s;
  s.banned_tokens = {3};
  expect_invalid([&] { Sampler(s).distribution(logits, {}); }, "banned_tokens[0]");
  s = SamplerSettings{};
  s.logit_bias = {{5, 1.0f}};
  expect_invalid([&] { Sampler(s).distribution(logits, {}); }, "logit_bias");
  s = SamplerSettings{};
  s.allowed_tokens = {1, 4};
  expect_invalid([&] { Sampler(s).distribution(logits, {}); }, "allowed_tokens[1]");
  s = SamplerSettings{};
  s.dry_sequence_breakers = {7};
  expect_invalid([&] { Sampler(s).distribution(logits, {}); }, "dry_sequence_breakers[0]");
}

TEST(SamplerInputs, NothingLeftToSampleIsAnError) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  SamplerSettings s;
  s.banned_tokens = {0, 1, 2};
  expect_invalid([&] { Sampler(s).sample(logits, {}, 0); }, "at least one token left to sample");
  s = SamplerSettings{};
  s.allowed_tokens = {1};
  s.banned_tokens = {1};
  expect_invalid([&] { Sampler(s).distribution(logits, {}); }, "at least one token left to sample");
  expect_invalid(
      [&] {
        Sampler(SamplerSettings{}).sample(logits, {}, 0, std::vector<int32_t>{0, 1, 2});
      },
      "at least one token left to sample");
  s.temperature = 0.0f;  // greedy too
  expect_invalid([&] { Sampler(s).sample(logits, {}, 0); }, "at least one token left to sample");
  // -inf logits from the model itself are fine as long as one token remains.
  EXPECT_EQ(Sampler(SamplerSettings{}).sample(std::vector<float>{-INFINITY, 0.0f, -INFINITY}, {}, 3), 1);
}

}  // namespace
}  // namespace exl::sampling
