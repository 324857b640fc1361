// tessera CPU: reductions over the middle axis of x [outer, n, inner]: sum, mean, max,
// min (CUDA twin: cuda/reduce.cu). Dimension letters: outer, n (reduced), inner.
// x contiguous [outer, n, inner] -> out [outer, inner]; the core lays adjacent reduced
// axes out as n in place, and reduces axes that are not adjacent one run at a time.
// Sums accumulate in double; max/min propagate NaN; mean over n = 0 is NaN. One path
// whatever reference_kernels() says: it already sums in double in index order, as a
// reference loop would.
// Memory contract: out is overwritten (=).
#include <algorithm>
#include <cmath>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

namespace {
constexpr int64_t kGrain = 32768;  // elements per parallel chunk, about (as elementwise.cc)
}  // namespace

void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) {
  const float* xp = x.data<float>();
  float* o = out.data<float>();
  const bool sum = op == ReduceOp::Sum || op == ReduceOp::Mean;
  // Sums accumulate in double, so results do not depend on how threads split the work.
  if (inner == 1) {
    parallel_for(0, outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const float* p = xp + r * n;
        if (sum) {
          double acc = 0;
          for (int64_t i = 0; i < n; ++i) acc += p[i];
          o[r] = static_cast<float>(op == ReduceOp::Mean ? (n ? acc / n : NAN) : acc);
        } else {
          float m = p[0];
          for (int64_t i = 1; i < n && m == m; ++i) {
            float v = p[i];
            m = (v != v) ? v : (op == ReduceOp::Max ? (v > m ? v : m) : (v < m ? v : m));
          }
          o[r] = m;
        }
      }
    });
    return;
  }
  // Reduce over a middle axis: walk rows in order, accumulating a block of columns.
  constexpr int64_t kCols = 256;
  int64_t col_blocks = (inner + kCols - 1) / kCols;
  parallel_for(0, outer * col_blocks, 1, [&](int64_t lo, int64_t hi) {
    double acc[kCols];
    float m[kCols];
    for (int64_t w = lo; w < hi; ++w) {
      int64_t ob = w / col_blocks, j0 = (w % col_blocks) * kCols, nj = std::min(kCols, inner - j0);
      const float* p = xp + ob * n * inner + j0;
      if (sum) {
        for (int64_t j = 0; j < nj; ++j) acc[j] = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < nj; ++j) acc[j] += p[i * inner + j];
        for (int64_t j = 0; j < nj; ++j)
          o[ob * inner + j0 + j] = static_cast<float>(op == ReduceOp::Mean ? (n ? acc[j] / n : NAN) : acc[j]);
      } else {
        for (int64_t j = 0; j < nj; ++j) m[j] = p[j];
        for (int64_t i = 1; i < n; ++i)
          for (int64_t j = 0; j < nj; ++j) {
            float v = p[i * inner + j], c = m[j];
            m[j] = (c != c || v != v) ? NAN : (op == ReduceOp::Max ? (v > c ? v : c) : (v < c ? v : c));
          }
        for (int64_t j = 0; j < nj; ++j) o[ob * inner + j0 + j] = m[j];
      }
    }
  });
}

}  // namespace cpu
}  // namespace ts
