// Quantize / dequantize with a scale and zero point, per tensor or per axis.
//
// Arrays are described by a pointer to their first element, a shape and strides in elements
// (negative strides allowed; zero strides allowed for the source). Both kernels are defined
// element by element in float32 arithmetic, so the results are bit-identical to these numpy
// expressions (s and z: the scale and zero point broadcast along the axis, float32 / int32):
//
//   dequantize:  y = (q.astype(float32) - z.astype(float32)) * s          (float32 ops)
//   quantize:    t = x / s                                                 (float32 division)
//                t = where(isnan(t), 0, t)                                 (NaN quantizes as 0)
//                q = clip(rint(t).astype(float64) + z, dtype.min, dtype.max).astype(dtype)
//
// rint rounds half to even; the zero point is added exactly (not rounded to float32) and the
// sum saturates to the destination type, so +-inf give its max / min. Only the default
// (round-to-nearest) floating-point environment is supported, as in numpy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/dtype.h"

namespace hbm::ops {

// Element types the kernels take: int8, uint8, int16, uint16, int32, uint32.
bool is_quantized_type(DataType t);

// An array's first element and its strides in elements, one per dimension of the shape
// passed beside it.
template <class T>
struct Strided {
  T* data;
  std::span<const int64_t> strides;
};

// y = (float(q) - float(zero_point[c])) * scale[c], c the index along `axis` (or 0 when
// `axis` is empty). `scale` has 1 or shape[axis] finite values; `zero_point` has 0 (zero),
// 1 or shape[axis] values. Throws InvalidArgument (naming the argument) on any violation.
// The caller guarantees that both arrays span valid memory for `shape` and do not overlap.
void dequantize(DataType src_type, Strided<const void> src, Strided<float> dst,
                std::span<const int64_t> shape, std::optional<size_t> axis,
                std::span<const float> scale, std::span<const int32_t> zero_point);

// q = saturate(rint(x / scale[c]) + zero_point[c]) with NaN -> zero_point[c] (see above).
// `scale` values must be finite and non-zero, `zero_point` values within `dst_type`'s range.
void quantize(Strided<const float> src, DataType dst_type, Strided<void> dst,
              std::span<const int64_t> shape, std::optional<size_t> axis,
              std::span<const float> scale, std::span<const int32_t> zero_point);

}  // namespace hbm::ops
