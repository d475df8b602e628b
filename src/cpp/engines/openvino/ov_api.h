// The slice of OpenVINO's C API we use, declared here and resolved with dlopen, so the
// extension neither links nor needs OpenVINO until the first .onnx model is loaded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/dynlib.h"

namespace hbm::ov {

struct Core;             // ov_core_t
struct ModelGraph;       // ov_model_t
struct CompiledModel;    // ov_compiled_model_t
struct InferRequest;     // ov_infer_request_t
struct Tensor;           // ov_tensor_t
struct Port;             // ov_output_const_port_t

struct Shape {           // ov_shape_t
  int64_t rank;
  int64_t* dims;
};
struct Dimension {       // ov_dimension_t, also ov_rank_t: min == max when static
  int64_t min;
  int64_t max;           // -1 when unbounded
};
struct PartialShape {    // ov_partial_shape_t
  Dimension rank;
  Dimension* dims;       // rank.max entries; nullptr when the rank is dynamic
};
struct Version {         // ov_version_t
  const char* build_number;
  const char* description;
};

using Status = int;      // ov_status_e, 0 = OK
using ElementType = int; // ov_element_type_e

struct Api {
  Status (*get_openvino_version)(Version*);
  void (*version_free)(Version*);
  const char* (*get_error_info)(Status);
  const char* (*get_last_err_msg)();  // a copy to release with free_string
  void (*free_string)(const char*);   // ov_free
  Status (*core_create)(Core**);
  void (*core_free)(Core*);
  Status (*core_read_model)(const Core*, const char* xml, const char* bin, ModelGraph**);
  void (*model_free)(ModelGraph*);
  Status (*model_inputs_size)(const ModelGraph*, size_t*);
  Status (*model_outputs_size)(const ModelGraph*, size_t*);
  Status (*model_const_input_by_index)(const ModelGraph*, size_t, Port**);
  Status (*model_const_output_by_index)(const ModelGraph*, size_t, Port**);
  Status (*port_get_partial_shape)(const Port*, PartialShape*);
  void (*port_free)(Port*);
  void (*partial_shape_free)(PartialShape*);
  Status (*core_compile_model)(const Core*, const ModelGraph*, const char* device,
                               size_t property_args, CompiledModel**, ...);
  Status (*core_compile_model_from_file)(const Core*, const char* path, const char* device,
                                         size_t property_args, CompiledModel**, ...);
  Status (*core_get_property)(const Core*, const char* device, const char* key, char** value);
  void (*compiled_model_free)(CompiledModel*);
  Status (*compiled_model_inputs_size)(const CompiledModel*, size_t*);
  Status (*compiled_model_outputs_size)(const CompiledModel*, size_t*);
  Status (*compiled_model_input_by_index)(const CompiledModel*, size_t, Port**);
  Status (*compiled_model_output_by_index)(const CompiledModel*, size_t, Port**);
  Status (*port_get_element_type)(const Port*, ElementType*);
  Status (*create_infer_request)(const CompiledModel*, InferRequest**);
  void (*infer_request_free)(InferRequest*);
  Status (*set_input_tensor_by_index)(InferRequest*, size_t, const Tensor*);
  Status (*set_output_tensor_by_index)(InferRequest*, size_t, const Tensor*);
  Status (*get_output_tensor_by_index)(const InferRequest*, size_t, Tensor**);
  Status (*infer)(InferRequest*);
  Status (*tensor_create_from_host_ptr)(ElementType, Shape, void*, Tensor**);
  Status (*tensor_get_shape)(const Tensor*, Shape*);
  Status (*tensor_data)(const Tensor*, void**);
  Status (*tensor_get_element_type)(const Tensor*, ElementType*);
  Status (*tensor_get_byte_size)(const Tensor*, size_t*);
  void (*tensor_free)(Tensor*);
  Status (*shape_create)(int64_t rank, const int64_t* dims, Shape*);
  Status (*shape_free)(Shape*);

  std::string version;  // e.g. "2026.4.1-..."
  std::string library_path;
};

// Loads libopenvino_c on first call; throws EngineUnavailable saying what to install.
const Api& api();

// Throws EngineError with OpenVINO's own message when `status` is not OK.
void check(Status status, const std::string& what);

// Runs an OpenVINO call that may fail with a message. OpenVINO keeps one last-error message per
// process, so a concurrent failure could overwrite ours before we read it: a failing call is
// run once more while no other call of ours is in flight, and only that failure's message is
// read. Throws EngineError naming what(), which is only built on failure.
std::shared_mutex& call_mutex();
template <class Call, class What>
void call(Call&& fn, What&& what) {
  Status status;
  {
    std::shared_lock lock(call_mutex());
    status = fn();
  }
  if (status == 0) return;
  std::unique_lock lock(call_mutex());
  status = fn();
  if (status != 0) check(status, what());
}

// The shape OpenVINO inferred for input or output `index` of a model read from file: -1 for
// a dynamic dim, nullopt when even the rank is dynamic. `what` names the tensor for errors.
std::optional<std::vector<int64_t>> port_shape(const ModelGraph& model, bool output, size_t index,
                                               const std::string& what);

// What the compiled model computes for input or output `index`: its element type and shape
// (as port_shape). This, not the file's declaration, is what an inference produces.
struct PortFacts {
  ElementType type = 0;
  std::optional<std::vector<int64_t>> shape;
};
size_t compiled_port_count(const CompiledModel& model, bool output);
PortFacts compiled_port(const CompiledModel& model, bool output, size_t index,
                        const std::string& what);

// OpenVINO's element type for ours; -1 when OpenVINO cannot hold it as one byte per item.
ElementType element_type(DataType t);
// Ours for OpenVINO's; nullopt for types we have no equivalent of (bf16, packed 4-bit, ...).
std::optional<DataType> from_element_type(ElementType t);
// "f32", "bf16", ... for messages.
std::string element_type_name(ElementType t);

// Held while a compile may map the blobs of a read-only cache entry (which every load of it maps
// in place) and until their pages are released (see ov_cache::release_mapped_pages), and while
// a compiled model is freed: so that no such mapping is unmapped, and its addresses reused,
// between reading /proc/self/maps and madvise(). Compiles from a private directory need not.
std::recursive_mutex& mapping_mutex();

// unique_ptr deleters that call the matching *_free.
struct Free {
  void operator()(Core* p) const { api().core_free(p); }
  void operator()(ModelGraph* p) const { api().model_free(p); }
  void operator()(CompiledModel* p) const {
    std::lock_guard lock(mapping_mutex());
    api().compiled_model_free(p);
  }
  void operator()(InferRequest* p) const { api().infer_request_free(p); }
  void operator()(Tensor* p) const { api().tensor_free(p); }
  void operator()(Port* p) const { api().port_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

// An ov_shape_t that frees itself. A scalar is {0, nullptr}: ov_shape_create refuses rank 0,
// while ov_tensor_create_from_host_ptr takes it (it copies `rank` dims), and
// ov_tensor_get_shape leaves a rank-0 shape untouched (its own ov_shape_create call fails).
class OwnedShape {
 public:
  OwnedShape() : shape_{0, nullptr} {}
  explicit OwnedShape(const std::vector<int64_t>& dims);
  ~OwnedShape();
  OwnedShape(const OwnedShape&) = delete;
  OwnedShape& operator=(const OwnedShape&) = delete;
  Shape* out() { return &shape_; }
  const Shape& get() const { return shape_; }
  std::vector<int64_t> dims() const {
    if (!shape_.dims) return {};
    return {shape_.dims, shape_.dims + shape_.rank};
  }

 private:
  Shape shape_;
};

}  // namespace hbm::ov
