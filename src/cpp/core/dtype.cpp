#include "dtype.h"

#include <array>

namespace hbm {
namespace {
constexpr std::array<DTypeTraits, 15> kTable{{
    {DataType::S4, "S4", "int8", 1, DLCode::Int, 0},
    {DataType::U4, "U4", "uint8", 1, DLCode::UInt, 0},
    {DataType::S8, "S8", "int8", 1, DLCode::Int, 8},
    {DataType::U8, "U8", "uint8", 1, DLCode::UInt, 8},
    {DataType::F16, "F16", "float16", 2, DLCode::Float, 16},
    {DataType::S16, "S16", "int16", 2, DLCode::Int, 16},
    {DataType::U16, "U16", "uint16", 2, DLCode::UInt, 16},
    {DataType::F32, "F32", "float32", 4, DLCode::Float, 32},
    {DataType::S32, "S32", "int32", 4, DLCode::Int, 32},
    {DataType::U32, "U32", "uint32", 4, DLCode::UInt, 32},
    {DataType::F64, "F64", "float64", 8, DLCode::Float, 64},
    {DataType::S64, "S64", "int64", 8, DLCode::Int, 64},
    {DataType::U64, "U64", "uint64", 8, DLCode::UInt, 64},
    {DataType::BOOL8, "BOOL8", "bool", 1, DLCode::Bool, 8},
    {DataType::MAX, "MAX", "none", 0, DLCode::UInt, 0},
}};
}  // namespace

const DTypeTraits& traits(DataType t) {
  auto i = static_cast<size_t>(t);
  return kTable[i < kTable.size() ? i : kTable.size() - 1];
}

bool is_valid(int32_t raw) { return raw >= 0 && raw < static_cast<int32_t>(DataType::MAX); }

DataType from_dlpack(DLCode code, uint8_t bits) {
  for (const auto& t : kTable)
    if (t.dl_bits != 0 && t.dl_code == code && t.dl_bits == bits) return t.type;
  return DataType::MAX;
}

}  // namespace hbm
