// tessera core: threads. OpenMP when available. Work is split into contiguous
// chunks by index, so for a fixed thread count the split (and any per-chunk
// reduction order) is deterministic.
#pragma once
#include <algorithm>
#include <atomic>
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

// Calls f(task) for every task in [0, n), tasks handed out one at a time from a shared
// counter to num_threads() threads (dynamic scheduling): a thread that the OS delays
// (another process on its core) does not hold the others up. f(thread_slot, task)
// gets the index of the calling worker in [0, workers) for per-worker buffers. Which
// thread runs a task varies from run to run: each task must write its own outputs.
template <typename F>
void parallel_tasks(int64_t n, F&& f) {
  if (n <= 0) return;
  const int64_t workers = std::min<int64_t>(num_threads(), n);
  if (workers <= 1) {
    for (int64_t t = 0; t < n; ++t) f(int64_t{0}, t);
    return;
  }
  std::atomic<int64_t> next{0};
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(workers)) schedule(static, 1)
#endif
  for (int64_t w = 0; w < workers; ++w)
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < n;) f(w, t);
}

}  // namespace ts
