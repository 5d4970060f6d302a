// The sampler stages one at a time, in double precision: the reference a device sampler is tested against.
// Logit stages change a row of logits in place. Probability stages work on a whole-vocabulary distribution in which
// a removed token has probability 0; each leaves the distribution normalised. Candidates are the tokens with p > 0;
// "sorted" means by probability descending, then token id ascending (which breaks every tie).
// docs/sampling.md gives the formulas and where each stage differs from ExLlamaV2.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace exl::sampling::stages {

// ---- logit stages ----

struct PenaltyParams {
  double repetition_penalty = 1.0;
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  int64_t range = -1;  // tokens at full strength, counted back from the newest; -1 = all
  int64_t decay = 0;   // tokens before those over which the strength fades linearly
};

// Repetition (multiplicative), frequency and presence (additive) penalties over the context. Context ids must lie
// in [0, logits.size()).
void apply_penalties(std::span<double> logits, std::span<const int32_t> context, const PenaltyParams& params);

// Adds the biases, then sets banned tokens, and all tokens outside a non-empty allowed list, to -inf.
void apply_bias_and_bans(std::span<double> logits, const std::map<int32_t, float>& logit_bias,
                         std::span<const int32_t> banned, std::span<const int32_t> allowed);

struct DryParams {
  double multiplier = 0.0;
  double base = 1.75;
  int32_t allowed_length = 2;
  int32_t max_ngram = 20;
  int64_t range = 0;                       // 0 = the whole context
  std::span<const int32_t> breakers = {};  // any order
};

// DRY: for every token t that followed an earlier occurrence of the context's last L tokens (L >= allowed_length,
// L <= max_ngram, no breaker inside the match nor as t), logit[t] -= multiplier * base^(L - allowed_length), with L
// the longest such match for t.
void apply_dry(std::span<double> logits, std::span<const int32_t> context, const DryParams& params);

// ---- probability stages ----

// p_i ∝ exp((l_i - l_max) / T), or exp(-s (l_i - l_max)^2 / T) with smoothing factor s > 0. -inf logits get 0.
// Needs at least one finite logit.
std::vector<double> softmax(std::span<const double> logits, double temperature, double smoothing_factor);

// Candidates (p > 0) sorted by probability descending, then id ascending.
std::vector<int32_t> sorted_candidates(std::span<const double> probs);

void normalize(std::span<double> probs);

void top_k(std::span<double> probs, int64_t k);       // k <= 0: no-op
void top_p(std::span<double> probs, double top_p);    // >= 1: no-op
void top_a(std::span<double> probs, double top_a);    // <= 0: no-op
void min_p(std::span<double> probs, double min_p);    // <= 0: no-op
void tail_free(std::span<double> probs, double tfs);  // >= 1: no-op
void typical(std::span<double> probs, double mass);   // >= 1: no-op

// Mirostat v2 truncation: keeps the top candidate and every candidate with p >= 2^-mu.
void mirostat_v2(std::span<double> probs, double mu);
// Mirostat (v1): estimates the Zipf exponent s from the top min(100, n) candidates and keeps the top
// k = round(((s - 1) 2^mu / (1 - N^-(s - 1)))^(1/s)) of them (N = probs.size(), 1 <= k <= n).
void mirostat_v1(std::span<double> probs, double mu);
// The k Mirostat v1 would keep (exposed for tests): n = number of candidates.
int64_t mirostat_v1_k(std::span<const double> probs, double mu);

// p ∝ p^(1/T) over the candidates; T <= 0 keeps only the most probable (ties share).
void power_temperature(std::span<double> probs, double temperature);
// min + (max - min) * (H / ln n)^exponent with H the entropy (nats) of the n candidates; min when n <= 1.
double dynamic_temperature(std::span<const double> probs, double min_temp, double max_temp, double exponent);

// XTC as its expectation: among the candidates with p >= threshold that are not ignored, all but the least likely
// (ties: the highest id is the least likely) are scaled by (1 - probability), the rest by 1 + probability * x/(1-x),
// x being the mass scaled down. Needs at least two such candidates, else a no-op.
void xtc(std::span<double> probs, double probability, double threshold, std::span<const int32_t> ignore);

// Inverse CDF: the first token whose cumulative probability exceeds u * sum(probs), walking in token id order, or
// (skew != 0) in sorted order with u replaced by u^exp(-skew). Returns the last candidate if rounding runs past the
// end. u in [0, 1).
int32_t draw(std::span<const double> probs, double u, double skew);

}  // namespace exl::sampling::stages
