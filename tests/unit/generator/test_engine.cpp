// Engine: enqueue / cancel / events from several threads while the engine thread steps; every job gets exactly
// one finish event; outputs stay exact; the destructor finishes pending jobs as cancelled without hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "event_log.h"
#include "fake_step_runner.h"
#include "generator/engine.h"

namespace exl::generator {
namespace {

using testing::EventLog;
using testing::FakeStepRunner;

JobParams job(std::vector<int32_t> prompt, int64_t max_new) {
  JobParams p;
  p.input_ids = std::move(prompt);
  p.max_new_tokens = max_new;
  return p;
}

TEST(Engine, ThreadsSubmitAndCancelAndEveryJobFinishesOnce) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 48, .vocab_size = 500});
  constexpr int kThreads = 4, kJobsPerThread = 60;
  std::mutex log_mutex;
  EventLog callback_log;
  std::vector<std::pair<uint64_t, JobParams>> submitted;
  std::vector<uint64_t> cancel_accepted;
  EventLog queue_log;
  {
    Engine engine(fake, {.max_tokens_per_step = 32, .max_seqs_per_step = 8});
    std::atomic<bool> done_submitting{false};
    std::thread reader([&] {
      while (!done_submitting || engine.num_pending() > 0) {
        const auto events = engine.wait_events(std::chrono::milliseconds(5));
        std::lock_guard lock(log_mutex);
        queue_log.add(events);
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
        std::vector<uint64_t> mine;
        for (int i = 0; i < kJobsPerThread; ++i) {
          std::vector<int32_t> prompt(static_cast<size_t>(1 + rng() % 20));
          for (auto& x : prompt) x = static_cast<int32_t>(rng() % 500);
          JobParams p = job(prompt, static_cast<int64_t>(1 + rng() % 30));
          p.priority = static_cast<int>(rng() % 3);
          if (rng() % 2) {
            p.on_event = [&](const JobEvent& e) {
              std::lock_guard lock(log_mutex);
              callback_log.add(e);
            };
          }
          const uint64_t id = engine.enqueue(p);
          mine.push_back(id);
          {
            std::lock_guard lock(log_mutex);
            submitted.emplace_back(id, p);
          }
          if (rng() % 4 == 0) {
            const uint64_t victim = mine[rng() % mine.size()];
            if (engine.cancel(victim)) {
              std::lock_guard lock(log_mutex);
              cancel_accepted.push_back(victim);
            }
          }
          if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      });
    }
    for (auto& th : threads) th.join();
    engine.wait_idle();
    done_submitting = true;
    reader.join();
    queue_log.add(engine.poll_events());
    EXPECT_EQ(engine.num_pending(), 0);
    EXPECT_FALSE(engine.cancel(submitted.front().first));  // finished
    EXPECT_FALSE(engine.cancel(999999));
    EXPECT_EQ(engine.pool_stats().used_pages, 0);
    EXPECT_EQ(engine.callback_error(), "");
  }
  ASSERT_EQ(submitted.size(), static_cast<size_t>(kThreads * kJobsPerThread));
  int64_t cancelled = 0;
  for (const auto& [id, p] : submitted) {
    const bool via_callback = static_cast<bool>(p.on_event);
    const auto& rec = via_callback ? callback_log[id] : queue_log[id];
    EXPECT_EQ((via_callback ? queue_log : callback_log)[id].finishes, 0) << "job " << id << " in both streams";
    ASSERT_EQ(rec.finishes, 1) << "job " << id;
    const auto expected = fake.continuation(p.input_ids, p.max_new_tokens);
    if (rec.final.reason == FinishReason::kCancelled) {
      ++cancelled;
      EXPECT_NE(std::find(cancel_accepted.begin(), cancel_accepted.end(), id), cancel_accepted.end());
      ASSERT_LE(rec.tokens.size(), expected.size());
      EXPECT_EQ(rec.tokens, std::vector<int32_t>(expected.begin(), expected.begin() + rec.tokens.size()));
    } else {
      EXPECT_EQ(rec.final.reason, FinishReason::kLength);
      EXPECT_EQ(rec.tokens, expected) << "job " << id;
    }
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_TRUE(fake.violations().empty());
}

TEST(Engine, DestructorCancelsPendingJobsWithoutHanging) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 256});
  std::mutex log_mutex;
  EventLog log;
  std::vector<uint64_t> ids;
  {
    Engine engine(fake, {.max_tokens_per_step = 16});
    for (int i = 0; i < 40; ++i) {
      JobParams p = job({1, 2, 3, static_cast<int32_t>(i)}, 5000);
      p.on_event = [&](const JobEvent& e) {
        std::lock_guard lock(log_mutex);
        log.add(e);
      };
      ids.push_back(engine.enqueue(p));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(log.jobs().size(), ids.size());
  int64_t cancelled = 0;
  for (uint64_t id : ids) {
    EXPECT_EQ(log[id].finishes, 1) << "job " << id;
    const FinishReason r = log[id].final.reason;
    EXPECT_TRUE(r == FinishReason::kCancelled || r == FinishReason::kLength) << finish_reason_name(r);
    cancelled += r == FinishReason::kCancelled ? 1 : 0;
  }
  EXPECT_GT(cancelled, 0);
}

TEST(Engine, RejectsBadJobsOnTheCallersThread) {
  FakeStepRunner fake({.page_size = 4, .num_pages = 8});
  Engine engine(fake);
  EXPECT_THROW(engine.enqueue(job({}, 5)), Error);
  try {
    engine.enqueue(job(std::vector<int32_t>(40, 1), 5));
    FAIL() << "expected kOutOfMemory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("needs 11 KV pages"), std::string::npos) << e.what();
  }
  EXPECT_EQ(engine.num_pending(), 0);
  EXPECT_TRUE(engine.wait_events(std::chrono::milliseconds(1)).empty());
  const uint64_t id = engine.enqueue(job({1, 2, 3}, 4));
  engine.wait_idle();
  EventLog log;
  log.add(engine.poll_events());
  EXPECT_EQ(log[id].tokens, fake.continuation(std::vector<int32_t>{1, 2, 3}, 4));
}

TEST(Engine, SleepsWhenIdle) {
  FakeStepRunner fake;
  Engine engine(fake);
  engine.enqueue(job({1, 2, 3}, 3));
  engine.wait_idle();
  const int64_t steps = fake.steps();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(fake.steps(), steps);
  EXPECT_EQ(steps, 3);
}

TEST(Engine, ACallbackThatThrowsIsReportedAndTheJobStillFinishes) {
  FakeStepRunner fake;
  Engine engine(fake);
  std::atomic<int> finishes{0};
  JobParams p = job({1, 2, 3}, 3);
  p.on_event = [&](const JobEvent& e) {
    if (e.finished) ++finishes;
    throw Error(ErrorKind::kInternal, "callback broke");
  };
  engine.enqueue(p);
  engine.wait_idle();
  EXPECT_EQ(finishes, 1);
  EXPECT_EQ(engine.callback_error(), "callback broke");
}

}  // namespace
}  // namespace exl::generator
