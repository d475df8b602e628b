// Reads what hbm_runtime needs to know about an .onnx file (graph inputs/outputs, descriptions,
// quantization parameters) straight from the protobuf wire format, so the OpenVINO engine can
// describe a model without linking onnx or protobuf.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/model_info.h"

namespace hbm {

struct OnnxFileInfo {
  // name is left empty (the engine sets the file stem); file is the path as given;
  // desc is ModelProto.doc_string, else GraphProto.doc_string.
  ModelInfo model;
  // ModelProto.metadata_props as a JSON object string in file order, "" when there are none.
  std::string file_desc;
  // Indexes into model.inputs / model.outputs of tensors whose type declares no shape at all:
  // their rank is unknown, unlike a declared shape without dims, which is a scalar. Their
  // shape and strides read [] here, for the engine to fill in when it knows more.
  std::vector<size_t> unranked_inputs, unranked_outputs;
  // Some tensor of the model (or one the reader could not inspect) keeps its data in another
  // file, which a copy of this file alone would not find.
  bool external_data = false;
};

// A whole file read into memory once: the reader parses these bytes, and the engine hashes and
// copies the same ones, so that nothing is read twice or differs between the two.
class FileBytes {
 public:
  FileBytes() = default;
  FileBytes(FileBytes&& o) noexcept : data_(o.data_), size_(o.size_), mapped_(o.mapped_) { o.data_ = nullptr; }
  FileBytes& operator=(FileBytes&& o) noexcept;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() { release(); }

  // Memory for `size` bytes, pre-faulted in one go when large (page faults one at a time are
  // most of the cost of reading a large file).
  static FileBytes allocate(size_t size);
  char* data() { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }

 private:
  void release();
  char* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;  // from mmap, else new[]
};

// Throws InvalidArgument naming the file when it cannot be read.
FileBytes read_file_bytes(const std::string& path);

// read_onnx_file on bytes already read from `path` (which names the model in errors and locates
// external data).
OnnxFileInfo parse_onnx_bytes(std::string_view bytes, const std::string& path);

// Throws InvalidArgument naming the file when it cannot be read or is not an ONNX model, and
// naming the tensor when a graph input/output has a type ModelInfo cannot represent.
// Quantization parameters stored as external data are read from the model's directory under
// the onnx package's rules; any it cannot read leave their tensor unquantized (NONE).
OnnxFileInfo read_onnx_file(const std::string& path);

// read_onnx_file(path).model.
ModelInfo read_onnx_info(const std::string& path);

// Sets t.strides to dense C-order byte strides of t.shape, -1 for those outside a dynamic dim.
// Throws InvalidArgument starting with `where` when the tensor is too large to address.
void set_dense_strides(TensorInfo& t, const std::string& where);

}  // namespace hbm
