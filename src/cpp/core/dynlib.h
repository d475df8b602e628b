// RAII over dlopen: a library handle that closes itself, and symbol lookup that names
// what is missing.
#pragma once
#include <string>
#include <vector>

namespace hbm {

class DynLib {
 public:
  DynLib() = default;
  // Tries each candidate path in order; throws EngineUnavailable listing every attempt.
  static DynLib open_first(const std::vector<std::string>& candidates, bool global,
                           const std::string& what_to_do);
  DynLib(DynLib&& o) noexcept : handle_(o.handle_), path_(std::move(o.path_)) { o.handle_ = nullptr; }
  DynLib& operator=(DynLib&& o) noexcept;
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;
  ~DynLib();

  explicit operator bool() const { return handle_ != nullptr; }
  const std::string& path() const { return path_; }
  // Version CONFIG first (dlvsym), else the default; nullptr when absent.
  void* find(const char* symbol) const;
  // Throws EngineUnavailable naming the symbol and the library.
  void* require(const char* symbol) const;

  template <typename Fn>
  void bind(Fn*& fn, const char* symbol) const { fn = reinterpret_cast<Fn*>(require(symbol)); }
  template <typename Fn>
  void bind_optional(Fn*& fn, const char* symbol) const { fn = reinterpret_cast<Fn*>(find(symbol)); }

 private:
  void* handle_ = nullptr;
  std::string path_;
};

}  // namespace hbm
