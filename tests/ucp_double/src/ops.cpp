#include "ops.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace ucpd {
namespace {

const char* kNames[] = {"S4",  "U4",  "S8",  "U8",  "F16", "S16", "U16",
                        "F32", "S32", "U32", "F64", "S64", "U64", "BOOL8"};
const size_t kSizes[] = {1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8, 1};

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(std::byte* p, T v) { std::memcpy(p, &v, sizeof v); }

float half_to_float(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31) v = man ? std::numeric_limits<float>::quiet_NaN() : INFINITY;
  else v = std::ldexp(static_cast<float>(man | 0x400), exp - 25);
  return sign ? -v : v;
}

uint16_t float_to_half(float f) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t man = x & 0x7FFFFF;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (man ? 0x200 : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000;
    const int shift = 14 - exp;
    uint32_t h = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  const uint32_t rem = man & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

template <typename T>
T saturate(double v, T lo = std::numeric_limits<T>::lowest(), T hi = std::numeric_limits<T>::max()) {
  if (std::isnan(v)) return 0;
  v = std::trunc(v);
  if (v <= static_cast<double>(lo)) return lo;
  if (v >= static_cast<double>(hi)) return hi;
  return static_cast<T>(v);
}

}  // namespace

size_t elem_size(int32_t t) { return t >= 0 && t < 14 ? kSizes[t] : 0; }
const char* dtype_name(int32_t t) { return t >= 0 && t < 14 ? kNames[t] : "?"; }

int32_t dtype_from_name(const std::string& name) {
  for (int32_t t = 0; t < 14; ++t)
    if (name == kNames[t]) return t;
  return -1;
}

double read_elem(const std::byte* p, int32_t t) {
  switch (t) {
    case 0: case 2: return load<int8_t>(p);
    case 1: case 3: case 13: return load<uint8_t>(p);
    case 4: return half_to_float(load<uint16_t>(p));
    case 5: return load<int16_t>(p);
    case 6: return load<uint16_t>(p);
    case 7: return load<float>(p);
    case 8: return load<int32_t>(p);
    case 9: return load<uint32_t>(p);
    case 10: return load<double>(p);
    case 11: return static_cast<double>(load<int64_t>(p));
    case 12: return static_cast<double>(load<uint64_t>(p));
    default: return 0;
  }
}

void write_elem(std::byte* p, int32_t t, double v) {
  switch (t) {
    case 0: store(p, saturate<int8_t>(v, -8, 7)); break;
    case 1: store(p, saturate<uint8_t>(v, 0, 15)); break;
    case 2: store(p, saturate<int8_t>(v)); break;
    case 3: store(p, saturate<uint8_t>(v)); break;
    case 4: store(p, float_to_half(static_cast<float>(v))); break;
    case 5: store(p, saturate<int16_t>(v)); break;
    case 6: store(p, saturate<uint16_t>(v)); break;
    case 7: store(p, static_cast<float>(v)); break;
    case 8: store(p, saturate<int32_t>(v)); break;
    case 9: store(p, saturate<uint32_t>(v)); break;
    case 10: store(p, v); break;
    case 11: store(p, saturate<int64_t>(v)); break;
    case 12: store(p, saturate<uint64_t>(v)); break;
    case 13: store(p, static_cast<uint8_t>(v != 0)); break;
  }
}

int64_t Strided::count() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::byte* Strided::at(int64_t k) const {
  int64_t off = 0;
  for (size_t i = dims.size(); i-- > 0;) {
    off += (k % dims[i]) * strides[i];
    k /= dims[i];
  }
  return base + off;
}

std::string check_op(const OpDef& op) {
  const std::string& k = op.kind;
  if (k == "fill" || k == "iota") return op.inputs.empty() ? "" : k + " takes no inputs";
  if (k == "sum") return op.inputs.empty() ? "sum needs in=" : "";
  if (k == "copy" || k == "add" || k == "mul" || k == "rowsum")
    return op.inputs.size() == 1 ? "" : k + " needs exactly one input";
  return "unknown op '" + k + "'";
}

void run_op(const OpDef& op, const std::vector<Strided>& in, const Strided& out) {
  const int64_t n = out.count();
  auto arg = [&](size_t j, int64_t k) {
    const Strided& a = in[op.inputs[j]];
    const int64_t c = a.count();
    return c ? read_elem(a.at(k % c), a.dtype) : 0.0;
  };
  for (int64_t k = 0; k < n; ++k) {
    double v = 0;
    if (op.kind == "fill") v = op.value;
    else if (op.kind == "iota") v = op.value + static_cast<double>(k) * op.step;
    else if (op.kind == "copy") v = arg(0, k);
    else if (op.kind == "add") v = arg(0, k) + op.value;
    else if (op.kind == "mul") v = arg(0, k) * op.value;
    else if (op.kind == "sum") for (size_t j = 0; j < op.inputs.size(); ++j) v += arg(j, k);
    else if (op.kind == "rowsum") {
      const Strided& a = in[op.inputs[0]];
      const int64_t inner = a.dims.empty() ? 1 : a.dims.back();
      const int64_t rows = inner ? a.count() / inner : 0;
      if (rows) {
        const int64_t r = k % rows;
        for (int64_t j = 0; j < inner; ++j) v += read_elem(a.at(r * inner + j), a.dtype);
      }
    }
    write_elem(out.at(k), out.dtype, v);
  }
}

}  // namespace ucpd
