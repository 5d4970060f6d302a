// Output-column selection and fused-tensor splitting (quant/select_columns.h) for float, EXL2 and GPTQ linears:
// the result's dequantized weights equal the input's selected columns bit for bit, the tensor sets pass the
// loader's validation, padding follows ExLlamaV2's converter, and bad ranges give errors naming key, ranges, N.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "io/safetensors.h"
#include "quant/exl2.h"
#include "quant/exl2_pack.h"
#include "quant/gptq.h"
#include "quant/linear_weight.h"
#include "quant/select_columns.h"
#include "testdata.h"

namespace exl::quant {
namespace {

using exl::testing::testdata_dir;

std::vector<float> random_weights(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = dist(rng);
  return w;
}

std::vector<float> random_bias(int64_t n, uint64_t seed) {
  std::vector<float> b = random_weights(n, 1, seed);
  for (float& v : b) v = round_to_half(v * 10.0f);  // fp16-representable, as every stored bias is
  return b;
}

std::vector<int64_t> columns_of(std::span<const ColumnRange> ranges) {
  std::vector<int64_t> cols;
  for (const ColumnRange& r : ranges)
    for (int64_t c = r.start; c < r.start + r.count; ++c) cols.push_back(c);
  return cols;
}

LinearWeight make_float(int64_t N, int64_t K, DType dtype, uint64_t seed, bool bias) {
  LinearWeight lw;
  lw.key = "float.fused";
  lw.format = WeightFormat::kFloat;
  lw.in_features = K;
  lw.out_features = N;
  const std::vector<float> src = random_weights(N, K, seed);
  lw.float_weight = Tensor(dtype, {N, K});
  for (size_t i = 0; i < src.size(); ++i) {
    if (dtype == DType::kF32)
      lw.float_weight.data<float>()[i] = src[i];
    else if (dtype == DType::kF16)
      lw.float_weight.data<uint16_t>()[i] = float_to_half(src[i]);
    else
      lw.float_weight.data<uint16_t>()[i] = float_to_bf16(src[i]);
  }
  if (bias) lw.bias = random_bias(N, seed + 1);
  return lw;
}

LinearWeight make_exl2(int64_t N, int64_t K, const Exl2PackOptions& options, uint64_t seed) {
  LinearWeight lw;
  lw.key = "exl2.fused";
  lw.format = WeightFormat::kExl2;
  lw.in_features = K;
  lw.out_features = N;
  lw.exl2 = pack_exl2_rtn(random_weights(N, K, seed), N, K, options);
  lw.exl2.key = lw.key;
  for (int64_t n = 0; n < N && !lw.exl2.bias.empty(); ++n) lw.bias.push_back(half_to_float(lw.exl2.bias[n]));
  return lw;
}

LinearWeight make_gptq(int64_t N, int64_t K, const GptqPackOptions& options, uint64_t seed, bool bias) {
  LinearWeight lw;
  lw.key = "gptq.fused";
  lw.format = WeightFormat::kGptq;
  lw.in_features = K;
  lw.out_features = N;
  lw.gptq = pack_gptq_rtn(random_weights(N, K, seed), N, K, options);
  lw.gptq.key = lw.key;
  if (bias) {
    for (float v : random_bias(N, seed + 1)) lw.gptq.bias.push_back(float_to_half(v));
    for (uint16_t b : lw.gptq.bias) lw.bias.push_back(half_to_float(b));
  }
  return lw;
}

// The format-level dequantization as [K, stride] fp16 bits (float: the stored bits, transposed).
struct Dequant {
  std::vector<uint16_t> bits;  // float F32: the low/high halves are compared through to_f32_nk instead
  int64_t stride = 0;
};

Dequant dequant(const LinearWeight& lw) {
  switch (lw.format) {
    case WeightFormat::kExl2:
      return {dequantize_exl2(lw.exl2), lw.exl2.padded_out};
    case WeightFormat::kGptq:
      return {dequantize_gptq(lw.gptq), lw.gptq.out_features};
    case WeightFormat::kFloat:
      break;
  }
  return {};
}

// Bit-exact check of `out` against the columns `cols` of `in`, in every view the engine uses.
void expect_selected(const LinearWeight& in, const LinearWeight& out, const std::vector<int64_t>& cols,
                     const std::string& what) {
  const int64_t K = in.in_features, n = static_cast<int64_t>(cols.size());
  ASSERT_EQ(out.format, in.format) << what;
  ASSERT_EQ(out.in_features, K) << what;
  ASSERT_EQ(out.out_features, n) << what;
  // to_f32_nk: exact float equality of every selected row (NaN-free random data).
  const std::vector<float> a = in.to_f32_nk(), b = out.to_f32_nk();
  ASSERT_EQ(b.size(), static_cast<size_t>(n * K)) << what;
  int64_t bad = 0;
  for (int64_t j = 0; j < n; ++j)
    bad += std::memcmp(&b[j * K], &a[cols[j] * K], static_cast<size_t>(K) * sizeof(float)) != 0;
  EXPECT_EQ(bad, 0) << what << ": rows of to_f32_nk differ";
  if (in.format == WeightFormat::kFloat) {
    ASSERT_EQ(out.float_weight.dtype(), in.float_weight.dtype()) << what;
    ASSERT_EQ(out.float_weight.shape(), (Shape{n, K})) << what;
    const size_t row = static_cast<size_t>(K) * dtype_size(in.float_weight.dtype());
    const auto* src = static_cast<const std::byte*>(in.float_weight.raw());
    const auto* dst = static_cast<const std::byte*>(out.float_weight.raw());
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(std::memcmp(dst + j * row, src + cols[j] * row, row), 0) << what;
  } else {
    const Dequant din = dequant(in), dout = dequant(out);
    ASSERT_EQ(dout.bits.size(), static_cast<size_t>(K * dout.stride)) << what;
    int64_t mismatches = 0, pad_nonzero = 0;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t j = 0; j < n; ++j)
        mismatches += dout.bits[k * dout.stride + j] != din.bits[k * din.stride + cols[j]];
      for (int64_t j = n; j < dout.stride; ++j) pad_nonzero += dout.bits[k * dout.stride + j] != 0;  // +0.0 exactly
    }
    EXPECT_EQ(mismatches, 0) << what << ": dequantized columns differ";
    EXPECT_EQ(pad_nonzero, 0) << what << ": padded columns are not exactly +0";
  }
  // Bias: the selected entries (GPTQ drops an all-zero one, as load_gptq does).
  if (!in.bias.empty()) {
    ASSERT_EQ(out.bias.size(), static_cast<size_t>(n)) << what;
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(out.bias[j], in.bias[cols[j]]) << what << " bias " << j;
  } else {
    EXPECT_TRUE(out.bias.empty()) << what;
  }
  if (in.format == WeightFormat::kExl2 && !in.exl2.bias.empty()) {
    ASSERT_EQ(out.exl2.bias.size(), static_cast<size_t>(out.exl2.padded_out)) << what;
    for (int64_t j = 0; j < out.exl2.padded_out; ++j)
      EXPECT_EQ(out.exl2.bias[j], j < n ? in.exl2.bias[cols[j]] : 0) << what << " exl2 bias " << j;
  }
}

LinearWeight select(const LinearWeight& w, std::vector<ColumnRange> ranges, const std::string& key = "piece") {
  return select_output_columns(w, ranges, key);
}

void check_select(const LinearWeight& w, const std::vector<ColumnRange>& ranges, const std::string& what) {
  SCOPED_TRACE(what);
  LinearWeight out = select(w, ranges, "new.key");
  EXPECT_EQ(out.key, "new.key");
  expect_selected(w, out, columns_of(ranges), what);
  if (out.format == WeightFormat::kExl2) {
    EXPECT_EQ(out.exl2.key, "new.key");
    EXPECT_EQ(out.exl2.padded_out, (out.out_features + 31) / 32 * 32);
    Exl2Weight copy = out.exl2;
    validate_exl2(copy, "test");  // passes the loader's checks as is
    EXPECT_EQ(copy.q_perm, w.exl2.q_perm);
    EXPECT_EQ(out.describe().substr(0, 4), "exl2");
  }
  if (out.format == WeightFormat::kGptq) {
    EXPECT_EQ(out.gptq.key, "new.key");
    GptqWeight copy = out.gptq;
    validate_gptq(copy, "test");
    EXPECT_EQ(out.gptq.act_order, w.gptq.act_order);
    EXPECT_EQ(out.gptq.group_size, w.gptq.group_size);
    EXPECT_EQ(out.describe(), w.describe());
  }
}

// Interleaved, unaligned, overlapping and single-column ranges, for any N >= 40.
std::vector<std::vector<ColumnRange>> range_sets(int64_t N) {
  return {
      {{0, N}},                                      // identity
      {{0, 32}},                                     // one aligned block
      {{5, 27}, {N - 37, 37}},                       // unaligned, 64 total
      {{N - 1, 1}, {0, 1}, {17, 3}},                 // single columns, reversed order
      {{N / 2, 8}, {0, 8}, {N / 2, 8}, {N - 8, 8}},  // repeats, gather of blocks
      {{1, N - 1}},                                  // everything but the first column
  };
}

// ---------------------------------------------------------------------------------------------------------------
// float

TEST(SelectColumns, FloatEveryDtype) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (bool bias : {false, true}) {
      const LinearWeight w = make_float(120, 64, dt, 3, bias);
      for (const auto& ranges : range_sets(120))
        check_select(w, ranges, fmt::format("{} bias={} ranges={}", dtype_name(dt), bias, ranges.size()));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// EXL2

TEST(SelectColumns, Exl2AllSixWidthsActOrderPaddedWithBias) {
  Exl2PackOptions opt;
  opt.bits = {{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}};
  opt.bias = random_bias(200, 5);
  const LinearWeight w = make_exl2(200, 1056, opt, 4);  // W = 224, random permutation, short last group
  ASSERT_EQ(w.exl2.bit_widths(), (std::vector<int>{8, 6, 5, 4, 3, 2}));
  for (const auto& ranges : range_sets(200)) check_select(w, ranges, fmt::format("ranges={}", ranges.size()));
}

TEST(SelectColumns, Exl2EveryWidthAloneIdentityPermutation) {
  for (int bits : {8, 6, 5, 4, 3, 2}) {
    Exl2PackOptions opt;
    opt.bits = {{bits, 1.0, 64}};
    opt.permutation = Exl2Permutation::kIdentity;
    const LinearWeight w = make_exl2(96, 256, opt, 10 + bits);
    for (const auto& ranges : range_sets(96)) check_select(w, ranges, fmt::format("{}-bit", bits));
  }
}

// The single full range reproduces the tensor set exactly, padding included: the packer pads as the converter
// does (codes 2^(b-1), scale code 0, zero bias), and so does the selection.
TEST(SelectColumns, Exl2FullRangeIsIdentity) {
  Exl2PackOptions opt;
  opt.bits = {{6, 0.3, 32}, {3, 0.7, 64}};
  opt.bias = random_bias(200, 8);
  const LinearWeight w = make_exl2(200, 512, opt, 7);
  const LinearWeight out = select(w, {{0, 200}});
  EXPECT_EQ(out.exl2.q_weight, w.exl2.q_weight);
  EXPECT_EQ(out.exl2.q_scale, w.exl2.q_scale);
  EXPECT_EQ(out.exl2.q_scale_max, w.exl2.q_scale_max);
  EXPECT_EQ(out.exl2.q_groups, w.exl2.q_groups);
  EXPECT_EQ(out.exl2.q_invperm, w.exl2.q_invperm);
  EXPECT_EQ(out.exl2.bias, w.exl2.bias);
  EXPECT_EQ(out.bias, w.bias);
  EXPECT_EQ(out.exl2.packed_rows, w.exl2.packed_rows);
  EXPECT_EQ(out.exl2.padded_out, 224);
  EXPECT_EQ(out.bits_per_weight(), w.bits_per_weight());
}

// Padding of a selection: 3 columns -> width 32; the 29 extra columns hold code 2^(b-1) and scale code 0.
TEST(SelectColumns, Exl2PaddingMatchesConverter) {
  Exl2PackOptions opt;
  opt.bits = {{5, 0.5, 32}, {3, 0.5, 32}};
  const LinearWeight w = make_exl2(64, 128, opt, 9);
  const LinearWeight out = select(w, {{60, 3}});
  ASSERT_EQ(out.exl2.padded_out, 32);
  const Exl2Weight& e = out.exl2;
  for (int64_t g = 0; g < e.num_groups(); ++g) {
    for (int64_t c = 3; c < 32; ++c) EXPECT_EQ((e.q_scale[g * 4 + c / 8] >> (4 * (c % 8))) & 15u, 0u);
    const Exl2Group& grp = e.groups[g];
    for (int64_t r = 0; r < grp.rows; ++r) {
      const int64_t bitpos = r * grp.bits, j = grp.packed_start + bitpos / 32;
      const int off = static_cast<int>(bitpos % 32);
      for (int64_t c = 3; c < 32; ++c) {
        uint32_t v = e.q_weight[j * 32 + c] >> off;
        if (off + grp.bits > 32) v |= e.q_weight[(j + 1) * 32 + c] << (32 - off);
        ASSERT_EQ(v & ((1u << grp.bits) - 1u), 1u << (grp.bits - 1)) << "group " << g << " row " << r;
      }
    }
  }
  expect_selected(w, out, {60, 61, 62}, "3 columns");
}

// InternLM2's wqkv: per KV head, [q heads of the group x head_dim | k head_dim | v head_dim].
TEST(SelectColumns, Exl2InternLm2InterleavedQkv) {
  const int64_t head_dim = 16, kv_heads = 2, group = 3;  // 6 q heads
  const int64_t block = (group + 2) * head_dim, N = kv_heads * block;
  Exl2PackOptions opt;
  opt.bits = {{4, 1.0, 32}};
  const LinearWeight w = make_exl2(N, 64, opt, 21);
  std::vector<ColumnRange> q, k, v;
  for (int64_t h = 0; h < kv_heads; ++h) {
    q.push_back({h * block, group * head_dim});
    k.push_back({h * block + group * head_dim, head_dim});
    v.push_back({h * block + (group + 1) * head_dim, head_dim});
  }
  check_select(w, q, "q");
  check_select(w, k, "k");
  check_select(w, v, "v");
  EXPECT_EQ(select(w, q).out_features, 96);
  EXPECT_EQ(select(w, k).exl2.padded_out, 32);
}

// Real ExLlamaV2 output: every EXL2 linear of the file (tiny-llama layer 0 + head; every linear of the arch-exl2
// models), several range sets each.
void check_real_file(const std::filesystem::path& path, const std::string& only_prefix) {
  auto store = io::TensorStore::open_file(path);
  int checked = 0;
  for (const std::string& name : store.names()) {
    const std::string suffix = ".q_weight";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string key = name.substr(0, name.size() - suffix.size());
    if (!only_prefix.empty() && key.rfind(only_prefix, 0) != 0 && key != "lm_head") continue;
    const int64_t K = store.info(key + ".q_invperm").shape[0];
    const int64_t N = store.info(name).shape[1];  // these models' widths need no padding
    const LinearWeight w = load_linear(store, key, K, N, {});
    ASSERT_EQ(w.format, WeightFormat::kExl2) << key;
    for (const auto& ranges : range_sets(N)) check_select(w, ranges, key);
    ++checked;
  }
  EXPECT_GT(checked, 0) << path;
}

TEST(SelectColumns, Exl2RealTinyLlama) {
  const auto file = testdata_dir() / "models/tiny-llama/exl2-4.0bpw/output.safetensors";
  EXL_REQUIRE_TESTDATA(file);
  check_real_file(file, "model.layers.0.");
}

TEST(SelectColumns, Exl2RealArchModels) {
  const auto dir = testdata_dir() / "models/arch-exl2";
  EXL_REQUIRE_TESTDATA(dir);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto file = entry.path() / "output.safetensors";
    if (!std::filesystem::exists(file)) continue;
    SCOPED_TRACE(file.string());
    check_real_file(file, "model.layers.0.");
    ++files;
  }
  EXPECT_GT(files, 0);
}

// qwen2's q/k/v biases travel with the columns.
TEST(SelectColumns, Exl2RealBias) {
  const auto file = testdata_dir() / "models/arch-exl2/qwen2/output.safetensors";
  EXL_REQUIRE_TESTDATA(file);
  auto store = io::TensorStore::open_file(file);
  const LinearWeight w = load_linear(store, "model.layers.0.self_attn.q_proj", 128, 128, {});
  ASSERT_FALSE(w.bias.empty());
  check_select(w, {{100, 28}, {3, 9}}, "qwen2 q_proj");
}

// ---------------------------------------------------------------------------------------------------------------
// GPTQ

TEST(SelectColumns, GptqSymAsymActOrderV1V2) {
  const int64_t N = 256, K = 256;
  std::mt19937 rng(5);
  std::vector<int32_t> act(K);
  for (int64_t k = 0; k < K; ++k) act[k] = static_cast<int32_t>(k % 4);
  std::shuffle(act.begin(), act.end(), rng);
  for (auto sym : {GptqSymmetry::kSymmetric, GptqSymmetry::kAsymmetric})
    for (auto fmt_ : {GptqZeroFormat::kV1, GptqZeroFormat::kV2})
      for (bool act_order : {false, true})
        for (bool bias : {false, true}) {
          GptqPackOptions opt;
          opt.group_size = 64;
          opt.symmetry = sym;
          opt.zero_format = fmt_;
          if (act_order) opt.g_idx = act;
          const LinearWeight w = make_gptq(N, K, opt, 30, bias);
          ASSERT_EQ(w.gptq.act_order, act_order);
          const std::string what = fmt::format("sym={} v2={} act={} bias={}", sym == GptqSymmetry::kSymmetric,
                                               fmt_ == GptqZeroFormat::kV2, act_order, bias);
          check_select(w, {{0, N}}, what + " identity");
          check_select(w, {{5, 27}, {200, 37}}, what + " unaligned");
          check_select(w, {{224, 32}, {0, 32}, {96, 32}}, what + " reordered");
          check_select(w, {{255, 1}, {0, 31}}, what + " single column");
        }
}

TEST(SelectColumns, GptqFullRangeIsIdentity) {
  GptqPackOptions opt;
  opt.group_size = 32;
  opt.symmetry = GptqSymmetry::kAsymmetric;
  const LinearWeight w = make_gptq(64, 128, opt, 31, true);
  const LinearWeight out = select(w, {{0, 64}});
  EXPECT_EQ(out.gptq.qweight, w.gptq.qweight);
  EXPECT_EQ(out.gptq.qzeros, w.gptq.qzeros);
  EXPECT_EQ(out.gptq.scales, w.gptq.scales);
  EXPECT_EQ(out.gptq.g_idx, w.gptq.g_idx);
  EXPECT_EQ(out.gptq.bias, w.gptq.bias);
}

// gptq_v2 words with a stored zero nibble: ExLlamaV2's word-wide subtraction of 0x11111111 borrows from the next
// nibble, so moving nibbles around naively would change the effective zeros. The selection keeps them exact.
TEST(SelectColumns, GptqV2BorrowingZerosStayExact) {
  GptqPackOptions opt;
  opt.group_size = 64;
  opt.symmetry = GptqSymmetry::kAsymmetric;
  opt.zero_format = GptqZeroFormat::kV2;
  LinearWeight w = make_gptq(64, 128, opt, 40, false);
  // Column 3 of group 0 and columns 8, 15 of group 1 get a stored 0 (borrowing from the next nibble; 15 from
  // beyond the word).
  w.gptq.qzeros[0] &= ~(0xFu << 12);
  w.gptq.qzeros[8 + 1] &= ~0xFu;
  w.gptq.qzeros[8 + 1] &= ~(0xFu << 28);
  EXPECT_EQ(w.gptq.zero(0, 3), 16);  // 0 - 1 wraps to 15, + 1
  check_select(w, {{4, 28}, {3, 1}, {40, 3}}, "v2 borrow");
  check_select(w, {{8, 8}, {0, 8}, {16, 16}}, "v2 borrow, group 1");
  check_select(w, {{15, 1}, {9, 31}}, "v2 borrow at the top nibble");
}

TEST(SelectColumns, GptqWidthNotMultipleOf32IsUnsupported) {
  GptqPackOptions opt;
  opt.group_size = 64;
  const LinearWeight w = make_gptq(128, 128, opt, 50, false);
  try {
    select(w, {{0, 16}, {64, 8}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("gptq.fused"), std::string::npos) << msg;
    EXPECT_NE(msg.find("24 selected GPTQ output columns"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[0, 16) [64, 72)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("N = 128"), std::string::npos) << msg;
    EXPECT_NE(msg.find("multiple of 32"), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// errors

void expect_range_error(const LinearWeight& w, std::vector<ColumnRange> ranges, const std::vector<std::string>& parts) {
  try {
    select(w, ranges, "out.key");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(SelectColumns, BadRangesAreInvalidArgument) {
  Exl2PackOptions opt;
  const LinearWeight fw = make_float(96, 32, DType::kF16, 1, false);
  const LinearWeight ew = make_exl2(96, 128, opt, 2);
  GptqPackOptions gopt;
  gopt.group_size = 32;
  const LinearWeight gw = make_gptq(96, 64, gopt, 3, false);
  for (const LinearWeight* w : {&fw, &ew, &gw}) {
    SCOPED_TRACE(w->key);
    expect_range_error(*w, {}, {"no column ranges", w->key, "out.key", "96 output columns"});
    expect_range_error(
        *w, {{0, 32}, {90, 7}},
        {w->key, "range 1 [90, 97) is outside the output columns [0, 96)", "[0, 32) [90, 97)", "N = 96"});
    expect_range_error(*w, {{-1, 4}}, {w->key, "range 0 [-1, 3) is outside", "N = 96"});
    expect_range_error(*w, {{96, 1}}, {"range 0 [96, 97) is outside"});
    expect_range_error(*w, {{0, 32}, {10, 0}}, {w->key, "range 1 [start 10, count 0] has count 0", "N = 96"});
    expect_range_error(*w, {{10, -5}}, {"count -5"});
    expect_range_error(*w, {{1, std::numeric_limits<int64_t>::max()}}, {"is outside"});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// split_output_columns

TEST(SplitColumns, QkvPiecesEqualSelections) {
  const std::vector<std::string> keys = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                                         "model.layers.0.self_attn.v_proj"};
  const std::vector<int64_t> sizes = {256, 64, 64};
  Exl2PackOptions eopt;
  eopt.bits = {{6, 0.2, 32}, {4, 0.8, 64}};
  eopt.bias = random_bias(384, 60);
  GptqPackOptions gopt;
  gopt.group_size = 32;
  gopt.symmetry = GptqSymmetry::kAsymmetric;
  const std::vector<LinearWeight> fused = {make_float(384, 64, DType::kBF16, 61, true), make_exl2(384, 128, eopt, 62),
                                           make_gptq(384, 64, gopt, 63, true)};
  for (const LinearWeight& w : fused) {
    SCOPED_TRACE(w.key);
    const std::vector<LinearWeight> pieces = split_output_columns(w, sizes, keys);
    ASSERT_EQ(pieces.size(), 3u);
    int64_t start = 0;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(pieces[i].key, keys[i]);
      std::vector<int64_t> cols;
      for (int64_t c = 0; c < sizes[i]; ++c) cols.push_back(start + c);
      expect_selected(w, pieces[i], cols, keys[i]);
      start += sizes[i];
    }
  }
}

TEST(SplitColumns, GateUpHalves) {
  Exl2PackOptions opt;
  opt.bits = {{5, 1.0, 32}};
  const LinearWeight w = make_exl2(512, 64, opt, 70);
  const std::vector<std::string> keys = {"model.layers.3.mlp.gate_proj", "model.layers.3.mlp.up_proj"};
  const std::vector<int64_t> sizes = {256, 256};
  const auto pieces = split_output_columns(w, sizes, keys);
  expect_selected(w, pieces[1], columns_of(std::vector<ColumnRange>{{256, 256}}), "up");
}

TEST(SplitColumns, SizesNotAddingUpNameTheTensor) {
  LinearWeight w = make_float(384, 32, DType::kF16, 80, false);
  w.key = "model.layers.0.self_attn.qkv_proj";
  const std::vector<std::string> keys = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                                         "model.layers.0.self_attn.v_proj"};
  const std::vector<int64_t> sizes = {256, 64, 32};
  try {
    split_output_columns(w, sizes, keys);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()),
              "fused tensor 'model.layers.0.self_attn.qkv_proj' has 384 output columns, the config's split q_proj 256 "
              "+ k_proj 64 + v_proj 32 = 352");
  }
  const std::vector<int64_t> with_zero = {384, 0, 0};
  try {
    split_output_columns(w, with_zero, keys);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("every piece must have a positive size"), std::string::npos) << e.what();
  }
  const std::vector<int64_t> two = {256, 128};
  EXPECT_THROW(split_output_columns(w, two, keys), Error);
}

}  // namespace
}  // namespace exl::quant
