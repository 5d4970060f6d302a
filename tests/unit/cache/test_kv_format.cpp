// The KV cache formats and their group codec (cache/kv_format.h): names, sizes, the Walsh-Hadamard transform, hand-
// computed groups, code ranges, 4-bit packing, the per-element error bound, and the errors for bad sizes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cache/kv_format.h"
#include "core/error.h"
#include "core/fp16.h"

namespace exl::cache {
namespace {

constexpr int kG = kKvGroupSize;

int h32(int i, int j) { return std::popcount(static_cast<unsigned>(i & j)) % 2 == 0 ? 1 : -1; }

template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected an exl::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& s : fragments) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

// Codes of one group as integers, unpacked from the stored bytes (4-bit: low nibble = even element).
std::vector<int> unpack(const uint8_t* codes, int bits) {
  std::vector<int> c(kG);
  for (int i = 0; i < kG; ++i) c[i] = bits == 8 ? codes[i] : (i % 2 == 0 ? codes[i / 2] & 0xF : codes[i / 2] >> 4);
  return c;
}

struct Quantized {
  uint8_t codes[kG] = {};
  uint16_t scale = 0xFFFF;
  std::vector<float> back = std::vector<float>(kG);
};

Quantized quantize(const std::vector<float>& x, int bits) {
  Quantized q;
  quantize_group(x.data(), bits, q.codes, &q.scale);
  dequantize_group(q.codes, q.scale, bits, q.back.data());
  return q;
}

TEST(KvFormat, ParsesNamesAndRejectsOthers) {
  for (const char* name : {"fp32", "fp16", "q8", "q6", "q4"}) EXPECT_EQ(kv_format_name(parse_kv_format(name)), name);
  EXPECT_EQ(parse_kv_format("q6"), KvFormat::kQ6);
  for (const char* bad : {"Q4", "int4", "", "fp8"})
    expect_error([&] { parse_kv_format(bad); }, ErrorKind::kInvalidArgument,
                 {"fp32, fp16, q8, q6 or q4", std::string("'") + bad + "'"});
}

TEST(KvFormat, BitsOfKeysAndValues) {
  struct Row {
    KvFormat f;
    int k, v;
  };
  for (const Row& r : {Row{KvFormat::kFp32, 32, 32}, Row{KvFormat::kFp16, 16, 16}, Row{KvFormat::kQ8, 8, 8},
                       Row{KvFormat::kQ6, 8, 4}, Row{KvFormat::kQ4, 4, 4}}) {
    EXPECT_EQ(key_bits(r.f), r.k) << kv_format_name(r.f);
    EXPECT_EQ(value_bits(r.f), r.v) << kv_format_name(r.f);
  }
}

TEST(KvFormat, BytesPerTokenPerHead) {
  // head_dim 128: 4 groups; 8-bit 32 + 2 bytes a group, 4-bit 16 + 2.
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kFp32, 128), 1024);
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kFp16, 128), 512);
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kQ8, 128), 272);
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kQ6, 128), 136 + 72);
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kQ4, 128), 144);
  EXPECT_EQ(kv_bytes_per_token_head(KvFormat::kQ4, 64), 72);
  EXPECT_EQ(vector_bytes(8, 32), 34);
  EXPECT_EQ(vector_bytes(4, 96), 54);
  EXPECT_EQ(vector_bytes(16, 80), 160);
  EXPECT_EQ(vector_bytes(32, 80), 320);
  EXPECT_EQ(group_code_bytes(8), 32);
  EXPECT_EQ(group_code_bytes(4), 16);
}

TEST(KvFormat, RejectsBadSizes) {
  expect_error([] { vector_bytes(4, 48); }, ErrorKind::kUnsupported, {"multiple of 32", "48"});
  expect_error([] { vector_bytes(8, 0); }, ErrorKind::kInvalidArgument, {"head_dim", "0"});
  expect_error([] { vector_bytes(6, 32); }, ErrorKind::kInvalidArgument, {"4 or 8", "6"});
  expect_error([] { kv_bytes_per_token_head(KvFormat::kQ6, 80); }, ErrorKind::kUnsupported, {"80"});
  expect_error([] { check_head_dim(KvFormat::kQ8, 80); }, ErrorKind::kUnsupported, {"q8", "80", "fp16"});
  EXPECT_NO_THROW(check_head_dim(KvFormat::kFp16, 80));
  EXPECT_NO_THROW(check_head_dim(KvFormat::kFp32, 7));
  EXPECT_NO_THROW(check_head_dim(KvFormat::kQ4, 96));
  std::vector<float> x(48, 1.0f);
  expect_error([&] { roundtrip(x.data(), 48, 4); }, ErrorKind::kInvalidArgument, {"multiple of 32", "48"});
  expect_error([&] { roundtrip(x.data(), 32, 6); }, ErrorKind::kInvalidArgument, {"4, 8, 16 or 32", "6"});
  uint8_t codes[kG];
  uint16_t scale = 0;
  expect_error([&] { quantize_group(x.data(), 5, codes, &scale); }, ErrorKind::kInvalidArgument, {"5"});
  expect_error([&] { dequantize_group(codes, scale, 16, x.data()); }, ErrorKind::kInvalidArgument, {"16"});
}

TEST(Hadamard, RowsAreInSylvesterOrder) {
  for (int k = 0; k < kG; ++k) {
    std::vector<float> v(kG, 0.0f);
    v[k] = 1.0f;
    hadamard32(v.data());
    for (int i = 0; i < kG; ++i) ASSERT_EQ(v[i], static_cast<float>(h32(i, k))) << "row " << i << " column " << k;
  }
}

TEST(Hadamard, IsItsOwnInverseUpToThe32Factor) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> ints(-1000, 1000);
  std::vector<float> x(kG), v(kG);
  for (int i = 0; i < kG; ++i) x[i] = static_cast<float>(ints(rng));
  v = x;
  hadamard32(v.data());
  hadamard32(v.data());
  for (int i = 0; i < kG; ++i) EXPECT_EQ(v[i], 32.0f * x[i]);  // integers below 2^24: exact
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < kG; ++i) x[i] = normal(rng);
  v = x;
  hadamard32(v.data());
  hadamard32(v.data());
  for (int i = 0; i < kG; ++i) EXPECT_NEAR(v[i] / 32.0f, x[i], 1e-5f);
}

TEST(Codec, ZeroGroupStoresZeroScaleAndOffsetCodes) {
  for (int bits : {4, 8}) {
    for (float z : {0.0f, -0.0f}) {
      const Quantized q = quantize(std::vector<float>(kG, z), bits);
      EXPECT_EQ(q.scale, 0) << bits;
      for (int c : unpack(q.codes, bits)) EXPECT_EQ(c, 1 << (bits - 1));
      if (bits == 4) {
        for (int j = 0; j < kG / 2; ++j) EXPECT_EQ(q.codes[j], 0x88);
      }
      for (float b : q.back) EXPECT_EQ(b, 0.0f);
    }
  }
}

TEST(Codec, SpikeOnTheFirstElementIsExact) {
  // WHT(3, 0, ..., 0) = (3, ..., 3): the full-range scale -3/offset maps every value to code 0 with no error.
  for (int bits : {4, 8}) {
    std::vector<float> x(kG, 0.0f);
    x[0] = 3.0f;
    const Quantized q = quantize(x, bits);
    EXPECT_EQ(q.scale, float_to_half(-3.0f / static_cast<float>(1 << (bits - 1)))) << bits;
    for (int c : unpack(q.codes, bits)) EXPECT_EQ(c, 0);
    for (int i = 0; i < kG; ++i) EXPECT_EQ(q.back[i], x[i]) << bits << " element " << i;
  }
}

TEST(Codec, SpikeElsewhereTakesTheSymmetricScale) {
  // WHT of -2 at element 5 is -2 * H[:, 5], half +2 and half -2. The full-range scale (0.25 at 4 bits) would clamp
  // the +2 half to 1.75 (squared error 16 * 0.0625 = 1); the symmetric scale half(2/7) codes them as +-7 with an
  // error of 2 - 7 * half(2/7) each, so it wins, and the inverse gives exactly -7 * half(2/7) at element 5, 0
  // elsewhere.
  std::vector<float> x(kG, 0.0f);
  x[5] = -2.0f;
  const Quantized q = quantize(x, 4);
  const uint16_t s16 = float_to_half(2.0f / 7.0f);
  EXPECT_EQ(q.scale, s16);
  const std::vector<int> codes = unpack(q.codes, 4);
  for (int i = 0; i < kG; ++i) EXPECT_EQ(codes[i], 8 - 7 * h32(i, 5)) << i;
  for (int i = 0; i < kG; ++i) EXPECT_EQ(q.back[i], i == 5 ? -7.0f * half_to_float(s16) : 0.0f) << i;
  const Quantized q8 = quantize(x, 8);
  EXPECT_EQ(q8.scale, float_to_half(2.0f / 127.0f));
  for (int i = 0; i < kG; ++i) EXPECT_EQ(q8.back[i], i == 5 ? -127.0f * half_to_float(q8.scale) : 0.0f) << i;
}

TEST(Codec, ConstantGroup) {
  // WHT(1.5, ..., 1.5) = (48, 0, ..., 0): scale -48/8 = -6, code 0 for element 0 and the offset for the rest.
  const Quantized q = quantize(std::vector<float>(kG, 1.5f), 4);
  EXPECT_EQ(q.scale, float_to_half(-6.0f));
  EXPECT_EQ(q.codes[0], 0x80);  // element 0 code 0 (low nibble), element 1 code 8
  for (int j = 1; j < kG / 2; ++j) EXPECT_EQ(q.codes[j], 0x88);
  for (float b : q.back) EXPECT_EQ(b, 1.5f);
}

TEST(Codec, FourBitPackingIsLowNibbleFirst) {
  // Element 0 code 15 (+7), element 1 code 1 (-7), the rest 8 (0), scale 1: y' = (7, -7, 0, ...), and the inverse
  // is 7 * (H[0][j] - H[1][j]) / 32: 0 at even j, 14/32 at odd j.
  uint8_t codes[kG / 2];
  std::memset(codes, 0x88, sizeof(codes));
  codes[0] = 0x1F;
  std::vector<float> x(kG);
  dequantize_group(codes, float_to_half(1.0f), 4, x.data());
  for (int j = 0; j < kG; ++j) EXPECT_EQ(x[j], j % 2 == 0 ? 0.0f : 0.4375f) << j;
  // And quantize writes the same layout.
  const Quantized q = quantize(x, 4);
  EXPECT_EQ(q.codes[0], 0x1F);
  for (int j = 1; j < kG / 2; ++j) EXPECT_EQ(q.codes[j], 0x88);
  EXPECT_EQ(q.back, x);
}

TEST(Codec, OneHugeOutlier) {
  // Small values plus 1000 at element 9: the WHT is +-1000 plus small sums, so the symmetric scale (m / qmax) is
  // stored and the outlier comes back within half a step of the rotated values.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> small(-1.0f, 1.0f);
  for (int bits : {4, 8}) {
    std::vector<float> x(kG);
    for (float& v : x) v = small(rng);
    x[9] = 1000.0f;
    const Quantized q = quantize(x, bits);
    const float s = half_to_float(q.scale);
    EXPECT_GT(s, 0.0f) << bits;
    std::vector<float> y = x;
    hadamard32(y.data());
    float m = 0.0f;
    for (float v : y) m = std::max(m, std::fabs(v));
    EXPECT_EQ(q.scale, float_to_half(m / static_cast<float>((1 << (bits - 1)) - 1)));
    float sum_abs = 0.0f;
    for (float v : x) sum_abs += std::fabs(v);
    const float bound = 0.5f * s * (1.0f + 0x1p-15f) + 5.0f * 0x1p-24f * sum_abs;  // + the forward WHT's rounding
    for (int i = 0; i < kG; ++i) EXPECT_LE(std::fabs(q.back[i] - x[i]), bound) << bits << " " << i;
  }
}

TEST(Codec, CodesStayInRangeAndTheLargestValueTakesAnEnd) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int bits : {4, 8}) {
    const int offset = 1 << (bits - 1), cmax = (1 << bits) - 1;
    int full_range = 0, symmetric = 0;
    for (int g = 0; g < 2000; ++g) {
      std::vector<float> x(kG);
      for (float& v : x) v = normal(rng) * 0.1f;
      const Quantized q = quantize(x, bits);
      const std::vector<int> c = unpack(q.codes, bits);
      std::vector<float> y = x;
      hadamard32(y.data());
      int p = 0;
      for (int i = 1; i < kG; ++i)
        if (std::fabs(y[i]) > std::fabs(y[p])) p = i;
      for (int v : c) ASSERT_TRUE(v >= 0 && v <= cmax) << v;
      if (q.scale == float_to_half(-y[p] / static_cast<float>(offset))) {  // full range: the largest on code 0
        ++full_range;
        EXPECT_EQ(c[p], 0);
      } else {  // symmetric: the largest magnitude on +-qmax, code 0 unused
        ++symmetric;
        EXPECT_EQ(q.scale, float_to_half(std::fabs(y[p]) / static_cast<float>(offset - 1)));
        EXPECT_EQ(std::abs(c[p] - offset), offset - 1);
        for (int v : c) EXPECT_GT(v, 0);
      }
    }
    // Both candidates occur on Gaussian groups, the full range one most often.
    std::printf("[ %d-bit ] Gaussian groups: full-range scale %d, symmetric %d\n", bits, full_range, symmetric);
    EXPECT_GT(full_range, symmetric) << bits;
    EXPECT_GT(symmetric, 0) << bits;
  }
}

TEST(Codec, ErrorWithinTheDerivedBound) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, kG - 1);
  const float magnitudes[] = {1e-9f, 1e-6f, 3e-5f, 1e-2f, 1.0f, 50.0f, 3e3f};
  for (int bits : {4, 8}) {
    const float offset = static_cast<float>(1 << (bits - 1));
    double err2 = 0.0, ref2 = 0.0;
    for (int g = 0; g < 3000; ++g) {
      std::vector<float> x(kG);
      const float mag = magnitudes[g % 7];
      for (float& v : x) v = normal(rng) * mag;
      if (g % 5 == 0) x[static_cast<size_t>(pick(rng))] *= 40.0f;  // an outlier now and then
      const Quantized q = quantize(x, bits);
      std::vector<float> y = x, y_back(kG);
      hadamard32(y.data());
      float m = 0.0f, sum_abs = 0.0f;
      for (float v : y) m = std::max(m, std::fabs(v));
      for (float v : x) sum_abs += std::fabs(v);
      const float s = half_to_float(q.scale);
      const std::vector<int> c = unpack(q.codes, bits);
      for (int i = 0; i < kG; ++i) y_back[i] = static_cast<float>(c[i] - (1 << (bits - 1))) * s;
      const float bound_y = m / offset * (1.0f + offset * 0x1p-9f) + offset * 0x1p-24f;
      for (int i = 0; i < kG; ++i) ASSERT_LE(std::fabs(y[i] - y_back[i]), bound_y) << bits << " group " << g;
      const float bound_x = bound_y + 5.0f * 0x1p-24f * sum_abs * 1.01f;
      for (int i = 0; i < kG; ++i) ASSERT_LE(std::fabs(x[i] - q.back[i]), bound_x) << bits << " group " << g;
      if (mag == 1.0f && g % 5 != 0)
        for (int i = 0; i < kG; ++i) {
          err2 += (x[i] - q.back[i]) * (x[i] - q.back[i]);
          ref2 += x[i] * x[i];
        }
    }
    // Gaussian groups: about 8.5% relative rms error at 4 bits, 0.5% at 8 bits.
    const double rel = std::sqrt(err2 / ref2);
    std::printf("[ %d-bit ] Gaussian groups: relative rms error %.4f\n", bits, rel);
    EXPECT_LT(rel, bits == 4 ? 0.09 : 0.0055) << bits;
    EXPECT_GT(rel, bits == 4 ? 0.07 : 0.0040) << bits;
  }
}

TEST(Codec, DequantizationIsExact) {
  // Every step of the inverse is exact in fp32, so it equals the same computation in double.
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int bits : {4, 8}) {
    for (int g = 0; g < 200; ++g) {
      std::vector<float> x(kG);
      for (float& v : x) v = normal(rng);
      const Quantized q = quantize(x, bits);
      const std::vector<int> c = unpack(q.codes, bits);
      const double s = half_to_float(q.scale);
      for (int j = 0; j < kG; ++j) {
        double want = 0.0;
        for (int i = 0; i < kG; ++i) want += h32(j, i) * (c[i] - (1 << (bits - 1))) * s;
        ASSERT_EQ(static_cast<double>(q.back[j]), want / 32.0) << bits << " " << g << " " << j;
      }
    }
  }
}

TEST(Codec, ExtremeInputsStayDefined) {
  for (int bits : {4, 8}) {
    std::vector<float> x(kG, 0.0f);
    x[0] = 1e7f;  // -1e7 / offset does not fit fp16: the scale saturates at -65504
    Quantized q = quantize(x, bits);
    EXPECT_EQ(q.scale & 0x7FFF, 0x7BFF) << bits;
    for (float b : q.back) EXPECT_TRUE(std::isfinite(b));
    std::fill(x.begin(), x.end(), 1e-12f);  // the scale underflows fp16: stored as a zero group
    q = quantize(x, bits);
    EXPECT_EQ(q.scale, 0);
    for (int c : unpack(q.codes, bits)) EXPECT_EQ(c, 1 << (bits - 1));
    std::fill(x.begin(), x.end(), 0.5f);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    q = quantize(x, bits);
    for (int c : unpack(q.codes, bits)) EXPECT_TRUE(c >= 0 && c < (1 << bits));
  }
}

TEST(Roundtrip, MatchesTheGroupCodecAndFp16) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> x(128);
  for (float& v : x) v = normal(rng);
  std::vector<float> r = x;
  roundtrip(r.data(), 128, 32);
  EXPECT_EQ(std::memcmp(r.data(), x.data(), sizeof(float) * x.size()), 0);
  r = x;
  roundtrip(r.data(), 128, 16);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r[i], round_to_half(x[i]));
  for (int bits : {4, 8}) {
    r = x;
    roundtrip(r.data(), 128, bits);
    for (int g = 0; g < 4; ++g) {
      const Quantized q = quantize(std::vector<float>(x.begin() + g * kG, x.begin() + (g + 1) * kG), bits);
      for (int i = 0; i < kG; ++i) EXPECT_EQ(r[static_cast<size_t>(g * kG + i)], q.back[i]);
    }
  }
  EXPECT_NO_THROW(roundtrip(x.data(), 0, 4));
}

}  // namespace
}  // namespace exl::cache
