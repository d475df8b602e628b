// The process-wide host scheduler, plus a test hook that holds a virtual core busy.
#include <condition_variable>
#include <mutex>

#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "core/engine.h"
#include "core/errors.h"
#include "core/scheduler.h"
#include "core/fixed_pool.h"
#include "gil.h"
#include "runtime_binding.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace hbm::py {
namespace {

// Occupies one virtual core until release(): makes queue-ordering tests deterministic
// without sleeps. The constructor returns once the core is really held.
class CoreHold {
 public:
  explicit CoreHold(int core) : state_(std::make_shared<State>()) {
    if (core < 0 || core >= Scheduler::instance().cores())
      throw InvalidArgument("no host core " + std::to_string(core));
    Scheduler::Task task;
    task.priority = 255;
    task.mask = CoreMask{1} << core;
    task.run = [s = state_](int) {
      std::unique_lock lock(s->mu);
      s->started = true;
      s->cv.notify_all();
      s->cv.wait(lock, [&] { return s->released; });
    };
    task.cancel = [s = state_](std::exception_ptr) {
      std::lock_guard lock(s->mu);
      s->started = s->released = true;
      s->cv.notify_all();
    };
    Scheduler::instance().submit(std::move(task));
    std::unique_lock lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->started; });
  }
  ~CoreHold() { release(); }
  void release() {
    std::lock_guard lock(state_->mu);
    state_->released = true;
    state_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool started = false, released = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace

// Finishes queued work and stops the scheduler's and the pools' threads.
static void stop_pools() {
  Scheduler::instance().shutdown();
  FixedPool::device_waits().shutdown();
  FixedPool::completions().shutdown();
}

void bind_scheduler(nb::module_& m) {
  m.def("set_host_cores", [](int n) { Scheduler::instance().set_cores(n); }, "n"_a,
        nb::call_guard<GilRelease>(),
        "Sets how many virtual cores the host scheduler has (process-wide).");
  m.def("host_cores", [] { return Scheduler::instance().cores(); },
        "Number of virtual cores of the host scheduler.");
  m.def("_queued", [] { return Scheduler::instance().queued(); });
  m.def("_pool_threads", [] {
          return std::make_tuple(Scheduler::instance().started(), FixedPool::completions().threads(),
                                 FixedPool::device_waits().threads());
        },
        "(host workers, completion threads, device-wait threads) running now.");
  m.def("_shutdown", &stop_pools, nb::call_guard<nb::gil_scoped_release>());
  // The atexit hook. Its thread is the one that finalizes, so it must not use GilRelease.
  m.def("_at_exit", [] {
          stop_pools();
          mark_finalizing();  // daemon threads still in a run() wait rather than abort us
        },
        nb::call_guard<nb::gil_scoped_release>());
  m.def("_engine_versions", &loaded_engine_versions, "probe_devices"_a = false);
  m.def("_device_library_version", &device_library_version);
  m.def("_vendor_dict_order",
        [](const std::vector<std::string>& names) { return vendor_dict_order(names); }, "names"_a);
  nb::class_<CoreHold>(m, "_CoreHold")
      .def(nb::init<int>(), "core"_a, nb::call_guard<GilRelease>())
      .def("release", &CoreHold::release, nb::call_guard<GilRelease>());
}

}  // namespace hbm::py
