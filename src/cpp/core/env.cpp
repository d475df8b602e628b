#include "env.h"

#include "errors.h"

#include <cerrno>
#include <cstdlib>
#include <mutex>

namespace hbm {
namespace {
std::mutex& env_mutex() {
  static std::mutex* mu = new std::mutex();  // never destroyed: used from any thread at exit
  return *mu;
}
}  // namespace

std::optional<std::string> env_value(const char* name) {
  std::lock_guard lock(env_mutex());
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

std::optional<long> env_whole_number(const char* name, long min, long max, const char* expected) {
  const std::optional<std::string> s = env_value(name);
  if (!s || s->empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s->c_str(), &end, 10);
  if (*end || errno || v < min || v > max)
    throw InvalidArgument(std::string(name) + "='" + *s + "': expected " + expected);
  return v;
}

void env_put(char* entry) {
  std::lock_guard lock(env_mutex());
  putenv(entry);
}

namespace detail {
void env_lock() { env_mutex().lock(); }
void env_unlock() { env_mutex().unlock(); }
}  // namespace detail

}  // namespace hbm
