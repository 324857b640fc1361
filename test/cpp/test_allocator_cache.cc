// The CPU allocator's cache of freed blocks: a freed block of >= 64 KiB comes back
// for the next allocation of the same size (no fresh mmap and page faults), the memory
// accounting still counts live tensors only, and guard mode bypasses the cache.
#include <fstream>
#include <string>
#include <vector>

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

TEST(medium_blocks_are_reused_too_and_round_to_a_page) {
  // 64 KiB to 1 MiB: a conv's padded window or packed weights on a small layer, a
  // GroupNorm output at 16x16. glibc trims such heap memory back on free and faults it
  // in again on the next step (1,800 faults a step of the demo VAE before these were kept).
  const Device cpu{};
  cpu_empty_cache();
  const size_t medium = (size_t{200} << 10) + 100;
  void* a = raw_alloc(medium, cpu, "test");
  raw_free(a, medium, cpu);
  const int64_t cached = memory_stats().cpu_cached;
  EXPECT(cached >= static_cast<int64_t>(medium) && cached < static_cast<int64_t>(medium + (size_t{8} << 10)));
  void* b = raw_alloc(medium + 64, cpu, "test");  // same 4 KiB-rounded block size
  EXPECT(b == a);
  EXPECT(memory_stats().cpu_cached == 0);
  raw_free(b, medium + 64, cpu);
  void* small = raw_alloc(size_t{32} << 10, cpu, "test");  // below 64 KiB: malloc's own
  raw_free(small, size_t{32} << 10, cpu);
  EXPECT(memory_stats().cpu_cached == cached);
  cpu_empty_cache();
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

// Minor page faults of this process so far (Linux /proc/self/stat, field 10).
long minor_faults() {
  std::ifstream f("/proc/self/stat");
  std::string line;
  std::getline(f, line);
  size_t close = line.rfind(')');  // the command name may hold spaces
  std::vector<std::string> fields;
  size_t i = close + 2;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    fields.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return std::stol(fields.at(7));  // fields after the name start at field 3
}

TEST(a_working_set_of_many_blocks_is_reused_without_page_faults) {
  // A training step's activations: 96 blocks of 2-8 MiB (480 MiB), allocated, written,
  // freed, again. The old cache (32 blocks) faulted most of them in every round.
  const Device cpu{};
  set_cpu_cache_limit(size_t{1} << 30);
  std::vector<size_t> sizes;
  for (int i = 0; i < 96; ++i) sizes.push_back((size_t{2} + static_cast<size_t>(i % 4) * 2) << 20);
  auto round = [&] {
    std::vector<void*> live;
    for (size_t n : sizes) {
      char* p = static_cast<char*>(raw_alloc(n, cpu, "test"));
      for (size_t k = 0; k < n; k += 4096) p[k] = 1;  // touch every page
      live.push_back(p);
    }
    for (size_t i = 0; i < live.size(); ++i) raw_free(live[i], sizes[i], cpu);
  };
  round();
  EXPECT(memory_stats().cpu_cached >= static_cast<int64_t>(size_t{480} << 20));
  const long f0 = minor_faults();
  round();
  const long faults = minor_faults() - f0;
  EXPECT(faults < 2000);  // 122,880 pages were touched; uncached, each one faults
  cpu_empty_cache();
  EXPECT(memory_stats().cpu_cached == 0);
}

TEST(the_limit_drops_the_least_recently_freed_blocks) {
  const Device cpu{};
  cpu_empty_cache();
  set_cpu_cache_limit(size_t{5} << 20);
  const size_t two = size_t{2} << 20, three = size_t{3} << 20;
  void* a = raw_alloc(two, cpu, "test");
  void* b = raw_alloc(three, cpu, "test");
  raw_free(a, two, cpu);    // cached: ~2 MiB
  raw_free(b, three, cpu);  // ~5 MiB would exceed the limit with the block headers: a goes
  const int64_t cached = memory_stats().cpu_cached;
  EXPECT(cached > 0 && cached <= static_cast<int64_t>(size_t{5} << 20));
  void* b2 = raw_alloc(three, cpu, "test");
  EXPECT(b2 == b);  // the most recent block stayed
  EXPECT(memory_stats().cpu_cached == 0);
  raw_free(b2, three, cpu);
  set_cpu_cache_limit(0);  // off: nothing is kept
  EXPECT(memory_stats().cpu_cached == 0);
  void* c = raw_alloc(three, cpu, "test");
  raw_free(c, three, cpu);
  EXPECT(memory_stats().cpu_cached == 0);
}

TEST_MAIN
