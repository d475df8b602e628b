#include "dynlib.h"

#include <dlfcn.h>

#include "errors.h"

namespace hbm {

DynLib DynLib::open_first(const std::vector<std::string>& candidates, bool global,
                          const std::string& what_to_do) {
  std::string tried;
  for (const auto& path : candidates) {
    dlerror();
    void* h = dlopen(path.c_str(), RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
    if (h) {
      DynLib lib;
      lib.handle_ = h;
      lib.path_ = path;
      return lib;
    }
    const char* why = dlerror();
    tried += "\n  " + path + ": " + (why ? why : "not loadable");
  }
  throw EngineUnavailable(what_to_do + "\nTried:" + tried);
}

DynLib& DynLib::operator=(DynLib&& o) noexcept {
  if (this != &o) {
    if (handle_) dlclose(handle_);
    handle_ = o.handle_;
    path_ = std::move(o.path_);
    o.handle_ = nullptr;
  }
  return *this;
}

DynLib::~DynLib() {
  if (handle_) dlclose(handle_);
}

// The vendor's libraries bind their symbols to version CONFIG: ask for that version first
// (plain dlsym would pick the default version, which may be another one).
void* DynLib::find(const char* symbol) const {
  if (!handle_) return nullptr;
  if (void* p = dlvsym(handle_, symbol, "CONFIG")) return p;
  return dlsym(handle_, symbol);
}

void* DynLib::require(const char* symbol) const {
  void* p = find(symbol);
  if (!p)
    throw EngineUnavailable("symbol '" + std::string(symbol) + "' is missing from " + path_ +
                            " (incompatible library version?)");
  return p;
}

}  // namespace hbm
