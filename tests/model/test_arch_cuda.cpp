// Every architecture on the CUDA runner: for each fixture under tests/fixtures/arch/<name>/ (a small random model
// saved by transformers and its FP32 eager logits; test_arch_fixtures_cpu.cpp describes them) whose spec the CUDA
// runner accepts (spec_support.h, and a head_dim the kernels have), the CUDA logits agree with transformers' within
// relative L2 1e-2, over whole rows and token by token through the paged cache; every fixture it does not accept is
// refused with kUnsupported when the runner is created (not a crash, not another error). Also random presets against
// the CPU runner on the same weights (tiny-gemma2: the general path's post-norms, soft-capping, scaled embedding,
// GELU, sliding windows; tiny-qwen2 / tiny-qwen3: the fused path's biases and q/k norms; tiny-qwen3-moe: experts in
// EXL2, GPTQ and FP16), and ExLlamaV2's arch-exl2 files against transformers. Skips without a GPU.
#ifdef EXL_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
  if (!refusal.empty()) GTEST_SKIP() << "refused by the CUDA runner (checked by CreatedOrRefusedByName): " << refusal;
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
  if (!refusal.empty()) GTEST_SKIP() << "refused by the CUDA runner (checked by CreatedOrRefusedByName): " << refusal;
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

// The runner is created exactly for the specs cuda_refusal accepts; what it has no kernels for is refused with
// kUnsupported when it is created.
TEST_P(ArchCuda, CreatedOrRefusedByName) {
  EXL_REQUIRE_GPU_HERE();
  const auto weights = model::ModelWeights::load(fixtures_root() / GetParam());
  const std::string refusal = cuda_refusal(weights.spec);
  if (refusal.empty()) {
    EXPECT_NO_THROW(cuda::make_cuda_runner(weights, kOptions)) << GetParam();
    return;
  }
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

// Random presets against the CPU runner on the same weights (no fixture needed): whole rows (max_batch_tokens 64:
// several chunks; MoE steps of more than 64 (token, expert) slots group their tokens by expert on the host), one token
// at a time after a prefill (the fused one-token path for tiny-qwen2 / tiny-qwen3 in EXL2 and GPTQ; the device-routed
// expert GEMVs for tiny-qwen3-moe), and decode() through the captured graph.
struct RandomCase {
  const char* preset;
  model::RandomFormat format;
  bool fast_path;  // expected cuda::fast_path_ok of the spec
};

std::string random_case_name(const RandomCase& c) {
  std::string n = c.preset;
  std::replace(n.begin(), n.end(), '-', '_');
  return n + (c.format == model::RandomFormat::kExl2 ? "_exl2" : c.format == model::RandomFormat::kGptq ? "_gptq" : "_fp16");
}

class ArchCudaRandom : public ::testing::TestWithParam<RandomCase> {};

TEST_P(ArchCudaRandom, MatchesCpu) {
  EXL_REQUIRE_GPU_HERE();
  const RandomCase& c = GetParam();
  const std::string name = random_case_name(c);
  const fs::path dir = fs::temp_directory_path() / ("exl_arch_cuda_" + name + "_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = c.preset;
  o.format = c.format;
  model::write_random_model(dir, o);
  const auto weights = model::ModelWeights::load(dir);
  ASSERT_EQ(cuda::fast_path_ok(weights.spec), c.fast_path) << cuda::fast_path_refusal(weights.spec);
  cpu::CpuRunner cpu_runner(weights, {.cache_tokens = 512, .page_size = 16});
  auto cuda_runner = cuda::make_cuda_runner(weights, kOptions);
  model::TokenRows rows(2);
  for (int32_t t = 0; t < 70; ++t) {
    rows[0].push_back((t * 37 + 5) % 200);
    rows[1].push_back((t * 11 + 3) % 150);
  }
  const testing::Diff d =
      testing::compare(model::compute_logits(*cuda_runner, rows), model::compute_logits(cpu_runner, rows));
  std::printf("[ cuda %s ] vs cpu: rel L2 %.3g, max abs %.3g\n", name.c_str(), d.rel_l2, d.max_abs);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, kTolerance);
  // One token per step after a prefill.
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
  std::printf("[ cuda %s ] incremental vs cpu: rel L2 %.3g\n", name.c_str(), inc.rel_l2);
  EXPECT_TRUE(inc.finite);
  EXPECT_LT(inc.rel_l2, kTolerance);
  // decode() through the captured graph: greedy tokens, each the argmax of the CPU's logits at that step (or within
  // a near tie of it).
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
  std::vector<int32_t> tokens;
  cuda_runner->decode(req, [&](int32_t token) {
    tokens.push_back(token);
    return true;
  });
  ASSERT_EQ(tokens.size(), 20u);
  cache::PageAllocator calloc(cpu_runner.num_pages());
  cache::SequenceCache cseq;
  cache::reserve_tokens(calloc, cseq, 40, cpu_runner.page_size());
  std::vector<int32_t> seqv(rows[0].begin(), rows[0].begin() + 10);
  int64_t near_ties = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const model::SequenceStep step{std::span<const int32_t>(seqv.data(), seqv.size()), 0, cseq.pages};
    cpu_runner.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    const auto best = std::max_element(logits.begin(), logits.end());
    ASSERT_TRUE(tokens[i] >= 0 && tokens[i] < weights.spec.vocab_size) << tokens[i];
    if (tokens[i] != static_cast<int32_t>(best - logits.begin())) {
      // fp16 activations may swap a near tie; anything else is a bug.
      EXPECT_LT(*best - logits[static_cast<size_t>(tokens[i])], 2e-2f * (std::fabs(*best) + 1.0f)) << "step " << i;
      ++near_ties;
    }
    seqv.push_back(tokens[i]);
  }
  std::printf("[ cuda %s ] decode: %zu tokens, %lld near ties with the cpu argmax\n", name.c_str(), tokens.size(),
              static_cast<long long>(near_ties));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Presets, ArchCudaRandom,
    ::testing::Values(RandomCase{"tiny-gemma2", model::RandomFormat::kFp16, false},
                      RandomCase{"tiny-qwen2", model::RandomFormat::kExl2, true},
                      RandomCase{"tiny-qwen2", model::RandomFormat::kGptq, true},
                      RandomCase{"tiny-qwen3", model::RandomFormat::kExl2, true},
                      RandomCase{"tiny-qwen3-moe", model::RandomFormat::kExl2, false},
                      RandomCase{"tiny-qwen3-moe", model::RandomFormat::kGptq, false},
                      RandomCase{"tiny-qwen3-moe", model::RandomFormat::kFp16, false}),
    [](const auto& param_info) { return random_case_name(param_info.param); });

// ExLlamaV2's EXL2 files of other architectures (../shared/testdata/models/arch-exl2): CUDA logits within 1e-2 of
// transformers on exactly the file's weights, whole rows and token by token (qwen2: q/k/v biases on the fused
// one-token path; mixtral: the device-routed expert GEMVs and, whole rows, the host-grouped experts).
class ArchExl2Cuda : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchExl2Cuda, LogitsMatchTransformersOnTheFileWeights) {
  EXL_REQUIRE_GPU_HERE();
  const fs::path dir = testing::testdata_dir() / "models/arch-exl2" / GetParam();
  EXL_REQUIRE_TESTDATA(dir);
  const auto refs = io::TensorStore::open_file(dir / "refs.safetensors");
  const auto rows = testing::read_token_rows(refs, "input_ids");
  const std::vector<float> want = refs.read_f32("hf_on_exl2_weights_logits");
  const auto weights = model::ModelWeights::load(dir);
  auto runner = cuda::make_cuda_runner(weights, kOptions);
  const testing::Diff d = testing::compare(model::compute_logits(*runner, rows), want);
  std::printf("[ cuda arch-exl2 %s ] rel L2 vs transformers %.3g\n", GetParam().c_str(), d.rel_l2);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, kTolerance);
  // Token by token after a prefill of 37, row 0.
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
  const testing::Diff inc = testing::compare(got, std::vector<float>(want.begin(), want.begin() + L * V));
  std::printf("[ cuda arch-exl2 %s ] incremental: rel L2 %.3g\n", GetParam().c_str(), inc.rel_l2);
  EXPECT_TRUE(inc.finite);
  EXPECT_LT(inc.rel_l2, kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Files, ArchExl2Cuda, ::testing::Values("qwen2", "phi3", "mixtral"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace exl
#endif  // EXL_HAVE_CUDA
