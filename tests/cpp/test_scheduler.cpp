// The host scheduler on its own: ordering, affinity, resizing, cancellation, stress.
// Built and run under ThreadSanitizer by .ci/run. Synchronisation is by condition
// variables only: no sleeps.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/scheduler.h"
#include "core/fixed_pool.h"

using hbm::CoreMask;
using hbm::Scheduler;

static int g_failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                        \
    }                                                                      \
  } while (0)

// A task that blocks its core until opened; started() waits until it runs.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool running = false, open = false;
  Scheduler::Task task(CoreMask mask) {
    Scheduler::Task t;
    t.priority = 255;
    t.mask = mask;
    t.run = [this](int) {
      std::unique_lock lock(mu);
      running = true;
      cv.notify_all();
      cv.wait(lock, [&] { return open; });
    };
    return t;
  }
  void wait_running() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return running; });
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

// Counts finished tasks so the test can wait for N of them.
struct Done {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> order, cores;
  int cancelled = 0;
  void record(int id, int core) {
    std::lock_guard lock(mu);
    order.push_back(id);
    cores.push_back(core);
    cv.notify_all();
  }
  void cancel() {
    std::lock_guard lock(mu);
    ++cancelled;
    cv.notify_all();
  }
  void wait_for(size_t n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return order.size() + cancelled >= n; });
  }
};

Scheduler::Task make(Done& d, int id, int priority, int64_t custom_id, CoreMask mask = hbm::kAnyCore,
                     const void* owner = nullptr) {
  Scheduler::Task t;
  t.priority = priority;
  t.custom_id = custom_id;
  t.mask = mask;
  t.owner = owner;
  t.run = [&d, id](int core) { d.record(id, core); };
  t.cancel = [&d](std::exception_ptr) { d.cancel(); };
  return t;
}

void test_order() {
  Scheduler s(1);
  Gate gate;
  s.submit(gate.task(hbm::kAnyCore));
  gate.wait_running();
  Done d;
  // (id, priority, custom_id): expected run order is by priority desc, custom_id asc, FIFO.
  const int spec[][3] = {{0, 0, 0}, {1, 5, 9}, {2, 5, 1}, {3, 200, 0}, {4, 5, 1}, {5, 0, 0}, {6, 100, 3}};
  for (auto& t : spec) s.submit(make(d, t[0], t[1], t[2]));
  CHECK(s.queued() == 7);
  gate.release();
  d.wait_for(7);
  const std::vector<int> expect{3, 6, 2, 4, 1, 0, 5};
  CHECK(d.order == expect);
}

void test_affinity() {
  Scheduler s(2);
  Done d;
  for (int i = 0; i < 200; ++i) s.submit(make(d, i, i % 7, 0, i % 2 ? CoreMask{2} : CoreMask{1}));
  d.wait_for(200);
  for (size_t k = 0; k < d.order.size(); ++k) CHECK(d.cores[k] == (d.order[k] % 2 ? 1 : 0));
}

void test_bound_task_waits_for_its_core() {
  Scheduler s(2);
  Gate gate;
  s.submit(gate.task(CoreMask{2}));  // hold core 1
  gate.wait_running();
  Done d;
  s.submit(make(d, 1, 0, 0, CoreMask{2}));  // only core 1 may run it
  s.submit(make(d, 2, 0, 0, hbm::kAnyCore));
  d.wait_for(1);
  {
    std::lock_guard lock(d.mu);
    CHECK(d.order.size() == 1 && d.order[0] == 2 && d.cores[0] == 0);
  }
  gate.release();
  d.wait_for(2);
  CHECK(d.order.size() == 2 && d.order[1] == 1 && d.cores[1] == 1);
}

// The BPU's preemptive levels: a preemptive task whose cores are all busy runs at once on the
// busy core's lane; an ordinary one waits; a second preemptive one waits for the lane.
void test_preemptive_lane() {
  Scheduler s(1);
  Gate hold;
  s.submit(hold.task(hbm::kAnyCore));  // core 0 busy until released
  hold.wait_running();
  Done d;
  Gate lane_hold;
  Scheduler::Task first = lane_hold.task(hbm::kAnyCore);
  first.preemptive = true;
  s.submit(std::move(first));
  lane_hold.wait_running();  // ran beside the busy core: nothing released yet
  CHECK(s.queued() == 0);
  Scheduler::Task second = make(d, 1, 254, 0);
  second.preemptive = true;
  s.submit(std::move(second));  // the lane is taken: queued, first in line
  s.submit(make(d, 2, 200, 0));
  CHECK(s.queued() == 2);
  lane_hold.release();  // the lane takes the waiting preemptive task; core 0 is still held
  d.wait_for(1);
  CHECK(s.queued() == 1);
  {
    std::lock_guard lock(d.mu);
    CHECK(d.order.size() == 1 && d.order[0] == 1 && d.cores[0] == 0);
  }
  hold.release();
  d.wait_for(2);
  CHECK((d.order == std::vector<int>{1, 2}));
  // With an idle core, a preemptive task simply runs there.
  Scheduler::Task third = make(d, 3, 255, 0);
  third.preemptive = true;
  s.submit(std::move(third));
  d.wait_for(3);
  CHECK(d.order.size() == 3 && d.cores[2] == 0);
  // Shrinking and shutting down join the lanes.
  s.set_cores(1);
  s.shutdown();
}

void test_inline_claim() {
  Scheduler s(1);
  int core = s.claim_idle_core(hbm::kAnyCore);
  CHECK(core == 0);
  CHECK(s.claim_idle_core(hbm::kAnyCore) == -1);  // the only core is taken
  Done d;
  s.submit(make(d, 7, 0, 0));
  CHECK(s.queued() == 1);  // the worker must not run it while the core is claimed
  s.release_core(core);
  d.wait_for(1);
  CHECK(d.order.size() == 1 && d.order[0] == 7);
}

void test_cancel_owned_and_resize() {
  Scheduler s(2);
  Gate g0, g1;
  s.submit(g0.task(CoreMask{1}));
  s.submit(g1.task(CoreMask{2}));
  g0.wait_running();
  g1.wait_running();
  Done d;
  int owner_a = 0, owner_b = 0;
  for (int i = 0; i < 5; ++i) s.submit(make(d, i, 0, 0, hbm::kAnyCore, &owner_a));
  for (int i = 5; i < 8; ++i) s.submit(make(d, i, 0, 0, hbm::kAnyCore, &owner_b));
  s.cancel_owned(&owner_a);
  CHECK(d.cancelled == 5);
  s.submit(make(d, 100, 0, 0, CoreMask{2}));  // bound to core 1, which will disappear
  g1.release();
  // Shrinking to one core cancels the task bound to core 1 if it has not run yet.
  s.set_cores(1);
  CHECK(s.cores() == 1);
  g0.release();
  d.wait_for(5 + 3 + 1);
  std::lock_guard lock(d.mu);
  CHECK(d.cancelled + static_cast<int>(d.order.size()) == 9);
  for (int id : d.order) CHECK(id >= 5);
  bool threw = false;
  try {
    s.set_cores(0);
  } catch (const hbm::InvalidArgument&) {
    threw = true;
  }
  CHECK(threw);
}

void test_stress() {
  Scheduler s(3);
  std::atomic<int> ran{0};
  std::atomic<int> wrong_core{0};
  constexpr int kThreads = 4, kPerThread = 2000;
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Scheduler::Task task;
        task.priority = (i * 31 + t) % 256;
        task.custom_id = i % 17;
        CoreMask mask = (i % 3 == 0) ? hbm::kAnyCore : CoreMask{1} << (i % 3);
        task.mask = mask;
        task.run = [&, mask](int core) {
          if (!(mask >> core & 1)) ++wrong_core;
          ++ran;
          std::lock_guard lock(mu);
          ++finished;
          cv.notify_all();
        };
        task.cancel = [&](std::exception_ptr) {
          std::lock_guard lock(mu);
          ++finished;
          cv.notify_all();
        };
        if (i % 500 == 0) {
          int c = s.claim_idle_core(hbm::kAnyCore);
          if (c >= 0) s.release_core(c);
        }
        s.submit(std::move(task));
      }
    });
  }
  for (auto& p : producers) p.join();
  s.set_cores(4);  // grow while busy
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == kThreads * kPerThread; });
  }
  CHECK(ran == kThreads * kPerThread);
  CHECK(wrong_core == 0);
  s.shutdown();
  // A submit after shutdown starts the workers again.
  Done d;
  s.submit(make(d, 1, 0, 0));
  d.wait_for(1);
  CHECK(d.order.size() == 1);
}

// A pool never has more threads than its maximum: jobs beyond it wait, in order, and all run.
void test_fixed_pool() {
  hbm::FixedPool pool(3);
  struct Job final : hbm::PoolJob {
    std::mutex* mu;
    std::condition_variable* cv;
    int* running;
    int* finished;
    bool* open;
    void run() noexcept override {
      std::unique_lock lock(*mu);
      ++*running;
      cv->notify_all();
      cv->wait(lock, [&] { return *open; });
      ++*finished;
      cv->notify_all();
    }
  };
  for (int round = 0; round < 2; ++round) {  // the second round reuses the threads
    std::mutex mu;
    std::condition_variable cv;
    int running = 0, finished = 0;
    bool open = false;
    constexpr int kJobs = 10;
    std::vector<Job> jobs(kJobs);
    for (auto& j : jobs) {
      j.mu = &mu;
      j.cv = &cv;
      j.running = &running;
      j.finished = &finished;
      j.open = &open;
      CHECK(pool.post(&j));
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return running == 3; });  // three run, seven wait for a thread
    CHECK(pool.threads() == 3);
    CHECK(running == 3);
    open = true;
    cv.notify_all();
    cv.wait(lock, [&] { return finished == kJobs; });
  }
  pool.shutdown();
  CHECK(pool.threads() == 0);
  struct Flag final : hbm::PoolJob {
    std::atomic<bool> ran{false};
    void run() noexcept override { ran = true; }
  } flag;
  CHECK(pool.post(&flag));  // starts again after shutdown
  pool.shutdown();
  CHECK(flag.ran);
}

// cancel_group takes exactly one group's queued tasks out of the queue.
void test_cancel_group() {
  Scheduler s(1);
  Gate gate;
  s.submit(gate.task(1));
  gate.wait_running();
  std::atomic<int> ran{0}, cancelled{0};
  int group_a = 0, group_b = 0;
  for (int i = 0; i < 6; ++i) {
    Scheduler::Task t;
    t.group = i % 2 ? &group_a : &group_b;
    t.run = [&](int) { ++ran; };
    t.cancel = [&](std::exception_ptr) { ++cancelled; };
    s.submit(std::move(t));
  }
  CHECK(s.cancel_group(&group_a, std::make_exception_ptr(hbm::Cancelled("test"))) == 3);
  CHECK(cancelled == 3);
  CHECK(s.queued() == 3);
  gate.release();
  s.shutdown();
  CHECK(ran == 3);
}

int main() {
  test_order();
  test_affinity();
  test_bound_task_waits_for_its_core();
  test_preemptive_lane();
  test_inline_claim();
  test_cancel_owned_and_resize();
  test_stress();
  test_fixed_pool();
  test_cancel_group();
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::puts("scheduler: all checks passed");
  return 0;
}
