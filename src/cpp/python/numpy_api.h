// Direct creation of numpy arrays through numpy's C-API table, for the run() hot path.
#pragma once
#include <cstdint>
#include <vector>

#include <nanobind/nanobind.h>

#include "core/dtype.h"

namespace hbm::py::numpy_api {

// A numpy array viewing `data` (shape in elements, strides in bytes) whose base is `owner`,
// or an invalid object when numpy's C API is unavailable or the dtype has no numpy type;
// callers then take nanobind's generic path.
nanobind::object wrap(void* data, DataType dtype, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& byte_strides, nanobind::handle owner);

// The memory and layout of a numpy array, read from the array object itself.
struct ArrayView {
  const void* data = nullptr;
  DataType dtype = DataType::MAX;
  std::vector<int64_t> shape;
  std::vector<int64_t> byte_strides;
};

enum class ViewResult {
  kViewed,            // `out` is filled
  kNotNumpy,          // not a numpy array: use nanobind's generic path
  kUnsupportedDtype,  // a numpy array whose dtype (or byte order) we cannot take
};

// True for numpy arrays (and subclasses).
bool is_array(nanobind::handle obj);

// Reads `obj` if it is a numpy array of native byte order with one of our dtypes.
ViewResult view(nanobind::handle obj, ArrayView& out);

}  // namespace hbm::py::numpy_api
