#include "runtime.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include <unistd.h>

#include "errors.h"
#include "fixed_pool.h"
#include "fork_guard.h"
#include "scheduler.h"
#include "spin_wait.h"

namespace hbm {

// One run() call: its results, what is left to do, and who to tell.
struct Runtime::Batch final : Runtime::Call {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Result> results;
  std::exception_ptr error;
  size_t remaining = 0;
  bool work_started = false;  // a part began, or was handed to the device
  bool cancelled = false;     // parts not yet begun are skipped with cancel_reason
  std::exception_ptr cancel_reason;
  bool owns_flight = false;   // ends the runtime's in-flight count when the last part is done
  std::atomic<bool> finished{false};  // a blocking run's last part is done (polled)
  Done done;  // empty while a blocking run waits for the parts
  Runtime* runtime = nullptr;

  // A part is about to run; false when the call was cancelled before it began.
  bool begin_part() {
    std::lock_guard lock(mu);
    if (cancelled) return false;
    work_started = true;
    return true;
  }

  bool started() const override {
    std::lock_guard lock(mu);
    return work_started;
  }

  bool cancel() override {
    auto why = std::make_exception_ptr(Cancelled("the call was cancelled before it started"));
    {
      std::lock_guard lock(mu);
      if (cancelled) return true;
      if (work_started || remaining == 0) return false;
      cancelled = true;
      cancel_reason = why;
    }
    Scheduler::instance().cancel_group(this, why);
    return true;
  }

  // Stops waiting for the parts: those not yet begun are cancelled, the running ones complete
  // through `detached` (which keeps their inputs alive). False, leaving `detached` alone, when
  // everything finished.
  bool detach(Done& detached, std::exception_ptr why) {
    {
      std::lock_guard lock(mu);
      if (remaining == 0) return false;
      done = std::move(detached);
      owns_flight = true;
      cancelled = true;
      cancel_reason = why;
    }
    Scheduler::instance().cancel_group(this, why);
    return true;
  }

  // Records one finished (or failed) part; the last part completes the batch.
  void finish_part(std::exception_ptr part_error) noexcept {
    Done to_call;
    bool flight;
    {
      std::lock_guard lock(mu);
      if (part_error && !error) error = part_error;
      if (--remaining != 0) return;
      flight = owns_flight;
      if (!done) {
        finished.store(true, std::memory_order_release);
        cv.notify_all();
        if (!flight) return;
      } else {
        to_call = std::move(done);
      }
    }
    // Before the callback: it may drop the last reference to the runtime, whose close()
    // waits for in-flight work.
    if (flight) runtime->end_flight();
    if (!to_call) return;
    if (error) results.clear();  // outputs of the parts that succeeded are released here
    try {
      to_call(error ? nullptr : &results, error);
    } catch (...) {
      // Done must not throw; nothing is left to tell.
    }
  }
};

Runtime::Runtime(const std::vector<std::string>& files, std::string_view engine)
    : fork_generation_(fork_generation()), creator_pid_(static_cast<long>(getpid())) {
  if (files.empty()) throw InvalidArgument("no model file given");
  // Group files by engine, keeping the first-seen order of engines and files.
  std::vector<std::pair<Engine*, std::vector<std::string>>> groups;
  for (const auto& f : files) {
    Engine& e = engine_for(f, engine);
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == &e; });
    if (it == groups.end()) groups.push_back({&e, {f}});
    else it->second.push_back(f);
  }
  std::vector<std::pair<size_t, std::shared_ptr<Model>>> loaded;  // (file order key, model)
  for (auto& [engine_ptr, group] : groups) {
    for (auto& m : engine_ptr->load(group)) {
      const ModelInfo& mi = m->info();
      const std::string& file = mi.file.empty() && !mi.loaded_with.empty() ? mi.loaded_with[0].first : mi.file;
      size_t order = std::find(files.begin(), files.end(), file) - files.begin();
      loaded.push_back({order, std::move(m)});
      engines_.push_back(engine_ptr);
    }
  }
  // Model order follows the order the files were given in.
  std::vector<size_t> perm(loaded.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::stable_sort(perm.begin(), perm.end(),
                   [&](size_t a, size_t b) { return loaded[a].first < loaded[b].first; });
  std::vector<Engine*> engines;
  for (size_t i : perm) {
    const ModelInfo& mi = loaded[i].second->info();
    if (find(mi.name)) throw InvalidArgument("two loaded models are both named '" + mi.name + "'");
    infos_.push_back(mi);
    infos_.back().input_dict_order = vendor_dict_order(mi.inputs);
    infos_.back().output_dict_order = vendor_dict_order(mi.outputs);
    models_.push_back(loaded[i].second);
    engines.push_back(engines_[i]);
  }
  engines_ = std::move(engines);
  sched_.resize(models_.size());
  masks_.resize(models_.size(), kAnyCore);
  auto add_file_desc = [&](const std::string& file, const std::string& desc) {
    bool seen = std::any_of(file_descs_.begin(), file_descs_.end(),
                            [&](auto& p) { return p.first == file; });
    if (!seen) file_descs_.push_back({file, desc});
  };
  for (const auto& mi : infos_) {
    if (mi.loaded_with.empty()) add_file_desc(mi.file, mi.file_desc);
    for (const auto& [file, desc] : mi.loaded_with) add_file_desc(file, desc);
  }
}

Runtime::~Runtime() { close(); }

std::optional<size_t> Runtime::find(std::string_view model_name) const {
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == model_name) return i;
  return std::nullopt;
}

std::string Runtime::model_list() const {
  std::string s;
  for (const auto& mi : infos_) s += (s.empty() ? "'" : ", '") + mi.name + "'";
  return s;
}

size_t Runtime::index_of(std::string_view model_name) const {
  if (auto i = find(model_name)) return *i;
  throw InvalidArgument("no model named '" + std::string(model_name) +
                        "' is loaded; loaded models: " + model_list());
}

size_t Runtime::input_index(size_t model, std::string_view input_name) const {
  const auto& ins = infos_[model].inputs;
  for (size_t i = 0; i < ins.size(); ++i)
    if (ins[i].name == input_name) return i;
  std::string names;
  for (const auto& t : ins) names += (names.empty() ? "'" : ", '") + t.name + "'";
  throw InvalidArgument("model '" + infos_[model].name + "' has no input '" +
                        std::string(input_name) + "'; its inputs are " + names);
}

std::vector<std::string> Runtime::engine_names() const {
  std::vector<std::string> out;
  for (Engine* e : engines_) out.emplace_back(e->name());
  return out;
}

SchedParams Runtime::sched(size_t model) const {
  check_process();
  std::lock_guard lock(mu_);
  return sched_[model];
}

void Runtime::set_sched(const std::vector<std::pair<size_t, SchedParams>>& updates) {
  check_process();
  for (const auto& [m, p] : updates) {
    const std::string who = "model '" + infos_[m].name + "'";
    if (p.priority < 0 || p.priority > 255)
      throw InvalidArgument("priority of " + who + ": " + std::to_string(p.priority) +
                            ", expected an integer in 0..255");
    // custom_id is any int64 (hbUCPSchedParam.customId is signed; the vendor accepts negatives).
    if (p.device_id < 0)
      throw InvalidArgument("device_id of " + who + ": " + std::to_string(p.device_id) +
                            ", expected a non-negative integer");
    const int max_core = engines_[m]->max_core_id() >= 0
                             ? engines_[m]->max_core_id()
                             : std::max(kBoardMaxCoreId, Scheduler::instance().cores() - 1);
    const std::string range = "[-1] (any core) or a list of core ids in 0.." +
                              std::to_string(max_core);
    if (p.bpu_cores.empty())
      throw InvalidArgument("bpu_cores of " + who + ": [], expected " + range);
    for (int32_t c : p.bpu_cores) {
      if ((c == -1 && p.bpu_cores.size() == 1) || (c >= 0 && c <= max_core)) continue;
      throw InvalidArgument("bpu_cores of " + who + ": " +
                            format_shape({p.bpu_cores.begin(), p.bpu_cores.end()}) +
                            ", expected " + range);
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& [m, p] : updates) {
    sched_[m] = p;
    masks_[m] = core_mask(p.bpu_cores);
  }
}

void Runtime::validate(const Request& request) const {
  const ModelInfo& mi = infos_[request.model];
  if (request.inputs.size() != mi.inputs.size())
    throw InvalidArgument("model '" + mi.name + "' takes " + std::to_string(mi.inputs.size()) +
                          " inputs, got " + std::to_string(request.inputs.size()));
  for (size_t i = 0; i < mi.inputs.size(); ++i) {
    const TensorInfo& ti = mi.inputs[i];
    const InputView& in = request.inputs[i];
    const std::string who = "input '" + ti.name + "' of model '" + mi.name + "'";
    if (in.dtype != ti.dtype)
      throw InvalidArgument(who + ": dtype " + std::string(traits(in.dtype).numpy_name) +
                            ", expected " + std::string(traits(ti.dtype).numpy_name) + " (" +
                            std::string(dtype_name(ti.dtype)) + ")");
    bool ok = in.shape.size() == ti.shape.size();
    for (size_t d = 0; ok && d < ti.shape.size(); ++d)
      ok = ti.shape[d] < 0 ? in.shape[d] >= 0 : in.shape[d] == ti.shape[d];
    if (!ok)
      throw InvalidArgument(who + ": shape " + format_shape(in.shape, true) + ", expected " +
                            format_shape(ti.shape, true) +
                            (ti.has_dynamic_dims() ? " (-1 = any size)" : ""));
  }
}

void Runtime::check_open() const {
  if (closed_) throw Cancelled("this runtime is closed");
}

void Runtime::check_process() const {
  if (fork_generation() == fork_generation_) return;
  throw Error("model(s) " + model_list() + ": this HB_HBMRuntime was created in process " +
              std::to_string(creator_pid_) + ", before the fork() that started this one; its "
              "worker threads and device state exist only there. Create a new HB_HBMRuntime in "
              "this process (or start it with the 'spawn' method of multiprocessing)");
}

std::shared_ptr<Model> Runtime::model_ptr(size_t model) const {
  check_process();
  std::lock_guard lock(mu_);
  check_open();
  return models_[model];
}

void Runtime::end_flight() {
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

namespace {
// A core claimed for the calling thread; released on scope exit, exceptions included.
struct CoreClaim {
  explicit CoreClaim(int c) : core(c) {}
  CoreClaim(const CoreClaim&) = delete;
  CoreClaim& operator=(const CoreClaim&) = delete;
  ~CoreClaim() { Scheduler::instance().release_core(core); }
  int core;
};

constexpr std::chrono::milliseconds kInterruptPoll{50};
}  // namespace

// The in-flight count of one blocking run(), ended on scope exit unless handed to its batch.
struct Runtime::FlightGuard {
  Runtime* rt;
  ~FlightGuard() {
    if (rt) rt->end_flight();
  }
};

std::vector<Runtime::Result> Runtime::run(std::vector<Request> requests, const WaitControl* control) {
  check_process();
  for (const auto& r : requests) validate(r);
  // The calling thread works too: with nothing queued it claims an idle core for the host
  // model that would be served first, and runs it here while the others are queued.
  size_t mine = requests.size();
  int core = -1;
  std::shared_ptr<Model> model;
  std::vector<size_t> order;
  order.reserve(requests.size());
  {
    std::lock_guard lock(mu_);
    check_open();
    for (size_t i = 0; i < requests.size(); ++i)
      if (!engines_[requests[i].model]->hardware_scheduled()) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const SchedParams& pa = sched_[requests[a].model];
      const SchedParams& pb = sched_[requests[b].model];
      return pa.priority != pb.priority ? pa.priority > pb.priority : pa.custom_id < pb.custom_id;
    });
    for (size_t i : order) {
      core = Scheduler::instance().claim_idle_core(masks_[requests[i].model]);
      if (core >= 0) {
        mine = i;
        model = models_[requests[i].model];
        break;
      }
    }
    ++in_flight_;  // close() waits for this call, the calling-thread path included
  }
  FlightGuard flight{this};
  std::optional<CoreClaim> claim;
  if (core >= 0) claim.emplace(core);
  if (claim && requests.size() == 1) {  // the latency path: no batch, no wakeups
    std::vector<Result> out(1);
    out[0].timings.core = core;
    out[0].outputs = model->infer(requests[0].inputs, out[0].timings);
    return out;
  }
  auto batch = std::make_shared<Batch>();
  batch->results.resize(requests.size());
  launch(batch, requests, mine, /*wait_device_here=*/!control);
  if (claim) {
    std::exception_ptr error;
    Result& r = batch->results[mine];
    r.timings.core = core;
    try {
      r.outputs = model->infer(requests[mine].inputs, r.timings);
    } catch (...) {
      error = std::current_exception();
    }
    claim.reset();  // free the core before waiting for the others
    batch->finish_part(error);
  }
  spin_until([&] { return batch->finished.load(std::memory_order_acquire); });
  std::unique_lock lock(batch->mu);
  auto all_done = [&] { return batch->remaining == 0; };
  if (!control) {
    batch->cv.wait(lock, all_done);
  } else {
    while (!batch->cv.wait_for(lock, kInterruptPoll, all_done)) {
      lock.unlock();
      if (control->interrupted()) {
        bool detached = false;
        try {
          auto why = std::make_exception_ptr(Cancelled("the caller was interrupted before it started"));
          Done rest = control->detach();
          detached = batch->detach(rest, why);
          if (!detached) rest(nullptr, nullptr);  // all done meanwhile: release what it holds
        } catch (...) {
          // No memory to hand the running work over: keep waiting for it instead.
        }
        if (detached) {
          flight.rt = nullptr;  // the batch ends it when its running parts are done
          throw Interrupted("run() interrupted");
        }
      }
      lock.lock();
    }
  }
  if (batch->error) std::rethrow_exception(batch->error);
  return std::move(batch->results);
}

std::shared_ptr<Runtime::Call> Runtime::run_async(std::vector<Request> requests, Done done) {
  check_process();
  for (const auto& r : requests) validate(r);
  auto batch = std::make_shared<Batch>();
  batch->results.resize(requests.size());
  batch->done = std::move(done);
  batch->owns_flight = true;
  {
    std::lock_guard lock(mu_);
    check_open();
    ++in_flight_;
  }
  launch(batch, requests, SIZE_MAX, /*wait_device_here=*/false);
  return batch;
}

// The model, its inputs, its parameters, and where its result goes.
struct Runtime::DeviceJob {
  size_t slot;
  std::shared_ptr<Model> model;
  SchedParams params;
  Request request;
};

// The submitted inferences of one call's device jobs, waited for in submission order.
struct Runtime::DeviceWaits final : PoolJob {
  explicit DeviceWaits(std::shared_ptr<Batch> b) : batch(std::move(b)) {}
  std::shared_ptr<Batch> batch;
  std::vector<std::pair<size_t, std::unique_ptr<PendingInference>>> pending;

  void run() noexcept override {
    for (auto& [i, p] : pending) {
      std::exception_ptr error;
      try {
        batch->results[i].outputs = p->wait(batch->results[i].timings);
      } catch (...) {
        error = std::current_exception();
      }
      p.reset();
      batch->finish_part(error);
    }
    delete this;
  }
};

// Submits every device job before waiting on any, so the device's scheduler sees them all.
// The waits run here or on a device-wait thread (async runs, and blocking runs that must stay
// interruptible): never on a host core.
void Runtime::run_on_device(const std::shared_ptr<Batch>& batch, std::vector<DeviceJob>& jobs,
                            bool wait_here) {
  std::unique_ptr<DeviceWaits> waits;
  try {
    waits = std::make_unique<DeviceWaits>(batch);
    waits->pending.reserve(jobs.size());
  } catch (...) {
    for (size_t k = 0; k < jobs.size(); ++k) batch->finish_part(std::current_exception());
    return;
  }
  {
    std::lock_guard lock(batch->mu);
    batch->work_started = true;  // the device's queue cannot be taken back
  }
  for (auto& job : jobs) {
    try {
      waits->pending.emplace_back(job.slot, job.model->submit(job.request.inputs, job.params,
                                                              batch->results[job.slot].timings));
    } catch (...) {
      batch->finish_part(std::current_exception());
    }
  }
  if (waits->pending.empty()) return;
  PoolJob* job = waits.release();
  if (wait_here || !FixedPool::device_waits().post(job)) job->run();  // no thread: wait here
}

// Queues host models on the scheduler; submits device (hardware-scheduled) models right
// away, all of them before waiting on any.
void Runtime::launch(const std::shared_ptr<Batch>& batch, std::vector<Request>& requests,
                     size_t run_by_caller, bool wait_device_here) noexcept {
  batch->runtime = this;
  batch->remaining = requests.size();
  std::vector<DeviceJob> device;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i == run_by_caller) continue;
    try {
      const size_t m = requests[i].model;
      std::shared_ptr<Model> model;
      SchedParams params;
      CoreMask mask;
      {
        std::lock_guard lock(mu_);  // one consistent read of the model and its parameters
        check_open();
        model = models_[m];
        params = sched_[m];
        mask = masks_[m];
      }
      if (engines_[m]->hardware_scheduled()) {
        device.push_back({i, std::move(model), params, std::move(requests[i])});
        continue;
      }
      Scheduler::Task task;
      task.priority = params.priority;
      task.custom_id = params.custom_id;
      task.mask = mask;
      task.preemptive = params.priority >= kPreemptivePriority;
      task.owner = this;
      task.group = batch.get();
      auto queued_at = Clock::now();
      task.run = [batch, model, queued_at, i, req = std::move(requests[i])](int core) {
        if (!batch->begin_part()) {
          batch->finish_part(batch->cancel_reason);
          return;
        }
        Result& r = batch->results[i];
        r.timings.queued_us = micros_between(queued_at, Clock::now());
        r.timings.core = core;
        std::exception_ptr error;
        try {
          r.outputs = model->infer(req.inputs, r.timings);
        } catch (...) {
          error = std::current_exception();
        }
        batch->finish_part(error);
      };
      task.cancel = [batch](std::exception_ptr why) { batch->finish_part(why); };
      Scheduler::instance().submit(std::move(task));
    } catch (...) {
      batch->finish_part(std::current_exception());
    }
  }
  if (device.empty()) return;
  try {
    run_on_device(batch, device, wait_device_here);
  } catch (...) {
    // run_on_device accounts for every job itself; this only guards the noexcept.
  }
}

std::vector<OutputTensor> Runtime::input_buffers(size_t model) {
  return model_ptr(model)->input_buffers();
}

void Runtime::close() {
  if (fork_generation() != fork_generation_) {
    // In a child after fork(): the models' handles and memory are the parent's (a BPU buffer
    // freed here would be freed in the driver the parent shares). Forget them instead; no lock
    // either, since a parent thread may have held it.
    if (!closed_) new std::vector<std::shared_ptr<Model>>(std::move(models_));
    closed_ = true;
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
  }
  Scheduler::instance().cancel_owned(this);
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
  models_.clear();
}

bool Runtime::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::unique_ptr<PendingInference> Model::submit(std::span<const InputView>, const SchedParams&,
                                                ModelTimings&) {
  throw EngineError("model '" + info().name + "': this engine has no hardware scheduler", -1);
}

}  // namespace hbm
