// The host scheduler: one fixed worker thread per virtual core, one ordered queue.
// Order: priority desc, then custom_id asc, then arrival. A task bound to a core mask only
// runs on a worker of an allowed core. Process-wide, like the BPU it stands in for.
// Preemptive tasks (the BPU's priorities 254-255) that find every allowed core busy run at
// once on the core's preemption lane, a second thread beside the task already running there
// (the host cannot pause an inference, so the two share the CPU). One per core at a time: the
// next waits first in the queue, and the lane takes it when free if the core is still busy.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "sched_params.h"

namespace hbm {

class Scheduler {
 public:
  struct Task {
    int32_t priority = 0;
    int64_t custom_id = 0;
    CoreMask mask = kAnyCore;
    const void* owner = nullptr;               // for cancel_owned()
    const void* group = nullptr;               // for cancel_group(): one call's tasks
    bool preemptive = false;                   // may use a busy core's preemption lane
    std::function<void(int core)> run;         // must not throw
    std::function<void(std::exception_ptr)> cancel;  // called instead of run; must not throw
  };

  explicit Scheduler(int cores);
  ~Scheduler();  // finishes queued tasks, then joins the workers
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The process-wide instance (created on first use with default_cores()).
  static Scheduler& instance();
  // Runs every queued task, then joins the workers; a later submit starts them again.
  void shutdown();
  // HBM_RUNTIME_HOST_CORES, else the CPU count.
  static int default_cores();

  int cores() const;
  // Worker threads running now (0 before the first submit and after shutdown()).
  int started() const;
  // Resizes the pool. Queued tasks bound to cores that no longer exist fold onto the rest
  // (fold_mask), as new tasks do.
  void set_cores(int n);
  // Throws when no worker thread exists and none can be started (the task is dropped).
  void submit(Task task);
  size_t queued() const;

  // Claims an idle allowed core when nothing is queued; returns -1 otherwise.
  int claim_idle_core(CoreMask mask);
  void release_core(int core);

  // Cancels every queued (not yet running) task of `owner`.
  void cancel_owned(const void* owner);
  // Cancels every queued task of `group` with `why`; returns how many there were.
  size_t cancel_group(const void* group, std::exception_ptr why);

  static constexpr int kMaxCores = 64;

 private:
  struct Entry {
    Task task;
    uint64_t seq;
  };
  struct Order {
    bool operator()(const Entry* a, const Entry* b) const {
      if (a->task.priority != b->task.priority) return a->task.priority > b->task.priority;
      if (a->task.custom_id != b->task.custom_id) return a->task.custom_id < b->task.custom_id;
      return a->seq < b->seq;
    }
  };
  struct Core {
    std::thread worker;
    bool busy = false;
    bool stop = false;
    std::thread lane;              // started at the core's first preemption
    Entry* lane_entry = nullptr;   // handed to the lane, not yet taken
    bool lane_busy = false;        // an entry is handed over or running
    bool lane_stop = false;
  };

  void worker_loop(int core);
  void lane_loop(int core);
  // Hands a preemptive task to a busy allowed core's free lane; false if none qualifies.
  bool preempt_locked(Task& task);
  // Stops and joins the preemption lanes of cores [from, to); the lock must not be held.
  void stop_lanes(int from, int to);
  // First queued task that may run on `core`; needs the lock held.
  std::set<Entry*, Order>::iterator eligible_for(int core);
  void cancel_entries(std::vector<Entry*>& entries, std::exception_ptr why);
  size_t cancel_where(const void* Task::*field, const void* value, std::exception_ptr why);

  // Starts workers up to configured_; if a thread cannot be started, the pool shrinks to the
  // workers that exist (throws only when there are none).
  void start_workers_locked();
  void reset_after_fork() noexcept;
  // Stops and joins workers [from, to); the lock must not be held.
  void stop_workers(int from, int to);

  std::mutex resize_mu_;  // serialises set_cores / shutdown
  mutable std::mutex mu_;
  std::condition_variable cv_;       // workers wait here
  std::condition_variable lane_cv_;  // preemption lanes wait here
  std::condition_variable idle_cv_;  // shutdown waits for the queue to drain
  std::set<Entry*, Order> queue_;    // owns its entries
  std::vector<Core> cores_;          // kMaxCores slots, never reallocated
  int configured_ = 0;               // virtual core count
  int started_ = 0;                  // workers running (0 until first submit)
  int running_ = 0;                  // tasks executing now
  bool joining_ = false;             // shutdown() is joining; submit must not restart
  uint64_t next_seq_ = 0;
  std::atomic<uint64_t> submissions_{0};  // polled by workers between tasks
};

}  // namespace hbm
