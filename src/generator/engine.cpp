#include "generator/engine.h"

#include <exception>
#include <utility>

#include "core/error.h"

namespace exl::generator {

Engine::Engine(StepRunner& runner, const GeneratorOptions& options)
    : generator_(runner, options), pool_stats_(generator_.pool().stats()), thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
  // The engine thread is gone: jobs it never picked up join the generator only to be finished.
  std::vector<Command> commands = std::exchange(inbox_, {});
  try {
    apply(commands);
    generator_.finish_all(FinishReason::kCancelled);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

uint64_t Engine::enqueue(JobParams params) {
  params = generator_.check(std::move(params));
  params.on_event = wrap(std::move(params.on_event));
  uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    EXL_CHECK(!stop_, kInvalidArgument, "Engine: enqueue during shutdown");
    id = next_id_++;
    live_.insert(id);
    inbox_.push_back(Command{id, false, std::move(params)});
  }
  work_cv_.notify_one();
  return id;
}

bool Engine::cancel(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    if (!live_.contains(id)) return false;
    inbox_.push_back(Command{id, true, {}});
  }
  work_cv_.notify_one();
  return true;
}

std::vector<JobEvent> Engine::poll_events() {
  std::lock_guard lock(mutex_);
  return std::exchange(events_, {});
}

std::vector<JobEvent> Engine::wait_events(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  events_cv_.wait_for(lock, timeout, [this] { return !events_.empty(); });
  return std::exchange(events_, {});
}

void Engine::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return live_.empty() && stats_current_; });
}

int64_t Engine::num_pending() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(live_.size());
}

PoolStats Engine::pool_stats() const {
  std::lock_guard lock(mutex_);
  return pool_stats_;
}

std::string Engine::callback_error() const {
  std::lock_guard lock(mutex_);
  return callback_error_;
}

JobCallback Engine::wrap(JobCallback user) {
  return [this, user = std::move(user)](const JobEvent& event) {
    if (user) {
      try {
        user(event);
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex_);
        if (callback_error_.empty()) callback_error_ = e.what();
      }
    }
    {
      std::lock_guard lock(mutex_);
      if (!user) events_.push_back(event);
      if (event.finished) {
        live_.erase(event.job_id);
        stats_current_ = false;  // the engine thread refreshes pool_stats_ after this step, then wakes wait_idle
      }
    }
    if (!user) events_cv_.notify_all();
  };
}

void Engine::apply(std::vector<Command>& commands) {
  for (Command& c : commands) {
    if (c.cancel) {
      generator_.cancel(c.id);
      continue;
    }
    JobCallback callback = c.params.on_event;
    try {
      generator_.enqueue(c.id, std::move(c.params));
    } catch (const std::exception& e) {  // checked in enqueue(); reported like any failure of the job
      JobEvent event;
      event.job_id = c.id;
      event.finished = true;
      event.reason = FinishReason::kError;
      event.error = e.what();
      callback(event);
    }
  }
}

void Engine::loop() {
  bool busy = false;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || busy || !inbox_.empty(); });
    if (stop_) return;
    std::vector<Command> commands = std::exchange(inbox_, {});
    lock.unlock();
    try {
      apply(commands);
      generator_.step();
    } catch (const std::exception& e) {
      // Not a runner failure (step() reports those per job): the generator's state cannot be trusted, so every
      // job ends here with the message.
      try {
        generator_.finish_all(FinishReason::kError, std::string("generator: ") + e.what());
      } catch (...) {  // NOLINT(bugprone-empty-catch): nothing more can be reported
      }
    }
    busy = !generator_.idle();
    const PoolStats stats = generator_.pool().stats();
    lock.lock();
    pool_stats_ = stats;
    stats_current_ = true;
    idle_cv_.notify_all();
  }
}

}  // namespace exl::generator
