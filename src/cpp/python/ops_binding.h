#pragma once
#include <nanobind/nanobind.h>

namespace hbm::py {
void bind_nv12(nanobind::module_& m);      // nv12_binding.cpp
void bind_quantize(nanobind::module_& m);  // quantize_binding.cpp
}
