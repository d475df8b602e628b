#include "ov_api.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/errors.h"

namespace hbm::ov {
namespace {

constexpr const char* kInstallHint =
    "OpenVINO is needed to run .onnx models on the host CPU: pip install openvino "
    "(or hbm-runtime-universal[host]), or set HBM_OPENVINO_LIB_DIR to the folder holding "
    "libopenvino_c.so.";

// Every libopenvino_c.so* in `dir`, plain name first.
void add_candidates(const std::filesystem::path& dir, std::vector<std::string>& out) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("libopenvino_c.so", 0) == 0) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
}

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (auto dir = env_value("HBM_OPENVINO_LIB_DIR"); dir && !dir->empty()) {
    add_candidates(*dir, out);
    if (out.empty()) out.push_back(*dir + "/libopenvino_c.so");
    return out;  // an explicit override is the only place we look
  }
  // Set by the Python package: <site-packages>/openvino/libs of the installed wheel.
  if (auto dir = env_value("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"); dir && !dir->empty())
    add_candidates(*dir, out);
  out.push_back("libopenvino_c.so");
  return out;
}

Api load() {
  Api a{};
  // Kept loaded for the life of the process: OpenVINO's plugins and TBB threads use it.
  static DynLib lib;
  lib = DynLib::open_first(candidates(), false, kInstallHint);
  lib.bind(a.get_openvino_version, "ov_get_openvino_version");
  lib.bind(a.version_free, "ov_version_free");
  lib.bind(a.get_error_info, "ov_get_error_info");
  lib.bind_optional(a.get_last_err_msg, "ov_get_last_err_msg");
  lib.bind_optional(a.free_string, "ov_free");
  lib.bind(a.core_create, "ov_core_create");
  lib.bind(a.core_free, "ov_core_free");
  lib.bind(a.core_read_model, "ov_core_read_model");
  lib.bind(a.model_free, "ov_model_free");
  lib.bind(a.model_inputs_size, "ov_model_inputs_size");
  lib.bind(a.model_outputs_size, "ov_model_outputs_size");
  lib.bind(a.model_const_input_by_index, "ov_model_const_input_by_index");
  lib.bind(a.model_const_output_by_index, "ov_model_const_output_by_index");
  lib.bind(a.port_get_partial_shape, "ov_port_get_partial_shape");
  lib.bind(a.port_free, "ov_output_const_port_free");
  lib.bind(a.partial_shape_free, "ov_partial_shape_free");
  lib.bind(a.core_compile_model, "ov_core_compile_model");
  lib.bind(a.core_compile_model_from_file, "ov_core_compile_model_from_file");
  lib.bind(a.core_get_property, "ov_core_get_property");
  lib.bind(a.compiled_model_free, "ov_compiled_model_free");
  lib.bind(a.compiled_model_inputs_size, "ov_compiled_model_inputs_size");
  lib.bind(a.compiled_model_outputs_size, "ov_compiled_model_outputs_size");
  lib.bind(a.compiled_model_input_by_index, "ov_compiled_model_input_by_index");
  lib.bind(a.compiled_model_output_by_index, "ov_compiled_model_output_by_index");
  lib.bind(a.port_get_element_type, "ov_port_get_element_type");
  lib.bind(a.create_infer_request, "ov_compiled_model_create_infer_request");
  lib.bind(a.infer_request_free, "ov_infer_request_free");
  lib.bind(a.set_input_tensor_by_index, "ov_infer_request_set_input_tensor_by_index");
  lib.bind(a.set_output_tensor_by_index, "ov_infer_request_set_output_tensor_by_index");
  lib.bind(a.get_output_tensor_by_index, "ov_infer_request_get_output_tensor_by_index");
  lib.bind(a.infer, "ov_infer_request_infer");
  lib.bind(a.tensor_create_from_host_ptr, "ov_tensor_create_from_host_ptr");
  lib.bind(a.tensor_get_shape, "ov_tensor_get_shape");
  lib.bind(a.tensor_data, "ov_tensor_data");
  lib.bind(a.tensor_get_element_type, "ov_tensor_get_element_type");
  lib.bind(a.tensor_get_byte_size, "ov_tensor_get_byte_size");
  lib.bind(a.tensor_free, "ov_tensor_free");
  lib.bind(a.shape_create, "ov_shape_create");
  lib.bind(a.shape_free, "ov_shape_free");
  Version v{};
  if (a.get_openvino_version(&v) == 0) {
    a.version = v.build_number ? v.build_number : "";
    a.version_free(&v);
  }
  a.library_path = lib.path();
  return a;
}

}  // namespace

const Api& api() {
  // Every OpenVINO call goes through here: after the first load, no lock.
  static std::atomic<const Api*> ready{nullptr};
  if (const Api* a = ready.load(std::memory_order_acquire)) return *a;
  static std::mutex mu;
  static std::unique_ptr<Api> loaded;
  std::lock_guard lock(mu);
  if (!loaded) {
    loaded = std::make_unique<Api>(load());  // throws, leaving it to load next time
    ready.store(loaded.get(), std::memory_order_release);
  }
  return *loaded;
}

namespace {
// Statuses OpenVINO returns from a caught exception, the only ones that set its last error
// message (GENERAL_ERROR, NOT_IMPLEMENTED, REQUEST_BUSY, INFER_CANCELLED, UNKNOWN_EXCEPTION).
// The others, argument checks above all, leave a message from an older, unrelated call.
bool sets_message(Status status) {
  return status == -1 || status == -2 || status == -8 || status == -13 || status == -17;
}
}  // namespace

std::shared_mutex& call_mutex() {
  static std::shared_mutex* mu = new std::shared_mutex();  // never destroyed: used at exit
  return *mu;
}

std::recursive_mutex& mapping_mutex() {
  static std::recursive_mutex* mu = new std::recursive_mutex();  // never destroyed: used at exit
  return *mu;
}

void check(Status status, const std::string& what) {
  if (status == 0) return;
  const Api& a = api();
  // Both calls may return NULL: no message yet, or an OpenVINO without that string.
  const char* info = a.get_error_info(status);
  const std::string name = info ? info : "status " + std::to_string(status);
  std::string detail;
  if (a.get_last_err_msg && sets_message(status)) {
    if (const char* msg = a.get_last_err_msg()) {
      detail = msg;
      if (a.free_string) a.free_string(msg);  // a copy made for us
    }
  }
  throw EngineError(what + " failed: OpenVINO " + name + (detail.empty() ? "" : ": " + detail),
                    status, detail.empty() ? name : detail);
}

namespace {
std::optional<std::vector<int64_t>> shape_of(const Port& port, const std::string& what) {
  PartialShape ps{{0, 0}, nullptr};
  struct FreeDims {
    PartialShape& ps;
    ~FreeDims() { api().partial_shape_free(&ps); }
  } free_dims{ps};
  check(api().port_get_partial_shape(&port, &ps), "reading the shape of " + what);
  if (ps.rank.min != ps.rank.max || ps.rank.max < 0 || (ps.rank.max > 0 && !ps.dims))
    return std::nullopt;
  std::vector<int64_t> dims(static_cast<size_t>(ps.rank.max));
  for (size_t i = 0; i < dims.size(); ++i) {
    const Dimension& d = ps.dims[i];
    dims[i] = d.min == d.max && d.max >= 0 ? d.max : -1;  // a bounded range is dynamic too
  }
  return dims;
}
}  // namespace

std::optional<std::vector<int64_t>> port_shape(const ModelGraph& model, bool output, size_t index,
                                               const std::string& what) {
  const Api& a = api();
  Port* raw = nullptr;
  check(output ? a.model_const_output_by_index(&model, index, &raw)
               : a.model_const_input_by_index(&model, index, &raw),
        "finding " + what);
  Owned<Port> port(raw);
  return shape_of(*port, what);
}

size_t compiled_port_count(const CompiledModel& model, bool output) {
  size_t n = 0;
  check(output ? api().compiled_model_outputs_size(&model, &n)
               : api().compiled_model_inputs_size(&model, &n),
        output ? "counting compiled outputs" : "counting compiled inputs");
  return n;
}

PortFacts compiled_port(const CompiledModel& model, bool output, size_t index,
                        const std::string& what) {
  const Api& a = api();
  Port* raw = nullptr;
  check(output ? a.compiled_model_output_by_index(&model, index, &raw)
               : a.compiled_model_input_by_index(&model, index, &raw),
        "finding " + what + " in the compiled model");
  Owned<Port> port(raw);
  PortFacts facts;
  check(a.port_get_element_type(port.get(), &facts.type), "reading the element type of " + what);
  facts.shape = shape_of(*port, what);
  return facts;
}

ElementType element_type(DataType t) {
  switch (t) {
    case DataType::BOOL8: return 1;
    case DataType::F16: return 3;
    case DataType::F32: return 4;
    case DataType::F64: return 5;
    case DataType::S8: return 7;
    case DataType::S16: return 8;
    case DataType::S32: return 9;
    case DataType::S64: return 10;
    case DataType::U8: return 16;
    case DataType::U16: return 17;
    case DataType::U32: return 18;
    case DataType::U64: return 19;
    default: return -1;  // S4/U4: OpenVINO packs two per byte
  }
}

std::optional<DataType> from_element_type(ElementType t) {
  for (DataType d : {DataType::BOOL8, DataType::F16, DataType::F32, DataType::F64, DataType::S8,
                     DataType::S16, DataType::S32, DataType::S64, DataType::U8, DataType::U16,
                     DataType::U32, DataType::U64})
    if (element_type(d) == t) return d;
  return std::nullopt;
}

std::string element_type_name(ElementType t) {
  if (auto d = from_element_type(t)) return std::string(traits(*d).numpy_name);
  switch (t) {
    case 0: return "undefined";
    case 2: return "bf16";
    default: return "OpenVINO element type " + std::to_string(t);
  }
}

OwnedShape::OwnedShape(const std::vector<int64_t>& dims) : shape_{0, nullptr} {
  if (dims.empty()) return;  // a scalar: see the class comment
  check(api().shape_create(static_cast<int64_t>(dims.size()), dims.data(), &shape_), "ov_shape_create");
}

OwnedShape::~OwnedShape() {
  if (shape_.dims) api().shape_free(&shape_);
}

}  // namespace hbm::ov
