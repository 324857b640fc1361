#include "device_info.h"

#include <mutex>

namespace ts {
#ifdef TESSERA_WITH_CUDA
namespace cuda {
void empty_cache();  // cuda/runtime.cu
}
void cuda_empty_cache() {
  cuda_backend_init();
  cuda::empty_cache();
}
bool cuda_query_devices(std::string* why, std::vector<CudaDeviceInfo>* devices);  // cuda/runtime.cu
bool cuda_available(std::string* why, std::vector<CudaDeviceInfo>* devices) {
  cuda_backend_init();
  return cuda_query_devices(why, devices);
}
bool cuda_device_usable(int index, std::string* why) {
  static std::once_flag once;
  static bool ok = false;
  static int count = 0;
  static std::string reason;
  std::call_once(once, [] {
    std::vector<CudaDeviceInfo> devs;
    ok = cuda_available(&reason, &devs);
    count = static_cast<int>(devs.size());
  });
  if (!ok) {
    if (why) *why = reason;
    return false;
  }
  if (index < 0 || index >= count) {
    if (why) *why = "this machine has " + std::to_string(count) + " CUDA device(s)";
    return false;
  }
  return true;
}
#else
void cuda_empty_cache() {}
bool cuda_available(std::string* why, std::vector<CudaDeviceInfo>* devices) {
  if (why) *why = "tessera was built without the CUDA backend (needs nvcc and cuBLAS at build time)";
  if (devices) devices->clear();
  return false;
}
#endif
}  // namespace ts
