#include "sched_params.h"

namespace hbm {

CoreMask core_mask(const std::vector<int32_t>& cores) {
  CoreMask mask = 0;
  for (int32_t c : cores) {
    if (c < 0) return kAnyCore;
    if (c < 64) mask |= CoreMask{1} << c;
  }
  return mask ? mask : kAnyCore;
}

}  // namespace hbm
