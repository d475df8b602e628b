// Our own declarations of the libdnn / libhbucp C ABI (RDK S100, OE 3.x), as documented in
// docs/bpu_abi.md ("Functions", "Structs and layouts"). No vendor header is used.
//
// hbDNNTensorProperties exists in two layouts (max dims D = 10 on current releases, D = 8
// on a mid-2025 one). It is never declared as a compiled-in struct: properties live in raw
// byte buffers read through PropsView, with the offsets of the layout probed at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hbm::ucp {

using PackedHandle = void*;  // hbPackedDNNHandle_t
using ModelHandle = void*;   // hbDNNHandle_t
using TaskHandle = void*;    // hbUCPTaskHandle_t

struct SysMem {  // hbUCPSysMem
  uint64_t phyAddr;
  void* virAddr;
  uint64_t memSize;
};
static_assert(sizeof(SysMem) == 24 && offsetof(SysMem, virAddr) == 8 &&
              offsetof(SysMem, memSize) == 16);

struct SchedParam {  // hbUCPSchedParam
  int32_t priority;
  int64_t customId;
  uint64_t backend;
  uint32_t deviceId;
};
static_assert(sizeof(SchedParam) == 32 && offsetof(SchedParam, customId) == 8 &&
              offsetof(SchedParam, backend) == 16 && offsetof(SchedParam, deviceId) == 24);

// hbUCPMemFlush flags (third-party stubs often swap them: these are the real values).
inline constexpr int32_t kFlushInvalidate = 1;  // device -> CPU, before reading outputs
inline constexpr int32_t kFlushClean = 2;       // CPU -> device, after writing inputs

// hbUCPSchedParam::backend bits.
inline constexpr uint64_t kBackendAny = 0;            // any core of any kind
inline constexpr uint64_t kBackendBpuAny = 1u << 7;   // any BPU core
constexpr uint64_t backend_bpu_core(int n) { return uint64_t{1} << n; }
inline constexpr int kMaxBpuCoreId = 3;

inline constexpr int32_t kDescTypeString = 1;  // hbDNNGet*Desc `type`

// Field offsets of hbDNNTensorProperties for one value of D.
struct PropsLayout {
  int dims;  // D
  size_t num_dims, tensor_type, scale_len, scale_data, zero_point_len, zero_point_data,
      quanti_type, quantize_axis, aligned_byte_size, stride, size;
  // hbDNNTensor = hbUCPSysMem followed by the properties.
  size_t tensor_size() const { return sizeof(SysMem) + size; }
};
inline constexpr PropsLayout kLayoutD10{10, 40, 44, 48, 56, 64, 72, 80, 84, 88, 96, 176};
inline constexpr PropsLayout kLayoutD8{8, 32, 36, 40, 48, 56, 64, 72, 76, 80, 88, 152};
// Properties are read into buffers this large (the library writes at most layout.size).
inline constexpr size_t kPropsBufferBytes = 512;

// Reads and writes the fields of one hbDNNTensorProperties held in raw bytes.
class PropsView {
 public:
  PropsView(const PropsLayout& layout, std::byte* p) : l_(&layout), p_(p) {}
  const PropsLayout& layout() const { return *l_; }

  int32_t num_dims() const { return get<int32_t>(l_->num_dims); }
  int32_t dim(int i) const { return get<int32_t>(4 * static_cast<size_t>(i)); }
  int32_t tensor_type() const { return get<int32_t>(l_->tensor_type); }
  int32_t scale_len() const { return get<int32_t>(l_->scale_len); }
  const float* scale_data() const { return get<const float*>(l_->scale_data); }
  int32_t zero_point_len() const { return get<int32_t>(l_->zero_point_len); }
  const int32_t* zero_point_data() const { return get<const int32_t*>(l_->zero_point_data); }
  int32_t quanti_type() const { return get<int32_t>(l_->quanti_type); }
  int32_t quantize_axis() const { return get<int32_t>(l_->quantize_axis); }
  int64_t aligned_byte_size() const { return get<int64_t>(l_->aligned_byte_size); }
  int64_t stride(int i) const { return get<int64_t>(l_->stride + 8 * static_cast<size_t>(i)); }

  void set_num_dims(int32_t v) { put(l_->num_dims, v); }
  void set_dim(int i, int32_t v) { put(4 * static_cast<size_t>(i), v); }
  void set_stride(int i, int64_t v) { put(l_->stride + 8 * static_cast<size_t>(i), v); }

 private:
  template <typename T>
  T get(size_t off) const {
    T v;
    std::memcpy(&v, p_ + off, sizeof v);
    return v;
  }
  template <typename T>
  void put(size_t off, T v) { std::memcpy(p_ + off, &v, sizeof v); }

  const PropsLayout* l_;
  std::byte* p_;
};

// Function types. Properties and tensor arrays are passed as raw memory (layout-dependent).
extern "C" {
using FnGetString = const char*();
using FnGetErrorDesc = const char*(int32_t);
using FnDNNInitializeFromFiles = int32_t(PackedHandle*, const char**, int32_t);
using FnDNNRelease = int32_t(PackedHandle);
using FnDNNGetModelNameList = int32_t(const char***, int32_t*, PackedHandle);
using FnDNNGetModelHandle = int32_t(ModelHandle*, PackedHandle, const char*);
using FnDNNGetCount = int32_t(int32_t*, ModelHandle);
using FnDNNGetName = int32_t(const char**, ModelHandle, int32_t);
using FnDNNGetTensorProperties = int32_t(void*, ModelHandle, int32_t);
using FnDNNGetTensorDesc = int32_t(const char**, uint32_t*, int32_t*, ModelHandle, int32_t);
using FnDNNGetModelDesc = int32_t(const char**, uint32_t*, int32_t*, ModelHandle);
using FnDNNGetHBMDesc = int32_t(const char**, uint32_t*, int32_t*, PackedHandle, int32_t);
using FnDNNInferV2 = int32_t(TaskHandle*, void* outputs, const void* inputs, ModelHandle);
using FnDNNGetTaskOutputTensorProperties = int32_t(void*, TaskHandle, int32_t, int32_t);
using FnUCPMallocCached = int32_t(SysMem*, uint64_t, int32_t);
using FnUCPMemFlush = int32_t(const SysMem*, int32_t);
using FnUCPFree = int32_t(SysMem*);
using FnUCPSubmitTask = int32_t(TaskHandle, SchedParam*);
using FnUCPWaitTaskDone = int32_t(TaskHandle, int32_t);
using FnUCPReleaseTask = int32_t(TaskHandle);
}

}  // namespace hbm::ucp
