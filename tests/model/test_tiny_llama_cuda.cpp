// Whole-model checks of the CUDA runner on tiny-llama against the reference outputs in shared/testdata (Hugging Face
// FP32 and ExLlamaV2 logits, perplexities and greedy continuations from refs.json). Skips without a GPU.
// EXL_TESTDATA_DIR in the environment overrides the compile-time test data location (for the GPU machine).
#ifdef EXL_HAVE_CUDA
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "backend/cuda/cuda_runner.h"
#include "backend/cuda/device_buffer.h"
#include "cache/page_allocator.h"
#include "core/error.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "model/random_model.h"
#include "reference_compare.h"
#include "testdata.h"
#include "tokenizer/tokenizer.h"

namespace exl {
namespace {

using exl::testing::compare;
using exl::testing::Diff;

#define EXL_REQUIRE_GPU_AND(path)                                                       \
  do {                                                                                  \
    if (::exl::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";            \
    EXL_REQUIRE_TESTDATA(path);                                                         \
  } while (0)

struct Variant {
  const char* folder;
  const char* logits;
  const char* key;
};

class TinyLlamaCuda : public ::testing::TestWithParam<Variant> {};

TEST_P(TinyLlamaCuda, LogitsAndPerplexityMatchReferences) {
  const Variant v = GetParam();
  const auto root = (testing::testdata_dir() / "models/tiny-llama");
  EXL_REQUIRE_GPU_AND(root / v.folder);
  auto refs = io::TensorStore::open_file(root / "refs.safetensors");
  const auto weights = model::ModelWeights::load(root / v.folder);
  // Small chunks so that long rows are split across forward chunks too.
  auto runner = cuda::make_cuda_runner(weights, {.cache_tokens = 4096, .page_size = 64, .max_batch_tokens = 1000});
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> got = model::compute_logits(*runner, rows);
  const std::vector<float> want = refs.read_f32(v.logits);
  ASSERT_EQ(got.size(), want.size());
  const Diff d = compare(got, want);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 5e-3) << v.folder << " vs " << v.logits << " (max abs " << d.max_abs << ")";
  std::printf("[ cuda %s ] rel L2 %.3g vs %s, max abs %.3g\n", v.folder, d.rel_l2, v.logits, d.max_abs);

  const nlohmann::json ref = read_json_file(root / "refs.json");
  const double want_ppl = ref["variants"][v.key]["ppl"].get<double>();
  const auto ppl = model::perplexity(*runner, testing::read_token_rows(refs, "ppl_rows"));
  EXPECT_EQ(ppl.tokens, 16 * 255);
  EXPECT_LT(std::fabs(ppl.ppl - want_ppl) / want_ppl, 0.005) << "ppl " << ppl.ppl << " vs " << want_ppl;
  std::printf("[ cuda %s ] perplexity %.4f (reference %.4f)\n", v.folder, ppl.ppl, want_ppl);
}

// Greedy continuation through decode() (captured graph, device-side sampling) from a forward() prefill.
std::vector<int32_t> greedy(model::Runner& runner, const std::vector<int32_t>& prompt, int64_t n,
                            const model::SamplingParams& sampling = {}, std::vector<int32_t> stop = {}) {
  cache::PageAllocator alloc(runner.num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, static_cast<int64_t>(prompt.size()) + n, runner.page_size());
  if (prompt.size() > 1) {
    const model::SequenceStep step{std::span(prompt).first(prompt.size() - 1), 0, seq.pages};
    std::vector<float> logits;
    runner.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
  }
  model::DecodeRequest req;
  req.last_token = prompt.back();
  req.start_pos = static_cast<int64_t>(prompt.size()) - 1;
  req.pages = &seq.pages;
  req.max_new_tokens = n;
  req.sampling = sampling;
  req.stop_tokens = std::move(stop);
  std::vector<int32_t> out;
  const model::DecodeStats stats = runner.decode(req, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  EXPECT_EQ(stats.tokens, static_cast<int64_t>(out.size()));
  EXPECT_GT(stats.launches_per_token, 0.0);
  return out;
}

// Logit of `token` vs the top logit after prompt + prefix (to judge a divergence).
std::pair<float, float> logits_at(model::Runner& runner, std::vector<int32_t> ids, int32_t token) {
  cache::PageAllocator alloc(runner.num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, static_cast<int64_t>(ids.size()), runner.page_size());
  const model::SequenceStep step{ids, 0, seq.pages};
  std::vector<float> logits;
  runner.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
  return {*std::max_element(logits.begin(), logits.end()), logits[static_cast<size_t>(token)]};
}

class TinyLlamaCudaGreedy : public ::testing::TestWithParam<Variant> {};

// Greedy decode against the reference continuations. EXL2 layers decode on the fused one-token path (norms inside
// the GEMVs, RoPE inside attention); `tuning` (CudaRunnerOptions::tuning) runs it with other launch shapes.
void check_greedy(const Variant& v, const cuda::CudaTuning& tuning = {}) {
  const auto root = (testing::testdata_dir() / "models/tiny-llama");
  const auto weights = model::ModelWeights::load(root / v.folder);
  const auto runner = cuda::make_cuda_runner(weights, {.cache_tokens = 1024, .page_size = 16, .tuning = tuning});
  const auto tok = tokenizer::Tokenizer::from_dir(root / v.folder);
  const nlohmann::json ref = read_json_file(root / "refs.json");
  const auto& prompts = ref["prompts"];
  const auto& want_all = ref["variants"][v.key]["greedy"];
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t> prompt = tok.encode(prompts[p].get<std::string>(), tokenizer::AddSpecialTokens::kYes);
    const std::vector<int32_t> want = want_all[p].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = greedy(*runner, prompt, static_cast<int64_t>(want.size()));
    ASSERT_EQ(got.size(), want.size());
    size_t same = 0;
    while (same < want.size() && got[same] == want[same]) ++same;
    if (same < want.size()) {
      // A divergence must be a near-tie: the reference's token scores (almost) as high as ours.
      std::vector<int32_t> ids = prompt;
      ids.insert(ids.end(), want.begin(), want.begin() + static_cast<int64_t>(same));
      const auto [top, at_ref] = logits_at(*runner, ids, want[same]);
      std::printf("[ cuda %s ] prompt %zu diverges at token %zu: got %d, reference %d, logit gap %.4f\n", v.folder,
                  p, same, got[same], want[same], top - at_ref);
      EXPECT_LT(top - at_ref, 0.05f) << "prompt " << p << " token " << same << " is not a near-tie";
    } else {
      std::printf("[ cuda %s ] prompt %zu: all %zu greedy tokens match\n", v.folder, p, want.size());
    }
  }
}

TEST_P(TinyLlamaCudaGreedy, ContinuationsMatchReferences) {
  const Variant v = GetParam();
  EXL_REQUIRE_GPU_AND(testing::testdata_dir() / "models/tiny-llama" / v.folder);
  check_greedy(v);
}

// Every tunable launch knob away from its default (docs/tuning.md): the same continuations. The second set forces
// the warps of every gemv_one launch instead of the per-kind slices.
TEST_P(TinyLlamaCudaGreedy, ContinuationsMatchReferencesWithOtherTuning) {
  const Variant v = GetParam();
  EXL_REQUIRE_GPU_AND(testing::testdata_dir() / "models/tiny-llama" / v.folder);
  cuda::CudaTuning t;
  t.gemv_blocks_per_sm = 1;
  t.gemv1.slices[0] = 8;
  t.gemv1.slices[1] = 4;
  t.gemv1.slices[2] = 2;
  t.gemv1.slices[3] = 12;
  t.gemv1.l1_batches = 1;
  t.f16_gemv.batch = 4;
  t.decode_splits = 7;
  check_greedy(v, t);
  t.gemv1.warps = 3;
  t.gemv1.l1_batches = 4;
  t.f16_gemv.batch = 8;
  t.decode_splits = 64;
  check_greedy(v, t);
}

TEST(TinyLlamaCudaRunner, DecodeStopsSamplesAndRejectsBadInput) {
  const auto root = (testing::testdata_dir() / "models/tiny-llama");
  EXL_REQUIRE_GPU_AND(root / "fp16");
  const auto weights = model::ModelWeights::load(root / "fp16");
  auto runner = cuda::make_cuda_runner(weights, {.cache_tokens = 1024, .page_size = 16});
  const std::vector<int32_t> prompt = {2043, 100, 200, 300};
  const std::vector<int32_t> full = greedy(*runner, prompt, 20);
  // Stop after the first occurrence of a stop token.
  const size_t first = static_cast<size_t>(std::find(full.begin(), full.end(), full[6]) - full.begin());
  const std::vector<int32_t> stopped = greedy(*runner, prompt, 20, {}, {full[6]});
  EXPECT_EQ(stopped.size(), first + 1);
  // Seeded sampling is reproducible and in range.
  const model::SamplingParams s{0.9f, 40, 0.95f, 1234};
  const auto a = greedy(*runner, prompt, 30, s), b = greedy(*runner, prompt, 30, s);
  EXPECT_EQ(a, b);
  for (int32_t t : a) EXPECT_TRUE(t >= 0 && t < weights.config.vocab_size);
  // Out-of-range token ids.
  cache::PageAllocator alloc(runner->num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, 8, runner->page_size());
  const std::vector<int32_t> bad = {1, 2048};
  const model::SequenceStep step{bad, 0, seq.pages};
  std::vector<float> logits;
  try {
    runner->forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    FAIL() << "token 2048 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("2048"), std::string::npos) << e.what();
  }
  model::DecodeRequest req;
  req.last_token = -1;
  req.pages = &seq.pages;
  req.max_new_tokens = 1;
  EXPECT_THROW(runner->decode(req, [](int32_t) { return true; }), Error);
}

TEST(TinyLlamaCudaRunner, RefusesACacheThatDoesNotFit) {
  const auto root = (testing::testdata_dir() / "models/tiny-llama");
  EXL_REQUIRE_GPU_AND(root / "fp16");
  const auto weights = model::ModelWeights::load(root / "fp16");
  try {
    cuda::make_cuda_runner(weights, {.cache_tokens = int64_t{1} << 33, .page_size = 256});
    FAIL() << "a 2^33-token cache was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
    std::printf("[ cuda ] refusal: %s\n", e.what());
  }
}

// exl bench --skip-kernels (CudaRunnerOptions::timing_skip, timing only) leaves exactly the named launches out of
// the decode graph: one per token for "head" (an FP16 head on GPTQ layers, a fragment-ordered 6-bit head on EXL2
// layers), one per layer for "o". Random tiny models (2 layers).
TEST(RandomModelCuda, TimingSkipLeavesTheNamedLaunchesOut) {
  if (::exl::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const model::RandomFormat format : {model::RandomFormat::kGptq, model::RandomFormat::kExl2}) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("exl_skip_cuda_" + std::to_string(static_cast<int>(format)) + "_" + std::to_string(::getpid()));
    model::RandomModelOptions o;
    o.preset = "tiny";
    o.format = format;
    model::write_random_model(dir, o);
    const auto w = model::ModelWeights::load(dir);
    double launches[3] = {0, 0, 0};
    const char* skips[3] = {"", "head", "o"};
    for (int i = 0; i < 3; ++i) {
      auto runner = cuda::make_cuda_runner(w, {.cache_tokens = 64, .page_size = 16, .timing_skip = skips[i]});
      cache::PageAllocator alloc(runner->num_pages());
      cache::SequenceCache seq;
      cache::reserve_tokens(alloc, seq, 8, runner->page_size());
      model::DecodeRequest req;
      req.last_token = 3;
      req.start_pos = 0;
      req.pages = &seq.pages;
      req.max_new_tokens = 3;
      launches[i] = runner->decode(req, [](int32_t) { return true; }).launches_per_token;
    }
    EXPECT_EQ(launches[1], launches[0] - 1) << "format " << static_cast<int>(format);
    EXPECT_EQ(launches[2], launches[0] - static_cast<double>(w.layers.size())) << "format " << static_cast<int>(format);
    std::filesystem::remove_all(dir);
  }
}

// CudaRunnerOptions::tuning is range-checked when the runner is created, before it touches the device (so this
// runs without a GPU too).
TEST(RandomModelCuda, RunnerRejectsTuningOutOfRange) {
  const auto dir = std::filesystem::temp_directory_path() / ("exl_tuning_cuda_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = "tiny";
  o.format = model::RandomFormat::kExl2;
  model::write_random_model(dir, o);
  const auto w = model::ModelWeights::load(dir);
  cuda::CudaTuning t;
  t.gemv1.l1_batches = 0;
  try {
    cuda::make_cuda_runner(w, {.cache_tokens = 64, .page_size = 16, .tuning = t});
    ADD_FAILURE() << "gemv1_l1_batches = 0 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("gemv1_l1_batches = 0 is outside 1..16"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

std::string variant_name(const ::testing::TestParamInfo<Variant>& info) {
  std::string n = info.param.folder;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Variants, TinyLlamaCuda,
                         ::testing::Values(Variant{"fp16", "hf_fp32_logits", "fp16"},
                                           Variant{"exl2-2.5bpw", "exl2_2.5bpw_logits", "2.5bpw"},
                                           Variant{"exl2-4.0bpw", "exl2_4.0bpw_logits", "4.0bpw"},
                                           Variant{"exl2-6.0bpw", "exl2_6.0bpw_logits", "6.0bpw"}),
                         variant_name);
INSTANTIATE_TEST_SUITE_P(Variants, TinyLlamaCudaGreedy,
                         ::testing::Values(Variant{"fp16", "", "fp16"}, Variant{"exl2-6.0bpw", "", "6.0bpw"}),
                         variant_name);

}  // namespace
}  // namespace exl
#endif
