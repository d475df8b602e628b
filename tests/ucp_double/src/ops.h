// Element access by hbDNNDataType and the double's deterministic "model" ops.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ucpd {

size_t elem_size(int32_t dtype);  // 0 for an invalid type
const char* dtype_name(int32_t dtype);
int32_t dtype_from_name(const std::string& name);  // -1 when unknown
double read_elem(const std::byte* p, int32_t dtype);
// Floats round to nearest; integers truncate toward zero and saturate; BOOL8 = (v != 0).
void write_elem(std::byte* p, int32_t dtype, double v);

// A strided array in device memory; elements are addressed by their C-order index.
struct Strided {
  std::byte* base = nullptr;
  int32_t dtype = 0;
  std::vector<int64_t> dims, strides;
  int64_t count() const;
  std::byte* at(int64_t k) const;
};

// out[k] for every k, from inputs (an input of N elements is read at k mod N):
//   fill value=v        v
//   iota value=v step=s v + k * s
//   copy in=a           a[k]
//   sum in=a,b,...      a[k] + b[k] + ...
//   add in=a value=v    a[k] + v
//   mul in=a value=v    a[k] * v
//   rowsum in=a         sum of row (k mod R) of a, rows = a's innermost dim, R rows
struct OpDef {
  std::string kind = "fill";
  std::vector<int> inputs;  // model input indices
  double value = 0, step = 1;
};
// Returns an error text for an unknown op (checked when the model file is parsed).
std::string check_op(const OpDef& op);
void run_op(const OpDef& op, const std::vector<Strided>& inputs, const Strided& out);

}  // namespace ucpd
