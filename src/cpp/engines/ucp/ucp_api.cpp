#include "ucp_api.h"

#include <cstdlib>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/errors.h"

namespace hbm::ucp {
namespace {

constexpr const char* kInstallHint =
    "install the 'hobot-dnn' package on the board (sudo apt-get install -y hobot-dnn) or set "
    "HBM_UCP_LIB_DIR to the directory holding libdnn.so and libhbucp.so";

std::vector<std::string> candidates(const std::string& file) {
  if (auto dir = env_value(kLibDirEnv); dir && !dir->empty()) return {*dir + "/" + file};
  return {file, "/usr/hobot/lib/" + file, "/usr/lib/" + file};
}

DynLib open_lib(const std::string& file) {
  return DynLib::open_first(candidates(file), /*global=*/true,
                            "BPU engine unavailable: cannot load " + file + "; " + kInstallHint);
}

template <typename Fn>
void bind(const DynLib& lib, Fn*& fn, const char* symbol) {
  try {
    lib.bind(fn, symbol);
  } catch (const EngineUnavailable& e) {
    throw EngineUnavailable(std::string("BPU engine unavailable: ") + e.what() + "; " +
                            kInstallHint);
  }
}

std::string describe(FnGetErrorDesc* fn, int32_t rc) {
  if (!fn) return {};
  const char* d = fn(rc);
  return d ? std::string(d) : std::string();
}

[[noreturn]] void throw_error(std::string desc, int32_t rc, std::string_view context,
                              std::string_view call) {
  std::string msg = std::string(context) + ": " + std::string(call) + " failed with code " +
                    std::to_string(rc);
  if (!desc.empty()) msg += " (" + desc + ")";
  throw EngineError(std::move(msg), rc, std::move(desc));
}

}  // namespace

std::shared_ptr<const UcpApi> UcpApi::load() {
  auto api = std::make_shared<UcpApi>();
  api->ucp_lib = open_lib("libhbucp.so");
  api->dnn_lib = open_lib("libdnn.so");
  const DynLib& u = api->ucp_lib;
  const DynLib& d = api->dnn_lib;
  bind(u, api->hbUCPGetVersion, "hbUCPGetVersion");
  bind(u, api->hbUCPMallocCached, "hbUCPMallocCached");
  bind(u, api->hbUCPMemFlush, "hbUCPMemFlush");
  bind(u, api->hbUCPFree, "hbUCPFree");
  bind(u, api->hbUCPSubmitTask, "hbUCPSubmitTask");
  bind(u, api->hbUCPWaitTaskDone, "hbUCPWaitTaskDone");
  bind(u, api->hbUCPReleaseTask, "hbUCPReleaseTask");
  u.bind_optional(api->hbUCPGetSocName, "hbUCPGetSocName");
  u.bind_optional(api->hbUCPGetErrorDesc, "hbUCPGetErrorDesc");
  bind(d, api->hbDNNGetVersion, "hbDNNGetVersion");
  bind(d, api->hbDNNInitializeFromFiles, "hbDNNInitializeFromFiles");
  bind(d, api->hbDNNRelease, "hbDNNRelease");
  bind(d, api->hbDNNGetModelNameList, "hbDNNGetModelNameList");
  bind(d, api->hbDNNGetModelHandle, "hbDNNGetModelHandle");
  bind(d, api->hbDNNGetInputCount, "hbDNNGetInputCount");
  bind(d, api->hbDNNGetOutputCount, "hbDNNGetOutputCount");
  bind(d, api->hbDNNGetInputName, "hbDNNGetInputName");
  bind(d, api->hbDNNGetOutputName, "hbDNNGetOutputName");
  bind(d, api->hbDNNGetInputTensorProperties, "hbDNNGetInputTensorProperties");
  bind(d, api->hbDNNGetOutputTensorProperties, "hbDNNGetOutputTensorProperties");
  bind(d, api->hbDNNGetInputDesc, "hbDNNGetInputDesc");
  bind(d, api->hbDNNGetOutputDesc, "hbDNNGetOutputDesc");
  bind(d, api->hbDNNGetModelDesc, "hbDNNGetModelDesc");
  bind(d, api->hbDNNGetHBMDesc, "hbDNNGetHBMDesc");
  bind(d, api->hbDNNInferV2, "hbDNNInferV2");
  bind(d, api->hbDNNGetTaskOutputTensorProperties, "hbDNNGetTaskOutputTensorProperties");
  d.bind_optional(api->hbDNNGetErrorDesc, "hbDNNGetErrorDesc");
  return api;
}

std::string UcpApi::version() const {
  auto str = [](FnGetString* fn) {
    const char* s = fn ? fn() : nullptr;
    return s ? std::string(s) : std::string("unknown");
  };
  std::string v = "libdnn " + str(hbDNNGetVersion) + " / libhbucp " + str(hbUCPGetVersion);
  if (hbUCPGetSocName) v += " (SoC " + str(hbUCPGetSocName) + ")";
  return v;
}

std::string UcpApi::dnn_version() const {
  const char* s = hbDNNGetVersion ? hbDNNGetVersion() : nullptr;
  return s ? std::string(s) : std::string();
}

void UcpApi::throw_dnn(int32_t rc, std::string_view context, std::string_view call) const {
  throw_error(describe(hbDNNGetErrorDesc, rc), rc, context, call);
}

void UcpApi::throw_ucp(int32_t rc, std::string_view context, std::string_view call) const {
  throw_error(describe(hbUCPGetErrorDesc, rc), rc, context, call);
}

// ---- layout probe ----

constexpr std::byte kSentinel{0xA5};

RawProps::RawProps() { bytes.fill(kSentinel); }

namespace {

constexpr int64_t kMaxBytes = int64_t{1} << 40;  // no tensor is a terabyte

bool plausible_pointer(const void* p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  return v >= 4096 && v % 4 == 0;
}

// Strict: fields every real tensor has sane under its own layout (count, type, quant
// pointers, sizes), which the other layout's bytes almost never satisfy.
bool plausible(const PropsLayout& layout, const RawProps& raw) {
  PropsView v(layout, const_cast<std::byte*>(raw.bytes.data()));
  const int nd = v.num_dims();
  if (nd < 0 || nd > layout.dims) return false;
  if (!is_valid(v.tensor_type())) return false;
  if (v.quanti_type() != 0 && v.quanti_type() != 1) return false;
  if (v.quantize_axis() < -layout.dims || v.quantize_axis() > layout.dims) return false;
  for (auto [len, ptr] : {std::pair<int32_t, const void*>{v.scale_len(), v.scale_data()},
                          {v.zero_point_len(), v.zero_point_data()}}) {
    if (len < 0 || len > (1 << 20)) return false;
    if (len > 0 && !plausible_pointer(ptr)) return false;
  }
  // Dims, strides and sizes are not judged here: an absurd tensor must fail the load
  // naming itself (build_tensor), not look like an unknown library version.
  return true;
}

// Soft, used only to break a tie: outer strides do not overlap inner dims and
// alignedByteSize is not below the dense size (permuted or 4-bit packed tensors may differ).
bool consistent(const PropsLayout& layout, const RawProps& raw) {
  PropsView v(layout, const_cast<std::byte*>(raw.bytes.data()));
  const int nd = v.num_dims();
  int64_t dense = static_cast<int64_t>(element_size(static_cast<DataType>(v.tensor_type())));
  bool all_known = true;
  for (int i = nd; i-- > 0;) {
    const int64_t d = v.dim(i), s = v.stride(i);
    if (d < 0) all_known = false;
    else if (__builtin_mul_overflow(dense, d, &dense) || dense > kMaxBytes) return false;
    if (i + 1 < nd) {
      const int64_t d1 = v.dim(i + 1), s1 = v.stride(i + 1);
      int64_t inner = 0;
      if (s != -1 && s1 != -1 && d1 > 0 && (__builtin_mul_overflow(d1, s1, &inner) || s < inner))
        return false;
    }
  }
  const int64_t aligned = v.aligned_byte_size();
  return !(all_known && aligned > 0 && aligned < dense);
}

// True when the D=8 library left the bytes past its 152-byte struct alone.
bool tail_untouched(const RawProps& raw) {
  for (size_t i = kLayoutD8.size; i < kLayoutD10.size; ++i)
    if (raw.bytes[i] != kSentinel) return false;
  return true;
}

}  // namespace

size_t bytes_written_past(const PropsLayout& layout, const RawProps& raw) {
  for (size_t i = raw.bytes.size(); i > layout.size; --i)
    if (raw.bytes[i - 1] != kSentinel) return i - layout.size;
  return 0;
}

namespace {
// A library that wrote past the struct has a layout we do not know: refuse it.
const PropsLayout& checked_tail(const PropsLayout& l, std::span<const RawProps> samples) {
  for (const auto& s : samples)
    if (size_t n = bytes_written_past(l, s))
      throw EngineUnavailable(
          "BPU engine unavailable: libdnn.so wrote " + std::to_string(n) +
          " bytes past the " + std::to_string(l.size) + "-byte hbDNNTensorProperties of the " +
          std::to_string(l.dims) + "-dim layout (a grown struct: unsupported library version)");
  return l;
}
}  // namespace

const PropsLayout& probe_layout(std::span<const RawProps> samples) {
  bool fits10 = !samples.empty(), fits8 = !samples.empty();
  size_t untouched = 0;
  int score10 = 0, score8 = 0;
  for (const auto& s : samples) {
    fits10 = fits10 && plausible(kLayoutD10, s);
    fits8 = fits8 && plausible(kLayoutD8, s);
    score10 += consistent(kLayoutD10, s);
    score8 += consistent(kLayoutD8, s);
    untouched += tail_untouched(s);
  }
  if (fits10 && fits8) {
    // Both fit: what the library wrote decides (a D=8 struct ends at byte 152); only an
    // odd library that wrote the tail for some tensors and not others needs the strides.
    if (untouched == samples.size()) return checked_tail(kLayoutD8, samples);
    if (untouched == 0) return checked_tail(kLayoutD10, samples);
    return checked_tail(score8 > score10 ? kLayoutD8 : kLayoutD10, samples);
  }
  if (fits10) return checked_tail(kLayoutD10, samples);
  if (fits8) return checked_tail(kLayoutD8, samples);
  throw EngineUnavailable(
      "BPU engine unavailable: the hbDNNTensorProperties returned by libdnn.so match neither "
      "the 10-dim nor the 8-dim layout (unsupported library version)");
}

}  // namespace hbm::ucp
