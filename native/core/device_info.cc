#include "device_info.h"

namespace ts {
#ifdef TESSERA_WITH_CUDA
bool cuda_query_devices(std::string* why, std::vector<CudaDeviceInfo>* devices);  // cuda/runtime.cu
bool cuda_available(std::string* why, std::vector<CudaDeviceInfo>* devices) { return cuda_query_devices(why, devices); }
#else
bool cuda_available(std::string* why, std::vector<CudaDeviceInfo>* devices) {
  if (why) *why = "tessera was built without the CUDA backend (needs nvcc and cuBLAS at build time)";
  if (devices) devices->clear();
  return false;
}
#endif
}  // namespace ts
