// The double's model-description format (a text file saved as .hbm; see README.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops.h"

namespace ucpd {

struct TensorDef {
  std::string name, desc;
  int32_t dtype = 7;
  std::vector<int64_t> dims;     // -1 = dynamic
  std::vector<int64_t> strides;  // as reported; -1 = filled by the caller (inputs)
  int64_t aligned = -1;          // alignedByteSize reported; -1: what a real library reports
  std::vector<int64_t> valid;    // outputs with -1 dims: the shape each task produces
  int32_t quant_type = 0;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int32_t axis = 0;
  OpDef op;                      // outputs only
};

struct ModelDef {
  std::string name, desc;
  int32_t compile_cores = 1;
  int64_t latency_us = 0;
  std::vector<TensorDef> inputs, outputs;
};

struct FileDef {
  std::string desc;
  std::vector<ModelDef> models;
};

inline constexpr const char* kMagic = "HBM-TEST-DOUBLE 1";

// Parses `text` (from `path`, for messages). Returns "" or "path:line: what is wrong".
std::string parse_model_text(const std::string& text, const std::string& path, int max_dims,
                             FileDef* out);

}  // namespace ucpd
