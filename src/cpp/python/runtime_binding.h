#pragma once
#include <nanobind/nanobind.h>

namespace hbm::py {
void bind_runtime(nanobind::module_& m);
void bind_scheduler(nanobind::module_& m);
void bind_doctor(nanobind::module_& m);  // doctor_binding.cpp
}
