// BGR/RGB -> NV12 colour conversion.
//
// Bit-identical to OpenCV's cvtColor(COLOR_BGR2YUV_I420 / COLOR_RGB2YUV_I420) followed by
// interleaving the U and V planes, the conversion NV12 models are calibrated with.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hbm::ops {

enum class ColorOrder { kBGR, kRGB };

// Strided views, strides in bytes. Source strides may be negative or zero (a flipped or
// broadcast image); the destinations' elements must not alias each other.
struct ImageView {  // height x width pixels of three 8-bit channels
  const uint8_t* data = nullptr;
  ptrdiff_t row_stride = 0, col_stride = 0, channel_stride = 0;
};
struct YPlaneView {  // height x width
  uint8_t* data = nullptr;
  ptrdiff_t row_stride = 0, col_stride = 0;
};
struct UVPlaneView {  // height/2 x width/2 pairs (U, V)
  uint8_t* data = nullptr;
  ptrdiff_t row_stride = 0, col_stride = 0, channel_stride = 0;
};

// Writes the Y and interleaved UV planes of a height x width image. Throws
// hbm::InvalidArgument unless height and width are even and > 0. The caller guarantees that
// every element the views address lies in its buffer and that the destinations overlap
// neither the source nor each other. Only the addressed elements are written (padding
// between rows stays untouched). Single-threaded; no allocation.
void to_nv12(const ImageView& src, size_t height, size_t width, ColorOrder order,
             const YPlaneView& y, const UVPlaneView& uv);

}  // namespace hbm::ops
