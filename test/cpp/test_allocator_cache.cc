// The CPU allocator's cache of large freed blocks: a freed block of >= 1 MiB comes back
// for the next allocation of the same size (no fresh mmap and page faults), the memory
// accounting still counts live tensors only, and guard mode bypasses the cache.
#include "check.h"
#include "core/allocator.h"

using namespace ts;

TEST(large_blocks_are_reused_for_the_same_size) {
  const Device cpu{};
  const size_t big = size_t{3} << 20;
  const int64_t before = memory_stats().cpu_bytes;
  void* a = raw_alloc(big, cpu, "test");
  EXPECT(memory_stats().cpu_bytes == before + static_cast<int64_t>(big));
  raw_free(a, big, cpu);
  EXPECT(memory_stats().cpu_bytes == before);
  void* b = raw_alloc(big, cpu, "test");
  EXPECT(b == a);  // the cached block, same alignment
  EXPECT(reinterpret_cast<uintptr_t>(b) % kCpuAlignment == 0);
  void* c = raw_alloc(big, cpu, "test");  // the cache held one block: a fresh one
  EXPECT(c != b);
  raw_free(b, big, cpu);
  raw_free(c, big, cpu);
  EXPECT(memory_stats().cpu_bytes == before);
}

TEST(guard_mode_bypasses_the_cache_and_still_catches_overruns) {
  const Device cpu{};
  const size_t big = size_t{2} << 20;
  set_guard_mode(true);
  const int64_t v0 = guard_violations();
  char* p = static_cast<char*>(raw_alloc(big, cpu, "test"));
  p[big] = 1;  // one byte past the end
  raw_free(p, big, cpu);
  EXPECT(guard_violations() == v0 + 1);
  set_guard_mode(false);
}

TEST_MAIN
