// make-random-model writes valid files: they load through the normal path (which validates every EXL2/GPTQ
// invariant) with the preset's shapes, and a forward pass gives finite logits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "backend/cpu/cpu_runner.h"
#include "core/error.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "model/random_model.h"

namespace exl {
namespace {

class RandomModel : public ::testing::TestWithParam<model::RandomFormat> {};

TEST_P(RandomModel, WritesALoadableModel) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("exl_random_" + std::to_string(static_cast<int>(GetParam())) + "_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = "tiny";
  o.format = GetParam();
  o.bpw = 3.5;
  model::write_random_model(dir, o);
  const auto w = model::ModelWeights::load(dir);
  EXPECT_EQ(w.config.hidden_size, 256);
  EXPECT_EQ(w.layers.size(), 2u);
  const auto want = GetParam() == model::RandomFormat::kExl2   ? quant::WeightFormat::kExl2
                    : GetParam() == model::RandomFormat::kGptq ? quant::WeightFormat::kGptq
                                                               : quant::WeightFormat::kFloat;
  EXPECT_EQ(w.layers[1].down_proj.format, want);
  if (GetParam() == model::RandomFormat::kExl2) {
    EXPECT_EQ(w.layers[0].q_proj.exl2.bit_widths(), (std::vector<int>{4, 3}));
    EXPECT_NEAR(w.layers[0].gate_proj.bits_per_weight(), 3.5, 0.25);
    // Matrices that read one input share one act-order permutation, as in ExLlamaV2's files; the others do not.
    for (const auto& l : w.layers) {
      EXPECT_EQ(l.k_proj.exl2.q_invperm, l.q_proj.exl2.q_invperm);
      EXPECT_EQ(l.v_proj.exl2.q_invperm, l.q_proj.exl2.q_invperm);
      EXPECT_EQ(l.up_proj.exl2.q_invperm, l.gate_proj.exl2.q_invperm);
      EXPECT_NE(l.o_proj.exl2.q_invperm, l.q_proj.exl2.q_invperm);
    }
    EXPECT_NE(w.layers[0].q_proj.exl2.q_invperm, w.layers[1].q_proj.exl2.q_invperm);
  }
  cpu::CpuRunner runner(w, {.cache_tokens = 256});
  const auto logits = model::compute_logits(runner, {{1, 2, 3, 4, 5}});
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Formats, RandomModel,
                         ::testing::Values(model::RandomFormat::kExl2, model::RandomFormat::kGptq,
                                           model::RandomFormat::kFp16));

TEST(RandomModelOptions, UnknownPresetIsAnError) {
  model::RandomModelOptions o;
  o.preset = "gpt5";
  EXPECT_THROW(model::write_random_model(std::filesystem::temp_directory_path() / "exl_never", o), Error);
}

}  // namespace
}  // namespace exl

namespace exl {
namespace {

// Presets of other architectures: the files follow the architecture's ModelSpec (experts, Gemma's four norms and
// tied head) and run.
class RandomArchModel : public ::testing::TestWithParam<std::string> {};

TEST_P(RandomArchModel, WritesALoadableModel) {
  const auto dir = std::filesystem::temp_directory_path() / ("exl_random_" + GetParam() + "_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = GetParam();
  o.format = model::RandomFormat::kExl2;
  model::write_random_model(dir, o);
  const auto w = model::ModelWeights::load(dir);
  EXPECT_EQ(w.layers.size(), 2u);
  if (w.spec.has_moe()) {
    ASSERT_EQ(w.layers[0].experts.size(), 8u);
    EXPECT_EQ(w.layers[0].experts[7].down_proj.format, quant::WeightFormat::kExl2);
    EXPECT_EQ(w.layers[0].experts[3].up_proj.exl2.q_invperm, w.layers[0].experts[3].gate_proj.exl2.q_invperm);
    EXPECT_EQ(w.layers[0].router.format, quant::WeightFormat::kFloat);
  } else {
    EXPECT_FALSE(w.layers[0].mlp_post_norm.weight.empty());
    EXPECT_EQ(w.spec.layers[0].attn.sliding_window, 16);
    EXPECT_EQ(w.spec.layers[1].attn.sliding_window, 0);
  }
  cpu::CpuRunner runner(w, {.cache_tokens = 256});
  const auto logits = model::compute_logits(runner, {{1, 2, 3, 4, 5}});
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Presets, RandomArchModel, ::testing::Values("tiny-qwen3-moe", "tiny-gemma2"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace exl
