// Continuous batching over a paged KV cache with prefix caching. Each step() schedules, within a token budget,
// first one decode token for every running job, then prefill chunks of partially prefilled jobs, then admits
// waiting jobs (highest priority first, FIFO within a priority) while their chunk's pages are available; it runs the
// step on the StepRunner and turns sampled tokens into events. When pages run out for a running job, the youngest
// running job (lowest priority, latest arrival) is preempted: its pages are released (full ones stay cached) and it
// waits at the front of its priority to recompute its prompt and generated tokens, then continues. Text that may
// begin a stop or banned string is held back; a completed banned string rewinds the job (its history, KV length
// and pages) to the token where it began and draws again there with that token blocked (docs/generator.md).
//
// Single threaded: call everything from one thread (Engine, engine.h, is the thread-safe front). Job callbacks run
// inside step() and cancel(); they may call enqueue() and cancel(), not step().
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "generator/block_pool.h"
#include "generator/job.h"
#include "generator/step_runner.h"

namespace exl::generator {

struct GeneratorOptions {
  int64_t max_tokens_per_step = 2048;  // token budget of one step (decode tokens + prefill chunks)
  int64_t max_seqs_per_step = 256;     // sequences in one step
  bool prefix_caching = true;          // false: no page is hashed, shared or kept after its job
  // Admitting a job must leave this many available pages per running job (their next pages); 0: admit while the
  // chunk fits, at the risk of preempting the new job in the next step.
  int64_t admission_reserve_pages = 1;
};

struct GeneratorStats {
  int64_t steps = 0;
  int64_t computed_tokens = 0;  // tokens fed to the runner (prefill, recompute and decode)
  int64_t sampled_tokens = 0;
  int64_t preemptions = 0;
  int64_t rewinds = 0;  // banned-string rewinds
};

class Generator {
 public:
  explicit Generator(StepRunner& runner, const GeneratorOptions& options = {});
  // Jobs still pending finish as kCancelled (their callbacks run here; queued events are dropped).
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Validates a job against the runner's limits and returns it with max_new_tokens clamped to
  // min(max_seq_len, cache tokens) - prompt. kInvalidArgument for an empty prompt, max_new_tokens < 1, token ids
  // outside the vocabulary or bad sampling parameters, or a prompt + 1 beyond max_seq_len; kOutOfMemory for a
  // prompt + 1 that needs more pages than the whole cache has. Reads only constants: safe from any thread.
  JobParams check(JobParams params) const;
  // Queues a job (after check()); returns its id (ids count up from 1).
  uint64_t enqueue(JobParams params);
  // Queues a job under a caller-chosen id, which must not be pending.
  void enqueue(uint64_t id, JobParams params);
  // Finishes a pending job as kCancelled; false (and nothing happens) for an unknown or finished id.
  bool cancel(uint64_t id);
  // Finishes every pending job with `reason` (and `error` for kError).
  void finish_all(FinishReason reason, const std::string& error = {});

  // Runs one step; false when there was nothing to do. An exception from the runner finishes the jobs of that step
  // as kError; one from a job callback is rethrown after every event of the step was delivered.
  bool step();
  void run_until_idle();
  bool idle() const { return jobs_.empty(); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }

  // Events of jobs without a callback, in the order they happened; clears the queue.
  std::vector<JobEvent> take_events();
  const BlockPool& pool() const { return pool_; }
  const GeneratorStats& stats() const { return stats_; }
  const GeneratorOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  using OrderKey = std::pair<int64_t, uint64_t>;  // (-priority, arrival): smaller runs first
  struct Job;
  struct Scheduled {
    Job* job;
    int64_t num_tokens;
    bool sample;
  };
  struct Delivery {
    std::shared_ptr<const JobCallback> callback;
    JobEvent event;
  };
  struct StepState;

  int64_t pages_for(int64_t num_tokens) const { return (num_tokens + page_size_ - 1) / page_size_; }
  void schedule_running(Job* job, StepState& state);
  bool try_admit(Job* job, StepState& state);
  void preempt(Job* job);
  void allocate_pages(Job* job, int64_t num_tokens);
  void check_writable(const Scheduled& s) const;
  void commit_pages(Job* job);
  void on_token(Job* job, int32_t token, const SampleOutput& output);
  bool check_strings(Job* job);
  void release(Job* job, size_t count, size_t text_end);
  void rewind(Job* job, size_t first_dropped);
  void shrink_cache(Job* job, int64_t new_len);
  void finish(Job* job, FinishReason reason, const std::string& error, bool flush_text = true);
  JobEvent& event_of(Job* job);
  void release_pages(Job* job);
  void deliver();

  StepRunner& runner_;
  GeneratorOptions options_;
  int64_t page_size_, num_pages_, max_seq_len_, vocab_size_;
  BlockPool pool_;
  std::unordered_map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::map<OrderKey, Job*> waiting_;
  std::vector<Job*> running_;
  uint64_t next_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t step_serial_ = 0;   // marks the jobs a step scheduled
  uint64_t event_serial_ = 1;  // events created between two deliveries are merged per job
  GeneratorStats stats_;
  std::vector<Delivery> pending_;  // events to deliver
  std::vector<JobEvent> queue_;    // delivered events of jobs without a callback
  bool in_step_ = false;
  bool delivering_ = false;
  // Per-step scratch, kept to reuse its allocations.
  std::vector<Scheduled> plan_;
  std::vector<StepSequence> seqs_;
  std::vector<int32_t> sampled_;
  std::vector<SampleOutput> outputs_;
};

}  // namespace exl::generator
