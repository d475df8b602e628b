// Which engine runs which file. Engines are created on first use and never destroyed:
// their libraries stay loaded until the process exits.
#include <mutex>
#include <string>

#include "core/engine.h"
#include "core/errors.h"
#include "core/fork_guard.h"
#include "engines/openvino/ov_engine.h"
#ifdef HBM_HAVE_UCP
#include "engines/ucp/ucp_engine.h"
#endif

namespace hbm {
namespace {

struct Slot {
  std::string_view name;
  std::string_view extension;
  std::unique_ptr<Engine> (*make)();
  bool device;  // small vendor libraries, loaded to report `version` (host engines are not)
  Engine* engine = nullptr;
  uint64_t generation = 0;  // fork_generation() when the engine was created
};

std::mutex g_mu;
// A thread of the parent may have held the lock at fork(): the child starts with a free one.
const bool g_fork_reset = (on_fork_child([] { new (&g_mu) std::mutex(); }), true);
Slot g_slots[] = {
    {"openvino", ".onnx", &make_openvino_engine, false},
#ifdef HBM_HAVE_UCP
    {"ucp", ".hbm", &make_ucp_engine, true},
#endif
};

bool ends_with(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char c = s[s.size() - suffix.size() + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

Engine& get(Slot& slot) {
  // Creating an engine dlopens its libraries; a failure leaves the slot empty to retry.
  if (!slot.engine) {
    slot.engine = slot.make().release();
    slot.generation = fork_generation();
  }
  // A device library initialised by the parent holds the parent's driver state (open device,
  // mapped sysmem, its threads): a forked child must not use it.
  if (slot.device && slot.generation != fork_generation())
    throw EngineUnavailable(
        "the " + std::string(slot.name) + " engine (" + std::string(slot.extension) +
        " models) was initialised in a parent process before fork(), and its device libraries "
        "cannot be shared with a child: load " + std::string(slot.extension) + " models in a "
        "process started with the 'spawn' method of multiprocessing, or in a child forked "
        "before the parent loaded any");
  return *slot.engine;
}

}  // namespace

Engine& engine_for(const std::string& file, std::string_view forced) {
  (void)g_fork_reset;
  std::lock_guard lock(g_mu);
  std::string known;
  for (auto& slot : g_slots) {
    if (!forced.empty() ? slot.name == forced : ends_with(file, slot.extension)) return get(slot);
    known += (known.empty() ? "" : ", ") + std::string(slot.extension) + " (" +
             std::string(slot.name) + ")";
  }
  if (!forced.empty())
    throw InvalidArgument("unknown engine '" + std::string(forced) + "'; engines: " + known);
  throw InvalidArgument("'" + file + "': unsupported model file type; supported: " + known);
}

namespace {

// The board's `version` names the device library before any model is loaded, as the vendor's
// does; host engines are only reported once something loaded them. Called with g_mu held.
void probe_device_engines_once() {
  static bool probed = false;
  if (probed) return;
  probed = true;
  for (auto& slot : g_slots) {
    if (!slot.device) continue;
    try {
      get(slot);
    } catch (const Error&) {
      // Libraries absent: `version` reports the package alone; loading a model says why.
    }
  }
}

}  // namespace

std::string device_library_version() {
  std::lock_guard lock(g_mu);
  probe_device_engines_once();
  for (auto& slot : g_slots)
    if (slot.device && slot.engine) {
      std::string v = slot.engine->device_version();
      if (!v.empty()) return v;
    }
  return {};
}

std::vector<std::pair<std::string, std::string>> loaded_engine_versions(bool probe_devices) {
  std::lock_guard lock(g_mu);
  if (probe_devices) probe_device_engines_once();
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& slot : g_slots)
    if (slot.engine) out.push_back({std::string(slot.name), slot.engine->version()});
  return out;
}

}  // namespace hbm
