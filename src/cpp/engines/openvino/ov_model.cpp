#include "ov_model.h"

#include <algorithm>
#include <cstdlib>
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

// A compiled copy of the model. With one stream and one thread OpenVINO runs a sync
// inference on the calling thread (no hop to a stream thread: the lowest latency) but one
// at a time per compiled model, so parallel runs of one model get a replica each.
struct Replica {
  ov::Owned<ov::CompiledModel> compiled;
  int busy = 0;  // inferences running on it
};

// One infer request with the tensors last bound to it, so that a caller passing the same
// buffers again (the common loop) pays for no re-wrapping.
struct RequestSlot {
  Replica* replica = nullptr;
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

// Idle requests kept per replica. Binding a new output tensor costs OpenVINO several
// microseconds, so a caller who keeps the last result while running again is served by
// another request whose outputs are free rather than by rebinding.
constexpr size_t kIdleSlots = 4;

ov::Owned<ov::CompiledModel> compile(const ov::Core& core, const ov::ModelGraph& graph,
                                     const ModelInfo& info);

class OvModel final : public Model {
 public:
  // unranked_out[i]: the rank of output i is unknown until a run, its metadata shape is [].
  OvModel(ModelInfo info, const ov::Core& core, ov::Owned<ov::ModelGraph> graph,
          const std::vector<bool>& unranked_out)
      : info_(std::move(info)), core_(core), graph_(std::move(graph)) {
    for (size_t i = 0; i < info_.outputs.size(); ++i)
      static_out_.push_back(!unranked_out[i] && !info_.outputs[i].has_dynamic_dims());
    replicas_.push_back(std::make_unique<Replica>(Replica{compile(core_, *graph_, info_)}));
    free_.push_back(make_slot(replicas_[0].get()));  // fail at load, not at first run
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
    t.started_at = monotonic_seconds(t0);
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

  std::unique_ptr<RequestSlot> make_slot(Replica* replica) {
    auto slot = std::make_unique<RequestSlot>();
    slot->replica = replica;
    ov::InferRequest* raw = nullptr;
    ov::check(ov::api().create_infer_request(replica->compiled.get(), &raw),
              "creating an infer request for model '" + info_.name + "'");
    slot->request.reset(raw);
    slot->in_tensors.resize(info_.inputs.size());
    slot->in_data.resize(info_.inputs.size(), nullptr);
    slot->in_shapes.resize(info_.inputs.size());
    slot->outputs.resize(info_.outputs.size());
    return slot;
  }

  // An idle replica, else a new one while there are fewer than host cores, else the least
  // busy one. Needs the lock; may drop it while compiling.
  Replica* pick_replica(std::unique_lock<std::mutex>& lock) {
    Replica* least = nullptr;
    for (auto& r : replicas_) {
      if (r->busy == 0) return r.get();
      if (!least || r->busy < least->busy) least = r.get();
    }
    if (growing_ || replicas_.size() >= static_cast<size_t>(Scheduler::instance().cores()))
      return least;
    growing_ = true;
    lock.unlock();
    std::unique_ptr<Replica> fresh;
    try {
      fresh = std::make_unique<Replica>(Replica{compile(core_, *graph_, info_)});
    } catch (...) {
      lock.lock();
      growing_ = false;
      return least;  // run on an existing copy rather than fail the call
    }
    lock.lock();
    growing_ = false;
    replicas_.push_back(std::move(fresh));
    return replicas_.back().get();
  }

  std::unique_ptr<RequestSlot> acquire() {
    std::unique_lock lock(mu_);
    Replica* replica = pick_replica(lock);
    ++replica->busy;
    size_t mine = 0, oldest = free_.size();
    for (size_t k = free_.size(); k-- > 0;) {
      if (free_[k]->replica != replica) continue;
      if (free_[k]->outputs_free()) {
        auto s = std::move(free_[k]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(k));
        return s;
      }
      ++mine;
      oldest = k;
    }
    if (mine >= kIdleSlots) {
      auto s = std::move(free_[oldest]);
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(oldest));
      return s;
    }
    lock.unlock();
    try {
      return make_slot(replica);
    } catch (...) {
      lock.lock();
      --replica->busy;
      throw;
    }
  }

  void release(std::unique_ptr<RequestSlot> slot) {
    if (!slot) return;
    std::lock_guard lock(mu_);
    --slot->replica->busy;
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
        ov::OwnedShape shape;  // stays {0, nullptr} for a scalar
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
  const ov::Core& core_;  // the engine's; lives as long as the process
  ov::Owned<ov::ModelGraph> graph_;  // kept to compile replicas
  std::vector<bool> static_out_;  // written into buffers we bind before the run
  std::mutex mu_;
  std::vector<std::unique_ptr<Replica>> replicas_;  // never shrinks: slots point into it
  std::vector<std::unique_ptr<RequestSlot>> free_;  // declared last: destroyed first
  bool growing_ = false;  // a replica is being compiled
};

void check_supported(const ModelInfo& mi) {
  for (const auto* list : {&mi.inputs, &mi.outputs})
    for (const auto& t : *list)
      if (ov::element_type(t.dtype) < 0)
        throw InvalidArgument("model '" + mi.name + "': tensor '" + t.name + "' has type " +
                              std::string(dtype_name(t.dtype)) +
                              ", which the host engine cannot run");
}

// The file declares no shape, so no rank, for these tensors: report the shape OpenVINO infers
// through the graph instead, with -1 for its dynamic dims. Returns, per tensor, whether even
// OpenVINO's rank is dynamic: the metadata shape then stays [] and a run returns whatever
// shape the output has. An input of unknown rank is refused: OpenVINO's CPU plugin cannot
// compile one (2026.4: "doesn't support Parameter operation with dynamic rank"), and a rank
// the metadata could not state would leave callers guessing.
std::vector<bool> fill_undeclared_shapes(const ov::ModelGraph& graph, ModelInfo& info,
                                         const std::vector<size_t>& indexes, bool outputs) {
  std::vector<TensorInfo>& tensors = outputs ? info.outputs : info.inputs;
  std::vector<bool> unranked(tensors.size());
  const std::string role = outputs ? "output" : "input";
  size_t count = 0;
  if (!indexes.empty())
    ov::check(outputs ? ov::api().model_outputs_size(&graph, &count)
                      : ov::api().model_inputs_size(&graph, &count),
              "counting the " + role + "s of model '" + info.file + "'");
  for (size_t i : indexes) {
    TensorInfo& t = tensors[i];
    const std::string what = role + " '" + t.name + "' of model '" + info.file + "'";
    if (i >= count)  // binding by index would be wrong anyway
      throw InvalidArgument("model '" + info.file + "': OpenVINO sees " + std::to_string(count) +
                            " " + role + "s where the file lists " +
                            std::to_string(tensors.size()));
    auto shape = ov::port_shape(graph, outputs, i, what);
    if (!shape && !outputs)
      throw InvalidArgument(what + " declares no shape, and the host engine cannot run an "
                            "input of unknown rank: declare its shape in the file (dims may "
                            "be symbolic)");
    unranked[i] = !shape;
    if (!shape) continue;
    t.shape = std::move(*shape);
    set_dense_strides(t, what + ": ");
  }
  return unranked;
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

  ov::ModelGraph* graph_raw = nullptr;
  ov::check(ov::api().core_read_model(&core, file.c_str(), nullptr, &graph_raw),
            "reading model '" + file + "'");
  ov::Owned<ov::ModelGraph> graph(graph_raw);
  fill_undeclared_shapes(*graph, info, parsed.unranked_inputs, false);
  std::vector<bool> unranked_out =
      fill_undeclared_shapes(*graph, info, parsed.unranked_outputs, true);
  return std::make_shared<OvModel>(std::move(info), core, std::move(graph), unranked_out);
}

namespace {
// Even with ENABLE_CPU_PINNING=NO, OpenVINO's TBB arenas carry a thread binding: every
// inference sets the calling thread's CPU affinity on entry and restores it on exit (two
// sched_setaffinity calls and one sched_getaffinity, about 15% of a small model's run).
// hwloc does no binding on a topology loaded while HWLOC_THISSYSTEM=0, and TBB loads its
// topology once, during the process's first compile, so the variable is set for that
// compile only. A value the user set (HWLOC_THISSYSTEM=1 keeps the binding) is left alone.
template <class Compile>
ov::Status compile_without_tbb_binding(Compile&& compile) {
  static std::mutex mu;
  static bool topology_loaded = false;
  std::unique_lock lock(mu);
  if (topology_loaded || std::getenv("HWLOC_THISSYSTEM")) {
    lock.unlock();
    return compile();
  }
  struct Unset {
    ~Unset() { unsetenv("HWLOC_THISSYSTEM"); }
  };
  setenv("HWLOC_THISSYSTEM", "0", 0);
  Unset unset;
  const ov::Status status = compile();
  topology_loaded = status == 0;
  return status;
}

ov::Owned<ov::CompiledModel> compile(const ov::Core& core, const ov::ModelGraph& graph,
                                     const ModelInfo& info) {
  // f32 so results match onnxruntime (the CPU default is bf16 on some CPUs). One stream of
  // one thread: the inference runs on the calling thread, and our scheduler decides what
  // runs when. Dynamic inputs are the exception: OpenVINO's single-thread mode skips runtime
  // shape checks (an inconsistent shape then yields an empty or wrong output instead of an
  // error; seen with OpenVINO 2026.4), so there it picks its thread count itself.
  const bool dynamic = std::any_of(info.inputs.begin(), info.inputs.end(),
                                   [](const TensorInfo& t) { return t.has_dynamic_dims(); });
  const ov::Api& a = ov::api();
  ov::CompiledModel* raw = nullptr;
  ov::Status status = compile_without_tbb_binding([&] {
    return dynamic
               ? a.core_compile_model(&core, &graph, "CPU", 6, &raw, "INFERENCE_PRECISION_HINT",
                                      "f32", "NUM_STREAMS", "1", "ENABLE_CPU_PINNING", "NO")
               : a.core_compile_model(&core, &graph, "CPU", 8, &raw, "INFERENCE_PRECISION_HINT",
                                      "f32", "NUM_STREAMS", "1", "INFERENCE_NUM_THREADS", "1",
                                      "ENABLE_CPU_PINNING", "NO");
  });
  ov::check(status, "compiling model '" + info.file + "'");
  return ov::Owned<ov::CompiledModel>(raw);
}
}  // namespace

}  // namespace hbm
