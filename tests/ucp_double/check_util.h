// Small helpers for engine_check: assertions, the double's test API, strided reads.
#pragma once
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/errors.h"

inline int g_failures = 0, g_checks = 0;

#define CHECK(cond)                                                               \
  do {                                                                            \
    ++g_checks;                                                                   \
    if (!(cond)) {                                                                \
      ++g_failures;                                                               \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
    }                                                                             \
  } while (0)

#define CHECK_EQ(a, b)                                                            \
  do {                                                                            \
    ++g_checks;                                                                   \
    auto&& va_ = (a);                                                             \
    auto&& vb_ = (b);                                                             \
    if (!(va_ == vb_)) {                                                          \
      ++g_failures;                                                               \
      std::ostringstream os_;                                                     \
      os_ << va_ << " != " << vb_;                                                \
      std::fprintf(stderr, "FAIL %s:%d: %s == %s (%s)\n", __FILE__, __LINE__, #a, \
                   #b, os_.str().c_str());                                        \
    }                                                                             \
  } while (0)

template <typename T>
std::ostream& operator<<(std::ostream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os << ']';
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Runs f; returns the exception of type E it threw (anything else is a failure).
template <typename E, typename F>
std::optional<E> thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "  unexpected exception: %s\n", e.what());
    return std::nullopt;
  }
  std::fprintf(stderr, "  no exception thrown\n");
  return std::nullopt;
}

// The double's hbTestDouble_* functions, from the already loaded libhbucp.so.
struct Double {
  int32_t (*configure)(const char*, int64_t) = nullptr;
  int64_t (*stat)(const char*) = nullptr;
  size_t (*log_fn)(char*, size_t) = nullptr;
  void (*reset)() = nullptr;
  int32_t (*dims)() = nullptr;

  bool open(const std::string& lib_dir) {
    void* h = dlopen((lib_dir + "/libhbucp.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (!h) return false;
    configure = reinterpret_cast<decltype(configure)>(dlsym(h, "hbTestDouble_configure"));
    stat = reinterpret_cast<decltype(stat)>(dlsym(h, "hbTestDouble_stat"));
    log_fn = reinterpret_cast<decltype(log_fn)>(dlsym(h, "hbTestDouble_log"));
    reset = reinterpret_cast<decltype(reset)>(dlsym(h, "hbTestDouble_reset"));
    dims = reinterpret_cast<decltype(dims)>(dlsym(h, "hbTestDouble_dims"));
    return configure && stat && log_fn && reset && dims;
  }
  std::string log() const {
    std::string s(log_fn(nullptr, 0) + 1, '\0');
    s.resize(log_fn(s.data(), s.size()));
    return s;
  }
  // Log lines starting with `prefix`.
  std::vector<std::string> lines(const std::string& prefix) const {
    std::vector<std::string> out;
    std::istringstream in(log());
    for (std::string l; std::getline(in, l);)
      if (l.rfind(prefix, 0) == 0) out.push_back(l);
    return out;
  }
};

// "key=value" field of a log line ("" when absent).
inline std::string field(const std::string& line, const std::string& key) {
  const std::string k = " " + key + "=";
  auto p = line.find(k);
  if (p == std::string::npos) return {};
  p += k.size();
  return line.substr(p, line.find(' ', p) - p);
}

// Element k (C order) of a strided output.
template <typename T>
T at(const hbm::OutputTensor& o, int64_t k) {
  int64_t off = 0;
  for (size_t i = o.shape.size(); i-- > 0;) {
    off += (k % o.shape[i]) * o.strides[i];
    k /= o.shape[i];
  }
  T v;
  std::memcpy(&v, static_cast<const char*>(o.data) + off, sizeof v);
  return v;
}

template <typename T>
void put(const hbm::OutputTensor& o, int64_t k, T v) {
  int64_t off = 0;
  for (size_t i = o.shape.size(); i-- > 0;) {
    off += (k % o.shape[i]) * o.strides[i];
    k /= o.shape[i];
  }
  std::memcpy(static_cast<char*>(o.data) + off, &v, sizeof v);
}

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <typename T>
hbm::InputView view(const std::vector<T>& v, hbm::DataType dt, std::vector<int64_t> shape) {
  return {v.data(), dt, std::move(shape), v.size() * sizeof(T)};
}

// IEEE half bits of a value exactly representable as a normal half.
inline uint16_t half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  return static_cast<uint16_t>(f == 0 ? sign : sign | (exp << 10) | ((x & 0x7FFFFF) >> 13));
}
