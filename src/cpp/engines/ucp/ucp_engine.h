// The BPU engine: `.hbm` models through libdnn.so + libhbucp.so (dlopen'd at run time).
//
// Environment:
//   HBM_UCP_LIB_DIR     load both libraries from this directory only (default: the loader
//                       path, then /usr/hobot/lib, then /usr/lib). Read by make_ucp_engine().
//   HBM_UCP_TIMEOUT_MS  hbUCPWaitTaskDone timeout in ms; unset or 0 = wait forever. Read by
//                       Engine::load(); applies to the models it loads.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/engine.h"

namespace hbm {

// Loads both libraries and resolves every symbol. Throws EngineUnavailable (naming the
// missing library or symbol and how to get it) when they are absent or incomplete.
// name() "ucp", hardware_scheduled() true, max_core_id() 3.
std::unique_ptr<Engine> make_ucp_engine();

// {file path as given to load(), that file's HBM description} for every file loaded
// together with `model` (one load() call), in load order. Empty for a non-UCP model.
// The bindings build `hbm_descs` from it.
std::vector<std::pair<std::string, std::string>> ucp_file_descs(const Model& model);

}  // namespace hbm
