// 10,000 random enqueue / cancel / step operations on a small pool (32 pages of 4 tokens) with shared prefixes,
// priorities, sampling, stop tokens and cancellations: every job ends with exactly one finish event, every job that
// was not cancelled produces exactly its deterministic continuation (so preemption and recompute are exact), a
// cancelled job produces a prefix of it, the runner's invariants hold at every step, the generator drains in a
// bounded number of steps, and the pool ends with no page referenced.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "event_log.h"
#include "fake_step_runner.h"
#include "generator/generator.h"

namespace exl::generator {
namespace {

using testing::EventLog;
using testing::FakeOptions;
using testing::FakeStepRunner;

struct StressConfig {
  uint64_t seed;
  int64_t max_tokens_per_step;
  int64_t max_seqs_per_step;
  bool prefix_caching;
};

class GeneratorStress : public ::testing::TestWithParam<StressConfig> {};

TEST_P(GeneratorStress, RandomOperationsKeepEveryInvariant) {
  const StressConfig cfg = GetParam();
  constexpr int kOperations = 10000;
  constexpr int32_t kVocab = 40;
  FakeStepRunner fake({.page_size = 4, .num_pages = 32, .max_seq_len = 200, .vocab_size = kVocab});
  Generator gen(fake, {.max_tokens_per_step = cfg.max_tokens_per_step,
                       .max_seqs_per_step = cfg.max_seqs_per_step,
                       .prefix_caching = cfg.prefix_caching});
  std::mt19937_64 rng(cfg.seed);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };

  // A few shared prefixes, some of them whole pages, so that jobs hit (and dedupe) each other's pages.
  std::vector<std::vector<int32_t>> prefixes = {{}};
  for (int i = 0; i < 5; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(uniform(3, 24)));
    for (auto& t : p) t = static_cast<int32_t>(uniform(0, kVocab - 1));
    prefixes.push_back(p);
  }

  std::map<uint64_t, JobParams> jobs;  // as checked (clamped) by the generator
  std::vector<uint64_t> cancelled_ok;  // cancel() returned true
  EventLog log;
  int64_t rejected = 0;
  for (int op = 0; op < kOperations; ++op) {
    const int64_t r = uniform(0, 99);
    if (r < 30) {
      JobParams p;
      p.input_ids = prefixes[static_cast<size_t>(uniform(0, 5))];
      const int64_t suffix = uniform(p.input_ids.empty() ? 1 : 0, 16);
      for (int64_t i = 0; i < suffix; ++i) p.input_ids.push_back(static_cast<int32_t>(uniform(0, kVocab - 1)));
      if (uniform(0, 49) == 0) p.input_ids.resize(140, 3);  // never fits: rejected, nothing else changes
      p.max_new_tokens = uniform(0, 19) == 0 ? uniform(40, 120) : uniform(1, 40);  // some get clamped to 128
      p.min_new_tokens = uniform(0, 3);
      if (uniform(0, 1)) p.stop_tokens = {0, 1};
      p.priority = static_cast<int>(uniform(0, 2));
      if (uniform(0, 1)) {
        p.sampling.temperature = 0.8f;
        p.sampling.seed = static_cast<uint64_t>(uniform(0, 1 << 20));
      }
      try {
        const JobParams checked = gen.check(p);
        const uint64_t id = gen.enqueue(p);
        jobs.emplace(id, checked);
      } catch (const Error&) {
        ++rejected;
      }
    } else if (r < 38) {
      if (jobs.empty()) continue;
      // Pending, finished or unknown ids alike.
      const uint64_t id = static_cast<uint64_t>(uniform(1, static_cast<int64_t>(jobs.rbegin()->first) + 2));
      const bool was_pending = jobs.contains(id) && !log.finished(id);
      const bool ok = gen.cancel(id);
      EXPECT_EQ(ok, was_pending) << "cancel(" << id << ")";
      if (ok) cancelled_ok.push_back(id);
    } else {
      gen.step();
    }
    log.add(gen.take_events());
    if (op % 500 == 0) gen.pool().check_invariants();
  }
  int64_t drain_steps = 0;
  while (gen.step()) {
    log.add(gen.take_events());
    ASSERT_LT(++drain_steps, 20000) << "no progress: " << gen.num_running() << " running, " << gen.num_waiting()
                                    << " waiting";
  }
  log.add(gen.take_events());

  EXPECT_TRUE(fake.violations().empty());
  EXPECT_GT(rejected, 0);
  EXPECT_GT(jobs.size(), 1000u);
  int64_t stopped = 0, cancelled = 0;
  for (const auto& [id, p] : jobs) {
    const auto& rec = log[id];
    ASSERT_EQ(rec.finishes, 1) << "job " << id;
    const auto expected = fake.continuation(p.input_ids, p.max_new_tokens, p.sampling, p.stop_tokens, p.min_new_tokens);
    ASSERT_NE(rec.final.reason, FinishReason::kError) << rec.final.error;
    if (rec.final.reason == FinishReason::kCancelled) {
      ++cancelled;
      ASSERT_LE(rec.tokens.size(), expected.size());
      EXPECT_EQ(rec.tokens, std::vector<int32_t>(expected.begin(), expected.begin() + rec.tokens.size()))
          << "job " << id;
      EXPECT_NE(std::find(cancelled_ok.begin(), cancelled_ok.end(), id), cancelled_ok.end());
    } else {
      EXPECT_EQ(rec.tokens, expected) << "job " << id;
      EXPECT_EQ(rec.final.generated_tokens, static_cast<int64_t>(rec.tokens.size()));
      const bool stop = rec.final.reason == FinishReason::kStop;
      stopped += stop ? 1 : 0;
      EXPECT_EQ(stop,
                static_cast<int64_t>(expected.size()) < p.max_new_tokens ||
                    (std::find(p.stop_tokens.begin(), p.stop_tokens.end(), expected.back()) != p.stop_tokens.end() &&
                     static_cast<int64_t>(expected.size()) - 1 >= p.min_new_tokens))
          << "job " << id;
    }
  }
  EXPECT_EQ(log.jobs().size(), jobs.size());  // no events for unknown ids
  EXPECT_GT(stopped, 0);
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(gen.stats().preemptions, 0);
  const PoolStats s = gen.pool().stats();
  if (cfg.prefix_caching) {
    EXPECT_GT(s.hit_tokens, 0);
  }
  EXPECT_EQ(s.used_pages, 0);
  EXPECT_EQ(s.free_pages + s.cached_pages, 32);
  gen.pool().check_invariants();
  for (int32_t page = 0; page < 32; ++page) EXPECT_EQ(gen.pool().refcount(page), 0);
  for (const auto& shape : fake.step_shapes()) {
    EXPECT_LE(static_cast<int64_t>(shape.size()), cfg.max_seqs_per_step);
    int64_t tokens = 0;
    for (int64_t n : shape) tokens += n;
    EXPECT_LE(tokens, cfg.max_tokens_per_step);
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, GeneratorStress,
                         ::testing::Values(StressConfig{1, 2048, 256, true}, StressConfig{2, 16, 4, true},
                                           StressConfig{3, 7, 3, true}, StressConfig{4, 64, 8, false}),
                         [](const auto& param_info) { return "seed" + std::to_string(param_info.param.seed); });

}  // namespace
}  // namespace exl::generator
