// fork() and the runtime. A child process has only the thread that called fork(): the host
// scheduler's workers, the completion threads and any lock they held are the parent's. The
// process-wide pieces therefore start afresh in the child (each registers a child handler with
// on_fork_child), so that runtimes created there work; a Runtime created before the fork
// refuses to run in the child, since its in-flight state and device handles are the parent's.
#pragma once
#include <cstdint>

namespace hbm {

// How many fork()s lie between the process that loaded this library and this one.
uint64_t fork_generation() noexcept;

// Registers `reset`, run in every child right after fork() (before anything else of ours
// runs there). It must only reinitialise state: no locks, no allocation it cannot survive.
void on_fork_child(void (*reset)()) noexcept;

}  // namespace hbm
