// The test double's own declaration of the libdnn/libhbucp C ABI, as documented in
// docs/bpu_abi.md ("Functions", "Structs and layouts").
// Compiled once per layout: UCP_DOUBLE_DIMS = 10 (current S100) or 8 (mid-2025 S100).
#pragma once
#include <cstddef>
#include <cstdint>

#ifndef UCP_DOUBLE_DIMS
#error "define UCP_DOUBLE_DIMS (10 or 8)"
#endif

extern "C" {
typedef void* hbPackedDNNHandle_t;
typedef void* hbDNNHandle_t;
typedef void* hbUCPTaskHandle_t;

typedef struct {
  uint64_t phyAddr;
  void* virAddr;
  uint64_t memSize;
} hbUCPSysMem;

typedef struct {
  int32_t dimensionSize[UCP_DOUBLE_DIMS];
  int32_t numDimensions;
} hbDNNTensorShape;

typedef struct {
  int32_t scaleLen;
  float* scaleData;
  int32_t zeroPointLen;
  int32_t* zeroPointData;
} hbDNNQuantiScale;

typedef struct {
  hbDNNTensorShape validShape;
  int32_t tensorType;
  hbDNNQuantiScale scale;
  int32_t quantiType;
  int32_t quantizeAxis;
  int64_t alignedByteSize;
  int64_t stride[UCP_DOUBLE_DIMS];
} hbDNNTensorProperties;

typedef struct {
  hbUCPSysMem sysMem;
  hbDNNTensorProperties properties;
} hbDNNTensor;

typedef struct {
  int32_t priority;
  int64_t customId;
  uint64_t backend;
  uint32_t deviceId;
} hbUCPSchedParam;

typedef void (*hbUCPTaskDoneCb)(hbUCPTaskHandle_t task, int32_t status, void* user);
}

namespace ucpd {
constexpr int kDims = UCP_DOUBLE_DIMS;
constexpr bool kD10 = kDims == 10;
static_assert(kDims == 10 || kDims == 8);
static_assert(sizeof(hbUCPSysMem) == 24 && sizeof(hbUCPSchedParam) == 32);
static_assert(offsetof(hbUCPSchedParam, customId) == 8 && offsetof(hbUCPSchedParam, backend) == 16 &&
              offsetof(hbUCPSchedParam, deviceId) == 24);
static_assert(offsetof(hbDNNTensorProperties, validShape.numDimensions) == (kD10 ? 40 : 32));
static_assert(offsetof(hbDNNTensorProperties, tensorType) == (kD10 ? 44 : 36));
static_assert(offsetof(hbDNNTensorProperties, scale.scaleData) == (kD10 ? 56 : 48));
static_assert(offsetof(hbDNNTensorProperties, scale.zeroPointData) == (kD10 ? 72 : 64));
static_assert(offsetof(hbDNNTensorProperties, quantiType) == (kD10 ? 80 : 72));
static_assert(offsetof(hbDNNTensorProperties, alignedByteSize) == (kD10 ? 88 : 80));
static_assert(offsetof(hbDNNTensorProperties, stride) == (kD10 ? 96 : 88));
static_assert(sizeof(hbDNNTensorProperties) == (kD10 ? 176 : 152));
static_assert(sizeof(hbDNNTensor) == (kD10 ? 200 : 176));

// hbUCPMemFlush flags and backend bits.
constexpr int32_t kInvalidate = 1, kClean = 2;
constexpr uint64_t kBpuAny = 1u << 7;

// Error codes of the double (its own numbering, in the vendor's style).
enum : int32_t {
  kOk = 0,
  kDnnInvalidArgument = -6000001,
  kDnnInvalidModel = -6000002,
  kDnnCannotOpenFile = -6000003,
  kDnnInvalidPackedHandle = -6000004,
  kDnnInvalidHandle = -6000005,
  kDnnInvalidTensor = -6000006,
  kDnnTaskNotDone = -6000007,
  kDnnRunFailed = -6000008,
  kDnnInjected = -6000099,
  kUcpInvalidArgument = -2000001,
  kUcpOutOfMemory = -2000002,
  kUcpInvalidTask = -2000003,
  kUcpTaskNotSubmitted = -2000004,
  kUcpTimeout = -2000005,
  kUcpInvalidMemory = -2000006,
  kUcpInjected = -2000099,
};
}  // namespace ucpd
