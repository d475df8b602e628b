// What the engine fixes about a model at load time: per tensor the raw library properties
// (with -1 input strides filled), the buffer size and whether the tensor is dynamic.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ucp_abi.h"

namespace hbm::ucp {

struct TensorPlan {
  std::string name;
  DataType dtype = DataType::U8;
  size_t item = 1;
  std::vector<int64_t> dims;     // -1 = dynamic dim
  std::vector<int64_t> strides;  // bytes; inputs: -1 filled when the dims allow it
  bool dynamic = false;          // inputs: shape known per call; outputs: per task
  bool ask_task = false;         // output shape/strides come from the finished task
  uint64_t bytes = 0;            // sysmem size (dynamic inputs: grown per call as needed)
  std::vector<std::byte> props;  // hbDNNTensorProperties in the probed layout
  std::string unsupported;       // non-empty: why this model cannot run
};

struct ModelPlan {
  std::string name;
  std::string context;  // "model 'name'", for messages
  const PropsLayout* layout = nullptr;
  ModelHandle handle = nullptr;
  std::vector<TensorPlan> inputs, outputs;
  int32_t timeout_ms = 0;  // hbUCPWaitTaskDone timeout; 0 = wait forever
};

// Fills -1 strides as the vendor does, from the innermost dim outwards:
// stride[i] = round_up(dim[i+1] * stride[i+1], 64). Returns false (strides partly filled)
// when the innermost stride is -1 or a dim it needs is dynamic.
inline bool fill_strides(const std::vector<int64_t>& dims, std::vector<int64_t>& strides) {
  const size_t n = dims.size();
  if (n == 0) return true;
  if (strides[n - 1] < 0) return false;
  for (size_t i = n - 1; i-- > 0;) {
    if (strides[i] != -1) continue;
    if (dims[i + 1] < 0 || strides[i + 1] < 0) return false;
    strides[i] = (dims[i + 1] * strides[i + 1] + 63) / 64 * 64;
  }
  return true;
}

// Bytes a strided tensor needs: stride[0] * dim[0], or more if the strides are unordered.
inline uint64_t strided_bytes(const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& strides, size_t item) {
  int64_t span = static_cast<int64_t>(item);
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) return 0;
    span += (dims[i] - 1) * strides[i];
  }
  const int64_t outer = dims.empty() ? span : dims[0] * strides[0];
  return static_cast<uint64_t>(outer > span ? outer : span);
}

}  // namespace hbm::ucp
