#include "model_info.h"

#include <algorithm>
#include <unordered_map>

namespace hbm {

bool TensorInfo::has_dynamic_dims() const {
  return std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; });
}

std::vector<int64_t> TensorInfo::dense_strides(const std::vector<int64_t>& concrete_shape) const {
  std::vector<int64_t> out(concrete_shape.size());
  int64_t step = static_cast<int64_t>(element_size(dtype));
  for (size_t i = concrete_shape.size(); i-- > 0;) {
    out[i] = step;
    step *= concrete_shape[i];
  }
  return out;
}

std::vector<size_t> vendor_dict_order(const std::vector<std::string>& names) {
  // The same container the vendor's binding uses, filled the same way: its iteration order
  // (std::hash<std::string>, the prime rehash policy, new nodes at their bucket's front) is
  // libstdc++'s, identical on x86_64 and aarch64.
  std::unordered_map<std::string, size_t> map;
  for (size_t i = 0; i < names.size(); ++i) map.emplace(names[i], i);
  std::vector<size_t> order;
  if (map.size() != names.size()) {  // names repeat (never for a loaded model): keep them all
    for (size_t i = 0; i < names.size(); ++i) order.push_back(i);
    return order;
  }
  order.reserve(map.size());
  for (const auto& [name, index] : map) order.push_back(index);
  return order;
}

std::vector<size_t> vendor_dict_order(const std::vector<TensorInfo>& tensors) {
  std::vector<std::string> names;
  names.reserve(tensors.size());
  for (const auto& t : tensors) names.push_back(t.name);
  return vendor_dict_order(names);
}

std::string format_shape(const std::vector<int64_t>& shape, bool as_tuple) {
  std::string s = as_tuple ? "(" : "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (as_tuple && shape.size() == 1) s += ",";
  return s + (as_tuple ? ")" : "]");
}

}  // namespace hbm
