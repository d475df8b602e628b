// numpy publishes its C API as a table of function pointers in the capsule
// numpy._core._multiarray_umath._ARRAY_API (numpy.core.* before 2.0). The entries used here
// have kept their index and signature from numpy 1.7 through 2.x, so they are declared here
// instead of compiling against one numpy's headers. Building an array this way skips the
// protocol discovery numpy.asarray does on nanobind's exported object (about a sixth of a
// tiny model's run() before this path existed). Reading an input array goes through the
// public, equally stable PyArrayObject and PyArray_Descr field layouts instead of a DLPack
// capsule made and parsed for every call.
#include "numpy_api.h"

#include <array>
#include <cstdint>

namespace nb = nanobind;

namespace hbm::py::numpy_api {
namespace {

using npy_intp = intptr_t;
using GetVersion = unsigned int (*)();
using DescrFromType = PyObject* (*)(int type_num);
using NewFromDescr = PyObject* (*)(PyTypeObject* subtype, PyObject* descr, int nd,
                                   const npy_intp* dims, const npy_intp* strides, void* data,
                                   int flags, PyObject* obj);
using SetBaseObject = int (*)(PyObject* array, PyObject* base);  // steals `base`

constexpr int kGetNDArrayCVersion = 0, kArrayType = 2, kDescrFromType = 45, kNewFromDescr = 94,
              kSetBaseObject = 282;
constexpr int kWriteable = 0x0400;  // NPY_ARRAY_WRITEABLE
constexpr size_t kMaxDims = 64;     // NPY_MAXDIMS of numpy 2 (32 before)

// numpy type numbers (NPY_TYPES), by our DataType. S4/U4 travel one value per byte.
constexpr int kInt64 = sizeof(long) == 8 ? 7 : 9;     // NPY_LONG on LP64, else NPY_LONGLONG
constexpr int kUInt64 = sizeof(long) == 8 ? 8 : 10;  // NPY_ULONG / NPY_ULONGLONG
constexpr std::array<int, static_cast<size_t>(DataType::MAX)> kTypeNum{
    1 /*S4*/,  2 /*U4*/,  1 /*S8*/, 2 /*U8*/,  23 /*F16*/,   3 /*S16*/,     4 /*U16*/,
    11 /*F32*/, 5 /*S32*/, 6 /*U32*/, 12 /*F64*/, kInt64 /*S64*/, kUInt64 /*U64*/, 0 /*BOOL8*/};

// The leading fields of PyArrayObject_fields and PyArray_Descr (numpy 1.7 through 2.x).
struct ArrayFields {
  PyObject head;
  char* data;
  int nd;
  npy_intp* dimensions;
  npy_intp* strides;
  PyObject* base;
  PyObject* descr;
};
struct DescrFields {
  PyObject head;
  PyTypeObject* typeobj;
  char kind, type, byteorder, flags_or_reserved;
  int type_num;
};

DataType from_type_num(int type_num) {
  constexpr bool long64 = sizeof(long) == 8;
  switch (type_num) {
    case 0: return DataType::BOOL8;
    case 1: return DataType::S8;
    case 2: return DataType::U8;
    case 3: return DataType::S16;
    case 4: return DataType::U16;
    case 5: return DataType::S32;
    case 6: return DataType::U32;
    case 7: return long64 ? DataType::S64 : DataType::S32;  // NPY_LONG
    case 8: return long64 ? DataType::U64 : DataType::U32;  // NPY_ULONG
    case 9: return DataType::S64;
    case 10: return DataType::U64;
    case 11: return DataType::F32;
    case 12: return DataType::F64;
    case 23: return DataType::F16;
    default: return DataType::MAX;  // long double, complex, object, strings, datetimes...
  }
}

struct Api {
  PyTypeObject* array_type = nullptr;
  NewFromDescr new_from_descr = nullptr;
  SetBaseObject set_base = nullptr;
  std::array<PyObject*, kTypeNum.size()> descr{};  // owned for the life of the process
};

void** array_api_table() {
  for (const char* name : {"numpy._core._multiarray_umath", "numpy.core._multiarray_umath"}) {
    PyObject* module = PyImport_ImportModule(name);
    if (!module) {
      PyErr_Clear();
      continue;
    }
    PyObject* capsule = PyObject_GetAttrString(module, "_ARRAY_API");
    Py_DECREF(module);
    if (!capsule) {
      PyErr_Clear();
      continue;
    }
    void* table = PyCapsule_GetPointer(capsule, nullptr);
    Py_DECREF(capsule);
    if (table) return static_cast<void**>(table);
    PyErr_Clear();
  }
  return nullptr;
}

// Loaded at first use (the GIL serialises it); nullptr when numpy is not as expected.
const Api* api() {
  static bool tried = false;
  static Api loaded;
  static const Api* result = nullptr;
  if (tried) return result;
  tried = true;
  void** table = array_api_table();
  if (!table) return nullptr;
  // The ABI version's top byte: 1 for numpy 1.x, 2 for 2.x. Anything else is unknown.
  const unsigned abi = reinterpret_cast<GetVersion>(table[kGetNDArrayCVersion])() >> 24;
  if (abi != 1 && abi != 2) return nullptr;
  loaded.array_type = static_cast<PyTypeObject*>(table[kArrayType]);
  loaded.new_from_descr = reinterpret_cast<NewFromDescr>(table[kNewFromDescr]);
  loaded.set_base = reinterpret_cast<SetBaseObject>(table[kSetBaseObject]);
  const auto descr_from_type = reinterpret_cast<DescrFromType>(table[kDescrFromType]);
  for (size_t i = 0; i < kTypeNum.size(); ++i) {
    loaded.descr[i] = descr_from_type(kTypeNum[i]);
    if (!loaded.descr[i]) {
      PyErr_Clear();
      return nullptr;
    }
  }
  result = &loaded;
  return result;
}

}  // namespace

nb::object wrap(void* data, DataType dtype, const std::vector<int64_t>& shape,
                const std::vector<int64_t>& byte_strides, nb::handle owner) {
  const Api* a = api();
  const auto index = static_cast<size_t>(dtype);
  if (!a || index >= kTypeNum.size() || shape.size() > kMaxDims) return {};
  std::array<npy_intp, kMaxDims> dims{}, strides{};
  for (size_t i = 0; i < shape.size(); ++i) {
    dims[i] = static_cast<npy_intp>(shape[i]);
    strides[i] = static_cast<npy_intp>(byte_strides[i]);
  }
  PyObject* descr = a->descr[index];
  Py_INCREF(descr);  // stolen by NewFromDescr
  // Given strides, numpy derives the contiguity and alignment flags itself.
  nb::object array = nb::steal(a->new_from_descr(a->array_type, descr,
                                                 static_cast<int>(shape.size()), dims.data(),
                                                 strides.data(), data, kWriteable, nullptr));
  if (!array.is_valid()) throw nb::python_error();
  if (a->set_base(array.ptr(), owner.inc_ref().ptr()) != 0) throw nb::python_error();
  return array;
}

bool is_array(nb::handle obj) {
  const Api* a = api();
  return a && PyObject_TypeCheck(obj.ptr(), a->array_type);
}

ViewResult view(nb::handle obj, ArrayView& out) {
  const Api* a = api();
  if (!a || !PyObject_TypeCheck(obj.ptr(), a->array_type)) return ViewResult::kNotNumpy;
  const auto* arr = reinterpret_cast<const ArrayFields*>(obj.ptr());
  const auto* descr = reinterpret_cast<const DescrFields*>(arr->descr);
  const bool native = descr->byteorder == '=' || descr->byteorder == '|' ||
                      descr->byteorder == (PY_BIG_ENDIAN ? '>' : '<');
  out.dtype = native ? from_type_num(descr->type_num) : DataType::MAX;
  if (out.dtype == DataType::MAX) return ViewResult::kUnsupportedDtype;
  out.data = arr->data;
  out.shape.assign(arr->dimensions, arr->dimensions + arr->nd);
  out.byte_strides.assign(arr->strides, arr->strides + arr->nd);
  return ViewResult::kViewed;
}

}  // namespace hbm::py::numpy_api
