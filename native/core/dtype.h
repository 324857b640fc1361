// tessera core: element types and devices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ts {

enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, UInt8, Bool };

size_t dtype_size(DType d);
const char* dtype_name(DType d);  // "float32", "bfloat16", ...
bool dtype_from_name(const std::string& name, DType* out);
inline bool is_floating(DType d) {
  return d == DType::Float32 || d == DType::Float64 || d == DType::BFloat16 || d == DType::Float16;
}

enum class DeviceType : uint8_t { CPU, CUDA };

// A device: the host ('cpu' = cpu:0), a simulated host device cpu:N (N >= 1, only when
// TESSERA_HOST_DEVICES > N: same CPU kernels and host memory, a separate identity, so
// mixing it with another device throws exactly as CPU with CUDA does), or cuda:N.
// is_cpu() is true for every host-memory device (the CPU backend runs it); is_host()
// only for cpu:0, the device JS reads land on.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_host() const { return type == DeviceType::CPU && index == 0; }
  std::string str() const;  // "cpu", "cpu:1", "cuda:0"
};
// Parses "cpu", "cpu:N", "cuda", "cuda:N" (syntax only; see check_device_available).
bool device_from_name(const std::string& name, Device* out);
// Number of host devices cpu:0..N-1: TESSERA_HOST_DEVICES (1 to 64), default 1.
int host_device_count();
// Throws naming op when dev is a simulated host device this process does not expose.
void check_host_device(Device dev, const char* op);
constexpr int kMaxHostDevices = 64;
constexpr int kMaxCudaDevices = 64;

// bfloat16 / float16 <-> float32 (round to nearest even; NaN preserved).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace ts
