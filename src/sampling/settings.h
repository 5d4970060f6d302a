// SamplerSettings: every sampler setting of one job, with neutral defaults (each default leaves the distribution
// untouched: the default settings sample from softmax(logits)). ExLlamaV2's own defaults (temperature 0.8, top-k 50,
// top-p 0.8, repetition penalty 1.025) are not ours. docs/sampling.md gives each setting's formula and the order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace exl::sampling {

// Temperatures below this sample greedily (the argmax of the penalised, biased logits), as ExLlamaV2 does.
inline constexpr float kGreedyTemperature = 0.01f;

struct SamplerSettings {
  // Temperature: logits / T before the softmax, or p^(1/T) after the truncation stages when temperature_last.
  // T < kGreedyTemperature (e.g. 0) samples greedily.
  float temperature = 1.0f;
  bool temperature_last = false;

  // Dynamic temperature, active when max_temp > min_temp: T = min + (max - min) * (H / ln N)^temp_exponent over the
  // N surviving candidates, applied after truncation. It replaces `temperature` (which then only decides greedy).
  float min_temp = 0.0f;
  float max_temp = 0.0f;
  float temp_exponent = 1.0f;

  // Quadratic smoothing: p ∝ exp(-smoothing_factor * (l - l_max)^2 / T_pre). 0 = off.
  float smoothing_factor = 0.0f;

  // Truncation stages, in the order they run.
  int32_t top_k = 0;     // keep the k most probable; 0 = off
  float top_p = 1.0f;    // (0, 1]: smallest most-probable set with mass >= top_p; 1 = off
  float top_a = 0.0f;    // [0, 1]: drop p < top_a * p_max^2; 0 = off
  float min_p = 0.0f;    // [0, 1]: drop p < min_p * p_max; 0 = off
  float tfs = 1.0f;      // (0, 1]: tail-free sampling; 1 = off
  float typical = 1.0f;  // (0, 1]: locally typical sampling mass; 1 = off

  // Skew: the draw walks the candidates from most to least probable at u^exp(-skew); > 0 favours unlikely tokens.
  float skew = 0.0f;

  // Mirostat: 0 = off, 1 = Mirostat (v1, Zipf estimate over the top 100 candidates), 2 = Mirostat v2.
  int32_t mirostat_mode = 0;
  float mirostat_tau = 1.5f;         // target surprise in bits
  float mirostat_eta = 0.1f;         // learning rate of mu
  std::optional<float> mirostat_mu;  // the job's starting mu; empty = 2 * tau

  // XTC ("exclude top choices"), applied as its expectation: with probability xtc_probability every token with
  // p >= xtc_threshold except the least likely of them would be removed. 0 = off.
  float xtc_probability = 0.0f;
  float xtc_threshold = 0.1f;
  std::vector<int32_t> xtc_ignore_tokens;  // never excluded, and not counted among the top choices

  // DRY ("don't repeat yourself"): logit -= multiplier * base^(L - allowed_length) for each token that would extend
  // a repeat of the context's last L >= allowed_length tokens. 0 = off.
  float dry_multiplier = 0.0f;
  float dry_base = 1.75f;
  int32_t dry_allowed_length = 2;
  std::vector<int32_t> dry_sequence_breakers;  // tokens a match never crosses (and never penalised)
  int64_t dry_range = 0;                       // only the last dry_range context tokens are searched; 0 = all
  int32_t dry_max_ngram = 20;                  // longest match length counted

  // Repetition penalties over the context (prompt and generated tokens). The last penalty_range tokens get full
  // strength (-1 = the whole context), the repetition_decay tokens before them a linearly fading one.
  float repetition_penalty = 1.0f;  // > 0: positive logits / penalty, others * penalty, once per distinct token
  float frequency_penalty = 0.0f;   // subtracted once per occurrence
  float presence_penalty = 0.0f;    // subtracted once per distinct token
  int64_t penalty_range = -1;
  int64_t repetition_decay = 0;

  std::map<int32_t, float> logit_bias;  // token -> added to its logit (-inf bans it)
  std::vector<int32_t> banned_tokens;   // never sampled
  std::vector<int32_t> allowed_tokens;  // when non-empty, only these can be sampled

  uint64_t seed = 0;  // with the sample index, picks the uniform of each draw (see uniform_draw)

  // Throws exl::Error (kInvalidArgument) naming the first setting outside its range.
  void validate() const;

  // Token ids must lie in [0, vocab_size): checks every id list and the bias map. Also validate()s.
  void validate_for_vocab(int64_t vocab_size) const;

  bool dynamic_temperature() const { return max_temp > min_temp; }
  bool greedy() const { return temperature < kGreedyTemperature; }
};

}  // namespace exl::sampling
