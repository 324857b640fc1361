#include "allocator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

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
// Every CPU block starts with a 64-byte header line. Plain blocks:
// [header(kPlainMagic) | data]; guarded blocks: [header(kGuardMagic) | canary 64 |
// data | canary >= 64]. raw_free tells them apart by the word right before the
// data, so switching guard mode while tensors live is safe.
constexpr uint64_t kGuardMagic = 0x7e55e7a6a4d00001ULL;
constexpr uint64_t kPlainMagic = 0x7e55e7a91a100001ULL;

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
    size_t rounded = (n + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (g_guard) {
      // header line (magic + size) + front canary + data + back canary
      char* base = static_cast<char*>(std::aligned_alloc(kCpuAlignment, rounded + 2 * kGuard + kCpuAlignment));
      if (!base) fail(op, "out of CPU memory allocating ", nbytes, " bytes");
      std::memcpy(base, &kGuardMagic, 8);
      std::memcpy(base + 8, &nbytes, sizeof(size_t));
      std::memset(base + kCpuAlignment, kCanary, kGuard);
      std::memset(base + kCpuAlignment + kGuard + nbytes, kCanary, kGuard + (rounded - nbytes));
      p = base + kCpuAlignment + kGuard;
    } else {
      char* base = static_cast<char*>(std::aligned_alloc(kCpuAlignment, rounded + kCpuAlignment));
      if (!base) fail(op, "out of CPU memory allocating ", nbytes, " bytes");
      std::memcpy(base, &kPlainMagic, 8);
      p = base + kCpuAlignment;
    }
    g_cpu += static_cast<int64_t>(nbytes);
  } else {
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
    uint64_t head;
    std::memcpy(&head, user - kCpuAlignment, 8);
    if (head == kPlainMagic) {
      std::free(user - kCpuAlignment);
    } else {
      // guarded: [header 64 | canary 64 | data | canary]
      char* base = user - kGuard - kCpuAlignment;
      bool bad = false;
      for (size_t i = 0; i < kGuard; ++i) bad |= static_cast<unsigned char>(user[-1 - static_cast<long>(i)]) != kCanary;
      for (size_t i = 0; i < kGuard; ++i) bad |= static_cast<unsigned char>(user[nbytes + i]) != kCanary;
      if (bad) ++g_violations;
      std::free(base);
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
