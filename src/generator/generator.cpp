#include "generator/generator.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

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
  // A generated token whose text may still begin a stop or banned string: not yet in any event.
  struct Held {
    int32_t token = -1;
    size_t text_end = 0;      // end of its text in pending_text
    double mu_before = 0.0;   // the chain's mirostat mu before its draw (a rewind restores it)
    SampledLogprobs logprobs;  // when top_logprobs > 0
  };

  uint64_t id = 0;
  uint64_t arrival = 0;
  JobParams params;  // on_event moved to `callback`
  std::shared_ptr<const JobCallback> callback;
  std::vector<int32_t> history;  // prompt, then every sampled token not rewound
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
  int64_t cached_tokens = 0, preemptions = 0, rewinds = 0;
  Clock::time_point enqueued_at, admitted_at, first_token_at;
  // Text and stop conditions. Generated tokens [0, released) are in events; the rest are `held`, in order.
  uint64_t draws = 0;  // tokens sampled so far, rewound ones included: the next draw's sample_index
  int64_t released = 0;
  std::vector<Held> held;
  std::string pending_text;                        // the text of `held`
  std::vector<std::string> banned_lower;           // banned_strings, ASCII lower case
  std::vector<int32_t> stop_blocked;               // in-vocabulary stop tokens, sorted and distinct
  std::map<int64_t, std::vector<int32_t>> tried;   // generated position -> tokens rewound there (sorted)
  std::vector<int32_t> draw_blocked;               // the blocked tokens of the draw in flight
  double mu_before = 0.0;                          // the chain's mirostat mu before the draw in flight

  OrderKey key() const { return {-static_cast<int64_t>(params.priority), arrival}; }
  int64_t generated() const { return static_cast<int64_t>(history.size()) - prompt_len; }
  int64_t remaining() const { return static_cast<int64_t>(history.size()) - cached; }
  bool has_strings() const { return !params.stop_strings.empty() || !params.banned_strings.empty(); }
  size_t text_start(size_t i) const { return i == 0 ? 0 : held[i - 1].text_end; }
  // The held token whose text holds pending_text[offset] (held.size() past the end).
  size_t owner(size_t offset) const {
    size_t i = 0;
    while (i < held.size() && held[i].text_end <= offset) ++i;
    return i;
  }
  // Moves a held index back over the held tokens right before it that gave no text of their own (an incomplete
  // UTF-8 sequence that a later token completed, say): text from held[i] on began with them.
  size_t silent_start(size_t i) const {
    while (i > 0 && held[i - 1].text_end == text_start(i - 1)) --i;
    return i;
  }
  // A stop string ending at pending_text offset `end` counts once min_new_tokens tokens came before the token that
  // completed it (text past the held tokens, from the final flush, belongs to the last token).
  bool counts_as_stop(size_t end) const {
    const int64_t position = std::min(released + static_cast<int64_t>(owner(end - 1)), generated() - 1);
    return position >= params.min_new_tokens;
  }
  // The tokens the draw at generated `position` must not return: stop tokens before min_new_tokens and the tokens
  // rewound at that position.
  void build_blocked(int64_t position) {
    draw_blocked.clear();
    if (position < params.min_new_tokens) draw_blocked = stop_blocked;
    if (const auto it = tried.find(position); it != tried.end()) {
      draw_blocked.insert(draw_blocked.end(), it->second.begin(), it->second.end());
      std::ranges::sort(draw_blocked);
      draw_blocked.erase(std::unique(draw_blocked.begin(), draw_blocked.end()), draw_blocked.end());
    }
  }
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

constexpr size_t kNone = std::string::npos;

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The earliest offset x at which text[x, end) is a proper prefix of one of the needles (kNone if none): text from
// x on may still become one of them.
size_t earliest_partial(std::string_view text, const std::vector<std::string>& needles) {
  size_t best = kNone;
  for (const std::string& needle : needles) {
    const size_t from = text.size() >= needle.size() ? text.size() - needle.size() + 1 : 0;
    for (size_t x = from; x < text.size() && x < best; ++x) {
      if (std::string_view(needle).starts_with(text.substr(x))) {
        best = x;
        break;
      }
    }
  }
  return best;
}

struct Found {
  size_t pos = kNone;
  size_t index = 0;  // which needle
};

// The earliest occurrence in `text` of one of the needles whose end satisfies `counts`; at one offset the shorter
// needle, then the one listed first.
template <class Counts>
Found earliest_full(std::string_view text, const std::vector<std::string>& needles, const Counts& counts) {
  Found best;
  for (size_t i = 0; i < needles.size(); ++i) {
    const std::string& needle = needles[i];
    size_t pos = text.find(needle);
    while (pos != kNone && !counts(pos + needle.size())) pos = text.find(needle, pos + 1);
    if (pos == kNone) continue;
    if (best.pos == kNone || pos < best.pos || (pos == best.pos && needle.size() < needles[best.index].size()))
      best = Found{pos, i};
  }
  return best;
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
  EXL_CHECK(params.top_logprobs >= 0, kInvalidArgument, "job: top_logprobs must be 0 (off) or positive, found {}",
            params.top_logprobs);
  for (size_t i = 0; i < params.stop_strings.size(); ++i)
    EXL_CHECK(!params.stop_strings[i].empty(), kInvalidArgument,
              "job: stop_strings[{}] is empty; expected at least one character", i);
  for (size_t i = 0; i < params.banned_strings.size(); ++i)
    EXL_CHECK(!params.banned_strings[i].empty(), kInvalidArgument,
              "job: banned_strings[{}] is empty; expected at least one character", i);
  EXL_CHECK(params.stop_strings.empty() || params.text.push, kInvalidArgument,
            "job: {} stop_strings need a text decoder (JobParams::text.push), found none", params.stop_strings.size());
  EXL_CHECK(params.banned_strings.empty() || (params.text.push && params.text.reset), kInvalidArgument,
            "job: {} banned_strings need a text decoder with push and reset (JobParams::text), found {}",
            params.banned_strings.size(), params.text.push ? "push without reset" : "none");
  if (params.min_new_tokens > 0) {
    std::vector<int32_t> stops;
    for (const int32_t t : params.stop_tokens)
      if (t >= 0 && t < vocab_size_) stops.push_back(t);
    std::ranges::sort(stops);
    const auto distinct = std::distance(stops.begin(), std::unique(stops.begin(), stops.end()));
    EXL_CHECK(distinct < vocab_size_, kInvalidArgument,
              "job: min_new_tokens = {} blocks the stop tokens, which are the whole vocabulary ({} tokens); expected "
              "at least one other token",
              params.min_new_tokens, vocab_size_);
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
  for (const int32_t t : params.stop_tokens)
    if (t >= 0 && t < vocab_size_) job->stop_blocked.push_back(t);
  std::ranges::sort(job->stop_blocked);
  job->stop_blocked.erase(std::unique(job->stop_blocked.begin(), job->stop_blocked.end()), job->stop_blocked.end());
  for (const std::string& b : params.banned_strings) job->banned_lower.push_back(ascii_lower(b));
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
  outputs_.assign(plan_.size(), SampleOutput{});
  size_t num_samples = 0;
  for (size_t i = 0; i < plan_.size(); ++i) {
    const Scheduled& s = plan_[i];
    check_writable(s);
    Job* job = s.job;
    std::span<const int32_t> blocked;
    if (s.sample) {
      job->build_blocked(job->generated());
      blocked = job->draw_blocked;
      job->mu_before = job->sampler ? job->sampler->mirostat_mu() : 0.0;
    }
    seqs_.push_back(
        StepSequence{.tokens = std::span<const int32_t>(job->history)
                                   .subspan(static_cast<size_t>(job->cached), static_cast<size_t>(s.num_tokens)),
                     .start_pos = job->cached,
                     .pages = job->pages,
                     .sample = s.sample,
                     .sampling = job->params.sampling,
                     .sample_index = job->draws,
                     .sampler = job->sampler.get(),
                     .context = job->history,
                     .blocked = blocked,
                     .top_logprobs = s.sample ? job->params.top_logprobs : 0,
                     .output = s.sample ? &outputs_[i] : nullptr});
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
    for (size_t i = 0; i < plan_.size(); ++i) {
      const Scheduled& s = plan_[i];
      Job* job = s.job;
      job->cached += s.num_tokens;
      stats_.computed_tokens += s.num_tokens;
      commit_pages(job);
      if (s.sample) on_token(job, sampled_[next_sample++], outputs_[i]);
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

void Generator::on_token(Job* job, int32_t token, const SampleOutput& output) {
  if (token < 0 || token >= vocab_size_) {
    finish(job, FinishReason::kError,
           output.error.empty()
               ? fmt::format("step runner: sampled token {} is outside the vocabulary [0, {})", token, vocab_size_)
               : "sampler: " + output.error);
    return;
  }
  Job::Held held{.token = token, .text_end = 0, .mu_before = job->mu_before, .logprobs = {}};
  if (job->params.top_logprobs > 0) {
    if (!output.has_logprobs) {
      finish(job, FinishReason::kError,
             fmt::format("step runner: expected the log-probabilities of sampled token {} (top_logprobs = {}), the "
                         "runner reported none",
                         token, job->params.top_logprobs));
      return;
    }
    held.logprobs = SampledLogprobs{.token = token, .logprob = output.logprob, .top = output.top};
  }
  ++job->draws;
  job->history.push_back(token);
  ++stats_.sampled_tokens;
  if (!job->sampled_any) {
    job->sampled_any = true;
    job->first_token_at = Clock::now();
  }
  std::optional<std::string> decoder_error;
  if (job->params.text.push) {
    try {
      job->pending_text += job->params.text.push(token);
    } catch (const std::exception& e) {
      decoder_error = std::string("text decoder: ") + e.what();
    }
  }
  held.text_end = job->pending_text.size();
  job->held.push_back(std::move(held));
  if (decoder_error) {
    finish(job, FinishReason::kError, *decoder_error);
    return;
  }
  if (job->has_strings()) {
    if (check_strings(job)) return;  // finished by a stop string, or rewound
  } else {
    release(job, job->held.size(), job->pending_text.size());
  }
  const int64_t generated = job->generated();
  const auto& stops = job->params.stop_tokens;
  if (generated - 1 >= job->params.min_new_tokens && std::ranges::find(stops, token) != stops.end())
    finish(job, FinishReason::kStop, {});
  else if (generated >= job->params.max_new_tokens)
    finish(job, FinishReason::kLength, {});
}

bool Generator::check_strings(Job* job) {
  const std::string& text = job->pending_text;
  const std::string lower = job->banned_lower.empty() ? std::string() : ascii_lower(text);
  const Found banned = earliest_full(lower, job->banned_lower, [](size_t) { return true; });
  const Found stop =
      earliest_full(text, job->params.stop_strings, [job](size_t end) { return job->counts_as_stop(end); });
  if (banned.pos != kNone && (stop.pos == kNone || banned.pos < stop.pos)) {
    rewind(job, job->silent_start(job->owner(banned.pos)));
    return true;
  }
  if (stop.pos != kNone) {
    release(job, job->held.size(), stop.pos);
    event_of(job).stop_string = job->params.stop_strings[stop.index];
    finish(job, FinishReason::kStop, {}, /*flush_text=*/false);
    return true;
  }
  // Hold back from the first token whose text may still become a stop or banned string; without one, only the
  // trailing tokens that gave no text yet. With banned strings, any held token may be rewound and replaced, so the
  // text kept before the held tokens must not be able to begin a string either: repeat on the shorter text.
  size_t keep = job->silent_start(job->held.size());
  for (;;) {
    const size_t end = job->text_start(keep);
    const size_t hold = std::min(earliest_partial(std::string_view(text).substr(0, end), job->params.stop_strings),
                                 earliest_partial(std::string_view(lower).substr(0, end), job->banned_lower));
    if (hold == kNone) break;
    keep = job->silent_start(job->owner(hold));
    if (job->banned_lower.empty()) break;  // nothing rewinds: the text before the held tokens is final
  }
  release(job, keep, job->text_start(keep));
  return false;
}

void Generator::release(Job* job, size_t count, size_t text_end) {
  if (count == 0 && text_end == 0) return;
  JobEvent& event = event_of(job);
  for (size_t i = 0; i < count; ++i) {
    Job::Held& h = job->held[i];
    event.tokens.push_back(h.token);
    if (job->params.top_logprobs > 0) event.logprobs.push_back(std::move(h.logprobs));
  }
  event.text.append(job->pending_text, 0, text_end);
  // Text of the released tokens past text_end (after a stop string) is dropped with them.
  const size_t drop = count == job->held.size() ? job->pending_text.size() : job->text_start(count);
  job->pending_text.erase(0, drop);
  job->held.erase(job->held.begin(), job->held.begin() + static_cast<int64_t>(count));
  for (Job::Held& h : job->held) h.text_end -= drop;
  job->released += static_cast<int64_t>(count);
  job->tried.erase(job->tried.begin(), job->tried.lower_bound(job->released));  // never drawn again
}

void Generator::rewind(Job* job, size_t first_dropped) {
  const int64_t position = job->released + static_cast<int64_t>(first_dropped);
  const Job::Held& first = job->held[first_dropped];
  std::vector<int32_t>& tried = job->tried[position];
  tried.insert(std::ranges::lower_bound(tried, first.token), first.token);
  job->tried.erase(job->tried.upper_bound(position), job->tried.end());  // drawn after another prefix
  if (job->sampler) job->sampler->set_mirostat_mu(first.mu_before);
  job->pending_text.resize(job->text_start(first_dropped));
  job->held.resize(first_dropped);
  shrink_cache(job, job->prompt_len + position);
  ++job->rewinds;
  ++stats_.rewinds;
  // The decoder goes back to its state after the kept tokens: reset, then the kept tokens again, text discarded.
  try {
    job->params.text.reset();
    for (int64_t i = job->prompt_len; i < static_cast<int64_t>(job->history.size()); ++i)
      job->params.text.push(job->history[static_cast<size_t>(i)]);
  } catch (const std::exception& e) {
    finish(job, FinishReason::kError, std::string("text decoder: ") + e.what());
    return;
  }
  job->build_blocked(position);
  if (static_cast<int64_t>(job->draw_blocked.size()) >= vocab_size_) {
    const size_t stops = position < job->params.min_new_tokens ? job->stop_blocked.size() : 0;
    finish(job, FinishReason::kError,
           fmt::format("banned strings: every token of the vocabulary ({}) is blocked at generated position {} "
                       "({} tokens began a banned string there, {} stop tokens are blocked before min_new_tokens)",
                       vocab_size_, position, job->tried[position].size(), stops));
  }
}

void Generator::shrink_cache(Job* job, int64_t new_len) {
  job->history.resize(static_cast<size_t>(new_len));
  // The last kept token is computed again: its logits give the new draw.
  int64_t cached = std::min(job->cached, new_len - 1);
  // A committed (hashed, maybe shared) page is never written: recompute from its start in a fresh page instead.
  const int64_t page = cached / page_size_;
  if (page < static_cast<int64_t>(job->page_hashes.size())) cached = page * page_size_;
  const auto keep = static_cast<size_t>(pages_for(cached));
  while (job->pages.size() > keep) {
    pool_.release(job->pages.back());
    job->pages.pop_back();
  }
  if (job->page_hashes.size() > keep) job->page_hashes.resize(keep);
  job->cached = cached;
}

void Generator::finish(Job* job, FinishReason reason, const std::string& error, bool flush_text) {
  release_pages(job);
  if (job->running)
    std::erase(running_, job);
  else
    waiting_.erase(job->key());
  const auto now = Clock::now();
  JobEvent& event = event_of(job);
  std::string message = error;
  if (flush_text && job->params.text.flush) {
    try {
      job->pending_text += job->params.text.flush();
    } catch (const std::exception& e) {
      if (reason != FinishReason::kError) {
        reason = FinishReason::kError;
        message = std::string("text decoder: ") + e.what();
      }
    }
  }
  // Held tokens go out now. Their text (and the flushed rest) still ends before a stop or banned string in it.
  size_t cut = job->pending_text.size();
  if (job->has_strings()) {
    const Found banned = earliest_full(ascii_lower(job->pending_text), job->banned_lower, [](size_t) { return true; });
    const Found stop = earliest_full(job->pending_text, job->params.stop_strings,
                                     [job](size_t end) { return job->counts_as_stop(end); });
    if (banned.pos != kNone) cut = banned.pos;
    if (stop.pos != kNone && stop.pos <= cut) {
      cut = stop.pos;
      if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
        reason = FinishReason::kStop;
        event.stop_string = job->params.stop_strings[stop.index];
      }
    }
  }
  release(job, job->held.size(), cut);
  event.finished = true;
  event.reason = reason;
  event.error = message;
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
  event.rewinds = job->rewinds;
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
