// ONNX metadata straight from the protobuf wire format. Only the few fields we need are decoded;
// everything else (weights above all) is skipped by length, so even huge models read fast.
// Field numbers follow onnx.proto (onnx 1.23); onnx-ml.proto uses the same ones.
#include "engines/openvino/onnx_reader.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "engines/openvino/onnx_tensor_data.h"
#include "engines/openvino/protobuf_wire.h"

namespace hbm {
namespace {

using namespace onnx_detail;
namespace fs = std::filesystem;

// ---- ONNX messages (only the fields we use) ------------------------------------------------

struct OpsetId {
  Bytes domain;         // OperatorSetIdProto.domain = 1
  int64_t version = 0;  // OperatorSetIdProto.version = 2
  const char* at = nullptr;
};

struct Model {
  Bytes doc;                                   // ModelProto.doc_string = 6
  std::vector<Bytes> graph;                    // ModelProto.graph = 7
  std::vector<std::pair<Bytes, Bytes>> props;  // ModelProto.metadata_props = 14
  // ModelProto.opset_import = 8, and FunctionProto.opset_import = 9 of functions = 25.
  std::vector<OpsetId> opsets;
};

// No ONNX domain is anywhere near this; OpenVINO 2026.4's ONNX frontend takes time linear in
// an opset version when it reads a model (2**62 never finishes), so larger ones are refused.
constexpr int64_t kMaxOpsetVersion = 1 << 16;

OpsetId parse_opset_id(const Field& f) {
  OpsetId id;
  id.at = f.at;
  each_field(f.len(), [&](const Field& e) {
    if (e.number == 1) id.domain = e.len();
    else if (e.number == 2) id.version = e.int64();
  });
  return id;
}

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
    } else if (f.number == 8) {
      m.opsets.push_back(parse_opset_id(f));
    } else if (f.number == 25) {
      each_field(f.len(), [&](const Field& g) {
        if (g.number == 9) m.opsets.push_back(parse_opset_id(g));
      });
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

// ---- external data ----------------------------------------------------------------------

// Whether any tensor anywhere in the model (initializers, Constant values, attributes, subgraphs,
// functions) stores its data in another file: TensorProto.data_location (14) EXTERNAL, or
// external_data (13) entries. Deep nesting or bytes that do not parse count as yes: the answer
// only decides whether the model may be copied on its own.
class ExternalScan {
 public:
  bool model(Bytes m) {
    try {
      each_field(m, [&](const Field& f) {
        if (f.number == 7) graph(f.len(), 0);             // ModelProto.graph
        else if (f.number == 25) function(f.len(), 0);    // ModelProto.functions
      });
    } catch (const Malformed&) {
      found_ = true;
    }
    return found_;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool deep(int depth) {
    if (depth > kMaxDepth) found_ = true;
    return found_;
  }
  void tensor(Bytes t) {
    each_field(t, [&](const Field& f) {
      if (f.number == 13 || (f.number == 14 && f.varint() == 1)) found_ = true;
    });
  }
  void sparse(Bytes s) {  // SparseTensorProto.values = 1, indices = 2
    each_field(s, [&](const Field& f) {
      if (f.number == 1 || f.number == 2) tensor(f.len());
    });
  }
  void graph(Bytes g, int depth) {
    if (deep(depth)) return;
    each_field(g, [&](const Field& f) {
      if (found_) return;
      if (f.number == 5) tensor(f.len());             // initializer
      else if (f.number == 15) sparse(f.len());       // sparse_initializer
      else if (f.number == 1) node(f.len(), depth);   // node
    });
  }
  void function(Bytes fn, int depth) {
    if (deep(depth)) return;
    each_field(fn, [&](const Field& f) {
      if (!found_ && f.number == 7) node(f.len(), depth);  // FunctionProto.node
    });
  }
  void node(Bytes n, int depth) {
    if (deep(depth)) return;
    each_field(n, [&](const Field& f) {
      if (found_ || f.number != 5) return;  // NodeProto.attribute
      each_field(f.len(), [&](const Field& a) {
        switch (a.number) {  // AttributeProto
          case 5: case 10: tensor(a.len()); break;              // t, tensors
          case 22: case 23: sparse(a.len()); break;             // sparse_tensor(s)
          case 6: case 11: graph(a.len(), depth + 1); break;    // g, graphs
        }
      });
    });
  }

  bool found_ = false;
};

bool has_external_data(Bytes data) { return ExternalScan().model(data); }

OnnxFileInfo parse_file(Bytes data, const std::string& path) {
  Model m = parse_model(data);
  if (m.graph.empty()) throw InvalidArgument("'" + path + "' is not an ONNX model (it has no graph)");
  for (const OpsetId& id : m.opsets)
    if (id.version < 0 || id.version > kMaxOpsetVersion) {
      std::string domain;
      append_json_string(domain, id.domain.empty() ? Bytes("ai.onnx") : id.domain);
      throw InvalidArgument("'" + path + "' imports opset version " + std::to_string(id.version) +
                            " of domain " + domain + ": not a valid ONNX opset version (0 to " +
                            std::to_string(kMaxOpsetVersion) + ")");
    }
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

FileBytes& FileBytes::operator=(FileBytes&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    size_ = o.size_;
    mapped_ = o.mapped_;
    o.data_ = nullptr;
  }
  return *this;
}

FileBytes FileBytes::allocate(size_t size) {
  FileBytes out;
  out.size_ = size;
  constexpr size_t kPrefaultFrom = size_t{1} << 20;
  if (size >= kPrefaultFrom) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p != MAP_FAILED) {
      out.data_ = static_cast<char*>(p);
      out.mapped_ = true;
      return out;
    }
  }
  out.data_ = new char[size ? size : 1];
  return out;
}

void FileBytes::release() {
  if (!data_) return;
  if (mapped_) ::munmap(data_, size_);
  else delete[] data_;
  data_ = nullptr;
}

FileBytes read_file_bytes(const std::string& path) {
  auto fail = [&](const std::string& why) {
    return InvalidArgument("cannot read ONNX model '" + path + "': " + why);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw fail("is a directory");
  // Read, never mapped: a file truncated meanwhile must be an error, not a SIGBUS.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(std::strerror(errno));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
  if (static_cast<uintmax_t>(st.st_size) > SIZE_MAX) throw fail("too large for this platform");
  const size_t size = static_cast<size_t>(st.st_size);
  FileBytes out = FileBytes::allocate(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t got = ::read(fd, out.data() + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw fail(std::strerror(errno));
    if (got == 0) throw fail("short read");
    done += static_cast<size_t>(got);
  }
  return out;
}

OnnxFileInfo parse_onnx_bytes(std::string_view bytes, const std::string& path) {
  // Every string and message below is a view into `bytes`.
  Bytes data(bytes);
  OnnxFileInfo out;
  try {
    out = parse_file(data, path);
  } catch (const Malformed& m) {
    throw InvalidArgument("'" + path + "' is not a valid ONNX model: " + m.what + " at byte " +
                          std::to_string(m.at - data.data()));
  }
  out.external_data = has_external_data(data);
  return out;
}

OnnxFileInfo read_onnx_file(const std::string& path) {
  FileBytes bytes = read_file_bytes(path);
  return parse_onnx_bytes(bytes.view(), path);
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
