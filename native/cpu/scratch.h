// tessera CPU: reusable per-thread scratch memory for kernels (packing buffers,
// column buffers). Each thread keeps a few 64-byte-aligned slots that only grow, so
// hot kernels do not allocate per call (and glibc cannot fragment on them).
// A pointer stays valid until the same thread asks the same slot for more bytes.
#pragma once
#include <cstddef>

namespace ts {
namespace cpu {

constexpr int kScratchSlots = 8;
// Returns at least `bytes` bytes of 64-aligned scratch in `slot` of the calling thread.
void* scratch(int slot, size_t bytes);
template <typename T>
T* scratch_as(int slot, size_t count) {
  return static_cast<T*>(scratch(slot, count * sizeof(T)));
}
// Frees the calling thread's scratch (for tests that measure memory).
void release_scratch();

}  // namespace cpu
}  // namespace ts
