// CPU whole-model checks beyond tiny-llama: GPTQ models built from tiny-llama fp16 (sym/asym, act-order, v1/v2),
// tinystories-656k (tied, head_dim 16, FP32) and the demo model, against Hugging Face fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_runner.h"
#include "cache/page_allocator.h"
#include "core/fp16.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "quant/gptq.h"
#include "reference_compare.h"
#include "testdata.h"

namespace exl {
namespace {

namespace fs = std::filesystem;
using exl::testing::source_dir;
using exl::testing::testdata_dir;

// Per-layer GPTQ settings, so one model covers several variants.
quant::GptqPackOptions layer_options(int layer, int64_t in_features, quant::GptqZeroFormat zf, std::mt19937& rng) {
  quant::GptqPackOptions o;
  o.zero_format = zf;
  switch (layer % 4) {
    case 0: o.group_size = 128; o.symmetry = quant::GptqSymmetry::kSymmetric; break;
    case 1: {  // act-order: a shuffled g_idx with exactly group_size rows per group
      o.group_size = 64;
      o.symmetry = quant::GptqSymmetry::kAsymmetric;
      for (int64_t k = 0; k < in_features; ++k) o.g_idx.push_back(static_cast<int32_t>(k / o.group_size));
      std::shuffle(o.g_idx.begin(), o.g_idx.end(), rng);
      break;
    }
    case 2: o.group_size = 32; o.symmetry = quant::GptqSymmetry::kSymmetric; break;
    default: o.group_size = 128; o.symmetry = quant::GptqSymmetry::kAsymmetric; break;
  }
  return o;
}

// Writes a GPTQ model made from `src` (FP16) into `dst` and returns the FP16 model whose linear weights are the
// dequantized GPTQ weights (the expected numbers).
model::ModelWeights make_gptq_model(const fs::path& src, const fs::path& dst, quant::GptqZeroFormat zf) {
  fs::create_directories(dst);
  nlohmann::json cfg = read_json_file(src / "config.json");
  cfg["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  if (zf == quant::GptqZeroFormat::kV2) cfg["quantization_config"]["checkpoint_format"] = "gptq_v2";
  std::ofstream(dst / "config.json") << cfg.dump(2);
  model::ModelWeights expected = model::ModelWeights::load(src);
  const auto store = io::TensorStore::open_dir(src);
  io::SafetensorsWriter w;
  std::mt19937 rng(1234);
  for (const auto& name : store.names()) {
    const bool is_linear = name.find("_proj.weight") != std::string::npos;
    if (!is_linear) {
      const auto v = store.view(name);
      w.add(name, v.dtype, v.shape, v.data);
    }
  }
  for (size_t i = 0; i < expected.layers.size(); ++i) {
    auto& l = expected.layers[i];
    for (quant::LinearWeight* lw : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj,
                                    &l.down_proj}) {
      const auto opts = layer_options(static_cast<int>(i), lw->in_features, zf, rng);
      const quant::GptqWeight g = quant::pack_gptq_rtn(lw->to_f32_nk(), lw->out_features, lw->in_features, opts);
      const int64_t K = lw->in_features, N = lw->out_features;
      w.add(lw->key + ".qweight", DType::kI32, {K / 8, N}, g.qweight);
      w.add(lw->key + ".qzeros", DType::kI32, {g.num_groups, N / 8}, g.qzeros);
      w.add(lw->key + ".scales", DType::kF16, {g.num_groups, N}, g.scales);
      w.add(lw->key + ".g_idx", DType::kI32, {K}, g.g_idx);
      // The expected model: the FP16 weights the GPTQ tensors dequantize to, in [N, K].
      const std::vector<uint16_t> kn = quant::dequantize_gptq(g);
      Tensor t(DType::kF16, {N, K});
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) t.data<uint16_t>()[n * K + k] = kn[k * N + n];
      lw->float_weight = std::move(t);
    }
  }
  w.write(dst / "model.safetensors");
  return expected;
}

class GptqModel : public ::testing::TestWithParam<quant::GptqZeroFormat> {};

TEST_P(GptqModel, LoadsAndMatchesTheDequantizedFp16Model) {
  const fs::path root = testdata_dir() / "models/tiny-llama";
  EXL_REQUIRE_TESTDATA(root / "fp16");
  const fs::path dir = fs::temp_directory_path() /
                       ("exl_gptq_" + std::to_string(static_cast<int>(GetParam())) + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  model::ModelWeights expected = make_gptq_model(root / "fp16", dir, GetParam());
  const model::ModelWeights loaded = model::ModelWeights::load(dir);
  ASSERT_EQ(loaded.layers[0].q_proj.format, quant::WeightFormat::kGptq);
  EXPECT_TRUE(loaded.layers[1].q_proj.gptq.act_order);
  EXPECT_EQ(loaded.layers[2].q_proj.gptq.group_size, 32);
  EXPECT_EQ(loaded.layers[0].q_proj.gptq.zero_format, GetParam());

  const auto refs = io::TensorStore::open_file(root / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  cpu::CpuRunner gptq_runner(loaded, {.cache_tokens = 1024});
  cpu::CpuRunner fp16_runner(expected, {.cache_tokens = 1024});
  const auto got = model::compute_logits(gptq_runner, rows);
  const auto want = model::compute_logits(fp16_runner, rows);
  EXPECT_LT(testing::compare(got, want).rel_l2, 1e-6);
  // And the quantized model is still the same model (4-bit RTN on a tiny net: close, not equal).
  const double vs_hf = testing::compare(got, refs.read_f32("hf_fp32_logits")).rel_l2;
  std::printf("[ gptq ] rel L2 vs HF fp32 logits %.4f\n", vs_hf);
  EXPECT_LT(vs_hf, 0.5);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(ZeroFormats, GptqModel,
                         ::testing::Values(quant::GptqZeroFormat::kV1, quant::GptqZeroFormat::kV2),
                         [](const auto& param_info) {
                           return param_info.param == quant::GptqZeroFormat::kV1 ? std::string("v1")
                                                                                 : std::string("v2");
                         });

TEST(TinyStories, TiedHeadMatchesHuggingFace) {
  const fs::path dir = testdata_dir() / "models/tinystories-656k";
  EXL_REQUIRE_TESTDATA(dir);
  const auto fixture = io::TensorStore::open_file(source_dir() / "tests/fixtures/tinystories_hf_logits.safetensors");
  const auto weights = model::ModelWeights::load(dir);
  EXPECT_EQ(weights.config.head_dim, 16);
  EXPECT_TRUE(weights.config.tie_word_embeddings);
  cpu::CpuRunner runner(weights, {.cache_tokens = 512});
  const auto rows = testing::read_token_rows(fixture, "input_ids");
  const double d = testing::compare(model::compute_logits(runner, rows), fixture.read_f32("logits")).rel_l2;
  EXPECT_LT(d, 1e-4);
  const auto ppl = model::perplexity(runner, rows);
  // The fixture's README records HF's perplexity on these rows: 21.81 (NLL 3.082323).
  EXPECT_NEAR(ppl.nll, 3.082323, 1e-3);
  std::printf("[ tinystories ] rel L2 %.3g, ppl %.3f\n", d, ppl.ppl);
}

TEST(DemoModel, LogitsAndGreedyMatchHuggingFace) {
  const fs::path dir = source_dir() / "models/demo";
  ASSERT_TRUE(fs::exists(dir / "model.safetensors"));
  const auto fixture = io::TensorStore::open_file(source_dir() / "tests/fixtures/demo_hf_logits.safetensors");
  const auto weights = model::ModelWeights::load(dir);
  cpu::CpuRunner runner(weights, {.cache_tokens = 1024});
  const auto rows = testing::read_token_rows(fixture, "input_ids");
  const double d = testing::compare(model::compute_logits(runner, rows), fixture.read_f32("logits")).rel_l2;
  EXPECT_LT(d, 1e-4);
  const nlohmann::json ref = read_json_file(dir / "reference.json");
  for (const auto& c : ref["cases"]) {
    const std::vector<int32_t> prompt = c["input_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = c["generated_ids"].get<std::vector<int32_t>>();
    cache::PageAllocator alloc(runner.num_pages());
    cache::SequenceCache seq;
    cache::reserve_tokens(alloc, seq, static_cast<int64_t>(prompt.size() + want.size()), runner.page_size());
    std::vector<float> logits;
    const model::SequenceStep prefill{std::span<const int32_t>(prompt.data(), prompt.size() - 1), 0, seq.pages};
    runner.forward({&prefill, 1}, model::LogitsFor::kLastToken, &logits);
    model::DecodeRequest req;
    req.last_token = prompt.back();
    req.start_pos = static_cast<int64_t>(prompt.size()) - 1;
    req.pages = &seq.pages;
    req.max_new_tokens = static_cast<int64_t>(want.size());
    std::vector<int32_t> got;
    runner.decode(req, [&](int32_t t) {
      got.push_back(t);
      return true;
    });
    EXPECT_EQ(got, want) << c["prompt"];
  }
}

}  // namespace
}  // namespace exl
