// Per-model scheduling parameters, as the seed defines them.
#pragma once
#include <cstdint>
#include <vector>

namespace hbm {

struct SchedParams {
  int32_t priority = 0;            // 0..255, higher first
  int64_t custom_id = 0;           // smaller first among equal priority
  std::vector<int32_t> bpu_cores{-1};  // core ids, or {-1} = any
  int32_t device_id = 0;
};

// Priorities 254 and 255 are the BPU's preemptive levels: such a task does not wait for a
// busy core to finish its current task.
inline constexpr int32_t kPreemptivePriority = 254;

// Bit n set = core n allowed. kAnyCore = every core.
using CoreMask = uint64_t;
inline constexpr CoreMask kAnyCore = ~CoreMask{0};
CoreMask core_mask(const std::vector<int32_t>& cores);

// Core ids a model may be bound to on the host even when it has fewer virtual cores: the
// board's BPU core ids (0..3), so code written for the board runs unchanged on any PC.
inline constexpr int kBoardMaxCoreId = 3;
// The mask on a host of `cores` virtual cores: ids beyond them fold onto id % cores.
CoreMask fold_mask(CoreMask mask, int cores);

}  // namespace hbm
