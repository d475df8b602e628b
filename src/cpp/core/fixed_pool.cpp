#include "fixed_pool.h"

#include <new>

#include "fork_guard.h"

namespace hbm {

FixedPool::FixedPool(int max_threads) : max_threads_(max_threads < 1 ? 1 : max_threads) {
  threads_.reserve(static_cast<size_t>(max_threads_));
}

// Never destroyed, like the Scheduler: their threads may outlive static destruction.
FixedPool& FixedPool::completions() {
  static FixedPool* pool = [] {
    on_fork_child([] { completions().reset_after_fork(); });
    return new FixedPool(kCompletionThreads);
  }();
  return *pool;
}

FixedPool& FixedPool::device_waits() {
  static FixedPool* pool = [] {
    on_fork_child([] { device_waits().reset_after_fork(); });
    return new FixedPool(kDeviceWaitThreads);
  }();
  return *pool;
}

int FixedPool::threads() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(threads_.size());
}

bool FixedPool::post(PoolJob* job) noexcept {
  {
    std::lock_guard lock(mu_);
    if (idle_ <= queued_ && static_cast<int>(threads_.size()) < max_threads_ && !stop_) {
      try {
        threads_.emplace_back([this] { loop(); });
      } catch (...) {
        // No thread (or no memory for one) to spare: the existing ones take the job, if any.
      }
    }
    if (threads_.empty()) return false;
    job->next_ = nullptr;
    (tail_ ? tail_->next_ : head_) = job;
    tail_ = job;
    ++queued_;
  }
  cv_.notify_one();
  return true;
}

void FixedPool::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stop_ || head_; });
    --idle_;
    if (!head_) return;  // stopping
    PoolJob* job = head_;
    head_ = job->next_;
    if (!head_) tail_ = nullptr;
    --queued_;
    ++running_;
    lock.unlock();
    job->run();
    lock.lock();
    --running_;
    if (!head_ && running_ == 0) drained_cv_.notify_all();
  }
}

void FixedPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu_);
    drained_cv_.wait(lock, [&] { return !head_ && running_ == 0; });
    stop_ = true;
    threads.swap(threads_);
    threads_.reserve(static_cast<size_t>(max_threads_));
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
  std::lock_guard lock(mu_);
  stop_ = false;
}

void FixedPool::reset_after_fork() noexcept {
  // Only the forking thread exists in the child: the std::thread objects name threads of the
  // parent (destroying them would terminate), and queued jobs wait for callers that are gone.
  // Both are left behind, never touched again, and so are the locks a parent thread may hold.
  new (&mu_) std::mutex();
  new (&cv_) std::condition_variable();
  new (&drained_cv_) std::condition_variable();
  new (&threads_) std::vector<std::thread>();
  try {
    threads_.reserve(static_cast<size_t>(max_threads_));
  } catch (...) {
  }
  head_ = tail_ = nullptr;
  idle_ = queued_ = running_ = 0;
  stop_ = false;
}

}  // namespace hbm
