// CUDA sampling vs the host sampler's semantics: greedy is exact (first index on ties); temperature / top-k /
// top-p draws only from the host's kept set and follow its probabilities.
#ifdef EXL_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda_op_test_util.h"
#include "kernels/sampling.cuh"
#include "sampling/sampler.h"

namespace exl {
namespace {

using namespace exl::testing;

// The host sampler's kept set and probabilities (mirrors sampling::HostSampler::sample).
std::vector<double> host_distribution(const std::vector<float>& logits, const kernels::DeviceSamplingParams& p) {
  const int64_t n = static_cast<int64_t>(logits.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = p.top_k > 0 ? std::min<int64_t>(p.top_k, n) : n;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  order.resize(static_cast<size_t>(keep));
  std::vector<double> probs(order.size());
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    probs[i] = std::exp((logits[order[i]] - logits[order[0]]) / p.temperature);
    sum += probs[i];
  }
  size_t cut = order.size();
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      cum += probs[i] / sum;
      if (cum >= p.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  std::vector<double> dist(static_cast<size_t>(n), 0.0);
  double kept = 0;
  for (size_t i = 0; i < cut; ++i) kept += probs[i];
  for (size_t i = 0; i < cut; ++i) dist[static_cast<size_t>(order[i])] = probs[i] / kept;
  return dist;
}

std::vector<int32_t> sample_rows(const std::vector<float>& row, int64_t rows, const kernels::DeviceSamplingParams& p) {
  const int64_t V = static_cast<int64_t>(row.size());
  std::vector<uint16_t> all;
  const std::vector<uint16_t> h = to_half_bits(row);
  for (int64_t r = 0; r < rows; ++r) all.insert(all.end(), h.begin(), h.end());
  GuardedArray<uint16_t> d_logits(all);
  GuardedArray<kernels::DeviceSamplingParams> d_params(std::vector<kernels::DeviceSamplingParams>{p});
  GuardedArray<int32_t> d_tokens(static_cast<size_t>(rows));
  kernels::SampleArgs a;
  a.logits = reinterpret_cast<const __half*>(d_logits.get());
  a.vocab_size = V;
  a.row_stride = V;
  a.num_rows = rows;
  a.params = d_params.get();
  a.tokens = d_tokens.get();
  kernels::launch_sample(a, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(d_tokens.guards_intact());
  return d_tokens.download();
}

TEST(SamplingOps, GreedyIsArgmaxWithFirstIndexOnTies) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(10);
  for (int64_t V : {128256, 2048, 5}) {
    std::vector<float> l = round_half(random_floats(rng, static_cast<size_t>(V), 4.0f));
    const int32_t a = static_cast<int32_t>(V / 3), b = static_cast<int32_t>(V - 1);
    l[static_cast<size_t>(a)] = l[static_cast<size_t>(b)] = 30.0f;  // a tie: the first index wins
    const auto got = sample_rows(l, 3, {0.0f, 0, 1.0f, 0, 1, 0});
    for (int32_t t : got) EXPECT_EQ(t, sampling::argmax(l));
    const auto got_k1 = sample_rows(l, 1, {0.8f, 1, 1.0f, 0, 1, 0});
    EXPECT_EQ(got_k1[0], a);
  }
  // 16-byte loads (16-byte aligned rows) and the scalar tail / unaligned rows (odd V: rows after the first): a tie
  // inside one 8-element vector and a tie between a vector and the tail.
  for (int64_t V : {1001, 4099, 128256}) {
    std::vector<float> l = round_half(random_floats(rng, static_cast<size_t>(V), 4.0f));
    l[17] = l[18] = 31.0f;
    auto got = sample_rows(l, 3, {0.0f, 0, 1.0f, 0, 1, 0});
    for (int32_t t : got) EXPECT_EQ(t, 17) << "V " << V;
    l[static_cast<size_t>(V - 1)] = 32.0f;
    l[static_cast<size_t>(V / 2)] = 32.0f;
    got = sample_rows(l, 3, {0.0f, 0, 1.0f, 0, 1, 0});
    for (int32_t t : got) EXPECT_EQ(t, static_cast<int32_t>(V / 2)) << "V " << V;
  }
}

TEST(SamplingOps, DrawsFollowHostDistribution) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(11);
  std::vector<float> l = round_half(random_floats(rng, 40, 1.5f));
  l[3] = l[17];  // ties at the boundary
  l[5] = l[17];
  const kernels::DeviceSamplingParams settings[] = {
      {1.0f, 0, 1.0f, 0, 7, 0}, {0.7f, 5, 1.0f, 0, 8, 0}, {1.3f, 0, 0.8f, 0, 9, 0}, {1.0f, 12, 0.6f, 0, 10, 0}};
  const int64_t rows = 40000;
  for (const auto& p : settings) {
    const std::vector<double> want = host_distribution(l, p);
    const std::vector<int32_t> got = sample_rows(l, rows, p);
    std::vector<double> freq(l.size(), 0.0);
    for (int32_t t : got) {
      ASSERT_GE(t, 0);
      ASSERT_LT(t, static_cast<int32_t>(l.size()));
      freq[static_cast<size_t>(t)] += 1.0 / rows;
    }
    for (size_t i = 0; i < l.size(); ++i) {
      if (want[i] == 0.0) {
        EXPECT_EQ(freq[i], 0.0) << "token " << i << " is outside the kept set (T " << p.temperature << ", top_k "
                                << p.top_k << ", top_p " << p.top_p << ")";
      }
      EXPECT_NEAR(freq[i], want[i], 0.012) << "token " << i << " (T " << p.temperature << ", top_k " << p.top_k
                                           << ", top_p " << p.top_p << ")";
    }
  }
}

TEST(SamplingOps, LargeVocabDrawsStayInKeptSet) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(12);
  const std::vector<float> l = round_half(random_floats(rng, 128256, 3.0f));
  for (const kernels::DeviceSamplingParams p : {kernels::DeviceSamplingParams{0.8f, 50, 0.9f, 0, 3, 0},
                                               kernels::DeviceSamplingParams{1.0f, 0, 0.5f, 0, 4, 0},
                                               kernels::DeviceSamplingParams{1.0f, 40, 1.0f, 0, 5, 0}}) {
    const std::vector<double> want = host_distribution(l, p);
    for (int32_t t : sample_rows(l, 300, p)) EXPECT_GT(want[static_cast<size_t>(t)], 0.0) << "token " << t;
  }
}

}  // namespace
}  // namespace exl
#endif
