#include "model_text.h"

#include <cstdlib>
#include <sstream>

namespace ucpd {
namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

template <typename T>
bool parse_list(const std::string& s, std::vector<T>* out) {
  std::stringstream in(s);
  std::string item;
  out->clear();
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end) return false;
    out->push_back(static_cast<T>(v));
  }
  return !out->empty();
}

struct Parser {
  const std::string& path;
  int max_dims;
  FileDef* file;
  int line_no = 0;
  ModelDef* model = nullptr;
  TensorDef* tensor = nullptr;
  bool tensor_is_output = false;

  std::string where() const { return path + ":" + std::to_string(line_no) + ": "; }

  // "key=value" options after the positional words.
  std::string tensor_line(std::istringstream& in, bool output) {
    if (!model) return "tensor outside a model";
    TensorDef t;
    std::string dtype;
    if (!(in >> t.name >> dtype)) return "expected: name DTYPE shape=...";
    t.dtype = dtype_from_name(dtype);
    if (t.dtype < 0) return "unknown dtype '" + dtype + "'";
    std::string opt;
    while (in >> opt) {
      const auto eq = opt.find('=');
      const std::string key = opt.substr(0, eq), val = eq == std::string::npos ? "" : opt.substr(eq + 1);
      bool ok = true;
      if (key == "shape") ok = parse_list(val, &t.dims);
      else if (key == "strides") ok = parse_list(val, &t.strides);
      else if (key == "aligned") {
        char* end = nullptr;
        t.aligned = std::strtoll(val.c_str(), &end, 10);
        ok = !val.empty() && !*end;
      }
      else if (key == "valid" && output) ok = parse_list(val, &t.valid);
      else return "unknown option '" + key + "'";
      if (!ok) return "bad value for " + key;
    }
    const size_t nd = t.dims.size();
    if (nd < 1 || nd > static_cast<size_t>(max_dims))
      return "shape needs 1.." + std::to_string(max_dims) + " dims";
    if (!t.strides.empty() && t.strides.size() != nd) return "strides and shape differ in length";
    bool dynamic = false;
    for (int64_t d : t.dims) dynamic = dynamic || d < 0;
    if (output && dynamic && t.valid.size() != nd) return "a dynamic output needs valid=";
    if (t.strides.empty()) {  // dense; dynamic dims make the outer strides dynamic too
      t.strides.assign(nd, -1);
      int64_t step = static_cast<int64_t>(elem_size(t.dtype));
      for (size_t i = nd; i-- > 0;) {
        t.strides[i] = step;
        if (t.dims[i] < 0) break;
        step *= t.dims[i];
      }
    }
    auto& list = output ? model->outputs : model->inputs;
    for (const auto& other : list)
      if (other.name == t.name) return "duplicate tensor '" + t.name + "'";
    list.push_back(std::move(t));
    tensor = &list.back();
    tensor_is_output = output;
    return "";
  }

  std::string quant_line(std::istringstream& in) {
    if (!tensor) return "quant before any tensor";
    tensor->quant_type = 1;
    std::string opt;
    while (in >> opt) {
      const auto eq = opt.find('=');
      const std::string key = opt.substr(0, eq), val = eq == std::string::npos ? "" : opt.substr(eq + 1);
      bool ok = true;
      if (key == "scale") ok = parse_list(val, &tensor->scale);
      else if (key == "zero") ok = parse_list(val, &tensor->zero_point);
      else if (key == "axis") tensor->axis = std::atoi(val.c_str());
      else return "unknown quant option '" + key + "'";
      if (!ok) return "bad value for " + key;
    }
    return tensor->scale.empty() ? "quant needs scale=" : "";
  }

  std::string op_line(std::istringstream& in) {
    if (!tensor || !tensor_is_output) return "op must follow an output";
    OpDef op;
    if (!(in >> op.kind)) return "op needs a kind";
    std::string opt;
    while (in >> opt) {
      const auto eq = opt.find('=');
      const std::string key = opt.substr(0, eq), val = eq == std::string::npos ? "" : opt.substr(eq + 1);
      if (key == "value") op.value = std::strtod(val.c_str(), nullptr);
      else if (key == "step") op.step = std::strtod(val.c_str(), nullptr);
      else if (key == "in") {
        std::stringstream names(val);
        std::string n;
        while (std::getline(names, n, ',')) {
          int idx = -1;
          for (size_t i = 0; i < model->inputs.size(); ++i)
            if (model->inputs[i].name == n) idx = static_cast<int>(i);
          if (idx < 0) return "op input '" + n + "' is not an input of the model (declare it first)";
          op.inputs.push_back(idx);
        }
      } else {
        return "unknown op option '" + key + "'";
      }
    }
    std::string err = check_op(op);
    if (err.empty()) tensor->op = op;
    return err;
  }

  std::string line(const std::string& raw) {
    std::istringstream in(raw);
    std::string key;
    if (!(in >> key) || key[0] == '#') return "";
    std::string rest;
    std::getline(in >> std::ws, rest);
    std::istringstream args(rest);
    if (key == "file_desc") file->desc = unescape(rest);
    else if (key == "model") {
      if (rest.empty() || rest.find(' ') != std::string::npos) return "model needs one name";
      for (const auto& m : file->models)
        if (m.name == rest) return "duplicate model '" + rest + "'";
      if (file->models.size() == file->models.capacity()) return "too many models";
      file->models.push_back(ModelDef{});
      model = &file->models.back();
      model->name = rest;
      tensor = nullptr;
    } else if (!model) return "'" + key + "' before any model";
    else if (key == "model_desc") model->desc = unescape(rest);
    else if (key == "compile_cores") model->compile_cores = std::atoi(rest.c_str());
    else if (key == "latency_us") model->latency_us = std::atoll(rest.c_str());
    else if (key == "input" || key == "output") return tensor_line(args, key == "output");
    else if (key == "desc") {
      if (!tensor) return "desc before any tensor";
      tensor->desc = unescape(rest);
    } else if (key == "quant") return quant_line(args);
    else if (key == "op") return op_line(args);
    else return "unknown keyword '" + key + "'";
    return "";
  }
};

}  // namespace

std::string parse_model_text(const std::string& text, const std::string& path, int max_dims,
                             FileDef* out) {
  *out = FileDef{};
  out->models.reserve(64);  // pointers into it stay valid while parsing
  std::istringstream in(text);
  std::string raw;
  if (!std::getline(in, raw) || raw.substr(0, raw.find_last_not_of("\r ") + 1) != kMagic)
    return path + ":1: not a test-double model (first line must be '" + kMagic + "')";
  Parser p{path, max_dims, out};
  p.line_no = 1;
  while (std::getline(in, raw)) {
    ++p.line_no;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    if (std::string err = p.line(raw); !err.empty()) return p.where() + err;
  }
  if (out->models.empty()) return path + ": no model";
  for (const auto& m : out->models)
    if (m.inputs.empty() || m.outputs.empty())
      return path + ": model '" + m.name + "' needs at least one input and one output";
  return "";
}

}  // namespace ucpd
