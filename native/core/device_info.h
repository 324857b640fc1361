// tessera core: what devices answer at run time.
#pragma once
#include <string>
#include <vector>

namespace ts {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  size_t total_memory = 0;
  int major = 0, minor = 0;
};

// True when the CUDA backend is linked and at least one device answers. Otherwise
// *why says why not (not built with it, no driver, no device).
bool cuda_available(std::string* why, std::vector<CudaDeviceInfo>* devices);

}  // namespace ts
