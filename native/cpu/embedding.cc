// tessera CPU: embedding lookup and its backward, side by side (CUDA twin:
// cuda/embedding.cu). Dimension letters: n ids, V vocabulary, D features.
// ids lie in [0, V) (checked by the core); out [n, D]; weight and dweight [V, D].
// Each op has a plain reference loop (one thread; chosen by cpu::reference_kernels())
// beside the optimized path (threads via parallel_for); llm.c argument order: outputs,
// gradients, inputs, sizes.
// Memory contract: out and dweight are overwritten (=): row v of dweight is the sum of
// the dout rows whose id is v, added in the order of the ids.
#include <algorithm>
#include <cstring>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= embedding =======================================================
// out[i, :] = weight[ids[i], :]; backward: dweight = 0, then dweight[ids[i], :] += dout[i, :].

void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t n, int64_t V, int64_t D) {
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < D; ++d) out[i * D + d] = weight[ids[i] * D + d];
    return;
  }
  parallel_for(0, n, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      std::memcpy(out + i * D, weight + ids[i] * D, static_cast<size_t>(D) * sizeof(float));
  });
}

void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D) {
  if (reference_kernels()) {
    std::fill(dweight, dweight + V * D, 0.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < D; ++d) dweight[ids[i] * D + d] += dout[i * D + d];
    return;
  }
  parallel_for(0, V, row_grain(D), [&](int64_t lo, int64_t hi) {
    std::memset(dweight + lo * D, 0, static_cast<size_t>((hi - lo) * D) * sizeof(float));
  });
  // Race-free scatter: each task owns a block of columns and adds the ids in order,
  // so repeated ids sum in the same order as the reference loop.
  int64_t blocks = (D + kCols - 1) / kCols;
  parallel_for(0, blocks, std::max<int64_t>(1, kGrain / (std::max<int64_t>(n, 1) * kCols)), [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      int64_t d0 = blk * kCols, nd = std::min(kCols, D - d0);
      for (int64_t i = 0; i < n; ++i) {
        float* dst = dweight + ids[i] * D + d0;
        const float* src = dout + i * D + d0;
        for (int64_t j = 0; j < nd; ++j) dst[j] += src[j];
      }
    }
  });
}

}  // namespace cpu
}  // namespace ts
