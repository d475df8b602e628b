// Owned, aligned host memory and the tensor views that point into memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dtype.h"

namespace hbm {

inline constexpr size_t kBufferAlignment = 64;

// Heap memory aligned for SIMD and DMA; freed on destruction.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  void* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free { void operator()(void* p) const noexcept; };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

// A borrowed input: memory of the model's dtype, owned by the caller for the duration of
// the call. C-contiguous unless `byte_strides` is set, which only engines that take strided
// inputs see (for their own padded input memory handed out by Model::input_buffers()).
struct InputView {
  const void* data = nullptr;
  DataType dtype = DataType::F32;
  std::vector<int64_t> shape;
  size_t nbytes = 0;              // of the elements, densely packed
  std::vector<int64_t> byte_strides;  // empty: dense C order
};

// An output: memory kept alive by `owner` for as long as anything references it.
struct OutputTensor {
  void* data = nullptr;
  DataType dtype = DataType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // bytes
  std::shared_ptr<void> owner;
};

// Copies a strided array into dense C order; strides in bytes.
void copy_strided_to_dense(const void* src, const std::vector<int64_t>& shape,
                           const std::vector<int64_t>& src_strides, size_t item_size,
                           void* dst);
// Copies dense C-order data into a strided (e.g. row-padded) destination.
void copy_dense_to_strided(const void* src, const std::vector<int64_t>& shape,
                           const std::vector<int64_t>& dst_strides, size_t item_size,
                           void* dst);

}  // namespace hbm
