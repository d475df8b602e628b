#include "model_info.h"

#include <algorithm>

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

std::vector<size_t> name_order(const std::vector<TensorInfo>& tensors) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  return order;
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
