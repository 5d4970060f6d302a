// Every architecture on the CUDA runner: for each fixture under tests/fixtures/arch/<name>/ (a small random model
// saved by transformers and its FP32 eager logits; test_arch_fixtures_cpu.cpp describes them) whose spec the CUDA
// runner accepts (spec_support.h, and a head_dim the kernels have), the CUDA logits agree with transformers' within
// relative L2 1e-2, over whole rows and token by token through the paged cache; every fixture it does not accept is
// refused with kUnsupported when the runner is created (not a crash, not another error). Also the random tiny-gemma2
// preset (general path: post-norms, soft-capping, scaled embedding, GELU, sliding windows) against the CPU runner on
// the same weights, which needs no fixture. Skips without a GPU.
#ifdef EXL_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "backend/cpu/cpu_runner.h"
#include "backend/cuda/cuda_runner.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/spec_support.h"
#include "cache/page_allocator.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/dispatch.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "model/random_model.h"
#include "model/rope.h"
#include "reference_compare.h"
#include "arch_fixtures.h"
#include "testdata.h"

namespace exl {
namespace {

namespace fs = std::filesystem;

constexpr double kTolerance = 1e-2;  // FP16 activations and weights vs transformers' FP32

fs::path fixtures_root() { return testing::arch_fixtures_root(); }
std::vector<std::string> fixture_names() { return testing::arch_fixture_names(); }

// Empty when the CUDA runner should accept the spec; else why not (check_supported's message, or the head_dim).
std::string cuda_refusal(const model::ModelSpec& spec) {
  try {
    cuda::check_supported(spec, "fixture");
  } catch (const Error& e) {
    return e.what();
  }
  for (const auto& l : spec.layers)
    if (!kernels::head_dim_supported(l.attn.head_dim))
      return "head_dim " + std::to_string(l.attn.head_dim) + " (supported: " + kernels::kSupportedHeadDims + ")";
  return {};
}

#define EXL_REQUIRE_GPU_HERE()                                               \
  do {                                                                       \
    if (::exl::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

const cuda::CudaRunnerOptions kOptions{.cache_tokens = 512, .page_size = 16, .max_batch_tokens = 64};

class ArchCuda : public ::testing::TestWithParam<std::string> {};

// Whole rows (max_batch_tokens 64: the 80-token rows are split across forward chunks).
TEST_P(ArchCuda, LogitsMatchTransformers) {
  EXL_REQUIRE_GPU_HERE();
  const fs::path dir = fixtures_root() / GetParam();
  const auto weights = model::ModelWeights::load(dir);
  const std::string refusal = cuda_refusal(weights.spec);
  if (!refusal.empty()) GTEST_SKIP() << "refused by the CUDA runner (checked by RefusesUnsupported): " << refusal;
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> want = refs.read_f32("logits");
  auto runner = cuda::make_cuda_runner(weights, kOptions);
  const std::vector<float> got = model::compute_logits(*runner, rows);
  ASSERT_EQ(got.size(), want.size());
  const testing::Diff d = testing::compare(got, want);
  std::printf("[ cuda %s ] %s: rel L2 %.3g, max abs %.3g\n", GetParam().c_str(), weights.spec.architecture.c_str(),
              d.rel_l2, d.max_abs);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, kTolerance);
}

// A prefill chunk, then one token per step (the decode attention kernel; pages of 16, so sliding windows cross
// pages): each step's logits equal the reference at that position.
TEST_P(ArchCuda, IncrementalDecodeMatchesTransformers) {
  EXL_REQUIRE_GPU_HERE();
  const fs::path dir = fixtures_root() / GetParam();
  const auto weights = model::ModelWeights::load(dir);
  const std::string refusal = cuda_refusal(weights.spec);
  if (!refusal.empty()) GTEST_SKIP() << "refused by the CUDA runner (checked by RefusesUnsupported): " << refusal;
  for (const auto& r : weights.spec.ropes)
    if (model::rope_depends_on_length(r))
      GTEST_SKIP() << "rope type " << io::rope_type_name(r.params.type)
                   << " depends on the sequence length (see test_arch_fixtures_cpu.cpp)";
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> want = refs.read_f32("logits");
  auto runner = cuda::make_cuda_runner(weights, kOptions);
  const int64_t V = weights.spec.vocab_size;
  const std::vector<int32_t>& row = rows[0];
  const int64_t L = static_cast<int64_t>(row.size()), prefill = 37;
  cache::PageAllocator alloc(runner->num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, L, runner->page_size());
  std::vector<float> got, logits;
  const model::SequenceStep first{std::span<const int32_t>(row.data(), prefill), 0, seq.pages};
  runner->forward({&first, 1}, model::LogitsFor::kAllTokens, &logits);
  got.insert(got.end(), logits.begin(), logits.end());
  for (int64_t t = prefill; t < L; ++t) {
    const model::SequenceStep step{std::span<const int32_t>(row.data() + t, 1), t, seq.pages};
    runner->forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    got.insert(got.end(), logits.begin(), logits.end());
  }
  const std::vector<float> want_row(want.begin(), want.begin() + L * V);
  const testing::Diff d = testing::compare(got, want_row);
  std::printf("[ cuda %s ] incremental: rel L2 %.3g\n", GetParam().c_str(), d.rel_l2);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, kTolerance);
}

// What the CUDA runner has no kernels for is refused with kUnsupported when it is created.
TEST_P(ArchCuda, RefusesUnsupported) {
  EXL_REQUIRE_GPU_HERE();
  const auto weights = model::ModelWeights::load(fixtures_root() / GetParam());
  const std::string refusal = cuda_refusal(weights.spec);
  if (refusal.empty()) GTEST_SKIP() << "accepted by the CUDA runner";
  try {
    auto runner = cuda::make_cuda_runner(weights, kOptions);
    ADD_FAILURE() << GetParam() << ": created although refusing (" << refusal << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported) << e.what();
    std::printf("[ cuda %s ] refused: %s\n", GetParam().c_str(), e.what());
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, ArchCuda, ::testing::ValuesIn(fixture_names()),
                         [](const auto& param_info) { return param_info.param; });
// Until tests/fixtures/arch exists (made on the GPU machine), the suite has no instances.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ArchCuda);

// The random tiny-gemma2 preset (FP16): CUDA general path vs the CPU runner on the same weights, whole rows and one
// token at a time; and tiny-qwen3-moe refused (mixture of experts).
TEST(ArchCudaRandom, Gemma2GeneralPathMatchesCpu) {
  EXL_REQUIRE_GPU_HERE();
  const fs::path dir = fs::temp_directory_path() / ("exl_arch_cuda_gemma2_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = "tiny-gemma2";
  o.format = model::RandomFormat::kFp16;
  model::write_random_model(dir, o);
  const auto weights = model::ModelWeights::load(dir);
  ASSERT_FALSE(cuda::fast_path_ok(weights.spec));
  cpu::CpuRunner cpu_runner(weights, {.cache_tokens = 512, .page_size = 16});
  auto cuda_runner = cuda::make_cuda_runner(weights, kOptions);
  model::TokenRows rows(2);
  for (int32_t t = 0; t < 70; ++t) {
    rows[0].push_back((t * 37 + 5) % 200);
    rows[1].push_back((t * 11 + 3) % 150);
  }
  const testing::Diff d =
      testing::compare(model::compute_logits(*cuda_runner, rows), model::compute_logits(cpu_runner, rows));
  std::printf("[ cuda tiny-gemma2 ] vs cpu: rel L2 %.3g, max abs %.3g\n", d.rel_l2, d.max_abs);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, kTolerance);
  // One token per step after a prefill (decode attention with soft-capping and sliding windows).
  auto step_logits = [&](model::Runner& r) {
    cache::PageAllocator alloc(r.num_pages());
    cache::SequenceCache seq;
    cache::reserve_tokens(alloc, seq, 70, r.page_size());
    std::vector<float> all, logits;
    const model::SequenceStep first{std::span<const int32_t>(rows[0].data(), 20), 0, seq.pages};
    r.forward({&first, 1}, model::LogitsFor::kLastToken, &logits);
    all.insert(all.end(), logits.begin(), logits.end());
    for (int64_t t = 20; t < 70; ++t) {
      const model::SequenceStep step{std::span<const int32_t>(rows[0].data() + t, 1), t, seq.pages};
      r.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
  const testing::Diff inc = testing::compare(step_logits(*cuda_runner), step_logits(cpu_runner));
  std::printf("[ cuda tiny-gemma2 ] incremental vs cpu: rel L2 %.3g\n", inc.rel_l2);
  EXPECT_TRUE(inc.finite);
  EXPECT_LT(inc.rel_l2, kTolerance);
  // decode() through the captured graph (logit transforms before sampling) runs and yields valid tokens.
  cache::PageAllocator alloc(cuda_runner->num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, 40, cuda_runner->page_size());
  const model::SequenceStep prompt{std::span<const int32_t>(rows[0].data(), 9), 0, seq.pages};
  std::vector<float> logits;
  cuda_runner->forward({&prompt, 1}, model::LogitsFor::kLastToken, &logits);
  model::DecodeRequest req;
  req.last_token = rows[0][9];
  req.start_pos = 9;
  req.max_new_tokens = 20;
  req.pages = &seq.pages;
  int64_t n = 0;
  cuda_runner->decode(req, [&](int32_t token) {
    EXPECT_TRUE(token >= 0 && token < weights.spec.vocab_size) << token;
    ++n;
    return true;
  });
  EXPECT_EQ(n, 20);
  fs::remove_all(dir);
}

TEST(ArchCudaRandom, MoeIsRefused) {
  EXL_REQUIRE_GPU_HERE();
  const fs::path dir = fs::temp_directory_path() / ("exl_arch_cuda_moe_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = "tiny-qwen3-moe";
  o.format = model::RandomFormat::kExl2;
  model::write_random_model(dir, o);
  const auto weights = model::ModelWeights::load(dir);
  try {
    auto runner = cuda::make_cuda_runner(weights, kOptions);
    ADD_FAILURE() << "a mixture-of-experts model was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("mixture of experts"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace exl
#endif  // EXL_HAVE_CUDA
