// _dequantize / _quantize: every argument is checked here, with the GIL held, before the
// kernels touch memory; the kernels then run without the GIL. Arrays are read through
// numpy's own fields (numpy_api::view), never converted: a wrong dtype is a TypeError.
#include "ops/quantize.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "errors.h"
#include "gil.h"
#include "numpy_api.h"
#include "ops_binding.h"

namespace nb = nanobind;

namespace hbm::py {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Bad values raise InvalidArgument (InvalidArgumentError, a ValueError, in Python) like every
// argument error of the package; bad types raise TypeError.
[[noreturn]] void value_error(const std::string& msg) { throw InvalidArgument(msg); }
[[noreturn]] void type_error(const std::string& msg) { throw nb::type_error(msg.c_str()); }

std::string type_name_of(nb::handle obj) { return nb::type_name(obj.type()).c_str(); }

// For the error message only: numpy_api::view did not recognise the object.
bool is_numpy_array(nb::handle obj) {
  nb::object ndarray = nb::module_::import_("numpy").attr("ndarray");
  const int r = PyObject_IsInstance(obj.ptr(), ndarray.ptr());
  if (r < 0) PyErr_Clear();
  return r == 1;
}

// A numpy array with its strides in elements (0 for dimensions of extent 1, whose stride
// numpy leaves arbitrary) and the byte range it spans.
struct Array {
  numpy_api::ArrayView view;
  size_t item = 0;
  std::vector<int64_t> strides;
  intptr_t first = 0, last = 0;  // addresses of the lowest byte and one past the highest
  bool empty = false;
};

Array import_array(nb::handle obj, const std::string& name, bool (*accept)(DataType),
                   const char* expected) {
  Array a;
  switch (numpy_api::view(obj, a.view)) {
    case numpy_api::ViewResult::kViewed: break;
    case numpy_api::ViewResult::kNotNumpy:
      if (is_numpy_array(obj)) type_error(name + ": numpy's C API could not be loaded");
      type_error(name + ": expected a numpy.ndarray, got " + type_name_of(obj));
    case numpy_api::ViewResult::kUnsupportedDtype:
      type_error(name + ": dtype " + str_of(obj.attr("dtype")) + " is not supported; expected " +
                 expected);
  }
  if (!accept(a.view.dtype))
    type_error(name + ": dtype " + std::string(traits(a.view.dtype).numpy_name) +
               " is not supported; expected " + expected);
  a.item = element_size(a.view.dtype);
  const auto item = static_cast<int64_t>(a.item);
  if (reinterpret_cast<uintptr_t>(a.view.data) % a.item != 0)
    value_error(name + ": the data is not aligned to its " + std::to_string(item) +
                "-byte elements; pass a copy (" + name + ".copy())");
  const size_t nd = a.view.shape.size();
  a.strides.assign(nd, 0);
  int64_t lo = 0, hi = 0;  // byte offsets of the first byte of the lowest / highest element
  for (size_t i = 0; i < nd; ++i) {
    const int64_t n = a.view.shape[i], stride = a.view.byte_strides[i];
    if (n == 0) a.empty = true;
    if (n <= 1) continue;
    if (stride == INT64_MIN)
      value_error(name + ": strides " + shape_str(a.view.byte_strides) + " are out of range");
    if (stride % item != 0)
      value_error(name + ": byte strides " + shape_str(a.view.byte_strides) +
                  " are not multiples of the " + std::to_string(item) + "-byte element size");
    int64_t span = 0;
    if (__builtin_mul_overflow(stride, n - 1, &span) ||
        __builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi))
      value_error(name + ": strides " + shape_str(a.view.byte_strides) + " are out of range");
    a.strides[i] = stride / item;
  }
  const auto base = reinterpret_cast<intptr_t>(a.view.data);
  if (!a.empty && (__builtin_add_overflow(base, lo, &a.first) ||
                   __builtin_add_overflow(base, hi, &a.last) ||
                   __builtin_add_overflow(a.last, item, &a.last)))
    value_error(name + ": strides " + shape_str(a.view.byte_strides) + " are out of range");
  return a;
}

// The destination: same shape as the source, writable, no two elements at one address,
// nothing shared with the source.
void check_output(nb::handle obj, const Array& out, const Array& src,
                  const std::string& src_name) {
  if (out.view.shape != src.view.shape)
    value_error("out: shape " + shape_str(out.view.shape) + " does not match " + src_name +
                ".shape " + shape_str(src.view.shape));
  if (!nb::cast<bool>(obj.attr("flags").attr("writeable")))
    value_error("out: the array is read-only");
  if (out.empty) return;
  // Sufficient for distinct addresses: each stride (by size) clears everything spanned by
  // the smaller ones. Rejects zero strides (broadcast views) and interleaved layouts.
  std::vector<size_t> steps;
  for (size_t i = 0; i < out.strides.size(); ++i)
    if (out.view.shape[i] > 1) steps.push_back(i);
  std::sort(steps.begin(), steps.end(), [&](size_t x, size_t y) {
    return std::abs(out.strides[x]) < std::abs(out.strides[y]);
  });
  int64_t covered = 1;  // elements
  for (size_t i : steps) {
    const int64_t step = std::abs(out.strides[i]);
    if (step < covered)
      value_error("out: strides " + shape_str(out.view.byte_strides) +
                  " make several elements share memory");
    covered += step * (out.view.shape[i] - 1);  // no overflow: bounded by the byte span
  }
  if (!src.empty && out.first < src.last && src.first < out.last)
    value_error("out: shares memory with " + src_name + "; pass a separate array");
}

// A 1-D float32 / int32 parameter array, read element by element (any strides).
template <class T>
std::vector<T> import_params(nb::handle obj, const char* name, DataType dtype) {
  numpy_api::ArrayView v;
  const std::string expected =
      "a 1-D " + std::string(traits(dtype).numpy_name) + " numpy.ndarray";
  if (numpy_api::view(obj, v) != numpy_api::ViewResult::kViewed)
    type_error(std::string(name) + ": expected " + expected + ", got " + type_name_of(obj));
  if (v.dtype != dtype)
    type_error(std::string(name) + ": expected " + expected + ", got dtype " +
               std::string(traits(v.dtype).numpy_name));
  if (v.shape.size() != 1)
    value_error(std::string(name) + ": expected " + expected + ", got shape " +
                shape_str(v.shape));
  std::vector<T> values(static_cast<size_t>(v.shape[0]));
  const char* p = static_cast<const char*>(v.data);
  for (size_t i = 0; i < values.size(); ++i)
    std::memcpy(&values[i], p + static_cast<int64_t>(i) * v.byte_strides[0], sizeof(T));
  return values;
}

// None, or an integer in [-ndim, ndim) made non-negative.
std::optional<size_t> import_axis(nb::handle obj, const Array& src, const std::string& src_name) {
  if (obj.is_none()) return std::nullopt;
  if (PyBool_Check(obj.ptr())) type_error("axis: expected an int or None, got bool");
  PyObject* index = PyNumber_Index(obj.ptr());
  if (!index) {
    PyErr_Clear();
    type_error("axis: expected an int or None, got " + type_name_of(obj));
  }
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
  const std::string text = str_of(index);
  Py_DECREF(index);
  const auto nd = static_cast<long long>(src.view.shape.size());
  if (overflow || value < -nd || value >= nd)
    value_error("axis: " + text + " is out of range for " + src_name + " of " +
                std::to_string(nd) + " dimension" + (nd == 1 ? "" : "s") + ", shape " +
                shape_str(src.view.shape));
  return static_cast<size_t>(value < 0 ? value + nd : value);
}

bool is_float32(DataType t) { return t == DataType::F32; }

constexpr const char* kIntegerTypes = "int8, uint8, int16, uint16, int32 or uint32";

void dequantize_py(nb::handle q, nb::handle scale, nb::handle zero_point, nb::handle axis,
                   nb::handle out) {
  const Array src = import_array(q, "q", ops::is_quantized_type, kIntegerTypes);
  const Array dst = import_array(out, "out", is_float32, "float32");
  check_output(out, dst, src, "q");
  const std::optional<size_t> ax = import_axis(axis, src, "q");
  const auto s = import_params<float>(scale, "scale", DataType::F32);
  const auto z = import_params<int32_t>(zero_point, "zero_point", DataType::S32);
  GilRelease release;
  ops::dequantize(src.view.dtype, {src.view.data, src.strides},
                  {static_cast<float*>(const_cast<void*>(dst.view.data)), dst.strides},
                  src.view.shape, ax, s, z);
}

void quantize_py(nb::handle x, nb::handle scale, nb::handle zero_point, nb::handle axis,
                 nb::handle out) {
  const Array src = import_array(x, "x", is_float32, "float32");
  const Array dst = import_array(out, "out", ops::is_quantized_type, kIntegerTypes);
  check_output(out, dst, src, "x");
  const std::optional<size_t> ax = import_axis(axis, src, "x");
  const auto s = import_params<float>(scale, "scale", DataType::F32);
  const auto z = import_params<int32_t>(zero_point, "zero_point", DataType::S32);
  GilRelease release;
  ops::quantize({static_cast<const float*>(src.view.data), src.strides}, dst.view.dtype,
                {const_cast<void*>(dst.view.data), dst.strides}, src.view.shape, ax, s, z);
}

}  // namespace

void bind_quantize(nb::module_& m) {
  using namespace nb::literals;
  m.def("_dequantize", &dequantize_py, "q"_a, "scale"_a, "zero_point"_a, "axis"_a.none(),
        "out"_a,
        "Fills float32 `out` with (q - zero_point) * scale (see hbm_runtime.dequantize); "
        "scale: 1-D float32, zero_point: 1-D int32 (empty: 0).");
  m.def("_quantize", &quantize_py, "x"_a, "scale"_a, "zero_point"_a, "axis"_a.none(), "out"_a,
        "Fills integer `out` with saturate(rint(x / scale) + zero_point) (see "
        "hbm_runtime.quantize); scale: 1-D float32, zero_point: 1-D int32 (empty: 0).");
}

}  // namespace hbm::py
