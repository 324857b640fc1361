// Standalone CPU GEMM timing without Node or PyTorch in the process: the four
// shapes through cpu::gemm (operands reused, C overwritten), the micro-kernel alone on
// operands in L1, and the FMA peak, on the same threads. For telling the kernel's own
// efficiency apart from what an interleaved run (benchmarks/run.js) sees on a busy host.
//   build/bench_gemm_cpu [threads=2] [reps=11] [kc mc nc_chunk]
// The optional blocking (in floats, as cpu::GemmBlocking; 0 keeps the default) is for
// tuning runs: it replaces the library's blocking for this process only.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "cpu/cpu.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ts::cpu;
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 11;
  if (threads < 1 || reps < 1) {
    std::fprintf(stderr, "usage: bench_gemm_cpu [threads >= 1] [reps >= 1]\n");
    return 2;
  }
  ts::set_num_threads(threads);
  if (argc > 3) {
    GemmBlocking b = gemm_blocking();
    b.kc = std::atoll(argv[3]);
    b.mc = argc > 4 ? std::atoll(argv[4]) : 0;
    b.nc_chunk = argc > 5 ? std::atoll(argv[5]) : 0;
    set_gemm_blocking(b);
    b = gemm_blocking();
    std::printf("blocking kc %lld mc %lld nc_chunk %lld\n", static_cast<long long>(b.kc), static_cast<long long>(b.mc),
                static_cast<long long>(b.nc_chunk));
  }
  const double peak = measure_peak_gflops(0.5);

  // The micro-kernel alone: one kc = 256 tile, A and B in L1, one thread.
  const MicroKernel& mk = micro_kernel();
  const int64_t kc = 256;
  std::vector<float> a(kc * mk.MR, 0.5f), bbuf(kc * mk.NR + 16, 0.25f), c(mk.MR * mk.NR);
  const float* b = reinterpret_cast<const float*>((reinterpret_cast<uintptr_t>(bbuf.data()) + 63) & ~uintptr_t{63});
  const int64_t calls = 200000;
  double t0 = now();
  for (int64_t i = 0; i < calls; ++i) mk.fn(kc, a.data(), b, c.data(), mk.NR, mk.MR, mk.NR, true);
  const double uk = 2.0 * kc * mk.MR * mk.NR * calls / (now() - t0) / 1e9;
  std::printf("threads %d, FMA peak %.0f GFLOP/s (%.0f per thread); micro-kernel %dx%d on L1 operands: %.1f GFLOP/s "
              "(%.0f%% of one thread's peak)\n",
              threads, peak, peak / threads, mk.MR, mk.NR, uk, 100 * uk / (peak / threads));

  std::mt19937 rng(0);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t shapes[][3] = {{4096, 384, 1152}, {4096, 384, 1536}, {4096, 1536, 384}, {2048, 2048, 2048}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1], N = s[2];
    std::vector<float> A(M * K), B(K * N), C(M * N);
    for (float& v : A) v = dist(rng);
    for (float& v : B) v = dist(rng);
    gemm(false, false, M, N, K, A.data(), K, B.data(), N, C.data(), N, 0.0f);  // warm-up
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      t0 = now();
      gemm(false, false, M, N, K, A.data(), K, B.data(), N, C.data(), N, 0.0f);
      t.push_back(now() - t0);
    }
    const double ms = median(t) * 1e3, gf = 2.0 * M * N * K / median(t) / 1e9;
    std::printf("gemm %lldx%lldx%lld: median %.2f ms, %.1f GFLOP/s, %.1f%% of peak\n", static_cast<long long>(M),
                static_cast<long long>(K), static_cast<long long>(N), ms, gf, 100 * gf / peak);
  }
  return 0;
}
