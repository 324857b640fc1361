#include "allocator.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "device_info.h"
#include "error.h"

namespace ts {
namespace {
std::atomic<int64_t> g_storages{0};
std::atomic<int64_t> g_cpu{0};
std::atomic<int64_t> g_cuda{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_host_reads{0};
std::atomic<int64_t> g_host_read_bytes{0};
// Per-device live bytes and peaks (host devices cpu:0.., CUDA devices cuda:0..).
struct DeviceCounter {
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> peak{0};
  std::atomic<bool> used{false};
};
DeviceCounter g_host_dev[kMaxHostDevices];
DeviceCounter g_cuda_dev[kMaxCudaDevices];
DeviceCounter& counter(Device d) {
  return d.is_cpu() ? g_host_dev[d.index] : g_cuda_dev[d.index];
}
void device_add(Device d, int64_t n) {
  DeviceCounter& c = counter(d);
  c.used = true;
  int64_t now = (c.bytes += n);
  int64_t p = c.peak.load();
  while (now > p && !c.peak.compare_exchange_weak(p, now)) {
  }
}
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

// A cache of freed large CPU blocks. A training step allocates and frees the same
// activation sizes over and over; from glibc those are fresh pages each time (mmap, or
// heap memory trimmed back to the system on free): a page fault and a zeroed 4 KiB page
// on first touch, which costs more than the kernels of a small step (the figures are in
// benchmarks/RESULTS.md, "Kernel notes"). So the cache holds a whole step's working
// set, not a few blocks. Blocks of at least kCacheMin bytes (malloc sizes, rounded up
// to a page below 1 MiB and to kCacheGrain above) are kept on free and handed out again for
// the same rounded size, most recently freed first; when the cache would exceed its
// limit the least recently freed blocks go back to malloc. The limit is
// TESSERA_CPU_CACHE_MB (0 turns the cache off) or, by default, an eighth of the
// machine's memory capped at 2 GiB. Not used in guard mode.
// 64 KiB, not 1 MiB: the demo VAE step's blocks between the two (padded windows and
// packed weights of its small layers, 16x16 activations) faulted in 1,800 fresh pages a
// step (7 MiB; Xeon, 2 threads) from heap memory glibc had trimmed; 190 now, the step 3%
// faster (benchmarks/RESULTS.md).
constexpr size_t kCacheMin = size_t{64} << 10;
constexpr size_t kCacheCoarse = size_t{1} << 20;      // from here on, sizes round to kCacheGrain
constexpr size_t kCacheGrain = size_t{64} << 10;
constexpr size_t kCacheFineGrain = size_t{4} << 10;   // below kCacheCoarse: one page
struct CachedBlock {
  char* base;
  size_t bytes;
};
using BlockList = std::list<CachedBlock>;  // least recently freed first
// Never destroyed: storages can still be freed during static destruction at exit (the
// addon's tensor table), after a static cache object would already be gone.
struct Cache {
  std::mutex mutex;
  BlockList blocks;
  std::unordered_map<size_t, std::vector<BlockList::iterator>> by_size;  // oldest first per size
  size_t bytes = 0;
  size_t limit = 0;
};

size_t default_cache_limit() {
  if (const char* env = std::getenv("TESSERA_CPU_CACHE_MB")) {
    char* end = nullptr;
    unsigned long long mb = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') return static_cast<size_t>(mb) << 20;
    // A malformed value must not silently change behaviour: fall back to no cache,
    // which is always correct, and say so once.
    std::fprintf(stderr, "tessera: TESSERA_CPU_CACHE_MB='%s' is not a whole number of MiB; the CPU block cache is off\n", env);
    return 0;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t eighth = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) / 8 : size_t{256} << 20;
  return std::min(eighth, size_t{2048} << 20);
}

Cache& cache() {
  static Cache* c = [] {
    Cache* k = new Cache();
    k->limit = default_cache_limit();
    return k;
  }();
  return *c;
}

// Unlinks the block at it (the caller holds the lock); returns its base.
char* cache_unlink(Cache& c, BlockList::iterator it) {
  auto& same = c.by_size[it->bytes];
  for (size_t i = 0; i < same.size(); ++i)
    if (same[i] == it) {
      same.erase(same.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  if (same.empty()) c.by_size.erase(it->bytes);
  char* base = it->base;
  c.bytes -= it->bytes;
  c.blocks.erase(it);
  return base;
}

char* cache_take(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto found = c.by_size.find(bytes);
  if (found == c.by_size.end()) return nullptr;
  return cache_unlink(c, found->second.back());  // the most recently freed: warmest in cache
}

// Keeps base (a malloc block of `bytes`), or frees it when it does not fit the cache.
void cache_put(char* base, size_t bytes) {
  std::vector<char*> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (bytes < kCacheMin || bytes > c.limit) {
      drop.push_back(base);
    } else {
      while (!c.blocks.empty() && c.bytes + bytes > c.limit) drop.push_back(cache_unlink(c, c.blocks.begin()));
      c.blocks.push_back({base, bytes});
      c.by_size[bytes].push_back(std::prev(c.blocks.end()));
      c.bytes += bytes;
    }
  }
  for (char* d : drop) std::free(d);
}

// malloc size of a plain (unguarded) block holding n user bytes.
size_t plain_block_bytes(size_t n) {
  size_t rounded = (n + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment + kCpuAlignment + 16;
  if (rounded < kCacheMin) return rounded;
  const size_t grain = rounded < kCacheCoarse ? kCacheFineGrain : kCacheGrain;
  return (rounded + grain - 1) / grain * grain;
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
    if (dev.index != 0) check_host_device(dev, op);
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
      if (!base) {
        // Blocks of other sizes may be what stands between us and the memory: free them
        // and try once more before failing.
        cpu_empty_cache();
        base = static_cast<char*>(std::malloc(block));
      }
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
    p = g_cuda_alloc.alloc(n, dev.index, op);
    if (!p) fail(op, "out of memory on ", dev.str(), " allocating ", nbytes, " bytes");
    g_cuda += static_cast<int64_t>(nbytes);
  }
  device_add(dev, static_cast<int64_t>(nbytes));
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
  counter(dev).bytes -= static_cast<int64_t>(nbytes);
  --g_storages;
}

MemoryStats memory_stats() {
  MemoryStats s;
  s.storages = g_storages.load();
  s.cpu_bytes = g_cpu.load();
  s.cuda_bytes = g_cuda.load();
  s.peak_bytes = g_peak.load();
  s.host_reads = g_host_reads.load();
  s.host_read_bytes = g_host_read_bytes.load();
  s.cuda_reserved = g_cuda_alloc.reserved ? g_cuda_alloc.reserved() : 0;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    s.cpu_cached = static_cast<int64_t>(c.bytes);
  }
  return s;
}

void cpu_empty_cache() {
  std::vector<char*> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (CachedBlock& b : c.blocks) drop.push_back(b.base);
    c.blocks.clear();
    c.by_size.clear();
    c.bytes = 0;
  }
  for (char* d : drop) std::free(d);
}

size_t cpu_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.limit;
}

void set_cpu_cache_limit(size_t bytes) {
  std::vector<char*> drop;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.limit = bytes;
    while (!c.blocks.empty() && c.bytes > c.limit) drop.push_back(cache_unlink(c, c.blocks.begin()));
  }
  for (char* d : drop) std::free(d);
}

void set_guard_mode(bool on) { g_guard = on; }
int64_t guard_violations() { return g_violations.load(); }

void reset_peak_memory() {
  g_peak = g_cpu.load() + g_cuda.load();
  for (DeviceCounter& c : g_host_dev) c.peak = c.bytes.load();
  for (DeviceCounter& c : g_cuda_dev) c.peak = c.bytes.load();
}

std::vector<DeviceMemory> device_memory() {
  std::vector<DeviceMemory> out;
  for (int i = 0; i < host_device_count(); ++i)
    out.push_back({Device{DeviceType::CPU, i}, g_host_dev[i].bytes.load(), g_host_dev[i].peak.load()});
  for (int i = 0; i < kMaxCudaDevices; ++i)
    if (g_cuda_dev[i].used) out.push_back({Device{DeviceType::CUDA, i}, g_cuda_dev[i].bytes.load(), g_cuda_dev[i].peak.load()});
  return out;
}

void count_host_read(size_t nbytes) {
  ++g_host_reads;
  g_host_read_bytes += static_cast<int64_t>(nbytes);
}

}  // namespace ts
