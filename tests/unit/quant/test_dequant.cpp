// Bit-exact dequantization against ExLlamaV2's own reconstruct output (shared/testdata/exl2-vectors and the
// layer-0 matrices of tiny-llama exl2-4.0bpw in refs.safetensors).
#include <gtest/gtest.h>

#include "core/fp16.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/exl2.h"
#include "quant/gptq.h"
#include "quant/linear_weight.h"
#include "testdata.h"

namespace exl::quant {
namespace {

using exl::testing::testdata_dir;

int64_t count_mismatches(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
  return bad;
}

void check_exl2_vector(const std::string& name, int64_t out_features) {
  const auto dir = testdata_dir() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  auto store = io::TensorStore::open_file(dir / (name + ".safetensors"));
  auto expected = io::TensorStore::open_file(dir / (name + "_expected.safetensors"));
  const auto& info = expected.info("dequant_in_out_fp16");
  Exl2Weight w = load_exl2(store, "layer", info.shape[0], out_features);
  ASSERT_EQ(w.padded_out, info.shape[1]);
  std::vector<uint16_t> got = dequantize_exl2(w);
  std::vector<uint16_t> want = expected.read<uint16_t>("dequant_in_out_fp16", DType::kF16);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(count_mismatches(got, want), 0) << name;
}

TEST(Exl2Dequant, MixedAllBitsIsBitExact) { check_exl2_vector("exl2_mixed_all_bits", 256); }

TEST(Exl2Dequant, PartialGroupPaddedColumnsIsBitExact) {
  check_exl2_vector("exl2_partial_group_padcols", 200);
  const auto dir = testdata_dir() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  auto store = io::TensorStore::open_file(dir / "exl2_partial_group_padcols.safetensors");
  Exl2Weight w = load_exl2(store, "layer", 1056, 200);
  std::vector<uint16_t> got = dequantize_exl2(w);
  for (int64_t k = 0; k < w.in_features; ++k)
    for (int64_t c = 200; c < w.padded_out; ++c) ASSERT_EQ(half_to_float(got[k * w.padded_out + c]), 0.0f);
}

TEST(GptqDequant, ActOrderG128IsBitExact) {
  const auto dir = testdata_dir() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  auto store = io::TensorStore::open_file(dir / "gptq4_actorder_g128.safetensors");
  auto expected = io::TensorStore::open_file(dir / "gptq4_actorder_g128_expected.safetensors");
  GptqWeight w = load_gptq(store, "layer", 512, 256, GptqZeroFormat::kV1);
  EXPECT_TRUE(w.act_order);
  EXPECT_EQ(w.group_size, 128);
  std::vector<uint16_t> want = expected.read<uint16_t>("dequant_in_out_fp16", DType::kF16, {512, 256});
  EXPECT_EQ(count_mismatches(dequantize_gptq(w), want), 0);
}

// ExLlamaV2 folds down_proj's input permutation into the MLP at load time: gate/up output columns are
// reordered by down_proj's q_perm and down_proj's rows stay in stored order, so the intermediate activations
// never need a gather. refs.safetensors holds those in-memory matrices; the math is unchanged. The test maps
// our original-order dequantization through the same reordering and then demands bit equality.
TEST(Exl2Dequant, TinyLlamaLayer0MatchesExllamav2) {
  const auto model = testdata_dir() / "models/tiny-llama/exl2-4.0bpw";
  EXL_REQUIRE_TESTDATA(model);
  auto store = io::TensorStore::open_dir(model);
  auto refs = io::TensorStore::open_file(testdata_dir() / "models/tiny-llama/refs.safetensors");
  const std::string layer = "model.layers.0.";
  LinearWeight down = load_linear(store, layer + "mlp.down_proj", 1024, 512, {});
  int checked = 0;
  for (const std::string& name : refs.names()) {
    const std::string prefix = "exl2_4.0bpw_dq::";
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string key = name.substr(prefix.size());
    const auto& info = refs.info(name);  // [out, in]
    const int64_t N = info.shape[0], K = info.shape[1];
    LinearWeight lw = load_linear(store, key, K, N, {});
    ASSERT_EQ(lw.format, WeightFormat::kExl2) << key;
    const std::vector<uint16_t> kw = dequantize_exl2(lw.exl2);  // [K, W], original row order
    const int64_t W = lw.exl2.padded_out;
    const std::vector<uint16_t> want = refs.read<uint16_t>(name, DType::kF16);
    const bool gate_or_up = key == layer + "mlp.gate_proj" || key == layer + "mlp.up_proj";
    const bool is_down = key == layer + "mlp.down_proj";
    int64_t bad = 0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t col = gate_or_up ? down.exl2.q_perm[n] : n;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = is_down ? lw.exl2.q_perm[k] : k;
        bad += kw[row * W + col] != want[n * K + k];
      }
    }
    EXPECT_EQ(bad, 0) << key;
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

}  // namespace
}  // namespace exl::quant
