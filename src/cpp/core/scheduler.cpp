#include "scheduler.h"

#include <cstdlib>
#include <string>
#include <system_error>

#include "env.h"
#include "errors.h"
#include "fork_guard.h"
#include "spin_wait.h"

namespace hbm {

Scheduler::Scheduler(int cores) : cores_(kMaxCores) {
  configured_ = cores < 1 ? 1 : (cores > kMaxCores ? kMaxCores : cores);
}

Scheduler::~Scheduler() { shutdown(); }

Scheduler& Scheduler::instance() {
  // Never destroyed: worker threads may outlive static destruction order otherwise.
  // The bindings call shutdown() at interpreter exit.
  static Scheduler* s = [] {
    on_fork_child([] { instance().reset_after_fork(); });
    return new Scheduler(default_cores());
  }();
  return *s;
}

void Scheduler::reset_after_fork() noexcept {
  // The workers, lanes and running tasks were the parent's; queued tasks wait for callers that
  // do not exist here. All of it is left behind untouched (destroying a std::thread that names
  // a parent thread would terminate); the child starts with an empty, stopped pool.
  new (&resize_mu_) std::mutex();
  new (&mu_) std::mutex();
  new (&cv_) std::condition_variable();
  new (&lane_cv_) std::condition_variable();
  new (&idle_cv_) std::condition_variable();
  new (&queue_) std::set<Entry*, Order>();
  for (Core& c : cores_) new (&c) Core();
  started_ = 0;
  running_ = 0;
  joining_ = false;
}

int Scheduler::default_cores() {
  if (auto env = env_value("HBM_RUNTIME_HOST_CORES")) {
    char* end = nullptr;
    long n = std::strtol(env->c_str(), &end, 10);
    if (end != env->c_str() && *end == '\0' && n >= 1 && n <= kMaxCores) return static_cast<int>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n > kMaxCores ? kMaxCores : n);
}

int Scheduler::cores() const {
  std::lock_guard lock(mu_);
  return configured_;
}

int Scheduler::started() const {
  std::lock_guard lock(mu_);
  return started_;
}

void Scheduler::set_cores(int n) {
  if (n < 1 || n > kMaxCores)
    throw InvalidArgument("host core count must be in 1.." + std::to_string(kMaxCores) +
                          ", got " + std::to_string(n));
  std::lock_guard resize(resize_mu_);
  int old_started;
  {
    std::lock_guard lock(mu_);
    old_started = started_;
    configured_ = n;
    // Queued tasks bound to cores that no longer exist move to the ones that do.
    for (Entry* e : queue_) e->task.mask = fold_mask(e->task.mask, n);
    if (old_started > n) {
      for (int c = n; c < old_started; ++c) cores_[c].stop = true;
      started_ = n;
    } else if (old_started > 0) {
      start_workers_locked();
    }
  }
  cv_.notify_all();
  if (old_started > n) stop_workers(n, old_started);
  stop_lanes(n, kMaxCores);
}

void Scheduler::start_workers_locked() {
  for (int c = started_; c < configured_; ++c) {
    cores_[c].stop = false;
    try {
      cores_[c].worker = std::thread([this, c] { worker_loop(c); });
    } catch (const std::system_error& e) {
      if (c == 0)
        throw EngineError(std::string("cannot start the host scheduler's first worker thread: ") +
                              e.what(), -1);
      // Run on the workers that exist: queued tasks bound to the missing ones fold onto them.
      configured_ = c;
      for (Entry* q : queue_) q->task.mask = fold_mask(q->task.mask, configured_);
      break;
    }
    started_ = c + 1;
  }
}

void Scheduler::stop_workers(int from, int to) {
  for (int c = from; c < to; ++c)
    if (cores_[c].worker.joinable()) cores_[c].worker.join();
  std::lock_guard lock(mu_);
  for (int c = from; c < to; ++c) cores_[c].stop = false;
}

void Scheduler::submit(Task task) {
  {
    std::lock_guard lock(mu_);
    if (started_ < configured_ && !joining_) start_workers_locked();
    task.mask = fold_mask(task.mask, configured_);
    if (task.preemptive && preempt_locked(task)) {
      lane_cv_.notify_all();
      return;
    }
    queue_.insert(new Entry{std::move(task), next_seq_++});
    submissions_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
}

bool Scheduler::preempt_locked(Task& task) {
  if (joining_) return false;
  // An idle allowed core takes it from the queue like any task.
  for (int c = 0; c < configured_; ++c)
    if ((task.mask >> c & 1) && !cores_[c].busy) return false;
  for (int c = 0; c < configured_; ++c) {
    Core& core = cores_[c];
    if (!(task.mask >> c & 1) || core.lane_busy) continue;
    if (!core.lane.joinable()) {
      try {
        core.lane = std::thread([this, c] { lane_loop(c); });  // waits for mu_ we hold
      } catch (const std::system_error&) {
        return false;  // no thread to spare: the task waits in the queue instead
      }
    }
    core.lane_entry = new Entry{std::move(task), next_seq_++};
    core.lane_busy = true;
    return true;
  }
  return false;
}

void Scheduler::lane_loop(int core) {
  Core& me = cores_[core];
  std::unique_lock lock(mu_);
  while (true) {
    lane_cv_.wait(lock, [&] { return me.lane_entry || me.lane_stop; });
    Entry* entry = me.lane_entry;
    if (!entry) return;  // stopping, nothing handed over
    me.lane_entry = nullptr;
    while (entry) {
      lock.unlock();
      entry->task.run(core);
      delete entry;
      lock.lock();
      entry = nullptr;
      // A preemptive task that found this lane taken waits first in the queue: while the
      // core is still busy, it is the lane's next task.
      if (me.busy && !me.lane_stop) {
        auto it = eligible_for(core);
        if (it != queue_.end() && (*it)->task.preemptive) {
          entry = *it;
          queue_.erase(it);
        }
      }
    }
    me.lane_busy = false;
  }
}

void Scheduler::stop_lanes(int from, int to) {
  {
    std::lock_guard lock(mu_);
    for (int c = from; c < to; ++c) cores_[c].lane_stop = true;
  }
  lane_cv_.notify_all();
  for (int c = from; c < to; ++c)
    if (cores_[c].lane.joinable()) cores_[c].lane.join();
  std::lock_guard lock(mu_);
  for (int c = from; c < to; ++c) cores_[c].lane_stop = false;
}

size_t Scheduler::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

int Scheduler::claim_idle_core(CoreMask mask) {
  std::lock_guard lock(mu_);
  if (!queue_.empty()) return -1;
  mask = fold_mask(mask, configured_);
  for (int c = 0; c < configured_; ++c) {
    if ((mask >> c & 1) && !cores_[c].busy) {
      cores_[c].busy = true;
      ++running_;
      return c;
    }
  }
  return -1;
}

void Scheduler::release_core(int core) {
  bool waiting;
  {
    std::lock_guard lock(mu_);
    cores_[core].busy = false;
    --running_;
    waiting = !queue_.empty();
  }
  // The latency path ends here; wake workers only if work queued up meanwhile.
  if (waiting) cv_.notify_all();
}

std::set<Scheduler::Entry*, Scheduler::Order>::iterator Scheduler::eligible_for(int core) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it)
    if ((*it)->task.mask >> core & 1) return it;
  return queue_.end();
}

void Scheduler::worker_loop(int core) {
  std::unique_lock lock(mu_);
  while (true) {
    auto it = queue_.end();
    cv_.wait(lock, [&] {
      if (cores_[core].stop) return true;
      if (cores_[core].busy) return false;
      it = eligible_for(core);
      return it != queue_.end();
    });
    if (cores_[core].stop) return;
    Entry* entry = *it;
    queue_.erase(it);
    cores_[core].busy = true;
    ++running_;
    lock.unlock();
    entry->task.run(core);
    delete entry;
    lock.lock();
    cores_[core].busy = false;
    --running_;
    if (queue_.empty()) idle_cv_.notify_all();
    if (!cores_[core].stop && eligible_for(core) == queue_.end()) {
      // Nothing for this core yet: poll briefly before sleeping, so that the next task
      // (often the next run() of the same loop) starts without a wakeup.
      const uint64_t seen = submissions_.load(std::memory_order_acquire);
      lock.unlock();
      spin_until([&] { return submissions_.load(std::memory_order_acquire) != seen; });
      lock.lock();
    }
  }
}

void Scheduler::cancel_owned(const void* owner) {
  cancel_where(&Task::owner, owner,
               std::make_exception_ptr(Cancelled("runtime closed before the task ran")));
}

size_t Scheduler::cancel_group(const void* group, std::exception_ptr why) {
  return cancel_where(&Task::group, group, std::move(why));
}

size_t Scheduler::cancel_where(const void* Task::*field, const void* value, std::exception_ptr why) {
  std::vector<Entry*> matched;
  {
    std::lock_guard lock(mu_);
    matched.reserve(queue_.size());  // before erasing anything: no entry is lost to bad_alloc
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->task.*field == value) {
        matched.push_back(*it);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  idle_cv_.notify_all();
  const size_t n = matched.size();
  cancel_entries(matched, why);
  return n;
}

void Scheduler::cancel_entries(std::vector<Entry*>& entries, std::exception_ptr why) {
  for (Entry* e : entries) {
    if (e->task.cancel) e->task.cancel(why);
    delete e;
  }
  entries.clear();
}

void Scheduler::shutdown() {
  std::lock_guard resize(resize_mu_);
  int started;
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return queue_.empty() || started_ == 0; });
    started = started_;
    for (int c = 0; c < started; ++c) cores_[c].stop = true;
    started_ = 0;
    joining_ = true;
  }
  cv_.notify_all();
  stop_workers(0, started);
  stop_lanes(0, kMaxCores);
  {
    std::lock_guard lock(mu_);
    joining_ = false;
  }
  // Nothing can run what is left (no workers were ever started): cancel it.
  std::vector<Entry*> rest;
  {
    std::lock_guard lock(mu_);
    rest.assign(queue_.begin(), queue_.end());
    queue_.clear();
  }
  cancel_entries(rest, std::make_exception_ptr(Cancelled("host scheduler shut down")));
}

}  // namespace hbm
