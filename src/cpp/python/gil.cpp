#include "gil.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hbm::py {
namespace {

// How long the atexit hook lets calls already running without the GIL finish. Past that the
// process exits anyway (a BPU task that never ends must not hang the exit).
constexpr auto kExitGrace = std::chrono::seconds(5);

std::mutex g_mu;
std::condition_variable g_idle;
bool g_finalizing = false;
unsigned long g_finalizer = 0;  // the thread running the atexit hook
int g_outside = 0;              // threads working without the GIL, or about to take it back

[[noreturn]] void park_for_ever() noexcept {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

bool must_park() noexcept { return g_finalizing && PyThread_get_thread_ident() != g_finalizer; }

void leave() noexcept {
  if (--g_outside == 0) g_idle.notify_all();
}

}  // namespace

void mark_finalizing() noexcept {
  std::unique_lock lock(g_mu);
  g_finalizing = true;
  g_finalizer = PyThread_get_thread_ident();
  // Calls in progress finish first (the process tearing down a library under a running call
  // would crash it), and a thread already waiting for the GIL gets it (we do not hold it)
  // before finalization proper, so it is not ended on the way.
  g_idle.wait_for(lock, kExitGrace, [] { return g_outside == 0; });
}

GilRelease::GilRelease() noexcept : state_(PyEval_SaveThread()) {
  std::unique_lock lock(g_mu);
  if (must_park()) {
    lock.unlock();
    park_for_ever();  // the GIL is released: finalization goes on without this thread
  }
  ++g_outside;
}

GilRelease::~GilRelease() {
  {
    std::unique_lock lock(g_mu);
    if (must_park()) {
      leave();
      lock.unlock();
      park_for_ever();
    }
  }
  PyEval_RestoreThread(state_);
  std::lock_guard lock(g_mu);
  leave();
}

GilAcquire::GilAcquire() noexcept {
  {
    std::unique_lock lock(g_mu);
    if (must_park()) {
      lock.unlock();
      park_for_ever();
    }
    ++g_outside;
  }
  state_ = PyGILState_Ensure();
  std::lock_guard lock(g_mu);
  leave();
}

GilAcquire::~GilAcquire() { PyGILState_Release(state_); }

}  // namespace hbm::py
