// ONNX tensors for the reader: only the few quantization parameters (scales, zero points) are
// ever decoded, from the model file or from its external data. Field numbers follow onnx.proto.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engines/openvino/protobuf_wire.h"

namespace hbm::onnx_detail {

enum OnnxType : int32_t {
  FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7, STRING = 8,
  BOOL = 9, FLOAT16 = 10, DOUBLE = 11, UINT32 = 12, UINT64 = 13, BFLOAT16 = 16, UINT4 = 21,
  INT4 = 22,
};

struct Tensor {
  Bytes msg;
  int32_t data_type = 0;        // TensorProto.data_type = 2
  uint64_t count = 1;           // product of dims = 1
  bool external = false;        // data_location = 14 is EXTERNAL (1)
  std::optional<Bytes> raw;     // raw_data = 9, or the bytes loaded from the external file
  std::vector<uint32_t> floats; // float_data = 4, as bits
  std::vector<uint64_t> ints;   // int32_data = 5 (also float16/bfloat16 bits)
  std::vector<uint64_t> doubles;  // double_data = 10, as bits
  std::vector<std::pair<Bytes, Bytes>> external_data;  // external_data = 13, key/value
  std::shared_ptr<const std::string> loaded;  // owns what `raw` views for external tensors
};

Tensor parse_tensor(Bytes msg);

// Points t.raw at the tensor's bytes read from its external file. Returns false, leaving
// t.raw empty, when they cannot be read: the reader's callers then report no quantization,
// as for any parameter not stored as a constant. A missing or misplaced file is not an error
// here: OpenVINO reports it, in its own words, when it reads the model.
bool load_external(Tensor& t, const std::filesystem::path& dir);

// Scale values as float32: float16 and bfloat16 (allowed since opset 19) widen exactly, double
// rounds; nullopt for other types and for external data that cannot be read.
std::optional<std::vector<float>> read_scale(const Tensor& t);

// Zero points of an integer tensor as int32; nullopt for types a zero point should not have
// and for external data that cannot be read.
std::optional<std::vector<int32_t>> read_zero_point(const Tensor& t);

}  // namespace hbm::onnx_detail
