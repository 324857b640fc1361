// tessera CPU: data movement (strided copies with dtype conversion, fill, arange,
// Philox draws) and elementwise float32 ops (unary with its backward, broadcast binary,
// tensor-scalar) (CUDA twin: cuda/elementwise.cu; reductions are in reduce.cc).
// Dimension letters: none (any shape).
// Copies convert through double (bfloat16/float16 round to nearest even; integers
// truncate toward zero and saturate, NaN -> 0); dims contiguous in both tensors are
// merged first, so strided loops run over as few, as long, dims as possible.
// Binary inputs arrive as views broadcast to the output shape (stride 0 where broadcast).
// The transcendental unary ops (exp, tanh, sigmoid, SiLU, GELU, GELU-tanh) and their
// derivatives run on SIMD math (vec.h: AVX-512 / AVX2 / portable, chosen at run time);
// a row's tail goes through the same vector code via a padded copy, so every element
// is computed the same way whatever the split into threads. The other unary ops are
// simple enough for the compiler to vectorize the per-op loops.
// Memory contract: every output (dst, out, dinp) is overwritten (=).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/parallel.h"
#include "cpu.h"
#include "vec.h"

namespace ts {
namespace cpu {

// ---- copies, fill, arange, Philox draws -----------------------------------------------

namespace {

template <typename T>
inline double load_as_double(const void* p) {
  return static_cast<double>(*static_cast<const T*>(p));
}

inline double load(DType dt, const char* p) {
  switch (dt) {
    case DType::Float32: return *reinterpret_cast<const float*>(p);
    case DType::Float64: return *reinterpret_cast<const double*>(p);
    case DType::BFloat16: return bf16_to_f32(*reinterpret_cast<const uint16_t*>(p));
    case DType::Float16: return f16_to_f32(*reinterpret_cast<const uint16_t*>(p));
    case DType::Int32: return *reinterpret_cast<const int32_t*>(p);
    case DType::Int64: return static_cast<double>(*reinterpret_cast<const int64_t*>(p));
    case DType::UInt8: return *reinterpret_cast<const uint8_t*>(p);
    case DType::Bool: return *reinterpret_cast<const uint8_t*>(p) ? 1.0 : 0.0;
  }
  return 0;
}

template <typename I>
inline I saturate_int(double v) {
  if (std::isnan(v)) return 0;
  double lo = static_cast<double>(std::numeric_limits<I>::min()), hi = static_cast<double>(std::numeric_limits<I>::max());
  if (v <= lo) return std::numeric_limits<I>::min();
  if (v >= hi) return std::numeric_limits<I>::max();
  return static_cast<I>(v);  // truncates toward zero, as a C cast does
}

inline void store(DType dt, char* p, double v) {
  switch (dt) {
    case DType::Float32: *reinterpret_cast<float*>(p) = static_cast<float>(v); break;
    case DType::Float64: *reinterpret_cast<double*>(p) = v; break;
    case DType::BFloat16: *reinterpret_cast<uint16_t*>(p) = f32_to_bf16(static_cast<float>(v)); break;
    case DType::Float16: *reinterpret_cast<uint16_t*>(p) = f32_to_f16(static_cast<float>(v)); break;
    case DType::Int32: *reinterpret_cast<int32_t*>(p) = saturate_int<int32_t>(v); break;
    case DType::Int64: *reinterpret_cast<int64_t*>(p) = saturate_int<int64_t>(v); break;
    case DType::UInt8: *reinterpret_cast<uint8_t*>(p) = saturate_int<uint8_t>(v); break;
    case DType::Bool: *reinterpret_cast<uint8_t*>(p) = v != 0 ? 1 : 0; break;
  }
}

// Merges adjacent dims that are contiguous in both tensors, so strided loops run
// over as few, as long, dims as possible. Strides are in elements.
void collapse(Shape& shape, Shape& s1, Shape& s2) {
  Shape ns, n1, n2;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!ns.empty() && n1.back() == s1[i] * shape[i] && n2.back() == s2[i] * shape[i]) {
      ns.back() *= shape[i];
      n1.back() = s1[i];
      n2.back() = s2[i];
    } else {
      ns.push_back(shape[i]);
      n1.push_back(s1[i]);
      n2.push_back(s2[i]);
    }
  }
  if (ns.empty()) { ns = {1}; n1 = {1}; n2 = {1}; }
  shape = ns; s1 = n1; s2 = n2;
}

}  // namespace

void copy(Tensor& dst, const Tensor& src) {
  int64_t n = dst.numel();
  if (n == 0) return;
  DType dd = dst.dtype(), sd = src.dtype();
  size_t di = dtype_size(dd), si = dtype_size(sd);
  if (dd == sd && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw(), src.raw(), static_cast<size_t>(n) * di);
    return;
  }
  Shape shape = dst.shape(), sds = dst.strides(), sss = src.strides();
  collapse(shape, sds, sss);
  int64_t nd = static_cast<int64_t>(shape.size());
  int64_t inner = shape[nd - 1], outer = n / inner;
  int64_t dsi = sds[nd - 1], ssi = sss[nd - 1];
  char* dbase = static_cast<char*>(dst.raw());
  const char* sbase = static_cast<const char*>(src.raw());
  // 4-byte elements with a short last dim (a broadcast gradient of a 2x2 pooling, a
  // permuted [.., 2] pair): the last two dims are one inner block, walked with strides,
  // so the index arithmetic per outer step (a division per dim) is paid once per block
  // instead of once per 2 elements. 2x2 mean pooling's backward over [2, 16, 9, 64, 64]:
  // 3.0 -> 0.67 ms (Xeon, AVX-512).
  // Element offsets in dst and src of outer index o over dims [0, top].
  auto unravel = [&](int64_t o, int64_t top, int64_t* doff, int64_t* soff) {
    *doff = *soff = 0;
    for (int64_t d = top; d >= 0; --d) {
      const int64_t idx = o % shape[d];
      o /= shape[d];
      *doff += idx * sds[d];
      *soff += idx * sss[d];
    }
  };
  if (dd == sd && di == 4 && nd >= 3 && inner < 16) {
    const int64_t mid = shape[nd - 2], dsm = sds[nd - 2], ssm = sss[nd - 2], blk = mid * inner, outer2 = n / blk;
    parallel_for(0, outer2, std::max<int64_t>(1, 16384 / std::max<int64_t>(blk, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        int64_t doff, soff;
        unravel(o, nd - 3, &doff, &soff);
        uint32_t* dp = reinterpret_cast<uint32_t*>(dbase) + doff;
        const uint32_t* sp = reinterpret_cast<const uint32_t*>(sbase) + soff;
        for (int64_t j = 0; j < mid; ++j)
          for (int64_t i = 0; i < inner; ++i) dp[j * dsm + i * dsi] = sp[j * ssm + i * ssi];
      }
    });
    return;
  }
  parallel_for(0, outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t doff, soff;
      unravel(o, nd - 2, &doff, &soff);
      char* dp = dbase + doff * static_cast<int64_t>(di);
      const char* sp = sbase + soff * static_cast<int64_t>(si);
      if (dd == sd) {
        if (dsi == 1 && ssi == 1) {
          std::memcpy(dp, sp, static_cast<size_t>(inner) * di);
        } else if (di == 4) {
          for (int64_t i = 0; i < inner; ++i)
            reinterpret_cast<uint32_t*>(dp)[i * dsi] = reinterpret_cast<const uint32_t*>(sp)[i * ssi];
        } else {
          for (int64_t i = 0; i < inner; ++i) std::memcpy(dp + i * dsi * di, sp + i * ssi * si, di);
        }
      } else if (dd == DType::Float32 && sd == DType::BFloat16) {
        for (int64_t i = 0; i < inner; ++i)
          reinterpret_cast<float*>(dp)[i * dsi] = bf16_to_f32(reinterpret_cast<const uint16_t*>(sp)[i * ssi]);
      } else if (dd == DType::BFloat16 && sd == DType::Float32) {
        for (int64_t i = 0; i < inner; ++i)
          reinterpret_cast<uint16_t*>(dp)[i * dsi] = f32_to_bf16(reinterpret_cast<const float*>(sp)[i * ssi]);
      } else {
        for (int64_t i = 0; i < inner; ++i) store(dd, dp + i * dsi * di, load(sd, sp + i * ssi * si));
      }
    }
  });
}

void fill(Tensor& dst, double v) {
  int64_t n = dst.numel();
  if (n == 0) return;
  char* p = static_cast<char*>(dst.raw());
  size_t is = dst.itemsize();
  char one[8];
  store(dst.dtype(), one, v);
  if (dst.dtype() == DType::Float32) {
    float f = static_cast<float>(v);
    float* fp = dst.data<float>();
    parallel_for(0, n, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fp[i] = f;
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(p + i * static_cast<int64_t>(is), one, is);
}

void arange(Tensor& dst, double start, double step) {
  char* p = static_cast<char*>(dst.raw());
  size_t is = dst.itemsize();
  for (int64_t i = 0; i < dst.numel(); ++i) store(dst.dtype(), p + i * static_cast<int64_t>(is), start + step * i);
}

void rand(Tensor& dst, uint64_t seed, uint64_t offset) {
  float* p = dst.data<float>();
  parallel_for(0, dst.numel(), 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = philox_uniform(seed, offset, static_cast<uint64_t>(i));
  });
}

void randn(Tensor& dst, uint64_t seed, uint64_t offset) {
  float* p = dst.data<float>();
  parallel_for(0, dst.numel(), 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = philox_normal(seed, offset, static_cast<uint64_t>(i));
  });
}

// ---- elementwise math -----------------------------------------------------------------

namespace {
constexpr int64_t kGrain = 32768;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

inline float unary_f(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0.0f;
    case UnaryOp::Silu: return x / (1.0f + std::exp(-x));
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + std::erf(x * kInvSqrt2));
    case UnaryOp::GeluTanh: return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    case UnaryOp::Square: return x * x;
    case UnaryOp::Rsqrt: return 1.0f / std::sqrt(x);
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
  }
  return 0;
}

// d f(x) / dx, given x and y = f(x).
inline float unary_df(UnaryOp op, float x, float y) {
  switch (op) {
    case UnaryOp::Neg: return -1.0f;
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return 1.0f / x;
    case UnaryOp::Sqrt: return 0.5f / y;
    case UnaryOp::Abs: return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f);
    case UnaryOp::Tanh: return 1.0f - y * y;
    case UnaryOp::Sigmoid: return y * (1.0f - y);
    case UnaryOp::Relu: return x > 0 ? 1.0f : 0.0f;
    case UnaryOp::Silu: {
      float s = 1.0f / (1.0f + std::exp(-x));
      return s * (1.0f + x * (1.0f - s));
    }
    case UnaryOp::Gelu: {
      float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
      float pdf = 0.3989422804014327f * std::exp(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case UnaryOp::GeluTanh: {
      float inner = kSqrt2OverPi * (x + 0.044715f * x * x * x);
      float t = std::tanh(inner);
      float dinner = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
    }
    case UnaryOp::Square: return 2.0f * x;
    case UnaryOp::Rsqrt: return -0.5f * y * y * y;
    case UnaryOp::Sin: return std::cos(x);
    case UnaryOp::Cos: return -std::sin(x);
  }
  return 0;
}

inline float binary_f(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return std::pow(a, b);
    case BinaryOp::Maximum: return (a != a || b != b) ? NAN : (a > b ? a : b);
    case BinaryOp::Minimum: return (a != a || b != b) ? NAN : (a < b ? a : b);
    case BinaryOp::Eq: return a == b ? 1.0f : 0.0f;
    case BinaryOp::Gt: return a > b ? 1.0f : 0.0f;
    case BinaryOp::Lt: return a < b ? 1.0f : 0.0f;
  }
  return 0;
}

template <typename F>
void map_contiguous(int64_t n, F&& f) {
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

template <BinaryOp OP>
void binary_loop(int64_t n, float* o, const float* a, int64_t sa, const float* b, int64_t sb) {
  for (int64_t i = 0; i < n; ++i) o[i] = binary_f(OP, a[i * sa], b[i * sb]);
}

void binary_row(BinaryOp op, int64_t n, float* o, const float* a, int64_t sa, const float* b, int64_t sb) {
  // Dispatch once per row so the compiler vectorizes each specialized loop.
  switch (op) {
    case BinaryOp::Add:
      if (sa == 1 && sb == 1) { for (int64_t i = 0; i < n; ++i) o[i] = a[i] + b[i]; return; }
      if (sa == 1 && sb == 0) { float v = b[0]; for (int64_t i = 0; i < n; ++i) o[i] = a[i] + v; return; }
      return binary_loop<BinaryOp::Add>(n, o, a, sa, b, sb);
    case BinaryOp::Sub:
      if (sa == 1 && sb == 1) { for (int64_t i = 0; i < n; ++i) o[i] = a[i] - b[i]; return; }
      return binary_loop<BinaryOp::Sub>(n, o, a, sa, b, sb);
    case BinaryOp::Mul:
      if (sa == 1 && sb == 1) { for (int64_t i = 0; i < n; ++i) o[i] = a[i] * b[i]; return; }
      if (sa == 1 && sb == 0) { float v = b[0]; for (int64_t i = 0; i < n; ++i) o[i] = a[i] * v; return; }
      return binary_loop<BinaryOp::Mul>(n, o, a, sa, b, sb);
    case BinaryOp::Div:
      if (sa == 1 && sb == 1) { for (int64_t i = 0; i < n; ++i) o[i] = a[i] / b[i]; return; }
      return binary_loop<BinaryOp::Div>(n, o, a, sa, b, sb);
    case BinaryOp::Pow: return binary_loop<BinaryOp::Pow>(n, o, a, sa, b, sb);
    case BinaryOp::Maximum: return binary_loop<BinaryOp::Maximum>(n, o, a, sa, b, sb);
    case BinaryOp::Minimum: return binary_loop<BinaryOp::Minimum>(n, o, a, sa, b, sb);
    case BinaryOp::Eq: return binary_loop<BinaryOp::Eq>(n, o, a, sa, b, sb);
    case BinaryOp::Gt: return binary_loop<BinaryOp::Gt>(n, o, a, sa, b, sb);
    case BinaryOp::Lt: return binary_loop<BinaryOp::Lt>(n, o, a, sa, b, sb);
  }
}
}  // namespace

namespace {

bool vector_math(UnaryOp op) {
  switch (op) {
    case UnaryOp::Exp:
    case UnaryOp::Tanh:
    case UnaryOp::Sigmoid:
    case UnaryOp::Silu:
    case UnaryOp::Gelu:
    case UnaryOp::GeluTanh: return true;
    default: return false;
  }
}

// GELU-tanh's gate 0.5 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3), as the equal
// sigmoid(2u) = 1 / (1 + exp(-2u)): one exp and one division instead of tanh's exp,
// division and polynomial with a select (the op ran at 2.3x a binary op's time, 18 GB/s
// on [32, 80, 768]; Xeon, 2 threads), and without tanh's cancellation in 1 + tanh u for
// negative u. The gate is exactly 0 for 2u < -87.3 (as 1 + tanh u rounds to 0 there), so
// x = -inf still gives NaN (-inf * 0), as the tanh form and PyTorch do.
template <int W>
TS_INLINE typename Vec<W>::F vgelu_tanh_gate(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  const F u2 = (2.0f * kSqrt2OverPi) * (x + 0.044715f * x * x * x);
  const F sg = vsigmoid<W>(u2);
  return u2 < -87.33654475f ? vset<W>(0.0f) : sg;
}

// f(x) for the vector_math ops.
template <int W>
TS_INLINE typename Vec<W>::F vunary(UnaryOp op, typename Vec<W>::F x) {
  switch (op) {
    case UnaryOp::Exp: return vexp<W>(x);
    case UnaryOp::Tanh: return vtanh<W>(x);
    case UnaryOp::Sigmoid: return vsigmoid<W>(x);
    case UnaryOp::Silu: return x * vsigmoid<W>(x);
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + verf<W>(x * kInvSqrt2));
    case UnaryOp::GeluTanh: return x * vgelu_tanh_gate<W>(x);
    default: return x;
  }
}

// f'(x) for the vector_math ops, given x and y = f(x).
template <int W>
TS_INLINE typename Vec<W>::F vunary_df(UnaryOp op, typename Vec<W>::F x, typename Vec<W>::F y) {
  using F = typename Vec<W>::F;
  switch (op) {
    case UnaryOp::Exp: return y;
    case UnaryOp::Tanh: return 1.0f - y * y;
    case UnaryOp::Sigmoid: return y * (1.0f - y);
    case UnaryOp::Silu: {
      F sg = vsigmoid<W>(x);
      return sg * (1.0f + x * (1.0f - sg));
    }
    case UnaryOp::Gelu: {
      F cdf = 0.5f * (1.0f + verf<W>(x * kInvSqrt2));
      F pdf = 0.3989422804014327f * vexp<W>(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case UnaryOp::GeluTanh: {
      // With s = 0.5 (1 + tanh u): d/dx [x s] = s + x 0.5 (1 - tanh^2 u) u' = s + 2 x s (1 - s) u'.
      F sg = vgelu_tanh_gate<W>(x);
      F du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
      return sg + 2.0f * x * sg * (1.0f - sg) * du;
    }
    default: return y;
  }
}

// Loads n < W floats (zero padded); stores the first n lanes.
template <int W>
TS_INLINE typename Vec<W>::F vload_part(const float* p, int64_t n) {
  float buf[W] = {};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return vload<W>(buf);
}
template <int W>
TS_INLINE void vstore_part(float* p, typename Vec<W>::F v, int64_t n) {
  float buf[W];
  vstore<W>(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

// o[i] = f(x[i]) for i < n; the op's switch is resolved per vector.
template <int W>
TS_INLINE void unary_span(UnaryOp op, float* o, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore<W>(o + i, vunary<W>(op, vload<W>(x + i)));
  if (i < n) vstore_part<W>(o + i, vunary<W>(op, vload_part<W>(x + i, n - i)), n - i);
}
// d[i] = g[i] * f'(x[i]) (y[i] = f(x[i]) when y, else recomputed).
template <int W>
TS_INLINE void unary_backward_span(UnaryOp op, float* d, const float* g, const float* x, const float* y, int64_t n) {
  using F = typename Vec<W>::F;
  auto one = [&](int64_t i, int64_t len) TS_INLINE_LAMBDA {
    F xv = len == W ? vload<W>(x + i) : vload_part<W>(x + i, len);
    F gv = len == W ? vload<W>(g + i) : vload_part<W>(g + i, len);
    F yv = y ? (len == W ? vload<W>(y + i) : vload_part<W>(y + i, len)) : vunary<W>(op, xv);
    F r = gv * vunary_df<W>(op, xv, yv);
    if (len == W) vstore<W>(d + i, r);
    else vstore_part<W>(d + i, r, len);
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) one(i, W);
  if (i < n) one(i, n - i);
}

__attribute__((target("avx512f,fma"))) void unary_span_avx512(UnaryOp op, float* o, const float* x, int64_t n) {
  unary_span<16>(op, o, x, n);
}
__attribute__((target("avx2,fma"))) void unary_span_avx2(UnaryOp op, float* o, const float* x, int64_t n) {
  unary_span<8>(op, o, x, n);
}
void unary_span_portable(UnaryOp op, float* o, const float* x, int64_t n) { unary_span<4>(op, o, x, n); }

__attribute__((target("avx512f,fma"))) void unary_backward_span_avx512(UnaryOp op, float* d, const float* g,
                                                                         const float* x, const float* y, int64_t n) {
  unary_backward_span<16>(op, d, g, x, y, n);
}
__attribute__((target("avx2,fma"))) void unary_backward_span_avx2(UnaryOp op, float* d, const float* g, const float* x,
                                                                    const float* y, int64_t n) {
  unary_backward_span<8>(op, d, g, x, y, n);
}
void unary_backward_span_portable(UnaryOp op, float* d, const float* g, const float* x, const float* y, int64_t n) {
  unary_backward_span<4>(op, d, g, x, y, n);
}

using UnarySpan = void (*)(UnaryOp, float*, const float*, int64_t);
using UnaryBackwardSpan = void (*)(UnaryOp, float*, const float*, const float*, const float*, int64_t);
UnarySpan pick_unary_span() {
  const int w = simd_width();
  return w == 16 ? unary_span_avx512 : w == 8 ? unary_span_avx2 : unary_span_portable;
}
UnaryBackwardSpan pick_unary_backward_span() {
  const int w = simd_width();
  return w == 16 ? unary_backward_span_avx512 : w == 8 ? unary_backward_span_avx2 : unary_backward_span_portable;
}

std::atomic<int> g_simd_max_width{0};

// The remaining ops: one loop per op so each vectorizes on its own.
template <UnaryOp OP>
void unary_loop(float* o, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = unary_f(OP, x[i]);
}
void unary_simple(UnaryOp op, float* o, const float* x, int64_t n) {
  switch (op) {
    case UnaryOp::Neg: return unary_loop<UnaryOp::Neg>(o, x, n);
    case UnaryOp::Log: return unary_loop<UnaryOp::Log>(o, x, n);
    case UnaryOp::Sqrt: return unary_loop<UnaryOp::Sqrt>(o, x, n);
    case UnaryOp::Abs: return unary_loop<UnaryOp::Abs>(o, x, n);
    case UnaryOp::Relu: return unary_loop<UnaryOp::Relu>(o, x, n);
    case UnaryOp::Square: return unary_loop<UnaryOp::Square>(o, x, n);
    case UnaryOp::Rsqrt: return unary_loop<UnaryOp::Rsqrt>(o, x, n);
    case UnaryOp::Sin: return unary_loop<UnaryOp::Sin>(o, x, n);
    case UnaryOp::Cos: return unary_loop<UnaryOp::Cos>(o, x, n);
    default:
      for (int64_t i = 0; i < n; ++i) o[i] = unary_f(op, x[i]);
  }
}
}  // namespace

int simd_width() {
  const Features& f = features();
  const int best = f.avx512f && f.fma ? 16 : f.avx2 && f.fma ? 8 : 4, cap = g_simd_max_width.load();
  return cap <= 0 ? best : std::min(best, cap >= 16 ? 16 : cap >= 8 ? 8 : 4);
}
int simd_set_max_width(int width) {
  g_simd_max_width = width;
  return simd_width();
}

// The scalar formulas above (unary_f, unary_df) are the reference loops.
void unary(UnaryOp op, Tensor& out, const Tensor& xin) {
  Tensor x = xin.contiguous();
  const float* xp = x.data<float>();
  float* op_ = out.data<float>();
  if (reference_kernels()) {
    for (int64_t i = 0; i < out.numel(); ++i) op_[i] = unary_f(op, xp[i]);
    return;
  }
  const UnarySpan span = pick_unary_span();
  const bool vec = vector_math(op);
  parallel_for(0, out.numel(), kGrain, [&](int64_t b, int64_t e) {
    if (vec) span(op, op_ + b, xp + b, e - b);
    else unary_simple(op, op_ + b, xp + b, e - b);
  });
}

void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout_in, const Tensor& x_in, const Tensor& out_in) {
  Tensor dout = dout_in.contiguous(), x = x_in.contiguous();
  Tensor y = out_in.defined() ? out_in.contiguous() : Tensor();
  const float* g = dout.data<float>();
  const float* xp = x.data<float>();
  const float* yp = y.defined() ? y.data<float>() : nullptr;
  float* d = dinp.data<float>();
  auto scalar = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float yi = yp ? yp[i] : unary_f(op, xp[i]);
      d[i] = g[i] * unary_df(op, xp[i], yi);
    }
  };
  if (reference_kernels()) return scalar(0, dinp.numel());
  const UnaryBackwardSpan span = pick_unary_backward_span();
  const bool vec = vector_math(op);
  parallel_for(0, dinp.numel(), kGrain, [&](int64_t b, int64_t e) {
    if (vec) span(op, d + b, g + b, xp + b, yp ? yp + b : nullptr, e - b);
    else scalar(b, e);
  });
}

void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) {
  int64_t n = out.numel();
  if (n == 0) return;
  // Collapse dims over (a, b); out is contiguous.
  const Shape& sh = out.shape();
  Shape shape, sa, sb;
  for (size_t i = 0; i < sh.size(); ++i) {
    if (sh[i] == 1) continue;
    int64_t s1 = a.strides()[i], s2 = b.strides()[i];
    if (!shape.empty() && sa.back() == s1 * sh[i] && sb.back() == s2 * sh[i]) {
      shape.back() *= sh[i];
      sa.back() = s1;
      sb.back() = s2;
    } else {
      shape.push_back(sh[i]);
      sa.push_back(s1);
      sb.push_back(s2);
    }
  }
  if (shape.empty()) { shape = {1}; sa = {1}; sb = {1}; }
  int64_t nd = static_cast<int64_t>(shape.size());
  int64_t inner = shape[nd - 1], outer = n / inner;
  const float* ap = a.data<float>();
  const float* bp = b.data<float>();
  float* o = out.data<float>();
  int64_t sai = sa[nd - 1], sbi = sb[nd - 1];
  // Tasks are rows, or pieces of kGrain of a long row: operands of one shape collapse
  // to a single row, which would otherwise run on one thread.
  const int64_t piece = std::min(inner, kGrain), pieces = (inner + piece - 1) / piece;
  parallel_for(0, outer * pieces, std::max<int64_t>(1, kGrain / piece), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t r = t / pieces, j0 = (t % pieces) * piece, len = std::min(piece, inner - j0);
      int64_t rem = r, oa = 0, ob = 0;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t idx = rem % shape[d];
        rem /= shape[d];
        oa += idx * sa[d];
        ob += idx * sb[d];
      }
      binary_row(op, len, o + r * inner + j0, ap + oa + j0 * sai, sai, bp + ob + j0 * sbi, sbi);
    }
  });
}

void binary_scalar(BinaryOp op, Tensor& out, const Tensor& ain, double s, bool scalar_first) {
  Tensor a = ain.contiguous();
  const float* ap = a.data<float>();
  float* o = out.data<float>();
  float v = static_cast<float>(s);
  int64_t n = out.numel();
  if (!scalar_first && op == BinaryOp::Mul) {
    map_contiguous(n, [&](int64_t i) { o[i] = ap[i] * v; });
  } else if (!scalar_first && op == BinaryOp::Add) {
    map_contiguous(n, [&](int64_t i) { o[i] = ap[i] + v; });
  } else if (scalar_first) {
    map_contiguous(n, [&](int64_t i) { o[i] = binary_f(op, v, ap[i]); });
  } else {
    map_contiguous(n, [&](int64_t i) { o[i] = binary_f(op, ap[i], v); });
  }
}

}  // namespace cpu
}  // namespace ts
