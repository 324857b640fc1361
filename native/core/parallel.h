// tessera core: threads. OpenMP when available. Work is split into contiguous
// chunks by index, so for a fixed thread count the split (and any per-chunk
// reduction order) is deterministic.
#pragma once
#include <algorithm>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace ts {

int num_threads();
void set_num_threads(int n);  // n >= 1
int hardware_threads();

// Calls f(begin, end) on disjoint chunks of [begin, end) of at least `grain` items.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  int64_t n = end - begin;
  if (n <= 0) return;
  int64_t nt = num_threads();
  int64_t chunks = std::min<int64_t>(nt, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1) {
    f(begin, end);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = begin + n * c / chunks, e = begin + n * (c + 1) / chunks;
    f(b, e);
  }
#else
  f(begin, end);
#endif
}

}  // namespace ts
