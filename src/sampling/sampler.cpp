#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace exl::sampling {

int32_t argmax(std::span<const float> logits) {
  EXL_CHECK(!logits.empty(), kInvalidArgument, "argmax: empty logits");
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t HostSampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f || params_.top_k == 1) return argmax(logits);
  const int64_t n = static_cast<int64_t>(logits.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = params_.top_k > 0 ? std::min<int64_t>(params_.top_k, n) : n;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(static_cast<size_t>(keep));
  std::vector<double> probs(order.size());
  const double mx = logits[order[0]];
  double sum = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp((logits[order[i]] - mx) / params_.temperature);
    sum += probs[i];
  }
  if (params_.top_p < 1.0f) {
    double cum = 0.0;
    size_t cut = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      cum += probs[i] / sum;
      if (cum >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    order.resize(cut);
    probs.resize(cut);
    sum = std::accumulate(probs.begin(), probs.end(), 0.0);
  }
  std::uniform_real_distribution<double> uniform(0.0, sum);
  double r = uniform(rng_);
  for (size_t i = 0; i < order.size(); ++i) {
    r -= probs[i];
    if (r <= 0.0) return order[i];
  }
  return order.back();
}

}  // namespace exl::sampling
