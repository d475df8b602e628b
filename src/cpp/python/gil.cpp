#include "gil.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hbm::py {
namespace {

std::mutex g_mu;
std::condition_variable g_idle;
bool g_finalizing = false;
unsigned long g_finalizer = 0;  // the thread running the atexit hook
int g_taking = 0;               // threads between enter_take() and leave_take()

// False when this thread must not take the GIL any more.
bool enter_take() noexcept {
  std::lock_guard lock(g_mu);
  if (g_finalizing && PyThread_get_thread_ident() != g_finalizer) return false;
  ++g_taking;
  return true;
}

void leave_take() noexcept {
  std::lock_guard lock(g_mu);
  if (--g_taking == 0) g_idle.notify_all();
}

[[noreturn]] void park_for_ever() noexcept {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

}  // namespace

void mark_finalizing() noexcept {
  std::unique_lock lock(g_mu);
  g_finalizing = true;
  g_finalizer = PyThread_get_thread_ident();
  // A thread already waiting for the GIL gets it (we do not hold it) before finalization
  // proper begins, so it is not ended on the way.
  g_idle.wait(lock, [] { return g_taking == 0; });
}

GilRelease::GilRelease() noexcept : state_(PyEval_SaveThread()) {}

GilRelease::~GilRelease() {
  if (!enter_take()) park_for_ever();
  PyEval_RestoreThread(state_);
  leave_take();
}

GilAcquire::GilAcquire() noexcept {
  if (!enter_take()) park_for_ever();
  state_ = PyGILState_Ensure();
  leave_take();
}

GilAcquire::~GilAcquire() { PyGILState_Release(state_); }

}  // namespace hbm::py
