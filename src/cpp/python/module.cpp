// hbm_runtime._hbm_ext: the private extension. The public API lives in the Python package.
#include <nanobind/nanobind.h>

#include "core/dtype.h"
#include "errors.h"
#include "ops_binding.h"
#include "runtime_binding.h"

namespace nb = nanobind;

NB_MODULE(_hbm_ext, m) {
  using hbm::DataType;
  nb::enum_<DataType>(m, "hbDNNDataType", nb::is_arithmetic(),
                      "Tensor element type, with libdnn's numbering: an integer enum, e.g. "
                      "``rt.input_dtypes['resnet18']['input'] == hbDNNDataType.U8`` and "
                      "``int(hbDNNDataType.F32) == 7``.")
      .value("S4", DataType::S4, "signed 4-bit integer (numpy int8 on the Python side)")
      .value("U4", DataType::U4, "unsigned 4-bit integer (numpy uint8 on the Python side)")
      .value("S8", DataType::S8, "signed 8-bit integer (numpy.int8)")
      .value("U8", DataType::U8, "unsigned 8-bit integer (numpy.uint8)")
      .value("F16", DataType::F16, "16-bit float (numpy.float16)")
      .value("S16", DataType::S16, "signed 16-bit integer (numpy.int16)")
      .value("U16", DataType::U16, "unsigned 16-bit integer (numpy.uint16)")
      .value("F32", DataType::F32, "32-bit float (numpy.float32)")
      .value("S32", DataType::S32, "signed 32-bit integer (numpy.int32)")
      .value("U32", DataType::U32, "unsigned 32-bit integer (numpy.uint32)")
      .value("F64", DataType::F64, "64-bit float (numpy.float64)")
      .value("S64", DataType::S64, "signed 64-bit integer (numpy.int64)")
      .value("U64", DataType::U64, "unsigned 64-bit integer (numpy.uint64)")
      .value("BOOL8", DataType::BOOL8, "boolean, one byte (numpy.bool_)")
      .value("MAX", DataType::MAX, "end marker of the numbering, not a type");
  nb::enum_<hbm::QuantType>(m, "hbDNNQuantiType", nb::is_arithmetic(),
                            "Tensor quantization type: NONE, or SCALE for "
                            "``x_float = (x_int - zero_point) * scale`` (see QuantParams).")
      .value("NONE", hbm::QuantType::NONE, "not quantized")
      .value("SCALE", hbm::QuantType::SCALE, "scale and zero point, per tensor or per axis");

  hbm::py::register_error_translation(m);
  hbm::py::bind_runtime(m);
  hbm::py::bind_scheduler(m);
  hbm::py::bind_nv12(m);
  hbm::py::bind_quantize(m);
  hbm::py::bind_doctor(m);
  m.attr("__version__") = HBM_VERSION;
}
