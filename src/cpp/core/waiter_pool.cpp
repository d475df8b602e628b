#include "waiter_pool.h"

namespace hbm {

WaiterPool& WaiterPool::instance() {
  static WaiterPool* pool = new WaiterPool();  // never destroyed, like the Scheduler
  return *pool;
}

void WaiterPool::post(std::function<void()> job) {
  std::lock_guard lock(mu_);
  jobs_.push_back(std::move(job));
  // Each waiting job needs a thread of its own: it may block for as long as the device takes.
  if (static_cast<int>(jobs_.size()) > idle_) threads_.emplace_back([this] { loop(); });
  cv_.notify_one();
}

void WaiterPool::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    --idle_;
    if (jobs_.empty()) return;  // stopping
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ++running_;
    lock.unlock();
    job();
    lock.lock();
    --running_;
    if (jobs_.empty() && running_ == 0) drained_cv_.notify_all();
  }
}

void WaiterPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu_);
    drained_cv_.wait(lock, [&] { return jobs_.empty() && running_ == 0; });
    stop_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
  std::lock_guard lock(mu_);
  stop_ = false;
}

}  // namespace hbm
