// tessera CPU: measures this machine's peak fp32 FMA throughput (GFLOP/s) with an
// independent-accumulator FMA loop on every thread (AVX-512 when present, else AVX2),
// the ceiling against which benchmarks report "% of peak".
#include <immintrin.h>

#include <chrono>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

namespace {
// 24 independent accumulators hide the FMA latency on 2 FMA pipes.
__attribute__((target("avx512f,fma"))) double fma_loop_avx512(int64_t iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0];
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0];
}
}  // namespace

double measure_peak_gflops(double seconds) {
  const bool avx512 = features().avx512f && features().fma;
  if (!avx512 && !(features().avx2 && features().fma)) return 0;
  const double flops_per_iter = avx512 ? 24 * 16 * 2 : 12 * 8 * 2;
  int nt = num_threads();
  // Calibrate iterations for ~seconds per run on one thread, then run on all.
  int64_t iters = 1 << 16;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    volatile double sink = avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
    (void)sink;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 4 || iters > (int64_t(1) << 34)) {
      iters = static_cast<int64_t>(iters * (seconds / std::max(dt, 1e-6)));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    double sink = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(+ : sink)
#endif
    sink += avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile double keep = sink;
    (void)keep;
    best = std::max(best, flops_per_iter * static_cast<double>(iters) * nt / dt / 1e9);
  }
  return best;
}

}  // namespace cpu
}  // namespace ts
