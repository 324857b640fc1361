#include "parallel.h"

#include <thread>

namespace ts {
namespace {
int g_threads = 0;  // 0: not chosen yet -> hardware_threads()
}

int hardware_threads() {
#ifdef _OPENMP
  int n = omp_get_num_procs();
#else
  int n = static_cast<int>(std::thread::hardware_concurrency());
#endif
  return n > 0 ? n : 1;
}

int num_threads() {
  if (g_threads <= 0) g_threads = hardware_threads();
  return g_threads;
}

void set_num_threads(int n) {
  g_threads = n < 1 ? 1 : n;
#ifdef _OPENMP
  omp_set_num_threads(g_threads);
#endif
}

}  // namespace ts
