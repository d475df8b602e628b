// libhbucp.so + libdnn.so, dlopen'd at run time with every symbol resolved up front.
#pragma once
#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/dynlib.h"
#include "ucp_abi.h"

namespace hbm::ucp {

// Library search: $HBM_UCP_LIB_DIR when set (only there), else the default loader path,
// then /usr/hobot/lib, then /usr/lib.
inline constexpr const char* kLibDirEnv = "HBM_UCP_LIB_DIR";

class UcpApi {
 public:
  // Loads both libraries (libhbucp first). Throws EngineUnavailable naming what is missing.
  static std::shared_ptr<const UcpApi> load();

  // "libdnn 3.13.6_(...) / libhbucp 1.2.3 (SoC S100)".
  std::string version() const;
  // hbDNNGetVersion()'s string unchanged ("" when the library gives none).
  std::string dnn_version() const;

  // Throw hbm::EngineError: "<context>: <call> failed with code <rc> (<description>)".
  [[noreturn]] void throw_dnn(int32_t rc, std::string_view context, std::string_view call) const;
  [[noreturn]] void throw_ucp(int32_t rc, std::string_view context, std::string_view call) const;
  void check_dnn(int32_t rc, std::string_view context, std::string_view call) const {
    if (rc != 0) throw_dnn(rc, context, call);
  }
  void check_ucp(int32_t rc, std::string_view context, std::string_view call) const {
    if (rc != 0) throw_ucp(rc, context, call);
  }

  // libhbucp is declared first so that it is closed last (after libdnn, which uses it).
  DynLib ucp_lib, dnn_lib;

  FnGetString* hbDNNGetVersion = nullptr;
  FnDNNInitializeFromFiles* hbDNNInitializeFromFiles = nullptr;
  FnDNNRelease* hbDNNRelease = nullptr;
  FnDNNGetModelNameList* hbDNNGetModelNameList = nullptr;
  FnDNNGetModelHandle* hbDNNGetModelHandle = nullptr;
  FnDNNGetCount* hbDNNGetInputCount = nullptr;
  FnDNNGetCount* hbDNNGetOutputCount = nullptr;
  FnDNNGetName* hbDNNGetInputName = nullptr;
  FnDNNGetName* hbDNNGetOutputName = nullptr;
  FnDNNGetTensorProperties* hbDNNGetInputTensorProperties = nullptr;
  FnDNNGetTensorProperties* hbDNNGetOutputTensorProperties = nullptr;
  FnDNNGetTensorDesc* hbDNNGetInputDesc = nullptr;
  FnDNNGetTensorDesc* hbDNNGetOutputDesc = nullptr;
  FnDNNGetModelDesc* hbDNNGetModelDesc = nullptr;
  FnDNNGetHBMDesc* hbDNNGetHBMDesc = nullptr;
  FnDNNInferV2* hbDNNInferV2 = nullptr;
  FnDNNGetTaskOutputTensorProperties* hbDNNGetTaskOutputTensorProperties = nullptr;
  FnGetErrorDesc* hbDNNGetErrorDesc = nullptr;  // optional

  FnGetString* hbUCPGetVersion = nullptr;
  FnGetString* hbUCPGetSocName = nullptr;  // optional
  FnUCPMallocCached* hbUCPMallocCached = nullptr;
  FnUCPMemFlush* hbUCPMemFlush = nullptr;
  FnUCPFree* hbUCPFree = nullptr;
  FnUCPSubmitTask* hbUCPSubmitTask = nullptr;
  FnUCPWaitTaskDone* hbUCPWaitTaskDone = nullptr;
  FnUCPReleaseTask* hbUCPReleaseTask = nullptr;
  FnGetErrorDesc* hbUCPGetErrorDesc = nullptr;  // optional
};

// One hbDNNTensorProperties read into an oversized buffer pre-filled with a sentinel.
struct RawProps {
  alignas(16) std::array<std::byte, kPropsBufferBytes> bytes;
  RawProps();
};

// The layout under which every sample is plausible: numDimensions in 0..D, tensorType and
// quantiType valid, quant pointers set when their lengths are, dims/strides/sizes in range.
// When both fit, the sentinel decides (a D=8 library leaves bytes [152, 176) untouched);
// if it is untouched for some samples only, the layout whose strides and alignedByteSize
// agree with the dims for more samples.
// Throws EngineUnavailable when no layout fits, or when the library wrote past the
// struct of the chosen layout (bytes from layout.size to the end changed: a grown struct).
const PropsLayout& probe_layout(std::span<const RawProps> samples);
// How far past layout.size the library wrote into `raw` (0 = not at all).
size_t bytes_written_past(const PropsLayout& layout, const RawProps& raw);

}  // namespace hbm::ucp
