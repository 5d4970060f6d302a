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
#include "testdata.h"

namespace exl {
namespace {

using exl::testing::testdata_dir;

struct Diff {
  double rel_l2 = 0;
  double max_abs = 0;
  bool finite = true;
};

Diff compare(const std::vector<float>& got, const std::vector<float>& want) {
  Diff d;
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) d.finite = false;
    const double e = static_cast<double>(got[i]) - want[i];
    num += e * e;
    den += static_cast<double>(want[i]) * want[i];
    d.max_abs = std::max(d.max_abs, std::fabs(e));
  }
  d.rel_l2 = std::sqrt(num / den);
  return d;
}

model::TokenRows read_rows(const io::TensorStore& refs, const std::string& name) {
  const auto& info = refs.info(name);
  std::vector<int32_t> flat = refs.read<int32_t>(name, DType::kI32);
  model::TokenRows rows;
  for (int64_t r = 0; r < info.shape[0]; ++r)
    rows.emplace_back(flat.begin() + r * info.shape[1], flat.begin() + (r + 1) * info.shape[1]);
  return rows;
}

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

  const auto rows = read_rows(refs, "input_ids");
  const std::vector<float> got = model::compute_logits(runner, rows);
  const std::vector<float> want = refs.read_f32(v.logits);
  ASSERT_EQ(got.size(), want.size());
  const Diff d = compare(got, want);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, v.tolerance) << v.folder << " vs " << v.logits << " (max abs " << d.max_abs << ")";
  std::printf("[ %s ] rel L2 %.3g vs %s, max abs %.3g\n", v.folder, d.rel_l2, v.logits, d.max_abs);

  const nlohmann::json ref = read_json_file(root / "refs.json");
  const double want_ppl = ref["variants"][v.ppl_key]["ppl"].get<double>();
  const auto ppl = model::perplexity(runner, read_rows(refs, "ppl_rows"));
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
