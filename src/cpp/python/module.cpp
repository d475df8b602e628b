// hbm_runtime._hbm_ext: the private extension. The public API lives in the Python package.
#include <nanobind/nanobind.h>

#include "core/dtype.h"
#include "errors.h"
#include "ops_binding.h"
#include "runtime_binding.h"

namespace nb = nanobind;

NB_MODULE(_hbm_ext, m) {
  using hbm::DataType;
  nb::enum_<DataType>(m, "hbDNNDataType", nb::is_arithmetic(), "Tensor element type (libdnn numbering).")
      .value("S4", DataType::S4)
      .value("U4", DataType::U4)
      .value("S8", DataType::S8)
      .value("U8", DataType::U8)
      .value("F16", DataType::F16)
      .value("S16", DataType::S16)
      .value("U16", DataType::U16)
      .value("F32", DataType::F32)
      .value("S32", DataType::S32)
      .value("U32", DataType::U32)
      .value("F64", DataType::F64)
      .value("S64", DataType::S64)
      .value("U64", DataType::U64)
      .value("BOOL8", DataType::BOOL8)
      .value("MAX", DataType::MAX);
  nb::enum_<hbm::QuantType>(m, "hbDNNQuantiType", nb::is_arithmetic(), "Tensor quantization type.")
      .value("NONE", hbm::QuantType::NONE)
      .value("SCALE", hbm::QuantType::SCALE);

  hbm::py::register_error_translation(m);
  hbm::py::bind_runtime(m);
  hbm::py::bind_scheduler(m);
  hbm::py::bind_nv12(m);
  hbm::py::bind_quantize(m);
  m.attr("__version__") = HBM_VERSION;
}
