#include "fork_guard.h"

#include <pthread.h>

#include <atomic>

namespace hbm {
namespace {
std::atomic<uint64_t> g_generation{0};

void count_fork() { g_generation.fetch_add(1, std::memory_order_relaxed); }

// Registered before any component's handler, so the count is current when they run.
const bool g_counting = [] { return pthread_atfork(nullptr, nullptr, &count_fork) == 0; }();
}  // namespace

uint64_t fork_generation() noexcept {
  (void)g_counting;
  return g_generation.load(std::memory_order_relaxed);
}

void on_fork_child(void (*reset)()) noexcept { pthread_atfork(nullptr, nullptr, reset); }

}  // namespace hbm
