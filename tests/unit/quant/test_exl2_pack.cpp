// The round-to-nearest EXL2 packer: its output passes validate_exl2 and dequantizes (bit-exact CPU path) close to
// the source weights for every bit width, mixes, odd shapes and padded outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/exl2.h"
#include "quant/exl2_pack.h"

namespace exl::quant {
namespace {

std::vector<float> random_weights(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = dist(rng);
  return w;
}

// Relative L2 error of the dequantized weights against the source, padded columns checked to be exactly 0.
double pack_error(const std::vector<float>& src, int64_t N, int64_t K, const Exl2PackOptions& options) {
  Exl2Weight w = pack_exl2_rtn(src, N, K, options);
  validate_exl2(w, "test");  // packer output must pass the loader's validation as is
  const std::vector<uint16_t> dq = dequantize_exl2(w);
  const int64_t W = w.padded_out;
  double err = 0.0, ref = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t c = 0; c < W; ++c) {
      const float v = half_to_float(dq[k * W + c]);
      if (c >= N) {
        EXPECT_EQ(v, 0.0f);
        continue;
      }
      const double d = v - src[c * K + k];
      err += d * d;
      ref += static_cast<double>(src[c * K + k]) * src[c * K + k];
    }
  }
  return std::sqrt(err / ref);
}

TEST(Exl2Pack, EveryBitWidthAlone) {
  const int64_t N = 96, K = 256;
  const std::vector<float> src = random_weights(N, K, 7);
  // RTN relative error of a symmetric b-bit grid on Gaussian weights, with generous headroom.
  const std::pair<int, double> cases[] = {{8, 0.01}, {6, 0.04}, {5, 0.08}, {4, 0.16}, {3, 0.32}, {2, 0.65}};
  for (auto [bits, limit] : cases) {
    Exl2PackOptions opt;
    opt.bits = {{bits, 1.0, bits == 2 ? 32 : 64}};
    const double e = pack_error(src, N, K, opt);
    EXPECT_LT(e, limit) << bits << "-bit";
    EXPECT_GT(e, 0.0) << bits << "-bit";
  }
}

TEST(Exl2Pack, AllSixWidthsMixedWithPaddingAndBias) {
  const int64_t N = 200, K = 1056;
  const std::vector<float> src = random_weights(N, K, 11);
  Exl2PackOptions opt;
  opt.bits = {{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}};
  opt.bias.assign(N, 0.5f);
  Exl2Weight w = pack_exl2_rtn(src, N, K, opt);
  EXPECT_EQ(w.padded_out, 224);
  EXPECT_EQ(w.bit_widths(), (std::vector<int>{8, 6, 5, 4, 3, 2}));
  ASSERT_EQ(w.bias.size(), 224u);
  EXPECT_EQ(half_to_float(w.bias[0]), 0.5f);
  EXPECT_EQ(half_to_float(w.bias[210]), 0.0f);
  EXPECT_LT(pack_error(src, N, K, opt), 0.4);
  // The permutation is random, not the identity.
  int64_t fixed = 0;
  for (int64_t j = 0; j < K; ++j) fixed += w.q_invperm[j] == j;
  EXPECT_LT(fixed, K / 4);
}

TEST(Exl2Pack, ShortLastGroup) {
  const int64_t N = 64, K = 1056;  // 8 groups of 128 + one of 32
  Exl2PackOptions opt;
  opt.bits = {{4, 1.0, 128}};
  Exl2Weight w = pack_exl2_rtn(random_weights(N, K, 3), N, K, opt);
  ASSERT_EQ(w.num_groups(), 9);
  EXPECT_EQ(w.groups.back().rows, 32);
}

TEST(Exl2Pack, OptionsForBpw) {
  const std::pair<double, double> targets[] = {{2.5, 0.15}, {3.0, 0.1}, {4.0, 0.1}, {4.65, 0.1},
                                               {5.0, 0.1},  {6.0, 0.1}, {8.0, 0.1}};
  const int64_t N = 256, K = 1024;
  const std::vector<float> src = random_weights(N, K, 5);
  for (auto [bpw, tol] : targets) {
    Exl2PackOptions opt = exl2_options_for_bpw(bpw);
    opt.permutation = Exl2Permutation::kIdentity;
    Exl2Weight w = pack_exl2_rtn(src, N, K, opt);
    // bits_per_weight counts q_invperm (32/W bits per weight); compare without it.
    const double bpw_codes = w.bits_per_weight() - 32.0 / static_cast<double>(w.padded_out);
    EXPECT_NEAR(bpw_codes, bpw, tol) << bpw;
  }
  EXPECT_EQ(exl2_options_for_bpw(4.0).bits.size(), 1u);
  EXPECT_EQ(exl2_options_for_bpw(4.0).bits[0].bits, 4);
  EXPECT_EQ(exl2_options_for_bpw(2.5).bits[0].bits, 3);
  EXPECT_EQ(exl2_options_for_bpw(2.5).bits[1].bits, 2);
  EXPECT_THROW(exl2_options_for_bpw(1.0), Error);
}

TEST(Exl2Pack, RejectsBadOptions) {
  const std::vector<float> src = random_weights(32, 64, 1);
  Exl2PackOptions opt;
  opt.bits = {{4, 0.5, 32}, {6, 0.5, 32}};  // ascending
  EXPECT_THROW(pack_exl2_rtn(src, 32, 64, opt), Error);
  opt.bits = {{7, 1.0, 32}};
  EXPECT_THROW(pack_exl2_rtn(src, 32, 64, opt), Error);
  opt.bits = {{4, 1.0, 48}};
  EXPECT_THROW(pack_exl2_rtn(src, 32, 64, opt), Error);
}

}  // namespace
}  // namespace exl::quant
