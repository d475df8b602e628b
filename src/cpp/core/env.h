// The environment, read and changed without racing. glibc's setenv()/putenv() may move the
// array getenv() walks, so a getenv() in one thread during a change in another can read freed
// memory. Our reads and our one change (see engines/openvino) are serialised here; readers we
// do not control are protected by that change never moving or freeing anything after it is
// first made (see env_put).
#pragma once
#include <optional>
#include <string>

namespace hbm {

// getenv(name) copied out under the environment lock.
std::optional<std::string> env_value(const char* name);

// The whole number in variable `name`, nullopt when unset or empty; InvalidArgument naming the
// variable, its value and `expected` when it is not a whole number in min..max.
std::optional<long> env_whole_number(const char* name, long min, long max, const char* expected);

// putenv(entry) under the lock. `entry` ("NAME=value") lives for the whole process: it is
// used in place, so it can later be edited in place with env_edit() without any allocation.
void env_put(char* entry);

// Runs edit() under the lock: for in-place changes to an entry given to env_put.
template <class Edit>
void env_edit(Edit&& edit);

namespace detail {
void env_lock();
void env_unlock();
}  // namespace detail

template <class Edit>
void env_edit(Edit&& edit) {
  detail::env_lock();
  try {
    edit();
  } catch (...) {
    detail::env_unlock();
    throw;
  }
  detail::env_unlock();
}

}  // namespace hbm
