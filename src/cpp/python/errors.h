// Core errors -> Python exceptions, in one place.
#pragma once
#include <exception>
#include <string>

#include <nanobind/nanobind.h>

namespace hbm::py {

// The Python exception object for a core error (GIL held).
nanobind::object to_python_exception(std::exception_ptr error);
void register_error_translation(nanobind::module_& m);

// str(obj), for error messages (GIL held).
inline std::string str_of(nanobind::handle obj) { return nanobind::str(obj).c_str(); }

}  // namespace hbm::py
