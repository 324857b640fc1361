// tessera CPU backend: the device a CPU kernel is running for. Host memory serves the
// host (cpu) and the simulated host devices cpu:N alike, but a kernel's workspace must
// be counted on the device it works for, so that memory() shows no bytes on cpu while a
// model runs on cpu:1. The entry points that allocate workspace (conv3d, attention) set
// it for the duration of the call; kernels run one at a time from the caller's thread,
// so one process-wide value suffices (OpenMP workers read it, never write it).
#pragma once
#include <atomic>

#include "../core/dtype.h"

namespace ts {
namespace cpu {

inline std::atomic<int>& kernel_device_index() {
  static std::atomic<int> index{0};
  return index;
}
inline Device kernel_device() { return Device{DeviceType::CPU, kernel_device_index().load(std::memory_order_relaxed)}; }

// Sets the kernel device for a scope (restores the previous one on exit).
class KernelDeviceScope {
 public:
  explicit KernelDeviceScope(Device d) : prev_(kernel_device_index().exchange(d.is_cpu() ? d.index : 0)) {}
  ~KernelDeviceScope() { kernel_device_index().store(prev_); }
  KernelDeviceScope(const KernelDeviceScope&) = delete;
  KernelDeviceScope& operator=(const KernelDeviceScope&) = delete;

 private:
  int prev_;
};

}  // namespace cpu
}  // namespace ts
