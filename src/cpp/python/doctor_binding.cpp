// _ucp_props_layout: which hbDNNTensorProperties layout (10 or 8 dims) the BPU engine's probe
// picks for the tensors of some .hbm files. `python -m hbm_runtime doctor` reports it; the
// engine keeps its choice inside each model.
#include <string>
#include <vector>

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "core/errors.h"
#include "gil.h"
#include "runtime_binding.h"

#if __has_include("engines/ucp/ucp_handles.h")
#include "engines/ucp/ucp_handles.h"
#define HBM_DOCTOR_HAVE_UCP 1
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace hbm::py {
namespace {

#ifdef HBM_DOCTOR_HAVE_UCP
int ucp_props_layout(const std::vector<std::string>& files) {
  using namespace hbm::ucp;
  if (files.empty()) throw InvalidArgument("no model file given");
  // The libraries the engine uses (the same search; dlopen returns the loaded instance).
  std::shared_ptr<const UcpApi> api = UcpApi::load();
  std::vector<const char*> paths;
  for (const auto& f : files) paths.push_back(f.c_str());
  PackedHandle h = nullptr;
  const int32_t rc =
      api->hbDNNInitializeFromFiles(&h, paths.data(), static_cast<int32_t>(paths.size()));
  Packed packed(api, h);
  const std::string context = "probing the tensor properties layout";
  api->check_dnn(rc, context, "hbDNNInitializeFromFiles");
  if (!h) throw Error(context + ": hbDNNInitializeFromFiles gave no handle");
  const char** names = nullptr;
  int32_t count = 0;
  api->check_dnn(api->hbDNNGetModelNameList(&names, &count, h), context, "hbDNNGetModelNameList");
  std::vector<RawProps> samples;
  for (int32_t m = 0; m < count; ++m) {
    ModelHandle model = nullptr;
    api->check_dnn(api->hbDNNGetModelHandle(&model, h, names && names[m] ? names[m] : ""), context,
                   "hbDNNGetModelHandle");
    for (bool input : {true, false}) {
      int32_t n = 0;
      api->check_dnn((input ? api->hbDNNGetInputCount : api->hbDNNGetOutputCount)(&n, model),
                     context, input ? "hbDNNGetInputCount" : "hbDNNGetOutputCount");
      for (int32_t i = 0; i < n; ++i) {
        samples.emplace_back();
        api->check_dnn((input ? api->hbDNNGetInputTensorProperties
                              : api->hbDNNGetOutputTensorProperties)(samples.back().bytes.data(),
                                                                     model, i),
                       context,
                       input ? "hbDNNGetInputTensorProperties" : "hbDNNGetOutputTensorProperties");
      }
    }
  }
  return probe_layout(samples).dims;  // the engine's own decision (EngineUnavailable if none fits)
}
#endif

}  // namespace

void bind_doctor(nb::module_& m) {
#ifdef HBM_DOCTOR_HAVE_UCP
  m.def("_ucp_props_layout", &ucp_props_layout, "model_files"_a, nb::call_guard<GilRelease>(),
        "Loads the .hbm files with the BPU libraries and returns the hbDNNTensorProperties "
        "layout the engine detects for their tensors: 10 or 8 (dims).");
#else
  (void)m;
#endif
}

}  // namespace hbm::py
