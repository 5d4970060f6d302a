// Whole-model checks on the CPU backend against reference outputs in shared/testdata (Hugging Face FP32 and
// ExLlamaV2 logits, perplexities from refs.json). Never against numbers this code produced.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_runner.h"
#include "core/fp16.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "reference_compare.h"
#include "testdata.h"

namespace exl {
namespace {

using exl::testing::compare;
using exl::testing::Diff;
using exl::testing::testdata_dir;

struct Variant {
  const char* folder;
  const char* logits;    // reference tensor in refs.safetensors
  const char* ppl_key;   // refs.json variants key
  double tolerance;
};

class TinyLlamaCpu : public ::testing::TestWithParam<Variant> {};

TEST_P(TinyLlamaCpu, LogitsAndPerplexityMatchReferences) {
  const Variant v = GetParam();
  const auto root = testdata_dir() / "models/tiny-llama";
  EXL_REQUIRE_TESTDATA(root / v.folder);
  auto refs = io::TensorStore::open_file(root / "refs.safetensors");
  const auto weights = model::ModelWeights::load(root / v.folder);
  cpu::CpuRunner runner(weights, {.cache_tokens = 4096});

  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> got = model::compute_logits(runner, rows);
  const std::vector<float> want = refs.read_f32(v.logits);
  ASSERT_EQ(got.size(), want.size());
  const Diff d = compare(got, want);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, v.tolerance) << v.folder << " vs " << v.logits << " (max abs " << d.max_abs << ")";
  std::printf("[ %s ] rel L2 %.3g vs %s, max abs %.3g\n", v.folder, d.rel_l2, v.logits, d.max_abs);

  const nlohmann::json ref = read_json_file(root / "refs.json");
  const double want_ppl = ref["variants"][v.ppl_key]["ppl"].get<double>();
  const auto ppl = model::perplexity(runner, testing::read_token_rows(refs, "ppl_rows"));
  EXPECT_EQ(ppl.tokens, 16 * 255);
  EXPECT_LT(std::fabs(ppl.ppl - want_ppl) / want_ppl, 0.005) << "ppl " << ppl.ppl << " vs " << want_ppl;
  std::printf("[ %s ] perplexity %.4f (reference %.4f)\n", v.folder, ppl.ppl, want_ppl);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, TinyLlamaCpu,
    ::testing::Values(Variant{"fp16", "hf_fp32_logits", "fp16", 1e-3},
                      Variant{"exl2-2.5bpw", "exl2_2.5bpw_logits", "2.5bpw", 5e-3},
                      Variant{"exl2-4.0bpw", "exl2_4.0bpw_logits", "4.0bpw", 5e-3},
                      Variant{"exl2-6.0bpw", "exl2_6.0bpw_logits", "6.0bpw", 5e-3}),
    [](const auto& param_info) {
      std::string n = param_info.param.folder;
      for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

}  // namespace
}  // namespace exl
