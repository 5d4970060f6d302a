#include "sampling/stages.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "core/error.h"

namespace exl::sampling::stages {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

bool by_probability(std::span<const double> probs, int32_t a, int32_t b) {
  return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
}

double max_probability(std::span<const double> probs) {
  double best = 0.0;
  for (double p : probs) best = std::max(best, p);
  return best;
}

// Zeroes every token whose probability is below threshold, then renormalises.
void keep_at_least(std::span<double> probs, double threshold) {
  for (double& p : probs) {
    if (p < threshold) p = 0.0;
  }
  normalize(probs);
}

// Keeps the first `keep` entries of `order` (a list of candidates), zeroes the other candidates, renormalises.
void keep_first(std::span<double> probs, const std::vector<int32_t>& order, size_t keep) {
  for (size_t i = keep; i < order.size(); ++i) probs[order[i]] = 0.0;
  normalize(probs);
}

bool contains(std::span<const int32_t> sorted_ids, int32_t id) {
  return std::binary_search(sorted_ids.begin(), sorted_ids.end(), id);
}

}  // namespace

void apply_penalties(std::span<double> logits, std::span<const int32_t> context, const PenaltyParams& params) {
  if (params.repetition_penalty == 1.0 && params.frequency_penalty == 0.0 && params.presence_penalty == 0.0) return;
  const int64_t n = static_cast<int64_t>(context.size());
  const int64_t sustain = params.range < 0 ? n : params.range;
  const int64_t begin = std::max<int64_t>(0, n - sustain - params.decay);
  std::vector<char> seen(logits.size(), 0);
  for (int64_t pos = n - 1; pos >= begin; --pos) {
    // age 1 is the newest token. Ages past sustain + 1 lose 1/decay of the strength per token, as ExLlamaV2 counts.
    const int64_t age = n - pos;
    const int64_t fade_steps = std::max<int64_t>(0, age - 1 - sustain);
    const double strength = params.decay > 0 ? 1.0 - static_cast<double>(fade_steps) / params.decay : 1.0;
    const int32_t token = context[pos];
    double& l = logits[token];
    if (!seen[token]) {
      seen[token] = 1;
      const double rep = 1.0 + (params.repetition_penalty - 1.0) * strength;
      l = l > 0.0 ? l / rep : l * rep;
      l -= params.presence_penalty * strength;
    }
    l -= params.frequency_penalty * strength;
  }
}

void apply_bias_and_bans(std::span<double> logits, const std::map<int32_t, float>& logit_bias,
                         std::span<const int32_t> banned, std::span<const int32_t> allowed) {
  for (const auto& [token, bias] : logit_bias) logits[token] += bias;
  for (int32_t token : banned) logits[token] = kNegInf;
  if (allowed.empty()) return;
  std::vector<char> keep(logits.size(), 0);
  for (int32_t token : allowed) keep[token] = 1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!keep[i]) logits[i] = kNegInf;
  }
}

void apply_dry(std::span<double> logits, std::span<const int32_t> context, const DryParams& params) {
  if (params.multiplier <= 0.0) return;
  std::span<const int32_t> window = context;
  if (params.range > 0 && static_cast<int64_t>(window.size()) > params.range) {
    window = window.subspan(window.size() - static_cast<size_t>(params.range));
  }
  const int64_t n = static_cast<int64_t>(window.size());
  if (n < 2) return;
  std::vector<int32_t> breakers(params.breakers.begin(), params.breakers.end());
  std::sort(breakers.begin(), breakers.end());
  const int32_t last = window[n - 1];
  if (contains(breakers, last)) return;

  // For each earlier occurrence of the last token, the length of the match ending there, credited to the token
  // that followed it; each token keeps its longest match.
  std::unordered_map<int32_t, int64_t> longest;
  for (int64_t idx = n - 2; idx >= 0; --idx) {
    if (window[idx] != last) continue;
    const int32_t next = window[idx + 1];
    if (contains(breakers, next)) continue;
    int64_t length = 1;
    while (length < params.max_ngram) {
      const int64_t j = idx - length;
      if (j < 0) break;
      const int32_t a = window[j];
      if (a != window[n - 1 - length] || contains(breakers, a)) break;
      ++length;
    }
    int64_t& best = longest[next];
    best = std::max(best, length);
  }
  for (const auto& [token, length] : longest) {
    if (length < params.allowed_length) continue;
    logits[token] -= params.multiplier * std::pow(params.base, static_cast<double>(length - params.allowed_length));
  }
}

std::vector<double> softmax(std::span<const double> logits, double temperature, double smoothing_factor) {
  double lmax = kNegInf;
  for (double l : logits) lmax = std::max(lmax, l);
  EXL_CHECK(std::isfinite(lmax), kInvalidArgument, "sampler softmax: expected a finite logit, found the largest {}",
            lmax);
  std::vector<double> probs(logits.size(), 0.0);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == kNegInf) continue;
    const double x = logits[i] - lmax;
    probs[i] = smoothing_factor > 0.0 ? std::exp(-smoothing_factor * x * x / temperature) : std::exp(x / temperature);
  }
  normalize(probs);
  return probs;
}

std::vector<int32_t> sorted_candidates(std::span<const double> probs) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0.0) order.push_back(static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return by_probability(probs, a, b); });
  return order;
}

void normalize(std::span<double> probs) {
  double sum = 0.0;
  for (double p : probs) sum += p;
  EXL_CHECK(sum > 0.0 && std::isfinite(sum), kInternal, "sampler: expected a positive probability mass, found {}", sum);
  for (double& p : probs) p /= sum;
}

void top_k(std::span<double> probs, int64_t k) {
  if (k <= 0) return;
  std::vector<int32_t> order;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0.0) order.push_back(static_cast<int32_t>(i));
  }
  if (static_cast<int64_t>(order.size()) <= k) return;
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                   [&](int32_t a, int32_t b) { return by_probability(probs, a, b); });
  keep_first(probs, order, static_cast<size_t>(k));
}

void top_p(std::span<double> probs, double top_p_mass) {
  if (top_p_mass >= 1.0) return;
  const std::vector<int32_t> order = sorted_candidates(probs);
  double cumulative = 0.0;
  size_t keep = 0;
  while (keep < order.size()) {
    cumulative += probs[order[keep++]];
    if (cumulative >= top_p_mass) break;
  }
  keep_first(probs, order, keep);
}

void top_a(std::span<double> probs, double a) {
  if (a <= 0.0) return;
  const double pmax = max_probability(probs);
  keep_at_least(probs, a * pmax * pmax);
}

void min_p(std::span<double> probs, double m) {
  if (m <= 0.0) return;
  keep_at_least(probs, m * max_probability(probs));
}

void tail_free(std::span<double> probs, double tfs) {
  if (tfs >= 1.0) return;
  const std::vector<int32_t> order = sorted_candidates(probs);
  const size_t n = order.size();
  if (n < 3) return;
  std::vector<double> curvature(n - 2);
  double total = 0.0;
  for (size_t i = 0; i + 2 < n; ++i) {
    curvature[i] = std::fabs(probs[order[i]] - 2.0 * probs[order[i + 1]] + probs[order[i + 2]]);
    total += curvature[i];
  }
  if (total <= 0.0) return;
  // k = the number of leading curvatures whose normalised cumulative sum stays <= tfs; keep k + 1 tokens.
  size_t k = 0;
  double cumulative = 0.0;
  while (k < n - 2) {
    cumulative += curvature[k] / total;
    if (cumulative > tfs) break;
    ++k;
  }
  keep_first(probs, order, k + 1);
}

void typical(std::span<double> probs, double mass) {
  if (mass >= 1.0) return;
  std::vector<int32_t> order;
  double entropy = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0) continue;
    order.push_back(static_cast<int32_t>(i));
    entropy -= probs[i] * std::log(probs[i]);
  }
  std::vector<double> score(probs.size(), 0.0);
  for (int32_t t : order) score[t] = std::fabs(-std::log(probs[t]) - entropy);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return score[a] < score[b] || (score[a] == score[b] && a < b); });
  double cumulative = 0.0;
  size_t keep = 0;
  while (keep < order.size()) {
    cumulative += probs[order[keep++]];
    if (cumulative >= mass) break;
  }
  keep_first(probs, order, keep);
}

void mirostat_v2(std::span<double> probs, double mu) {
  const std::vector<int32_t> order = sorted_candidates(probs);
  const double target = std::exp2(-mu);
  size_t keep = 1;
  while (keep < order.size() && probs[order[keep]] >= target) ++keep;
  keep_first(probs, order, keep);
}

int64_t mirostat_v1_k(std::span<const double> probs, double mu) {
  const std::vector<int32_t> order = sorted_candidates(probs);
  const int64_t n = static_cast<int64_t>(order.size());
  if (n < 2) return n;
  const int64_t m = std::min<int64_t>(100, n);
  double num = 0.0;
  double den = 0.0;
  for (int64_t i = 0; i + 1 < m; ++i) {
    const double t = std::log(static_cast<double>(i + 2) / static_cast<double>(i + 1));
    const double b = std::log(probs[order[i]] / probs[order[i + 1]]);
    num += t * b;
    den += t * t;
  }
  const double s = num / den;
  if (!(s > 0.0)) return n;  // a flat head: no Zipf tail to cut
  const double eps = s - 1.0;
  const double vocab = static_cast<double>(probs.size());
  // (eps 2^mu) / (1 - N^-eps), with its limit 2^mu / ln N at eps = 0.
  const double ratio =
      std::fabs(eps) < 1e-12 ? std::exp2(mu) / std::log(vocab) : eps * std::exp2(mu) / (1.0 - std::pow(vocab, -eps));
  const double k = std::round(std::pow(ratio, 1.0 / s));
  if (!(k < static_cast<double>(n))) return n;
  return std::max<int64_t>(1, static_cast<int64_t>(k));
}

void mirostat_v1(std::span<double> probs, double mu) {
  const int64_t k = mirostat_v1_k(probs, mu);
  top_k(probs, k);
}

void power_temperature(std::span<double> probs, double temperature) {
  if (temperature == 1.0) return;
  const double pmax = max_probability(probs);
  if (temperature <= 0.0) {
    keep_at_least(probs, pmax);
    return;
  }
  const double log_max = std::log(pmax);
  for (double& p : probs) {
    if (p > 0.0) p = std::exp((std::log(p) - log_max) / temperature);
  }
  normalize(probs);
}

double dynamic_temperature(std::span<const double> probs, double min_temp, double max_temp, double exponent) {
  int64_t n = 0;
  double entropy = 0.0;
  for (double p : probs) {
    if (p <= 0.0) continue;
    ++n;
    entropy -= p * std::log(p);
  }
  if (n <= 1) return min_temp;
  const double normalized = std::clamp(entropy / std::log(static_cast<double>(n)), 0.0, 1.0);
  return min_temp + (max_temp - min_temp) * std::pow(normalized, exponent);
}

void xtc(std::span<double> probs, double probability, double threshold, std::span<const int32_t> ignore) {
  if (probability <= 0.0) return;
  std::vector<int32_t> sorted_ignore(ignore.begin(), ignore.end());
  std::sort(sorted_ignore.begin(), sorted_ignore.end());
  std::vector<int32_t> top;
  for (int32_t t : sorted_candidates(probs)) {
    if (probs[t] >= threshold && !contains(sorted_ignore, t)) top.push_back(t);
  }
  if (top.size() < 2) return;
  top.pop_back();  // the least likely top choice always stays
  std::vector<char> excluded(probs.size(), 0);
  double mass = 0.0;
  for (int32_t t : top) {
    excluded[t] = 1;
    mass += probs[t];
  }
  const double scale_rest = 1.0 + probability * mass / (1.0 - mass);
  for (size_t i = 0; i < probs.size(); ++i) probs[i] *= excluded[i] ? 1.0 - probability : scale_rest;
  normalize(probs);
}

int32_t draw(std::span<const double> probs, double u, double skew) {
  std::vector<int32_t> order;
  if (skew != 0.0) {
    order = sorted_candidates(probs);
    u = std::pow(u, std::exp(-skew));
  } else {
    for (size_t i = 0; i < probs.size(); ++i) {
      if (probs[i] > 0.0) order.push_back(static_cast<int32_t>(i));
    }
  }
  EXL_CHECK(!order.empty(), kInternal, "sampler draw: expected at least one token with p > 0, found none");
  double total = 0.0;
  for (int32_t t : order) total += probs[t];
  const double target = u * total;
  double cumulative = 0.0;
  for (int32_t t : order) {
    cumulative += probs[t];
    if (cumulative > target) return t;
  }
  return order.back();
}

}  // namespace exl::sampling::stages
