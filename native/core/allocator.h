// tessera core: memory. Every byte a tensor owns goes through here, so that
// memory() can report live storages, bytes per device and the peak.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dtype.h"

namespace ts {

constexpr size_t kCpuAlignment = 64;

struct MemoryStats {
  int64_t storages = 0;     // live storages, all devices
  int64_t cpu_bytes = 0;    // bytes held by live CPU storages
  int64_t cuda_bytes = 0;   // bytes held by live CUDA storages (allocated, not reserved)
  int64_t peak_bytes = 0;   // max of cpu_bytes + cuda_bytes since the last reset
  int64_t cuda_reserved = 0;  // bytes the CUDA caching allocator holds from the driver
  int64_t cpu_cached = 0;     // bytes of freed CPU blocks kept for reuse (not live)
  int64_t host_reads = 0;     // device-to-host reads (to_host / copies into cpu from another device)
  int64_t host_read_bytes = 0;
};

// Live bytes and their peak on one device since the last reset_peak_memory().
struct DeviceMemory {
  Device device;
  int64_t bytes = 0;
  int64_t peak = 0;
};
// Every host device this process exposes (cpu:0..) and every CUDA device that has held memory.
std::vector<DeviceMemory> device_memory();
// Counts one device-to-host read of nbytes (the core calls it; tests hold it to a budget).
void count_host_read(size_t nbytes);

// A device allocator (the CUDA backend installs one). alloc returns nullptr on
// out-of-memory; the caller turns that into an error.
struct DeviceAllocator {
  // op names the caller, so an error other than out of memory (a sticky fault of an
  // earlier kernel, say) is reported against the op that met it.
  void* (*alloc)(size_t nbytes, int device_index, const char* op) = nullptr;
  void (*free)(void* ptr, size_t nbytes, int device_index) = nullptr;
  int64_t (*reserved)() = nullptr;
};
void set_device_allocator(DeviceType type, const DeviceAllocator& a);

// Raw allocation with accounting. Throws ts::Error on failure (op names the caller).
// Freed CPU blocks of 64 KiB or more are kept in a bounded cache (TESSERA_CPU_CACHE_MB,
// default an eighth of RAM capped at 2 GiB; least recently freed dropped first) and
// reused for the next allocation of the same size; the statistics count live tensors
// only, the cache apart (cpu_cached).
void* raw_alloc(size_t nbytes, Device dev, const char* op);
void raw_free(void* p, size_t nbytes, Device dev) noexcept;

MemoryStats memory_stats();
// Returns every cached CPU block to malloc.
void cpu_empty_cache();
// The CPU block cache's limit in bytes (0: off); setting it drops blocks over it.
size_t cpu_cache_limit();
void set_cpu_cache_limit(size_t bytes);

// Guard mode (tests): CPU allocations get 64-byte canaries on both sides, checked
// when freed; a damaged canary (an out-of-bounds write) is counted.
void set_guard_mode(bool on);
int64_t guard_violations();
void reset_peak_memory();

}  // namespace ts
