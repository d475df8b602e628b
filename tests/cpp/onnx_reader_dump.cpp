// Prints what read_onnx_file() finds in argv[1] as one JSON object, for check_onnx_reader.py.
// On error prints "ERROR: <message>" to stderr and exits 2.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "engines/openvino/onnx_reader.h"

namespace {

std::string str(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

template <class T, class Fn>
std::string list(const std::vector<T>& v, Fn&& item) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + item(v[i]);
  return out + "]";
}

std::string num(int64_t v) { return std::to_string(v); }

// %.9g round-trips float32; NaN/Infinity are what Python's json module accepts.
std::string num(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

std::string tensor(const hbm::TensorInfo& t, bool rank_known) {
  auto n = [](auto v) { return num(v); };
  const hbm::QuantInfo& q = t.quant;
  return "{\"name\": " + str(t.name) + ", \"desc\": " + str(t.desc) +
         ", \"dtype\": " + str(std::string(hbm::dtype_name(t.dtype))) +
         ", \"shape\": " + list(t.shape, n) + ", \"strides\": " + list(t.strides, n) +
         ", \"rank_known\": " + (rank_known ? "true" : "false") +
         ", \"quant\": {\"type\": " + str(q.type == hbm::QuantType::SCALE ? "SCALE" : "NONE") +
         ", \"scale\": " + list(q.scale, n) +
         ", \"zero_point\": " + list(q.zero_point, [](int32_t v) { return num(int64_t{v}); }) +
         ", \"axis\": " + num(int64_t{q.axis}) + "}}";
}

// The tensors of one side, each told whether the file declares its rank.
std::string tensors(const std::vector<hbm::TensorInfo>& ts, const std::vector<size_t>& unranked) {
  std::string out = "[";
  for (size_t i = 0; i < ts.size(); ++i)
    out += (i ? ", " : "") +
           tensor(ts[i], std::find(unranked.begin(), unranked.end(), i) == unranked.end());
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s model.onnx\n", argv[0]);
    return 1;
  }
  try {
    hbm::OnnxFileInfo info = hbm::read_onnx_file(argv[1]);
    const hbm::ModelInfo& m = info.model;
    std::string out = "{\"name\": " + str(m.name) + ", \"file\": " + str(m.file) +
                      ", \"desc\": " + str(m.desc) + ", \"file_desc\": " + str(info.file_desc) +
                      ", \"inputs\": " + tensors(m.inputs, info.unranked_inputs) +
                      ", \"outputs\": " + tensors(m.outputs, info.unranked_outputs) + "}\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ERROR: %s\n", e.what());
    return 2;
  }
}
