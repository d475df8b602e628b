// ONNX metadata straight from the protobuf wire format. Only the few fields we need are decoded;
// everything else (weights above all) is skipped by length, so even huge models read fast.
// Field numbers follow onnx.proto (onnx 1.23); onnx-ml.proto uses the same ones.
#include "engines/openvino/onnx_reader.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace hbm {
namespace {

using Bytes = std::string_view;
namespace fs = std::filesystem;

// ---- protobuf wire format -----------------------------------------------------------------

// Thrown by the decoder; read_onnx_file turns it into InvalidArgument with the file offset.
struct Malformed {
  const char* at;
  const char* what;
};

enum Wire : uint32_t { VARINT = 0, I64 = 1, LEN = 2, SGROUP = 3, EGROUP = 4, I32 = 5 };

uint64_t read_varint(const char*& p, const char* end) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {  // at most 10 bytes
    if (p == end) throw Malformed{p, "truncated varint"};
    auto b = static_cast<uint8_t>(*p++);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
  throw Malformed{p, "varint longer than 10 bytes"};
}

uint64_t read_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t value = 0;        // VARINT, I64 and I32 payloads
  Bytes bytes;               // LEN payload, a view into the file buffer
  const char* at = nullptr;  // the tag, for error offsets

  // A known field with the wrong wire type means the file is not what we think it is.
  Bytes len() const {
    if (wire != LEN) throw Malformed{at, "unexpected wire type for a message/string field"};
    return bytes;
  }
  uint64_t varint() const {
    if (wire != VARINT) throw Malformed{at, "unexpected wire type for an integer field"};
    return value;
  }
  int32_t int32() const { return static_cast<int32_t>(static_cast<uint32_t>(varint())); }
  int64_t int64() const { return static_cast<int64_t>(varint()); }
};

// Iterates the fields of one serialized message. Every read is bounds-checked.
class Reader {
 public:
  explicit Reader(Bytes msg) : p_(msg.data()), end_(msg.data() + msg.size()) {}

  // The next field, with (deprecated) groups skipped like any unknown field; false at the end.
  bool next(Field& f) {
    while (p_ != end_) {
      read_field(f);
      if (f.wire == SGROUP) {
        skip_group(f.number, 0);
        continue;
      }
      if (f.wire == EGROUP) throw Malformed{f.at, "unmatched end-group tag"};
      return true;
    }
    return false;
  }

 private:
  void read_field(Field& f) {
    f.at = p_;
    uint64_t tag = read_varint(p_, end_);
    if (tag >> 32 || tag >> 3 == 0) throw Malformed{f.at, "invalid field number"};
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire = static_cast<uint32_t>(tag & 7);
    switch (f.wire) {
      case VARINT: f.value = read_varint(p_, end_); break;
      case I64: f.value = fixed(8); break;
      case I32: f.value = fixed(4); break;
      case LEN: {
        uint64_t n = read_varint(p_, end_);
        if (n > static_cast<uint64_t>(end_ - p_)) throw Malformed{f.at, "truncated field"};
        f.bytes = Bytes(p_, static_cast<size_t>(n));
        p_ += n;
        break;
      }
      case SGROUP: case EGROUP: break;
      default: throw Malformed{f.at, "invalid wire type"};
    }
  }

  uint64_t fixed(int n) {
    if (end_ - p_ < n) throw Malformed{p_, "truncated fixed-size field"};
    uint64_t v = read_le(p_, n);
    p_ += n;
    return v;
  }

  void skip_group(uint32_t number, int depth) {
    if (depth > 32) throw Malformed{p_, "groups nested too deeply"};
    Field f;
    while (p_ != end_) {
      read_field(f);
      if (f.wire == SGROUP) skip_group(f.number, depth + 1);
      if (f.wire == EGROUP) {
        if (f.number != number) throw Malformed{f.at, "mismatched end-group tag"};
        return;
      }
    }
    throw Malformed{p_, "unterminated group"};
  }

  const char* p_;
  const char* end_;
};

// Repeated scalars come packed (one LEN field) or one field per value; accept both.
template <class Fn>
void each_varint(const Field& f, Fn&& fn) {
  if (f.wire == VARINT) return fn(f.value);
  Bytes b = f.len();
  for (const char *p = b.data(), *end = p + b.size(); p != end;) fn(read_varint(p, end));
}

template <class Fn>
void each_fixed32(const Field& f, Fn&& fn) {
  if (f.wire == I32) return fn(static_cast<uint32_t>(f.value));
  Bytes b = f.len();
  if (b.size() % 4) throw Malformed{f.at, "packed fixed32 field of odd size"};
  for (size_t i = 0; i < b.size(); i += 4) fn(static_cast<uint32_t>(read_le(b.data() + i, 4)));
}

template <class Fn>
void each_fixed64(const Field& f, Fn&& fn) {
  if (f.wire == I64) return fn(f.value);
  Bytes b = f.len();
  if (b.size() % 8) throw Malformed{f.at, "packed fixed64 field of odd size"};
  for (size_t i = 0; i < b.size(); i += 8) fn(read_le(b.data() + i, 8));
}

// Calls fn(field) for every field of a message that was given in several chunks: protobuf merges
// repeated occurrences of a singular message field, which is what reading them in order does.
template <class Fn>
void each_field(const std::vector<Bytes>& chunks, Fn&& fn) {
  Field f;
  for (Bytes chunk : chunks)
    for (Reader r(chunk); r.next(f);) fn(f);
}

template <class Fn>
void each_field(Bytes msg, Fn&& fn) {
  Field f;
  for (Reader r(msg); r.next(f);) fn(f);
}

// ---- ONNX messages (only the fields we use) ------------------------------------------------

struct Model {
  Bytes doc;                                   // ModelProto.doc_string = 6
  std::vector<Bytes> graph;                    // ModelProto.graph = 7
  std::vector<std::pair<Bytes, Bytes>> props;  // ModelProto.metadata_props = 14
};

struct Graph {
  Bytes doc;                          // GraphProto.doc_string = 10
  std::vector<Bytes> nodes;           // node = 1
  std::vector<Bytes> initializers;    // initializer = 5
  std::vector<Bytes> inputs, outputs; // input = 11, output = 12 (ValueInfoProto)
};

struct Node {
  Bytes op_type, domain;                 // NodeProto.op_type = 4, domain = 7
  std::vector<Bytes> inputs, outputs;    // input = 1, output = 2
  Bytes msg;                             // whole node, for its attributes (= 5)
};

struct ValueInfo {
  Bytes name, doc;             // ValueInfoProto.name = 1, doc_string = 3
  const char* other_type = nullptr;  // set when the TypeProto is not a tensor type
  int32_t elem_type = 0;       // TypeProto.Tensor.elem_type = 1 (0 = UNDEFINED)
  bool has_shape = false;      // TypeProto.Tensor.shape = 2 is present: the rank is known
  std::vector<int64_t> shape;  // -1 for dim_param / unset dims
};

Model parse_model(Bytes data) {
  Model m;
  each_field(data, [&](const Field& f) {
    if (f.number == 6) m.doc = f.len();
    else if (f.number == 7) m.graph.push_back(f.len());
    else if (f.number == 14) {
      std::pair<Bytes, Bytes> kv;  // StringStringEntryProto key = 1, value = 2
      each_field(f.len(), [&](const Field& e) {
        if (e.number == 1) kv.first = e.len();
        else if (e.number == 2) kv.second = e.len();
      });
      m.props.push_back(kv);
    }
  });
  return m;
}

Graph parse_graph(const std::vector<Bytes>& chunks) {
  Graph g;
  each_field(chunks, [&](const Field& f) {
    switch (f.number) {
      case 1: g.nodes.push_back(f.len()); break;
      case 5: g.initializers.push_back(f.len()); break;
      case 10: g.doc = f.len(); break;
      case 11: g.inputs.push_back(f.len()); break;
      case 12: g.outputs.push_back(f.len()); break;
    }
  });
  return g;
}

Node parse_node(Bytes msg) {
  Node n;
  n.msg = msg;
  each_field(msg, [&](const Field& f) {
    switch (f.number) {
      case 1: n.inputs.push_back(f.len()); break;
      case 2: n.outputs.push_back(f.len()); break;
      case 4: n.op_type = f.len(); break;
      case 7: n.domain = f.len(); break;
    }
  });
  return n;
}

ValueInfo parse_value_info(Bytes msg) {
  ValueInfo vi;
  std::vector<Bytes> type, tensor, shape;
  each_field(msg, [&](const Field& f) {
    if (f.number == 1) vi.name = f.len();
    else if (f.number == 2) type.push_back(f.len());
    else if (f.number == 3) vi.doc = f.len();
  });
  // TypeProto.value is a oneof: a later member replaces an earlier one.
  each_field(type, [&](const Field& f) {
    static const std::pair<uint32_t, const char*> kOther[] = {
        {4, "sequence"}, {5, "map"}, {7, "opaque"}, {8, "sparse tensor"}, {9, "optional"}};
    if (f.number == 1) {
      tensor.push_back(f.len());
      vi.other_type = nullptr;
    }
    for (auto [number, name] : kOther)
      if (f.number == number) {
        (void)f.len();  // checks the wire type
        tensor.clear();
        vi.other_type = name;
      }
  });
  each_field(tensor, [&](const Field& f) {
    if (f.number == 1) vi.elem_type = f.int32();
    else if (f.number == 2) shape.push_back(f.len());
  });
  vi.has_shape = !shape.empty();
  each_field(shape, [&](const Field& f) {
    if (f.number != 1) return;  // TensorShapeProto.dim = 1
    int64_t dim = -1;           // Dimension: dim_value = 1, dim_param = 2 (a oneof)
    each_field(f.len(), [&](const Field& d) {
      if (d.number == 1) dim = d.int64();
      else if (d.number == 2) {
        (void)d.len();  // checks the wire type
        dim = -1;
      }
    });
    vi.shape.push_back(dim < 0 ? -1 : dim);  // some exporters write -1 for dynamic dims
  });
  return vi;
}

// ---- tensors (only the few quantization parameters are ever decoded) -----------------------

enum OnnxType : int32_t {
  FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7, STRING = 8,
  BOOL = 9, FLOAT16 = 10, DOUBLE = 11, UINT32 = 12, UINT64 = 13, BFLOAT16 = 16, UINT4 = 21,
  INT4 = 22,
};

const char* onnx_type_name(int32_t t) {
  static const char* const kNames[] = {
      "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
      "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
      "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
      "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2"};
  return t >= 0 && t < static_cast<int32_t>(std::size(kNames)) ? kNames[t] : "UNKNOWN";
}

std::optional<DataType> from_onnx(int32_t t) {
  switch (t) {
    case FLOAT: return DataType::F32;
    case UINT8: return DataType::U8;
    case INT8: return DataType::S8;
    case UINT16: return DataType::U16;
    case INT16: return DataType::S16;
    case INT32: return DataType::S32;
    case INT64: return DataType::S64;
    case BOOL: return DataType::BOOL8;
    case FLOAT16: return DataType::F16;
    case DOUBLE: return DataType::F64;
    case UINT32: return DataType::U32;
    case UINT64: return DataType::U64;
    case UINT4: return DataType::U4;
    case INT4: return DataType::S4;
    default: return std::nullopt;
  }
}

bool is_integer(DataType t) {
  switch (t) {
    case DataType::S4: case DataType::U4: case DataType::S8: case DataType::U8:
    case DataType::S16: case DataType::U16: case DataType::S32: case DataType::U32:
    case DataType::S64: case DataType::U64: return true;
    default: return false;
  }
}

struct Tensor {
  Bytes msg;
  int32_t data_type = 0;        // TensorProto.data_type = 2
  uint64_t count = 1;           // product of dims = 1
  bool external = false;        // data_location = 14 is EXTERNAL (1)
  std::optional<Bytes> raw;     // raw_data = 9, or the bytes loaded from the external file
  std::vector<uint32_t> floats; // float_data = 4, as bits
  std::vector<uint64_t> ints;   // int32_data = 5 (also float16/bfloat16 bits)
  std::vector<uint64_t> doubles;  // double_data = 10, as bits
  std::vector<std::pair<Bytes, Bytes>> external_data;  // external_data = 13, key/value
  std::shared_ptr<const std::string> loaded;  // owns what `raw` views for external tensors
};

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

// Points t.raw at the tensor's bytes read from its external file. Returns false, leaving
// t.raw empty, when they cannot be read: the reader's callers then report no quantization,
// as for any parameter not stored as a constant. A missing or misplaced file is not an error
// here: OpenVINO reports it, in its own words, when it reads the model.
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

// Scale values as float32: float16 and bfloat16 (allowed since opset 19) widen exactly, double
// rounds; nullopt for other types and for external data that cannot be read.
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

// Zero points of an integer tensor as int32; nullopt for types a zero point should not have
// and for external data that cannot be read.
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

// ---- quantization lookup -------------------------------------------------------------------

bool standard_domain(Bytes d) { return d.empty() || d == "ai.onnx"; }

// Finds the QDQ nodes next to graph inputs/outputs and the tensors they reference. Nodes and
// initializers are indexed only when first needed: plain float models never pay for it.
class QuantLookup {
 public:
  // `dir` is where external data is looked for: the model file's directory.
  QuantLookup(const Graph& g, fs::path dir) : graph_(g), dir_(std::move(dir)) {}

  bool is_initializer(Bytes name) {
    if (graph_.initializers.empty()) return false;
    index_initializers();
    return initializers_.count(name) != 0;
  }

  // `rank` is the tensor's, -1 when unknown: it turns a negative axis into the usual index.
  QuantInfo for_input(Bytes name, int64_t rank) {
    index_nodes();
    auto it = dequant_.find(name);
    return it == dequant_.end() ? QuantInfo{} : from_node(it->second, rank);
  }

  QuantInfo for_output(Bytes name, int64_t rank) {
    index_nodes();
    auto it = quant_.find(name);
    return it == quant_.end() ? QuantInfo{} : from_node(it->second, rank);
  }

 private:
  void index_initializers() {
    if (initializers_indexed_) return;
    initializers_indexed_ = true;
    for (Bytes t : graph_.initializers) {
      Bytes name;  // TensorProto.name = 8
      each_field(t, [&](const Field& f) {
        if (f.number == 8) name = f.len();
      });
      initializers_.emplace(name, t);
    }
  }

  void index_nodes() {
    if (nodes_indexed_) return;
    nodes_indexed_ = true;
    for (Bytes msg : graph_.nodes) {
      Node n = parse_node(msg);
      bool qdq_domain = standard_domain(n.domain) || n.domain == "com.microsoft";
      if (n.op_type == "DequantizeLinear" && qdq_domain && !n.inputs.empty())
        dequant_.emplace(n.inputs[0], n);  // first consumer wins
      else if (n.op_type == "QuantizeLinear" && qdq_domain && !n.outputs.empty())
        quant_.emplace(n.outputs[0], n);
      else if (n.op_type == "Constant" && standard_domain(n.domain) && !n.outputs.empty())
        constants_.emplace(n.outputs[0], msg);
    }
  }

  // An initializer, or the 'value' attribute of a Constant node, with its external data
  // loaded (t.raw stays empty when that fails).
  std::optional<Tensor> find_tensor(Bytes name) {
    index_initializers();
    std::optional<Tensor> value;
    if (auto it = initializers_.find(name); it != initializers_.end()) {
      value = parse_tensor(it->second);
    } else if (auto c = constants_.find(name); c != constants_.end()) {
      for_each_attribute(c->second, [&](Bytes attr_name, Bytes attr) {
        if (attr_name != "value") return;
        each_field(attr, [&](const Field& f) {
          if (f.number == 5) value = parse_tensor(f.len());  // AttributeProto.t = 5
        });
      });
    }
    if (value && value->external) load_external(*value, dir_);
    return value;
  }

  // fn(name, attribute message) for each NodeProto.attribute (= 5); AttributeProto.name = 1.
  template <class Fn>
  static void for_each_attribute(Bytes node, Fn&& fn) {
    each_field(node, [&](const Field& f) {
      if (f.number != 5) return;
      Bytes name;
      each_field(f.len(), [&](const Field& a) {
        if (a.number == 1) name = a.len();
      });
      fn(name, f.bytes);
    });
  }

  QuantInfo from_node(const Node& n, int64_t rank) {
    QuantInfo q;
    if (n.inputs.size() < 2 || n.inputs[1].empty()) return {};
    auto scale_tensor = find_tensor(n.inputs[1]);
    auto scale = scale_tensor ? read_scale(*scale_tensor) : std::nullopt;
    if (!scale || scale->empty()) return {};  // computed at run time, unreadable, not a float
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      auto zp_tensor = find_tensor(n.inputs[2]);
      auto zp = zp_tensor ? read_zero_point(*zp_tensor) : std::nullopt;
      if (!zp) return {};  // half the parameters would be worse than none
      q.zero_point = std::move(*zp);
    }
    q.axis = 1;  // the ONNX default
    for_each_attribute(n.msg, [&](Bytes name, Bytes attr) {
      if (name != "axis") return;
      int64_t axis = 0;  // AttributeProto.i = 3
      each_field(attr, [&](const Field& f) {
        if (f.number == 3) axis = f.int64();
      });
      if (axis < INT32_MIN || axis > INT32_MAX) throw Malformed{attr.data(), "axis out of range"};
      q.axis = static_cast<int32_t>(axis);
    });
    if (q.axis < 0 && rank >= 0 && q.axis >= -rank) q.axis += static_cast<int32_t>(rank);
    q.type = QuantType::SCALE;
    q.scale = std::move(*scale);
    return q;
  }

  const Graph& graph_;
  fs::path dir_;
  bool initializers_indexed_ = false, nodes_indexed_ = false;
  std::unordered_map<Bytes, Bytes> initializers_;  // name -> TensorProto
  std::unordered_map<Bytes, Bytes> constants_;     // output -> Constant NodeProto
  std::unordered_map<Bytes, Node> dequant_;        // input[0] -> DequantizeLinear
  std::unordered_map<Bytes, Node> quant_;          // output[0] -> QuantizeLinear
};

// ---- assembling ModelInfo ------------------------------------------------------------------

TensorInfo to_tensor_info(const ValueInfo& vi, const char* role, const std::string& path) {
  TensorInfo t;
  t.name = std::string(vi.name);
  t.desc = std::string(vi.doc);
  auto where = [&] { return std::string(role) + " '" + t.name + "' of '" + path + "': "; };
  if (vi.other_type)
    throw InvalidArgument(where() + "ONNX " + vi.other_type + " types are not supported");
  auto dtype = from_onnx(vi.elem_type);
  if (!dtype)
    throw InvalidArgument(where() + "ONNX element type " + onnx_type_name(vi.elem_type) + " (" +
                          std::to_string(vi.elem_type) + ") is not supported");
  t.dtype = *dtype;
  t.shape = vi.shape;
  set_dense_strides(t, where());
  return t;
}

// Length of the UTF-8 sequence at s[i] and whether it is valid. An invalid one is as long as its
// valid prefix (at least 1): Unicode's "maximal subpart" rule, which Python's decoder follows too.
std::pair<size_t, bool> utf8_sequence(Bytes s, size_t i) {
  auto c = static_cast<uint8_t>(s[i]);
  size_t need = 0;  // continuation bytes
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (c < 0x80) return {1, true};
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {  // no overlongs (E0), no surrogates (ED)
    need = 2;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {  // no overlongs (F0), nothing above U+10FFFF (F4)
    need = 3;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    return {1, false};
  }
  size_t n = 1;
  for (; n <= need && i + n < s.size(); ++n, lo = 0x80, hi = 0xBF) {
    auto b = static_cast<uint8_t>(s[i + n]);
    if (b < lo || b > hi) break;
  }
  return {n, n == need + 1};
}

// Appends s as a JSON string, escaped exactly like Python's json.dumps(ensure_ascii=False);
// invalid UTF-8 becomes U+FFFD so the result always decodes.
void append_json_string(std::string& out, Bytes s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto [n, valid] = utf8_sequence(s, i);
    auto c = static_cast<uint8_t>(s[i]);
    if (!valid) {
      out += "\xEF\xBF\xBD";  // U+FFFD
    } else if (n > 1 || (c >= 0x20 && c != '"' && c != '\\')) {
      out.append(s.data() + i, n);
    } else {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        }
      }
    }
    i += n;
  }
  out += '"';
}

std::string props_json(const std::vector<std::pair<Bytes, Bytes>>& props) {
  if (props.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < props.size(); ++i) {
    if (i) out += ", ";
    append_json_string(out, props[i].first);
    out += ": ";
    append_json_string(out, props[i].second);
  }
  return out + "}";
}

OnnxFileInfo parse_file(Bytes data, const std::string& path) {
  Model m = parse_model(data);
  if (m.graph.empty()) throw InvalidArgument("'" + path + "' is not an ONNX model (it has no graph)");
  Graph g = parse_graph(m.graph);

  OnnxFileInfo out;
  out.model.file = path;
  out.model.desc = std::string(m.doc.empty() ? g.doc : m.doc);
  out.file_desc = props_json(m.props);

  fs::path dir = fs::path(path).parent_path();
  QuantLookup quant(g, dir.empty() ? "." : dir);
  auto rank = [](const ValueInfo& vi) {
    return vi.has_shape ? static_cast<int64_t>(vi.shape.size()) : int64_t{-1};
  };
  for (Bytes msg : g.inputs) {
    ValueInfo vi = parse_value_info(msg);
    if (quant.is_initializer(vi.name)) continue;  // a weight listed as input by old exporters
    TensorInfo t = to_tensor_info(vi, "input", path);
    if (is_integer(t.dtype)) t.quant = quant.for_input(vi.name, rank(vi));
    if (!vi.has_shape) out.unranked_inputs.push_back(out.model.inputs.size());
    out.model.inputs.push_back(std::move(t));
  }
  for (Bytes msg : g.outputs) {
    ValueInfo vi = parse_value_info(msg);
    TensorInfo t = to_tensor_info(vi, "output", path);
    if (is_integer(t.dtype)) t.quant = quant.for_output(vi.name, rank(vi));
    if (!vi.has_shape) out.unranked_outputs.push_back(out.model.outputs.size());
    out.model.outputs.push_back(std::move(t));
  }
  return out;
}

}  // namespace

OnnxFileInfo read_onnx_file(const std::string& path) {
  // One read of the whole file; every string and message below is a view into it.
  auto fail = [&](const std::string& why) {
    return InvalidArgument("cannot read ONNX model '" + path + "': " + why);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw fail("is a directory");
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw fail(ec.message());
  if (size > SIZE_MAX) throw fail("too large for this platform");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail("cannot open the file");
  auto buf = std::make_unique_for_overwrite<char[]>(size ? size : 1);
  if (!in.read(buf.get(), static_cast<std::streamsize>(size)) ||
      in.gcount() != static_cast<std::streamsize>(size))
    throw fail("short read");

  Bytes data(buf.get(), size);
  try {
    return parse_file(data, path);
  } catch (const Malformed& m) {
    throw InvalidArgument("'" + path + "' is not a valid ONNX model: " + m.what + " at byte " +
                          std::to_string(m.at - data.data()));
  }
}

ModelInfo read_onnx_info(const std::string& path) { return read_onnx_file(path).model; }

void set_dense_strides(TensorInfo& t, const std::string& where) {
  // A stride is unknown (-1) while any inner dim is dynamic.
  t.strides.assign(t.shape.size(), 0);
  int64_t step = static_cast<int64_t>(element_size(t.dtype));
  bool dynamic = false;
  for (size_t i = t.shape.size(); i-- > 0;) {
    t.strides[i] = dynamic ? -1 : step;
    if (t.shape[i] < 0) {
      dynamic = true;
    } else if (!dynamic) {
      if (t.shape[i] != 0 && step > INT64_MAX / t.shape[i])
        throw InvalidArgument(where + "shape " + format_shape(t.shape) + " is too large");
      step *= t.shape[i];
    }
  }
}

}  // namespace hbm
