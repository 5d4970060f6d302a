// Every architecture against transformers, on the CPU backend: tests/fixtures/arch/<name>/ holds a small random
// model saved by transformers (every parameter random, bf16) and transformers' FP32 eager logits on two rows of 80
// tokens, longer than every sliding window (scripts/arch_fixtures/make_arch_fixtures.py made them). The logits
// must agree within relative L2 2e-3, over the whole sequence at once and token by token through the KV cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_runner.h"
#include "cache/page_allocator.h"
#include "core/error.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "reference_compare.h"
#include "arch_fixtures.h"
#include "testdata.h"

namespace exl {
namespace {

namespace fs = std::filesystem;

fs::path fixtures_root() { return testing::arch_fixtures_root(); }
std::vector<std::string> fixture_names() { return testing::arch_fixture_names(); }

class ArchFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchFixture, LogitsMatchTransformers) {
  const fs::path dir = fixtures_root() / GetParam();
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> want = refs.read_f32("logits");
  const auto weights = model::ModelWeights::load(dir);
  cpu::CpuRunner runner(weights, {.cache_tokens = 512, .page_size = 16});
  const std::vector<float> got = model::compute_logits(runner, rows);
  ASSERT_EQ(got.size(), want.size());
  const testing::Diff d = testing::compare(got, want);
  std::printf("[ %s ] %s: rel L2 %.3g, max abs %.3g\n", GetParam().c_str(), weights.spec.architecture.c_str(),
              d.rel_l2, d.max_abs);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 2e-3);
}

// The same row fed as a prefill chunk and then one token at a time through the paged cache (pages of 16, so
// sliding windows cross page boundaries): each step's logits equal the reference at that position.
TEST_P(ArchFixture, IncrementalDecodeMatchesTransformers) {
  const fs::path dir = fixtures_root() / GetParam();
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> want = refs.read_f32("logits");
  const auto weights = model::ModelWeights::load(dir);
  for (const auto& r : weights.spec.ropes)
    if (model::rope_depends_on_length(r))
      GTEST_SKIP() << "rope type " << io::rope_type_name(r.params.type)
                   << " depends on the sequence length: transformers' one-pass reference uses the final length's "
                      "table for every position, so step-by-step logits differ by design (the whole-sequence test "
                      "checks this fixture)";
  cpu::CpuRunner runner(weights, {.cache_tokens = 512, .page_size = 16});
  const int64_t V = weights.spec.vocab_size;
  const std::vector<int32_t>& row = rows[0];
  const int64_t L = static_cast<int64_t>(row.size()), prefill = 37;
  cache::PageAllocator alloc(runner.num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, L, runner.page_size());
  std::vector<float> got, logits;
  const model::SequenceStep first{std::span<const int32_t>(row.data(), prefill), 0, seq.pages};
  runner.forward({&first, 1}, model::LogitsFor::kAllTokens, &logits);
  got.insert(got.end(), logits.begin(), logits.end());
  for (int64_t t = prefill; t < L; ++t) {
    const model::SequenceStep step{std::span<const int32_t>(row.data() + t, 1), t, seq.pages};
    runner.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    got.insert(got.end(), logits.begin(), logits.end());
  }
  const std::vector<float> want_row(want.begin(), want.begin() + L * V);
  const testing::Diff d = testing::compare(got, want_row);
  std::printf("[ %s ] incremental: rel L2 %.3g\n", GetParam().c_str(), d.rel_l2);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(Transformers, ArchFixture, ::testing::ValuesIn(fixture_names()),
                         [](const auto& param_info) { return param_info.param; });
// Until the fixtures exist (they are made on the GPU machine), the suite has no instances; the coverage test below
// then reports every architecture as unchecked.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ArchFixture);

// Every supported architecture has at least one fixture (a registry entry without one would be untested).
TEST(ArchFixtures, CoverEverySupportedArchitecture) {
  if (!fs::exists(fixtures_root()))
    GTEST_SKIP() << "tests/fixtures/arch is missing: no architecture is checked against transformers yet (make it with "
                    "scripts/arch_fixtures/make_arch_fixtures.py on the GPU machine)";
  std::set<std::string> covered;
  for (const auto& name : fixture_names()) {
    const nlohmann::json c = read_json_file(fixtures_root() / name / "config.json");
    covered.insert(c["architectures"][0].get<std::string>());
  }
  for (const auto& arch : model::supported_architectures())
    EXPECT_TRUE(covered.count(arch)) << arch << " has no fixture under tests/fixtures/arch";
}

}  // namespace
}  // namespace exl

namespace exl {
namespace {

// ExLlamaV2's own EXL2 conversions of other architectures (../shared/testdata/models/arch-exl2): exl's logits equal
// transformers run on exactly the file's weights (hf_on_exl2_weights_logits) within relative L2 2e-3.
class ArchExl2 : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchExl2, LogitsMatchTransformersOnTheFileWeights) {
  const fs::path dir = testing::testdata_dir() / "models/arch-exl2" / GetParam();
  EXL_REQUIRE_TESTDATA(dir);
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const auto weights = model::ModelWeights::load(dir);
  EXPECT_EQ(weights.layers[0].q_proj.format, quant::WeightFormat::kExl2);
  cpu::CpuRunner runner(weights, {.cache_tokens = 512, .page_size = 16});
  const std::vector<float> got = model::compute_logits(runner, rows);
  const testing::Diff d = testing::compare(got, refs.read_f32("hf_on_exl2_weights_logits"));
  const double vs_exllama = testing::compare(got, refs.read_f32("exllamav2_logits")).rel_l2;
  std::printf("[ arch-exl2 %s ] rel L2 vs transformers %.3g (vs ExLlamaV2's own logits %.3g)\n", GetParam().c_str(),
              d.rel_l2, vs_exllama);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(Files, ArchExl2, ::testing::Values("qwen2", "phi3", "mixtral"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace exl

namespace exl {
namespace {

// Load-time overrides (ExLlamaV2's max_seq_len, RoPE scale and NTK alpha): the sequence limit is enforced with an
// error naming the override, and the RoPE overrides change the frequencies as their formulas say.
TEST(ModelOverrides, LimitAndRopeOverrides) {
  const fs::path dir = testing::testdata_dir() / "models/tiny-llama/fp16";
  EXL_REQUIRE_TESTDATA(dir);
  const auto refs = io::TensorStore::open_file(dir.parent_path() / "refs.safetensors");
  model::TokenRows rows = testing::read_token_rows(refs, "input_ids");
  rows.resize(1);
  const auto plain = model::ModelWeights::load(dir);
  const auto limited = model::ModelWeights::load(dir, {}, {.max_seq_len = 16});
  EXPECT_EQ(limited.spec.max_seq_len, 16);
  cpu::CpuRunner limited_runner(limited, {.cache_tokens = 256});
  try {
    model::compute_logits(limited_runner, rows);
    ADD_FAILURE() << "a 64-token row ran with max_seq_len 16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max-seq-len"), std::string::npos) << e.what();
  }
  const auto alpha = model::ModelWeights::load(dir, {}, {.rope_alpha = 2.0});
  const auto scaled = model::ModelWeights::load(dir, {}, {.rope_scale = 2.0});
  const model::RopeTable base = model::compute_rope(plain.spec.ropes[0], 64);
  const model::RopeTable a = model::compute_rope(alpha.spec.ropes[0], 64);
  const model::RopeTable s = model::compute_rope(scaled.spec.ropes[0], 64);
  const double d = static_cast<double>(plain.spec.ropes[0].rotary_dim());
  const double theta = plain.spec.ropes[0].params.theta;
  for (size_t i = 0; i < base.inv_freq.size(); ++i) {
    EXPECT_NEAR(s.inv_freq[i], base.inv_freq[i] / 2.0, 1e-7);
    const double want = 1.0 / std::pow(theta * std::pow(2.0, d / (d - 2.0)), 2.0 * static_cast<double>(i) / d);
    EXPECT_NEAR(a.inv_freq[i], want, 1e-6 * want + 1e-9);
  }
  cpu::CpuRunner plain_runner(plain, {.cache_tokens = 256});
  cpu::CpuRunner alpha_runner(alpha, {.cache_tokens = 256});
  const double diff =
      testing::compare(model::compute_logits(alpha_runner, rows), model::compute_logits(plain_runner, rows)).rel_l2;
  EXPECT_GT(diff, 1e-3);  // a different model at these positions
}

}  // namespace
}  // namespace exl
