#include <map>
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/device_info.h"
#include "runtime.cuh"

namespace ts {

namespace cuda {

namespace {
// Clears the error state; returns whether e is sticky: a fault of a kernel (an illegal
// or misaligned address, a trap, an assert) leaves the context unusable, and every later
// call in the process fails with it (driver_types.h: "the process must be terminated
// and relaunched"). Others (a bad launch configuration, out of memory) are cleared, and
// the process goes on.
bool clear_error(cudaError_t e) {
  cudaGetLastError();
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}
const char* kStickyNote =
    " (sticky: a kernel queued earlier faulted, possibly in another op, and every later CUDA call in this process "
    "fails; rerun with CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer to find the kernel)";
}  // namespace

void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    bool sticky = clear_error(e);
    fail(op, "CUDA error ", cudaGetErrorName(e), ": ", cudaGetErrorString(e), sticky ? kStickyNote : "");
  }
}

namespace {
std::mutex g_mu;
std::map<int, cudaStream_t> g_streams;
// device -> size class -> free blocks
std::map<int, std::map<size_t, std::vector<void*>>> g_free;
int64_t g_reserved = 0;

size_t size_class(size_t n) {
  // 512-byte granularity below 1 MiB, then 2 MiB granularity.
  if (n < (1u << 20)) return (n + 511) / 512 * 512;
  return (n + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}
}  // namespace

void set_device(int device) { check(cudaSetDevice(device), "cuda"); }

cudaStream_t stream(int device) {
  std::lock_guard<std::mutex> lk(g_mu);
  auto it = g_streams.find(device);
  if (it != g_streams.end()) return it->second;
  set_device(device);
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cuda");
  g_streams[device] = s;
  return s;
}

void synchronize(int device) { check(cudaStreamSynchronize(stream(device)), "cuda"); }

void* cached_alloc(size_t nbytes, int device, const char* op) {
  size_t sc = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto& lists = g_free[device];
    auto it = lists.find(sc);
    if (it != lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      return p;
    }
  }
  check(cudaSetDevice(device), op);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, sc);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    empty_cache();  // the cached free blocks of every device back to the driver, then once more
    check(cudaSetDevice(device), op);
    e = cudaMalloc(&p, sc);
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;  // the caller reports out of memory, naming its op
  }
  if (e != cudaSuccess) {
    // Not a lack of memory: most often a sticky error left by an earlier kernel, which
    // an "out of memory" message would hide.
    bool sticky = clear_error(e);
    fail(op, "allocating ", sc, " bytes on cuda:", device, " failed with CUDA error ", cudaGetErrorName(e), ": ",
         cudaGetErrorString(e), sticky ? kStickyNote : "");
  }
  std::lock_guard<std::mutex> lk(g_mu);
  g_reserved += static_cast<int64_t>(sc);
  return p;
}

void cached_free(void* p, size_t nbytes, int device) {
  // Blocks are reused in stream order: the single per-device stream serializes
  // every kernel that could still read p before any later user of it.
  std::lock_guard<std::mutex> lk(g_mu);
  g_free[device][size_class(nbytes)].push_back(p);
}

int64_t reserved_bytes() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_reserved;
}

void empty_cache() {
  std::lock_guard<std::mutex> lk(g_mu);
  // Frees on each device in turn, then makes the caller's device current again.
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) {
    cudaGetLastError();
    current = -1;
  }
  for (auto& [dev, lists] : g_free) {
    cudaSetDevice(dev);
    cudaDeviceSynchronize();
    for (auto& [sc, blocks] : lists) {
      for (void* p : blocks) {
        cudaFree(p);
        g_reserved -= static_cast<int64_t>(sc);
      }
      blocks.clear();
    }
  }
  if (current >= 0) cudaSetDevice(current);
}

}  // namespace cuda

bool cuda_query_devices(std::string* why, std::vector<CudaDeviceInfo>* devices) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = std::string("no CUDA device answered: ") + cudaGetErrorString(e);
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  if (devices) {
    devices->clear();
    for (int i = 0; i < n; ++i) {
      cudaDeviceProp p;
      if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
      devices->push_back(CudaDeviceInfo{i, p.name, p.totalGlobalMem, p.major, p.minor});
    }
  }
  return true;
}

}  // namespace ts
