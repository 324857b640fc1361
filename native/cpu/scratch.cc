#include "scratch.h"

#include <cstdint>
#include <cstdlib>

#include "../core/error.h"

namespace ts {
namespace cpu {

namespace {
struct Slot {
  void* base = nullptr;
  void* aligned = nullptr;
  size_t bytes = 0;
};
struct Scratch {
  Slot slots[kScratchSlots];
  ~Scratch() {
    for (Slot& s : slots) std::free(s.base);
  }
};
thread_local Scratch t_scratch;
}  // namespace

void* scratch(int slot, size_t bytes) {
  if (slot < 0 || slot >= kScratchSlots) fail("scratch", "slot ", slot, " out of range");
  Slot& s = t_scratch.slots[slot];
  if (bytes > s.bytes) {
    std::free(s.base);
    size_t want = bytes + bytes / 4;  // grow with slack
    s.base = std::malloc(want + 64);
    if (!s.base) {
      s.bytes = 0;
      s.aligned = nullptr;
      fail("scratch", "out of memory allocating ", want, " bytes of kernel scratch");
    }
    s.aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(s.base) + 63) / 64 * 64);
    s.bytes = want;
  }
  return s.aligned;
}

void release_scratch() {
  for (Slot& s : t_scratch.slots) {
    std::free(s.base);
    s = Slot{};
  }
}

}  // namespace cpu
}  // namespace ts
