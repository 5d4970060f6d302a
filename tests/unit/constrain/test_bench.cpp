// Mask timings (printed, never asserted): per token of a seeded random walk, the time of a mask computed without
// the cache (the trie walk), of mask() with the cache as a generator would call it, and of advance(). On the demo
// model's vocabulary and on the 128k Llama 3 vocabulary from the test data. docs/constrained-output.md quotes these.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>

#include "constrain_test_util.h"

namespace exl::constrain::test {
namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

struct Stats {
  std::vector<double> v;
  double mean() const {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / static_cast<double>(v.size());
  }
  double pct(double p) const {
    if (v.empty()) return 0;
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s[std::min(s.size() - 1, static_cast<size_t>(p * static_cast<double>(s.size())))];
  }
};

struct BenchCase {
  const char* name;
  Constraint constraint;
};

std::vector<BenchCase> bench_cases() {
  return {
      {"json_object", Constraint::json_object()},
      {"schema: person",
       Constraint::json_schema_text(
           R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
               "age": {"type": "integer", "minimum": 0, "maximum": 150},
               "email": {"type": "string", "format": "email"},
               "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
               "required": ["name", "age", "email", "tags"], "additionalProperties": false})")},
      {"schema: steps (OpenAI example)",
       Constraint::json_schema_text(
           R"({"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "object",
               "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
               "required": ["explanation", "output"], "additionalProperties": false}},
               "final_answer": {"type": "string"}}, "required": ["steps", "final_answer"],
               "additionalProperties": false})")},
      {"regex: [a-z ]{1,200}\\.", Constraint::regex("[a-z ]{1,200}\\.")},
  };
}

void run_bench(const char* vocab_name, const Vocabulary& vocab, int steps) {
  double load[1] = {0};
  getloadavg(load, 1);
  std::printf("vocabulary %s: %d tokens, longest %zu bytes (wall-clock times; load average %.1f on %u threads)\n",
              vocab_name, vocab.size(), vocab.max_token_length(), load[0], std::thread::hardware_concurrency());
  std::printf("  %-32s %6s | %-27s | %-27s | %-9s | %s\n", "constraint", "tokens", "uncached mask us (mean/p50/max)",
              "mask() us (mean/p50/max)", "advance", "cache hits/misses");
  for (const BenchCase& c : bench_cases()) {
    TokenMasker masker(vocab, c.constraint);
    std::mt19937_64 rng(12345);
    Stats uncached, cached, advance;
    int tokens = 0;
    for (int step = 0; step < steps && !masker.finished(); ++step) {
      auto t0 = Clock::now();
      auto fresh = masker.compute_mask_uncached();
      auto t1 = Clock::now();
      auto mask = masker.mask();
      auto t2 = Clock::now();
      uncached.v.push_back(micros(t0, t1));
      cached.v.push_back(micros(t1, t2));
      EXPECT_EQ(fresh->words(), mask->words());
      // Prefer short tokens a third of the time so the walk moves through the structure, not only strings.
      int32_t pick = -1;
      for (int attempt = 0; attempt < 16 && pick < 0; ++attempt) {
        int32_t t = nth_allowed(*mask, static_cast<int32_t>(rng() % static_cast<uint64_t>(mask->count())));
        if (vocab.kind(t) != TokenKind::kText) continue;
        if (step > steps / 2 && vocab.token_bytes(t).size() > 2 && rng() % 3 != 0) continue;
        pick = t;
      }
      if (pick < 0) break;
      auto t3 = Clock::now();
      masker.advance(pick);
      advance.v.push_back(micros(t3, Clock::now()));
      ++tokens;
    }
    auto st = masker.cache_stats();
    std::printf("  %-32s %6d | %8.1f %8.1f %9.1f | %8.1f %8.1f %9.1f | %7.1f | %llu/%llu\n", c.name, tokens,
                uncached.mean(), uncached.pct(0.5), uncached.pct(1.0), cached.mean(), cached.pct(0.5),
                cached.pct(1.0), advance.mean(), static_cast<unsigned long long>(st.hits),
                static_cast<unsigned long long>(st.misses));
  }
}

TEST(ConstrainBench, MaskTimesDemoVocabulary) { run_bench("models/demo", demo_vocabulary(), 300); }

TEST(ConstrainBench, MaskTimesLlama3Vocabulary) {
  EXL_REQUIRE_TESTDATA(large_tokenizer_dir());
  auto t0 = Clock::now();
  const Vocabulary& vocab = vocabulary_at(large_tokenizer_dir());
  std::printf("loading the tokenizer and building the vocabulary trie: %.0f ms\n", micros(t0, Clock::now()) / 1000);
  run_bench("llama3-8b", vocab, 200);
}

TEST(ConstrainBench, CompileTimes) {
  auto time = [](const char* name, auto&& make) {
    auto t0 = Clock::now();
    Constraint c = make();
    std::printf("  compile %-40s %8.2f ms, %d states, %d rules\n", name, micros(t0, Clock::now()) / 1000,
                c.num_states(), c.num_rules());
  };
  time("json_object", [] { return Constraint::json_object(); });
  time("string maxLength 1000", [] {
    return Constraint::json_schema_text(R"({"type": "string", "maxLength": 1000})");
  });
  time("object with 30 optional properties", [] {
    ojson props = ojson::object();
    for (int i = 0; i < 30; ++i) props["field_" + std::to_string(i)] = {{"type", i % 2 ? "integer" : "string"}};
    return Constraint::json_schema(ojson{{"type", "object"}, {"properties", props}});
  });
  time("email format", [] { return Constraint::json_schema_text(R"({"type": "string", "format": "email"})"); });
}

}  // namespace
}  // namespace exl::constrain::test
