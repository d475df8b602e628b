// One compiled .onnx model and its pool of infer requests.
#pragma once
#include <memory>
#include <string>

#include "core/engine.h"
#include "ov_api.h"

namespace hbm {
std::shared_ptr<Model> load_ov_model(const ov::Core& core, const std::string& file);
// Called once before the engine's first OpenVINO call (see ov_model.cpp for why).
void hide_topology_from_tbb();
}
