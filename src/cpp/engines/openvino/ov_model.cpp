#include "ov_model.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "core/env.h"
#include "core/errors.h"
#include "core/scheduler.h"
#include "model_cache.h"
#include "onnx_reader.h"

namespace hbm {
namespace {

// Memory an output is written into, and the OpenVINO tensor wrapping it.
struct OutputBuffer {
  std::shared_ptr<AlignedBuffer> memory;
  ov::Owned<ov::Tensor> tensor;
};

// A compiled model. With one stream and one thread OpenVINO (2026.4) runs a sync inference on
// the calling thread (no hop to a stream thread: the lowest latency) but one at a time per
// compiled model, so parallel runs of a small model get a compiled replica each. Each replica
// holds its own repacked copy of the weights (infer requests of one compiled model would share
// them, but run one at a time), so a model with large weights is instead compiled once with
// one stream per CPU: OpenVINO then hands each sync inference to one of its stream threads
// (tens of microseconds, small next to what large weights cost to run) and its streams share
// one copy of the weights.
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

// Weights from this size on (the file's size stands for them) make a model one compiled model
// of several streams rather than replicas of one stream each (see Replica).
constexpr uint64_t kSharedWeightsBytes = uint64_t{4} << 20;

// How a model is compiled; its replicas are compiled the same way.
struct CompileSpec {
  std::string file;        // for messages
  bool dynamic = false;    // some input has a dynamic dim
  bool replicate = true;   // small weights: a replica per parallel caller; else shared weights
  int streams = 1;         // OpenVINO streams (more than 1 only for shared weights)
};

// Makes one more replica; empty when the model is not replicated.
using ReplicaMaker = std::function<ov::Owned<ov::CompiledModel>()>;

ov::Owned<ov::CompiledModel> compile_graph(const ov::Core& core, const ov::ModelGraph& graph,
                                           const CompileSpec& spec);
ov::Owned<ov::CompiledModel> compile_cached(const ov::Core& core, ov_cache::Lease& lease,
                                            const CompileSpec& spec);

// Bytes of a dense tensor of `shape`; throws when that does not fit in memory's address range.
size_t checked_bytes(const std::vector<int64_t>& shape, DataType dtype, const std::string& what) {
  size_t bytes = element_size(dtype);
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(bytes, static_cast<size_t>(d), &bytes))
      throw InvalidArgument(what + ": shape " + format_shape(shape) + " is too large");
  return bytes;
}

// How each output reaches the caller. Static outputs are written by OpenVINO straight into
// memory we hand out. The others are copied out of OpenVINO's own tensor after the run:
// outputs whose shape is only known then, and outputs that are a graph input passed through
// (OpenVINO's tensor for those is the input's memory, and binding our own buffer to them
// makes it write into the caller's input).
struct OutputPlan {
  bool bound = false;
  bool unranked = false;  // even the rank is known only after a run; metadata shape is []
};

std::vector<OutputPlan> reconcile_with_compiled(const ov::CompiledModel& compiled, ModelInfo& info);

class OvModel final : public Model {
 public:
  // `info` already holds what the compiled model computes (reconcile_with_compiled).
  OvModel(ModelInfo info, ov::Owned<ov::CompiledModel> compiled, std::vector<OutputPlan> plans,
          ReplicaMaker make_replica)
      : info_(std::move(info)), plans_(std::move(plans)), make_replica_(std::move(make_replica)) {
    replicas_.push_back(std::make_unique<Replica>(Replica{std::move(compiled)}));
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
    ov::call([&] { return ov::api().infer(slot->request.get()); },
             [&] { return "inference of model '" + info_.name + "'"; });
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
    ov::call([&] { return ov::api().create_infer_request(replica->compiled.get(), &raw); },
             [&] { return "creating an infer request for model '" + info_.name + "'"; });
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
    if (!make_replica_ || growing_ ||
        replicas_.size() >= static_cast<size_t>(Scheduler::instance().cores()))
      return least;
    growing_ = true;
    lock.unlock();
    std::unique_ptr<Replica> fresh;
    try {
      fresh = std::make_unique<Replica>(Replica{make_replica_()});
      if (!computes_the_same(*fresh->compiled)) fresh.reset();  // e.g. a file changed meanwhile
    } catch (...) {
      fresh.reset();
    }
    if (!fresh) {
      lock.lock();
      growing_ = false;
      return least;  // run on an existing copy rather than fail the call
    }
    lock.lock();
    growing_ = false;
    replicas_.push_back(std::move(fresh));
    return replicas_.back().get();
  }

  // Whether a new replica computes the types and shapes the metadata promises.
  bool computes_the_same(const ov::CompiledModel& compiled) const {
    ModelInfo copy = info_;
    const std::vector<OutputPlan> plans = reconcile_with_compiled(compiled, copy);
    for (size_t i = 0; i < plans.size(); ++i)
      if (plans[i].bound != plans_[i].bound || plans[i].unranked != plans_[i].unranked ||
          copy.outputs[i].shape != info_.outputs[i].shape)
        return false;
    return true;
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
      ov::call(
          [&] {
            return a.tensor_create_from_host_ptr(ov::element_type(in.dtype), shape.get(),
                                                 const_cast<void*>(in.data), &raw);
          },
          [&] { return "wrapping input '" + info_.inputs[i].name + "'"; });
      ov::Owned<ov::Tensor> tensor(raw);
      ov::call([&] { return a.set_input_tensor_by_index(s.request.get(), i, tensor.get()); },
               [&] { return "binding input '" + info_.inputs[i].name + "' of model '" + info_.name + "'"; });
      s.in_tensors[i] = std::move(tensor);
      s.in_data[i] = in.data;
      s.in_shapes[i] = in.shape;
    }
  }

  // Static outputs are written straight into memory we hand to the caller. A buffer the
  // caller still holds is replaced, never reused.
  void bind_outputs(RequestSlot& s) {
    for (size_t i = 0; i < info_.outputs.size(); ++i) {
      if (!plans_[i].bound || (s.outputs[i].memory && s.outputs[i].memory.use_count() == 1)) continue;
      s.outputs[i] = new_output_buffer(i);
      ov::call(
          [&] { return ov::api().set_output_tensor_by_index(s.request.get(), i, s.outputs[i].tensor.get()); },
          [&] { return "binding output '" + info_.outputs[i].name + "' of model '" + info_.name + "'"; });
    }
  }

  OutputBuffer new_output_buffer(size_t i) {
    const TensorInfo& ti = info_.outputs[i];
    const size_t bytes = checked_bytes(ti.shape, ti.dtype, "output '" + ti.name + "'");
    OutputBuffer out;
    out.memory = std::make_shared<AlignedBuffer>(bytes);
    ov::OwnedShape shape(ti.shape);
    ov::Tensor* raw = nullptr;
    ov::call(
        [&] {
          return ov::api().tensor_create_from_host_ptr(ov::element_type(ti.dtype), shape.get(),
                                                       out.memory->data(), &raw);
        },
        [&] { return "allocating output '" + ti.name + "'"; });
    out.tensor.reset(raw);
    return out;
  }

  std::vector<OutputTensor> collect_outputs(RequestSlot& s) {
    std::vector<OutputTensor> outs(info_.outputs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      const TensorInfo& ti = info_.outputs[i];
      OutputTensor& o = outs[i];
      o.dtype = ti.dtype;
      if (plans_[i].bound) {
        const OutputBuffer& b = s.outputs[i];
        o.shape = ti.shape;
        o.data = b.memory->data();
        o.owner = b.memory;
      } else {
        copy_output(s, i, o);
      }
      o.strides = ti.dense_strides(o.shape);
    }
    return outs;
  }

  // Copies output i out of OpenVINO's tensor (which it may reallocate next run, or which is
  // an input's memory), checking that the tensor is what the metadata says and holds every
  // byte copied.
  void copy_output(RequestSlot& s, size_t i, OutputTensor& o) {
    const ov::Api& a = ov::api();
    const TensorInfo& ti = info_.outputs[i];
    const std::string what = "output '" + ti.name + "' of model '" + info_.name + "'";
    ov::Tensor* raw = nullptr;
    ov::call([&] { return a.get_output_tensor_by_index(s.request.get(), i, &raw); },
             [&] { return "reading " + what; });
    ov::Owned<ov::Tensor> tensor(raw);
    ov::ElementType type = 0;
    ov::check(a.tensor_get_element_type(tensor.get(), &type), "reading the type of " + what);
    if (type != ov::element_type(ti.dtype))
      throw EngineError(what + ": OpenVINO produced " + ov::element_type_name(type) +
                        ", expected " + std::string(traits(ti.dtype).numpy_name), -1);
    ov::OwnedShape shape;  // stays {0, nullptr} for a scalar
    ov::check(a.tensor_get_shape(tensor.get(), shape.out()), "reading the shape of " + what);
    o.shape = shape.dims();
    bool fits = plans_[i].unranked || o.shape.size() == ti.shape.size();
    for (size_t d = 0; fits && d < o.shape.size() && !plans_[i].unranked; ++d)
      fits = o.shape[d] >= 0 && (ti.shape[d] < 0 || ti.shape[d] == o.shape[d]);
    if (!fits)
      throw EngineError(what + ": OpenVINO produced shape " + format_shape(o.shape) +
                        ", which does not match its shape " + format_shape(ti.shape), -1);
    const size_t bytes = checked_bytes(o.shape, ti.dtype, what);
    size_t held = 0;
    ov::check(a.tensor_get_byte_size(tensor.get(), &held), "reading the size of " + what);
    void* src = nullptr;
    if (bytes) ov::check(a.tensor_data(tensor.get(), &src), "reading " + what);
    if (bytes > held || (bytes && !src))
      throw EngineError(what + ": OpenVINO's tensor holds " + std::to_string(held) +
                        " bytes, its shape " + format_shape(o.shape) + " needs " +
                        std::to_string(bytes), -1);
    auto buf = std::make_shared<AlignedBuffer>(bytes);
    if (bytes) std::memcpy(buf->data(), src, bytes);
    o.data = buf->data();
    o.owner = std::move(buf);
  }

  ModelInfo info_;
  std::vector<OutputPlan> plans_;  // per output
  ReplicaMaker make_replica_;      // empty: one compiled model serves every caller
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

// Results are a dict keyed by output name, and inputs are fed by name: a graph that lists
// one name twice cannot be run through this API.
void check_unique_names(const ModelInfo& mi) {
  for (const auto* list : {&mi.inputs, &mi.outputs})
    for (size_t i = 0; i < list->size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if ((*list)[i].name == (*list)[j].name)
          throw InvalidArgument("model '" + mi.name + "': the graph lists " +
                                (list == &mi.inputs ? "input '" : "output '") + (*list)[i].name +
                                "' twice; hbm_runtime keys tensors by name, so each needs a "
                                "name of its own");
}

// An input the file declares no shape for: OpenVINO's CPU plugin cannot compile an input of
// unknown rank (2026.4: "doesn't support Parameter operation with dynamic rank"), and a rank
// the metadata could not state would leave callers guessing.
void refuse_unranked_inputs(const ModelInfo& info, const std::vector<size_t>& unranked) {
  if (unranked.empty()) return;
  throw InvalidArgument("input '" + info.inputs[unranked[0]].name + "' of model '" + info.file +
                        "' declares no shape, and the host engine cannot run an input of "
                        "unknown rank: declare its shape in the file (dims may be symbolic)");
}

// Trusts what the compiled model computes over what the file declares. Inputs must be taken as
// declared. An output's type must be the one the graph computes (onnxruntime refuses such a
// file too: a wrong declaration would have the caller misread every byte); its shape is
// reported as OpenVINO infers it, -1 where only a run tells, whatever the file claims.
std::vector<OutputPlan> reconcile_with_compiled(const ov::CompiledModel& compiled, ModelInfo& info) {
  for (bool output : {false, true}) {
    const auto& tensors = output ? info.outputs : info.inputs;
    const size_t n = ov::compiled_port_count(compiled, output);
    if (n != tensors.size())
      throw InvalidArgument("model '" + info.name + "': OpenVINO compiles " + std::to_string(n) +
                            (output ? " outputs" : " inputs") + " where the file lists " +
                            std::to_string(tensors.size()));
  }
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    const TensorInfo& t = info.inputs[i];
    const std::string what = "input '" + t.name + "' of model '" + info.name + "'";
    const ov::PortFacts facts = ov::compiled_port(compiled, false, i, what);
    if (facts.type != ov::element_type(t.dtype))
      throw InvalidArgument(what + ": declared " + std::string(traits(t.dtype).numpy_name) +
                            ", but OpenVINO compiled it as " + ov::element_type_name(facts.type));
  }
  std::vector<OutputPlan> plans(info.outputs.size());
  for (size_t i = 0; i < info.outputs.size(); ++i) {
    TensorInfo& t = info.outputs[i];
    const std::string what = "output '" + t.name + "' of model '" + info.name + "'";
    const ov::PortFacts facts = ov::compiled_port(compiled, true, i, what);
    const std::optional<DataType> computed = ov::from_element_type(facts.type);
    if (!computed)
      throw InvalidArgument(what + ": the graph computes " + ov::element_type_name(facts.type) +
                            ", which the host engine cannot return");
    if (*computed != t.dtype)
      throw InvalidArgument(what + ": the file declares it " +
                            std::string(traits(t.dtype).numpy_name) + ", but the graph computes " +
                            std::string(traits(*computed).numpy_name) +
                            "; correct the declaration in the file");
    plans[i].unranked = !facts.shape;
    t.shape = facts.shape.value_or(std::vector<int64_t>{});
    set_dense_strides(t, what + ": ");
    const bool passes_input_through =
        std::any_of(info.inputs.begin(), info.inputs.end(),
                    [&](const TensorInfo& in) { return in.name == t.name; });
    plans[i].bound = facts.shape && !t.has_dynamic_dims() && !passes_input_through;
  }
  return plans;
}

}  // namespace

namespace {

// One stream of one thread, replicated per parallel caller, for models with small weights; one
// stream per CPU, never replicated, otherwise (see Replica).
void choose_streams(uint64_t file_bytes, CompileSpec& spec) {
  spec.replicate = file_bytes < kSharedWeightsBytes;
  spec.streams = spec.replicate ? 1 : std::max(1u, std::thread::hardware_concurrency());
}

// What compiled blobs depend on besides the model's bytes and our compile properties (which
// OpenVINO's blob ids cover): the OpenVINO build and the CPU. One per process: the engine's
// Core is the only one.
const std::string& cache_tag(const ov::Core& core) {
  static std::once_flag once;
  static std::string tag;
  std::call_once(once, [&] {
    std::string cpu;
    char* value = nullptr;
    if (ov::api().core_get_property(&core, "CPU", "FULL_DEVICE_NAME", &value) == 0 && value) {
      cpu = value;
      if (ov::api().free_string) ov::api().free_string(value);
    }
    tag = "hbm_runtime cache 1|OpenVINO " + ov::api().version + "|" + cpu;
  });
  return tag;
}

// The cache is a convenience: whatever keeps it from working is said once, on stderr, and
// models are compiled without it.
void warn_cache_once(const std::string& root, const std::string& why) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  std::fprintf(stderr, "hbm_runtime: HBM_RUNTIME_CACHE_DIR='%s' is not used (%s); models are "
               "compiled without the cache\n", root.c_str(), why.c_str());
}

struct Compiled {
  ov::Owned<ov::CompiledModel> model;
  ReplicaMaker make_replica;
};

// Compiles through the cache in HBM_RUNTIME_CACHE_DIR; nothing when the cache is off or cannot
// be used for this model.
Compiled compile_through_cache(const ov::Core& core, const FileBytes& bytes,
                               const OnnxFileInfo& parsed, const CompileSpec& spec) {
  const std::optional<std::string> root = env_value("HBM_RUNTIME_CACHE_DIR");
  if (!root || root->empty() || parsed.external_data) return {};
  Compiled out;
  try {
    std::string why;
    bool unusable_root = false;
    std::optional<ov_cache::Lease> lease =
        ov_cache::Lease::open(*root, bytes.view(), cache_tag(core), why, unusable_root);
    if (!lease) {
      if (unusable_root) warn_cache_once(*root, why);
      return {};
    }
    out.model = compile_cached(core, *lease, spec);
    if (spec.replicate)
      out.make_replica = [&core, entry = lease->entry_dir(), spec] {
        std::optional<ov_cache::Lease> again = ov_cache::Lease::reopen(entry);
        if (!again) throw EngineError("the cache entry '" + entry + "' cannot be used", -1);
        return compile_cached(core, *again, spec);
      };
  } catch (const std::exception&) {
    return {};  // compiled again without the cache, which reports any error of the model's own
  }
  return out;
}

}  // namespace

std::shared_ptr<Model> load_ov_model(const ov::Core& core, const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw InvalidArgument("model file '" + file + "' does not exist or is not a file");
  FileBytes bytes = read_file_bytes(file);
  OnnxFileInfo parsed = parse_onnx_bytes(bytes.view(), file);
  ModelInfo info = std::move(parsed.model);
  info.name = std::filesystem::path(file).stem().string();
  info.file = file;
  info.file_desc = std::move(parsed.file_desc);
  check_supported(info);

  check_unique_names(info);
  refuse_unranked_inputs(info, parsed.unranked_inputs);

  CompileSpec spec;
  spec.file = file;
  spec.dynamic = std::any_of(info.inputs.begin(), info.inputs.end(),
                             [](const TensorInfo& t) { return t.has_dynamic_dims(); });
  choose_streams(bytes.size(), spec);

  Compiled compiled = compile_through_cache(core, bytes, parsed, spec);
  bytes = {};  // before OpenVINO reads the file itself
  if (!compiled.model) {
    ov::ModelGraph* graph_raw = nullptr;
    ov::call([&] { return ov::api().core_read_model(&core, file.c_str(), nullptr, &graph_raw); },
             [&] { return "reading model '" + file + "'"; });
    auto graph = std::make_shared<ov::Owned<ov::ModelGraph>>(graph_raw);
    compiled.model = compile_graph(core, **graph, spec);
    // Replicas compile from the graph already read (not the file again, which may have
    // changed); the graph shares its weights with the compiled models.
    if (spec.replicate)
      compiled.make_replica = [&core, graph, spec] { return compile_graph(core, **graph, spec); };
  }
  std::vector<OutputPlan> plans = reconcile_with_compiled(*compiled.model, info);
  return std::make_shared<OvModel>(std::move(info), std::move(compiled.model), std::move(plans),
                                   std::move(compiled.make_replica));
}

namespace {
// Even with ENABLE_CPU_PINNING=NO, OpenVINO's TBB arenas carry a thread binding: every
// inference sets the calling thread's CPU affinity on entry and restores it on exit (two
// sched_setaffinity calls and one sched_getaffinity, about 15% of a small model's run).
// hwloc does no binding on a topology loaded while HWLOC_THISSYSTEM=0, and TBB loads its
// topology once per process, so the variable is there from the engine's creation until the
// first compile succeeds. A value the user set (HWLOC_THISSYSTEM=1 keeps the binding) is
// left alone. setenv()/unsetenv() would race with getenv() in threads we do not control
// (OpenVINO's own), so the entry is put once and then renamed in place, to a name of the same
// length: nothing is moved or freed, a reader sees one name or the other.
char g_hwloc_entry[] = "HWLOC_THISSYSTEM=0";
constexpr char kRetiredName[] = "HBM_RT_HWLOC_OFF";  // what the entry is renamed to
static_assert(sizeof(kRetiredName) == sizeof("HWLOC_THISSYSTEM"));
std::atomic<bool> g_hwloc_put{false};

void retire_hwloc_entry() {
  if (!g_hwloc_put.exchange(false)) return;
  env_edit([] { std::memcpy(g_hwloc_entry, kRetiredName, sizeof(kRetiredName) - 1); });
}
}  // namespace

void hide_topology_from_tbb() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (env_value("HWLOC_THISSYSTEM")) return;
    env_put(g_hwloc_entry);
    g_hwloc_put = true;
  });
}

namespace {

// The compile properties of `spec`, as the key/value list OpenVINO's C API takes.
//
// f32 so results match onnxruntime (the CPU default is bf16 on some CPUs). One stream of one
// thread: the inference runs on the calling thread, and our scheduler decides what runs when.
// Dynamic inputs are the exception: OpenVINO's single-thread mode skips runtime shape checks
// (an inconsistent shape then yields an empty or wrong output instead of an error; seen with
// OpenVINO 2026.4), so there it picks its thread count itself. Several streams (shared weights)
// get one thread each; they keep the shape checks.
class CompileProps {
 public:
  CompileProps(const CompileSpec& spec, const char* cache_dir) : streams_(std::to_string(spec.streams)) {
    add("INFERENCE_PRECISION_HINT", "f32");
    add("NUM_STREAMS", streams_.c_str());
    if (!spec.dynamic || spec.streams > 1) add("INFERENCE_NUM_THREADS", streams_.c_str());
    add("ENABLE_CPU_PINNING", "NO");
    if (cache_dir) add("CACHE_DIR", cache_dir);
  }
  size_t count() const { return n_; }
  const char* operator[](size_t i) const { return kv_[i]; }

 private:
  void add(const char* key, const char* value) {
    kv_[n_++] = key;
    kv_[n_++] = value;
  }
  std::string streams_;
  const char* kv_[10] = {};
  size_t n_ = 0;
};

// Calls an OpenVINO compile function with the list (unused trailing arguments are never read).
template <class Fn>
ov::Status compile_with(Fn&& fn, const CompileProps& p) {
  return fn(p.count(), p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]);
}

ov::Owned<ov::CompiledModel> compile_graph(const ov::Core& core, const ov::ModelGraph& graph,
                                           const CompileSpec& spec) {
  const ov::Api& a = ov::api();
  const CompileProps props(spec, nullptr);
  ov::CompiledModel* raw = nullptr;
  ov::call(
      [&] {
        return compile_with(
            [&](size_t n, auto... kv) { return a.core_compile_model(&core, &graph, "CPU", n, &raw, kv...); },
            props);
      },
      [&] { return "compiling model '" + spec.file + "'"; });
  retire_hwloc_entry();  // TBB has loaded its topology
  return ov::Owned<ov::CompiledModel>(raw);
}

ov::Owned<ov::CompiledModel> compile_cached(const ov::Core& core, ov_cache::Lease& lease,
                                            const CompileSpec& spec) {
  const ov::Api& a = ov::api();
  const CompileProps props(spec, lease.cache_dir().c_str());
  auto compile = [&] {
    ov::CompiledModel* raw = nullptr;
    ov::call(
        [&] {
          return compile_with(
              [&](size_t n, auto... kv) {
                return a.core_compile_model_from_file(&core, lease.model_path().c_str(), "CPU", n,
                                                      &raw, kv...);
              },
              props);
        },
        [&] { return "compiling model '" + spec.file + "' through the cache"; });
    return ov::Owned<ov::CompiledModel>(raw);
  };
  // OpenVINO maps the blob it imports and keeps the mapping, whose weights it has copied into
  // its own layout by the end of the compile: those pages need not stay in our RSS.
  ov::Owned<ov::CompiledModel> compiled;
  if (lease.offered_blobs().empty()) {
    compiled = compile();  // nothing to import: OpenVINO compiles and writes a blob
  } else {
    // Only this compile opens files in a lease's private directory: the mappings found there
    // are this compiled model's, which nothing can unmap before we return it, so other
    // compiles, of this entry too, run meanwhile. A read-only entry is mapped in place by
    // every load of it: no other compile or free of one may unmap a mapping of it between the
    // scan and madvise().
    std::unique_lock<std::recursive_mutex> lock;
    if (!lease.is_private()) lock = std::unique_lock(ov::mapping_mutex());
    compiled = compile();
    ov_cache::release_mapped_pages(lease.offered_blobs(), lease.cache_dir());
  }
  retire_hwloc_entry();
  lease.publish();
  return compiled;
}

}  // namespace

}  // namespace hbm
