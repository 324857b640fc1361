// tessera CUDA backend: copies (strided, dtype casts), fills, arange, Philox draws and
// elementwise float32 ops. Strided operands are walked by collapsed index descriptors
// (dims of size 1 dropped, dims contiguous in every operand merged), so the common
// cases (contiguous, one broadcast dim, a transposed view) cost one or two divisions
// per element. All kernels are memory bound; grid-stride loops, one element per step.
// Numerics match the CPU kernels operation for operation (no fast-math): the op table
// compares them at float32 rounding bounds.
#include <cmath>
#include <cstring>
#include <limits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"
#include "core/rng.h"
#include "elementwise.cuh"

namespace ts {
namespace cuda {

// ---- descriptors ------------------------------------------------------------------------

StridedDesc describe(const Tensor& t, const char* op) {
  StridedDesc d{};
  int nd = 0;
  for (int64_t i = 0; i < t.dim(); ++i) {
    int64_t s = t.shape()[i], st = t.strides()[i];
    if (s == 1) continue;
    if (nd > 0 && d.stride[nd - 1] == st * s) {
      d.shape[nd - 1] *= s;
      d.stride[nd - 1] = st;
      continue;
    }
    if (nd == kMaxDims) fail(op, "CUDA kernels take at most ", kMaxDims, " dimensions, got ", t.dim());
    d.shape[nd] = s;
    d.stride[nd] = st;
    ++nd;
  }
  if (nd == 0) {
    d.shape[0] = 1;
    d.stride[0] = 1;
    nd = 1;
  }
  d.nd = nd;
  return d;
}

PairDesc describe_pair(const Tensor& a, const Tensor& b, const char* op) {
  PairDesc d{};
  int nd = 0;
  for (int64_t i = 0; i < a.dim(); ++i) {
    int64_t s = a.shape()[i], x = a.strides()[i], y = b.strides()[i];
    if (s == 1) continue;
    if (nd > 0 && d.s1[nd - 1] == x * s && d.s2[nd - 1] == y * s) {
      d.shape[nd - 1] *= s;
      d.s1[nd - 1] = x;
      d.s2[nd - 1] = y;
      continue;
    }
    if (nd == kMaxDims) fail(op, "CUDA kernels take at most ", kMaxDims, " dimensions, got ", a.dim());
    d.shape[nd] = s;
    d.s1[nd] = x;
    d.s2[nd] = y;
    ++nd;
  }
  if (nd == 0) {
    d.shape[0] = 1;
    d.s1[0] = d.s2[0] = 1;
    nd = 1;
  }
  d.nd = nd;
  return d;
}

namespace {

// ---- dtype conversions, mirroring cpu/elementwise.cc's load/store through double ------------

__device__ __forceinline__ uint16_t d_f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
__device__ __forceinline__ float d_bf16_to_f32(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
__device__ __forceinline__ uint16_t d_f32_to_f16(float f) {
  if (f != f) return static_cast<uint16_t>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7e00u);
  return __half_as_ushort(__float2half_rn(f));
}
__device__ __forceinline__ float d_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__device__ __forceinline__ double load_as_double(DType dt, const char* p) {
  switch (dt) {
    case DType::Float32: return *reinterpret_cast<const float*>(p);
    case DType::Float64: return *reinterpret_cast<const double*>(p);
    case DType::BFloat16: return d_bf16_to_f32(*reinterpret_cast<const uint16_t*>(p));
    case DType::Float16: return d_f16_to_f32(*reinterpret_cast<const uint16_t*>(p));
    case DType::Int32: return *reinterpret_cast<const int32_t*>(p);
    case DType::Int64: return static_cast<double>(*reinterpret_cast<const int64_t*>(p));
    case DType::UInt8: return *reinterpret_cast<const uint8_t*>(p);
    case DType::Bool: return *reinterpret_cast<const uint8_t*>(p) ? 1.0 : 0.0;
  }
  return 0;
}

template <typename I>
__device__ __forceinline__ I saturate_int(double v, double lo, double hi, I imin, I imax) {
  if (v != v) return 0;
  if (v <= lo) return imin;
  if (v >= hi) return imax;
  return static_cast<I>(v);
}

__device__ __forceinline__ void store_from_double(DType dt, char* p, double v) {
  switch (dt) {
    case DType::Float32: *reinterpret_cast<float*>(p) = static_cast<float>(v); break;
    case DType::Float64: *reinterpret_cast<double*>(p) = v; break;
    case DType::BFloat16: *reinterpret_cast<uint16_t*>(p) = d_f32_to_bf16(static_cast<float>(v)); break;
    case DType::Float16: *reinterpret_cast<uint16_t*>(p) = d_f32_to_f16(static_cast<float>(v)); break;
    case DType::Int32:
      *reinterpret_cast<int32_t*>(p) =
          saturate_int<int32_t>(v, -2147483648.0, 2147483647.0, INT32_MIN, INT32_MAX);
      break;
    case DType::Int64:
      *reinterpret_cast<int64_t*>(p) =
          saturate_int<int64_t>(v, -9223372036854775808.0, 9223372036854775807.0, INT64_MIN, INT64_MAX);
      break;
    case DType::UInt8: *reinterpret_cast<uint8_t*>(p) = saturate_int<uint8_t>(v, 0.0, 255.0, 0, 255); break;
    case DType::Bool: *reinterpret_cast<uint8_t*>(p) = v != 0 ? 1 : 0; break;
  }
}

// ---- copies -------------------------------------------------------------------------------

template <typename T>
__global__ void k_copy_same(T* __restrict__ dst, const T* __restrict__ src, PairDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t od, os;
    pair_offsets(d, i, &od, &os);
    dst[od] = src[os];
  }
}

// float32 <-> bfloat16 / float16 (the casts mixed precision uses most).
template <int KIND>  // 0: f32->bf16, 1: bf16->f32, 2: f32->f16, 3: f16->f32
__global__ void k_copy_half(void* __restrict__ dst, const void* __restrict__ src, PairDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t od, os;
    pair_offsets(d, i, &od, &os);
    if (KIND == 0) static_cast<uint16_t*>(dst)[od] = d_f32_to_bf16(static_cast<const float*>(src)[os]);
    if (KIND == 1) static_cast<float*>(dst)[od] = d_bf16_to_f32(static_cast<const uint16_t*>(src)[os]);
    if (KIND == 2) static_cast<uint16_t*>(dst)[od] = d_f32_to_f16(static_cast<const float*>(src)[os]);
    if (KIND == 3) static_cast<float*>(dst)[od] = d_f16_to_f32(static_cast<const uint16_t*>(src)[os]);
  }
}

__global__ void k_copy_generic(char* __restrict__ dst, DType dd, int dsz, const char* __restrict__ src, DType sd,
                               int ssz, PairDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t od, os;
    pair_offsets(d, i, &od, &os);
    store_from_double(dd, dst + od * dsz, load_as_double(sd, src + os * ssz));
  }
}

template <typename T>
__global__ void k_fill(T* __restrict__ p, T v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = v;
}

__global__ void k_arange(char* __restrict__ p, DType dt, int sz, double start, double step, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_from_double(dt, p + i * sz, start + step * i);
}

__global__ void k_rand(float* __restrict__ p, uint64_t seed, uint64_t offset, int64_t n, bool normal) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = normal ? philox_normal(seed, offset, static_cast<uint64_t>(i))
                  : philox_uniform(seed, offset, static_cast<uint64_t>(i));
}

// ---- elementwise math (formulas of cpu/elementwise.cc) ------------------------------------
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

__device__ __forceinline__ float unary_f(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0.0f;
    case UnaryOp::Silu: return x / (1.0f + expf(-x));
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + erff(x * kInvSqrt2));
    case UnaryOp::GeluTanh: return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    case UnaryOp::Square: return x * x;
    case UnaryOp::Rsqrt: return 1.0f / sqrtf(x);
    case UnaryOp::Sin: return sinf(x);
    case UnaryOp::Cos: return cosf(x);
  }
  return 0;
}

__device__ __forceinline__ float unary_df(UnaryOp op, float x, float y) {
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
      float s = 1.0f / (1.0f + expf(-x));
      return s * (1.0f + x * (1.0f - s));
    }
    case UnaryOp::Gelu: {
      float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
      float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case UnaryOp::GeluTanh: {
      float inner = kSqrt2OverPi * (x + 0.044715f * x * x * x);
      float t = tanhf(inner);
      float dinner = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
    }
    case UnaryOp::Square: return 2.0f * x;
    case UnaryOp::Rsqrt: return -0.5f * y * y * y;
    case UnaryOp::Sin: return cosf(x);
    case UnaryOp::Cos: return -sinf(x);
  }
  return 0;
}

__device__ __forceinline__ float binary_f(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return powf(a, b);
    case BinaryOp::Maximum: return (a != a || b != b) ? NAN : (a > b ? a : b);
    case BinaryOp::Minimum: return (a != a || b != b) ? NAN : (a < b ? a : b);
    case BinaryOp::Eq: return a == b ? 1.0f : 0.0f;
    case BinaryOp::Gt: return a > b ? 1.0f : 0.0f;
    case BinaryOp::Lt: return a < b ? 1.0f : 0.0f;
  }
  return 0;
}

__global__ void k_unary(UnaryOp op, float* __restrict__ out, const float* __restrict__ x, StridedDesc dx,
                        bool contiguous, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = unary_f(op, x[contiguous ? i : strided_offset(dx, i)]);
}

// dinp, dout, x, y contiguous (y may be null: recomputed).
__global__ void k_unary_backward(UnaryOp op, float* __restrict__ dinp, const float* __restrict__ dout,
                                 const float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float xi = x[i];
    float yi = y ? y[i] : unary_f(op, xi);
    dinp[i] = dout[i] * unary_df(op, xi, yi);
  }
}

// The case of every op that is not hot enough for its own instantiation.
__global__ void k_binary(BinaryOp op, float* __restrict__ out, const float* __restrict__ a,
                         const float* __restrict__ b, PairDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t oa, ob;
    pair_offsets(d, i, &oa, &ob);
    out[i] = binary_f(op, a[oa], b[ob]);
  }
}

// Both inputs contiguous: vectorized by four when n and the pointers allow.
__global__ void k_binary_contig4(BinaryOp op, float4* __restrict__ out, const float4* __restrict__ a,
                                 const float4* __restrict__ b, int64_t n4) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 x = a[i], y = b[i], r;
    r.x = binary_f(op, x.x, y.x);
    r.y = binary_f(op, x.y, y.y);
    r.z = binary_f(op, x.z, y.z);
    r.w = binary_f(op, x.w, y.w);
    out[i] = r;
  }
}

__global__ void k_binary_scalar(BinaryOp op, float* __restrict__ out, const float* __restrict__ a, StridedDesc da,
                                bool contiguous, float v, bool scalar_first, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float x = a[contiguous ? i : strided_offset(da, i)];
    out[i] = scalar_first ? binary_f(op, v, x) : binary_f(op, x, v);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Host mirror of store_from_double for fill values (bytes of one element).
void host_store(DType dt, void* p, double v) {
  auto sat = [](double x, double lo, double hi) { return x != x ? 0.0 : (x <= lo ? lo : (x >= hi ? hi : x)); };
  switch (dt) {
    case DType::Float32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
    case DType::Float64: std::memcpy(p, &v, 8); break;
    case DType::BFloat16: { uint16_t h = f32_to_bf16(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::Float16: { uint16_t h = f32_to_f16(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::Int32: {
      int32_t i = v != v ? 0 : (v <= -2147483648.0 ? INT32_MIN : (v >= 2147483647.0 ? INT32_MAX : static_cast<int32_t>(v)));
      std::memcpy(p, &i, 4);
      break;
    }
    case DType::Int64: {
      int64_t i = v != v ? 0
                         : (v <= -9223372036854775808.0 ? INT64_MIN
                                                        : (v >= 9223372036854775807.0 ? INT64_MAX : static_cast<int64_t>(v)));
      std::memcpy(p, &i, 8);
      break;
    }
    case DType::UInt8: { uint8_t u = static_cast<uint8_t>(sat(v, 0, 255)); std::memcpy(p, &u, 1); break; }
    case DType::Bool: { uint8_t u = v != 0 ? 1 : 0; std::memcpy(p, &u, 1); break; }
  }
}

}  // namespace

void copy(Tensor& dst, const Tensor& src) {
  int64_t n = dst.numel();
  if (n == 0) return;
  cudaStream_t s = prepare(dst);
  DType dd = dst.dtype(), sd = src.dtype();
  if (dd == sd && dst.is_contiguous() && src.is_contiguous()) {
    check(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice, s), "copy");
    return;
  }
  PairDesc d = describe_pair(dst, src, "copy");
  unsigned g = grid_for(n);
  if (dd == sd) {
    switch (dst.itemsize()) {
      case 8: k_copy_same<<<g, kThreads, 0, s>>>(dst.data<uint64_t>(), src.data<uint64_t>(), d, n); break;
      case 4: k_copy_same<<<g, kThreads, 0, s>>>(dst.data<uint32_t>(), src.data<uint32_t>(), d, n); break;
      case 2: k_copy_same<<<g, kThreads, 0, s>>>(dst.data<uint16_t>(), src.data<uint16_t>(), d, n); break;
      default: k_copy_same<<<g, kThreads, 0, s>>>(dst.data<uint8_t>(), src.data<uint8_t>(), d, n); break;
    }
  } else if (sd == DType::Float32 && dd == DType::BFloat16) {
    k_copy_half<0><<<g, kThreads, 0, s>>>(dst.raw(), src.raw(), d, n);
  } else if (sd == DType::BFloat16 && dd == DType::Float32) {
    k_copy_half<1><<<g, kThreads, 0, s>>>(dst.raw(), src.raw(), d, n);
  } else if (sd == DType::Float32 && dd == DType::Float16) {
    k_copy_half<2><<<g, kThreads, 0, s>>>(dst.raw(), src.raw(), d, n);
  } else if (sd == DType::Float16 && dd == DType::Float32) {
    k_copy_half<3><<<g, kThreads, 0, s>>>(dst.raw(), src.raw(), d, n);
  } else {
    k_copy_generic<<<g, kThreads, 0, s>>>(static_cast<char*>(dst.raw()), dd, static_cast<int>(dst.itemsize()),
                                           static_cast<const char*>(src.raw()), sd, static_cast<int>(src.itemsize()),
                                           d, n);
  }
  check_launch("copy");
}

void fill(Tensor& dst, double v) {
  int64_t n = dst.numel();
  if (!n) return;
  if (!dst.is_contiguous()) fail("full", "expected a contiguous destination on cuda");
  cudaStream_t s = prepare(dst);
  unsigned char bytes[8] = {0};
  host_store(dst.dtype(), bytes, v);
  unsigned g = grid_for(n);
  switch (dst.itemsize()) {
    case 8: { uint64_t x; std::memcpy(&x, bytes, 8); k_fill<<<g, kThreads, 0, s>>>(dst.data<uint64_t>(), x, n); break; }
    case 4: { uint32_t x; std::memcpy(&x, bytes, 4); k_fill<<<g, kThreads, 0, s>>>(dst.data<uint32_t>(), x, n); break; }
    case 2: { uint16_t x; std::memcpy(&x, bytes, 2); k_fill<<<g, kThreads, 0, s>>>(dst.data<uint16_t>(), x, n); break; }
    default: k_fill<<<g, kThreads, 0, s>>>(dst.data<uint8_t>(), bytes[0], n); break;
  }
  check_launch("full");
}

void arange(Tensor& dst, double start, double step) {
  int64_t n = dst.numel();
  if (!n) return;
  cudaStream_t s = prepare(dst);
  k_arange<<<grid_for(n), kThreads, 0, s>>>(static_cast<char*>(dst.raw()), dst.dtype(),
                                             static_cast<int>(dst.itemsize()), start, step, n);
  check_launch("arange");
}

void rand(Tensor& dst, uint64_t seed, uint64_t offset, bool normal) {
  int64_t n = dst.numel();
  if (!n) return;
  cudaStream_t s = prepare(dst);
  k_rand<<<grid_for(n), kThreads, 0, s>>>(dst.data<float>(), seed, offset, n, normal);
  check_launch(normal ? "randn" : "rand");
}

void unary(UnaryOp op, Tensor& out, const Tensor& x) {
  int64_t n = out.numel();
  if (!n) return;
  cudaStream_t s = prepare(out);
  bool contig = x.is_contiguous();
  StridedDesc d = contig ? StridedDesc{} : describe(x, unary_name(op));
  k_unary<<<grid_for(n), kThreads, 0, s>>>(op, out.data<float>(), x.data<float>(), d, contig, n);
  check_launch(unary_name(op));
}

void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout_in, const Tensor& x_in, const Tensor& out_in) {
  int64_t n = dinp.numel();
  if (!n) return;
  Tensor dout = dout_in.contiguous(), x = x_in.contiguous();
  Tensor y = out_in.defined() ? out_in.contiguous() : Tensor();
  cudaStream_t s = prepare(dinp);
  k_unary_backward<<<grid_for(n), kThreads, 0, s>>>(op, dinp.data<float>(), dout.data<float>(), x.data<float>(),
                                                    y.defined() ? y.data<float>() : nullptr, n);
  check_launch(unary_name(op));
}

void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) {
  int64_t n = out.numel();
  if (!n) return;
  cudaStream_t s = prepare(out);
  if (a.is_contiguous() && b.is_contiguous() && n % 4 == 0 && aligned16(a.raw()) && aligned16(b.raw()) &&
      aligned16(out.raw())) {
    k_binary_contig4<<<grid_for(n / 4), kThreads, 0, s>>>(op, reinterpret_cast<float4*>(out.raw()),
                                                           reinterpret_cast<const float4*>(a.raw()),
                                                           reinterpret_cast<const float4*>(b.raw()), n / 4);
  } else {
    PairDesc d = describe_pair(a, b, binary_name(op));
    k_binary<<<grid_for(n), kThreads, 0, s>>>(op, out.data<float>(), a.data<float>(), b.data<float>(), d, n);
  }
  check_launch(binary_name(op));
}

void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double sv, bool scalar_first) {
  int64_t n = out.numel();
  if (!n) return;
  cudaStream_t s = prepare(out);
  bool contig = a.is_contiguous();
  StridedDesc d = contig ? StridedDesc{} : describe(a, binary_name(op));
  k_binary_scalar<<<grid_for(n), kThreads, 0, s>>>(op, out.data<float>(), a.data<float>(), d, contig,
                                                   static_cast<float>(sv), scalar_first, n);
  check_launch(binary_name(op));
}

}  // namespace cuda
}  // namespace ts
