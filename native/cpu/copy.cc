// tessera CPU: strided copies with dtype conversion, fill, arange, random draws.
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

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
  parallel_for(0, outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t rem = o, doff = 0, soff = 0;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t idx = rem % shape[d];
        rem /= shape[d];
        doff += idx * sds[d];
        soff += idx * sss[d];
      }
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

}  // namespace cpu
}  // namespace ts
