// The protobuf wire format, as far as the ONNX reader needs it: a bounds-checked field iterator
// and helpers for repeated scalars. Header-only so every field read can be inlined.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hbm::onnx_detail {

using Bytes = std::string_view;

// Thrown by the decoder; read_onnx_file turns it into InvalidArgument with the file offset.
struct Malformed {
  const char* at;
  const char* what;
};

enum Wire : uint32_t { VARINT = 0, I64 = 1, LEN = 2, SGROUP = 3, EGROUP = 4, I32 = 5 };

inline uint64_t read_varint(const char*& p, const char* end) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {  // at most 10 bytes
    if (p == end) throw Malformed{p, "truncated varint"};
    auto b = static_cast<uint8_t>(*p++);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
  throw Malformed{p, "varint longer than 10 bytes"};
}

inline uint64_t read_le(const char* p, int n) {
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

}  // namespace hbm::onnx_detail
