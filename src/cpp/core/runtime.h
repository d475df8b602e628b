// A set of loaded models (possibly from several engines) and how they are run.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine.h"
#include "sched_params.h"

namespace hbm {

class Runtime {
 public:
  struct Request {
    size_t model = 0;
    std::vector<InputView> inputs;  // in the model's input order
  };
  struct Result {
    std::vector<OutputTensor> outputs;  // in the model's output order
    ModelTimings timings;
  };
  // Called once when an async call completes; must not throw.
  using Done = std::function<void(std::vector<Result>* results, std::exception_ptr error)>;

  // An async call as its caller sees it.
  class Call {
   public:
    virtual ~Call() = default;
    // Cancels the call if none of its work has started: its queued tasks leave the queue and
    // `done` receives Cancelled. False when some work started (the call then completes).
    virtual bool cancel() = 0;
    virtual bool started() const = 0;
  };

  // How a blocking run() may stop waiting early.
  struct WaitControl {
    // Polled about every 50 ms while run() waits; true stops the wait (Ctrl-C).
    std::function<bool()> interrupted;
    // Then called for the completion of the work already running, which must keep that work's
    // inputs alive until it is called. Queued work is cancelled.
    std::function<Done()> detach;
  };

  // Loads every file; all files of one engine load together. `engine` forces an engine.
  explicit Runtime(const std::vector<std::string>& files, std::string_view engine = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  size_t model_count() const { return infos_.size(); }
  const ModelInfo& info(size_t model) const { return infos_[model]; }
  std::optional<size_t> find(std::string_view model_name) const;
  // Throws InvalidArgument naming the known models.
  size_t index_of(std::string_view model_name) const;
  // Throws InvalidArgument naming the model's inputs.
  size_t input_index(size_t model, std::string_view input_name) const;
  std::string model_list() const;  // "'a', 'b'"
  const std::vector<std::pair<std::string, std::string>>& file_descs() const { return file_descs_; }
  std::vector<std::string> engine_names() const;
  bool takes_strided_inputs(size_t model) const { return engines_[model]->takes_strided_inputs(); }

  SchedParams sched(size_t model) const;
  // Validates every entry first; applies all or nothing.
  void set_sched(const std::vector<std::pair<size_t, SchedParams>>& updates);

  // Checks dtypes and shapes of one request against the model (InvalidArgument otherwise).
  void validate(const Request& request) const;

  // Runs the requests (each a different model) in parallel; blocks until all are done, or
  // until `control` says to stop waiting (then throws Interrupted).
  std::vector<Result> run(std::vector<Request> requests, const WaitControl* control = nullptr);
  // Same, but returns at once; `done` is called exactly once, from any thread, unless this
  // throws (then nothing was started).
  std::shared_ptr<Call> run_async(std::vector<Request> requests, Done done);

  // Writable engine-owned input memory of a model (empty when the engine has none).
  std::vector<OutputTensor> input_buffers(size_t model);

  // Cancels queued work, waits for running work (runs on the calling thread included),
  // releases the models. Idempotent. In a child process after fork(), it only forgets them.
  void close();
  bool closed() const;
  // Throws when this runtime was created in another process (before a fork()).
  void check_process() const;
  // Runs started and not finished (for tests).
  int in_flight() const {
    std::lock_guard lock(mu_);
    return in_flight_;
  }

 private:
  struct Batch;      // one run() call's shared state
  struct DeviceJob;  // one inference for a hardware-scheduled engine
  struct DeviceWaits;  // the waits of one call's device jobs
  struct FlightGuard;  // a blocking run's share of in_flight_
  static void run_on_device(const std::shared_ptr<Batch>& batch, std::vector<DeviceJob>& jobs,
                            bool wait_here);
  void check_open() const;
  void end_flight();
  // Starts every request but `run_by_caller` (whose result slot the caller fills). Never
  // throws: a part that cannot start completes with its error.
  void launch(const std::shared_ptr<Batch>& batch, std::vector<Request>& requests,
              size_t run_by_caller, bool wait_device_here) noexcept;
  std::shared_ptr<Model> model_ptr(size_t model) const;

  std::vector<ModelInfo> infos_;
  std::vector<Engine*> engines_;
  std::vector<std::pair<std::string, std::string>> file_descs_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::vector<std::shared_ptr<Model>> models_;  // emptied by close()
  std::vector<SchedParams> sched_;
  std::vector<CoreMask> masks_;  // core_mask(sched_[i].bpu_cores), for the hot path
  int in_flight_ = 0;
  bool closed_ = false;
  const uint64_t fork_generation_;
  const long creator_pid_;
};

}  // namespace hbm
