#include "core/thread_pool.h"

#include <algorithm>

namespace exl {

ThreadPool::ThreadPool(unsigned num_threads) {
  if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(unsigned /*index*/) {
  unsigned seen = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    while (next_ < task_n_) {
      int64_t begin = next_;
      int64_t end = std::min(task_n_, begin + chunk_);
      next_ = end;
      const auto* task = task_;
      lock.unlock();
      try {
        (*task)(begin, end);
      } catch (...) {
        lock.lock();
        if (!error_) error_ = std::current_exception();
        lock.unlock();
      }
      lock.lock();
    }
    if (--active_ == 0) done_cv_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  int64_t chunk = std::max<int64_t>(min_chunk, (n + size() * 4 - 1) / (size() * 4));
  if (workers_.empty() || n <= chunk) {
    fn(0, n);
    return;
  }
  std::unique_lock lock(mutex_);
  task_ = &fn;
  task_n_ = n;
  chunk_ = chunk;
  next_ = 0;
  error_ = nullptr;
  active_ = static_cast<unsigned>(workers_.size()) + 1;
  ++generation_;
  start_cv_.notify_all();
  while (next_ < task_n_) {
    int64_t begin = next_;
    int64_t end = std::min(task_n_, begin + chunk_);
    next_ = end;
    lock.unlock();
    try {
      fn(begin, end);
    } catch (...) {
      lock.lock();
      if (!error_) error_ = std::current_exception();
      lock.unlock();
    }
    lock.lock();
  }
  if (--active_ != 0) done_cv_.wait(lock, [&] { return active_ == 0; });
  task_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace exl
