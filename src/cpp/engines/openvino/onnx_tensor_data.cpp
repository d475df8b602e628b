#include "engines/openvino/onnx_tensor_data.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace hbm::onnx_detail {

namespace fs = std::filesystem;

Tensor parse_tensor(Bytes msg) {
  Tensor t;
  t.msg = msg;
  each_field(msg, [&](const Field& f) {
    switch (f.number) {
      case 1:
        each_varint(f, [&](uint64_t d) {
          if (static_cast<int64_t>(d) < 0 || (d && t.count > UINT64_MAX / d))
            throw Malformed{f.at, "invalid tensor dims"};
          t.count *= d;
        });
        break;
      case 2: t.data_type = f.int32(); break;
      case 4: each_fixed32(f, [&](uint32_t v) { t.floats.push_back(v); }); break;
      case 5: each_varint(f, [&](uint64_t v) { t.ints.push_back(v); }); break;
      case 9: t.raw = f.len(); break;
      case 10: each_fixed64(f, [&](uint64_t v) { t.doubles.push_back(v); }); break;
      case 13: {
        std::pair<Bytes, Bytes> kv;  // StringStringEntryProto key = 1, value = 2
        each_field(f.len(), [&](const Field& e) {
          if (e.number == 1) kv.first = e.len();
          else if (e.number == 2) kv.second = e.len();
        });
        t.external_data.push_back(kv);
        break;
      }
      case 14: t.external = f.int32() == 1; break;
    }
  });
  return t;
}

// ---- external data -------------------------------------------------------------------------

namespace {

// Bytes a tensor's values take as raw data; nullopt for types never read here, or too many.
std::optional<uint64_t> raw_size(const Tensor& t) {
  uint64_t per = 0;
  switch (t.data_type) {
    case INT4: case UINT4: return t.count / 2 + t.count % 2;  // two per byte
    case INT8: case UINT8: per = 1; break;
    case INT16: case UINT16: case FLOAT16: case BFLOAT16: per = 2; break;
    case INT32: case FLOAT: per = 4; break;
    case DOUBLE: per = 8; break;
    default: return std::nullopt;
  }
  if (t.count > UINT64_MAX / per) return std::nullopt;
  return t.count * per;
}

// An external_data offset or length, read as Python's int() does (the onnx package's reader):
// surrounding blanks, a sign and '_' between digits allowed. nullopt when invalid or negative.
std::optional<uint64_t> parse_size(Bytes s) {
  auto blank = [](char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
  };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() == '_' || s.back() == '_') return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && s[i - 1] != '_') continue;
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  if (negative && v) return std::nullopt;
  return v;
}

// The file holding an external tensor, by the rules of the onnx package's reader: a relative
// location that stays inside the model's directory, through no symbolic link, to a regular
// file. Anything else could make metadata read files the model was not shipped with.
std::optional<fs::path> external_file(const fs::path& dir, Bytes location) {
  if (location.empty() || location.find('\0') != Bytes::npos) return std::nullopt;
  fs::path rel = fs::path(std::string(location)).lexically_normal();
  if (rel.is_absolute() || rel.has_root_path() || rel.empty() || *rel.begin() == "..")
    return std::nullopt;
  fs::path at = dir;
  std::error_code ec;
  for (const fs::path& part : rel) {
    at /= part;
    if (fs::symlink_status(at, ec).type() == fs::file_type::symlink || ec) return std::nullopt;
  }
  if (!fs::is_regular_file(at, ec)) return std::nullopt;
  return at;
}

}  // namespace

bool load_external(Tensor& t, const fs::path& dir) {
  t.raw.reset();  // an external tensor's raw_data, if any, is not its data
  Bytes location;
  std::optional<uint64_t> offset = 0, length;
  bool has_length = false;
  for (auto [key, value] : t.external_data) {  // a repeated key: the last one counts
    if (key == "location") location = value;
    else if (key == "offset") offset = parse_size(value);
    else if (key == "length") {
      length = parse_size(value);
      has_length = true;
    }
  }
  auto want = raw_size(t);
  auto file = external_file(dir, location);
  if (!want || !offset || (has_length && !length) || !file) return false;
  std::error_code ec;
  uint64_t size = fs::file_size(*file, ec);
  if (ec || *offset > size) return false;
  uint64_t available = has_length ? *length : size - *offset;
  if (available > size - *offset || available != *want) return false;
  auto bytes = std::make_shared<std::string>(static_cast<size_t>(*want), '\0');
  std::ifstream in(*file, std::ios::binary);
  if (!in.seekg(static_cast<std::streamoff>(*offset)) ||
      !in.read(bytes->data(), static_cast<std::streamsize>(*want)))
    return false;
  t.loaded = bytes;
  t.raw = Bytes(*bytes);
  return true;
}

// ---- scales and zero points ----------------------------------------------------------------

namespace {

// Wrong amounts of data cannot be read as anything: report the file as malformed.
// `have` is in units of `per` bytes/entries, each holding `elems` values (2 for 4-bit types).
void check_count(const Tensor& t, uint64_t have, uint64_t per, uint64_t elems = 1) {
  if (have % per || have / per != t.count / elems + t.count % elems)
    throw Malformed{t.msg.data(), "tensor data does not match its dims"};
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float32
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  uint32_t bits = sign | (exp == 0x1f ? 0x7f800000u : (exp + 112) << 23) | mant << 13;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// Rounds to nearest like numpy's astype(float32), without the undefined behaviour a plain cast
// has for finite values beyond float's range.
float double_to_float(double d) {
  constexpr double kHalfwayToOverflow = static_cast<double>(FLT_MAX) + 0x1p103;
  if (std::isfinite(d) && std::fabs(d) > FLT_MAX) {
    float big = std::fabs(d) < kHalfwayToOverflow ? FLT_MAX : INFINITY;
    return d < 0 ? -big : big;
  }
  return static_cast<float>(d);
}

float bits_to_float(int32_t type, uint64_t bits) {
  switch (type) {
    case FLOAT16: return half_to_float(static_cast<uint16_t>(bits));
    case BFLOAT16: bits = (bits & 0xffffu) << 16; [[fallthrough]];
    case FLOAT: {
      float v;
      uint32_t b = static_cast<uint32_t>(bits);
      std::memcpy(&v, &b, 4);
      return v;
    }
    default: {  // DOUBLE
      double v;
      std::memcpy(&v, &bits, 8);
      return double_to_float(v);
    }
  }
}

}  // namespace

std::optional<std::vector<float>> read_scale(const Tensor& t) {
  int bytes = 0;
  switch (t.data_type) {
    case FLOAT: bytes = 4; break;
    case FLOAT16: case BFLOAT16: bytes = 2; break;
    case DOUBLE: bytes = 8; break;
    default: return std::nullopt;
  }
  if (t.external && !t.raw) return std::nullopt;
  std::vector<float> out;
  auto push = [&](uint64_t bits) { out.push_back(bits_to_float(t.data_type, bits)); };
  if (t.raw) {
    check_count(t, t.raw->size(), bytes);
    out.reserve(t.count);
    for (size_t i = 0; i < t.raw->size(); i += bytes) push(read_le(t.raw->data() + i, bytes));
  } else if (t.data_type == FLOAT) {
    check_count(t, t.floats.size(), 1);
    for (uint32_t bits : t.floats) push(bits);
  } else if (t.data_type == DOUBLE) {
    check_count(t, t.doubles.size(), 1);
    for (uint64_t bits : t.doubles) push(bits);
  } else {  // 16-bit floats live in int32_data, one per entry, in the low 16 bits
    check_count(t, t.ints.size(), 1);
    for (uint64_t v : t.ints) push(v & 0xffffu);
  }
  return out;
}

std::optional<std::vector<int32_t>> read_zero_point(const Tensor& t) {
  if (t.external && !t.raw) return std::nullopt;
  bool is_signed = t.data_type == INT8 || t.data_type == INT16 || t.data_type == INT32 ||
                   t.data_type == INT4;
  int bytes = 0;  // 0: two 4-bit values per byte (or per int32_data entry), low nibble first
  switch (t.data_type) {
    case INT8: case UINT8: bytes = 1; break;
    case INT16: case UINT16: bytes = 2; break;
    case INT32: bytes = 4; break;
    case INT4: case UINT4: bytes = 0; break;
    default: return std::nullopt;
  }
  // Values wider than the type are truncated to it, like numpy's astype would.
  auto narrow = [&](uint64_t v, int bits) {
    uint64_t mask = (uint64_t{1} << bits) - 1, sign = uint64_t{1} << (bits - 1);
    v &= mask;
    int64_t s = is_signed && (v & sign) ? static_cast<int64_t>(v) - static_cast<int64_t>(mask) - 1
                                        : static_cast<int64_t>(v);
    return static_cast<int32_t>(s);
  };
  std::vector<int32_t> out;
  if (bytes == 0) {
    auto nibble_at = [&](uint64_t packed, size_t i) { return narrow(packed >> (4 * (i % 2)), 4); };
    check_count(t, t.raw ? t.raw->size() : t.ints.size(), 1, 2);
    for (size_t i = 0; i < t.count; ++i)
      out.push_back(nibble_at(t.raw ? static_cast<uint8_t>((*t.raw)[i / 2]) : t.ints[i / 2], i));
  } else if (t.raw) {
    check_count(t, t.raw->size(), bytes);
    for (size_t i = 0; i < t.raw->size(); i += bytes)
      out.push_back(narrow(read_le(t.raw->data() + i, bytes), 8 * bytes));
  } else {
    check_count(t, t.ints.size(), 1);  // int32_data holds one value per entry
    for (uint64_t v : t.ints) out.push_back(narrow(v, 8 * bytes));
  }
  return out;
}

}  // namespace hbm::onnx_detail
