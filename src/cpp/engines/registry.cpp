// Which engine runs which file. Engines are created on first use and never destroyed:
// their libraries stay loaded until the process exits.
#include <mutex>
#include <string>

#include "core/engine.h"
#include "core/errors.h"
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
};

std::mutex g_mu;
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
  if (!slot.engine) slot.engine = slot.make().release();
  return *slot.engine;
}

}  // namespace

Engine& engine_for(const std::string& file, std::string_view forced) {
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

std::vector<std::pair<std::string, std::string>> loaded_engine_versions(bool probe_devices) {
  std::lock_guard lock(g_mu);
  // The board's `version` names libdnn/libhbucp before any model is loaded, as the vendor's
  // does; host engines are only reported once something loaded them.
  static bool probed = false;
  if (probe_devices && !probed) {
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
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& slot : g_slots)
    if (slot.engine) out.push_back({std::string(slot.name), slot.engine->version()});
  return out;
}

}  // namespace hbm
