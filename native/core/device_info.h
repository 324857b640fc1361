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

// Gives the CUDA caching allocator's free blocks back to the driver (no-op without CUDA).
void cuda_empty_cache();

#ifdef TESSERA_WITH_CUDA
// Registers the CUDA backend and its caching allocator (cuda/backend.cu); idempotent.
// The core calls it before the first CUDA allocation, dispatch or device query: the
// backend lives in a static library, and this reference is what links it in.
void cuda_backend_init();
// Whether CUDA device `index` answers (queried once per process); *why says why not.
bool cuda_device_usable(int index, std::string* why);
#endif

}  // namespace ts
