#include "ov_model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/errors.h"
#include "core/scheduler.h"
#include "onnx_reader.h"

namespace hbm {
namespace {

// Memory an output is written into, and the OpenVINO tensor wrapping it.
struct OutputBuffer {
  std::shared_ptr<AlignedBuffer> memory;
  ov::Owned<ov::Tensor> tensor;
};

// One infer request with the tensors last bound to it, so that a caller passing the same
// buffers again (the common loop) pays for no re-wrapping.
struct RequestSlot {
  ov::Owned<ov::InferRequest> request;
  std::vector<ov::Owned<ov::Tensor>> in_tensors;
  std::vector<const void*> in_data;
  std::vector<std::vector<int64_t>> in_shapes;
  std::vector<OutputBuffer> outputs;  // static-shape outputs only

  // True when the caller holds none of this slot's output memory.
  bool outputs_free() const {
    for (const auto& o : outputs)
      if (o.memory && o.memory.use_count() > 1) return false;
    return true;
  }
};

// Idle requests kept per model. Binding a new output tensor costs OpenVINO several
// microseconds, so a caller who keeps the last result while running again is served by
// another request whose outputs are free rather than by rebinding.
constexpr size_t kIdleSlots = 4;

class OvModel final : public Model {
 public:
  OvModel(ModelInfo info, ov::Owned<ov::CompiledModel> compiled)
      : info_(std::move(info)), compiled_(std::move(compiled)) {
    for (const auto& t : info_.outputs) static_out_.push_back(!t.has_dynamic_dims());
    release(make_slot());  // fail at load, not at first run
  }

  const ModelInfo& info() const override { return info_; }

  std::vector<OutputTensor> infer(std::span<const InputView> inputs, ModelTimings& t) override {
    auto t0 = Clock::now();
    std::unique_ptr<RequestSlot> slot = acquire();
    SlotReturn give_back{this, slot};
    bind_inputs(*slot, inputs);
    bind_outputs(*slot);
    auto t1 = Clock::now();
    ov::check(ov::api().infer(slot->request.get()), "inference of model '" + info_.name + "'");
    auto t2 = Clock::now();
    std::vector<OutputTensor> outs = collect_outputs(*slot);
    auto t3 = Clock::now();
    t.prepare_us = micros_between(t0, t1);
    t.infer_us = micros_between(t1, t2);
    t.finish_us = micros_between(t2, t3);
    return outs;
  }

 private:
  struct SlotReturn {
    OvModel* model;
    std::unique_ptr<RequestSlot>& slot;
    ~SlotReturn() { model->release(std::move(slot)); }
  };

  std::unique_ptr<RequestSlot> make_slot() {
    auto slot = std::make_unique<RequestSlot>();
    ov::InferRequest* raw = nullptr;
    ov::check(ov::api().create_infer_request(compiled_.get(), &raw),
              "creating an infer request for model '" + info_.name + "'");
    slot->request.reset(raw);
    slot->in_tensors.resize(info_.inputs.size());
    slot->in_data.resize(info_.inputs.size(), nullptr);
    slot->in_shapes.resize(info_.inputs.size());
    slot->outputs.resize(info_.outputs.size());
    return slot;
  }

  std::unique_ptr<RequestSlot> acquire() {
    {
      std::lock_guard lock(mu_);
      for (size_t k = free_.size(); k-- > 0;) {
        if (free_[k]->outputs_free() || (k == 0 && free_.size() >= kIdleSlots)) {
          auto s = std::move(free_[k]);
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(k));
          return s;
        }
      }
    }
    return make_slot();
  }

  void release(std::unique_ptr<RequestSlot> slot) {
    if (!slot) return;
    std::lock_guard lock(mu_);
    free_.push_back(std::move(slot));
  }

  void bind_inputs(RequestSlot& s, std::span<const InputView> inputs) {
    const ov::Api& a = ov::api();
    for (size_t i = 0; i < inputs.size(); ++i) {
      const InputView& in = inputs[i];
      if (s.in_tensors[i] && s.in_data[i] == in.data && s.in_shapes[i] == in.shape) continue;
      ov::OwnedShape shape(in.shape);
      ov::Tensor* raw = nullptr;
      ov::check(a.tensor_create_from_host_ptr(ov::element_type(in.dtype), shape.get(),
                                              const_cast<void*>(in.data), &raw),
                "wrapping input '" + info_.inputs[i].name + "'");
      ov::Owned<ov::Tensor> tensor(raw);
      ov::check(a.set_input_tensor_by_index(s.request.get(), i, tensor.get()),
                "binding input '" + info_.inputs[i].name + "' of model '" + info_.name + "'");
      s.in_tensors[i] = std::move(tensor);
      s.in_data[i] = in.data;
      s.in_shapes[i] = in.shape;
    }
  }

  // Static outputs are written straight into memory we hand to the caller. A buffer the
  // caller still holds is replaced, never reused.
  void bind_outputs(RequestSlot& s) {
    for (size_t i = 0; i < info_.outputs.size(); ++i) {
      if (!static_out_[i] || (s.outputs[i].memory && s.outputs[i].memory.use_count() == 1)) continue;
      s.outputs[i] = new_output_buffer(i);
      ov::check(ov::api().set_output_tensor_by_index(s.request.get(), i, s.outputs[i].tensor.get()),
                "binding output '" + info_.outputs[i].name + "' of model '" + info_.name + "'");
    }
  }

  OutputBuffer new_output_buffer(size_t i) {
    const TensorInfo& ti = info_.outputs[i];
    size_t bytes = element_size(ti.dtype);
    for (int64_t d : ti.shape) bytes *= static_cast<size_t>(d);
    OutputBuffer out;
    out.memory = std::make_shared<AlignedBuffer>(bytes);
    ov::OwnedShape shape(ti.shape);
    ov::Tensor* raw = nullptr;
    ov::check(ov::api().tensor_create_from_host_ptr(ov::element_type(ti.dtype), shape.get(),
                                                    out.memory->data(), &raw),
              "allocating output '" + ti.name + "'");
    out.tensor.reset(raw);
    return out;
  }

  std::vector<OutputTensor> collect_outputs(RequestSlot& s) {
    const ov::Api& a = ov::api();
    std::vector<OutputTensor> outs(info_.outputs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      const TensorInfo& ti = info_.outputs[i];
      OutputTensor& o = outs[i];
      o.dtype = ti.dtype;
      if (static_out_[i]) {
        const OutputBuffer& b = s.outputs[i];
        o.shape = ti.shape;
        o.data = b.memory->data();
        o.owner = b.memory;
      } else {
        // Dynamic shape: OpenVINO owns the memory and may reallocate it next run: copy.
        ov::Tensor* raw = nullptr;
        ov::check(a.get_output_tensor_by_index(s.request.get(), i, &raw),
                  "reading output '" + ti.name + "' of model '" + info_.name + "'");
        ov::Owned<ov::Tensor> tensor(raw);
        ov::OwnedShape shape;
        ov::check(a.tensor_get_shape(tensor.get(), shape.out()), "reading output shape");
        o.shape = shape.dims();
        void* src = nullptr;
        ov::check(a.tensor_data(tensor.get(), &src), "reading output data");
        size_t bytes = element_size(ti.dtype);
        for (int64_t d : o.shape) bytes *= static_cast<size_t>(d);
        auto buf = std::make_shared<AlignedBuffer>(bytes);
        if (bytes) std::memcpy(buf->data(), src, bytes);
        o.data = buf->data();
        o.owner = std::move(buf);
      }
      o.strides = ti.dense_strides(o.shape);
    }
    return outs;
  }

  ModelInfo info_;
  ov::Owned<ov::CompiledModel> compiled_;
  std::vector<bool> static_out_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RequestSlot>> free_;
};

void check_supported(const ModelInfo& mi) {
  for (const auto* list : {&mi.inputs, &mi.outputs})
    for (const auto& t : *list)
      if (ov::element_type(t.dtype) < 0)
        throw InvalidArgument("model '" + mi.name + "': tensor '" + t.name + "' has type " +
                              std::string(dtype_name(t.dtype)) +
                              ", which the host engine cannot run");
}

}  // namespace

std::shared_ptr<Model> load_ov_model(const ov::Core& core, const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw InvalidArgument("model file '" + file + "' does not exist or is not a file");
  OnnxFileInfo parsed = read_onnx_file(file);
  ModelInfo info = std::move(parsed.model);
  info.name = std::filesystem::path(file).stem().string();
  info.file = file;
  info.file_desc = std::move(parsed.file_desc);
  check_supported(info);

  const ov::Api& a = ov::api();
  ov::ModelGraph* graph_raw = nullptr;
  ov::check(a.core_read_model(&core, file.c_str(), nullptr, &graph_raw),
            "reading model '" + file + "'");
  ov::Owned<ov::ModelGraph> graph(graph_raw);
  // f32 so results match onnxruntime (the CPU default is bf16 on some CPUs). One stream of
  // one thread per host core: OpenVINO runs each sync inference on a stream's thread, so
  // one stream would serialise concurrent runs of the same model; our scheduler decides
  // what runs when. A single thread in all is avoided for dynamic inputs: OpenVINO's
  // single-thread mode skips runtime shape checks (an inconsistent shape then yields an
  // empty or wrong output instead of an error; seen with OpenVINO 2026.4).
  const bool dynamic = std::any_of(info.inputs.begin(), info.inputs.end(),
                                   [](const TensorInfo& t) { return t.has_dynamic_dims(); });
  const std::string streams = std::to_string(Scheduler::instance().cores());
  ov::CompiledModel* compiled_raw = nullptr;
  ov::Status status =
      dynamic && streams == "1"
          ? a.core_compile_model(&core, graph.get(), "CPU", 6, &compiled_raw,
                                 "INFERENCE_PRECISION_HINT", "f32", "NUM_STREAMS", "1",
                                 "ENABLE_CPU_PINNING", "NO")
          : a.core_compile_model(&core, graph.get(), "CPU", 8, &compiled_raw,
                                 "INFERENCE_PRECISION_HINT", "f32", "NUM_STREAMS", streams.c_str(),
                                 "INFERENCE_NUM_THREADS", streams.c_str(), "ENABLE_CPU_PINNING", "NO");
  ov::check(status, "compiling model '" + file + "'");
  return std::make_shared<OvModel>(std::move(info), ov::Owned<ov::CompiledModel>(compiled_raw));
}

}  // namespace hbm
