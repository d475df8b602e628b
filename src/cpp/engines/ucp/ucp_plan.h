// What the engine fixes about a model at load time: per tensor the raw library properties
// (with -1 input strides filled), the buffer size and whether the tensor is dynamic.
#pragma once
#include <algorithm>
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
  size_t pool_sets = 4;    // HBM_UCP_POOL_SETS: pooled buffer sets at most
};

inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 40;  // no tensor is a terabyte

// Empty when a strided tensor of these dims/strides (bytes, -1 already filled) is safe to
// copy into and to view: dims >= 0, strides > 0, the innermost at least one element, no two
// elements overlapping (checked on the strides sorted, so permuted layouts pass; in
// outermost-first order it is stride[i] >= dim[i+1] * stride[i+1]), and every byte inside
// `limit` (and 1 TiB), all without overflow. *bytes gets the size. Else why not.
inline std::string check_layout(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                                size_t item, uint64_t limit, const char* limit_what,
                                uint64_t* bytes = nullptr) {
  const size_t n = dims.size();
  if (strides.size() != n) return "has " + std::to_string(strides.size()) + " strides for " +
                                  std::to_string(n) + " dims";
  std::vector<size_t> order;
  for (size_t i = 0; i < n; ++i) {
    if (dims[i] < 0) return "has dim " + std::to_string(dims[i]);
    if (strides[i] <= 0) return "has stride " + std::to_string(strides[i]);
    if (dims[i] > 1) order.push_back(i);
  }
  for (int64_t d : dims)
    if (d == 0) {
      if (bytes) *bytes = 0;
      return {};  // no element: nothing is read or written
    }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return strides[a] < strides[b] || (strides[a] == strides[b] && a > b);
  });
  int64_t reach = static_cast<int64_t>(item);  // bytes covered by the dims seen so far
  if (n > 0 && strides[n - 1] < reach)
    return "has innermost stride " + std::to_string(strides[n - 1]) + " below its " +
           std::to_string(item) + "-byte element";
  for (size_t i : order) {
    if (strides[i] < reach) return "has overlapping strides (stride of dim " + std::to_string(i) +
                                   " below the extent inside it)";
    int64_t ext = 0;
    if (__builtin_mul_overflow(dims[i], strides[i], &ext) || ext > kMaxTensorBytes)
      return "spans more than 1 TiB (dim " + std::to_string(i) + ")";
    reach = ext;
  }
  // The buffer also holds stride[0] * dim[0] bytes (the library sizes it that way).
  int64_t outer = static_cast<int64_t>(item);
  if (n > 0 && (__builtin_mul_overflow(dims[0], strides[0], &outer) || outer > kMaxTensorBytes))
    return "spans more than 1 TiB";
  const uint64_t need = static_cast<uint64_t>(std::max(outer, reach));
  if (limit > 0 && need > limit)
    return "needs " + std::to_string(need) + " bytes, beyond its " + limit_what + " of " +
           std::to_string(limit);
  if (bytes) *bytes = need;
  return {};
}

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
