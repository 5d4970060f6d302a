#include "quant/exl2_pack.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::quant {
namespace {

bool valid_bits(int b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }

}  // namespace

// Section 3.2: for each (b, p) in order, groups_b = ceil(min(K p, remaining) / gs_b); only the last group of the
// tensor may be short.
std::vector<GroupPlan> plan_groups(int64_t K, const Exl2PackOptions& options) {
  EXL_CHECK(!options.bits.empty(), kInvalidArgument, "pack_exl2_rtn: options.bits is empty");
  double total = 0.0;
  for (size_t i = 0; i < options.bits.size(); ++i) {
    const Exl2BitSpec& s = options.bits[i];
    EXL_CHECK(valid_bits(s.bits), kInvalidArgument, "pack_exl2_rtn: bits[{}] = {} (expected 2, 3, 4, 5, 6 or 8)", i,
              s.bits);
    EXL_CHECK(i == 0 || s.bits < options.bits[i - 1].bits, kInvalidArgument,
              "pack_exl2_rtn: bit widths must be strictly descending, bits[{}] = {} follows {}", i, s.bits,
              options.bits[i - 1].bits);
    EXL_CHECK(s.group_size > 0 && s.group_size % 32 == 0, kInvalidArgument,
              "pack_exl2_rtn: group size {} for {}-bit is not a positive multiple of 32", s.group_size, s.bits);
    EXL_CHECK(s.proportion >= 0.0, kInvalidArgument, "pack_exl2_rtn: negative proportion for {}-bit", s.bits);
    total += s.proportion;
  }
  EXL_CHECK(std::fabs(total - 1.0) < 1e-6, kInvalidArgument, "pack_exl2_rtn: proportions sum to {}, expected 1",
            total);
  std::vector<GroupPlan> plan;
  int64_t remaining = K;
  for (size_t i = 0; i < options.bits.size() && remaining > 0; ++i) {
    const Exl2BitSpec& s = options.bits[i];
    const bool last = i + 1 == options.bits.size();
    const double want = last ? static_cast<double>(remaining)
                             : std::min(static_cast<double>(K) * s.proportion, static_cast<double>(remaining));
    const int64_t groups = static_cast<int64_t>(std::ceil(want / s.group_size - 1e-9));
    for (int64_t g = 0; g < groups && remaining > 0; ++g) {
      const int64_t rows = std::min<int64_t>(s.group_size, remaining);
      plan.push_back({s.bits, rows});
      remaining -= rows;
    }
  }
  return plan;
}

Exl2Weight pack_exl2_rtn(const std::vector<float>& weight_nk, int64_t out_features, int64_t in_features,
                         const Exl2PackOptions& options) {
  const int64_t N = out_features, K = in_features;
  const int64_t W = (N + 31) / 32 * 32;
  EXL_CHECK(N > 0 && K > 0 && K % 32 == 0, kInvalidArgument,
            "pack_exl2_rtn: in_features {} must be a positive multiple of 32 (out_features {})", K, N);
  EXL_CHECK(static_cast<int64_t>(weight_nk.size()) == N * K, kInvalidArgument,
            "pack_exl2_rtn: weight has {} values, expected {}x{}", weight_nk.size(), N, K);
  EXL_CHECK(options.bias.empty() || static_cast<int64_t>(options.bias.size()) == N, kInvalidArgument,
            "pack_exl2_rtn: bias has {} values, expected {}", options.bias.size(), N);
  const std::vector<GroupPlan> plan = plan_groups(K, options);

  Exl2Weight w;
  w.key = "exl2_pack";
  w.in_features = K;
  w.out_features = N;
  w.padded_out = W;
  std::vector<int32_t> perm(static_cast<size_t>(K));  // stored row i <- original row perm[i]
  std::iota(perm.begin(), perm.end(), 0);
  if (options.permutation == Exl2Permutation::kRandom) {
    std::mt19937_64 rng(options.seed);
    std::shuffle(perm.begin(), perm.end(), rng);
  }
  w.q_invperm.assign(static_cast<size_t>(K), 0);
  for (int64_t i = 0; i < K; ++i) w.q_invperm[perm[i]] = static_cast<int32_t>(i);

  int64_t packed = 0;
  for (const GroupPlan& g : plan) packed += g.rows * g.bits / 32;
  EXL_CHECK(packed <= 32767, kInvalidArgument,
            "pack_exl2_rtn: {} packed rows exceed the int16 q_groups offsets (K {} too large for this bit mix)",
            packed, K);
  w.packed_rows = packed;
  const int64_t G = static_cast<int64_t>(plan.size());
  w.q_weight.assign(static_cast<size_t>(packed * W), 0u);
  w.q_scale.assign(static_cast<size_t>(G * W / 8), 0u);
  w.q_scale_max.assign(static_cast<size_t>(G), 0);

  int64_t row0 = 0, packed0 = 0;
  std::vector<float> desired(static_cast<size_t>(W));
  std::vector<float> steps(static_cast<size_t>(W));
  for (int64_t g = 0; g < G; ++g) {
    const int b = plan[g].bits;
    const int64_t rows = plan[g].rows;
    const int mid = 1 << (b - 1);
    w.q_groups.push_back(static_cast<int16_t>(b));
    w.q_groups.push_back(static_cast<int16_t>(packed0));
    // Desired step per column: the largest |w| maps to the edge of the symmetric grid.
    float group_max = 0.0f;
    for (int64_t c = 0; c < W; ++c) {
      float amax = 0.0f;
      for (int64_t r = 0; c < N && r < rows; ++r) amax = std::max(amax, std::fabs(weight_nk[c * K + perm[row0 + r]]));
      desired[c] = amax / static_cast<float>(mid);
      group_max = std::max(group_max, desired[c]);
    }
    const uint16_t m_max = float_to_half(group_max);
    w.q_scale_max[g] = m_max;
    const float m = round_to_half(half_to_float(m_max) * (1.0f / 256.0f));  // section 5.3
    for (int64_t c = 0; c < W; ++c) {
      uint32_t s = 0;
      if (c < N) {
        while (s < 15 && round_to_half(static_cast<float>((s + 1) * (s + 1)) * m) < desired[c]) ++s;
      }
      steps[c] = round_to_half(static_cast<float>((s + 1) * (s + 1)) * m);
      w.q_scale[g * (W / 8) + c / 8] |= s << (4 * (c % 8));
    }
    for (int64_t c = 0; c < W; ++c) {
      for (int64_t r = 0; r < rows; ++r) {
        int q = mid;
        if (c < N && steps[c] > 0.0f) {
          const float v = weight_nk[c * K + perm[row0 + r]];
          q = std::clamp(static_cast<int>(std::lround(v / steps[c])) + mid, 0, (1 << b) - 1);
        }
        const int64_t bitpos = r * b;
        const int64_t j = packed0 + bitpos / 32;
        const int off = static_cast<int>(bitpos % 32);
        w.q_weight[j * W + c] |= static_cast<uint32_t>(q) << off;
        if (off + b > 32) w.q_weight[(j + 1) * W + c] |= static_cast<uint32_t>(q) >> (32 - off);
      }
    }
    row0 += rows;
    packed0 += rows * b / 32;
  }
  if (!options.bias.empty()) {
    w.bias.assign(static_cast<size_t>(W), 0);
    for (int64_t n = 0; n < N; ++n) w.bias[n] = float_to_half(options.bias[n]);
  }
  validate_exl2(w, "pack_exl2_rtn");
  return w;
}

Exl2PackOptions exl2_options_for_bpw(double bpw) {
  EXL_CHECK(bpw >= 2.0 && bpw <= 8.5, kInvalidArgument,
            "exl2_options_for_bpw: {} bits per weight is outside the supported 2.0 .. 8.5", bpw);
  static constexpr int kWidths[] = {8, 6, 5, 4, 3, 2};
  Exl2PackOptions options;
  for (int b : kWidths) {
    if (bpw >= b - 0.05 && bpw < b + 0.25) {
      options.bits = {{b, 1.0, 128}};
      return options;
    }
  }
  // Mix the two neighbouring widths; the scale codes cost 4 / group_size bits per weight.
  for (size_t i = 0; i + 1 < std::size(kWidths); ++i) {
    const int hi = kWidths[i], lo = kWidths[i + 1];
    if (bpw > lo && bpw < hi) {
      const int gs = lo <= 3 ? 64 : 128;
      const double overhead = 4.0 / gs;
      double p = (bpw - overhead - lo) / static_cast<double>(hi - lo);
      p = std::clamp(std::round(p * 20.0) / 20.0, 0.05, 0.95);
      options.bits = {{hi, p, gs}, {lo, 1.0 - p, gs}};
      return options;
    }
  }
  options.bits = {{2, 1.0, 64}};
  return options;
}

}  // namespace exl::quant
