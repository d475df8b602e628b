// A small fixed set of threads that runs posted jobs in order: how completions reach Python
// (they need the GIL, so they leave the host cores at once) and how async runs wait for the
// BPU. However many jobs are pending, a pool never has more than its fixed number of threads.
#pragma once
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace hbm {

// A job posted to a FixedPool. Posting never allocates: the job is its own queue node, and the
// poster keeps it alive until run() (which may end the job's own life) has returned.
class PoolJob {
 public:
  virtual void run() noexcept = 0;

 protected:
  ~PoolJob() = default;

 private:
  friend class FixedPool;
  PoolJob* next_ = nullptr;
};

class FixedPool {
 public:
  explicit FixedPool(int max_threads);
  FixedPool(const FixedPool&) = delete;
  FixedPool& operator=(const FixedPool&) = delete;

  // Completions of async runs: the Python callbacks (2 threads).
  static FixedPool& completions();
  // Waits for the device's completion of async runs (8 threads; beyond 8 pending waits they
  // are collected in submission order).
  static FixedPool& device_waits();

  // Queues `job`, starting a thread when none is idle and fewer than the maximum exist. False
  // when no thread exists nor could be started: the job was not queued and the caller runs
  // it itself.
  bool post(PoolJob* job) noexcept;
  // Runs every queued job, then joins the threads; a later post starts threads again.
  void shutdown();
  int threads() const;

  static constexpr int kCompletionThreads = 2;
  static constexpr int kDeviceWaitThreads = 8;

 private:
  void loop();
  // In a child after fork(): the threads are gone and queued jobs belong to the parent.
  void reset_after_fork() noexcept;

  const int max_threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_, drained_cv_;
  PoolJob* head_ = nullptr;
  PoolJob* tail_ = nullptr;
  std::vector<std::thread> threads_;  // capacity reserved: starting a thread never reallocates
  int idle_ = 0;     // threads waiting for a job
  int queued_ = 0;   // jobs not yet taken
  int running_ = 0;  // jobs executing
  bool stop_ = false;
};

}  // namespace hbm
