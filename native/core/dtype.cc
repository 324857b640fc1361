#include "dtype.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "error.h"

namespace ts {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

bool dtype_from_name(const std::string& n, DType* out) {
  static const DType all[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                              DType::Int32,   DType::Int64,   DType::UInt8,    DType::Bool};
  for (DType d : all)
    if (n == dtype_name(d)) { *out = d; return true; }
  return false;
}

std::string Device::str() const {
  if (type == DeviceType::CPU) return index == 0 ? std::string("cpu") : "cpu:" + std::to_string(index);
  return "cuda:" + std::to_string(index);
}

namespace {
bool parse_index(const std::string& n, size_t from, int limit, int* idx) {
  if (n.size() <= from) return false;
  int v = 0;
  for (size_t i = from; i < n.size(); ++i) {
    if (n[i] < '0' || n[i] > '9') return false;
    v = v * 10 + (n[i] - '0');
    if (v >= limit) return false;
  }
  *idx = v;
  return true;
}
}  // namespace

bool device_from_name(const std::string& n, Device* out) {
  int idx = 0;
  if (n == "cpu") { *out = Device{DeviceType::CPU, 0}; return true; }
  if (n == "cuda") { *out = Device{DeviceType::CUDA, 0}; return true; }
  if (n.rfind("cpu:", 0) == 0 && parse_index(n, 4, kMaxHostDevices, &idx)) {
    *out = Device{DeviceType::CPU, idx};
    return true;
  }
  if (n.rfind("cuda:", 0) == 0 && parse_index(n, 5, kMaxCudaDevices, &idx)) {
    *out = Device{DeviceType::CUDA, idx};
    return true;
  }
  return false;
}

int host_device_count() {
  static const int n = [] {
    const char* env = std::getenv("TESSERA_HOST_DEVICES");
    if (!env || !*env) return 1;
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 1 || v > kMaxHostDevices) {
      // A malformed value must not silently expose devices: say so once and expose none.
      std::fprintf(stderr, "tessera: TESSERA_HOST_DEVICES='%s' is not a count from 1 to %d; only cpu is available\n", env,
                   kMaxHostDevices);
      return 1;
    }
    return static_cast<int>(v);
  }();
  return n;
}

void check_host_device(Device dev, const char* op) {
  if (dev.type != DeviceType::CPU || dev.index < host_device_count()) return;
  int n = host_device_count();
  if (n == 1)
    fail(op, "device ", dev.str(), " is not available (simulated host devices are off; TESSERA_HOST_DEVICES=N exposes cpu:0 to cpu:N-1)");
  fail(op, "device ", dev.str(), " is not available (TESSERA_HOST_DEVICES=", n, " exposes cpu:0 to cpu:", n - 1, ")");
}

// IEEE half conversions, round to nearest even, with subnormals, inf and NaN.
uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal half (or zero)
    // value = absx as float; half subnormal unit = 2^-24
    float a;
    std::memcpy(&a, &absx, 4);
    float scaled = a * 16777216.0f;  // / 2^-24
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t exp = ((absx >> 23) - 127 + 15);
  uint32_t mant = absx & 0x7fffffu;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h += 1;  // may carry into exponent: fine
  return static_cast<uint16_t>(sign | h);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {
      float v = static_cast<float>(mant) / 16777216.0f;
      uint32_t vb;
      std::memcpy(&vb, &v, 4);
      out = sign | vb;
    }
  } else if (exp == 31) {
    out = sign | 0x7f800000u | (mant << 13);
  } else {
    out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

}  // namespace ts
