#include "ops/nv12.h"

#include <string>

#include "core/errors.h"

namespace hbm::ops {
namespace {

// BT.601 "studio swing" RGB -> YCbCr (Y 16..235, Cb/Cr 16..240) in 20-bit fixed point:
//   Y = ( 0.257 R + 0.504 G + 0.098 B) + 16
//   U = (-0.148 R - 0.291 G + 0.439 B) + 128
//   V = ( 0.439 R - 0.368 G - 0.071 B) + 128
// (coefficients times 2^20, half of the last bit added before the shift). The integers are
// OpenCV's: truncated rather than rounded (0.291, 0.439, 0.368, 0.071), and 0.148 one less
// than its truncation. Being bit-identical to OpenCV depends on each of them;
// tests/test_nv12.py checks every 24-bit colour.
constexpr int kShift = 20;
constexpr int32_t kYR = 269484, kYG = 528482, kYB = 102760;
constexpr int32_t kUR = -155188, kUG = -305135, kUB = 460324;
constexpr int32_t kVR = 460324, kVG = -385875, kVB = -74448;
constexpr int32_t kHalf = 1 << (kShift - 1);
constexpr int32_t kYBias = (16 << kShift) + kHalf;
constexpr int32_t kUVBias = (128 << kShift) + kHalf;

// The sums never leave int32 and the shifted results stay in 16..240, so no saturation is
// needed (OpenCV saturates, but never has to) and a plain narrowing store is exact.
constexpr int32_t shifted(int32_t cr, int32_t cg, int32_t cb, int32_t bias, int r, int g, int b) {
  return (cr * r + cg * g + cb * b + bias) >> kShift;
}
constexpr bool in_range(int32_t cr, int32_t cg, int32_t cb, int32_t bias) {
  // The extremes of a linear form over [0, 255]^3 are at the cube's corners.
  for (int corner = 0; corner < 8; ++corner) {
    const int64_t r = corner & 1 ? 255 : 0, g = corner & 2 ? 255 : 0, b = corner & 4 ? 255 : 0;
    const int64_t sum = cr * r + cg * g + cb * b + bias;
    if (sum < 0 || sum > INT32_MAX || (sum >> kShift) > 255) return false;
  }
  return true;
}
static_assert(in_range(kYR, kYG, kYB, kYBias) && in_range(kUR, kUG, kUB, kUVBias) &&
              in_range(kVR, kVG, kVB, kUVBias));
static_assert(shifted(kYR, kYG, kYB, kYBias, 0, 0, 0) == 16 &&
              shifted(kYR, kYG, kYB, kYBias, 255, 255, 255) == 235);

inline uint8_t luma(int r, int g, int b) {
  return static_cast<uint8_t>(shifted(kYR, kYG, kYB, kYBias, r, g, b));
}
inline uint8_t chroma_u(int r, int g, int b) {
  return static_cast<uint8_t>(shifted(kUR, kUG, kUB, kUVBias, r, g, b));
}
inline uint8_t chroma_v(int r, int g, int b) {
  return static_cast<uint8_t>(shifted(kVR, kVG, kVB, kUVBias, r, g, b));
}

// Packed pixels (3 bytes, channels adjacent) into unit-stride Y and (U, V) byte pairs: the
// common case (whole images, crops, padded output rows). Plain loops over restrict pointers
// with compile-time channel offsets, shaped for compilers to vectorise: each row is first
// split into 16-bit planes a block at a time (stride-3 byte loads: NEON ld3, byte shuffles
// on x86), then the exact products run in 32-bit lanes over unit-stride (Y) or stride-2
// (U, V) planes. 16-bit planes widen to 32 bits more cheaply than bytes: about 15 % faster
// than computing on the packed bytes or on 8-bit planes, with GCC and Clang alike.
constexpr size_t kBlock = 512;  // pixels split at a time (even, so blocks keep 2x2 phases)

// OpenCV takes each 2x2 block's chroma from its top-left pixel (no averaging): U and V come
// from the even columns of the even rows (`chroma`).
template <int R, int B, bool chroma>
[[gnu::always_inline]] inline void packed_row(const uint8_t* __restrict s, uint8_t* __restrict y,
                                              uint8_t* __restrict uv, size_t width) {
  uint16_t r[kBlock], g[kBlock], b[kBlock];
  for (size_t x0 = 0; x0 < width; x0 += kBlock) {
    const size_t n = width - x0 < kBlock ? width - x0 : kBlock;  // even, as width is
    const uint8_t* p = s + 3 * x0;
    for (size_t x = 0; x < n; ++x) {
      r[x] = p[3 * x + R];
      g[x] = p[3 * x + 1];
      b[x] = p[3 * x + B];
    }
    for (size_t x = 0; x < n; ++x) y[x0 + x] = luma(r[x], g[x], b[x]);
    if constexpr (chroma) {
      for (size_t i = 0; i < n / 2; ++i) {
        uv[x0 + 2 * i] = chroma_u(r[2 * i], g[2 * i], b[2 * i]);
        uv[x0 + 2 * i + 1] = chroma_v(r[2 * i], g[2 * i], b[2 * i]);
      }
    }
  }
}

template <int R, int B>
[[gnu::always_inline]] inline void packed_rows(const ImageView& src, size_t height,
                                               size_t width, const YPlaneView& y,
                                               const UVPlaneView& uv) {
  for (size_t j = 0; j < height / 2; ++j) {
    const auto row = static_cast<ptrdiff_t>(2 * j);
    packed_row<R, B, true>(src.data + row * src.row_stride, y.data + row * y.row_stride,
                           uv.data + static_cast<ptrdiff_t>(j) * uv.row_stride, width);
    packed_row<R, B, false>(src.data + (row + 1) * src.row_stride,
                            y.data + (row + 1) * y.row_stride, nullptr, width);
  }
}

// x86-64 builds target the baseline (SSE2), which lacks both the byte shuffles and the
// 32-bit vector multiply these loops need: SSE4.1 and AVX2 versions are built too, and the
// loader picks one for the CPU (ifunc). Other targets (aarch64: NEON) need nothing more.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define HBM_NV12_CLONES __attribute__((target_clones("avx2", "sse4.1", "default")))
#else
#define HBM_NV12_CLONES
#endif

HBM_NV12_CLONES
void convert_packed(const ImageView& src, size_t height, size_t width, bool bgr,
                    const YPlaneView& y, const UVPlaneView& uv) {
  if (bgr)
    packed_rows<2, 0>(src, height, width, y, uv);
  else
    packed_rows<0, 2>(src, height, width, y, uv);
}

// Any other layout (flipped, planar, transposed, broadcast sources; transposed or
// otherwise strided destinations), element by element.
void convert_strided(const ImageView& src, size_t height, size_t width, ptrdiff_t r_off,
                     ptrdiff_t b_off, const YPlaneView& y, const UVPlaneView& uv) {
  const ptrdiff_t g_off = src.channel_stride;
  for (size_t j = 0; j < height; ++j) {
    const auto row = static_cast<ptrdiff_t>(j);
    const uint8_t* s = src.data + row * src.row_stride;
    uint8_t* yr = y.data + row * y.row_stride;
    uint8_t* uvr = uv.data + row / 2 * uv.row_stride;
    for (size_t i = 0; i < width; ++i) {
      const auto col = static_cast<ptrdiff_t>(i);
      const uint8_t* p = s + col * src.col_stride;
      const int r = p[r_off], g = p[g_off], b = p[b_off];
      yr[col * y.col_stride] = luma(r, g, b);
      if ((j | i) % 2 == 0) {
        uint8_t* out = uvr + col / 2 * uv.col_stride;
        out[0] = chroma_u(r, g, b);
        out[uv.channel_stride] = chroma_v(r, g, b);
      }
    }
  }
}

}  // namespace

void to_nv12(const ImageView& src, size_t height, size_t width, ColorOrder order,
             const YPlaneView& y, const UVPlaneView& uv) {
  if (height == 0 || width == 0 || height % 2 != 0 || width % 2 != 0)
    throw InvalidArgument("to_nv12: height and width must be even and > 0, got " +
                          std::to_string(height) + "x" + std::to_string(width));
  ImageView s = src;
  bool bgr = order == ColorOrder::kBGR;
  // A channel-reversed view (image[..., ::-1]) of packed pixels is packed pixels of the
  // other colour order, starting two bytes earlier.
  if (s.col_stride == 3 && s.channel_stride == -1) {
    s.data -= 2;
    s.channel_stride = 1;
    bgr = !bgr;
  }
  const bool packed = s.col_stride == 3 && s.channel_stride == 1 && y.col_stride == 1 &&
                      uv.col_stride == 2 && uv.channel_stride == 1;
  if (packed) {
    convert_packed(s, height, width, bgr, y, uv);
    return;
  }
  const ptrdiff_t r_off = (bgr ? 2 : 0) * s.channel_stride;
  const ptrdiff_t b_off = (bgr ? 0 : 2) * s.channel_stride;
  convert_strided(s, height, width, r_off, b_off, y, uv);
}

}  // namespace hbm::ops
