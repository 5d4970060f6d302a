#include "generator/generator.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <string>

#include "core/error.h"

namespace exl::generator {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

struct Generator::Job {
  uint64_t id = 0;
  uint64_t arrival = 0;
  JobParams params;  // on_event moved to `callback`
  std::shared_ptr<const JobCallback> callback;
  std::vector<int32_t> history;  // prompt, then every sampled token
  std::unique_ptr<sampling::Sampler> sampler;  // JobParams::sampler (its mirostat state lives here)
  int64_t prompt_len = 0;
  int64_t cached = 0;                 // tokens of history whose K/V are in `pages`
  std::vector<int32_t> pages;         // block table
  std::vector<uint64_t> page_hashes;  // chained hashes of the committed full pages, pages[0, size)
  bool running = false;               // holds pages (admitted and not preempted since)
  uint64_t scheduled_step = 0;        // the step that last scheduled it
  uint64_t event_serial = 0;          // pending_[event_index] is its event while this equals event_serial_
  size_t event_index = 0;
  bool admitted = false, sampled_any = false;
  int64_t cached_tokens = 0, preemptions = 0;
  Clock::time_point enqueued_at, admitted_at, first_token_at;

  OrderKey key() const { return {-static_cast<int64_t>(params.priority), arrival}; }
  int64_t generated() const { return static_cast<int64_t>(history.size()) - prompt_len; }
  int64_t remaining() const { return static_cast<int64_t>(history.size()) - cached; }
};

struct Generator::StepState {
  int64_t budget = 0;
  int64_t slots = 0;
  bool preempted = false;
  std::vector<Job*> order;  // running jobs at the start of the step, oldest first
};

namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Generator::Generator(StepRunner& runner, const GeneratorOptions& options)
    : runner_(runner),
      options_(options),
      page_size_(runner.page_size()),
      num_pages_(runner.num_pages()),
      max_seq_len_(runner.max_seq_len()),
      vocab_size_(runner.vocab_size()),
      pool_(num_pages_, page_size_) {
  EXL_CHECK(options.max_tokens_per_step >= 1, kInvalidArgument,
            "Generator: max_tokens_per_step must be at least 1, found {}", options.max_tokens_per_step);
  EXL_CHECK(options.max_seqs_per_step >= 1, kInvalidArgument,
            "Generator: max_seqs_per_step must be at least 1, found {}", options.max_seqs_per_step);
  EXL_CHECK(options.admission_reserve_pages >= 0, kInvalidArgument,
            "Generator: admission_reserve_pages must not be negative, found {}", options.admission_reserve_pages);
  EXL_CHECK(max_seq_len_ >= 2, kInvalidArgument, "Generator: the runner's max_seq_len must be at least 2, found {}",
            max_seq_len_);
  EXL_CHECK(vocab_size_ >= 1, kInvalidArgument, "Generator: the runner's vocab_size must be positive, found {}",
            vocab_size_);
}

Generator::~Generator() {
  try {
    finish_all(FinishReason::kCancelled);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; callbacks were told not to
  }
}

JobParams Generator::check(JobParams params) const {
  const int64_t n = static_cast<int64_t>(params.input_ids.size());
  EXL_CHECK(n > 0, kInvalidArgument, "job: input_ids is empty; expected at least one prompt token");
  EXL_CHECK(params.max_new_tokens >= 1, kInvalidArgument, "job: max_new_tokens must be at least 1, found {}",
            params.max_new_tokens);
  EXL_CHECK(params.min_new_tokens >= 0, kInvalidArgument, "job: min_new_tokens must not be negative, found {}",
            params.min_new_tokens);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = params.input_ids[static_cast<size_t>(i)];
    EXL_CHECK(t >= 0 && t < vocab_size_, kInvalidArgument, "job: input_ids[{}] = {} is outside the vocabulary [0, {})",
              i, t, vocab_size_);
  }
  if (params.sampler) {
    params.sampler->validate();
    params.sampler->validate_for_vocab(vocab_size_);
  }
  const model::SamplingParams& s = params.sampling;
  EXL_CHECK(std::isfinite(s.temperature), kInvalidArgument, "job: sampling temperature must be finite, found {}",
            s.temperature);
  EXL_CHECK(s.top_k >= 0, kInvalidArgument, "job: sampling top_k must be 0 (off) or positive, found {}", s.top_k);
  EXL_CHECK(s.top_p > 0.0f && s.top_p <= 1.0f, kInvalidArgument, "job: sampling top_p must be in (0, 1], found {}",
            s.top_p);
  EXL_CHECK(n + 1 <= max_seq_len_, kInvalidArgument,
            "job: a prompt of {} tokens plus one generated token needs {} positions; the model allows {} "
            "(max_seq_len)",
            n, n + 1, max_seq_len_);
  const int64_t pages = pages_for(n + 1);
  EXL_CHECK(pages <= num_pages_, kOutOfMemory,
            "job: a prompt of {} tokens plus one generated token needs {} KV pages of {} tokens; the whole cache has "
            "{} pages ({} tokens)",
            n, pages, page_size_, num_pages_, num_pages_ * page_size_);
  const int64_t limit = std::min(max_seq_len_, num_pages_ * page_size_);
  params.max_new_tokens = std::min(params.max_new_tokens, limit - n);
  return params;
}

uint64_t Generator::enqueue(JobParams params) {
  const uint64_t id = next_id_;
  enqueue(id, std::move(params));
  return id;
}

void Generator::enqueue(uint64_t id, JobParams params) {
  EXL_CHECK(!jobs_.contains(id), kInvalidArgument, "Generator: job id {} is already pending", id);
  params = check(std::move(params));
  auto job = std::make_unique<Job>();
  job->id = id;
  job->arrival = next_arrival_++;
  if (params.on_event) job->callback = std::make_shared<const JobCallback>(std::move(params.on_event));
  params.on_event = nullptr;
  if (params.sampler) job->sampler = std::make_unique<sampling::Sampler>(*params.sampler);
  job->history = params.input_ids;
  job->prompt_len = static_cast<int64_t>(params.input_ids.size());
  job->params = std::move(params);
  job->enqueued_at = Clock::now();
  waiting_.emplace(job->key(), job.get());
  jobs_.emplace(id, std::move(job));
  next_id_ = std::max(next_id_, id + 1);
}

bool Generator::cancel(uint64_t id) {
  EXL_CHECK(!in_step_, kInvalidArgument, "Generator: cancel({}) called from inside a step (from a text decoder?)", id);
  const auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  finish(it->second.get(), FinishReason::kCancelled, {});
  deliver();
  return true;
}

void Generator::finish_all(FinishReason reason, const std::string& error) {
  EXL_CHECK(!in_step_, kInvalidArgument, "Generator: finish_all() called from inside a step (from a text decoder?)");
  std::vector<Job*> all;
  for (auto& [id, job] : jobs_) all.push_back(job.get());
  std::ranges::sort(all, [](const Job* a, const Job* b) { return a->arrival < b->arrival; });
  for (Job* job : all) finish(job, reason, error);
  deliver();
}

std::vector<JobEvent> Generator::take_events() {
  return std::exchange(queue_, {});
}

void Generator::run_until_idle() {
  while (step()) {
  }
}

bool Generator::step() {
  EXL_CHECK(!in_step_ && !delivering_, kInvalidArgument,
            "Generator: step() called from inside a step (from a job callback?)");
  if (jobs_.empty()) return false;
  struct InStep {
    bool& flag;
    explicit InStep(bool& f) : flag(f) { flag = true; }
    ~InStep() { flag = false; }
  } in_step(in_step_);
  ++step_serial_;
  StepState st;
  st.budget = options_.max_tokens_per_step;
  st.slots = options_.max_seqs_per_step;
  st.order = running_;
  std::ranges::sort(st.order, [](const Job* a, const Job* b) { return a->key() < b->key(); });
  plan_.clear();
  // Decode tokens first, then the chunks of jobs still prefilling, oldest first within each.
  for (const bool decode : {true, false}) {
    for (Job* job : st.order) {
      if (st.budget == 0 || st.slots == 0) break;
      if (!job->running || job->scheduled_step == step_serial_ || (job->remaining() == 1) != decode) continue;
      schedule_running(job, st);
    }
  }
  // Admission stops at the first waiting job that does not fit (no overtaking), and after any preemption.
  while (!st.preempted && st.budget > 0 && st.slots > 0 && !waiting_.empty())
    if (!try_admit(waiting_.begin()->second, st)) break;
  EXL_CHECK(!plan_.empty(), kInternal, "Generator: {} jobs pending ({} running) but none could be scheduled",
            jobs_.size(), running_.size());

  seqs_.clear();
  size_t num_samples = 0;
  for (const Scheduled& s : plan_) {
    check_writable(s);
    Job* job = s.job;
    seqs_.push_back(
        StepSequence{.tokens = std::span<const int32_t>(job->history)
                                   .subspan(static_cast<size_t>(job->cached), static_cast<size_t>(s.num_tokens)),
                     .start_pos = job->cached,
                     .pages = job->pages,
                     .sample = s.sample,
                     .sampling = job->params.sampling,
                     .sample_index = static_cast<uint64_t>(job->generated()),
                     .sampler = job->sampler.get(),
                     .context = job->history});
    num_samples += s.sample ? 1 : 0;
  }
  sampled_.clear();
  std::optional<std::string> failure;
  try {
    runner_.step(seqs_, &sampled_);
    if (sampled_.size() != num_samples)
      failure = fmt::format("expected {} sampled tokens, the runner returned {}", num_samples, sampled_.size());
  } catch (const std::exception& e) {
    failure = e.what();
  }
  ++stats_.steps;
  if (failure) {
    for (const Scheduled& s : plan_) finish(s.job, FinishReason::kError, "step runner: " + *failure);
  } else {
    size_t next_sample = 0;
    for (const Scheduled& s : plan_) {
      Job* job = s.job;
      job->cached += s.num_tokens;
      stats_.computed_tokens += s.num_tokens;
      commit_pages(job);
      if (s.sample) on_token(job, sampled_[next_sample++]);
    }
  }
  in_step_ = false;
  deliver();
  return true;
}

void Generator::schedule_running(Job* job, StepState& st) {
  const int64_t remaining = job->remaining();
  int64_t n = std::min(remaining, st.budget);
  for (;;) {
    const int64_t held = static_cast<int64_t>(job->pages.size());
    const int64_t available = pool_.available_pages();
    if (pages_for(job->cached + n) - held <= available) break;
    if (remaining > 1) {  // a prefill chunk shrinks to the pages there are
      const int64_t fit = (held + available) * page_size_ - job->cached;
      if (fit >= 1) {
        n = fit;
        break;
      }
    }
    // The youngest job not yet scheduled in this step gives its pages up, possibly this one.
    Job* victim = nullptr;
    for (auto it = st.order.rbegin(); it != st.order.rend() && victim == nullptr; ++it)
      if ((*it)->running && (*it)->scheduled_step != step_serial_) victim = *it;
    preempt(victim);
    st.preempted = true;
    if (victim == job) return;
  }
  allocate_pages(job, n);
  job->scheduled_step = step_serial_;
  plan_.push_back(Scheduled{job, n, n == remaining});
  st.budget -= n;
  --st.slots;
}

bool Generator::try_admit(Job* job, StepState& st) {
  const int64_t len = static_cast<int64_t>(job->history.size());
  PrefixMatch match;
  // At most (len - 1) / page_size pages: the last token is always computed, its logits give the next token.
  if (options_.prefix_caching) match = pool_.match_prefix(job->history, (len - 1) / page_size_);
  const int64_t matched = static_cast<int64_t>(match.pages.size());
  const int64_t cached = matched * page_size_;
  const int64_t remaining = len - cached;
  // Room for the running jobs to grow, so that admitting this one does not force a preemption at once.
  const int64_t reserve = options_.admission_reserve_pages * static_cast<int64_t>(running_.size());
  const int64_t available = pool_.available_pages() - match.unreferenced - reserve;
  int64_t n = std::min(remaining, st.budget);
  if (pages_for(cached + n) - matched > available) n = available * page_size_;
  if (n < 1) return false;
  if (options_.prefix_caching) pool_.acquire(match, len);
  job->pages = std::move(match.pages);
  job->page_hashes = std::move(match.hashes);
  job->cached = cached;
  if (!job->admitted) {
    job->admitted = true;
    job->admitted_at = Clock::now();
    job->cached_tokens = cached;
  }
  waiting_.erase(job->key());
  running_.push_back(job);
  job->running = true;
  allocate_pages(job, n);
  job->scheduled_step = step_serial_;
  plan_.push_back(Scheduled{job, n, n == remaining});
  st.budget -= n;
  --st.slots;
  return true;
}

void Generator::preempt(Job* job) {
  release_pages(job);
  job->cached = 0;
  job->running = false;
  std::erase(running_, job);
  waiting_.emplace(job->key(), job);
  ++job->preemptions;
  ++stats_.preemptions;
}

void Generator::allocate_pages(Job* job, int64_t num_tokens) {
  const int64_t need = pages_for(job->cached + num_tokens);
  while (static_cast<int64_t>(job->pages.size()) < need) job->pages.push_back(pool_.allocate());
}

void Generator::check_writable(const Scheduled& s) const {
  const Job* job = s.job;
  for (int64_t i = job->cached / page_size_; i < pages_for(job->cached + s.num_tokens); ++i) {
    const int32_t page = job->pages[static_cast<size_t>(i)];
    EXL_CHECK(pool_.refcount(page) == 1 && !pool_.is_hashed(page), kInternal,
              "Generator: job {} would write page {} (refcount {}, {}), expected a private page", job->id, page,
              pool_.refcount(page), pool_.is_hashed(page) ? "cached" : "not cached");
  }
}

void Generator::commit_pages(Job* job) {
  if (!options_.prefix_caching) return;
  for (size_t i = job->page_hashes.size(); static_cast<int64_t>(i + 1) * page_size_ <= job->cached; ++i) {
    const uint64_t parent = i == 0 ? BlockPool::kRootHash : job->page_hashes[i - 1];
    const auto tokens = std::span<const int32_t>(job->history)
                            .subspan(i * static_cast<size_t>(page_size_), static_cast<size_t>(page_size_));
    uint64_t hash = 0;
    job->pages[i] = pool_.commit_full(job->pages[i], parent, tokens, &hash);
    job->page_hashes.push_back(hash);
  }
}

void Generator::on_token(Job* job, int32_t token) {
  if (token < 0 || token >= vocab_size_) {
    finish(job, FinishReason::kError,
           fmt::format("step runner: sampled token {} is outside the vocabulary [0, {})", token, vocab_size_));
    return;
  }
  job->history.push_back(token);
  ++stats_.sampled_tokens;
  if (!job->sampled_any) {
    job->sampled_any = true;
    job->first_token_at = Clock::now();
  }
  {
    JobEvent& event = event_of(job);
    event.tokens.push_back(token);
    if (job->params.text.push) {
      try {
        event.text += job->params.text.push(token);
      } catch (const std::exception& e) {
        finish(job, FinishReason::kError, std::string("text decoder: ") + e.what());
        return;
      }
    }
  }
  const int64_t generated = job->generated();
  const auto& stops = job->params.stop_tokens;
  if (generated - 1 >= job->params.min_new_tokens && std::ranges::find(stops, token) != stops.end())
    finish(job, FinishReason::kStop, {});
  else if (generated >= job->params.max_new_tokens)
    finish(job, FinishReason::kLength, {});
}

void Generator::finish(Job* job, FinishReason reason, const std::string& error) {
  release_pages(job);
  if (job->running)
    std::erase(running_, job);
  else
    waiting_.erase(job->key());
  const auto now = Clock::now();
  JobEvent& event = event_of(job);
  event.finished = true;
  event.reason = reason;
  event.error = error;
  if (job->params.text.flush) {
    try {
      event.text += job->params.text.flush();
    } catch (const std::exception& e) {
      if (reason != FinishReason::kError) {
        event.reason = FinishReason::kError;
        event.error = std::string("text decoder: ") + e.what();
      }
    }
  }
  JobTimings& t = event.timings;
  if (!job->admitted) {
    t.queued_s = seconds_between(job->enqueued_at, now);
  } else {
    t.queued_s = seconds_between(job->enqueued_at, job->admitted_at);
    t.prefill_s = seconds_between(job->admitted_at, job->sampled_any ? job->first_token_at : now);
    if (job->sampled_any) t.decode_s = seconds_between(job->first_token_at, now);
  }
  event.prompt_tokens = job->prompt_len;
  event.generated_tokens = job->generated();
  event.cached_tokens = job->cached_tokens;
  event.preemptions = job->preemptions;
  jobs_.erase(job->id);
}

JobEvent& Generator::event_of(Job* job) {
  if (job->event_serial != event_serial_) {
    pending_.push_back(Delivery{job->callback, JobEvent{}});
    pending_.back().event.job_id = job->id;
    job->event_serial = event_serial_;
    job->event_index = pending_.size() - 1;
  }
  return pending_[job->event_index].event;
}

void Generator::release_pages(Job* job) {
  // Last page first: the LRU then evicts a sequence's tail before the prefix other requests are likelier to share.
  for (auto it = job->pages.rbegin(); it != job->pages.rend(); ++it) pool_.release(*it);
  job->pages.clear();
  job->page_hashes.clear();
  job->cached = 0;
}

void Generator::deliver() {
  if (delivering_) return;  // a callback's cancel() or enqueue(): the loop below picks its events up
  delivering_ = true;
  std::exception_ptr first_error;
  while (!pending_.empty()) {
    std::vector<Delivery> batch = std::exchange(pending_, {});
    ++event_serial_;
    for (Delivery& d : batch) {
      if (!d.callback) {
        queue_.push_back(std::move(d.event));
        continue;
      }
      try {
        (*d.callback)(d.event);
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
  }
  delivering_ = false;
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace exl::generator
