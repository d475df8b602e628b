#include "runtime.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "errors.h"
#include "scheduler.h"
#include "spin_wait.h"
#include "waiter_pool.h"

namespace hbm {

// One run() call: its results, what is left to do, and who to tell.
struct Runtime::Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result> results;
  std::exception_ptr error;
  size_t remaining = 0;
  std::atomic<bool> finished{false};  // a blocking run's last part is done (polled)
  Done done;  // empty for blocking runs
  Runtime* runtime = nullptr;

  // Records one finished (or failed) part; the last part completes the batch.
  void finish_part(std::exception_ptr part_error) {
    Done to_call;
    {
      std::lock_guard lock(mu);
      if (part_error && !error) error = part_error;
      if (--remaining != 0) return;
      if (!done) {
        finished.store(true, std::memory_order_release);
        cv.notify_all();
        return;
      }
      to_call = std::move(done);
    }
    // Before the callback: it may drop the last reference to the runtime, whose close()
    // waits for in-flight work.
    runtime->end_flight();
    if (error) {
      results.clear();  // outputs of the parts that succeeded are released here
      to_call(nullptr, error);
    } else {
      to_call(&results, nullptr);
    }
  }
};

Runtime::Runtime(const std::vector<std::string>& files, std::string_view engine) {
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
      size_t order = std::find(files.begin(), files.end(), m->info().file) - files.begin();
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
    models_.push_back(loaded[i].second);
    engines.push_back(engines_[i]);
  }
  engines_ = std::move(engines);
  sched_.resize(models_.size());
  masks_.resize(models_.size(), kAnyCore);
  for (const auto& mi : infos_) {
    bool seen = std::any_of(file_descs_.begin(), file_descs_.end(),
                            [&](auto& p) { return p.first == mi.file; });
    if (!seen) file_descs_.push_back({mi.file, mi.file_desc});
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
  std::lock_guard lock(mu_);
  return sched_[model];
}

void Runtime::set_sched(const std::vector<std::pair<size_t, SchedParams>>& updates) {
  for (const auto& [m, p] : updates) {
    const std::string who = "model '" + infos_[m].name + "'";
    if (p.priority < 0 || p.priority > 255)
      throw InvalidArgument("priority of " + who + ": " + std::to_string(p.priority) +
                            ", expected an integer in 0..255");
    if (p.custom_id < 0)
      throw InvalidArgument("custom_id of " + who + ": " + std::to_string(p.custom_id) +
                            ", expected a non-negative integer");
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

std::shared_ptr<Model> Runtime::model_ptr(size_t model) const {
  std::lock_guard lock(mu_);
  check_open();
  return models_[model];
}

void Runtime::begin_flight() {
  std::lock_guard lock(mu_);
  check_open();
  ++in_flight_;
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
}  // namespace

std::vector<Runtime::Result> Runtime::run(std::vector<Request> requests) {
  for (const auto& r : requests) validate(r);
  // The calling thread works too: with nothing queued it claims an idle core for the host
  // model that would be served first, and runs it here while the others are queued.
  size_t mine = requests.size();
  int core = -1;
  std::shared_ptr<Model> model;
  {
    std::vector<size_t> order;
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
  }
  std::optional<CoreClaim> claim;
  if (core >= 0) claim.emplace(core);
  if (claim && requests.size() == 1) {  // the latency path: no batch, no wakeups
    std::vector<Result> out(1);
    out[0].timings.core = core;
    out[0].outputs = model->infer(requests[0].inputs, out[0].timings);
    return out;
  }
  auto batch = std::make_shared<Batch>();
  launch(batch, requests, mine);
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
  batch->cv.wait(lock, [&] { return batch->remaining == 0; });
  end_flight();
  if (batch->error) std::rethrow_exception(batch->error);
  return std::move(batch->results);
}

void Runtime::run_async(std::vector<Request> requests, Done done) {
  for (const auto& r : requests) validate(r);
  auto batch = std::make_shared<Batch>();
  batch->done = std::move(done);
  launch(batch, requests);
}

// The model, its inputs, its parameters, and where its result goes.
struct Runtime::DeviceJob {
  size_t slot;
  std::shared_ptr<Model> model;
  SchedParams params;
  Request request;
};

// Submits every device job before waiting on any, so the device's scheduler sees them all.
// The waits run here (blocking runs) or on a waiter thread (async runs): never on a host core.
void Runtime::run_on_device(const std::shared_ptr<Batch>& batch, std::vector<DeviceJob>& jobs,
                            bool wait_here) {
  auto pending = std::make_shared<std::vector<std::pair<size_t, std::unique_ptr<PendingInference>>>>();
  for (auto& job : jobs) {
    try {
      pending->push_back({job.slot, job.model->submit(job.request.inputs, job.params,
                                                      batch->results[job.slot].timings)});
    } catch (...) {
      batch->finish_part(std::current_exception());
    }
  }
  auto wait_all = [batch, pending] {
    for (auto& [i, p] : *pending) {
      std::exception_ptr error;
      try {
        batch->results[i].outputs = p->wait(batch->results[i].timings);
      } catch (...) {
        error = std::current_exception();
      }
      p.reset();
      batch->finish_part(error);
    }
  };
  if (pending->empty()) return;
  if (wait_here) wait_all();
  else WaiterPool::instance().post(std::move(wait_all));
}

// Queues host models on the scheduler; submits device (hardware-scheduled) models right
// away, all of them before waiting on any.
void Runtime::launch(std::shared_ptr<Batch> batch, std::vector<Request>& requests,
                     size_t run_by_caller) {
  begin_flight();
  batch->runtime = this;
  batch->results.resize(requests.size());
  batch->remaining = requests.size();
  std::vector<DeviceJob> device;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i == run_by_caller) continue;
    const size_t m = requests[i].model;
    std::shared_ptr<Model> model;
    SchedParams params;
    CoreMask mask;
    try {
      std::lock_guard lock(mu_);  // one consistent read of the model and its parameters
      check_open();
      model = models_[m];
      params = sched_[m];
      mask = masks_[m];
    } catch (...) {
      batch->finish_part(std::current_exception());
      continue;
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
    auto queued_at = Clock::now();
    task.run = [batch, model, queued_at, i, req = std::move(requests[i])](int core) {
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
  }
  if (!device.empty()) run_on_device(batch, device, /*wait_here=*/!batch->done);
}

std::vector<OutputTensor> Runtime::input_buffers(size_t model) {
  return model_ptr(model)->input_buffers();
}

void Runtime::close() {
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
