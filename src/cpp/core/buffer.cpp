#include "buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace hbm {

void AlignedBuffer::Free::operator()(void* p) const noexcept { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  size_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  void* p = std::aligned_alloc(kBufferAlignment, rounded ? rounded : kBufferAlignment);
  if (!p) throw std::bad_alloc();
  data_.reset(p);
}

namespace {
// Walks every index of `shape` except the innermost contiguous run and copies rows.
template <bool kToDense>
void copy_rows(const char* src, char* dst, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides, size_t item) {
  const size_t ndim = shape.size();
  if (ndim == 0) {
    std::memcpy(dst, src, item);
    return;
  }
  for (int64_t d : shape)
    if (d == 0) return;
  // Merge the innermost dims that are already dense in the strided side into one row.
  size_t row_dims = 0;
  int64_t row_elems = 1;
  int64_t expect = static_cast<int64_t>(item);
  for (size_t i = ndim; i-- > 0;) {
    if (strides[i] != expect) break;
    row_elems *= shape[i];
    expect *= shape[i];
    ++row_dims;
  }
  const size_t outer = ndim - row_dims;
  const size_t row_bytes = static_cast<size_t>(row_elems) * item;
  std::vector<int64_t> idx(outer, 0);
  char* dense = kToDense ? dst : const_cast<char*>(src);
  const char* strided_base = kToDense ? src : dst;
  while (true) {
    int64_t off = 0;
    for (size_t i = 0; i < outer; ++i) off += idx[i] * strides[i];
    if (row_dims == 0) {
      // innermost dim itself is strided: element by element
      if constexpr (kToDense) std::memcpy(dense, strided_base + off, item);
      else std::memcpy(const_cast<char*>(strided_base) + off, dense, item);
      dense += item;
    } else {
      if constexpr (kToDense) std::memcpy(dense, strided_base + off, row_bytes);
      else std::memcpy(const_cast<char*>(strided_base) + off, dense, row_bytes);
      dense += row_bytes;
    }
    size_t k = outer;
    while (k > 0) {
      if (++idx[k - 1] < shape[k - 1]) break;
      idx[k - 1] = 0;
      --k;
    }
    if (k == 0) return;
  }
}
}  // namespace

void copy_strided_to_dense(const void* src, const std::vector<int64_t>& shape,
                           const std::vector<int64_t>& src_strides, size_t item_size,
                           void* dst) {
  copy_rows<true>(static_cast<const char*>(src), static_cast<char*>(dst), shape, src_strides,
                  item_size);
}

void copy_dense_to_strided(const void* src, const std::vector<int64_t>& shape,
                           const std::vector<int64_t>& dst_strides, size_t item_size,
                           void* dst) {
  copy_rows<false>(static_cast<const char*>(src), static_cast<char*>(dst), shape, dst_strides,
                   item_size);
}

}  // namespace hbm
