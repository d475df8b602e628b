// Threads that block on device completions (e.g. hbUCPWaitTaskDone) for async runs, so
// that waiting on the BPU never occupies a host core. Threads are created when every
// existing one is busy, reused afterwards, and joined by shutdown().
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hbm {

class WaiterPool {
 public:
  static WaiterPool& instance();
  ~WaiterPool() { shutdown(); }

  // Runs `job` (which must not throw) on a waiter thread.
  void post(std::function<void()> job);
  // Waits for every posted job, then joins the threads; a later post starts new ones.
  void shutdown();

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_, drained_cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  int idle_ = 0;     // threads waiting for a job
  int running_ = 0;  // jobs executing
  bool stop_ = false;
};

}  // namespace hbm
