#include "allocator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "device_info.h"
#include "error.h"

namespace ts {
namespace {
std::atomic<int64_t> g_storages{0};
std::atomic<int64_t> g_cpu{0};
std::atomic<int64_t> g_cuda{0};
std::atomic<int64_t> g_peak{0};
DeviceAllocator g_cuda_alloc;
std::atomic<bool> g_guard{false};
std::atomic<int64_t> g_violations{0};
constexpr size_t kGuard = 64;
constexpr unsigned char kCanary = 0xA5;
// CPU block layout: [.. | base pointer, magic | data (64-aligned)] for plain blocks,
// [.. | base pointer, kGuardMagic | canary 64 | data | canary >= 64] in guard mode.
// raw_free tells them apart by the word right before the data (the plain magic or
// canary bytes), so switching guard mode while tensors live is safe.
constexpr uint64_t kGuardMagic = 0x7e55e7a6a4d00001ULL;
constexpr uint64_t kPlainMagic = 0x7e55e7a91a100001ULL;

// A small cache of freed large CPU blocks. A training step allocates and frees the same
// activation sizes over and over; from glibc those are fresh mmaps each time (page
// faults on first touch, munmap on free: a tenth of a DiT block's time on 2 cores).
// Blocks of at least kCacheMin bytes (malloc sizes, rounded up to kCacheGrain) are
// kept on free and handed out again for the same rounded size; the cache holds at most
// kCacheMaxBytes and kCacheMaxBlocks (oldest dropped first). Not used in guard mode.
constexpr size_t kCacheMin = size_t{1} << 20;
constexpr size_t kCacheGrain = size_t{64} << 10;
constexpr size_t kCacheMaxBytes = size_t{256} << 20;
constexpr size_t kCacheMaxBlocks = 32;
struct CachedBlock {
  char* base;
  size_t bytes;
};
// Never destroyed: storages can still be freed during static destruction at exit (the
// addon's tensor table), after a static cache object would already be gone.
struct Cache {
  std::mutex mutex;
  std::vector<CachedBlock> blocks;  // oldest first
  size_t bytes = 0;
};
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

char* cache_take(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (size_t i = c.blocks.size(); i-- > 0;)
    if (c.blocks[i].bytes == bytes) {
      char* base = c.blocks[i].base;
      c.blocks.erase(c.blocks.begin() + static_cast<std::ptrdiff_t>(i));
      c.bytes -= bytes;
      return base;
    }
  return nullptr;
}

// Keeps base (a malloc block of `bytes`), or frees it when it does not fit the cache.
void cache_put(char* base, size_t bytes) {
  if (bytes < kCacheMin || bytes > kCacheMaxBytes) return std::free(base);
  std::vector<char*> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    while (!c.blocks.empty() && (c.bytes + bytes > kCacheMaxBytes || c.blocks.size() >= kCacheMaxBlocks)) {
      drop.push_back(c.blocks.front().base);
      c.bytes -= c.blocks.front().bytes;
      c.blocks.erase(c.blocks.begin());
    }
    c.blocks.push_back({base, bytes});
    c.bytes += bytes;
  }
  for (char* d : drop) std::free(d);
}

// malloc size of a plain (unguarded) block holding n user bytes.
size_t plain_block_bytes(size_t n) {
  size_t rounded = (n + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment + kCpuAlignment + 16;
  return rounded >= kCacheMin ? (rounded + kCacheGrain - 1) / kCacheGrain * kCacheGrain : rounded;
}

void bump_peak() {
  int64_t now = g_cpu.load() + g_cuda.load();
  int64_t p = g_peak.load();
  while (now > p && !g_peak.compare_exchange_weak(p, now)) {
  }
}
}  // namespace

void set_device_allocator(DeviceType type, const DeviceAllocator& a) {
  if (type == DeviceType::CUDA) g_cuda_alloc = a;
}

void* raw_alloc(size_t nbytes, Device dev, const char* op) {
  size_t n = nbytes == 0 ? kCpuAlignment : nbytes;
  void* p = nullptr;
  if (dev.is_cpu()) {
    // Plain malloc plus manual alignment, not aligned_alloc: glibc's memalign cannot
    // reuse a freed block of the same size when small allocations sit between them
    // (as N-API handles do), which grew RSS by one tensor per create/free cycle.
    size_t rounded = (n + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    bool guard = g_guard;
    size_t front = guard ? kGuard : 0, back = guard ? kGuard : 0;
    char* base = nullptr;
    if (guard) {
      base = static_cast<char*>(std::malloc(rounded + front + back + kCpuAlignment + 16));
    } else {
      const size_t block = plain_block_bytes(n);
      base = block >= kCacheMin ? cache_take(block) : nullptr;
      if (!base) base = static_cast<char*>(std::malloc(block));
    }
    if (!base) fail(op, "out of CPU memory allocating ", nbytes, " bytes");
    uintptr_t first = reinterpret_cast<uintptr_t>(base) + 16 + front;
    char* user = reinterpret_cast<char*>((first + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment);
    char* header = user - front - 16;  // [base pointer | magic]
    uint64_t magic = guard ? kGuardMagic : kPlainMagic;
    std::memcpy(header, &base, sizeof(char*));
    std::memcpy(header + 8, &magic, 8);
    if (guard) {
      std::memset(user - kGuard, kCanary, kGuard);
      std::memset(user + nbytes, kCanary, kGuard + (rounded - nbytes));
    }
    p = user;
    g_cpu += static_cast<int64_t>(nbytes);
  } else {
#ifdef TESSERA_WITH_CUDA
    if (!g_cuda_alloc.alloc) cuda_backend_init();
    std::string why;
    if (!cuda_device_usable(dev.index, &why)) fail(op, "device ", dev.str(), " is not available (", why, ")");
#endif
    if (!g_cuda_alloc.alloc)
      fail(op, "device ", dev.str(), " is not available (tessera was built without the CUDA backend or no device answered)");
    p = g_cuda_alloc.alloc(n, dev.index);
    if (!p) fail(op, "out of memory on ", dev.str(), " allocating ", nbytes, " bytes");
    g_cuda += static_cast<int64_t>(nbytes);
  }
  ++g_storages;
  bump_peak();
  return p;
}

void raw_free(void* p, size_t nbytes, Device dev) noexcept {
  if (!p) return;
  if (dev.is_cpu()) {
    char* user = static_cast<char*>(p);
    uint64_t magic;
    std::memcpy(&magic, user - 8, 8);
    bool guarded = magic != kPlainMagic;  // guarded blocks have canary bytes here
    char* header = user - (guarded ? kGuard : 0) - 16;
    char* base;
    std::memcpy(&base, header, sizeof(char*));
    if (guarded) {
      bool bad = false;
      for (size_t i = 1; i <= kGuard; ++i) bad |= static_cast<unsigned char>(user[-static_cast<long>(i)]) != kCanary;
      for (size_t i = 0; i < kGuard; ++i) bad |= static_cast<unsigned char>(user[nbytes + i]) != kCanary;
      if (bad) ++g_violations;
      std::free(base);
    } else {
      cache_put(base, plain_block_bytes(nbytes == 0 ? kCpuAlignment : nbytes));
    }
    g_cpu -= static_cast<int64_t>(nbytes);
  } else {
    if (g_cuda_alloc.free) g_cuda_alloc.free(p, nbytes == 0 ? kCpuAlignment : nbytes, dev.index);
    g_cuda -= static_cast<int64_t>(nbytes);
  }
  --g_storages;
}

MemoryStats memory_stats() {
  MemoryStats s;
  s.storages = g_storages.load();
  s.cpu_bytes = g_cpu.load();
  s.cuda_bytes = g_cuda.load();
  s.peak_bytes = g_peak.load();
  s.cuda_reserved = g_cuda_alloc.reserved ? g_cuda_alloc.reserved() : 0;
  return s;
}

void set_guard_mode(bool on) { g_guard = on; }
int64_t guard_violations() { return g_violations.load(); }

void reset_peak_memory() { g_peak = g_cpu.load() + g_cuda.load(); }

}  // namespace ts
