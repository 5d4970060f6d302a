// Thread-safe front of a Generator: one engine thread runs steps while jobs exist and sleeps on a condition
// variable otherwise. enqueue/cancel/events may be called from any thread; enqueue validates on the caller's
// thread (the errors of Generator::check) and the engine thread picks the job up before its next step. Job
// callbacks run on the engine thread; events of jobs without one go to a queue read by poll_events/wait_events.
// The destructor finishes pending jobs as kCancelled and joins the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "generator/generator.h"

namespace exl::generator {

class Engine {
 public:
  explicit Engine(StepRunner& runner, const GeneratorOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  uint64_t enqueue(JobParams params);
  // true when the job was pending and the cancel request was queued; its finish event says how it ended (a job
  // whose last token is in flight may still finish kStop or kLength). false for an unknown or finished id.
  bool cancel(uint64_t id);
  std::vector<JobEvent> poll_events();
  // Waits until events are queued or `timeout` passed; returns what is queued (possibly nothing).
  std::vector<JobEvent> wait_events(std::chrono::milliseconds timeout);
  // Blocks until no job is pending: every job enqueued before the call, and any enqueued meanwhile, has had its
  // finish event delivered, and pool_stats() was taken after the last of them.
  void wait_idle();
  int64_t num_pending() const;
  // The pool's stats after the latest step.
  PoolStats pool_stats() const;
  // The first exception a job callback threw (callbacks should not throw), or "" if none.
  std::string callback_error() const;

 private:
  struct Command {
    uint64_t id = 0;
    bool cancel = false;
    JobParams params;
  };
  void loop();
  void apply(std::vector<Command>& commands);
  JobCallback wrap(JobCallback user);

  Generator generator_;  // touched only by the engine thread, and by the destructor after it stopped
  mutable std::mutex mutex_;
  std::condition_variable work_cv_, events_cv_, idle_cv_;
  std::vector<Command> inbox_;
  std::vector<JobEvent> events_;
  std::unordered_set<uint64_t> live_;  // enqueued, final event not delivered yet
  bool stats_current_ = true;          // pool_stats_ was taken after the last final event
  uint64_t next_id_ = 1;
  bool stop_ = false;
  PoolStats pool_stats_;
  std::string callback_error_;
  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace exl::generator
