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

CoreMask fold_mask(CoreMask mask, int cores) {
  if (mask == kAnyCore || cores >= 64 || (mask >> cores) == 0) return mask;  // the usual case
  CoreMask out = mask & ((CoreMask{1} << cores) - 1);
  for (int c = cores; c < 64; ++c)
    if (mask >> c & 1) out |= CoreMask{1} << (c % cores);
  return out;
}

}  // namespace hbm
