// One model of a packed handle, and its inferences.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "buffer_pool.h"
#include "core/engine.h"
#include "ucp_handles.h"
#include "ucp_plan.h"

namespace hbm::ucp {

// Everything loaded by one hbDNNInitializeFromFiles call. Models and pending inferences
// share it; the packed handle is released when the last of them is gone.
struct LoadGroup {
  std::shared_ptr<const UcpApi> api;
  Packed packed;
  std::vector<std::pair<std::string, std::string>> file_descs;  // {path as given, desc}
};

class UcpModel final : public Model {
 public:
  UcpModel(std::shared_ptr<const LoadGroup> group, ModelInfo info,
           std::shared_ptr<const ModelPlan> plan);

  const ModelInfo& info() const override { return info_; }
  std::vector<OutputTensor> infer(std::span<const InputView> inputs,
                                  ModelTimings& timings) override;
  std::unique_ptr<PendingInference> submit(std::span<const InputView> inputs,
                                           const SchedParams& sched,
                                           ModelTimings& timings) override;
  std::vector<OutputTensor> input_buffers() override;

  const std::vector<std::pair<std::string, std::string>>& file_descs() const {
    return group_->file_descs;
  }

 private:
  void write_input(BufferSet& set, size_t i, const InputView& v, bool from_held) const;

  std::shared_ptr<const LoadGroup> group_;
  ModelInfo info_;
  std::shared_ptr<const ModelPlan> plan_;
  std::shared_ptr<BufferPool> pool_;
};

// hbUCPSchedParam from our SchedParams: backend = OR of 1 << core, or BPU_CORE_ANY (0x80)
// for an empty list or [-1]. Throws InvalidArgument on out-of-range values.
SchedParam to_sched_param(const SchedParams& s, const std::string& context);

}  // namespace hbm::ucp
