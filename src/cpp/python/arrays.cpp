#include "arrays.h"

#include <mutex>
#include <string>
#include <unordered_map>

#include <nanobind/ndarray.h>

#include "core/errors.h"
#include "errors.h"
#include "numpy_api.h"

namespace nb = nanobind;

namespace hbm::py {
namespace {

std::string dl_name(nb::dlpack::dtype t) {
  switch (t.code) {
    case static_cast<uint8_t>(nb::dlpack::dtype_code::Int): return "int" + std::to_string(t.bits);
    case static_cast<uint8_t>(nb::dlpack::dtype_code::UInt): return "uint" + std::to_string(t.bits);
    case static_cast<uint8_t>(nb::dlpack::dtype_code::Float): return "float" + std::to_string(t.bits);
    case static_cast<uint8_t>(nb::dlpack::dtype_code::Bool): return "bool";
    case static_cast<uint8_t>(nb::dlpack::dtype_code::Complex): return "complex" + std::to_string(t.bits);
    case static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat): return "bfloat" + std::to_string(t.bits);
    default: return "dlpack type code " + std::to_string(t.code);
  }
}

nb::dlpack::dtype dl_dtype(DataType t) {
  const DTypeTraits& tr = traits(t);
  // S4/U4 travel as one value per byte.
  uint8_t bits = tr.dl_bits ? tr.dl_bits : 8;
  return nb::dlpack::dtype{static_cast<uint8_t>(tr.dl_code), bits, 1};
}

// Engine input memory handed out by input_buffers() and still alive, by address, with
// its layout. An entry is removed when its array dies (see to_device_numpy).
struct DeviceLayout {
  std::vector<int64_t> shape, strides;
};
std::mutex g_device_mu;
std::unordered_map<const void*, DeviceLayout> g_device_inputs;

// True when the array is exactly one of those buffers (not a view with another layout).
bool is_device_input(const void* p, const std::vector<int64_t>& shape,
                     const std::vector<int64_t>& byte_strides) {
  std::lock_guard lock(g_device_mu);
  auto it = g_device_inputs.find(p);
  return it != g_device_inputs.end() && it->second.shape == shape &&
         it->second.strides == byte_strides;
}

// What a numpy array made by to_numpy keeps alive.
struct ArrayOwner {
  std::shared_ptr<void> memory;
  const void* device_key = nullptr;  // registered device input, forgotten with the array
  ~ArrayOwner() {
    if (!device_key) return;
    std::lock_guard lock(g_device_mu);
    g_device_inputs.erase(device_key);
  }
};

nb::object make_numpy(OutputTensor&& t, bool device_input) {
  auto* owner = new ArrayOwner{std::move(t.owner), nullptr};
  if (device_input) {
    std::lock_guard lock(g_device_mu);
    g_device_inputs[t.data] = DeviceLayout{t.shape, t.strides};
    owner->device_key = t.data;
  }
  nb::capsule capsule(owner, [](void* p) noexcept { delete static_cast<ArrayOwner*>(p); });
  if (nb::object fast = numpy_api::wrap(t.data, t.dtype, t.shape, t.strides, capsule);
      fast.is_valid())
    return fast;
  const size_t ndim = t.shape.size();
  const int64_t item = static_cast<int64_t>(element_size(t.dtype));
  std::vector<size_t> shape(ndim);
  std::vector<int64_t> strides(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    shape[i] = static_cast<size_t>(t.shape[i]);
    strides[i] = t.strides[i] / item;  // element strides; padded rows stay padded
  }
  nb::ndarray<nb::numpy> arr(t.data, ndim, shape.data(), capsule, strides.data(), dl_dtype(t.dtype));
  return arr.cast();
}

std::string input_label(const TensorInfo& tensor, const std::string& model) {
  return "input '" + tensor.name + "' of model '" + model + "'";
}

// Any DLPack producer or __array_interface__ object, through nanobind.
numpy_api::ArrayView generic_view(nb::handle obj, const TensorInfo& tensor,
                                   const std::string& model, KeepAlive& keep) {
  nb::ndarray<nb::ro> arr;
  bool ok = nb::try_cast(obj, arr, false);
  if (!ok && (nb::hasattr(obj, "__array_interface__") || nb::hasattr(obj, "__array_struct__"))) {
    // numpy views such objects without copying or converting them.
    nb::object view = nb::module_::import_("numpy").attr("asarray")(obj);
    ok = nb::try_cast(view, arr, false);
  }
  if (!ok) {
    std::string type_name = nb::type_name(obj.type()).c_str();
    throw nb::type_error((input_label(tensor, model) +
                          ": expected a numpy array or a DLPack tensor, got " + type_name)
                             .c_str());
  }
  if (arr.device_type() != nb::device::cpu::value)
    throw InvalidArgument(input_label(tensor, model) +
                          ": the array is not in CPU memory (DLPack device type " +
                          std::to_string(arr.device_type()) + ")");
  const nb::dlpack::dtype dt = arr.dtype();
  numpy_api::ArrayView out;
  out.dtype = dt.lanes == 1 ? from_dlpack(static_cast<DLCode>(dt.code), dt.bits) : DataType::MAX;
  if (out.dtype == DataType::MAX)
    throw InvalidArgument(input_label(tensor, model) + ": dtype " + dl_name(dt) +
                          " is not supported, expected " +
                          std::string(traits(tensor.dtype).numpy_name) + " (" +
                          std::string(dtype_name(tensor.dtype)) + ")");
  const int64_t item = static_cast<int64_t>(element_size(out.dtype));
  out.data = static_cast<const char*>(arr.data()) + arr.byte_offset();
  for (size_t i = 0; i < arr.ndim(); ++i) {
    out.shape.push_back(static_cast<int64_t>(arr.shape(i)));
    out.byte_strides.push_back(arr.stride(i) * item);
  }
  // The ndarray handle references the producer, which keeps the memory alive.
  keep.arrays.push_back(std::move(arr));
  return out;
}

}  // namespace

InputView import_input(nb::handle obj, const TensorInfo& tensor, const std::string& model,
                       bool strided_ok, KeepAlive& keep) {
  numpy_api::ArrayView arr;
  switch (numpy_api::view(obj, arr)) {
    case numpy_api::ViewResult::kViewed:
      keep.objects.push_back(nb::borrow(obj));
      break;
    case numpy_api::ViewResult::kNotNumpy:
      arr = generic_view(obj, tensor, model, keep);
      break;
    case numpy_api::ViewResult::kUnsupportedDtype:
      throw InvalidArgument(input_label(tensor, model) + ": dtype " +
                            str_of(obj.attr("dtype")) + " is not supported, expected " +
                            std::string(traits(tensor.dtype).numpy_name) + " (" +
                            std::string(dtype_name(tensor.dtype)) + ")");
  }
  InputView view;
  view.dtype = arr.dtype;
  // 4-bit tensors are fed one value per byte, as int8/uint8 arrays.
  if ((tensor.dtype == DataType::S4 && view.dtype == DataType::S8) ||
      (tensor.dtype == DataType::U4 && view.dtype == DataType::U8))
    view.dtype = tensor.dtype;
  const size_t ndim = arr.shape.size();
  const int64_t item = static_cast<int64_t>(element_size(view.dtype));
  view.shape = std::move(arr.shape);
  size_t count = 1;
  for (int64_t d : view.shape) count *= static_cast<size_t>(d);
  view.nbytes = count * static_cast<size_t>(item);
  // C-contiguous (size-1 dims may have any stride) and aligned -> use the caller's memory.
  bool dense = reinterpret_cast<uintptr_t>(arr.data) % static_cast<uintptr_t>(item) == 0;
  int64_t expect = item;
  for (size_t i = ndim; dense && i-- > 0;) {
    if (view.shape[i] != 1 && arr.byte_strides[i] != expect) dense = false;
    expect *= view.shape[i];
  }
  if (dense || count == 0) {
    view.data = arr.data;
  } else if (strided_ok && is_device_input(arr.data, view.shape, arr.byte_strides)) {
    // The engine's own padded memory: it copies it (or, into the same model, skips the copy).
    view.data = arr.data;
    view.byte_strides = std::move(arr.byte_strides);
  } else {
    auto copy = std::make_unique<AlignedBuffer>(view.nbytes);
    copy_strided_to_dense(arr.data, view.shape, arr.byte_strides, static_cast<size_t>(item),
                          copy->data());
    view.data = copy->data();
    keep.copies.push_back(std::move(copy));
  }
  return view;
}

nb::object to_numpy(OutputTensor&& t) { return make_numpy(std::move(t), false); }

nb::object to_device_numpy(OutputTensor&& t) { return make_numpy(std::move(t), true); }

}  // namespace hbm::py
