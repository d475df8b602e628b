// Compiled with -ffp-contract=off and without -ffast-math (see CMakeLists.txt): every
// operation below must round exactly like the numpy reference in quantize.h.
#include "ops/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/errors.h"

namespace hbm::ops {
namespace {

// Rows shorter than this with per-channel parameters along the inner dimension are widened
// by repeating the parameters (3-channel images would otherwise run 3-element loops).
constexpr int64_t kShortRow = 512;
constexpr int64_t kTiledRowMax = 4096;

std::string fmt_float(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string index_name(const char* what, size_t i, size_t count) {
  return count == 1 ? std::string(what) : std::string(what) + "[" + std::to_string(i) + "]";
}

template <class T>
constexpr int64_t min_of() { return std::numeric_limits<T>::min(); }
template <class T>
constexpr int64_t max_of() { return std::numeric_limits<T>::max(); }

struct Range {
  int64_t lo, hi;
};

Range range_of(DataType t) {
  switch (t) {
    case DataType::S8: return {min_of<int8_t>(), max_of<int8_t>()};
    case DataType::U8: return {0, max_of<uint8_t>()};
    case DataType::S16: return {min_of<int16_t>(), max_of<int16_t>()};
    case DataType::U16: return {0, max_of<uint16_t>()};
    case DataType::S32: return {min_of<int32_t>(), max_of<int32_t>()};
    case DataType::U32: return {0, max_of<uint32_t>()};
    default: return {0, 0};
  }
}

// One loop of the nest: extent and strides (elements) of the source and the destination.
struct Dim {
  int64_t n, sa, sb;
};

// The loop nest: size-1 dimensions dropped, ordered by destination stride (outermost
// first), neighbours that step like one dimension merged. `channel` indexes the dimension
// whose index selects the parameters (-1: one set for everything); a channel dimension
// that is innermost may have been widened `tile` times (parameters repeated).
struct Plan {
  bool empty = false;
  std::vector<Dim> dims;
  int channel = -1;
  int64_t tile = 1;
};

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

Plan make_plan(std::span<const int64_t> shape, std::span<const int64_t> sa,
               std::span<const int64_t> sb, std::optional<size_t> channel_axis) {
  Plan p;
  struct Tagged {
    Dim d;
    bool channel;
  };
  std::vector<Tagged> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) {
      p.empty = true;
      return p;
    }
    if (shape[i] != 1)
      dims.push_back({{shape[i], sa[i], sb[i]}, channel_axis && *channel_axis == i});
  }
  // Innermost = smallest destination stride, so writes are sequential where possible; the
  // source decides ties. Stable: C order is kept for C-ordered arrays.
  std::stable_sort(dims.begin(), dims.end(), [](const Tagged& x, const Tagged& y) {
    if (abs64(x.d.sb) != abs64(y.d.sb)) return abs64(x.d.sb) > abs64(y.d.sb);
    return abs64(x.d.sa) > abs64(y.d.sa);
  });
  std::vector<Tagged> merged;
  for (const Tagged& t : dims) {
    if (!merged.empty()) {
      Tagged& outer = merged.back();
      if (!outer.channel && !t.channel && outer.d.sa == t.d.sa * t.d.n &&
          outer.d.sb == t.d.sb * t.d.n) {
        outer.d = {outer.d.n * t.d.n, t.d.sa, t.d.sb};
        continue;
      }
    }
    merged.push_back(t);
  }
  // Widen a short innermost channel row over the dimension around it when that one steps
  // exactly one row further: [.., m, C] -> [.., m/k, k*C] with parameters repeated k times.
  if (merged.size() >= 2 && merged.back().channel && merged.back().d.n < kShortRow) {
    Dim& ch = merged.back().d;
    Dim& outer = merged[merged.size() - 2].d;
    if (outer.sa == ch.sa * ch.n && outer.sb == ch.sb * ch.n) {
      int64_t k = std::min(outer.n, kTiledRowMax / ch.n);
      while (k > 1 && outer.n % k != 0) --k;
      if (k > 1) {
        p.tile = k;
        ch.n *= k;
        outer.n /= k;
        outer.sa *= k;
        outer.sb *= k;
        if (outer.n == 1) merged.erase(merged.end() - 2);
      }
    }
  }
  for (size_t i = 0; i < merged.size(); ++i) {
    p.dims.push_back(merged[i].d);
    if (merged[i].channel) p.channel = static_cast<int>(i);
  }
  return p;
}

// Runs `k.row` (constant parameters of one channel) or `k.row_channels` (parameters per
// element of the inner dimension) over every innermost row of the plan. Offsets rather than
// pointers advance, so no pointer is ever formed outside the arrays.
template <class S, class D, class Kernel>
void execute(const Plan& p, const S* a, D* b, const Kernel& k) {
  if (p.empty) return;
  if (p.dims.empty()) {  // a single element
    k.row(a, 1, b, 1, 1, 0);
    return;
  }
  const size_t nd = p.dims.size();
  const Dim in = p.dims.back();
  const bool inner_channel = p.channel == static_cast<int>(nd - 1);
  std::vector<int64_t> idx(nd, 0);
  int64_t oa = 0, ob = 0;
  for (;;) {
    if (inner_channel) {
      k.row_channels(a + oa, in.sa, b + ob, in.sb, in.n);
    } else {
      k.row(a + oa, in.sa, b + ob, in.sb, in.n, p.channel >= 0 ? idx[p.channel] : 0);
    }
    size_t d = nd - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      const Dim& dim = p.dims[d];
      if (idx[d] + 1 < dim.n) {
        ++idx[d];
        oa += dim.sa;
        ob += dim.sb;
        break;
      }
      oa -= dim.sa * (dim.n - 1);
      ob -= dim.sb * (dim.n - 1);
      idx[d] = 0;
    }
  }
}

// ---- dequantize -------------------------------------------------------------------------

template <class S>
struct Dequantizer {
  const float* scale;
  const float* zero;  // the zero point as float32, like zero_point.astype(float32)

  void row(const S* a, int64_t sa, float* b, int64_t sb, int64_t n, int64_t c) const {
    const float s = scale[c], z = zero[c];
    if (sa == 1 && sb == 1) {
      const S* __restrict src = a;
      float* __restrict dst = b;
      for (int64_t i = 0; i < n; ++i) dst[i] = (static_cast<float>(src[i]) - z) * s;
    } else {
      for (int64_t i = 0; i < n; ++i) b[i * sb] = (static_cast<float>(a[i * sa]) - z) * s;
    }
  }

  void row_channels(const S* a, int64_t sa, float* b, int64_t sb, int64_t n) const {
    const float* __restrict s = scale;
    const float* __restrict z = zero;
    if (sa == 1 && sb == 1) {
      const S* __restrict src = a;
      float* __restrict dst = b;
      for (int64_t i = 0; i < n; ++i) dst[i] = (static_cast<float>(src[i]) - z[i]) * s[i];
    } else {
      for (int64_t i = 0; i < n; ++i) b[i * sb] = (static_cast<float>(a[i * sa]) - z[i]) * s[i];
    }
  }
};

template <class S>
void run_dequantize(const Plan& p, const void* src, float* dst, const std::vector<float>& scale,
                    const std::vector<float>& zero) {
  execute(p, static_cast<const S*>(src), dst, Dequantizer<S>{scale.data(), zero.data()});
}

// ---- quantize ---------------------------------------------------------------------------

// The row loops of both quantizers below: `Q::one(x, scale, lo, hi, zp)` per element, with
// the bounds `lo`/`hi` (dtype min/max - zero point) and the zero point in the type `B` each
// rounding is done in.
template <class Q, class D, class B, class Z>
struct QuantizeRows {
  const float* scale;
  const B* lo;
  const B* hi;
  const Z* zp;

  void row(const float* a, int64_t sa, D* b, int64_t sb, int64_t n, int64_t c) const {
    const float s = scale[c];
    const B l = lo[c], h = hi[c];
    const Z z = zp[c];
    if (sa == 1 && sb == 1) {
      const float* __restrict src = a;
      D* __restrict dst = b;
      for (int64_t i = 0; i < n; ++i) dst[i] = Q::one(src[i], s, l, h, z);
    } else {
      for (int64_t i = 0; i < n; ++i) b[i * sb] = Q::one(a[i * sa], s, l, h, z);
    }
  }

  void row_channels(const float* a, int64_t sa, D* b, int64_t sb, int64_t n) const {
    const float* __restrict s = scale;
    const B* __restrict l = lo;
    const B* __restrict h = hi;
    const Z* __restrict z = zp;
    if (sa == 1 && sb == 1) {
      const float* __restrict src = a;
      D* __restrict dst = b;
      for (int64_t i = 0; i < n; ++i) dst[i] = Q::one(src[i], s[i], l[i], h[i], z[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) b[i * sb] = Q::one(a[i * sa], s[i], l[i], h[i], z[i]);
    }
  }
};

// 8- and 16-bit destinations. With the zero point inside the type's range, the quotient can
// be clamped to [lo - zp, hi - zp] (integers below 2**17, exact in float32) before rounding:
// rint is monotonic and keeps integers, so clamping first or after gives the same integer.
// Adding 1.5 * 2**23 moves any |t| <= 2**22 into [2**23, 2**24), where float32 has a spacing
// of exactly 1, so that addition rounds t to an integer, half to even; the subtraction is
// exact. This is rint without a libm call, and it vectorises on every SIMD level.
template <class D>
struct NarrowQuantizer : QuantizeRows<NarrowQuantizer<D>, D, float, int32_t> {
  static D one(float x, float s, float lo, float hi, int32_t zp) {
    constexpr float kRound = 12582912.0f;  // 1.5 * 2**23
    float t = x / s;
    t = t == t ? t : 0.0f;  // NaN quantizes as 0
    t = t < lo ? lo : t;
    t = t > hi ? hi : t;
    const float r = (t + kRound) - kRound;
    return static_cast<D>(static_cast<int32_t>(r) + zp);
  }
};

// 32-bit destinations: the same in float64, where the bounds (up to 2**32) are exact. The
// float32 quotient widens exactly, so rounding it in float64 gives float32 rint's integer;
// 1.5 * 2**52 plays the role of 1.5 * 2**23 above. r + zp lies in the type's range.
template <class D>
struct WideQuantizer : QuantizeRows<WideQuantizer<D>, D, double, double> {
  static D one(float x, float s, double lo, double hi, double zp) {
    constexpr double kRound = 6755399441055744.0;  // 1.5 * 2**52
    double t = static_cast<double>(x / s);
    t = t == t ? t : 0.0;
    t = t < lo ? lo : t;
    t = t > hi ? hi : t;
    const double r = (t + kRound) - kRound;
    return static_cast<D>(r + zp);
  }
};

// ---- shared checks ----------------------------------------------------------------------

// Number of parameter sets (1: per tensor, else shape[axis]) after checking the lengths.
size_t check_params(std::span<const int64_t> shape, size_t src_strides, size_t dst_strides,
                    std::optional<size_t> axis, size_t n_scale, size_t n_zero) {
  if (src_strides != shape.size() || dst_strides != shape.size())
    throw InvalidArgument("strides: expected " + std::to_string(shape.size()) +
                          " strides per array, got " + std::to_string(src_strides) + " and " +
                          std::to_string(dst_strides));
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < 0)
      throw InvalidArgument("shape[" + std::to_string(i) + "] = " + std::to_string(shape[i]) +
                            " is negative");
  if (axis && *axis >= shape.size())
    throw InvalidArgument("axis: " + std::to_string(*axis) + " is out of range for an array of " +
                          std::to_string(shape.size()) + " dimensions");
  const size_t channels = axis ? static_cast<size_t>(shape[*axis]) : 1;
  const std::string expected =
      axis ? "1 or " + std::to_string(channels) + " values (shape[" + std::to_string(*axis) + "])"
           : std::string("1 value (per tensor; pass axis for per-channel parameters)");
  if (n_scale != 1 && n_scale != channels)
    throw InvalidArgument("scale: expected " + expected + ", got " + std::to_string(n_scale));
  if (n_zero > 1 && n_zero != channels)
    throw InvalidArgument("zero_point: expected none, " + expected + ", got " +
                          std::to_string(n_zero));
  return n_scale > 1 || n_zero > 1 ? channels : 1;
}

// The parameter of channel c, repeated `tile` times (see make_plan).
template <class T, class F>
std::vector<T> per_channel(size_t channels, int64_t tile, F value) {
  std::vector<T> v(channels * static_cast<size_t>(tile));
  for (size_t i = 0; i < v.size(); ++i) v[i] = value(i % channels);
  return v;
}

}  // namespace

bool is_quantized_type(DataType t) {
  switch (t) {
    case DataType::S8:
    case DataType::U8:
    case DataType::S16:
    case DataType::U16:
    case DataType::S32:
    case DataType::U32: return true;
    default: return false;
  }
}

void dequantize(DataType src_type, Strided<const void> src, Strided<float> dst,
                std::span<const int64_t> shape, std::optional<size_t> axis,
                std::span<const float> scale, std::span<const int32_t> zero_point) {
  if (!is_quantized_type(src_type))
    throw InvalidArgument("dequantize: source type " + std::string(dtype_name(src_type)) +
                          " is not supported");
  const size_t channels = check_params(shape, src.strides.size(), dst.strides.size(), axis,
                                       scale.size(), zero_point.size());
  for (size_t i = 0; i < scale.size(); ++i)
    if (!std::isfinite(scale[i]))
      throw InvalidArgument(index_name("scale", i, scale.size()) + " = " + fmt_float(scale[i]) +
                            " is not finite");
  const Plan plan = make_plan(shape, src.strides, dst.strides,
                              channels > 1 ? axis : std::nullopt);
  if (plan.empty) return;
  const size_t nc = plan.channel >= 0 ? channels : 1;
  const auto s = per_channel<float>(nc, plan.tile, [&](size_t c) {
    return scale[scale.size() == 1 ? 0 : c];
  });
  const auto z = per_channel<float>(nc, plan.tile, [&](size_t c) {
    if (zero_point.empty()) return 0.0f;
    return static_cast<float>(zero_point[zero_point.size() == 1 ? 0 : c]);
  });
  switch (src_type) {
    case DataType::S8: return run_dequantize<int8_t>(plan, src.data, dst.data, s, z);
    case DataType::U8: return run_dequantize<uint8_t>(plan, src.data, dst.data, s, z);
    case DataType::S16: return run_dequantize<int16_t>(plan, src.data, dst.data, s, z);
    case DataType::U16: return run_dequantize<uint16_t>(plan, src.data, dst.data, s, z);
    case DataType::S32: return run_dequantize<int32_t>(plan, src.data, dst.data, s, z);
    case DataType::U32: return run_dequantize<uint32_t>(plan, src.data, dst.data, s, z);
    default: return;
  }
}

namespace {

template <class D>
void run_quantize(const Plan& p, size_t nc, const float* src, void* dst, Range range,
                  std::span<const float> scale, std::span<const int32_t> zero_point) {
  auto zp = [&](size_t c) -> int64_t {
    return zero_point.empty() ? 0 : zero_point[zero_point.size() == 1 ? 0 : c];
  };
  const auto s = per_channel<float>(nc, p.tile, [&](size_t c) {
    return scale[scale.size() == 1 ? 0 : c];
  });
  // Bounds of the quotient, dtype min / max - zero point: exact in float32 below 2**24
  // (8- and 16-bit types), in float64 for 32-bit types.
  using Bound = std::conditional_t<sizeof(D) <= 2, float, double>;
  const auto lo = per_channel<Bound>(nc, p.tile, [&](size_t c) {
    return static_cast<Bound>(range.lo - zp(c));
  });
  const auto hi = per_channel<Bound>(nc, p.tile, [&](size_t c) {
    return static_cast<Bound>(range.hi - zp(c));
  });
  if constexpr (sizeof(D) <= 2) {
    const auto z = per_channel<int32_t>(nc, p.tile, [&](size_t c) {
      return static_cast<int32_t>(zp(c));
    });
    execute(p, src, static_cast<D*>(dst),
            NarrowQuantizer<D>{{s.data(), lo.data(), hi.data(), z.data()}});
  } else {
    const auto z = per_channel<double>(nc, p.tile, [&](size_t c) {
      return static_cast<double>(zp(c));
    });
    execute(p, src, static_cast<D*>(dst),
            WideQuantizer<D>{{s.data(), lo.data(), hi.data(), z.data()}});
  }
}

}  // namespace

void quantize(Strided<const float> src, DataType dst_type, Strided<void> dst,
              std::span<const int64_t> shape, std::optional<size_t> axis,
              std::span<const float> scale, std::span<const int32_t> zero_point) {
  if (!is_quantized_type(dst_type))
    throw InvalidArgument("quantize: destination type " + std::string(dtype_name(dst_type)) +
                          " is not supported");
  const size_t channels = check_params(shape, src.strides.size(), dst.strides.size(), axis,
                                       scale.size(), zero_point.size());
  for (size_t i = 0; i < scale.size(); ++i)
    if (!std::isfinite(scale[i]) || scale[i] == 0.0f)
      throw InvalidArgument(index_name("scale", i, scale.size()) + " = " + fmt_float(scale[i]) +
                            ": expected a finite, non-zero value");
  const Range range = range_of(dst_type);
  for (size_t i = 0; i < zero_point.size(); ++i)
    if (zero_point[i] < range.lo || zero_point[i] > range.hi)
      throw InvalidArgument(index_name("zero_point", i, zero_point.size()) + " = " +
                            std::to_string(zero_point[i]) + " is outside the range of " +
                            std::string(traits(dst_type).numpy_name) + " [" +
                            std::to_string(range.lo) + ", " + std::to_string(range.hi) + "]");
  const Plan plan = make_plan(shape, src.strides, dst.strides,
                              channels > 1 ? axis : std::nullopt);
  if (plan.empty) return;
  const size_t nc = plan.channel >= 0 ? channels : 1;
  const float* x = src.data;
  void* q = dst.data;
  switch (dst_type) {
    case DataType::S8: return run_quantize<int8_t>(plan, nc, x, q, range, scale, zero_point);
    case DataType::U8: return run_quantize<uint8_t>(plan, nc, x, q, range, scale, zero_point);
    case DataType::S16: return run_quantize<int16_t>(plan, nc, x, q, range, scale, zero_point);
    case DataType::U16: return run_quantize<uint16_t>(plan, nc, x, q, range, scale, zero_point);
    case DataType::S32: return run_quantize<int32_t>(plan, nc, x, q, range, scale, zero_point);
    case DataType::U32: return run_quantize<uint32_t>(plan, nc, x, q, range, scale, zero_point);
    default: return;
  }
}

}  // namespace hbm::ops
