// Quantized KV cache formats on the CPU runner (cache/kv_format.h): perplexity of tiny-llama (FP16 and EXL2 4.0 bpw)
// on the first 4 rows of 512 tokens of eval_text.txt (tokenized with the model's tokenizer, no special tokens) with
// each cache format, against the FP16 cache (printed: perplexity, its relative difference, mean KL divergence); the
// default format (fp32) changes nothing; a quantized cache does not depend on how a sequence is cut into forward
// passes; head_dim must suit the format. docs/kv-cache.md records the numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_runner.h"
#include "cache/kv_format.h"
#include "cache/page_allocator.h"
#include "core/error.h"
#include "core/json_util.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "reference_compare.h"
#include "testdata.h"
#include "tokenizer/tokenizer.h"

namespace exl {
namespace {

using cache::KvFormat;
using exl::testing::testdata_dir;

constexpr int64_t kRowLength = 512;
constexpr size_t kRows = 4;

model::TokenRows eval_rows(const std::filesystem::path& model_dir, const std::filesystem::path& text_file) {
  const auto tok = tokenizer::Tokenizer::from_dir(model_dir);
  model::TokenRows rows = model::split_rows(tok.encode(read_text_file(text_file), tokenizer::AddSpecialTokens::kNo),
                                            kRowLength);
  EXPECT_GE(rows.size(), kRows) << text_file;
  rows.resize(std::min(rows.size(), kRows));
  return rows;
}

std::vector<float> logits_with(const model::ModelWeights& weights, KvFormat format, const model::TokenRows& rows) {
  cpu::CpuRunner runner(weights, {.cache_tokens = 4096, .kv_format = format});
  return model::compute_logits(runner, rows);
}

// Log-softmax of one row of logits, in double.
std::vector<double> log_softmax(const float* l, int64_t vocab) {
  const double mx = *std::max_element(l, l + vocab);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(l[i]) - mx);
  const double lse = std::log(sum) + mx;
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[static_cast<size_t>(i)] = static_cast<double>(l[i]) - lse;
  return out;
}

struct Score {
  double ppl = 0.0;  // over every next-token prediction, as model::perplexity
  double kl = 0.0;   // mean KL(reference || this) of the next-token distributions over every position
};

Score score(const std::vector<float>& logits, const std::vector<float>& reference, const model::TokenRows& rows,
            int64_t vocab) {
  const int64_t len = static_cast<int64_t>(rows[0].size());
  double nll = 0.0, kl = 0.0;
  int64_t predicted = 0, positions = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int64_t t = 0; t < len; ++t) {
      const size_t at = (r * static_cast<size_t>(len) + static_cast<size_t>(t)) * static_cast<size_t>(vocab);
      const std::vector<double> lp = log_softmax(logits.data() + at, vocab);
      const std::vector<double> ref = log_softmax(reference.data() + at, vocab);
      for (int64_t i = 0; i < vocab; ++i) kl += std::exp(ref[i]) * (ref[i] - lp[i]);
      ++positions;
      if (t + 1 < len) {
        nll -= lp[static_cast<size_t>(rows[r][static_cast<size_t>(t + 1)])];
        ++predicted;
      }
    }
  }
  return {std::exp(nll / static_cast<double>(predicted)), kl / static_cast<double>(positions)};
}

struct Bound {
  KvFormat format;
  double issue_ppl;  // the relative perplexity difference the issue asks for
  double ppl;        // what this test asserts (see the comment above the loop)
  double kl;
};

struct Variant {
  const char* folder;
};

class KvFormatsPerplexity : public ::testing::TestWithParam<Variant> {};

TEST_P(KvFormatsPerplexity, QuantizedCachesAgainstFp16Cache) {
  const auto root = testdata_dir() / "models/tiny-llama";
  const auto dir = root / GetParam().folder;
  EXL_REQUIRE_TESTDATA(dir);
  EXL_REQUIRE_TESTDATA(root / "eval_text.txt");
  const auto weights = model::ModelWeights::load(dir);
  const model::TokenRows rows = eval_rows(dir, root / "eval_text.txt");
  ASSERT_EQ(rows.size(), kRows);
  const int64_t vocab = weights.config.vocab_size;

  const std::vector<float> fp16 = logits_with(weights, KvFormat::kFp16, rows);
  const Score base = score(fp16, fp16, rows, vocab);
  {
    // The scoring here is model::perplexity's (checked on the first row).
    const model::TokenRows first(rows.begin(), rows.begin() + 1);
    const std::vector<float> first_logits(fp16.begin(), fp16.begin() + kRowLength * vocab);
    cpu::CpuRunner runner(weights, {.cache_tokens = 4096, .kv_format = KvFormat::kFp16});
    const double want = model::perplexity(runner, first).ppl;
    EXPECT_NEAR(score(first_logits, first_logits, first, vocab).ppl, want, 1e-9 * want);
  }
  std::printf("[ %s ] %zu rows x %lld tokens; cache fp16: ppl %.4f\n", GetParam().folder, rows.size(),
              static_cast<long long>(kRowLength), base.ppl);

  // The issue's bounds (relative perplexity difference 1.5% Q4, 0.3% Q6, 0.1% Q8) need more predictions than the
  // 2044 this test can afford: here a 4-bit store moves the perplexity by a small increase plus noise of about +-1%
  // (the EXL2 model's Q4 lands at +2.3%, its Q6 at +0.7%), while over 32 rows (16352 predictions) both models meet all
  // three bounds (docs/kv-cache.md: Q4 +0.53% / +0.58%, Q6 +0.05% / +0.04%, Q8 +0.02% / +0.00%). So the test
  // asserts the issue's bound for Q8, which holds here too, loose perplexity bounds for Q6 and Q4 that catch a broken
  // codec, and the mean KL divergence from the FP16 cache's distributions, which is stable, at about 1.2 times the
  // measured values.
  for (const Bound& b : {Bound{KvFormat::kQ8, 0.001, 0.001, 3.5e-4}, Bound{KvFormat::kQ6, 0.003, 0.015, 0.042},
                         Bound{KvFormat::kQ4, 0.015, 0.035, 0.092}}) {
    const Score s = score(logits_with(weights, b.format, rows), fp16, rows, vocab);
    const double rel = s.ppl / base.ppl - 1.0;
    std::printf("[ %s ] cache %s: ppl %.4f (%+.3f%% vs fp16 cache; issue bound %.1f%%: %s), KL %.2e\n",
                GetParam().folder, std::string(cache::kv_format_name(b.format)).c_str(), s.ppl, 100.0 * rel,
                100.0 * b.issue_ppl, std::fabs(rel) <= b.issue_ppl ? "met" : "NOT met", s.kl);
    EXPECT_LE(std::fabs(rel), b.ppl) << cache::kv_format_name(b.format);
    EXPECT_LE(s.kl, b.kl) << cache::kv_format_name(b.format);
    EXPECT_GT(s.kl, 0.0) << cache::kv_format_name(b.format);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, KvFormatsPerplexity, ::testing::Values(Variant{"fp16"}, Variant{"exl2-4.0bpw"}),
                         [](const auto& param_info) {
                           std::string n = param_info.param.folder;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(KvFormatsCpu, DefaultIsFp32AndBitIdentical) {
  EXPECT_EQ(cpu::CpuRunnerOptions{}.kv_format, KvFormat::kFp32);
  const auto root = testdata_dir() / "models/tiny-llama";
  EXL_REQUIRE_TESTDATA(root / "fp16");
  const auto weights = model::ModelWeights::load(root / "fp16");
  model::TokenRows rows(2, std::vector<int32_t>(200));
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t t = 0; t < rows[r].size(); ++t) rows[r][t] = static_cast<int32_t>((r * 977 + t * 131 + 7) % 2000);
  cpu::CpuRunner plain(weights, {.cache_tokens = 1024});
  EXPECT_EQ(plain.kv_format(), KvFormat::kFp32);
  const std::vector<float> a = model::compute_logits(plain, rows);
  const std::vector<float> b = logits_with(weights, KvFormat::kFp32, rows);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()), 0);
  // The other formats do change the numbers.
  const std::vector<float> c = logits_with(weights, KvFormat::kFp16, rows);
  EXPECT_NE(std::memcmp(a.data(), c.data(), sizeof(float) * a.size()), 0);
}

TEST(KvFormatsCpu, QuantizedCacheDoesNotDependOnChunking) {
  // Each token's keys and values are stored once, so a sequence run in one pass or in three reads the same cache:
  // the logits of the last chunk agree up to the summation order of the linear layers.
  const auto root = testdata_dir() / "models/tiny-llama";
  EXL_REQUIRE_TESTDATA(root / "fp16");
  const auto weights = model::ModelWeights::load(root / "fp16");
  std::vector<int32_t> tokens(300);
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<int32_t>((t * 389 + 11) % 2000);
  for (KvFormat f : {KvFormat::kQ4, KvFormat::kQ6}) {
    cpu::CpuRunner runner(weights, {.cache_tokens = 1024, .kv_format = f});
    cache::PageAllocator allocator(runner.num_pages());
    cache::SequenceCache whole, chunked;
    cache::reserve_tokens(allocator, whole, 300, runner.page_size());
    cache::reserve_tokens(allocator, chunked, 300, runner.page_size());
    std::vector<float> all, part;
    const model::SequenceStep one{tokens, 0, whole.pages};
    runner.forward({&one, 1}, model::LogitsFor::kAllTokens, &all);
    const std::span<const int32_t> span(tokens);
    const int64_t cuts[] = {0, 100, 257, 300};
    for (int i = 0; i < 3; ++i) {
      const auto chunk = span.subspan(static_cast<size_t>(cuts[i]), static_cast<size_t>(cuts[i + 1] - cuts[i]));
      const model::SequenceStep step{chunk, cuts[i], chunked.pages};
      runner.forward({&step, 1}, model::LogitsFor::kAllTokens, &part);
    }
    const int64_t vocab = weights.config.vocab_size;
    const std::vector<float> tail(all.end() - static_cast<int64_t>(part.size()), all.end());
    const testing::Diff d = testing::compare(part, tail);
    EXPECT_TRUE(d.finite);
    EXPECT_LT(d.rel_l2, 1e-5) << cache::kv_format_name(f);
    EXPECT_EQ(static_cast<int64_t>(part.size()), (300 - 257) * vocab);
  }
}

TEST(KvFormatsCpu, QuantizedCacheNeedsHeadDimMultipleOf32) {
  const auto dir = testing::source_dir() / "tests/fixtures/arch/llama_hd48";
  EXL_REQUIRE_TESTDATA(dir);
  const auto weights = model::ModelWeights::load(dir);
  try {
    cpu::CpuRunner runner(weights, {.cache_tokens = 256, .kv_format = KvFormat::kQ4});
    ADD_FAILURE() << "a q4 cache with head_dim 48 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("48"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(cpu::CpuRunner(weights, {.cache_tokens = 256, .kv_format = KvFormat::kFp16}));
}

}  // namespace
}  // namespace exl
