#include "ucp_model.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/errors.h"

namespace hbm::ucp {
namespace {

// A task whose end we have not seen (its wait timed out or failed). Its memory stays in use
// by the BPU until the library says it finished: the reaper waits for that (no timeout),
// then releases the task, then gives the buffers back, then lets go of the model.
struct Hung {
  std::shared_ptr<const LoadGroup> group;
  TaskHandle task;
  BufferPool::CallLease lease;
};

// Leaks everything of a task the library failed to wait for or release.
void leak_hung(std::unique_ptr<Hung> h) noexcept {
  if (!h) return;
  h->lease.leak();
  try {
    leak_forever(std::shared_ptr<const void>(std::move(h)));  // keeps the group (model) too
  } catch (...) {
    (void)h.release();  // no memory even for that: a raw leak is still safe
  }
}

// One thread for all hung tasks, created on first need, handling them one at a time.
class Reaper {
 public:
  static void adopt(std::unique_ptr<Hung> h) noexcept {
    static Reaper* r = new (std::nothrow) Reaper;  // never destroyed: may run past exit
    if (!r) return leak_hung(std::move(h));
    r->add(std::move(h));
  }

 private:
  void add(std::unique_ptr<Hung> h) noexcept {
    std::lock_guard lock(mu_);
    try {
      queue_.push_back(std::move(h));
    } catch (...) {
      return leak_hung(std::move(h));
    }
    if (!started_) {
      try {
        std::thread([this] { loop(); }).detach();
        started_ = true;
      } catch (...) {  // no thread: nobody would wait, so nothing may be freed
        leak_hung(std::move(queue_.back()));
        queue_.pop_back();
        return;
      }
    }
    cv_.notify_one();
  }

  void loop() noexcept {
    for (;;) {
      std::unique_ptr<Hung> h;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        h = std::move(queue_.front());
        queue_.pop_front();
      }
      const UcpApi& api = *h->group->api;
      if (api.hbUCPWaitTaskDone(h->task, 0) != 0 || api.hbUCPReleaseTask(h->task) != 0) {
        leak_hung(std::move(h));  // unknown state: the BPU may still write the memory
        continue;
      }
      h.reset();  // buffers back to the pool, then (maybe) the model released
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Hung>> queue_;
  bool started_ = false;
};

class UcpPending final : public PendingInference {
 public:
  UcpPending(std::shared_ptr<const LoadGroup> group, std::shared_ptr<const ModelPlan> plan,
             BufferPool::CallLease lease)
      : group_(std::move(group)), plan_(std::move(plan)), lease_(std::move(lease)) {}
  ~UcpPending() override { finish(); }

  TaskHandle* task_out() { return &task_; }
  TaskHandle task() const { return task_; }
  void mark_submitted() { submitted_ = true; }
  void started(Clock::time_point t) { started_ = t; }
  std::vector<OutputTensor> wait(ModelTimings& timings) override;

 private:
  void read_task_output(size_t i, OutputTensor& out);
  // Hands the task, its set and the model to the reaper (the task may still be running).
  void set_aside() noexcept {
    auto h = std::unique_ptr<Hung>(new (std::nothrow) Hung{group_, task_, std::move(lease_)});
    task_ = nullptr;
    if (!h) {  // cannot even queue it: leak
      lease_.leak();
      leak_forever(group_);
      return;
    }
    Reaper::adopt(std::move(h));
  }
  // Releases a task known not to be running; leaks its set if the library refuses.
  int32_t release() noexcept {
    const int32_t rc = group_->api->hbUCPReleaseTask(std::exchange(task_, nullptr));
    if (rc != 0) {
      lease_.leak();
      leak_forever(group_);
    }
    return rc;
  }
  // Destructor path: a submitted task nobody collected is waited for (with the timeout);
  // if that fails it goes to the reaper, never back to the pool.
  void finish() noexcept {
    if (!task_) return;
    if (submitted_ && group_->api->hbUCPWaitTaskDone(task_, plan_->timeout_ms) != 0)
      return set_aside();
    (void)release();  // its failure is handled (leak); nobody to report it to
  }

  std::shared_ptr<const LoadGroup> group_;
  std::shared_ptr<const ModelPlan> plan_;
  BufferPool::CallLease lease_;
  TaskHandle task_ = nullptr;
  bool submitted_ = false;
  Clock::time_point started_{};
  bool waited_ = false;
};

std::vector<OutputTensor> UcpPending::wait(ModelTimings& timings) {
  if (waited_) throw Error(plan_->context + ": this inference was already collected");
  waited_ = true;
  const UcpApi& api = *group_->api;
  const ModelPlan& p = *plan_;
  const int32_t rc = api.hbUCPWaitTaskDone(task_, p.timeout_ms);
  if (rc != 0) {
    set_aside();  // a hang is reported, but the BPU may still be using the memory
    api.throw_ucp(rc, p.context,
                  p.timeout_ms > 0 ? "hbUCPWaitTaskDone (timeout " + std::to_string(p.timeout_ms) +
                                         " ms from HBM_UCP_TIMEOUT_MS)"
                                   : std::string("hbUCPWaitTaskDone"));
  }
  submitted_ = false;  // done: from here on a release needs no wait
  const auto done = Clock::now();
  BufferSet& set = lease_.set();
  std::vector<OutputTensor> outs(p.outputs.size());
  for (size_t i = 0; i < p.outputs.size(); ++i) {
    const TensorPlan& t = p.outputs[i];
    set.out[i].flush(kFlushInvalidate, p.context + ", output '" + t.name + "'");
    OutputTensor& o = outs[i];
    o.data = set.out[i].data();
    o.dtype = t.dtype;
    if (t.ask_task) {
      read_task_output(i, o);
    } else {
      o.shape = t.dims;
      o.strides = t.strides;
    }
  }
  api.check_ucp(release(), p.context, "hbUCPReleaseTask");
  std::shared_ptr<void> owner;
  if (set.pooled) {
    owner = std::move(lease_).share();
  } else {
    // A temporary set (beyond HBM_UCP_POOL_SETS): copy out and free the sysmem now.
    auto host = std::make_shared<std::vector<AlignedBuffer>>();
    for (size_t i = 0; i < outs.size(); ++i) {
      host->emplace_back(static_cast<size_t>(set.out[i].size()));
      std::memcpy(host->back().data(), set.out[i].data(), set.out[i].size());
      outs[i].data = host->back().data();
    }
    owner = std::move(host);
    { BufferPool::CallLease gone = std::move(lease_); }
  }
  for (auto& o : outs) o.owner = owner;
  timings.infer_us = micros_between(started_, done);
  timings.finish_us = micros_between(done, Clock::now());
  timings.core = -1;
  return outs;
}

void UcpPending::read_task_output(size_t i, OutputTensor& o) {
  const UcpApi& api = *group_->api;
  const ModelPlan& p = *plan_;
  const TensorPlan& t = p.outputs[i];
  RawProps raw;
  api.check_dnn(api.hbDNNGetTaskOutputTensorProperties(raw.bytes.data(), task_, 0,
                                                       static_cast<int32_t>(i)),
                p.context, "hbDNNGetTaskOutputTensorProperties(output '" + t.name + "')");
  if (size_t n = bytes_written_past(*p.layout, raw))
    throw EngineError(p.context + ": output '" + t.name + "': hbDNNGetTaskOutputTensorProperties wrote " +
                          std::to_string(n) + " bytes past the struct",
                      0, {});
  PropsView v(*p.layout, raw.bytes.data());
  const int nd = v.num_dims();
  if (nd < 0 || nd > p.layout->dims)
    throw Error(p.context + ": output '" + t.name + "': the task reports " +
                std::to_string(nd) + " dimensions");
  o.shape.resize(nd);
  o.strides.resize(nd);
  for (int d = 0; d < nd; ++d) {
    o.shape[d] = v.dim(d);
    o.strides[d] = v.stride(d);
  }
  const uint64_t size = lease_.set().out[i].size();
  std::string why = fill_strides(o.shape, o.strides) ? "" : "has strides it cannot fill";
  if (why.empty()) why = check_layout(o.shape, o.strides, t.item, size, "buffer size");
  if (!why.empty())
    throw Error(p.context + ": output '" + t.name + "': the task reports shape " +
                format_shape(o.shape) + " with strides " + format_shape(o.strides) + ", which " +
                why + " (its buffer has " + std::to_string(size) + " bytes)");
}

std::string input_context(const ModelPlan& p, const TensorPlan& t) {
  return "input '" + t.name + "' of " + p.context;
}

}  // namespace

SchedParam to_sched_param(const SchedParams& s, const std::string& context) {
  if (s.priority < 0 || s.priority > 255)
    throw InvalidArgument(context + ": priority " + std::to_string(s.priority) +
                          ", expected 0..255");
  if (s.device_id < 0)
    throw InvalidArgument(context + ": device id " + std::to_string(s.device_id) +
                          ", expected >= 0");
  uint64_t backend = 0;
  if (s.bpu_cores.empty() || (s.bpu_cores.size() == 1 && s.bpu_cores[0] == -1)) {
    backend = kBackendBpuAny;
  } else {
    for (int32_t c : s.bpu_cores) {
      if (c < 0 || c > kMaxBpuCoreId)
        throw InvalidArgument(context + ": BPU core id " + std::to_string(c) +
                              ", expected 0.." + std::to_string(kMaxBpuCoreId) +
                              " (or [-1] alone for any core)");
      backend |= backend_bpu_core(c);
    }
  }
  return SchedParam{s.priority, s.custom_id, backend, static_cast<uint32_t>(s.device_id)};
}

UcpModel::UcpModel(std::shared_ptr<const LoadGroup> group, ModelInfo info,
                   std::shared_ptr<const ModelPlan> plan)
    : group_(std::move(group)), info_(std::move(info)), plan_(std::move(plan)),
      pool_(std::make_shared<BufferPool>(group_->api, plan_)) {}

std::vector<OutputTensor> UcpModel::infer(std::span<const InputView> inputs,
                                          ModelTimings& timings) {
  return submit(inputs, SchedParams{}, timings)->wait(timings);
}

std::unique_ptr<PendingInference> UcpModel::submit(std::span<const InputView> inputs,
                                                   const SchedParams& sched,
                                                   ModelTimings& timings) {
  const auto t0 = Clock::now();
  const ModelPlan& p = *plan_;
  const UcpApi& api = *group_->api;
  for (const auto& t : p.inputs)
    if (!t.unsupported.empty()) throw InvalidArgument(t.unsupported);
  for (const auto& t : p.outputs)
    if (!t.unsupported.empty()) throw InvalidArgument(t.unsupported);
  if (inputs.size() != p.inputs.size())
    throw InvalidArgument(p.context + ": " + std::to_string(inputs.size()) + " inputs given, " +
                          std::to_string(p.inputs.size()) + " expected");
  SchedParam sp = to_sched_param(sched, p.context);

  BufferPool::CallLease lease = pool_->acquire(inputs, static_cast<int32_t>(sp.deviceId));
  BufferSet& set = lease.set();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!lease.zero_copy()) write_input(set, i, inputs[i], lease.from_held(i));
    set.in[i].flush(kFlushClean, input_context(p, p.inputs[i]));
  }
  // A reused set's outputs were handed out writable: a line the user dirtied could be
  // evicted over this run's results. Dropping the lines first makes that impossible.
  if (set.submitted)
    for (size_t i = 0; i < set.out.size(); ++i)
      set.out[i].flush(kFlushInvalidate, p.context + ", output '" + p.outputs[i].name + "'");
  auto pending = std::make_unique<UcpPending>(group_, plan_, std::move(lease));
  const auto t1 = Clock::now();
  api.check_dnn(api.hbDNNInferV2(pending->task_out(), set.out_tensors.data(),
                                 set.in_tensors.data(), p.handle),
                p.context, "hbDNNInferV2");
  set.submitted = true;
  api.check_ucp(api.hbUCPSubmitTask(pending->task(), &sp), p.context, "hbUCPSubmitTask");
  pending->mark_submitted();
  timings.started_at = monotonic_seconds(t0);
  timings.prepare_us = micros_between(t0, t1);
  pending->started(t1);
  return pending;
}

std::vector<OutputTensor> UcpModel::input_buffers() {
  for (const auto& t : plan_->inputs) {
    if (!t.unsupported.empty()) throw InvalidArgument(t.unsupported);
    if (t.dynamic) return {};
  }
  return pool_->hold_inputs();
}

void UcpModel::write_input(BufferSet& set, size_t i, const InputView& v, bool from_held) const {
  const ModelPlan& p = *plan_;
  const TensorPlan& t = p.inputs[i];
  if (v.dtype != t.dtype)
    throw InvalidArgument(input_context(p, t) + ": dtype " + std::string(dtype_name(v.dtype)) +
                          ", expected " + std::string(dtype_name(t.dtype)));
  if (from_held) {  // a buffer from input_buffers(): same strides as ours
    std::memcpy(set.in[i].data(), v.data, t.bytes);
    return;
  }
  std::vector<int64_t> dims = t.dims, strides = t.strides;
  if (t.dynamic) {
    if (v.shape.size() != dims.size())
      throw InvalidArgument(input_context(p, t) + ": shape " + format_shape(v.shape) +
                            ", expected " + format_shape(t.dims));
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] < 0) dims[d] = v.shape[d];
      if (v.shape[d] < 0) throw InvalidArgument(input_context(p, t) + ": negative dim");
    }
    strides = info_.inputs[i].strides;
    if (!fill_strides(dims, strides))
      throw InvalidArgument(input_context(p, t) + ": cannot fill its dynamic strides");
    const uint64_t need = strided_bytes(dims, strides, t.item);
    const PropsLayout& l = *p.layout;
    if (need > set.in[i].size()) {
      set.in[i] = SysMemBuffer(group_->api, need, set.device_id, input_context(p, t));
      std::memcpy(set.in_tensor(i, l), &set.in[i].mem(), sizeof(SysMem));
    }
    PropsView props = set.in_props(i, l);
    for (size_t d = 0; d < dims.size(); ++d) {
      props.set_dim(static_cast<int>(d), static_cast<int32_t>(dims[d]));
      props.set_stride(static_cast<int>(d), strides[d]);
    }
  }
  if (v.shape != dims)
    throw InvalidArgument(input_context(p, t) + ": shape " + format_shape(v.shape) +
                          ", expected " + format_shape(dims));
  uint64_t dense = t.item;
  for (int64_t d : dims) dense *= static_cast<uint64_t>(d);
  if (v.nbytes < dense)
    throw InvalidArgument(input_context(p, t) + ": " + std::to_string(v.nbytes) +
                          " bytes given, " + std::to_string(dense) + " expected");
  if (!v.byte_strides.empty()) {  // another model's input_buffers() memory: its own padding
    AlignedBuffer packed(dense);
    copy_strided_to_dense(v.data, v.shape, v.byte_strides, t.item, packed.data());
    copy_dense_to_strided(packed.data(), dims, strides, t.item, set.in[i].data());
    return;
  }
  copy_dense_to_strided(v.data, dims, strides, t.item, set.in[i].data());
}

}  // namespace hbm::ucp
