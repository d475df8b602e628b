#include "errors.h"

#include <nanobind/stl/string.h>

#include "core/errors.h"

namespace nb = nanobind;

namespace hbm::py {
namespace {
nb::object errors_module() { return nb::module_::import_("hbm_runtime._errors"); }
}  // namespace

nb::object to_python_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const EngineError& e) {
    return errors_module().attr("HBMRuntimeError")(nb::str(e.what()), e.code,
                                                   nb::str(e.description.c_str()));
  } catch (const EngineUnavailable& e) {
    return errors_module().attr("EngineUnavailableError")(e.what());
  } catch (const Cancelled& e) {
    return errors_module().attr("RuntimeClosedError")(e.what());
  } catch (const InvalidArgument& e) {
    return errors_module().attr("InvalidArgumentError")(e.what());
  } catch (const nb::python_error& e) {
    return nb::borrow(e.value());
  } catch (const std::bad_alloc&) {
    return nb::borrow(PyExc_MemoryError)();
  } catch (const std::exception& e) {
    return nb::borrow(PyExc_RuntimeError)(e.what());
  }
}

void register_error_translation(nb::module_&) {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error&) {
      nb::object exc = to_python_exception(p);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
}

}  // namespace hbm::py
