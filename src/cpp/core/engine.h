// The small interface every engine implements. The Runtime never knows which one it holds.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "buffer.h"
#include "model_info.h"
#include "sched_params.h"
#include "timings.h"

namespace hbm {

// One inference submitted to hardware that schedules itself; wait() collects it.
class PendingInference {
 public:
  virtual ~PendingInference() = default;
  virtual std::vector<OutputTensor> wait(ModelTimings& timings) = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;

  // Runs one inference on the calling thread. `inputs` follow info().inputs order and
  // already match their dtypes and shapes. Safe to call from several threads at once.
  virtual std::vector<OutputTensor> infer(std::span<const InputView> inputs,
                                          ModelTimings& timings) = 0;

  // Engines whose hardware has its own scheduler submit here and wait later, so that a
  // multi-model run can submit every model before waiting on any.
  virtual std::unique_ptr<PendingInference> submit(std::span<const InputView> inputs,
                                                   const SchedParams& sched,
                                                   ModelTimings& timings);

  // Writable engine-owned input memory (e.g. BPU sysmem), one array per input in
  // info().inputs order, that infer()/submit() recognise by address and use without a
  // copy. Empty when the engine has no such memory.
  virtual std::vector<OutputTensor> input_buffers() { return {}; }
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  // Library versions, e.g. "OpenVINO 2026.4.1".
  virtual std::string version() const = 0;
  // The device library's own version string, unchanged (BPU: what hbDNNGetVersion() says),
  // which board scripts parse; empty for host engines.
  virtual std::string device_version() const { return {}; }
  // Loads every file together; on any failure throws and leaves nothing loaded.
  virtual std::vector<std::shared_ptr<Model>> load(const std::vector<std::string>& files) = 0;
  // True when the device applies priorities itself (use Model::submit).
  virtual bool hardware_scheduled() const { return false; }
  // Highest core id a model may be bound to, or -1 for "host virtual cores decide".
  virtual int max_core_id() const { return -1; }
  // True when its models accept InputViews with byte_strides (input_buffers() memory);
  // other engines get such memory copied to dense first.
  virtual bool takes_strided_inputs() const { return false; }
};

// Engine chosen for a file: by `forced` name when given, else by extension.
Engine& engine_for(const std::string& file, std::string_view forced = {});
// Versions of the engines loaded so far, by engine name. `probe_devices`: first try once
// to load the device engines (whose libraries are small), so their versions are known.
std::vector<std::pair<std::string, std::string>> loaded_engine_versions(bool probe_devices = false);
// device_version() of the first device engine whose libraries load, or "" when none does.
std::string device_library_version();

}  // namespace hbm
