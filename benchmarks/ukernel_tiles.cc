// What bounds the GEMM on this CPU: AVX-512 register tiles of C timed on operands in L1
// (one thread; A panel kc x ROWS, B panel kc x COLS, C added once per call), against a
// register-only FMA loop (the peak), and two diagnostic variants of the 12 x 32 tile: its
// A broadcasts taken from a register (no A loads), and its B from registers (broadcast
// loads only); and the 12 x 32 tile in assembly with separate broadcasts against FMAs
// with embedded broadcasts. Not the library's kernel (native/cpu/gemm.cc), its shapes.
//   build/bench_ukernel_tiles [rounds=4]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// MODE 0: B loaded (COLS / 16 vectors) and A broadcast from memory per row, as a GEMM;
// 1: A broadcasts from a register; 2: B from registers.
template <int ROWS, int COLS, int MODE>
__attribute__((noinline, target("avx512f,fma"))) void tile(int64_t kc, const float* a, const float* b, float* c) {
  constexpr int NV = COLS / 16;
  __m512 acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  __m512 breg = _mm512_set1_ps(0.25f), areg = _mm512_set1_ps(0.5f);
  for (int64_t p = 0; p < kc; ++p) {
    __m512 v[NV];
    for (int j = 0; j < NV; ++j) {
      if (MODE == 2) {
        v[j] = breg;
        __asm__ volatile("" : "+v"(v[j]));  // keep it a register operand, not a constant
      } else {
        v[j] = _mm512_load_ps(b + 16 * j);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) {
      __m512 av = _mm512_set1_ps(a[r]);
      if (MODE == 1) {
        av = areg;
        __asm__ volatile("" : "+v"(av));
      }
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(av, v[j], acc[r][j]);
    }
    a += ROWS;
    b += COLS;
  }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j)
      _mm512_storeu_ps(c + r * COLS + 16 * j, _mm512_add_ps(acc[r][j], _mm512_loadu_ps(c + r * COLS + 16 * j)));
}

// The 12 x 32 tile written in assembly, accumulators pinned to zmm0-23, B in zmm24-25:
// EMB 1 with FMAs taking A as an embedded broadcast memory operand ({1to16}, one per FMA),
// EMB 0 with one vbroadcastss per row, as the compiled tile. (C is not added: three
// accumulators are stored, so that the work stays observable.)
#define TS_TILE_CLOBBERS                                                                                            \
  "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", \
      "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23", "zmm24", "zmm25", "zmm26"
#define TS_TILE_LOAD_B "vmovaps (%[b]), %%zmm24\n\tvmovaps 64(%[b]), %%zmm25\n\t"
template <int EMB>
__attribute__((noinline, target("avx512f"))) void tile_asm(int64_t kc, const float* a, const float* b, float* c) {
  asm volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
               "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\tvmovaps %%zmm0, %%zmm3\n\tvmovaps %%zmm0, %%zmm4\n\t"
               "vmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\tvmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\t"
               "vmovaps %%zmm0, %%zmm9\n\tvmovaps %%zmm0, %%zmm10\n\tvmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"
               "vmovaps %%zmm0, %%zmm13\n\tvmovaps %%zmm0, %%zmm14\n\tvmovaps %%zmm0, %%zmm15\n\tvmovaps %%zmm0, %%zmm16\n\t"
               "vmovaps %%zmm0, %%zmm17\n\tvmovaps %%zmm0, %%zmm18\n\tvmovaps %%zmm0, %%zmm19\n\tvmovaps %%zmm0, %%zmm20\n\t"
               "vmovaps %%zmm0, %%zmm21\n\tvmovaps %%zmm0, %%zmm22\n\tvmovaps %%zmm0, %%zmm23\n\t" ::
                   : TS_TILE_CLOBBERS);
  for (int64_t p = 0; p < kc; ++p, a += 12, b += 32) {
    if (EMB)
      asm volatile(
      TS_TILE_LOAD_B
      "vfmadd231ps 0(%[a])%{1to16%}, %%zmm24, %%zmm0\n\t"
      "vfmadd231ps 0(%[a])%{1to16%}, %%zmm25, %%zmm1\n\t"
      "vfmadd231ps 4(%[a])%{1to16%}, %%zmm24, %%zmm2\n\t"
      "vfmadd231ps 4(%[a])%{1to16%}, %%zmm25, %%zmm3\n\t"
      "vfmadd231ps 8(%[a])%{1to16%}, %%zmm24, %%zmm4\n\t"
      "vfmadd231ps 8(%[a])%{1to16%}, %%zmm25, %%zmm5\n\t"
      "vfmadd231ps 12(%[a])%{1to16%}, %%zmm24, %%zmm6\n\t"
      "vfmadd231ps 12(%[a])%{1to16%}, %%zmm25, %%zmm7\n\t"
      "vfmadd231ps 16(%[a])%{1to16%}, %%zmm24, %%zmm8\n\t"
      "vfmadd231ps 16(%[a])%{1to16%}, %%zmm25, %%zmm9\n\t"
      "vfmadd231ps 20(%[a])%{1to16%}, %%zmm24, %%zmm10\n\t"
      "vfmadd231ps 20(%[a])%{1to16%}, %%zmm25, %%zmm11\n\t"
      "vfmadd231ps 24(%[a])%{1to16%}, %%zmm24, %%zmm12\n\t"
      "vfmadd231ps 24(%[a])%{1to16%}, %%zmm25, %%zmm13\n\t"
      "vfmadd231ps 28(%[a])%{1to16%}, %%zmm24, %%zmm14\n\t"
      "vfmadd231ps 28(%[a])%{1to16%}, %%zmm25, %%zmm15\n\t"
      "vfmadd231ps 32(%[a])%{1to16%}, %%zmm24, %%zmm16\n\t"
      "vfmadd231ps 32(%[a])%{1to16%}, %%zmm25, %%zmm17\n\t"
      "vfmadd231ps 36(%[a])%{1to16%}, %%zmm24, %%zmm18\n\t"
      "vfmadd231ps 36(%[a])%{1to16%}, %%zmm25, %%zmm19\n\t"
      "vfmadd231ps 40(%[a])%{1to16%}, %%zmm24, %%zmm20\n\t"
      "vfmadd231ps 40(%[a])%{1to16%}, %%zmm25, %%zmm21\n\t"
      "vfmadd231ps 44(%[a])%{1to16%}, %%zmm24, %%zmm22\n\t"
      "vfmadd231ps 44(%[a])%{1to16%}, %%zmm25, %%zmm23\n\t"
      :: [a] "r"(a), [b] "r"(b) : TS_TILE_CLOBBERS, "memory");
    else
      asm volatile(
      TS_TILE_LOAD_B
      "vbroadcastss 0(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm0\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm1\n\t"
      "vbroadcastss 4(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm2\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm3\n\t"
      "vbroadcastss 8(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm4\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm5\n\t"
      "vbroadcastss 12(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm6\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm7\n\t"
      "vbroadcastss 16(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm8\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm9\n\t"
      "vbroadcastss 20(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm10\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm11\n\t"
      "vbroadcastss 24(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm12\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm13\n\t"
      "vbroadcastss 28(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm14\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm15\n\t"
      "vbroadcastss 32(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm16\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm17\n\t"
      "vbroadcastss 36(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm18\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm19\n\t"
      "vbroadcastss 40(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm20\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm21\n\t"
      "vbroadcastss 44(%[a]), %%zmm26\n\t"
      "vfmadd231ps %%zmm26, %%zmm24, %%zmm22\n\t"
      "vfmadd231ps %%zmm26, %%zmm25, %%zmm23\n\t"
      :: [a] "r"(a), [b] "r"(b) : TS_TILE_CLOBBERS, "memory");
  }
  asm volatile("vmovups %%zmm0, (%[c])\n\tvmovups %%zmm11, 64(%[c])\n\tvmovups %%zmm23, 128(%[c])\n\t" :: [c] "r"(c) : "memory");
}
#undef TS_TILE_CLOBBERS
#undef TS_TILE_LOAD_B

__attribute__((noinline, target("avx512f,fma"))) void fma_peak(int64_t n, float* out) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_storeu_ps(out, s);
}

std::map<std::string, double> best;

using TileFn = void (*)(int64_t, const float*, const float*, float*);
void run_fn(const char* name, int64_t kc, int ROWS, int COLS, TileFn fn) {
  std::vector<float> a(kc * ROWS + 64, 0.5f), c(ROWS * COLS, 0.0f);
  float* b = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(kc * COLS + 64) * sizeof(float)));
  std::fill(b, b + kc * COLS + 64, 0.25f);
  const int64_t calls = 300000000LL / (kc * ROWS * COLS / 16);
  for (int rep = 0; rep < 3; ++rep) {
    const double t0 = now();
    for (int64_t i = 0; i < calls; ++i) fn(kc, a.data(), b, c.data());
    const double g = 2.0 * kc * ROWS * COLS * calls / (now() - t0) / 1e9;
    const std::string key = std::string(name) + (kc == 128 ? " | kc 128" : " | kc 256");
    best[key] = std::max(best[key], g);
  }
  std::free(b);
}
template <int ROWS, int COLS, int MODE>
void run(const char* name, int64_t kc) {
  run_fn(name, kc, ROWS, COLS, tile<ROWS, COLS, MODE>);
}

}  // namespace

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("bench_ukernel_tiles: this CPU has no AVX-512; nothing to time\n");
    return 0;
  }
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 4;
  float out[16];
  double peak = 0;
  for (int r = 0; r < 5; ++r) {
    const int64_t n = 20000000;
    const double t0 = now();
    fma_peak(n, out);
    peak = std::max(peak, n * 24 * 32.0 / (now() - t0) / 1e9);
  }
  for (int round = 0; round < rounds; ++round)
    for (int64_t kc : {128, 256}) {
      run<12, 32, 0>("12 x 32 (the library's shape)", kc);
      run<14, 32, 0>("14 x 32", kc);
      run<8, 48, 0>("8 x 48", kc);
      run<6, 64, 0>("6 x 64", kc);
      run<12, 32, 1>("12 x 32, A from a register", kc);
      run<12, 32, 2>("12 x 32, B from registers", kc);
      run_fn("12 x 32 in asm, vbroadcastss per row", kc, 12, 32, tile_asm<0>);
      run_fn("12 x 32 in asm, embedded-broadcast FMAs", kc, 12, 32, tile_asm<1>);
    }
  std::printf("one thread, register-only FMA peak %.1f GFLOP/s (check %g); best of %d rounds x 3\n", peak, out[0], rounds);
  for (const auto& [k, g] : best) std::printf("%-44s %6.1f GFLOP/s  %5.1f%% of peak\n", k.c_str(), g, 100 * g / peak);
  return 0;
}
