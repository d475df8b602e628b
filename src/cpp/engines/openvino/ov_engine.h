// Host engine: .onnx models on the CPU through OpenVINO's C API.
#pragma once
#include <memory>

#include "core/engine.h"

namespace hbm {
std::unique_ptr<Engine> make_openvino_engine();
}
