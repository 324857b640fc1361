// tessera CPU: helpers shared by the op-family kernels of this directory (softmax,
// norm, modulate, embedding, dropout, loss, upsample, patchify), as cuda/common.cuh is
// for the CUDA ones: grain sizes for parallel_for, row chunks and long sums.
// Dimension letters: M rows, N row length, n terms.
// Determinism: the optimized reductions split work into chunks chosen from the sizes
// alone (not the thread count) and combine partials in a fixed order, so results
// do not depend on how many threads run.
// Everything below has internal linkage (an unnamed namespace), so each kernel file
// inlines its own copy and no symbol is shared between them.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../core/parallel.h"

#define TS_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define TS_SIMD_SUM(...) TS_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#define TS_SIMD_MAX(v) TS_PRAGMA(omp simd reduction(max : v))
#else
#define TS_SIMD_SUM(...)
#define TS_SIMD_MAX(v)
#endif

namespace ts {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per parallel chunk, about
constexpr int64_t kCols = 64;      // column block for column-wise passes
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Rows per chunk for a row-parallel pass over M rows of N elements.
inline int64_t row_grain(int64_t N) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1)); }

// Splits [0, M) into chunks of `per` rows; the chunk count depends on sizes only.
struct Chunks {
  int64_t per, count;
  Chunks(int64_t M, int64_t N, int64_t max_chunks = 64) {
    per = std::max<int64_t>(row_grain(N), (M + max_chunks - 1) / max_chunks);
    count = M > 0 ? (M + per - 1) / per : 0;
  }
};

// Long sums: float SIMD lanes within blocks of kBlock terms, blocks added in double,
// so the error does not grow with n (a group of a video VAE holds ~10^6 values).
constexpr int64_t kBlock = 512;

// sum of f(i) for b <= i < e.
template <typename F>
inline double block_sum(int64_t b, int64_t e, F&& f) {
  double total = 0;
  for (int64_t b0 = b; b0 < e; b0 += kBlock) {
    int64_t b1 = std::min(e, b0 + kBlock);
    float acc = 0;
    TS_SIMD_SUM(acc)
    for (int64_t i = b0; i < b1; ++i) acc += f(i);
    total += acc;
  }
  return total;
}

struct Pair {
  float x, y;
};
// Two sums at once: f(i) returns a Pair of terms.
template <typename F>
inline void block_sum2(int64_t n, F&& f, float* sx, float* sy) {
  double tx = 0, ty = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    int64_t b1 = std::min(n, b0 + kBlock);
    float ax = 0, ay = 0;
    TS_SIMD_SUM(ax, ay)
    for (int64_t i = b0; i < b1; ++i) {
      Pair p = f(i);
      ax += p.x;
      ay += p.y;
    }
    tx += ax;
    ty += ay;
  }
  *sx = static_cast<float>(tx);
  *sy = static_cast<float>(ty);
}

// Deterministic sum of f(i) for i < n in double: fixed chunks, partials added in order.
template <typename F>
double chunked_sum(int64_t n, F&& f) {
  int64_t per = kGrain, count = (n + per - 1) / per;
  std::vector<double> part(static_cast<size_t>(count), 0.0);
  parallel_for(0, count, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) part[c] = block_sum(c * per, std::min(n, (c + 1) * per), f);
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}
}  // namespace

}  // namespace cpu
}  // namespace ts
