// Brief polling before a thread blocks on a condition variable.
#pragma once
#include <chrono>
#include <cstdlib>
#include <thread>

#include "env.h"

namespace hbm {

// How long a thread that is about to sleep polls first: waking a sleeping thread costs tens
// of microseconds on virtual machines, as much as a small model's whole inference. Workers
// poll after a task, and a run() waiting for its other models polls before sleeping.
// HBM_RUNTIME_SPIN_US overrides it (0 = never poll).
inline std::chrono::microseconds spin_budget() {
  static const std::chrono::microseconds budget = [] {
    if (auto env = env_value("HBM_RUNTIME_SPIN_US")) {
      char* end = nullptr;
      long us = std::strtol(env->c_str(), &end, 10);
      if (end != env->c_str() && *end == '\0' && us >= 0 && us <= 1000000)
        return std::chrono::microseconds(us);
    }
    return std::chrono::microseconds(100);
  }();
  return budget;
}

// Polls `ready` (yielding the CPU between polls) until it holds or the budget is spent.
template <class Ready>
bool spin_until(Ready&& ready) {
  const auto budget = spin_budget();
  if (budget.count() == 0) return ready();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace hbm
