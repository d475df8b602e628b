// Out-of-line definitions the engine check needs from core files it does not compile
// (runtime.cpp defines them in the real build).
#include "core/engine.h"
#include "core/errors.h"

namespace hbm {
std::unique_ptr<PendingInference> Model::submit(std::span<const InputView>, const SchedParams&,
                                                ModelTimings&) {
  throw Error("Model::submit: not overridden (check stub)");
}
}  // namespace hbm
