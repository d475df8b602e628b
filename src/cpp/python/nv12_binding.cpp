// _bgr_to_nv12 / _rgb_to_nv12: every argument is checked here, with the GIL held, before
// the kernel touches memory; the kernel then runs without the GIL while this frame holds
// references to every array involved. Arrays are read through numpy's own fields
// (numpy_api::view), never converted or copied.
#include "ops/nv12.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "errors.h"
#include "gil.h"
#include "numpy_api.h"
#include "ops_binding.h"

namespace nb = nanobind;

namespace hbm::py {
namespace {

constexpr const char* kImage = "image";
constexpr const char* kOutY = "out[0] (y)";
constexpr const char* kOutUV = "out[1] (uv)";

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

[[noreturn]] void value_error(const std::string& msg) { throw nb::value_error(msg.c_str()); }
[[noreturn]] void type_error(const std::string& msg) { throw nb::type_error(msg.c_str()); }

std::string type_name_of(nb::handle obj) {
  return obj.is_none() ? "None" : nb::type_name(obj.type()).c_str();
}

// A uint8 numpy array, the object that keeps its memory alive, and the byte range
// [first, last) its elements span.
struct Array {
  nb::object owner;
  numpy_api::ArrayView view;
  intptr_t first = 0, last = 0;
  int64_t dim(size_t i) const { return view.shape[i]; }
  ptrdiff_t stride(size_t i) const { return static_cast<ptrdiff_t>(view.byte_strides[i]); }
};

[[noreturn]] void wrong_dtype(const char* name, nb::handle arr) {
  type_error(std::string(name) + ": dtype " + str_of(arr.attr("dtype")) +
             " is not supported; expected uint8");
}

// `obj` read as a uint8 numpy array. With `allow_interface`, other objects exporting the array
// interface are viewed through numpy.asarray (which neither copies nor converts them).
Array import_array(nb::handle obj, const char* name, bool allow_interface) {
  Array a;
  switch (numpy_api::view(obj, a.view)) {
    case numpy_api::ViewResult::kViewed:
      a.owner = nb::borrow(obj);
      break;
    case numpy_api::ViewResult::kUnsupportedDtype:
      wrong_dtype(name, obj);
    case numpy_api::ViewResult::kNotNumpy: {
      const bool interface = allow_interface && !obj.is_none() &&
                             (nb::hasattr(obj, "__array_interface__") ||
                              nb::hasattr(obj, "__array_struct__"));
      if (!interface)
        type_error(std::string(name) + ": expected a numpy.ndarray" +
                   (allow_interface ? " (or an object exporting __array_interface__)" : "") +
                   ", got " + type_name_of(obj));
      nb::object arr = nb::module_::import_("numpy").attr("asarray")(obj);
      switch (numpy_api::view(arr, a.view)) {
        case numpy_api::ViewResult::kViewed: break;
        case numpy_api::ViewResult::kUnsupportedDtype: wrong_dtype(name, arr);
        case numpy_api::ViewResult::kNotNumpy:
          type_error(std::string(name) + ": numpy's C API could not be loaded");
      }
      a.owner = std::move(arr);
      break;
    }
  }
  if (a.view.dtype != DataType::U8)
    type_error(std::string(name) + ": dtype " + std::string(traits(a.view.dtype).numpy_name) +
               " is not supported; expected uint8");
  return a;
}

// The byte range of a non-empty array; ValueError when its strides overflow the address
// space (numpy's as_strided accepts anything).
void compute_range(Array& a, const char* name) {
  int64_t lo = 0, hi = 0;  // offsets of the lowest and highest element
  for (size_t i = 0; i < a.view.shape.size(); ++i) {
    const int64_t n = a.view.shape[i];
    int64_t span = 0;
    if (n > 1 && (__builtin_mul_overflow(a.view.byte_strides[i], n - 1, &span) ||
                  __builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi)))
      value_error(std::string(name) + ": strides " + shape_str(a.view.byte_strides) +
                  " are out of range for shape " + shape_str(a.view.shape));
  }
  const auto base = reinterpret_cast<intptr_t>(a.view.data);
  if (__builtin_add_overflow(base, lo, &a.first) || __builtin_add_overflow(base, hi, &a.last) ||
      __builtin_add_overflow(a.last, 1, &a.last))
    value_error(std::string(name) + ": strides " + shape_str(a.view.byte_strides) +
                " are out of range for shape " + shape_str(a.view.shape));
}

// The image: (H, W, 3) uint8 with H and W even and > 0. Any strides (flipped, broadcast,
// planar views are only read).
Array import_image(nb::handle obj) {
  Array a = import_array(obj, kImage, true);
  const std::vector<int64_t>& s = a.view.shape;
  if (s.size() != 3 || s[2] != 3)
    value_error(std::string(kImage) +
                ": expected shape (H, W, 3) with 3 colour channels, got shape " + shape_str(s));
  if (s[0] == 0 || s[1] == 0)
    value_error(std::string(kImage) + ": height and width must be > 0, got shape " + shape_str(s));
  if (s[0] % 2 != 0 || s[1] % 2 != 0) {
    std::string odd = s[0] % 2 ? "height " + std::to_string(s[0]) : "";
    if (s[1] % 2) odd += (odd.empty() ? "width " : " and width ") + std::to_string(s[1]);
    value_error(std::string(kImage) + ": " + odd + (s[0] % 2 && s[1] % 2 ? " are" : " is") +
                " odd (shape " + shape_str(s) +
                "); NV12 keeps one U,V pair per 2x2 block, so height and width must be even "
                "(crop or resize the image first)");
  }
  compute_range(a, kImage);
  return a;
}

// One caller-given plane: a writable uint8 numpy array of one of `shapes`, whose elements
// are at distinct addresses.
Array import_output(nb::handle obj, const char* name,
                    const std::vector<std::vector<int64_t>>& shapes) {
  if (obj.is_none())
    type_error(std::string(name) + ": expected a numpy.ndarray, got None (pass out=None to "
                                   "have both planes allocated)");
  Array a = import_array(obj, name, false);
  if (std::find(shapes.begin(), shapes.end(), a.view.shape) == shapes.end()) {
    std::string expected;
    for (size_t i = 0; i < shapes.size(); ++i)
      expected += (i ? " or " : "") + shape_str(shapes[i]);
    value_error(std::string(name) + ": expected shape " + expected + " for this image, got " +
                shape_str(a.view.shape));
  }
  if (!nb::cast<bool>(obj.attr("flags").attr("writeable")))
    value_error(std::string(name) + ": the array is read-only");
  compute_range(a, name);
  // Sufficient for distinct addresses: each stride (by size) clears everything spanned by the
  // smaller ones. Rejects zero strides (broadcast views) and other self-overlapping layouts.
  std::vector<size_t> dims;
  for (size_t i = 0; i < a.view.shape.size(); ++i)
    if (a.view.shape[i] > 1) dims.push_back(i);
  std::sort(dims.begin(), dims.end(), [&](size_t x, size_t y) {
    return std::llabs(a.view.byte_strides[x]) < std::llabs(a.view.byte_strides[y]);
  });
  int64_t covered = 1;  // bytes
  for (size_t i : dims) {
    const int64_t step = std::llabs(a.view.byte_strides[i]);  // no INT64_MIN: range checked
    if (step < covered)
      value_error(std::string(name) + ": strides " + shape_str(a.view.byte_strides) +
                  " make several elements share memory");
    covered += step * (a.view.shape[i] - 1);  // bounded by the range computed above
  }
  return a;
}

void check_disjoint(const Array& a, const char* a_name, const Array& b, const char* b_name) {
  if (a.first < b.last && b.first < a.last)
    value_error(std::string(a_name) + " shares memory with " + b_name +
                "; the output planes must not overlap the image or each other");
}

Array new_plane(nb::tuple shape, const char* name) {
  nb::object arr = nb::module_::import_("numpy").attr("empty")(shape, nb::str("uint8"));
  Array a = import_array(arr, name, false);
  compute_range(a, name);
  return a;
}

nb::tuple to_nv12(nb::handle image, nb::handle out_y, nb::handle out_uv, ops::ColorOrder order) {
  const Array img = import_image(image);
  const int64_t h = img.dim(0), w = img.dim(1);
  const std::vector<int64_t> y4{1, h, w, 1}, y2{h, w};
  const std::vector<int64_t> uv4{1, h / 2, w / 2, 2}, uv3{h / 2, w / 2, 2};
  Array y, uv;
  if (out_y.is_none() && out_uv.is_none()) {
    y = new_plane(nb::make_tuple(1, h, w, 1), kOutY);
    uv = new_plane(nb::make_tuple(1, h / 2, w / 2, 2), kOutUV);
  } else {
    y = import_output(out_y, kOutY, {y4, y2});
    uv = import_output(out_uv, kOutUV, {uv4, uv3});
    check_disjoint(y, kOutY, img, kImage);
    check_disjoint(uv, kOutUV, img, kImage);
    check_disjoint(y, kOutY, uv, kOutUV);
  }
  const size_t yr = y.view.shape.size() == 4 ? 1 : 0;    // index of the row dimension
  const size_t uvr = uv.view.shape.size() == 4 ? 1 : 0;
  const ops::ImageView src{static_cast<const uint8_t*>(img.view.data), img.stride(0), img.stride(1),
                           img.stride(2)};
  // Writable: checked above, or allocated here.
  const ops::YPlaneView yv{static_cast<uint8_t*>(const_cast<void*>(y.view.data)), y.stride(yr),
                           y.stride(yr + 1)};
  const ops::UVPlaneView uvv{static_cast<uint8_t*>(const_cast<void*>(uv.view.data)),
                             uv.stride(uvr), uv.stride(uvr + 1), uv.stride(uvr + 2)};
  {
    // img.owner, y.owner and uv.owner keep the three buffers alive meanwhile.
    GilRelease unlocked;
    ops::to_nv12(src, static_cast<size_t>(h), static_cast<size_t>(w), order, yv, uvv);
  }
  return nb::make_tuple(y.owner, uv.owner);
}

}  // namespace

// None reaches the checks (and their messages) for every argument.
void bind_nv12(nb::module_& m) {
  m.def(
      "_bgr_to_nv12",
      [](nb::handle image, nb::handle y, nb::handle uv) {
        return to_nv12(image, y, uv, ops::ColorOrder::kBGR);
      },
      nb::arg("image").none(), nb::arg("y").none(), nb::arg("uv").none(),
      nb::sig("def _bgr_to_nv12(image: object, y: object | None, uv: object | None) -> "
              "tuple[typing.Any, typing.Any]"),
      "BGR (H, W, 3) uint8 image -> (y, uv) NV12 planes, into y and uv when given.");
  m.def(
      "_rgb_to_nv12",
      [](nb::handle image, nb::handle y, nb::handle uv) {
        return to_nv12(image, y, uv, ops::ColorOrder::kRGB);
      },
      nb::arg("image").none(), nb::arg("y").none(), nb::arg("uv").none(),
      nb::sig("def _rgb_to_nv12(image: object, y: object | None, uv: object | None) -> "
              "tuple[typing.Any, typing.Any]"),
      "RGB (H, W, 3) uint8 image -> (y, uv) NV12 planes, into y and uv when given.");
}

}  // namespace hbm::py
