// Tensor element types, numbered exactly like libdnn's hbDNNDataType.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hbm {

enum class DataType : int32_t {
  S4 = 0, U4 = 1, S8 = 2, U8 = 3, F16 = 4, S16 = 5, U16 = 6, F32 = 7,
  S32 = 8, U32 = 9, F64 = 10, S64 = 11, U64 = 12, BOOL8 = 13, MAX = 14,
};

enum class QuantType : int32_t { NONE = 0, SCALE = 1 };

// DLPack type codes, so the bindings can match arrays without knowing our enum.
enum class DLCode : uint8_t { Int = 0, UInt = 1, Float = 2, Bool = 6 };

struct DTypeTraits {
  DataType type;
  std::string_view name;
  std::string_view numpy_name;  // what users see in numpy ("float32"); S4/U4 are "int8"/"uint8"
  size_t size;       // bytes per element; S4/U4 are stored one per byte
  DLCode dl_code;
  uint8_t dl_bits;   // 0 for types numpy cannot express (S4/U4)
};

const DTypeTraits& traits(DataType t);
inline size_t element_size(DataType t) { return traits(t).size; }
inline std::string_view dtype_name(DataType t) { return traits(t).name; }
bool is_valid(int32_t raw);
// The DataType with this DLPack code/bits, or DataType::MAX when none matches.
DataType from_dlpack(DLCode code, uint8_t bits);

}  // namespace hbm
