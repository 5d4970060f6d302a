// Generator over the deterministic fake runner: outputs, stop conditions, the token budget and step order,
// priorities, the prefix cache, preemption, rejections, cancellation, runner failures and text.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "event_log.h"
#include "fake_step_runner.h"
#include "generator/generator.h"
#include "testdata.h"
#include "tokenizer/tokenizer.h"

namespace exl::generator {
namespace {

using testing::EventLog;
using testing::FakeOptions;
using testing::FakeStepRunner;

std::vector<int32_t> tokens_from(int32_t first, int64_t n, int32_t vocab = 1000) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<int32_t>((first + i * 7) % vocab);
  return v;
}

JobParams job(std::vector<int32_t> prompt, int64_t max_new) {
  JobParams p;
  p.input_ids = std::move(prompt);
  p.max_new_tokens = max_new;
  return p;
}

void run(Generator& gen, EventLog& log, int64_t max_steps = 10000) {
  for (int64_t i = 0; i < max_steps && gen.step(); ++i) log.add(gen.take_events());
  log.add(gen.take_events());
  ASSERT_TRUE(gen.idle()) << "not idle after " << max_steps << " steps";
}

void expect_pool_empty(const Generator& gen) {
  const PoolStats s = gen.pool().stats();
  EXPECT_EQ(s.used_pages, 0);
  EXPECT_EQ(s.free_pages + s.cached_pages, s.num_pages);
  gen.pool().check_invariants();
}

std::string error_of(const std::function<void()>& fn, ErrorKind* kind = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "(no error)";
}

TEST(Generator, SingleJobMatchesTheDeterministicContinuation) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto prompt = tokens_from(5, 10);
  const uint64_t id = gen.enqueue(job(prompt, 12));
  EXPECT_EQ(id, 1u);
  EventLog log;
  run(gen, log);
  const auto& r = log[id];
  EXPECT_EQ(r.tokens, fake.continuation(prompt, 12));
  EXPECT_EQ(r.finishes, 1);
  EXPECT_EQ(r.final.reason, FinishReason::kLength);
  EXPECT_EQ(r.final.prompt_tokens, 10);
  EXPECT_EQ(r.final.generated_tokens, 12);
  EXPECT_GE(r.final.timings.queued_s, 0.0);
  EXPECT_GE(r.final.timings.prefill_s, 0.0);
  EXPECT_GE(r.final.timings.decode_s, 0.0);
  EXPECT_EQ(fake.steps(), 12);  // one prefill step that samples, then 11 decode steps
  EXPECT_TRUE(fake.violations().empty());
  EXPECT_FALSE(gen.step());
  expect_pool_empty(gen);
}

TEST(Generator, StopTokenEndsTheJobAfterEmittingIt) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto prompt = tokens_from(3, 9);
  const auto full = fake.continuation(prompt, 20);
  size_t k = 4;
  while (std::find(full.begin(), full.begin() + static_cast<int64_t>(k), full[k]) !=
         full.begin() + static_cast<int64_t>(k))
    ++k;  // a token that does not occur earlier
  JobParams p = job(prompt, 20);
  p.stop_tokens = {full[k], 100000};
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[id].tokens, std::vector<int32_t>(full.begin(), full.begin() + static_cast<int64_t>(k) + 1));
  EXPECT_EQ(log[id].final.reason, FinishReason::kStop);
}

TEST(Generator, MinNewTokensBlocksStopTokens) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto prompt = tokens_from(11, 5);
  const auto full = fake.continuation(prompt, 30);
  JobParams p = job(prompt, 30);
  p.stop_tokens = {full[1], full[0], 100000};  // out of the vocabulary: never blocked
  p.min_new_tokens = 2;
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  const auto expected = fake.continuation(prompt, 30, {}, p.stop_tokens, 2);
  EXPECT_EQ(log[id].tokens, expected);
  ASSERT_GE(log[id].tokens.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NE(log[id].tokens[i], full[0]);
    EXPECT_NE(log[id].tokens[i], full[1]);
  }
  // The first two draws block the stop tokens (sorted, in the vocabulary); the later ones block nothing.
  std::vector<int32_t> stops = {full[0], full[1]};
  std::ranges::sort(stops);
  ASSERT_EQ(fake.blocked_seen().size(), log[id].tokens.size());
  for (size_t i = 0; i < fake.blocked_seen().size(); ++i)
    EXPECT_EQ(fake.blocked_seen()[i], i < 2 ? stops : std::vector<int32_t>{}) << "draw " << i;
  EXPECT_TRUE(fake.violations().empty());
}

TEST(Generator, ChunkedPrefillKeepsToTheTokenBudgetAndDecodesFirst) {
  FakeStepRunner fake;
  Generator gen(fake, {.max_tokens_per_step = 8, .max_seqs_per_step = 4});
  const auto a = tokens_from(1, 3), b = tokens_from(2, 20);
  const uint64_t ia = gen.enqueue(job(a, 10));
  EventLog log;
  gen.step();  // a: whole prompt, samples
  log.add(gen.take_events());
  const uint64_t ib = gen.enqueue(job(b, 5));
  run(gen, log);
  const auto& shapes = fake.step_shapes();
  ASSERT_GE(shapes.size(), 4u);
  EXPECT_EQ(shapes[0], (std::vector<int64_t>{3}));
  // a decodes first in every step; b's 20 prompt tokens come in chunks of the remaining budget.
  EXPECT_EQ(shapes[1], (std::vector<int64_t>{1, 7}));
  EXPECT_EQ(shapes[2], (std::vector<int64_t>{1, 7}));
  EXPECT_EQ(shapes[3], (std::vector<int64_t>{1, 6}));
  for (const auto& s : shapes) EXPECT_LE(std::accumulate(s.begin(), s.end(), int64_t{0}), 8);
  EXPECT_EQ(log[ia].tokens, fake.continuation(a, 10));
  EXPECT_EQ(log[ib].tokens, fake.continuation(b, 5));
  EXPECT_TRUE(fake.violations().empty());
}

TEST(Generator, KeepsToMaxSeqsPerStep) {
  FakeStepRunner fake;
  Generator gen(fake, {.max_tokens_per_step = 64, .max_seqs_per_step = 2});
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(gen.enqueue(job(tokens_from(i, 4 + i), 6)));
  EventLog log;
  run(gen, log);
  for (const auto& s : fake.step_shapes()) EXPECT_LE(s.size(), 2u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(log[ids[i]].tokens, fake.continuation(tokens_from(i, 4 + i), 6));
}

TEST(Generator, HigherPriorityRunsFirstFifoWithin) {
  FakeStepRunner fake;
  Generator gen(fake, {.max_tokens_per_step = 64, .max_seqs_per_step = 1});
  JobParams low = job(tokens_from(1, 5), 3), high = job(tokens_from(2, 5), 3);
  high.priority = 5;
  const uint64_t a = gen.enqueue(low), b = gen.enqueue(low), c = gen.enqueue(high);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log.finish_order(), (std::vector<uint64_t>{c, a, b}));
}

TEST(Generator, PrefixCacheReusesPagesAcrossJobs) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto shared = tokens_from(7, 20);
  auto a = shared, b = shared;
  a.push_back(1);
  b.insert(b.end(), {2, 3, 4});
  EventLog log;
  const uint64_t ia = gen.enqueue(job(a, 5));
  run(gen, log);
  const int64_t tokens_before = fake.total_tokens();
  const uint64_t ib = gen.enqueue(job(b, 5));
  run(gen, log);
  EXPECT_EQ(log[ia].final.cached_tokens, 0);
  EXPECT_EQ(log[ib].final.cached_tokens, 20);
  EXPECT_EQ(fake.total_tokens() - tokens_before, 3 + 4);  // 3 prompt tokens, then 4 decode steps
  EXPECT_EQ(log[ib].tokens, fake.continuation(b, 5));
  const PoolStats s = gen.pool().stats();
  EXPECT_EQ(s.lookups, 2);
  EXPECT_EQ(s.lookup_tokens, 21 + 23);
  EXPECT_EQ(s.hit_tokens, 20);
  EXPECT_TRUE(fake.violations().empty());

  // The same prompts without the cache compute everything and give the same tokens.
  FakeStepRunner fake2;
  Generator plain(fake2, {.prefix_caching = false});
  EventLog log2;
  plain.enqueue(job(a, 5));
  run(plain, log2);
  const uint64_t ib2 = plain.enqueue(job(b, 5));
  run(plain, log2);
  EXPECT_EQ(log2[ib2].final.cached_tokens, 0);
  EXPECT_EQ(log2[ib2].tokens, log[ib].tokens);
  EXPECT_EQ(plain.pool().stats().cached_pages, 0);
  EXPECT_EQ(plain.pool().stats().hit_tokens, 0);
}

TEST(Generator, AWholeCachedPromptStillComputesItsLastPage) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto prompt = tokens_from(9, 16);  // 4 full pages
  EventLog log;
  gen.enqueue(job(prompt, 4));
  run(gen, log);
  EXPECT_EQ(gen.pool().stats().cached_pages, 4);  // 19 tokens were cached: 4 full pages
  const size_t steps_before = fake.step_shapes().size();
  const uint64_t id = gen.enqueue(job(prompt, 4));
  run(gen, log);
  EXPECT_EQ(log[id].final.cached_tokens, 12);  // at most (16 - 1) / 4 pages
  EXPECT_EQ(fake.step_shapes()[steps_before], (std::vector<int64_t>{4}));
  EXPECT_EQ(log[id].tokens, fake.continuation(prompt, 4));
  // The recomputed last page equals the cached one and was deduplicated into it.
  EXPECT_EQ(gen.pool().stats().cached_pages, 4);
  expect_pool_empty(gen);
}

TEST(Generator, RunningJobsShareTheirPrefixPages) {
  FakeStepRunner fake;
  Generator gen(fake);
  const auto prefix = tokens_from(4, 16);
  auto a = prefix, b = prefix;
  a.push_back(5);
  b.push_back(6);
  EventLog log;
  const uint64_t ia = gen.enqueue(job(a, 8));
  gen.step();  // a's pages are committed
  const uint64_t ib = gen.enqueue(job(b, 8));
  gen.step();
  // a: 5 pages (17 + 1 tokens); b shares a's 4 full pages and adds its own last page.
  EXPECT_EQ(gen.pool().stats().used_pages, 6);
  run(gen, log);
  EXPECT_EQ(log[ia].tokens, fake.continuation(a, 8));
  EXPECT_EQ(log[ib].tokens, fake.continuation(b, 8));
  EXPECT_EQ(log[ib].final.cached_tokens, 16);
  EXPECT_TRUE(fake.violations().empty());
  expect_pool_empty(gen);
}

class Preemption : public ::testing::TestWithParam<float> {};

TEST_P(Preemption, RecomputesExactlyAndEmitsNothingTwice) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 8});
  Generator gen(fake);
  std::vector<uint64_t> ids;
  std::vector<JobParams> params;
  for (int i = 0; i < 3; ++i) {
    JobParams p = job(tokens_from(100 * i + 1, 6), 20);  // 26 tokens: 7 of the 8 pages each
    p.sampling.temperature = GetParam();
    p.sampling.seed = 17 + static_cast<uint64_t>(i);
    params.push_back(p);
    ids.push_back(gen.enqueue(p));
  }
  EventLog log;
  run(gen, log);
  EXPECT_GT(gen.stats().preemptions, 0);
  int64_t preempted_jobs = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log[ids[i]].tokens, fake.continuation(params[i].input_ids, 20, params[i].sampling)) << "job " << i;
    EXPECT_EQ(log[ids[i]].final.reason, FinishReason::kLength);
    preempted_jobs += log[ids[i]].final.preemptions > 0 ? 1 : 0;
  }
  EXPECT_GT(preempted_jobs, 0);
  EXPECT_TRUE(fake.violations().empty());
  expect_pool_empty(gen);
}

INSTANTIATE_TEST_SUITE_P(GreedyAndSampled, Preemption, ::testing::Values(0.0f, 1.0f));

TEST(Generator, RejectsAJobThatCanNeverFitWithTheNumbers) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 8, .max_seq_len = 40});
  Generator gen(fake);
  const uint64_t ok = gen.enqueue(job(tokens_from(1, 10), 5));
  ErrorKind kind = ErrorKind::kInternal;
  std::string msg = error_of([&] { gen.enqueue(job(tokens_from(1, 32), 5)); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kOutOfMemory);
  EXPECT_NE(msg.find("32 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 9 KV pages of 4 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8 pages (32 tokens)"), std::string::npos) << msg;

  FakeStepRunner short_model({.page_size = 4, .num_pages = 64, .max_seq_len = 20});
  Generator gen2(short_model);
  msg = error_of([&] { gen2.enqueue(job(tokens_from(1, 20), 5)); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kInvalidArgument);
  EXPECT_NE(msg.find("needs 21 positions; the model allows 20"), std::string::npos) << msg;

  // The job that fits is unaffected.
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log.jobs().size(), 1u);
  EXPECT_EQ(log[ok].tokens, fake.continuation(tokens_from(1, 10), 5));
}

TEST(Generator, ClampsMaxNewTokensToTheModelAndTheCache) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 64, .max_seq_len = 20});
  Generator gen(fake);
  EXPECT_EQ(gen.check(job(tokens_from(1, 15), 100)).max_new_tokens, 5);
  EXPECT_EQ(gen.check(job(tokens_from(1, 15), 3)).max_new_tokens, 3);
  const uint64_t id = gen.enqueue(job(tokens_from(1, 15), 100));
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[id].tokens.size(), 5u);
  EXPECT_EQ(log[id].final.reason, FinishReason::kLength);

  FakeStepRunner small({.page_size = 4, .num_pages = 4});
  Generator gen2(small);
  EXPECT_EQ(gen2.check(job(tokens_from(1, 10), 100)).max_new_tokens, 6);
}

TEST(Generator, RejectsBadParameters) {
  FakeStepRunner fake;
  Generator gen(fake);
  EXPECT_NE(error_of([&] { gen.enqueue(job({}, 5)); }).find("input_ids is empty"), std::string::npos);
  EXPECT_NE(error_of([&] {
              gen.enqueue(job({1, 2}, 0));
            }).find("max_new_tokens must be at least 1, found 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              gen.enqueue(job({1, 1000}, 5));
            }).find("input_ids[1] = 1000 is outside the vocabulary"),
            std::string::npos);
  JobParams p = job({1, 2}, 5);
  p.min_new_tokens = -1;
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("min_new_tokens"), std::string::npos);
  p = job({1, 2}, 5);
  p.sampling.top_p = 0.0f;
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("top_p"), std::string::npos);
  p = job({1, 2}, 5);
  p.sampling.top_k = -3;
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("top_k"), std::string::npos);
  EXPECT_TRUE(gen.idle());
  EXPECT_FALSE(gen.step());
  EXPECT_EQ(fake.steps(), 0);
}

TEST(Generator, CancelFinishesPendingJobsOnceAndIgnoresOthers) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 32});
  Generator gen(fake, {.max_tokens_per_step = 64, .max_seqs_per_step = 1});
  const auto pa = tokens_from(1, 9), pb = tokens_from(2, 9);
  const uint64_t a = gen.enqueue(job(pa, 20)), b = gen.enqueue(job(pb, 20));
  EventLog log;
  for (int i = 0; i < 5; ++i) {
    gen.step();
    log.add(gen.take_events());
  }
  EXPECT_TRUE(gen.cancel(a));  // running, 5 tokens out
  EXPECT_TRUE(gen.cancel(b));  // still waiting
  log.add(gen.take_events());
  EXPECT_FALSE(gen.cancel(a));
  EXPECT_FALSE(gen.cancel(12345));
  EXPECT_TRUE(gen.idle());
  EXPECT_EQ(log[a].final.reason, FinishReason::kCancelled);
  EXPECT_EQ(log[a].tokens, fake.continuation(pa, 5));
  EXPECT_EQ(log[a].finishes, 1);
  EXPECT_EQ(log[b].final.reason, FinishReason::kCancelled);
  EXPECT_TRUE(log[b].tokens.empty());
  EXPECT_EQ(log[b].final.timings.prefill_s, 0.0);
  expect_pool_empty(gen);
  EXPECT_EQ(gen.pool().stats().cached_pages, 3);  // a's 13 cached tokens: 3 full pages stay cached
}

TEST(Generator, ARunnerFailureFinishesThatStepsJobsWithTheMessage) {
  FakeStepRunner fake;
  fake.fail_if = [](std::span<const StepSequence> seqs) {
    for (const auto& s : seqs)
      if (!s.tokens.empty() && s.tokens[0] == 999) return true;
    return false;
  };
  Generator gen(fake);
  const uint64_t bad = gen.enqueue(job({999, 1, 2}, 5)), other = gen.enqueue(job({3, 4}, 5));
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[bad].final.reason, FinishReason::kError);
  EXPECT_NE(log[bad].final.error.find("failure requested by the test"), std::string::npos) << log[bad].final.error;
  EXPECT_EQ(log[other].final.reason, FinishReason::kError);  // shared the failed step
  expect_pool_empty(gen);
  const uint64_t later = gen.enqueue(job({3, 4}, 5));
  run(gen, log);
  EXPECT_EQ(log[later].final.reason, FinishReason::kLength);
  EXPECT_EQ(log[later].tokens, fake.continuation(std::vector<int32_t>{3, 4}, 5));
}

TEST(Generator, CallbacksGetTheirJobsEventsAndMayCancel) {
  FakeStepRunner fake;
  Generator gen(fake);
  EventLog via_callback;
  uint64_t victim = 0;
  JobParams p = job(tokens_from(1, 6), 8);
  p.on_event = [&](const JobEvent& e) {
    via_callback.add(e);
    if (via_callback[e.job_id].tokens.size() == 2) {
      EXPECT_TRUE(gen.cancel(victim));
    }
  };
  const uint64_t watched = gen.enqueue(p);
  victim = gen.enqueue(job(tokens_from(2, 6), 8));
  EventLog queued;
  run(gen, queued);
  EXPECT_EQ(via_callback[watched].tokens, fake.continuation(tokens_from(1, 6), 8));
  EXPECT_EQ(via_callback.jobs().size(), 1u);
  EXPECT_EQ(queued.jobs().size(), 1u);
  EXPECT_EQ(queued[victim].final.reason, FinishReason::kCancelled);
  EXPECT_EQ(queued[victim].tokens.size(), 2u);
  expect_pool_empty(gen);
}

TEST(Generator, EveryTokenIsOneEventAndTheLastCarriesTheFinish) {
  FakeStepRunner fake;
  Generator gen(fake);
  gen.enqueue(job(tokens_from(1, 6), 4));
  std::vector<JobEvent> events;
  while (gen.step()) {
    auto e = gen.take_events();
    events.insert(events.end(), e.begin(), e.end());
  }
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(events[i].tokens.size(), 1u);
    EXPECT_EQ(events[i].finished, i == 3);
  }
}

TEST(Generator, TextDecoderStreamsTheTextOfTheTokens) {
  auto dir = exl::testing::source_dir() / "models" / "demo";
  if (!std::filesystem::exists(dir / "tokenizer.json")) dir = exl::testing::testdata_dir() / "tokenizers" / "gpt2";
  EXL_REQUIRE_TESTDATA(dir / "tokenizer.json");
  const auto tok = tokenizer::Tokenizer::from_dir(dir);
  FakeStepRunner fake({.page_size = 16, .num_pages = 64, .vocab_size = tok.vocab_size()});
  Generator gen(fake);
  const auto prompt =
      tok.encode("In the beginning God created the heaven and the earth.", tokenizer::AddSpecialTokens::kNo);
  JobParams p = job(prompt, 40);
  auto decoder = std::make_shared<tokenizer::StreamDecoder>(tok, tokenizer::SkipSpecialTokens::kNo);
  p.text.push = [decoder](int32_t t) { return decoder->push(t); };
  p.text.flush = [decoder] { return decoder->flush(); };
  const uint64_t id = gen.enqueue(p);
  JobParams broken = job(prompt, 40);
  broken.text.push = [](int32_t) -> std::string { throw Error(ErrorKind::kInvalidArgument, "no text for you"); };
  const uint64_t bad = gen.enqueue(broken);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[id].tokens.size(), 40u);
  EXPECT_EQ(log[id].text, tok.decode(log[id].tokens, tokenizer::SkipSpecialTokens::kNo));
  EXPECT_FALSE(log[id].text.empty());
  EXPECT_EQ(log[bad].final.reason, FinishReason::kError);
  EXPECT_EQ(log[bad].final.error, "text decoder: no text for you");
  expect_pool_empty(gen);
}

TEST(Generator, DestructorCancelsPendingJobsThroughTheirCallbacks) {
  FakeStepRunner fake;
  EventLog log;
  {
    Generator gen(fake);
    JobParams p = job(tokens_from(1, 6), 8);
    p.on_event = [&](const JobEvent& e) { log.add(e); };
    gen.enqueue(p);
    gen.enqueue(p);
    gen.step();
  }
  ASSERT_EQ(log.jobs().size(), 2u);
  for (const auto& [id, r] : log.jobs()) {
    EXPECT_EQ(r.finishes, 1);
    EXPECT_EQ(r.final.reason, FinishReason::kCancelled);
  }
}

TEST(Generator, RejectsBadOptions) {
  FakeStepRunner fake;
  EXPECT_THROW(Generator(fake, {.max_tokens_per_step = 0}), Error);
  EXPECT_THROW(Generator(fake, {.max_seqs_per_step = 0}), Error);
  EXPECT_THROW(Generator(fake, {.admission_reserve_pages = -1}), Error);
  FakeStepRunner one_position({.max_seq_len = 1});
  EXPECT_THROW(Generator{one_position}, Error);
}

TEST(Generator, FinishReasonNames) {
  EXPECT_EQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_EQ(finish_reason_name(FinishReason::kLength), "length");
  EXPECT_EQ(finish_reason_name(FinishReason::kCancelled), "cancelled");
  EXPECT_EQ(finish_reason_name(FinishReason::kError), "error");
}

}  // namespace
}  // namespace exl::generator
