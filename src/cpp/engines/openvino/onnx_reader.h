// Reads what hbm_runtime needs to know about an .onnx file (graph inputs/outputs, descriptions,
// quantization parameters) straight from the protobuf wire format, so the OpenVINO engine can
// describe a model without linking onnx or protobuf.
#pragma once
#include <string>

#include "core/model_info.h"

namespace hbm {

struct OnnxFileInfo {
  // name is left empty (the engine sets the file stem); file is the path as given;
  // desc is ModelProto.doc_string, else GraphProto.doc_string.
  ModelInfo model;
  // ModelProto.metadata_props as a JSON object string in file order, "" when there are none.
  std::string file_desc;
};

// Throws InvalidArgument naming the file when it cannot be read or is not an ONNX model, and
// naming the tensor when a graph input/output has a type ModelInfo cannot represent.
OnnxFileInfo read_onnx_file(const std::string& path);

// read_onnx_file(path).model.
ModelInfo read_onnx_info(const std::string& path);

}  // namespace hbm
