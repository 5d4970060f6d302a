#include "sampling/settings.h"

#include <cmath>
#include <string>
#include <string_view>

#include "core/error.h"

namespace exl::sampling {
namespace {

void check_finite(std::string_view name, float value) {
  EXL_CHECK(std::isfinite(value), kInvalidArgument, "sampler setting {}: expected a finite number, found {}", name,
            value);
}

void check_at_least(std::string_view name, float value, float low) {
  check_finite(name, value);
  EXL_CHECK(value >= low, kInvalidArgument, "sampler setting {}: expected a value >= {}, found {}", name, low, value);
}

// [low, high] when low_open is false, (low, high] when true.
void check_range(std::string_view name, float value, float low, float high, bool low_open, std::string_view hint) {
  check_finite(name, value);
  const bool ok = (low_open ? value > low : value >= low) && value <= high;
  EXL_CHECK(ok, kInvalidArgument, "sampler setting {}: expected a value in {}{}, {}], found {}{}", name,
            low_open ? "(" : "[", low, high, value, hint);
}

void check_ids(std::string_view name, const std::vector<int32_t>& ids, int64_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i) {
    EXL_CHECK(ids[i] >= 0 && (vocab_size < 0 || ids[i] < vocab_size), kInvalidArgument,
              "sampler setting {}[{}]: expected a token id in [0, {}), found {}", name, i,
              vocab_size < 0 ? std::string("vocab_size") : std::to_string(vocab_size), ids[i]);
  }
}

}  // namespace

void SamplerSettings::validate() const {
  check_at_least("temperature", temperature, 0.0f);
  check_at_least("min_temp", min_temp, 0.0f);
  check_at_least("max_temp", max_temp, 0.0f);
  check_finite("temp_exponent", temp_exponent);
  EXL_CHECK(temp_exponent > 0.0f, kInvalidArgument, "sampler setting temp_exponent: expected a value > 0, found {}",
            temp_exponent);
  check_at_least("smoothing_factor", smoothing_factor, 0.0f);

  EXL_CHECK(top_k >= 0, kInvalidArgument, "sampler setting top_k: expected a count >= 0 (0 = off), found {}", top_k);
  check_range("top_p", top_p, 0.0f, 1.0f, true, " (1 = off)");
  check_range("top_a", top_a, 0.0f, 1.0f, false, " (0 = off)");
  check_range("min_p", min_p, 0.0f, 1.0f, false, " (0 = off)");
  check_range("tfs", tfs, 0.0f, 1.0f, true, " (1 = off)");
  check_range("typical", typical, 0.0f, 1.0f, true, " (1 = off)");
  check_finite("skew", skew);

  EXL_CHECK(mirostat_mode >= 0 && mirostat_mode <= 2, kInvalidArgument,
            "sampler setting mirostat_mode: expected 0 (off), 1 or 2, found {}", mirostat_mode);
  check_at_least("mirostat_tau", mirostat_tau, 0.0f);
  check_at_least("mirostat_eta", mirostat_eta, 0.0f);
  if (mirostat_mu) check_finite("mirostat_mu", *mirostat_mu);

  check_range("xtc_probability", xtc_probability, 0.0f, 1.0f, false, " (0 = off)");
  check_range("xtc_threshold", xtc_threshold, 0.0f, 1.0f, false, "");

  check_at_least("dry_multiplier", dry_multiplier, 0.0f);
  check_at_least("dry_base", dry_base, 1.0f);
  EXL_CHECK(dry_allowed_length >= 1, kInvalidArgument,
            "sampler setting dry_allowed_length: expected a length >= 1, found {}", dry_allowed_length);
  EXL_CHECK(dry_range >= 0, kInvalidArgument, "sampler setting dry_range: expected a count >= 0 (0 = all), found {}",
            dry_range);
  EXL_CHECK(dry_max_ngram >= 1, kInvalidArgument, "sampler setting dry_max_ngram: expected a length >= 1, found {}",
            dry_max_ngram);

  check_finite("repetition_penalty", repetition_penalty);
  EXL_CHECK(repetition_penalty > 0.0f, kInvalidArgument,
            "sampler setting repetition_penalty: expected a value > 0 (1 = off), found {}", repetition_penalty);
  check_finite("frequency_penalty", frequency_penalty);
  check_finite("presence_penalty", presence_penalty);
  EXL_CHECK(penalty_range >= -1, kInvalidArgument,
            "sampler setting penalty_range: expected -1 (whole context) or a count >= 0, found {}", penalty_range);
  EXL_CHECK(repetition_decay >= 0, kInvalidArgument,
            "sampler setting repetition_decay: expected a count >= 0, found {}", repetition_decay);

  for (const auto& [token, bias] : logit_bias) {
    EXL_CHECK(token >= 0, kInvalidArgument, "sampler setting logit_bias: expected token ids >= 0, found {}", token);
    EXL_CHECK(!std::isnan(bias) && bias != INFINITY, kInvalidArgument,
              "sampler setting logit_bias[{}]: expected a finite bias or -inf, found {}", token, bias);
  }
  check_ids("banned_tokens", banned_tokens, -1);
  check_ids("allowed_tokens", allowed_tokens, -1);
  check_ids("xtc_ignore_tokens", xtc_ignore_tokens, -1);
  check_ids("dry_sequence_breakers", dry_sequence_breakers, -1);
}

void SamplerSettings::validate_for_vocab(int64_t vocab_size) const {
  validate();
  EXL_CHECK(vocab_size > 0, kInvalidArgument, "sampler: expected a vocabulary of at least one token, found {}",
            vocab_size);
  for (const auto& entry : logit_bias) {
    EXL_CHECK(entry.first < vocab_size, kInvalidArgument,
              "sampler setting logit_bias: expected token ids in [0, {}), found {}", vocab_size, entry.first);
  }
  check_ids("banned_tokens", banned_tokens, vocab_size);
  check_ids("allowed_tokens", allowed_tokens, vocab_size);
  check_ids("xtc_ignore_tokens", xtc_ignore_tokens, vocab_size);
  check_ids("dry_sequence_breakers", dry_sequence_breakers, vocab_size);
}

}  // namespace exl::sampling
