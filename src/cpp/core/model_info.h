// What a model says about itself; filled by the engines, read by the bindings.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dtype.h"

namespace hbm {

struct QuantInfo {
  QuantType type = QuantType::NONE;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int32_t axis = 0;
};

struct TensorInfo {
  std::string name;
  std::string desc;
  DataType dtype = DataType::F32;
  std::vector<int64_t> shape;    // -1 = dynamic dim
  std::vector<int64_t> strides;  // bytes, outermost first; -1 = filled at run time
  QuantInfo quant;

  bool has_dynamic_dims() const;
  // Dense byte strides of a concrete shape with this tensor's element size.
  std::vector<int64_t> dense_strides(const std::vector<int64_t>& concrete_shape) const;
};

struct ModelInfo {
  std::string name;
  std::string desc;
  std::string file;       // path as the user gave it; "" when the engine cannot tell (below)
  std::string file_desc;  // description of that file (hbm_descs)
  // Set when several files were loaded together and the engine cannot tell which holds this
  // model (one packed BPU load: the library does not say): every file of that load with its
  // description, in load order. Empty otherwise.
  std::vector<std::pair<std::string, std::string>> loaded_with;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  // vendor_dict_order(inputs) / (outputs), filled once by the Runtime: the key order of the
  // dicts run() and input_buffers() return, kept off the per-call path.
  std::vector<size_t> input_dict_order;
  std::vector<size_t> output_dict_order;
};

// The order in which the vendor's package keys its per-tensor (and some per-model) dicts:
// the iteration order of a libstdc++ std::unordered_map<std::string, ...> filled with `names`
// in the given order (seen by running its binary; e.g. a, b -> b, a; output, 1310, 1312 ->
// 1310, 1312, output, as the manual prints). Indices into `names`. Name lists keep the
// model's order.
std::vector<size_t> vendor_dict_order(const std::vector<std::string>& names);
std::vector<size_t> vendor_dict_order(const std::vector<TensorInfo>& tensors);

// "[1, 3, 224, 224]" for messages, or "(1, 3, 224, 224)" as numpy prints shapes.
std::string format_shape(const std::vector<int64_t>& shape, bool as_tuple = false);

}  // namespace hbm
