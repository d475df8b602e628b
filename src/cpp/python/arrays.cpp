#include "arrays.h"

#include <mutex>
#include <string>
#include <unordered_map>

#include <nanobind/ndarray.h>

#include "core/errors.h"

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

}  // namespace

InputView import_input(nb::handle obj, const TensorInfo& tensor, const std::string& model,
                       KeepAlive& keep) {
  nb::ndarray<nb::ro> arr;
  bool ok = nb::try_cast(obj, arr, false);
  if (!ok && (nb::hasattr(obj, "__array_interface__") || nb::hasattr(obj, "__array_struct__"))) {
    // numpy views such objects without copying or converting them.
    nb::object view = nb::module_::import_("numpy").attr("asarray")(obj);
    ok = nb::try_cast(view, arr, false);
  }
  if (!ok) {
    std::string type_name = nb::type_name(obj.type()).c_str();
    throw nb::type_error(("input '" + tensor.name + "' of model '" + model +
                          "': expected a numpy array or a DLPack tensor, got " + type_name)
                             .c_str());
  }
  const std::string who = "input '" + tensor.name + "' of model '" + model + "'";
  if (arr.device_type() != nb::device::cpu::value)
    throw InvalidArgument(who + ": the array is not in CPU memory (DLPack device type " +
                          std::to_string(arr.device_type()) + ")");
  const nb::dlpack::dtype dt = arr.dtype();
  InputView view;
  view.dtype = dt.lanes == 1 ? from_dlpack(static_cast<DLCode>(dt.code), dt.bits) : DataType::MAX;
  // 4-bit tensors are fed one value per byte, as int8/uint8 arrays.
  if ((tensor.dtype == DataType::S4 && view.dtype == DataType::S8) ||
      (tensor.dtype == DataType::U4 && view.dtype == DataType::U8))
    view.dtype = tensor.dtype;
  if (view.dtype == DataType::MAX)
    throw InvalidArgument(who + ": dtype " + dl_name(dt) + " is not supported, expected " +
                          std::string(traits(tensor.dtype).numpy_name) + " (" +
                          std::string(dtype_name(tensor.dtype)) + ")");
  const size_t ndim = arr.ndim();
  const size_t item = element_size(view.dtype);
  view.shape.resize(ndim);
  size_t count = 1;
  for (size_t i = 0; i < ndim; ++i) {
    view.shape[i] = static_cast<int64_t>(arr.shape(i));
    count *= arr.shape(i);
  }
  view.nbytes = count * item;
  // C-contiguous (size-1 dims may have any stride) -> use the caller's memory as is.
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t i = ndim; i-- > 0;) {
    if (arr.shape(i) != 1 && arr.stride(i) != expect) {
      contiguous = false;
      break;
    }
    expect *= static_cast<int64_t>(arr.shape(i));
  }
  const char* base = static_cast<const char*>(arr.data()) + arr.byte_offset();
  std::vector<int64_t> byte_strides(ndim);
  for (size_t i = 0; i < ndim; ++i) byte_strides[i] = arr.stride(i) * static_cast<int64_t>(item);
  if (contiguous || count == 0 || is_device_input(base, view.shape, byte_strides)) {
    view.data = base;
  } else {
    auto copy = std::make_unique<AlignedBuffer>(view.nbytes);
    copy_strided_to_dense(base, view.shape, byte_strides, item, copy->data());
    view.data = copy->data();
    keep.copies.push_back(std::move(copy));
  }
  // The ndarray handle references the producer, which keeps the memory alive.
  keep.arrays.push_back(std::move(arr));
  return view;
}

nb::object to_numpy(OutputTensor&& t) { return make_numpy(std::move(t), false); }

nb::object to_device_numpy(OutputTensor&& t) { return make_numpy(std::move(t), true); }

}  // namespace hbm::py
